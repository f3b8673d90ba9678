//! WFDB records (<https://wfdb.io/spec/>): the text header (`.hea`) and the sample formats 16, 32
//! and 212 of the signal file (`.dat`). Samples are multiplexed frame by frame.

use std::fmt::Write as _;

/// The value a format-16 sample takes where no sample exists (WFDB's invalid sample).
pub const INVALID_16: i32 = -32768;
/// The same for format 32.
pub const INVALID_32: i32 = i32::MIN;

#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub name: String,
    pub fs: f64,
    pub nsamp: Option<u64>,
    pub signals: Vec<Signal>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub file: String,
    pub fmt: u16,
    /// ADC units per physical unit.
    pub gain: f64,
    pub baseline: i64,
    pub units: String,
    pub adcres: u32,
    pub adczero: i64,
    pub initval: i64,
    /// 16-bit sum of the signal's samples, as the header states it.
    pub checksum: Option<i64>,
    pub description: String,
}

impl Signal {
    /// Whether the header's checksum equals the 16-bit sum of these samples.
    pub fn checksum_matches(&self, samples: impl IntoIterator<Item = i32>) -> Option<bool> {
        let stated = self.checksum?;
        Some(checksum(samples) == stated as u16)
    }
}

/// WFDB's checksum: the sum of the samples, modulo 2^16.
pub fn checksum(samples: impl IntoIterator<Item = i32>) -> u16 {
    samples.into_iter().fold(0u16, |acc, s| acc.wrapping_add(s as u16))
}

pub fn parse_header(text: &str) -> Result<Header, String> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    let record = lines.next().ok_or("empty header")?;
    let f: Vec<&str> = record.split_whitespace().collect();
    let nsig: usize = f.get(1).and_then(|s| s.parse().ok()).ok_or("record line: number of signals")?;
    let fs = f.get(2).map(|s| s.split('/').next().unwrap_or(s)).and_then(|s| s.parse().ok()).unwrap_or(250.0);
    let nsamp = f.get(3).and_then(|s| s.parse().ok());
    let mut signals = Vec::with_capacity(nsig);
    for line in lines.take(nsig) {
        signals.push(parse_signal(line)?);
    }
    if signals.len() != nsig {
        return Err(format!("{nsig} signals announced, {} described", signals.len()));
    }
    Ok(Header { name: f[0].to_string(), fs, nsamp, signals })
}

fn parse_signal(line: &str) -> Result<Signal, String> {
    let f: Vec<&str> = line.splitn(9, char::is_whitespace).collect();
    let num = |i: usize| -> Option<i64> { f.get(i).and_then(|s| s.parse().ok()) };
    let fmt: u16 = f
        .get(1)
        .and_then(|s| s.split(['x', ':', '+']).next())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("signal line `{line}`: format"))?;
    // gain[(baseline)][/units]
    let spec = f.get(2).copied().unwrap_or("200");
    let (gain_part, units) = spec.split_once('/').unwrap_or((spec, "mV"));
    let (gain_text, baseline) = match gain_part.split_once('(') {
        Some((g, b)) => (g, b.trim_end_matches(')').parse::<i64>().ok()),
        None => (gain_part, None),
    };
    let gain: f64 = gain_text.parse().map_err(|_| format!("signal line `{line}`: gain"))?;
    let adczero = num(4).unwrap_or(0);
    Ok(Signal {
        file: f[0].to_string(),
        fmt,
        gain: if gain == 0.0 { 200.0 } else { gain },
        baseline: baseline.unwrap_or(adczero),
        units: units.to_string(),
        adcres: num(3).unwrap_or(12) as u32,
        adczero,
        initval: num(5).unwrap_or(0),
        checksum: num(6),
        description: f.get(8).map(|s| s.trim().to_string()).unwrap_or_default(),
    })
}

/// Decodes a signal file of `nsig` multiplexed signals, all in `fmt`: frames, row-major.
pub fn decode(fmt: u16, bytes: &[u8], nsig: usize) -> Result<Vec<i32>, String> {
    let samples: Vec<i32> = match fmt {
        16 => bytes.chunks_exact(2).map(|c| i32::from(i16::from_le_bytes([c[0], c[1]]))).collect(),
        32 => bytes.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        212 => {
            let sext = |v: i32| if v & 0x800 != 0 { v - 0x1000 } else { v };
            let mut out = Vec::with_capacity(bytes.len() / 3 * 2);
            for c in bytes.chunks_exact(3) {
                out.push(sext(i32::from(c[0]) | (i32::from(c[1] & 0x0f) << 8)));
                out.push(sext(i32::from(c[2]) | (i32::from(c[1] & 0xf0) << 4)));
            }
            out
        }
        other => return Err(format!("WFDB format {other} is not supported (16, 32, 212 are)")),
    };
    let whole = samples.len() / nsig.max(1) * nsig.max(1);
    Ok(samples[..whole].to_vec())
}

