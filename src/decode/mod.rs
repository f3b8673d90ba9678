//! Frame -> readings. Decoders are pure functions of a frame and a profile: no IO, no tokio, so they
//! are tested with byte vectors beside them and fuzzed with arbitrary bytes.

pub mod astm;
pub mod ble;
pub mod cyton;
pub mod gatt;
pub mod hl7;
mod hl7_ack;
pub mod pcm;
mod samples;
pub mod text;

use crate::model::{Event, Observation, Severity};
use crate::profile::DecoderSpec;

/// What a frame said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    pub observations: Vec<Observation>,
    /// The device's time for the whole message (each observation may carry its own).
    pub tdev: Option<i64>,
    /// Parts of the frame that could not be used; the rest was.
    pub problems: Vec<Event>,
    /// Bytes to send back to the device once the readings are accepted (an HL7 ACK).
    pub reply: Option<Vec<u8>>,
    /// Waveform samples (waveform decoders).
    pub wave: Option<WaveFrame>,
}

/// The samples of one waveform frame: rows of the stream's channels, row after row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaveFrame {
    /// The device's sample counter for the first row, when it sends one.
    pub counter: Option<u64>,
    /// Row-major: `samples.len()` is rows x channels.
    pub samples: Vec<i32>,
}

/// `value = raw * scale + offset`, refused (with the event saying why) outside the field's range.
pub(crate) fn apply_field(field: &crate::profile::FieldMap, number: f64, raw: &str) -> Result<f64, Event> {
    let value = number * field.scale + field.offset;
    if field.min.is_some_and(|m| value < m) || field.max.is_some_and(|m| value > m) {
        return Err(Event::new(
            "value-out-of-range",
            Severity::Warn,
            format!("`{}` is outside the profile's range", field.source),
        )
        .with("field", field.source.as_str())
        .with("raw", raw));
    }
    Ok(value)
}

impl Decoded {
    fn samples(wave: WaveFrame) -> Self {
        Decoded { wave: Some(wave), ..Default::default() }
    }
}

/// A frame that gave nothing usable. The stream carries on with the next frame.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {text}")]
pub struct DecodeError {
    /// The `event` code (`hl7-unparseable`, `checksum-mismatch`, ...).
    pub code: &'static str,
    pub text: String,
    /// Bytes to send back to the device now (an HL7 reject).
    pub reply: Option<Vec<u8>>,
}

impl DecodeError {
    pub fn new(code: &'static str, text: impl Into<String>) -> Self {
        Self { code, text: text.into(), reply: None }
    }

    /// The event the hub sees.
    pub fn to_event(&self) -> Event {
        Event::new(self.code, Severity::Warn, self.text.clone()).with("stage", "decode")
    }
}

/// A profile's decoder, ready to use.
#[derive(Debug, Clone)]
pub struct Decoder {
    spec: DecoderSpec,
}

impl Decoder {
    pub fn new(spec: DecoderSpec) -> Self {
        Self { spec }
    }

    /// Decodes one frame. `now_micros` stamps generated replies (HL7 ACK MSH-7).
    pub fn decode(&self, frame: &[u8], now_micros: i64) -> Result<Decoded, DecodeError> {
        match &self.spec {
            DecoderSpec::Hl7Oru(spec) => hl7::decode(spec, frame, now_micros),
            DecoderSpec::Text(spec) => text::decode(spec, frame),
            DecoderSpec::Cyton(sources) => Ok(Decoded::samples(cyton::decode(sources, frame)?)),
            DecoderSpec::Samples(spec) => Ok(Decoded::samples(samples::decode(spec, frame)?)),
            DecoderSpec::Pcm(spec) => Ok(Decoded::samples(pcm::decode(spec, frame)?)),
            DecoderSpec::Astm(spec) => astm::decode(spec, frame),
            DecoderSpec::Image(_) => Err(DecodeError::new("image", "images are not framed: see crate::media")),
            DecoderSpec::Gatt(_) | DecoderSpec::PolarPmdEcg(_) => {
                Err(DecodeError::new("ble-notification", "BLE notifications are read with decode::ble"))
            }
        }
    }
}
