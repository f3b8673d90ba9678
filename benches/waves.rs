//! Waveform benchmark (a bench binary that prints figures; `cargo bench --bench waves`).
//!
//! The real `spokegate` binary, a real mosquitto on a loopback port, and two simulated devices on
//! pseudo-terminals streaming at once, at their real rates, in 10 ms bursts (as a USB-serial
//! adapter delivers bytes):
//!
//! - a 12-lead ECG at 500 Hz (`ecg-12lead-text`: counter + 12 leads per text line), replaying the
//!   PTB-XL record's real 12-lead samples clocked out at 500 Hz. Those samples were taken at
//!   100 Hz, so neighbouring samples differ more than a true 500 Hz recording's: the compression
//!   figure is, if anything, pessimistic;
//! - a stethoscope at 4 kHz (`pcm-stethoscope`: PCM frames of 40 samples with counter and CRC),
//!   replaying the PhysioNet 2016 heart sound (2 kHz) clocked out at 4 kHz, likewise.
//!
//! Figures: gateway CPU (from /proc/PID/stat) as % of one core; gateway-added latency from the
//! write of a chunk's first (and last) sample to the PTY to the chunk's arrival at a subscriber
//! (p50/p99/max); bytes on the wire (whole MQTT PUBLISH packets: header, topic, packet id, COSE
//! envelope) against the raw 16-bit sample bytes; resident memory. Run at the default 200 ms
//! chunk window and at 500 ms (fewer, larger chunks: less envelope per sample).

mod common;

use common::{cpu_seconds, cpu_split, percentile, status_kib};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use spokegate::model::{Body, BodyFormat};
use spokegate::sim::waves::{self, Recording, WireProtocol};
use spokegate::sim::{PtyDevice, PtyPeer};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECONDS: u64 = 30;
const BURST: Duration = Duration::from_millis(10);

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(run());
}

/// What the subscriber received: (arrival, topic, payload).
type Arrivals = Mutex<Vec<(Instant, String, Vec<u8>)>>;

/// When each row was written: (first row of a burst, time the burst was written).
type Writes = Vec<(u64, Instant)>;

/// Writes `rec` at `rate` rows/s (looping over the recording) until `until`.
async fn feed(mut peer: PtyPeer, rec: Recording, protocol: WireProtocol, rate: f64, until: Instant) -> Writes {
    let step = protocol.rows_per_unit() as u64;
    let rows = (rec.rows() as u64 / step) * step;
    let mut writes = Vec::new();
    let start = Instant::now();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(BURST);
    while Instant::now() < until {
        tick.tick().await;
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        let mut bytes = Vec::new();
        let first = sent;
        while sent + step <= due {
            let unit = protocol.encode(&rec, (sent % rows) as usize, step as usize);
            bytes.extend(renumber(protocol, unit, sent));
            sent += step;
        }
        if !bytes.is_empty() {
            peer.send(&bytes).await.unwrap();
            writes.push((first, Instant::now()));
        }
    }
    writes
}

/// Units carry the row index as their counter, also past the end of the looped recording.
fn renumber(protocol: WireProtocol, unit: Vec<u8>, row: u64) -> Vec<u8> {
    match protocol {
        WireProtocol::TextRows => {
            let text = String::from_utf8(unit).unwrap();
            let (_, rest) = text.split_once(',').unwrap();
            format!("{row},{rest}").into_bytes()
        }
        WireProtocol::Pcm { .. } => {
            let payload_len = u16::from_le_bytes([unit[2], unit[3]]) as usize;
            let mut payload = unit[4..4 + payload_len].to_vec();
            payload[..4].copy_from_slice(&(row as u32).to_le_bytes());
            spokegate::framing::sync_length_wrap(&waves::PCM_SYNC, &payload)
        }
        WireProtocol::Cyton => unit,
    }
}

fn written_at(writes: &Writes, row: u64) -> Option<Instant> {
    let i = writes.partition_point(|(first, _)| *first <= row);
    (i > 0).then(|| writes[i - 1].1)
}

/// Bytes of an MQTT 3.1.1 PUBLISH at QoS 1 carrying this topic and payload.
fn publish_bytes(topic: usize, payload: usize) -> usize {
    let remaining = 2 + topic + 2 + payload;
    let len_bytes = match remaining {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    };
    1 + len_bytes + remaining
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = common::mosquitto(dir.path());

    let arrivals: Arc<Arrivals> = Arc::default();
    let mut o = MqttOptions::new("bench-hub", "127.0.0.1", port);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(o, 100);
    client.subscribe("spokegate/v1/+/+/dev/+/wave/+", QoS::AtLeastOnce).await.unwrap();
    {
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            let _c = client;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        arrivals.lock().unwrap().push((Instant::now(), p.topic, p.payload.to_vec()))
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
    }

    for window_ms in [200, 500] {
        arrivals.lock().unwrap().clear();
        measure(port, window_ms, &arrivals).await;
    }
}

