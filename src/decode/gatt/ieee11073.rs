//! IEEE 11073-20601 numbers: SFLOAT (16 bits: 4-bit exponent, 12-bit mantissa, both two's
//! complement) and FLOAT (32 bits: 8-bit exponent, 24-bit mantissa), with their special values.

use crate::model::Quality;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Value(f64),
    Special(Quality),
}

impl Number {
    pub fn value(self) -> Option<f64> {
        match self {
            Number::Value(v) => Some(v),
            Number::Special(_) => None,
        }
    }

    pub fn quality(self) -> Quality {
        match self {
            Number::Value(_) => Quality::Ok,
            Number::Special(q) => q,
        }
    }
}

/// `m * 10^e` without binary noise for the usual cases (37.6, not 37.600000000000001).
fn scaled(m: i64, e: i32) -> f64 {
    if e >= 0 {
        m as f64 * 10f64.powi(e)
    } else {
        m as f64 / 10f64.powi(-e)
    }
}

pub fn sfloat(raw: u16) -> Number {
    let mantissa = i64::from(raw & 0x0fff);
    match mantissa {
        0x07ff => return Number::Special(Quality::NaN),
        0x0800 => return Number::Special(Quality::NRes),
        0x07fe => return Number::Special(Quality::PosInf),
        0x0802 => return Number::Special(Quality::NegInf),
        0x0801 => return Number::Special(Quality::Invalid),
        _ => {}
    }
    let m = if mantissa >= 0x0800 { mantissa - 0x1000 } else { mantissa };
    let e = i32::from((raw >> 12) as u8);
    let e = if e >= 8 { e - 16 } else { e };
    Number::Value(scaled(m, e))
}

pub fn float32(raw: u32) -> Number {
    let mantissa = i64::from(raw & 0x00ff_ffff);
    match mantissa {
        0x007f_ffff => return Number::Special(Quality::NaN),
        0x0080_0000 => return Number::Special(Quality::NRes),
        0x007f_fffe => return Number::Special(Quality::PosInf),
        0x0080_0002 => return Number::Special(Quality::NegInf),
        0x0080_0001 => return Number::Special(Quality::Invalid),
        _ => {}
    }
    let m = if mantissa >= 0x0080_0000 { mantissa - 0x0100_0000 } else { mantissa };
    let e = i32::from((raw >> 24) as u8 as i8);
    Number::Value(scaled(m, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_specials() {
        // From the data's SOURCES.md: e8 f3 = 0xF3E8 = 1000 x 10^-1.
        assert_eq!(sfloat(0xF3E8), Number::Value(100.0));
        assert_eq!(sfloat(0xF0BD), Number::Value(18.9));
        assert_eq!(sfloat(0x0FFF), Number::Value(-1.0));
        assert_eq!(sfloat(0x07FF), Number::Special(Quality::NaN));
        assert_eq!(sfloat(0x0800), Number::Special(Quality::NRes));
        assert_eq!(sfloat(0x07FE), Number::Special(Quality::PosInf));
        assert_eq!(sfloat(0x0802), Number::Special(Quality::NegInf));
        assert_eq!(float32(0xFE000EB0), Number::Value(37.6));
        assert_eq!(float32(0x007FFFFF), Number::Special(Quality::NaN));
        assert_eq!(float32(0x00800000), Number::Special(Quality::NRes));
        assert_eq!(float32(0x007FFFFE), Number::Special(Quality::PosInf));
        assert_eq!(float32(0x00800002), Number::Special(Quality::NegInf));
        assert_eq!(float32(0x01FFFFFF), Number::Value(-10.0));
    }
}
