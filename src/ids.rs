//! Identifiers that appear in topics (`site`, `gw`, `dev`, profile ids): `[a-z0-9][a-z0-9-]{0,62}`.

/// True when `s` is a valid contract identifier.
///
/// ```
/// assert!(spokegate::ids::is_valid_id("upazila-01"));
/// assert!(!spokegate::ids::is_valid_id("Upazila 01"));
/// ```
pub fn is_valid_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

#[cfg(test)]
mod tests {
    use super::is_valid_id;

    #[test]
    fn ids_follow_the_contract_pattern() {
        assert!(is_valid_id("upazila-01"));
        assert!(is_valid_id("0"));
        assert!(is_valid_id(&"a".repeat(63)));
        for bad in ["", "-a", "Gw", "gw_1", "gw/1", "g+", &"a".repeat(64)] {
            assert!(!is_valid_id(bad), "{bad:?}");
        }
    }
}
