//! The unsigned, retained JSON messages: gateway status (birth and will) and per-device state.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayStatus {
    pub state: String,
    pub since: String,
    pub version: String,
    pub kid: String,
    /// Every kid this gateway signs with now or did until lately (a rotated key in its grace
    /// period): the current one first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kids: Vec<String>,
    /// The durable queue (an addition to the contract's keys; hubs ignore what they do not know).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueStatus>,
}

/// Queue figures in the status message and in `spokegate status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueStatus {
    /// Messages committed and not yet delivered (acknowledged by the broker, or under hub
    /// delivery by a hub).
    pub depth: u64,
    /// Their size in bytes (signed envelopes).
    #[serde(default)]
    pub bytes: u64,
    /// Age of the oldest of them, in seconds.
    pub oldest_age_s: Option<f64>,
    pub delivered: u64,
    pub dropped: u64,
    /// `broker` or `hub`: whose acknowledgement counts as delivered.
    #[serde(default)]
    pub delivery: String,
    /// Everything committed before this time is delivered (RFC 3339; now, when nothing waits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_through: Option<String>,
    /// Hub delivery: messages sent and not yet acknowledged by a hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unacked: Option<u64>,
    /// Hub delivery: when a hub last acknowledged (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_hub_ack: Option<String>,
    /// Why the queue cannot commit (a full disk), when it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl QueueStatus {
    pub fn from_stats(
        st: &crate::queue::QueueStats,
        now_micros: i64,
        error: Option<String>,
        delivery: crate::config::Delivery,
        unacked: Option<u64>,
    ) -> Self {
        use crate::clock::micros_to_rfc3339;
        Self {
            depth: st.depth,
            bytes: st.bytes,
            oldest_age_s: st.oldest_created.map(|c| ((now_micros - c).max(0) as f64 / 1e6 * 10.0).round() / 10.0),
            delivered: st.delivered,
            dropped: st.dropped,
            delivery: delivery.as_str().into(),
            delivered_through: Some(micros_to_rfc3339(st.oldest_created.unwrap_or(now_micros))),
            unacked,
            last_hub_ack: st.last_hub_ack.map(micros_to_rfc3339),
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
            kids: Vec::new(),
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
    /// On-demand waveform devices: whether samples are being sent now (`stream.start` / `stream.stop`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streaming: Option<bool>,
}

impl DeviceState {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}
