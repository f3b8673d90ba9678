//! Something the hub should know that is not a reading: a frame rejected, a device alarm, a gap.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warn,
    Alarm,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Alarm => "alarm",
        }
    }
}

/// The `event` part of an `event` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// A stable, machine-readable code (`frame-rejected`, `value-out-of-range`, ...), listed in the README.
    pub code: String,
    /// A sentence for a person.
    pub text: String,
    pub sev: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<BTreeMap<String, serde_json::Value>>,
}

impl Event {
    pub fn new(code: &str, sev: Severity, text: impl Into<String>) -> Self {
        Self { code: code.to_string(), text: text.into(), sev, data: None }
    }

    /// Adds one item of machine-readable detail.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.data.get_or_insert_with(BTreeMap::new).insert(key.to_string(), value.into());
        self
    }
}
