//! Polar Measurement Data (PMD) service, as the Polar H10 uses it for ECG (polar-ble-sdk,
//! `technical_documentation/online_measurement.pdf`): service FB005C80-02E7-F387-1CAD-8ACD2D8DF0C8,
//! control point ...5C81 (write, indicate), data ...5C82 (notify).
//!
//! Data frame: measurement type (byte 0, low 6 bits; 0 = ECG), timestamp of the frame's last sample
//! (uint64 LE, ns since 2000-01-01T00:00:00Z), frame type (bit 7 = compressed; the H10 sends 0),
//! then for ECG frame type 0 the samples, each a signed 24-bit little-endian value in microvolts.

use super::reader::GattError;

pub const SERVICE: uuid::Uuid = uuid::Uuid::from_u128(0xfb005c80_02e7_f387_1cad_8acd2d8df0c8);
pub const CONTROL_POINT: uuid::Uuid = uuid::Uuid::from_u128(0xfb005c81_02e7_f387_1cad_8acd2d8df0c8);
pub const DATA: uuid::Uuid = uuid::Uuid::from_u128(0xfb005c82_02e7_f387_1cad_8acd2d8df0c8);

/// Seconds from the Unix epoch to 2000-01-01T00:00:00Z.
const EPOCH_2000: i64 = 946_684_800;

/// Start ECG streaming at 130 Hz, 14-bit resolution: op 0x02 (start), type 0 (ECG), setting 0
/// (sample rate) count 1 value 130, setting 1 (resolution) count 1 value 14.
pub fn start_ecg() -> Vec<u8> {
    vec![0x02, 0x00, 0x00, 0x01, 0x82, 0x00, 0x01, 0x01, 0x0E, 0x00]
}

/// Stop ECG streaming.
pub fn stop_ecg() -> Vec<u8> {
    vec![0x03, 0x00]
}

/// One ECG frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcgFrame {
    /// Device time of the last sample, microseconds since the Unix epoch.
    pub last_sample_micros: i64,
    pub timestamp_ns: u64,
    /// Microvolts.
    pub samples: Vec<i32>,
}

pub fn decode_ecg(bytes: &[u8]) -> Result<EcgFrame, GattError> {
    if bytes.len() < 10 {
        return Err(GattError::new(format!("PMD frame of {} bytes is shorter than its header", bytes.len())));
    }
    let kind = bytes[0] & 0x3f;
    if kind != 0 {
        return Err(GattError::new(format!("PMD measurement type {kind} is not ECG (0)")));
    }
    let timestamp_ns = u64::from_le_bytes(bytes[1..9].try_into().unwrap_or_default());
    let frame_type = bytes[9];
    if frame_type != 0 {
        return Err(GattError::new(format!("PMD ECG frame type {frame_type:#04x} not supported (the H10 sends 0)")));
    }
    let data = &bytes[10..];
    if data.is_empty() || data.len() % 3 != 0 {
        return Err(GattError::new(format!("{} sample bytes are not whole 24-bit samples", data.len())));
    }
    let samples = data.chunks_exact(3).map(|c| i32::from_le_bytes([0, c[0], c[1], c[2]]) >> 8).collect();
    let last_sample_micros = EPOCH_2000 * 1_000_000 + (timestamp_ns / 1000) as i64;
    Ok(EcgFrame { last_sample_micros, timestamp_ns, samples })
}

/// A PMD ECG frame (simulators and tests).
pub fn encode_ecg(timestamp_ns: u64, samples: &[i32]) -> Vec<u8> {
    let mut out = vec![0x00];
    out.extend(timestamp_ns.to_le_bytes());
    out.push(0x00);
    for s in samples {
        out.extend(&s.to_le_bytes()[..3]);
    }
    out
}

/// The header of any PMD data frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub measurement_type: u8,
    pub timestamp_ns: u64,
    pub frame_type: u8,
    pub compressed: bool,
}

pub fn decode_header(bytes: &[u8]) -> Result<Header, GattError> {
    if bytes.len() < 10 {
        return Err(GattError::new("PMD frame shorter than its 10-byte header"));
    }
    Ok(Header {
        measurement_type: bytes[0] & 0x3f,
        timestamp_ns: u64::from_le_bytes(bytes[1..9].try_into().unwrap_or_default()),
        frame_type: bytes[9] & 0x7f,
        compressed: bytes[9] & 0x80 != 0,
    })
}

