//! A BLE notification to a shipped BLE profile: the first byte picks the profile, the second the
//! characteristic it came from (every one a decoder knows, and the Polar PMD control point and
//! data), the rest is the value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spokegate::decode::{ble, gatt};
use std::sync::OnceLock;

mod common;

fn specs() -> &'static Vec<spokegate::profile::DecoderSpec> {
    static ALL: OnceLock<Vec<spokegate::profile::DecoderSpec>> = OnceLock::new();
    ALL.get_or_init(|| {
        let reg = common::profiles();
        reg.ids().filter_map(|id| reg.get(id)).filter(|p| p.ble.is_some()).map(|p| p.decoder.clone()).collect()
    })
}

const FROM: [u16; 10] = [0x2A18, 0x2A34, 0x2A52, 0x2A37, 0x2A35, 0x2A1C, 0x2A5E, 0x2A5F, 0x2A60, 0x2A2B];

fuzz_target!(|data: &[u8]| {
    let [pick, from, value @ ..] = data else { return };
    let all = specs();
    let spec = &all[*pick as usize % all.len()];
    let uuid = match *from as usize % (FROM.len() + 2) {
        i if i < FROM.len() => gatt::uuid16(FROM[i]),
        i if i == FROM.len() => gatt::pmd::CONTROL_POINT,
        _ => gatt::pmd::DATA,
    };
    let _ = ble::decode(spec, &uuid, value);
    let _ = gatt::current_time(value);
});
