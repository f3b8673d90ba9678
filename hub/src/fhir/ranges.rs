//! The Observation search's parameters that may come more than once to make a range (two make
//! a window): `_lastUpdated` (when stored, `search_time`), `date` (when measured) and
//! `value-quantity` (`search_quantity`), read from the query's pairs.

use crate::search_quantity::QuantityTerm;
use crate::search_time::TimeTerm;

/// A search's parameters that may come more than once (a range), each a list of terms any of
/// which holds; all of them hold.
#[derive(Debug, Default)]
pub struct Ranges {
    /// `_lastUpdated`: when the hub stored the reading.
    pub stored: Vec<Vec<TimeTerm>>,
    /// `date`: when it was measured (`rows::MEASURED`).
    pub measured: Vec<Vec<TimeTerm>>,
    /// `value-quantity`: its value and unit.
    pub quantity: Vec<Vec<QuantityTerm>>,
    /// The parameters as given, in order (for the page links).
    pub given: Vec<(&'static str, String)>,
}

/// The parameters of the Observation search that may come more than once to make a range:
/// `_lastUpdated` (stored), `date` (measured) and `value-quantity`.
const RANGE_PARAMETERS: [&str; 3] = ["_lastUpdated", "date", "value-quantity"];

/// A search takes each of them at most this many times (two make a window).
const MAX_RANGE_VALUES: usize = 4;

/// The range parameters of a search.
pub fn ranges(pairs: &[(String, String)]) -> Result<Ranges, String> {
    let given: Vec<(&'static str, String)> =
        pairs.iter().filter_map(|(k, v)| RANGE_PARAMETERS.iter().find(|n| *n == k).map(|n| (*n, v.clone()))).collect();
    let mut ranges = Ranges::default();
    for name in RANGE_PARAMETERS {
        if given.iter().filter(|(n, _)| *n == name).count() > MAX_RANGE_VALUES {
            return Err(format!("{name}: at most {MAX_RANGE_VALUES} values"));
        }
    }
    for (name, value) in &given {
        match *name {
            "value-quantity" => ranges.quantity.push(QuantityTerm::parse_any(value)?),
            "date" => ranges.measured.push(TimeTerm::parse_any(name, value)?),
            _ => ranges.stored.push(TimeTerm::parse_any(name, value)?),
        }
    }
    ranges.given = given;
    Ok(ranges)
}
