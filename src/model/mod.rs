//! The one clinical model every reading is normalised to, and the message bodies of the wire contract
//! (`../shared/spec/mqtt-contract.md`, documented in `docs/contract.cddl`).
//!
//! A body serialises to a CBOR map with text keys (the default) or to JSON with the same keys.

pub mod body;
mod event;
mod observation;
mod wave;

pub use body::{Body, BodyError, BodyFormat, BodyKind, BODY_VERSION};
pub use event::{Event, Severity};
pub use observation::{Code, Observation, Quality, Unit};
pub use wave::{Channel, Wave};
