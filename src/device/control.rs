//! Requests from commands to one device task (the executor holds the sending side).

use crate::command::{Answer, Args};
use tokio::sync::oneshot;

/// Where a request's end goes: `Ok` = done, `Err` = failed.
pub type Done = oneshot::Sender<Result<Answer, Answer>>;

#[derive(Debug)]
pub enum DeviceControl {
    /// Start or stop sending an on-demand waveform device's samples.
    Stream { on: bool, done: Done },
    /// Ask the device for its stored records now.
    FetchRecords { done: Done },
    /// Take a still now (`cmd`: the hub command's id, for `meta.cmd`).
    Capture { cmd: Option<String>, settings: Args, done: Done },
}

impl DeviceControl {
    fn done(self) -> Done {
        match self {
            DeviceControl::Stream { done, .. }
            | DeviceControl::FetchRecords { done }
            | DeviceControl::Capture { done, .. } => done,
        }
    }

    /// Answered while the device is not connected.
    pub fn not_connected(self) {
        let _ = self.done().send(Err(Answer::new("device-not-connected", "the device is not connected now")));
    }

    /// Answered by a device that cannot do it.
    pub fn not_supported(self, dev: &str) {
        let what = match &self {
            DeviceControl::Stream { .. } => "stream on demand",
            DeviceControl::FetchRecords { .. } => "be asked for stored records",
            DeviceControl::Capture { .. } => "take pictures",
        };
        let _ = self.done().send(Err(Answer::new("not-supported", format!("device {dev} cannot {what}"))));
    }
}
