//! The signed message body a gateway writes (contract section "Body"): the common keys and one
//! payload by type (`obs`, `wave`, `media`, `event`, and the v1.1 `consult` and `reply`).
//! Bodies a hub signs (`cmd`, `ack`) are [`super::CmdBody`] and [`super::AckBody`].

use super::{ConsultBinding, Event, Media, Observation, Reply, Wave};
use serde::{Deserialize, Serialize};

/// The `v` of every body this gateway writes.
pub const BODY_VERSION: u32 = 1;

/// The `type` of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyKind {
    Obs,
    Wave,
    Media,
    Event,
    /// v1.1: the consultation the gateway's readings are bound to (retained).
    Consult,
    /// v1.1: the gateway's answer to a hub command.
    Reply,
    /// v1.1: a hub's command (signed by a hub key).
    Cmd,
    /// v1.1: what a hub has durably stored (signed by a hub key).
    Ack,
}

impl BodyKind {
    /// The topic segment and `type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            BodyKind::Obs => "obs",
            BodyKind::Wave => "wave",
            BodyKind::Media => "media",
            BodyKind::Event => "event",
            BodyKind::Consult => "consult",
            BodyKind::Reply => "reply",
            BodyKind::Cmd => "cmd",
            BodyKind::Ack => "ack",
        }
    }
}

/// How bodies are written: CBOR (COSE content type 60) or JSON (`application/json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyFormat {
    #[default]
    Cbor,
    Json,
}

/// A message body signed by a gateway. Unknown keys are ignored when reading, so hubs keep working
/// as the contract grows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawBody")]
pub struct Body {
    pub v: u32,
    #[serde(rename = "type")]
    pub kind: BodyKind,
    pub site: String,
    pub gw: String,
    /// The device; absent in bodies about the gateway itself (`consult`, gateway `event`, and
    /// `reply` to a command that names no device).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// The device's profile; present exactly when `dev` is, except in replies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prof: Option<String>,
    pub seq: u64,
    /// Gateway capture time, microseconds since the Unix epoch, UTC.
    pub t: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tdev: Option<i64>,
    /// The consultation: absent when none is open; in a `consult` body always present, `null`
    /// when the consult ended (`Some(None)`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "present_or_null")]
    pub consult: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obs: Option<Vec<Observation>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Event>,
    /// The `wave` keys (`stream`, `rate`, `i0`, `t0`, `n`, `ch`) sit at the top level of the body.
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub wave: Option<Wave>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<Media>,
    /// The `consult` body's keys (`since`, `by`, `cmd`), at the top level.
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub binding: Option<ConsultBinding>,
    /// The `reply` body's keys (`cmd`, `hub`, `state`, `code`, `text`, `data`), at the top level.
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Reply>,
}

