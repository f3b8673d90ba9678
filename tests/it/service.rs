//! The systemd unit: `systemd-analyze` rates its sandbox (exposure at most 2.0, while the daemon
//! still reads serial adapters, reaches BlueZ over D-Bus and the broker over IP) and finds nothing
//! wrong in it.

use std::process::Command;

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/spokegate.service");

#[test]
fn the_unit_is_sandboxed_to_an_exposure_of_at_most_2() {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager", UNIT])
        .output()
        .expect("systemd-analyze (systemd) is installed");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let line = text.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_else(|| panic!("{text}"));
    let figure: f64 = line
        .split(':')
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no figure in {line}"));
    assert!(figure <= 2.0, "exposure {figure} > 2.0:\n{text}");
    // What the daemon needs is still allowed.
    let unit = std::fs::read_to_string(UNIT).unwrap();
    for needed in [
        "DeviceAllow=char-ttyUSB rw",
        "DeviceAllow=char-ttyACM rw",
        "AF_UNIX AF_INET AF_INET6",
        "StateDirectory=spokegate",
    ] {
        assert!(unit.contains(needed), "{needed}");
    }
}

#[test]
fn systemd_analyze_verify_finds_nothing_wrong_with_the_unit() {
    // `verify` insists that ExecStart's binary exists: the unit is checked with the path of the
    // binary this test built in its place (the installed path is /usr/bin/spokegate).
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(UNIT).unwrap().replace("/usr/bin/spokegate", env!("CARGO_BIN_EXE_spokegate"));
    let path = dir.path().join("spokegate.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&path).output().expect("systemd-analyze");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.trim().is_empty(), "{text}");
}
