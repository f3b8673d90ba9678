//! Test rigs for the hub service: a PostgreSQL database of its own per test (created and dropped
//! on the machine's server), `spokegate-hub` processes, gateways (the real daemon, in this
//! process) reading PTY devices, and a 3-node NATS cluster with JetStream and MQTT.

use spokegate::model::{Body, BodyFormat, Code, Observation, Unit};
use spokegate::pipeline::{make_body, Payload, Source};
use spokegate::sign::{seal, SigningKey};
use spokegate::sim::{KillOnDrop, PtyDevice};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// How long any wait in these tests may last before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn free_port() -> u16 {
    spokegate::sim::broker::free_port().expect("a free loopback port")
}

/// Waits until `done` holds, failing with `what` after `limit`.
pub async fn until<F, Fut>(what: &str, limit: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A database of the test's own on the machine's PostgreSQL (127.0.0.1:5432, trust auth),
/// dropped with the test.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

fn psql(sql: &str) {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql])
        .output()
        .expect("psql is installed with PostgreSQL");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
}

impl TestDb {
    pub fn create() -> TestDb {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("spokegate_hub_test_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        psql(&format!("CREATE DATABASE {name}"));
        let url = format!("host=127.0.0.1 user=postgres dbname={name}");
        TestDb { name, url }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        let (c, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        c
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.client().await.query_one(sql, &[]).await.unwrap().get(0)
    }
}

/// A connection to the machine's PostgreSQL as its superuser, outside any test's database.
pub async fn admin_client() -> tokio_postgres::Client {
    let (c, connection) =
        tokio_postgres::connect("host=127.0.0.1 user=postgres dbname=postgres", tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    c
}

/// PostgreSQL goes away for `db`'s clients, as in a restart: every connection to it ends and
/// none is taken (`admin` is connected to another database); `false` brings it back. How many
/// connections were ended.
pub async fn database_away(admin: &tokio_postgres::Client, db: &TestDb, away: bool) -> i64 {
    admin.batch_execute(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS {}", db.name, !away)).await.unwrap();
    if !away {
        return 0;
    }
    let rows = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&db.name],
        )
        .await
        .unwrap();
    rows.len() as i64
}

/// The database's clock now, RFC 3339 in UTC (the clock `received_at` is written by).
pub async fn db_clock(db: &TestDb) -> String {
    db.client()
        .await
        .query_one("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')", &[])
        .await
        .unwrap()
        .get(0)
}

impl Drop for TestDb {
    fn drop(&mut self) {
        psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

pub fn hub_binary() -> &'static str {
    env!("CARGO_BIN_EXE_spokegate-hub")
}

/// `spokegate-hub ARGS` to completion; its stdout, or the failure.
pub fn hub_cli(args: &[&str]) -> Result<String, (i32, String)> {
    let out = Command::new(hub_binary()).args(args).output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err((out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned()))
    }
}

/// The `[input.mqtt]` section of a hub on the broker at `port` (one client id per instance).
pub fn mqtt_input(port: u16) -> String {
    format!("[input.mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\nclient_id = \"hub-{{instance}}\"\n")
}

/// One hub's configuration (shared by its instances but for the MQTT client id and HTTP port)
/// and its key.
pub struct HubSetup {
    pub dir: tempfile::TempDir,
    pub db_url: String,
    pub input: String,
    /// More `[http]` keys, one a line.
    pub http: String,
    /// More sections, after `[http]` (`[retention]`).
    pub sections: String,
}

impl HubSetup {
    /// `input` is the `[input.*]` section.
    pub fn new(db: &TestDb, input: &str) -> HubSetup {
        let dir = tempfile::tempdir().unwrap();
        let s = HubSetup {
            dir,
            db_url: db.url.clone(),
            input: input.to_string(),
            http: String::new(),
            sections: String::new(),
        };
        let cfg = s.config("setup", free_port());
        hub_cli(&["migrate", "--config", cfg.to_str().unwrap()]).unwrap();
        let jwk = hub_cli(&["identity", "--config", cfg.to_str().unwrap()]).unwrap();
        std::fs::write(s.jwk(), jwk).unwrap();
        s
    }

    /// The hub's public JWK (for gateways' `[hub] keys`).
    pub fn jwk(&self) -> PathBuf {
        self.dir.path().join("hub.jwk")
    }

    pub fn config(&self, instance: &str, http_port: u16) -> PathBuf {
        let path = self.dir.path().join(format!("hub-{instance}.toml"));
        let input = self.input.replace("{instance}", instance);
        let text = format!(
            "[hub]\nid = \"hub-test\"\nkey = \"{}/hub.key\"\n[database]\nurl = \"{}\"\n{input}\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n{}\n{}",
            self.dir.path().display(),
            self.db_url,
            self.http,
            self.sections
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Trusts a gateway's (or another hub's) JWK file.
    pub fn trust(&self, jwk: &Path) {
        let cfg = self.config("setup", free_port());
        hub_cli(&["keys", "--config", cfg.to_str().unwrap(), "add", jwk.to_str().unwrap()]).unwrap();
    }

    /// A new gateway key for `site/gw` (its files in `dir`), trusted by this hub.
    pub fn trusted_gateway(&self, dir: &Path, site: &str, gw: &str) -> SigningKey {
        let key = SigningKey::generate(&dir.join(format!("{gw}.key"))).unwrap();
        let bound = spokegate::sign::BoundKey {
            key: key.public().clone(),
            binding: spokegate::sign::Binding::Gateway { site: site.into(), gw: gw.into() },
        };
        let jwk = dir.join(format!("{gw}.jwk"));
        std::fs::write(&jwk, bound.to_jwk()).unwrap();
        self.trust(&jwk);
        key
    }

    /// `spokegate-hub serve` as a process of its own (killed when dropped).
    pub fn serve(&self, instance: &str) -> HubInstance {
        self.serve_with(instance, &[])
    }

    /// The same, with more environment, and `WATCHDOG_PID` its own pid (as systemd sets it: the
    /// shell's pid is the service's after `exec`).
    pub fn serve_with(&self, instance: &str, env: &[(&str, &str)]) -> HubInstance {
        let log_path = self.dir.path().join(format!("{instance}.log"));
        // A port taken by another process between choosing it and listening on it: the instance
        // exits saying so, and starts again on another.
        for _ in 0..5 {
            let port = free_port();
            let cfg = self.config(instance, port);
            let log = std::fs::File::create(&log_path).unwrap();
            let mut child = Command::new("sh")
                .args(["-c", "WATCHDOG_PID=$$ exec \"$0\" serve --config \"$1\"", hub_binary(), cfg.to_str().unwrap()])
                .envs(env.iter().map(|(k, v)| (*k, *v)))
                .env("RUST_LOG", "info,spokegate_hub=debug")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            if port_taken(&mut child, &log_path) {
                continue;
            }
            return HubInstance { proc: KillOnDrop(child), http: port, log: log_path };
        }
        panic!("the hub instance {instance} found its HTTP port taken five times");
    }
}

/// Whether a starting instance exited because its HTTP port was taken: waits until it says it
/// serves, or exits, or a while has passed (an instance that waits for a service is left to the
/// test's own readiness wait).
fn port_taken(child: &mut std::process::Child, log: &Path) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let said = std::fs::read_to_string(log).unwrap_or_default();
        if said.contains("spokegate-hub serving") {
            return false;
        }
        if let Ok(Some(_)) = child.try_wait() {
            let said = std::fs::read_to_string(log).unwrap_or_default();
            return said.contains("http.listen") && said.contains("in use");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

pub struct HubInstance {
    pub proc: KillOnDrop,
    pub http: u16,
    log: PathBuf,
}

impl HubInstance {
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.http, path).await
    }

    /// Waits until the instance says it is ready.
    pub async fn ready(&self) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !matches!(self.get("/readyz").await, Some((200, _))) {
            assert!(tokio::time::Instant::now() < deadline, "the hub instance is not ready; its log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A counter from its `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        let Some((_, text)) = self.get("/metrics").await else { return -1.0 };
        text.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// SIGKILL: no shutdown, no last acknowledgements.
    pub fn kill(&mut self) {
        let _ = self.proc.0.kill();
        let _ = self.proc.0.wait();
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.proc.0.id().to_string()]).status();
        self.proc.0.wait().unwrap()
    }
}

/// A plain HTTP/1.1 GET on loopback: (status, body).
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut buf)).await.ok()?.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { unchunk(body) } else { body.to_string() };
    Some((status, body))
}

