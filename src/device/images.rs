//! Image devices: a camera (a still when the hub, the operator or a timer asks) or a folder
//! (each new complete file once). Both hand whole images to [`crate::media`], which checks them,
//! removes identifying metadata and cuts them into `media` parts; the parts of one image go to
//! the pipeline together, the last carrying the device memory (a folder's mark), so an image is
//! committed whole or sent again whole after a crash, with the same `id`.
//!
//! Bad files (empty, truncated, too large, unknown, vanished while read) and failed stills are
//! reported as signed events (`media-refused`, `camera-failed`); nothing of them is sent. A
//! refused file's event carries the folder's mark, so it is refused once, not at every restart.

use super::{DeviceControl, ACCEPT_TIMEOUT};
use crate::command::Answer;
use crate::config::{DeviceConfig, DeviceTransport, MediaConfig};
use crate::media::{parts::PartPlan, scrub::scrub, split, Still, StillError};
use crate::model::{Event, Severity};
use crate::mqtt::status::LinkState;
use crate::pipeline::{Outgoing, Payload, Source, ToSign};
use crate::profile::{DecoderSpec, ImageSpec};
use crate::shutdown::Shutdown;
use crate::transport::folder::{self, FolderEvent, FolderTracker, Listed, Mark};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

/// One image device's task.
pub struct ImageDevice {
    cfg: DeviceConfig,
    source: Source,
    out: mpsc::Sender<Outgoing>,
    shutdown: Shutdown,
    counters: Arc<super::DeviceCounters>,
    control: mpsc::Receiver<DeviceControl>,
    media: MediaConfig,
    spec: ImageSpec,
    memory: Option<String>,
    last_state: Option<(LinkState, Option<String>)>,
}

/// An image that was sent: its id and number of parts.
struct Sent {
    id: String,
    parts: usize,
}

impl ImageDevice {
    pub fn new(
        cfg: DeviceConfig,
        out: mpsc::Sender<Outgoing>,
        shutdown: Shutdown,
        counters: Arc<super::DeviceCounters>,
        control: mpsc::Receiver<DeviceControl>,
        media: MediaConfig,
        memory: Option<String>,
    ) -> Self {
        let source = Source { dev: cfg.id.as_str().into(), profile: cfg.profile.id.as_str().into() };
        let spec = match &cfg.profile.decoder {
            DecoderSpec::Image(s) => s.clone(),
            _ => ImageSpec::default(),
        };
        Self { cfg, source, out, shutdown, counters, control, media, spec, memory, last_state: None }
    }

    pub async fn run(mut self) {
        let span = tracing::info_span!(
            "device",
            device_id = %self.cfg.id,
            profile = %self.cfg.profile.id,
            transport = crate::transport::kind(&self.cfg.transport)
        );
        async move {
            match self.cfg.transport.clone() {
                DeviceTransport::Folder { path, pattern } => self.run_folder(path, pattern).await,
                DeviceTransport::Camera { path } => self.run_camera(path).await,
                _ => tracing::error!("not an image device"),
            }
        }
        .instrument(span)
        .await
    }

    async fn state(&mut self, state: LinkState, detail: Option<String>) {
        let now = Some((state, detail.clone()));
        if self.last_state == now {
            return;
        }
        self.last_state = now;
        let _ = self.out.send(Outgoing::State { from: self.source.clone(), state, detail, streaming: None }).await;
    }

    /// Signs an event; `remember` (a folder's mark) is committed with it.
    async fn event(
        &mut self,
        code: &str,
        sev: Severity,
        text: String,
        data: Vec<(&str, serde_json::Value)>,
        remember: Option<String>,
    ) {
        self.counters.events.fetch_add(1, Ordering::Relaxed);
        let mut event = Event::new(code, sev, text);
        for (k, v) in data {
            event = event.with(k, v);
        }
        let mut job = ToSign::new(self.source.clone(), Payload::Event(event), crate::pipeline::capture_time(), None);
        job.remember = remember;
        let _ = self.out.send(Outgoing::Signed(job)).await;
    }

