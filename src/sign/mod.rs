//! Signing: the gateway's Ed25519 key and the COSE_Sign1 envelope (RFC 9052) around every body.

mod cose;
mod key;

pub use cose::{
    open_envelope, parse_envelope, seal, verify_envelope, Envelope, EnvelopeError, CONTENT_TYPE_CBOR, CONTENT_TYPE_JSON,
};
pub use key::{GatewayKey, KeyError, PublicKey};