/// UCUM units as a WFDB header's units field, in the characters every WFDB reader takes (letters,
/// digits and `_^-?%/`; PhysioNet's Python reader stops at any other): UCUM's power of ten `10*3`
/// becomes `10^3`, its brackets and braces go (`mm[Hg]` is `mmHg`, PhysioNet's spelling;
/// `{beats}/min` is `beats/min`), anything else becomes `_`.
pub fn units_field(ucum: &str) -> String {
    ucum.chars()
        .filter(|c| !matches!(c, '[' | ']' | '{' | '}'))
        .map(|c| match c {
            '*' => '^',
            c if c.is_ascii_alphanumeric() || "_^-?%/".contains(c) => c,
            _ => '_',
        })
        .collect()
}

/// One signal line of a header this program writes. The units and the description come from what
/// a gateway signed: the units go through [`units_field`], and a control character in the
/// description (which ends the line) becomes a space, so a header stays one line a signal.
pub fn signal_line(file: &str, fmt: u16, s: &Signal, checksum: u16) -> String {
    let units = units_field(&s.units);
    let description: String = s.description.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let mut out = String::new();
    let _ = write!(
        out,
        "{file} {fmt} {}({})/{units} {} {} {} {} 0 {description}",
        format_gain(s.gain),
        s.baseline,
        s.adcres,
        s.adczero,
        s.initval,
        checksum as i16,
    );
    out
}

/// A gain with no float noise (1 / 0.005 prints as 200); one too small for nine decimals in
/// exponent form, so that it never reads as 0 (WFDB's "uncalibrated").
fn format_gain(g: f64) -> String {
    let rounded = format!("{g:.9}");
    let trimmed = rounded.trim_end_matches('0').trim_end_matches('.');
    match trimmed.parse::<f64>() {
        Ok(v) if v == 0.0 && g != 0.0 => format!("{g:e}"),
        _ => trimmed.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_of_both_shared_recordings_parse() {
        let mit = "100s 2 360 21600\n100s.dat 212 200 11 1024 995 21537 0 MLII\n100s.dat 212 200 11 1024 1011 -3962 0 V5\n# 69 M";
        let h = parse_header(mit).unwrap();
        assert_eq!((h.fs, h.nsamp, h.signals.len()), (360.0, Some(21600), 2));
        assert_eq!(
            (h.signals[0].baseline, h.signals[0].checksum, &*h.signals[1].description),
            (1024, Some(21537), "V5")
        );
        let ptb = "00001_lr 1 100 1000\n00001_lr.dat 16 1000.0(0)/mV 16 0 64 64758 0 III";
        let s = &parse_header(ptb).unwrap().signals[0];
        assert_eq!((s.gain, s.baseline, &*s.units, s.checksum), (1000.0, 0, "mV", Some(64758)));
        assert_eq!(s.checksum_matches([-778]), Some(true));
    }

    #[test]
    fn format_212_unpacks_two_twelve_bit_samples_from_three_bytes() {
        // s0 = 0x123, s1 = 0xFFE (-2): b0 = 0x23, b1 = 0xF1, b2 = 0xFE
        assert_eq!(decode(212, &[0x23, 0xF1, 0xFE], 2).unwrap(), [0x123, -2]);
        assert_eq!(format_gain(1.0 / 0.005), "200");
        assert_eq!(format_gain(44.74), "44.74");
        assert_eq!(format_gain(2.5e-12), "2.5e-12");
    }

    #[test]
    fn ucum_units_become_units_every_wfdb_reader_takes() {
        for (ucum, wfdb) in [
            ("mV", "mV"),
            ("uV", "uV"),
            ("mm[Hg]", "mmHg"),
            ("{beats}/min", "beats/min"),
            ("10*3/uL", "10^3/uL"),
            ("%", "%"),
            ("kg.m2", "kg_m2"),
        ] {
            assert_eq!(units_field(ucum), wfdb, "{ucum}");
        }
    }

    #[test]
    fn a_signal_line_stays_one_line_with_units_and_a_description_a_gateway_chose() {
        let s = Signal {
            file: "r.dat".into(),
            fmt: 16,
            gain: 200.0,
            baseline: 0,
            units: "m V\n".into(),
            adcres: 16,
            adczero: 0,
            initval: 0,
            checksum: None,
            description: "Lead II\n# 2 signals\r\0".into(),
        };
        let line = signal_line("r.dat", 16, &s, 7);
        assert!(!line.contains(['\n', '\r', '\0']), "{line:?}");
        let h = parse_header(&format!("r 1 360 10\n{line}\n")).unwrap();
        let read = &h.signals[0];
        assert_eq!((&*read.units, read.gain, read.checksum), ("m_V_", 200.0, Some(7)));
        assert_eq!(read.description, "Lead II # 2 signals");
    }
}
