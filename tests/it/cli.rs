//! The `spokegate` binary as operators and systemd use it: exit codes (sysexits), key handling,
//! offline profile testing, SIGTERM drain, and the demo.

use crate::e2e::fixture;
use crate::harness::*;
use spokegate::framing::mllp_wrap;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};

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
async fn sigterm_drains_publishes_offline_and_exits_0() {
    let Rig { broker: _broker, gw: _gw, mut dev, config, mut sub } = Rig::hl7_monitor().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_spokegate"))
        .args(["run", "--config", config.to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    dev.peer.send(&mllp_wrap(&fixture("pcd01_oru_r01_nibp_acme"))).await.unwrap();
    assert_eq!(read_acks(&mut dev.peer, 1).await, ["AA"]);
    sub.until("the reading", |seen| seen.iter().any(|(t, _)| t.ends_with("/obs"))).await;
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0));
    sub.until("the offline status", |seen| {
        seen.iter().any(|(t, p)| t.ends_with("/status") && String::from_utf8_lossy(p).contains("\"offline\""))
    })
    .await;
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
    // Every simulated device is heard from: serial HL7 and meter, the two waveforms, and (with
    // dbus-daemon and dbus-next, which the test setup installs) the three BLE devices.
    let from = |dev: &str| {
        lines.iter().any(|l| l["verdict"] == "verified" && l["body"]["dev"] == dev && l["body"]["type"] != "event")
    };
    for dev in ["monitor-1", "ecg-1", "steth-1", "bp-1", "temp-1", "ecg-2"] {
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
}
