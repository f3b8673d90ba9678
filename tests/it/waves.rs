//! Waveforms end to end: recordings replayed from pseudo-terminals in the shipped serial protocols
//! (OpenBCI Cyton packets, text rows, PCM frames with CRC), through the daemon and a real
//! mosquitto, reassembled by the real `spokegate watch --record` into WFDB and WAV files that are
//! compared sample by sample with the sources and against the sources' own WFDB checksums.

use crate::harness::*;
use spokegate::formats::{wav, wfdb};
use spokegate::hub::{Reassembler, StreamKey};
use spokegate::model::Body;
use spokegate::sim::waves::{self, Recording, WireProtocol};
use spokegate::sim::{recordings, PtyDevice};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

const PCM: WireProtocol = WireProtocol::Pcm { rows: 20 };

/// A gateway state dir whose `profiles_dir` holds the replay profiles.
fn wave_gateway(broker_port: u16, devices: &[(&str, &str, &Path)]) -> (GatewayDir, std::path::PathBuf) {
    let gw = GatewayDir::new();
    let profiles = gw.path().join("profiles");
    recordings::write_wave_profiles(&profiles).unwrap();
    let config = gw.config(broker_port, devices, &format!("profiles_dir = \"{}\"", profiles.display()));
    (gw, config)
}

/// A broker and a gateway with three waveform devices on pseudo-terminals: MIT-BIH as Cyton
/// packets (`ecg-1`), PTB-XL as text rows (`ecg-2`) and the heart sound as PCM frames (`steth-1`).
struct WaveRig {
    broker: Mosquitto,
    dir: tempfile::TempDir,
    ecg: PtyDevice,
    ecg12: PtyDevice,
    steth: PtyDevice,
    gw: GatewayDir,
    config: std::path::PathBuf,
}

impl WaveRig {
    fn new() -> WaveRig {
        let broker = Mosquitto::start();
        let dir = tempfile::tempdir().unwrap();
        let ecg = PtyDevice::create(&dir.path().join("ttyECG")).unwrap();
        let ecg12 = PtyDevice::create(&dir.path().join("ttyECG12")).unwrap();
        let steth = PtyDevice::create(&dir.path().join("ttySTETH")).unwrap();
        let (gw, config) = wave_gateway(
            broker.port,
            &[
                ("ecg-1", "mitbih-cyton", &ecg.path),
                ("ecg-2", "ptbxl-text", &ecg12.path),
                ("steth-1", "pcg-pcm", &steth.path),
            ],
        );
        WaveRig { broker, dir, ecg, ecg12, steth, gw, config }
    }
}

