//! The running daemon's picture of itself, in one watch channel: what the `status` command, the
//! retained status and (later) the operator's page read. Stages write their part (the pipeline
//! device states and the consult, the uplink its connection); readers never reach into a stage.

use crate::mqtt::status::{DeviceState, LinkState};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The writing side, shared by the stages.
pub type SnapshotTx = Arc<tokio::sync::watch::Sender<Snapshot>>;

/// A new snapshot channel.
pub fn channel(snapshot: Snapshot) -> (SnapshotTx, tokio::sync::watch::Receiver<Snapshot>) {
    let (tx, rx) = tokio::sync::watch::channel(snapshot);
    (Arc::new(tx), rx)
}

/// The waveform chunks the pipeline signs, as JSON for pages that draw them live (the operator's
/// page): built only while a page listens.
pub type WaveTap = tokio::sync::broadcast::Sender<Arc<str>>;

/// A tap a slow page can fall 64 chunks behind on (it then skips ahead).
pub fn wave_tap() -> WaveTap {
    tokio::sync::broadcast::channel(64).0
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    pub devices: BTreeMap<String, DeviceSnapshot>,
    pub uplink: UplinkSnapshot,
    /// The consult open now.
    pub consult: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeviceSnapshot {
    pub profile: String,
    pub state: LinkState,
    pub since: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub streaming: Option<bool>,
    /// The last reading signed for the device (its first value), for the operator's page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<LastReading>,
    /// The last event signed for the device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_event: Option<LastEvent>,
}

/// A reading as the operator's page shows it (never a patient identifier: values, codes, units).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastReading {
    /// MDC reference id or code, as the profile names it.
    pub name: String,
    pub mdc: u32,
    pub value: Option<f64>,
    pub unit: String,
    /// Gateway time, µs since the epoch.
    pub t: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastEvent {
    pub code: String,
    pub sev: String,
    pub text: String,
    pub t: i64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct UplinkSnapshot {
    pub connected: bool,
    /// Since when the uplink is connected (or disconnected), RFC 3339.
    pub since: Option<String>,
    /// `broker` or `hub`: what deletes a message from the queue.
    pub delivery: String,
    /// Messages sent that no hub has acknowledged yet (hub delivery).
    pub unacked: u64,
    /// When a hub last acknowledged (hub delivery), RFC 3339.
    pub last_hub_ack: Option<String>,
    /// Why the uplink stopped for good (the daemon stops with it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Snapshot {
    pub fn device_state(&mut self, dev: &str, s: &DeviceState) {
        self.devices.insert(
            dev.to_string(),
            DeviceSnapshot {
                profile: s.profile.clone(),
                state: s.state,
                since: s.since.clone(),
                detail: s.detail.clone(),
                streaming: s.streaming,
                last: self.devices.get(dev).and_then(|d| d.last.clone()),
                last_event: self.devices.get(dev).and_then(|d| d.last_event.clone()),
            },
        );
    }

    /// Notes what a device just had signed (its first value, or the event).
    pub fn signed(&mut self, dev: &str, last: Option<LastReading>, event: Option<LastEvent>) {
        if let Some(d) = self.devices.get_mut(dev) {
            if last.is_some() {
                d.last = last;
            }
            if event.is_some() {
                d.last_event = event;
            }
        }
    }
}
