//! Helpers shared by the integration tests: a real mosquitto, a subscriber, a gateway in-process.

use spokegate::config::Config;
use spokegate::daemon::{self, Counters};
use spokegate::hub::{check, HubMessage, KeyRing};
use spokegate::model::Body;
use spokegate::shutdown::{self, ShutdownTrigger};
use spokegate::sign::SigningKey;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long any wait in a test may last before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub use spokegate::sim::mosquitto::Mosquitto;

/// Every message received on `spokegate/v1/#`.
pub struct Subscriber {
    rx: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    pub seen: Vec<(String, Vec<u8>)>,
    /// Signed bodies of `seen` verified so far by [`Subscriber::until_signed`], in arrival order.
    pub verified: Vec<Body>,
    checked: usize,
    _task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    /// Connects and waits until the subscription is acknowledged.
    pub async fn connect(port: u16, id: &str) -> Subscriber {
        Self::connect_with(port, id, true).await
    }

    /// A subscriber whose session (subscription and queued messages) the broker keeps while it is away.
    pub async fn connect_persistent(port: u16, id: &str) -> Subscriber {
        Self::connect_with(port, id, false).await
    }

    async fn connect_with(port: u16, id: &str, clean: bool) -> Subscriber {
        use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_clean_session(clean);
        o.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(o, 100);
        client.subscribe("spokegate/v1/#", QoS::AtLeastOnce).await.unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            let mut connects = 0;
            loop {
                match eventloop.poll().await {
                    // Subscribe again after a reconnect: a persistent session keeps the subscription,
                    // but only if the broker managed to save it.
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        connects += 1;
                        if connects > 1 {
                            let _ = client.try_subscribe("spokegate/v1/#", QoS::AtLeastOnce);
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if tx.send((p.topic.clone(), p.payload.to_vec())).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        tokio::time::timeout(PATIENCE, ready_rx).await.expect("SUBACK").unwrap();
        Subscriber { rx, seen: Vec::new(), verified: Vec::new(), checked: 0, _task: task }
    }

    /// Receives until `done(seen)` holds; panics after [`PATIENCE`].
    pub async fn until(&mut self, what: &str, done: impl Fn(&[(String, Vec<u8>)]) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !done(&self.seen) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(m)) => self.seen.push(m),
                Ok(None) => panic!("subscriber ended while waiting for {what}"),
                Err(_) => {
                    panic!(
                        "timed out waiting for {what}; saw {} messages: {}",
                        self.seen.len(),
                        topic_counts(&self.seen)
                    )
                }
            }
        }
    }

    /// Receives until `done(verified bodies)` holds, verifying each message once (a signature
    /// check per message, not per wait). A message that fails verification fails the test.
    pub async fn until_signed(&mut self, what: &str, keys: &KeyRing, done: impl Fn(&[Body]) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            for (t, p) in &self.seen[self.checked..] {
                match check(t, p, keys) {
                    Ok(HubMessage::Signed(b)) => self.verified.push(*b),
                    Ok(_) => {}
                    // What hubs send (commands, acknowledgements) may be forged on purpose by a test.
                    Err(_) if is_from_hub(t) => {}
                    Err(e) => panic!("{t}: {e}"),
                }
            }
            self.checked = self.seen.len();
            if done(&self.verified) {
                return;
            }
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(m)) => self.seen.push(m),
                Ok(None) => panic!("subscriber ended while waiting for {what}"),
                Err(_) => panic!(
                    "timed out waiting for {what}; saw {} messages: {}",
                    self.seen.len(),
                    topic_counts(&self.seen)
                ),
            }
        }
    }

    /// Verified bodies seen so far (panics on any message that fails verification).
    pub fn bodies(&self, keys: &KeyRing) -> Vec<Body> {
        self.seen
            .iter()
            .filter_map(|(t, p)| match check(t, p, keys) {
                Ok(HubMessage::Signed(b)) => Some(*b),
                Ok(_) => None,
                Err(e) => panic!("{t}: {e}"),
            })
            .collect()
    }
}

/// A topic hubs publish on (`cmd`, `ack`), not the gateway.
pub fn is_from_hub(topic: &str) -> bool {
    matches!(
        spokegate::mqtt::topics::parse(topic),
        Some(spokegate::mqtt::topics::TopicRef::Cmd { .. } | spokegate::mqtt::topics::TopicRef::Ack { .. })
    )
}

