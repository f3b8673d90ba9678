//! A waveform chunk (`wave` body): a run of consecutive samples of one stream, every channel's
//! integers exactly as the device sent them, packed losslessly (see [`crate::wave::Encoding`]).

use super::{Code, Unit};
use serde::{Deserialize, Serialize};

/// The `wave` keys of a body: which stream, where its samples sit, and the channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wave {
    pub stream: String,
    /// Samples per second per channel.
    pub rate: f64,
    /// Index of this chunk's first sample since the stream started. Consecutive chunks are
    /// contiguous (`i0 + n` is the next chunk's `i0`); a larger `i0` is a gap.
    pub i0: u64,
    /// Gateway time of sample `i0`, microseconds since the Unix epoch.
    pub t0: i64,
    /// Samples per channel in this chunk.
    pub n: u32,
    pub ch: Vec<Channel>,
}

/// One channel of a chunk. Physical value = (count - `base`) * `gain`, in `unit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    pub label: String,
    pub code: Code,
    pub unit: Unit,
    pub gain: f64,
    pub base: i64,
    /// The packing of `data` (`i16le`, `i32le`, `dzv`, `rice`).
    pub enc: String,
    #[serde(with = "super::bytes_or_base64")]
    pub data: Vec<u8>,
}
