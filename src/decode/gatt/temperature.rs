//! Temperature Measurement (0x2A1C): flags (bit 0 Fahrenheit, 1 time stamp, 2 temperature type;
//! bits 3-7 reserved and refused); FLOAT temperature; time stamp; type (0x2A1D).

use super::reader::GattError;
use super::{GattReading, GattValue, Reader};

const TYPES: [&str; 10] =
    ["reserved", "armpit", "body", "ear", "finger", "gastro-intestinal", "mouth", "rectum", "toe", "tympanum"];

pub fn decode(bytes: &[u8]) -> Result<GattReading, GattError> {
    let mut r = Reader::new(bytes);
    let flags = r.u8("flags")?;
    if flags & 0xf8 != 0 {
        return Err(GattError::new(format!("reserved flag bits set (0x{flags:02x})")));
    }
    let unit = if flags & 0x01 != 0 { "[degF]" } else { "Cel" };
    let mut out = GattReading::default();
    let n = r.float("temperature")?;
    out.values.push(GattValue::of("temperature", n, unit));
    if flags & 0x02 != 0 {
        out.tdev = r.device_time("time stamp", &mut out)?;
    }
    if flags & 0x04 != 0 {
        let t = r.u8("temperature type")?;
        out.ctx("site", TYPES.get(usize::from(t)).copied().unwrap_or("reserved"));
    }
    Ok(out)
}
