//! Glucose Measurement (0x2A18) and Glucose Measurement Context (0x2A34), Glucose Profile 1.0.
//!
//! Measurement: flags (bit 0 time offset, 1 concentration + type/location, 2 unit mol/L (else
//! kg/L), 3 sensor status annunciation, 4 context follows); sequence number; base time; time offset
//! (sint16 minutes); concentration (SFLOAT); type (low nibble) and sample location (high nibble);
//! status (uint16). Concentrations are given in clinical units, exactly: kg/L x 100 000 = mg/dL,
//! mol/L x 1 000 = mmol/L (no mass/molar conversion is made).

use super::reader::{micros, GattError};
use super::{bit_names, GattReading, GattValue, Number, Reader};

const TYPES: [&str; 11] = [
    "reserved",
    "capillary-whole-blood",
    "capillary-plasma",
    "venous-whole-blood",
    "venous-plasma",
    "arterial-whole-blood",
    "arterial-plasma",
    "undetermined-whole-blood",
    "undetermined-plasma",
    "interstitial-fluid",
    "control-solution",
];
const LOCATIONS: [&str; 5] = ["reserved", "finger", "alternate-site-test", "earlobe", "control-solution"];
const STATUS: &[(u32, &str)] = &[
    (0, "battery-low"),
    (1, "sensor-malfunction"),
    (2, "sample-size-insufficient"),
    (3, "strip-insertion-error"),
    (4, "strip-type-incorrect"),
    (5, "result-above-range"),
    (6, "result-below-range"),
    (7, "temperature-too-high"),
    (8, "temperature-too-low"),
    (9, "strip-pulled-too-soon"),
    (10, "general-device-fault"),
    (11, "time-fault"),
];

fn scale(n: Number, by: f64) -> Number {
    match n {
        Number::Value(v) => Number::Value((v * by * 1e6).round() / 1e6),
        special => special,
    }
}

pub fn measurement(bytes: &[u8]) -> Result<GattReading, GattError> {
    let mut r = Reader::new(bytes);
    let flags = r.u8("flags")?;
    let seq = r.u16("sequence number")?;
    let base = r.date_time("base time")?;
    let offset = if flags & 0x01 != 0 { i64::from(r.i16("time offset")?) } else { 0 };
    let mut out = GattReading { record: Some(seq), context_follows: flags & 0x10 != 0, ..Default::default() };
    out.ctx("record", seq);
    out.tdev = base.map(|t| micros(t) + offset * 60_000_000);
    if flags & 0x02 != 0 {
        let raw = r.sfloat("glucose concentration")?;
        let v = if flags & 0x04 != 0 {
            GattValue::of("glucose_molar", scale(raw, 1e3), "mmol/L")
        } else {
            GattValue::of("glucose_mass", scale(raw, 1e5), "mg/dL")
        };
        out.values.push(v);
        let tl = r.u8("type and sample location")?;
        out.ctx("sample_type", TYPES.get(usize::from(tl & 0x0f)).copied().unwrap_or("reserved"));
        out.ctx("sample_location", LOCATIONS.get(usize::from(tl >> 4)).copied().unwrap_or("reserved"));
    }
    if flags & 0x08 != 0 {
        let s = u32::from(r.u16("sensor status annunciation")?);
        out.ctx("status", bit_names(s, STATUS));
        out.ctx("status_bits", s);
    }
    Ok(out)
}

const CARBS: [&str; 8] = ["reserved", "breakfast", "lunch", "dinner", "snack", "drink", "supper", "brunch"];
const MEALS: [&str; 6] = ["reserved", "preprandial", "postprandial", "fasting", "casual", "bedtime"];
const MEDICATIONS: [&str; 6] = [
    "reserved",
    "rapid-acting-insulin",
    "short-acting-insulin",
    "intermediate-acting-insulin",
    "long-acting-insulin",
    "premixed-insulin",
];

const TESTERS: [&str; 4] = ["reserved", "self", "health-care-professional", "lab-test"];
const HEALTH: [&str; 6] =
    ["reserved", "minor-health-issues", "major-health-issues", "during-menses", "under-stress", "no-health-issues"];

/// A tester or health nibble by name (15 = not available).
fn nibble_name(v: u8, names: &[&'static str]) -> &'static str {
    match v {
        0x0f => "not-available",
        _ => names.get(usize::from(v)).copied().unwrap_or("reserved"),
    }
}

/// Glucose Measurement Context: flags (bit 0 carbohydrate, 1 meal, 2 tester-health, 3 exercise,
/// 4 medication, 5 medication in litres (else kilograms), 6 HbA1c, 7 extended flags); sequence
/// number; then the fields in that order.
pub fn context(bytes: &[u8]) -> Result<GattReading, GattError> {
    let mut r = Reader::new(bytes);
    let flags = r.u8("flags")?;
    let seq = r.u16("sequence number")?;
    let mut out = GattReading { record: Some(seq), ..Default::default() };
    out.ctx("record", seq);
    if flags & 0x80 != 0 {
        r.u8("extended flags")?;
    }
    if flags & 0x01 != 0 {
        let id = r.u8("carbohydrate id")?;
        out.ctx("carbohydrate_meal", CARBS.get(usize::from(id)).copied().unwrap_or("reserved"));
        // kg -> g
        out.values.push(GattValue::of("carbohydrate", scale(r.sfloat("carbohydrate")?, 1e3), "g"));
    }
    if flags & 0x02 != 0 {
        let m = r.u8("meal")?;
        out.ctx("meal", MEALS.get(usize::from(m)).copied().unwrap_or("reserved"));
    }
    if flags & 0x04 != 0 {
        let th = r.u8("tester-health")?;
        out.ctx("tester", nibble_name(th & 0x0f, &TESTERS));
        out.ctx("health", nibble_name(th >> 4, &HEALTH));
    }
    if flags & 0x08 != 0 {
        let secs = r.u16("exercise duration")?;
        if secs != 0xffff {
            out.values.push(GattValue::plain("exercise_duration", f64::from(secs), "s"));
        }
        out.values.push(GattValue::plain("exercise_intensity", f64::from(r.u8("exercise intensity")?), "%"));
    }
    if flags & 0x10 != 0 {
        let id = r.u8("medication id")?;
        out.ctx("medication", MEDICATIONS.get(usize::from(id)).copied().unwrap_or("reserved"));
        let amount = r.sfloat("medication")?;
        out.values.push(if flags & 0x20 != 0 {
            GattValue::of("medication_volume", scale(amount, 1e3), "mL")
        } else {
            GattValue::of("medication_mass", scale(amount, 1e6), "mg")
        });
    }
    if flags & 0x40 != 0 {
        out.values.push(GattValue::of("hba1c", r.sfloat("HbA1c")?, "%"));
    }
    Ok(out)
}
