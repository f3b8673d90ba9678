//! Nothing lost: broker outages, crashes (SIGKILL), a full disk. Real mosquitto, real binary.

use crate::e2e::fixture;
use crate::harness::*;
use spokegate::framing::{mllp_wrap, Framer, MllpFramer};
use spokegate::model::{Body, BodyKind};
use spokegate::sim::{PtyDevice, PtyPeer};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Writes one `SYS=` line every `every` until `stop`; counts the lines.
fn stream_lines(
    mut peer: PtyPeer,
    every: Duration,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<PtyPeer> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let n = sent.load(Ordering::Relaxed);
            peer.send(format!("SYS={}\n", 20 + n % 250).as_bytes()).await.unwrap();
            sent.fetch_add(1, Ordering::Relaxed);
        }
        peer
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_broker_outages_lose_nothing_and_keep_order() {
    let mut broker = Mosquitto::start_persistent();
    let gw = GatewayDir::new();
    let dev = PtyDevice::create(&gw.path().join("ttyVITALS")).unwrap();
    let config = gw.config(broker.port, &[("vitals-1", "vitals-kv", &dev.path)], "");
    let mut sub = Subscriber::connect_persistent(broker.port, "outage-hub").await;
    let gateway = RunningGateway::start(&config, gw.key());
    let (stop, sent) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let streamer = stream_lines(dev.peer, Duration::from_millis(5), stop.clone(), sent.clone());

    let mut depth_seen_during_outage = 0;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await; // streaming while the broker is up
        let connects = gateway.counters.link.connects.load(Ordering::Relaxed);
        broker.stop();
        tokio::time::sleep(Duration::from_millis(1500)).await; // the outage
        let out = Command::new(env!("CARGO_BIN_EXE_spokegate"))
            .args(["status", "--config", config.to_str().unwrap()])
            .output()
            .unwrap();
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        depth_seen_during_outage = depth_seen_during_outage.max(status["queue"]["depth"].as_u64().unwrap_or(0));
        broker.restart();
        // Outages are only meaningful if the gateway gets back in between: wait for its reconnect
        // (its backoff grows while the broker is away), then stream a while before the next one.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while gateway.counters.link.connects.load(Ordering::Relaxed) == connects {
            assert!(tokio::time::Instant::now() < deadline, "the gateway did not reconnect");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _peer = streamer.await.unwrap();
    let total = sent.load(Ordering::Relaxed);
    let keys = gw.keys();
    sub.until_signed("every reading after ten outages", &keys, |bodies| {
        bodies.iter().filter(|b| b.kind == BodyKind::Obs).map(|b| b.seq).collect::<BTreeSet<_>>().len() as u64 >= total
    })
    .await;
    assert!(depth_seen_during_outage > 0, "`spokegate status` showed the queue filling during an outage");

    let bodies: Vec<&Body> = sub.verified.iter().filter(|b| b.kind == BodyKind::Obs).collect();
    let mut first_seen = Vec::new();
    let mut seen = BTreeSet::new();
    for b in &bodies {
        if seen.insert(b.seq) {
            first_seen.push(b.seq);
        }
    }
    assert_eq!(first_seen.len() as u64, total, "every reading exactly once after de-duplication");
    assert!(first_seen.windows(2).all(|w| w[0] < w[1]), "in seq order");
    let (lo, hi) = (first_seen[0], *first_seen.last().unwrap());
    assert_eq!(hi - lo + 1, total, "no seq missing between {lo} and {hi}");
    gateway.stop().await;
}

/// A simulated HL7 monitor that numbers its messages (in the systolic value and the control id),
/// resends a message until it is acknowledged, and records which numbers were acknowledged.
async fn hl7_until_stopped(mut peer: PtyPeer, stop: Arc<AtomicBool>, acked: Arc<Mutex<Vec<u32>>>) {
    let template = String::from_utf8(fixture("pcd01_oru_r01_nibp_acme")).unwrap();
    let mut framer = MllpFramer::new(1 << 16);
    let mut buf = [0u8; 4096];
    let mut n: u32 = 1;
    while !stop.load(Ordering::Relaxed) {
        let msg = template.replacen("|120|", &format!("|{n}|"), 1).replace("MSGID1234", &format!("MSG{n}"));
        if tokio::time::timeout(Duration::from_millis(500), peer.send(&mllp_wrap(msg.as_bytes()))).await.is_err() {
            continue; // the daemon is down and the line is full: try again
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(400);
        'wait: while let Ok(Ok(got)) = tokio::time::timeout_at(deadline, peer.read(&mut buf)).await {
            framer.push(&buf[..got]);
            while let Ok(Some(frame)) = framer.next_frame() {
                if String::from_utf8_lossy(&frame).contains(&format!("MSA|AA|MSG{n}\r")) {
                    acked.lock().unwrap().push(n);
                    n += 1;
                    break 'wait;
                }
            }
        }
    }
}

