//! The hub's MQTT input over TLS, against a real mosquitto whose TLS listener asks for a client
//! certificate (a test CA made with rcgen): a hub instance with the CA and its certificate reads
//! and acknowledges a real gateway's readings through it; one with another CA is refused and says
//! why.

use crate::support::*;
use crate::tls_broker::{tls_broker, Ca, Files};

/// `[input.mqtt]` over TLS to `port` with these extra lines.
fn tls_input(port: u16, extra: &str) -> String {
    format!("[input.mqtt]\nurl = \"mqtts://localhost:{port}\"\nclient_id = \"hub-{{instance}}\"\n{extra}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_reads_and_acknowledges_over_mqtts_with_its_client_certificate_and_another_ca_is_refused() {
    let files = Files::new();
    let ca = Ca::new("spokegate test CA");
    let other_ca = Ca::new("somebody else's CA");
    let server = ca.issue(&["localhost"], false);
    let client = ca.issue(&["hub-test"], false);
    files.put("srv0.key", &server.1, 0o644);
    files.put("passwd", "", 0o644);
    // One TLS listener that requires a client certificate; the gateway uses the plain one.
    let b = tls_broker(&files, &ca, &[(&server.0, true)]);
    let ca_file = files.0.path().join("ca.pem");
    let cert = files.put("hub.pem", &client.0, 0o644);
    let key = files.put("hub.key", &client.1, 0o600);
    let other = files.put("other-ca.pem", &other_ca.cert.pem(), 0o644);

    let db = TestDb::create();
    let lines = format!("ca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n", ca_file.display(), cert.display(), key.display());
    let hub = HubSetup::new(&db, &tls_input(b.ports[0], &lines));
    let mut gw = Gateway::start("site-tls", "gw-tls", b.broker.port, &hub.jwk(), &[], "");
    hub.trust(&gw.jwk());
    let instance = hub.serve("a");
    // Ready means connected to the broker: the hub's only way to it is the TLS listener.
    instance.ready().await;
    gw.send(&[120, 121, 122]).await;
    until("three readings stored over TLS and acknowledged to the gateway", PATIENCE, || async {
        db.count("SELECT count(*) FROM observations WHERE gw = 'gw-tls'").await == 3
            && gw.queue_depth().await == Some(0)
    })
    .await;
    let values: Vec<f64> = db
        .client()
        .await
        .query("SELECT value FROM observations ORDER BY seq", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(values, [120.0, 121.0, 122.0]);

    // Another CA: the broker's certificate does not chain to it; never ready, and the log says why.
    let lines = format!("ca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n", other.display(), cert.display(), key.display());
    let other_hub = HubSetup::new(&db, &tls_input(b.ports[0], &lines));
    let refused = other_hub.serve("b");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !refused.log().contains("UnknownIssuer") {
        assert!(tokio::time::Instant::now() < deadline, "the hub does not say why; its log:\n{}", refused.log());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_ne!(refused.get("/readyz").await.map(|r| r.0), Some(200), "not ready without its broker");
    assert!(refused.log().contains("cannot reach the broker"), "{}", refused.log());
    gw.stop().await;
}

/// A NATS server with JetStream whose client port requires TLS with a client certificate and a
/// user and password: (server, port).
fn tls_nats(files: &Files, server: &(String, String)) -> (spokegate::sim::KillOnDrop, u16) {
    let port = free_port();
    let (cert, key) = (files.put("nats.pem", &server.0, 0o644), files.put("nats.key", &server.1, 0o600));
    let conf = files.put(
        "nats.conf",
        &format!(
            "server_name: tls-n\nlisten: 127.0.0.1:{port}\njetstream {{ store_dir: \"{}\" }}\n\
             tls {{ cert_file: \"{}\"\n key_file: \"{}\"\n ca_file: \"{}\"\n verify: true }}\n\
             authorization {{ users = [ {{ user: hub, password: s3cret }} ] }}\n",
            files.0.path().join("js").display(),
            cert.display(),
            key.display(),
            files.0.path().join("ca.pem").display()
        ),
        0o644,
    );
    let log = std::fs::File::create(files.0.path().join("nats.log")).unwrap();
    let child = std::process::Command::new("nats-server")
        .args(["-c", conf.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("nats-server is installed");
    (spokegate::sim::KillOnDrop(child), port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_reads_from_nats_over_tls_with_its_certificate_and_password_and_a_wrong_password_is_refused() {
    let files = Files::new();
    let ca = Ca::new("spokegate test CA");
    let ca_file = files.put("ca.pem", &ca.cert.pem(), 0o644);
    let (_nats, port) = tls_nats(&files, &ca.issue(&["localhost"], false));
    let client = ca.issue(&["hub-test"], false);
    let (cert, key) = (files.put("hub.pem", &client.0, 0o644), files.put("hub.key", &client.1, 0o600));
    let tls_lines =
        format!("ca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n", ca_file.display(), cert.display(), key.display());
    let input = |password: &str| {
        format!(
            "[input.nats]\nservers = [\"tls://localhost:{port}\"]\n{tls_lines}username = \"hub\"\npassword = \"{password}\"\n"
        )
    };
    until("the NATS server listens", PATIENCE, || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
    })
    .await;

    let db = TestDb::create();
    let hub = HubSetup::new(&db, &input("s3cret"));
    let dir = tempfile::tempdir().unwrap();
    let gw_key = hub.trusted_gateway(dir.path(), "site-n", "gw-n");
    let instance = hub.serve("a");
    instance.ready().await;

    // Readings published on the subject a gateway's MQTT topic maps to, by a client with the
    // same TLS and login (the hub's only way in is the TLS port too).
    let publisher = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(ca_file.clone())
        .add_client_certificate(cert.clone(), key.clone())
        .user_and_password("hub".into(), "s3cret".into())
        .connect(format!("tls://localhost:{port}"))
        .await
        .unwrap();
    for (seq, v) in [(1, 120.0), (2, 121.0)] {
        let body = sealed(&gw_key, &reading("site-n", "gw-n", seq, v));
        publisher.publish("spokegate.v1.site-n.gw-n.dev.vitals-1.obs", body.into()).await.unwrap();
    }
    publisher.flush().await.unwrap();
    until("two readings stored from NATS over TLS", PATIENCE, || async {
        db.count("SELECT count(*) FROM observations WHERE gw = 'gw-n'").await == 2
    })
    .await;

    // The wrong password: never ready, and the log says why.
    let wrong = HubSetup::new(&db, &input("not-it"));
    let refused = wrong.serve("b");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !refused.log().contains("authorization violation") {
        assert!(tokio::time::Instant::now() < deadline, "the hub does not say why; its log:\n{}", refused.log());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_ne!(refused.get("/readyz").await.map(|r| r.0), Some(200), "not ready without its server");
}
