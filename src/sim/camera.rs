//! A simulated camera, through the same [`Camera`] trait as the V4L2 code: it serves real recorded
//! JPEG frames as an MJPEG camera streams them, and counts the frames it served so the warm-up
//! is visible. `sim:blood-smear` serves the BCCD blood-smear image built into the binary;
//! `sim:/path/to/file.jpg` serves that file (read at every still).

use crate::profile::ImageSpec;
use crate::transport::camera::{Camera, Snapshot};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What a simulated camera serves.
#[derive(Debug, Clone)]
enum Frames {
    BloodSmear,
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct SimCamera {
    frames: Frames,
}

/// The simulated camera `name` (`blood-smear` or an absolute path to a JPEG file).
pub fn open(name: &str) -> std::io::Result<SimCamera> {
    let frames = match name {
        "blood-smear" => Frames::BloodSmear,
        p if p.starts_with('/') => Frames::File(PathBuf::from(p)),
        other => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no simulated camera `{other}` (known: blood-smear, or an absolute file path)"),
            ))
        }
    };
    Ok(SimCamera { frames })
}

impl SimCamera {
    fn frame(&self) -> std::io::Result<Vec<u8>> {
        match &self.frames {
            Frames::BloodSmear => Ok(super::recordings::BLOOD_SMEAR_JPEG.to_vec()),
            Frames::File(p) => std::fs::read(p),
        }
    }
}

impl Camera for SimCamera {
    fn still(&mut self, spec: &ImageSpec) -> std::io::Result<Snapshot> {
        // Stream: every frame is read as a camera would deliver it; the warm-up ones are dropped.
        let mut served = 0u32;
        for _ in 0..spec.warmup_frames {
            let _ = self.frame()?;
            served += 1;
        }
        let bytes = self.frame()?;
        served += 1;
        let size = imagesize::blob_size(&bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut settings = BTreeMap::new();
        settings.insert("card".into(), "spokegate simulated camera".into());
        settings.insert("format".into(), "MJPG".into());
        settings.insert("width".into(), (size.width as u64).into());
        settings.insert("height".into(), (size.height as u64).into());
        settings.insert("warmup_frames".into(), spec.warmup_frames.into());
        settings.insert("frames_served".into(), served.into());
        Ok(Snapshot { bytes, settings })
    }
}