    /// Checks, scrubs and splits one image and hands its parts to the pipeline; returns once they
    /// are committed (or not). `remember` is committed with the last part.
    async fn send_image(
        &mut self,
        bytes: Vec<u8>,
        captured: i64,
        settings: BTreeMap<String, serde_json::Value>,
        cmd: Option<String>,
        remember: Option<String>,
    ) -> Result<Sent, StillError> {
        let mut still = Still::check(bytes, captured, self.media.max_file_bytes)?;
        still.settings = settings;
        let mut extra = BTreeMap::new();
        if !self.cfg.keep_metadata {
            let (clean, removed) = scrub(still.format, std::mem::take(&mut still.bytes))?;
            still.bytes = clean;
            if !removed.is_empty() {
                tracing::info!(removed = ?removed, "metadata removed from the image");
                extra.insert("removed".into(), serde_json::json!(removed));
            }
        }
        if let Some(c) = cmd {
            extra.insert("cmd".into(), c.into());
        }
        let parts = split(&still, &self.cfg.id, &PartPlan { part_bytes: self.media.part_bytes }, extra);
        let Some(id) = parts.first().map(|p| p.id.clone()) else { return Err(StillError::Empty) };
        let n = parts.len();
        let (tx, rx) = oneshot::channel();
        let mut receipt = Some(tx);
        let mut remember = remember;
        for (i, part) in parts.into_iter().enumerate() {
            let mut job = ToSign::new(self.source.clone(), Payload::Media(part), still.captured, None);
            if i + 1 == n {
                job.accepted = receipt.take();
                job.remember = remember.take();
            }
            if self.out.send(Outgoing::Signed(job)).await.is_err() {
                return Err(StillError::Unreadable("the gateway is stopping".into()));
            }
        }
        match tokio::time::timeout(ACCEPT_TIMEOUT, rx).await {
            Ok(Ok(())) => {
                self.counters.readings.fetch_add(1, Ordering::Relaxed);
                tracing::info!(media = %id, parts = n, bytes = still.bytes.len(), "image queued");
                Ok(Sent { id, parts: n })
            }
            _ => Err(StillError::Unreadable("the queue did not take the image".into())),
        }
    }

    /// Reports an image that is not sent; a folder's file is remembered as handled with the event
    /// (`remember`), so a restart does not refuse it again.
    async fn refused(&mut self, what: &str, e: &StillError, remember: Option<String>) {
        tracing::warn!(file = what, reason = e.reason(), error = %e, "image not sent");
        self.counters.rejected_frames.fetch_add(1, Ordering::Relaxed);
        self.event(
            "media-refused",
            Severity::Warn,
            format!("{what} was not sent: {e}"),
            vec![("reason", e.reason().into())],
            remember,
        )
        .await;
    }

    // ---- folder ----

    async fn run_folder(&mut self, dir: PathBuf, pattern: Option<String>) {
        let mut backoff = crate::transport::Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let mut failing = super::failing::Failing::default();
        while !self.shutdown.is_triggered() {
            self.state(LinkState::Connecting, None).await;
            let watched = folder::watch(&dir);
            let (watcher, mut events) = match watched {
                Ok(w) if dir.is_dir() => w,
                result => {
                    let why = match result {
                        Err(e) => e.to_string(),
                        Ok(_) => "not a folder".into(),
                    };
                    // Said once, and again as the attempts policy says (`failing`), not at every try.
                    if failing.failed(&why, Instant::now()).is_some() {
                        tracing::warn!(folder = %dir.display(), error = %why, "image folder not available; retrying");
                    } else {
                        tracing::debug!(folder = %dir.display(), error = %why, "image folder not available");
                    }
                    self.state(LinkState::Disconnected, Some(format!("{}: {why}", dir.display()))).await;
                    if !self.idle(backoff.next_delay()).await {
                        return;
                    }
                    continue;
                }
            };
            backoff.reset();
            failing.opened();
            let mark = match self.memory.as_deref().and_then(Mark::from_memory) {
                Some(m) => m,
                None => {
                    let m = folder::mark_now(&dir);
                    tracing::info!(folder = %dir.display(), "first start: images already in the folder are not sent");
                    self.memory = Some(m.to_memory());
                    m
                }
            };
            let mut tracker = FolderTracker::new(mark, pattern.clone());
            self.counters.connects.fetch_add(1, Ordering::Relaxed);
            self.state(LinkState::Connected, None).await;
            let mut rescan = tokio::time::interval(Duration::from_millis(250));
            let mut last_list = Instant::now() - folder::RESCAN;
            let mut dirty = true;
            let gone = loop {
                tokio::select! {
                    _ = self.shutdown.triggered() => return,
                    ev = events.recv() => match ev {
                        Some(FolderEvent::Closed(name)) => {
                            dirty = true;
                            tracker.closed(&name);
                        }
                        Some(FolderEvent::Changed) => dirty = true,
                        None => break "the folder watcher stopped".to_string(),
                    },
                    Some(c) = self.control.recv() => c.not_supported(&self.cfg.id),
                    _ = rescan.tick() => {
                        if dirty || last_list.elapsed() >= folder::RESCAN {
                            match folder::list(&dir) {
                                Ok(files) => tracker.listed(files, Instant::now()),
                                Err(e) => break e.to_string(),
                            }
                            // A close seen before the listing found the file.
                            while let Ok(ev) = events.try_recv() {
                                if let FolderEvent::Closed(name) = ev {
                                    tracker.closed(&name);
                                }
                            }
                            dirty = false;
                            last_list = Instant::now();
                        }
                        for file in tracker.ready(Instant::now()) {
                            self.send_file(&dir, &file).await;
                            tracker.handled(&file);
                            self.memory = Some(tracker.mark().to_memory());
                        }
                    }
                }
            };
            drop(watcher);
            tracing::warn!(folder = %dir.display(), error = %gone, "image folder lost; retrying");
            self.state(LinkState::Disconnected, Some(gone)).await;
            if !self.idle(backoff.next_delay()).await {
                return;
            }
        }
    }

