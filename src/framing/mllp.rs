//! HL7 Minimal Lower Layer Protocol framing (HL7 v2.5.1 Implementation Guide: Transport
//! Specification MLLP, release 2): `<VT=0x0B> message <FS=0x1C><CR=0x0D>`.

use super::{Buffer, FrameError, Framer};

pub const MLLP_START: u8 = 0x0B;
pub const MLLP_END: [u8; 2] = [0x1C, 0x0D];

/// Wraps a message in an MLLP frame.
pub fn mllp_wrap(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 3);
    out.push(MLLP_START);
    out.extend_from_slice(message);
    out.extend_from_slice(&MLLP_END);
    out
}

#[derive(Debug)]
pub struct MllpFramer {
    buf: Buffer,
    max_len: usize,
    /// Inside an oversized frame being skipped up to its end.
    skipping: Option<usize>,
}

impl MllpFramer {
    pub fn new(max_len: usize) -> Self {
        Self { buf: Buffer::default(), max_len, skipping: None }
    }
}

impl Framer for MllpFramer {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.push(bytes);
    }

    fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        loop {
            let data = self.buf.data();
            if let Some(dropped) = self.skipping {
                // Drop the rest of an oversized frame, up to its end or the next start.
                match data.iter().position(|&b| b == MLLP_START || b == MLLP_END[0]) {
                    Some(i) => {
                        let ended = data[i] == MLLP_END[0];
                        let consumed = if ended { i + 1 } else { i };
                        self.buf.consume(consumed);
                        self.skipping = None;
                        return Err(FrameError::Oversize { bytes: dropped + consumed, limit: self.max_len });
                    }
                    None => {
                        let n = data.len();
                        self.buf.consume(n);
                        self.skipping = Some(dropped + n);
                        return Ok(None);
                    }
                }
            }
            if data.is_empty() {
                return Ok(None);
            }
            if data[0] != MLLP_START {
                let junk = data.iter().position(|&b| b == MLLP_START).unwrap_or(data.len());
                // A lone CR or LF between frames is common and harmless.
                let harmless = data[..junk].iter().all(|&b| b == b'\r' || b == b'\n');
                self.buf.consume(junk);
                if harmless {
                    continue;
                }
                return Err(FrameError::Garbage { bytes: junk });
            }
            let body = &data[1..];
            let end = body.windows(2).position(|w| w == MLLP_END);
            let restart = body.iter().position(|&b| b == MLLP_START);
            // The frame ends at `end` unless a new start byte comes first.
            match (end.filter(|&e| restart.is_none_or(|r| r > e)), restart) {
                (Some(e), _) => {
                    if e > self.max_len {
                        self.buf.consume(e + 3);
                        return Err(FrameError::Oversize { bytes: e + 3, limit: self.max_len });
                    }
                    let frame = body[..e].to_vec();
                    self.buf.consume(e + 3);
                    return Ok(Some(frame));
                }
                (None, Some(r)) => {
                    // A new start byte before this frame's end: the frame was cut short.
                    self.buf.consume(r + 1);
                    return Err(FrameError::Truncated { bytes: r + 1 });
                }
                (None, None) => {
                    if body.len() > self.max_len + 1 {
                        let n = data.len();
                        self.buf.consume(n);
                        self.skipping = Some(n);
                        continue;
                    }
                    return Ok(None);
                }
            }
        }
    }

    fn finish(&mut self) -> Option<FrameError> {
        self.buf.finish(self.skipping.take().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(f: &mut MllpFramer) -> Vec<Result<Vec<u8>, FrameError>> {
        crate::framing::drain(f)
    }

    #[test]
    fn a_frame_split_across_reads_comes_out_whole() {
        let mut f = MllpFramer::new(100);
        let wire = mllp_wrap(b"MSH|^~\\&|A\rOBX|1\r");
        f.push(&wire[..5]);
        assert_eq!(frames(&mut f), vec![]);
        f.push(&wire[5..]);
        assert_eq!(frames(&mut f), vec![Ok(b"MSH|^~\\&|A\rOBX|1\r".to_vec())]);
    }

    #[test]
    fn junk_before_a_frame_is_reported_and_the_frame_still_delivered() {
        let mut f = MllpFramer::new(100);
        f.push(b"xyz");
        f.push(&mllp_wrap(b"M1"));
        assert_eq!(frames(&mut f), vec![Err(FrameError::Garbage { bytes: 3 }), Ok(b"M1".to_vec())]);
    }

    #[test]
    fn a_frame_cut_short_by_a_new_start_is_truncated_and_the_next_one_kept() {
        let mut f = MllpFramer::new(100);
        f.push(b"\x0bMSH|half");
        f.push(&mllp_wrap(b"M2"));
        assert_eq!(frames(&mut f), vec![Err(FrameError::Truncated { bytes: 9 }), Ok(b"M2".to_vec())]);
    }

    #[test]
    fn an_unterminated_frame_over_the_limit_is_dropped_without_growing_the_buffer() {
        let mut f = MllpFramer::new(16);
        f.push(b"\x0b");
        for _ in 0..100 {
            f.push(&[b'A'; 64]);
            assert_eq!(f.next_frame(), Ok(None));
            assert!(f.buf.data().len() <= 64 + 17);
        }
        f.push(b"\x1c\x0d");
        f.push(&mllp_wrap(b"ok"));
        let out = frames(&mut f);
        assert!(matches!(out[0], Err(FrameError::Oversize { limit: 16, .. })), "{out:?}");
        assert_eq!(out[1..], [Ok(b"ok".to_vec())]);
    }

    #[test]
    fn trailing_newlines_between_frames_are_not_garbage() {
        let mut f = MllpFramer::new(100);
        f.push(&mllp_wrap(b"A"));
        f.push(b"\r\n");
        f.push(&mllp_wrap(b"B"));
        assert_eq!(frames(&mut f), vec![Ok(b"A".to_vec()), Ok(b"B".to_vec())]);
    }

    #[test]
    fn finish_reports_a_partial_frame() {
        let mut f = MllpFramer::new(100);
        f.push(b"\x0bMSH");
        assert_eq!(frames(&mut f), vec![]);
        assert_eq!(f.finish(), Some(FrameError::Truncated { bytes: 4 }));
    }
}