fn unchunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A gateway (the real daemon, in this process) with one text vital-signs monitor on a PTY,
/// under hub delivery: its queue empties only by the hub's acknowledgements.
pub struct Gateway {
    pub id: String,
    pub dir: tempfile::TempDir,
    pub dev: PtyDevice,
    trigger: spokegate::shutdown::ShutdownTrigger,
    task: tokio::task::JoinHandle<Result<(), spokegate::daemon::DaemonError>>,
}

impl Gateway {
    /// Starts a gateway `site/id` publishing to `mqtt_port`, trusting `hub_jwk`; its own bound
    /// JWK is at `jwk()` (for the hub to trust before it starts).
    /// `more` are further serial devices `(id, profile, path)`; `gateway_lines` go into `[gateway]`.
    pub fn start(
        site: &str,
        id: &str,
        mqtt_port: u16,
        hub_jwk: &Path,
        more: &[(&str, &str, &Path)],
        gateway_lines: &str,
    ) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let key = spokegate::sign::SigningKey::generate(&dir.path().join("gateway.key")).unwrap();
        let bound = spokegate::sign::BoundKey {
            key: key.public().clone(),
            binding: spokegate::sign::Binding::Gateway { site: site.into(), gw: id.into() },
        };
        std::fs::write(dir.path().join("gateway.jwk"), bound.to_jwk()).unwrap();
        let dev = PtyDevice::create(&dir.path().join("ttyVITALS")).unwrap();
        let mut devices = String::new();
        for (d, profile, path) in more {
            devices.push_str(&format!(
                "[[device]]\nid = \"{d}\"\nprofile = \"{profile}\"\nserial = {{ path = \"{}\" }}\n",
                path.display()
            ));
        }
        let text = format!(
            "[gateway]\nsite = \"{site}\"\nid = \"{id}\"\nstate_dir = \"{}\"\n{gateway_lines}\n{devices}[mqtt]\nurl = \"mqtt://127.0.0.1:{mqtt_port}\"\n\
             [[device]]\nid = \"vitals-1\"\nprofile = \"vitals-kv\"\nserial = {{ path = \"{}\" }}\n\
             [hub]\nkeys = [\"{}\"]\ndelivery = \"hub\"\nack_timeout_secs = 3\n",
            dir.path().display(),
            dev.path.display(),
            hub_jwk.display()
        );
        let cfg_path = dir.path().join("spokegate.toml");
        std::fs::write(&cfg_path, text).unwrap();
        let config = spokegate::config::Config::load(&cfg_path).unwrap_or_else(|d| panic!("{d}"));
        let mut c = spokegate::daemon::Counters::default();
        for d in &config.devices {
            c.devices.insert(d.id.clone(), Default::default());
        }
        let (trigger, shutdown) = spokegate::shutdown::channel();
        let task = tokio::spawn(async move { spokegate::daemon::run(config, key, shutdown, &mut c).await });
        Gateway { id: id.into(), dir, dev, trigger, task }
    }

    pub fn jwk(&self) -> PathBuf {
        self.dir.path().join("gateway.jwk")
    }

    /// Sends `values` as systolic pressure readings, one line each.
    pub async fn send(&mut self, values: &[u32]) {
        let bytes: Vec<u8> = values.iter().flat_map(|v| format!("SYS={v}\n").into_bytes()).collect();
        self.dev.peer.send(&bytes).await.unwrap();
    }

    /// Opens consult `id` through the control socket, as the operator does, once the socket answers.
    pub async fn start_consult(&self, id: &str) {
        until("the gateway's control socket answers", PATIENCE, || async { self.queue_depth().await.is_some() }).await;
        let args = serde_json::from_value(serde_json::json!({ "consult": id })).unwrap();
        let r = spokegate::command::socket::request(self.dir.path(), "consult.start", args, |_| {}).await.unwrap();
        assert_eq!(r.code, "ok", "consult.start: {r:?}");
    }

    /// The daemon's queue depth (through its control socket).
    pub async fn queue_depth(&self) -> Option<u64> {
        let reply =
            spokegate::command::socket::request(self.dir.path(), "status", Default::default(), |_| {}).await.ok()?;
        reply.data?.get("queue")?.get("depth")?.as_u64()
    }

    pub async fn stop(self) {
        self.trigger.trigger();
        let _ = tokio::time::timeout(PATIENCE, self.task).await;
    }
}

