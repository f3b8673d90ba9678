//! A BLE test bench on one machine: a private `dbus-daemon` standing in for the system bus, and
//! the mock BlueZ of `tests/ble_mock/mock_bluez.py` on it (needs python3 with dbus-next). Point
//! the gateway at it with `DBUS_SYSTEM_BUS_ADDRESS` and the real btleplug code talks to the mock.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the bench waits for the mock.
const PATIENCE: Duration = Duration::from_secs(20);

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private D-Bus daemon standing in for the system bus.
pub struct PrivateBus {
    pub address: String,
    _daemon: Killed,
    _dir: tempfile::TempDir,
}

impl PrivateBus {
    pub fn start() -> PrivateBus {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("bus");
        let conf = dir.path().join("bus.conf");
        std::fs::write(
            &conf,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><allow own="*"/>
    <allow send_type="method_call"/><allow send_type="signal"/><allow send_type="method_return"/><allow send_type="error"/>
    <allow receive_type="method_call"/><allow receive_type="signal"/><allow receive_type="method_return"/><allow receive_type="error"/>
  </policy>
</busconfig>
"#,
                socket.display()
            ),
        )
        .unwrap();
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .args(["--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon (apt install dbus-daemon)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        PrivateBus { address: line.trim().to_string(), _daemon: Killed(child), _dir: dir }
    }
}

/// The mock BlueZ, and what it reports doing (JSON lines).
pub struct MockBluez {
    _child: Killed,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<Value>,
}

impl MockBluez {
    pub fn start(bus: &PrivateBus, scenario: &Value, dir: &Path) -> MockBluez {
        let path = dir.join("scenario.json");
        std::fs::write(&path, scenario.to_string()).unwrap();
        let mut child = Command::new("python3")
            .arg(format!("{}/tests/ble_mock/mock_bluez.py", env!("CARGO_MANIFEST_DIR")))
            .arg(&bus.address)
            .arg(&path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let ready = rx.recv_timeout(PATIENCE).expect("mock BlueZ starts (pip install dbus-next)");
        assert_eq!(ready, "READY");
        MockBluez { _child: Killed(child), lines: rx, seen: Vec::new() }
    }

    /// Waits for an event of the mock matching `done`.
    pub fn until(&mut self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        self.until_count(what, 1, done)
    }

    /// Waits for the `n`-th event of the mock matching `done`.
    pub fn until_count(&mut self, what: &str, n: usize, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(v) = self.seen.iter().filter(|v| done(v)).nth(n - 1) {
                return v.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let line =
                self.lines.recv_timeout(left).unwrap_or_else(|_| panic!("mock BlueZ: no {what}; saw {:?}", self.seen));
            self.seen.push(serde_json::from_str(&line).unwrap_or(Value::String(line)));
        }
    }
}
