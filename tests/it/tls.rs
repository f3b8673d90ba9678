//! TLS to the broker, against a real mosquitto with TLS listeners and a test CA made here with
//! rcgen: the real `spokegate run` connects with the right CA (and with a client certificate where
//! the listener requires one, and with a username and password); a wrong CA, a wrong host name, an
//! expired certificate and a missing client certificate are refused with a clear error and
//! retried; a CA file that cannot be used is a configuration error, and one that disappears after
//! start makes `run` exit non-zero with the reason.

use crate::harness::*;
use crate::tls_broker::{tls_broker, Ca, Files};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The real gateway, its log on stderr read line by line into a channel.
struct Gateway {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Gateway {
    fn start(config: &Path) -> Gateway {
        Self::start_with(config, &[])
    }

    fn start_with(config: &Path, env: &[(&str, &Path)]) -> Gateway {
        let mut child = Command::new(env!("CARGO_BIN_EXE_spokegate"));
        for (k, v) in env {
            child.env(k, v);
        }
        let mut child = child
            .args(["run", "--config", config.to_str().unwrap(), "--log", "info,spokegate::mqtt=debug"])
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = lines_of(child.stderr.take().unwrap());
        Gateway { child, lines, seen: Vec::new() }
    }

    /// Waits until `n` log lines contain `needle`; the lines seen so far on failure.
    fn until_logged(&mut self, needle: &str, n: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.seen.iter().filter(|l| l.contains(needle)).count() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!("`{needle}` not logged {n} times:\n{}", self.seen.join("\n")),
            }
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines of a child's output, as they come.
fn lines_of(r: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(r).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    rx
}

/// A gateway configuration for `mqtts://host:port` with extra `[mqtt]` lines.
fn config(gw: &GatewayDir, host: &str, port: u16, mqtt_extra: &str) -> PathBuf {
    // One file per configuration (several are written before any is used).
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = gw.path().join(format!("tls-{n}.toml"));
    std::fs::write(
        &path,
        format!(
            "[gateway]\nsite = \"test-site\"\nid = \"gw-test\"\nstate_dir = \"{}\"\n[mqtt]\nurl = \"mqtts://{host}:{port}\"\n{mqtt_extra}\n",
            gw.path().display()
        ),
    )
    .unwrap();
    path
}

/// Waits for an online status of gw-test among the messages from `since` on.
async fn online(sub: &mut Subscriber, since: usize) {
    sub.until("the gateway's online status over TLS", |s| {
        s[since..]
            .iter()
            .any(|(t, p)| t.ends_with("gw-test/status") && String::from_utf8_lossy(p).contains("\"online\""))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_is_verified_and_only_the_right_certificates_connect() {
    let files = Files::new();
    let ca = Ca::new("spokegate test CA");
    let other_ca = Ca::new("somebody else's CA");
    let good = ca.issue(&["localhost"], false);
    let expired = ca.issue(&["localhost"], true);
    let client = ca.issue(&["gw-test"], false);
    files.put("srv0.key", &good.1, 0o644);
    files.put("srv1.key", &expired.1, 0o644);
    files.put("srv2.key", &good.1, 0o644);
    files.put("srv3.key", &good.1, 0o644);
    let passwd = files.put("passwd", "", 0o644);
    assert!(Command::new("mosquitto_passwd")
        .args(["-b"])
        .arg(&passwd)
        .args(["gw-test", "s3cret"])
        .status()
        .unwrap()
        .success());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o644)).unwrap();
    // 0: TLS; 1: an expired certificate; 2: client certificates required; 3: the same as 0, for
    // the username and password.
    let b = tls_broker(&files, &ca, &[(&good.0, false), (&expired.0, false), (&good.0, true), (&good.0, false)]);
    let mut sub = Subscriber::connect(b.broker.port, "tls-hub").await;
    let ca_file = files.0.path().join("ca.pem");
    let other = files.put("other-ca.pem", &other_ca.cert.pem(), 0o644);
    let client_cert = files.put("client.pem", &client.0, 0o644);
    let client_key = files.put("client.key", &client.1, 0o600);
    let ca_line = format!("ca = \"{}\"", ca_file.display());

    // The right CA: connected, and the gateway's status arrives.
    let gw = GatewayDir::new();
    let mut g = Gateway::start(&config(&gw, "localhost", b.ports[0], &ca_line));
    online(&mut sub, 0).await;
    // `spokegate watch` over TLS with the same CA sees the retained status; with another CA it
    // is refused with the reason.
    let url = format!("mqtts://localhost:{}", b.ports[0]);
    let watch = |ca: &Path| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_spokegate"));
        c.args(["watch", "--json", "--url", &url, "--ca"]).arg(ca).arg("--key").arg(gw.jwk_file());
        c.env("NO_COLOR", "1").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    };
    let mut w = watch(&ca_file);
    let out = lines_of(w.stdout.take().unwrap());
    let first = out.recv_timeout(PATIENCE).expect("watch over TLS shows the status");
    assert!(first.contains("gw-test/status") && first.contains("online"), "{first}");
    let _ = w.kill();
    let _ = w.wait();
    let mut w = watch(&other);
    let err = lines_of(w.stderr.take().unwrap());
    let deadline = Instant::now() + PATIENCE;
    loop {
        let l = err.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("watch says why");
        if l.contains("UnknownIssuer") {
            break;
        }
    }
    let _ = w.kill();
    let _ = w.wait();
    drop(g);

    // Refused, with the reason, and tried again: another CA, another host name (the certificate
    // names localhost; 127.0.0.1 is not in it), an expired certificate, no client certificate.
    let cases = [
        (config(&gw, "localhost", b.ports[0], &format!("ca = \"{}\"", other.display())), "UnknownIssuer"),
        (config(&gw, "127.0.0.1", b.ports[0], &ca_line), "not valid for name"),
        (config(&gw, "localhost", b.ports[1], &ca_line), "xpired"),
        (config(&gw, "localhost", b.ports[2], &ca_line), "CertificateRequired"),
    ];
    for (cfg, reason) in cases {
        g = Gateway::start(&cfg);
        g.until_logged(reason, 2);
        drop(g);
    }

    // mTLS: the client certificate is accepted where it is required.
    let gw2 = GatewayDir::new();
    let mtls = format!("{ca_line}\ncert = \"{}\"\nkey = \"{}\"", client_cert.display(), client_key.display());
    let before = sub.seen.len();
    let _g = Gateway::start(&config(&gw2, "localhost", b.ports[2], &mtls));
    online(&mut sub, before).await;
    drop(_g);

    // A username and password over TLS.
    let gw3 = GatewayDir::new();
    let login = format!("{ca_line}\nusername = \"gw-test\"\npassword = \"s3cret\"");
    let before = sub.seen.len();
    let _g = Gateway::start(&config(&gw3, "localhost", b.ports[3], &login));
    online(&mut sub, before).await;
    drop(_g);
    let bad_login = format!("{ca_line}\nusername = \"gw-test\"\npassword = \"wrong\"");
    let mut g = Gateway::start(&config(&gw3, "localhost", b.ports[3], &bad_login));
    g.until_logged("NotAuthorized", 2);
}

#[test]
fn tls_files_that_cannot_be_used_are_configuration_errors() {
    let files = Files::new();
    let gw = GatewayDir::new();
    let run = |cfg: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_spokegate"))
            .args(["check-config", "--config", cfg.to_str().unwrap()])
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let missing = config(&gw, "localhost", 8883, "ca = \"/nonexistent/ca.pem\"");
    let (code, err) = run(&missing);
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("mqtt.ca") && err.contains("/nonexistent/ca.pem"), "{err}");
    let not_pem = files.put("junk.pem", "not a certificate", 0o644);
    let (code, err) = run(&config(&gw, "localhost", 8883, &format!("ca = \"{}\"", not_pem.display())));
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("no certificate"), "{err}");
    // A client key others can read.
    let ca = Ca::new("ca");
    let (c, k) = ca.issue(&["gw"], false);
    let cert = files.put("c.pem", &c, 0o644);
    let key = files.put("c.key", &k, 0o644);
    let ca_file = files.put("ca.pem", &ca.cert.pem(), 0o644);
    let cfg = config(
        &gw,
        "localhost",
        8883,
        &format!("ca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"", ca_file.display(), cert.display(), key.display()),
    );
    let (code, err) = run(&cfg);
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("mqtt.key") && err.contains("chmod 600"), "{err}");
    // A password in clear text.
    let path = gw.path().join("plain.toml");
    std::fs::write(
        &path,
        format!(
            "[gateway]\nsite = \"s\"\nid = \"g\"\nstate_dir = \"{}\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\nusername = \"u\"\npassword = \"p\"\n",
            gw.path().display()
        ),
    )
    .unwrap();
    let (code, err) = run(&path);
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("mqtt.password") && err.contains("allow_plaintext_password"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_file_that_disappears_after_start_stops_the_daemon_with_the_reason() {
    let files = Files::new();
    let ca = Ca::new("spokegate test CA");
    let good = ca.issue(&["localhost"], false);
    files.put("srv0.key", &good.1, 0o644);
    files.put("passwd", "", 0o644);
    let mut b = tls_broker(&files, &ca, &[(&good.0, false)]);
    let mut sub = Subscriber::connect(b.broker.port, "tls-hub").await;
    let gw = GatewayDir::new();
    // A copy of the CA the test can take away.
    let ca_copy = gw.path().join("ca.pem");
    std::fs::write(&ca_copy, ca.cert.pem()).unwrap();
    let mut g = Gateway::start(&config(&gw, "localhost", b.ports[0], &format!("ca = \"{}\"", ca_copy.display())));
    online(&mut sub, 0).await;
    std::fs::remove_file(&ca_copy).unwrap();
    // The connection drops; the next connection cannot be made.
    b.broker.stop();
    b.broker.restart();
    let deadline = Instant::now() + PATIENCE;
    let code = loop {
        if let Some(status) = g.child.try_wait().unwrap() {
            break status.code();
        }
        assert!(Instant::now() < deadline, "the daemon still runs without its CA");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, Some(69));
    g.until_logged("ca.pem", 1);
}

/// A client certificate works without a CA file too: the system's roots verify the broker. The
/// test makes its CA the system's by pointing SSL_CERT_FILE at it (as rustls-native-certs reads
/// it), and checks that without that the same configuration is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_works_with_the_system_roots_and_no_ca_file() {
    let files = Files::new();
    let ca = Ca::new("spokegate test CA");
    let good = ca.issue(&["localhost"], false);
    let client = ca.issue(&["gw-test"], false);
    files.put("srv0.key", &good.1, 0o644);
    files.put("passwd", "", 0o644);
    let b = tls_broker(&files, &ca, &[(&good.0, true)]);
    let mut sub = Subscriber::connect(b.broker.port, "tls-hub").await;
    let cert = files.put("client.pem", &client.0, 0o644);
    let key = files.put("client.key", &client.1, 0o600);
    let gw = GatewayDir::new();
    let cfg =
        config(&gw, "localhost", b.ports[0], &format!("cert = \"{}\"\nkey = \"{}\"", cert.display(), key.display()));
    // Without the test CA among the system roots: refused.
    let empty = files.put("no-roots.pem", &Ca::new("unrelated").cert.pem(), 0o644);
    let mut g = Gateway::start_with(&cfg, &[("SSL_CERT_FILE", &empty)]);
    g.until_logged("UnknownIssuer", 1);
    drop(g);
    // With it: connected, the client certificate accepted.
    let roots = files.0.path().join("ca.pem");
    let _g = Gateway::start_with(&cfg, &[("SSL_CERT_FILE", &roots)]);
    online(&mut sub, 0).await;
}
