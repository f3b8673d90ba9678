//! A serial device that must be asked ([`crate::dialogue`]): the device task runs the dialogue's
//! steps (writes the requests, reads what the replies mean) and answers `records.fetch` when the
//! run is over. Readings from a dump are sent oldest first, only those newer than the last one
//! delivered, each committed together with the device's new memory (its time), so asking twice
//! never sends a reading twice and a crash never loses one.

use super::{DeviceTask, Done};
use crate::command::Answer;
use crate::decode::text::{parse_device_time, split_csv};
use crate::dialogue::{checked, Dialogue, Step};
use crate::model::{Event, Severity};
use crate::pipeline::{capture_time, Outgoing, Payload, ToSign};
use crate::profile::{DecoderSpec, RequestRole, TextFormat};
use crate::transport::{self, Link};
use std::collections::VecDeque;
use std::time::Instant;

/// A dialogue in one connection, with what its current run owes.
pub(super) struct Asking {
    pub dialogue: Dialogue,
    /// `records.fetch` requests answered when the run is over.
    pub waiting: Vec<Done>,
    /// New readings sent in this run.
    pub new_readings: usize,
    /// Why the run's readings request failed, if it did.
    pub failed: Option<String>,
    /// Whether any request was answered in this run (a silent device is dropped and retried).
    pub answered: bool,
    /// When the periodic fetch runs next.
    pub next_fetch: Option<Instant>,
}

impl Asking {
    pub fn new(task: &DeviceTask) -> Option<Self> {
        let spec = task.cfg.profile.dialogue.clone()?;
        let text = match &task.cfg.profile.decoder {
            DecoderSpec::Text(t) => Some(t.clone()),
            _ => None,
        };
        let next_fetch = spec.every.map(|e| Instant::now() + e);
        Some(Self {
            dialogue: Dialogue::new(spec, text),
            waiting: Vec::new(),
            new_readings: 0,
            failed: None,
            answered: false,
            next_fetch,
        })
    }
}

/// The gateway's time now, for `{now:...}` templates.
fn now_utc() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

impl DeviceTask {
    /// Runs dialogue steps until none is left; `Err` when the link fails. Returns `false` when the
    /// device stayed silent through a whole run (the session ends and is retried with backoff).
    pub(super) async fn dialogue_steps(
        &mut self,
        asking: &mut Asking,
        first: Vec<Step>,
        link: &mut dyn Link,
    ) -> std::io::Result<bool> {
        let mut steps: VecDeque<Step> = first.into();
        while let Some(step) = steps.pop_front() {
            match step {
                Step::Write(bytes) => transport::write_to(link, &bytes).await?,
                Step::Reply { req, lines } => {
                    asking.answered = true;
                    let next = match self.reply(asking, req, &lines).await {
                        Ok(()) => asking.dialogue.used(Instant::now(), now_utc()),
                        Err(why) => asking.dialogue.unusable(&why, Instant::now(), now_utc()),
                    };
                    steps.extend(next);
                }
                Step::Failed { req, why } => {
                    let spec = asking.dialogue.spec();
                    let name = spec.requests[req].name.clone();
                    let silent = !asking.answered;
                    if spec.requests[req].role == RequestRole::Readings {
                        asking.failed = Some(why.clone());
                    }
                    let code = if silent { "device-silent" } else { "dialogue-failed" };
                    let text = format!("request `{name}` got no usable reply: {why}");
                    self.event(Event::new(code, Severity::Warn, text).with("request", name)).await;
                    if silent {
                        // Nothing answers: the run ends here and the link is tried again later.
                        asking.dialogue.clear();
                        let answer = Err(Answer::new("device-silent", "the device answered nothing"));
                        for done in asking.waiting.drain(..) {
                            let _ = done.send(answer.clone());
                        }
                        return Ok(false);
                    }
                }
                Step::Finished => {
                    let answer = match asking.failed.take() {
                        Some(why) => Err(Answer::new("device-control-failed", why)),
                        None => Ok(Answer::ok(format!("{}: {} new readings", self.cfg.id, asking.new_readings))
                            .with("new", asking.new_readings as u64)),
                    };
                    asking.new_readings = 0;
                    for done in asking.waiting.drain(..) {
                        let _ = done.send(answer.clone());
                    }
                    if !std::mem::take(&mut asking.answered) {
                        return Ok(false);
                    }
                }
            }
        }
        Ok(true)
    }

