//! Device profiles: declarative TOML files (in `device-profiles/`, plus the operator's own
//! `profiles_dir`) that say how a device is reached, framed and decoded, and how its values map to
//! MDC and LOINC codes and UCUM units. An operator adds a device by writing one, not Rust.
//!
//! A profile is read in two stages: [`raw`] is the serde schema (unknown keys refused), then
//! [`compile`] runs every named check and reports all problems at once, each with file, line,
//! column and the offending item.

mod ble_checks;
mod compile;
pub mod dialogue_checks;
pub mod raw;
mod registry;
mod time_format;
mod wave_checks;

pub use compile::{compile, load_file};
pub use dialogue_checks::{template_parts, Part};
pub use registry::{ProfileRegistry, BUILTIN};
pub use time_format::time_format;

use crate::model::{Code, Unit};
use std::collections::HashMap;
use std::path::PathBuf;

/// A checked device profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub id: String,
    pub description: String,
    /// Where it was read from (`builtin:` for shipped profiles).
    pub source: PathBuf,
    pub serial: SerialSettings,
    /// BLE devices: the service they are found by (and nothing is framed: a notification is a frame).
    pub ble: Option<BleSpec>,
    pub framing: FramingSpec,
    pub decoder: DecoderSpec,
    /// The waveform stream, for waveform devices.
    pub wave: Option<WaveSpec>,
    /// What the gateway must ask the device, for devices that speak only when asked.
    pub dialogue: Option<std::sync::Arc<DialogueSpec>>,
}

/// A device that must be asked: the requests, when they are sent, and what their replies mean.
#[derive(Debug, Clone)]
pub struct DialogueSpec {
    /// Written before every request (a meter's wake-up bytes).
    pub wake: Vec<u8>,
    /// Written after every request (after its checksum).
    pub end: Vec<u8>,
    /// Appended to every request's text.
    pub checksum: Option<RequestChecksum>,
    /// How long to wait for each line of a reply.
    pub timeout: std::time::Duration,
    /// How many more times a request is sent when its reply is late or unusable.
    pub retries: u32,
    pub requests: Vec<RequestSpec>,
    /// Indices into `requests`, run in order when the link opens.
    pub on_connect: Vec<usize>,
    /// Run on `records.fetch` (the hub's command, `spokegate fetch DEV`) and every `every`.
    pub on_fetch: Vec<usize>,
    pub every: Option<std::time::Duration>,
    pub clock: Option<ClockSpec>,
}

/// A checksum appended to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestChecksum {
    /// A space and four hex digits: the 16-bit sum of the bytes before it.
    Sum16Hex,
}

