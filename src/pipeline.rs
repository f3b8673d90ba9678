//! The stage between the devices and the uplink: each message gets its `seq`, becomes a body
//! stamped with the open consult, is signed into a COSE_Sign1 envelope and is handed to MQTT. One
//! task, so `seq` and the consult binding follow the order in which messages were accepted; each
//! batch is committed to the durable queue in one transaction before any device hears its
//! readings were accepted.

use crate::clock::{now_micros, now_rfc3339};
use crate::model::{
    Body, BodyFormat, BodyKind, ConsultBinding, ConsultBy, Event, Media, Observation, Reply, Severity, Wave,
    BODY_VERSION,
};
use crate::mqtt::status::{DeviceState, LinkState};
use crate::mqtt::{topics, Publication, QueueHealth};
use crate::queue::{lock, Class, Queue, QueueError, Record, StoredConsult};
use crate::sign::{seal, SigningKey};
use crate::snapshot::SnapshotTx;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, Notify};

/// Which device a message is from (messages about the gateway itself have none).
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
    Media(Media),
    /// The consult binding changes: bodies signed after this one carry the new consult.
    Consult(ConsultChange),
    Reply(Reply),
}

/// A new consult binding (`consult: None` ends the open one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsultChange {
    pub consult: Option<String>,
    pub by: ConsultBy,
    /// The hub command that asked for it.
    pub cmd: Option<String>,
}

/// The consultation the pipeline stamps on what it signs, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsultNow {
    pub consult: Option<String>,
    pub since: i64,
    pub by: Option<ConsultBy>,
    pub cmd: Option<String>,
}

impl ConsultNow {
    /// The binding as stored (its last signed `consult` body is kept for re-publishing).
    pub fn from_stored(s: &StoredConsult) -> Self {
        Self { consult: s.consult.clone(), since: s.since, by: ConsultBy::parse(&s.by), cmd: s.cmd.clone() }
    }
}

/// Something to sign and send.
#[derive(Debug)]
pub struct ToSign {
    /// The device, or `None` for a message about the gateway itself.
    pub from: Option<Source>,
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
    /// A device's message nobody waits for and that changes no device memory.
    pub fn new(from: Source, payload: Payload, t: i64, tdev: Option<i64>) -> Self {
        Self { from: Some(from), payload, t, tdev, accepted: None, remember: None }
    }

    /// A message about the gateway itself, signed now.
    pub fn gateway(payload: Payload) -> Self {
        Self { from: None, payload, t: now_micros(), tdev: None, accepted: None, remember: None }
    }

    /// The same, with a receipt once it is committed.
    pub fn gateway_with_receipt(payload: Payload) -> (Self, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        (Self { accepted: Some(tx), ..Self::gateway(payload) }, rx)
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
        /// For on-demand waveform devices: whether samples are being sent.
        streaming: Option<bool>,
    },
}

/// A contract body for a payload (the consult stamp is the signer's: see [`Signer::sign`]).
pub fn make_body(
    site: &str,
    gw: &str,
    from: Option<&Source>,
    payload: Payload,
    seq: u64,
    t: i64,
    tdev: Option<i64>,
) -> Body {
    let mut body = Body {
        v: BODY_VERSION,
        kind: BodyKind::Obs,
        site: site.to_string(),
        gw: gw.to_string(),
        dev: from.map(|f| f.dev.to_string()),
        prof: from.map(|f| f.profile.to_string()),
        seq,
        t,
        tdev,
        consult: None,
        obs: None,
        event: None,
        wave: None,
        media: None,
        binding: None,
        reply: None,
    };
    match payload {
        Payload::Obs(o) => body.obs = Some(o),
        Payload::Event(e) => (body.kind, body.event) = (BodyKind::Event, Some(e)),
        Payload::Wave(w) => (body.kind, body.wave) = (BodyKind::Wave, Some(w)),
        Payload::Media(m) => (body.kind, body.media) = (BodyKind::Media, Some(m)),
        Payload::Reply(r) => {
            // A reply names the device a command was about, not its profile.
            body.prof = None;
            (body.kind, body.reply) = (BodyKind::Reply, Some(r));
        }
        Payload::Consult(c) => {
            (body.dev, body.prof) = (None, None);
            body.kind = BodyKind::Consult;
            body.consult = Some(c.consult);
            body.binding = Some(ConsultBinding { since: t, by: c.by, cmd: c.cmd });
        }
    }
    body
}

/// What signs a message: the gateway's identity, key, body format, and the consult binding it
/// stamps. Shared with the thread that signs and commits, so the runtime thread stays free for
/// devices and the uplink.
pub struct Signer {
    pub site: String,
    pub gw: String,
    pub key: Arc<SigningKey>,
    pub format: BodyFormat,
    pub consult: Mutex<ConsultNow>,
}

impl Signer {
    pub fn new(site: &str, gw: &str, key: Arc<SigningKey>, format: BodyFormat, consult: ConsultNow) -> Self {
        Self { site: site.into(), gw: gw.into(), key, format, consult: Mutex::new(consult) }
    }

