//! BLE end to end with the real btleplug code: a private `dbus-daemon`, a mock BlueZ on it
//! (`tests/ble_mock/mock_bluez.py`: Adapter1/Device1/GattService1/GattCharacteristic1, notifications
//! as PropertiesChanged), the real `spokegate` binary pointed at that bus with
//! `DBUS_SYSTEM_BUS_ADDRESS`, a real mosquitto, and a subscriber verifying every signature.
//! The notification bytes are the sourced vectors of `tests/fixtures/ble/` and MIT-BIH samples.

use crate::harness::*;
use serde_json::{json, Value};
use spokegate::model::{Body, BodyKind};
use spokegate::sim::ble_mock::{ecg_frames, MockBluez, PrivateBus};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn gateway(config: &Path, bus: &PrivateBus) -> KillOnDrop {
    KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_spokegate"))
            .args(["run", "--config", config.to_str().unwrap(), "--log", "warn"])
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
            .spawn()
            .unwrap(),
    )
}

/// SIGTERM and wait: the gateway drains everything it accepted.
fn stop(mut g: KillOnDrop) {
    unsafe { libc::kill(g.0.id() as i32, libc::SIGTERM) };
    let started = Instant::now();
    while g.0.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < PATIENCE, "gateway drains in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ble_config(gw: &GatewayDir, port: u16, devices: &[(&str, &str, &str)], profiles: Option<&Path>) -> PathBuf {
    let mut text = format!(
        "[gateway]\nsite = \"test-site\"\nid = \"gw-test\"\nstate_dir = \"{}\"\n{}[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\n",
        gw.path().display(),
        profiles.map(|p| format!("profiles_dir = \"{}\"\n", p.display())).unwrap_or_default()
    );
    for (id, profile, ble) in devices {
        text.push_str(&format!("\n[[device]]\nid = \"{id}\"\nprofile = \"{profile}\"\nble = {ble}\n"));
    }
    let path = gw.path().join("spokegate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn vector(uuid: &str, hex_prefix: &str) -> Vec<u8> {
    let all: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}/tests/fixtures/ble/gatt_vectors.json", env!("CARGO_MANIFEST_DIR")))
            .unwrap(),
    )
    .unwrap();
    let v = all
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["characteristic_uuid"] == uuid && v["hex"].as_str().unwrap().starts_with(hex_prefix))
        .unwrap();
    hex::decode(v["hex"].as_str().unwrap()).unwrap()
}

/// Stored records 1..=n made from two sourced Glucose Measurement vectors (their sequence number
/// replaced), each followed by a sourced-form context (flags 0) with the same number.
/// Returns the scenario records and, per record, (UCUM unit, value, device time) as the vectors state.
fn glucose_records(n: u16) -> (Vec<Value>, Vec<(&'static str, f64, &'static str)>) {
    // 30 kg/L (annotated), 2019-02-27 11:10:30 - 5 min; 81 mol/L, 2020-05-21 10:30:45.
    let a = vector("0x2A18", "1b0100e3");
    let c = vector("0x2A18", "1f0200e4");
    let mut records = Vec::new();
    let mut expected = Vec::new();
    for seq in 1..=n {
        let (mut m, want) = if seq % 2 == 1 {
            (a.clone(), ("mg/dL", 30.0 * 100_000.0, "2019-02-27T11:05:30Z"))
        } else {
            (c.clone(), ("mmol/L", 81.0 * 1_000.0, "2020-05-21T10:30:45Z"))
        };
        m[1..3].copy_from_slice(&seq.to_le_bytes());
        let mut ctx = vec![0x00];
        ctx.extend(seq.to_le_bytes());
        records.push(json!({"seq": seq, "measurement": hex::encode(&m), "context": hex::encode(&ctx)}));
        expected.push(want);
    }
    (records, expected)
}