/// Reads a WFDB record written by the hub: its header and each signal's samples.
fn read_record(dir: &Path, name: &str) -> (wfdb::Header, Vec<Vec<i32>>) {
    let header = wfdb::parse_header(&std::fs::read_to_string(dir.join(format!("{name}.hea"))).unwrap()).unwrap();
    let nsig = header.signals.len();
    let rows =
        wfdb::decode(header.signals[0].fmt, &std::fs::read(dir.join(format!("{name}.dat"))).unwrap(), nsig).unwrap();
    let signals = (0..nsig).map(|c| rows.iter().skip(c).step_by(nsig).copied().collect()).collect();
    (header, signals)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecgs_and_a_heart_sound_arrive_lossless_as_wfdb_and_wav() {
    let WaveRig { broker, dir, mut ecg, mut ecg12, mut steth, gw, config } = WaveRig::new();
    let jwk = gw.jwk_file();
    let record = dir.path().join("record");
    let mut hub = tokio::process::Command::new(env!("CARGO_BIN_EXE_spokegate"))
        .args(["watch", "--json", "--url", &format!("mqtt://127.0.0.1:{}", broker.port), "--key"])
        .arg(&jwk)
        .arg("--record")
        .arg(&record)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(hub.stdout.take().unwrap()).lines();
    // The hub is subscribed once it has seen the retained status of the gateway.
    let gateway = RunningGateway::start(&config, gw.key());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line()).await.expect("hub sees the gateway").unwrap();
        let line = line.expect("the hub keeps running");
        if line.contains("/status") && line.contains("online") {
            break;
        }
    }

    let (mit, ptb, pcg) = (waves::mitbih_100(), waves::ptbxl_00001(), waves::pcg_c0003());
    // Ten times the real rate, in 10 ms bursts, all three at once.
    let burst = Duration::from_millis(10);
    let (a, b, c) = tokio::join!(
        waves::replay(&mut ecg.peer, &mit, WireProtocol::Cyton, 10.0, Some(1), burst),
        waves::replay(&mut ecg12.peer, &ptb, WireProtocol::TextRows, 10.0, Some(1), burst),
        waves::replay(&mut steth.peer, &pcg, PCM, 10.0, Some(1), burst),
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();

    // Every sample the devices sent is counted at the hub, chunk by chunk.
    let want: BTreeMap<&str, u64> = [("ecg", 21_600), ("ecg12", 1_000), ("pcg", 65_280)].into();
    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while want.iter().any(|(s, n)| got.get(*s).copied().unwrap_or(0) < *n) {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("all samples at the hub in time; got {got:?}"))
            .unwrap()
            .expect("hub keeps running");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_ne!(v["verdict"], "rejected", "{line}");
        if v["body"]["type"] == "wave" {
            *got.entry(v["body"]["stream"].as_str().unwrap().to_string()).or_default() +=
                v["body"]["n"].as_u64().unwrap();
        }
        // A gap would be a failure here: nothing was lost on the way.
        if v["body"]["type"] == "event" {
            assert_ne!(v["body"]["event"]["code"], "wave-gap", "{line}");
        }
    }
    gateway.stop().await;
    unsafe { libc::kill(hub.id().unwrap() as i32, libc::SIGTERM) };
    assert!(hub.wait().await.unwrap().success());

    // MIT-BIH through Cyton packets: the WFDB record equals the source, and its checksums are the
    // ones the source header states.
    for (name, rec, stream) in
        [("test_site_gw_test_ecg_1_ecg", &mit, "ecg"), ("test_site_gw_test_ecg_2_ecg12", &ptb, "ecg12")]
    {
        let (header, signals) = read_record(&record, name);
        let source = rec.header.as_ref().unwrap();
        assert_eq!(header.signals.len(), source.signals.len(), "{stream}");
        assert_eq!(header.fs, source.fs);
        assert_eq!(header.nsamp, source.nsamp);
        for (c, (ours, theirs)) in header.signals.iter().zip(&source.signals).enumerate() {
            assert_eq!(signals[c], rec.channel(c), "{stream} {} sample for sample", theirs.description);
            assert_eq!(ours.fmt, 16, "ECG counts fit format 16");
            assert_eq!(
                ours.checksum.map(|c| c as u16),
                theirs.checksum.map(|c| c as u16),
                "{stream} {}",
                theirs.description
            );
            assert_eq!(ours.description, theirs.description);
            assert_eq!(ours.gain, theirs.gain, "adu per physical unit");
            assert_eq!(ours.baseline, theirs.baseline);
        }
    }
    // The heart sound comes back as a WAV identical in samples (whole 20-sample frames were sent).
    let wav = wav::read_pcm16(&std::fs::read(record.join("test_site_gw_test_steth_1_pcg.wav")).unwrap()).unwrap();
    assert_eq!((wav.rate, wav.channels), (2000, 1));
    let sent: Vec<i16> = pcg.samples[..65_280].iter().map(|&v| v as i16).collect();
    assert_eq!(wav.samples.len(), sent.len());
    assert!(wav.samples == sent, "WAV samples equal the source");

    // The same files read by readers that are not ours: PhysioNet's wfdb package for the records
    // (against the source records read the same way), the standard library's wave module and
    // libsndfile (soundfile) for the heart sound.
    let recordings = format!("{}/src/sim/recordings", env!("CARGO_MANIFEST_DIR"));
    let independent = |args: &[String]| {
        let out = std::process::Command::new("python3")
            .arg(format!("{}/tests/hub_py/read_records.py", env!("CARGO_MANIFEST_DIR")))
            .args(args)
            .output()
            .expect("python3 with wfdb and soundfile (.ci/setup installs them)");
        let line = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{line} {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_str::<serde_json::Value>(&line).unwrap()
    };
    for (name, source) in [("test_site_gw_test_ecg_1_ecg", "100s"), ("test_site_gw_test_ecg_2_ecg12", "00001_lr")] {
        let r =
            independent(&["wfdb".into(), record.join(name).display().to_string(), format!("{recordings}/{source}")]);
        assert_eq!(r["same_samples"], true, "{r}");
        assert_eq!(r["checksum_header"], r["checksum_source"], "{r}");
    }
    let r = independent(&[
        "wav".into(),
        record.join("test_site_gw_test_steth_1_pcg.wav").display().to_string(),
        format!("{recordings}/physionet2016_c0003_normal.wav"),
        sent.len().to_string(),
    ]);
    assert_eq!((r["same_wave"].clone(), r["same_soundfile"].clone()), (true.into(), true.into()), "{r}");
}

