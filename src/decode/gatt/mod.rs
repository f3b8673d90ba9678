//! Bluetooth SIG GATT characteristics (and the Polar PMD stream), as pure functions of one
//! notification's bytes. Multi-byte fields are little-endian; IEEE 11073-20601 SFLOAT and FLOAT
//! special values (NaN, NRes, +/-INF, reserved) become quality flags, never numbers.
//!
//! Every decoder gives named values (`source` names a profile's `[[field]]` maps to MDC/LOINC
//! codes) in the UCUM unit the characteristic states, plus device time and context.

mod blood_pressure;
mod glucose;
mod heart_rate;
mod ieee11073;
mod plx;
pub mod pmd;
pub mod racp;
mod reader;
mod temperature;

pub use ieee11073::{float32, sfloat, Number};
pub use reader::{GattError, Reader};

use crate::model::Quality;
use std::collections::BTreeMap;

/// A characteristic a decoder knows, by its 16-bit SIG UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Characteristic {
    GlucoseMeasurement,
    GlucoseContext,
    Racp,
    HeartRate,
    BloodPressure,
    Temperature,
    PlxSpotCheck,
    PlxContinuous,
    PlxFeatures,
}

impl Characteristic {
    pub fn from_uuid16(u: u16) -> Option<Self> {
        Some(match u {
            0x2A18 => Self::GlucoseMeasurement,
            0x2A34 => Self::GlucoseContext,
            0x2A52 => Self::Racp,
            0x2A37 => Self::HeartRate,
            0x2A35 => Self::BloodPressure,
            0x2A1C => Self::Temperature,
            0x2A5E => Self::PlxSpotCheck,
            0x2A5F => Self::PlxContinuous,
            0x2A60 => Self::PlxFeatures,
            _ => return None,
        })
    }

    pub fn uuid16(self) -> u16 {
        match self {
            Self::GlucoseMeasurement => 0x2A18,
            Self::GlucoseContext => 0x2A34,
            Self::Racp => 0x2A52,
            Self::HeartRate => 0x2A37,
            Self::BloodPressure => 0x2A35,
            Self::Temperature => 0x2A1C,
            Self::PlxSpotCheck => 0x2A5E,
            Self::PlxContinuous => 0x2A5F,
            Self::PlxFeatures => 0x2A60,
        }
    }
}

/// The Bluetooth SIG base UUID with a 16-bit UUID in it.
pub fn uuid16(u: u16) -> uuid::Uuid {
    uuid::Uuid::from_u128((u128::from(u) << 96) | 0x0000_0000_0000_1000_8000_0080_5f9b_34fb)
}

/// The 16-bit UUID inside a SIG-base UUID.
pub fn short_uuid(u: &uuid::Uuid) -> Option<u16> {
    let v = u.as_u128();
    (v & !(0xffff_u128 << 96) == 0x0000_0000_0000_1000_8000_0080_5f9b_34fb).then_some((v >> 96) as u16)
}

/// A UUID as profiles and captures write it: `0x2A18`, `2a18`, or the full 128-bit form.
pub fn parse_uuid(text: &str) -> Option<uuid::Uuid> {
    let t = text.trim();
    let short = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
    if short.len() == 4 {
        return u16::from_str_radix(short, 16).ok().map(uuid16);
    }
    uuid::Uuid::parse_str(t).ok()
}

/// The value names a characteristic gives, for checking profiles.
pub fn sources(c: Characteristic) -> &'static [&'static str] {
    match c {
        Characteristic::GlucoseMeasurement => &["glucose_mass", "glucose_molar"],
        Characteristic::GlucoseContext => &[
            "carbohydrate",
            "exercise_duration",
            "exercise_intensity",
            "medication_mass",
            "medication_volume",
            "hba1c",
        ],
        Characteristic::HeartRate => &["heart_rate", "energy_expended", "rr_interval"],
        Characteristic::BloodPressure => &["systolic", "diastolic", "mean", "pulse_rate"],
        Characteristic::Temperature => &["temperature"],
        Characteristic::PlxSpotCheck | Characteristic::PlxContinuous => &[
            "spo2",
            "pulse_rate",
            "spo2_fast",
            "pulse_rate_fast",
            "spo2_slow",
            "pulse_rate_slow",
            "pulse_amplitude_index",
        ],
        Characteristic::PlxFeatures | Characteristic::Racp => &[],
    }
}

