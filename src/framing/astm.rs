//! ASTM E1381 (CLSI LIS1-A) low-level protocol, the gateway as the receiver: the sender asks with
//! ENQ and gets ACK; frames `STX FN text ETB|ETX C1 C2 CR LF` follow, numbered 1..7,0,1.., each
//! answered ACK (good) or NAK (bad checksum, wrong frame number: the sender sends it again, up to
//! six times); EOT ends the transfer. The frame texts, joined, are the E1394 records separated by
//! CR; a message is complete at its terminator (`L`) record and is yielded as one frame (the
//! records, each ended by CR) for the `astm-e1394` decoder.
//!
//! Nothing is acknowledged before it is safe: the ACK of the frame that completes a message is
//! owed until the device task [`settles`](super::Framer::settle) it (readings committed: ACK; not
//! committed: NAK, the framer rewinds and the sender's retransmission completes the message again).
//! A retransmission of a frame already acknowledged (the sender missed the ACK) is acknowledged
//! again and not used twice. The receiver's 30 s timeout (no frame in a transfer) drops the
//! partial message back to neutral, as does a new ENQ; an EOT before the terminator record drops
//! it too (the sender aborted, and sends the message again).
//!
//! The gateway is a sender when it must ask ([`Framer::request`]: a host query for
//! `records.fetch`): from neutral it sends ENQ and waits for ACK (NAK: the device is busy, try again
//! in 10 s; an ENQ from the device at the same time wins, as LIS1-A gives the instrument priority,
//! and the query goes after its transfer), then each frame waits for its ACK (NAK: sent again, up
//! to six times), then EOT. 15 s without an answer ends the attempt with EOT.

use super::{Buffer, FrameError, Framer};
use std::time::{Duration, Instant};

pub const ENQ: u8 = 0x05;
pub const ACK: u8 = 0x06;
pub const NAK: u8 = 0x15;
pub const EOT: u8 = 0x04;
pub const STX: u8 = 0x02;
pub const ETX: u8 = 0x03;
pub const ETB: u8 = 0x17;
const CR: u8 = b'\r';
const LF: u8 = b'\n';

/// LIS1-A 6.5.2: the receiver waits 30 s for a frame or EOT before it goes back to neutral.
pub const RECEIVER_TIMEOUT: Duration = Duration::from_secs(30);
/// LIS1-A: a sender waits 15 s for the answer to its ENQ or frame.
pub const SENDER_TIMEOUT: Duration = Duration::from_secs(15);
/// LIS1-A: after a NAK to its ENQ, a sender waits at least 10 s before the next ENQ.
const BUSY_WAIT: Duration = Duration::from_secs(10);

/// The LIS1-A checksum: the sum of the bytes from the frame number through ETX or ETB, modulo 256,
/// as two upper-case hex characters.
pub fn checksum(span: &[u8]) -> [u8; 2] {
    let sum = span.iter().fold(0u8, |s, &b| s.wrapping_add(b));
    let hex = b"0123456789ABCDEF";
    [hex[usize::from(sum >> 4)], hex[usize::from(sum & 0x0f)]]
}

/// Largest frame text a sender writes (LIS1-A: 240 characters; a longer record goes in several).
pub const MAX_TEXT: usize = 240;

/// The frames of one message: each record ends with CR; records longer than [`MAX_TEXT`] are cut
/// into intermediate (ETB) frames; the last frame of the message is an end (ETX) frame.
pub fn frames(records: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut texts = Vec::new();
    for r in records {
        let mut rec = r.to_vec();
        rec.push(CR);
        texts.extend(rec.chunks(MAX_TEXT).map(<[u8]>::to_vec));
    }
    let n = texts.len();
    texts.iter().enumerate().map(|(i, t)| frame(((i + 1) % 8) as u8, t, i + 1 == n)).collect()
}

/// One frame as a sender writes it: `STX FN text ETB|ETX C1 C2 CR LF`.
pub fn frame(number: u8, text: &[u8], last: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 7);
    out.push(STX);
    out.push(b'0' + number % 8);
    out.extend_from_slice(text);
    out.push(if last { ETX } else { ETB });
    let sum = checksum(&out[1..]);
    out.extend_from_slice(&sum);
    out.extend_from_slice(&[CR, LF]);
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for ENQ; everything else is ignored.
    Neutral,
    /// In a transfer, expecting frame number `expect`.
    Receiving { expect: u8 },
    /// The gateway sent ENQ and waits for the device's ACK.
    Establishing { since: Instant },
    /// The gateway sent frame `frame` (attempt `tries`) of its message and waits for the ACK.
    Sending { frame: usize, tries: u32, since: Instant },
}

