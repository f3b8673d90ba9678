//! The systemd unit: `systemd-analyze` rates its sandbox (exposure at most 2.0, while the daemon
//! still reads serial adapters, reaches BlueZ over D-Bus and the broker over IP) and finds nothing
//! wrong in it.

use std::process::Command;

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/spokegate.service");

#[test]
fn the_unit_is_sandboxed_to_an_exposure_of_at_most_2() {
    let (figure, text) = crate::installed::exposure(UNIT);
    assert!(figure <= 2.0, "exposure {figure} > 2.0:\n{text}");
    // What the daemon needs is still allowed.
    let unit = std::fs::read_to_string(UNIT).unwrap();
    for needed in
        ["DeviceAllow=char-188 rw", "DeviceAllow=char-166 rw", "AF_UNIX AF_INET AF_INET6", "StateDirectory=spokegate"]
    {
        assert!(unit.contains(needed), "{needed}");
    }
}

#[test]
fn systemd_analyze_verify_finds_nothing_wrong_with_the_unit() {
    crate::installed::assert_unit_verifies(UNIT, "/usr/bin/spokegate", env!("CARGO_BIN_EXE_spokegate"));
}

/// The daemon speaks sd_notify: READY once running, then watchdog pings while its pipeline and
/// uplink beat, also while the uplink waits for a broker that went away (that is not a wedge).
/// The test plays systemd's part with a datagram socket in NOTIFY_SOCKET.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_is_pinged_while_the_stages_beat_even_with_the_broker_away() {
    use crate::harness::*;
    let mut broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let config = gw.config(broker.port, &[], "");
    let sock_path = gw.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(PATIENCE)).unwrap();
    // systemd names the main process in WATCHDOG_PID: the shell's pid is the daemon's after exec.
    let _daemon = KillOnDrop(
        Command::new("sh")
            .args(["-c", "WATCHDOG_PID=$$ exec \"$0\" run --config \"$1\""])
            .arg(env!("CARGO_BIN_EXE_spokegate"))
            .arg(&config)
            .env("NOTIFY_SOCKET", &sock_path)
            .env("WATCHDOG_USEC", "400000")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut buf = [0u8; 512];
    let mut next = || {
        let n = sock.recv(&mut buf).expect("a notification in time");
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    let mut got = Vec::new();
    while got.iter().filter(|m: &&String| m.contains("WATCHDOG=1")).count() < 3 {
        got.push(next());
    }
    assert!(got.iter().any(|m| m.contains("READY=1")), "{got:?}");
    broker.stop();
    for _ in 0..5 {
        let m = next();
        assert!(m.contains("WATCHDOG=1") || m.contains("STATUS"), "{m}");
    }
}
