//! The signed message body (contract section "Body"): the common keys and one payload by type.

use super::{Event, Observation, Wave};
use serde::{Deserialize, Serialize};

/// The `v` of every body this gateway writes.
pub const BODY_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyKind {
    Obs,
    Wave,
    Media,
    Event,
}

impl BodyKind {
    /// The topic segment and `type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            BodyKind::Obs => "obs",
            BodyKind::Wave => "wave",
            BodyKind::Media => "media",
            BodyKind::Event => "event",
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

/// A message body. Unknown keys are ignored when reading, so hubs keep working as the contract grows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Body {
    pub v: u32,
    #[serde(rename = "type")]
    pub kind: BodyKind,
    pub site: String,
    pub gw: String,
    pub dev: String,
    pub prof: String,
    pub seq: u64,
    /// Gateway capture time, microseconds since the Unix epoch, UTC.
    pub t: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tdev: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consult: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obs: Option<Vec<Observation>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Event>,
    /// The `wave` keys (`stream`, `rate`, `i0`, `t0`, `n`, `ch`) sit at the top level of the body.
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub wave: Option<Wave>,
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
}

impl Body {
    pub fn encode(&self, format: BodyFormat) -> Result<Vec<u8>, BodyError> {
        match format {
            BodyFormat::Cbor => {
                let mut out = Vec::with_capacity(256);
                ciborium::into_writer(self, &mut out).map_err(|e| BodyError::Cbor(e.to_string()))?;
                Ok(out)
            }
            BodyFormat::Json => Ok(serde_json::to_vec(self)?),
        }
    }

    /// Reads a body and checks that its payload matches its type.
    pub fn decode(bytes: &[u8], format: BodyFormat) -> Result<Self, BodyError> {
        let body: Body = match format {
            BodyFormat::Cbor => ciborium::from_reader(bytes).map_err(|e| BodyError::Cbor(e.to_string()))?,
            BodyFormat::Json => serde_json::from_slice(bytes)?,
        };
        let present = match body.kind {
            BodyKind::Obs => body.obs.is_some(),
            BodyKind::Event => body.event.is_some(),
            BodyKind::Wave => body.wave.is_some(),
            // Media payloads are read by their own module when it exists.
            BodyKind::Media => true,
        };
        if !present {
            return Err(BodyError::MissingPayload { kind: body.kind.as_str() });
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Code, Quality, Severity, Unit};

    fn sample() -> Body {
        Body {
            v: BODY_VERSION,
            kind: BodyKind::Obs,
            site: "upazila-01".into(),
            gw: "gw-01".into(),
            dev: "monitor-1".into(),
            prof: "hl7-pcd01".into(),
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
        }
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
        let value: ciborium::Value = ciborium::from_reader(&bytes[..]).unwrap();
        let map = value.as_map().unwrap();
        let keys: Vec<&str> = map.iter().map(|(k, _)| k.as_text().unwrap()).collect();
        assert_eq!(keys, ["v", "type", "site", "gw", "dev", "prof", "seq", "t", "obs"]);
    }

    #[test]
    fn a_body_whose_payload_does_not_match_its_type_is_refused() {
        let mut body = sample();
        body.kind = BodyKind::Event;
        let bytes = body.encode(BodyFormat::Json).unwrap();
        assert!(matches!(Body::decode(&bytes, BodyFormat::Json), Err(BodyError::MissingPayload { .. })));
    }

    #[test]
    fn quality_and_severity_use_contract_spellings() {
        let json = serde_json::to_string(&(Quality::PosInf, Quality::NRes, Severity::Alarm)).unwrap();
        assert_eq!(json, r#"["+inf","nres","alarm"]"#);
    }
}
