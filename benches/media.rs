//! Images over a thin link (`cargo bench --bench media`): the real `spokegate` binary with a
//! camera device (the simulated camera serving a JPEG file through the same trait as V4L2) and a
//! 12-lead ECG (PTB-XL 00001 replayed at its real rate on a pseudo-terminal), a real mosquitto and
//! the real `spokegate watch --record` as the hub. For a 1 MB and a 5 MB JPEG, on loopback and at
//! 256 kbit/s (the gateway's own cap, `[mqtt] max_bytes_per_sec = 32000`): time from the
//! `capture` request to the image whole (SHA-256 checked) at the hub, the ECG chunks' delay past
//! their window while the image goes (p50/p99/max), and the gateway's CPU and RSS during it.
//!
//! The images are the BCCD blood smear scaled up and encoded at quality 100 (made here; only their
//! size matters).

use spokegate::sim::{recordings, waves, PtyDevice};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
#[path = "../tests/it/large_still.rs"]
mod large_still;

use common::{cpu_seconds, percentile, status_kib};

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(run());
}

/// Wave chunks as they arrive: (arrival µs, t0 µs, window s).
fn wave_arrivals(port: u16, keys: spokegate::hub::KeyRing) -> std::sync::Arc<std::sync::Mutex<Vec<(i64, i64, f64)>>> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = seen.clone();
    let mut o = MqttOptions::new("bench-waves", "127.0.0.1", port);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(o, 100);
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.try_subscribe("spokegate/v1/+/+/dev/+/wave/#", QoS::AtLeastOnce);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let at = spokegate::clock::now_micros();
                    if let Ok(spokegate::hub::HubMessage::Signed(b)) =
                        spokegate::hub::check(&p.topic, &p.payload, &keys)
                    {
                        if let Some(w) = &b.wave {
                            out.lock().unwrap().push((at, w.t0, w.n as f64 / w.rate));
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    seen
}

async fn until_image(record: &Path, n: usize, limit: Duration) -> bool {
    let dir = record.join("media/bench/gw-bench/scope");
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let count = std::fs::read_dir(&dir)
            .map(|d| d.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "jpg")).count())
            .unwrap_or(0);
        if count >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

async fn scenario(label: &str, image: &[u8], cap: Option<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = common::mosquitto(dir.path());
    let key = spokegate::sign::SigningKey::generate(&dir.path().join("gateway.key")).unwrap();
    let jpeg = dir.path().join("field.jpg");
    std::fs::write(&jpeg, image).unwrap();
    let profiles = dir.path().join("profiles");
    recordings::write_wave_profiles(&profiles).unwrap();
    let ecg = PtyDevice::create(&dir.path().join("ttyECG12")).unwrap();
    let config = dir.path().join("spokegate.toml");
    let cap_line = cap.map(|c| format!("max_bytes_per_sec = {c}\n")).unwrap_or_default();
    std::fs::write(
        &config,
        format!(
            "[gateway]\nsite = \"bench\"\nid = \"gw-bench\"\nstate_dir = \"{d}\"\nprofiles_dir = \"{p}\"\n[mqtt]\n{cap_line}url = \"mqtt://127.0.0.1:{port}\"\n[media]\npart_kb = 8\n\
             [[device]]\nid = \"ecg-12\"\nprofile = \"ptbxl-text\"\nserial = {{ path = \"{e}\" }}\n\
             [[device]]\nid = \"scope\"\nprofile = \"usb-microscope\"\ncamera = {{ path = \"sim:{j}\" }}\n",
            d = dir.path().display(),
            p = profiles.display(),
            e = ecg.path.display(),
            j = jpeg.display(),
        ),
    )
    .unwrap();
    let bound = spokegate::sign::BoundKey {
        key: key.public().clone(),
        binding: spokegate::sign::Binding::Gateway { site: "bench".into(), gw: "gw-bench".into() },
    };
    let jwk = dir.path().join("gateway.jwk");
    std::fs::write(&jwk, bound.to_jwk()).unwrap();
    let record = dir.path().join("record");
    let _hub = common::Proc(
        Command::new(env!("CARGO_BIN_EXE_spokegate"))
            .args(["watch", "--url", &format!("mqtt://127.0.0.1:{port}"), "--key"])
            .arg(&jwk)
            .arg("--record")
            .arg(&record)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let keys = spokegate::hub::KeyRing::gateway(key.public(), "bench", "gw-bench");
    let waves_seen = wave_arrivals(port, keys);
    let gateway = common::gateway(&config, &[]);
    let pid = gateway.0.id();
    let replay = waves::spawn_looped(ecg.peer, waves::ptbxl_00001(), waves::WireProtocol::TextRows);
    // The ECG flows before the image is asked for.
    let deadline = Instant::now() + Duration::from_secs(30);
    while waves_seen.lock().unwrap().len() < 20 {
        assert!(Instant::now() < deadline, "ECG at the hub");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    let from = spokegate::clock::now_micros();
    let out = Command::new(env!("CARGO_BIN_EXE_spokegate"))
        .args(["capture", "scope", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let committed = t0.elapsed().as_secs_f64();
    assert!(until_image(&record, 1, Duration::from_secs(900)).await, "{label}: image at the hub");
    let secs = t0.elapsed().as_secs_f64();
    let until = spokegate::clock::now_micros();
    let cpu = cpu_seconds(pid) - cpu0;
    let rss = status_kib(pid, "VmHWM:");
    replay.abort();
    let mut late: Vec<f64> = waves_seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, _, _)| (from..=until).contains(at))
        .map(|(at, t0, window)| (at - t0) as f64 / 1e6 - window)
        .collect();
    late.sort_by(f64::total_cmp);
    println!(
        "{label}: {:.1} MB JPEG, capture -> whole at the hub {secs:.2} s (signed and committed after {committed:.2} s); \
         ECG chunk delay past its window during it p50 {:.3} s, p99 {:.3} s, max {:.3} s ({} chunks); \
         gateway CPU {:.2} s ({:.0} us per 8 KiB part), RSS peak {} KiB",
        image.len() as f64 / 1e6,
        percentile(&late, 0.5),
        percentile(&late, 0.99),
        late.last().copied().unwrap_or(0.0),
        late.len(),
        cpu,
        cpu * 1e6 / image.len().div_ceil(8192) as f64,
        rss,
    );
}

async fn run() {
    let one = large_still::blood_smear_of_at_least(1 << 20);
    let five = large_still::blood_smear_of_at_least(5 << 20);
    for (label, image, cap) in [
        ("loopback", &one, None),
        ("loopback", &five, None),
        ("256 kbit/s", &one, Some(32_000)),
        ("256 kbit/s", &five, Some(32_000)),
    ] {
        scenario(label, image, cap).await;
    }
    println!(
        "machine: {} cores; `cargo bench --bench media`",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
}
