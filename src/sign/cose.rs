//! The signed envelope: a tagged COSE_Sign1 (RFC 9052, CBOR tag 18) with EdDSA (`alg` -8),
//! protected header {alg, content type, kid}, empty unprotected header, empty external AAD, and
//! the body as payload. Built and read with `coset`, the Rust COSE library.

use super::{PublicKey, SigningKey};
use crate::model::BodyFormat;
use coset::{iana, CborSerializable, ContentType, CoseSign1, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable};

/// CoAP content format 60, `application/cbor`.
pub const CONTENT_TYPE_CBOR: u64 = 60;
pub const CONTENT_TYPE_JSON: &str = "application/json";

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("not a tagged COSE_Sign1 message: {0}")]
    NotCoseSign1(String),
    #[error("algorithm is not EdDSA (-8)")]
    WrongAlgorithm,
    #[error("kid {got} is not the gateway key's {want}")]
    UnknownKid { got: String, want: String },
    #[error("signature does not verify")]
    BadSignature,
    #[error("no payload")]
    NoPayload,
    #[error("content type is neither 60 (application/cbor) nor application/json")]
    UnknownContentType,
    #[error("COSE encoding failed: {0}")]
    Encode(String),
}

/// Signs `body` and returns the tagged COSE_Sign1 bytes.
pub fn seal(key: &SigningKey, body: Vec<u8>, format: BodyFormat) -> Result<Vec<u8>, EnvelopeError> {
    let header = HeaderBuilder::new().algorithm(iana::Algorithm::EdDSA).key_id(key.public().kid().to_vec());
    let protected = match format {
        BodyFormat::Cbor => header.content_format(iana::CoapContentFormat::Cbor),
        BodyFormat::Json => header.content_type(CONTENT_TYPE_JSON.to_string()),
    }
    .build();
    CoseSign1Builder::new()
        .protected(protected)
        .payload(body)
        .create_signature(&[], |tbs| key.sign(tbs))
        .build()
        .to_tagged_vec()
        .map_err(|e| EnvelopeError::Encode(e.to_string()))
}

/// A verified envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub format: BodyFormat,
    pub payload: Vec<u8>,
}

/// Parses and verifies a tagged COSE_Sign1 with the gateway's public key.
pub fn open_envelope(bytes: &[u8], key: &PublicKey) -> Result<Envelope, EnvelopeError> {
    verify_envelope(parse_envelope(bytes)?, key)
}

/// Parses a tagged COSE_Sign1 without verifying it (to read its `kid` first).
pub fn parse_envelope(bytes: &[u8]) -> Result<CoseSign1, EnvelopeError> {
    CoseSign1::from_tagged_slice(bytes).or_else(|_| {
        // Say plainly when the tag is missing rather than a generic CBOR error.
        CoseSign1::from_slice(bytes).map(|_| ()).map_err(|e| EnvelopeError::NotCoseSign1(e.to_string()))?;
        Err(EnvelopeError::NotCoseSign1("CBOR tag 18 missing".into()))
    })
}

/// Verifies a parsed COSE_Sign1 with the gateway's public key.
pub fn verify_envelope(sign1: CoseSign1, key: &PublicKey) -> Result<Envelope, EnvelopeError> {
    let h = &sign1.protected.header;
    if h.alg != Some(coset::RegisteredLabelWithPrivate::Assigned(iana::Algorithm::EdDSA)) {
        return Err(EnvelopeError::WrongAlgorithm);
    }
    if h.key_id != key.kid() {
        return Err(EnvelopeError::UnknownKid { got: hex::encode(&h.key_id), want: key.kid_hex() });
    }
    sign1.verify_signature(
        &[],
        |sig, tbs| {
            if key.verify(tbs, sig) {
                Ok(())
            } else {
                Err(EnvelopeError::BadSignature)
            }
        },
    )?;
    let format = match &h.content_type {
        Some(ContentType::Assigned(iana::CoapContentFormat::Cbor)) => BodyFormat::Cbor,
        Some(ContentType::Text(t)) if t == CONTENT_TYPE_JSON => BodyFormat::Json,
        _ => return Err(EnvelopeError::UnknownContentType),
    };
    let payload = sign1.payload.ok_or(EnvelopeError::NoPayload)?;
    Ok(Envelope { format, payload })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> (tempfile::TempDir, SigningKey) {
        let dir = tempfile::tempdir().unwrap();
        let k = SigningKey::generate(&dir.path().join("k")).unwrap();
        (dir, k)
    }

    #[test]
    fn sealed_messages_open_with_the_public_key_alone() {
        let (_d, k) = key();
        for format in [BodyFormat::Cbor, BodyFormat::Json] {
            let bytes = seal(&k, b"payload".to_vec(), format).unwrap();
            assert_eq!(bytes[0], 0xd2, "CBOR tag 18");
            let env = open_envelope(&bytes, k.public()).unwrap();
            assert_eq!(env, Envelope { format, payload: b"payload".to_vec() });
        }
    }

    #[test]
    fn the_protected_header_is_alg_content_type_kid() {
        let (_d, k) = key();
        let bytes = seal(&k, vec![0xa0], BodyFormat::Cbor).unwrap();
        let s = CoseSign1::from_tagged_slice(&bytes).unwrap();
        let protected: coset::cbor::Value =
            coset::cbor::de::from_reader(&s.protected.original_data.unwrap()[..]).unwrap();
        let map = protected.as_map().unwrap();
        let labels: Vec<i128> = map.iter().map(|(k, _)| k.as_integer().unwrap().into()).collect();
        assert_eq!(labels, [1, 3, 4]);
        assert_eq!(map[0].1, coset::cbor::Value::from(-8));
        assert_eq!(map[1].1, coset::cbor::Value::from(60));
        assert!(s.unprotected.is_empty());
    }

    #[test]
    fn any_flipped_byte_is_caught() {
        let (_d, k) = key();
        let bytes = seal(&k, b"{\"v\":1}".to_vec(), BodyFormat::Json).unwrap();
        for i in 0..bytes.len() {
            let mut t = bytes.clone();
            t[i] ^= 0x01;
            assert!(open_envelope(&t, k.public()).is_err(), "flip at {i} accepted");
        }
    }

    #[test]
    fn another_gateways_key_is_refused() {
        let (_d, k) = key();
        let (_e, other) = key();
        let bytes = seal(&k, b"x".to_vec(), BodyFormat::Cbor).unwrap();
        assert!(matches!(open_envelope(&bytes, other.public()), Err(EnvelopeError::UnknownKid { .. })));
    }
}
