//! Lossless packings of a channel's integer samples (`ch[].enc` and `ch[].data` of a `wave` body).
//!
//! | `enc` | bytes |
//! |---|---|
//! | `i16le` | each sample as a little-endian two's-complement 16-bit integer |
//! | `i32le` | each sample as a little-endian two's-complement 32-bit integer |
//! | `rice` | fixed linear prediction and Rice codes, see [`super::rice`] |
//! | `dzv` | delta, zig-zag, varint: for each sample `d = s[i] - s[i-1]` (with `s[-1] = 0`), computed in 64 bits; `z = (d << 1) ^ (d >> 63)`; `z` as an unsigned LEB128 varint (7 bits a byte, low group first, high bit = more) |
//!
//! `dzv` suits biosignals, whose neighbouring samples differ little: most deltas take one byte.
//! Decoding needs the sample count (`n` of the body) and refuses truncated, overlong or
//! out-of-range data rather than guessing.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    I16Le,
    I32Le,
    DeltaZigzagVarint,
    Rice,
}

impl Encoding {
    /// The `enc` name in a `wave` body.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::I16Le => "i16le",
            Encoding::I32Le => "i32le",
            Encoding::DeltaZigzagVarint => "dzv",
            Encoding::Rice => "rice",
        }
    }

    pub fn from_name(name: &str) -> Option<Encoding> {
        match name {
            "i16le" => Some(Encoding::I16Le),
            "i32le" => Some(Encoding::I32Le),
            "dzv" => Some(Encoding::DeltaZigzagVarint),
            "rice" => Some(Encoding::Rice),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    #[error("sample {index} ({value}) does not fit in 16 bits")]
    OutOfRange { index: usize, value: i64 },
    #[error("data ends after {got} of {want} samples")]
    Truncated { got: usize, want: usize },
    #[error("{extra} bytes after the last sample")]
    Trailing { extra: usize },
    #[error("varint of sample {index} is longer than 10 bytes or overflows")]
    BadVarint { index: usize },
    #[error("rice header: predictor order {order} or parameter {k} out of range")]
    BadHeader { order: u8, k: u8 },
}

/// Packs samples.
pub fn pack(samples: &[i32], enc: Encoding) -> Result<Vec<u8>, PackError> {
    match enc {
        Encoding::I16Le => {
            let mut out = Vec::with_capacity(samples.len() * 2);
            for (index, &s) in samples.iter().enumerate() {
                let v = i16::try_from(s).map_err(|_| PackError::OutOfRange { index, value: i64::from(s) })?;
                out.extend_from_slice(&v.to_le_bytes());
            }
            Ok(out)
        }
        Encoding::I32Le => Ok(samples.iter().flat_map(|s| s.to_le_bytes()).collect()),
        Encoding::DeltaZigzagVarint => {
            let mut out = Vec::with_capacity(samples.len() + samples.len() / 2);
            let mut prev = 0i64;
            for &s in samples {
                let d = i64::from(s) - prev;
                prev = i64::from(s);
                write_varint(&mut out, ((d << 1) ^ (d >> 63)) as u64);
            }
            Ok(out)
        }
        Encoding::Rice => Ok(super::rice::pack(samples)),
    }
}

/// Appends `z` as an unsigned LEB128 varint.
pub(crate) fn write_varint(out: &mut Vec<u8>, mut z: u64) {
    loop {
        let byte = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Reads an unsigned LEB128 varint at `pos`, moving `pos` past it. `None` when the data ends
/// first or the varint is longer than 64 bits.
pub(crate) fn read_varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let mut z = 0u64;
    let mut shift = 0;
    loop {
        let byte = *data.get(*pos)?;
        *pos += 1;
        if shift == 63 && byte > 1 || shift > 63 {
            return None;
        }
        z |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(z);
        }
        shift += 7;
    }
}

/// Unpacks exactly `n` samples.
pub fn unpack(data: &[u8], enc: Encoding, n: usize) -> Result<Vec<i32>, PackError> {
    let fixed = |width: usize| -> Result<(), PackError> {
        let want = n.saturating_mul(width);
        if data.len() < want {
            return Err(PackError::Truncated { got: data.len() / width, want: n });
        }
        if data.len() > want {
            return Err(PackError::Trailing { extra: data.len() - want });
        }
        Ok(())
    };
    match enc {
        Encoding::I16Le => {
            fixed(2)?;
            Ok(data.chunks_exact(2).map(|c| i32::from(i16::from_le_bytes([c[0], c[1]]))).collect())
        }
        Encoding::I32Le => {
            fixed(4)?;
            Ok(data.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        }
        Encoding::DeltaZigzagVarint => {
            let mut out = Vec::with_capacity(n.min(data.len()));
            let mut pos = 0;
            let mut prev = 0i64;
            for index in 0..n {
                let z = read_varint(data, &mut pos).ok_or(if pos >= data.len() {
                    PackError::Truncated { got: index, want: n }
                } else {
                    PackError::BadVarint { index }
                })?;
                let d = (z >> 1) as i64 ^ -((z & 1) as i64);
                let s = prev.checked_add(d).ok_or(PackError::BadVarint { index })?;
                let v = i32::try_from(s).map_err(|_| PackError::OutOfRange { index, value: s })?;
                out.push(v);
                prev = s;
            }
            if pos < data.len() {
                return Err(PackError::Trailing { extra: data.len() - pos });
            }
            Ok(out)
        }
        Encoding::Rice => super::rice::unpack(data, n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [Encoding; 4] = [Encoding::I16Le, Encoding::I32Le, Encoding::DeltaZigzagVarint, Encoding::Rice];

    #[test]
    fn small_deltas_take_one_byte_each() {
        let samples = [-3, -2, 0, 5, 68, 4];
        let packed = pack(&samples, Encoding::DeltaZigzagVarint).unwrap();
        // deltas -3, 1, 2, 5, 63, -64 -> zig-zag 5, 2, 4, 10, 126, 127: one byte each
        assert_eq!(packed, [5, 2, 4, 10, 126, 127]);
        assert_eq!(unpack(&packed, Encoding::DeltaZigzagVarint, 6).unwrap(), samples);
    }

    #[test]
    fn extreme_swings_round_trip() {
        let samples = [i32::MIN, i32::MAX, i32::MIN, 0, i32::MAX, -1];
        for enc in [Encoding::I32Le, Encoding::DeltaZigzagVarint, Encoding::Rice] {
            assert_eq!(unpack(&pack(&samples, enc).unwrap(), enc, samples.len()).unwrap(), samples, "{enc:?}");
        }
    }

    #[test]
    fn bad_data_is_refused_not_guessed() {
        assert_eq!(pack(&[40_000], Encoding::I16Le), Err(PackError::OutOfRange { index: 0, value: 40_000 }));
        let packed = pack(&[1, 2, 3], Encoding::DeltaZigzagVarint).unwrap();
        assert_eq!(unpack(&packed, Encoding::DeltaZigzagVarint, 4), Err(PackError::Truncated { got: 3, want: 4 }));
        assert_eq!(unpack(&packed, Encoding::DeltaZigzagVarint, 2), Err(PackError::Trailing { extra: 1 }));
        assert!(matches!(unpack(&[0xff; 11], Encoding::DeltaZigzagVarint, 1), Err(PackError::BadVarint { .. })));
        assert_eq!(unpack(&[0, 0, 0], Encoding::I16Le, 1), Err(PackError::Trailing { extra: 1 }));
        for name in ["i16le", "i32le", "dzv", "rice"] {
            assert_eq!(Encoding::from_name(name).map(Encoding::name), Some(name));
        }
    }

    proptest! {
        #[test]
        fn every_packing_is_lossless(samples in proptest::collection::vec(any::<i32>(), 0..300)) {
            for enc in [Encoding::I32Le, Encoding::DeltaZigzagVarint, Encoding::Rice] {
                prop_assert_eq!(unpack(&pack(&samples, enc).unwrap(), enc, samples.len()).unwrap(), samples.clone());
            }
        }

        #[test]
        fn sixteen_bit_samples_round_trip_in_every_packing(samples in proptest::collection::vec(any::<i16>(), 0..300)) {
            let samples: Vec<i32> = samples.into_iter().map(i32::from).collect();
            for enc in ALL {
                prop_assert_eq!(unpack(&pack(&samples, enc).unwrap(), enc, samples.len()).unwrap(), samples.clone());
            }
        }

        #[test]
        fn smooth_signals_round_trip(start in any::<i32>(), steps in proptest::collection::vec(-40i32..40, 0..400)) {
            let mut v = i64::from(start);
            let samples: Vec<i32> = steps.iter().map(|d| { v = (v + i64::from(*d)).clamp(i32::MIN.into(), i32::MAX.into()); v as i32 }).collect();
            for enc in [Encoding::I32Le, Encoding::DeltaZigzagVarint, Encoding::Rice] {
                prop_assert_eq!(unpack(&pack(&samples, enc).unwrap(), enc, samples.len()).unwrap(), samples.clone());
            }
        }

        #[test]
        fn unpacking_never_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..64), n in 0usize..80) {
            for enc in ALL {
                let _ = unpack(&data, enc, n);
            }
        }
    }
}
