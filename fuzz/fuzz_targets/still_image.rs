//! A file from a microscope camera or a watched folder: sniffed, checked (its size and
//! dimensions read) and scrubbed of metadata, as the gateway does before signing it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spokegate::media::{scrub::scrub, ImageFormat, Still};

fuzz_target!(|data: &[u8]| {
    let _ = Still::check(data.to_vec(), 1_700_000_000_000_000, 64 << 20);
    if let Some(format) = ImageFormat::sniff(data) {
        let _ = scrub(format, data.to_vec());
    }
});
