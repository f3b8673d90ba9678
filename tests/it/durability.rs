//! Nothing lost: broker outages, crashes (SIGKILL), a full disk. Real mosquitto, real binary.

use crate::e2e::fixture;
use crate::harness::*;
use spokegate::framing::{mllp_wrap, Framer, MllpFramer};
use spokegate::model::{Body, BodyKind};
use spokegate::sim::{PtyDevice, PtyPeer};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
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

/// The sourced NIBP message numbered `n`: the systolic value and the control id carry it.
pub fn numbered_hl7(n: u32) -> Vec<u8> {
    let template = String::from_utf8(fixture("pcd01_oru_r01_nibp_acme")).unwrap();
    mllp_wrap(template.replacen("|120|", &format!("|{n}|"), 1).replace("MSGID1234", &format!("MSG{n}")).as_bytes())
}

/// A simulated HL7 monitor that numbers its messages (in the systolic value and the control id),
/// resends a message until it is acknowledged, and records which numbers were acknowledged.
async fn hl7_until_stopped(mut peer: PtyPeer, stop: Arc<AtomicBool>, acked: Arc<Mutex<Vec<u32>>>) {
    let mut framer = MllpFramer::new(1 << 16);
    let mut buf = [0u8; 4096];
    let mut n: u32 = 1;
    while !stop.load(Ordering::Relaxed) {
        let msg = numbered_hl7(n);
        if tokio::time::timeout(Duration::from_millis(500), peer.send(&msg)).await.is_err() {
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

    // A seq names one message only: every copy of a seq is the same signed message, byte for byte
    // (a resent message is the stored one; a reused number would carry another body, another
    // signature). And across the restarts, seq order is the order the device sent in.
    let mut by_seq: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut reading_of: BTreeMap<u64, u32> = BTreeMap::new();
    for (t, p) in sub.seen.iter().filter(|(t, _)| t.ends_with("/obs")) {
        let Ok(spokegate::hub::HubMessage::Signed(b)) = spokegate::hub::check(t, p, &keys) else { panic!("{t}") };
        let first = by_seq.entry(b.seq).or_insert_with(|| p.clone());
        assert!(first == p, "seq {} carries two different messages", b.seq);
        reading_of.insert(b.seq, systolic(&b).unwrap());
    }
    let in_seq_order: Vec<u32> = reading_of.values().copied().collect();
    assert!(
        in_seq_order.windows(2).all(|w| w[0] <= w[1]),
        "a later reading never has a lower seq (equal: the device sent it again after a kill)"
    );
    assert!(by_seq.len() >= acked.len());
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

/// A small tmpfs the test mounts (the tests run as root, as CI does), unmounted when dropped.
struct Tmpfs {
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(kib: u32) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fs");
        std::fs::create_dir(&path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k,mode=0700"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("mount (util-linux)");
        assert!(status.success(), "mounting a tmpfs needs root (CI runs the tests as root)");
        Tmpfs { path, _dir: dir }
    }

    /// Writes a file until the file system is full; its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let filler = self.path.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0x5a; 16 * 1024];
        while f.write_all(&block).and_then(|()| f.sync_data()).is_ok() {}
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Reads what the monitor got back within `wait`: the MSA control ids acknowledged AA.
async fn acks_within(peer: &mut PtyPeer, wait: Duration) -> Vec<String> {
    let mut framer = MllpFramer::new(1 << 16);
    let mut buf = [0u8; 4096];
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, peer.read(&mut buf)).await {
        framer.push(&buf[..n]);
        while let Ok(Some(f)) = framer.next_frame() {
            let text = String::from_utf8_lossy(&f).to_string();
            if let Some(msa) = text.split('\r').find(|s| s.starts_with("MSA|AA|")) {
                out.push(msa.split('|').nth(2).unwrap_or("").to_string());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_really_full_file_system_withholds_acknowledgements_and_commits_resume_when_space_returns() {
    let broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let fs = Tmpfs::mount(1024);
    // The state directory (key, queue, seq reservation) on the small file system.
    std::fs::copy(gw.path().join("gateway.key"), fs.path.join("gateway.key")).unwrap();
    let mut dev = PtyDevice::create(&gw.path().join("ttyMON")).unwrap();
    let config = gw.path().join("full.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nsite = \"test-site\"\nid = \"gw-test\"\nstate_dir = \"{}\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\n\
             [[device]]\nid = \"monitor-1\"\nprofile = \"hl7-pcd01\"\nserial = {{ path = \"{}\" }}\n",
            fs.path.display(),
            broker.port,
            dev.path.display()
        ),
    )
    .unwrap();
    let mut sub = Subscriber::connect(broker.port, "test-hub").await;
    let gateway = RunningGateway::start(&config, gw.key());
    let keys = gw.keys();
    let arrived = |n: u32| {
        move |bodies: &[Body]| {
            bodies.iter().any(|b| b.obs.as_ref().is_some_and(|o| o.iter().any(|x| x.val == Some(f64::from(n)))))
        }
    };

    // Space: committed, then acknowledged.
    dev.peer.send(&numbered_hl7(1001)).await.unwrap();
    assert_eq!(read_acks(&mut dev.peer, 1).await, ["AA"]);
    sub.until_signed("reading 1001", &keys, arrived(1001)).await;

    // The file system is full: the reading still streams (live), but the device hears nothing, so
    // it keeps it and sends it again; the status says why.
    let filler = fs.fill();
    dev.peer.send(&numbered_hl7(1002)).await.unwrap();
    sub.until_signed("reading 1002, streamed live", &keys, arrived(1002)).await;
    sub.until("a status saying the queue cannot commit", |seen| {
        seen.iter().any(|(t, p)| {
            t.ends_with("/status")
                && serde_json::from_slice::<serde_json::Value>(p).is_ok_and(|s| s["queue"]["error"].is_string())
        })
    })
    .await;
    // The live message went out after the failed commit, and an acknowledgement would have gone
    // before it: none came.
    let acks = acks_within(&mut dev.peer, Duration::from_millis(100)).await;
    assert!(!acks.iter().any(|id| id == "MSG1002"), "acknowledged while nothing could be stored: {acks:?}");

    // Space returns: the next reading is committed and acknowledged again.
    std::fs::remove_file(filler).unwrap();
    dev.peer.send(&numbered_hl7(1003)).await.unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut acked = Vec::new();
    while !acked.iter().any(|id| id == "MSG1003") {
        assert!(tokio::time::Instant::now() < deadline, "commits resumed: {acked:?}");
        acked.extend(acks_within(&mut dev.peer, Duration::from_millis(200)).await);
    }
    sub.until_signed("reading 1003", &keys, arrived(1003)).await;
    // The hub hears at once that the queue is healthy again (a status without an error, after the
    // one with it).
    sub.until("a status saying the queue commits again", |seen| {
        let statuses: Vec<serde_json::Value> = seen
            .iter()
            .filter(|(t, _)| t.ends_with("/status"))
            .filter_map(|(_, p)| serde_json::from_slice(p).ok())
            .collect();
        let failing = statuses.iter().position(|s| s["queue"]["error"].is_string());
        failing.is_some_and(|i| statuses[i..].iter().any(|s| s["queue"].is_object() && s["queue"]["error"].is_null()))
    })
    .await;
    gateway.stop().await;
    // It was committed: the queue holds nothing undelivered and numbers kept going up.
    let st = spokegate::queue::Queue::inspect(&fs.path).unwrap();
    assert_eq!(st.depth, 0);
}

/// An ECG gateway whose broker is away: a persistent broker, stopped (the uplink is down:
/// everything waits in the queue), a hub's persistent subscriber (its session outlives the outage,
/// so what the gateway sends the moment the broker is back reaches it, however soon that is), and
/// a gateway configuration with MIT-BIH record 100 on a PTY (`mitbih-cyton`) plus `sections`.
struct EcgOutage {
    broker: Mosquitto,
    sub: Subscriber,
    gw: GatewayDir,
    ecg: PtyDevice,
    config: PathBuf,
}

impl EcgOutage {
    async fn start(hub: &str, sections: &str) -> EcgOutage {
        let mut broker = Mosquitto::start_persistent();
        let sub = Subscriber::connect_persistent(broker.port, hub).await;
        broker.stop();
        let gw = GatewayDir::new();
        let profiles = gw.path().join("profiles");
        spokegate::sim::recordings::write_wave_profiles(&profiles).unwrap();
        let ecg = PtyDevice::create(&gw.path().join("ttyECG")).unwrap();
        let config = gw.config_with(
            broker.port,
            &[("ecg-1", "mitbih-cyton", &ecg.path)],
            &format!("profiles_dir = \"{}\"", profiles.display()),
            sections,
        );
        EcgOutage { broker, sub, gw, ecg, config }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waveforms_past_their_cap_are_evicted_and_the_hub_is_told() {
    use spokegate::sim::waves;
    let EcgOutage { mut broker, mut sub, gw, mut ecg, config } =
        EcgOutage::start("test-hub", "[queue]\nwave_max_mb = 1\n").await;
    let gateway = RunningGateway::start(&config, gw.key());
    // Ten minutes of ECG in a burst: well over a megabyte of signed chunks.
    let mit = waves::mitbih_100();
    let rows = mit.rows();
    for block in (0..rows * 10).collect::<Vec<_>>().chunks(5_000) {
        let bytes: Vec<u8> =
            block.iter().flat_map(|&i| spokegate::decode::cyton::encode((i % 256) as u8, mit.row(i % rows))).collect();
        ecg.peer.send(&bytes).await.unwrap();
    }
    let st = until_queue(gw.path(), "the cap enforced", Duration::from_secs(30), |q| q.dropped > 0).await;
    assert!(st.bytes <= 1 << 20, "the waveform class is back under its cap: {} bytes", st.bytes);
    // The hub hears what was dropped once the broker is back.
    broker.restart();
    let keys = gw.keys();
    sub.until_signed("a queue-evicted event", &keys, |bodies| {
        bodies.iter().any(|b| b.event.as_ref().is_some_and(|e| e.code == "queue-evicted"))
    })
    .await;
    let e = sub.verified.iter().find_map(|b| b.event.clone().filter(|e| e.code == "queue-evicted")).unwrap();
    let d = e.data.unwrap();
    assert_eq!((d["class"].as_str(), d["reason"].as_str()), (Some("wave"), Some("cap")));
    assert!(d["count"].as_u64().unwrap() > 0);
    gateway.stop().await;
}

/// libfaketime, which lets one process see a wall clock we step (Debian's `faketime`, installed
/// by `.ci/setup`); the time since boot and tokio's monotonic clock stay real.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// A spoke PC without an RTC battery runs on a wrong clock until NTP steps it. The real binary,
/// its wall clock stepped ten days forward by libfaketime while the broker is away: the ECG
/// chunks it committed before the step are minutes old, not ten days, so the wave TTL (6 h) does
/// not evict them; they all reach the hub, with a signed `clock-stepped` event naming the step
/// and exactly the messages signed on the old clock, delivered ones included.
/// (Before, the next eviction dropped them as ten days old: `queue-evicted`, chunks missing.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waveforms_committed_before_a_clock_step_are_not_evicted_and_the_step_is_reported() {
    use spokegate::sim::waves;
    assert!(Path::new(LIBFAKETIME).exists(), "{LIBFAKETIME} is missing: run .ci/setup (Debian package faketime)");
    let EcgOutage { mut broker, mut sub, gw, mut ecg, config } = EcgOutage::start("clock-hub", "").await;
    let offset = gw.path().join("faketime");
    std::fs::write(&offset, "+0\n").unwrap();
    let _gateway = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_spokegate"))
            .args(["run", "--config", config.to_str().unwrap()])
            .env("LD_PRELOAD", LIBFAKETIME)
            .env("FAKETIME_TIMESTAMP_FILE", &offset)
            .env("FAKETIME_CACHE_DURATION", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mit = waves::mitbih_100();
    let keys = gw.keys();
    let rows_signed = |bodies: &[spokegate::model::Body]| -> u64 {
        let chunks: std::collections::BTreeSet<(u64, u32)> =
            bodies.iter().filter_map(|b| b.wave.as_ref().map(|w| (w.i0, w.n))).collect();
        chunks.iter().map(|c| u64::from(c.1)).sum()
    };
    until_queue(gw.path(), "the daemon answers", PATIENCE, |_| true).await;
    // A first stretch delivered at once: gone from the queue before the step, so only the look at
    // the clock after each commit knows it was signed on the old clock.
    broker.restart();
    ecg.peer.send(&waves::WireProtocol::Cyton.stream(&mit, 0, 360, |_| false)).await.unwrap();
    sub.until_signed("the first stretch delivered", &keys, |bodies| rows_signed(bodies) >= 360).await;
    until_queue(gw.path(), "the first stretch deleted from the queue", PATIENCE, |q| q.depth == 0).await;
    broker.stop();
    ecg.peer.send(&waves::WireProtocol::Cyton.stream(&mit, 360, 1080, |_| false)).await.unwrap();
    let before = until_queue(gw.path(), "ECG chunks committed", PATIENCE, |q| q.depth >= 2).await;
    // NTP steps the clock ten days forward. Once the daemon's clock shows it, more ECG on the
    // new clock (none of it may be in the step's range, whether the eviction round looked at the
    // clock before it or after); then wait until the queue has either aged the waiting chunks by
    // the time that passed (their age is seconds again) or evicted them as ten days old.
    std::fs::write(&offset, "+10d\n").unwrap();
    let stepped_after = spokegate::clock::now_micros() + 9 * 86_400_000_000;
    let clock_of =
        |s: &std::collections::BTreeMap<String, serde_json::Value>| s.get("clock").and_then(|c| c["now_us"].as_i64());
    until_status(gw.path(), "the daemon's clock stepped", PATIENCE, |s| clock_of(s).is_some_and(|t| t > stepped_after))
        .await;
    ecg.peer.send(&waves::WireProtocol::Cyton.stream(&mit, 1080, 1440, |_| false)).await.unwrap();
    let status = until_status(gw.path(), "the daemon saw the step", PATIENCE, |s| {
        queue_of(s).is_some_and(|q| q.dropped > 0 || q.oldest_age_s.is_some_and(|a| a < 3600.0))
    })
    .await;
    let after = queue_of(&status).unwrap();
    assert_eq!(after.dropped, 0, "chunks committed before the step were evicted: {after:?}");
    broker.restart();
    sub.until_signed("every chunk and the clock-stepped event", &keys, |bodies| {
        let rows = rows_signed(bodies);
        let evicted = bodies.iter().any(|b| b.event.as_ref().is_some_and(|e| e.code == "queue-evicted"));
        let stepped = bodies.iter().any(|b| b.event.as_ref().is_some_and(|e| e.code == "clock-stepped"));
        evicted || (rows >= 1440 && stepped)
    })
    .await;
    let bodies = sub.bodies(&keys);
    assert!(!bodies.iter().any(|b| b.event.as_ref().is_some_and(|e| e.code == "queue-evicted")), "an eviction");
    let step = bodies.iter().find_map(|b| b.event.clone().filter(|e| e.code == "clock-stepped")).unwrap();
    let d = step.data.unwrap();
    let ten_days = 10 * 86_400_000_000_i64;
    assert!((d["step_us"].as_i64().unwrap() - ten_days).abs() < 2_000_000, "{d:?}");
    let first_seq = bodies.iter().filter(|b| b.wave.is_some()).map(|b| b.seq).min().unwrap();
    assert!(d["seq_from"].as_u64().unwrap() <= first_seq, "{d:?}: the first chunk is seq {first_seq}");
    assert!(d["queued"].as_u64().unwrap() >= before.depth, "{d:?}: {before:?} were waiting");
    // The range is exactly the messages whose gateway time was on the old clock (a hub adds the
    // step to those and to no other).
    let (from, to) = (d["seq_from"].as_u64().unwrap(), d["seq_to"].as_u64().unwrap());
    for b in &bodies {
        let on_old_clock = b.t < stepped_after;
        assert_eq!(on_old_clock, (from..=to).contains(&b.seq), "seq {} at {} against {d:?}", b.seq, b.t);
    }
    // Every chunk arrived: from sample 0, with no gap.
    let mut chunks: Vec<(u64, u32)> = bodies.iter().filter_map(|b| b.wave.as_ref().map(|w| (w.i0, w.n))).collect();
    chunks.sort();
    chunks.dedup();
    assert!(chunks.windows(2).all(|p| p[0].0 + u64::from(p[0].1) == p[1].0), "a gap: {chunks:?}");
}

/// A monitor that stops reading what the gateway writes back (its ACKs pile up until the line
/// takes no more) must not stall the gateway: writes to a device give up after
/// `transport::WRITE_TIMEOUT`, the link is reopened, and the stop completes. (Found as a daemon
/// left running for hours after a test run: its stop waited forever on an ACK.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_stops_reading_its_acknowledgements_does_not_stall_the_stop() {
    let broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let dev = PtyDevice::create(&gw.path().join("ttyMON")).unwrap();
    let config = gw.config_with(broker.port, &[("monitor-1", "hl7-pcd01", &dev.path)], "", "");
    let gateway = RunningGateway::start(&config, gw.key());
    let (_reader, mut writer) = dev.peer.split(); // the reading side is never read
    let total = 3000;
    let burst: Vec<u8> = (1..=total).flat_map(numbered_hl7).collect();
    let _sender = tokio::spawn(async move {
        let _ = writer.send(&burst).await;
        writer
    });
    // Wait until the gateway is stuck on the full line: readings stop growing short of the total.
    let readings = || gateway.counters.devices["monitor-1"].readings.load(Ordering::Relaxed);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut last = (readings(), tokio::time::Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = readings();
        assert!(now < u64::from(total), "the line never filled: every reading was taken");
        if now != last.0 || now == 0 {
            last = (now, tokio::time::Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(1) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the gateway never stalled on the line");
    }
    // The stop completes (RunningGateway::stop fails after PATIENCE).
    let t = std::time::Instant::now();
    gateway.stop().await;
    assert!(t.elapsed() < spokegate::transport::WRITE_TIMEOUT + Duration::from_secs(5), "{:?}", t.elapsed());
}