impl Subscriber {
    /// Retained `online` statuses seen so far.
    pub fn births(&self) -> usize {
        self.seen.iter().filter(|(t, p)| t.ends_with("/status") && p.windows(8).any(|w| w == b"\"online\"")).count()
    }

    /// Waits for a gateway birth after the `n` already seen: the gateway is connected and (as its
    /// subscriptions go before its birth on the same connection) subscribed to its commands.
    pub async fn until_birth_after(&mut self, n: usize) {
        self.until("the gateway's birth", |seen| {
            seen.iter().filter(|(t, p)| t.ends_with("/status") && p.windows(8).any(|w| w == b"\"online\"")).count() > n
        })
        .await;
    }
}

/// How many messages per topic (a failure message, not a dump).
fn topic_counts(seen: &[(String, Vec<u8>)]) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for (t, _) in seen {
        *counts.entry(t.as_str()).or_default() += 1;
    }
    let last_status =
        seen.iter().rev().find(|(t, _)| t.ends_with("/status")).map(|(_, p)| String::from_utf8_lossy(p).to_string());
    format!("{counts:?}; last status: {last_status:?}")
}

/// Verified bodies of a kind in `seen`.
pub fn signed(seen: &[(String, Vec<u8>)], keys: &KeyRing) -> Vec<Body> {
    seen.iter()
        .filter_map(|(t, p)| match check(t, p, keys) {
            Ok(HubMessage::Signed(b)) => Some(*b),
            _ => None,
        })
        .collect()
}

/// A state directory with a fresh key.
pub struct GatewayDir {
    pub dir: tempfile::TempDir,
}

