//! Waveforms (ECG, heart sounds, pleth): lossless sample packings for `wave` bodies, and the
//! stream that places a device's frames on a sample index, names the gaps and cuts chunks.

mod chunker;
mod packing;
mod rice;
mod sequencer;
mod stream;

pub use chunker::Chunker;
pub use packing::{pack, unpack, Encoding, PackError};
pub use sequencer::{Gap, GapCause, Sequencer};
pub use stream::WaveStream;
