//! One image as `media` parts: the same `id`, `mime`, `size`, `sha256` and `meta` on every part,
//! each part a slice of the file, numbered from 1. A hub that has every part joins the slices in
//! order and checks the whole file's SHA-256.

use super::Still;
use crate::model::Media;
use std::collections::BTreeMap;

/// The part size by default: 32 KiB, about a second of a 256 kbit/s link, so a waveform chunk
/// queued behind a part waits at most that long on the wire.
pub const DEFAULT_PART_BYTES: usize = 32 * 1024;
/// The largest part size: a part and its envelope must fit an MQTT packet
/// ([`crate::mqtt::MAX_PACKET`]) with room for the body's other keys.
pub const MAX_PART_BYTES: usize = crate::mqtt::MAX_PACKET - 64 * 1024;

/// How an image is cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartPlan {
    pub part_bytes: usize,
}

impl Default for PartPlan {
    fn default() -> Self {
        Self { part_bytes: DEFAULT_PART_BYTES }
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

/// The id of an image: the same for the same device, bytes and capture time (so an image sent
/// again after a crash has the id its first parts had, and a hub joins them), different for a
/// second capture of the same field.
pub fn media_id(dev: &str, sha256: &str, captured: i64) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [dev.as_bytes(), b"\0", sha256.as_bytes(), b"\0", &captured.to_be_bytes()] {
        ctx.update(part);
    }
    hex::encode(&ctx.finish().as_ref()[..12])
}

/// The parts of `still`, with `meta` (width, height, device, capture time, the command, the
/// camera's settings) on every part.
pub fn split(still: &Still, dev: &str, plan: &PartPlan, extra: BTreeMap<String, serde_json::Value>) -> Vec<Media> {
    let sha256 = sha256_hex(&still.bytes);
    let id = media_id(dev, &sha256, still.captured);
    let mut meta = extra;
    meta.insert("width".into(), still.width.into());
    meta.insert("height".into(), still.height.into());
    meta.insert("dev".into(), dev.into());
    meta.insert("captured".into(), still.captured.into());
    if !still.settings.is_empty() {
        meta.insert("camera".into(), serde_json::Value::Object(still.settings.clone().into_iter().collect()));
    }
    let size = plan.part_bytes.clamp(1, MAX_PART_BYTES);
    let parts = still.bytes.len().div_ceil(size).max(1) as u32;
    still
        .bytes
        .chunks(size)
        .enumerate()
        .map(|(i, data)| Media {
            id: id.clone(),
            mime: still.format.mime().into(),
            size: still.bytes.len() as u64,
            sha256: sha256.clone(),
            part: i as u32 + 1,
            parts,
            data: data.to_vec(),
            meta: Some(meta.clone()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Still;

    const SMEAR: &[u8] = include_bytes!("../sim/recordings/bccd_BloodImage_00000.jpg");

    #[test]
    fn parts_joined_in_order_are_the_file_and_carry_its_sha256() {
        let still = Still::check(SMEAR.to_vec(), 1_700_000_000_000_000, 1 << 30).unwrap();
        let parts = split(&still, "scope", &PartPlan { part_bytes: 5000 }, BTreeMap::new());
        assert_eq!(parts.len(), SMEAR.len().div_ceil(5000));
        let joined: Vec<u8> = parts.iter().flat_map(|p| p.data.clone()).collect();
        assert_eq!(joined, SMEAR);
        for (i, p) in parts.iter().enumerate() {
            assert_eq!((p.part, p.parts, p.size), (i as u32 + 1, parts.len() as u32, SMEAR.len() as u64));
            assert_eq!(p.sha256, sha256_hex(SMEAR));
            assert_eq!(p.id, parts[0].id);
            let meta = p.meta.as_ref().unwrap();
            assert_eq!((meta["width"].as_u64(), meta["height"].as_u64()), (Some(640), Some(480)));
        }
    }

    #[test]
    fn the_same_image_taken_again_has_another_id_and_sent_again_the_same() {
        let h = sha256_hex(SMEAR);
        assert_eq!(media_id("scope", &h, 5), media_id("scope", &h, 5));
        assert_ne!(media_id("scope", &h, 5), media_id("scope", &h, 6));
        assert_ne!(media_id("scope", &h, 5), media_id("camera", &h, 5));
    }
}
