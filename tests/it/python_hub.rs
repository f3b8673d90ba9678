//! The same path read by software that is not ours: a Python hub (paho-mqtt + pycose + cbor2,
//! `tests/hub_py/verify_hub.py`) verifies every signature with the public JWK alone (deriving the
//! kid itself), for CBOR and JSON bodies; and a Python waveform hub (`tests/hub_py/wave_hub.py`)
//! unpacks every packing of the contract with its own implementation and checks the samples
//! against the WFDB checksums of the source records. Every wait on the Python side has a limit.

use crate::e2e::{fixture, stated_observations, MESSAGES};
use crate::harness::*;
use spokegate::framing::mllp_wrap;
use spokegate::sim::PtyDevice;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A Python hub: its process (killed if the test fails) and its output lines, read on a thread.
struct PythonHub {
    child: KillOnDrop,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl PythonHub {
    fn start(script: &str, args: &[String]) -> PythonHub {
        let mut child = Command::new("python3")
            .arg(format!("{}/tests/hub_py/{script}", env!("CARGO_MANIFEST_DIR")))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with paho-mqtt, pycose and cbor2<6 (.ci/setup installs them)");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        PythonHub { child: KillOnDrop(child), lines }
    }

    /// The next line, within `limit` (a test fails rather than hangs).
    async fn line(&mut self, limit: Duration) -> Option<String> {
        tokio::time::timeout(limit, self.lines.recv()).await.expect("the Python hub answers in time")
    }

    /// Waits (bounded) for the hub to exit; its status and the rest of its output.
    async fn finish(mut self, limit: Duration) -> (std::process::ExitStatus, Vec<String>) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.0.try_wait().unwrap() {
                let mut rest = Vec::new();
                while let Ok(Some(l)) = tokio::time::timeout(Duration::from_millis(200), self.lines.recv()).await {
                    rest.push(l);
                }
                return (status, rest);
            }
            assert!(tokio::time::Instant::now() < deadline, "the Python hub did not finish within {limit:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn python_hub_verifies(body_format: &str) {
    let broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let jwk = gw.jwk_file();
    let mut dev = PtyDevice::create(&gw.path().join("ttyMON")).unwrap();
    let config =
        gw.config(broker.port, &[("monitor-1", "hl7-pcd01", &dev.path)], &format!("body_format = \"{body_format}\""));

    // Five messages with MDC observations, and the lab result that becomes one event.
    let expected: Vec<_> = MESSAGES.iter().flat_map(|m| stated_observations(&fixture(m))).collect();
    let signed_bodies = MESSAGES.len(); // 5 obs bodies + 1 event body
    let mut hub = PythonHub::start(
        "verify_hub.py",
        &["127.0.0.1".into(), broker.port.to_string(), jwk.display().to_string(), signed_bodies.to_string()],
    );
    assert_eq!(hub.line(PATIENCE).await.as_deref(), Some("READY"));

    let gateway = RunningGateway::start(&config, gw.key());
    for m in MESSAGES {
        dev.peer.send(&mllp_wrap(&fixture(m))).await.unwrap();
    }
    read_acks(&mut dev.peer, MESSAGES.len()).await;
    let (status, lines) = hub.finish(PATIENCE).await;
    gateway.stop().await;
    assert!(status.success(), "python hub failed: {lines:?}");

    let bodies: Vec<serde_json::Value> =
        lines.iter().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).collect();
    assert!(bodies.iter().all(|b| b.get("error").is_none()), "{lines:?}");
    let obs: Vec<&serde_json::Value> = bodies
        .iter()
        .filter(|b| b["body"]["type"] == "obs")
        .flat_map(|b| b["body"]["obs"].as_array().unwrap())
        .collect();
    assert_eq!(obs.len(), expected.len());
    for (o, s) in obs.iter().zip(&expected) {
        assert_eq!(o["code"]["mdc"].as_u64(), Some(u64::from(s.mdc)));
        assert_eq!(o["val"].as_f64(), Some(s.value));
        assert_eq!(o["unit"]["mdc"].as_u64(), Some(u64::from(s.unit_mdc)));
    }
    assert!(bodies.iter().any(|b| b["body"]["event"]["code"] == "code-unmapped"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_hub_verifies_every_signature_with_pycose_and_reads_the_values() {
    python_hub_verifies("cbor").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bodies_verify_with_pycose_too() {
    python_hub_verifies("json").await;
}

#[test]
fn the_python_hub_derives_the_kid_and_refuses_a_jwk_whose_kid_is_wrong() {
    let gw = GatewayDir::new();
    let jwk = gw.jwk_file();
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&jwk).unwrap()).unwrap();
    v["kid"] = "0000000000000000".into();
    let forged = gw.path().join("forged.jwk");
    std::fs::write(&forged, v.to_string()).unwrap();
    let script = format!("{}/tests/hub_py", env!("CARGO_MANIFEST_DIR"));
    let run = |path: &std::path::Path| {
        Command::new("python3")
            .current_dir(&script)
            .args(["-c", &format!("from hub_common import load_jwk; print(load_jwk({:?})[0]['derived_kid'])", path)])
            .output()
            .unwrap()
    };
    let good = run(&jwk);
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    assert_eq!(String::from_utf8_lossy(&good.stdout).trim(), gw.key().public().kid_hex());
    let bad = run(&forged);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not SHA-256(x)[:8]"));
}

/// A replay profile (`file`) as an operator's copy whose stream (`stream`) is packed by `enc`.
fn packed(file: &str, id: &str, stream: &str, enc: &str) -> String {
    spokegate::sim::recordings::WAVE_PROFILES
        .iter()
        .find(|(name, _)| *name == file)
        .unwrap()
        .1
        .replace(&format!("id = \"{id}\""), &format!("id = \"{id}-{enc}\""))
        .replace(&format!("stream = \"{stream}\""), &format!("stream = \"{stream}-{enc}\"\nenc = \"{enc}\""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_hub_unpacks_every_packing_and_finds_the_source_samples() {
    use spokegate::sim::waves::{self, Recording, WireProtocol};
    let broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let jwk = gw.jwk_file();
    let profiles = gw.path().join("profiles");
    spokegate::sim::recordings::write_wave_profiles(&profiles).unwrap();
    let recordings = format!("{}/src/sim/recordings", env!("CARGO_MANIFEST_DIR"));
    // MIT-BIH (24-bit Cyton counts) in rice, dzv and i32le; the 16-bit heart sound in i16le; the
    // PTB-XL 12-lead stream in the default (rice). Each is checked against its own source.
    let (mit, pcg) = (waves::mitbih_100(), waves::pcg_c0003());
    let pcm = WireProtocol::Pcm { rows: 20 };
    let plan: Vec<(&str, &str, &str, &Recording, WireProtocol, String)> = vec![
        ("mitbih-cyton.toml", "mitbih-cyton", "ecg", &mit, WireProtocol::Cyton, format!("{recordings}/100s.hea")),
        ("mitbih-cyton.toml", "mitbih-cyton", "ecg", &mit, WireProtocol::Cyton, format!("{recordings}/100s.hea")),
        ("mitbih-cyton.toml", "mitbih-cyton", "ecg", &mit, WireProtocol::Cyton, format!("{recordings}/100s.hea")),
        // The PCM device sends whole frames of 20 rows: the WAV's first that many samples.
        (
            "pcg-pcm.toml",
            "pcg-pcm",
            "pcg",
            &pcg,
            pcm,
            format!("wav:{recordings}/physionet2016_c0003_normal.wav:{}", pcg.rows() / 20 * 20),
        ),
    ];
    let packings = ["rice", "dzv", "i32le", "i16le"];
    let mut devices = Vec::new();
    let mut args = vec!["127.0.0.1".to_string(), broker.port.to_string(), jwk.display().to_string()];
    for ((file, id, stream, _, _, source), enc) in plan.iter().zip(packings) {
        std::fs::write(profiles.join(format!("{id}-{enc}.toml")), packed(file, id, stream, enc)).unwrap();
        let dev = PtyDevice::create(&gw.path().join(format!("tty-{enc}"))).unwrap();
        devices.push((format!("dev-{enc}"), format!("{id}-{enc}"), dev));
        args.push(format!("{stream}-{enc}={source}"));
    }
    let mut ecg12 = PtyDevice::create(&gw.path().join("ttyECG12")).unwrap();
    args.push(format!("ecg12={recordings}/00001_lr.hea"));
    let mut list: Vec<(&str, &str, &std::path::Path)> =
        devices.iter().map(|(d, p, dev)| (d.as_str(), p.as_str(), dev.path.as_path())).collect();
    list.push(("ecg-12", "ptbxl-text", &ecg12.path));
    let config = gw.config(broker.port, &list, &format!("profiles_dir = \"{}\"", profiles.display()));
    let mut hub = PythonHub::start("wave_hub.py", &args);
    assert_eq!(hub.line(PATIENCE).await.as_deref(), Some("READY"));
    let gateway = RunningGateway::start(&config, gw.key());
    let burst = Duration::from_millis(10);
    let ptb = waves::ptbxl_00001();
    let mut replays = Vec::new();
    for ((_, _, dev), (_, _, _, rec, protocol, _)) in devices.iter_mut().zip(&plan) {
        replays.push(waves::replay(&mut dev.peer, rec, *protocol, 10.0, Some(1), burst));
    }
    let (all, b) = tokio::join!(
        futures::future::join_all(replays),
        waves::replay(&mut ecg12.peer, &ptb, WireProtocol::TextRows, 10.0, Some(1), burst)
    );
    for a in all {
        a.unwrap();
    }
    b.unwrap();
    let (status, out) = hub.finish(Duration::from_secs(60)).await;
    gateway.stop().await;
    assert!(status.success(), "python wave hub: {out:?}");
    let results: Vec<serde_json::Value> = out.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(results.len(), packings.len() + 1, "{out:?}");
    let mut seen = Vec::new();
    for r in &results {
        match r.get("identical") {
            Some(same) => assert!(same.as_array().unwrap().iter().all(|x| x == true), "{r}"),
            None => {
                let sums = r["checksums"].as_array().unwrap();
                assert!(!sums.is_empty());
                for c in sums {
                    assert_eq!(c["stated"], c["computed"], "{r}");
                    assert_eq!(c["signal"], c["label"], "{r}");
                }
            }
        }
        // Each stream arrived in the packing its profile names (the 12-lead one in the default).
        let stream = r["stream"].as_str().unwrap();
        let want = stream.rsplit_once('-').map_or("rice", |(_, enc)| enc);
        assert_eq!(r["encodings"], serde_json::json!([want]), "{r}");
        seen.push(want.to_string());
    }
    seen.sort();
    assert_eq!(seen, ["dzv", "i16le", "i32le", "rice", "rice"]);
}
