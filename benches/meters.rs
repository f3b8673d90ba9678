//! A meter that must be asked (`cargo bench --bench meters`): the real `spokegate` binary, a
//! real mosquitto and a simulated OneTouch Ultra 2 on a pseudo-terminal holding 500 stored
//! readings, its replies paced as a 9600-baud 8N1 line carries them (10 bits a byte). The gateway
//! asks for firmware, serial number, clock and the dump on connect. Figures: time from the
//! gateway's start to the 500th reading at a subscriber, the dump's share of it (the bytes on the
//! line at 9600 baud), the gateway's CPU for the download, and its RSS; then a second
//! `spokegate fetch` that finds nothing new.
//!
//! The stored readings are generated in the meter's own line format (values 40-400 mg/dL, one
//! every 3 hours back from now); the bench measures transfer and processing, not values.

use spokegate::sim::onetouch::{self, MeterState};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::{cpu_seconds, status_kib};

const READINGS: usize = 500;
const BAUD: u32 = 9600;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = common::mosquitto(dir.path());
    let arrivals = common::load::subscriber(port, "bench-hub", &["spokegate/v1/bench/gw-bench/dev/+/obs"]).await;
    let dev = spokegate::sim::PtyDevice::create(&dir.path().join("ttyUSB-meter")).unwrap();
    let now = time::OffsetDateTime::now_utc().to_offset(time::macros::offset!(+05:30));
    let clock = time::PrimitiveDateTime::new(now.date(), now.time());
    let records: Vec<String> = (0..READINGS)
        .map(|i| onetouch::record(clock - time::Duration::hours(3 * (i as i64 + 1)), 40 + (i * 37 % 361) as u16))
        .collect();
    let dump_bytes: usize = records.iter().map(|r| onetouch::line(r).len()).sum();
    let mut state = MeterState::new(records, clock);
    state.baud = Some(BAUD);
    let meter = Arc::new(Mutex::new(state));
    tokio::spawn(onetouch::serve(meter.clone(), dev.peer));

    SigningKey::generate(&dir.path().join("gateway.key")).unwrap();
    let config = dir.path().join("spokegate.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nsite = \"bench\"\nid = \"gw-bench\"\nstate_dir = \"{}\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\n[[device]]\nid = \"glucose-1\"\nprofile = \"onetouch-ultra2\"\nserial = {{ path = \"{}\" }}\n",
            dir.path().display(),
            dev.path.display()
        ),
    )
    .unwrap();
    let t0 = Instant::now();
    let gateway = common::gateway(&config, &[]);
    let pid = gateway.0.id();
    assert!(arrivals.until(READINGS as u64, Duration::from_secs(300)).await, "500 readings in time");
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid);
    let line_secs = dump_bytes as f64 * 10.0 / f64::from(BAUD);
    println!(
        "OneTouch Ultra 2 at {BAUD} baud, {READINGS} stored readings: all at the subscriber {secs:.1} s after the gateway started"
    );
    println!("  the dump is {dump_bytes} bytes = {line_secs:.1} s on a {BAUD}-baud line (the meter's pace)");
    println!(
        "  gateway CPU {:.0} ms in all ({:.0} us per reading, start-up included); RSS {} KiB",
        cpu * 1e3,
        cpu * 1e6 / READINGS as f64,
        status_kib(pid, "VmHWM:")
    );
    // Asked again: nothing new is sent.
    let before = arrivals.now();
    let t1 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_spokegate"))
        .args(["fetch", "glucose-1", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    println!(
        "  spokegate fetch again: {:.1} s, {} new readings sent ({})",
        t1.elapsed().as_secs_f64(),
        arrivals.now() - before,
        String::from_utf8_lossy(&out.stdout).trim()
    );
    println!(
        "machine: {} cores; `cargo bench --bench meters`",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    drop(gateway);
}

use spokegate::sign::SigningKey;