/// One named value.
#[derive(Debug, Clone, PartialEq)]
pub struct GattValue {
    pub source: &'static str,
    /// `None` whenever `q` is not `ok`.
    pub val: Option<f64>,
    pub q: Quality,
    pub ucum: &'static str,
}

impl GattValue {
    pub fn of(source: &'static str, n: Number, ucum: &'static str) -> Self {
        Self { source, val: n.value(), q: n.quality(), ucum }
    }

    pub fn plain(source: &'static str, v: f64, ucum: &'static str) -> Self {
        Self { source, val: Some(v), q: Quality::Ok, ucum }
    }
}

/// What one notification said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GattReading {
    pub values: Vec<GattValue>,
    /// Device time of the reading (microseconds, UTC as the device states it).
    pub tdev: Option<i64>,
    /// Context: record number, status flags, sample type, ... (text).
    pub ctx: BTreeMap<String, String>,
    /// Glucose: the record's sequence number; a context (0x2A34) with the same number may follow.
    pub record: Option<u16>,
    pub context_follows: bool,
}

impl GattReading {
    pub fn value(&self, source: &str) -> Option<&GattValue> {
        self.values.iter().find(|v| v.source == source)
    }

    fn ctx(&mut self, key: &str, value: impl ToString) {
        self.ctx.insert(key.to_string(), value.to_string());
    }
}

/// Decodes a notification of a known characteristic (RACP is read by [`racp`], PMD by [`pmd`]).
pub fn decode(c: Characteristic, bytes: &[u8]) -> Result<GattReading, GattError> {
    match c {
        Characteristic::GlucoseMeasurement => glucose::measurement(bytes),
        Characteristic::GlucoseContext => glucose::context(bytes),
        Characteristic::HeartRate => heart_rate::decode(bytes),
        Characteristic::BloodPressure => blood_pressure::decode(bytes),
        Characteristic::Temperature => temperature::decode(bytes),
        Characteristic::PlxSpotCheck => plx::spot_check(bytes),
        Characteristic::PlxContinuous => plx::continuous(bytes),
        Characteristic::PlxFeatures => plx::features(bytes),
        Characteristic::Racp => Err(GattError::new("RACP is a control point, not a measurement")),
    }
}

/// Current Time (0x2A2B): Exact Time 256 (a Date Time, day of week, 1/256 s) and an adjust reason.
/// The device's time in microseconds (taken as UTC), `None` when it does not know the date.
pub fn current_time(bytes: &[u8]) -> Result<Option<i64>, GattError> {
    let mut r = Reader::new(bytes);
    let t = r.date_time("date time")?;
    r.u8("day of week")?;
    let fraction = i64::from(r.u8("fractions256")?);
    r.u8("adjust reason")?;
    Ok(t.map(|t| reader::micros(t) + fraction * 1_000_000 / 256))
}

/// Names of the bits set in `bits`, from a table of (bit, name).
fn bit_names(bits: u32, table: &[(u32, &str)]) -> String {
    table.iter().filter(|(b, _)| bits & (1 << b) != 0).map(|(_, n)| *n).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// A device can send anything: every decoder answers with a value or an error, never a panic.
        #[test]
        fn no_notification_makes_a_decoder_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            for u in [0x2A18u16, 0x2A34, 0x2A37, 0x2A35, 0x2A1C, 0x2A5E, 0x2A5F, 0x2A60] {
                let _ = decode(Characteristic::from_uuid16(u).unwrap(), &bytes);
            }
            let _ = racp::decode_response(&bytes);
            let _ = current_time(&bytes);
            let _ = pmd::decode_ecg(&bytes);
            let _ = pmd::decode_header(&bytes);
            let _ = pmd::decode_settings(&bytes);
            let _ = pmd::decode_control_response(&bytes);
        }
    }
}
