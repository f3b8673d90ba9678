//! Blood Pressure Measurement (0x2A35): flags (bit 0 unit kPa, 1 time stamp, 2 pulse rate, 3 user
//! id, 4 measurement status); systolic, diastolic, mean arterial pressure (SFLOAT); then the
//! optional fields in that order.

use super::reader::GattError;
use super::{bit_names, GattReading, GattValue, Reader};

const STATUS: &[(u32, &str)] =
    &[(0, "body-movement"), (1, "cuff-too-loose"), (2, "irregular-pulse"), (5, "improper-position")];

pub fn decode(bytes: &[u8]) -> Result<GattReading, GattError> {
    let mut r = Reader::new(bytes);
    let flags = r.u8("flags")?;
    let unit = if flags & 0x01 != 0 { "kPa" } else { "mm[Hg]" };
    let mut out = GattReading::default();
    for source in ["systolic", "diastolic", "mean"] {
        let n = r.sfloat(source)?;
        out.values.push(GattValue::of(source, n, unit));
    }
    if flags & 0x02 != 0 {
        out.tdev = r.device_time("time stamp", &mut out)?;
    }
    if flags & 0x04 != 0 {
        let n = r.sfloat("pulse rate")?;
        out.values.push(GattValue::of("pulse_rate", n, "/min"));
    }
    if flags & 0x08 != 0 {
        out.ctx("user_id", r.u8("user id")?);
    }
    if flags & 0x10 != 0 {
        let s = u32::from(r.u16("measurement status")?);
        out.ctx("status", bit_names(s, STATUS));
        let range = match (s >> 3) & 0x3 {
            0 => "in-range",
            1 => "above-upper-limit",
            2 => "below-lower-limit",
            _ => "reserved",
        };
        out.ctx("pulse_rate_range", range);
    }
    Ok(out)
}