fn spawn_daemon(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_spokegate"))
        .args(["run", "--config", config.to_str().unwrap(), "--log", "error"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_sigkills_lose_no_acknowledged_reading_and_never_repeat_a_seq() {
    let Rig { broker: _broker, gw, dev, config, mut sub } = Rig::hl7_monitor().await;
    let (stop, acked) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
    let device = tokio::spawn(hl7_until_stopped(dev.peer, stop.clone(), acked.clone()));
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..50 {
        let mut daemon = spawn_daemon(&config);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        tokio::time::sleep(Duration::from_millis(80 + rng % 250)).await;
        daemon.kill().unwrap(); // SIGKILL, wherever it is
        daemon.wait().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    device.await.unwrap();
    let acked: Vec<u32> = acked.lock().unwrap().clone();
    assert!(acked.len() >= 20, "the device got readings through between kills: {}", acked.len());

    // One last, undisturbed run delivers whatever is still queued.
    let _daemon = KillOnDrop(spawn_daemon(&config));
    let keys = gw.keys();
    let systolic = |b: &Body| {
        b.obs.as_ref().and_then(|o| o.iter().find(|o| o.code.mdc == 150021)).and_then(|o| o.val).map(|v| v as u32)
    };
    sub.until_signed("every acknowledged reading", &keys, |bodies| {
        let got: BTreeSet<u32> = bodies.iter().filter_map(systolic).collect();
        acked.iter().all(|n| got.contains(n))
    })
    .await;

    // A seq names one message only: every copy of a seq carries the same reading.
    let mut by_seq: BTreeMap<u64, u32> = BTreeMap::new();
    for b in sub.verified.iter().filter(|b| b.kind == BodyKind::Obs) {
        let v = systolic(b).unwrap();
        assert_eq!(*by_seq.entry(b.seq).or_insert(v), v, "seq {} reused for another reading", b.seq);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_reported_and_live_streaming_goes_on() {
    let broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let dev = PtyDevice::create(&gw.path().join("ttyVITALS")).unwrap();
    let config = gw.config(broker.port, &[("vitals-1", "vitals-kv", &dev.path)], "");
    let mut sub = Subscriber::connect(broker.port, "test-hub").await;
    // Files may not grow past 150 KB: the queue's write-ahead log hits the limit (EFBIG).
    let mut daemon = KillOnDrop(
        Command::new("prlimit")
            .args([
                "--fsize=150000",
                "--",
                env!("CARGO_BIN_EXE_spokegate"),
                "run",
                "--config",
                config.to_str().unwrap(),
                "--log",
                "error",
            ])
            .stderr(Stdio::null())
            .spawn()
            .expect("prlimit (util-linux)"),
    );
    let (stop, sent) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let streamer = stream_lines(dev.peer, Duration::from_millis(2), stop.clone(), sent.clone());
    let keys = gw.keys();
    sub.until("a status saying the queue cannot commit", |seen| {
        seen.iter().any(|(t, p)| {
            t.ends_with("/status")
                && serde_json::from_slice::<serde_json::Value>(p).is_ok_and(|s| s["queue"]["error"].is_string())
        })
    })
    .await;
    sub.until_signed("the readings so far", &keys, |_| true).await;
    let before = sub.verified.len();
    sub.until_signed("readings still arriving after the disk filled", &keys, |b| b.len() >= before + 200).await;
    stop.store(true, Ordering::Relaxed);
    let _ = streamer.await;
    assert!(daemon.0.try_wait().unwrap().is_none(), "the daemon is still running");
}
