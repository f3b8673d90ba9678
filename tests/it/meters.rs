//! Serial meters that must be asked: a simulated OneTouch Ultra 2 on a real PTY that answers only
//! its commands (and garbles a reply line), through the real daemon and a real mosquitto. The
//! gateway asks for firmware, serial number, clock and dump on connect; the readings the source
//! states arrive once, oldest first; a meter clock nine minutes off is reported and set; a second
//! fetch sends nothing new, a third sends only the reading taken since; a silent meter is reported.

use crate::harness::*;
use serde_json::json;
use spokegate::model::BodyKind;
use spokegate::sim::onetouch::{self, MeterState};
use spokegate::sim::PtyDevice;
use std::sync::{Arc, Mutex};

/// The meter's local clock (the profile says +05:30) at a gateway time.
fn meter_local(t: time::OffsetDateTime) -> time::PrimitiveDateTime {
    let l = t.to_offset(time::macros::offset!(+05:30));
    time::PrimitiveDateTime::new(l.date(), l.time())
}

fn readings(bodies: &[spokegate::model::Body]) -> Vec<(f64, i64)> {
    bodies
        .iter()
        .filter(|b| b.kind == BodyKind::Obs)
        .flat_map(|b| b.obs.clone().unwrap().into_iter().map(move |o| (o.val.unwrap(), b.tdev.unwrap())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_onetouch_is_asked_its_readings_arrive_once_and_its_clock_is_set() {
    let broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let dev = PtyDevice::create(&gw.path().join("ttyUSB-meter")).unwrap();
    let hub = HubKey::new("hub-test");
    let config = gw.config_with(
        broker.port,
        &[("glucose-1", "onetouch-ultra2", &dev.path)],
        "",
        &format!("[hub]\nkeys = [\"{}\"]\ndelivery = \"broker\"\n", hub.jwk.display()),
    );
    let mut keys = gw.keys();
    keys.insert(hub.bound()).unwrap();
    let mut sub = Subscriber::connect(broker.port, "meter-hub").await;
    let sender = Publisher::connect(broker.port, "meter-sender").await;

    // The sourced dump (tidepool-org/uploader): readings 081, 105, 176 mg/dL, newest first.
    let dump =
        std::fs::read_to_string(format!("{}/tests/fixtures/onetouch_ultra2_dmp.txt", env!("CARGO_MANIFEST_DIR")))
            .unwrap();
    let records = MeterState::records_of_dump(&dump);
    assert_eq!(records.len(), 3);
    let nine_minutes_slow = meter_local(time::OffsetDateTime::now_utc()) - time::Duration::minutes(9);
    let mut state = MeterState::new(records, nine_minutes_slow);
    // Line 0 answers DM?; lines 1-3 answer DM@ three times, garbled every time (the request fails);
    // 4 answers DMF, 5 the DMT; the first dump's second record (line 8) is garbled.
    state.garble = vec![1, 2, 3, 8];
    let meter = Arc::new(Mutex::new(state));
    tokio::spawn(onetouch::serve(meter.clone(), dev.peer));

    let gateway = RunningGateway::start(&config, gw.key());
    sub.until_signed("three readings, the clock event, the firmware and the failed request", &keys, |b| {
        let events: Vec<&str> = b.iter().filter_map(|b| b.event.as_ref()).map(|e| e.code.as_str()).collect();
        readings(b).len() >= 3
            && events.contains(&"device-clock")
            && events.contains(&"device-info")
            && events.contains(&"dialogue-failed")
    })
    .await;
    let bodies = sub.bodies(&keys);
    let got = readings(&bodies);
    let vals: Vec<f64> = got.iter().map(|r| r.0).collect();
    // Oldest first: the dump lists them newest first.
    let mut stated = vec![81.0, 105.0, 176.0];
    stated.sort_by(|a, b| {
        let t = |v: f64| got.iter().find(|r| r.0 == v).unwrap().1;
        t(*a).cmp(&t(*b))
    });
    assert_eq!(vals, stated, "each stated reading once");
    assert!(got.windows(2).all(|w| w[0].1 < w[1].1), "oldest first: {got:?}");
    let failed = bodies.iter().filter_map(|b| b.event.as_ref()).find(|e| e.code == "dialogue-failed").unwrap();
    assert_eq!(failed.data.as_ref().unwrap()["request"], "serial");
    let clock = bodies.iter().filter_map(|b| b.event.as_ref()).find(|e| e.code == "device-clock").unwrap();
    let off = clock.data.as_ref().unwrap()["offset_ms"].as_i64().unwrap();
    assert!((-545_000..=-535_000).contains(&off), "nine minutes behind: {off}");
    {
        let m = meter.lock().unwrap();
        assert!(m.commands.iter().any(|c| c.starts_with("DMT")), "the clock was set: {:?}", m.commands);
        let skew = (m.now() - meter_local(time::OffsetDateTime::now_utc())).whole_seconds().abs();
        assert!(skew <= 5, "the meter's clock now agrees with the gateway's ({skew} s)");
        assert_eq!(m.commands.iter().filter(|c| *c == "DMP").count(), 2, "the garbled dump was asked again");
        assert_eq!(m.commands.iter().filter(|c| *c == "DM@").count(), 3, "a request is sent three times at most");
    }

    // Fetching again sends nothing new.
    let ask = |id: &str| hub.command(id, "records.fetch", json!({"dev": "glucose-1"}));
    sender.command("records.fetch", ask("f-1")).await;
    sub.until_signed("the fetch is done", &keys, |b| replies(b, "f-1").iter().any(|(s, _)| *s == "done")).await;
    let reply = sub.bodies(&keys).into_iter().filter_map(|b| b.reply).rfind(|r| r.cmd == "f-1").unwrap();
    assert_eq!(reply.data.as_ref().and_then(|d| d.get("new")).and_then(|n| n.as_u64()), Some(0));
    assert_eq!(readings(&sub.bodies(&keys)).len(), 3);

    // A reading taken since: only it is sent.
    {
        let mut m = meter.lock().unwrap();
        let now = m.now();
        m.records.insert(0, onetouch::record(now, 123));
    }
    sender.command("records.fetch", ask("f-2")).await;
    sub.until_signed("the second fetch is done", &keys, |b| replies(b, "f-2").iter().any(|(s, _)| *s == "done")).await;
    let got = readings(&sub.bodies(&keys));
    assert_eq!(got.len(), 4);
    assert_eq!(got[3].0, 123.0);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meter_that_never_answers_is_reported_silent_and_asked_again() {
    let broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let mut dev = PtyDevice::create(&gw.path().join("ttyUSB-meter")).unwrap();
    let config = gw.config(broker.port, &[("glucose-1", "onetouch-ultra2", &dev.path)], "");
    let mut sub = Subscriber::connect(broker.port, "meter-hub").await;
    let gateway = RunningGateway::start(&config, gw.key());
    let keys = gw.keys();
    sub.until_signed("a device-silent event", &keys, |b| {
        b.iter().filter_map(|b| b.event.as_ref()).any(|e| e.code == "device-silent")
    })
    .await;
    // The gateway keeps asking (after its backoff): the wake-up and DM? come again.
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while seen.windows(5).filter(|w| w == b"\x11\rDM?").count() < 5 {
        let n = tokio::time::timeout_at(deadline, dev.peer.read(&mut buf)).await.expect("asked again").unwrap();
        seen.extend_from_slice(&buf[..n]);
    }
    gateway.stop().await;
}