/// A body as read: the `consult` and `reply` keys share names (`cmd`), so they are read flat and
/// sorted by `type` (serde's flattening would give `cmd` to whichever comes first). The `wave`
/// keys are read flat too: a flattened field makes serde buffer the whole map before reading it,
/// which cost a hub a tenth of its time per waveform chunk.
#[derive(Deserialize)]
struct RawBody {
    v: u32,
    #[serde(rename = "type")]
    kind: BodyKind,
    site: String,
    gw: String,
    #[serde(default)]
    dev: Option<String>,
    #[serde(default)]
    prof: Option<String>,
    seq: u64,
    t: i64,
    #[serde(default)]
    tdev: Option<i64>,
    #[serde(default, with = "present_or_null")]
    consult: Option<Option<String>>,
    #[serde(default)]
    obs: Option<Vec<Observation>>,
    #[serde(default)]
    event: Option<Event>,
    // wave
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    rate: Option<f64>,
    #[serde(default)]
    i0: Option<u64>,
    #[serde(default)]
    t0: Option<i64>,
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    ch: Option<Vec<super::Channel>>,
    #[serde(default)]
    media: Option<Media>,
    // consult and reply
    #[serde(default)]
    cmd: Option<String>,
    #[serde(default)]
    since: Option<i64>,
    #[serde(default)]
    by: Option<super::ConsultBy>,
    #[serde(default)]
    hub: Option<String>,
    #[serde(default)]
    state: Option<super::ReplyState>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    data: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

impl From<RawBody> for Body {
    fn from(r: RawBody) -> Self {
        let binding = match (r.kind, r.since, r.by) {
            (BodyKind::Consult, Some(since), Some(by)) => Some(ConsultBinding { since, by, cmd: r.cmd.clone() }),
            _ => None,
        };
        let reply = match (r.kind, r.cmd, r.hub, r.state) {
            (BodyKind::Reply, Some(cmd), Some(hub), Some(state)) => Some(Reply {
                cmd,
                hub,
                state,
                code: r.code.unwrap_or_default(),
                text: r.text.unwrap_or_default(),
                data: r.data,
            }),
            _ => None,
        };
        // Every `wave` key present makes a `wave` payload, whatever the type (as flattening did).
        let wave = match (r.stream, r.rate, r.i0, r.t0, r.n, r.ch) {
            (Some(stream), Some(rate), Some(i0), Some(t0), Some(n), Some(ch)) => {
                Some(Wave { stream, rate, i0, t0, n, ch })
            }
            _ => None,
        };
        Body {
            v: r.v,
            kind: r.kind,
            site: r.site,
            gw: r.gw,
            dev: r.dev,
            prof: r.prof,
            seq: r.seq,
            t: r.t,
            tdev: r.tdev,
            consult: r.consult,
            obs: r.obs,
            event: r.event,
            wave,
            media: r.media,
            binding,
            reply,
        }
    }
}

/// A body that could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("CBOR: {0}")]
    Cbor(String),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("a `{kind}` body has no `{kind}` payload")]
    MissingPayload { kind: &'static str },
    #[error("a `{0}` body is signed by a hub, not a gateway")]
    NotAGatewayBody(&'static str),
}

/// Writes a body in `format`.
pub fn encode<T: Serialize>(body: &T, format: BodyFormat) -> Result<Vec<u8>, BodyError> {
    match format {
        BodyFormat::Cbor => {
            let mut out = Vec::with_capacity(256);
            ciborium::into_writer(body, &mut out).map_err(|e| BodyError::Cbor(e.to_string()))?;
            Ok(out)
        }
        BodyFormat::Json => Ok(serde_json::to_vec(body)?),
    }
}

/// Reads a body written in `format`.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], format: BodyFormat) -> Result<T, BodyError> {
    match format {
        BodyFormat::Cbor => ciborium::from_reader(bytes).map_err(|e| BodyError::Cbor(e.to_string())),
        BodyFormat::Json => Ok(serde_json::from_slice(bytes)?),
    }
}

impl Body {
    pub fn encode(&self, format: BodyFormat) -> Result<Vec<u8>, BodyError> {
        encode(self, format)
    }

    /// Reads a body and checks that its payload matches its type.
    pub fn decode(bytes: &[u8], format: BodyFormat) -> Result<Self, BodyError> {
        let body: Body = decode(bytes, format)?;
        let present = match body.kind {
            BodyKind::Obs => body.obs.is_some(),
            BodyKind::Event => body.event.is_some(),
            BodyKind::Wave => body.wave.is_some(),
            BodyKind::Media => body.media.is_some(),
            BodyKind::Consult => body.binding.is_some() && body.consult.is_some(),
            BodyKind::Reply => body.reply.is_some(),
            BodyKind::Cmd | BodyKind::Ack => return Err(BodyError::NotAGatewayBody(body.kind.as_str())),
        };
        if !present {
            return Err(BodyError::MissingPayload { kind: body.kind.as_str() });
        }
        Ok(body)
    }