/// Measurement settings, type -> values: a TLV list of setting type (1 byte), count (1 byte) and
/// `count` values of 2 bytes (types 0-2: sample rate, resolution, range), 4 bytes (3: range in
/// milliunits; 5: factor) or 1 byte (4: channels).
pub fn decode_settings(bytes: &[u8]) -> Result<std::collections::BTreeMap<u8, Vec<u32>>, GattError> {
    let mut out = std::collections::BTreeMap::new();
    let mut i = 0;
    while i < bytes.len() {
        let kind = bytes[i];
        let count = usize::from(*bytes.get(i + 1).ok_or_else(|| GattError::new("setting without count"))?);
        let size = match kind {
            0..=2 => 2,
            3 | 5 => 4,
            4 => 1,
            other => return Err(GattError::new(format!("unknown PMD setting type {other}"))),
        };
        let start = i + 2;
        let end = start + count * size;
        let data = bytes.get(start..end).ok_or_else(|| GattError::new(format!("setting {kind} cut short")))?;
        let values =
            data.chunks_exact(size).map(|c| c.iter().rev().fold(0u32, |acc, &b| (acc << 8) | u32::from(b))).collect();
        out.insert(kind, values);
        i = end;
    }
    Ok(out)
}

/// A control point response: `0xF0`, op code, measurement type, status (0 = success), more, parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlResponse {
    pub op: u8,
    pub measurement_type: u8,
    pub status: u8,
    pub more: bool,
    pub parameters: Vec<u8>,
}

impl ControlResponse {
    pub fn status_meaning(&self) -> &'static str {
        match self.status {
            0 => "success",
            1 => "invalid op code",
            2 => "invalid measurement type",
            3 => "not supported",
            4 => "invalid length",
            5 => "invalid parameter",
            6 => "already in state",
            7 => "invalid resolution",
            8 => "invalid sample rate",
            9 => "invalid range",
            10 => "invalid MTU",
            11 => "invalid number of channels",
            12 => "invalid state",
            13 => "device in charger",
            _ => "unknown status",
        }
    }
}

pub fn decode_control_response(bytes: &[u8]) -> Result<ControlResponse, GattError> {
    match bytes {
        [0xF0, op, kind, status, rest @ ..] => Ok(ControlResponse {
            op: *op,
            measurement_type: *kind,
            status: *status,
            more: rest.first().is_some_and(|&m| m != 0),
            parameters: rest.get(1..).unwrap_or_default().to_vec(),
        }),
        _ => Err(GattError::new("not a PMD control point response (0xF0 ...)")),
    }
}

/// Places PMD frames on a sample counter from their device timestamps: the H10 clock runs at
/// 130 Hz +/- 2 %, so sample-exact indexes cannot come from time, but a whole lost frame shows as
/// a timestamp step of about two frame periods. Consecutive frames get consecutive counters; a
/// step of k frame periods (k >= 2, rounded) is k - 1 missing frames of this frame's length.
#[derive(Debug, Default)]
pub struct FrameClock {
    last: Option<(u64, u64)>,
}

impl FrameClock {
    /// No frame placed yet (a new session).
    pub fn is_empty(&self) -> bool {
        self.last.is_none()
    }

    /// The counter of the first sample of a frame of `n` samples whose last sample is at `ts_ns`.
    pub fn place(&mut self, ts_ns: u64, n: usize, rate: f64) -> u64 {
        let n = n as u64;
        let counter = match self.last {
            None => 0,
            Some((prev_ts, next)) => {
                let period_ns = n as f64 * 1e9 / rate;
                let steps = (ts_ns.saturating_sub(prev_ts) as f64 / period_ns).round() as u64;
                next.saturating_add(steps.saturating_sub(1).saturating_mul(n))
            }
        };
        self.last = Some((ts_ns, counter.saturating_add(n)));
        counter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_frames_show_as_counter_jumps_despite_clock_drift() {
        let mut c = FrameClock::default();
        // 73 samples at 130 Hz = 561.5 ms per frame; the device clock runs 2 % fast.
        let period = (73.0 / 130.0 * 1e9 / 1.02) as u64;
        assert_eq!(c.place(1_000_000_000, 73, 130.0), 0);
        assert_eq!(c.place(1_000_000_000 + period, 73, 130.0), 73);
        // Two frames lost.
        assert_eq!(c.place(1_000_000_000 + 4 * period, 73, 130.0), 73 * 4);
        assert_eq!(c.place(1_000_000_000 + 5 * period, 73, 130.0), 73 * 5);
    }

    #[test]
    fn frames_round_trip() {
        let f = decode_ecg(&encode_ecg(5, &[1, -1, 8_388_607, -8_388_608])).unwrap();
        assert_eq!(f.samples, [1, -1, 8_388_607, -8_388_608]);
        assert!(decode_ecg(&encode_ecg(5, &[1])[..12]).is_err());
    }
}
