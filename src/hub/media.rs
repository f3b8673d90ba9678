//! Images at the hub (`spokegate watch --record DIR`): `media` parts kept on disk as they arrive,
//! joined when the last one is in, checked against the whole file's SHA-256, and written with a
//! sidecar JSON that says where the image comes from.
//!
//! On disk, under `DIR/media/`:
//!
//! ```text
//! .partial/<site>/<gw>/<id>/<part>.bin    a part's bytes, as signed
//! .partial/<site>/<gw>/<id>/<part>.json   the part's provenance (seq, kid, consult, t) and its media header
//! <site>/<gw>/<dev>/<id>.<jpg|png|tiff>   a whole image, its SHA-256 checked
//! <site>/<gw>/<dev>/<id>.json             its sidecar: site, gw, dev, consult, kid, seq range, capture time, meta
//! ```
//!
//! Parts are files, not memory: a hub restarted half-way through an image completes it from the
//! parts that arrive later (and a gateway's resend after a restart); a part that arrives twice is
//! kept once.

use crate::media::ImageFormat;
use crate::model::{Body, Media};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The largest image the hub takes (parts claiming more are refused).
pub const MAX_IMAGE_BYTES: u64 = 4 << 30;

/// One stored part's provenance and header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PartRecord {
    part: u32,
    parts: u32,
    mime: String,
    size: u64,
    sha256: String,
    dev: String,
    seq: u64,
    kid: String,
    consult: Option<String>,
    t: i64,
    meta: Option<serde_json::Value>,
}

/// What one part did.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaProgress {
    /// Stored; `have` of `parts` are in.
    Part { id: String, have: u32, parts: u32 },
    /// The part was stored before (or its image is complete): nothing changed.
    Duplicate { id: String },
    /// The last part: the image is written at `path`.
    Complete { id: String, path: PathBuf, bytes: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("media part is not usable: {0}")]
    Invalid(String),
    #[error("image {id}: the joined parts do not match its size or SHA-256 (parts kept for inspection)")]
    Sha256 { id: String },
    #[error("media store: {0}")]
    Io(#[from] std::io::Error),
}

/// The hub's image store.
#[derive(Debug)]
pub struct MediaStore {
    root: PathBuf,
}

fn safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s != "."
        && s != ".."
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))
}

fn invalid(why: impl Into<String>) -> MediaError {
    MediaError::Invalid(why.into())
}

/// What a part says about its image, checked before anything is kept or allocated for it: an
/// image format the gateway sends, a part number within the parts, a size within
/// [`MAX_IMAGE_BYTES`] that this part and the number of parts fit in, a SHA-256 in hex. A signed
/// part can still claim anything: the hub service quarantines one that fails this, as `watch` refuses it.
pub fn check_part(m: &Media) -> Result<ImageFormat, MediaError> {
    let format = ImageFormat::from_mime(&m.mime).ok_or_else(|| invalid(format!("mime `{}`", m.mime)))?;
    if m.parts == 0 || m.part == 0 || m.part > m.parts {
        return Err(invalid(format!("part {} of {}", m.part, m.parts)));
    }
    if m.size > MAX_IMAGE_BYTES || m.data.len() as u64 > m.size || u64::from(m.parts) > m.size.max(1) {
        return Err(invalid(format!("{} parts, {} bytes, this part {} bytes", m.parts, m.size, m.data.len())));
    }
    if m.sha256.len() != 64 || !m.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid("sha256 is not 64 hex digits"));
    }
    Ok(format)
}

impl MediaStore {
    pub fn new(record_dir: &Path) -> std::io::Result<Self> {
        let root = record_dir.join("media");
        std::fs::create_dir_all(root.join(".partial"))?;
        Ok(Self { root })
    }

    fn partial_dir(&self, site: &str, gw: &str, id: &str) -> PathBuf {
        self.root.join(".partial").join(site).join(gw).join(id)
    }

    fn image_path(&self, site: &str, gw: &str, dev: &str, id: &str, format: ImageFormat) -> PathBuf {
        self.root.join(site).join(gw).join(dev).join(format!("{id}.{}", format.extension()))
    }

