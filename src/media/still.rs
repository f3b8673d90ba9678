//! One image as a camera or a folder handed it over, checked before anything of it is signed.

use std::collections::BTreeMap;

/// The image formats the gateway sends (as the file is: never re-encoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Jpeg,
    Png,
    Tiff,
}

impl ImageFormat {
    /// The format by the file's first bytes (never by its name).
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        match bytes {
            [0xFF, 0xD8, 0xFF, ..] => Some(Self::Jpeg),
            [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some(Self::Png),
            [b'I', b'I', 42, 0, ..] | [b'M', b'M', 0, 42, ..] => Some(Self::Tiff),
            _ => None,
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Tiff => "image/tiff",
        }
    }

    /// The file name extension a hub writes it with.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::Tiff => "tiff",
        }
    }

    /// The format of a MIME type (at the hub).
    pub fn from_mime(mime: &str) -> Option<Self> {
        [Self::Jpeg, Self::Png, Self::Tiff].into_iter().find(|f| f.mime() == mime)
    }
}

/// Why an image is not sent. Each is reported as an event (`media-refused`); nothing of the
/// image is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StillError {
    #[error("the file is empty")]
    Empty,
    #[error("{size} bytes is more than the {max}-byte limit (media.max_file_mb)")]
    TooLarge { size: u64, max: u64 },
    #[error("not a JPEG, PNG or TIFF image")]
    UnknownFormat,
    #[error("the {0} image is truncated: {1}")]
    Truncated(&'static str, &'static str),
    #[error("unreadable image: {0}")]
    Unreadable(String),
    #[error("{0}")]
    MetadataKept(String),
}

impl StillError {
    /// A stable name for logs and event data.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLarge { .. } => "too-large",
            Self::UnknownFormat => "unknown-format",
            Self::Truncated(..) => "truncated",
            Self::Unreadable(_) => "unreadable",
            Self::MetadataKept(_) => "metadata",
        }
    }
}

/// A checked image and what is known of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Still {
    /// The file's bytes (after [`super::scrub`], what is signed).
    pub bytes: Vec<u8>,
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    /// When it was taken (gateway time, or the file's modification time), µs since the epoch.
    pub captured: i64,
    /// The camera's own settings, when known (format, resolution, frames dropped to settle).
    pub settings: BTreeMap<String, serde_json::Value>,
}

impl Still {
    /// Checks `bytes` as one whole image: a known format, complete, with readable dimensions.
    pub fn check(bytes: Vec<u8>, captured: i64, max_bytes: u64) -> Result<Still, StillError> {
        if bytes.is_empty() {
            return Err(StillError::Empty);
        }
        if bytes.len() as u64 > max_bytes {
            return Err(StillError::TooLarge { size: bytes.len() as u64, max: max_bytes });
        }
        let format = ImageFormat::sniff(&bytes).ok_or(StillError::UnknownFormat)?;
        complete(format, &bytes)?;
        let size = imagesize::blob_size(&bytes).map_err(|e| StillError::Unreadable(e.to_string()))?;
        let (width, height) = (u32::try_from(size.width), u32::try_from(size.height));
        let (Ok(width), Ok(height)) = (width, height) else {
            return Err(StillError::Unreadable("dimensions out of range".into()));
        };
        if width == 0 || height == 0 {
            return Err(StillError::Unreadable("an image of no pixels".into()));
        }
        Ok(Still { bytes, format, width, height, captured, settings: BTreeMap::new() })
    }
}

/// Whether the file ends as its format says a whole file ends (a file cut short by a pulled cable
/// or a half-finished copy does not).
fn complete(format: ImageFormat, bytes: &[u8]) -> Result<(), StillError> {
    match format {
        ImageFormat::Jpeg => {
            // The end-of-image marker, possibly followed by padding some cameras add.
            let end = bytes.iter().rposition(|b| *b != 0).unwrap_or(0);
            if end < 3 || bytes[end - 1] != 0xFF || bytes[end] != 0xD9 {
                return Err(StillError::Truncated("JPEG", "no end-of-image marker"));
            }
            if !bytes.windows(2).any(|w| w == [0xFF, 0xDA]) {
                return Err(StillError::Truncated("JPEG", "no image data (start of scan)"));
            }
        }
        ImageFormat::Png => {
            const IEND: [u8; 12] = [0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82];
            if !bytes.ends_with(&IEND) {
                return Err(StillError::Truncated("PNG", "no IEND chunk at its end"));
            }
        }
        // TIFF has no end marker; its directory is checked by reading the dimensions.
        ImageFormat::Tiff => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMEAR: &[u8] = include_bytes!("../sim/recordings/bccd_BloodImage_00000.jpg");

    #[test]
    fn the_blood_smear_is_a_640_by_480_jpeg() {
        let s = Still::check(SMEAR.to_vec(), 1, 1 << 30).unwrap();
        // The dimensions SOURCES.md gives for this file.
        assert_eq!((s.format, s.width, s.height), (ImageFormat::Jpeg, 640, 480));
    }

    #[test]
    fn a_jpeg_cut_anywhere_is_refused_as_truncated() {
        for cut in [10, SMEAR.len() / 2, SMEAR.len() - 1] {
            let e = Still::check(SMEAR[..cut].to_vec(), 1, 1 << 30).unwrap_err();
            assert_eq!(e.reason(), "truncated", "cut at {cut}: {e}");
        }
    }

    #[test]
    fn padding_after_the_end_marker_is_accepted() {
        let mut padded = SMEAR.to_vec();
        padded.extend([0u8; 64]);
        assert!(Still::check(padded, 1, 1 << 30).is_ok());
    }

    #[test]
    fn empty_oversized_and_unknown_files_are_refused_with_their_reason() {
        assert_eq!(Still::check(Vec::new(), 1, 10).unwrap_err(), StillError::Empty);
        assert_eq!(Still::check(SMEAR.to_vec(), 1, 100).unwrap_err().reason(), "too-large");
        assert_eq!(Still::check(b"GIF89a....".to_vec(), 1, 100).unwrap_err(), StillError::UnknownFormat);
    }
}
