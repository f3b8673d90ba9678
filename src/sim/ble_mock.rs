//! A BLE test bench on one machine: a private `dbus-daemon` standing in for the system bus, and
//! the mock BlueZ of `tests/ble_mock/mock_bluez.py` on it (needs python3 with dbus-next). Point
//! the gateway at it with `DBUS_SYSTEM_BUS_ADDRESS` and the real btleplug code talks to the mock.

use super::KillOnDrop;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the bench waits for the mock.
const PATIENCE: Duration = Duration::from_secs(20);

/// A private D-Bus daemon standing in for the system bus.
pub struct PrivateBus {
    pub address: String,
    _daemon: KillOnDrop,
    _dir: tempfile::TempDir,
}

impl PrivateBus {
    /// Starts the bus; panics when it cannot (tests, benches).
    pub fn start() -> PrivateBus {
        Self::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_start() -> Result<PrivateBus, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
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
        .map_err(|e| e.to_string())?;
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .args(["--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("dbus-daemon (apt install dbus-daemon): {e}"))?;
        let mut line = String::new();
        let out = child.stdout.take().ok_or("dbus-daemon without stdout")?;
        BufReader::new(out).read_line(&mut line).map_err(|e| e.to_string())?;
        if line.trim().is_empty() {
            return Err("dbus-daemon printed no address".into());
        }
        Ok(PrivateBus { address: line.trim().to_string(), _daemon: KillOnDrop(child), _dir: dir })
    }
}

/// The mock BlueZ, and what it reports doing (JSON lines).
pub struct MockBluez {
    _child: KillOnDrop,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<Value>,
}

/// The mock's source, built in so the demo can run it from any folder.
const SCRIPT: &str = include_str!("../../tests/ble_mock/mock_bluez.py");

impl MockBluez {
    /// Starts the mock; panics when it cannot (tests, benches).
    pub fn start(bus: &PrivateBus, scenario: &Value, dir: &Path) -> MockBluez {
        Self::try_start(bus, scenario, dir).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_start(bus: &PrivateBus, scenario: &Value, dir: &Path) -> Result<MockBluez, String> {
        let path = dir.join("scenario.json");
        let script = dir.join("mock_bluez.py");
        std::fs::write(&path, scenario.to_string()).map_err(|e| e.to_string())?;
        std::fs::write(&script, SCRIPT).map_err(|e| e.to_string())?;
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(&bus.address)
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("python3: {e}"))?;
        let out = child.stdout.take().ok_or("mock without stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let child = KillOnDrop(child);
        match rx.recv_timeout(PATIENCE) {
            Ok(line) if line == "READY" => Ok(MockBluez { _child: child, lines: rx, seen: Vec::new() }),
            _ => Err("the mock BlueZ did not start (python3 -m pip install dbus-next)".into()),
        }
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

/// PMD ECG frames of 73 samples made from MIT-BIH record 100 MLII in microvolts
/// ((adc - 1024) * 5, the record's 200 adu/mV), with device timestamps 73/130 s apart from
/// `start_ns` (ns since 2000-01-01): the frames (hex) and their samples.
pub fn ecg_frames(frames: usize, start_ns: u64) -> (Vec<String>, Vec<i32>) {
    let rec = crate::sim::waves::mitbih_100();
    let uv: Vec<i32> = rec.channel(0).iter().map(|&a| (a - 1024) * 5).take(frames * 73).collect();
    let hexed = uv
        .chunks(73)
        .enumerate()
        .map(|(i, c)| {
            let ts = start_ns + (i as u64 + 1) * 73 * 1_000_000_000 / 130;
            hex::encode(crate::decode::gatt::pmd::encode_ecg(ts, c))
        })
        .collect();
    (hexed, uv)
}
