//! Asking a device that speaks only when asked (a OneTouch-style glucometer): a plain state
//! machine that takes events (a run of requests begins, a reply line arrives, the reply is late,
//! the device task found a reply unusable) and returns steps (write these bytes, here is a
//! whole reply, a request failed, the run is over). The device task only moves bytes and timers;
//! what a reply means (readings, the device's clock, its firmware) is the task's business.
//!
//! One request is in flight at a time. A reply ends as the profile says: one line, or a header
//! line whose column counts the lines after it (at most the profile's `max_count`: a reply is
//! held whole until its last line, and a device must not make that endless). A late reply, a line that fails the profile's
//! checksum, or a reply the task calls unusable sends the request again, up to `retries` more
//! times; then the request fails and the run goes on with the next.

use crate::decode::text::{split_csv, verify_sum16_hex};
use crate::profile::{DialogueSpec, LineChecksum, Part, ReplyShape, RequestChecksum, TextFormat, TextSpec};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

/// What the device task does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write these bytes to the device.
    Write(Vec<u8>),
    /// The whole reply to request `req` (index into the profile's requests), line by line
    /// (as framed, checksums still on).
    Reply { req: usize, lines: Vec<Vec<u8>> },
    /// Request `req` got no usable reply after every retry.
    Failed { req: usize, why: String },
    /// Every request of the run has been answered or has failed.
    Finished,
}

#[derive(Debug)]
struct Exchange {
    req: usize,
    /// Times sent so far.
    sent: u32,
    due: Instant,
    lines: Vec<Vec<u8>>,
    /// Lines still to come after the header (counted replies), once the header is read.
    remaining: Option<usize>,
}

#[derive(Debug)]
pub struct Dialogue {
    spec: Arc<DialogueSpec>,
    text: Option<TextSpec>,
    plan: VecDeque<usize>,
    current: Option<Exchange>,
    /// A reply handed to the task and not yet judged: (request, times sent).
    judging: Option<(usize, u32)>,
}

impl Dialogue {
    /// `text`: the profile's line decoder (its prefix, checksum and delimiter read the replies).
    pub fn new(spec: Arc<DialogueSpec>, text: Option<TextSpec>) -> Self {
        Self { spec, text, plan: VecDeque::new(), current: None, judging: None }
    }

    pub fn spec(&self) -> &DialogueSpec {
        &self.spec
    }

    /// Whether a request is out or waiting.
    pub fn busy(&self) -> bool {
        self.current.is_some() || self.judging.is_some() || !self.plan.is_empty()
    }

    /// When the reply in flight is late.
    pub fn deadline(&self) -> Option<Instant> {
        self.current.as_ref().map(|e| e.due)
    }

    /// Queues requests (a request already queued is not queued twice); starts the first when idle.
    /// `now_utc` fills `{now:...}` templates.
    pub fn run(&mut self, requests: &[usize], now: Instant, now_utc: time::OffsetDateTime) -> Vec<Step> {
        for &r in requests {
            if !self.plan.contains(&r) && self.current.as_ref().map(|e| e.req) != Some(r) {
                self.plan.push_back(r);
            }
        }
        self.next(now, now_utc)
    }

    /// Runs what the profile asks when the link opens.
    pub fn connected(&mut self, now: Instant, now_utc: time::OffsetDateTime) -> Vec<Step> {
        let spec = self.spec.clone();
        self.run(&spec.on_connect, now, now_utc)
    }

    /// Runs what the profile asks on `records.fetch` and every `every_minutes`.
    pub fn fetch(&mut self, now: Instant, now_utc: time::OffsetDateTime) -> Vec<Step> {
        let spec = self.spec.clone();
        self.run(&spec.on_fetch, now, now_utc)
    }

    /// Drops the run: nothing more is asked until the next [`Dialogue::run`].
    pub fn clear(&mut self) {
        self.plan.clear();
        self.current = None;
        self.judging = None;
    }

    /// Puts a request at the front of the run (the clock set after a clock read found it off).
    pub fn insert_next(&mut self, req: usize) {
        self.plan.push_front(req);
    }

