//! The checks of waveform profiles: `fixed` and `sync-length` framings, the `openbci-cyton`,
//! `samples` and `pcm` decoders, and the `[wave]` stream with its `[[channel]]`s.

use super::compile::Checker;
use super::raw::{RawFraming, RawProfile};
use super::{ChannelSpec, DecoderSpec, FramingSpec, PcmSpec, SampleFormat, SampleSources, SamplesSpec, WaveSpec};
use crate::ids::is_valid_id;
use crate::model::{Code, Unit};
use crate::wave::Encoding;
use std::time::Duration;

/// Channels of an OpenBCI Cyton board.
const CYTON_CHANNELS: usize = 8;
/// Bytes of a Cyton packet.
pub const CYTON_PACKET: usize = 33;

impl Checker<'_> {
    pub(super) fn fixed_framing(&mut self, f: &RawFraming) -> Option<FramingSpec> {
        let (Some(len), Some(start), Some(end)) = (&f.length, &f.start, &f.end) else {
            self.problem(&f.kind, "framing", "a fixed framing needs `length`, `start` and `end = [lowest, highest]`");
            return None;
        };
        if !(2..=4096).contains(len.get_ref()) {
            self.problem(len, "framing.length", "must be between 2 and 4096 bytes");
            return None;
        }
        let end = match end.get_ref().as_slice() {
            [one] => *one..=*one,
            [lo, hi] if lo <= hi => *lo..=*hi,
            _ => {
                self.problem(end, "framing.end", "must be [byte] or [lowest, highest] with lowest <= highest");
                return None;
            }
        };
        Some(FramingSpec::Fixed { len: *len.get_ref(), start: *start.get_ref(), end })
    }

    pub(super) fn sync_length_framing(&mut self, f: &RawFraming, max_len: usize) -> Option<FramingSpec> {
        let Some(sync) = &f.sync else {
            self.problem(&f.kind, "framing.sync", "a sync-length framing needs its sync bytes, e.g. [0xA5, 0x5A]");
            return None;
        };
        if !(1..=8).contains(&sync.get_ref().len()) {
            self.problem(sync, "framing.sync", "must be 1 to 8 bytes");
            return None;
        }
        Some(FramingSpec::SyncLength { sync: sync.get_ref().clone(), max_len: max_len.min(u16::MAX as usize) })
    }

    fn needs_framing(&mut self, raw: &RawProfile, decoder: &str, framing: &str) {
        if let Some(f) = raw.framing.as_ref().filter(|f| f.kind.get_ref() != framing) {
            self.problem(&f.kind, "framing.kind", format!("the {decoder} decoder reads `{framing}` frames"));
        }
    }

    /// Channel `source` numbers (from 1) as 0-based indexes, each below `limit` when one is given.
    fn sources(&mut self, raw: &RawProfile, limit: Option<usize>, what: &str) -> SampleSources {
        let mut out = Vec::new();
        for (i, c) in raw.channels.iter().enumerate() {
            let n = *c.source.get_ref();
            if n == 0 || limit.is_some_and(|l| n > l) {
                let range = limit.map(|l| format!("1 to {l}")).unwrap_or_else(|| "from 1".into());
                self.problem(&c.source, &format!("channel[{i}].source"), format!("{what} numbers run {range}"));
            }
            out.push(n.saturating_sub(1));
        }
        SampleSources(out)
    }

    pub(super) fn cyton(&mut self, raw: &RawProfile) -> Option<DecoderSpec> {
        self.needs_framing(raw, "openbci-cyton", "fixed");
        if let Some(len) = raw.framing.as_ref().and_then(|f| f.length.as_ref()) {
            if *len.get_ref() != CYTON_PACKET {
                self.problem(len, "framing.length", format!("Cyton packets are {CYTON_PACKET} bytes"));
            }
        }
        Some(DecoderSpec::Cyton(self.sources(raw, Some(CYTON_CHANNELS), "Cyton channel")))
    }

    pub(super) fn samples(&mut self, raw: &RawProfile) -> Option<DecoderSpec> {
        self.needs_framing(raw, "samples", "line");
        let d = &raw.decoder;
        let delimiter = match &d.delimiter {
            Some(v) => {
                let mut chars = v.get_ref().chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) if !c.is_ascii_digit() && c != '-' => Some(c),
                    _ => {
                        self.problem(v, "decoder.delimiter", "must be one character that is not a digit or `-`");
                        None
                    }
                }
            }
            None => None,
        };
        let counter_column = d.counter_column.as_ref().map(|c| {
            if *c.get_ref() == 0 {
                self.problem(c, "decoder.counter_column", "column numbers run from 1");
            }
            c.get_ref().saturating_sub(1)
        });
        let sources = self.sources(raw, None, "column");
        if let Some(cc) = counter_column {
            if let Some(i) = sources.0.iter().position(|&s| s == cc) {
                self.problem(&raw.channels[i].source, &format!("channel[{i}].source"), "is the counter column");
            }
        }
        Some(DecoderSpec::Samples(SamplesSpec { delimiter, counter_column, sources }))
    }

    pub(super) fn pcm(&mut self, raw: &RawProfile) -> Option<DecoderSpec> {
        self.needs_framing(raw, "pcm", "sync-length");
        let d = &raw.decoder;
        let Some(channels) = &d.channels else {
            self.problem(&d.kind, "decoder.channels", "a pcm decoder needs the number of interleaved channels");
            return None;
        };
        if !(1..=64).contains(channels.get_ref()) {
            self.problem(channels, "decoder.channels", "must be 1 to 64");
        }
        let sample = match d.sample.as_ref().map(|s| s.get_ref().as_str()) {
            None | Some("i16le") => SampleFormat::I16Le,
            Some("i32le") => SampleFormat::I32Le,
            Some(other) => {
                let at = d.sample.as_ref()?;
                self.problem(at, "decoder.sample", format!("unknown sample format `{other}` (known: i16le, i32le)"));
                SampleFormat::I16Le
            }
        };
        let counter = match d.counter.as_ref().map(|s| s.get_ref().as_str()) {
            None | Some("u32le") => true,
            Some("none") => false,
            Some(other) => {
                let at = d.counter.as_ref()?;
                self.problem(at, "decoder.counter", format!("unknown counter `{other}` (known: u32le, none)"));
                true
            }
        };
        let sources = self.sources(raw, Some(*channels.get_ref()), "PCM channel");
        Some(DecoderSpec::Pcm(PcmSpec { channels: *channels.get_ref(), sample, counter, sources }))
    }

    /// The `[wave]` stream of a waveform decoder; `Some(None)` for other decoders.
    pub(super) fn wave(&mut self, raw: &RawProfile, decoder: Option<&DecoderSpec>) -> Option<Option<WaveSpec>> {
        let is_wave =
            matches!(raw.decoder.kind.get_ref().as_str(), "openbci-cyton" | "samples" | "pcm" | "polar-pmd-ecg");
        let Some(w) = &raw.wave else {
            if is_wave {
                self.problem(&raw.decoder.kind, "wave", "a waveform decoder needs a [wave] table (stream, rate)");
                return None;
            }
            if let Some(c) = raw.channels.first() {
                self.problem(&c.source, "channel[0]", "`channel` tables belong to waveform decoders with a [wave]");
            }
            return Some(None);
        };
        if !is_wave {
            self.problem(w, "wave", "[wave] belongs to waveform decoders (openbci-cyton, samples, pcm)");
            return Some(None);
        }
        let w = w.get_ref();
        if !is_valid_id(w.stream.get_ref()) {
            self.problem(&w.stream, "wave.stream", "must match [a-z0-9][a-z0-9-]{0,62} (it is a topic segment)");
        }
        let rate = *w.rate.get_ref();
        if !crate::model::rate_possible(rate) {
            let why = format!("must be a sampling rate in Hz above 0 and at most {}", crate::model::MAX_RATE_HZ);
            self.problem(&w.rate, "wave.rate", why);
        }
        let window_ms = w.window_ms.as_ref().map(|m| *m.get_ref()).unwrap_or(200);
        if let Some(m) = &w.window_ms {
            if !(10..=10_000).contains(m.get_ref()) {
                self.problem(m, "wave.window_ms", "must be 10 to 10000 milliseconds");
            }
        }
        let enc = match &w.enc {
            None => Encoding::Rice,
            Some(e) => match Encoding::from_name(e.get_ref()) {
                Some(Encoding::I16Le) if !matches!(decoder, Some(DecoderSpec::Pcm(p)) if p.sample == SampleFormat::I16Le) =>
                {
                    self.problem(e, "wave.enc", "i16le holds only 16-bit samples; this device's may be wider");
                    Encoding::I16Le
                }
                Some(enc) => enc,
                None => {
                    self.problem(
                        e,
                        "wave.enc",
                        format!("unknown packing `{}` (known: rice, dzv, i16le, i32le)", e.get_ref()),
                    );
                    Encoding::Rice
                }
            },
        };
        if raw.channels.is_empty() {
            self.problem(&raw.decoder.kind, "channel", "a waveform stream needs at least one [[channel]]");
        }
        let mut channels = Vec::new();
        for (i, c) in raw.channels.iter().enumerate() {
            let item = |k: &str| format!("channel[{i}].{k}");
            if c.label.get_ref().is_empty() || raw.channels[..i].iter().any(|p| p.label.get_ref() == c.label.get_ref())
            {
                self.problem(&c.label, &item("label"), "must be a label no other channel has");
            }
            self.ucum(&c.ucum, &item("ucum"));
            let gain = *c.gain.get_ref();
            if !crate::model::gain_possible(gain) {
                self.problem(&c.gain, &item("gain"), "must be a finite, non-zero number (unit per count)");
            }
            channels.push(ChannelSpec {
                label: c.label.get_ref().clone(),
                code: Code { mdc: c.mdc, loinc: None, name: None },
                unit: Unit { ucum: c.ucum.get_ref().clone(), mdc: None },
                gain,
                base: c.base.unwrap_or(0),
            });
        }
        // The largest chunk must fit one MQTT packet (or it could never be sent): samples at the
        // packing's worst case (5 bytes for a 32-bit value in rice or dzv), plus each channel's
        // description and the envelope.
        let rows = (rate * window_ms as f64 / 1000.0).ceil();
        let worst = match enc {
            Encoding::I16Le => 2.0,
            Encoding::I32Le => 4.0,
            Encoding::Rice | Encoding::DeltaZigzagVarint => 5.0,
        };
        let chunk = rows * worst * channels.len() as f64 + 160.0 * channels.len() as f64 + 512.0;
        if rate.is_finite() && chunk > crate::mqtt::MAX_PACKET as f64 {
            let at = w.window_ms.as_ref().map(|m| m.span()).unwrap_or_else(|| w.rate.span());
            self.problems.0.push(self.src.at(
                at,
                "wave.window_ms",
                format!(
                    "a {window_ms} ms chunk of {} channels at {rate} Hz may take {:.0} bytes, more than the {}-byte MQTT packet limit: shorten the window",
                    channels.len(),
                    chunk,
                    crate::mqtt::MAX_PACKET
                ),
            ));
        }
        let (counter_modulus, rows_per_frame) = match decoder {
            Some(DecoderSpec::Cyton(_)) => (Some(256), Some(1)),
            Some(DecoderSpec::Pcm(p)) => (p.counter.then_some(1 << 32), None),
            // Counters from frame timestamps (pmd::FrameClock); they do not wrap.
            Some(DecoderSpec::PolarPmdEcg(_)) => (Some(u64::MAX), None),
            Some(DecoderSpec::Samples(s)) => {
                let m = raw.decoder.counter_modulus.as_ref().map(|m| {
                    if *m.get_ref() < 2 {
                        self.problem(m, "decoder.counter_modulus", "must be at least 2");
                    }
                    *m.get_ref()
                });
                (s.counter_column.and(m.or(Some(u64::MAX))), Some(1))
            }
            _ => (None, None),
        };
        Some(Some(WaveSpec {
            stream: w.stream.get_ref().clone(),
            rate,
            window: Duration::from_millis(window_ms),
            enc,
            channels,
            counter_modulus,
            rows_per_frame,
            on_demand: w.on_demand.unwrap_or(false),
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::profile::{compile, DecoderSpec, FramingSpec, ProfileRegistry};
    use std::path::Path;

    #[test]
    fn shipped_and_replay_waveform_profiles_compile() {
        let reg = ProfileRegistry::builtin().unwrap();
        let cyton = reg.get("openbci-cyton").unwrap();
        assert_eq!(cyton.framing, FramingSpec::Fixed { len: 33, start: 0xA0, end: 0xC0..=0xC6 });
        let w = cyton.wave.as_ref().unwrap();
        assert_eq!((w.rate, w.counter_modulus, w.channels.len()), (250.0, Some(256), 3));
        assert!(matches!(reg.get("pcm-stethoscope").unwrap().decoder, DecoderSpec::Pcm(_)));
        for (name, text) in crate::sim::recordings::WAVE_PROFILES {
            compile(Path::new(name), text).unwrap_or_else(|d| panic!("{name}: {d}"));
        }
    }

    fn problems(text: &str) -> String {
        compile(Path::new("p.toml"), text).unwrap_err().to_string()
    }

    const CYTON: &str = "id = \"c\"\n[framing]\nkind = \"fixed\"\nlength = 33\nstart = 0xA0\nend = [0xC0, 0xC6]\n[decoder]\nkind = \"openbci-cyton\"\n";

    #[test]
    fn waveform_mistakes_are_named_with_their_place() {
        let no_wave = problems(CYTON);
        assert!(no_wave.contains("p.toml:8:") && no_wave.contains("wave"), "{no_wave}");
        let bad = format!(
            "{CYTON}[wave]\nstream = \"ecg\"\nrate = -5.0\nenc = \"i16le\"\n[[channel]]\nsource = 9\nlabel = \"I\"\nmdc = 1\nucum = \"uV\"\ngain = 0.0\n"
        );
        let p = problems(&bad);
        for (item, line) in [("wave.rate", 11), ("wave.enc", 12), ("channel[0].source", 14), ("channel[0].gain", 18)] {
            assert!(p.contains(&format!("p.toml:{line}:")) && p.contains(item), "{item} at {line} in:\n{p}");
        }
        let stray = "id = \"t\"\n[framing]\nkind = \"line\"\n[decoder]\nkind = \"text\"\nformat = \"csv\"\ncolumns = [\"a\"]\n[[field]]\nsource = \"a\"\nmdc = 1\nucum = \"1\"\n[wave]\nstream = \"x\"\nrate = 1.0\n";
        assert!(problems(stray).contains("[wave] belongs to waveform decoders"));
        // A window whose chunk could not fit one MQTT packet: 64 channels at 100 kHz for 10 s.
        let huge = format!(
            "id = \"w\"\n[framing]\nkind = \"line\"\n[decoder]\nkind = \"samples\"\n[wave]\nstream = \"x\"\nrate = 100000.0\nwindow_ms = 10000\n{}",
            (1..=64).map(|i| format!("[[channel]]\nsource = {i}\nlabel = \"c{i}\"\nmdc = 1\nucum = \"1\"\ngain = 1.0\n")).collect::<String>()
        );
        let p = problems(&huge);
        assert!(p.contains("p.toml:9:") && p.contains("wave.window_ms") && p.contains("packet limit"), "{p}");
        let pcm_framing = "id = \"s\"\n[framing]\nkind = \"line\"\n[decoder]\nkind = \"pcm\"\nchannels = 1\n[wave]\nstream = \"pcg\"\nrate = 4000.0\n[[channel]]\nsource = 1\nlabel = \"P\"\nmdc = 1\nucum = \"1\"\ngain = 1.0\n";
        assert!(problems(pcm_framing).contains("the pcm decoder reads `sync-length` frames"));
    }
}
