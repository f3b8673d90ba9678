//! One task per configured device: open its transport (reopening with capped backoff when it
//! vanishes, as a USB unplug does), cut the bytes into frames, decode, and hand readings to the
//! pipeline; acknowledge the device (HL7 ACK) only once the pipeline has accepted the readings.
//! Bad input is counted, logged and reported as an `event`, and the stream carries on.

mod asking;
mod ble;
mod control;
mod failing;
mod images;
mod limiter;

pub use control::{DeviceControl, Done};
pub use images::ImageDevice;
pub use limiter::EventLimiter;

use crate::config::DeviceConfig;
use crate::decode::Decoder;
use crate::framing::{framer_for, FrameError, Framer};
use crate::model::{Event, Severity};
use crate::mqtt::status::LinkState;
use crate::pipeline::{capture_time, Outgoing, Payload, Source, ToSign};
use crate::shutdown::Shutdown;
use crate::transport::{self, Backoff, Link};
use crate::wave::WaveStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

/// How long a device waits for the pipeline to accept a reading before it is not acknowledged.
pub(crate) const ACCEPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Per-device counts, readable while the daemon runs.
#[derive(Debug, Default)]
pub struct DeviceCounters {
    pub frames: AtomicU64,
    pub readings: AtomicU64,
    pub rejected_frames: AtomicU64,
    pub dropped_bytes: AtomicU64,
    pub events: AtomicU64,
    pub connects: AtomicU64,
}

pub struct DeviceTask {
    cfg: DeviceConfig,
    source: Source,
    out: mpsc::Sender<Outgoing>,
    shutdown: Shutdown,
    counters: Arc<DeviceCounters>,
    limiter: EventLimiter,
    decoder: Decoder,
    /// The waveform stream of a waveform device.
    wave: Option<WaveStream>,
    /// The device's memory in the queue: for RACP meters, the last record delivered.
    memory: Option<String>,
    /// How far the device's clock is from the gateway's, when the device says (BLE).
    clock_offset_ms: Option<i64>,
    last_state: Option<(LinkState, Option<String>, Option<bool>)>,
    /// Requests from commands (stream start/stop, fetch records, capture).
    control: mpsc::Receiver<DeviceControl>,
    /// Whether samples are sent: always, unless the profile streams on demand.
    streaming: bool,
    /// BLE: values the profile does not forward, reported once per connection.
    not_forwarded: crate::decode::ble::NotForwarded,
    /// Attempts to open the link that failed since it was last open, and what the journal was told.
    failing: failing::Failing,
}

impl DeviceTask {
    pub fn new(
        cfg: DeviceConfig,
        out: mpsc::Sender<Outgoing>,
        shutdown: Shutdown,
        counters: Arc<DeviceCounters>,
    ) -> Self {
        let source = Source { dev: cfg.id.as_str().into(), profile: cfg.profile.id.as_str().into() };
        let decoder = Decoder::new(cfg.profile.decoder.clone());
        let wave = cfg.profile.wave.clone().map(WaveStream::new);
        let limiter = EventLimiter::new(5, 20);
        let streaming = !cfg.profile.wave.as_ref().is_some_and(|w| w.on_demand);
        // Without a control channel, no request ever arrives.
        let (_, control) = mpsc::channel(1);
        Self {
            cfg,
            source,
            out,
            shutdown,
            counters,
            limiter,
            decoder,
            wave,
            memory: None,
            clock_offset_ms: None,
            last_state: None,
            control,
            streaming,
            not_forwarded: Default::default(),
            failing: Default::default(),
        }
    }

    /// Takes requests from commands on this channel.
    pub fn controlled_by(mut self, control: mpsc::Receiver<DeviceControl>) -> Self {
        self.control = control;
        self
    }

    /// Starts from what the device remembered when the gateway last ran.
    pub fn remembering(mut self, memory: Option<String>) -> Self {
        self.memory = memory;
        self
    }

