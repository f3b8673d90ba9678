//! The `value-quantity` search parameter (FHIR R4 search, a "quantity"): readings whose value
//! compares with a number, in a unit: `gt180|http://unitsofmeasure.org|mm[Hg]` (systolic above
//! 180 mmHg), `ge7.0||mmol/L` (the unit's code in any system), `lt95` (any unit), an MDC unit
//! code with the MDC system (`urn:iso:std:iso:11073:10101|3872`); several separated by commas
//! (any of them); the parameter up to four times (all of them: `ge100&value-quantity=lt140`).
//!
//! A number stands for the range its precision implies, as FHIR says: `100` is [99.5, 100.5),
//! `100.0` is [99.95, 100.05), `1e2` is [95, 105) (FHIR's examples). `eq` (the default) is within it, `ne` outside
//! it, `gt`/`sa` above the number, `ge` at or above it, `lt`/`eb` below it, `le` at or below it,
//! `ap` within 10 % of it. Units are not converted: a reading in another unit, or without a value
//! (`dataAbsentReason`), does not match. A unit in a system other than UCUM or MDC matches nothing.

use crate::fhir::{MDC_SYSTEM, UCUM_SYSTEM};

/// One value of the parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantityTerm {
    /// The comparison, with its bounds.
    compare: Compare,
    unit: Unit,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Compare {
    /// `lo <= v < hi`.
    Within {
        lo: f64,
        hi: f64,
    },
    /// `v < lo` or `v >= hi`.
    Outside {
        lo: f64,
        hi: f64,
    },
    Above(f64),
    AtLeast(f64),
    Below(f64),
    AtMost(f64),
}

#[derive(Debug, Clone, PartialEq)]
enum Unit {
    Any,
    /// A UCUM code (with its system, or a code with no system given).
    Ucum(String),
    /// An MDC unit code.
    Mdc(i64),
    /// Any unit with an MDC code (the MDC system without a code).
    AnyMdc,
    /// A code no unit the hub stores has.
    Nothing,
}

impl QuantityTerm {
    /// Reads one value (`[prefix]number[|system|code]`); a refusal says why.
    pub fn parse(value: &str) -> Result<QuantityTerm, String> {
        let refuse = |why: &str| format!("value-quantity `{value}`: {why}");
        let mut parts = value.splitn(3, '|');
        let number = parts.next().unwrap_or("");
        let unit = match (parts.next(), parts.next()) {
            (None, _) => Unit::Any,
            (Some(_), None) => return Err(refuse("a unit is `number|system|code` (the system may be empty)")),
            (Some(""), Some("")) => Unit::Any,
            (Some(""), Some(code)) => Unit::Ucum(code.to_string()),
            // Every unit the hub stores has its UCUM code.
            (Some(UCUM_SYSTEM), Some("")) => Unit::Any,
            (Some(UCUM_SYSTEM), Some(code)) => Unit::Ucum(code.to_string()),
            (Some(MDC_SYSTEM), Some("")) => Unit::AnyMdc,
            (Some(MDC_SYSTEM), Some(code)) => code.parse::<i64>().map_or(Unit::Nothing, Unit::Mdc),
            (Some(_), Some(_)) => Unit::Nothing,
        };
        let (prefix, number) = match number.get(..2) {
            Some(p) if p.bytes().all(|b| b.is_ascii_lowercase()) => (p, &number[2..]),
            _ => ("eq", number),
        };
        let (n, half) = decimal(number).ok_or_else(|| refuse("not a number (such as 180, 7.5 or 1e2)"))?;
        let compare = match prefix {
            "eq" => Compare::Within { lo: n - half, hi: n + half },
            "ne" => Compare::Outside { lo: n - half, hi: n + half },
            "gt" | "sa" => Compare::Above(n),
            "ge" => Compare::AtLeast(n),
            "lt" | "eb" => Compare::Below(n),
            "le" => Compare::AtMost(n),
            "ap" => Compare::Within { lo: n - (n * 0.1).abs(), hi: n + (n * 0.1).abs() },
            other => return Err(refuse(&format!("`{other}` is not a prefix (eq, ne, gt, ge, lt, le, sa, eb, ap)"))),
        };
        Ok(QuantityTerm { compare, unit })
    }

    /// Reads one parameter: several values separated by commas, any of which holds.
    pub fn parse_any(value: &str) -> Result<Vec<QuantityTerm>, String> {
        crate::search_values::any_of(value).iter().map(|v| QuantityTerm::parse(v)).collect()
    }
}

/// A decimal (`180`, `-7.25`, `1.5e2`) and half the unit of its last digit.
fn decimal(text: &str) -> Option<(f64, f64)> {
    // With an exponent, the range is a tenth of what the last digit implies, as FHIR's own
    // example says (`1e2` is [95, 105); one significant figure alone would make it [50, 150),
    // which some servers use instead).
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.strip_prefix('+').unwrap_or(e).parse::<i32>().ok()?.checked_sub(1)?),
        None => (text, 0),
    };
    let digits = mantissa.strip_prefix(['-', '+']).unwrap_or(mantissa);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) || (digits.contains('.') && fraction.is_empty())
    {
        return None;
    }
    let n: f64 = text.parse().ok().filter(|n: &f64| n.is_finite())?;
    let half = 0.5 * 10f64.powi(exponent.checked_sub(fraction.len() as i32)?);
    half.is_finite().then_some((n, half))
}

