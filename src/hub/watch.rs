//! `spokegate watch`: subscribe to a broker, check every message, print what is valid and report
//! what is not; with a hub key, acknowledge (v1.1 `ack`) what it has shown or recorded, so that
//! gateways under hub delivery free their queues.

use super::acker::Acker;
use super::dedup::Deduplicator;
use super::reassembly::Reassembler;
use super::record::Recorder;
use super::verify::HubMessage;
use super::view::{human_lines, json_line, wave_lines};
use crate::mqtt::spawn_poller;
use crate::shutdown::Shutdown;
use crate::sign::{Binding, BoundKey, KeyRing, SigningKey};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchFormat {
    Human,
    Json,
}

#[derive(Clone)]
pub struct WatchOptions {
    /// The broker, its TLS files and login.
    pub broker: super::BrokerLogin,
    /// Gateway keys bound to their (site, gw), and hub keys (to show commands).
    pub keys: KeyRing,
    pub format: WatchFormat,
    /// Topic filter, `spokegate/v1/#` by default.
    pub filter: String,
    pub client_id: String,
    /// Write waveform streams as WFDB records and WAV files here.
    pub record: Option<std::path::PathBuf>,
    /// Acknowledge what was shown or recorded, signed with this hub key.
    pub ack_key: Option<Arc<SigningKey>>,
    /// Append the lines to this file instead of the output, synced before each acknowledgement
    /// (a hub that stores every message in a file).
    pub out_file: Option<std::path::PathBuf>,
    /// Also hands every verified gateway message (the first time it is seen) here: the demo's
    /// consult view.
    pub observe: Option<tokio::sync::mpsc::UnboundedSender<Observed>>,
}

/// A verified gateway message as it arrived.
#[derive(Debug, Clone)]
pub struct Observed {
    pub topic: String,
    pub envelope: Vec<u8>,
    pub body: Box<crate::model::Body>,
}

/// What a watch session saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WatchStats {
    /// Signed messages verified (first time each).
    pub verified: u64,
    /// Retained status and state messages (unsigned, shown as such).
    pub unsigned: u64,
    /// Signed messages seen again (same site, gw and seq): at-least-once delivery.
    pub duplicates: u64,
    pub rejected: u64,
    /// Waveform chunks placed, their samples per channel, and the gaps between them.
    pub chunks: u64,
    pub samples: u64,
    pub gaps: u64,
    pub missing: u64,
    /// Acknowledgements sent (messages of `ack` type, each covering many seqs).
    pub acks_sent: u64,
    /// Media parts stored and images completed (with `--record`), and parts refused.
    pub media_parts: u64,
    pub images: u64,
    pub media_refused: u64,
}

/// Acknowledgements are sent at the latest this long after the first seq they cover, or as soon
/// as this many seqs of one gateway wait.
const ACK_DELAY: Duration = Duration::from_millis(20);
const ACK_BATCH: usize = 256;

/// Events taken from the client at once, and how many messages make verifying them on several
/// cores worth it.
const EVENT_BATCH: usize = 512;
const PARALLEL_CHECKS: usize = 32;

/// Retained status and state topics remembered (to tell a repeat from news).
const MAX_RETAINED: usize = 10_000;

/// Everything a watch session keeps across connections.
struct Watcher {
    opts: WatchOptions,
    dedup: Deduplicator,
    /// Retained status and state are published again after every reconnect; show changes only.
    last_retained: HashMap<String, Vec<u8>>,
    stats: WatchStats,
    waves: Reassembler,
    recorder: Option<Recorder>,
    /// Images (with `--record`).
    media: Option<super::media::MediaStore>,
    acker: Option<Acker>,
    file: Option<std::io::BufWriter<std::fs::File>>,
}

fn mqtt_options(opts: &WatchOptions) -> std::io::Result<MqttOptions> {
    opts.broker.options(&opts.client_id).map_err(std::io::Error::other)
}