/// A NATS cluster of three nodes on loopback, each with JetStream and an MQTT listener.
pub struct NatsCluster {
    pub client: Vec<u16>,
    pub mqtt: Vec<u16>,
    nodes: Vec<Option<KillOnDrop>>,
    dir: tempfile::TempDir,
}

impl NatsCluster {
    pub fn start() -> NatsCluster {
        let dir = tempfile::tempdir().unwrap();
        let client: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let cluster: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mqtt: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes: Vec<String> = cluster.iter().map(|p| format!("nats-route://127.0.0.1:{p}")).collect();
        for i in 0..3 {
            let store = dir.path().join(format!("js{i}"));
            let conf = format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{}\njetstream {{ store_dir: \"{}\" }}\n\
                 cluster {{ name: spokegate-test\n listen: 127.0.0.1:{}\n routes: [{}] }}\n\
                 mqtt {{ listen: 127.0.0.1:{} }}\n",
                client[i],
                store.display(),
                cluster[i],
                routes.join(", "),
                mqtt[i]
            );
            std::fs::write(dir.path().join(format!("n{i}.conf")), conf).unwrap();
        }
        let mut c = NatsCluster { client, mqtt, nodes: vec![None, None, None], dir };
        for i in 0..3 {
            c.start_node(i);
        }
        c
    }

    /// Started, every node listening. A free port is only free when asked: a node whose port
    /// another test took meanwhile exits at once, and the cluster is started again on other
    /// ports (a test once waited a minute for such a node and failed).
    pub async fn start_listening() -> NatsCluster {
        const ATTEMPTS: usize = 5;
        for attempt in 1..=ATTEMPTS {
            let mut c = NatsCluster::start();
            if c.listening().await {
                return c;
            }
            eprintln!("NATS cluster, attempt {attempt}: a node exited (a port taken?); again on other ports");
        }
        panic!("no NATS cluster listening in {ATTEMPTS} attempts");
    }

    /// Until every node's client and MQTT ports accept connections (true), or a node exited.
    async fn listening(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if self.nodes.iter_mut().flatten().any(|n| n.0.try_wait().ok().flatten().is_some()) {
                return false;
            }
            let mut all = true;
            for &p in self.client.iter().chain(&self.mqtt) {
                all &= tokio::net::TcpStream::connect(("127.0.0.1", p)).await.is_ok();
            }
            if all {
                return true;
            }
            assert!(tokio::time::Instant::now() < deadline, "the NATS nodes do not listen: {}", self.log(0));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn start_node(&mut self, i: usize) {
        let log = std::fs::File::create(self.dir.path().join(format!("n{i}.log"))).unwrap();
        let child = Command::new("nats-server")
            .args(["-c", self.dir.path().join(format!("n{i}.conf")).to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server is installed");
        self.nodes[i] = Some(KillOnDrop(child));
    }

    /// Waits until every node's MQTT listener accepts connections and JetStream has a leader.
    pub async fn ready(&self) {
        for &p in self.client.iter().chain(&self.mqtt) {
            until("a NATS node listens", PATIENCE, || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", p)).await.is_ok()
            })
            .await;
        }
        let client = async_nats::connect(format!("127.0.0.1:{}", self.client[0])).await.unwrap();
        let js = async_nats::jetstream::new(client);
        until("JetStream has a meta leader", PATIENCE, || {
            let js = js.clone();
            async move { js.query_account().await.is_ok() }
        })
        .await;
    }

    /// SIGKILLs node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut n) = self.nodes[i].take() {
            let _ = n.0.kill();
            let _ = n.0.wait();
        }
    }

    pub fn servers_toml(&self) -> String {
        let s: Vec<String> = self.client.iter().map(|p| format!("\"nats://127.0.0.1:{p}\"")).collect();
        format!("[{}]", s.join(", "))
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("n{i}.log"))).unwrap_or_default()
    }
}

