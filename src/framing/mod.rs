//! Cutting a device's byte stream into frames. A framer never fails for good: junk, truncated and
//! oversized frames are reported as a [`FrameError`] and the framer resynchronises on the next
//! frame start. A partial frame is not an error (`Ok(None)`). Frame length is bounded by the profile.

mod astm;
mod crc;
mod fixed;
mod line;
mod mllp;
mod sync_length;

pub use astm::AstmFramer;
pub use crc::crc16_ccitt_false;
/// The ASTM E1381 control bytes and frame builder (simulated senders, tests).
pub mod astm_bytes {
    pub use super::astm::{checksum, frame, frames, ACK, ENQ, EOT, ETB, ETX, MAX_TEXT, NAK, RECEIVER_TIMEOUT, STX};
}
pub use fixed::FixedFramer;
pub use line::LineFramer;
pub use mllp::{mllp_wrap, MllpFramer, MLLP_END, MLLP_START};
pub use sync_length::{sync_length_wrap, SyncLengthFramer};

use crate::profile::FramingSpec;

/// Why bytes were thrown away. The stream always carries on after it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("{bytes} bytes outside any frame")]
    Garbage { bytes: usize },
    #[error("frame cut short after {bytes} bytes (a new frame started)")]
    Truncated { bytes: usize },
    #[error("frame longer than the {limit}-byte limit ({bytes} bytes dropped)")]
    Oversize { bytes: usize, limit: usize },
    #[error("frame of {bytes} bytes failed its CRC")]
    Crc { bytes: usize },
    #[error("ASTM frame of {bytes} bytes failed its checksum (NAK sent)")]
    Checksum { bytes: usize },
    #[error("ASTM frame number {got:?} where {expected} was due (NAK sent)")]
    FrameNumber { bytes: usize, expected: u8, got: Option<u8> },
    #[error("{bytes} bytes of an unfinished message dropped: {why}")]
    Aborted { bytes: usize, why: &'static str },
    #[error("the gateway's {bytes}-byte message was not sent: {why}")]
    NotSent { bytes: usize, why: &'static str },
}

impl FrameError {
    /// The `event` code the hub sees.
    pub fn code(&self) -> &'static str {
        match self {
            FrameError::Garbage { .. } => "frame-garbage",
            FrameError::Truncated { .. } => "frame-truncated",
            FrameError::Oversize { .. } => "frame-oversize",
            FrameError::Crc { .. } => "frame-crc",
            FrameError::Checksum { .. } => "astm-checksum",
            FrameError::FrameNumber { .. } => "astm-frame-number",
            FrameError::Aborted { .. } => "astm-aborted",
            FrameError::NotSent { .. } => "astm-not-sent",
        }
    }

    /// The event the hub sees.
    pub fn to_event(&self) -> crate::model::Event {
        crate::model::Event::new(self.code(), crate::model::Severity::Warn, self.to_string())
            .with("bytes", self.bytes())
            .with("stage", "framing")
    }

    pub fn bytes(&self) -> usize {
        match self {
            FrameError::Garbage { bytes }
            | FrameError::Truncated { bytes }
            | FrameError::Oversize { bytes, .. }
            | FrameError::Crc { bytes }
            | FrameError::Checksum { bytes }
            | FrameError::FrameNumber { bytes, .. }
            | FrameError::Aborted { bytes, .. }
            | FrameError::NotSent { bytes, .. } => *bytes,
        }
    }
}

