//! Identifiers that appear in topics (`site`, `gw`, `dev`, profile ids): `[a-z0-9][a-z0-9-]{0,62}`;
//! consult and command ids: `[A-Za-z0-9._:-]{1,64}`.

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

/// True for a consult id or a command id: `[A-Za-z0-9._:-]{1,64}` (opaque to the gateway; a
/// command id names its reply topic, so it holds no `/`, `+` or `#`).
///
/// ```
/// assert!(spokegate::ids::is_valid_token("C-2026.11:42"));
/// assert!(!spokegate::ids::is_valid_token("a/b"));
/// ```
pub fn is_valid_token(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"._:-".contains(&c))
}

#[cfg(test)]
mod tests {
    use super::{is_valid_id, is_valid_token};

    #[test]
    fn consult_and_command_ids_are_topic_safe_tokens() {
        assert!(is_valid_token("a") && is_valid_token(&"Z".repeat(64)) && is_valid_token("x.y:z-1_"));
        for bad in ["", "a b", "a/b", "a+", "#", &"a".repeat(65), "é"] {
            assert!(!is_valid_token(bad), "{bad:?}");
        }
    }

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
