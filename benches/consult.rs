//! The v1.1 protocol, measured (`cargo bench --bench consult`): the real `spokegate` binary as the
//! gateway, a real mosquitto, and the real `spokegate watch` as the hub, storing every message in
//! a file (JSON lines, synced to disk before each acknowledgement) and acknowledging with its hub
//! key. Figures:
//!
//! 1. command round trip: a hub signs `status`, the gateway verifies, checks replay in its store,
//!    answers with a signed reply; from publish to the verified `done` (p50/p99);
//! 2. throughput of 100,000 readings from a PTY to the hub's file, under broker delivery and under
//!    hub delivery (the queue frees a message only on the hub's signed acknowledgement);
//! 3. a backlog of 100,000 messages built while no hub listens (hub delivery), drained into the
//!    hub once it starts: messages stored and acknowledged per second.

use spokegate::sim::PtyDevice;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::{cpu_seconds, percentile, Proc};

const READINGS: u64 = 100_000;
const ROUND_TRIPS: usize = 200;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(run());
}

struct Setup {
    dir: tempfile::TempDir,
    port: u16,
    _broker: Proc,
    hub_key: PathBuf,
    gw_jwk: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    // A broker that queues without limit for a subscriber that falls behind, so that broker
    // delivery loses nothing either and the two deliveries are compared on throughput alone.
    let port = spokegate::sim::broker::free_port().unwrap();
    let conf = dir.path().join("m.conf");
    // Nagle off at the broker too (`set_tcp_nodelay`), as the README recommends for a hub's broker.
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nset_tcp_nodelay true\n"),
    )
    .unwrap();
    let broker = common::start_broker(&conf, port);
    let hub_key = dir.path().join("hub.key");
    let hub = spokegate::sign::SigningKey::generate_hub(&hub_key, "hub-bench").unwrap();
    let hub_jwk = dir.path().join("hub.jwk");
    let bound = spokegate::sign::BoundKey {
        key: hub.public().clone(),
        binding: spokegate::sign::Binding::Hub { hub: "hub-bench".into() },
    };
    std::fs::write(&hub_jwk, bound.to_jwk()).unwrap();
    let gw_key = spokegate::sign::SigningKey::generate(&dir.path().join("gateway.key")).unwrap();
    let gw_jwk = dir.path().join("gateway.jwk");
    let bound = spokegate::sign::BoundKey {
        key: gw_key.public().clone(),
        binding: spokegate::sign::Binding::Gateway { site: "bench".into(), gw: "gw-bench".into() },
    };
    std::fs::write(&gw_jwk, bound.to_jwk()).unwrap();
    Setup { dir, port, _broker: broker, hub_key, gw_jwk }
}

/// A fresh state directory and configuration for one run.
fn gateway_config(s: &Setup, run: &str, delivery: &str, dev: &Path) -> PathBuf {
    let state = s.dir.path().join(run);
    std::fs::create_dir_all(&state).unwrap();
    std::fs::copy(s.dir.path().join("gateway.key"), state.join("gateway.key")).unwrap();
    let config = state.join("spokegate.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nsite = \"bench\"\nid = \"gw-bench\"\nstate_dir = \"{}\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\n\
             [hub]\nkeys = [\"{}\"]\ndelivery = \"{delivery}\"\n[[device]]\nid = \"vitals-1\"\nprofile = \"vitals-kv\"\nserial = {{ path = \"{}\" }}\n",
            state.display(),
            s.port,
            s.dir.path().join("hub.jwk").display(),
            dev.display()
        ),
    )
    .unwrap();
    config
}

/// `spokegate watch` storing every message in `out`, acknowledging with the hub key.
fn hub(s: &Setup, out: &Path) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_spokegate"))
            .args(["watch", "--json", "--log", "warn", "--url", &format!("mqtt://127.0.0.1:{}", s.port)])
            .arg("--key")
            .arg(&s.gw_jwk)
            .arg("--hub-key")
            .arg(&s.hub_key)
            .arg("--out")
            .arg(out)
            .spawn()
            .unwrap(),
    )
}

/// Counts `obs` lines in a growing file, reading only what is new.
struct LineCounter {
    path: PathBuf,
    offset: u64,
    count: u64,
}

impl LineCounter {
    fn new(path: &Path) -> Self {
        Self { path: path.to_path_buf(), offset: 0, count: 0 }
    }

    fn poll(&mut self) -> u64 {
        use std::io::{Read, Seek, SeekFrom};
        if let Ok(mut f) = std::fs::File::open(&self.path) {
            let _ = f.seek(SeekFrom::Start(self.offset));
            let mut buf = Vec::new();
            let _ = f.read_to_end(&mut buf);
            // Only whole lines.
            let end = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let text = String::from_utf8_lossy(&buf[..end]);
            self.count +=
                text.lines().filter(|l| l.contains("\"verdict\":\"verified\"") && l.contains("/obs\"")).count() as u64;
            self.offset += end as u64;
        }
        self.count
    }
}

async fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn lines(n: u64) -> Vec<u8> {
    (0..n).flat_map(|i| format!("SYS={}\n", 100 + i % 50).into_bytes()).collect()
}

async fn run() {
    let s = setup();
    println!("v1.1 protocol benchmark (real spokegate binary, mosquitto, spokegate watch as the hub)");

    // 1. Command round trip.
    {
        let dev = PtyDevice::create(&s.dir.path().join("ttyRTT")).unwrap();
        let config = gateway_config(&s, "rtt", "broker", &dev.path);
        let _gw = common::gateway(&config, &[]);
        let key = spokegate::sign::SigningKey::load(&s.hub_key).unwrap();
        let keys = spokegate::sign::KeyRing::load(std::slice::from_ref(&s.gw_jwk)).unwrap();
        let url = spokegate::hub::BrokerLogin::plain(
            spokegate::config::MqttUrl::parse(&format!("mqtt://127.0.0.1:{}", s.port)).unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut times = Vec::new();
        for _ in 0..ROUND_TRIPS {
            let ask = spokegate::hub::ask::Ask {
                broker: &url,
                key: &key,
                site: "bench",
                gw: "gw-bench",
                name: "status",
                args: Default::default(),
                keys: &keys,
                timeout: Duration::from_secs(10),
            };
            let t = Instant::now();
            let replies = spokegate::hub::ask::ask(ask, |_| {}).await.unwrap();
            let rtt = t.elapsed();
            assert_eq!(spokegate::hub::ask::final_state(&replies), Some(spokegate::model::ReplyState::Done));
            times.push(rtt.as_secs_f64() * 1000.0);
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "1. command round trip (hub signs `status` -> verified signed reply `done`, {ROUND_TRIPS} commands, each on a new MQTT connection): p50 {:.1} ms, p99 {:.1} ms",
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
    }

    // 2. Throughput, broker delivery vs hub delivery.
    let mut rates = Vec::new();
    for delivery in ["broker", "hub"] {
        let mut dev = PtyDevice::create(&s.dir.path().join(format!("tty-{delivery}"))).unwrap();
        let config = gateway_config(&s, &format!("tp-{delivery}"), delivery, &dev.path);
        let out = s.dir.path().join(format!("hub-{delivery}.jsonl"));
        let _hub = hub(&s, &out);
        let gw = common::gateway(&config, &[]);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut counter = LineCounter::new(&out);
        let cpu0 = cpu_seconds(gw.0.id());
        let t = Instant::now();
        dev.peer.send(&lines(READINGS)).await.unwrap();
        until("every reading stored at the hub", Duration::from_secs(300), || counter.poll() >= READINGS).await;
        let secs = t.elapsed().as_secs_f64();
        let cpu = cpu_seconds(gw.0.id()) - cpu0;
        let rate = READINGS as f64 / secs;
        rates.push(rate);
        println!(
            "2. {delivery} delivery: {READINGS} readings PTY -> gateway -> mosquitto -> hub file in {secs:.2} s = {rate:.0} readings/s; gateway CPU {:.1} µs/reading",
            cpu / READINGS as f64 * 1e6
        );
    }
    println!("   hub delivery / broker delivery throughput: {:.0} %", rates[1] / rates[0] * 100.0);

    // 3. Backlog drain into a hub that starts late.
    {
        let mut dev = PtyDevice::create(&s.dir.path().join("tty-backlog")).unwrap();
        let config = gateway_config(&s, "backlog", "hub", &dev.path);
        let _gw = common::gateway(&config, &[]);
        tokio::time::sleep(Duration::from_millis(500)).await;
        dev.peer.send(&lines(READINGS)).await.unwrap();
        until("the backlog committed", Duration::from_secs(300), || {
            common::queue_depth(&config).is_some_and(|d| d >= READINGS)
        })
        .await;
        let out = s.dir.path().join("hub-backlog.jsonl");
        let t = Instant::now();
        let _hub = hub(&s, &out);
        let mut counter = LineCounter::new(&out);
        let mut first: Option<Instant> = None;
        until("the backlog drained into the hub", Duration::from_secs(300), || {
            if first.is_none() && counter.poll() > 0 {
                first = Some(Instant::now());
            }
            common::queue_depth(&config) == Some(0)
        })
        .await;
        let secs = t.elapsed().as_secs_f64();
        let flowing = first.map_or(secs, |f| f.elapsed().as_secs_f64());
        let stored = counter.poll();
        println!(
            "3. backlog of {READINGS} messages (hub delivery, no hub listening) drained into the hub's file: {:.0} messages/s from the first one stored ({flowing:.2} s), {:.0}/s from the hub's start ({secs:.2} s, its start and the gateway's probe included); {stored} obs lines stored",
            READINGS as f64 / flowing,
            READINGS as f64 / secs
        );
    }
}
