//! The gateway's answer to a hub command (v1.1 `reply` body).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a command stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplyState {
    /// Taken on; `done` or `failed` follows when it ends.
    Accepted,
    Done,
    /// Never executed: authentication, addressee, window, replay or arguments.
    Refused,
    /// Executed and did not succeed.
    Failed,
}

impl ReplyState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyState::Accepted => "accepted",
            ReplyState::Done => "done",
            ReplyState::Refused => "refused",
            ReplyState::Failed => "failed",
        }
    }

    /// True when no further reply follows.
    pub fn is_final(self) -> bool {
        self != ReplyState::Accepted
    }
}

/// The `reply` keys of a body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The command's `id`.
    pub cmd: String,
    /// The hub that sent it.
    pub hub: String,
    pub state: ReplyState,
    /// A stable, machine-readable code (`ok`, `replayed`, `no-camera`, ...), listed in the README.
    pub code: String,
    /// A sentence for a person.
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<BTreeMap<String, serde_json::Value>>,
}