/// Expected gaps when units starting at these rows are not delivered: (first missing row, rows).
fn gaps_of(skipped: &BTreeSet<usize>, step: usize) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &r in skipped {
        match out.last_mut() {
            Some((at, n)) if *at + *n == r as u64 => *n += step as u64,
            _ => out.push((r as u64, step as u64)),
        }
    }
    out
}

/// A stream sent with damage: (stream, recording, protocol, rows sent, units dropped, units corrupted).
type Damage<'a> = (&'a str, &'a Recording, WireProtocol, usize, Vec<usize>, Vec<usize>);

/// Bytes of `rec` in `protocol` with some units dropped and some corrupted on the wire.
fn damaged_stream(rec: &Recording, protocol: WireProtocol, rows: usize, drop: &[usize], corrupt: &[usize]) -> Vec<u8> {
    let step = protocol.rows_per_unit();
    let mut out = Vec::new();
    for r in (0..rows).step_by(step) {
        if drop.contains(&r) {
            continue;
        }
        let mut unit = protocol.encode(rec, r, step);
        if corrupt.contains(&r) {
            match protocol {
                // A broken footer: the framer cannot take it as a packet.
                WireProtocol::Cyton => unit[32] = 0x00,
                // A flipped bit in a sample: the CRC fails.
                WireProtocol::Pcm { .. } => unit[10] ^= 0x04,
                // Line noise in the middle of a row.
                WireProtocol::TextRows => unit[3] = b'#',
            }
        }
        out.extend(unit);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_and_corrupted_packets_are_exactly_the_gaps_the_hub_reports() {
    let WaveRig { broker, dir: _dir, mut ecg, mut ecg12, mut steth, gw, config } = WaveRig::new();
    let mut sub = Subscriber::connect(broker.port, "test-hub").await;
    let gateway = RunningGateway::start(&config, gw.key());
    let (mit, ptb, pcg) = (waves::mitbih_100(), waves::ptbxl_00001(), waves::pcg_c0003());
    let plan: [Damage; 3] = [
        ("ecg", &mit, WireProtocol::Cyton, 1_800, vec![100, 101, 102, 103, 104, 700], vec![1_000, 1_001, 1_500]),
        ("ecg12", &ptb, WireProtocol::TextRows, 600, vec![50, 51, 300], vec![120, 400]),
        ("pcg", &pcg, PCM, 8_000, vec![2_000, 2_020, 5_000], vec![3_000, 6_020]),
    ];
    let mut last_index = BTreeMap::new();
    for (stream, rec, protocol, rows, drop, corrupt) in &plan {
        let bytes = damaged_stream(rec, *protocol, *rows, drop, corrupt);
        let peer = match *stream {
            "ecg" => &mut ecg.peer,
            "ecg12" => &mut ecg12.peer,
            _ => &mut steth.peer,
        };
        peer.send(&bytes).await.unwrap();
        last_index.insert(*stream, *rows as u64);
    }
    // The last rows of each stream arrive at the hub (the partial chunk goes out after its window).
    let keys = gw.keys();
    sub.until_signed("every stream's last sample", &keys, |bodies| {
        last_index.iter().all(|(s, end)| {
            bodies.iter().filter_map(|b| b.wave.as_ref()).any(|w| w.stream == *s && w.i0 + u64::from(w.n) == *end)
        })
    })
    .await;
    gateway.stop().await;

    let bodies: Vec<Body> = sub.verified.clone();
    let mut hub = Reassembler::default();
    let mut hub_gaps: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for b in &bodies {
        let Some(placed) = hub.accept(b) else { continue };
        let placed = placed.unwrap();
        let w = b.wave.as_ref().unwrap();
        let (_, rec, ..) = plan.iter().find(|p| p.0 == w.stream).unwrap();
        // No sample is invented: every sample is the source's sample at its index.
        for (c, samples) in placed.channels.iter().enumerate() {
            let source: Vec<i32> = (w.i0..w.i0 + u64::from(w.n)).map(|i| rec.row(i as usize)[c]).collect();
            let source: Vec<i32> =
                if w.stream == "pcg" { source.iter().map(|&v| i32::from(v as i16)).collect() } else { source };
            assert_eq!(samples, &source, "{} channel {c} at {}", w.stream, w.i0);
        }
        if let Some(gap) = placed.gap {
            hub_gaps.entry(w.stream.clone()).or_default().push(gap);
        }
        assert!(!placed.restarted);
    }
    let mut gateway_gaps: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for e in bodies.iter().filter_map(|b| b.event.as_ref()).filter(|e| e.code == "wave-gap") {
        let data = serde_json::to_value(&e.data).unwrap();
        let stream = data["stream"].as_str().unwrap().to_string();
        gateway_gaps.entry(stream).or_default().push((data["at"].as_u64().unwrap(), data["missing"].as_u64().unwrap()));
    }
    for (stream, _, protocol, _, drop, corrupt) in &plan {
        let skipped: BTreeSet<usize> = drop.iter().chain(corrupt).copied().collect();
        let want = gaps_of(&skipped, protocol.rows_per_unit());
        assert_eq!(hub_gaps.get(*stream), Some(&want), "{stream}: gaps seen by the hub");
        assert_eq!(gateway_gaps.get(*stream), Some(&want), "{stream}: wave-gap events");
    }
    let key = StreamKey { site: "test-site".into(), gw: "gw-test".into(), dev: "steth-1".into(), stream: "pcg".into() };
    let tally = hub.tallies().find(|(k, _)| **k == key).unwrap().1;
    assert_eq!(tally.samples + tally.missing, 8_000);
    // The corrupt units were reported as such, too.
    let codes: Vec<&str> = bodies.iter().filter_map(|b| b.event.as_ref()).map(|e| e.code.as_str()).collect();
    for code in ["frame-garbage", "frame-crc", "samples-unparseable"] {
        assert!(codes.contains(&code), "{code} in {codes:?}");
    }
}

/// A pressure wave and a pleth with a two-word label, recorded by the real `Recorder`: UCUM's
/// `mm[Hg]` is written as WFDB's `mmHg` (and kept as signed in a header comment), so PhysioNet's
/// own reader takes every field (before, it read the units as `mm` and the rest of the line,
/// resolution and checksum included, as the signal's name).
#[test]
fn a_recorded_pressure_waves_units_are_read_by_physionets_reader() {
    use spokegate::model::{Channel, Code, Unit, Wave};
    use spokegate::pipeline::{make_body, Payload, Source};
    use spokegate::wave::{pack, Encoding};
    let abp = [80, 95, 120, 110, 90];
    let pleth = [512, 530, 560, 540, 520];
    let channel = |label: &str, ucum: &str, s: &[i32]| Channel {
        label: label.into(),
        code: Code { mdc: 150084, loinc: None, name: None },
        unit: Unit { ucum: ucum.into(), mdc: None },
        gain: 1.0,
        base: 0,
        enc: "i16le".into(),
        data: pack(s, Encoding::I16Le).unwrap(),
    };
    let wave = Wave {
        stream: "pressure".into(),
        rate: 125.0,
        i0: 0,
        t0: 0,
        n: abp.len() as u32,
        ch: vec![channel("ABP", "mm[Hg]", &abp), channel("Pleth 1", "%", &pleth)],
    };
    let from = Source { dev: "monitor-1".into(), profile: "p".into() };
    let body = make_body("site", "gw", Some(&from), Payload::Wave(wave), 1, 0, None);
    let dir = tempfile::tempdir().unwrap();
    let mut rec = spokegate::hub::Recorder::new(dir.path()).unwrap();
    let placed = Reassembler::default().accept(&body).unwrap().unwrap();
    rec.write(&placed, body.wave.as_ref().unwrap(), body.seq).unwrap();
    rec.write_headers().unwrap();
    let record = dir.path().join("site_gw_monitor_1_pressure");
    let header = std::fs::read_to_string(record.with_extension("hea")).unwrap();
    assert!(header.contains("# signal 1 units (UCUM): mm[Hg]"), "{header}");

    let out = std::process::Command::new("python3")
        .arg(format!("{}/tests/hub_py/read_records.py", env!("CARGO_MANIFEST_DIR")))
        .args(["header", &record.display().to_string()])
        .output()
        .expect("python3 with wfdb (.ci/setup installs it)");
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{line} {}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(r["units"], serde_json::json!(["mmHg", "%"]), "{r}");
    assert_eq!(r["sig_name"], serde_json::json!(["ABP", "Pleth 1"]), "{r}");
    assert_eq!(r["adc_res"], serde_json::json!([16, 16]), "{r}");
    assert_eq!(r["d_signal"], serde_json::json!([abp, pleth]), "{r}");
}

/// A gateway that booted on a wrong clock reports the step once NTP corrects it; `watch --record`
/// moves the start of a recording begun on the old clock by it (the WFDB header's base date and
/// time), and a step the gateway could not have taken is not followed. Crafted chunks signed with
/// the gateway's key, through a real mosquitto, to the real `spokegate watch`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_begun_before_a_clock_step_starts_on_the_corrected_clock() {
    use spokegate::model::{BodyFormat, Channel, Code, Event, Severity, Unit, Wave};
    use spokegate::pipeline::{make_body, Payload, Source};
    let broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record");
    let mut watch = watch_cmd(broker.port, &[&gw.jwk_file()]).arg("--record").arg(&record).spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    let publisher = Publisher::connect(broker.port, "gateway-clock").await;
    let status = until_watch_subscribed(&publisher, &mut lines, "spokegate/v1/test-site/gw-test/status").await;
    assert!(status.contains("unsigned"), "{status}");
    let sealed = |b: &Body| spokegate::sign::seal(&gw.key(), &b.encode(BodyFormat::Cbor).unwrap(), BodyFormat::Cbor);
    // A chunk at 2023-11-14 22:13:20 on a clock ten days behind (seq 1).
    let samples = [10, 12, 15, 11];
    let wave = Wave {
        stream: "ecg".into(),
        rate: 360.0,
        i0: 0,
        t0: 1_700_000_000_000_000,
        n: samples.len() as u32,
        ch: vec![Channel {
            label: "II".into(),
            code: Code { mdc: 131330, loinc: None, name: None },
            unit: Unit { ucum: "mV".into(), mdc: None },
            gain: 0.005,
            base: 0,
            enc: "i16le".into(),
            data: spokegate::wave::pack(&samples, spokegate::wave::Encoding::I16Le).unwrap(),
        }],
    };
    let ecg = Source { dev: "ecg-1".into(), profile: "mitbih-cyton".into() };
    let chunk = make_body("test-site", "gw-test", Some(&ecg), Payload::Wave(wave), 1, 1_700_000_000_000_000, None);
    let step = |seq, step_us: i64, seq_to: u64| {
        let e = Event::new("clock-stepped", Severity::Warn, "stepped")
            .with("step_us", step_us)
            .with("seq_from", 1)
            .with("seq_to", seq_to)
            .with("queued", 0);
        make_body("test-site", "gw-test", None, Payload::Event(e), seq, 1_700_864_000_000_000, None)
    };
    const DAY: i64 = 86_400_000_000;
    // Ten days forward for seq 1; then a step claiming messages not yet signed (not followed).
    for b in [chunk, step(2, 10 * DAY, 1), step(3, 365 * DAY, 9)] {
        publisher.publish(&spokegate::mqtt::topics::for_body(&b), sealed(&b)).await;
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut seen = 0;
    while seen < 3 {
        let line = tokio::time::timeout_at(deadline, lines.next_line()).await.expect("three messages").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line.expect("watch runs")).unwrap();
        if v["verdict"] == "verified" {
            seen += 1;
        }
    }
    unsafe { libc::kill(watch.id().unwrap() as i32, libc::SIGTERM) };
    assert!(watch.wait().await.unwrap().success());
    let header = std::fs::read_to_string(record.join("test_site_gw_test_ecg_1_ecg.hea")).unwrap();
    let first = header.lines().next().unwrap();
    assert!(first.ends_with(" 22:13:20.000 24/11/2023"), "the record starts on the corrected clock: {first}");
}
