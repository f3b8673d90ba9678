//! The `code` search parameter (FHIR R4 search, a "token"): which readings carry a code. A
//! reading's codes are its IEEE 11073-10101 (MDC) code and, where one exists, its LOINC code, so
//! a hospital's system asks in either: `150021`, `8480-6` (any system),
//! `urn:iso:std:iso:11073:10101|150021`, `http://loinc.org|8480-6`, `http://loinc.org|` (any
//! LOINC code), and several separated by commas (any of them). A code in a system the hub does
//! not code in, or `|code` (a code without a system: the hub's codes all have one), matches
//! nothing: a search never returns readings its code does not select.

use crate::fhir::{LOINC_SYSTEM, MDC_SYSTEM};
use crate::search_values::SqlValue;

/// One of the codes a search accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Wanted {
    /// This MDC code.
    Mdc(i64),
    /// This LOINC code.
    Loinc(String),
    /// The code in either system (an MDC code is a number, so text that is not one is LOINC's).
    Either { mdc: Option<i64>, loinc: String },
    /// Any LOINC code.
    AnyLoinc,
    /// Every reading (any MDC code: every reading has one).
    Any,
    /// No reading.
    Nothing,
}

/// What a `code` parameter asks for: any of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeSearch(Vec<Wanted>);

impl CodeSearch {
    pub fn parse(value: &str) -> CodeSearch {
        CodeSearch(crate::search_values::any_of(value).iter().map(|t| wanted(t)).collect())
    }

    /// The SQL condition on the MDC column `mdc` and the LOINC column `loinc`, with its
    /// parameters numbered from `$first`.
    pub fn condition(&self, mdc: &str, loinc: &str, first: usize) -> (String, Vec<SqlValue>) {
        let mut params = Vec::new();
        let mut next = |p: SqlValue| {
            params.push(p);
            first + params.len() - 1
        };
        let terms: Vec<String> = self
            .0
            .iter()
            .map(|w| match w {
                Wanted::Mdc(c) => format!("{mdc} = ${}::bigint", next(SqlValue::Number(Some(*c)))),
                Wanted::Loinc(c) => format!("{loinc} = ${}::text", next(SqlValue::Text(c.clone()))),
                Wanted::Either { mdc: m, loinc: l } => {
                    let (m, l) = (next(SqlValue::Number(*m)), next(SqlValue::Text(l.clone())));
                    format!("({mdc} = ${m}::bigint OR {loinc} = ${l}::text)")
                }
                Wanted::AnyLoinc => format!("{loinc} IS NOT NULL"),
                Wanted::Any => "TRUE".into(),
                Wanted::Nothing => "FALSE".into(),
            })
            .collect();
        (format!("({})", terms.join(" OR ")), params)
    }
}

fn wanted(token: &str) -> Wanted {
    let number = |c: &str| c.parse::<i64>().ok().filter(|n| *n >= 0);
    match token.split_once('|') {
        None if token.is_empty() => Wanted::Nothing,
        None => Wanted::Either { mdc: number(token), loinc: token.to_string() },
        Some((_, code)) if code.contains('|') => Wanted::Nothing,
        Some(("", _)) => Wanted::Nothing,
        Some((MDC_SYSTEM, "")) => Wanted::Any,
        Some((MDC_SYSTEM, code)) => number(code).map_or(Wanted::Nothing, Wanted::Mdc),
        Some((LOINC_SYSTEM, "")) => Wanted::AnyLoinc,
        Some((LOINC_SYSTEM, code)) => Wanted::Loinc(code.to_string()),
        Some(_) => Wanted::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_read_in_its_system_or_in_either() {
        let w = |s: &str| CodeSearch::parse(s).0;
        assert_eq!(w("150021"), [Wanted::Either { mdc: Some(150021), loinc: "150021".into() }]);
        assert_eq!(w("8480-6"), [Wanted::Either { mdc: None, loinc: "8480-6".into() }]);
        assert_eq!(w("urn:iso:std:iso:11073:10101|150021"), [Wanted::Mdc(150021)]);
        assert_eq!(w("http://loinc.org|8480-6"), [Wanted::Loinc("8480-6".into())]);
        assert_eq!(w("http://loinc.org|"), [Wanted::AnyLoinc]);
        assert_eq!(w("urn:iso:std:iso:11073:10101|"), [Wanted::Any]);
        assert_eq!(w("150021,http://loinc.org|8867-4"), [w("150021")[0].clone(), Wanted::Loinc("8867-4".into())]);
        for nothing in [
            "urn:iso:std:iso:11073:10101|8480-6",
            "urn:iso:std:iso:11073:10101|-1",
            "http://snomed.info/sct|271649006",
            "|8480-6",
            "",
            "a|b|c",
        ] {
            assert_eq!(w(nothing), [Wanted::Nothing], "{nothing}");
        }
    }

    #[test]
    fn the_condition_numbers_its_parameters() {
        let (sql, params) = CodeSearch::parse("8480-6,urn:iso:std:iso:11073:10101|147842,http://loinc.org|")
            .condition("o.mdc", "o.loinc", 5);
        assert_eq!(sql, "((o.mdc = $5::bigint OR o.loinc = $6::text) OR o.mdc = $7::bigint OR o.loinc IS NOT NULL)");
        assert_eq!(params, [SqlValue::Number(None), SqlValue::Text("8480-6".into()), SqlValue::Number(Some(147842))]);
    }
}