    /// One complete file: read, checked, sent; or refused with an event. Either way the mark
    /// moves past it (committed with its parts, or at the next image).
    async fn send_file(&mut self, dir: &std::path::Path, file: &Listed) {
        let path = folder::path_of(dir, file);
        let name = format!("image file {}", file.name);
        let remember = Some(file.mark().to_memory());
        if file.size > self.media.max_file_bytes {
            let e = StillError::TooLarge { size: file.size, max: self.media.max_file_bytes };
            return self.refused(&name, &e, remember).await;
        }
        let bytes = match read_whole(&path, file.size, self.media.max_file_bytes).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(file = %file.name, error = %e, "image file unreadable");
                return self.refused(&name, &StillError::Unreadable(e.to_string()), remember).await;
            }
        };
        let captured = (file.mtime_ns / 1000) as i64;
        if let Err(e) = self.send_image(bytes, captured, BTreeMap::new(), None, remember.clone()).await {
            self.refused(&name, &e, remember).await;
        }
    }

    // ---- camera ----

    async fn run_camera(&mut self, path: PathBuf) {
        let is_sim = path.to_str().is_some_and(|p| p.starts_with("sim:"));
        let mut check = tokio::time::interval(Duration::from_secs(5));
        loop {
            let present = is_sim || path.exists();
            if present {
                self.state(LinkState::Connected, None).await;
            } else {
                self.state(LinkState::Disconnected, Some(format!("{} not found: check the cable", path.display())))
                    .await;
            }
            tokio::select! {
                _ = self.shutdown.triggered() => return,
                _ = check.tick() => {}
                Some(c) = self.control.recv() => match c {
                    DeviceControl::Capture { cmd, settings, done } => {
                        let result = self.capture(&path, cmd, settings).await;
                        let _ = done.send(result);
                    }
                    other => other.not_supported(&self.cfg.id),
                },
            }
        }
    }

    /// Takes one still and sends it: done with the media id, or failed with why.
    async fn capture(
        &mut self,
        path: &std::path::Path,
        cmd: Option<String>,
        settings: crate::command::Args,
    ) -> Result<Answer, Answer> {
        if let Some(k) = settings.keys().next() {
            return Err(Answer::new("bad-args", format!("this camera takes no setting `{k}`")));
        }
        let shot = match crate::transport::camera::still_with_timeout(path, &self.spec).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(camera = %path.display(), error = %e, "still failed");
                let text = format!("no still from {}: {e}", path.display());
                self.event("camera-failed", Severity::Warn, text.clone(), vec![], None).await;
                self.state(LinkState::Error, Some(e.to_string())).await;
                return Err(Answer::new("camera-failed", text));
            }
        };
        let captured = crate::pipeline::capture_time();
        match self.send_image(shot.bytes, captured, shot.settings, cmd, None).await {
            Ok(sent) => Ok(Answer::new("captured", format!("image {} sent in {} parts", sent.id, sent.parts))
                .with("media", sent.id)
                .with("parts", sent.parts as u64)),
            Err(e) => {
                self.refused("the still", &e, None).await;
                Err(Answer::new("media-refused", e.to_string()))
            }
        }
    }

    /// Waits `d` (answering requests meanwhile); false when the gateway stops.
    async fn idle(&mut self, d: Duration) -> bool {
        let until = tokio::time::Instant::now() + d;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return true,
                _ = self.shutdown.triggered() => return false,
                Some(c) = self.control.recv() => c.not_connected(),
            }
        }
    }
}

/// Reads a file that should be `expected` bytes; one that vanishes, shrinks or grows while read
/// is an error (nothing of it is sent).
async fn read_whole(path: &std::path::Path, expected: u64, max: u64) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(path).await?;
    let mut bytes = Vec::with_capacity(expected.min(max) as usize);
    file.take(max + 1).read_to_end(&mut bytes).await?;
    if bytes.len() as u64 != expected {
        return Err(std::io::Error::other(format!(
            "the file changed while it was read ({} bytes, {expected} expected)",
            bytes.len()
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_that_vanishes_or_changes_while_read_is_an_error_not_half_an_image() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jpg");
        std::fs::write(&path, b"0123456789").unwrap();
        assert_eq!(read_whole(&path, 10, 100).await.unwrap(), b"0123456789");
        // Listed at 10 bytes, 4 by the time it is read (rewritten), or grown past the limit.
        std::fs::write(&path, b"0123").unwrap();
        assert!(read_whole(&path, 10, 100).await.unwrap_err().to_string().contains("changed while it was read"));
        std::fs::write(&path, vec![0u8; 200]).unwrap();
        assert!(read_whole(&path, 10, 100).await.is_err());
        std::fs::remove_file(&path).unwrap();
        assert_eq!(read_whole(&path, 10, 100).await.unwrap_err().kind(), std::io::ErrorKind::NotFound);
    }
}