impl GatewayDir {
    pub fn new() -> GatewayDir {
        let dir = tempfile::tempdir().unwrap();
        SigningKey::generate(&dir.path().join("gateway.key")).unwrap();
        GatewayDir { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn key(&self) -> SigningKey {
        SigningKey::load(&self.path().join("gateway.key")).unwrap()
    }

    /// The gateway's public JWK bound to its site and gateway (as `spokegate key show --config`
    /// prints it), written next to the key; its path.
    pub fn jwk_file(&self) -> PathBuf {
        let path = self.path().join("gateway.jwk");
        let bound = spokegate::sign::BoundKey {
            key: self.key().public().clone(),
            binding: spokegate::sign::Binding::Gateway { site: "test-site".into(), gw: "gw-test".into() },
        };
        std::fs::write(&path, bound.to_jwk()).unwrap();
        path
    }

    pub fn keys(&self) -> KeyRing {
        KeyRing::gateway(self.key().public(), "test-site", "gw-test")
    }

    /// Writes a configuration with one serial device per `(id, profile, path)`.
    pub fn config(&self, broker_port: u16, devices: &[(&str, &str, &Path)], extra_gateway: &str) -> PathBuf {
        let mut text = format!(
            "[gateway]\nsite = \"test-site\"\nid = \"gw-test\"\nstate_dir = \"{}\"\n{extra_gateway}\n[mqtt]\nurl = \"mqtt://127.0.0.1:{broker_port}\"\n",
            self.path().display()
        );
        for (id, profile, path) in devices {
            text.push_str(&format!(
                "\n[[device]]\nid = \"{id}\"\nprofile = \"{profile}\"\nserial = {{ path = \"{}\" }}\n",
                path.display()
            ));
        }
        let path = self.path().join("spokegate.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// A daemon running in this process.
pub struct RunningGateway {
    trigger: ShutdownTrigger,
    task: tokio::task::JoinHandle<Result<(), daemon::DaemonError>>,
    pub counters: Counters,
}

impl RunningGateway {
    pub fn start(config: &Path, key: SigningKey) -> RunningGateway {
        let config = Config::load(config).unwrap_or_else(|d| panic!("{d}"));
        let mut counters = Counters::default();
        for d in &config.devices {
            counters.devices.insert(d.id.clone(), Default::default());
        }
        let (trigger, shutdown) = shutdown::channel();
        let mut c = counters.clone();
        let task = tokio::spawn(async move { daemon::run(config, key, shutdown, &mut c).await });
        RunningGateway { trigger, task, counters }
    }

    /// Triggers shutdown and waits for the drain.
    pub async fn stop(self) {
        self.trigger.trigger();
        tokio::time::timeout(PATIENCE, self.task).await.expect("daemon drains in time").unwrap().unwrap();
    }
}

/// Reads HL7 ACK frames from a simulated device until `n` have arrived; returns their MSA-1 codes.
pub async fn read_acks(peer: &mut spokegate::sim::PtyPeer, n: usize) -> Vec<String> {
    let mut framer = spokegate::framing::MllpFramer::new(1 << 16);
    let mut codes = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    use spokegate::framing::Framer;
    while codes.len() < n {
        let got = tokio::time::timeout_at(deadline, peer.read(&mut buf)).await.expect("ACKs in time").unwrap();
        framer.push(&buf[..got]);
        while let Ok(Some(frame)) = framer.next_frame() {
            let text = String::from_utf8_lossy(&frame).to_string();
            let msa = text.split('\r').find(|s| s.starts_with("MSA|")).expect("ACK has MSA");
            codes.push(msa.split('|').nth(1).unwrap_or("").to_string());
        }
    }
    codes
}

/// The usual test bench: a broker, a gateway state dir, one HL7 monitor on a PTY, its config, and a
/// subscriber already listening.
pub struct Rig {
    pub broker: Mosquitto,
    pub gw: GatewayDir,
    pub dev: spokegate::sim::PtyDevice,
    pub config: PathBuf,
    pub sub: Subscriber,
}

impl Rig {
    pub async fn hl7_monitor() -> Rig {
        let broker = Mosquitto::start();
        let gw = GatewayDir::new();
        let dev = spokegate::sim::PtyDevice::create(&gw.path().join("ttyUSB-monitor")).unwrap();
        let config = gw.config(broker.port, &[("monitor-1", "hl7-pcd01", &dev.path)], "");
        let sub = Subscriber::connect(broker.port, "test-hub").await;
        Rig { broker, gw, dev, config, sub }
    }
}

pub use spokegate::sim::KillOnDrop;

/// The real `spokegate run --config CONFIG` (its log discarded), killed when dropped.
pub fn run_binary(config: &Path) -> KillOnDrop {
    KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_spokegate"))
            .args(["run", "--config", config.to_str().unwrap()])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// A hub's signing key for the tests, and its public JWK (bound to the hub id) in a file.
pub struct HubKey {
    pub key: spokegate::sign::SigningKey,
    pub jwk: PathBuf,
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl HubKey {
    pub fn new(id: &str) -> HubKey {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("{id}.key"));
        let key = spokegate::sign::SigningKey::generate_hub(&path, id).unwrap();
        let bound = spokegate::sign::BoundKey {
            key: key.public().clone(),
            binding: spokegate::sign::Binding::Hub { hub: id.into() },
        };
        let jwk = dir.path().join(format!("{id}.jwk"));
        std::fs::write(&jwk, bound.to_jwk()).unwrap();
        HubKey { key, jwk, path, _dir: dir }
    }

    /// The hub's public key, bound to its hub id.
    pub fn bound(&self) -> spokegate::sign::BoundKey {
        spokegate::sign::BoundKey {
            key: self.key.public().clone(),
            binding: spokegate::sign::Binding::Hub { hub: self.key.hub().unwrap().into() },
        }
    }

    /// A signed command to the test gateway, valid from now for a minute.
    pub fn command(&self, id: &str, name: &str, args: serde_json::Value) -> Vec<u8> {
        let now = spokegate::clock::now_micros();
        self.command_at(id, name, args, now, now + 60_000_000)
    }

    pub fn command_at(&self, id: &str, name: &str, args: serde_json::Value, iat: i64, exp: i64) -> Vec<u8> {
        let args = serde_json::from_value(args).unwrap();
        let body = spokegate::model::CmdBody::new("test-site", "gw-test", id, name, args, iat, exp);
        spokegate::command::auth::sign_command(&self.key, body).unwrap()
    }
}

impl GatewayDir {
    /// A configuration with devices, extra `[gateway]` lines and extra sections (`[hub]`, ...).
    pub fn config_with(
        &self,
        broker_port: u16,
        devices: &[(&str, &str, &Path)],
        extra_gateway: &str,
        sections: &str,
    ) -> PathBuf {
        let path = self.config(broker_port, devices, extra_gateway);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push('\n');
        text.push_str(sections);
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// An MQTT client that publishes as a hub does (commands, acknowledgements).
pub struct Publisher {
    client: rumqttc::AsyncClient,
    _task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    pub async fn connect(port: u16, id: &str) -> Publisher {
        use rumqttc::{AsyncClient, Event, MqttOptions, Packet};
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(o, 100);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        tokio::time::timeout(PATIENCE, ready_rx).await.expect("CONNACK").unwrap();
        Publisher { client, _task: task }
    }

    pub async fn publish(&self, topic: &str, payload: Vec<u8>) {
        self.client.publish(topic, rumqttc::QoS::AtLeastOnce, false, payload).await.unwrap();
    }

    /// Publishes a command on the test gateway's `cmd/{name}` topic.
    pub async fn command(&self, name: &str, payload: Vec<u8>) {
        self.publish(&spokegate::mqtt::topics::cmd("test-site", "gw-test", name), payload).await;
    }
}

/// Replies to command `id` among verified bodies, in arrival order: (state, code).
pub fn replies<'a>(bodies: &'a [Body], id: &str) -> Vec<(&'a str, &'a str)> {
    bodies
        .iter()
        .filter_map(|b| b.reply.as_ref())
        .filter(|r| r.cmd == id)
        .map(|r| (r.state.as_str(), r.code.as_str()))
        .collect()
}

/// The gateway's `cmd-refused` events among verified bodies: their `reason`s.
pub fn refusals(bodies: &[Body]) -> Vec<String> {
    bodies
        .iter()
        .filter_map(|b| b.event.as_ref())
        .filter(|e| e.code == "cmd-refused")
        .map(|e| e.data.as_ref().and_then(|d| d.get("reason")).and_then(|r| r.as_str()).unwrap_or("").to_string())
        .collect()
}

/// The running daemon's `status` picture (over its local socket: the daemon holds the store for
/// itself while it runs).
pub async fn running_status(state_dir: &Path) -> Option<BTreeMap<String, serde_json::Value>> {
    spokegate::command::socket::request(state_dir, "status", Default::default(), |_| {}).await.ok()?.data
}

/// The queue's figures in a `status` picture.
pub fn queue_of(status: &BTreeMap<String, serde_json::Value>) -> Option<spokegate::mqtt::status::QueueStatus> {
    serde_json::from_value(status.get("queue")?.clone()).ok()
}

/// Waits until the running daemon's `status` picture satisfies `done`, failing after `limit`.
pub async fn until_status(
    state_dir: &Path,
    what: &str,
    limit: Duration,
    done: impl Fn(&BTreeMap<String, serde_json::Value>) -> bool,
) -> BTreeMap<String, serde_json::Value> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(status) = running_status(state_dir).await.filter(|s| done(s)) {
            return status;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the running daemon's queue satisfies `done`, failing after `limit`.
pub async fn until_queue(
    state_dir: &Path,
    what: &str,
    limit: Duration,
    done: impl Fn(&spokegate::mqtt::status::QueueStatus) -> bool,
) -> spokegate::mqtt::status::QueueStatus {
    let status = until_status(state_dir, what, limit, |s| queue_of(s).is_some_and(|q| done(&q))).await;
    queue_of(&status).expect("a queue in the status")
}

/// A sourced ASTM vector's exact bytes (tests/fixtures/astm/astm_vectors.json, its `hex`).
pub fn astm_vector(id: &str) -> Vec<u8> {
    let all: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(format!("{}/tests/fixtures/astm/astm_vectors.json", env!("CARGO_MANIFEST_DIR")))
            .unwrap(),
    )
    .unwrap();
    let v = all.into_iter().find(|v| v["id"] == id).unwrap_or_else(|| panic!("no vector {id}"));
    let h = v["hex"].as_str().unwrap().to_string();
    spokegate::capture::parse_hex(&h).unwrap()
}

/// `spokegate watch --json` on the broker at `port`, trusting the keys in `keys` (output piped).
pub fn watch_cmd(port: u16, keys: &[&Path]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_spokegate"));
    c.args(["watch", "--json", "--url", &format!("mqtt://127.0.0.1:{port}")]);
    for k in keys {
        c.arg("--key").arg(k);
    }
    c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).kill_on_drop(true);
    c
}

/// Publishes an unsigned status on `topic` until the watch printing `lines` shows a line (it has
/// subscribed: it shows a status published after it connected); that line.
pub async fn until_watch_subscribed(
    publisher: &Publisher,
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    topic: &str,
) -> String {
    let status = br#"{"state":"online","since":"2026-11-29T00:00:00Z","version":"x","kid":"00"}"#.to_vec();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        publisher.publish(topic, status.clone()).await;
        match tokio::time::timeout(Duration::from_millis(200), lines.next_line()).await {
            Ok(l) => return l.unwrap().expect("watch runs"),
            Err(_) => assert!(tokio::time::Instant::now() < deadline, "watch never subscribed"),
        }
    }
}
