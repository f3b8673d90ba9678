//! Opening a signed message with a keyring: find the key by `kid`, check what it is bound to,
//! verify the signature, read the body.

use super::{parse_envelope, verify_envelope, EnvelopeError, KeyRing, KeyRingError};
use crate::model::{decode, BodyError, BodyFormat};

/// Why a signed message was not opened.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpenError {
    #[error("signature check failed: {0}")]
    Envelope(#[from] EnvelopeError),
    #[error("{0}")]
    Key(#[from] KeyRingError),
    #[error("body unreadable: {0}")]
    Body(String),
}

impl From<BodyError> for OpenError {
    fn from(e: BodyError) -> Self {
        OpenError::Body(e.to_string())
    }
}

/// A verified gateway envelope: its body bytes and their format.
pub fn open_from_gateway(
    bytes: &[u8],
    keys: &KeyRing,
    site: &str,
    gw: &str,
) -> Result<(Vec<u8>, BodyFormat), OpenError> {
    let sign1 = parse_envelope(bytes)?;
    let key = keys.gateway_key(&sign1.protected.header.key_id, site, gw)?;
    let env = verify_envelope(sign1, key)?;
    Ok((env.payload, env.format))
}

/// A body signed by a hub key of `keys`, and the hub that key is bound to.
pub fn open_from_hub<T: serde::de::DeserializeOwned>(bytes: &[u8], keys: &KeyRing) -> Result<(T, String), OpenError> {
    let sign1 = parse_envelope(bytes)?;
    let (key, hub) = keys.hub_key(&sign1.protected.header.key_id)?;
    let hub = hub.to_string();
    let env = verify_envelope(sign1, key)?;
    Ok((decode(&env.payload, env.format)?, hub))
}

/// Reads a signed message's body without verifying it: only to name an unauthenticated message
/// in a refusal, never to act on it.
pub fn peek_unverified<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let sign1 = parse_envelope(bytes).ok()?;
    let payload = sign1.payload?;
    let format = match &sign1.protected.header.content_type {
        Some(coset::ContentType::Text(t)) if t == super::CONTENT_TYPE_JSON => BodyFormat::Json,
        _ => BodyFormat::Cbor,
    };
    decode(&payload, format).ok()
}