    /// What a whole reply means; `Err` when it cannot be used (the request is sent again).
    async fn reply(&mut self, asking: &mut Asking, req: usize, lines: &[Vec<u8>]) -> Result<(), String> {
        let spec = asking.dialogue.spec();
        let role = spec.requests[req].role;
        let name = spec.requests[req].name.clone();
        let DecoderSpec::Text(text) = &self.cfg.profile.decoder else { return Ok(()) };
        match role {
            RequestRole::Readings => self.dumped(asking, lines).await,
            RequestRole::Info => {
                let line = lines.first().and_then(|l| checked(text, l)).unwrap_or("").trim().to_string();
                tracing::info!(request = %name, reply = %line, "device information");
                let event = Event::new("device-info", Severity::Info, format!("{name}: {line}"))
                    .with("request", name)
                    .with("reply", line);
                self.send_event(event).await;
                Ok(())
            }
            RequestRole::ClockRead => {
                let Some(clock) = spec.clock.clone() else { return Ok(()) };
                let line = lines.first().and_then(|l| checked(text, l)).ok_or("the clock reply failed its check")?;
                let line = line.strip_prefix(clock.prefix.as_str()).ok_or("the clock reply has another prefix")?;
                let delimiter = match text.format {
                    TextFormat::Csv { delimiter } => delimiter,
                    TextFormat::KeyValue { .. } => ',',
                };
                let cols = split_csv(line, delimiter);
                let parts: Option<Vec<&str>> = clock.from.iter().map(|c| cols.get(c - 1).map(|s| s.trim())).collect();
                let device = parts
                    .and_then(|p| parse_device_time(&p.join(" "), &clock.format))
                    .map(|t| crate::clock::to_micros(t.assume_offset(clock.utc_offset)))
                    .ok_or("the clock reply's date and time are unreadable")?;
                let gateway = capture_time();
                let off_ms = (device - gateway) / 1000;
                self.clock_offset_ms = Some(off_ms);
                if off_ms.unsigned_abs() > clock.max_skew.as_millis() as u64 {
                    let set = spec.requests.iter().position(|r| r.role == RequestRole::ClockSet);
                    let text = format!(
                        "device clock is {:.0} s {} the gateway's{}",
                        off_ms.abs() as f64 / 1000.0,
                        if off_ms < 0 { "behind" } else { "ahead of" },
                        if set.is_some() { "; setting it" } else { "" }
                    );
                    let event = Event::new("device-clock", Severity::Warn, text)
                        .with("offset_ms", off_ms)
                        .with("from", name)
                        .with("set", set.is_some());
                    self.send_event(event).await;
                    if let Some(set) = set {
                        asking.dialogue.insert_next(set);
                    }
                }
                Ok(())
            }
            RequestRole::ClockSet => {
                tracing::info!("device clock set");
                self.clock_offset_ms = Some(0);
                Ok(())
            }
        }
    }

    /// A dump's reading lines: all decoded (a line that fails its check sends the request
    /// again), then the new ones sent oldest first with the device's memory.
    async fn dumped(&mut self, asking: &mut Asking, lines: &[Vec<u8>]) -> Result<(), String> {
        let mut readings = Vec::new();
        let mut problems = Vec::new();
        // The first line is the header that counted the rest.
        for line in lines.iter().skip(1) {
            match self.decoder.decode(line, capture_time()) {
                Ok(d) => {
                    problems.extend(d.problems);
                    if !d.observations.is_empty() {
                        readings.push((d.tdev, d.observations));
                    }
                }
                Err(e) if e.code.starts_with("checksum") => return Err(format!("a reading line: {}", e.text)),
                Err(e) => problems.push(e.to_event()),
            }
        }
        for p in problems {
            self.event(p).await;
        }
        let last: Option<i64> = self.memory.as_deref().and_then(|m| m.parse().ok());
        let before = readings.len();
        // A reading without the device's time cannot be placed against the memory: it is sent
        // every time (and says so in the log).
        readings.retain(|(tdev, _)| match (tdev, last) {
            (Some(t), Some(l)) => *t > l,
            _ => true,
        });
        readings.sort_by_key(|(tdev, _)| *tdev);
        tracing::info!(stored = before, new = readings.len(), "meter memory read");
        let t = capture_time();
        for (tdev, obs) in readings {
            let n = obs.len() as u64;
            let remember = tdev.map(|t| t.to_string());
            let msg =
                ToSign { remember: remember.clone(), ..ToSign::new(self.source.clone(), Payload::Obs(obs), t, tdev) };
            if self.out.send(Outgoing::Signed(msg)).await.is_err() {
                return Ok(());
            }
            if remember.is_some() {
                self.memory = remember;
            }
            self.counters.readings.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            asking.new_readings += 1;
        }
        Ok(())
    }
}
