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

/// The highest sampling rate a stream may declare, in Hz.
pub const MAX_RATE_HZ: f64 = 1_000_000.0;

/// Whether `rate` is a sampling rate a stream may declare: above 0 Hz and at most
/// [`MAX_RATE_HZ`] (a profile's `[wave] rate`, and a received chunk's).
pub fn rate_possible(rate: f64) -> bool {
    rate.is_finite() && rate > 0.0 && rate <= MAX_RATE_HZ
}

/// Whether `gain` can turn counts into physical values: finite and not zero.
pub fn gain_possible(gain: f64) -> bool {
    gain.is_finite() && gain != 0.0
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
