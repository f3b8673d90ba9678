//! `spokegate watch --record DIR`: what the hub received, as files a clinician's tools open.
//!
//! - Every stream becomes a **WFDB** record `{site}_{gw}_{dev}_{stream}` (`.hea` + `.dat`, format 16, or
//!   format 32 once a sample needs more than 16 bits), with the 16-bit checksum of every signal in
//!   the header. Missing samples are WFDB's invalid sample (-32768 in format 16), never invented
//!   values; a gap longer than ten minutes, a restarted stream or a different number of channels
//!   starts a new record (`_2`, ...).
//! - A stream whose samples fit 16 bits and whose rate is a whole number of hertz (heart sounds)
//!   is also written as **WAV**, one file per contiguous run (`.wav`, then `-2.wav` after a gap).
//!
//! Files are appended to as chunks arrive, and their headers are kept true after every chunk, so
//! a recording interrupted by Ctrl-C is still readable.

use super::clock_steps::{ClockStepClaim, Corrections};
use super::reassembly::{Placed, StreamKey, MAX_STREAMS};
use crate::formats::wav::WavWriter;
use crate::formats::wfdb::{self, Signal, INVALID_16, INVALID_32};
use crate::model::Wave;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest gap filled with invalid samples inside one WFDB record: ten minutes, and never more
/// than 5 million rows (ten minutes of a stethoscope at 4 kHz is 2.4 million); a longer gap starts
/// a new record instead, so no chunk makes the hub write gigabytes of filler.
const MAX_FILL_SECONDS: f64 = 600.0;
const MAX_FILL_SAMPLES: u64 = 5_000_000;

/// Headers (WFDB `.hea`, the WAV sizes) are brought up to date at least this often while
/// samples arrive, and at every sync; between, each file reads as the shorter record it was.
const HEADER_EVERY: Duration = Duration::from_millis(250);

/// Clock steps kept of one gateway (its boots' clocks are stepped once or twice each).
const STEPS_KEPT: usize = 256;

/// Ended records kept open for a clock step that arrives after them (the newest of them): a
/// gateway's `clock-stepped` event comes once NTP steps its clock, which can be after a stream
/// restarted and its first record ended.
const ENDED_KEPT: usize = 64;

pub struct Recorder {
    dir: PathBuf,
    streams: HashMap<StreamKey, StreamFiles>,
    /// The clock steps each gateway (site, gw) reported: a record's start is on the clock after
    /// the steps that cover its first chunk.
    steps: HashMap<(String, String), Vec<ClockStepClaim>>,
    written: Vec<PathBuf>,
    /// When the headers of streams written since must be rewritten.
    headers_due: Option<Instant>,
    /// The newest [`ENDED_KEPT`] records that ended, for a clock step that covers their start.
    ended: std::collections::VecDeque<EndedRecord>,
}

/// A WFDB record no more chunks go to.
struct EndedRecord {
    site: String,
    gw: String,
    first_seq: u64,
    wfdb: WfdbWriter,
}

struct StreamFiles {
    base: String,
    /// The seq of the current record's first chunk.
    first_seq: u64,
    records: u32,
    wfdb: WfdbWriter,
    wav: Option<WavWriter<File>>,
    wav_segments: u32,
    wav_possible: bool,
    /// Samples appended since the headers were written.
    dirty: bool,
}

