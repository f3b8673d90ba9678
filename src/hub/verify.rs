//! Checking one MQTT message as a hub must: topic, signature with the key bound to the topic's
//! site and gateway, body, ids. Retained status and device state are unsigned JSON: they are
//! passed on as such, never as verified.

use crate::model::{AckBody, Body, BodyKind, CmdBody};
use crate::mqtt::status::{DeviceState, GatewayStatus};
use crate::mqtt::topics::{self, TopicRef};
use crate::sign::{open_from_gateway, open_from_hub, KeyRing, OpenError};

/// A message that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub enum HubMessage {
    /// Unsigned (retained JSON): what it says is not proven by any key.
    Status { site: String, gw: String, status: GatewayStatus },
    /// Unsigned (retained JSON).
    DeviceState { site: String, gw: String, dev: String, state: DeviceState },
    /// A gateway body verified with the key bound to its site and gateway.
    Signed(Box<Body>),
    /// A hub's command, verified with a key bound to its hub.
    Command(CmdBody),
    /// A hub's acknowledgement, verified with a key bound to its hub.
    Ack(AckBody),
}

impl HubMessage {
    /// True when a signature proves the message (status and state are unsigned).
    pub fn is_signed(&self) -> bool {
        !matches!(self, HubMessage::Status { .. } | HubMessage::DeviceState { .. })
    }
}

/// Why a message is not shown as valid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("not a spokegate v1 topic")]
    UnknownTopic,
    #[error("unreadable status/state JSON: {0}")]
    BadJson(String),
    #[error("{0}")]
    Open(#[from] OpenError),
    #[error("body {field} `{body}` does not match the topic's `{topic}`")]
    Mismatch { field: &'static str, topic: String, body: String },
}

fn mismatch(field: &'static str, topic: &str, body: &str) -> Rejection {
    Rejection::Mismatch { field, topic: topic.into(), body: body.into() }
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
        TopicRef::Body { site, gw, dev, kind, sub } => {
            let (bytes, format) = open_from_gateway(payload, keys, site, gw)?;
            let body = Body::decode(&bytes, format).map_err(OpenError::from)?;
            check_ids(&body, site, gw)?;
            let body_dev = body.dev.as_deref();
            // A reply may name the device a command was about; its topic does not.
            if dev != body_dev && !(kind == BodyKind::Reply && dev.is_none()) {
                return Err(mismatch("dev", dev.unwrap_or(""), body_dev.unwrap_or("")));
            }
            if body.kind != kind {
                return Err(mismatch("type", kind.as_str(), body.kind.as_str()));
            }
            let body_sub = match kind {
                BodyKind::Wave => body.wave.as_ref().map(|w| w.stream.as_str()),
                BodyKind::Reply => body.reply.as_ref().map(|r| r.cmd.as_str()),
                _ => None,
            };
            if body_sub != sub {
                let field = if kind == BodyKind::Reply { "cmd" } else { "stream" };
                return Err(mismatch(field, sub.unwrap_or(""), body_sub.unwrap_or("")));
            }
            Ok(HubMessage::Signed(Box::new(body)))
        }
        TopicRef::Cmd { site, gw, name } => {
            let (cmd, hub): (CmdBody, String) = open_from_hub(payload, keys)?;
            check_hub_body(cmd.kind, BodyKind::Cmd, (&cmd.site, &cmd.gw, &cmd.hub), (site, gw, &hub))?;
            if cmd.name != name {
                return Err(mismatch("name", name, &cmd.name));
            }
            Ok(HubMessage::Command(cmd))
        }
        TopicRef::Ack { site, gw } => {
            let (ack, hub): (AckBody, String) = open_from_hub(payload, keys)?;
            check_hub_body(ack.kind, BodyKind::Ack, (&ack.site, &ack.gw, &ack.hub), (site, gw, &hub))?;
            Ok(HubMessage::Ack(ack))
        }
    }
}

fn check_ids(body: &Body, site: &str, gw: &str) -> Result<(), Rejection> {
    for (field, t, b) in [("site", site, &body.site), ("gw", gw, &body.gw)] {
        if t != b {
            return Err(mismatch(field, t, b));
        }
    }
    Ok(())
}

/// A hub-signed body's type, addressee and hub (the key's binding) against the topic.
pub fn check_hub_body(
    kind: BodyKind,
    want: BodyKind,
    (site, gw, hub): (&str, &str, &str),
    (topic_site, topic_gw, key_hub): (&str, &str, &str),
) -> Result<(), Rejection> {
    if kind != want {
        return Err(mismatch("type", want.as_str(), kind.as_str()));
    }
    for (field, t, b) in [("site", topic_site, site), ("gw", topic_gw, gw)] {
        if t != b {
            return Err(mismatch(field, t, b));
        }
    }
    if hub != key_hub {
        return Err(Rejection::Mismatch { field: "hub", topic: format!("key of {key_hub}"), body: hub.into() });
    }
    Ok(())
}
