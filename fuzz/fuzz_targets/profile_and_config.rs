//! An operator's device profile or configuration file, as text: refused with a diagnostic or
//! accepted, never a panic. The first byte picks which.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let [pick, rest @ ..] = data else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    if pick & 1 == 0 {
        if let Err(d) = spokegate::profile::compile(Path::new("/etc/spokegate/profiles/fuzz.toml"), text) {
            let _ = d.to_string();
        }
    } else if let Err(d) = spokegate::config::Config::parse(Path::new("/etc/spokegate/spokegate.toml"), text) {
        let _ = d.to_string();
    }
});