    /// A line from the device. `None` when no request is waiting for it (the device spoke on its
    /// own: the task decodes it as usual).
    pub fn line(&mut self, frame: &[u8], now: Instant, now_utc: time::OffsetDateTime) -> Option<Vec<Step>> {
        let ex = self.current.as_mut()?;
        let shape = self.spec.requests[ex.req].reply;
        match (shape, ex.remaining) {
            (ReplyShape::Counted { column, max }, None) => {
                let Some(n) = self.text.as_ref().and_then(|t| count(t, frame, column)) else {
                    return Some(self.again(now, now_utc, "the reply's header line is unreadable"));
                };
                if n > max {
                    let why = format!("the reply's header counts {n} lines, more than the {max} the profile allows");
                    return Some(self.again(now, now_utc, &why));
                }
                ex.lines.push(frame.to_vec());
                ex.remaining = Some(n);
                ex.due = now + self.spec.timeout;
            }
            (ReplyShape::Counted { .. }, Some(_)) => {
                ex.lines.push(frame.to_vec());
                ex.remaining = ex.remaining.map(|r| r.saturating_sub(1));
                // A long reply is not late while its lines keep coming.
                ex.due = now + self.spec.timeout;
            }
            (ReplyShape::Line, _) => {
                if self.text.as_ref().is_none_or(|t| checked(t, frame).is_none()) {
                    return Some(self.again(now, now_utc, "the reply line failed its check"));
                }
                ex.lines.push(frame.to_vec());
                ex.remaining = Some(0);
            }
            (ReplyShape::None, _) => return None,
        }
        if ex.remaining != Some(0) {
            return Some(Vec::new());
        }
        let ex = self.current.take()?;
        self.judging = Some((ex.req, ex.sent));
        Some(vec![Step::Reply { req: ex.req, lines: ex.lines }])
    }

    /// The task used the reply: on to the next request.
    pub fn used(&mut self, now: Instant, now_utc: time::OffsetDateTime) -> Vec<Step> {
        self.judging = None;
        self.next(now, now_utc)
    }

    /// The task could not use the reply (a garbled line): the request goes again, or fails.
    pub fn unusable(&mut self, why: &str, now: Instant, now_utc: time::OffsetDateTime) -> Vec<Step> {
        let Some((req, sent)) = self.judging.take() else { return self.next(now, now_utc) };
        self.current = Some(Exchange { req, sent, due: now, lines: Vec::new(), remaining: None });
        self.again(now, now_utc, why)
    }

    /// Time passed: a late reply sends the request again, or fails it.
    pub fn tick(&mut self, now: Instant, now_utc: time::OffsetDateTime) -> Vec<Step> {
        match &self.current {
            Some(ex) if now >= ex.due => self.again(now, now_utc, "no reply in time"),
            _ => Vec::new(),
        }
    }

    /// Sends the current request again, or gives up on it.
    fn again(&mut self, now: Instant, now_utc: time::OffsetDateTime, why: &str) -> Vec<Step> {
        let Some(ex) = self.current.take() else { return Vec::new() };
        if ex.sent > self.spec.retries {
            let mut steps = vec![Step::Failed { req: ex.req, why: format!("{why} (sent {} times)", ex.sent) }];
            steps.extend(self.next(now, now_utc));
            return steps;
        }
        self.send(ex.req, ex.sent, now, now_utc)
    }

    fn next(&mut self, now: Instant, now_utc: time::OffsetDateTime) -> Vec<Step> {
        if self.current.is_some() || self.judging.is_some() {
            return Vec::new();
        }
        match self.plan.pop_front() {
            Some(req) => self.send(req, 0, now, now_utc),
            None => vec![Step::Finished],
        }
    }

    fn send(&mut self, req: usize, sent: u32, now: Instant, now_utc: time::OffsetDateTime) -> Vec<Step> {
        let bytes = self.request_bytes(req, now_utc);
        if self.spec.requests[req].reply == ReplyShape::None {
            self.judging = Some((req, sent + 1));
            return vec![Step::Write(bytes), Step::Reply { req, lines: Vec::new() }];
        }
        self.current =
            Some(Exchange { req, sent: sent + 1, due: now + self.spec.timeout, lines: Vec::new(), remaining: None });
        vec![Step::Write(bytes)]
    }

