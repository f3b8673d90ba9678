//! The device profile file as written by an operator: a serde schema that refuses unknown keys.
//! [`super::compile`] turns it into a checked [`super::Profile`].

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    pub id: Spanned<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub serial: RawSerial,
    /// Serial devices: how bytes become frames. BLE devices have none (a notification is a frame).
    pub framing: Option<RawFraming>,
    /// BLE devices: the service that identifies the device.
    pub ble: Option<Spanned<RawBle>>,
    pub decoder: RawDecoder,
    #[serde(default, rename = "unit")]
    pub units: Vec<RawUnit>,
    #[serde(default, rename = "metric")]
    pub metrics: Vec<RawMetric>,
    #[serde(default, rename = "field")]
    pub fields: Vec<RawField>,
    pub wave: Option<Spanned<RawWave>>,
    #[serde(default, rename = "channel")]
    pub channels: Vec<RawChannel>,
    pub dialogue: Option<Spanned<RawDialogue>>,
    /// Image devices (`decoder.kind = "image"`) that are cameras: how a still is taken.
    pub camera: Option<Spanned<RawCamera>>,
}

/// `[camera]`: how a still is taken from a V4L2 (UVC) camera.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCamera {
    /// Frames dropped after the stream starts, while exposure and white balance settle (5).
    pub warmup_frames: Option<Spanned<u32>>,
    /// Milliseconds a still may take in all before the capture fails (10000).
    pub timeout_ms: Option<Spanned<u64>>,
    /// The resolution to take (the largest MJPEG resolution the camera offers when absent).
    pub width: Option<Spanned<u32>>,
    pub height: Option<Spanned<u32>>,
}

