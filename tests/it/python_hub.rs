//! The same path read by software that is not ours: a Python hub (paho-mqtt + pycose + cbor2,
//! `tests/hub_py/verify_hub.py`) verifies every signature with the public JWK alone, and a Python
//! waveform hub (`tests/hub_py/wave_hub.py`) unpacks the samples with its own implementation of
//! the documented packings and checks them against the WFDB checksums of the source records.

use crate::e2e::{fixture, stated_observations, MESSAGES};
use crate::harness::*;
use spokegate::framing::mllp_wrap;
use spokegate::sim::PtyDevice;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_hub_verifies_every_signature_with_pycose_and_reads_the_values() {
    let broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let jwk = gw.jwk_file();
    let mut dev = PtyDevice::create(&gw.path().join("ttyMON")).unwrap();
    let config = gw.config(broker.port, &[("monitor-1", "hl7-pcd01", &dev.path)], "");

    // Five messages with MDC observations, and the lab result that becomes one event.
    let expected: Vec<_> = MESSAGES.iter().flat_map(|m| stated_observations(&fixture(m))).collect();
    let signed_bodies = MESSAGES.len(); // 5 obs bodies + 1 event body
    let script = format!("{}/tests/hub_py/verify_hub.py", env!("CARGO_MANIFEST_DIR"));
    let mut hub = Command::new("python3")
        .args([&script, "127.0.0.1", &broker.port.to_string(), jwk.to_str().unwrap(), &signed_bodies.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 with paho-mqtt, pycose and cbor2<6 (.ci/run installs them)");
    let stdout = hub.stdout.take().unwrap();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok);
        let _ = ready_tx.send(first);
        lines.map_while(Result::ok).collect::<Vec<String>>()
    });
    let first = tokio::time::timeout(PATIENCE, ready_rx).await.expect("python hub ready").unwrap();
    assert_eq!(first.as_deref(), Some("READY"));

    let gateway = RunningGateway::start(&config, gw.key());
    for m in MESSAGES {
        dev.peer.send(&mllp_wrap(&fixture(m))).await.unwrap();
    }
    read_acks(&mut dev.peer, MESSAGES.len()).await;
    let status = tokio::task::spawn_blocking(move || hub.wait()).await.unwrap().unwrap();
    let lines = reader.join().unwrap();
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
async fn a_python_hub_unpacks_the_waveforms_and_finds_the_source_checksums() {
    use spokegate::sim::waves::{self, WireProtocol};
    let broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let jwk = gw.jwk_file();
    let profiles = gw.path().join("profiles");
    spokegate::sim::recordings::write_wave_profiles(&profiles).unwrap();
    let mut ecg = PtyDevice::create(&gw.path().join("ttyECG")).unwrap();
    let mut ecg12 = PtyDevice::create(&gw.path().join("ttyECG12")).unwrap();
    let config = gw.config(
        broker.port,
        &[("ecg-1", "mitbih-cyton", &ecg.path), ("ecg-2", "ptbxl-text", &ecg12.path)],
        &format!("profiles_dir = \"{}\"", profiles.display()),
    );
    let recordings = format!("{}/src/sim/recordings", env!("CARGO_MANIFEST_DIR"));
    let script = format!("{}/tests/hub_py/wave_hub.py", env!("CARGO_MANIFEST_DIR"));
    let mut hub = Command::new("python3")
        .args([&script, "127.0.0.1", &broker.port.to_string(), jwk.to_str().unwrap()])
        .arg(format!("ecg={recordings}/100s.hea"))
        .arg(format!("ecg12={recordings}/00001_lr.hea"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 with paho-mqtt, pycose and cbor2<6");
    let mut lines = BufReader::new(hub.stdout.take().unwrap()).lines();
    let first = tokio::task::spawn_blocking(move || (lines.next().and_then(Result::ok), lines)).await.unwrap();
    assert_eq!(first.0.as_deref(), Some("READY"));
    let gateway = RunningGateway::start(&config, gw.key());
    let (mit, ptb) = (waves::mitbih_100(), waves::ptbxl_00001());
    let burst = std::time::Duration::from_millis(10);
    let (a, b) = tokio::join!(
        waves::replay(&mut ecg.peer, &mit, WireProtocol::Cyton, 10.0, Some(1), burst),
        waves::replay(&mut ecg12.peer, &ptb, WireProtocol::TextRows, 10.0, Some(1), burst),
    );
    a.unwrap();
    b.unwrap();
    let mut lines = first.1;
    let status =
        tokio::time::timeout(std::time::Duration::from_secs(60), tokio::task::spawn_blocking(move || hub.wait()))
            .await
            .expect("python wave hub done in time")
            .unwrap()
            .unwrap();
    let out: Vec<String> = lines.by_ref().map_while(Result::ok).collect();
    gateway.stop().await;
    assert!(status.success(), "python wave hub: {out:?}");
    let results: Vec<serde_json::Value> = out.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(results.len(), 2, "{out:?}");
    for r in &results {
        let sums = r["checksums"].as_array().unwrap();
        assert!(!sums.is_empty());
        for c in sums {
            assert_eq!(c["stated"], c["computed"], "{r}");
            assert_eq!(c["signal"], c["label"], "{r}");
        }
    }
}
