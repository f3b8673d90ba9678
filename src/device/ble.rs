//! A BLE device's session: connect (scan, discover, subscribe), start what the profile needs
//! (a Record Access Control Point download of the records after the last one delivered, or the
//! Polar PMD ECG stream), then turn notifications into readings, samples and events until the
//! device goes away. A device that does not answer a control point in time is reported and
//! dropped, and tried again with backoff.

use super::{DeviceControl, DeviceTask};
use crate::command::Answer;
use crate::config::DeviceTransport;
use crate::decode::ble::{self as notify, Assembled, Assembler, Notified, Readings};
use crate::decode::gatt::{self, pmd, racp, Characteristic};
use crate::model::{Event, Observation, Severity};
use crate::pipeline::{capture_time, Outgoing, Payload, ToSign};
use crate::profile::DecoderSpec;
use crate::transport::ble::{BleEvent, BleLink, BleTarget};
use crate::transport::Backoff;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long a scan looks for the device before the attempt counts as failed.
const SCAN_FOR: Duration = Duration::from_secs(10);

/// The characteristics a profile listens to.
fn subscriptions(decoder: &DecoderSpec) -> Vec<Uuid> {
    match decoder {
        DecoderSpec::Gatt(g) => {
            let mut out: Vec<Uuid> = g.characteristics.iter().map(|c| gatt::uuid16(c.uuid16())).collect();
            if g.racp {
                out.push(gatt::uuid16(Characteristic::Racp.uuid16()));
            }
            out
        }
        DecoderSpec::PolarPmdEcg(_) => {
            vec![pmd::CONTROL_POINT, pmd::DATA]
        }
        _ => Vec::new(),
    }
}

impl DeviceTask {
    /// Connects to the BLE device and runs its session; how long to wait before the next attempt.
    pub(super) async fn ble_attempt(&mut self, backoff: &mut Backoff) -> Duration {
        let DeviceTransport::Ble { address, name } = &self.cfg.transport else { return backoff.next_delay() };
        let Some(spec) = &self.cfg.profile.ble else { return backoff.next_delay() };
        let target = BleTarget { address: address.clone(), name: name.clone(), service: spec.service };
        let subscribe = subscriptions(&self.cfg.profile.decoder);
        let mut shutdown = self.shutdown.clone();
        let opened = tokio::select! {
            r = BleLink::open(&target, &subscribe, SCAN_FOR) => r,
            _ = shutdown.triggered() => return Duration::ZERO,
        };
        match opened {
            Ok(link) => {
                let started = Instant::now();
                tracing::info!(address = %link.address(), "BLE device connected");
                self.link_up(backoff).await;
                let why = self.ble_session(link, started).await;
                self.link_down(why, backoff).await
            }
            Err(e) => self.link_failed(e.to_string(), backoff).await,
        }
    }

    /// Records how far the device clock is from the gateway's (`device-clock` event, and
    /// `ctx.device_clock_offset_ms` on this session's readings).
    async fn clock_offset(&mut self, device: i64, gateway: i64, from: &str) {
        let ms = (device - gateway) / 1000;
        self.clock_offset_ms = Some(ms);
        let text = format!(
            "device clock is {:.1} s {} the gateway's",
            ms.abs() as f64 / 1000.0,
            if ms < 0 { "behind" } else { "ahead of" }
        );
        self.send_event(Event::new("device-clock", Severity::Info, text).with("offset_ms", ms).with("from", from))
            .await;
    }

    /// Reads the device's Current Time (0x2A2B), when it has one, for the clock offset.
    async fn read_current_time(&mut self, link: &mut BleLink) {
        let cts = gatt::uuid16(0x2A2B);
        if let Some(Ok(bytes)) = link.read(cts).await {
            match gatt::current_time(&bytes) {
                Ok(Some(device)) => self.clock_offset(device, capture_time(), "current-time").await,
                Ok(None) => {}
                Err(e) => self.event(Event::new("gatt-invalid", Severity::Warn, format!("0x2A2B: {e}"))).await,
            }
        }
    }

    /// The last stored record delivered (RACP meters).
    fn last_record(&self) -> Option<u16> {
        self.memory.as_deref().and_then(|m| m.parse().ok())
    }

    /// Starts the device's procedure: the RACP download or the PMD stream. Returns the answer
    /// timeout when an answer is awaited.
    async fn ble_start(&mut self, link: &mut BleLink) -> Result<Option<Duration>, String> {
        match &self.cfg.profile.decoder {
            DecoderSpec::Gatt(g) if g.racp => {
                let request = match self.last_record() {
                    Some(last) if last < u16::MAX => racp::Request::ReportFrom(last + 1),
                    Some(_) => racp::Request::ReportAll,
                    None => racp::Request::ReportAll,
                };
                tracing::info!(?request, "asking the meter for its stored records");
                let racp_uuid = gatt::uuid16(Characteristic::Racp.uuid16());
                link.write(racp_uuid, &request.encode()).await.map_err(|e| format!("RACP write: {e}"))?;
                Ok(Some(g.answer_timeout))
            }
            // An on-demand strap streams only once asked (its battery).
            DecoderSpec::PolarPmdEcg(p) if self.streaming => {
                link.write(pmd::CONTROL_POINT, &pmd::start_ecg()).await.map_err(|e| format!("PMD start: {e}"))?;
                Ok(Some(p.answer_timeout))
            }
            _ => Ok(None),
        }
    }

