//! Binary PCM frame payloads (the framer has checked sync, length and CRC): an optional 32-bit
//! little-endian sample counter (the index of the frame's first sample, wrapping at 2^32), then
//! rows of `channels` interleaved samples in the profile's sample format.

use super::{DecodeError, WaveFrame};
use crate::profile::{PcmSpec, SampleFormat};

pub fn decode(spec: &PcmSpec, payload: &[u8]) -> Result<WaveFrame, DecodeError> {
    let (counter, data) = if spec.counter {
        let Some((c, rest)) = payload.split_first_chunk::<4>() else {
            return Err(DecodeError::new("pcm-frame", "payload shorter than its sample counter"));
        };
        (Some(u64::from(u32::from_le_bytes(*c))), rest)
    } else {
        (None, payload)
    };
    let row = spec.channels * spec.sample.width();
    if data.is_empty() || data.len() % row != 0 {
        return Err(DecodeError::new(
            "pcm-frame",
            format!("{} sample bytes are not whole rows of {} channels", data.len(), spec.channels),
        ));
    }
    let mut samples = Vec::with_capacity(data.len() / row * spec.sources.0.len());
    for r in data.chunks_exact(row) {
        for &s in &spec.sources.0 {
            let at = s * spec.sample.width();
            samples.push(match spec.sample {
                SampleFormat::I16Le => i32::from(i16::from_le_bytes([r[at], r[at + 1]])),
                SampleFormat::I32Le => i32::from_le_bytes([r[at], r[at + 1], r[at + 2], r[at + 3]]),
            });
        }
    }
    Ok(WaveFrame { counter, samples })
}

/// A PCM payload with a counter and 16-bit samples (simulators and tests).
pub fn encode_i16(counter: u32, samples: &[i16]) -> Vec<u8> {
    let mut out = counter.to_le_bytes().to_vec();
    out.extend(samples.iter().flat_map(|s| s.to_le_bytes()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::SampleSources;

    #[test]
    fn interleaved_rows_and_the_counter() {
        let spec = PcmSpec { channels: 2, sample: SampleFormat::I16Le, counter: true, sources: SampleSources(vec![1]) };
        let f = decode(&spec, &encode_i16(70_000, &[1, -1, 2, -2, 3, i16::MIN])).unwrap();
        assert_eq!(f, WaveFrame { counter: Some(70_000), samples: vec![-1, -2, i32::from(i16::MIN)] });
        assert!(decode(&spec, &encode_i16(1, &[1, 2, 3])).is_err());
        assert!(decode(&spec, &[1, 2]).is_err());
        assert!(decode(&spec, &encode_i16(1, &[])).is_err());
    }
}
