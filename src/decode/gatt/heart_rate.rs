//! Heart Rate Measurement (0x2A37): flags; heart rate (uint8, or uint16 with flag bit 0); sensor
//! contact (bit 2 supported, bit 1 detected); energy expended (uint16 kJ, bit 3); RR intervals
//! (uint16, 1/1024 s each, bit 4) to the end.

use super::reader::GattError;
use super::{GattReading, GattValue, Reader};

pub fn decode(bytes: &[u8]) -> Result<GattReading, GattError> {
    let mut r = Reader::new(bytes);
    let flags = r.u8("flags")?;
    let hr = if flags & 0x01 != 0 { r.u16("heart rate (uint16)")? } else { u16::from(r.u8("heart rate")?) };
    let mut out = GattReading::default();
    out.values.push(GattValue::plain("heart_rate", f64::from(hr), "/min"));
    if flags & 0x04 != 0 {
        out.ctx("sensor_contact", if flags & 0x02 != 0 { "detected" } else { "not-detected" });
    }
    if flags & 0x08 != 0 {
        out.values.push(GattValue::plain("energy_expended", f64::from(r.u16("energy expended")?), "kJ"));
    }
    if flags & 0x10 != 0 {
        if r.rest() == 0 || r.rest() % 2 != 0 {
            return Err(GattError::new(format!("RR intervals: {} bytes is not whole uint16 values", r.rest())));
        }
        while r.rest() >= 2 {
            out.values.push(GattValue::plain("rr_interval", f64::from(r.u16("RR interval")?) / 1024.0, "s"));
        }
    } else if r.rest() > 0 {
        return Err(GattError::new(format!("{} bytes after the last field", r.rest())));
    }
    Ok(out)
}
