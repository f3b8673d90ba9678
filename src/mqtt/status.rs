//! The unsigned, retained JSON messages: gateway status (birth and will) and per-device state.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayStatus {
    pub state: String,
    pub since: String,
    pub version: String,
    pub kid: String,
    /// The durable queue (an addition to the contract's keys; hubs ignore what they do not know).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueStatus>,
}

/// Queue figures in the status message and in `spokegate status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueStatus {
    /// Messages committed and not yet acknowledged by the broker.
    pub depth: u64,
    /// Age of the oldest of them, in seconds.
    pub oldest_age_s: Option<f64>,
    pub delivered: u64,
    pub dropped: u64,
    /// Why the queue cannot commit (a full disk), when it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl QueueStatus {
    pub fn from_stats(st: &crate::queue::QueueStats, now_micros: i64, error: Option<String>) -> Self {
        Self {
            depth: st.depth,
            oldest_age_s: st.oldest_created.map(|c| ((now_micros - c).max(0) as f64 / 1e6 * 10.0).round() / 10.0),
            delivered: st.delivered,
            dropped: st.dropped,
            error,
        }
    }
}

impl GatewayStatus {
    pub fn new(online: bool, since: String, kid: String) -> Self {
        Self {
            state: if online { "online" } else { "offline" }.into(),
            since,
            version: env!("CARGO_PKG_VERSION").into(),
            kid,
            queue: None,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A device's link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    Connecting,
    Connected,
    Disconnected,
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceState {
    pub state: LinkState,
    pub profile: String,
    pub since: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl DeviceState {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}
