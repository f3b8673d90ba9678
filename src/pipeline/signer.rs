//! Signing: a message becomes a contract body stamped with the consult, is sealed into a
//! COSE_Sign1 envelope under the gateway's key and becomes a queue record with its topic.

use super::{ConsultNow, Payload, Source, ToSign};
use crate::clock::now_micros;
use crate::model::{Body, BodyFormat, BodyKind, ConsultBinding, BODY_VERSION};
use crate::mqtt::topics;
use crate::queue::{Class, QueueError, Record};
use crate::sign::{protected_header, seal_under, SigningKey};
use std::sync::{Arc, Mutex};

/// A contract body for a payload (the consult stamp is the signer's: see [`Signer::sign`]).
pub fn make_body(
    site: &str,
    gw: &str,
    from: Option<&Source>,
    payload: Payload,
    seq: u64,
    t: i64,
    tdev: Option<i64>,
) -> Body {
    let mut body = Body {
        v: BODY_VERSION,
        kind: BodyKind::Obs,
        site: site.to_string(),
        gw: gw.to_string(),
        dev: from.map(|f| f.dev.to_string()),
        prof: from.map(|f| f.profile.to_string()),
        seq,
        t,
        tdev,
        consult: None,
        obs: None,
        event: None,
        wave: None,
        media: None,
        binding: None,
        reply: None,
    };
    match payload {
        Payload::Obs(o) => body.obs = Some(o),
        Payload::Event(e) => (body.kind, body.event) = (BodyKind::Event, Some(e)),
        Payload::Wave(w) => (body.kind, body.wave) = (BodyKind::Wave, Some(w)),
        Payload::Media(m) => (body.kind, body.media) = (BodyKind::Media, Some(m)),
        Payload::Reply(r) => {
            // A reply names the device a command was about, not its profile.
            body.prof = None;
            (body.kind, body.reply) = (BodyKind::Reply, Some(r));
        }
        Payload::Consult(c) => {
            (body.dev, body.prof) = (None, None);
            body.kind = BodyKind::Consult;
            body.consult = Some(c.consult);
            body.binding = Some(ConsultBinding { since: t, by: c.by, cmd: c.cmd });
        }
    }
    body
}

/// What signs a message: the gateway's identity, key, body format, and the consult binding it
/// stamps. Shared with the thread that signs and commits, so the runtime thread stays free for
/// devices and the uplink.
pub struct Signer {
    pub site: String,
    pub gw: String,
    pub key: Arc<SigningKey>,
    pub format: BodyFormat,
    /// The envelopes' protected header, encoded once.
    protected: Vec<u8>,
    pub consult: Mutex<ConsultNow>,
}

impl Signer {
    pub fn new(site: &str, gw: &str, key: Arc<SigningKey>, format: BodyFormat, consult: ConsultNow) -> Self {
        let protected = protected_header(&key, format);
        Self { site: site.into(), gw: gw.into(), key, format, protected, consult: Mutex::new(consult) }
    }

    /// The consult open now.
    pub fn consult(&self) -> ConsultNow {
        self.consult.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Builds and signs one message numbered `seq`, stamped with `consult`.
    pub fn sign(&self, seq: u64, job: &mut ToSign, consult: Option<&str>) -> Result<Record, SealError> {
        let payload = std::mem::replace(&mut job.payload, Payload::Obs(Vec::new()));
        let mut body = make_body(&self.site, &self.gw, job.from.as_ref(), payload, seq, job.t, job.tdev);
        if body.kind != BodyKind::Consult {
            body.consult = consult.map(|c| Some(c.to_string()));
        }
        let mut bytes = seal_under(&self.key, &self.protected, &body.encode(self.format)?);
        let mut topic = topics::for_body(&body);
        let mut kind = body.kind;
        // The PUBLISH packet: fixed header (up to 5), topic length and text, packet id.
        let packet = bytes.len() + topic.len() + 9;
        if packet > crate::mqtt::MAX_PACKET {
            tracing::warn!(
                bytes = packet,
                limit = crate::mqtt::MAX_PACKET,
                "message too large for the broker; not queued"
            );
            let event = crate::model::Event::new(
                "message-too-large",
                crate::model::Severity::Warn,
                format!(
                    "a {} message of {packet} bytes does not fit the {}-byte MQTT packet limit: not sent",
                    kind.as_str(),
                    crate::mqtt::MAX_PACKET
                ),
            )
            .with("bytes", packet as u64)
            .with("limit", crate::mqtt::MAX_PACKET as u64)
            .with("type", kind.as_str());
            let mut small =
                make_body(&self.site, &self.gw, job.from.as_ref(), Payload::Event(event), seq, job.t, job.tdev);
            small.consult = body.consult.clone();
            bytes = seal_under(&self.key, &self.protected, &small.encode(self.format)?);
            topic = topics::for_body(&small);
            kind = small.kind;
        }
        Ok(Record { seq, class: class_of(kind), created: now_micros(), topic, payload: bytes })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
    #[error("body: {0}")]
    Body(#[from] crate::model::BodyError),
}

fn class_of(kind: BodyKind) -> Class {
    match kind {
        BodyKind::Wave => Class::Wave,
        BodyKind::Media => Class::Media,
        _ => Class::Spot,
    }
}
