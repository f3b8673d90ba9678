//! Binary frames: a sync word, a 16-bit little-endian payload length, the payload, and a
//! CRC-16/CCITT-FALSE (little-endian) over the length field and the payload. A frame whose CRC
//! does not match is dropped whole (`frame-crc`); a length above the limit is a false sync and
//! the framer looks for the next one.

use super::crc::crc16_ccitt_false;
use super::{Buffer, FrameError, Framer};

#[derive(Debug)]
pub struct SyncLengthFramer {
    buf: Buffer,
    sync: Vec<u8>,
    max_len: usize,
}

impl SyncLengthFramer {
    pub fn new(sync: Vec<u8>, max_len: usize) -> Self {
        Self { buf: Buffer::default(), sync, max_len }
    }

    fn find_sync(&self, data: &[u8]) -> Option<usize> {
        data.windows(self.sync.len()).position(|w| w == self.sync)
    }
}

/// Wraps a payload in a frame (simulators and tests).
pub fn sync_length_wrap(sync: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = sync.to_vec();
    let len = u16::try_from(payload.len()).expect("payload fits a 16-bit length");
    out.extend(len.to_le_bytes());
    out.extend(payload);
    let crc = crc16_ccitt_false(&out[sync.len()..]);
    out.extend(crc.to_le_bytes());
    out
}

impl Framer for SyncLengthFramer {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.push(bytes);
    }

    fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let data = self.buf.data();
        let s = self.sync.len();
        let Some(at) = self.find_sync(data) else {
            // Keep what could be the start of a sync word.
            let keep = (1..s).rev().find(|&k| data.len() >= k && data.ends_with(&self.sync[..k])).unwrap_or(0);
            let junk = data.len() - keep;
            self.buf.consume(junk);
            return if junk > 0 { Err(FrameError::Garbage { bytes: junk }) } else { Ok(None) };
        };
        if at > 0 {
            self.buf.consume(at);
            return Err(FrameError::Garbage { bytes: at });
        }
        let Some(len_bytes) = data.get(s..s + 2) else { return Ok(None) };
        let len = usize::from(u16::from_le_bytes([len_bytes[0], len_bytes[1]]));
        if len > self.max_len {
            self.buf.consume(1);
            return Err(FrameError::Oversize { bytes: 1, limit: self.max_len });
        }
        let total = s + 2 + len + 2;
        if data.len() < total {
            return Ok(None);
        }
        let crc = u16::from_le_bytes([data[total - 2], data[total - 1]]);
        if crc != crc16_ccitt_false(&data[s..total - 2]) {
            self.buf.consume(total);
            return Err(FrameError::Crc { bytes: total });
        }
        let payload = data[s + 2..total - 2].to_vec();
        self.buf.consume(total);
        Ok(Some(payload))
    }

    fn finish(&mut self) -> Option<FrameError> {
        self.buf.finish(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::drain;
    use proptest::prelude::*;

    const SYNC: [u8; 2] = [0xA5, 0x5A];

    #[test]
    fn frames_split_anywhere_come_out_whole() {
        let payloads: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; 10 + usize::from(i)]).collect();
        let stream: Vec<u8> = payloads.iter().flat_map(|p| sync_length_wrap(&SYNC, p)).collect();
        for split in 1..stream.len() {
            let mut f = SyncLengthFramer::new(SYNC.to_vec(), 4096);
            f.push(&stream[..split]);
            let mut got = drain(&mut f);
            f.push(&stream[split..]);
            got.extend(drain(&mut f));
            assert_eq!(got, payloads.iter().cloned().map(Ok).collect::<Vec<_>>(), "split at {split}");
        }
    }

    #[test]
    fn a_corrupt_frame_is_dropped_and_the_next_one_kept() {
        let mut bad = sync_length_wrap(&SYNC, &[1, 2, 3, 4]);
        bad[5] ^= 0x40;
        let mut stream = vec![0x00, 0xA5];
        stream.extend(&bad);
        stream.extend(sync_length_wrap(&SYNC, &[9, 9]));
        let mut f = SyncLengthFramer::new(SYNC.to_vec(), 4096);
        f.push(&stream);
        assert_eq!(
            drain(&mut f),
            [Err(FrameError::Garbage { bytes: 2 }), Err(FrameError::Crc { bytes: bad.len() }), Ok(vec![9, 9])]
        );
    }

    #[test]
    fn a_length_over_the_limit_is_a_false_sync() {
        let mut stream = SYNC.to_vec();
        stream.extend([0xff, 0xff]);
        stream.extend(sync_length_wrap(&SYNC, &[7]));
        let mut f = SyncLengthFramer::new(SYNC.to_vec(), 1024);
        f.push(&stream);
        let got = drain(&mut f);
        assert_eq!(got.last(), Some(&Ok(vec![7])));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_every_byte_is_accounted(noise in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut f = SyncLengthFramer::new(SYNC.to_vec(), 256);
            f.push(&noise);
            let mut accounted = 0;
            for r in drain(&mut f) {
                accounted += match r { Ok(p) => p.len() + 6, Err(FrameError::Oversize { bytes, .. }) => bytes, Err(e) => e.bytes() };
            }
            accounted += f.finish().map(|e| e.bytes()).unwrap_or(0);
            prop_assert_eq!(accounted, noise.len());
        }
    }
}
