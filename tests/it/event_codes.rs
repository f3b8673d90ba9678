//! Every event code the README lists is produced by some input, and a test says so. The codes a
//! decoder gives are produced here, offline, through the same decode path `spokegate profile test`
//! and the daemon use; the codes only a running daemon gives (a silent device, a refused command,
//! an eviction...) must be asserted by name in an integration test, which this test checks.

use crate::e2e::fixture;
use spokegate::capture::{decode_ble_capture, decode_capture};
use spokegate::decode::Decoder;
use spokegate::framing::{mllp_wrap, sync_length_wrap};
use spokegate::model::Body;
use spokegate::profile::ProfileRegistry;
use spokegate::sim::waves::{self, WireProtocol, PCM_SYNC};
use std::collections::BTreeSet;

/// The codes the README's "Event codes" section lists.
fn readme_codes() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(format!("{}/README.md", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let section = readme.split("### Event codes").nth(1).unwrap().split("\n## ").next().unwrap();
    let para = section.split("A device flooding").next().unwrap();
    // Without the parenthesised notes on each code's data keys.
    let mut plain = String::new();
    let mut depth = 0;
    for c in para.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    plain
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|c| !c.is_empty() && c.chars().all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || x == '-'))
        .map(str::to_string)
        .collect()
}

fn codes(bodies: &[Body]) -> BTreeSet<String> {
    bodies.iter().filter_map(|b| b.event.as_ref()).map(|e| e.code.clone()).collect()
}

/// A real NIBP message with its OBX line replaced.
fn hl7_with_obx(obx: &str) -> Vec<u8> {
    let text = String::from_utf8(fixture("pcd01_oru_r01_nibp_acme")).unwrap();
    let kept: Vec<&str> = text.split('\r').filter(|s| !s.starts_with("OBX") && !s.is_empty()).collect();
    mllp_wrap(format!("{}\r{obx}\r", kept.join("\r")).as_bytes())
}

/// A OneTouch dump line with the meter's sum-16 checksum (recomputed after a change).
fn onetouch_line(body: &str) -> String {
    spokegate::sim::onetouch::line(body)
}

