//! Bytes from a serial device, through the shipped profile's framer and decoder. The first byte
//! picks the profile and how the rest arrives (one frame as it is, or through the framer in
//! reads of 1-64 bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spokegate::decode::Decoder;
use spokegate::framing::framer_for;
use spokegate::profile::DecoderSpec;
use std::sync::OnceLock;

mod common;

fn serial() -> &'static Vec<(spokegate::profile::FramingSpec, Decoder)> {
    static ALL: OnceLock<Vec<(spokegate::profile::FramingSpec, Decoder)>> = OnceLock::new();
    ALL.get_or_init(|| {
        let reg = common::profiles();
        reg.ids()
            .filter_map(|id| {
                let p = reg.get(id)?;
                let framed = p.ble.is_none() && !matches!(p.decoder, DecoderSpec::Image(_));
                framed.then(|| (p.framing.clone(), Decoder::new(p.decoder.clone())))
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let [pick, read, rest @ ..] = data else { return };
    let all = serial();
    let (framing, decoder) = &all[*pick as usize % all.len()];
    if pick & 0x80 != 0 {
        let _ = decoder.decode(rest, 1_700_000_000_000_000);
        return;
    }
    let mut framer = framer_for(framing);
    for chunk in rest.chunks(1 + (*read as usize % 64)) {
        framer.push(chunk);
        loop {
            match framer.next_frame() {
                Ok(Some(frame)) => {
                    let _ = decoder.decode(&frame, 1_700_000_000_000_000);
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = (e.code(), e.to_event(), e.bytes());
                }
            }
        }
    }
    let _ = framer.finish();
});
