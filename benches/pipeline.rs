//! Pipeline benchmark (a bench binary that prints figures; run with `cargo bench --bench pipeline`).
//!
//! The real `spokegate` binary runs as its own process against a real mosquitto on a loopback port;
//! a simulated text device (the `vitals-kv` profile, one reading per line) writes into a
//! pseudo-terminal; a subscriber in this process counts the signed `obs` messages as the broker
//! delivers them. Figures:
//!
//! 1. throughput: readings written as fast as the PTY takes them, until all arrive signed;
//! 2. at 500 readings/s for 10 s: gateway CPU per reading (from /proc/PID/stat), latency from the
//!    line written to the signed message received (p50/p95/p99/max);
//! 3. the gateway's resident memory (VmRSS, VmHWM from /proc/PID/status).

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use spokegate::sim::PtyDevice;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const THROUGHPUT_READINGS: u64 = 100_000;
/// Backlog built while the broker is down, then drained (`SPOKEGATE_BENCH_BACKLOG` overrides).
const BACKLOG: u64 = 1_000_000;
const PACED_RATE: u64 = 500;
const PACED_SECONDS: u64 = 10;

mod common;

use common::{cpu_seconds, cpu_split, percentile, start_broker, status_kib};
use spokegate::sim::proc_stats::MachineTimes;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let port = spokegate::sim::broker::free_port().unwrap();
    let broker_dir = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(broker_dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let conf = broker_dir.path().join("m.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nmax_queued_messages 0\n",
            broker_dir.path().display()
        ),
    )
    .unwrap();
    let mut broker = start_broker(&conf, port);

    // Subscriber: counts obs messages and stamps their arrival.
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let count = Arc::new(AtomicU64::new(0));
    let mut o = MqttOptions::new("bench-hub", "127.0.0.1", port);
    o.set_max_packet_size(1 << 20, 1 << 20);
    o.set_clean_session(false); // the broker keeps what arrives for it while it reconnects
    let (client, mut eventloop) = AsyncClient::new(o, 100);
    client.subscribe("spokegate/v1/+/+/dev/+/obs", QoS::AtLeastOnce).await.unwrap();
    {
        let (arrivals, count) = (arrivals.clone(), count.clone());
        tokio::spawn(async move {
            let _c = client;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(_))) => {
                        arrivals.lock().unwrap().push(Instant::now());
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
    }

    let mut dev = PtyDevice::create(&dir.path().join("ttyBENCH")).unwrap();
    let (gateway, config) = common::gateway_vitals(dir.path(), port, &dev.path);
    let pid = gateway.0.id();
    tokio::time::sleep(Duration::from_millis(500)).await; // let it connect before the clock starts
    let idle_rss = status_kib(pid, "VmRSS:");
    // Idle: what the gateway spends with nothing to do (timers, status), so the paced figure can be
    // read as idle + per-reading work.
    let idle_cpu0 = cpu_seconds(pid);
    let idle_t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(PACED_SECONDS)).await;
    let idle_cpu = cpu_seconds(pid) - idle_cpu0;
    println!(
        "idle for {:.1} s: gateway CPU {:.3} s = {:.2} % of one core",
        idle_t0.elapsed().as_secs_f64(),
        idle_cpu,
        idle_cpu * 100.0 / idle_t0.elapsed().as_secs_f64()
    );

    // 1. Throughput.
    let lines: Vec<u8> =
        (0..THROUGHPUT_READINGS).flat_map(|i| format!("SYS={}\n", 100 + i % 50).into_bytes()).collect();
    let cpu0 = cpu_seconds(pid);
    let machine0 = MachineTimes::now();
    let t0 = Instant::now();
    for chunk in lines.chunks(16 * 1024) {
        dev.peer.send(chunk).await.unwrap();
    }
    while count.load(Ordering::Relaxed) < THROUGHPUT_READINGS {
        assert!(t0.elapsed() < Duration::from_secs(300), "throughput run stalled at {}", count.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let (steal, _) = MachineTimes::now().since(&machine0);
    let peak_rss = status_kib(pid, "VmHWM:");
    println!("throughput: {THROUGHPUT_READINGS} signed readings PTY -> gateway -> mosquitto (QoS 1) -> subscriber in {elapsed:.2} s = {:.0} readings/s", THROUGHPUT_READINGS as f64 / elapsed);
    println!(
        "throughput: gateway CPU {cpu:.2} s = {:.1} us/reading ({:.0} % of one core); machine steal {steal:.0} %",
        cpu * 1e6 / THROUGHPUT_READINGS as f64,
        cpu * 100.0 / elapsed
    );

    // 2. Paced at 500 readings/s.
    arrivals.lock().unwrap().clear();
    let base = count.load(Ordering::Relaxed);
    let n = PACED_RATE * PACED_SECONDS;
    let mut sent = Vec::with_capacity(n as usize);
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / PACED_RATE));
    let perf = common::attach(pid);
    let cpu0 = cpu_seconds(pid);
    let (u0, s0) = cpu_split(pid);
    let machine0 = MachineTimes::now();
    let t0 = Instant::now();
    for i in 0..n {
        tick.tick().await;
        sent.push(Instant::now());
        dev.peer.send(format!("SYS={}\n", 100 + i % 50).as_bytes()).await.unwrap();
    }
    while count.load(Ordering::Relaxed) < base + n {
        assert!(t0.elapsed() < Duration::from_secs(120), "paced run stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let (u1, s1) = cpu_split(pid);
    let (steal, _) = MachineTimes::now().since(&machine0);
    common::detach(perf);
    let got = arrivals.lock().unwrap().clone();
    let mut lat: Vec<f64> = sent.iter().zip(&got).map(|(s, r)| r.duration_since(*s).as_secs_f64() * 1e3).collect();
    lat.sort_by(f64::total_cmp);
    println!(
        "paced {PACED_RATE}/s for {PACED_SECONDS} s: gateway CPU {:.1} us/reading ({:.2} % of one core; user {:.1} us, kernel {:.1} us); machine steal {steal:.0} %",
        cpu * 1e6 / n as f64,
        cpu * 100.0 / wall,
        (u1 - u0) * 1e6 / n as f64,
        (s1 - s0) * 1e6 / n as f64
    );
    println!(
        "paced latency line written -> signed message received (ms): p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
        percentile(&lat, 0.50),
        percentile(&lat, 0.95),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0)
    );
    println!(
        "gateway memory: RSS idle {} KiB, now {} KiB, peak (VmHWM) {} KiB (peak during throughput {} KiB)",
        idle_rss,
        status_kib(pid, "VmRSS:"),
        status_kib(pid, "VmHWM:"),
        peak_rss
    );

    // 3. Backlog: the broker is away while readings keep coming; then it returns and the queue drains.
    let backlog: u64 = std::env::var("SPOKEGATE_BENCH_BACKLOG").ok().and_then(|v| v.parse().ok()).unwrap_or(BACKLOG);
    let _ = Command::new("kill").args(["-TERM", &broker.0.id().to_string()]).status();
    let _ = broker.0.wait();
    let base = count.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let lines: Vec<u8> = (0..backlog).flat_map(|i| format!("SYS={}\n", 100 + i % 50).into_bytes()).collect();
    for chunk in lines.chunks(16 * 1024) {
        dev.peer.send(chunk).await.unwrap();
    }
    drop(lines);
    while common::queue_depth(&config).is_none_or(|d| d < backlog) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let fill = t0.elapsed().as_secs_f64();
    println!(
        "backlog: {backlog} readings committed durably with the broker away in {fill:.1} s = {:.0} readings/s",
        backlog as f64 / fill
    );
    let size = |f: &str| std::fs::metadata(dir.path().join(f)).map(|m| m.len()).unwrap_or(0);
    println!("backlog: queue files {} MiB", (size("queue.sqlite") + size("queue.sqlite-wal")) >> 20);
    broker = start_broker(&conf, port);
    let t0 = Instant::now();
    let mut peak_rss = 0;
    while count.load(Ordering::Relaxed) < base + backlog {
        assert!(t0.elapsed() < Duration::from_secs(900), "drain stalled at {}", count.load(Ordering::Relaxed) - base);
        peak_rss = peak_rss.max(status_kib(pid, "VmRSS:"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain = t0.elapsed().as_secs_f64();
    println!(
        "backlog: drained {backlog} to the subscriber in {drain:.1} s = {:.0} messages/s; gateway RSS while draining at most {peak_rss} KiB",
        backlog as f64 / drain
    );
    drop(broker);
    println!(
        "machine: {} cores; `cargo bench --bench pipeline`",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
}
