//! The device profile file as written by an operator: a serde schema that refuses unknown keys.
//! [`super::compile`] turns it into a checked [`super::Profile`].

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    pub id: Spanned<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub serial: RawSerial,
    pub framing: RawFraming,
    pub decoder: RawDecoder,
    #[serde(default, rename = "unit")]
    pub units: Vec<RawUnit>,
    #[serde(default, rename = "metric")]
    pub metrics: Vec<RawMetric>,
    #[serde(default, rename = "field")]
    pub fields: Vec<RawField>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSerial {
    pub baud: Option<Spanned<u32>>,
    pub data_bits: Option<Spanned<u8>>,
    pub parity: Option<Spanned<String>>,
    pub stop_bits: Option<Spanned<u8>>,
    pub flow_control: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFraming {
    pub kind: Spanned<String>,
    /// Largest frame (MLLP) or line accepted, in bytes.
    pub max_len: Option<Spanned<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDecoder {
    pub kind: Spanned<String>,
    // hl7-oru
    pub ack: Option<bool>,
    // text
    pub format: Option<Spanned<String>>,
    pub prefix: Option<String>,
    pub checksum: Option<Spanned<String>>,
    pub delimiter: Option<Spanned<String>>,
    pub assign: Option<Spanned<String>>,
    #[serde(default)]
    pub columns: Vec<Spanned<String>>,
    #[serde(default)]
    pub skip_column_counts: Vec<usize>,
    pub device_time: Option<RawDeviceTime>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeviceTime {
    /// Columns (csv) or keys (key-value) joined with one space before parsing.
    pub from: Vec<Spanned<String>>,
    /// A `time` crate format description, e.g. `[month]/[day]/[year repr:last_two] [hour]:[minute]:[second]`.
    pub format: Spanned<String>,
    /// The device clock's offset from UTC, `+05:30`; UTC when absent.
    pub utc_offset: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUnit {
    pub mdc: u32,
    pub ucum: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetric {
    pub mdc: Spanned<u32>,
    pub name: Option<String>,
    pub loinc: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawField {
    /// The column name (csv) or key (key-value) the value comes from.
    pub source: Spanned<String>,
    pub mdc: u32,
    pub name: Option<String>,
    pub loinc: Option<Spanned<String>>,
    pub ucum: Spanned<String>,
    pub unit_mdc: Option<u32>,
    /// value = raw * scale + offset
    pub scale: Option<Spanned<f64>>,
    pub offset: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<Spanned<f64>>,
}
