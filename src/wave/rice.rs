//! `rice`: fixed linear prediction + Rice codes (the scheme of Shorten and FLAC's fixed
//! predictors), for channels whose neighbouring samples are alike. Bytes:
//!
//! 1. `order` (one byte, 0..=3): the predictor. Order 0 predicts 0, 1 predicts `s[i-1]`,
//!    2 predicts `2 s[i-1] - s[i-2]`, 3 predicts `3 s[i-1] - 3 s[i-2] + s[i-3]`.
//! 2. `k` (one byte, 0..=32): the Rice parameter.
//! 3. The first `min(order, n)` samples, each zig-zag + LEB128 varint (as in `dzv`, without the delta).
//! 4. A bit stream, most significant bit of each byte first, for every other sample: its residual
//!    `r = s[i] - prediction` (computed in 64 bits) zig-zagged to `z = (r << 1) ^ (r >> 63)`, then
//!    `q = z >> k` written as `q` one-bits and a zero-bit, followed by the `k` low bits of `z`.
//!    When `q >= 32` it is written instead as 32 one-bits followed by all 64 bits of `z`.
//!    The last byte is padded with zero bits.
//!
//! The encoder tries every order and the best `k` for each, and keeps the shortest.

use super::packing::{read_varint, write_varint, PackError};

const MAX_ORDER: usize = 3;
const MAX_K: u32 = 32;
const ESCAPE: u64 = 32;

