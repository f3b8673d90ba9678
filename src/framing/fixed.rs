//! Fixed-length packets with a start byte and an end byte from a range (OpenBCI Cyton: 33 bytes,
//! `0xA0` ... `0xC0..=0xC6`). A start byte whose packet does not end in the range is a false
//! start: the framer moves on one byte and keeps looking, and reports what it skipped.

use super::{Buffer, FrameError, Framer};
use std::ops::RangeInclusive;

#[derive(Debug)]
pub struct FixedFramer {
    buf: Buffer,
    len: usize,
    start: u8,
    end: RangeInclusive<u8>,
}

impl FixedFramer {
    pub fn new(len: usize, start: u8, end: RangeInclusive<u8>) -> Self {
        Self { buf: Buffer::default(), len: len.max(2), start, end }
    }
}

impl Framer for FixedFramer {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.push(bytes);
    }

    fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let data = self.buf.data();
        let mut i = 0;
        while i < data.len() {
            if data[i] != self.start {
                i += 1;
                continue;
            }
            if i + self.len > data.len() {
                break;
            }
            if self.end.contains(&data[i + self.len - 1]) {
                if i > 0 {
                    self.buf.consume(i);
                    return Err(FrameError::Garbage { bytes: i });
                }
                let frame = data[..self.len].to_vec();
                self.buf.consume(self.len);
                return Ok(Some(frame));
            }
            i += 1;
        }
        if i > 0 {
            self.buf.consume(i);
            return Err(FrameError::Garbage { bytes: i });
        }
        Ok(None)
    }

    fn finish(&mut self) -> Option<FrameError> {
        self.buf.finish(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::drain;

    fn packet(counter: u8) -> Vec<u8> {
        let mut p = vec![0xA0, counter];
        p.extend([0xA0; 30]);
        p.push(0xC0);
        p
    }

    #[test]
    fn packets_split_anywhere_come_out_whole() {
        let stream: Vec<u8> = (0..5).flat_map(packet).collect();
        for split in 1..stream.len() {
            let mut f = FixedFramer::new(33, 0xA0, 0xC0..=0xC6);
            f.push(&stream[..split]);
            let mut got = drain(&mut f);
            f.push(&stream[split..]);
            got.extend(drain(&mut f));
            let want: Vec<_> = (0..5).map(|c| Ok(packet(c))).collect();
            assert_eq!(got, want, "split at {split}");
        }
    }

    #[test]
    fn junk_and_a_broken_packet_are_skipped_and_counted() {
        let mut stream = vec![1, 2, 3];
        stream.extend(packet(0));
        let mut broken = packet(1);
        broken[32] = 0x00;
        stream.extend(&broken);
        stream.extend(packet(2));
        let mut f = FixedFramer::new(33, 0xA0, 0xC0..=0xC6);
        f.push(&stream);
        let got = drain(&mut f);
        assert_eq!(got[0], Err(FrameError::Garbage { bytes: 3 }));
        assert_eq!(got[1], Ok(packet(0)));
        assert_eq!(got[2], Err(FrameError::Garbage { bytes: 33 }));
        assert_eq!(got[3], Ok(packet(2)));
        assert_eq!(got.len(), 4);
        assert_eq!(f.finish(), None);
    }
}
