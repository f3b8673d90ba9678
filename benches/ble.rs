//! BLE benchmark (a bench binary that prints figures; `cargo bench --bench ble`).
//!
//! The real `spokegate` binary with the real btleplug code, against the mock BlueZ of
//! `tests/ble_mock/` on a private D-Bus, and a real mosquitto. A heart-rate sensor sends the
//! sourced Heart Rate Measurement vectors (with RR intervals) as fast as the mock can emit them;
//! the subscriber counts the signed readings. Figures: notifications decoded and published per
//! second, gateway CPU per notification, and the time from the device's connect to the first
//! reading at the subscriber. The mock (Python, dbus-next) and dbus-daemon share the two cores, so
//! the rate is a floor for the gateway, not its ceiling.

mod common;

use common::{cpu_seconds, status_kib};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;
use spokegate::sim::ble_mock::{MockBluez, PrivateBus};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const NOTIFICATIONS: usize = 20_000;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(run());
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = common::mosquitto(dir.path());

    let count = Arc::new(AtomicU64::new(0));
    let first_at: Arc<Mutex<Option<f64>>> = Arc::default();
    let last_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let mut o = MqttOptions::new("bench-hub", "127.0.0.1", port);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(o, 100);
    client.subscribe("spokegate/v1/+/+/dev/+/obs", QoS::AtLeastOnce).await.unwrap();
    {
        let (count, first_at, last_at) = (count.clone(), first_at.clone(), last_at.clone());
        tokio::spawn(async move {
            let _c = client;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(_))) => {
                        first_at.lock().unwrap().get_or_insert_with(unix_now);
                        *last_at.lock().unwrap() = Some(Instant::now());
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
    }

    // Sourced Heart Rate Measurement vectors (tests/fixtures/ble), round and round.
    let vectors = ["0055", "04ff", "194b00380404043804", "1f0101320101000201ffff", "076400"];
    let notifications: Vec<&str> = (0..NOTIFICATIONS).map(|i| vectors[i % vectors.len()]).collect();
    let bus = PrivateBus::start();
    let scenario = json!({"devices": [{"kind": "heart_rate", "address": "AA:BB:CC:DD:EE:02", "name": "Bench HR",
        "service": "0000180d-0000-1000-8000-00805f9b34fb", "notifications": notifications, "interval_ms": 0}]});
    let mut mock = MockBluez::start(&bus, &scenario, dir.path());

    let key = dir.path().join("gateway.key");
    spokegate::sign::SigningKey::generate(&key).unwrap();
    let config = dir.path().join("spokegate.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nsite = \"bench\"\nid = \"gw-bench\"\nstate_dir = \"{}\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\n\
             [[device]]\nid = \"hr-1\"\nprofile = \"ble-heart-rate\"\nble = {{ address = \"AA:BB:CC:DD:EE:02\" }}\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let started = unix_now();
    let gateway = common::gateway(&config, &[("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)]);
    let pid = gateway.0.id();
    let connect = mock.until("connect", |v| v["event"] == "connect");
    let connected_at = connect["t"].as_f64().unwrap();
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    mock.until("stream complete", |v| v["event"] == "stream-complete");
    let sent_for = t0.elapsed().as_secs_f64();
    // Each HR notification is one signed obs message.
    while count.load(Ordering::Relaxed) < NOTIFICATIONS as u64 {
        assert!(t0.elapsed() < Duration::from_secs(300), "stalled at {}", count.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let done = last_at.lock().unwrap().unwrap().duration_since(t0).as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let first = first_at.lock().unwrap().unwrap();
    println!("ble: {NOTIFICATIONS} heart-rate notifications (mock BlueZ emitted them in {sent_for:.2} s)");
    println!(
        "ble: decoded, signed and received at the subscriber in {done:.2} s = {:.0} notifications/s",
        NOTIFICATIONS as f64 / done
    );
    println!("ble: gateway CPU {cpu:.2} s = {:.1} us/notification", cpu * 1e6 / NOTIFICATIONS as f64);
    println!(
        "ble: connect -> first reading at the subscriber {:.0} ms; gateway start -> first reading {:.0} ms",
        (first - connected_at) * 1e3,
        (first - started) * 1e3
    );
    println!("ble: gateway RSS {} KiB, peak {} KiB", status_kib(pid, "VmRSS:"), status_kib(pid, "VmHWM:"));
}
