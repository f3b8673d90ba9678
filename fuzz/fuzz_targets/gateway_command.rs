//! A message on a gateway's `cmd` topic: the first byte picks the command topic and whether the
//! rest arrives as it is or signed with a trusted hub key (so that a hub's well-signed but
//! malformed or hostile body reaches the checks after the signature, and the arguments' parser).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spokegate::command::{auth::authenticate, Command};
use spokegate::model::BodyFormat;
use spokegate::sign::seal;

mod common;

const NAMES: [&str; 10] = [
    "consult.start",
    "consult.end",
    "capture",
    "stream.start",
    "stream.stop",
    "records.fetch",
    "status",
    "rebirth",
    "x",
    "",
];
const NOW: i64 = 1_800_000_000_000_000;

fuzz_target!(|data: &[u8]| {
    let [pick, body @ ..] = data else { return };
    let keys = common::keys();
    let topic = format!("spokegate/v1/{}/{}/cmd/{}", common::SITE, common::GW, NAMES[*pick as usize % NAMES.len()]);
    let payload = match pick >> 4 {
        0..=3 => body.to_vec(),
        4..=9 => seal(&keys.hub, body, BodyFormat::Cbor),
        _ => seal(&keys.hub, body, BodyFormat::Json),
    };
    match authenticate(&topic, &payload, &keys.ring, common::SITE, common::GW, NOW) {
        Ok(ok) => {
            let _ = Command::parse(&ok.cmd.name, &ok.cmd.args);
        }
        Err(refused) => {
            let _ = (refused.code, refused.text);
        }
    }
});
