//! The one clinical model every reading is normalised to, and the message bodies of the wire contract
//! (`../shared/spec/mqtt-contract.md`, documented in `docs/contract.cddl`).
//!
//! A body serialises to a CBOR map with text keys (the default) or to JSON with the same keys.

pub mod body;
mod bytes_or_base64;
mod cmd;
mod consult;
mod event;
mod media;
mod observation;
mod reply;
mod wave;

pub use body::{decode, encode, Body, BodyError, BodyFormat, BodyKind, BODY_VERSION};
pub use cmd::{ranges_of, AckBody, CmdBody};
pub use consult::{ConsultBinding, ConsultBy};
pub use event::{Event, Severity};
pub use media::Media;
pub use observation::{Code, Observation, Quality, Unit};
pub use reply::{Reply, ReplyState};
pub use wave::{gain_possible, rate_possible, Channel, Wave, MAX_RATE_HZ};
