//! Waveforms (ECG, heart sounds, pleth): lossless sample packing for `wave` bodies.
//! The streaming side (chunking, serial waveform protocols, hub reassembly) builds on this.

mod packing;

pub use packing::{pack, unpack, Encoding, PackError};
