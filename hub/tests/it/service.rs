//! The hub service's systemd unit (`systemd/spokegate-hub.service`): `systemd-analyze` rates its
//! sandbox (exposure at most 2.0, while the service still reaches PostgreSQL, the engine and its
//! HTTP clients) and finds nothing wrong in it; its user's sysusers snippet is valid; and the
//! service speaks sd_notify as `Type=notify` asks: READY once it serves, STOPPING on SIGTERM, and
//! watchdog pings while its ingest turns, also while it waits for a database that went away
//! (that is no wedge: a restart would not bring PostgreSQL back).

use crate::support::*;
use std::process::Command;

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../systemd/spokegate-hub.service");
const SYSUSERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../systemd/spokegate-hub.sysusers");

fn output(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn the_hub_unit_is_sandboxed_to_an_exposure_of_at_most_2_and_verifies() {
    let (_, text) = output(Command::new("systemd-analyze").args(["security", "--offline=true", "--no-pager", UNIT]));
    let line = text.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_else(|| panic!("{text}"));
    let figure: f64 = line
        .split(':')
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no figure in {line}"));
    assert!(figure <= 2.0, "exposure {figure} > 2.0:\n{text}");
    let unit = std::fs::read_to_string(UNIT).unwrap();
    for needed in
        ["Type=notify", "AF_UNIX AF_INET AF_INET6", "StateDirectory=spokegate-hub", "RestartPreventExitStatus=78"]
    {
        assert!(unit.contains(needed), "{needed}");
    }
    // `verify` insists that ExecStart's binary exists: this test build's stands in for
    // /usr/bin/spokegate-hub.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spokegate-hub.service");
    std::fs::write(&path, unit.replace("/usr/bin/spokegate-hub", hub_binary())).unwrap();
    let (ok, text) = output(Command::new("systemd-analyze").arg("verify").arg(&path));
    assert!(ok && text.trim().is_empty(), "{text}");
    // The user the unit runs as: what systemd-sysusers would create (nothing is written).
    let (ok, text) = output(Command::new("systemd-sysusers").arg("--dry-run").arg(SYSUSERS));
    assert!(ok, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_says_ready_once_it_serves_and_stopping_on_sigterm() {
    let db = TestDb::create();
    let broker = spokegate::sim::mosquitto::Mosquitto::start();
    let hub = HubSetup::new(&db, &mqtt_input(broker.port));
    // systemd's part: a datagram socket in NOTIFY_SOCKET.
    let sock_path = hub.dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut instance = hub.serve_with("notify", &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())]);
    let mut buf = [0u8; 512];
    let mut next = || {
        let n = sock.recv(&mut buf).unwrap_or_else(|e| panic!("no notification in time ({e})"));
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    let ready = next();
    assert!(ready.contains("READY=1"), "{ready}");
    // Ready means serving: the HTTP side answers at once.
    assert!(matches!(instance.get("/healthz").await, Some((200, _))), "{}", instance.log());
    let _ = Command::new("kill").args(["-TERM", &instance.proc.0.id().to_string()]).status();
    let stopping = next();
    assert!(stopping.contains("STOPPING=1"), "{stopping}");
    assert!(instance.terminate().success(), "{}", instance.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_is_pinged_while_the_ingest_waits_for_a_database_that_went_away() {
    let db = TestDb::create();
    let broker = spokegate::sim::mosquitto::Mosquitto::start();
    let hub = HubSetup::new(&db, &mqtt_input(broker.port));
    let keys = tempfile::tempdir().unwrap();
    let key = hub.trusted_gateway(keys.path(), "site-1", "gw-a");
    let sock_path = hub.dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(PATIENCE)).unwrap();
    let instance =
        hub.serve_with("watchdog", &[("NOTIFY_SOCKET", sock_path.to_str().unwrap()), ("WATCHDOG_USEC", "400000")]);
    let pings = |what: &str, n: usize| {
        let mut buf = [0u8; 512];
        let mut got = 0;
        while got < n {
            let m = match sock.recv(&mut buf) {
                Ok(len) => String::from_utf8_lossy(&buf[..len]).to_string(),
                Err(e) => panic!("{what}: no notification in time ({e}); the log:\n{}", instance.log()),
            };
            assert!(m.contains("WATCHDOG=1") || m.contains("READY=1"), "{m}");
            got += m.contains("WATCHDOG=1") as usize;
        }
    };
    pings("started", 3);
    // PostgreSQL goes away, and a reading arrives: the ingest retries its commit.
    let admin = admin_client().await;
    database_away(&admin, &db, true).await;
    let publisher = spokegate_publisher(broker.port).await;
    let b = reading("site-1", "gw-a", 1, 120.0);
    publisher
        .publish(spokegate::mqtt::topics::for_body(&b), rumqttc::QoS::AtLeastOnce, false, sealed(&key, &b))
        .await
        .unwrap();
    until("a commit retried", PATIENCE, || async { instance.metric("spokegate_hub_commit_failures").await >= 2.0 })
        .await;
    pings("the database away", 5);
    // Back: the reading is stored.
    database_away(&admin, &db, false).await;
    until("the reading stored", PATIENCE, || async { db.count("SELECT count(*) FROM messages").await == 1 }).await;
    pings("the database back", 2);
}
