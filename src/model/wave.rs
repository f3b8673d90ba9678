//! A waveform chunk (`wave` body): a run of consecutive samples of one stream, every channel's
//! integers exactly as the device sent them, packed losslessly (see [`crate::wave::Encoding`]).

use super::{Code, Unit};
use serde::{Deserialize, Serialize};

/// The `wave` keys of a body: which stream, where its samples sit, and the channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wave {
    pub stream: String,
    /// Samples per second per channel.
    pub rate: f64,
    /// Index of this chunk's first sample since the stream started. Consecutive chunks are
    /// contiguous (`i0 + n` is the next chunk's `i0`); a larger `i0` is a gap.
    pub i0: u64,
    /// Gateway time of sample `i0`, microseconds since the Unix epoch.
    pub t0: i64,
    /// Samples per channel in this chunk.
    pub n: u32,
    pub ch: Vec<Channel>,
}

/// One channel of a chunk. Physical value = (count - `base`) * `gain`, in `unit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    pub label: String,
    pub code: Code,
    pub unit: Unit,
    pub gain: f64,
    pub base: i64,
    /// The packing of `data` (`i16le`, `i32le`, `dzv`, `rice`).
    pub enc: String,
    #[serde(with = "bytes_or_base64")]
    pub data: Vec<u8>,
}

/// Byte strings are CBOR byte strings, and base64 (standard alphabet, padded) text in JSON.
mod bytes_or_base64 {
    use base64::Engine;
    use serde::{de, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
        } else {
            s.serialize_bytes(bytes)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string (CBOR) or base64 text (JSON)")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
                base64::engine::general_purpose::STANDARD.decode(v).map_err(E::custom)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_any(V)
    }
}