    /// Runs until shutdown.
    pub async fn run(mut self) {
        let span = tracing::info_span!(
            "device",
            device_id = %self.cfg.id,
            profile = %self.cfg.profile.id,
            transport = transport::kind(&self.cfg.transport)
        );
        async move {
            let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
            while !self.shutdown.is_triggered() {
                self.state(LinkState::Connecting, None).await;
                let wait = match self.cfg.transport {
                    crate::config::DeviceTransport::Ble { .. } => self.ble_attempt(&mut backoff).await,
                    crate::config::DeviceTransport::Serial { .. } => self.serial_attempt(&mut backoff).await,
                    // Image devices run as their own task (see `images`).
                    crate::config::DeviceTransport::Folder { .. } | crate::config::DeviceTransport::Camera { .. } => {
                        return
                    }
                };
                if self.shutdown.is_triggered() {
                    break;
                }
                let until = tokio::time::Instant::now() + wait;
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => break,
                        _ = self.shutdown.triggered() => break,
                        Some(c) = self.control.recv() => {
                            if let Some(c) = self.control_any(c).await {
                                c.not_connected();
                            }
                        }
                    }
                }
            }
            self.state(LinkState::Disconnected, Some("gateway stopping".into())).await;
        }
        .instrument(span)
        .await
    }

    /// Opens the serial link and reads until it ends; how long to wait before the next attempt.
    async fn serial_attempt(&mut self, backoff: &mut Backoff) -> Duration {
        match transport::open(&self.cfg.transport, &self.cfg.profile.serial) {
            Ok(link) => {
                tracing::info!("device link open");
                self.link_up(backoff).await;
                let why = self.session(link).await;
                self.link_down(why, backoff).await
            }
            Err(e) => self.link_failed(e.to_string(), backoff).await,
        }
    }

    /// The link is up: counted, published, backoff reset.
    async fn link_up(&mut self, backoff: &mut Backoff) {
        self.failing.opened();
        self.counters.connects.fetch_add(1, Ordering::Relaxed);
        self.state(LinkState::Connected, None).await;
        backoff.reset();
    }

    /// The link ended: a partial waveform chunk goes out, the state says why; how long to wait
    /// before the next attempt.
    async fn link_down(&mut self, why: String, backoff: &mut Backoff) -> Duration {
        self.wave_link_lost().await;
        if !self.shutdown.is_triggered() {
            tracing::warn!(reason = %why, "device link lost; reconnecting");
            self.state(LinkState::Disconnected, Some(why)).await;
        }
        backoff.next_delay()
    }

    /// The link could not be opened; how long to wait before the next attempt. The journal says
    /// why once, and again when the reason changes (the attempts repeat with backoff).
    async fn link_failed(&mut self, why: String, backoff: &mut Backoff) -> Duration {
        match self.failing.failed(&why, Instant::now()) {
            Some(1) => tracing::warn!(error = %why, "cannot reach the device; trying again with backoff"),
            Some(attempts) => tracing::warn!(error = %why, attempts, "still cannot reach the device"),
            None => tracing::debug!(error = %why, "cannot reach the device"),
        }
        self.state(LinkState::Error, Some(why)).await;
        backoff.next_delay()
    }

    /// Reads until the link ends; returns why it ended.
    async fn session(&mut self, mut link: Box<dyn Link>) -> String {
        let mut framer = framer_for(&self.cfg.profile.framing);
        let mut buf = vec![0u8; 8192];
        let mut shutdown = self.shutdown.clone();
        let mut asking = asking::Asking::new(self);
        if let Some(a) = asking.as_mut() {
            let steps = a.dialogue.connected(Instant::now(), time::OffsetDateTime::now_utc());
            if let Err(why) = self.asked(a, steps, link.as_mut()).await {
                return why;
            }
        }
        loop {
            let chunk_due = self.wave.as_ref().and_then(WaveStream::deadline);
            let framer_due = framer.deadline();
            let reply_due = asking.as_ref().and_then(|a| a.dialogue.deadline());
            let fetch_due = asking.as_ref().and_then(|a| a.next_fetch);
            let n = tokio::select! {
                r = link.read(&mut buf) => r,
                _ = shutdown.triggered() => return "gateway stopping".into(),
                _ = crate::clock::until(reply_due) => {
                    if let Some(a) = asking.as_mut() {
                        let steps = a.dialogue.tick(Instant::now(), time::OffsetDateTime::now_utc());
                        if let Err(why) = self.asked(a, steps, link.as_mut()).await {
                            return why;
                        }
                    }
                    continue;
                }
                _ = crate::clock::until(fetch_due) => {
                    if let Some(a) = asking.as_mut() {
                        a.next_fetch = a.dialogue.spec().every.map(|e| Instant::now() + e);
                        let steps = a.dialogue.fetch(Instant::now(), time::OffsetDateTime::now_utc());
                        if let Err(why) = self.asked(a, steps, link.as_mut()).await {
                            return why;
                        }
                    }
                    continue;
                }
                _ = crate::clock::until(framer_due) => {
                    if let Some(e) = framer.expire() {
                        self.frame_error(e).await;
                    }
                    let bytes = framer.replies();
                    if !bytes.is_empty() {
                        if let Err(e) = transport::write_to(link.as_mut(), &bytes).await {
                            return e.to_string();
                        }
                    }
                    continue;
                }
                _ = crate::clock::until(chunk_due) => {
                    if let Some(chunk) = self.wave.as_mut().and_then(WaveStream::flush) {
                        self.send_chunk(chunk).await;
                    }
                    continue;
                }
                _ = crate::clock::until(self.limiter.report_due(Instant::now())) => {
                    self.report_suppressed().await;
                    continue;
                }
                Some(c) = self.control.recv() => {
                    match (self.control_any(c).await, asking.as_mut()) {
                        (Some(DeviceControl::FetchRecords { done }), Some(a)) if !a.dialogue.spec().on_fetch.is_empty() => {
                            a.waiting.push(done);
                            let steps = a.dialogue.fetch(Instant::now(), time::OffsetDateTime::now_utc());
                            if let Err(why) = self.asked(a, steps, link.as_mut()).await {
                                return why;
                            }
                        }
                        (Some(DeviceControl::FetchRecords { done }), None) if self.astm_query().is_some() => {
                            let query = self.astm_query().unwrap_or_default();
                            let header = b"H|\\^&|||spokegate".to_vec();
                            framer.request(&[&header, query.as_bytes(), b"L|1|N"]);
                            let bytes = framer.replies();
                            if let Err(e) = transport::write_to(link.as_mut(), &bytes).await {
                                let _ = done.send(Err(crate::command::Answer::new("device-control-failed", e.to_string())));
                                return e.to_string();
                            }
                            let text = format!("{}: query sent; results come as the device sends them", self.cfg.id);
                            let _ = done.send(Ok(crate::command::Answer::ok(text)));
                        }
                        (Some(c), _) => c.not_supported(&self.cfg.id),
                        (None, _) => {}
                    }
                    continue;
                }
            };
            let n = match n {
                Ok(0) => {
                    if let Some(e) = framer.finish() {
                        self.frame_error(e).await;
                    }
                    return "end of stream".into();
                }
                Ok(n) => n,
                Err(e) => {
                    if let Some(fe) = framer.finish() {
                        self.frame_error(fe).await;
                    }
                    return e.to_string();
                }
            };
            framer.push(&buf[..n]);
            if let Err(e) = self.drain_frames(framer.as_mut(), link.as_mut(), asking.as_mut()).await {
                return e.to_string();
            }
        }
    }

    /// The host query an ASTM device is asked with on `records.fetch`, if its profile has one.
    fn astm_query(&self) -> Option<String> {
        match &self.cfg.profile.decoder {
            crate::profile::DecoderSpec::Astm(a) => a.fetch_query.clone(),
            _ => None,
        }
    }

    /// Runs dialogue steps; `Err` says why the session ends (link failed, device silent).
    async fn asked(
        &mut self,
        a: &mut asking::Asking,
        steps: Vec<crate::dialogue::Step>,
        link: &mut dyn Link,
    ) -> Result<(), String> {
        match self.dialogue_steps(a, steps, link).await {
            Ok(true) => Ok(()),
            Ok(false) => Err("the device answered none of the gateway's requests".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Takes every whole frame out of the framer; the link protocol's answers (ASTM ACK/NAK) go
    /// out in order, the one owed for a frame only once its readings are committed.
    async fn drain_frames(
        &mut self,
        framer: &mut dyn Framer,
        link: &mut dyn Link,
        mut asking: Option<&mut asking::Asking>,
    ) -> std::io::Result<()> {
        loop {
            let next = framer.next_frame();
            let replies = framer.replies();
            if !replies.is_empty() {
                transport::write_to(link, &replies).await?;
            }
            match next {
                Ok(Some(frame)) if asking.as_ref().is_some_and(|a| a.dialogue.deadline().is_some()) => {
                    // A reply to the gateway's request.
                    self.counters.frames.fetch_add(1, Ordering::Relaxed);
                    let a = asking.as_deref_mut().expect("checked above");
                    let steps =
                        a.dialogue.line(&frame, Instant::now(), time::OffsetDateTime::now_utc()).unwrap_or_default();
                    self.asked(a, steps, link).await.map_err(std::io::Error::other)?;
                }
                Ok(Some(frame)) => {
                    let owed = framer.owes_answer();
                    let accepted = self.frame(&frame, link, owed).await?;
                    let answer = framer.settle(accepted);
                    if !answer.is_empty() {
                        transport::write_to(link, &answer).await?;
                    }
                }
                Ok(None) => return Ok(()),
                Err(e) => self.frame_error(e).await,
            }
        }
    }

    /// Decodes a frame and hands its readings on. With `confirm` (or a decoder reply to send),
    /// waits until they are committed; `false` when they were not accepted in time.
    async fn frame(&mut self, frame: &[u8], link: &mut dyn Link, confirm: bool) -> std::io::Result<bool> {
        self.counters.frames.fetch_add(1, Ordering::Relaxed);
        let t = capture_time();
        match self.decoder.decode(frame, t) {
            Ok(decoded) => {
                for p in decoded.problems {
                    self.event(p).await;
                }
                if let Some(samples) = &decoded.wave {
                    self.wave_frame(samples, t).await;
                    return Ok(true);
                }
                if decoded.observations.is_empty() {
                    if let Some(reply) = decoded.reply {
                        transport::write_to(link, &reply).await?;
                    }
                    return Ok(true);
                }
                let n = decoded.observations.len() as u64;
                let (tx, rx) = (confirm || decoded.reply.is_some()).then(oneshot::channel).unzip();
                let msg = Outgoing::Signed(ToSign {
                    accepted: tx,
                    ..ToSign::new(self.source.clone(), Payload::Obs(decoded.observations), t, decoded.tdev)
                });
                if self.out.send(msg).await.is_err() {
                    return Ok(false);
                }
                self.counters.readings.fetch_add(n, Ordering::Relaxed);
                let Some(rx) = rx else { return Ok(true) };
                match tokio::time::timeout(ACCEPT_TIMEOUT, rx).await {
                    Ok(Ok(())) => {
                        if let Some(reply) = decoded.reply {
                            transport::write_to(link, &reply).await?;
                        }
                        Ok(true)
                    }
                    _ => {
                        tracing::error!("reading not accepted by the pipeline; device not acknowledged");
                        Ok(false)
                    }
                }
            }
            Err(e) => {
                self.counters.rejected_frames.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(code = e.code, reason = %e.text, "frame rejected");
                self.event(e.to_event()).await;
                self.wave_rejected().await;
                if let Some(reply) = &e.reply {
                    transport::write_to(link, reply).await?;
                }
                // Sending it again would not make it readable.
                Ok(true)
            }
        }
    }

    async fn frame_error(&mut self, e: FrameError) {
        self.counters.rejected_frames.fetch_add(1, Ordering::Relaxed);
        self.counters.dropped_bytes.fetch_add(e.bytes() as u64, Ordering::Relaxed);
        tracing::debug!(code = e.code(), reason = %e, "bytes dropped by the framer");
        self.event(e.to_event()).await;
        self.wave_rejected().await;
    }

    /// Samples of a waveform device: into the stream; full chunks and gaps out. An on-demand
    /// device's samples are dropped while it is stopped.
    async fn wave_frame(&mut self, frame: &crate::decode::WaveFrame, t: i64) {
        if !self.streaming {
            return;
        }
        let Some(stream) = self.wave.as_mut() else { return };
        let mut chunks = Vec::new();
        let gap = stream.frame(frame, t, Instant::now(), &mut chunks);
        self.counters.readings.fetch_add(frame.samples.len() as u64, Ordering::Relaxed);
        if let Some(gap) = gap {
            self.send_event(gap).await;
        }
        for chunk in chunks {
            self.send_chunk(chunk).await;
        }
    }

    async fn wave_rejected(&mut self) {
        if let Some(gap) = self.wave.as_mut().and_then(WaveStream::rejected) {
            self.send_event(gap).await;
        }
    }

    async fn wave_link_lost(&mut self) {
        if let Some(chunk) = self.wave.as_mut().and_then(WaveStream::link_lost) {
            self.send_chunk(chunk).await;
        }
    }

    async fn send_chunk(&self, chunk: crate::model::Wave) {
        let msg = ToSign::new(self.source.clone(), Payload::Wave(chunk), capture_time(), None);
        let _ = self.out.send(Outgoing::Signed(msg)).await;
    }

    /// Sends an event, within the device's event rate.
    async fn event(&mut self, mut event: Event) {
        self.counters.events.fetch_add(1, Ordering::Relaxed);
        match self.limiter.admit(Instant::now()) {
            Some(0) => {}
            Some(suppressed) => event = event.with("suppressed_before", suppressed),
            None => return,
        }
        tracing::warn!(code = %event.code, "device input rejected");
        self.send_event(event).await;
    }

    async fn report_suppressed(&mut self) {
        if let Some(n) = self.limiter.admit(Instant::now()) {
            let text = format!("{n} further input problems were not reported one by one");
            self.send_event(Event::new("events-suppressed", Severity::Warn, text).with("suppressed", n)).await;
        }
    }

    async fn send_event(&self, event: Event) {
        let msg = ToSign::new(self.source.clone(), Payload::Event(event), capture_time(), None);
        let _ = self.out.send(Outgoing::Signed(msg)).await;
    }

    /// Publishes the link state when it changes.
    async fn state(&mut self, state: LinkState, detail: Option<String>) {
        let streaming = self.cfg.profile.wave.as_ref().is_some_and(|w| w.on_demand).then_some(self.streaming);
        let now = Some((state, detail.clone(), streaming));
        if self.last_state == now {
            return;
        }
        self.last_state = now;
        let _ = self.out.send(Outgoing::State { from: self.source.clone(), state, detail, streaming }).await;
    }

    /// Handles what every device handles the same way (an on-demand stream's start and stop);
    /// gives back what the transport must handle.
    async fn control_any(&mut self, c: DeviceControl) -> Option<DeviceControl> {
        match c {
            DeviceControl::Stream { on, done } => {
                let _ = done.send(self.set_streaming(on).await);
                None
            }
            other => Some(other),
        }
    }

    /// Starts or stops sending an on-demand device's samples. Each start begins a new stream
    /// (`i0` = 0), so the hub records every on-demand strip as its own record.
    async fn set_streaming(&mut self, on: bool) -> Result<crate::command::Answer, crate::command::Answer> {
        use crate::command::Answer;
        if self.streaming == on {
            let now = if on { "already streaming" } else { "already stopped" };
            return Ok(Answer::ok(format!("{} {now}", self.cfg.id)).with("streaming", on));
        }
        if !on {
            if let Some(chunk) = self.wave.as_mut().and_then(WaveStream::flush) {
                self.send_chunk(chunk).await;
            }
        }
        self.wave = self.cfg.profile.wave.clone().map(WaveStream::new);
        self.streaming = on;
        tracing::info!(streaming = on, "on-demand stream");
        if let Some((state, detail, _)) = self.last_state.clone() {
            self.state(state, detail).await;
        }
        let text = if on { "samples are sent from now on" } else { "samples are no longer sent" };
        Ok(Answer::ok(format!("{}: {text}", self.cfg.id)).with("streaming", on))
    }
}
