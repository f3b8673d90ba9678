//! Cuts a stream's rows into `wave` chunks: a chunk is `window x rate` rows, cut as soon as it is
//! full, earlier when a gap breaks contiguity, and at the latest one window after its first row
//! arrived (a device that pauses does not hold its samples back).

use super::{pack, Encoding};
use crate::model::{Channel, Wave};
use crate::profile::WaveSpec;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug)]
pub struct Chunker {
    spec: Arc<WaveSpec>,
    per_chunk: usize,
    cols: Vec<Vec<i32>>,
    i0: u64,
    t0: i64,
    first_arrival: Option<Instant>,
}

impl Chunker {
    pub fn new(spec: Arc<WaveSpec>) -> Self {
        let per_chunk = (spec.rate * spec.window.as_secs_f64()).round().max(1.0) as usize;
        let cols = vec![Vec::with_capacity(per_chunk); spec.channels.len()];
        Self { spec, per_chunk, cols, i0: 0, t0: 0, first_arrival: None }
    }

    /// Rows per full chunk.
    pub fn per_chunk(&self) -> usize {
        self.per_chunk
    }

    fn pending(&self) -> usize {
        self.cols.first().map_or(0, Vec::len)
    }

    /// Adds rows (row-major, one value per channel) whose first row has index `index`; the frame
    /// arrived at gateway time `t` (its last row's time). Full chunks are appended to `out`.
    pub fn push(&mut self, index: u64, t: i64, now: Instant, samples: &[i32], out: &mut Vec<Wave>) {
        let width = self.cols.len().max(1);
        let rows = samples.len() / width;
        if self.pending() > 0 && index != self.i0.saturating_add(self.pending() as u64) {
            out.extend(self.flush());
        }
        for (r, row) in samples.chunks_exact(width).enumerate() {
            if self.pending() == 0 {
                self.i0 = index.saturating_add(r as u64);
                let behind = (rows - 1 - r) as f64 / self.spec.rate;
                self.t0 = t - (behind * 1e6).round() as i64;
                self.first_arrival = Some(now);
            }
            for (col, &v) in self.cols.iter_mut().zip(row) {
                col.push(v);
            }
            if self.pending() >= self.per_chunk {
                out.extend(self.flush());
            }
        }
    }

    /// When the partial chunk must go out even if no more rows come: one window after its first
    /// row arrived, so no sample waits longer than the window before it is sent.
    pub fn deadline(&self) -> Option<Instant> {
        self.first_arrival.map(|a| a + self.spec.window)
    }

    /// The partial chunk, if any.
    pub fn flush(&mut self) -> Option<Wave> {
        let n = self.pending();
        self.first_arrival = None;
        if n == 0 {
            return None;
        }
        let ch = self
            .spec
            .channels
            .iter()
            .zip(&mut self.cols)
            .map(|(c, col)| {
                let (enc, data) = match pack(col, self.spec.enc) {
                    Ok(d) => (self.spec.enc, d),
                    // Only i16le can refuse (a wider sample); i32le holds every count.
                    Err(_) => (Encoding::I32Le, pack(col, Encoding::I32Le).unwrap_or_default()),
                };
                col.clear();
                Channel {
                    label: c.label.clone(),
                    code: c.code.clone(),
                    unit: c.unit.clone(),
                    gain: c.gain,
                    base: c.base,
                    enc: enc.name().to_string(),
                    data,
                }
            })
            .collect();
        Some(Wave { stream: self.spec.stream.clone(), rate: self.spec.rate, i0: self.i0, t0: self.t0, n: n as u32, ch })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Code, Unit};
    use crate::profile::ChannelSpec;
    use crate::wave::unpack;

    fn spec(channels: usize) -> Arc<WaveSpec> {
        Arc::new(WaveSpec {
            stream: "ecg".into(),
            rate: 100.0,
            window: std::time::Duration::from_millis(200),
            enc: Encoding::Rice,
            channels: (0..channels)
                .map(|i| ChannelSpec {
                    label: format!("L{i}"),
                    code: Code { mdc: 131329, loinc: None, name: None },
                    unit: Unit { ucum: "uV".into(), mdc: None },
                    gain: 1.0,
                    base: 0,
                })
                .collect(),
            counter_modulus: None,
            rows_per_frame: Some(1),
            on_demand: false,
        })
    }

    fn samples_of(w: &Wave, ch: usize) -> Vec<i32> {
        let c = &w.ch[ch];
        unpack(&c.data, Encoding::from_name(&c.enc).unwrap(), w.n as usize).unwrap()
    }

    #[test]
    fn rows_are_cut_into_contiguous_window_sized_chunks() {
        let mut c = Chunker::new(spec(2));
        assert_eq!(c.per_chunk(), 20);
        let mut out = Vec::new();
        let now = Instant::now();
        for i in 0..50 {
            c.push(i, i as i64 * 10_000, now, &[i as i32, -(i as i32)], &mut out);
        }
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].i0, out[0].n, out[1].i0, out[1].n), (0, 20, 20, 20));
        assert_eq!(out[1].t0, 200_000);
        assert_eq!(samples_of(&out[1], 1), (20..40).map(|i| -i).collect::<Vec<_>>());
        let rest = c.flush().unwrap();
        assert_eq!((rest.i0, rest.n), (40, 10));
        assert_eq!(c.flush(), None);
    }

    #[test]
    fn a_gap_closes_the_chunk_and_the_next_starts_at_the_new_index() {
        let mut c = Chunker::new(spec(1));
        let mut out = Vec::new();
        let now = Instant::now();
        c.push(0, 0, now, &[1, 2, 3], &mut out);
        c.push(10, 0, now, &[4, 5], &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].i0, out[0].n), (0, 3));
        let next = c.flush().unwrap();
        assert_eq!((next.i0, next.n), (10, 2));
        assert_eq!(samples_of(&next, 0), [4, 5]);
    }

    #[test]
    fn the_first_row_of_a_frame_is_timed_back_from_the_frames_arrival() {
        let mut c = Chunker::new(spec(1));
        let mut out = Vec::new();
        c.push(0, 1_000_000, Instant::now(), &[1, 2, 3, 4, 5], &mut out);
        assert_eq!(c.flush().unwrap().t0, 1_000_000 - 40_000);
        assert!(c.deadline().is_none());
    }
}
