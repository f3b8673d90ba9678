//! A spot reading: one observed value with its IEEE 11073 (MDC) code, LOINC where one exists, and
//! its UCUM unit.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What was measured: the MDC code always, LOINC where a vital-sign code exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Code {
    pub mdc: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loinc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The unit: UCUM always, the MDC unit code when the device gave one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unit {
    pub ucum: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mdc: Option<u32>,
}

/// How far the value can be trusted. Special values of IEEE 11073 numbers are flags, never numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Quality {
    #[serde(rename = "ok")]
    Ok,
    #[serde(rename = "nan")]
    NaN,
    #[serde(rename = "nres")]
    NRes,
    #[serde(rename = "+inf")]
    PosInf,
    #[serde(rename = "-inf")]
    NegInf,
    #[serde(rename = "invalid")]
    Invalid,
}

impl Quality {
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Ok => "ok",
            Quality::NaN => "nan",
            Quality::NRes => "nres",
            Quality::PosInf => "+inf",
            Quality::NegInf => "-inf",
            Quality::Invalid => "invalid",
        }
    }
}

/// One observed value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub code: Code,
    /// The value in `unit`; `None` (null) whenever `q` is not `ok`.
    pub val: Option<f64>,
    pub unit: Unit,
    pub q: Quality,
    /// The device's own time for this value, microseconds since the Unix epoch (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tdev: Option<i64>,
    /// Context the device gave with the value (e.g. the 11073 containment path, the equipment id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx: Option<BTreeMap<String, String>>,
}

impl Observation {
    /// A value the device reported as a plain number.
    pub fn measured(code: Code, val: f64, unit: Unit) -> Self {
        Self { code, val: Some(val), unit, q: Quality::Ok, tdev: None, ctx: None }
    }
}
