//! Pulse oximetry (PLX Profile): Spot-check Measurement (0x2A5E), Continuous Measurement (0x2A5F)
//! and Features (0x2A60).

use super::reader::{micros, GattError};
use super::{bit_names, GattReading, GattValue, Reader};

const MEASUREMENT_STATUS: &[(u32, &str)] = &[
    (5, "measurement-ongoing"),
    (6, "early-estimated-data"),
    (7, "validated-data"),
    (8, "fully-qualified-data"),
    (9, "data-from-storage"),
    (10, "data-for-demonstration"),
    (11, "data-for-testing"),
    (12, "calibration-ongoing"),
    (13, "measurement-unavailable"),
    (14, "questionable-measurement"),
    (15, "invalid-measurement"),
];
const DEVICE_STATUS: &[(u32, &str)] = &[
    (0, "extended-display-update-ongoing"),
    (1, "equipment-malfunction"),
    (2, "signal-processing-irregularity"),
    (3, "inadequate-signal"),
    (4, "poor-signal"),
    (5, "low-perfusion"),
    (6, "erratic-signal"),
    (7, "nonpulsatile-signal"),
    (8, "questionable-pulse"),
    (9, "signal-analysis-ongoing"),
    (10, "sensor-interference"),
    (11, "sensor-unconnected-to-user"),
    (12, "unknown-sensor-connected"),
    (13, "sensor-displaced"),
    (14, "sensor-malfunctioning"),
    (15, "sensor-disconnected"),
];
const FEATURES: &[(u32, &str)] = &[
    (0, "measurement-status"),
    (1, "device-and-sensor-status"),
    (2, "spot-check-storage"),
    (3, "spot-check-timestamp"),
    (4, "spo2pr-fast"),
    (5, "spo2pr-slow"),
    (6, "pulse-amplitude-index"),
    (7, "multiple-bonds"),
];

fn pair(r: &mut Reader, out: &mut GattReading, spo2: &'static str, pr: &'static str) -> Result<(), GattError> {
    let s = r.sfloat(spo2)?;
    out.values.push(GattValue::of(spo2, s, "%"));
    let p = r.sfloat(pr)?;
    out.values.push(GattValue::of(pr, p, "/min"));
    Ok(())
}

fn statuses(r: &mut Reader, out: &mut GattReading, measurement: bool, device: bool) -> Result<(), GattError> {
    if measurement {
        let s = u32::from(r.u16("measurement status")?);
        out.ctx("measurement_status", bit_names(s, MEASUREMENT_STATUS));
    }
    if device {
        let s = r.u24("device and sensor status")?;
        out.ctx("device_status", bit_names(s, DEVICE_STATUS));
    }
    Ok(())
}

/// Flags: bit 0 time stamp, 1 measurement status, 2 device and sensor status, 3 pulse amplitude
/// index, 4 device clock not set.
pub fn spot_check(bytes: &[u8]) -> Result<GattReading, GattError> {
    let mut r = Reader::new(bytes);
    let flags = r.u8("flags")?;
    let mut out = GattReading::default();
    pair(&mut r, &mut out, "spo2", "pulse_rate")?;
    if flags & 0x01 != 0 {
        let t = r.date_time("time stamp")?;
        if flags & 0x10 == 0 {
            out.tdev = t.map(micros);
        }
    }
    statuses(&mut r, &mut out, flags & 0x02 != 0, flags & 0x04 != 0)?;
    if flags & 0x08 != 0 {
        out.values.push(GattValue::of("pulse_amplitude_index", r.sfloat("pulse amplitude index")?, "%"));
    }
    Ok(out)
}

/// Flags: bit 0 SpO2PR-Fast, 1 SpO2PR-Slow, 2 measurement status, 3 device and sensor status,
/// 4 pulse amplitude index.
pub fn continuous(bytes: &[u8]) -> Result<GattReading, GattError> {
    let mut r = Reader::new(bytes);
    let flags = r.u8("flags")?;
    let mut out = GattReading::default();
    pair(&mut r, &mut out, "spo2", "pulse_rate")?;
    if flags & 0x01 != 0 {
        pair(&mut r, &mut out, "spo2_fast", "pulse_rate_fast")?;
    }
    if flags & 0x02 != 0 {
        pair(&mut r, &mut out, "spo2_slow", "pulse_rate_slow")?;
    }
    statuses(&mut r, &mut out, flags & 0x04 != 0, flags & 0x08 != 0)?;
    if flags & 0x10 != 0 {
        out.values.push(GattValue::of("pulse_amplitude_index", r.sfloat("pulse amplitude index")?, "%"));
    }
    Ok(out)
}

/// Supported features, then the supported measurement and device statuses when announced.
pub fn features(bytes: &[u8]) -> Result<GattReading, GattError> {
    let mut r = Reader::new(bytes);
    let f = u32::from(r.u16("supported features")?);
    let mut out = GattReading::default();
    out.ctx("features", bit_names(f, FEATURES));
    if f & 0x01 != 0 {
        let s = u32::from(r.u16("measurement status support")?);
        out.ctx("measurement_status_support", bit_names(s, MEASUREMENT_STATUS));
    }
    if f & 0x02 != 0 {
        let s = r.u24("device and sensor status support")?;
        out.ctx("device_status_support", bit_names(s, DEVICE_STATUS));
    }
    Ok(out)
}
