//! The `spokegate` binary as operators and systemd use it: exit codes (sysexits), key handling,
//! offline profile testing, SIGTERM drain, and the demo.

use crate::e2e::fixture;
use crate::harness::*;
use spokegate::framing::mllp_wrap;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

fn spokegate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spokegate")).args(args).output().unwrap()
}

#[test]
fn check_config_exits_78_naming_file_line_and_item() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[gateway]\nsite = \"s\"\nid = \"g\"\nstate_dir = \"/x\"\n[mqtt]\nurl = \"mqtt://h\"\n[[device]]\nid = \"m\"\nprofile = \"hl7-pcd01\"\nserial = { path = \"/dev/ttyUSB0\", baud = 0 }\n").unwrap();
    let out = spokegate(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:10:", path.display())), "{err}");
    assert!(err.contains("device[0].serial.baud"), "{err}");

    std::fs::write(&path, "[gateway]\nsite = \"s\"\nid = \"g\"\nstate_dir = \"/x\"\n[mqtt]\nurl = \"mqtt://h\"\n")
        .unwrap();
    assert_eq!(spokegate(&["check-config", "--config", path.to_str().unwrap()]).status.code(), Some(0));
}

#[test]
fn keygen_makes_a_private_key_and_run_refuses_it_once_others_can_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("gateway.key");
    let out = spokegate(&["keygen", "--key-file", key.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let jwk: serde_json::Value =
        serde_json::from_slice(&spokegate(&["key", "show", "--key-file", key.to_str().unwrap()]).stdout).unwrap();
    assert_eq!((jwk["kty"].as_str(), jwk["crv"].as_str()), (Some("OKP"), Some("Ed25519")));
    assert_eq!(jwk["kid"].as_str().unwrap().len(), 16);
    // A second keygen never overwrites.
    assert_eq!(spokegate(&["keygen", "--key-file", key.to_str().unwrap()]).status.code(), Some(73));

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nsite = \"s\"\nid = \"g\"\nstate_dir = \"{}\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = spokegate(&["run", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(77));
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
}

#[test]
fn profile_test_decodes_a_meter_capture_offline_into_contract_bodies() {
    let capture = format!("{}/tests/fixtures/onetouch_ultra2_dmp.txt", env!("CARGO_MANIFEST_DIR"));
    let out = spokegate(&["profile", "test", "onetouch-ultra2", &capture]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let bodies: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // The three readings the source lists: 081, 105, 176 mg/dL.
    let vals: Vec<f64> = bodies.iter().map(|b| b["obs"][0]["val"].as_f64().unwrap()).collect();
    assert_eq!(vals, [81.0, 105.0, 176.0]);
    assert!(bodies
        .iter()
        .all(|b| b["type"] == "obs" && b["prof"] == "onetouch-ultra2" && b["obs"][0]["unit"]["ucum"] == "mg/dL"));
    assert!(bodies.iter().all(|b| b["tdev"].is_i64()));
}

#[test]
fn profile_test_reads_hex_captures_and_reports_bad_frames() {
    let dir = tempfile::tempdir().unwrap();
    let wire = [&b"junk"[..], &mllp_wrap(&fixture("continua_wan_oru_r01_thermometer"))].concat();
    let hex: String =
        wire.chunks(16).map(|c| c.iter().map(|b| format!("{b:02x} ")).collect::<String>() + "\n").collect();
    let capture = dir.path().join("thermo.hex");
    std::fs::write(&capture, format!("# captured from a serial sniffer\n{hex}")).unwrap();
    let out = spokegate(&["profile", "test", "hl7-pcd01", capture.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let bodies: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(bodies[0]["event"]["code"], "frame-garbage");
    assert_eq!(bodies[1]["obs"][0]["val"].as_f64(), Some(98.6));
    assert_eq!(bodies[1]["obs"][0]["unit"]["ucum"], "[degF]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_readings_in_flight_drains_them_or_keeps_them_queued() {
    use crate::durability::numbered_hl7;
    let Rig { broker: _broker, gw, dev, config, mut sub } = Rig::hl7_monitor().await;
    let births = sub.births();
    let mut child = run_binary(&config);
    sub.until_birth_after(births).await;
    // 300 readings back to back; SIGTERM as soon as the first is acknowledged, while the rest are
    // on the line, in the pipeline, in the queue or in flight to the broker.
    let (mut reader, mut writer) = dev.peer.split();
    let burst: Vec<u8> = (1..=300).flat_map(numbered_hl7).collect();
    let (gone, mut gone_rx) = tokio::sync::oneshot::channel::<()>();
    let sender = tokio::spawn(async move {
        // The line stops taking bytes once the daemon is gone: stop writing then.
        tokio::select! {
            _ = writer.send(&burst) => {}
            _ = &mut gone_rx => {}
        }
        writer
    });
    let mut acked = read_acks_ids(&mut reader, 1).await;
    Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < PATIENCE, "the daemon drains in time");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0));
    acked.extend(acks_after_exit(&mut reader).await);
    let _ = gone.send(());
    let _writer = sender.await.unwrap();
    sub.until("the offline status", |seen| {
        seen.iter().any(|(t, p)| t.ends_with("/status") && String::from_utf8_lossy(p).contains("\"offline\""))
    })
    .await;
    let keys = gw.keys();
    let delivered: std::collections::BTreeSet<String> = sub.bodies(&keys).iter().filter_map(systolic_id).collect();
    eprintln!("SIGTERM drain: {} acknowledged, {} delivered before the exit", acked.len(), delivered.len());
    // What the device heard accepted either reached the broker before the exit or is still queued.
    let missing: Vec<&String> = acked.iter().filter(|id| !delivered.contains(*id)).collect();
    let queued = spokegate::queue::Queue::inspect(gw.path()).unwrap().depth;
    assert!(
        missing.len() as u64 <= queued,
        "{} acknowledged readings neither delivered nor queued ({queued} queued)",
        missing.len()
    );
    // ... and the next start delivers them.
    let _again = run_binary(&config);
    sub.until_signed("every acknowledged reading after the restart", &keys, |bodies| {
        let got: std::collections::BTreeSet<String> = bodies.iter().filter_map(systolic_id).collect();
        acked.iter().all(|id| got.contains(id))
    })
    .await;
}

/// `MSGn` of a numbered NIBP reading (its systolic value is n).
fn systolic_id(b: &spokegate::model::Body) -> Option<String> {
    let o = b.obs.as_ref()?.iter().find(|o| o.code.mdc == 150021)?;
    Some(format!("MSG{}", o.val? as u32))
}

/// Control ids of the first `n` AA acknowledgements.
async fn read_acks_ids(peer: &mut spokegate::sim::PtyReader, n: usize) -> Vec<String> {
    let mut framer = spokegate::framing::MllpFramer::new(1 << 16);
    let mut buf = [0u8; 4096];
    let mut ids = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    use spokegate::framing::Framer;
    while ids.len() < n {
        let got = tokio::time::timeout_at(deadline, peer.read(&mut buf)).await.expect("ACKs in time").unwrap();
        framer.push(&buf[..got]);
        while let Ok(Some(f)) = framer.next_frame() {
            let text = String::from_utf8_lossy(&f).to_string();
            if let Some(msa) = text.split('\r').find(|s| s.starts_with("MSA|AA|")) {
                ids.push(msa.split('|').nth(2).unwrap_or("").to_string());
            }
        }
    }
    ids
}

/// Every AA the device got before the daemon closed the line.
async fn acks_after_exit(peer: &mut spokegate::sim::PtyReader) -> Vec<String> {
    let mut framer = spokegate::framing::MllpFramer::new(1 << 16);
    let mut buf = [0u8; 4096];
    let mut ids = Vec::new();
    use spokegate::framing::Framer;
    // The daemon is gone: what it wrote is in the line's buffer already.
    while let Ok(Ok(got)) = tokio::time::timeout(std::time::Duration::from_millis(100), peer.read(&mut buf)).await {
        if got == 0 {
            break;
        }
        framer.push(&buf[..got]);
        while let Ok(Some(f)) = framer.next_frame() {
            let text = String::from_utf8_lossy(&f).to_string();
            if let Some(msa) = text.split('\r').find(|s| s.starts_with("MSA|AA|")) {
                ids.push(msa.split('|').nth(2).unwrap_or("").to_string());
            }
        }
    }
    ids
}

#[test]
fn the_demo_runs_with_no_setup_and_shows_verified_readings() {
    let out = spokegate(&["demo", "--duration", "5", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let obs: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["verdict"] == "verified" && l["body"]["type"] == "obs").collect();
    assert!(obs.len() >= 2, "{stdout}");
    assert!(lines.iter().all(|l| l["verdict"] != "rejected"), "{stdout}");
    let summary = stdout.lines().last().unwrap();
    assert!(summary.contains("rejected 0"), "{summary}");
    // Every simulated device is heard from: serial HL7, the asked OneTouch and the ASTM meter, the
    // two waveforms, and (with dbus-daemon and dbus-next, which the test setup installs) the three
    // BLE devices.
    let from = |dev: &str| {
        lines.iter().any(|l| l["verdict"] == "verified" && l["body"]["dev"] == dev && l["body"]["type"] != "event")
    };
    for dev in ["monitor-1", "glucose-1", "glucose-2", "ecg-1", "steth-1", "bp-1", "temp-1", "ecg-2"] {
        assert!(from(dev), "nothing from {dev}:\n{stdout}");
    }
    for stream in ["ecg", "pcg"] {
        assert!(lines.iter().any(|l| l["body"]["type"] == "wave" && l["body"]["stream"] == stream), "{stream}");
    }
    // The demo's hub opened a consult: the gateway's signed consult and reply, and readings bound to it.
    let consult = lines.iter().find(|l| l["body"]["type"] == "consult").expect("a consult message");
    let id = consult["body"]["consult"].as_str().unwrap();
    assert!(id.starts_with("DEMO-"), "{consult}");
    assert!(lines.iter().any(|l| l["body"]["type"] == "reply" && l["body"]["state"] == "done"), "{stdout}");
    assert!(lines.iter().any(|l| l["body"]["type"] == "obs" && l["body"]["consult"] == id), "{stdout}");
    // The microscope: the hub asked for a capture, and the image's parts arrived, verified.
    assert!(
        lines
            .iter()
            .any(|l| l["verdict"] == "verified" && l["body"]["type"] == "media" && l["body"]["dev"] == "scope-1"),
        "no image from scope-1:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!summary.contains(" 0 images whole"), "{summary}");
}

/// A minimal configuration whose state directory is `state` and broker `port`.
fn minimal_config(dir: &std::path::Path, state: &std::path::Path, port: u16) -> std::path::PathBuf {
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nsite = \"test-site\"\nid = \"gw-test\"\nstate_dir = \"{}\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\n",
            state.display()
        ),
    )
    .unwrap();
    config
}

#[test]
fn every_exit_code_the_readme_lists_is_what_the_binary_exits_with() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let config = minimal_config(dir.path(), &state, 1);
    let c = config.to_str().unwrap();
    let code = |args: &[&str]| {
        let out = spokegate(args);
        (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    // 78: a configuration `run` refuses (not only check-config).
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[gateway]\nsite = \"Bad Site\"\nid = \"g\"\nstate_dir = \"/x\"\n[mqtt]\nurl = \"mqtt://h\"\n",
    )
    .unwrap();
    let (got, err) = code(&["run", "--config", bad.to_str().unwrap()]);
    assert_eq!(got, Some(78), "{err}");
    assert!(err.contains("bad.toml:2:") && err.contains("gateway.site"), "{err}");
    // 66: no key yet (and the message says how to make one); a capture that does not exist.
    let (got, err) = code(&["run", "--config", c]);
    assert_eq!(got, Some(66), "{err}");
    assert!(err.contains("spokegate keygen --config"), "{err}");
    assert_eq!(code(&["profile", "test", "hl7-pcd01", "/nonexistent/capture.bin"]).0, Some(66));
    // 65: a damaged queue store is refused and left in place.
    assert_eq!(code(&["keygen", "--config", c]).0, Some(0));
    std::fs::write(state.join("queue.sqlite"), vec![0x5a; 8192]).unwrap();
    let (got, err) = code(&["run", "--config", c]);
    assert_eq!(got, Some(65), "{err}");
    assert!(err.contains("damaged"), "{err}");
    assert_eq!(std::fs::read(state.join("queue.sqlite")).unwrap(), vec![0x5a; 8192]);
    // 74: the state directory cannot hold the queue (a file is in the way).
    std::fs::remove_file(state.join("queue.sqlite")).unwrap();
    std::fs::create_dir(state.join("queue.sqlite")).unwrap();
    let (got, err) = code(&["run", "--config", c]);
    assert_eq!(got, Some(74), "{err}");
    // 69: the daemon the operator asks is not running; a broker that is not there.
    let (got, err) = code(&["consult", "start", "C-1", "--config", c]);
    assert_eq!(got, Some(69), "{err}");
    assert!(err.contains("is spokegate running"), "{err}");
    let hub = HubKey::new("hub-x");
    let (got, err) = code(&[
        "hub",
        "send",
        "--url",
        "mqtt://127.0.0.1:1",
        "--key",
        hub.path.to_str().unwrap(),
        "--site",
        "s",
        "--gw",
        "g",
        "--timeout",
        "5",
        "status",
    ]);
    assert_eq!(got, Some(69), "{err}");
    // 64: a malformed URL.
    assert_eq!(code(&["watch", "--url", "http://x", "--key", hub.jwk.to_str().unwrap()]).0, Some(64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_gateway_is_shown_offline_by_its_will() {
    let Rig { broker: _broker, gw: _gw, dev: _dev, config, mut sub } = Rig::hl7_monitor().await;
    let births = sub.births();
    let mut child = run_binary(&config);
    sub.until_birth_after(births).await;
    child.0.kill().unwrap(); // SIGKILL: no drain, no goodbye
    child.0.wait().unwrap();
    // The broker publishes the will when it notices the dead connection.
    sub.until("the will: offline", |seen| {
        seen.iter().any(|(t, p)| t.ends_with("/status") && String::from_utf8_lossy(p).contains("\"offline\""))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_asks_the_running_daemon_and_a_second_daemon_on_its_state_is_refused_with_75() {
    use crate::durability::numbered_hl7;
    let Rig { broker: _broker, gw: _gw, mut dev, config, mut sub } = Rig::hl7_monitor().await;
    let c = config.to_str().unwrap();
    let births = sub.births();
    let mut first = run_binary(&config);
    sub.until_birth_after(births).await;
    dev.peer.send(&numbered_hl7(7)).await.unwrap();
    assert_eq!(read_acks(&mut dev.peer, 1).await, ["AA"]);
    // `status` while it runs: the daemon answers (it holds the store), with its queue figures.
    let out = spokegate(&["status", "--config", c]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["running"], true, "{v}");
    assert!(v["queue"]["depth"].is_u64() && v["queue"]["delivery"] == "broker", "{v}");
    // A second daemon with the same state directory is refused: 75 (temporary: the first runs).
    let second = spokegate(&["run", "--config", c]);
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(75), "{err}");
    assert!(err.contains("in use by another process"), "{err}");
    assert!(first.0.try_wait().unwrap().is_none(), "the first daemon is unharmed");
    // Stopped, `status` reads the store itself.
    Command::new("kill").args(["-TERM", &first.0.id().to_string()]).status().unwrap();
    assert!(first.0.wait().unwrap().success());
    let out = spokegate(&["status", "--config", c]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["running"].as_bool(), v["queue"]["depth"].as_u64()), (Some(false), Some(0)), "{v}");
}

#[test]
fn profile_list_names_every_shipped_profile() {
    let out = spokegate(&["profile", "list"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for (file, _) in spokegate::profile::BUILTIN {
        let id = file.trim_end_matches(".toml");
        assert!(text.lines().any(|l| l.starts_with(id) && l.contains("builtin")), "{id} missing:\n{text}");
    }
}

#[test]
fn profile_test_reads_a_ble_capture() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("strap.txt");
    // Nordic's and StanfordSpezi's Heart Rate vectors, as a sniffer would log them.
    std::fs::write(
        &capture,
        "# Heart Rate Measurement notifications\n0x2A37 0055\n0x2A37 194b00380404043804\n0x2A37 ff64\n",
    )
    .unwrap();
    let out = spokegate(&["profile", "test", "ble-heart-rate", capture.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let bodies: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let rates: Vec<f64> = bodies
        .iter()
        .filter_map(|b| b["obs"].as_array())
        .flat_map(|o| o.iter().filter(|x| x["code"]["mdc"] == 147842).map(|x| x["val"].as_f64().unwrap()))
        .collect();
    assert_eq!(rates, [85.0, 75.0], "the vectors' stated heart rates");
    assert!(bodies.iter().any(|b| b["event"]["code"] == "gatt-invalid"), "the invalid vector is reported");
    // A line that is not `<uuid> <hex>`: refused with its line number.
    std::fs::write(&capture, "0x2A37 0055\nnot a notification\n").unwrap();
    let out = spokegate(&["profile", "test", "ble-heart-rate", capture.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(65));
}
