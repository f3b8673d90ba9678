//! The hub side, as a library and as `spokegate watch`: verify every signature with the gateway's
//! public key, check the body's ids against the topic, de-duplicate on (`gw`, `seq`), and show
//! the readings. A tampered, unsigned or mismatched message is reported, never shown as valid.

mod acker;
pub mod ask;
mod broker;
mod checking;
pub mod clock_steps;
mod dedup;
pub mod media;
mod reassembly;
mod record;
mod verify;
mod view;
mod watch;

pub use crate::sign::KeyRing;
pub use acker::Acker;
pub use broker::BrokerLogin;
pub use clock_steps::{clock_step, ClockStepClaim};
pub use dedup::Deduplicator;
pub use media::{check_part, MediaProgress, MediaStore};
pub use reassembly::{check_chunk, unpack_channels, ChunkError, Placed, Reassembler, StreamKey, StreamTally};
pub use record::Recorder;
pub use verify::{check, check_hub_body, HubMessage, Rejection};
pub use view::{clean, human_lines, json_line, wave_lines};
pub use watch::{watch, Observed, WatchFormat, WatchOptions, WatchStats};