    async fn ble_session(&mut self, mut link: BleLink, started: Instant) -> String {
        let mut pending = Assembler::default();
        self.not_forwarded = Default::default();
        self.clock_offset_ms = None;
        self.read_current_time(&mut link).await;
        let mut first_reading = true;
        let timeout = match self.ble_start(&mut link).await {
            Ok(t) => t,
            Err(why) => {
                self.event(Event::new("device-control-failed", Severity::Warn, why.clone())).await;
                link.close().await;
                return why;
            }
        };
        let mut answer_due = timeout.map(|t| Instant::now() + t);
        let mut shutdown = self.shutdown.clone();
        // A `records.fetch` waiting for the meter's answer.
        let mut fetch: Option<super::Done> = None;
        let racp_timeout = match &self.cfg.profile.decoder {
            DecoderSpec::Gatt(g) if g.racp => Some(g.answer_timeout),
            _ => None,
        };
        loop {
            let chunk_due = self.wave.as_ref().and_then(crate::wave::WaveStream::deadline);
            tokio::select! {
                ev = link.next() => match ev {
                    BleEvent::Notification(uuid, bytes) => {
                        if let (Some(t), Some(_)) = (timeout, answer_due) {
                            answer_due = Some(Instant::now() + t);
                        }
                        if let Some(result) = self.ble_notification(&uuid, &bytes, &mut pending).await {
                            answer_due = None;
                            if let Some(done) = fetch.take() {
                                let _ = done.send(result);
                            }
                        }
                        if first_reading && self.counters.readings.load(Ordering::Relaxed) > 0 {
                            first_reading = false;
                            tracing::info!(ms = started.elapsed().as_millis() as u64, "first reading after connect");
                        }
                    }
                    BleEvent::Disconnected => {
                        self.flush_pending(&mut pending).await;
                        if let Some(done) = fetch.take() {
                            let _ = done.send(Err(Answer::new("device-disconnected", "the device went away mid-download")));
                        }
                        return "device disconnected".into();
                    }
                },
                Some(c) = self.control.recv() => match c {
                    DeviceControl::FetchRecords { done } => match racp_timeout {
                        Some(wait) => {
                            if answer_due.is_none() {
                                if let Err(why) = self.ble_start(&mut link).await {
                                    let _ = done.send(Err(Answer::new("device-control-failed", why)));
                                    continue;
                                }
                                answer_due = Some(Instant::now() + wait);
                            }
                            // A download already running answers this request too.
                            fetch = Some(done);
                        }
                        None => DeviceControl::FetchRecords { done }.not_supported(&self.cfg.id),
                    },
                    DeviceControl::Stream { on, done } if matches!(self.cfg.profile.decoder, DecoderSpec::PolarPmdEcg(_)) => {
                        let request = if on { pmd::start_ecg() } else { pmd::stop_ecg() };
                        match link.write(pmd::CONTROL_POINT, &request).await {
                            Ok(()) => { let _ = done.send(self.set_streaming(on).await); }
                            Err(e) => { let _ = done.send(Err(Answer::new("device-control-failed", format!("PMD: {e}")))); }
                        }
                    }
                    other => {
                        if let Some(c) = self.control_any(other).await {
                            c.not_supported(&self.cfg.id);
                        }
                    }
                },
                _ = shutdown.triggered() => {
                    self.flush_pending(&mut pending).await;
                    if matches!(self.cfg.profile.decoder, DecoderSpec::PolarPmdEcg(_)) {
                        // Let the strap stop streaming (its battery), if it still listens.
                        let stop = pmd::stop_ecg();
                        let _ = tokio::time::timeout(Duration::from_secs(1), link.write(pmd::CONTROL_POINT, &stop)).await;
                    }
                    link.close().await;
                    return "gateway stopping".into();
                }
                _ = crate::clock::until(answer_due) => {
                    self.flush_pending(&mut pending).await;
                    let secs = timeout.unwrap_or_default().as_secs();
                    if let Some(done) = fetch.take() {
                        let _ = done.send(Err(Answer::new("device-silent", format!("no answer in {secs} s"))));
                    }
                    let text = format!("the device did not answer its control point within {secs} s");
                    self.event(Event::new("device-silent", Severity::Warn, text.clone()).with("timeout_s", secs)).await;
                    link.close().await;
                    return text;
                }
                _ = crate::clock::until(chunk_due) => {
                    if let Some(chunk) = self.wave.as_mut().and_then(crate::wave::WaveStream::flush) {
                        self.send_chunk(chunk).await;
                    }
                }
                _ = crate::clock::until(self.limiter.report_due(Instant::now())) => {
                    self.report_suppressed().await;
                }
            }
        }
    }

