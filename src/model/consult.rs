//! The consultation a gateway's readings are bound to (v1.1 `consult` body): which consult, since
//! when, and who opened or closed it.

use serde::{Deserialize, Serialize};

/// Who changed the binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsultBy {
    /// A hub, by a `consult.start` / `consult.end` command.
    Hub,
    /// The operator on the spoke PC (`spokegate consult ...`, the operator page).
    Operator,
}

impl ConsultBy {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsultBy::Hub => "hub",
            ConsultBy::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hub" => Some(ConsultBy::Hub),
            "operator" => Some(ConsultBy::Operator),
            _ => None,
        }
    }
}

/// The keys a `consult` body carries besides `consult` itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsultBinding {
    /// When the binding took its current value, µs since the epoch.
    pub since: i64,
    pub by: ConsultBy,
    /// The hub command that changed it, when a hub did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
}
