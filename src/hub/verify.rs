//! Checking one MQTT message as a hub must: topic, signature, body, ids.

use crate::model::{Body, BodyError};
use crate::mqtt::status::{DeviceState, GatewayStatus};
use crate::mqtt::topics::{self, TopicRef};
use crate::sign::{parse_envelope, verify_envelope, EnvelopeError, PublicKey};
use std::collections::HashMap;

/// The gateway keys a hub trusts, by `kid`.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: HashMap<[u8; 8], PublicKey>,
}

impl KeyRing {
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> Self {
        Self { keys: keys.into_iter().map(|k| (*k.kid(), k)).collect() }
    }

    /// The key named by an envelope's `kid`.
    fn find(&self, kid: &[u8]) -> Option<&PublicKey> {
        self.keys.get(<&[u8; 8]>::try_from(kid).ok()?)
    }
}

/// A message that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub enum HubMessage {
    Status { site: String, gw: String, status: GatewayStatus },
    DeviceState { site: String, gw: String, dev: String, state: DeviceState },
    Signed(Body),
}

/// Why a message is not shown as valid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("not a spokegate v1 topic")]
    UnknownTopic,
    #[error("unsigned or unreadable status/state JSON: {0}")]
    BadJson(String),
    #[error("no trusted key for this message's kid")]
    UnknownKey,
    #[error("signature check failed: {0}")]
    Envelope(#[from] EnvelopeError),
    #[error("body unreadable: {0}")]
    Body(String),
    #[error("body {field} `{body}` does not match the topic's `{topic}`")]
    Mismatch { field: &'static str, topic: String, body: String },
}

impl From<BodyError> for Rejection {
    fn from(e: BodyError) -> Self {
        Rejection::Body(e.to_string())
    }
}

/// Checks one message received on `topic`.
pub fn check(topic: &str, payload: &[u8], keys: &KeyRing) -> Result<HubMessage, Rejection> {
    match topics::parse(topic).ok_or(Rejection::UnknownTopic)? {
        TopicRef::Status { site, gw } => serde_json::from_slice(payload)
            .map(|status| HubMessage::Status { site: site.into(), gw: gw.into(), status })
            .map_err(|e| Rejection::BadJson(e.to_string())),
        TopicRef::DeviceState { site, gw, dev } => serde_json::from_slice(payload)
            .map(|state| HubMessage::DeviceState { site: site.into(), gw: gw.into(), dev: dev.into(), state })
            .map_err(|e| Rejection::BadJson(e.to_string())),
        TopicRef::Body { site, gw, dev, kind, stream } => {
            let sign1 = parse_envelope(payload)?;
            let key = keys.find(&sign1.protected.header.key_id).ok_or(Rejection::UnknownKey)?;
            let envelope = verify_envelope(sign1, key)?;
            let body = Body::decode(&envelope.payload, envelope.format)?;
            for (field, t, b) in [("site", site, &body.site), ("gw", gw, &body.gw), ("dev", dev, &body.dev)] {
                if t != b {
                    return Err(Rejection::Mismatch { field, topic: t.into(), body: b.clone() });
                }
            }
            if body.kind != kind {
                return Err(Rejection::Mismatch {
                    field: "type",
                    topic: kind.as_str().into(),
                    body: body.kind.as_str().into(),
                });
            }
            let body_stream = body.wave.as_ref().map(|w| w.stream.as_str());
            if body_stream != stream {
                return Err(Rejection::Mismatch {
                    field: "stream",
                    topic: stream.unwrap_or("").into(),
                    body: body_stream.unwrap_or("").into(),
                });
            }
            Ok(HubMessage::Signed(body))
        }
    }
}