/// Watches until shutdown, writing a line per reading to `out`.
pub async fn watch(
    mut opts: WatchOptions,
    mut shutdown: Shutdown,
    out: &mut (dyn Write + Send),
) -> std::io::Result<WatchStats> {
    let acker = opts.ack_key.clone().and_then(|k| Acker::new(k, ACK_DELAY, ACK_BATCH));
    if let (Some(a), Some(k)) = (&acker, &opts.ack_key) {
        // Its own acknowledgements come back on the subscription: they verify.
        let own = BoundKey { key: k.public().clone(), binding: Binding::Hub { hub: a.hub().to_string() } };
        let _ = opts.keys.insert(own);
    }
    let recorder = opts.record.as_deref().map(Recorder::new).transpose()?;
    let media = opts.record.as_deref().map(super::media::MediaStore::new).transpose()?;
    let file = match &opts.out_file {
        Some(p) => Some(std::io::BufWriter::new(std::fs::OpenOptions::new().create(true).append(true).open(p)?)),
        None => None,
    };
    let mut w = Watcher {
        file,
        opts,
        dedup: Deduplicator::new(1 << 20),
        last_retained: HashMap::new(),
        stats: WatchStats::default(),
        waves: Reassembler::default(),
        recorder,
        media,
        acker,
    };
    w.report_incomplete(out)?;
    let mut checker = super::checking::Checker::start(w.opts.keys.clone(), PARALLEL_CHECKS)?;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    'connections: loop {
        let (client, eventloop) = crate::mqtt::client(mqtt_options(&w.opts)?, 1024);
        let mut events = spawn_poller(eventloop, EVENT_BATCH);
        let mut connected = false;
        // The poller's last event (an error) is handed over: nothing follows it.
        let mut ended = false;
        loop {
            tokio::select! {
                // Everything that arrived meanwhile is taken at once and checked on the checking
                // thread (signatures on several cores) while the batch before it is shown here.
                ev = events.recv(), if checker.has_room() && !ended => {
                    let mut batch = vec![ev.unwrap_or(Err(None))];
                    while batch.len() < EVENT_BATCH && batch.last().is_some_and(|e| e.is_ok()) {
                        match events.try_recv() {
                            Ok(e) => batch.push(e),
                            Err(_) => break,
                        }
                    }
                    ended = batch.last().is_some_and(|e| e.is_err());
                    checker.check(batch);
                }
                Some(checked) = checker.next(), if checker.is_busy() => {
                    if let Some(why) = w.batch(checked, &client, &mut connected, out)? {
                        tracing::warn!(error = %why, "watch: broker connection lost; retrying");
                        break;
                    }
                }
                _ = tick.tick(), if connected => {
                    w.flush_acks(&client, false)?;
                    if let Some(r) = w.recorder.as_mut() {
                        r.tick(Instant::now())?;
                    }
                }
                _ = shutdown.triggered() => {
                    // What arrived is shown and recorded before the end.
                    while checker.is_busy() {
                        let Some(checked) = checker.next().await else { break };
                        w.batch(checked, &client, &mut connected, out)?;
                    }
                    if connected {
                        w.flush_acks(&client, true)?;
                        // Give the client a moment to write them.
                        let _ = client.try_disconnect();
                        let _ = tokio::time::timeout(Duration::from_secs(1), async {
                            while let Some(Ok(e)) = events.recv().await {
                                if matches!(e, Event::Outgoing(rumqttc::Outgoing::Disconnect)) { break }
                            }
                        }).await;
                    }
                    break 'connections;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.triggered() => break,
        }
    }
    w.report_incomplete(out)?;
    w.sync()?;
    Ok(w.stats)
}

impl Watcher {
    /// Shows (and records) a checked batch in arrival order: subscribes on a connect; returns
    /// why the connection ended when it did (the poller's last event).
    fn batch(
        &mut self,
        checked: super::checking::Checked,
        client: &AsyncClient,
        connected: &mut bool,
        out: &mut (dyn Write + Send),
    ) -> std::io::Result<Option<String>> {
        let mut verdicts = checked.verdicts.into_iter();
        let mut lost = None;
        for e in &checked.events {
            match e {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    // Subscribe on every connect: the session is clean.
                    *connected = true;
                    let _ = client.try_subscribe(self.opts.filter.clone(), QoS::AtLeastOnce);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Some(c) = verdicts.next() {
                        self.message(&p.topic, &p.payload, c, out)?;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    lost = Some(e.as_ref().map(|e| e.to_string()).unwrap_or_else(|| "event loop ended".into()));
                    break;
                }
            }
        }
        self.flush_lines(out)?;
        Ok(lost)
    }

    /// Shows (and records) one message as `check` found it; a verified signed one is
    /// acknowledged later.
    fn message(
        &mut self,
        topic: &str,
        payload: &[u8],
        checked: Result<HubMessage, super::verify::Rejection>,
        out: &mut (dyn Write + Send),
    ) -> std::io::Result<()> {
        let format = self.opts.format;
        let line = match checked {
            Ok(HubMessage::Ack(_)) if format == WatchFormat::Human => return Ok(()),
            Ok(msg) => {
                let fresh = match &msg {
                    HubMessage::Signed(b) => {
                        let first = self.dedup.first_time(&b.site, &b.gw, b.seq);
                        // Stored (shown, recorded) now or before: acknowledged either way.
                        if let Some(a) = self.acker.as_mut() {
                            a.stored(&b.site, &b.gw, b.seq, Instant::now());
                        }
                        first
                    }
                    HubMessage::Command(_) | HubMessage::Ack(_) => true,
                    // A retained status or state published again unchanged (after a reconnect)
                    // is not news, and not a duplicate reading either.
                    _ if self.retained_again(topic, payload) => return Ok(()),
                    _ => true,
                };
                if fresh {
                    if let (HubMessage::Signed(b), Some(o)) = (&msg, &self.opts.observe) {
                        let _ = o.send(Observed { topic: topic.into(), envelope: payload.to_vec(), body: b.clone() });
                    }
                    if msg.is_signed() {
                        self.stats.verified += 1;
                    } else {
                        self.stats.unsigned += 1;
                    }
                    let wave_notes = match &msg {
                        HubMessage::Signed(b) if b.media.is_some() => self.place_media(b, payload),
                        HubMessage::Signed(b) => self.place_wave(b, format == WatchFormat::Human),
                        _ => Vec::new(),
                    };
                    let clock_note = match &msg {
                        HubMessage::Signed(b) => self.follow_clock_step(b),
                        _ => None,
                    };
                    match format {
                        WatchFormat::Human if !wave_notes.is_empty() => wave_notes.join("\n"),
                        WatchFormat::Human => {
                            human_lines(&msg).into_iter().chain(clock_note).collect::<Vec<_>>().join("\n")
                        }
                        WatchFormat::Json => {
                            let verdict = if msg.is_signed() { "verified" } else { "unsigned" };
                            json_line(topic, verdict, Some(&msg), None)
                        }
                    }
                } else {
                    self.stats.duplicates += 1;
                    match format {
                        WatchFormat::Human => return Ok(()),
                        WatchFormat::Json => json_line(topic, "duplicate", Some(&msg), None),
                    }
                }
            }
            Err(why) => {
                self.stats.rejected += 1;
                match format {
                    WatchFormat::Human => format!("✘ REJECTED {}: {why}", super::view::clean(topic)),
                    WatchFormat::Json => json_line(topic, "rejected", None, Some(&why.to_string())),
                }
            }
        };
        if !line.is_empty() {
            match self.file.as_mut() {
                Some(f) => writeln!(f, "{line}")?,
                None => writeln!(out, "{line}")?,
            }
        }
        Ok(())
    }

    /// Whether an unsigned retained status or state repeats what this topic said last. Only the
    /// topics of gateways in the keyring are remembered, and at most [`MAX_RETAINED`] of them: a
    /// flood of invented topics is shown as unsigned and costs no memory.
    fn retained_again(&mut self, topic: &str, payload: &[u8]) -> bool {
        let known = crate::mqtt::topics::parse(topic).is_some_and(|t| {
            let (site, gw) = t.site_gw();
            self.opts.keys.binds_gateway(site, gw)
        });
        if !known {
            return false;
        }
        if let Some(last) = self.last_retained.get_mut(topic) {
            let same = last.as_slice() == payload;
            *last = payload.to_vec();
            return same;
        }
        if self.last_retained.len() >= MAX_RETAINED {
            return false;
        }
        self.last_retained.insert(topic.to_string(), payload.to_vec());
        false
    }

    /// Hands the lines written so far to the file or stdout (after every batch, so a reader of
    /// `--out` sees every message without waiting for the next).
    fn flush_lines(&mut self, out: &mut (dyn Write + Send)) -> std::io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => out.flush(),
        }
    }

    /// Forces what was recorded and written to disk.
    fn sync(&mut self) -> std::io::Result<()> {
        if let Some(r) = self.recorder.as_mut() {
            r.sync()?;
        }
        if let Some(f) = self.file.as_mut() {
            f.flush()?;
            f.get_ref().sync_data()?;
        }
        Ok(())
    }

    /// Sends the acknowledgements that are due (all with `all`); what is recorded is synced to
    /// disk first, so an acknowledged seq is really stored.
    fn flush_acks(&mut self, client: &AsyncClient, all: bool) -> std::io::Result<()> {
        let Some(acker) = self.acker.as_mut() else { return Ok(()) };
        let now = Instant::now();
        if acker.is_empty() || !(all || acker.due(now)) {
            return Ok(());
        }
        let acks = acker.take(now, all);
        self.sync()?;
        for p in acks {
            if client.try_publish(p.topic, QoS::AtLeastOnce, false, p.payload).is_ok() {
                self.stats.acks_sent += 1;
            }
        }
        Ok(())
    }

    /// Stores a `media` part (with `--record`): the lines to show for it (progress every tenth of
    /// an image, its completion, or why a part was refused).
    fn place_media(&mut self, body: &crate::model::Body, envelope: &[u8]) -> Vec<String> {
        use super::media::MediaProgress;
        let (Some(store), Some(m)) = (self.media.as_mut(), body.media.as_ref()) else { return Vec::new() };
        let kid =
            crate::sign::parse_envelope(envelope).map(|s| hex::encode(&s.protected.header.key_id)).unwrap_or_default();
        let origin = super::view::clean(&body.origin());
        match store.accept(body, &kid) {
            Ok(MediaProgress::Part { id, have, parts }) => {
                self.stats.media_parts += 1;
                let step = (parts / 10).max(1);
                if have == 1 || have % step == 0 {
                    vec![format!("▣ image {id} from {origin}: {have}/{parts} parts ({}%)", have * 100 / parts)]
                } else {
                    Vec::new()
                }
            }
            Ok(MediaProgress::Duplicate { .. }) => Vec::new(),
            Ok(MediaProgress::Complete { id, path, bytes }) => {
                self.stats.media_parts += 1;
                self.stats.images += 1;
                vec![format!(
                    "▣ image {id} from {origin}: complete, {bytes} bytes, SHA-256 checked -> {}",
                    path.display()
                )]
            }
            Err(e) => {
                self.stats.media_refused += 1;
                tracing::warn!(error = %e, part = m.part, "media part not stored");
                vec![format!("✘ media part {}/{} of {origin}: {e}", m.part, m.parts)]
            }
        }
    }

    /// Names the images still missing parts.
    fn report_incomplete(&mut self, out: &mut (dyn Write + Send)) -> std::io::Result<()> {
        let Some(store) = self.media.as_ref() else { return Ok(()) };
        for (image, missing) in store.incomplete() {
            let shown: Vec<String> = missing.iter().take(20).map(u32::to_string).collect();
            let more = if missing.len() > 20 { format!(" and {} more", missing.len() - 20) } else { String::new() };
            let line = format!("▣ image {image}: {} parts missing: {}{more}", missing.len(), shown.join(", "));
            match self.file.as_mut() {
                Some(f) => writeln!(f, "{line}")?,
                None => writeln!(out, "{line}")?,
            }
        }
        Ok(())
    }

    /// A gateway's clock step moves the start of its recordings begun on the old clock; a step
    /// that is not possible is not followed, and the line says why.
    fn follow_clock_step(&mut self, body: &crate::model::Body) -> Option<String> {
        match super::clock_step(body)? {
            Ok(step) => {
                if let Some(rec) = self.recorder.as_mut() {
                    if let Err(e) = rec.clock_stepped(&body.site, &body.gw, step) {
                        tracing::error!(error = %e, gw = %body.gw, "cannot rewrite an ended recording's header");
                    }
                }
                None
            }
            Err(why) => {
                tracing::warn!(gw = %body.gw, seq = body.seq, %why, "clock step not followed");
                Some(format!("✘ clock step of {} not followed: {why}", super::view::clean(&body.origin())))
            }
        }
    }

    /// Reassembles a `wave` body (and records it): the lines to show for it (with `lines`).
    fn place_wave(&mut self, body: &crate::model::Body, lines: bool) -> Vec<String> {
        let Some(result) = self.waves.accept(body) else { return Vec::new() };
        match result {
            Ok(placed) => {
                let stats = &mut self.stats;
                stats.chunks += 1;
                stats.samples = stats.samples.saturating_add(placed.channels.first().map_or(0, |c| c.len() as u64));
                if let Some((_, missing)) = placed.gap {
                    stats.gaps += 1;
                    stats.missing = stats.missing.saturating_add(missing);
                }
                if let (Some(rec), Some(wave)) = (self.recorder.as_mut(), body.wave.as_ref()) {
                    if let Err(e) = rec.write(&placed, wave, body.seq) {
                        tracing::error!(error = %e, stream = %placed.key, "cannot record the waveform");
                    }
                }
                if lines {
                    wave_lines(body, &placed)
                } else {
                    Vec::new()
                }
            }
            Err(e) => vec![format!("✘ wave chunk #{} of {}: {e}", body.seq, super::view::clean(&body.origin()))],
        }
    }
}
