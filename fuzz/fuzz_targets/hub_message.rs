//! A message a hub receives: the first byte picks the topic and whether the rest arrives as it
//! is, or signed by the trusted gateway key (a buggy or compromised gateway) or hub key. What
//! passes the checks goes on as `watch --record` takes it: its lines, the wave reassembly and
//! unpacking, the WFDB/WAV recorder (and the clock steps it follows) and the image store (in a
//! temporary folder, started afresh every few thousand messages so that the disk does not fill).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spokegate::hub::{
    check, human_lines, json_line, unpack_channels, wave_lines, HubMessage, MediaStore, Reassembler, Recorder,
};
use spokegate::model::BodyFormat;
use spokegate::sign::seal;
use std::sync::{Mutex, OnceLock};

mod common;

const TAILS: [&str; 12] = [
    "dev/ecg-1/obs",
    "dev/ecg-1/wave/ecg",
    "dev/cam-1/media",
    "dev/ecg-1/event",
    "dev/ecg-1/state",
    "event",
    "consult",
    "reply/c-1",
    "status",
    "cmd/consult",
    "ack",
    "dev/ecg-1/nope",
];

struct HubSide {
    reassembler: Reassembler,
    recorder: Recorder,
    media: MediaStore,
    signed: u32,
    generation: u32,
}

const FRESH_EVERY: u32 = 5_000;

impl HubSide {
    fn dir(generation: u32) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("spokegate-fuzz-hub-{}-{generation}", std::process::id()))
    }

    fn fresh(generation: u32) -> Self {
        let dir = Self::dir(generation);
        let recorder = Recorder::new(&dir.join("waves")).expect("a recording folder");
        let media = MediaStore::new(&dir).expect("a media folder");
        HubSide { reassembler: Reassembler::default(), recorder, media, signed: 0, generation }
    }
}

fn hub_side() -> &'static Mutex<HubSide> {
    static HUB: OnceLock<Mutex<HubSide>> = OnceLock::new();
    HUB.get_or_init(|| Mutex::new(HubSide::fresh(0)))
}

fuzz_target!(|data: &[u8]| {
    let [pick, body @ ..] = data else { return };
    let keys = common::keys();
    let topic = format!("spokegate/v1/{}/{}/{}", common::SITE, common::GW, TAILS[*pick as usize % TAILS.len()]);
    let payload = match pick >> 4 {
        0..=2 => body.to_vec(),
        3..=8 => seal(&keys.gateway, body, BodyFormat::Cbor),
        9..=13 => seal(&keys.gateway, body, BodyFormat::Json),
        14 => seal(&keys.hub, body, BodyFormat::Cbor),
        _ => seal(&keys.hub, body, BodyFormat::Json),
    };
    let msg = match check(&topic, &payload, &keys.ring) {
        Ok(msg) => msg,
        Err(why) => {
            let _ = json_line(&topic, "rejected", None, Some(&why.to_string()));
            return;
        }
    };
    let _ = human_lines(&msg);
    let _ = json_line(&topic, "verified", Some(&msg), None);
    if let HubMessage::Signed(b) = &msg {
        let mut hub = hub_side().lock().unwrap_or_else(|e| e.into_inner());
        hub.signed += 1;
        if hub.signed > FRESH_EVERY {
            let old = hub.generation;
            *hub = HubSide::fresh(old + 1);
            let _ = std::fs::remove_dir_all(HubSide::dir(old));
        }
        if let Some(w) = &b.wave {
            let _ = unpack_channels(w);
            if let Some(Ok(placed)) = hub.reassembler.accept(b) {
                let _ = wave_lines(b, &placed);
                let _ = hub.recorder.write(&placed, w, b.seq);
                let _ = hub.recorder.write_headers();
            }
        }
        // A gateway's clock step moves the recordings' starts (open ones, and ended ones at once).
        if let Some(Ok(step)) = spokegate::hub::clock_step(b) {
            let _ = hub.recorder.clock_stepped(&b.site, &b.gw, step);
            let _ = hub.recorder.write_headers();
        }
        if b.media.is_some() {
            let _ = hub.media.accept(b, &keys.gateway.public().kid_hex());
        }
    }
});
