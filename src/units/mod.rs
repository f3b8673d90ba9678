//! Every IEEE 11073-10101 unit code that has a UCUM equivalent, from the Rosetta Terminology
//! Mapping's units table (`rosetta_units.csv`, see `SOURCES.md` beside it), built into the binary.
//! Every profile uses it by default; a profile's own `[[unit]]` entries override or add codes.
//!
//! The table gives several UCUM synonyms for some codes without marking one preferred; the gateway
//! sends the first synonym that carries no `{annotation}` (`{unitless} 1` gives `1`, `/min 1/min
//! {beat}/min` gives `/min`), and the first one when all carry one (`{unknown}`). A trailing `#`
//! (deprecated term) is dropped.

use std::collections::HashMap;
use std::sync::LazyLock;

/// One unit of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdcUnit {
    /// The 32-bit context-free code (partition 4 << 16 | term code).
    pub code: u32,
    /// `MDC_DIM_...`
    pub refid: &'static str,
    /// The UCUM code the gateway sends.
    pub ucum: &'static str,
    /// Every UCUM synonym the table lists.
    pub synonyms: Vec<&'static str>,
}

struct Table {
    units: Vec<MdcUnit>,
    by_code: HashMap<u32, usize>,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let mut units = Vec::new();
    let mut by_code = HashMap::new();
    for line in include_str!("rosetta_units.csv").lines().skip(1) {
        let cols = csv_fields(line);
        let (Some(code), Some(refid), Some(ucum)) = (cols.first(), cols.get(1), cols.get(2)) else { continue };
        let Ok(code) = code.trim().parse::<u32>() else { continue };
        let synonyms: Vec<&'static str> = ucum.split_whitespace().map(|u| u.trim_end_matches('#')).collect();
        let Some(preferred) = synonyms.iter().find(|u| !u.contains('{')).or(synonyms.first()).copied() else {
            continue;
        };
        // A code listed twice (e.g. MDC_DIM_X_G and MDC_DIM_G): the first row stands.
        by_code.entry(code).or_insert(units.len());
        units.push(MdcUnit { code, refid: refid.trim_end_matches('#'), ucum: preferred, synonyms });
    }
    Table { units, by_code }
});

/// Splits one CSV line (RFC 4180 quoting) into borrowed fields; quoted fields keep their text
/// without the outer quotes (the columns used here never contain doubled quotes).
fn csv_fields(line: &'static str) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(line[start..i].trim_matches('"'));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(line[start..].trim_matches('"'));
    out
}

/// The unit with this MDC code.
pub fn by_code(code: u32) -> Option<&'static MdcUnit> {
    TABLE.by_code.get(&code).map(|i| &TABLE.units[*i])
}

/// The unit one of whose UCUM synonyms is `ucum` (exactly, else ignoring ASCII case).
pub fn by_ucum(ucum: &str) -> Option<&'static MdcUnit> {
    TABLE
        .units
        .iter()
        .find(|u| u.synonyms.contains(&ucum))
        .or_else(|| TABLE.units.iter().find(|u| u.synonyms.iter().any(|s| s.eq_ignore_ascii_case(ucum))))
}

/// Every unit of the table with a code.
pub fn all() -> &'static [MdcUnit] {
    &TABLE.units
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_table_is_built_in_with_the_sources_ucum() {
        // The source has 334 distinct codes (rows without a code are proposals); two of them,
        // MDC_DIM_TOD and MDC_DIM_DATE, have no UCUM equivalent.
        let distinct: std::collections::HashSet<u32> = all().iter().map(|u| u.code).collect();
        assert_eq!(distinct.len(), 332);
        assert!(by_code(264544).is_none() && by_code(264576).is_none());
        for (code, refid, ucum) in [
            (266016, "MDC_DIM_MMHG", "mm[Hg]"),
            (263441, "MDC_DIM_CENTI_M", "cm"),
            (264096, "MDC_DIM_KG_PER_M_SQ", "kg/m2"),
            (263875, "MDC_DIM_KILO_G", "kg"),
            (264864, "MDC_DIM_BEAT_PER_MIN", "/min"),
            (262656, "MDC_DIM_DIMLESS", "1"),
            (268192, "MDC_DIM_DEGC", "Cel"),
            (262144, "MDC_DIM_NOS", "{unknown}"),
        ] {
            let u = by_code(code).unwrap_or_else(|| panic!("{code}"));
            assert_eq!((u.refid, u.ucum), (refid, ucum));
        }
        assert_eq!(by_code(999_999), None);
    }

    #[test]
    fn a_ucum_spelling_finds_its_code() {
        assert_eq!(by_ucum("mm[Hg]").map(|u| u.code), Some(266016));
        assert_eq!(by_ucum("{beat}/min").map(|u| u.code), Some(264864));
        assert_eq!(by_ucum("MG/DL").map(|u| u.code), Some(264274));
        assert_eq!(by_ucum("furlong/fortnight"), None);
    }
}
