//! Removing what identifies people or places from an image before it is signed, pixels untouched.
//!
//! The compressed image data is copied as it is; only metadata segments are dropped.
//!
//! - **JPEG** keeps: the frame, tables and scans (SOF, DHT, DQT, DRI, SOS and the entropy-coded
//!   data), JFIF/JFXX (`APP0`: pixel density), the ICC colour profile (`APP2 ICC_PROFILE`) and
//!   the Adobe colour-transform marker (`APP14 Adobe`), which decoders need to show the right
//!   colours. It drops everything else: Exif (`APP1`: GPS position, owner, artist, camera and
//!   lens serial numbers, maker notes, date and orientation, embedded thumbnail), XMP (`APP1`),
//!   IPTC/Photoshop (`APP13`), FlashPix and MPF (`APP2`), every other `APPn`, and comments (`COM`).
//! - **PNG** keeps: IHDR, PLTE, IDAT, IEND and the chunks that change how pixels look (tRNS,
//!   gAMA, cHRM, sRGB, iCCP, sBIT, bKGD, pHYs). It drops the rest: text (tEXt, zTXt, iTXt, where
//!   XMP and comments live), eXIf, tIME and private chunks.
//! - **TIFF** keeps its metadata in the same directories as its pixel layout; it is refused
//!   unless the device says `keep_metadata = true` (then sent as the file is).

use super::{ImageFormat, StillError};
use img_parts::jpeg::Jpeg;
use img_parts::png::Png;
use img_parts::Bytes;

/// JPEG markers kept besides the non-`APPn`/`COM` ones.
const APP0: u8 = 0xE0;
const APP2: u8 = 0xE2;
const APP14: u8 = 0xEE;
const COM: u8 = 0xFE;

/// PNG chunks kept.
const PNG_KEPT: [&[u8; 4]; 12] =
    [b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"bKGD", b"pHYs"];

/// What [`scrub`] removed (segment or chunk names), for the log and the media's `meta`.
pub type Removed = Vec<String>;

/// The image without identifying metadata, and what was removed.
pub fn scrub(format: ImageFormat, bytes: Vec<u8>) -> Result<(Vec<u8>, Removed), StillError> {
    match format {
        ImageFormat::Jpeg => jpeg(bytes),
        ImageFormat::Png => png(bytes),
        ImageFormat::Tiff => Err(StillError::MetadataKept(
            "TIFF metadata cannot be removed without rewriting the file: set keep_metadata = true on the device to \
             send TIFF files as they are"
                .into(),
        )),
    }
}

fn kept_jpeg_segment(marker: u8, contents: &[u8]) -> bool {
    match marker {
        APP0 => contents.starts_with(b"JFIF\0") || contents.starts_with(b"JFXX\0"),
        APP2 => contents.starts_with(b"ICC_PROFILE\0"),
        APP14 => contents.starts_with(b"Adobe"),
        0xE1..=0xEF | COM => false,
        _ => true,
    }
}

fn jpeg(bytes: Vec<u8>) -> Result<(Vec<u8>, Removed), StillError> {
    let mut jpeg = Jpeg::from_bytes(Bytes::from(bytes)).map_err(|e| StillError::Unreadable(e.to_string()))?;
    let mut removed = Vec::new();
    jpeg.segments_mut().retain(|s| {
        let keep = kept_jpeg_segment(s.marker(), s.contents());
        if !keep {
            removed.push(jpeg_segment_name(s.marker(), s.contents()));
        }
        keep
    });
    Ok((jpeg.encoder().bytes().to_vec(), removed))
}

fn jpeg_segment_name(marker: u8, contents: &[u8]) -> String {
    let kind = match marker {
        COM => return "COM".into(),
        0xE1 if contents.starts_with(b"Exif\0") => " Exif",
        0xE1 if contents.starts_with(b"http://ns.adobe.com/xap/") => " XMP",
        0xED => " IPTC",
        _ => "",
    };
    format!("APP{}{kind}", marker.wrapping_sub(0xE0))
}

