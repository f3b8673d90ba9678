//! The hub side keeps up (`cargo bench --bench watch`): signed waveform chunks are published to a
//! real mosquitto as fast as it takes them while the real `spokegate watch --record DIR --json
//! --out FILE` verifies each signature, de-duplicates, reassembles the stream and records it as a
//! WFDB record (and writes a JSON line per message to the file).
//!
//! The chunks are MIT-BIH Arithmia Database record 100's two leads (the built-in 60 s excerpt,
//! repeated with a continuous sample index), cut into 200 ms chunks (72 samples per lead,
//! `rice`-packed) and signed by a gateway key before the clock starts. Figures: messages/s from
//! the first publish to the last line in the file, watch's CPU per message and its peak RSS; the
//! record is then checked complete (every sample, in order).

use rumqttc::{AsyncClient, Event, MqttOptions, QoS};
use spokegate::model::{Channel, Code, Unit, Wave};
use spokegate::pipeline::{Payload, Signer, Source, ToSign};
use spokegate::sign::{Binding, BoundKey, SigningKey};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{cpu_seconds, status_kib, Proc};

const MESSAGES: usize = 100_000;
const CHUNK: usize = 72; // 200 ms at 360 Hz

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(run());
}

/// The signed chunks: (topic, payload), in seq order.
fn signed_chunks(key: SigningKey) -> Vec<(String, Vec<u8>)> {
    let rec = spokegate::sim::waves::mitbih_100();
    let header = rec.header.clone().expect("a WFDB record");
    let leads: Vec<Vec<i32>> = (0..rec.channels).map(|c| rec.channel(c)).collect();
    let rows = rec.rows();
    let from = Source { dev: "ecg-1".into(), profile: "mitbih-cyton".into() };
    let mut jobs: Vec<ToSign> = (0..MESSAGES)
        .map(|m| {
            let i0 = (m * CHUNK) as u64;
            let ch = leads
                .iter()
                .zip(&header.signals)
                .map(|(lead, s)| {
                    let samples: Vec<i32> = (0..CHUNK).map(|k| lead[(m * CHUNK + k) % rows]).collect();
                    Channel {
                        label: s.description.clone(),
                        code: Code { mdc: 131329, loinc: None, name: None },
                        unit: Unit { ucum: "mV".into(), mdc: None },
                        gain: 1.0 / s.gain,
                        base: s.baseline,
                        enc: "rice".into(),
                        data: spokegate::wave::pack(&samples, spokegate::wave::Encoding::Rice).unwrap(),
                    }
                })
                .collect();
            let t0 = 1_800_000_000_000_000 + (i0 as f64 / rec.rate * 1e6) as i64;
            let wave = Wave { stream: "ecg".into(), rate: rec.rate, i0, t0, n: CHUNK as u32, ch };
            ToSign::new(from.clone(), Payload::Wave(wave), t0, None)
        })
        .collect();
    let signer = Signer::new(
        "bench",
        "gw-bench",
        Arc::new(key),
        spokegate::model::BodyFormat::Cbor,
        spokegate::pipeline::ConsultNow::default(),
    );
    spokegate::parallel::map_in_order(&mut jobs, 64, |i, job| {
        let r = signer.sign(i as u64 + 1, job, None).unwrap();
        (r.topic, r.payload)
    })
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("gateway.key");
    let key = SigningKey::generate(&key_path).unwrap();
    let jwk = dir.path().join("gateway.jwk");
    let bound = BoundKey {
        key: key.public().clone(),
        binding: Binding::Gateway { site: "bench".into(), gw: "gw-bench".into() },
    };
    std::fs::write(&jwk, bound.to_jwk()).unwrap();
    let t = Instant::now();
    let messages = signed_chunks(key);
    let bytes: usize = messages.iter().map(|(_, p)| p.len()).sum();
    println!(
        "{} signed chunks ({:.0} bytes each on average) prepared in {:.1} s",
        messages.len(),
        bytes as f64 / messages.len() as f64,
        t.elapsed().as_secs_f64()
    );

    let port = spokegate::sim::broker::free_port().unwrap();
    let conf = dir.path().join("m.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 1000\n"),
    )
    .unwrap();
    let _broker = common::start_broker(&conf, port);

    let record = dir.path().join("record");
    let out = dir.path().join("hub.jsonl");
    let watch = Proc(
        Command::new(env!("CARGO_BIN_EXE_spokegate"))
            .args(["watch", "--json", "--url", &format!("mqtt://127.0.0.1:{port}"), "--key"])
            .arg(&jwk)
            .arg("--record")
            .arg(&record)
            .arg("--out")
            .arg(&out)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = watch.0.id();
    // Subscribed: a retained marker published now reaches its file.
    let (client, mut eventloop) = {
        let mut o = MqttOptions::new("bench-gateway", "127.0.0.1", port);
        o.set_max_packet_size(1 << 20, 1 << 20);
        o.set_inflight(1000);
        AsyncClient::new(o, 10_000)
    };
    let poller = tokio::spawn(async move {
        let mut acked = 0usize;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(rumqttc::Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(e) => panic!("publisher: {e}"),
            }
            if acked == MESSAGES {
                return;
            }
        }
    });
    let mut lines = LineCount::new(&out);
    let ready_by = Instant::now() + Duration::from_secs(30);
    while lines.count() == 0 {
        assert!(Instant::now() < ready_by, "watch did not subscribe");
        client
            .publish(
                "spokegate/v1/bench/gw-bench/status",
                QoS::AtLeastOnce,
                true,
                r#"{"state":"online","since":"2026-11-29T00:00:00Z","version":"bench","kid":"00"}"#,
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let base = lines.count();

    let profiler = common::attach(pid);
    let cpu0 = cpu_seconds(pid);
    let machine0 = spokegate::sim::proc_stats::MachineTimes::now();
    let t0 = Instant::now();
    let publishing = {
        let client = client.clone();
        tokio::spawn(async move {
            for (topic, payload) in messages {
                client.publish(topic, QoS::AtLeastOnce, false, payload).await.unwrap();
            }
        })
    };
    let mut peak_rss = 0;
    while lines.count() < base + MESSAGES as u64 {
        assert!(t0.elapsed() < Duration::from_secs(600), "watch stalled at {}", lines.count() - base);
        peak_rss = peak_rss.max(status_kib(pid, "VmRSS:"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let (steal, busy) = spokegate::sim::proc_stats::MachineTimes::now().since(&machine0);
    common::detach(profiler);
    publishing.await.unwrap();
    poller.abort();
    println!(
        "watch --record --json --out: {MESSAGES} signed chunks verified, recorded and written in {secs:.2} s = {:.0} messages/s (machine busy {busy:.0} %, steal {steal:.0} %)",
        MESSAGES as f64 / secs
    );
    println!(
        "watch CPU {:.1} us/message ({:.0} % of one core); RSS peak {} KiB",
        cpu * 1e6 / MESSAGES as f64,
        cpu * 100.0 / secs,
        peak_rss.max(status_kib(pid, "VmHWM:"))
    );
    Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    let mut watch = watch;
    let _ = watch.0.wait();
    // The record holds every sample.
    let hea = std::fs::read_to_string(record.join("bench_gw_bench_ecg_1_ecg.hea")).unwrap();
    let h = spokegate::formats::wfdb::parse_header(&hea).unwrap();
    let want = (MESSAGES * CHUNK) as u64;
    assert_eq!(h.nsamp, Some(want), "the record holds every sample");
    println!("record: {} samples per lead, complete", want);
    println!(
        "machine: {} cores; `cargo bench --bench watch`",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
}

/// Lines in a growing file, reading only what is new.
struct LineCount {
    path: std::path::PathBuf,
    offset: u64,
    lines: u64,
}

impl LineCount {
    fn new(path: &Path) -> Self {
        Self { path: path.to_path_buf(), offset: 0, lines: 0 }
    }

    fn count(&mut self) -> u64 {
        use std::io::{Read, Seek, SeekFrom};
        if let Ok(mut f) = std::fs::File::open(&self.path) {
            let _ = f.seek(SeekFrom::Start(self.offset));
            let mut buf = Vec::new();
            let _ = f.read_to_end(&mut buf);
            self.lines += buf.iter().filter(|b| **b == b'\n').count() as u64;
            self.offset += buf.len() as u64;
        }
        self.lines
    }
}