/// What the gateway asks a device: `[dialogue]` and its `[[dialogue.request]]`s.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDialogue {
    /// Written before every request (`"\u0011\r"`).
    pub wake: Option<String>,
    /// Written after every request (`"\r"`).
    pub end: Option<String>,
    /// Appended to every request: `sum16-hex`.
    pub checksum: Option<Spanned<String>>,
    /// Milliseconds to wait for each line of a reply (3000 when absent).
    pub timeout_ms: Option<Spanned<u64>>,
    /// Times a request is sent again after a late or unusable reply (2 when absent).
    pub retries: Option<Spanned<u32>>,
    #[serde(default)]
    pub on_connect: Vec<Spanned<String>>,
    #[serde(default)]
    pub on_fetch: Vec<Spanned<String>>,
    /// Runs `on_fetch` every this many minutes while connected.
    pub every_minutes: Option<Spanned<u64>>,
    #[serde(default, rename = "request")]
    pub requests: Vec<RawRequest>,
    pub clock: Option<RawClock>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRequest {
    pub name: Spanned<String>,
    /// The request's text; `{now:FORMAT}` is the gateway's time (a `time` format description).
    pub send: Spanned<String>,
    /// `line`, `counted` (with `count_column`) or `none`.
    pub reply: Spanned<String>,
    pub count_column: Option<Spanned<usize>>,
    /// The most lines a counted reply's header may count (10,000 when absent).
    pub max_count: Option<Spanned<u64>>,
    /// `readings`, `clock-read`, `clock-set` or `info`.
    pub role: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClock {
    /// Stripped from the clock reply (after its checksum).
    #[serde(default)]
    pub prefix: String,
    /// Columns (1-based) of the reply joined with one space.
    pub from: Vec<Spanned<usize>>,
    pub format: Spanned<String>,
    pub utc_offset: Option<Spanned<String>>,
    /// Seconds the device clock may be off before it is reported and set (120 when absent).
    pub max_skew_secs: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSerial {
    pub baud: Option<Spanned<u32>>,
    pub data_bits: Option<Spanned<u8>>,
    pub parity: Option<Spanned<String>>,
    pub stop_bits: Option<Spanned<u8>>,
    pub flow_control: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFraming {
    pub kind: Spanned<String>,
    /// Largest frame (MLLP), line or payload (sync-length) accepted, in bytes.
    pub max_len: Option<Spanned<usize>>,
    // fixed
    pub length: Option<Spanned<usize>>,
    pub start: Option<Spanned<u8>>,
    /// `[lowest, highest]` end byte.
    pub end: Option<Spanned<Vec<u8>>>,
    // sync-length
    pub sync: Option<Spanned<Vec<u8>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDecoder {
    pub kind: Spanned<String>,
    // hl7-oru
    pub ack: Option<bool>,
    // text
    pub format: Option<Spanned<String>>,
    pub prefix: Option<String>,
    pub checksum: Option<Spanned<String>>,
    pub delimiter: Option<Spanned<String>>,
    pub assign: Option<Spanned<String>>,
    #[serde(default)]
    pub columns: Vec<Spanned<String>>,
    #[serde(default)]
    pub skip_column_counts: Vec<usize>,
    pub device_time: Option<RawDeviceTime>,
    // samples
    pub counter_column: Option<Spanned<usize>>,
    pub counter_modulus: Option<Spanned<u64>>,
    // pcm
    pub channels: Option<Spanned<usize>>,
    pub sample: Option<Spanned<String>>,
    pub counter: Option<Spanned<String>>,
    // gatt
    /// Characteristics to subscribe to, as 16-bit SIG UUIDs ("0x2A18").
    #[serde(default)]
    pub characteristics: Vec<Spanned<String>>,
    /// Fetch stored records with the Record Access Control Point on every connect.
    pub racp: Option<bool>,
    /// Seconds to wait for a control point answer (RACP, PMD) before reporting the device silent.
    pub answer_timeout_secs: Option<Spanned<u64>>,
    // astm-e1394
    /// The R field holding the result's date and time (13 when absent).
    pub time_field: Option<Spanned<usize>>,
    /// The device clock's offset from UTC, `+05:30`; UTC when absent.
    pub utc_offset: Option<Spanned<String>>,
    pub decimal_comma: Option<bool>,
    /// The device's unit text -> UCUM.
    pub units: Option<Spanned<std::collections::BTreeMap<String, String>>>,
    /// The Q record sent on `records.fetch`.
    pub fetch_query: Option<Spanned<String>>,
}

/// A BLE device's identifying service: `[ble]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBle {
    /// 16-bit SIG UUID ("0x1808") or full 128-bit UUID.
    pub service: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeviceTime {
    /// Columns (csv) or keys (key-value) joined with one space before parsing.
    pub from: Vec<Spanned<String>>,
    /// A `time` crate format description, e.g. `[month]/[day]/[year repr:last_two] [hour]:[minute]:[second]`.
    pub format: Spanned<String>,
    /// The device clock's offset from UTC, `+05:30`; UTC when absent.
    pub utc_offset: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUnit {
    pub mdc: u32,
    pub ucum: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetric {
    pub mdc: Spanned<u32>,
    pub name: Option<String>,
    pub loinc: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawField {
    /// The column name (csv) or key (key-value) the value comes from.
    pub source: Spanned<String>,
    pub mdc: u32,
    pub name: Option<String>,
    pub loinc: Option<Spanned<String>>,
    /// Required for text fields; for GATT fields the characteristic states the unit, and a `ucum`
    /// given here must match it.
    pub ucum: Option<Spanned<String>>,
    pub unit_mdc: Option<u32>,
    /// value = raw * scale + offset
    pub scale: Option<Spanned<f64>>,
    pub offset: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<Spanned<f64>>,
}

/// A waveform stream: `[wave]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWave {
    pub stream: Spanned<String>,
    /// Samples per second per channel.
    pub rate: Spanned<f64>,
    /// Chunk window in milliseconds (200 when absent).
    pub window_ms: Option<Spanned<u64>>,
    /// Sample packing on the wire (`rice` when absent).
    pub enc: Option<Spanned<String>>,
    /// Samples are sent only between the hub's `stream.start` and `stream.stop` (false when absent).
    pub on_demand: Option<bool>,
}

/// One channel of a waveform stream: `[[channel]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChannel {
    /// Where the channel is in the device's data: channel number (openbci-cyton, pcm) or column
    /// number (samples), counting from 1.
    pub source: Spanned<usize>,
    pub label: Spanned<String>,
    pub mdc: u32,
    pub name: Option<String>,
    pub ucum: Spanned<String>,
    /// Physical value = (count - base) * gain.
    pub gain: Spanned<f64>,
    pub base: Option<i64>,
}