impl Recorder {
    pub fn new(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            streams: HashMap::new(),
            steps: HashMap::new(),
            written: Vec::new(),
            headers_due: None,
            ended: std::collections::VecDeque::new(),
        })
    }

    /// Every file written so far.
    pub fn files(&self) -> &[PathBuf] {
        &self.written
    }

    /// Appends a placed chunk to its stream's files.
    pub fn write(&mut self, placed: &Placed, wave: &Wave, seq: u64) -> std::io::Result<()> {
        let key = &placed.key;
        let reshaped = self.streams.get(key).is_some_and(|f| f.wfdb.signals.len() != placed.channels.len());
        let new_record = placed.restarted
            || reshaped
            || placed.gap.is_some_and(|(_, missing)| {
                missing > MAX_FILL_SAMPLES || missing as f64 > MAX_FILL_SECONDS * wave.rate
            });
        if !self.streams.contains_key(key) || new_record {
            let base = [&key.site, &key.gw, &key.dev, &key.stream].map(|p| wfdb_name(p)).join("_");
            let records = self.streams.get(key).map_or(0, |s| s.records) + 1;
            let name = if records == 1 { base.clone() } else { format!("{base}_{records}") };
            let steps = self.steps.get(&(key.site.clone(), key.gw.clone()));
            let start = wave.t0.saturating_add(Corrections::new(steps.map_or(&[], Vec::as_slice)).at(seq));
            let wfdb = WfdbWriter::create(&self.dir, &name, wave, start)?;
            self.note(self.dir.join(format!("{name}.hea")));
            self.note(self.dir.join(format!("{name}.dat")));
            let wav_possible = wave.rate.fract() == 0.0 && wave.rate >= 1.0 && wave.ch.len() <= 16;
            // A record that ends here gets its final header now.
            if let Some(old) = self.streams.get_mut(key) {
                old.write_headers()?;
            }
            let files = StreamFiles {
                base: name,
                first_seq: seq,
                records,
                wfdb,
                wav: None,
                wav_segments: 0,
                wav_possible,
                dirty: true,
            };
            if let Some(old) = self.streams.insert(key.clone(), files) {
                if self.ended.len() >= ENDED_KEPT {
                    self.ended.pop_front();
                }
                let (site, gw) = (key.site.clone(), key.gw.clone());
                self.ended.push_back(EndedRecord { site, gw, first_seq: old.first_seq, wfdb: old.wfdb });
            }
        } else if let Some((_, missing)) = placed.gap {
            let s = self.streams.get_mut(key).expect("stream files exist");
            s.wfdb.append_invalid(missing)?;
            // The WAV run ends at the gap: its header is final now.
            if let Some(w) = s.wav.as_mut() {
                w.update_header()?;
            }
            s.wav = None;
        }
        let s = self.streams.get_mut(key).expect("stream files exist");
        s.wfdb.append(&placed.channels)?;
        s.dirty = true;
        let fits_16 = placed.channels.iter().flatten().all(|&v| i16::try_from(v).is_ok());
        if s.wav_possible && !fits_16 {
            // The WAV written so far stays; the WFDB record has every sample.
            s.wav_possible = false;
            if let Some(w) = s.wav.as_mut() {
                w.update_header()?;
            }
            s.wav = None;
        }
        if s.wav_possible {
            if s.wav.is_none() {
                s.wav_segments += 1;
                let name = if s.wav_segments == 1 { s.base.clone() } else { format!("{}-{}", s.base, s.wav_segments) };
                let path = self.dir.join(format!("{name}.wav"));
                s.wav = Some(WavWriter::create(File::create(&path)?, wave.rate as u32, placed.channels.len() as u16)?);
                self.written.push(path);
            }
            let frames: Vec<i16> = interleave(&placed.channels).into_iter().map(|v| v as i16).collect();
            if let Some(w) = s.wav.as_mut() {
                w.append_data(&frames)?;
            }
        }
        let now = Instant::now();
        let due = *self.headers_due.get_or_insert(now + HEADER_EVERY);
        if now >= due {
            self.write_headers()?;
        }
        Ok(())
    }

    /// A gateway's clock step (its signed `clock-stepped` event): the records of its streams
    /// whose first chunk was signed on the old clock start that much later (or earlier), open
    /// ones and the newest [`ENDED_KEPT`] that ended (their headers are rewritten at once), and
    /// so do the records it starts after this with a chunk from before the step. The newest
    /// [`STEPS_KEPT`] steps of each of at most [`MAX_STREAMS`] gateways are kept for that.
    pub fn clock_stepped(&mut self, site: &str, gw: &str, step: ClockStepClaim) -> std::io::Result<()> {
        for (key, s) in self.streams.iter_mut() {
            if key.site == site && key.gw == gw && step.covers(s.first_seq) {
                s.wfdb.start = s.wfdb.start.saturating_add(step.step_us);
                s.dirty = true;
                self.headers_due.get_or_insert_with(Instant::now);
            }
        }
        let mut rewritten = Ok(());
        for r in self.ended.iter_mut().filter(|r| r.site == site && r.gw == gw && step.covers(r.first_seq)) {
            r.wfdb.start = r.wfdb.start.saturating_add(step.step_us);
            rewritten = rewritten.and(r.wfdb.write_header());
        }
        let gateway = (site.to_string(), gw.to_string());
        if self.steps.len() >= MAX_STREAMS && !self.steps.contains_key(&gateway) {
            return rewritten;
        }
        let steps = self.steps.entry(gateway).or_default();
        if steps.len() >= STEPS_KEPT {
            steps.remove(0);
        }
        steps.push(step);
        rewritten
    }

    /// Writes the headers when they are due (call it now and then: after the last chunk of a
    /// burst, nothing else would).
    pub fn tick(&mut self, now: Instant) -> std::io::Result<()> {
        match self.headers_due {
            Some(due) if now >= due => self.write_headers(),
            _ => Ok(()),
        }
    }

    /// Brings every header up to date with what was appended.
    pub fn write_headers(&mut self) -> std::io::Result<()> {
        self.headers_due = None;
        for s in self.streams.values_mut() {
            s.write_headers()?;
        }
        Ok(())
    }

    /// Forces everything written so far to disk (data and headers), so what a hub acknowledges
    /// survives a power cut.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.write_headers()?;
        for s in self.streams.values_mut() {
            s.wfdb.dat.sync_data()?;
            File::open(&s.wfdb.hea)?.sync_all()?;
            if let Some(w) = s.wav.as_ref() {
                w.get_ref().sync_data()?;
            }
        }
        Ok(())
    }

    fn note(&mut self, path: PathBuf) {
        if !self.written.contains(&path) {
            self.written.push(path);
        }
    }
}

