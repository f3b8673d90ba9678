//! Standard signal files a clinician's tools open: WFDB records (PhysioNet) and WAV sound files.
//! The hub writes them from reassembled waveform streams; the simulators read recordings from them.

pub mod wav;
pub mod wfdb;
