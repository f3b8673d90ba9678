//! The configuration of image devices (`folder = {..}`, `camera = {..}`) and of `[media]`.

use super::raw::{RawDevice, RawMedia};
use super::{DeviceTransport, MediaConfig};
use crate::media::parts::MAX_PART_BYTES;
use std::ops::Range;

/// The transport of a device whose profile is an image device, or that names a folder or camera.
pub(super) fn transport(
    d: &RawDevice,
    is_image: bool,
    item: &dyn Fn(&str) -> String,
    at: &mut dyn FnMut(Range<usize>, &str, String),
) -> Option<DeviceTransport> {
    if !is_image {
        let span = d.folder.as_ref().map(|f| f.span()).or(d.camera.as_ref().map(|c| c.span())).unwrap_or(d.id.span());
        at(
            span,
            &item(if d.folder.is_some() { "folder" } else { "camera" }),
            format!("profile `{}` is not an image device (decoder.kind = \"image\")", d.profile.get_ref()),
        );
        return None;
    }
    if let Some(s) = &d.serial {
        at(s.span(), &item("serial"), "an image device is reached by `folder` or `camera`, not serial".into());
        return None;
    }
    if let Some(b) = &d.ble {
        at(b.span(), &item("ble"), "an image device is reached by `folder` or `camera`, not ble".into());
        return None;
    }
    match (&d.folder, &d.camera) {
        (Some(f), None) => {
            let folder = f.get_ref();
            if folder.path.as_os_str().is_empty() {
                at(f.span(), &item("folder.path"), "must name the folder the images are saved in".into());
            }
            if folder.pattern.as_deref().is_some_and(|p| p.is_empty() || p.contains('/')) {
                at(f.span(), &item("folder.pattern"), "a file name pattern like \"*.jpg\" (no `/`)".into());
            }
            Some(DeviceTransport::Folder { path: folder.path.clone(), pattern: folder.pattern.clone() })
        }
        (None, Some(c)) => {
            if c.get_ref().path.as_os_str().is_empty() {
                at(c.span(), &item("camera.path"), "must name the camera, e.g. /dev/v4l/by-id/usb-...".into());
            }
            Some(DeviceTransport::Camera { path: c.get_ref().path.clone() })
        }
        (Some(f), Some(_)) => {
            at(f.span(), &item("folder"), "a device has one transport: folder or camera, not both".into());
            None
        }
        (None, None) => {
            at(
                d.id.span(),
                &item("camera"),
                "an image device needs a transport: camera = { path = \"/dev/v4l/by-id/...\" } or folder = { path = \"...\" }"
                    .into(),
            );
            None
        }
    }
}

/// `[media]`: part size and the largest image sent.
pub(super) fn media_config(raw: &RawMedia, at: &mut dyn FnMut(Range<usize>, &str, String)) -> MediaConfig {
    let mut media = MediaConfig::default();
    if let Some(kb) = &raw.part_kb {
        let max_kb = (MAX_PART_BYTES / 1024) as u64;
        if !(1..=max_kb).contains(kb.get_ref()) {
            at(
                kb.span(),
                "media.part_kb",
                format!("must be between 1 and {max_kb} KiB (a part must fit an MQTT packet)"),
            );
        }
        media.part_bytes = (*kb.get_ref()).clamp(1, max_kb) as usize * 1024;
    }
    if let Some(mb) = &raw.max_file_mb {
        if !(1..=4096).contains(mb.get_ref()) {
            at(mb.span(), "media.max_file_mb", "must be between 1 and 4096 MiB".into());
        }
        media.max_file_bytes = mb.get_ref().saturating_mul(1 << 20);
    }
    media
}
