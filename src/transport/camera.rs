//! Cameras: one still at a time from a V4L2 (UVC) camera, or from a simulated one that serves
//! recorded frames through the same [`Camera`] trait (`sim:NAME`; no camera exists on CI machines
//! or in the demo).
//!
//! A still: open the camera, pick the resolution (the profile's, or the largest MJPEG one it
//! offers), start streaming, drop the first frames while exposure and white balance settle, keep
//! the next, stop. Every step is blocking (V4L2 ioctls); the device task runs it on its own thread
//! with a hard timeout, and opens the camera afresh for every still (a camera unplugged between
//! two stills is found again, or reported).

use crate::profile::ImageSpec;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One still as the camera gave it (a JPEG frame for MJPEG cameras).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub bytes: Vec<u8>,
    /// The camera's settings for this still (format, resolution, frames dropped, card name).
    pub settings: BTreeMap<String, serde_json::Value>,
}

/// A camera: takes one still when asked.
pub trait Camera: Send {
    /// Takes one still as `spec` says (blocking).
    fn still(&mut self, spec: &ImageSpec) -> std::io::Result<Snapshot>;
}

/// What `spokegate camera list` shows of one camera.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraInfo {
    pub path: PathBuf,
    pub card: String,
    pub driver: String,
    /// Pixel format (fourcc) -> resolutions offered.
    pub formats: Vec<(String, Vec<(u32, u32)>)>,
}

/// Opens the camera at `path`: `sim:NAME` is a simulated one (see [`crate::sim::camera`]).
pub fn open(path: &Path) -> std::io::Result<Box<dyn Camera>> {
    if let Some(name) = path.to_str().and_then(|p| p.strip_prefix("sim:")) {
        return crate::sim::camera::open(name).map(|c| Box::new(c) as Box<dyn Camera>);
    }
    Ok(Box::new(V4l2Camera { path: path.to_path_buf() }))
}

/// The V4L2 video-capture devices of this machine, with their formats and resolutions.
pub fn list() -> std::io::Result<Vec<CameraInfo>> {
    let mut cameras = Vec::new();
    let devices = match linuxvideo::list() {
        Ok(d) => d,
        // No /dev at all (a container): no cameras.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(cameras),
        Err(e) => return Err(e),
    };
    for device in devices.flatten() {
        let Ok(caps) = device.capabilities() else { continue };
        if !device.supported_buf_types().contains(linuxvideo::BufTypes::VIDEO_CAPTURE) {
            continue;
        }
        let path = device.path().unwrap_or_default();
        let mut formats = Vec::new();
        for f in device.formats(linuxvideo::BufType::VIDEO_CAPTURE).flatten() {
            let sizes = frame_sizes(&device, f.pixel_format());
            formats.push((f.pixel_format().to_string(), sizes));
        }
        cameras.push(CameraInfo { path, card: caps.card().into(), driver: caps.driver().into(), formats });
    }
    cameras.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(cameras)
}

fn frame_sizes(device: &linuxvideo::Device, format: linuxvideo::format::PixelFormat) -> Vec<(u32, u32)> {
    use linuxvideo::format::FrameSizes;
    match device.frame_sizes(format) {
        Ok(FrameSizes::Discrete(d)) => d.iter().map(|s| (s.width(), s.height())).collect(),
        Ok(FrameSizes::Stepwise(s) | FrameSizes::Continuous(s)) => {
            vec![(s.min_width(), s.min_height()), (s.max_width(), s.max_height())]
        }
        Err(_) => Vec::new(),
    }
}

/// The largest resolution (by pixels) of a list.
pub fn largest(sizes: &[(u32, u32)]) -> Option<(u32, u32)> {
    sizes.iter().copied().max_by_key(|(w, h)| u64::from(*w) * u64::from(*h))
}

/// A V4L2 camera, opened for each still.
struct V4l2Camera {
    path: PathBuf,
}

impl Camera for V4l2Camera {
    fn still(&mut self, spec: &ImageSpec) -> std::io::Result<Snapshot> {
        use linuxvideo::format::{PixFormat, PixelFormat};
        let device = linuxvideo::Device::open(&self.path)?;
        let caps = device.capabilities()?;
        let offered: Vec<PixelFormat> = device
            .formats(linuxvideo::BufType::VIDEO_CAPTURE)
            .filter_map(|f| f.ok().map(|f| f.pixel_format()))
            .collect();
        let format = [PixelFormat::MJPG, PixelFormat::JPEG]
            .into_iter()
            .find(|f| offered.contains(f))
            .ok_or_else(|| std::io::Error::other(format!("{} offers no MJPEG or JPEG format", self.path.display())))?;
        let (w, h) = match spec.size {
            Some(size) => size,
            None => largest(&frame_sizes(&device, format))
                .ok_or_else(|| std::io::Error::other("the camera lists no resolution"))?,
        };
        let card = caps.card().to_string();
        let capture = device.video_capture(PixFormat::new(w, h, format))?;
        let (got_w, got_h) = (capture.format().width(), capture.format().height());
        let mut stream = capture.into_stream()?;
        for _ in 0..spec.warmup_frames {
            stream.dequeue(|_| Ok(()))?;
        }
        let bytes = stream.dequeue(|buf| {
            if buf.is_error() {
                return Err(std::io::Error::other("the camera marked the frame as corrupted"));
            }
            Ok(buf.to_vec())
        })?;
        drop(stream);
        let mut settings = BTreeMap::new();
        settings.insert("card".into(), card.into());
        settings.insert("format".into(), format.to_string().into());
        settings.insert("width".into(), got_w.into());
        settings.insert("height".into(), got_h.into());
        settings.insert("warmup_frames".into(), spec.warmup_frames.into());
        Ok(Snapshot { bytes, settings })
    }
}

/// Takes one still on a thread of its own, given up after `spec.timeout` (a camera that stops
/// answering holds that thread, never the device task).
pub async fn still_with_timeout(path: &Path, spec: &ImageSpec) -> std::io::Result<Snapshot> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (path, owned) = (path.to_path_buf(), spec.clone());
    std::thread::Builder::new().name("camera".into()).spawn(move || {
        let _ = tx.send(open(&path).and_then(|mut c| c.still(&owned)));
    })?;
    match tokio::time::timeout(spec.timeout, rx).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(std::io::Error::other("the camera thread ended without a still")),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no still within {} ms", spec.timeout.as_millis()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_resolution_is_picked_by_pixels() {
        assert_eq!(largest(&[(640, 480), (1920, 1080), (1280, 960)]), Some((1920, 1080)));
        assert_eq!(largest(&[]), None);
    }
}
