//! OpenBCI Cyton data packets (OpenBCI "Cyton Data Format"): 33 bytes, `0xA0`, a sample number
//! (0..=255, wrapping), 8 channels of 24-bit big-endian two's-complement ADS1299 counts, 6 aux
//! bytes, and a footer `0xC0..=0xC6`. The physical scale is the profile's channel gain (for the
//! Cyton's ADS1299 at gain 24: 4.5 V / 24 / (2^23 - 1) = 0.02235 uV per count).

use super::{DecodeError, WaveFrame};
use crate::profile::SampleSources;

/// Sign-extends a 24-bit big-endian count.
pub fn i24_be(b: [u8; 3]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], 0]) >> 8
}

pub fn decode(sources: &SampleSources, frame: &[u8]) -> Result<WaveFrame, DecodeError> {
    if frame.len() != 33 || frame[0] != 0xA0 || !(0xC0..=0xC6).contains(&frame[32]) {
        return Err(DecodeError::new("cyton-packet", format!("not a 33-byte Cyton packet ({} bytes)", frame.len())));
    }
    let counts: Vec<i32> = (0..8).map(|c| i24_be([frame[2 + 3 * c], frame[3 + 3 * c], frame[4 + 3 * c]])).collect();
    Ok(WaveFrame { counter: Some(u64::from(frame[1])), samples: sources.0.iter().map(|&s| counts[s]).collect() })
}

/// A Cyton packet carrying these counts (simulators and tests); counts are cut to 24 bits.
pub fn encode(sample_number: u8, counts: &[i32]) -> [u8; 33] {
    let mut p = [0u8; 33];
    p[0] = 0xA0;
    p[1] = sample_number;
    for (c, v) in counts.iter().take(8).enumerate() {
        p[2 + 3 * c..5 + 3 * c].copy_from_slice(&v.to_be_bytes()[1..]);
    }
    p[32] = 0xC0;
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_four_bit_counts_are_sign_extended() {
        // Values from the OpenBCI data-format document's conversion example.
        assert_eq!(i24_be([0x7f, 0xff, 0xff]), 8_388_607);
        assert_eq!(i24_be([0xff, 0xff, 0xff]), -1);
        assert_eq!(i24_be([0x80, 0x00, 0x00]), -8_388_608);
        assert_eq!(i24_be([0x00, 0x01, 0x00]), 256);
    }

    #[test]
    fn a_packet_round_trips_through_the_chosen_channels() {
        let counts = [1, -2, 3, -4, 8_388_607, -8_388_608, 0, 42];
        let p = encode(200, &counts);
        let f = decode(&SampleSources(vec![0, 4, 5, 7]), &p).unwrap();
        assert_eq!(f.counter, Some(200));
        assert_eq!(f.samples, [1, 8_388_607, -8_388_608, 42]);
        assert!(decode(&SampleSources(vec![0]), &p[..32]).is_err());
    }
}