impl StreamFiles {
    fn write_headers(&mut self) -> std::io::Result<()> {
        if std::mem::take(&mut self.dirty) {
            self.wfdb.write_header()?;
            if let Some(w) = self.wav.as_mut() {
                w.update_header()?;
            }
        }
        Ok(())
    }
}

/// WFDB record names hold letters, digits and underscores.
fn wfdb_name(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

fn interleave(channels: &[Vec<i32>]) -> Vec<i32> {
    let n = channels.first().map_or(0, Vec::len);
    (0..n).flat_map(|i| channels.iter().map(move |c| c[i])).collect()
}

struct WfdbWriter {
    hea: PathBuf,
    dat_path: PathBuf,
    dat: File,
    name: String,
    fmt: u16,
    fs: f64,
    start: i64,
    nsamp: u64,
    sums: Vec<u16>,
    signals: Vec<Signal>,
}

impl WfdbWriter {
    fn create(dir: &Path, name: &str, wave: &Wave, start: i64) -> std::io::Result<Self> {
        let dat_path = dir.join(format!("{name}.dat"));
        let signals = wave
            .ch
            .iter()
            .map(|c| Signal {
                file: format!("{name}.dat"),
                fmt: 16,
                gain: 1.0 / c.gain,
                baseline: c.base,
                units: c.unit.ucum.clone(),
                adcres: 16,
                adczero: c.base,
                initval: 0,
                checksum: None,
                description: c.label.clone(),
            })
            .collect::<Vec<_>>();
        Ok(Self {
            hea: dir.join(format!("{name}.hea")),
            dat: File::create(&dat_path)?,
            dat_path,
            name: name.to_string(),
            fmt: 16,
            fs: wave.rate,
            start,
            nsamp: 0,
            sums: vec![0; signals.len()],
            signals,
        })
    }

    fn append(&mut self, channels: &[Vec<i32>]) -> std::io::Result<()> {
        if self.fmt == 16 && channels.iter().flatten().any(|&v| i16::try_from(v).is_err() || v == INVALID_16) {
            self.widen()?;
        }
        if self.nsamp == 0 {
            for (s, c) in self.signals.iter_mut().zip(channels) {
                s.initval = c.first().copied().unwrap_or(0).into();
            }
        }
        let rows = interleave(channels);
        self.write_rows(&rows)?;
        for (sum, c) in self.sums.iter_mut().zip(channels) {
            *sum = sum.wrapping_add(wfdb::checksum(c.iter().copied()));
        }
        self.nsamp = self.nsamp.saturating_add(channels.first().map_or(0, |c| c.len() as u64));
        Ok(())
    }

    fn append_invalid(&mut self, rows: u64) -> std::io::Result<()> {
        let invalid = if self.fmt == 16 { INVALID_16 } else { INVALID_32 };
        let width = self.signals.len();
        let mut left = rows;
        while left > 0 {
            let now = left.min(4096);
            self.write_rows(&vec![invalid; now as usize * width])?;
            left -= now;
        }
        for sum in &mut self.sums {
            *sum = sum.wrapping_add((invalid as u16).wrapping_mul(rows as u16));
        }
        self.nsamp = self.nsamp.saturating_add(rows);
        Ok(())
    }

    fn write_rows(&mut self, rows: &[i32]) -> std::io::Result<()> {
        let bytes: Vec<u8> = if self.fmt == 16 {
            rows.iter().flat_map(|&v| (v as i16).to_le_bytes()).collect()
        } else {
            rows.iter().flat_map(|&v| v.to_le_bytes()).collect()
        };
        self.dat.write_all(&bytes)
    }

    /// Rewrites the signal file in format 32 (a sample needed more than 16 bits).
    fn widen(&mut self) -> std::io::Result<()> {
        self.dat.flush()?;
        let old = std::fs::read(&self.dat_path)?;
        let wide: Vec<u8> = wfdb::decode(16, &old, self.signals.len())
            .unwrap_or_default()
            .into_iter()
            .map(|v| if v == INVALID_16 { INVALID_32 } else { v })
            .flat_map(i32::to_le_bytes)
            .collect();
        self.dat.set_len(0)?;
        self.dat.seek(SeekFrom::Start(0))?;
        self.dat.write_all(&wide)?;
        self.fmt = 32;
        self.sums = vec![0; self.signals.len()];
        let width = self.signals.len().max(1);
        for (i, v) in wfdb::decode(32, &wide, width).unwrap_or_default().into_iter().enumerate() {
            self.sums[i % width] = self.sums[i % width].wrapping_add(v as u16);
        }
        for s in &mut self.signals {
            s.adcres = 32;
        }
        Ok(())
    }

    fn write_header(&mut self) -> std::io::Result<()> {
        self.dat.flush()?;
        let start = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.start) * 1000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let mut text = format!(
            "{} {} {} {} {:02}:{:02}:{:02}.{:03} {:02}/{:02}/{}\n",
            self.name,
            self.signals.len(),
            self.fs,
            self.nsamp,
            start.hour(),
            start.minute(),
            start.second(),
            start.millisecond(),
            start.day(),
            u8::from(start.month()),
            start.year()
        );
        for (s, sum) in self.signals.iter().zip(&self.sums) {
            text.push_str(&wfdb::signal_line(&format!("{}.dat", self.name), self.fmt, s, *sum));
            text.push('\n');
        }
        text.push_str("# written by spokegate watch --record from signed, verified wave chunks\n");
        // The units as signed, where the header's units field could not hold them as they are.
        for (i, s) in self.signals.iter().enumerate() {
            if wfdb::units_field(&s.units) != s.units {
                let ucum: String = s.units.chars().filter(|c| !c.is_control()).collect();
                text.push_str(&format!("# signal {} units (UCUM): {ucum}\n", i + 1));
            }
        }
        let tmp = self.hea.with_extension("hea.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.hea)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Reassembler;
    use crate::model::{Body, Channel, Code, Unit};
    use crate::pipeline::{make_body, Payload, Source};
    use crate::wave::{pack, Encoding};

    fn body(seq: u64, i0: u64, channels: &[&[i32]]) -> Body {
        let n = channels[0].len() as u32;
        let ch = channels
            .iter()
            .enumerate()
            .map(|(i, s)| Channel {
                label: format!("L{i}"),
                code: Code { mdc: 131330, loinc: None, name: None },
                unit: Unit { ucum: "mV".into(), mdc: None },
                gain: 0.005,
                base: 1024,
                enc: "rice".into(),
                data: pack(s, Encoding::Rice).unwrap(),
            })
            .collect();
        let wave = Wave { stream: "ecg".into(), rate: 100.0, i0, t0: 0, n, ch };
        let from = Source { dev: "d".into(), profile: "p".into() };
        make_body("s", "gw", Some(&from), Payload::Wave(wave), seq, 0, None)
    }

    fn write(rec: &mut Recorder, hub: &mut Reassembler, b: Body) {
        let placed = hub.accept(&b).unwrap().unwrap();
        rec.write(&placed, b.wave.as_ref().unwrap(), b.seq).unwrap();
        rec.write_headers().unwrap();
    }

    #[test]
    fn gaps_are_invalid_samples_and_a_wider_sample_widens_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = Recorder::new(dir.path()).unwrap();
        let mut hub = Reassembler::default();
        write(&mut rec, &mut hub, body(1, 0, &[&[1, 2], &[3, 4]]));
        write(&mut rec, &mut hub, body(2, 4, &[&[5, 6], &[7, 8]]));
        let h = wfdb::parse_header(&std::fs::read_to_string(dir.path().join("s_gw_d_ecg.hea")).unwrap()).unwrap();
        let s0 = &h.signals[0];
        assert_eq!((h.nsamp, s0.fmt, s0.gain, s0.baseline), (Some(6), 16, 200.0, 1024));
        let dat = wfdb::decode(16, &std::fs::read(dir.path().join("s_gw_d_ecg.dat")).unwrap(), 2).unwrap();
        assert_eq!(dat, [1, 3, 2, 4, INVALID_16, INVALID_16, INVALID_16, INVALID_16, 5, 7, 6, 8]);
        // The header's checksums are the 16-bit sums of what the file holds.
        for (c, s) in h.signals.iter().enumerate() {
            assert_eq!(s.checksum_matches(dat.iter().skip(c).step_by(2).copied()), Some(true));
        }
        // One WAV per contiguous run.
        assert!(dir.path().join("s_gw_d_ecg.wav").exists() && dir.path().join("s_gw_d_ecg-2.wav").exists());

        write(&mut rec, &mut hub, body(3, 6, &[&[100_000], &[9]]));
        let h = wfdb::parse_header(&std::fs::read_to_string(dir.path().join("s_gw_d_ecg.hea")).unwrap()).unwrap();
        assert_eq!(h.signals[0].fmt, 32);
        let dat = wfdb::decode(32, &std::fs::read(dir.path().join("s_gw_d_ecg.dat")).unwrap(), 2).unwrap();
        assert_eq!(dat[4], INVALID_32);
        assert_eq!(&dat[12..], [100_000, 9]);
        for (c, s) in h.signals.iter().enumerate() {
            assert_eq!(s.checksum_matches(dat.iter().skip(c).step_by(2).copied()), Some(true));
        }

        // Three channels now: a new record.
        write(&mut rec, &mut hub, body(4, 7, &[&[1], &[2], &[3]]));
        assert!(dir.path().join("s_gw_d_ecg_2.hea").exists());
    }

    /// The base date and time of a record's header, as `HH:MM:SS.mmm DD/MM/YYYY`.
    fn start_of(dir: &Path, name: &str) -> String {
        let text = std::fs::read_to_string(dir.join(format!("{name}.hea"))).unwrap();
        text.lines().next().unwrap().split(' ').skip(4).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn a_records_start_follows_the_gateways_clock_step_when_its_first_chunk_was_on_the_old_clock() {
        const DAY: i64 = 86_400_000_000;
        let dir = tempfile::tempdir().unwrap();
        let mut rec = Recorder::new(dir.path()).unwrap();
        let mut hub = Reassembler::default();
        // 2023-11-14 22:13:20 on a clock ten days behind.
        let mut first = body(2, 0, &[&[1, 2]]);
        first.wave.as_mut().unwrap().t0 = 1_700_000_000_000_000;
        write(&mut rec, &mut hub, first);
        assert_eq!(start_of(dir.path(), "s_gw_d_ecg"), "22:13:20.000 14/11/2023");
        // A step of another gateway, and one of this gateway after the record began, change nothing.
        let step = |seq_from, seq_to| ClockStepClaim { step_us: 10 * DAY, seq_from, seq_to };
        rec.clock_stepped("s", "other-gw", step(1, 5)).unwrap();
        rec.clock_stepped("s", "gw", step(3, 5)).unwrap();
        rec.write_headers().unwrap();
        assert_eq!(start_of(dir.path(), "s_gw_d_ecg"), "22:13:20.000 14/11/2023");
        // The step that covers its first chunk moves its start ten days on.
        rec.clock_stepped("s", "gw", step(1, 2)).unwrap();
        rec.write_headers().unwrap();
        assert_eq!(start_of(dir.path(), "s_gw_d_ecg"), "22:13:20.000 24/11/2023");
        // A record begun after the step with a chunk signed before it starts on the new clock.
        let mut restarted = body(2, 0, &[&[1, 2], &[3, 4]]);
        restarted.wave.as_mut().unwrap().t0 = 1_700_000_000_000_000;
        write(&mut rec, &mut hub, restarted);
        assert_eq!(start_of(dir.path(), "s_gw_d_ecg_2"), "22:13:20.000 24/11/2023");
        // A step that arrives after a record ended still moves its start: the first record ended
        // when the stream changed shape, and another step covering its first chunk arrives now
        // (it covers the open record's first chunk too).
        rec.clock_stepped("s", "gw", step(2, 2)).unwrap();
        assert_eq!(start_of(dir.path(), "s_gw_d_ecg"), "22:13:20.000 04/12/2023", "the ended record");
        rec.write_headers().unwrap();
        assert_eq!(start_of(dir.path(), "s_gw_d_ecg_2"), "22:13:20.000 04/12/2023", "the open record");
        // A gateway that reports step after step is remembered for its newest steps only.
        for _ in 0..2 * STEPS_KEPT {
            rec.clock_stepped("s", "gw", step(100, 100)).unwrap();
        }
        assert_eq!(rec.steps[&("s".to_string(), "gw".to_string())].len(), STEPS_KEPT);
    }
}
