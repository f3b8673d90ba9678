//! The stage between the devices and the uplink: each reading gets its `seq`, becomes a body,
//! is signed into a COSE_Sign1 envelope and is handed to MQTT. One task, so `seq` follows the order
//! in which readings were accepted; each batch is committed to the durable queue in one transaction
//! before any device hears its readings were accepted.

use crate::clock::{now_micros, now_rfc3339};
use crate::model::{Body, BodyFormat, BodyKind, Event, Observation, Severity, Wave, BODY_VERSION};
use crate::mqtt::status::{DeviceState, LinkState};
use crate::mqtt::{topics, Publication, QueueHealth};
use crate::queue::{lock, Class, Queue, QueueError, Record};
use crate::sign::{seal, GatewayKey};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, Notify};

/// Who a message is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub dev: Arc<str>,
    pub profile: Arc<str>,
}

/// The payload of a signed body.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Obs(Vec<Observation>),
    Event(Event),
    Wave(Wave),
}

/// Something to sign and send.
#[derive(Debug)]
pub struct ToSign {
    pub from: Source,
    pub payload: Payload,
    pub t: i64,
    pub tdev: Option<i64>,
    /// Told once the message is safely handed on (with the durable queue: committed), so the
    /// device is acknowledged only then.
    pub accepted: Option<oneshot::Sender<()>>,
    /// The device's new memory (the last stored record delivered: RACP), committed in the same
    /// transaction as the message, so a reading is never fetched twice nor lost.
    pub remember: Option<String>,
}

impl ToSign {
    /// A message nobody waits for and that changes no device memory.
    pub fn new(from: Source, payload: Payload, t: i64, tdev: Option<i64>) -> Self {
        Self { from, payload, t, tdev, accepted: None, remember: None }
    }
}

/// What device tasks send to the pipeline.
#[derive(Debug)]
pub enum Outgoing {
    Signed(ToSign),
    /// A device's link state (retained, unsigned).
    State {
        from: Source,
        state: LinkState,
        detail: Option<String>,
    },
}

/// A contract body for a payload.
pub fn make_body(site: &str, gw: &str, from: &Source, payload: Payload, seq: u64, t: i64, tdev: Option<i64>) -> Body {
    let (kind, obs, event, wave) = match payload {
        Payload::Obs(o) => (BodyKind::Obs, Some(o), None, None),
        Payload::Event(e) => (BodyKind::Event, None, Some(e), None),
        Payload::Wave(w) => (BodyKind::Wave, None, None, Some(w)),
    };
    Body {
        v: BODY_VERSION,
        kind,
        site: site.to_string(),
        gw: gw.to_string(),
        dev: from.dev.to_string(),
        prof: from.profile.to_string(),
        seq,
        t,
        tdev,
        consult: None,
        obs,
        event,
        wave,
    }
}

/// What signs a message: the gateway's identity, key and body format. Shared with the thread that
/// signs and commits, so the runtime thread stays free for devices and the uplink.
pub struct Signer {
    pub site: String,
    pub gw: String,
    pub key: Arc<GatewayKey>,
    pub format: BodyFormat,
}

impl Signer {
    /// Builds and signs one message numbered `seq`.
    pub fn sign(
        &self,
        seq: u64,
        from: &Source,
        payload: Payload,
        t: i64,
        tdev: Option<i64>,
    ) -> Result<Record, SealError> {
        let body = make_body(&self.site, &self.gw, from, payload, seq, t, tdev);
        let bytes = seal(&self.key, body.encode(self.format)?, self.format)?;
        Ok(Record {
            seq,
            class: class_of(body.kind),
            created: now_micros(),
            topic: topics::body(&self.site, &self.gw, &from.dev, body.kind, body.wave.as_ref().map(|w| &*w.stream)),
            payload: bytes,
        })
    }
}

