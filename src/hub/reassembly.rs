//! Waveform reassembly at the hub: per (`site`, `gw`, `dev`, `stream`), unpack every chunk's channels,
//! check that chunks are contiguous, and name what is missing. A chunk that starts past the
//! expected index is a gap; one that starts at 0 after samples were seen is a restarted stream
//! (the gateway restarted); samples are never invented.

use crate::model::{Body, Wave};
use crate::wave::{unpack, Encoding};
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    pub site: String,
    pub gw: String,
    pub dev: String,
    pub stream: String,
}

impl std::fmt::Display for StreamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}/{}", self.site, self.gw, self.dev, self.stream)
    }
}

/// What the hub made of one chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub key: StreamKey,
    /// Samples missing right before this chunk (`at` is the first missing index).
    pub gap: Option<(u64, u64)>,
    /// The stream started again from index 0.
    pub restarted: bool,
    /// Each channel's samples, exactly as the device sent them.
    pub channels: Vec<Vec<i32>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamTally {
    pub next: u64,
    pub samples: u64,
    pub gaps: u64,
    pub missing: u64,
    pub restarts: u64,
}

#[derive(Debug, Default)]
pub struct Reassembler {
    streams: HashMap<StreamKey, StreamTally>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChunkError {
    #[error("channel {label}: unknown packing `{enc}`")]
    UnknownEncoding { label: String, enc: String },
    #[error("channel {label}: {why}")]
    Unpack { label: String, why: String },
    #[error("chunk overlaps samples already received (i0 {i0}, expected {expected})")]
    Overlap { i0: u64, expected: u64 },
    #[error("a new stream past the {0} this hub follows at once: refused")]
    TooManyStreams(usize),
    #[error("rate {0} Hz is not a sampling rate (above 0, at most {max} Hz)", max = crate::model::MAX_RATE_HZ)]
    Rate(f64),
    #[error("channel {label}: gain {gain} cannot turn counts into values (finite, not zero)")]
    Gain { label: String, gain: f64 },
}

/// Whether a signed chunk's claims are possible, by the rules a profile is held to: a sampling
/// rate above 0 and at most [`crate::model::MAX_RATE_HZ`], every channel's gain finite and not
/// zero. A chunk that breaks them would write a recording's header (or a FHIR period) no reader
/// can use.
pub fn check_chunk(w: &Wave) -> Result<(), ChunkError> {
    if !crate::model::rate_possible(w.rate) {
        return Err(ChunkError::Rate(w.rate));
    }
    match w.ch.iter().find(|c| !crate::model::gain_possible(c.gain)) {
        Some(c) => Err(ChunkError::Gain { label: c.label.clone(), gain: c.gain }),
        None => Ok(()),
    }
}

/// Streams a hub follows at once (every gateway, device and stream): a gateway that invents
/// stream after stream cannot grow the hub's memory or its recordings without bound.
pub const MAX_STREAMS: usize = 4096;

/// Unpacks every channel of a chunk.
pub fn unpack_channels(w: &Wave) -> Result<Vec<Vec<i32>>, ChunkError> {
    w.ch.iter()
        .map(|c| {
            let enc = Encoding::from_name(&c.enc)
                .ok_or_else(|| ChunkError::UnknownEncoding { label: c.label.clone(), enc: c.enc.clone() })?;
            unpack(&c.data, enc, w.n as usize)
                .map_err(|e| ChunkError::Unpack { label: c.label.clone(), why: e.to_string() })
        })
        .collect()
}

impl Reassembler {
    /// Places a verified, de-duplicated `wave` body; `None` for other bodies.
    pub fn accept(&mut self, body: &Body) -> Option<Result<Placed, ChunkError>> {
        let w = body.wave.as_ref()?;
        let key = StreamKey {
            site: body.site.clone(),
            gw: body.gw.clone(),
            dev: body.dev.clone().unwrap_or_default(),
            stream: w.stream.clone(),
        };
        Some(self.place(key, w))
    }

    fn place(&mut self, key: StreamKey, w: &Wave) -> Result<Placed, ChunkError> {
        check_chunk(w)?;
        let channels = unpack_channels(w)?;
        if self.streams.len() >= MAX_STREAMS && !self.streams.contains_key(&key) {
            return Err(ChunkError::TooManyStreams(MAX_STREAMS));
        }
        let tally = self.streams.entry(key.clone()).or_default();
        let mut restarted = false;
        let mut gap = None;
        if w.i0 < tally.next {
            if w.i0 != 0 {
                return Err(ChunkError::Overlap { i0: w.i0, expected: tally.next });
            }
            restarted = true;
            tally.restarts += 1;
        } else if w.i0 > tally.next {
            gap = Some((tally.next, w.i0 - tally.next));
            tally.gaps += 1;
            tally.missing = tally.missing.saturating_add(w.i0 - tally.next);
        }
        tally.next = w.i0.saturating_add(u64::from(w.n));
        tally.samples = tally.samples.saturating_add(u64::from(w.n));
        Ok(Placed { key, gap, restarted, channels })
    }

