//! Waveform recordings and the serial protocols simulated devices speak when they replay them:
//! OpenBCI Cyton packets, text sample rows, and binary PCM frames. A replay is paced at the
//! recording's rate, in bursts as a USB-serial adapter delivers them.

use crate::decode::{cyton, pcm};
use crate::formats::{wav, wfdb};
use crate::framing::sync_length_wrap;
use crate::sim::PtyPeer;
use std::time::Duration;

/// A multi-channel recording: integers exactly as in the source file, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub name: &'static str,
    pub rate: f64,
    pub channels: usize,
    pub samples: Vec<i32>,
    /// WFDB header of the source, when it is a WFDB record (its checksums are the reference).
    pub header: Option<wfdb::Header>,
}

impl Recording {
    pub fn rows(&self) -> usize {
        self.samples.len() / self.channels.max(1)
    }

    /// Channel `c`'s samples.
    pub fn channel(&self, c: usize) -> Vec<i32> {
        self.samples.iter().skip(c).step_by(self.channels).copied().collect()
    }

    /// Row `r`.
    pub fn row(&self, r: usize) -> &[i32] {
        &self.samples[r * self.channels..(r + 1) * self.channels]
    }
}

fn wfdb_recording(name: &'static str, hea: &str, dat: &[u8]) -> Recording {
    let header = wfdb::parse_header(hea).expect("the built-in WFDB header parses");
    let nsig = header.signals.len();
    let samples = wfdb::decode(header.signals[0].fmt, dat, nsig).expect("the built-in WFDB signal file decodes");
    Recording { name, rate: header.fs, channels: nsig, samples, header: Some(header) }
}

/// MIT-BIH Arrhythmia Database record 100, first 60 s (MLII and V5, 360 Hz, format 212).
pub fn mitbih_100() -> Recording {
    wfdb_recording("mitbih-100", include_str!("recordings/100s.hea"), include_bytes!("recordings/100s.dat"))
}

/// PTB-XL record 00001, 10 s, 12 leads, 100 Hz, format 16.
pub fn ptbxl_00001() -> Recording {
    wfdb_recording("ptbxl-00001", include_str!("recordings/00001_lr.hea"), include_bytes!("recordings/00001_lr.dat"))
}

/// PhysioNet/CinC Challenge 2016 heart sound c0003 (normal), 2000 Hz, 16-bit mono.
pub fn pcg_c0003() -> Recording {
    let w =
        wav::read_pcm16(include_bytes!("recordings/physionet2016_c0003_normal.wav")).expect("the built-in WAV reads");
    Recording {
        name: "pcg-c0003",
        rate: f64::from(w.rate),
        channels: usize::from(w.channels),
        samples: w.samples.into_iter().map(i32::from).collect(),
        header: None,
    }
}

/// How a simulated device puts rows on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireProtocol {
    /// One 33-byte OpenBCI Cyton packet per row (up to 8 channels), counter = row % 256.
    Cyton,
    /// One text line per row: `counter,s1,s2,...` CR LF.
    TextRows,
    /// PCM frames of `rows` rows: sync A5 5A, length, u32 counter, i16 LE samples, CRC.
    Pcm { rows: usize },
}

/// The PCM sync word of the shipped and demo profiles.
pub const PCM_SYNC: [u8; 2] = [0xA5, 0x5A];

impl WireProtocol {
    /// Rows carried by one unit (packet, line or frame).
    pub fn rows_per_unit(self) -> usize {
        match self {
            WireProtocol::Cyton | WireProtocol::TextRows => 1,
            WireProtocol::Pcm { rows } => rows.max(1),
        }
    }

    /// The bytes of the unit starting at row `first` (`rows` rows of `rec`). Rows past the
    /// recording's end loop back to its start while the device's counter goes on counting, as a
    /// device streaming a long session does.
    pub fn encode(self, rec: &Recording, first: usize, rows: usize) -> Vec<u8> {
        let row = |r: usize| rec.row(r % rec.rows().max(1));
        match self {
            WireProtocol::Cyton => cyton::encode((first % 256) as u8, row(first)).to_vec(),
            WireProtocol::TextRows => {
                let mut line = first.to_string();
                for v in row(first) {
                    line.push(',');
                    line.push_str(&v.to_string());
                }
                line.push_str("\r\n");
                line.into_bytes()
            }
            WireProtocol::Pcm { .. } => {
                let samples: Vec<i16> = (first..first + rows).flat_map(|r| row(r).iter().map(|&v| v as i16)).collect();
                sync_length_wrap(&PCM_SYNC, &pcm::encode_i16(first as u32, &samples))
            }
        }
    }

    /// The whole recording from row `from` to `to` on the wire, with unit `skip(i)` left out.
    pub fn stream(self, rec: &Recording, from: usize, to: usize, skip: impl Fn(usize) -> bool) -> Vec<u8> {
        let step = self.rows_per_unit();
        let mut out = Vec::new();
        let mut r = from;
        while r + step <= to {
            if !skip(r) {
                out.extend(self.encode(rec, r, step));
            }
            r += step;
        }
        out
    }
}

/// Replays `rec` on `peer` at `speed` times its real rate, from row 0, looping `loops` times
/// (forever when `None`), in bursts every `burst`; the device's counter keeps counting across
/// loops (no gap where the recording starts again).
pub async fn replay(
    peer: &mut PtyPeer,
    rec: &Recording,
    protocol: WireProtocol,
    speed: f64,
    loops: Option<usize>,
    burst: Duration,
) -> std::io::Result<()> {
    let step = protocol.rows_per_unit();
    let rows = rec.rows() / step * step;
    let rate = rec.rate * speed;
    let start = tokio::time::Instant::now();
    let mut sent = 0usize;
    let total = loops.map(|l| l * rows);
    let mut tick = tokio::time::interval(burst);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    loop {
        tick.tick().await;
        let due = (start.elapsed().as_secs_f64() * rate) as usize;
        let due = total.map_or(due, |t| due.min(t));
        let mut bytes = Vec::new();
        while sent + step <= due {
            bytes.extend(protocol.encode(rec, sent, step));
            sent += step;
        }
        if !bytes.is_empty() {
            peer.send(&bytes).await?;
        }
        if total.is_some_and(|t| sent >= t) {
            return Ok(());
        }
    }
}

/// Replays `rec` at its real rate, looping, on a task of its own until the task is aborted or the
/// device's far end closes: a device streaming through a whole consult.
pub fn spawn_looped(mut peer: PtyPeer, rec: Recording, protocol: WireProtocol) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let _ = replay(&mut peer, &rec, protocol, 1.0, None, Duration::from_millis(20)).await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_recordings_match_their_stated_checksums() {
        for rec in [mitbih_100(), ptbxl_00001()] {
            let h = rec.header.as_ref().unwrap();
            assert_eq!(Some(rec.rows() as u64), h.nsamp, "{}", rec.name);
            for (c, s) in h.signals.iter().enumerate() {
                assert_eq!(s.checksum_matches(rec.channel(c)), Some(true), "{} {}", rec.name, s.description);
            }
        }
        let pcg = pcg_c0003();
        assert_eq!((pcg.rate, pcg.channels, pcg.rows()), (2000.0, 1, 65_295));
    }
}