fn offline_codes() -> BTreeSet<String> {
    let reg = ProfileRegistry::builtin().unwrap();
    let p = |id: &str| reg.get(id).unwrap();
    let mut got = BTreeSet::new();
    // Framing: junk, a cut frame, an oversize frame; a PCM frame whose CRC is wrong.
    let good = mllp_wrap(&fixture("pcd01_oru_r01_nibp_acme"));
    let mut huge = vec![0x0b];
    huge.extend(std::iter::repeat_n(b'A', 70_000));
    huge.push(0x1c);
    huge.push(0x0d);
    let wire = [&b"junk"[..], &huge, &good[..good.len() / 2]].concat();
    got.extend(codes(&decode_capture(&p("hl7-pcd01"), &wire)));
    let pcg = waves::pcg_c0003();
    let mut frames = WireProtocol::Pcm { rows: 20 }.stream(&pcg, 0, 60, |_| false);
    let crc_at = frames.len() / 2;
    frames[crc_at] ^= 0xff;
    got.extend(codes(&decode_capture(&p("pcm-stethoscope"), &frames)));
    // A PCM payload that holds no whole sample row, with a good CRC.
    got.extend(codes(&decode_capture(&p("pcm-stethoscope"), &sync_length_wrap(&PCM_SYNC, &[1, 2, 3]))));
    // A Cyton decoder fed a line instead of a packet (an operator's profile with the wrong framing).
    let cyton = Decoder::new(p("openbci-cyton").decoder.clone());
    got.insert(cyton.decode(b"not a packet", 0).unwrap_err().code.to_string());
    // Cyton packets with a counter jump: a gap in the stream.
    let mit = waves::mitbih_100();
    got.extend(codes(&decode_capture(
        &p("openbci-cyton"),
        &WireProtocol::Cyton.stream(&mit, 0, 300, |r| (100..110).contains(&r)),
    )));
    // Sample rows that are not numbers, and one that does not fit 32 bits.
    got.extend(codes(&decode_capture(&p("ecg-text-single"), b"512\r\nabc\r\n99999999999\r\n513\r\n")));
    // HL7: not an ORU, unparseable, OBX problems one by one, and a LOINC code the profile lacks.
    got.extend(codes(&decode_capture(
        &p("hl7-pcd01"),
        &mllp_wrap(b"MSH|^~\\&|A|B|C|D|20090101||ADT^A01|1|P|2.6\rPID|||1\r"),
    )));
    got.extend(codes(&decode_capture(&p("hl7-pcd01"), &mllp_wrap(b"MSH|^~\\&|X\rOBX|||||\x00\x01|\rZZZ"))));
    for obx in [
        "OBX|1|NM||1.0.0.1|120|266016^MDC_DIM_MMHG^MDC|||||R",
        "OBX|1|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.0.0.1|abc|266016^MDC_DIM_MMHG^MDC|||||R",
        "OBX|1|SN|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.0.0.1|^1^:^2|266016^MDC_DIM_MMHG^MDC|||||R",
        "OBX|1|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.0.0.1|120|999999^MDC_DIM_NOPE^MDC|||||R",
    ] {
        got.extend(codes(&decode_capture(&p("hl7-pcd01"), &hl7_with_obx(obx))));
    }
    got.extend(codes(&decode_capture(&p("hl7-pcd01"), &mllp_wrap(&fixture("oru_r01_lab_glucose_v25")))));
    // Text: out of range, unrecognised, not text; OneTouch lines without or with a wrong
    // checksum, and with an impossible date.
    got.extend(codes(&decode_capture(&p("vitals-kv"), b"SYS=999\r\nhello\r\n\xff\xfe\r\n")));
    let dump = String::from_utf8(
        std::fs::read(format!("{}/tests/fixtures/onetouch_ultra2_dmp.txt", env!("CARGO_MANIFEST_DIR"))).unwrap(),
    )
    .unwrap();
    let reading = dump.lines().find(|l| l.starts_with("P \"")).unwrap();
    let (body, _) = reading.rsplit_once(' ').unwrap();
    let bad_date = body.replacen("03/21/15", "13/45/15", 1);
    let wire = format!("{body}\r\n{body} 0000\r\n{}", onetouch_line(&bad_date));
    got.extend(codes(&decode_capture(&p("onetouch-ultra2"), wire.as_bytes())));
    // BLE: an invalid notification, an unknown characteristic, a RACP answer that is not one, a
    // context without its measurement, a value the profile does not map, bad PMD frames.
    got.extend(codes(&decode_ble_capture(&p("ble-heart-rate"), "0x2A37 ff64\n0x2A99 00\n").unwrap()));
    got.extend(codes(
        &decode_ble_capture(&p("ble-glucose"), "0x2A52 0500030201\n0x2A34 002a00\n0x2A34 086400840350\n").unwrap(),
    ));
    got.extend(codes(
        &decode_ble_capture(
            &p("polar-h10-ecg"),
            "fb005c82-02e7-f387-1cad-8acd2d8df0c8 00ff\nfb005c81-02e7-f387-1cad-8acd2d8df0c8 f0\n",
        )
        .unwrap(),
    ));
    // ASTM: a frame with a bad checksum, one out of sequence, a message cut by EOT, a message
    // without its header, a query, an abnormal termination, a test and a unit the profile does
    // not map.
    let f = |n: u8, t: &str, last: bool| spokegate::framing::astm_bytes::frame(n, t.as_bytes(), last);
    let (enq, eot) = ([spokegate::framing::astm_bytes::ENQ], [spokegate::framing::astm_bytes::EOT]);
    let mut bad = f(1, "H|\\^&\r", false);
    bad[3] ^= 1;
    let wire = [
        enq.to_vec(),
        bad,
        f(3, "H|\\^&\r", false),
        f(1, "H|\\^&\r", false),
        eot.to_vec(),
        enq.to_vec(),
        f(1, "R|1|^^^GLU|5.4|mmol/L\r", false),
        f(2, "L|1|N\r", true),
        eot.to_vec(),
        enq.to_vec(),
        f(1, "H|\\^&\r", false),
        f(2, "Q|1|^ALL||||||||||O\r", false),
        f(3, "R|1|^^^NA^Sodium|140|mmol/l\r", false),
        f(4, "R|2|^^^GLU|5.4|g/L\r", false),
        f(5, "L|1|E\r", true),
        eot.to_vec(),
    ]
    .concat();
    got.extend(codes(&decode_capture(&p("astm-analyser"), &wire)));
    got
}

/// Codes only a running daemon produces, and the integration tests that assert them.
const DAEMON_CODES: &[&str] = &[
    "device-silent",
    "device-control-failed",
    "racp-error",
    "pmd-error",
    "record-without-values",
    "events-suppressed",
    "queue-evicted",
    "cmd-refused",
    "device-clock",
    "device-info",
    "dialogue-failed",
    "astm-not-sent",
    "message-too-large",
    "media-refused",
    "camera-failed",
    "clock-stepped",
];

#[test]
fn every_listed_event_code_is_produced_and_tested() {
    let listed = readme_codes();
    assert!(listed.len() >= 35, "{listed:?}");
    let offline = offline_codes();
    let tests: String = std::fs::read_dir(format!("{}/tests/it", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() != "event_codes.rs")
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    let mut untested = Vec::new();
    for code in &listed {
        if offline.contains(code) {
            continue;
        }
        let asserted = DAEMON_CODES.contains(&code.as_str()) && tests.contains(&format!("\"{code}\""));
        if !asserted {
            untested.push(code.clone());
        }
    }
    assert!(untested.is_empty(), "listed event codes no test produces: {untested:?}\nproduced offline: {offline:?}");
    // And the decoders produce no code the README does not list.
    let unlisted: Vec<&String> = offline.iter().filter(|c| !listed.contains(*c)).collect();
    assert!(unlisted.is_empty(), "codes the README does not list: {unlisted:?}");
}
