//! Text lines ended by CR, LF or CR LF. Empty lines are passed over.

use super::{Buffer, FrameError, Framer};

#[derive(Debug)]
pub struct LineFramer {
    buf: Buffer,
    max_len: usize,
    /// Bytes of an overlong line dropped so far; the rest is dropped up to its end.
    skipping: Option<usize>,
}

impl LineFramer {
    pub fn new(max_len: usize) -> Self {
        Self { buf: Buffer::default(), max_len, skipping: None }
    }
}

fn is_eol(b: u8) -> bool {
    b == b'\n' || b == b'\r'
}

impl Framer for LineFramer {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.push(bytes);
    }

    fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        loop {
            let data = self.buf.data();
            let eol = data.iter().position(|&b| is_eol(b));
            if let Some(dropped) = self.skipping {
                match eol {
                    Some(i) => {
                        self.buf.consume(i + 1);
                        self.skipping = None;
                        return Err(FrameError::Oversize { bytes: dropped + i, limit: self.max_len });
                    }
                    None => {
                        let n = data.len();
                        self.buf.consume(n);
                        self.skipping = Some(dropped + n);
                        return Ok(None);
                    }
                }
            }
            match eol {
                Some(0) => {
                    self.buf.consume(1);
                    continue;
                }
                Some(i) if i > self.max_len => {
                    self.buf.consume(i + 1);
                    return Err(FrameError::Oversize { bytes: i, limit: self.max_len });
                }
                Some(i) => {
                    let line = data[..i].to_vec();
                    self.buf.consume(i + 1);
                    return Ok(Some(line));
                }
                None if data.len() > self.max_len => {
                    let n = data.len();
                    self.buf.consume(n);
                    self.skipping = Some(n);
                    continue;
                }
                None => return Ok(None),
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

    fn lines(f: &mut LineFramer) -> Vec<Result<Vec<u8>, FrameError>> {
        crate::framing::drain(f)
    }

    #[test]
    fn cr_lf_and_crlf_all_end_a_line() {
        let mut f = LineFramer::new(64);
        f.push(b"a\r\nb\nc\rd");
        assert_eq!(lines(&mut f), vec![Ok(b"a".to_vec()), Ok(b"b".to_vec()), Ok(b"c".to_vec())]);
        f.push(b"\n");
        assert_eq!(lines(&mut f), vec![Ok(b"d".to_vec())]);
    }

    #[test]
    fn an_overlong_line_is_dropped_and_the_next_line_kept() {
        let mut f = LineFramer::new(4);
        f.push(b"0123456789");
        assert_eq!(lines(&mut f), vec![]);
        f.push(b"ab\nok\n");
        assert_eq!(lines(&mut f), vec![Err(FrameError::Oversize { bytes: 12, limit: 4 }), Ok(b"ok".to_vec())]);
    }
}
