//! USB unplug: the pseudo-terminal closes mid-stream and a new one appears at the same path; the
//! daemon notices, reports the device disconnected, reopens it and carries on.

use crate::e2e::fixture;
use crate::harness::*;
use spokegate::framing::mllp_wrap;
use spokegate::model::BodyKind;
use spokegate::sim::PtyDevice;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_reopens_a_replugged_serial_device_and_carries_on() {
    let Rig { broker: _broker, gw, mut dev, config, mut sub } = Rig::hl7_monitor().await;
    let link = dev.path.clone();
    let gateway = RunningGateway::start(&config, gw.key());
    let keys = gw.keys();
    let obs_count = |seen: &[(String, Vec<u8>)]| signed(seen, &keys).iter().filter(|b| b.kind == BodyKind::Obs).count();

    dev.peer.send(&mllp_wrap(&fixture("pcd01_oru_r01_nibp_acme"))).await.unwrap();
    assert_eq!(read_acks(&mut dev.peer, 1).await, ["AA"]);
    // Unplug mid-frame: half a message, then the PTY disappears (whether the half reaches the
    // daemon before the hangup is a race; either way the next device session starts clean).
    let half = mllp_wrap(&fixture("continua_wan_oru_r01_bp"));
    dev.peer.send(&half[..40]).await.unwrap();
    drop(dev);
    sub.until("the disconnected state", |seen| {
        seen.iter().any(|(t, p)| {
            t.ends_with("/dev/monitor-1/state") && String::from_utf8_lossy(p).contains("\"disconnected\"")
        })
    })
    .await;
    // Replug: a new PTY at the same path.
    let mut dev = PtyDevice::create(&link).unwrap();
    dev.peer.send(&mllp_wrap(&fixture("continua_wan_oru_r01_thermometer"))).await.unwrap();
    assert_eq!(read_acks(&mut dev.peer, 1).await, ["AA"]);
    sub.until("both messages", |seen| obs_count(seen) >= 2).await;

    let bodies = signed(&sub.seen, &keys);
    let mdcs: Vec<u32> = bodies.iter().filter_map(|b| b.obs.as_ref()).flatten().map(|o| o.code.mdc).collect();
    assert_eq!(mdcs, [150021, 150022, 150023, 188424]);
    // The state is retained on a topic of its own: it may arrive after the readings.
    let states = |seen: &[(String, Vec<u8>)]| -> Vec<String> {
        seen.iter()
            .filter(|(t, _)| t.ends_with("/dev/monitor-1/state"))
            .map(|(_, p)| {
                serde_json::from_slice::<serde_json::Value>(p).unwrap()["state"].as_str().unwrap().to_string()
            })
            .collect()
    };
    sub.until("connected again after the disconnect", |seen| {
        let states = states(seen);
        states.iter().position(|s| s == "disconnected").is_some_and(|d| states[d..].iter().any(|s| s == "connected"))
    })
    .await;
    assert!(gateway.counters.devices["monitor-1"].connects.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unplugged_stethoscope_leaves_an_estimated_gap_and_no_invented_sample() {
    use spokegate::sim::waves::{self, WireProtocol};
    use std::time::Duration;
    let broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let profiles = gw.path().join("profiles");
    spokegate::sim::recordings::write_wave_profiles(&profiles).unwrap();
    let mut dev = PtyDevice::create(&gw.path().join("ttySTETH")).unwrap();
    let link = dev.path.clone();
    let config = gw.config(
        broker.port,
        &[("steth-1", "pcg-pcm", &dev.path)],
        &format!("profiles_dir = \"{}\"", profiles.display()),
    );
    let mut sub = Subscriber::connect(broker.port, "test-hub").await;
    let gateway = RunningGateway::start(&config, gw.key());
    let keys = gw.keys();
    let pcg = waves::pcg_c0003();
    let pcm = WireProtocol::Pcm { rows: 20 };
    // One second at the real rate, then the cable is pulled.
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        waves::replay(&mut dev.peer, &pcg, pcm, 1.0, None, Duration::from_millis(10)),
    )
    .await;
    drop(dev);
    sub.until("the disconnected state", |seen| {
        seen.iter()
            .any(|(t, p)| t.ends_with("/dev/steth-1/state") && String::from_utf8_lossy(p).contains("\"disconnected\""))
    })
    .await;
    // Replugged (the device restarted: its counter starts again at 0); half a second more.
    let mut dev = PtyDevice::create(&link).unwrap();
    let _ = tokio::time::timeout(
        Duration::from_millis(500),
        waves::replay(&mut dev.peer, &pcg, pcm, 1.0, None, Duration::from_millis(10)),
    )
    .await;
    sub.until_signed("the link-lost gap and samples after it", &keys, |bodies| {
        let gap = bodies.iter().filter_map(|b| b.event.as_ref()).any(|e| e.code == "wave-gap");
        gap && bodies.iter().filter_map(|b| b.wave.as_ref()).any(|w| w.i0 > 2_000)
    })
    .await;
    gateway.stop().await;

    let bodies = sub.verified.clone();
    let gap = bodies.iter().filter_map(|b| b.event.as_ref()).find(|e| e.code == "wave-gap").unwrap();
    let data = serde_json::to_value(&gap.data).unwrap();
    assert_eq!((data["reason"].as_str(), data["estimated"].as_bool()), (Some("link-lost"), Some(true)));
    let (at, missing) = (data["at"].as_u64().unwrap(), data["missing"].as_u64().unwrap());
    assert!(missing > 0, "{data}");
    let mut hub = spokegate::hub::Reassembler::default();
    let mut before = Vec::new();
    let mut after = Vec::new();
    for b in &bodies {
        let Some(placed) = hub.accept(b) else { continue };
        let placed = placed.unwrap();
        assert!(!placed.restarted);
        let w = b.wave.as_ref().unwrap();
        if w.i0 < at {
            before.extend(placed.channels[0].iter().copied());
        } else {
            assert!(w.i0 >= at + missing, "no chunk inside the gap");
            after.extend(placed.channels[0].iter().copied());
        }
    }
    // Before the gap: the recording from its start, up to the gap; after: the recording again
    // from its start (the device restarted). Nothing in between, nothing made up.
    assert_eq!(before.len() as u64, at);
    let source: Vec<i32> = pcg.channel(0);
    assert_eq!(before, source[..before.len()]);
    assert!(!after.is_empty());
    assert_eq!(after, source[..after.len()]);
}