    /// Takes one verified `media` body (signed with `kid`).
    pub fn accept(&mut self, body: &Body, kid: &str) -> Result<MediaProgress, MediaError> {
        let m: &Media = body.media.as_ref().ok_or_else(|| invalid("no media key"))?;
        let dev = body.dev.as_deref().ok_or_else(|| invalid("no dev"))?;
        for (what, v) in [("site", body.site.as_str()), ("gw", body.gw.as_str()), ("dev", dev), ("id", &m.id)] {
            if !safe_name(v) {
                return Err(invalid(format!("{what} `{}` cannot name a file", super::view::clean(v))));
            }
        }
        let format = check_part(m)?;
        if self.image_path(&body.site, &body.gw, dev, &m.id, format).exists() {
            return Ok(MediaProgress::Duplicate { id: m.id.clone() });
        }
        let dir = self.partial_dir(&body.site, &body.gw, &m.id);
        std::fs::create_dir_all(&dir)?;
        let record = PartRecord {
            part: m.part,
            parts: m.parts,
            mime: m.mime.clone(),
            size: m.size,
            sha256: m.sha256.clone(),
            dev: dev.to_string(),
            seq: body.seq,
            kid: kid.to_string(),
            consult: body.consult_id().map(str::to_string),
            t: body.t,
            meta: m.meta.as_ref().map(|meta| serde_json::to_value(meta).unwrap_or_default()),
        };
        let stored = read_records(&dir)?;
        if let Some(first) = stored.first() {
            if (first.parts, &first.mime, first.size, &first.sha256, &first.dev)
                != (record.parts, &record.mime, record.size, &record.sha256, &record.dev)
            {
                return Err(invalid(format!("part {} does not agree with the parts before it", m.part)));
            }
        }
        if stored.iter().any(|r| r.part == m.part) {
            return Ok(MediaProgress::Duplicate { id: m.id.clone() });
        }
        write_atomically(&dir.join(format!("{}.bin", m.part)), &m.data)?;
        write_atomically(&dir.join(format!("{}.json", m.part)), &serde_json::to_vec(&record).unwrap_or_default())?;
        let have = stored.len() as u32 + 1;
        if have < m.parts {
            return Ok(MediaProgress::Part { id: m.id.clone(), have, parts: m.parts });
        }
        let mut records = stored;
        records.push(record);
        self.complete(&body.site, &body.gw, &m.id, format, &dir, records)
    }

    fn complete(
        &mut self,
        site: &str,
        gw: &str,
        id: &str,
        format: ImageFormat,
        dir: &Path,
        mut records: Vec<PartRecord>,
    ) -> Result<MediaProgress, MediaError> {
        records.sort_by_key(|r| r.part);
        let Some(first) = records.first().cloned() else { return Err(invalid("no parts")) };
        // The parts' sizes must add up to the claimed size before anything that size is read.
        let mut stored = 0u64;
        for r in &records {
            stored += std::fs::metadata(dir.join(format!("{}.bin", r.part)))?.len();
        }
        if stored != first.size {
            return Err(MediaError::Sha256 { id: id.to_string() });
        }
        let mut bytes = Vec::with_capacity(stored as usize);
        for r in &records {
            bytes.extend(std::fs::read(dir.join(format!("{}.bin", r.part)))?);
        }
        if crate::media::parts::sha256_hex(&bytes) != first.sha256 {
            return Err(MediaError::Sha256 { id: id.to_string() });
        }
        let path = self.image_path(site, gw, &first.dev, id, format);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let seqs = records.iter().map(|r| r.seq);
        let (lo, hi) = (seqs.clone().min().unwrap_or(0), seqs.max().unwrap_or(0));
        let mut kids: Vec<&str> = records.iter().map(|r| r.kid.as_str()).collect();
        kids.sort_unstable();
        kids.dedup();
        let meta = first.meta.clone().unwrap_or(serde_json::Value::Null);
        let sidecar = serde_json::json!({
            "site": site,
            "gw": gw,
            "dev": first.dev,
            "id": id,
            "consult": first.consult,
            "kid": if kids.len() == 1 { serde_json::json!(kids[0]) } else { serde_json::json!(kids) },
            "seq": [lo, hi],
            "captured": meta.get("captured").cloned().unwrap_or(serde_json::json!(first.t)),
            "mime": first.mime,
            "size": first.size,
            "sha256": first.sha256,
            "parts": first.parts,
            "file": path.file_name().and_then(|n| n.to_str()),
            "verified": "every part's COSE_Sign1 signature with the gateway's bound key; the whole file's SHA-256",
            "meta": meta,
        });
        write_atomically(&path, &bytes)?;
        write_atomically(&path.with_extension("json"), &serde_json::to_vec_pretty(&sidecar).unwrap_or_default())?;
        std::fs::remove_dir_all(dir)?;
        Ok(MediaProgress::Complete { id: id.to_string(), path, bytes: first.size })
    }

    /// Images not complete yet: (site/gw/id, missing part numbers).
    pub fn incomplete(&self) -> Vec<(String, Vec<u32>)> {
        let mut out = Vec::new();
        let partial = self.root.join(".partial");
        for site in read_dirs(&partial) {
            for gw in read_dirs(&site) {
                for id in read_dirs(&gw) {
                    let Ok(records) = read_records(&id) else { continue };
                    let Some(parts) = records.first().map(|r| r.parts) else { continue };
                    let have: std::collections::HashSet<u32> = records.iter().map(|r| r.part).collect();
                    let missing = (1..=parts).filter(|p| !have.contains(p)).collect();
                    let name = id.strip_prefix(&partial).unwrap_or(&id).display().to_string();
                    out.push((name, missing));
                }
            }
        }
        out
    }
}

