//! The unsigned, retained JSON messages: gateway status (birth and will) and per-device state.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayStatus {
    pub state: String,
    pub since: String,
    pub version: String,
    pub kid: String,
}

impl GatewayStatus {
    pub fn new(online: bool, since: String, kid: String) -> Self {
        Self {
            state: if online { "online" } else { "offline" }.into(),
            since,
            version: env!("CARGO_PKG_VERSION").into(),
            kid,
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