/// A message waiting for its owed answer, and how to rewind if it is refused.
#[derive(Debug)]
struct Owed {
    /// The frame number of the frame that completed it.
    number: u8,
    /// The message text before that frame.
    before: Vec<u8>,
}

#[derive(Debug)]
pub struct AstmFramer {
    buf: Buffer,
    /// Largest message (all its records) accepted, in bytes.
    max_len: usize,
    phase: Phase,
    /// The records received so far in this message.
    message: Vec<u8>,
    /// Dropped because the message grew past `max_len`, until its end.
    oversize: Option<usize>,
    /// ACK/NAK to send now.
    replies: Vec<u8>,
    owed: Option<Owed>,
    last_activity: Option<Instant>,
    /// Messages the gateway sends (as frames), the first one going out now.
    outgoing: std::collections::VecDeque<Vec<Vec<u8>>>,
    /// When to try the next ENQ after the device said it was busy.
    retry_at: Option<Instant>,
}

impl AstmFramer {
    pub fn new(max_len: usize) -> Self {
        Self {
            buf: Buffer::default(),
            max_len,
            phase: Phase::Neutral,
            message: Vec::new(),
            oversize: None,
            replies: Vec::new(),
            owed: None,
            last_activity: None,
            outgoing: Default::default(),
            retry_at: None,
        }
    }

    /// From neutral, with a message to send: ENQ.
    fn start_sending(&mut self, now: Instant) {
        if self.phase == Phase::Neutral && self.owed.is_none() && !self.outgoing.is_empty() {
            self.retry_at = None;
            self.replies.push(ENQ);
            self.phase = Phase::Establishing { since: now };
        }
    }

    /// The device acknowledged the last frame sent (or the ENQ): the next frame, or EOT.
    fn sent(&mut self, next: usize, now: Instant) {
        match self.outgoing.front().and_then(|m| m.get(next)) {
            Some(f) => {
                self.replies.extend_from_slice(f);
                self.phase = Phase::Sending { frame: next, tries: 1, since: now };
            }
            None => {
                self.replies.push(EOT);
                self.outgoing.pop_front();
                self.phase = Phase::Neutral;
                self.start_sending(now);
            }
        }
    }

    /// The current message cannot be sent: EOT, and it is dropped.
    fn give_up(&mut self, why: &'static str) -> FrameError {
        self.replies.push(EOT);
        let bytes = self.outgoing.pop_front().map_or(0, |m| m.iter().map(Vec::len).sum());
        self.phase = Phase::Neutral;
        FrameError::NotSent { bytes, why }
    }

    /// Drops a partial message; the error says what was lost.
    fn abandon(&mut self, why: &'static str) -> Option<FrameError> {
        let lost = std::mem::take(&mut self.message).len() + self.oversize.take().unwrap_or(0);
        (lost > 0).then_some(FrameError::Aborted { bytes: lost, why })
    }

    /// One whole frame at the start of the buffer: `Ok(Some(len))`, `Ok(None)` when more bytes
    /// are needed, `Err(len)` when it is cut short by a new STX (`len` bytes before it).
    fn whole_frame(data: &[u8], limit: usize) -> Result<Option<usize>, usize> {
        let end = data.iter().skip(1).position(|&b| matches!(b, ETX | ETB | STX | EOT | ENQ)).map(|i| i + 1);
        match end {
            Some(i) if data[i] == ETX || data[i] == ETB => {
                // C1 C2 CR LF follow the terminator.
                if data.len() < i + 5 {
                    return Ok(None);
                }
                Ok(Some(i + 5))
            }
            Some(i) => Err(i),
            None if data.len() > limit => Err(data.len()),
            None => Ok(None),
        }
    }

