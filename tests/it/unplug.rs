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
    let states: Vec<String> = sub
        .seen
        .iter()
        .filter(|(t, _)| t.ends_with("/dev/monitor-1/state"))
        .map(|(_, p)| serde_json::from_slice::<serde_json::Value>(p).unwrap()["state"].as_str().unwrap().to_string())
        .collect();
    let disconnected = states.iter().position(|s| s == "disconnected").unwrap();
    assert!(states[disconnected..].iter().any(|s| s == "connected"), "{states:?}");
    assert!(gateway.counters.devices["monitor-1"].connects.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    gateway.stop().await;
}
