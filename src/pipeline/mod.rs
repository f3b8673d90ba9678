//! The stage between the devices and the uplink: each message gets its `seq`, becomes a body
//! stamped with the open consult, is signed into a COSE_Sign1 envelope and is handed to MQTT. One
//! task, so `seq` and the consult binding follow the order in which messages were accepted; each
//! batch is committed to the durable queue in one transaction before any device hears its
//! readings were accepted.
//!
//! - `signer`: a message becomes a contract body and a signed envelope, numbered and stamped;
//! - `sealer`: the task that takes what devices hand over, signs it and commits it in batches;
//! - `round`: one batch numbered, stamped, signed and committed (the sealer runs it);
//! - `pace`: how fast messages arrive, so that a batch does not wait for one not expected in time;
//! - here: the messages themselves, as devices hand them over.

mod pace;
mod round;
mod sealer;
mod signer;

pub use round::PipelineTimes;
pub use sealer::Sealer;
pub use signer::{make_body, SealError, Signer};

use crate::clock::now_micros;
use crate::model::{ConsultBy, Event, Media, Observation, Reply, Wave};
use crate::mqtt::status::LinkState;
use crate::queue::StoredConsult;
use std::sync::Arc;
use tokio::sync::oneshot;

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

/// Gateway time for a reading taken now.
pub fn capture_time() -> i64 {
    now_micros()
}