fn png(bytes: Vec<u8>) -> Result<(Vec<u8>, Removed), StillError> {
    let mut png = Png::from_bytes(Bytes::from(bytes)).map_err(|e| StillError::Unreadable(e.to_string()))?;
    let mut removed = Vec::new();
    png.chunks_mut().retain(|c| {
        let keep = PNG_KEPT.contains(&&c.kind());
        if !keep {
            removed.push(String::from_utf8_lossy(&c.kind()).into_owned());
        }
        keep
    });
    Ok((png.encoder().bytes().to_vec(), removed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMEAR: &[u8] = include_bytes!("../sim/recordings/bccd_BloodImage_00000.jpg");

    /// The JPEG with `segment` (marker and contents) inserted after its APP0.
    fn with_segment(marker: u8, contents: &[u8]) -> Vec<u8> {
        let app0_len = u16::from_be_bytes([SMEAR[4], SMEAR[5]]) as usize;
        let at = 4 + app0_len;
        let mut out = SMEAR[..at].to_vec();
        out.extend([0xFF, marker]);
        out.extend(((contents.len() + 2) as u16).to_be_bytes());
        out.extend(contents);
        out.extend(&SMEAR[at..]);
        out
    }

    #[test]
    fn the_smear_has_nothing_to_remove_and_comes_out_byte_identical() {
        let (out, removed) = scrub(ImageFormat::Jpeg, SMEAR.to_vec()).unwrap();
        assert_eq!(removed, Vec::<String>::new());
        assert_eq!(out, SMEAR);
    }

    #[test]
    fn comments_and_xmp_go_and_an_icc_profile_stays() {
        let xmp = b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta>Dr A. Example</x:xmpmeta>";
        let (out, removed) = scrub(ImageFormat::Jpeg, with_segment(0xE1, xmp)).unwrap();
        assert_eq!(removed, ["APP1 XMP"]);
        assert_eq!(out, SMEAR);
        let (out, removed) = scrub(ImageFormat::Jpeg, with_segment(COM, b"patient Jane Doe")).unwrap();
        assert_eq!(removed, ["COM"]);
        assert_eq!(out, SMEAR);
        let icc = with_segment(APP2, b"ICC_PROFILE\0\x01\x01not a real profile");
        let (out, removed) = scrub(ImageFormat::Jpeg, icc.clone()).unwrap();
        assert!(removed.is_empty());
        assert_eq!(out, icc);
    }

    #[test]
    fn tiff_is_refused_unless_metadata_may_be_kept() {
        assert_eq!(scrub(ImageFormat::Tiff, b"II*\0".to_vec()).unwrap_err().reason(), "metadata");
    }
}

#[cfg(test)]
mod mangled {
    use super::*;
    use crate::media::Still;

    const SMEAR: &[u8] = include_bytes!("../sim/recordings/bccd_BloodImage_00000.jpg");

    proptest::proptest! {
        /// A device or a folder can hand over anything: a real image cut, flipped and spliced is
        /// checked and scrubbed without a panic (refused or sent, never half).
        #[test]
        fn mangled_images_never_panic(
            cut in 0usize..23_302,
            flips in proptest::collection::vec((0usize..23_302, proptest::prelude::any::<u8>()), 0..20),
            png in proptest::prelude::any::<bool>(),
        ) {
            let mut bytes = if png {
                let mut b = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
                b.extend_from_slice(&SMEAR[..cut.min(SMEAR.len())]);
                b
            } else {
                SMEAR[..cut.min(SMEAR.len())].to_vec()
            };
            for (at, x) in flips {
                if let Some(b) = bytes.get_mut(at) {
                    *b ^= x;
                }
            }
            bytes.extend_from_slice(&SMEAR[SMEAR.len() - 2..]);
            if let Ok(still) = Still::check(bytes, 1, 1 << 30) {
                let _ = scrub(still.format, still.bytes);
            }
        }
    }
}