/// Turns accepted readings into signed, committed queue records.
pub struct Sealer {
    pub signer: Arc<Signer>,
    pub queue: Arc<Mutex<Queue>>,
    /// Told when committed records could not be handed over in memory (the link reads the queue).
    pub committed: Arc<Notify>,
    pub health: Arc<QueueHealth>,
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
    #[error("body: {0}")]
    Body(#[from] crate::model::BodyError),
    #[error("envelope: {0}")]
    Envelope(#[from] crate::sign::EnvelopeError),
}

/// How many waiting messages one commit takes at most.
const COMMIT_BATCH: usize = 512;
/// How often eviction (waveform and media caps and TTLs) runs.
const ENFORCE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

fn class_of(kind: BodyKind) -> Class {
    match kind {
        BodyKind::Obs | BodyKind::Event => Class::Spot,
        BodyKind::Wave => Class::Wave,
        BodyKind::Media => Class::Media,
    }
}

/// What one sign-and-commit round did.
struct Round {
    committed: Result<(), QueueError>,
    records: Vec<Record>,
    accepted: Vec<oneshot::Sender<()>>,
}

/// Numbers, signs and commits jobs (on a blocking thread: signing and fsync are the slow parts).
fn sign_and_commit(signer: &Signer, queue: &Mutex<Queue>, jobs: Vec<ToSign>) -> Round {
    let first = match lock(queue).reserve_seqs(jobs.len() as u64) {
        Ok(first) => first,
        Err(e) => {
            tracing::error!(error = %e, "cannot number readings; not acknowledged");
            return Round { committed: Err(e), records: Vec::new(), accepted: Vec::new() };
        }
    };
    let mut records = Vec::with_capacity(jobs.len());
    let mut accepted = Vec::new();
    let mut memories = Vec::new();
    for (job, seq) in jobs.into_iter().zip(first..) {
        match signer.sign(seq, &job.from, job.payload, job.t, job.tdev) {
            Ok(r) => {
                records.push(r);
                accepted.extend(job.accepted);
                memories.extend(job.remember.map(|m| (job.from.dev.to_string(), m)));
            }
            // Dropping `accepted` tells the device task the reading was not taken.
            Err(e) => tracing::error!(dev = %job.from.dev, error = %e, "cannot sign a reading; not acknowledged"),
        }
    }
    let committed = lock(queue).append(&records, &memories);
    Round { committed, records, accepted }
}

impl Sealer {
    fn state(&self, from: &Source, state: LinkState, detail: Option<String>) -> Publication {
        let (site, gw) = (&self.signer.site, &self.signer.gw);
        let s = DeviceState { state, profile: from.profile.to_string(), since: now_rfc3339(), detail };
        Publication { topic: topics::device_state(site, gw, &from.dev), payload: s.to_json(), retain: true }
    }

    /// Runs until every device task is gone: takes what is waiting, signs it, commits it in one
    /// transaction, and only then tells the devices their readings are accepted.
    pub async fn run(
        self,
        mut input: mpsc::Receiver<Outgoing>,
        fresh: mpsc::Sender<Vec<Record>>,
        states: mpsc::Sender<Publication>,
        live: mpsc::Sender<Publication>,
    ) {
        let mut batch = Vec::with_capacity(COMMIT_BATCH);
        let mut last_enforce = std::time::Instant::now();
        loop {
            if input.recv_many(&mut batch, COMMIT_BATCH).await == 0 {
                break;
            }
            let mut jobs = Vec::with_capacity(batch.len());
            let mut state_updates = Vec::new();
            for msg in batch.drain(..) {
                match msg {
                    Outgoing::State { from, state, detail } => state_updates.push(self.state(&from, state, detail)),
                    Outgoing::Signed(job) => jobs.push(job),
                }
            }
            if !jobs.is_empty() {
                let (signer, queue) = (self.signer.clone(), self.queue.clone());
                match tokio::task::spawn_blocking(move || sign_and_commit(&signer, &queue, jobs)).await {
                    Ok(round) => self.after_commit(round, &fresh, &live),
                    Err(e) => tracing::error!(error = %e, "signing task failed; readings not acknowledged"),
                }
            }
            for s in state_updates {
                if states.send(s).await.is_err() {
                    return;
                }
            }
            if last_enforce.elapsed() >= ENFORCE_EVERY {
                last_enforce = std::time::Instant::now();
                self.enforce();
            }
        }
    }

    fn after_commit(&self, round: Round, fresh: &mpsc::Sender<Vec<Record>>, live: &mpsc::Sender<Publication>) {
        match round.committed {
            Ok(()) => {
                if self.health.get().is_some() {
                    tracing::info!("queue commits again");
                    self.health.set(None);
                }
                for a in round.accepted {
                    let _ = a.send(());
                }
                // Hand the committed records to the uplink in memory; if it is behind, it reads
                // them from the queue instead.
                if !round.records.is_empty() && fresh.try_send(round.records).is_err() {
                    self.committed.notify_one();
                }
            }
            Err(e) => {
                // No commit, no acknowledgement: devices that retransmit will. Stream live meanwhile.
                if self.health.get().is_none() {
                    tracing::error!(error = %e, "queue cannot commit; streaming live without durability");
                }
                self.health.set(Some(e.to_string()));
                for r in round.records {
                    let _ = live.try_send(Publication { topic: r.topic, payload: r.payload, retain: false });
                }
            }
        }
    }

    /// Evicts what the queue policy says must go, and tells the hub what was dropped.
    fn enforce(&self) {
        let dropped = match lock(&self.queue).enforce(now_micros()) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "queue eviction failed");
                return;
            }
        };
        let jobs: Vec<ToSign> = dropped
            .into_iter()
            .map(|d| {
                tracing::error!(dev = %d.dev, class = d.class.as_str(), reason = d.reason, count = d.count, "queued messages evicted");
                let text = format!("{} undelivered {} messages dropped ({})", d.count, d.class.as_str(), d.reason);
                let event = Event::new("queue-evicted", Severity::Warn, text)
                    .with("class", d.class.as_str())
                    .with("reason", d.reason)
                    .with("count", d.count)
                    .with("bytes", d.bytes);
                let from = Source { dev: d.dev.as_str().into(), profile: "spokegate".into() };
                ToSign::new(from, Payload::Event(event), now_micros(), None)
            })
            .collect();
        if !jobs.is_empty() && sign_and_commit(&self.signer, &self.queue, jobs).committed.is_ok() {
            self.committed.notify_one();
        }
    }
}

/// Gateway time for a reading taken now.
pub fn capture_time() -> i64 {
    now_micros()
}