/// A systolic pressure reading of gateway `site/gw`, as the gateway builds it.
pub fn reading(site: &str, gw: &str, seq: u64, value: f64) -> Body {
    let from = Source { dev: "vitals-1".into(), profile: "vitals-kv".into() };
    let obs = vec![Observation::measured(
        Code { mdc: 150021, loinc: Some("8480-6".into()), name: None },
        value,
        Unit { ucum: "mm[Hg]".into(), mdc: Some(3872) },
    )];
    make_body(site, gw, Some(&from), Payload::Obs(obs), seq, spokegate::clock::now_micros(), None)
}

/// Signed as a gateway signs.
pub fn sealed(key: &SigningKey, body: &Body) -> Vec<u8> {
    seal(key, &spokegate::model::encode(body, BodyFormat::Cbor).unwrap(), BodyFormat::Cbor)
}

/// A plain MQTT client for publishing crafted messages.
pub async fn spokegate_publisher(port: u16) -> rumqttc::AsyncClient {
    let (client, mut ev) = rumqttc::AsyncClient::new(rumqttc::MqttOptions::new("crafter", "127.0.0.1", port), 100);
    tokio::spawn(async move { while ev.poll().await.is_ok() {} });
    client
}

impl HubSetup {
    /// Creates a hub user (password through standard input, as an operator types it) with `grants`
    /// of (site, gw, consult).
    pub fn user(&self, name: &str, password: &str, grants: &[(&str, Option<&str>, Option<&str>)]) {
        use std::io::Write;
        let cfg = self.config("setup", free_port());
        let cfg = cfg.to_str().unwrap();
        let mut child = Command::new(hub_binary())
            .args(["users", "--config", cfg, "add", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "users add: {}", String::from_utf8_lossy(&out.stderr));
        for (site, gw, consult) in grants {
            let mut args = vec!["users", "--config", cfg, "grant", name, "--site", site];
            if let Some(g) = gw {
                args.extend(["--gw", g]);
            }
            if let Some(c) = consult {
                args.extend(["--consult", c]);
            }
            hub_cli(&args).unwrap();
        }
    }
}

/// One HTTP/1.1 exchange on loopback: (status, head, body). `head_lines` are extra request
/// headers (`Name: value\r\n` each).
pub async fn http_request(port: u16, method: &str, path: &str, head_lines: &str, body: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{head_lines}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut buf)).await.expect("an HTTP answer").unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { unchunk(body) } else { body.to_string() };
    (status, head.to_string(), body)
}