    /// The bytes of a request: wake-up, text (with the time filled in), checksum, end.
    pub fn request_bytes(&self, req: usize, now_utc: time::OffsetDateTime) -> Vec<u8> {
        let spec = &self.spec;
        let local = now_utc.to_offset(spec.clock.as_ref().map_or(time::UtcOffset::UTC, |c| c.utc_offset));
        let mut text = String::new();
        for part in crate::profile::template_parts(&spec.requests[req].send).unwrap_or_default() {
            match part {
                Part::Text(t) => text.push_str(&t),
                Part::Now(f) => {
                    let fmt = crate::profile::time_format(&f).ok();
                    text.push_str(&fmt.and_then(|f| local.format(&f).ok()).unwrap_or_default());
                }
            }
        }
        if let Some(RequestChecksum::Sum16Hex) = spec.checksum {
            let sum = crate::decode::text::sum16(text.as_bytes());
            text.push_str(&format!(" {sum:04X}"));
        }
        let mut out = spec.wake.clone();
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(&spec.end);
        out
    }
}

/// A reply line's text with its checksum checked and removed (as the profile's decoder checks it).
pub fn checked<'a>(text: &TextSpec, frame: &'a [u8]) -> Option<&'a str> {
    let line = std::str::from_utf8(frame).ok()?;
    match text.checksum {
        Some(LineChecksum::Sum16Hex) => verify_sum16_hex(line).ok(),
        None => Some(line),
    }
}