/// One request: what is sent, how its reply ends, what the reply is for.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub name: String,
    /// Text with `{now:FORMAT}` replaced by the gateway's time in the device's offset.
    pub send: String,
    pub reply: ReplyShape,
    pub role: RequestRole,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyShape {
    /// Nothing comes back.
    None,
    /// One line.
    Line,
    /// A header line whose column `column` (1-based, after the decoder's prefix) counts the lines
    /// that follow, at most `max` (a header counting more is unusable: a device cannot make the
    /// gateway hold an endless reply).
    Counted { column: usize, max: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestRole {
    /// The lines are readings, decoded by the profile's decoder; only those newer than the last
    /// delivered are sent.
    Readings,
    /// The reply carries the device's clock ([`ClockSpec`]).
    ClockRead,
    /// Sets the device's clock (sent when it is off by more than the allowed skew).
    ClockSet,
    /// The reply's text is reported once as device information (firmware, serial number).
    Info,
}

/// How the device's clock is read from a reply line and when it is set.
#[derive(Debug, Clone)]
pub struct ClockSpec {
    /// Stripped from the reply line (after its checksum).
    pub prefix: String,
    /// Columns (1-based) joined with a space.
    pub from: Vec<usize>,
    pub format: time::format_description::OwnedFormatItem,
    pub utc_offset: time::UtcOffset,
    /// Larger offsets are reported (`device-clock`) and, with a `clock-set` request, corrected.
    pub max_skew: std::time::Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    None,
    Odd,
    Even,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowControl {
    None,
    Software,
    Hardware,
}

/// Line settings of a serial device (the device config may override the baud rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SerialSettings {
    pub baud: u32,
    pub data_bits: u8,
    pub parity: Parity,
    pub stop_bits: u8,
    pub flow_control: FlowControl,
}

impl Default for SerialSettings {
    fn default() -> Self {
        Self { baud: 9600, data_bits: 8, parity: Parity::None, stop_bits: 1, flow_control: FlowControl::None }
    }
}

/// How the byte stream is cut into frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FramingSpec {
    /// HL7 Minimal Lower Layer Protocol: `0x0B` message `0x1C 0x0D`.
    Mllp { max_len: usize },
    /// Text lines ended by CR, LF or CR LF.
    Line { max_len: usize },
    /// Packets of `len` bytes from a `start` byte to an end byte in `end` (OpenBCI Cyton).
    Fixed { len: usize, start: u8, end: std::ops::RangeInclusive<u8> },
    /// `sync`, 16-bit LE length, payload, CRC-16/CCITT-FALSE LE over length and payload.
    SyncLength { sync: Vec<u8>, max_len: usize },
    /// BLE: every notification is one frame.
    Notification,
    /// ASTM E1381 (LIS1-A): ENQ/ACK, checksummed numbered frames, EOT; one frame = one message
    /// (its E1394 records) of at most `max_len` bytes.
    AstmE1381 { max_len: usize },
}

/// What identifies a BLE device's kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BleSpec {
    pub service: uuid::Uuid,
}

/// How a frame becomes readings.
#[derive(Debug, Clone)]
pub enum DecoderSpec {
    Hl7Oru(Hl7Spec),
    Text(TextSpec),
    /// OpenBCI Cyton 33-byte packets: counter, 8 channels of 24-bit big-endian samples.
    Cyton(SampleSources),
    /// One sample row per text line.
    Samples(SamplesSpec),
    /// Binary PCM frames: optional 32-bit sample counter, interleaved samples.
    Pcm(PcmSpec),
    /// Bluetooth SIG GATT characteristics (BLE).
    Gatt(GattSpec),
    /// Polar PMD ECG stream (BLE; Polar H10).
    PolarPmdEcg(PmdSpec),
    /// ASTM E1394 (LIS2-A2) messages: R records mapped to codes.
    Astm(AstmSpec),
    /// Whole images (cameras, folders): sent as `media` parts, never framed.
    Image(ImageSpec),
}

/// How an image device's stills are taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// Frames dropped after a camera starts streaming, while exposure settles.
    pub warmup_frames: u32,
    /// How long a still may take in all.
    pub timeout: std::time::Duration,
    /// The resolution to take; the largest MJPEG one the camera offers when absent.
    pub size: Option<(u32, u32)>,
}

impl Default for ImageSpec {
    fn default() -> Self {
        Self { warmup_frames: 5, timeout: std::time::Duration::from_secs(10), size: None }
    }
}

/// ASTM E1394 results mapped to codes and units.
#[derive(Debug, Clone)]
pub struct AstmSpec {
    /// The R field that holds the result's time (E1394: 13, date and time the test completed).
    pub time_field: usize,
    /// The device clock's offset from UTC.
    pub utc_offset: time::UtcOffset,
    /// Result values written with a decimal comma (`12,5`).
    pub decimal_comma: bool,
    /// The device's unit text -> UCUM, where they differ (`mmol/l` -> `mmol/L`).
    pub units: HashMap<String, String>,
    /// Matched on the test id's local code (`source`) and the result's unit (`ucum`).
    pub fields: Vec<FieldMap>,
    /// The request record (`Q|1|^ALL||||||||||N`) the gateway sends, between its own H and L
    /// records, on `records.fetch`; `None`: the device only sends on its own.
    pub fetch_query: Option<String>,
}

/// GATT notifications mapped to codes.
#[derive(Debug, Clone)]
pub struct GattSpec {
    pub characteristics: Vec<crate::decode::gatt::Characteristic>,
    /// Fetch stored records with the Record Access Control Point on every connect.
    pub racp: bool,
    pub answer_timeout: std::time::Duration,
    pub fields: Vec<FieldMap>,
}