/// Signs `name` in through the form; the session cookie (`name=value`).
pub async fn sign_in(port: u16, name: &str, password: &str) -> String {
    let form = format!("name={name}&password={}&next=%2F", password.replace(' ', "+"));
    let (status, head, body) =
        http_request(port, "POST", "/login", "Content-Type: application/x-www-form-urlencoded\r\n", &form).await;
    assert_eq!(status, 303, "sign-in of {name}: {head}\n{body}");
    head.lines()
        .find_map(|l| l.strip_prefix("set-cookie: ").or_else(|| l.strip_prefix("Set-Cookie: ")))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string()
}

/// One hub instance on its own database and mosquitto that trusts gateway `site-1/gw-a`, and a
/// publisher that signs as that gateway: the setup of the tests that hand the hub crafted messages.
pub struct CraftedRig {
    pub instance: HubInstance,
    pub publisher: rumqttc::AsyncClient,
    /// gw-a's signing key.
    pub key: SigningKey,
    pub db: TestDb,
    /// The hub's setup (its users).
    pub hub: HubSetup,
    // Kept for as long as the rig lives.
    _broker: spokegate::sim::mosquitto::Mosquitto,
    _keys: tempfile::TempDir,
}

impl CraftedRig {
    pub async fn start(instance: &str) -> CraftedRig {
        let db = TestDb::create();
        let broker = spokegate::sim::mosquitto::Mosquitto::start();
        let hub = HubSetup::new(&db, &mqtt_input(broker.port));
        let keys = tempfile::tempdir().unwrap();
        let key = hub.trusted_gateway(keys.path(), "site-1", "gw-a");
        let instance = hub.serve(instance);
        instance.ready().await;
        let publisher = spokegate_publisher(broker.port).await;
        CraftedRig { instance, publisher, key, db, hub, _broker: broker, _keys: keys }
    }

