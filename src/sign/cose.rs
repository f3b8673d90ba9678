//! The signed envelope: a tagged COSE_Sign1 (RFC 9052, CBOR tag 18) with EdDSA (`alg` -8),
//! protected header {alg, content type, kid}, empty unprotected header, empty external AAD, and
//! the body as payload. Written directly (the same bytes `coset` builds: a test holds them to it);
//! read with `coset`, the Rust COSE library.

use super::{PublicKey, SigningKey};
use crate::model::BodyFormat;
use coset::{iana, CborSerializable, ContentType, CoseSign1, TaggedCborSerializable};

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
}

/// Signs `body` and returns the tagged COSE_Sign1 bytes.
pub fn seal(key: &SigningKey, body: &[u8], format: BodyFormat) -> Vec<u8> {
    seal_under(key, &protected_header(key, format), body)
}

/// The protected header `key` signs under for bodies in `format`, encoded (a bstr's content):
/// the map {1 (alg): -8 (EdDSA), 3 (content type): 60 or "application/json", 4 (kid): kid}.
/// The same for every message: a signer encodes it once.
pub fn protected_header(key: &SigningKey, format: BodyFormat) -> Vec<u8> {
    let mut h = vec![0xa3, 0x01, 0x27, 0x03];
    match format {
        BodyFormat::Cbor => head(&mut h, 0, CONTENT_TYPE_CBOR as usize),
        BodyFormat::Json => text(&mut h, CONTENT_TYPE_JSON),
    }
    h.push(0x04);
    bstr(&mut h, key.public().kid());
    h
}

/// Signs `body` under an encoded protected header (from [`protected_header`]): the tagged
/// COSE_Sign1 bytes, written directly (RFC 9052 §4.2, §4.4; every length in its shortest form,
/// as `coset` writes them: the tests check the two agree byte for byte).
pub fn seal_under(key: &SigningKey, protected: &[u8], body: &[u8]) -> Vec<u8> {
    // Sig_structure = ["Signature1", protected, external_aad (empty), payload].
    let mut tbs = Vec::with_capacity(body.len() + protected.len() + 24);
    tbs.push(0x84);
    text(&mut tbs, "Signature1");
    bstr(&mut tbs, protected);
    bstr(&mut tbs, &[]);
    bstr(&mut tbs, body);
    let signature = key.sign(&tbs);
    // COSE_Sign1 = 18([protected, unprotected (empty map), payload, signature]).
    let mut out = tbs;
    out.clear();
    out.reserve(body.len() + protected.len() + signature.len() + 16);
    out.extend_from_slice(&[0xd2, 0x84]);
    bstr(&mut out, protected);
    out.push(0xa0);
    bstr(&mut out, body);
    bstr(&mut out, &signature);
    out
}

/// Appends a CBOR byte string (major type 2).
fn bstr(out: &mut Vec<u8>, bytes: &[u8]) {
    head(out, 2, bytes.len());
    out.extend_from_slice(bytes);
}

/// Appends a CBOR text string (major type 3).
fn text(out: &mut Vec<u8>, t: &str) {
    head(out, 3, t.len());
    out.extend_from_slice(t.as_bytes());
}

/// Appends a CBOR item head in its shortest form (RFC 8949 §3): `major` type and `n`, a string's
/// length or an unsigned integer's value (major type 0).
fn head(out: &mut Vec<u8>, major: u8, n: usize) {
    let m = major << 5;
    let n = n as u64;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
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
    use coset::{CoseSign1Builder, HeaderBuilder};

    fn key() -> (tempfile::TempDir, SigningKey) {
        let dir = tempfile::tempdir().unwrap();
        let k = SigningKey::generate(&dir.path().join("k")).unwrap();
        (dir, k)
    }

    #[test]
    fn sealed_messages_open_with_the_public_key_alone() {
        let (_d, k) = key();
        for format in [BodyFormat::Cbor, BodyFormat::Json] {
            let bytes = seal(&k, b"payload", format);
            assert_eq!(bytes[0], 0xd2, "CBOR tag 18");
            let env = open_envelope(&bytes, k.public()).unwrap();
            assert_eq!(env, Envelope { format, payload: b"payload".to_vec() });
        }
    }

    #[test]
    fn the_protected_header_is_alg_content_type_kid() {
        let (_d, k) = key();
        let bytes = seal(&k, &[0xa0], BodyFormat::Cbor);
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

    /// The envelope as `coset` builds it, to hold the directly written one to.
    fn sealed_by_coset(key: &SigningKey, body: Vec<u8>, format: BodyFormat) -> Vec<u8> {
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
            .unwrap()
    }

    #[test]
    fn envelopes_are_byte_for_byte_what_coset_builds() {
        let (_d, k) = key();
        // Every length form of a byte string: 0, one byte inline, 1-, 2- and 4-byte lengths,
        // at each boundary (Ed25519 is deterministic: the signatures must agree too).
        let sizes = [0, 1, 23, 24, 255, 256, 65_535, 65_536, 70_000];
        for format in [BodyFormat::Cbor, BodyFormat::Json] {
            for n in sizes {
                let body: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
                let ours = seal(&k, &body, format);
                assert_eq!(ours, sealed_by_coset(&k, body, format), "{format:?} body of {n} bytes");
            }
        }
    }

    #[test]
    fn any_flipped_byte_is_caught() {
        let (_d, k) = key();
        let bytes = seal(&k, b"{\"v\":1}", BodyFormat::Json);
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
        let bytes = seal(&k, b"x", BodyFormat::Cbor);
        assert!(matches!(open_envelope(&bytes, other.public()), Err(EnvelopeError::UnknownKid { .. })));
    }
}