    /// The consult open now.
    pub fn consult(&self) -> ConsultNow {
        self.consult.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Builds and signs one message numbered `seq`, stamped with `consult`.
    pub fn sign(&self, seq: u64, job: &mut ToSign, consult: &ConsultNow) -> Result<Record, SealError> {
        let payload = std::mem::replace(&mut job.payload, Payload::Obs(Vec::new()));
        let mut body = make_body(&self.site, &self.gw, job.from.as_ref(), payload, seq, job.t, job.tdev);
        if body.kind != BodyKind::Consult {
            body.consult = consult.consult.clone().map(Some);
        }
        let bytes = seal(&self.key, body.encode(self.format)?, self.format)?;
        Ok(Record {
            seq,
            class: class_of(body.kind),
            created: now_micros(),
            topic: topics::for_body(&body),
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
    pub snapshot: SnapshotTx,
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
        BodyKind::Wave => Class::Wave,
        BodyKind::Media => Class::Media,
        _ => Class::Spot,
    }
}

/// What one sign-and-commit round did.
struct Round {
    committed: Result<(), QueueError>,
    records: Vec<Record>,
    accepted: Vec<oneshot::Sender<()>>,
    /// The consult binding's new signed body, to be re-published (retained) by the uplink.
    consult: Option<Publication>,
}

/// Numbers, stamps, signs and commits jobs (on a blocking thread: signing and fsync are the slow
/// parts). A consult change in the batch applies to the jobs after it, and is committed with them.
fn sign_and_commit(signer: &Signer, queue: &Mutex<Queue>, jobs: Vec<ToSign>) -> Round {
    let first = match lock(queue).reserve_seqs(jobs.len() as u64) {
        Ok(first) => first,
        Err(e) => {
            tracing::error!(error = %e, "cannot number readings; not acknowledged");
            return Round { committed: Err(e), records: Vec::new(), accepted: Vec::new(), consult: None };
        }
    };
    let mut consult = signer.consult();
    let mut changed: Option<StoredConsult> = None;
    let mut records = Vec::with_capacity(jobs.len());
    let mut accepted = Vec::new();
    let mut memories = Vec::new();
    for (mut job, seq) in jobs.into_iter().zip(first..) {
        let change = match &job.payload {
            Payload::Consult(c) => Some(c.clone()),
            _ => None,
        };
        match signer.sign(seq, &mut job, &consult) {
            Ok(r) => {
                if let Some(c) = change {
                    consult = ConsultNow { consult: c.consult, since: job.t, by: Some(c.by), cmd: c.cmd };
                    changed = Some(StoredConsult {
                        consult: consult.consult.clone(),
                        since: consult.since,
                        by: c.by.as_str().into(),
                        cmd: consult.cmd.clone(),
                        envelope: r.payload.clone(),
                    });
                }
                records.push(r);
                accepted.extend(job.accepted);
                if let (Some(m), Some(from)) = (job.remember, &job.from) {
                    memories.push((from.dev.to_string(), m));
                }
            }
            // Dropping `accepted` tells the device task the reading was not taken.
            Err(e) => tracing::error!(error = %e, "cannot sign a message; not acknowledged"),
        }
    }
    let committed = lock(queue).commit(&records, &memories, changed.as_ref());
    let retained = changed.map(|c| Publication {
        topic: topics::consult(&signer.site, &signer.gw),
        payload: c.envelope,
        retain: true,
    });
    if retained.is_some() {
        // The binding applies to what is signed from now on, committed or streamed live.
        *signer.consult.lock().unwrap_or_else(|p| p.into_inner()) = consult;
    }
    Round { committed, records, accepted, consult: retained }
}

impl Sealer {
    fn state(&self, from: &Source, state: LinkState, detail: Option<String>, streaming: Option<bool>) -> Publication {
        let (site, gw) = (&self.signer.site, &self.signer.gw);
        let s = DeviceState { state, profile: from.profile.to_string(), since: now_rfc3339(), detail, streaming };
        self.snapshot.send_modify(|snap| snap.device_state(&from.dev, &s));
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
        // Caps and TTLs are enforced on a clock, not only while readings arrive: a queue that
        // stopped growing while the uplink is down must still come back under its caps.
        let mut enforce = tokio::time::interval(ENFORCE_EVERY);
        enforce.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let received = tokio::select! {
                n = input.recv_many(&mut batch, COMMIT_BATCH) => n,
                _ = enforce.tick() => {
                    self.enforce();
                    continue;
                }
            };
            if received == 0 {
                break;
            }
            let mut jobs = Vec::with_capacity(batch.len());
            let mut state_updates = Vec::new();
            for msg in batch.drain(..) {
                match msg {
                    Outgoing::State { from, state, detail, streaming } => {
                        state_updates.push(self.state(&from, state, detail, streaming))
                    }
                    Outgoing::Signed(job) => jobs.push(job),
                }
            }
            if !jobs.is_empty() {
                let (signer, queue) = (self.signer.clone(), self.queue.clone());
                match tokio::task::spawn_blocking(move || sign_and_commit(&signer, &queue, jobs)).await {
                    Ok(mut round) => {
                        if let Some(c) = round.consult.take() {
                            let now = self.signer.consult();
                            self.snapshot.send_modify(|snap| snap.consult = now.consult.clone());
                            state_updates.push(c);
                        }
                        self.after_commit(round, &fresh, &live);
                    }
                    Err(e) => tracing::error!(error = %e, "signing task failed; readings not acknowledged"),
                }
            }
            for s in state_updates {
                if states.send(s).await.is_err() {
                    return;
                }
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
