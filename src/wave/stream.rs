//! One device's waveform stream: frames in, signed-ready chunks and gap events out.

use super::{Chunker, Gap, Sequencer};
use crate::decode::WaveFrame;
use crate::model::{Event, Wave};
use crate::profile::WaveSpec;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug)]
pub struct WaveStream {
    spec: Arc<WaveSpec>,
    sequencer: Sequencer,
    chunker: Chunker,
}

impl WaveStream {
    pub fn new(spec: WaveSpec) -> Self {
        let spec = Arc::new(spec);
        Self { sequencer: Sequencer::new(spec.counter_modulus, spec.rate), chunker: Chunker::new(spec.clone()), spec }
    }

    pub fn stream(&self) -> &str {
        &self.spec.stream
    }

    /// Takes a decoded frame that arrived at gateway time `t`: full chunks go to `out`, and the gap
    /// before the frame, if any, is returned as a `wave-gap` event.
    pub fn frame(&mut self, frame: &WaveFrame, t: i64, now: Instant, out: &mut Vec<Wave>) -> Option<Event> {
        let width = self.spec.channels.len().max(1);
        let rows = (frame.samples.len() / width) as u64;
        if rows == 0 {
            return None;
        }
        let (index, gap) = self.sequencer.place(frame.counter, rows, t);
        self.chunker.push(index, t, now, &frame.samples[..rows as usize * width], out);
        gap.map(|g| self.gap_event(g))
    }

    /// A frame was rejected: for a device without a counter its rows are a gap now (a device
    /// with a counter shows the gap on its next good frame).
    pub fn rejected(&mut self) -> Option<Event> {
        if self.spec.counter_modulus.is_some() {
            return None;
        }
        let gap = self.sequencer.rejected(self.spec.rows_per_frame?)?;
        Some(self.gap_event(gap))
    }

    /// The device link was lost: what was collected goes out now.
    pub fn link_lost(&mut self) -> Option<Wave> {
        self.sequencer.link_lost();
        self.chunker.flush()
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.chunker.deadline()
    }

    pub fn flush(&mut self) -> Option<Wave> {
        self.chunker.flush()
    }

    fn gap_event(&self, gap: Gap) -> Event {
        tracing::warn!(stream = %self.spec.stream, at = gap.at, missing = gap.missing, cause = ?gap.cause, "waveform gap");
        gap.to_event(&self.spec.stream)
    }
}