/// The SQL condition that keeps rows whose `value` (float8), UCUM `ucum` (text) and MDC unit
/// `unit_mdc` (bigint) meet every parameter (one of its terms each), with its parameters (text,
/// cast in the SQL) numbered from `$first`; `TRUE` without parameters.
pub fn condition(
    parameters: &[Vec<QuantityTerm>],
    (value, ucum, unit_mdc): (&str, &str, &str),
    first: usize,
) -> (String, Vec<String>) {
    let mut params: Vec<String> = Vec::new();
    // A parameter as text, and its placeholder cast to `cast`.
    let mut param = |text: String, cast: &str| {
        params.push(text);
        format!("${}::{cast}", first + params.len() - 1)
    };
    let mut term = |t: &QuantityTerm| {
        let mut number = |n: f64| param(n.to_string(), "text::float8");
        let compared = match t.compare {
            Compare::Within { lo, hi } => format!("({value} >= {} AND {value} < {})", number(lo), number(hi)),
            Compare::Outside { lo, hi } => format!("({value} < {} OR {value} >= {})", number(lo), number(hi)),
            Compare::Above(n) => format!("{value} > {}", number(n)),
            Compare::AtLeast(n) => format!("{value} >= {}", number(n)),
            Compare::Below(n) => format!("{value} < {}", number(n)),
            Compare::AtMost(n) => format!("{value} <= {}", number(n)),
        };
        let unit = match &t.unit {
            Unit::Any => "TRUE".to_string(),
            Unit::Ucum(code) => format!("{ucum} = {}", param(code.clone(), "text")),
            Unit::Mdc(code) => format!("{unit_mdc} = {}", param(code.to_string(), "text::bigint")),
            Unit::AnyMdc => format!("{unit_mdc} IS NOT NULL"),
            Unit::Nothing => "FALSE".to_string(),
        };
        format!("({compared} AND {unit})")
    };
    let sql: Vec<String> = parameters
        .iter()
        .map(|any| format!("({})", any.iter().map(&mut term).collect::<Vec<_>>().join(" OR ")))
        .collect();
    let sql = if sql.is_empty() { "TRUE".to_string() } else { sql.join(" AND ") };
    (sql, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(s: &str) -> QuantityTerm {
        QuantityTerm::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_number_stands_for_the_range_of_its_precision() {
        let within = |s: &str| match term(s).compare {
            Compare::Within { lo, hi } => (lo, hi),
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(within("100"), (99.5, 100.5));
        assert_eq!(within("eq100.0"), (99.95, 100.05));
        assert_eq!(within("1e2"), (95.0, 105.0));
        assert_eq!(within("1.1e2"), (109.5, 110.5));
        assert_eq!(within("-7.25"), (-7.255, -7.245));
        assert_eq!(within("ap100"), (90.0, 110.0));
        assert_eq!(term("gt180").compare, Compare::Above(180.0));
        assert_eq!(term("sa180").compare, Compare::Above(180.0));
        assert_eq!(term("ge7.0").compare, Compare::AtLeast(7.0));
        assert_eq!(term("lt95").compare, Compare::Below(95.0));
        assert_eq!(term("eb95").compare, Compare::Below(95.0));
        assert_eq!(term("le95").compare, Compare::AtMost(95.0));
        assert_eq!(term("ne100").compare, Compare::Outside { lo: 99.5, hi: 100.5 });
    }

    #[test]
    fn a_unit_is_ucum_or_mdc_or_a_code_alone_and_another_system_matches_nothing() {
        assert_eq!(term("gt180|http://unitsofmeasure.org|mm[Hg]").unit, Unit::Ucum("mm[Hg]".into()));
        assert_eq!(term("gt180||mm[Hg]").unit, Unit::Ucum("mm[Hg]".into()));
        assert_eq!(term("gt180||").unit, Unit::Any);
        assert_eq!(term("gt180|urn:iso:std:iso:11073:10101|3872").unit, Unit::Mdc(3872));
        assert_eq!(term("gt180|urn:iso:std:iso:11073:10101|mmHg").unit, Unit::Nothing);
        assert_eq!(term("gt180|http://unitsofmeasure.org|").unit, Unit::Any);
        assert_eq!(term("gt180|urn:iso:std:iso:11073:10101|").unit, Unit::AnyMdc);
        assert_eq!(term("gt180|http://snomed.info/sct|259018001").unit, Unit::Nothing);
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        for (bad, why) in [
            ("", "not a number"),
            ("gt", "not a number"),
            ("high", "not a number"),
            ("xx100", "not a prefix"),
            ("1.", "not a number"),
            (".5", "not a number"),
            ("1,5", "not a number"),
            ("1e", "not a number"),
            ("1e999", "not a number"),
            ("NaN", "not a number"),
            ("inf", "not a number"),
            ("100|mm[Hg]", "a unit is"),
        ] {
            let e = QuantityTerm::parse(bad).expect_err(bad);
            assert!(e.starts_with(&format!("value-quantity `{bad}`")) && e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn the_condition_numbers_its_parameters() {
        let terms = [
            QuantityTerm::parse_any("gt180||mm[Hg],lt60").unwrap(),
            vec![term("100|urn:iso:std:iso:11073:10101|3872")],
        ];
        let (sql, params) = condition(&terms, ("o.value", "o.ucum", "o.unit_mdc"), 4);
        assert_eq!(
            sql,
            "((o.value > $4::text::float8 AND o.ucum = $5::text) OR (o.value < $6::text::float8 AND TRUE)) AND \
             (((o.value >= $7::text::float8 AND o.value < $8::text::float8) AND o.unit_mdc = $9::text::bigint))"
        );
        assert_eq!(params, ["180", "mm[Hg]", "60", "99.5", "100.5", "3872"]);
        assert_eq!(condition(&[], ("v", "u", "m"), 1), ("TRUE".to_string(), vec![]));
    }

    proptest::proptest! {
        /// Whatever a client sends is read or refused, never a panic.
        #[test]
        fn any_text_is_read_or_refused(s in "\\PC{0,40}") {
            let _ = QuantityTerm::parse(&s);
        }
    }
}
