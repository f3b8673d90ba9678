//! Checking what arrived: each message is verified with the key bound to its topic's site and
//! gateway (or a hub key for commands) before anything of it is stored; what fails goes to the
//! quarantine with a short reason code and the full explanation.

use crate::storable;
use bytes::Bytes;
use spokegate::hub::{HubMessage, Rejection};
use spokegate::model::{Body, CmdBody};
use spokegate::sign::{parse_envelope, EnvelopeError, KeyRingError, OpenError};
use std::collections::HashSet;

/// A gateway body that verified, ready to store: no U+0000 in its strings ([`storable`]).
#[derive(Debug)]
pub struct Verified {
    pub topic: String,
    pub kid: String,
    pub envelope: Bytes,
    pub body: Body,
    /// The body as stored in `messages.body`, without the packed samples and image bytes (they
    /// are in their own tables, and in the envelope).
    pub json: serde_json::Value,
}

/// The body as it can be stored, and its JSON for `messages.body` ([`storable`]).
fn stored_form(mut body: Body) -> Result<(Body, serde_json::Value), serde_json::Error> {
    let json = stripped_json(&mut body);
    if !storable::holds_nul(&json) {
        return Ok((body, json));
    }
    let mut body = storable::without_nul(body)?;
    let json = stripped_json(&mut body);
    Ok((body, json))
}

/// The body's JSON without the packed samples and image bytes: they are taken out while it is
/// written (no copy of them) and put back.
fn stripped_json(b: &mut Body) -> serde_json::Value {
    let samples: Vec<Vec<u8>> =
        b.wave.iter_mut().flat_map(|w| &mut w.ch).map(|c| std::mem::take(&mut c.data)).collect();
    let image = b.media.as_mut().map(|m| std::mem::take(&mut m.data));
    let json = serde_json::to_value(&*b).unwrap_or(serde_json::Value::Null);
    for (c, data) in b.wave.iter_mut().flat_map(|w| &mut w.ch).zip(samples) {
        c.data = data;
    }
    if let (Some(m), Some(data)) = (b.media.as_mut(), image) {
        m.data = data;
    }
    json
}

#[derive(Debug)]
pub struct Quarantined {
    pub topic: String,
    pub reason: &'static str,
    pub detail: String,
    pub kid: Option<String>,
    pub payload: Bytes,
}

#[derive(Debug)]
pub struct CommandSeen {
    pub cmd: CmdBody,
    pub envelope: Bytes,
}

/// One batch, sorted by what becomes of it.
#[derive(Debug, Default)]
pub struct Batch {
    pub verified: Vec<Verified>,
    pub quarantined: Vec<Quarantined>,
    pub commands: Vec<CommandSeen>,
    /// Unsigned retained status/state and hub acknowledgements: nothing to store.
    pub passed_over: usize,
}

/// The reason code kept with a quarantined message (a metric label too).
pub fn reason(r: &Rejection) -> &'static str {
    match r {
        Rejection::UnknownTopic => "unknown-topic",
        Rejection::BadJson(_) => "bad-json",
        Rejection::Mismatch { .. } => "topic-mismatch",
        Rejection::Open(OpenError::Key(KeyRingError::UnknownKey(_))) => "unknown-kid",
        Rejection::Open(OpenError::Key(KeyRingError::NotBound { .. })) => "key-not-bound",
        Rejection::Open(OpenError::Envelope(EnvelopeError::BadSignature)) => "bad-signature",
        Rejection::Open(OpenError::Envelope(EnvelopeError::WrongAlgorithm)) => "wrong-algorithm",
        Rejection::Open(OpenError::Envelope(_)) => "not-cose-sign1",
        Rejection::Open(OpenError::Body(_)) => "body-unreadable",
    }
}

/// Every reason code, for metrics that start at zero.
pub const REASONS: &[&str] = &[
    "unknown-topic",
    "bad-json",
    "topic-mismatch",
    "unknown-kid",
    "key-revoked",
    "key-not-bound",
    "bad-signature",
    "wrong-algorithm",
    "not-cose-sign1",
    "body-unreadable",
    "media-invalid",
    "wave-invalid",
    "clock-step-invalid",
];

fn kid_of(payload: &[u8]) -> Option<String> {
    parse_envelope(payload).ok().map(|s| hex::encode(&s.protected.header.key_id)).filter(|k| !k.is_empty())
}

/// True when the message names a key this ring does not know (the ring may be stale).
pub fn unknown_key(r: &Result<HubMessage, Rejection>) -> bool {
    r.as_ref().err().is_some_and(names_unknown_key)
}

fn names_unknown_key(r: &Rejection) -> bool {
    matches!(r, Rejection::Open(OpenError::Key(KeyRingError::UnknownKey(_))))
}

impl Batch {
    /// Sorts one checked message into the batch.
    /// `revoked`: kids of keys no longer trusted (a message signed with one says so).
    pub fn add(
        &mut self,
        topic: &str,
        payload: Bytes,
        checked: Result<HubMessage, Rejection>,
        revoked: &HashSet<String>,
    ) {
        let topic = storable::text(topic.to_string());
        let unstorable = |e: serde_json::Error| format!("the body does not read back without its U+0000: {e}");
        match checked {
            Ok(HubMessage::Signed(body)) => {
                let kid = kid_of(&payload).unwrap_or_default();
                // A signature proves who sent an image part or a waveform chunk, not that what it
                // claims is possible: such a message is kept apart, as `watch` refuses it.
                let media = body.media.as_ref().map(spokegate::hub::check_part);
                let wave = body.wave.as_ref().map(spokegate::hub::check_chunk);
                // A clock step it corrects other messages' times by.
                let step = spokegate::hub::clock_step(&body);
                let stored = match (media, wave, step) {
                    (Some(Err(why)), _, _) => Err(("media-invalid", why.to_string())),
                    (_, Some(Err(why)), _) => Err(("wave-invalid", why.to_string())),
                    (_, _, Some(Err(why))) => Err(("clock-step-invalid", why)),
                    _ => stored_form(*body).map_err(|e| ("body-unreadable", unstorable(e))),
                };
                match stored {
                    Ok((body, json)) => self.verified.push(Verified { topic, kid, envelope: payload, body, json }),
                    Err((reason, detail)) => self.quarantine(topic, reason, detail, Some(kid), payload),
                }
            }
            Ok(HubMessage::Command(cmd)) => match storable::without_nul(cmd) {
                Ok(cmd) => self.commands.push(CommandSeen { cmd, envelope: payload }),
                Err(e) => {
                    let kid = kid_of(&payload);
                    self.quarantine(topic, "body-unreadable", unstorable(e), kid, payload)
                }
            },
            Ok(HubMessage::Ack(_) | HubMessage::Status { .. } | HubMessage::DeviceState { .. }) => {
                self.passed_over += 1
            }
            Err(r) => {
                let kid = kid_of(&payload);
                let was_revoked = names_unknown_key(&r) && kid.as_ref().is_some_and(|k| revoked.contains(k));
                let (reason, detail) = if was_revoked {
                    ("key-revoked", format!("key {} was revoked", kid.as_deref().unwrap_or("")))
                } else {
                    (reason(&r), r.to_string())
                };
                self.quarantine(topic, reason, detail, kid, payload)
            }
        }
    }

    fn quarantine(&mut self, topic: String, reason: &'static str, detail: String, kid: Option<String>, payload: Bytes) {
        // The detail may quote what arrived.
        self.quarantined.push(Quarantined { topic, reason, detail: storable::text(detail), kid, payload })
    }
}