/// The Polar PMD ECG stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmdSpec {
    pub answer_timeout: std::time::Duration,
}

/// Which of the device's channels (0-based) become the stream's channels, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleSources(pub Vec<usize>);

/// Text sample rows: integers separated by `delimiter` (commas or white space when absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamplesSpec {
    pub delimiter: Option<char>,
    /// 0-based column holding a sample counter, if the device prints one.
    pub counter_column: Option<usize>,
    /// 0-based columns of the channels.
    pub sources: SampleSources,
}

/// How one PCM sample is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    I16Le,
    I32Le,
}

impl SampleFormat {
    pub fn width(self) -> usize {
        match self {
            SampleFormat::I16Le => 2,
            SampleFormat::I32Le => 4,
        }
    }
}

/// Binary PCM frame payload: `[u32 LE sample counter]` then `channels` interleaved samples per row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcmSpec {
    pub channels: usize,
    pub sample: SampleFormat,
    pub counter: bool,
    pub sources: SampleSources,
}

/// A waveform device's stream: what the chunker needs.
#[derive(Debug, Clone, PartialEq)]
pub struct WaveSpec {
    pub stream: String,
    pub rate: f64,
    pub window: std::time::Duration,
    pub enc: crate::wave::Encoding,
    pub channels: Vec<ChannelSpec>,
    /// The device's sample counter wraps at this value (it counts samples).
    pub counter_modulus: Option<u64>,
    /// Rows each frame carries when the frame has no counter (a rejected frame is that many missing).
    pub rows_per_frame: Option<u64>,
    /// Samples are sent only between `stream.start` and `stream.stop` (stopped at start).
    pub on_demand: bool,
}

/// One channel of a stream. Physical value = (count - base) * gain.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelSpec {
    pub label: String,
    pub code: Code,
    pub unit: Unit,
    pub gain: f64,
    pub base: i64,
}

/// HL7 v2 ORU^R01 (IHE PCD-01) observations.
#[derive(Debug, Clone)]
pub struct Hl7Spec {
    /// Reply to the device with an HL7 ACK.
    pub ack: bool,
    /// MDC unit code -> UCUM.
    pub units: HashMap<u32, String>,
    /// MDC metric code -> name and LOINC.
    pub metrics: HashMap<u32, MetricInfo>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricInfo {
    pub name: Option<String>,
    pub loinc: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFormat {
    /// Delimited columns; double quotes around a column are removed, white space trimmed.
    Csv { delimiter: char },
    /// `KEY=VALUE` pairs separated by a delimiter (white space by default).
    KeyValue { delimiter: Option<char>, assign: char },
}

/// A check on every line of a text device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineChecksum {
    /// The last space-separated token is four hex digits: the 16-bit sum of every byte before that
    /// space (LifeScan OneTouch serial protocol).
    Sum16Hex,
}

/// Text lines: a prefix, an optional checksum, then columns or key-value pairs.
#[derive(Debug, Clone)]
pub struct TextSpec {
    pub format: TextFormat,
    pub prefix: Option<String>,
    pub checksum: Option<LineChecksum>,
    pub columns: Vec<String>,
    /// Lines with this many columns are known non-reading lines (headers) and are passed over.
    pub skip_column_counts: Vec<usize>,
    pub device_time: Option<DeviceTimeSpec>,
    pub fields: Vec<FieldMap>,
}

/// How a text device states the time of a reading.
#[derive(Debug, Clone)]
pub struct DeviceTimeSpec {
    pub from: Vec<String>,
    pub format: time::format_description::OwnedFormatItem,
    pub utc_offset: time::UtcOffset,
}

/// One value of a text line mapped to a code and unit: `value = raw * scale + offset`.
#[derive(Debug, Clone)]
pub struct FieldMap {
    pub source: String,
    pub code: Code,
    /// For GATT fields without a declared `ucum`, `unit.ucum` is empty and the characteristic's
    /// own unit is used.
    pub unit: Unit,
    pub scale: f64,
    pub offset: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
}
