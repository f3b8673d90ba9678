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

#[test]
fn the_hub_unit_is_sandboxed_to_an_exposure_of_at_most_2_and_verifies() {
    let (figure, text) = crate::installed::exposure(UNIT);
    assert!(figure <= 2.0, "exposure {figure} > 2.0:\n{text}");
    let unit = std::fs::read_to_string(UNIT).unwrap();
    for needed in
        ["Type=notify", "AF_UNIX AF_INET AF_INET6", "StateDirectory=spokegate-hub", "RestartPreventExitStatus=78"]
    {
        assert!(unit.contains(needed), "{needed}");
    }
    crate::installed::assert_unit_verifies(UNIT, "/usr/bin/spokegate-hub", hub_binary());
    // The user the unit runs as: what systemd-sysusers would create (nothing is written).
    crate::installed::run(Command::new("systemd-sysusers").arg("--dry-run").arg(SYSUSERS));
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

/// A doctor's consult page keeps its live stream open for as long as it is shown. SIGTERM ends
/// that stream and the service exits at once, as systemd expects (it would otherwise wait until
/// `TimeoutStopSec` and kill it, mid-batch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_service_while_a_page_listens_live() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut rig = CraftedRig::start("live-stop").await;
    rig.hub.user("dr-rao", "correct horse battery", &[("site-1", None, None)]);
    let port = rig.instance.http;
    let cookie = sign_in(port, "dr-rao", "correct horse battery").await;
    let mut live = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let req = format!("GET /api/live?site=site-1&gw=gw-a HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n\r\n");
    live.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(PATIENCE, live.read(&mut byte)).await.expect("the stream's head").unwrap();
        assert_eq!(n, 1, "the stream closed before its head: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200") && head.contains("text/event-stream"), "{head}");

    let stopped = std::time::Instant::now();
    let _ = Command::new("kill").args(["-TERM", &rig.instance.proc.0.id().to_string()]).status();
    let limit = std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = rig.instance.proc.0.try_wait().unwrap() {
            break status;
        }
        assert!(stopped.elapsed() < limit, "still running {limit:?} after SIGTERM; the log:\n{}", rig.instance.log());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}\n{}", rig.instance.log());
    // The page's stream was ended, not left hanging.
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, live.read_to_end(&mut rest)).await.expect("the stream ended").unwrap();
}