/// The count in column `column` of a counted reply's header line.
fn count(text: &TextSpec, frame: &[u8], column: usize) -> Option<usize> {
    let line = checked(text, frame)?;
    let line = match &text.prefix {
        Some(p) => line.strip_prefix(p.as_str())?,
        None => line,
    };
    let delimiter = match text.format {
        TextFormat::Csv { delimiter } => delimiter,
        TextFormat::KeyValue { .. } => ',',
    };
    split_csv(line, delimiter).get(column - 1)?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{DecoderSpec, ProfileRegistry, RequestRole};
    use std::time::Duration;

    fn onetouch() -> Dialogue {
        let p = ProfileRegistry::builtin().unwrap().get("onetouch-ultra2").unwrap();
        let DecoderSpec::Text(t) = &p.decoder else { panic!() };
        Dialogue::new(p.dialogue.clone().unwrap(), Some(t.clone()))
    }

    fn req(d: &Dialogue, name: &str) -> usize {
        d.spec().requests.iter().position(|r| r.name == name).unwrap()
    }

    /// A OneTouch line with its sum-16 checksum (the meter's own rule, as the profile checks it).
    fn line(body: &str) -> Vec<u8> {
        crate::sim::onetouch::line(body).trim_end().as_bytes().to_vec()
    }

    fn at() -> time::OffsetDateTime {
        time::macros::datetime!(2026-11-29 10:00:00 UTC)
    }

    #[test]
    fn a_dump_is_asked_with_the_wake_up_and_ends_after_the_counted_lines() {
        let mut d = onetouch();
        let t0 = Instant::now();
        let dump = req(&d, "dump");
        assert_eq!(d.run(&[dump], t0, at()), vec![Step::Write(b"\x11\rDMP\r".to_vec())]);
        assert_eq!(d.line(&line("P 002,\"GMF600DCY\",\"MG/DL \""), t0, at()), Some(vec![]));
        assert_eq!(d.line(b"first", t0, at()), Some(vec![]));
        let steps = d.line(b"second", t0, at()).unwrap();
        assert!(matches!(&steps[..], [Step::Reply { req, lines }] if *req == dump && lines.len() == 3));
        assert_eq!(d.line(b"unasked", t0, at()), None, "an idle dialogue leaves lines to the decoder");
        assert_eq!(d.used(t0, at()), vec![Step::Finished]);
    }

    #[test]
    fn a_late_reply_sends_the_request_again_then_fails_it_and_goes_on() {
        let mut d = onetouch();
        let t0 = Instant::now();
        let (fw, dump) = (req(&d, "firmware"), req(&d, "dump"));
        d.run(&[fw, dump], t0, at());
        let late = d.deadline().unwrap();
        assert!(late > t0);
        let mut writes = 1;
        let mut now = late;
        loop {
            let steps = d.tick(now, at());
            if let Some(Step::Failed { req, .. }) = steps.first() {
                assert_eq!(*req, fw);
                assert_eq!(steps[1], Step::Write(b"\x11\rDMP\r".to_vec()), "the run goes on");
                break;
            }
            assert_eq!(steps, vec![Step::Write(b"\x11\rDM?\r".to_vec())]);
            writes += 1;
            now += Duration::from_secs(60);
        }
        assert_eq!(writes, 1 + d.spec().retries);
    }

    #[test]
    fn a_garbled_reply_line_is_asked_again() {
        let mut d = onetouch();
        let t0 = Instant::now();
        let fw = req(&d, "firmware");
        d.run(&[fw], t0, at());
        let mut bad = line("?P02.00.00 30/08/06");
        bad[3] ^= 1;
        assert_eq!(d.line(&bad, t0, at()), Some(vec![Step::Write(b"\x11\rDM?\r".to_vec())]));
        let steps = d.line(&line("?P02.00.00 30/08/06"), t0, at()).unwrap();
        assert!(matches!(&steps[..], [Step::Reply { .. }]));
    }

    #[test]
    fn a_header_counting_more_lines_than_the_profile_allows_is_asked_again_then_fails() {
        let mut d = onetouch();
        let t0 = Instant::now();
        let dump = req(&d, "dump");
        let ReplyShape::Counted { max, .. } = d.spec().requests[dump].reply else { panic!("a counted reply") };
        d.run(&[dump], t0, at());
        let endless = line(&format!("P {},\"GMF600DCY\",\"MG/DL \"", max + 1));
        let mut writes = 1;
        let why = loop {
            match &d.line(&endless, t0, at()).unwrap()[..] {
                [Step::Write(w)] => assert_eq!(w, b"\x11\rDMP\r", "the dump is asked again"),
                [Step::Failed { req, why }, Step::Finished] if *req == dump => break why.clone(),
                other => panic!("unexpected steps {other:?}"),
            }
            writes += 1;
        };
        assert_eq!(writes, 1 + d.spec().retries);
        assert!(why.contains(&format!("counts {} lines, more than the {max}", max + 1)), "{why}");
        // A header counting as many as allowed is taken.
        d.run(&[dump], t0, at());
        let most = line(&format!("P {max},\"GMF600DCY\",\"MG/DL \""));
        assert_eq!(d.line(&most, t0, at()), Some(vec![]));
    }

    #[test]
    fn an_unusable_reply_is_asked_again() {
        let mut d = onetouch();
        let t0 = Instant::now();
        let dump = req(&d, "dump");
        d.run(&[dump], t0, at());
        d.line(&line("P 000,\"GMF600DCY\",\"MG/DL \""), t0, at()).unwrap();
        assert_eq!(
            d.unusable("a reading line failed its checksum", t0, at()),
            vec![Step::Write(b"\x11\rDMP\r".to_vec())]
        );
    }

    #[test]
    fn the_clock_set_request_carries_the_gateways_time_on_the_meters_clock() {
        let d = onetouch();
        let set = req(&d, "clock-set");
        assert_eq!(d.spec().requests[set].role, RequestRole::ClockSet);
        let offset = d.spec().clock.as_ref().unwrap().utc_offset;
        let local = at().to_offset(offset);
        let want = format!(
            "\x11\rDMT{:02}/{:02}/{:02} {:02}:{:02}:{:02}\r",
            local.month() as u8,
            local.day(),
            local.year() % 100,
            local.hour(),
            local.minute(),
            local.second()
        );
        assert_eq!(d.request_bytes(set, at()), want.into_bytes());
    }
}
