//! Signing: Ed25519 keys (the gateway's, and hubs'), the keyrings that bind public keys to who may
//! sign what, and the COSE_Sign1 envelope (RFC 9052) around every body.

mod cose;
mod key;
mod keyring;
mod open;
pub mod rotation;

pub use cose::{
    open_envelope, parse_envelope, protected_header, seal, seal_under, verify_envelope, Envelope, EnvelopeError,
    CONTENT_TYPE_CBOR, CONTENT_TYPE_JSON,
};
pub use key::{open_to_others, KeyError, PublicKey, SigningKey};
pub use keyring::{read_bound_keys, Binding, BoundKey, KeyRing, KeyRingError, KeyRingLoadError};
pub use open::{open_from_gateway, open_from_hub, peek_unverified, OpenError};
