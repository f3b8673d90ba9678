//! End-to-end acknowledgement (v1.1 hub delivery): a message leaves the gateway's queue only when a
//! hub acknowledged it. A broker that drops what a slow subscriber cannot take (mosquitto's
//! `max_queued_messages`) or forgets everything in a restart loses nothing: the gateway sends again
//! what no hub acknowledged, and never has more than `unacked_max` messages out.

use crate::consult::wait_for;
use crate::harness::*;
use spokegate::hub::{check, Acker, HubMessage, KeyRing};
use spokegate::sim::PtyDevice;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What the test hub stored: every obs body once, by seq, and the order of first arrival.
#[derive(Default)]
struct Stored {
    by_seq: BTreeMap<u64, f64>,
    arrival: Vec<u64>,
    duplicates: u64,
}

/// A hub that reads one message at a time with a pause after each (so the broker's queue for it
/// fills), stores the verified readings, and acknowledges them with its hub key. Its MQTT session
/// is persistent: while it is away the broker queues for it (up to `max_queued_messages`).
struct SlowHub {
    task: tokio::task::JoinHandle<()>,
}

impl SlowHub {
    fn start(
        port: u16,
        key: Arc<spokegate::sign::SigningKey>,
        keys: KeyRing,
        pace: Duration,
        stored: Arc<Mutex<Stored>>,
    ) -> SlowHub {
        use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
        let mut o = MqttOptions::new("slow-hub", "127.0.0.1", port);
        o.set_clean_session(false);
        o.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(o, 1000);
        // Capacity 1: the poller reads the next packet only when the hub took the last one.
        let (tx, mut rx) = mpsc::channel(1);
        let task = tokio::spawn(async move {
            let poller = tokio::spawn(async move {
                loop {
                    let ev = eventloop.poll().await;
                    if tx.send(ev).await.is_err() {
                        return;
                    }
                }
            });
            let mut acker = Acker::new(key, Duration::from_millis(100), 20).unwrap();
            while let Some(ev) = rx.recv().await {
                match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = client.try_subscribe("spokegate/v1/test-site/gw-test/dev/#", QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if let Ok(HubMessage::Signed(b)) = check(&p.topic, &p.payload, &keys) {
                            if let Some(o) = b.obs.as_ref() {
                                let mut s = stored.lock().unwrap();
                                if s.by_seq.insert(b.seq, o[0].val.unwrap_or(-1.0)).is_none() {
                                    s.arrival.push(b.seq);
                                } else {
                                    s.duplicates += 1;
                                }
                            }
                            acker.stored(&b.site, &b.gw, b.seq, Instant::now());
                        }
                        tokio::time::sleep(pace).await;
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
                if acker.due(Instant::now()) {
                    for a in acker.take(Instant::now(), false) {
                        let _ = client.try_publish(a.topic, QoS::AtLeastOnce, false, a.payload);
                    }
                }
            }
            poller.abort();
        });
        SlowHub { task }
    }

    /// The hub goes away without a word (its session stays at the broker).
    fn vanish(self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_hub_behind_a_small_broker_queue_and_a_broker_restart_lose_nothing() {
    const UNACKED_MAX: u64 = 60;
    let mut broker = Mosquitto::with_settings("persistence false\nmax_queued_messages 100\nmax_inflight_messages 10\n");
    let gw = GatewayDir::new();
    let dev = PtyDevice::create(&gw.path().join("ttyVITALS")).unwrap();
    let hub_key = HubKey::new("hub-slow");
    let section = format!(
        "[hub]\nkeys = [\"{}\"]\ndelivery = \"hub\"\nunacked_max = {UNACKED_MAX}\nack_timeout_secs = 2\n",
        hub_key.jwk.display()
    );
    let config = gw.config_with(broker.port, &[("vitals-1", "vitals-kv", &dev.path)], "", &section);
    let key = Arc::new(spokegate::sign::SigningKey::load(&hub_key.path).unwrap());
    let keys = gw.keys();
    let stored = Arc::new(Mutex::new(Stored::default()));
    let hub = SlowHub::start(broker.port, key.clone(), keys.clone(), Duration::from_millis(2), stored.clone());
    let gateway = RunningGateway::start(&config, gw.key());
    let mut peer = dev.peer;
    let mut sent = Vec::new();
    let send = |n: usize, from: usize, sent: &mut Vec<u32>| {
        let values: Vec<u32> = (from..from + n).map(|i| 20 + (i % 250) as u32).collect();
        let bytes: Vec<u8> = values.iter().flat_map(|v| format!("SYS={v}\n").into_bytes()).collect();
        sent.extend(values);
        bytes
    };

    // Phase 1: 1,500 readings at once into a hub reading 2 ms a message through a queue of 100.
    peer.send(&send(1500, 0, &mut sent)).await.unwrap();
    let count = |s: &Arc<Mutex<Stored>>| s.lock().unwrap().by_seq.len();
    wait_long("the slow hub has phase 1", || count(&stored) >= 1500, Duration::from_secs(60)).await;
    let phase1: Vec<u64> = stored.lock().unwrap().arrival.clone();
    assert!(phase1.windows(2).all(|w| w[0] < w[1]), "flow control kept the broker from dropping: arrival in seq order");

    // Phase 2: the hub goes away, 500 readings queue at the broker for it, the broker restarts
    // without persistence (they are gone), the hub comes back; 500 more readings.
    hub.vanish();
    peer.send(&send(500, 1500, &mut sent)).await.unwrap();
    wait_for("the gateway sent what it may", || gateway.counters.link.unacked.load(Ordering::Relaxed) >= UNACKED_MAX)
        .await;
    broker.stop();
    broker.restart();
    let hub = SlowHub::start(broker.port, key, keys, Duration::from_millis(1), stored.clone());
    peer.send(&send(500, 2000, &mut sent)).await.unwrap();
    wait_long("the hub has every reading", || count(&stored) >= 2500, Duration::from_secs(90)).await;

    // Exactly once after de-duplication, nothing missing, and by seq the values are the order
    // the device sent them in.
    {
        let s = stored.lock().unwrap();
        let values: Vec<u32> = s.by_seq.values().map(|v| *v as u32).collect();
        assert_eq!(values, sent, "every reading once, in the device's order by seq");
        assert_eq!(s.arrival.iter().collect::<HashSet<_>>().len(), s.arrival.len());
    }
    let peak = gateway.counters.link.unacked_peak.load(Ordering::Relaxed);
    assert!(peak <= UNACKED_MAX && peak > 0, "unacknowledged messages out at most {UNACKED_MAX}: peak {peak}");
    // What the restart lost was sent again (on the gateway's reconnect, or after the timeout).
    let l = &gateway.counters.link;
    let sends = l.published.load(Ordering::Relaxed) + l.resent.load(Ordering::Relaxed);
    assert!(sends > sent.len() as u64, "{sends} sends for {} readings", sent.len());
    // The hub's acknowledgements empty the gateway's queue.
    until_queue(gw.path(), "the queue drained by acknowledgements", Duration::from_secs(30), |q| q.depth == 0).await;
    gateway.stop().await;
    hub.vanish();
}

/// Like `wait_for`, with its own limit (for runs that move thousands of messages).
pub async fn wait_long(what: &str, done: impl Fn() -> bool, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The case: a 30-minute ECG reaches the gateway far faster than real time (a device's
/// backlog), with hub delivery on and the real `spokegate watch --record --hub-key`: the WFDB
/// record holds every sample of the source, in order, with no gap. MIT-BIH record 100's 60 s
/// excerpt is repeated 30 times with a continuous Cyton sample counter (30 x 21,600 = 648,000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thirty_minute_ecg_sent_as_fast_as_the_line_takes_it_is_recorded_whole() {
    use spokegate::formats::wfdb;
    use spokegate::sim::{recordings, waves};
    use tokio::io::AsyncBufReadExt;
    const REPEATS: usize = 30;
    // A broker that holds little for a subscriber that falls behind (mosquitto's default is 1000
    // queued and 20 in flight; a busy spoke PC or a hub behind a slow disk reaches that as well).
    let broker = Mosquitto::with_settings("persistence false\nmax_queued_messages 50\nmax_inflight_messages 10\n");
    let gw = GatewayDir::new();
    let dev = PtyDevice::create(&gw.path().join("ttyECG")).unwrap();
    let profiles = gw.path().join("profiles");
    recordings::write_wave_profiles(&profiles).unwrap();
    let hub_key = HubKey::new("hub-record");
    let config = gw.config_with(
        broker.port,
        &[("ecg-1", "mitbih-cyton", &dev.path)],
        &format!("profiles_dir = \"{}\"", profiles.display()),
        &format!("[hub]\nkeys = [\"{}\"]\ndelivery = \"hub\"\nunacked_max = 50\n", hub_key.jwk.display()),
    );
    let record = gw.path().join("record");
    let mut watch = tokio::process::Command::new(env!("CARGO_BIN_EXE_spokegate"))
        .args(["watch", "--url", &format!("mqtt://127.0.0.1:{}", broker.port), "--key"])
        .arg(gw.jwk_file())
        .arg("--hub-key")
        .arg(&hub_key.path)
        .arg("--record")
        .arg(&record)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    let gateway = RunningGateway::start(&config, gw.key());
    loop {
        let line = tokio::time::timeout(PATIENCE, lines.next_line()).await.expect("watch sees the gateway").unwrap();
        if line.expect("watch runs").contains("gateway online") {
            break;
        }
    }
    let gaps = Arc::new(Mutex::new(Vec::new()));
    let g = gaps.clone();
    let reader = tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            if l.contains("GAP") || l.contains("restarted") || l.contains('✘') {
                g.lock().unwrap().push(l);
            }
        }
    });

    let rec = waves::mitbih_100();
    let rows = rec.rows();
    let total = rows * REPEATS;
    let mut peer = dev.peer;
    let started = Instant::now();
    for block in (0..total).collect::<Vec<_>>().chunks(2000) {
        let bytes: Vec<u8> =
            block.iter().flat_map(|&i| spokegate::decode::cyton::encode((i % 256) as u8, rec.row(i % rows))).collect();
        peer.send(&bytes).await.unwrap();
    }
    let written = started.elapsed();
    let hea = record.join("test_site_gw_test_ecg_1_ecg.hea");
    let nsamp = || {
        std::fs::read_to_string(&hea).ok().and_then(|t| wfdb::parse_header(&t).ok()).and_then(|h| h.nsamp).unwrap_or(0)
    };
    wait_long("watch recorded every sample", || nsamp() >= total as u64, Duration::from_secs(240)).await;
    until_queue(gw.path(), "the hub's acknowledgements emptied the queue", Duration::from_secs(60), |q| q.depth == 0)
        .await;
    gateway.stop().await;
    unsafe { libc::kill(watch.id().unwrap() as i32, libc::SIGTERM) };
    assert!(watch.wait().await.unwrap().success());
    reader.await.unwrap();
    assert_eq!(gaps.lock().unwrap().as_slice(), &[] as &[String], "no gap, restart or rejection");

    let h = wfdb::parse_header(&std::fs::read_to_string(&hea).unwrap()).unwrap();
    assert_eq!(h.nsamp, Some(total as u64));
    let dat = std::fs::read(record.join("test_site_gw_test_ecg_1_ecg.dat")).unwrap();
    let got = wfdb::decode(h.signals[0].fmt, &dat, h.signals.len()).unwrap();
    let want: Vec<i32> = (0..total).flat_map(|i| rec.row(i % rows).to_vec()).collect();
    assert!(got == want, "the record equals the source repeated {REPEATS} times, sample for sample");
    eprintln!("30-minute ECG: {total} samples written to the PTY in {written:?}, recorded whole");
}