    /// Checks a whole frame and answers it; `Some` when it completes a message.
    fn take_frame(&mut self, f: &[u8], expect: u8) -> Result<Option<Vec<u8>>, FrameError> {
        let term = f.len() - 5;
        let given = [f[term + 1], f[term + 2]];
        let sum = checksum(&f[1..=term]);
        if !given.eq_ignore_ascii_case(&sum) || f[term + 3] != CR || f[term + 4] != LF {
            self.replies.push(NAK);
            return Err(FrameError::Checksum { bytes: f.len() });
        }
        let number = match f.get(1) {
            Some(d @ b'0'..=b'7') if term >= 2 => d - b'0',
            _ => {
                self.replies.push(NAK);
                return Err(FrameError::FrameNumber { bytes: f.len(), expected: expect, got: None });
            }
        };
        if number != expect {
            if number == (expect + 7) % 8 {
                // Sent again because our ACK was lost: acknowledged, not used twice.
                self.replies.push(ACK);
                return Ok(None);
            }
            self.replies.push(NAK);
            return Err(FrameError::FrameNumber { bytes: f.len(), expected: expect, got: Some(number) });
        }
        let text = &f[2..term];
        let last = f[term] == ETX;
        let before = self.message.len();
        let ended = if self.oversize.is_some() || before + text.len() > self.max_len {
            self.oversize = Some(self.oversize.unwrap_or(before) + text.len());
            self.message.clear();
            let mut own = text.to_vec();
            if last && own.last() != Some(&CR) {
                own.push(CR);
            }
            ends_with_terminator_record(&own)
        } else {
            self.message.extend_from_slice(text);
            // An end frame ends its record even without the CR.
            if last && self.message.last() != Some(&CR) {
                self.message.push(CR);
            }
            ends_with_terminator_record(&self.message)
        };
        self.phase = Phase::Receiving { expect: (expect + 1) % 8 };
        if !ended {
            self.replies.push(ACK);
            return Ok(None);
        }
        if let Some(bytes) = self.oversize.take() {
            self.replies.push(ACK);
            return Err(FrameError::Oversize { bytes, limit: self.max_len });
        }
        let mut message = std::mem::take(&mut self.message);
        self.owed = Some(Owed { number, before: message[..before].to_vec() });
        message.retain(|&b| b != LF);
        Ok(Some(message))
    }
}

/// Whether the last whole record of `text` is the terminator (`L`) record.
fn ends_with_terminator_record(text: &[u8]) -> bool {
    if text.last() != Some(&CR) {
        return false;
    }
    let body = &text[..text.len() - 1];
    let start = body.iter().rposition(|&b| b == CR || b == LF).map_or(0, |i| i + 1);
    // `L`, then the field delimiter (or nothing).
    body.get(start) == Some(&b'L') && !body.get(start + 1).is_some_and(u8::is_ascii_alphanumeric)
}

impl Framer for AstmFramer {
    fn push(&mut self, bytes: &[u8]) {
        self.last_activity = Some(Instant::now());
        self.buf.push(bytes);
    }

    fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        loop {
            if self.owed.is_some() {
                // Nothing more until the completed message is settled.
                return Ok(None);
            }
            let data = self.buf.data();
            let Some(&first) = data.first() else { return Ok(None) };
            let now = Instant::now();
            match (self.phase, first) {
                (Phase::Establishing { .. }, ACK) => {
                    self.buf.consume(1);
                    self.sent(0, now);
                }
                (Phase::Establishing { .. }, NAK) => {
                    // Busy: ask again later.
                    self.buf.consume(1);
                    self.phase = Phase::Neutral;
                    self.retry_at = Some(now + BUSY_WAIT);
                }
                (Phase::Sending { frame, .. }, ACK | EOT) => {
                    // (EOT here is the receiver's interrupt request: an ACK all the same.)
                    self.buf.consume(1);
                    self.sent(frame + 1, now);
                }
                (Phase::Sending { frame, tries, .. }, NAK) => {
                    self.buf.consume(1);
                    if tries >= 6 {
                        return Err(self.give_up("the device refused a frame six times"));
                    }
                    if let Some(f) = self.outgoing.front().and_then(|m| m.get(frame)) {
                        self.replies.extend_from_slice(f);
                    }
                    self.phase = Phase::Sending { frame, tries: tries + 1, since: now };
                }
                (_, ENQ) => {
                    self.buf.consume(1);
                    self.replies.push(ACK);
                    let lost = self.abandon("a new transfer (ENQ) began");
                    self.phase = Phase::Receiving { expect: 1 };
                    if let Some(e) = lost {
                        return Err(e);
                    }
                }
                (_, EOT) => {
                    self.buf.consume(1);
                    let was = self.phase;
                    self.phase = Phase::Neutral;
                    let lost = self.abandon("the sender ended (EOT) mid-message");
                    // A query that yielded to the device's transfer goes now.
                    self.start_sending(now);
                    if let (Phase::Receiving { .. }, Some(e)) = (was, lost) {
                        return Err(e);
                    }
                }
                (Phase::Receiving { expect }, STX) => match Self::whole_frame(data, self.max_len + 16) {
                    Ok(None) => return Ok(None),
                    Ok(Some(len)) => {
                        let f = data[..len].to_vec();
                        self.buf.consume(len);
                        match self.take_frame(&f, expect) {
                            Ok(None) => {}
                            other => return other,
                        }
                    }
                    Err(len) => {
                        self.buf.consume(len);
                        return Err(FrameError::Truncated { bytes: len });
                    }
                },
                _ => {
                    // Outside a frame: line noise, or anything before the ENQ.
                    // (The first byte is never ENQ or EOT here; an STX in neutral is junk too.)
                    let n =
                        data.iter().skip(1).position(|&b| matches!(b, ENQ | EOT | STX)).map_or(data.len(), |i| i + 1);
                    let junk = &data[..n];
                    // A sender's CR LF after a frame, or a stray LF, is not worth an event.
                    let noise = junk.iter().any(|&b| b != CR && b != LF);
                    self.buf.consume(n);
                    if noise {
                        return Err(FrameError::Garbage { bytes: n });
                    }
                }
            }
        }
    }

    fn finish(&mut self) -> Option<FrameError> {
        self.owed = None;
        self.phase = Phase::Neutral;
        let left = self.buf.finish(0);
        self.abandon("the link ended mid-message").or(left)
    }

    fn replies(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.replies)
    }

    fn owes_answer(&self) -> bool {
        self.owed.is_some()
    }

    fn settle(&mut self, accepted: bool) -> Vec<u8> {
        let Some(owed) = self.owed.take() else { return Vec::new() };
        if accepted {
            return vec![ACK];
        }
        // Refused: the sender sends the frame again, and it completes the message again.
        self.message = owed.before;
        self.phase = Phase::Receiving { expect: owed.number };
        vec![NAK]
    }

    fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Receiving { .. } if self.owed.is_none() => self.last_activity.map(|t| t + RECEIVER_TIMEOUT),
            Phase::Establishing { since } | Phase::Sending { since, .. } => Some(since + SENDER_TIMEOUT),
            Phase::Neutral => self.retry_at,
            Phase::Receiving { .. } => None,
        }
    }

    fn expire(&mut self) -> Option<FrameError> {
        match self.phase {
            Phase::Establishing { .. } | Phase::Sending { .. } => {
                Some(self.give_up("the device did not answer in 15 s (sender timeout)"))
            }
            Phase::Neutral => {
                self.start_sending(Instant::now());
                None
            }
            Phase::Receiving { .. } => {
                self.phase = Phase::Neutral;
                let lost = self.abandon("no frame from the sender in 30 s (receiver timeout)");
                self.start_sending(Instant::now());
                lost
            }
        }
    }

    fn request(&mut self, records: &[&[u8]]) -> bool {
        self.outgoing.push_back(frames(records));
        self.start_sending(Instant::now());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::drain;

    /// The shared collection's sourced vectors (tests/fixtures/astm).
    fn vectors() -> Vec<serde_json::Value> {
        serde_json::from_str(include_str!("../../tests/fixtures/astm/astm_vectors.json")).unwrap()
    }

    fn hex(v: &serde_json::Value) -> Vec<u8> {
        let h = v["hex"].as_str().unwrap();
        crate::capture::parse_hex(h).unwrap()
    }

    fn vector(id: &str) -> serde_json::Value {
        vectors().into_iter().find(|v| v["id"] == id).unwrap()
    }

    fn receiving() -> AstmFramer {
        let mut f = AstmFramer::new(64 * 1024);
        f.push(&[ENQ]);
        assert_eq!(drain(&mut f), vec![]);
        assert_eq!(f.replies(), vec![ACK]);
        f
    }

    #[test]
    fn every_sourced_checksum_is_reproduced() {
        let mut checked = 0;
        for v in vectors() {
            let bytes = hex(&v);
            let e = &v["expected"];
            // Frames: STX FN text ETX|ETB C1 C2 CR LF with a valid checksum stated by the source.
            if v["kind"] == "frame" && bytes.first() == Some(&STX) && bytes.len() > 6 {
                let term = bytes.len() - 5;
                let stated = [bytes[term + 1], bytes[term + 2]];
                let valid = v["verification"]["match"].as_bool().unwrap_or(e.get("raises").is_none());
                assert_eq!(checksum(&bytes[1..=term]) == stated, valid, "{}", v["id"]);
                checked += 1;
            }
            // Checksummed spans with the checksum the source states.
            for key in ["checksum", "make_checksum", "make_checksum(bytes)"] {
                if let (Some(sum), false) = (e[key].as_str(), bytes.first() == Some(&STX) && bytes.len() > 6) {
                    assert_eq!(std::str::from_utf8(&checksum(&bytes)).unwrap(), sum, "{}", v["id"]);
                    checked += 1;
                }
            }
            if let Some(sums) = e["checksums"].as_array() {
                let frames: Vec<&[u8]> = bytes.split_inclusive(|&b| b == LF).collect();
                assert_eq!(frames.len(), sums.len(), "{}", v["id"]);
                for (f, s) in frames.iter().zip(sums) {
                    let term = f.len() - 5;
                    assert_eq!(std::str::from_utf8(&checksum(&f[1..=term])).unwrap(), s.as_str().unwrap());
                    checked += 1;
                }
            }
        }
        assert!(checked >= 40, "only {checked} checksums checked");
    }

    #[test]
    fn a_sender_frame_is_built_as_the_sources_frame_it() {
        let v = vector("astm-001");
        assert_eq!(frame(1, b"A|B|C|D\r", true), hex(&v));
        let v = vector("astm-030");
        assert_eq!(frame(1, b"SOMETEXT", false), hex(&v));
    }

    #[test]
    fn a_message_over_several_frames_is_joined_across_etb_and_yielded_at_its_terminator() {
        let mut f = receiving();
        // python-astm's chunked message (astm-006), then a terminator record in frame 5.
        let chunks = hex(&vector("astm-006"));
        f.push(&chunks);
        assert_eq!(drain(&mut f), vec![]);
        assert_eq!(f.replies(), vec![ACK; 4]);
        f.push(&frame(5, b"L|1|N\r", true));
        let got = drain(&mut f);
        assert_eq!(got, vec![Ok(b"foo|1\rbar|24\rbaz|1^2^3|boo\rL|1|N\r".to_vec())]);
        assert_eq!(f.replies(), Vec::<u8>::new(), "the last frame's ACK is owed until the readings are safe");
        assert_eq!(f.settle(true), vec![ACK]);
    }

    #[test]
    fn the_contour_session_gives_its_records() {
        // glucometerutils' Contour session (astm-033): ENQ, H, P, R, L (ETX), EOT.
        let bytes = hex(&vector("astm-033"));
        let mut f = AstmFramer::new(64 * 1024);
        f.push(&bytes);
        let got = drain(&mut f);
        assert_eq!(got.len(), 1);
        let text = String::from_utf8(got[0].clone().unwrap()).unwrap();
        let records: Vec<&str> = text.split('\r').filter(|r| !r.is_empty()).collect();
        assert_eq!(records.len(), 4);
        assert!(records[0].starts_with("H|\\^&||NIylNt|Bayer7390"));
        assert_eq!(records[2], "R|1|^^^Glucose|10.9|mmol/L^P||A||201504171154");
        assert_eq!(records[3], "L|1||N");
        assert_eq!(f.replies(), vec![ACK, ACK, ACK, ACK]);
        // The EOT after it is read once the message is settled.
        assert_eq!(f.settle(true), vec![ACK]);
        assert_eq!(drain(&mut f), vec![]);
        assert_eq!(f.deadline(), None, "back to neutral after EOT");
    }

    #[test]
    fn a_corrupted_frame_is_naked_and_its_retransmission_accepted() {
        let mut f = receiving();
        let good = frame(1, b"H|\\^&\r", false);
        let mut bad = good.clone();
        bad[3] ^= 0x01;
        f.push(&bad);
        assert!(matches!(drain(&mut f)[..], [Err(FrameError::Checksum { .. })]));
        assert_eq!(f.replies(), vec![NAK]);
        f.push(&good);
        assert_eq!(drain(&mut f), vec![]);
        assert_eq!(f.replies(), vec![ACK]);
        f.push(&frame(2, b"L|1|N\r", true));
        assert_eq!(drain(&mut f), vec![Ok(b"H|\\^&\rL|1|N\r".to_vec())]);
    }

    #[test]
    fn the_sources_bad_checksum_frame_is_naked() {
        let mut f = receiving();
        f.push(&hex(&vector("astm-002")));
        assert_eq!(drain(&mut f).len(), 1);
        assert_eq!(f.replies(), vec![NAK]);
    }

    #[test]
    fn a_frame_sent_again_after_a_lost_ack_is_acknowledged_and_not_used_twice() {
        let mut f = receiving();
        let h = frame(1, b"H|\\^&\r", false);
        f.push(&h);
        f.push(&h);
        assert_eq!(drain(&mut f), vec![]);
        assert_eq!(f.replies(), vec![ACK, ACK]);
        f.push(&frame(2, b"L|1|N\r", true));
        assert_eq!(drain(&mut f), vec![Ok(b"H|\\^&\rL|1|N\r".to_vec())]);
    }

    #[test]
    fn a_frame_out_of_sequence_is_naked() {
        let mut f = receiving();
        f.push(&frame(3, b"H|\\^&\r", false));
        assert!(matches!(drain(&mut f)[..], [Err(FrameError::FrameNumber { expected: 1, got: Some(3), .. })]));
        assert_eq!(f.replies(), vec![NAK]);
    }

    #[test]
    fn frame_numbers_wrap_from_seven_to_zero() {
        let mut f = receiving();
        // python-astm's wrap vector (astm-005): ten frames numbered 1..7,0,1,2.
        f.push(&hex(&vector("astm-005")));
        assert_eq!(drain(&mut f), vec![]);
        assert_eq!(f.replies(), vec![ACK; 10]);
        f.push(&frame(3, b"L|1\r", true));
        let got = drain(&mut f);
        assert_eq!(got, vec![Ok(b"A\rB\rC\rD\rE\rF\rG\rH\rI\rJ\rL|1\r".to_vec())]);
    }

    #[test]
    fn an_eot_mid_message_drops_it_with_an_error() {
        let mut f = receiving();
        f.push(&frame(1, b"H|\\^&\r", false));
        f.push(&frame(2, b"R|1|^^^Glucose|133|mg/dL\r", false));
        f.push(&[EOT]);
        let got = drain(&mut f);
        assert!(matches!(got[..], [Err(FrameError::Aborted { .. })]), "{got:?}");
        // The sender starts again; the whole message arrives once.
        f.push(&[ENQ]);
        f.push(&frame(1, b"H|\\^&\r", false));
        f.push(&frame(2, b"L|1\r", true));
        assert_eq!(drain(&mut f), vec![Ok(b"H|\\^&\rL|1\r".to_vec())]);
    }

    #[test]
    fn noise_between_frames_is_reported_and_skipped() {
        let mut f = receiving();
        f.push(b"\x00\xffzz");
        f.push(&frame(1, b"H|\\^&\r", false));
        f.push(b"\r\n");
        f.push(&frame(2, b"L|1\r", true));
        let got = drain(&mut f);
        assert_eq!(got, vec![Err(FrameError::Garbage { bytes: 4 }), Ok(b"H|\\^&\rL|1\r".to_vec())]);
    }

    #[test]
    fn bytes_before_the_enq_are_ignored() {
        let mut f = AstmFramer::new(1024);
        f.push(&frame(1, b"H|\\^&\r", false));
        let got = drain(&mut f);
        assert!(got.iter().all(|r| r.is_err()), "nothing is read outside a transfer: {got:?}");
        assert_eq!(f.replies(), Vec::<u8>::new());
    }

    #[test]
    fn a_refused_message_is_naked_and_completed_again_by_the_retransmission() {
        let mut f = receiving();
        f.push(&frame(1, b"H|\\^&\r", false));
        let last = frame(2, b"L|1\r", true);
        f.push(&last);
        assert_eq!(drain(&mut f).len(), 1);
        assert_eq!(f.settle(false), vec![NAK]);
        f.push(&last);
        assert_eq!(drain(&mut f), vec![Ok(b"H|\\^&\rL|1\r".to_vec())]);
        assert_eq!(f.settle(true), vec![ACK]);
    }

    #[test]
    fn a_silent_sender_times_out_and_the_partial_message_is_dropped() {
        let mut f = receiving();
        f.push(&frame(1, b"H|\\^&\r", false));
        drain(&mut f);
        let due = f.deadline().expect("a deadline while receiving");
        assert!(due > Instant::now() + RECEIVER_TIMEOUT - Duration::from_secs(5));
        assert!(matches!(f.expire(), Some(FrameError::Aborted { .. })));
        assert_eq!(f.deadline(), None);
    }

    #[test]
    fn a_query_goes_out_enq_then_each_frame_after_its_ack_then_eot() {
        let mut f = AstmFramer::new(1024);
        let recs: [&[u8]; 3] = [b"H|\\^&", b"Q|1|^ALL||||||||||N", b"L|1|N"];
        assert!(f.request(&recs));
        assert_eq!(f.replies(), vec![ENQ]);
        let want = frames(&recs);
        for (i, fr) in want.iter().enumerate() {
            f.push(&[ACK]);
            assert_eq!(drain(&mut f), vec![]);
            assert_eq!(&f.replies(), fr, "frame {i} after the ACK before it");
        }
        f.push(&[ACK]);
        assert_eq!(drain(&mut f), vec![]);
        assert_eq!(f.replies(), vec![EOT]);
        assert_eq!(f.deadline(), None, "neutral again");
    }

    #[test]
    fn a_naked_query_frame_is_sent_again_and_a_busy_device_is_asked_later() {
        let mut f = AstmFramer::new(1024);
        let recs: [&[u8]; 2] = [b"H|\\^&", b"L|1|N"];
        f.request(&recs);
        assert_eq!(f.replies(), vec![ENQ]);
        // Busy: no frame now, another ENQ once the wait is over.
        f.push(&[NAK]);
        drain(&mut f);
        assert_eq!(f.replies(), Vec::<u8>::new());
        assert!(f.deadline().unwrap() > Instant::now() + Duration::from_secs(9));
        assert_eq!(f.expire(), None);
        assert_eq!(f.replies(), vec![ENQ]);
        f.push(&[ACK]);
        drain(&mut f);
        let first = f.replies();
        f.push(&[NAK]);
        drain(&mut f);
        assert_eq!(f.replies(), first, "the refused frame again");
        for _ in 0..5 {
            f.push(&[NAK]);
            drain(&mut f);
        }
        let replies = f.replies();
        assert_eq!(replies.last(), Some(&EOT), "six refusals end the attempt");
    }

    #[test]
    fn the_devices_own_enq_wins_and_the_query_goes_after_its_transfer() {
        let mut f = AstmFramer::new(1024);
        let recs: [&[u8]; 2] = [b"H|\\^&", b"L|1|N"];
        f.request(&recs);
        assert_eq!(f.replies(), vec![ENQ]);
        // Contention: the device's ENQ crossed ours.
        f.push(&[ENQ]);
        f.push(&frame(1, b"H|\\^&\r", false));
        f.push(&frame(2, b"L|1\r", true));
        assert_eq!(drain(&mut f), vec![Ok(b"H|\\^&\rL|1\r".to_vec())]);
        assert_eq!(f.replies(), vec![ACK, ACK]);
        assert_eq!(f.settle(true), vec![ACK]);
        f.push(&[EOT]);
        drain(&mut f);
        assert_eq!(f.replies(), vec![ENQ], "now the query");
    }

    proptest::proptest! {
        /// Whatever the device sends, in whatever pieces, while the gateway both receives and
        /// sends: no panic, and the framer never yields more than it was given.
        #[test]
        fn arbitrary_bytes_in_both_directions_never_panic(
            chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), 0..16),
            settle in proptest::prelude::any::<bool>(),
        ) {
            let mut f = AstmFramer::new(256);
            let recs: [&[u8]; 2] = [b"H|\\^&", b"L|1|N"];
            f.request(&recs);
            let total: usize = chunks.iter().map(Vec::len).sum();
            for c in &chunks {
                f.push(c);
                for r in drain(&mut f).into_iter().flatten() {
                    proptest::prop_assert!(r.len() <= total + 16);
                }
                f.settle(settle);
                f.replies();
                if f.deadline().is_some() {
                    f.expire();
                }
            }
            f.finish();
        }
    }

    #[test]
    fn a_message_longer_than_the_limit_is_dropped_whole() {
        let mut f = AstmFramer::new(16);
        f.push(&[ENQ]);
        f.push(&frame(1, b"H|\\^&|0123456789abcdef\r", false));
        f.push(&frame(2, b"L|1\r", true));
        let got = drain(&mut f);
        assert!(matches!(got[..], [Err(FrameError::Oversize { .. })]), "{got:?}");
        assert_eq!(f.replies(), vec![ACK, ACK, ACK]);
    }
}