/// Turns bytes into frames. Feed bytes with [`Framer::push`], then take frames until `Ok(None)`.
pub trait Framer: Send {
    /// Appends bytes read from the device.
    fn push(&mut self, bytes: &[u8]);
    /// The next complete frame, an error for bytes that were dropped, or `Ok(None)` when more bytes
    /// are needed.
    fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError>;
    /// At end of stream: whatever partial frame is left, reported as dropped.
    fn finish(&mut self) -> Option<FrameError>;
    /// Bytes the link protocol answers now (ASTM ACK/NAK), in order.
    fn replies(&mut self) -> Vec<u8> {
        Vec::new()
    }
    /// Whether the frame just yielded waits for [`Framer::settle`] (the device is told only once
    /// its readings are committed).
    fn owes_answer(&self) -> bool {
        false
    }
    /// The answer owed for the frame just yielded, once it is known whether its readings were
    /// committed (ASTM: ACK, or NAK and the sender sends it again). Empty when nothing is owed.
    fn settle(&mut self, _accepted: bool) -> Vec<u8> {
        Vec::new()
    }
    /// Sends a message to the device through the link protocol (an ASTM host query, as records);
    /// `false` when this framing cannot. The bytes come out of [`Framer::replies`].
    fn request(&mut self, _records: &[&[u8]]) -> bool {
        false
    }
    /// When the framer gives up waiting for the rest (ASTM receiver timeout).
    fn deadline(&self) -> Option<std::time::Instant> {
        None
    }
    /// The deadline passed: whatever was waiting is dropped.
    fn expire(&mut self) -> Option<FrameError> {
        None
    }
}

/// The framer a profile names.
pub fn framer_for(spec: &FramingSpec) -> Box<dyn Framer> {
    match spec {
        FramingSpec::Mllp { max_len } => Box::new(MllpFramer::new(*max_len)),
        FramingSpec::Line { max_len } => Box::new(LineFramer::new(*max_len)),
        FramingSpec::Fixed { len, start, end } => Box::new(FixedFramer::new(*len, *start, end.clone())),
        FramingSpec::SyncLength { sync, max_len } => Box::new(SyncLengthFramer::new(sync.clone(), *max_len)),
        FramingSpec::Notification => Box::new(WholeFramer(Vec::new())),
        FramingSpec::AstmE1381 { max_len } => Box::new(AstmFramer::new(*max_len)),
    }
}

/// Every push is one frame (BLE notifications).
struct WholeFramer(Vec<Vec<u8>>);

impl Framer for WholeFramer {
    fn push(&mut self, bytes: &[u8]) {
        self.0.push(bytes.to_vec());
    }

    fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        Ok((!self.0.is_empty()).then(|| self.0.remove(0)))
    }

    fn finish(&mut self) -> Option<FrameError> {
        None
    }
}

/// A byte buffer consumed from the front without moving the rest on every frame.
#[derive(Debug, Default)]
pub(crate) struct Buffer {
    bytes: Vec<u8>,
    start: usize,
}

impl Buffer {
    pub fn push(&mut self, more: &[u8]) {
        if self.start > 0 && self.start >= self.bytes.len() / 2 {
            self.bytes.drain(..self.start);
            self.start = 0;
        }
        self.bytes.extend_from_slice(more);
    }

    pub fn data(&self) -> &[u8] {
        &self.bytes[self.start..]
    }

    /// At end of stream: drops what is left (plus `skipped` bytes of a frame being skipped) and
    /// reports it as a truncated frame.
    pub fn finish(&mut self, skipped: usize) -> Option<FrameError> {
        let left = self.data().len() + skipped;
        self.consume(usize::MAX);
        (left > 0).then_some(FrameError::Truncated { bytes: left })
    }

    pub fn consume(&mut self, n: usize) {
        self.start = self.start.saturating_add(n).min(self.bytes.len());
        if self.start == self.bytes.len() {
            self.bytes.clear();
            self.start = 0;
        }
    }
}

/// Every frame and error a framer yields now (tests).
#[cfg(test)]
pub(crate) fn drain(framer: &mut dyn Framer) -> Vec<Result<Vec<u8>, FrameError>> {
    let mut out = Vec::new();
    loop {
        match framer.next_frame() {
            Ok(Some(f)) => out.push(Ok(f)),
            Ok(None) => return out,
            Err(e) => out.push(Err(e)),
        }
    }
}
