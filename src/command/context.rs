//! What a command can reach: the pipeline (to sign consult changes and replies), the devices'
//! control channels, the daemon's snapshot and counters, and the uplink's rebirth.

use crate::config::Delivery;
use crate::daemon::Counters;
use crate::device::DeviceControl;
use crate::pipeline::{Outgoing, Signer};
use crate::profile::Profile;
use crate::snapshot::Snapshot;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::{mpsc, watch, Notify};

/// A device as commands see it.
#[derive(Debug, Clone)]
pub struct DeviceHandle {
    pub profile: Arc<Profile>,
    pub control: mpsc::Sender<DeviceControl>,
}

#[derive(Clone)]
pub struct Context {
    pub pipeline: mpsc::Sender<Outgoing>,
    pub signer: Arc<Signer>,
    pub devices: BTreeMap<String, DeviceHandle>,
    pub snapshot: watch::Receiver<Snapshot>,
    pub counters: Counters,
    pub rebirth: Arc<Notify>,
    pub delivery: Delivery,
}

impl Context {
    /// The device a command names, or why it cannot be used.
    pub fn device(&self, dev: &str) -> Result<&DeviceHandle, super::Answer> {
        self.devices.get(dev).ok_or_else(|| {
            let known: Vec<&str> = self.devices.keys().map(String::as_str).collect();
            super::Answer::new("bad-args", format!("no device `{dev}` (devices: {})", known.join(", ")))
        })
    }
}