    pub fn tallies(&self) -> impl Iterator<Item = (&StreamKey, &StreamTally)> {
        self.streams.iter()
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_stream_past_the_limit_is_refused_and_known_streams_go_on() {
        let mut r = Reassembler::default();
        let w = |stream: &str| crate::model::Wave {
            stream: stream.into(),
            rate: 100.0,
            i0: 0,
            t0: 0,
            n: 1,
            ch: vec![crate::model::Channel {
                label: "II".into(),
                code: crate::model::Code { mdc: 131330, loinc: None, name: None },
                unit: crate::model::Unit { ucum: "mV".into(), mdc: None },
                gain: 1.0,
                base: 0,
                enc: "i16le".into(),
                data: vec![1, 0],
            }],
        };
        let key = |i: usize| StreamKey { site: "s".into(), gw: "g".into(), dev: format!("d{i}"), stream: "ecg".into() };
        for i in 0..MAX_STREAMS {
            assert!(r.place(key(i), &w("ecg")).is_ok());
        }
        assert!(matches!(r.place(key(MAX_STREAMS), &w("ecg")), Err(ChunkError::TooManyStreams(_))));
        let mut next = w("ecg");
        next.i0 = 1;
        assert!(r.place(key(0), &next).is_ok(), "a stream already followed goes on");
    }
    use super::*;
    use crate::model::{Channel, Code, Unit};
    use crate::wave::pack;

    fn chunk(i0: u64, samples: &[i32]) -> Wave {
        Wave {
            stream: "ecg".into(),
            rate: 100.0,
            i0,
            t0: 0,
            n: samples.len() as u32,
            ch: vec![Channel {
                label: "II".into(),
                code: Code { mdc: 131330, loinc: None, name: None },
                unit: Unit { ucum: "uV".into(), mdc: None },
                gain: 1.0,
                base: 0,
                enc: "rice".into(),
                data: pack(samples, Encoding::Rice).unwrap(),
            }],
        }
    }

    #[test]
    fn contiguous_gapped_restarted_and_overlapping_chunks() {
        let mut r = Reassembler::default();
        let key = || StreamKey { site: "s".into(), gw: "gw".into(), dev: "d".into(), stream: "ecg".into() };
        let a = r.place(key(), &chunk(0, &[1, 2, 3])).unwrap();
        assert_eq!((a.gap, a.restarted, a.channels), (None, false, vec![vec![1, 2, 3]]));
        let b = r.place(key(), &chunk(10, &[4])).unwrap();
        assert_eq!(b.gap, Some((3, 7)));
        assert_eq!(r.place(key(), &chunk(5, &[9])), Err(ChunkError::Overlap { i0: 5, expected: 11 }));
        assert!(r.place(key(), &chunk(0, &[5])).unwrap().restarted);
        let t = r.tallies().next().unwrap().1.clone();
        assert_eq!((t.samples, t.gaps, t.missing, t.restarts), (5, 1, 7, 1));
        // A chunk at the very end of the index space is placed, not a panic.
        let end = r.place(key(), &chunk(u64::MAX - 1, &[1, 2, 3])).unwrap();
        assert_eq!(end.gap.map(|g| g.0), Some(1));
        let mut bad = chunk(1, &[1, 2]);
        bad.ch[0].data.push(0xff);
        assert!(matches!(r.place(key(), &bad), Err(ChunkError::Unpack { .. })));
    }

    #[test]
    fn a_chunk_with_an_impossible_rate_or_gain_is_refused_and_the_stream_goes_on() {
        let mut r = Reassembler::default();
        let key = || StreamKey { site: "s".into(), gw: "gw".into(), dev: "d".into(), stream: "ecg".into() };
        for rate in [0.0, -360.0, f64::NAN, f64::INFINITY, 1e7] {
            let w = Wave { rate, ..chunk(0, &[1]) };
            assert!(matches!(r.place(key(), &w), Err(ChunkError::Rate(_))), "rate {rate}");
        }
        for gain in [0.0, f64::NAN, f64::NEG_INFINITY] {
            let mut w = chunk(0, &[1]);
            w.ch[0].gain = gain;
            let err = r.place(key(), &w).unwrap_err();
            assert!(matches!(&err, ChunkError::Gain { label, .. } if label == "II"), "gain {gain}: {err}");
        }
        assert_eq!(r.tallies().count(), 0, "nothing of them was placed");
        let ok = r.place(key(), &Wave { rate: crate::model::MAX_RATE_HZ, ..chunk(0, &[1, 2]) }).unwrap();
        assert_eq!(ok.channels, vec![vec![1, 2]]);
    }
}
