//! What the uplink reads from and reports to: the inputs the daemon wires up, its counters and
//! the queue's health.

use crate::config::HubConfig;
use crate::queue::{Queue, Record};
use crate::snapshot::SnapshotTx;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, Notify};

/// One MQTT message that does not go through the queue (retained state, or live-only fallback).
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// What the link has done, for status and benchmarks.
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Queued messages handed to the client (first sends).
    pub published: AtomicU64,
    /// Broker acknowledgements (PUBACK) of queued messages, resends included: a message sent
    /// again after a reconnect or for a hub is counted once in `published` and again here.
    pub acked: AtomicU64,
    /// Successful connections (CONNACK).
    pub connects: AtomicU64,
    /// Messages a hub acknowledged (hub delivery).
    pub hub_acked: AtomicU64,
    /// Messages sent again because no hub acknowledged them in time (hub delivery).
    pub resent: AtomicU64,
    /// Messages out now without a hub's acknowledgement, and the most there ever were.
    pub unacked: AtomicU64,
    pub unacked_peak: AtomicU64,
    /// Hub commands received (before any check) and dropped because the executor was busy.
    pub commands_in: AtomicU64,
    pub commands_dropped: AtomicU64,
    /// Acknowledgements that failed verification.
    pub bad_acks: AtomicU64,
}

/// The queue's health as the status topic reports it. A change (failing, or healthy again) is
/// published at once, not at the next periodic status.
#[derive(Debug, Default)]
pub struct QueueHealth {
    pub error: Mutex<Option<String>>,
    pub(super) changed: tokio::sync::Notify,
}

impl QueueHealth {
    pub fn set(&self, error: Option<String>) {
        let mut e = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if e.is_some() != error.is_some() {
            self.changed.notify_one();
        }
        *e = error;
    }

    pub fn get(&self) -> Option<String> {
        self.error.lock().ok().and_then(|e| e.clone())
    }
}

/// A hub command as it arrived (checked by the command executor, not here).
#[derive(Debug, Clone)]
pub struct InboundCommand {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// Everything the link reads from.
pub struct LinkInputs {
    pub site: String,
    pub gw: String,
    pub kid: String,
    /// Kids of rotated keys still in their grace period (messages they signed may be queued).
    pub retiring: Vec<String>,
    /// Beats on every turn of the link's loops (the watchdog's sign of life).
    pub heartbeat: Arc<crate::systemd::Heartbeat>,
    pub queue: Arc<Mutex<Queue>>,
    /// Records just committed, in `seq` order: sent from memory when the link is caught up.
    pub fresh: mpsc::Receiver<Vec<Record>>,
    /// Told when committed records were not handed over in memory (read them from the queue).
    pub committed: Arc<Notify>,
    /// Retained messages (device states, the consult); closes when the sealer is done (the
    /// signal to drain).
    pub states: mpsc::Receiver<Publication>,
    /// Retained messages to re-publish on every connect from the start (the stored consult).
    pub retained: Vec<Publication>,
    /// Signed messages that could not be committed (disk full): sent live, best effort.
    pub live: mpsc::Receiver<Publication>,
    /// Hub commands go here.
    pub commands: mpsc::Sender<InboundCommand>,
    /// Re-publish status, states and consult now (the `rebirth` command).
    pub rebirth: Arc<Notify>,
    pub hub: HubConfig,
    pub counters: Arc<LinkCounters>,
    pub health: Arc<QueueHealth>,
    pub snapshot: SnapshotTx,
}