    /// The consultation this body belongs to (for a `consult` body: the one now open).
    pub fn consult_id(&self) -> Option<&str> {
        self.consult.as_ref().and_then(|c| c.as_deref())
    }

    /// `site/gw/dev` or `site/gw` for bodies about the gateway itself.
    pub fn origin(&self) -> String {
        match &self.dev {
            Some(d) => format!("{}/{}/{d}", self.site, self.gw),
            None => format!("{}/{}", self.site, self.gw),
        }
    }
}

/// `consult`: absent, `null`, or text.
mod present_or_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Option<String>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(Some(id)) => s.serialize_str(id),
            _ => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Code, ConsultBy, Quality, ReplyState, Severity, Unit};

    fn sample() -> Body {
        Body {
            v: BODY_VERSION,
            kind: BodyKind::Obs,
            site: "upazila-01".into(),
            gw: "gw-01".into(),
            dev: Some("monitor-1".into()),
            prof: Some("hl7-pcd01".into()),
            seq: 42,
            t: 1_700_000_000_000_000,
            tdev: None,
            consult: None,
            obs: Some(vec![Observation::measured(
                Code { mdc: 150021, loinc: Some("8480-6".into()), name: None },
                120.0,
                Unit { ucum: "mm[Hg]".into(), mdc: Some(266016) },
            )]),
            event: None,
            wave: None,
            media: None,
            binding: None,
            reply: None,
        }
    }

    fn keys(bytes: &[u8]) -> Vec<String> {
        let value: ciborium::Value = ciborium::from_reader(bytes).unwrap();
        value.as_map().unwrap().iter().map(|(k, _)| k.as_text().unwrap().to_string()).collect()
    }

    #[test]
    fn cbor_and_json_round_trip() {
        let body = sample();
        for format in [BodyFormat::Cbor, BodyFormat::Json] {
            let bytes = body.encode(format).unwrap();
            assert_eq!(Body::decode(&bytes, format).unwrap(), body);
        }
    }

    #[test]
    fn cbor_body_is_a_map_with_text_keys_and_the_contract_names() {
        let bytes = sample().encode(BodyFormat::Cbor).unwrap();
        assert_eq!(keys(&bytes), ["v", "type", "site", "gw", "dev", "prof", "seq", "t", "obs"]);
        let mut bound = sample();
        bound.consult = Some(Some("C-1".into()));
        assert_eq!(keys(&bound.encode(BodyFormat::Cbor).unwrap())[8], "consult");
    }

    #[test]
    fn a_consult_body_says_null_when_the_consult_ended_and_has_no_device() {
        let mut body = sample();
        body.kind = BodyKind::Consult;
        (body.dev, body.prof, body.obs) = (None, None, None);
        body.consult = Some(None);
        body.binding = Some(ConsultBinding { since: 5, by: ConsultBy::Operator, cmd: None });
        let json = String::from_utf8(body.encode(BodyFormat::Json).unwrap()).unwrap();
        assert!(json.contains(r#""consult":null"#), "{json}");
        assert!(!json.contains("\"dev\""), "{json}");
        let bytes = body.encode(BodyFormat::Cbor).unwrap();
        assert_eq!(keys(&bytes), ["v", "type", "site", "gw", "seq", "t", "consult", "since", "by"]);
        let back = Body::decode(&bytes, BodyFormat::Cbor).unwrap();
        assert_eq!(back, body);
        assert_eq!(back.consult_id(), None);
        // Without the `consult` key it is not a consult body.
        body.consult = None;
        assert!(Body::decode(&body.encode(BodyFormat::Cbor).unwrap(), BodyFormat::Cbor).is_err());
    }

    #[test]
    fn a_reply_round_trips_with_its_keys_at_the_top_level() {
        let mut body = sample();
        body.kind = BodyKind::Reply;
        (body.dev, body.prof, body.obs) = (None, None, None);
        body.reply = Some(Reply {
            cmd: "c-1".into(),
            hub: "hub-1".into(),
            state: ReplyState::Done,
            code: "ok".into(),
            text: "done".into(),
            data: None,
        });
        let bytes = body.encode(BodyFormat::Cbor).unwrap();
        assert_eq!(keys(&bytes)[6..], ["cmd", "hub", "state", "code", "text"]);
        assert_eq!(Body::decode(&bytes, BodyFormat::Cbor).unwrap(), body);
    }

    #[test]
    fn a_body_whose_payload_does_not_match_its_type_is_refused() {
        let mut body = sample();
        body.kind = BodyKind::Event;
        let bytes = body.encode(BodyFormat::Json).unwrap();
        assert!(matches!(Body::decode(&bytes, BodyFormat::Json), Err(BodyError::MissingPayload { .. })));
        body.kind = BodyKind::Cmd;
        let bytes = body.encode(BodyFormat::Json).unwrap();
        assert!(matches!(Body::decode(&bytes, BodyFormat::Json), Err(BodyError::NotAGatewayBody("cmd"))));
    }

    fn wave_body() -> Body {
        let mut body = sample();
        body.kind = BodyKind::Wave;
        body.obs = None;
        body.wave = Some(Wave {
            stream: "ecg".into(),
            rate: 360.0,
            i0: 720,
            t0: 1_700_000_000_000_000,
            n: 3,
            ch: vec![crate::model::Channel {
                label: "MLII".into(),
                code: Code { mdc: 131329, loinc: None, name: None },
                unit: Unit { ucum: "mV".into(), mdc: None },
                gain: 0.005,
                base: 1024,
                enc: "i16le".into(),
                data: vec![1, 0, 2, 0, 3, 0],
            }],
        });
        body
    }

    #[test]
    fn a_wave_body_is_read_with_its_keys_at_the_top_level_and_unknown_keys_ignored() {
        let body = wave_body();
        for format in [BodyFormat::Cbor, BodyFormat::Json] {
            let bytes = body.encode(format).unwrap();
            assert_eq!(Body::decode(&bytes, format).unwrap(), body);
        }
        let bytes = body.encode(BodyFormat::Cbor).unwrap();
        assert_eq!(keys(&bytes)[8..], ["stream", "rate", "i0", "t0", "n", "ch"]);
        // A key a later contract may add is passed over, wherever it sits.
        let mut value: serde_json::Value = serde_json::from_slice(&body.encode(BodyFormat::Json).unwrap()).unwrap();
        value["later"] = serde_json::json!({"a": [1, 2]});
        value["ch"][0]["later"] = serde_json::json!("x");
        let json = serde_json::to_vec(&value).unwrap();
        assert_eq!(Body::decode(&json, BodyFormat::Json).unwrap(), body);
        let mut cbor = Vec::new();
        ciborium::into_writer(&value, &mut cbor).unwrap();
        assert_eq!(Body::decode(&cbor, BodyFormat::Cbor).unwrap(), body);
        // Without any one of its keys a wave body has no wave payload.
        for key in ["stream", "rate", "i0", "t0", "n", "ch"] {
            let mut partial = value.clone();
            partial.as_object_mut().unwrap().remove(key);
            let json = serde_json::to_vec(&partial).unwrap();
            let got = Body::decode(&json, BodyFormat::Json);
            assert!(matches!(got, Err(BodyError::MissingPayload { kind: "wave" })), "without {key}: {got:?}");
        }
        // A wrong type in a wave key is an unreadable body.
        let mut wrong = value.clone();
        wrong["n"] = serde_json::json!("three");
        assert!(matches!(
            Body::decode(&serde_json::to_vec(&wrong).unwrap(), BodyFormat::Json),
            Err(BodyError::Json(_))
        ));
    }

    #[test]
    fn quality_and_severity_use_contract_spellings() {
        let json = serde_json::to_string(&(Quality::PosInf, Quality::NRes, Severity::Alarm)).unwrap();
        assert_eq!(json, r#"["+inf","nres","alarm"]"#);
    }
}