    /// A key ring that trusts gw-a's key, read from the JWK the hub was given.
    pub fn gateway_ring(&self) -> spokegate::sign::KeyRing {
        spokegate::sign::KeyRing::new(spokegate::sign::read_bound_keys(&self._keys.path().join("gw-a.jwk")).unwrap())
    }

    /// Publishes `payload` on `topic` at QoS 1.
    pub async fn publish(&self, topic: &str, payload: Vec<u8>) {
        self.publisher.publish(topic, rumqttc::QoS::AtLeastOnce, false, payload).await.unwrap();
    }

    /// Publishes `body` as gw-a sends it: signed with its key, on the body's topic.
    pub async fn send(&self, body: &Body) {
        self.publish(&spokegate::mqtt::topics::for_body(body), sealed(&self.key, body)).await;
    }
}

/// The BCCD blood smear the simulated microscope serves (see src/sim/recordings/SOURCES.md).
pub const SMEAR: &[u8] = include_bytes!("../../../src/sim/recordings/bccd_BloodImage_00000.jpg");

/// The smear as gw-a's gateway cuts it (8 KiB parts), numbered from `first_seq`.
pub fn smear_parts(first_seq: u64, captured: i64) -> Vec<Body> {
    use spokegate::pipeline::{make_body, Payload, Source};
    let still = spokegate::media::Still::check(SMEAR.to_vec(), captured, 1 << 20).unwrap();
    let plan = spokegate::media::PartPlan { part_bytes: 8 * 1024 };
    let from = Source { dev: "scope-1".into(), profile: "usb-microscope".into() };
    spokegate::media::split(&still, "scope-1", &plan, Default::default())
        .into_iter()
        .zip(first_seq..)
        .map(|(m, seq)| make_body("site-1", "gw-a", Some(&from), Payload::Media(m), seq, captured, None))
        .collect()
}

/// A four-sample lead II chunk of an ECG stream from `i0`, signed now, at `rate` and `gain`.
pub fn ecg_chunk(i0: u64, rate: f64, gain: f64) -> spokegate::model::Wave {
    use spokegate::model::{Channel, Wave};
    let samples = [10, 12, 15, 11];
    Wave {
        stream: "ecg".into(),
        rate,
        i0,
        t0: spokegate::clock::now_micros(),
        n: samples.len() as u32,
        ch: vec![Channel {
            label: "II".into(),
            code: Code { mdc: 131330, loinc: None, name: None },
            unit: Unit { ucum: "mV".into(), mdc: None },
            gain,
            base: 0,
            enc: "i16le".into(),
            data: spokegate::wave::pack(&samples, spokegate::wave::Encoding::I16Le).unwrap(),
        }],
    }
}

/// `Authorization: Basic` for `name` and `password` (RFC 7617), a request header line.
pub fn basic(name: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Authorization: Basic {}\r\n",
        base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}"))
    )
}

/// A FHIR page link's URL (`self`, `next`), if the bundle has one.
pub fn link(bundle: &serde_json::Value, relation: &str) -> Option<String> {
    bundle["link"].as_array()?.iter().find(|l| l["relation"] == relation)?["url"].as_str().map(str::to_string)
}

/// The path and query of a link to this hub on `port`: absolute, at the address the client
/// asked (`http://` and its Host).
pub fn path_of(port: u16, url: &str) -> String {
    url.strip_prefix(&format!("http://127.0.0.1:{port}"))
        .unwrap_or_else(|| panic!("{url} is not an absolute link to the hub"))
        .to_string()
}

/// Every page of a FHIR search from `first` on, following `next` links, with the credentials
/// in `auth` (header lines): the bundles, each answered 200.
pub async fn fhir_pages(port: u16, first: &str, auth: &str) -> Vec<serde_json::Value> {
    let mut bundles = Vec::new();
    let mut next = Some(first.to_string());
    while let Some(path) = next {
        let (status, head, body) = http_request(port, "GET", &path, auth, "").await;
        assert_eq!(status, 200, "{path}: {head}\n{body}");
        let bundle: serde_json::Value = serde_json::from_str(&body).unwrap();
        next = link(&bundle, "next").map(|u| path_of(port, &u));
        bundles.push(bundle);
        assert!(bundles.len() < 100, "more pages than a test stores readings");
    }
    bundles
}