fn read_dirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    dirs
}

fn read_records(dir: &Path) -> std::io::Result<Vec<PartRecord>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)?.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "json") {
            if let Ok(r) = serde_json::from_slice::<PartRecord>(&std::fs::read(&p)?) {
                if dir.join(format!("{}.bin", r.part)).exists() {
                    out.push(r);
                }
            }
        }
    }
    out.sort_by_key(|r| r.part);
    Ok(out)
}

/// Writes `bytes` to `path` through a temporary file and a rename: a crash leaves the old file or
/// the new one, never half of it.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{split, PartPlan, Still};
    use crate::pipeline::{make_body, Payload, Source};

    const SMEAR: &[u8] = include_bytes!("../sim/recordings/bccd_BloodImage_00000.jpg");

    fn bodies(part_bytes: usize) -> Vec<Body> {
        let still = Still::check(SMEAR.to_vec(), 1_000, 1 << 30).unwrap();
        let from = Source { dev: "scope".into(), profile: "usb-microscope".into() };
        split(&still, "scope", &PartPlan { part_bytes }, Default::default())
            .into_iter()
            .enumerate()
            .map(|(i, m)| make_body("s1", "g1", Some(&from), Payload::Media(m), 100 + i as u64, 1_000, None))
            .collect()
    }

    #[test]
    fn parts_in_any_order_and_twice_make_the_image_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MediaStore::new(dir.path()).unwrap();
        let mut parts = bodies(4000);
        parts.reverse();
        let n = parts.len();
        let mut done = None;
        for (i, b) in parts.iter().enumerate() {
            match store.accept(b, "0011223344556677").unwrap() {
                MediaProgress::Part { have, .. } => assert_eq!(have as usize, i + 1),
                MediaProgress::Complete { path, .. } => done = Some(path),
                other => panic!("{other:?}"),
            }
            if i == 2 {
                assert_eq!(
                    store.accept(b, "0011223344556677").unwrap(),
                    MediaProgress::Duplicate { id: b.media.as_ref().unwrap().id.clone() }
                );
            }
        }
        let path = done.expect("complete after the last part");
        assert_eq!(std::fs::read(&path).unwrap(), SMEAR);
        let sidecar: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path.with_extension("json")).unwrap()).unwrap();
        assert_eq!(sidecar["seq"], serde_json::json!([100, 100 + n as u64 - 1]));
        assert_eq!(sidecar["dev"], "scope");
        assert_eq!(sidecar["meta"]["width"], 640);
        assert!(store.incomplete().is_empty());
        // A part sent again after completion changes nothing.
        assert!(matches!(store.accept(&parts[0], "0011223344556677").unwrap(), MediaProgress::Duplicate { .. }));
    }

    #[test]
    fn a_restarted_store_completes_from_the_parts_on_disk_and_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let parts = bodies(4000);
        {
            let mut store = MediaStore::new(dir.path()).unwrap();
            for b in &parts[..3] {
                store.accept(b, "k").unwrap();
            }
        }
        let mut store = MediaStore::new(dir.path()).unwrap();
        let missing = store.incomplete();
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].1, (4..=parts.len() as u32).collect::<Vec<_>>());
        let last = parts[3..].iter().map(|b| store.accept(b, "k").unwrap()).last().unwrap();
        assert!(matches!(last, MediaProgress::Complete { bytes, .. } if bytes == SMEAR.len() as u64));
    }

    #[test]
    fn a_part_that_changes_the_image_or_a_wrong_hash_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MediaStore::new(dir.path()).unwrap();
        let mut parts = bodies(8000);
        store.accept(&parts[0], "k").unwrap();
        parts[1].media.as_mut().unwrap().size += 1;
        assert!(matches!(store.accept(&parts[1], "k"), Err(MediaError::Invalid(_))));
        let mut bad = bodies(8000);
        for b in &mut bad {
            b.media.as_mut().unwrap().id = "other".into();
        }
        bad[0].media.as_mut().unwrap().data[10] ^= 1;
        let results: Vec<_> = bad.iter().map(|b| store.accept(b, "k")).collect();
        assert!(matches!(results.last().unwrap(), Err(MediaError::Sha256 { .. })));
        let mut evil = bodies(8000).remove(0);
        evil.media.as_mut().unwrap().id = "../../etc".into();
        assert!(matches!(store.accept(&evil, "k"), Err(MediaError::Invalid(_))));
    }
}