    /// Handles one notification; `Some` when it answered the awaited control point request (done,
    /// or failed and why).
    async fn ble_notification(
        &mut self,
        uuid: &Uuid,
        bytes: &[u8],
        pending: &mut Assembler,
    ) -> Option<Result<Answer, Answer>> {
        self.counters.frames.fetch_add(1, Ordering::Relaxed);
        let t = capture_time();
        match notify::decode(&self.cfg.profile.decoder, uuid, bytes) {
            Ok(Notified::Reading(r)) => {
                for p in &r.problems {
                    self.event(p.clone()).await;
                }
                self.reading(r, pending, t).await;
                None
            }
            Ok(Notified::Racp(resp)) => {
                self.flush_pending(pending).await;
                Some(match resp {
                    racp::Response::Code { code, .. } if resp.is_success() || resp.is_no_records() => {
                        tracing::info!(code, "stored records delivered");
                        let last = self.memory.clone().unwrap_or_default();
                        Ok(Answer::ok("stored records delivered").with("last_record", last))
                    }
                    racp::Response::Code { request, code } => {
                        let text =
                            format!("the meter refused the record request: {} ({code})", racp::code_meaning(code));
                        self.event(
                            Event::new("racp-error", Severity::Warn, text.clone())
                                .with("request", request)
                                .with("code", code),
                        )
                        .await;
                        Err(Answer::new("racp-error", text))
                    }
                    racp::Response::NumberOfRecords(n) => {
                        tracing::info!(records = n, "meter holds records");
                        Ok(Answer::ok(format!("the meter holds {n} records")).with("records", n))
                    }
                })
            }
            Ok(Notified::PmdControl(c)) => {
                if c.status != 0 {
                    let text = format!("the device refused the ECG start: {} ({})", c.status_meaning(), c.status);
                    self.event(Event::new("pmd-error", Severity::Warn, text.clone()).with("status", c.status)).await;
                    return Some(Err(Answer::new("pmd-error", text)));
                }
                Some(Ok(Answer::ok("the device accepted")))
            }
            Ok(Notified::Samples(mut frame, tdev, ts_ns)) => {
                let rate = self.cfg.profile.wave.as_ref().map_or(130.0, |w| w.rate);
                if pending.place(&mut frame, ts_ns, rate) {
                    self.clock_offset(tdev, t, "pmd-frame").await;
                }
                self.wave_frame(&frame, t).await;
                None
            }
            Err(e) => {
                self.counters.rejected_frames.fetch_add(1, Ordering::Relaxed);
                let event = e.to_event().with("characteristic", uuid.to_string()).with("bytes", hex::encode(bytes));
                self.event(event).await;
                None
            }
        }
    }

    /// A measurement or context, through the session's assembler; a record already delivered
    /// (by number) is passed over.
    async fn reading(&mut self, r: Readings, pending: &mut Assembler, t: i64) {
        if let Some(e) = self.not_forwarded.report(&r) {
            self.send_event(e).await;
        }
        let last = self.last_record();
        for a in pending.reading(r, |record| last.is_some_and(|l| record <= l)) {
            match a {
                Assembled::Ready(m) => self.deliver(m, t).await,
                Assembled::Unmatched(event) => self.event(event).await,
            }
        }
    }

    async fn flush_pending(&mut self, pending: &mut Assembler) {
        if let Some(m) = pending.flush() {
            self.deliver(m, capture_time()).await;
        }
    }

    /// Sends readings; a numbered record advances the device's memory in the same commit.
    async fn deliver(&mut self, r: Readings, t: i64) {
        let remember = r.record.map(|n| n.to_string());
        if let Some(n) = r.record {
            self.memory = Some(n.to_string());
        }
        let mut observations: Vec<Observation> = r.observations;
        if let Some(ms) = self.clock_offset_ms {
            for o in &mut observations {
                o.ctx.get_or_insert_with(Default::default).insert("device_clock_offset_ms".into(), ms.to_string());
            }
        }
        if observations.is_empty() && remember.is_none() {
            return;
        }
        let payload = if observations.is_empty() {
            // Nothing the profile forwards, but the record was read: remember it all the same.
            Payload::Event(
                Event::new("record-without-values", Severity::Info, "a stored record with no value the profile maps")
                    .with("record", r.record.unwrap_or_default()),
            )
        } else {
            self.counters.readings.fetch_add(observations.len() as u64, Ordering::Relaxed);
            Payload::Obs(observations)
        };
        let msg = ToSign { remember, ..ToSign::new(self.source.clone(), payload, t, r.tdev) };
        let _ = self.out.send(Outgoing::Signed(msg)).await;
    }
}