/// Runs the gateway with both devices at this chunk window and prints the figures.
async fn measure(port: u16, window_ms: u64, arrivals: &Arrivals) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("gateway.key");
    spokegate::sign::SigningKey::generate(&key).unwrap();
    // The shipped profiles, with the window under test.
    let profiles = dir.path().join("profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    for (name, text) in spokegate::profile::BUILTIN {
        if name.starts_with("ecg-12lead") || name.starts_with("pcm-steth") {
            let text = text.replace("[wave]\n", &format!("[wave]\nwindow_ms = {window_ms}\n"));
            std::fs::write(profiles.join(name), text).unwrap();
        }
    }
    let ecg = PtyDevice::create(&dir.path().join("ttyECG")).unwrap();
    let steth = PtyDevice::create(&dir.path().join("ttySTETH")).unwrap();
    let config = dir.path().join("spokegate.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nsite = \"bench\"\nid = \"gw-bench\"\nstate_dir = \"{}\"\nprofiles_dir = \"{}\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\n\
             [[device]]\nid = \"ecg-1\"\nprofile = \"ecg-12lead-text\"\nserial = {{ path = \"{}\" }}\n\
             [[device]]\nid = \"steth-1\"\nprofile = \"pcm-stethoscope\"\nserial = {{ path = \"{}\" }}\n",
            dir.path().display(),
            profiles.display(),
            ecg.path.display(),
            steth.path.display()
        ),
    )
    .unwrap();
    let gateway = common::gateway(&config, &[]);
    let pid = gateway.0.id();
    tokio::time::sleep(Duration::from_millis(1000)).await; // connected before the clock starts
    let idle_rss = status_kib(pid, "VmRSS:");

    let until = Instant::now() + Duration::from_secs(SECONDS);
    let cpu0 = cpu_seconds(pid);
    let (u0, s0) = cpu_split(pid);
    let t0 = Instant::now();
    let (ecg_writes, steth_writes) = tokio::join!(
        feed(ecg.peer, waves::ptbxl_00001(), WireProtocol::TextRows, 500.0, until),
        feed(steth.peer, waves::pcg_c0003(), WireProtocol::Pcm { rows: 40 }, 4000.0, until),
    );
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let (u1, s1) = cpu_split(pid);
    let rss = status_kib(pid, "VmRSS:");
    let hwm = status_kib(pid, "VmHWM:");
    tokio::time::sleep(Duration::from_millis(500)).await; // the last chunks arrive

    let got = arrivals.lock().unwrap().clone();
    let mut first_lat = Vec::new();
    let mut last_lat = Vec::new();
    let mut wire = 0usize;
    let mut raw = 0usize;
    let mut per_stream: HashMap<String, (usize, usize, u64)> = HashMap::new();
    for (at, topic, payload) in &got {
        let env = spokegate::sign::parse_envelope(payload).unwrap();
        let body = Body::decode(env.payload.as_deref().unwrap(), BodyFormat::Cbor).unwrap();
        let w = body.wave.unwrap();
        let writes = if w.stream == "ecg" { &ecg_writes } else { &steth_writes };
        let (Some(first), Some(last)) = (written_at(writes, w.i0), written_at(writes, w.i0 + u64::from(w.n) - 1))
        else {
            continue;
        };
        first_lat.push(at.duration_since(first).as_secs_f64() * 1e3);
        last_lat.push(at.duration_since(last).as_secs_f64() * 1e3);
        let bytes = publish_bytes(topic.len(), payload.len());
        let raw_bytes = w.n as usize * w.ch.len() * 2;
        wire += bytes;
        raw += raw_bytes;
        let e = per_stream.entry(w.stream.clone()).or_default();
        e.0 += bytes;
        e.1 += raw_bytes;
        e.2 += 1;
    }
    first_lat.sort_by(f64::total_cmp);
    last_lat.sort_by(f64::total_cmp);
    let ecg_rows = ecg_writes.last().map_or(0, |w| w.0);
    let steth_rows = steth_writes.last().map_or(0, |w| w.0);
    println!("waves: chunk window {window_ms} ms");
    println!(
        "waves: {wall:.1} s of a 12-lead 500 Hz ECG ({ecg_rows} rows) and a 4 kHz stethoscope ({steth_rows} samples) at once, {} chunks received",
        got.len()
    );
    println!(
        "waves: gateway CPU {cpu:.2} s = {:.2} % of one core ({:.2} s user, {:.2} s kernel)",
        cpu * 100.0 / wall,
        u1 - u0,
        s1 - s0
    );
    println!(
        "waves: latency first sample of a chunk written -> chunk received: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&first_lat, 0.5),
        percentile(&first_lat, 0.99),
        first_lat.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "waves: latency last sample of a chunk written -> chunk received: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&last_lat, 0.5),
        percentile(&last_lat, 0.99),
        last_lat.last().copied().unwrap_or(f64::NAN)
    );
    let mut streams: Vec<_> = per_stream.into_iter().collect();
    streams.sort();
    for (s, (w, r, n)) in streams {
        println!(
            "waves: {s}: {n} chunks, {w} bytes on the wire for {r} raw 16-bit sample bytes = {:.3}x",
            w as f64 / r as f64
        );
    }
    println!("waves: both streams: {wire} bytes on the wire / {raw} raw = {:.3}x (MQTT PUBLISH packets, COSE envelope included)", wire as f64 / raw as f64);
    println!("waves: gateway RSS {idle_rss} KiB idle, {rss} KiB streaming, peak {hwm} KiB");
}