fn record_of(b: &Body) -> Option<u16> {
    b.obs.as_ref()?.first()?.ctx.as_ref()?.get("record")?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_records_heart_rate_and_ecg_arrive_signed_and_every_record_exactly_once() {
    let bus = PrivateBus::start();
    let dir = tempfile::tempdir().unwrap();
    let (records, expected) = glucose_records(8);
    let (frames, samples) = ecg_frames(10, 1_000_000_000);
    let hr = ["0055", "04ff", "194b00380404043804", "1f0101320101000201ffff"];
    let scenario = json!({"devices": [
        {"kind": "glucose", "address": "AA:BB:CC:DD:EE:01", "name": "Mock Glucose",
         "service": "00001808-0000-1000-8000-00805f9b34fb", "records": records, "drop_after": 3,
         "current_time": [2020, 5, 21, 10, 30, 45]},
        {"kind": "heart_rate", "address": "AA:BB:CC:DD:EE:02", "name": "Mock HR",
         "service": "0000180d-0000-1000-8000-00805f9b34fb", "notifications": hr, "interval_ms": 50},
        {"kind": "pmd", "address": "AA:BB:CC:DD:EE:03", "name": "Polar H10 MOCK",
         "service": "fb005c80-02e7-f387-1cad-8acd2d8df0c8", "frames": frames, "interval_ms": 20},
    ]});
    let mut mock = MockBluez::start(&bus, &scenario, dir.path());
    let broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let config = ble_config(
        &gw,
        broker.port,
        &[
            ("glucose-1", "ble-glucose", "{ address = \"AA:BB:CC:DD:EE:01\" }"),
            ("hr-1", "ble-heart-rate", "{ name = \"Mock HR\", allow_unbonded = true }"),
            ("ecg-1", "polar-h10-ecg", "{ address = \"aa:bb:cc:dd:ee:03\" }"),
        ],
        None,
    );
    let mut sub = Subscriber::connect(broker.port, "test-hub").await;
    let g = gateway(&config, &bus);

    // The meter walks away after three records; the gateway reconnects and asks for the rest.
    let second = mock.until("second download", |v| v["event"] == "download" && v["attempt"] == 2);
    assert_eq!(second["first"], 4, "the gateway asks for the records after the last one delivered");
    mock.until("download complete", |v| v["event"] == "download-complete");
    mock.until("ECG stream complete", |v| v["event"] == "stream-complete" && v["device"] == "Polar H10 MOCK");
    let keys = gw.keys();
    sub.until_signed("8 records, 4 heart-rate readings and every ECG sample", &keys, |bodies| {
        let records =
            bodies.iter().filter(|b| b.dev.as_deref() == Some("glucose-1") && b.kind == BodyKind::Obs).count();
        let hr = bodies.iter().filter(|b| b.dev.as_deref() == Some("hr-1") && b.kind == BodyKind::Obs).count();
        let ecg: u64 = bodies.iter().filter_map(|b| b.wave.as_ref()).map(|w| u64::from(w.n)).sum();
        records >= 8 && hr >= 4 && ecg >= samples.len() as u64
    })
    .await;
    stop(g);
    // After the drain, nothing more can come: count exactly.
    sub.until("offline status", |seen| {
        seen.iter().any(|(t, p)| t.ends_with("/status") && String::from_utf8_lossy(p).contains("\"offline\""))
    })
    .await;
    let bodies = sub.bodies(&keys);

    let glucose: Vec<&Body> =
        bodies.iter().filter(|b| b.dev.as_deref() == Some("glucose-1") && b.kind == BodyKind::Obs).collect();
    let numbers: Vec<u16> = glucose.iter().filter_map(|b| record_of(b)).collect();
    assert_eq!(numbers, (1..=8).collect::<Vec<u16>>(), "every stored record exactly once, in order");
    // The meter's clock (Current Time, 2020-05-21T10:30:45) is years behind the gateway's: recorded.
    let clock: Vec<&Body> = bodies
        .iter()
        .filter(|b| b.dev.as_deref() == Some("glucose-1") && b.event.as_ref().is_some_and(|e| e.code == "device-clock"))
        .collect();
    assert_eq!(clock.len(), 2, "one per connect (the meter walked away once)");
    let stated = time::macros::datetime!(2020-05-21 10:30:45 UTC).unix_timestamp() * 1000;
    for (b, (ucum, value, tdev)) in glucose.iter().zip(&expected) {
        let o = &b.obs.as_ref().unwrap()[0];
        assert_eq!((o.code.mdc, o.unit.ucum.as_str(), o.val), (160184, *ucum, Some(*value)));
        assert_eq!(spokegate::clock::micros_to_rfc3339(o.tdev.unwrap()), *tdev);
        let offset: i64 = o.ctx.as_ref().unwrap()["device_clock_offset_ms"].parse().unwrap();
        assert!((offset - (stated - b.t / 1000)).abs() < 5_000, "offset {offset} ms");
    }

    let heart: Vec<f64> = bodies
        .iter()
        .filter(|b| b.dev.as_deref() == Some("hr-1"))
        .filter_map(|b| b.obs.as_ref())
        .flat_map(|o| o.iter().filter(|o| o.code.mdc == 147842).map(|o| o.val.unwrap()))
        .collect();
    assert_eq!(heart, [85.0, 255.0, 75.0, 257.0], "the sourced vectors' heart rates");
    let rr: Vec<f64> = bodies
        .iter()
        .filter_map(|b| b.obs.as_ref())
        .flat_map(|o| o.iter().filter(|o| o.code.mdc == 147240).map(|o| o.val.unwrap() * 1024.0))
        .collect();
    assert_eq!(rr, [1028.0, 1080.0, 1.0, 258.0, 65535.0], "RR intervals in 1/1024 s");

    let mut hub = spokegate::hub::Reassembler::default();
    let mut got: Vec<i32> = Vec::new();
    for b in bodies.iter().filter(|b| b.kind == BodyKind::Wave) {
        let placed = hub.accept(b).unwrap().unwrap();
        assert_eq!(placed.gap, None);
        got.extend(&placed.channels[0]);
        assert_eq!(b.wave.as_ref().unwrap().rate, 130.0);
    }
    assert_eq!(got, samples, "ECG microvolts exactly as the strap sent them");

    // A restarted gateway remembers (the memory was committed with each record): it asks for 9.
    let g = gateway(&config, &bus);
    let third = mock.until("a download after the restart", |v| v["event"] == "download" && v["attempt"] == 3);
    assert_eq!((third["first"].as_u64(), third["records"].as_u64()), (Some(9), Some(0)));
    stop(g);
    // The gateway enabled every notification before the devices sent (the mock, as BlueZ,
    // refuses to send on a characteristic nobody subscribed to).
    assert!(!mock.seen.iter().any(|v| v["event"] == "refused-unsubscribed"), "{:?}", mock.seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_characteristic_the_profile_does_not_subscribe_to_sends_nothing() {
    // As BlueZ does, the mock delivers only what was subscribed: an operator's glucose profile
    // without the context characteristic gets the measurements, never the contexts.
    let bus = PrivateBus::start();
    let dir = tempfile::tempdir().unwrap();
    let (records, _) = glucose_records(2);
    let scenario = json!({"devices": [
        {"kind": "glucose", "address": "AA:BB:CC:DD:EE:07", "name": "Mock Glucose",
         "service": "00001808-0000-1000-8000-00805f9b34fb", "records": records},
    ]});
    let mut mock = MockBluez::start(&bus, &scenario, dir.path());
    let broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let profiles = gw.path().join("profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    let glucose = spokegate::profile::BUILTIN.iter().find(|(n, _)| *n == "ble-glucose.toml").unwrap().1;
    // The shipped profile without its context fields.
    let glucose = glucose.split("# The Glucose Measurement Context's values").next().unwrap();
    std::fs::write(
        profiles.join("ble-glucose-no-context.toml"),
        glucose
            .replace("id = \"ble-glucose\"", "id = \"ble-glucose-no-context\"")
            .replace("characteristics = [\"0x2A18\", \"0x2A34\"]", "characteristics = [\"0x2A18\"]"),
    )
    .unwrap();
    let config = ble_config(
        &gw,
        broker.port,
        &[("glucose-1", "ble-glucose-no-context", "{ address = \"AA:BB:CC:DD:EE:07\" }")],
        Some(&profiles),
    );
    let mut sub = Subscriber::connect(broker.port, "test-hub").await;
    let g = gateway(&config, &bus);
    mock.until("download complete", |v| v["event"] == "download-complete");
    let context = "00002a34-0000-1000-8000-00805f9b34fb";
    let refused = mock.until("the context refused", |v| v["event"] == "refused-unsubscribed");
    assert_eq!(refused["uuid"], context);
    let keys = gw.keys();
    sub.until_signed("both measurements", &keys, |b| b.iter().filter(|x| x.kind == BodyKind::Obs).count() >= 2).await;
    stop(g);
    assert!(mock.seen.iter().filter(|v| v["event"] == "refused-unsubscribed").all(|v| v["uuid"] == context));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_notifications_refusing_and_silent_devices_are_reported_and_nothing_hangs() {
    let bus = PrivateBus::start();
    let dir = tempfile::tempdir().unwrap();
    let (records, _) = glucose_records(2);
    // An ECG strap that loses frame 3 and sends a broken one in place of frame 6.
    let (mut frames, _) = ecg_frames(10, 1_000_000_000);
    frames[6] = "00ff".into();
    frames.remove(3);
    // Short, long and nonsense notifications between sourced good ones.
    let hr = ["0055", "", "01", "0055deadbeef", "17ffff", "ff64", "04ff"];
    let scenario = json!({"devices": [
        {"kind": "heart_rate", "address": "AA:BB:CC:DD:EE:02", "name": "Mock HR",
         "service": "0000180d-0000-1000-8000-00805f9b34fb", "notifications": hr, "interval_ms": 30},
        {"kind": "glucose", "address": "AA:BB:CC:DD:EE:04", "name": "Refusing Meter",
         "service": "00001808-0000-1000-8000-00805f9b34fb", "records": records, "racp_error": 5},
        {"kind": "glucose", "address": "AA:BB:CC:DD:EE:05", "name": "Silent Meter",
         "service": "00001808-0000-1000-8000-00805f9b34fb", "records": [], "racp_silent": true},
        {"kind": "pmd", "address": "AA:BB:CC:DD:EE:06", "name": "Polar H10 LOSSY",
         "service": "fb005c80-02e7-f387-1cad-8acd2d8df0c8", "frames": frames, "interval_ms": 20},
        // A strap that refuses the ECG start (status 5, invalid parameter).
        {"kind": "pmd", "address": "AA:BB:CC:DD:EE:08", "name": "Polar H10 REFUSING",
         "service": "fb005c80-02e7-f387-1cad-8acd2d8df0c8", "frames": [], "refuse_start": 5},
        // A meter whose record access control point fails every write.
        {"kind": "glucose", "address": "AA:BB:CC:DD:EE:09", "name": "Broken Meter",
         "service": "00001808-0000-1000-8000-00805f9b34fb", "records": [], "racp_write_fails": true},
        // A meter with a stored record that holds no concentration (the sourced vector, seq 42).
        {"kind": "glucose", "address": "AA:BB:CC:DD:EE:0A", "name": "Empty Meter",
         "service": "00001808-0000-1000-8000-00805f9b34fb",
         "records": [{"seq": 42, "measurement": "002a00e807030f0e1e2d"}]},
    ]});
    let mut mock = MockBluez::start(&bus, &scenario, dir.path());
    let broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let profiles = gw.path().join("profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    let fast = spokegate::profile::BUILTIN.iter().find(|(n, _)| *n == "ble-glucose.toml").unwrap().1;
    std::fs::write(
        profiles.join("ble-glucose-fast.toml"),
        fast.replace("id = \"ble-glucose\"", "id = \"ble-glucose-fast\"")
            .replace("answer_timeout_secs = 15", "answer_timeout_secs = 2"),
    )
    .unwrap();
    let config = ble_config(
        &gw,
        broker.port,
        &[
            ("hr-1", "ble-heart-rate", "{ address = \"AA:BB:CC:DD:EE:02\" }"),
            ("refusing-1", "ble-glucose-fast", "{ address = \"AA:BB:CC:DD:EE:04\" }"),
            ("silent-1", "ble-glucose-fast", "{ address = \"AA:BB:CC:DD:EE:05\" }"),
            ("ecg-1", "polar-h10-ecg", "{ address = \"AA:BB:CC:DD:EE:06\" }"),
            ("ecg-refusing", "polar-h10-ecg", "{ address = \"AA:BB:CC:DD:EE:08\" }"),
            ("broken-1", "ble-glucose-fast", "{ address = \"AA:BB:CC:DD:EE:09\" }"),
            ("empty-1", "ble-glucose-fast", "{ address = \"AA:BB:CC:DD:EE:0A\" }"),
        ],
        Some(&profiles),
    );
    let mut sub = Subscriber::connect(broker.port, "test-hub").await;
    let g = gateway(&config, &bus);
    mock.until("racp ignored", |v| v["event"] == "racp-ignored");
    let keys = gw.keys();
    let code_of = |b: &Body| b.event.as_ref().map(|e| e.code.clone()).unwrap_or_default();
    sub.until_signed("the bad-input, RACP-error and silent-device events", &keys, |bodies| {
        let codes: Vec<String> = bodies.iter().map(code_of).collect();
        codes.iter().filter(|c| *c == "gatt-invalid").count() >= 5
            && codes.iter().any(|c| c == "racp-error")
            && codes.iter().any(|c| c == "device-silent")
            && bodies.iter().filter(|b| b.dev.as_deref() == Some("hr-1") && b.kind == BodyKind::Obs).count() >= 2
            && codes.iter().filter(|c| *c == "wave-gap").count() >= 2
            && codes.iter().any(|c| c == "pmd-frame-invalid")
            && codes.iter().any(|c| c == "pmd-error")
            && codes.iter().any(|c| c == "device-control-failed")
            && codes.iter().any(|c| c == "record-without-values")
    })
    .await;
    let by_code = |code: &str| sub.verified.iter().find(|b| code_of(b) == code).cloned().unwrap();
    assert_eq!(by_code("pmd-error").dev.as_deref(), Some("ecg-refusing"));
    assert!(by_code("pmd-error").event.unwrap().text.contains("(5)"));
    assert_eq!(by_code("device-control-failed").dev.as_deref(), Some("broken-1"));
    let empty = by_code("record-without-values");
    assert_eq!(empty.dev.as_deref(), Some("empty-1"));
    assert_eq!(empty.event.unwrap().data.unwrap()["record"], 42, "the record is remembered, not fetched again");
    // The silent meter is dropped after its timeout and tried again: the gateway did not hang.
    mock.until("the silent meter disconnected", |v| v["event"] == "disconnect" && v["device"] == "Silent Meter");
    mock.until_count("a new attempt", 2, |v| v["event"] == "connect" && v["device"] == "Silent Meter");
    stop(g);
    let bodies = sub.verified.clone();
    let refused: Vec<&Body> = bodies.iter().filter(|b| code_of(b) == "gatt-invalid").collect();
    for b in &refused {
        assert_eq!(b.dev.as_deref(), Some("hr-1"));
        let e = b.event.as_ref().unwrap();
        assert!(e.text.contains("0x2A37"), "{}", e.text);
    }
    let racp = bodies.iter().find(|b| code_of(b) == "racp-error").unwrap();
    assert_eq!(racp.dev.as_deref(), Some("refusing-1"));
    assert!(racp.event.as_ref().unwrap().text.contains("invalid operand"));
    assert_eq!(bodies.iter().find(|b| code_of(b) == "device-silent").unwrap().dev.as_deref(), Some("silent-1"));
    // The good notifications around the bad ones still arrived, in order.
    let heart: Vec<f64> = bodies
        .iter()
        .filter(|b| b.dev.as_deref() == Some("hr-1"))
        .filter_map(|b| b.obs.as_ref())
        .flat_map(|o| o.iter().map(|o| o.val.unwrap()))
        .collect();
    assert_eq!(heart, [85.0, 255.0]);
    // The lost frame (3) and the broken one (6) are gaps of one frame each, placed by the frame
    // timestamps; no sample is invented.
    let gaps: Vec<(u64, u64)> = bodies
        .iter()
        .filter(|b| code_of(b) == "wave-gap")
        .map(|b| {
            let d = serde_json::to_value(&b.event.as_ref().unwrap().data).unwrap();
            (d["at"].as_u64().unwrap(), d["missing"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(gaps, [(3 * 73, 73), (6 * 73, 73)]);
}