fn zigzag(r: i64) -> u64 {
    ((r << 1) ^ (r >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    (z >> 1) as i64 ^ -((z & 1) as i64)
}

fn predict(order: usize, s: &[i64], i: usize) -> i64 {
    match order {
        0 => 0,
        1 => s[i - 1],
        2 => 2 * s[i - 1] - s[i - 2],
        _ => 3 * s[i - 1] - 3 * s[i - 2] + s[i - 3],
    }
}

/// Bits one residual takes with parameter `k`.
fn code_bits(z: u64, k: u32) -> u64 {
    let q = if k >= 64 { 0 } else { z >> k };
    if q >= ESCAPE {
        ESCAPE + 64
    } else {
        q + 1 + u64::from(k)
    }
}

pub fn pack(samples: &[i32]) -> Vec<u8> {
    let s: Vec<i64> = samples.iter().map(|&v| i64::from(v)).collect();
    let mut best: Option<(u64, usize, u32)> = None;
    for order in 0..=MAX_ORDER {
        if order > 0 && s.len() <= order {
            break;
        }
        let zs: Vec<u64> = (order.min(s.len())..s.len()).map(|i| zigzag(s[i] - predict(order, &s, i))).collect();
        let mean = if zs.is_empty() { 0 } else { zs.iter().map(|&z| u128::from(z)).sum::<u128>() / zs.len() as u128 };
        let guess = (128 - mean.leading_zeros()).min(MAX_K);
        for k in guess.saturating_sub(2)..=(guess + 1).min(MAX_K) {
            let bits: u64 = zs.iter().map(|&z| code_bits(z, k)).sum();
            let warm: u64 = s[..order.min(s.len())].iter().map(|&v| 8 * varint_len(zigzag(v))).sum();
            let total = bits.div_ceil(8) * 8 + warm;
            if best.is_none_or(|(b, _, _)| total < b) {
                best = Some((total, order, k));
            }
        }
    }
    let (_, order, k) = best.unwrap_or((0, 0, 0));
    let mut out = vec![order as u8, k as u8];
    for &v in &s[..order.min(s.len())] {
        write_varint(&mut out, zigzag(v));
    }
    let mut bits = BitWriter { out, acc: 0, used: 0 };
    for i in order.min(s.len())..s.len() {
        let z = zigzag(s[i] - predict(order, &s, i));
        let q = if k >= 64 { 0 } else { z >> k };
        if q >= ESCAPE {
            bits.ones(ESCAPE);
            bits.write(z, 64);
        } else {
            bits.ones(q);
            bits.write(0, 1);
            bits.write(z, k);
        }
    }
    bits.finish()
}

fn varint_len(mut z: u64) -> u64 {
    let mut n = 1;
    while z >= 0x80 {
        z >>= 7;
        n += 1;
    }
    n
}

pub fn unpack(data: &[u8], n: usize) -> Result<Vec<i32>, PackError> {
    let (&order, &k) = match data {
        [o, k, ..] => (o, k),
        _ if n == 0 && data.is_empty() => return Ok(Vec::new()),
        _ => return Err(PackError::Truncated { got: 0, want: n }),
    };
    let (order, k) = (usize::from(order), u32::from(k));
    if order > MAX_ORDER || k > MAX_K {
        return Err(PackError::BadHeader { order: order as u8, k: k as u8 });
    }
    let mut s: Vec<i64> = Vec::with_capacity(n.min(data.len() * 8));
    let mut pos = 2;
    for index in 0..order.min(n) {
        let z = read_varint(data, &mut pos).ok_or(if pos >= data.len() {
            PackError::Truncated { got: index, want: n }
        } else {
            PackError::BadVarint { index }
        })?;
        s.push(unzigzag(z));
    }
    let mut bits = BitReader { data, pos: pos * 8 };
    for index in s.len()..n {
        let truncated = PackError::Truncated { got: index, want: n };
        let mut q = 0;
        while q < ESCAPE {
            match bits.bit() {
                Some(1) => q += 1,
                Some(_) => break,
                None => return Err(truncated),
            }
        }
        let z = if q == ESCAPE { bits.read(64).ok_or(truncated)? } else { (q << k) | bits.read(k).ok_or(truncated)? };
        let r = unzigzag(z);
        let v = predict(order, &s, index).checked_add(r).ok_or(PackError::BadVarint { index })?;
        i32::try_from(v).map_err(|_| PackError::OutOfRange { index, value: v })?;
        s.push(v);
    }
    let used = bits.pos.div_ceil(8);
    if used < data.len() {
        return Err(PackError::Trailing { extra: data.len() - used });
    }
    if bits.pos % 8 != 0 && data[bits.pos / 8] & (0xff >> (bits.pos % 8)) != 0 {
        return Err(PackError::Trailing { extra: 0 });
    }
    Ok(s.into_iter().map(|v| v as i32).collect())
}

struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    used: u32,
}

impl BitWriter {
    fn write(&mut self, value: u64, bits: u32) {
        for i in (0..bits).rev() {
            self.acc = (self.acc << 1) | ((value >> i) & 1);
            self.used += 1;
            if self.used == 8 {
                self.out.push(self.acc as u8);
                self.acc = 0;
                self.used = 0;
            }
        }
    }

    fn ones(&mut self, count: u64) {
        for _ in 0..count {
            self.write(1, 1);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.used > 0 {
            self.out.push((self.acc << (8 - self.used)) as u8);
        }
        self.out
    }
}

struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl BitReader<'_> {
    fn bit(&mut self) -> Option<u8> {
        let byte = *self.data.get(self.pos / 8)?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(b)
    }

    fn read(&mut self, bits: u32) -> Option<u64> {
        let mut v = 0u64;
        for _ in 0..bits {
            v = (v << 1) | u64::from(self.bit()?);
        }
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_straight_line_is_a_second_order_zero_residual() {
        let samples: Vec<i32> = (0..100).map(|i| 7 * i - 300).collect();
        let packed = pack(&samples);
        // order 2 (exact for a line), k = 0, two 2-byte warm-up varints (-300, -293), then 98
        // one-bit codes.
        assert_eq!(packed[0], 2);
        assert_eq!(packed[1], 0);
        assert_eq!(packed.len(), 2 + 2 + 2 + 98usize.div_ceil(8));
        assert_eq!(unpack(&packed, 100).unwrap(), samples);
    }

    #[test]
    fn hand_checked_bits() {
        // order 1, k 1: warm-up 3 -> zigzag 6; residuals 1, -1, 4 -> z 2, 1, 8
        // z=2: q=1 "10" low "0"; z=1: q=0 "0" "1"; z=8: q=4 "11110" "0" -> 100 01 11110 0
        // -> 1000 1111 | 100 (then zero padding)
        let data = [1u8, 1, 6, 0b1000_1111, 0b1000_0000];
        assert_eq!(unpack(&data, 4).unwrap(), [3, 4, 3, 7]);
        assert_eq!(unpack(&data[..4], 4), Err(PackError::Truncated { got: 3, want: 4 }));
        let mut nonzero_pad = data;
        nonzero_pad[4] = 0b1000_0001;
        assert!(unpack(&nonzero_pad, 4).is_err());
        assert_eq!(unpack(&[4, 0], 1), Err(PackError::BadHeader { order: 4, k: 0 }));
    }
}
