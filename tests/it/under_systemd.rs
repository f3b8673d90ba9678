//! The Debian package installed on a machine where systemd is PID 1 (`tests/support/machine.rs`:
//! this host's own system booted under `systemd-nspawn`), and the daemon run by its sandboxed unit
//! as a spoke PC runs it: an HL7 monitor on a serial line, the machine's mosquitto, and
//! `spokegate watch` verifying what arrives. What systemd decides is read from systemd itself
//! (`systemctl show`), what the sandbox does from the running daemon's `/proc`.

use crate::e2e::{fixture, stated_observations, MESSAGES};
use crate::installed::Package;
use crate::machine::{published, Lines, Machine};
use serde_json::Value;
use spokegate::hub::HubMessage;
use spokegate::sign::{read_bound_keys, KeyRing};
use std::io::Write;
use std::process::{Child, ChildStdin, Stdio};

const DEVICE: &str = "/run/spokegate-test/monitor";
/// A configured device whose adapter is not plugged in.
const UNPLUGGED: &str = "/dev/ttyUSB-unplugged";
/// An image folder the vendor software has not made yet.
const ABSENT_FOLDER: &str = "/srv/microscope/out";
const CONFIG: &str = "/etc/spokegate/spokegate.toml";

/// The broker by name, as a spoke names its hub's: resolved inside the sandbox.
fn config(extra: &str) -> String {
    format!(
        "[gateway]\nsite = \"test-site\"\nid = \"gw-systemd\"\nstate_dir = \"/var/lib/spokegate\"\n{extra}\n\
         [mqtt]\nurl = \"mqtt://localhost:1883\"\n\n\
         [[device]]\nid = \"monitor-1\"\nprofile = \"hl7-pcd01\"\nserial = {{ path = \"{DEVICE}\" }}\n\n\
         [[device]]\nid = \"unplugged-1\"\nprofile = \"vitals-kv\"\nserial = {{ path = \"{UNPLUGGED}\" }}\n\n\
         [[device]]\nid = \"scope-2\"\nprofile = \"usb-microscope\"\nfolder = {{ path = \"{ABSENT_FOLDER}\" }}\n"
    )
}

/// The HL7 monitor, inside the machine (its PTY must be in the machine's /dev/pts).
struct Monitor {
    child: Child,
    stdin: ChildStdin,
    lines: Lines,
}

impl Monitor {
    fn start(m: &Machine) -> Monitor {
        let dir = m.path("/root/test");
        std::fs::create_dir_all(&dir).unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/under_systemd/hl7_device.py");
        std::fs::copy(script, dir.join("hl7_device.py")).unwrap();
        for name in MESSAGES {
            std::fs::write(dir.join(format!("{name}.hl7")), fixture(name)).unwrap();
        }
        let mut child = m
            .command(&["python3", "/root/test/hl7_device.py", DEVICE])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut lines = Lines::of(child.stdout.take().unwrap());
        lines.next("the device's PTY", |l| l == "ready");
        Monitor { child, stdin, lines }
    }

    /// Clears the line's exclusive mode, as the kernel does for an adapter nobody holds any more.
    fn release(&mut self) {
        writeln!(self.stdin, "release").unwrap();
        self.lines.next("the line released", |l| l == "released");
    }

    /// Sends a fixture and waits for its acknowledgement's code.
    fn send(&mut self, name: &str) -> String {
        writeln!(self.stdin, "send /root/test/{name}.hl7").unwrap();
        let line = self.lines.next("an acknowledgement", |l| l.contains(&format!("/{name}.hl7")));
        line.rsplit(' ').next().unwrap().to_string()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Numeric values of verified observation messages `watch --json` printed: (seq, [(mdc, value)]).
fn verified_readings(lines: &[String]) -> Vec<(u64, Vec<(u64, f64)>)> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["verdict"] == "verified" && v["topic"].as_str().is_some_and(|t| t.ends_with("/obs")))
        .map(|v| {
            let body = &v["body"];
            let obs = body["obs"]
                .as_array()
                .map(|o| {
                    o.iter().filter_map(|x| Some((x["code"]["mdc"].as_u64()?, x["val"].as_f64()?))).collect::<Vec<_>>()
                })
                .unwrap_or_default();
            (body["seq"].as_u64().unwrap(), obs)
        })
        .collect()
}

/// AA once committed; AE for a message without an MDC-coded reading (the lab result), as in `e2e`.
fn expected_ack(name: &str) -> &'static str {
    if stated_observations(&fixture(name)).is_empty() {
        "AE"
    } else {
        "AA"
    }
}

/// The values the fixtures state, in the order they are sent: (mdc, value).
fn stated(names: &[&str]) -> Vec<(u64, f64)> {
    names.iter().flat_map(|n| stated_observations(&fixture(n))).map(|s| (s.mdc as u64, s.value)).collect()
}

/// A booted machine with the package built from this test build installed (`dpkg -i`), and what
/// the installation printed.
fn installed_machine() -> (Machine, String) {
    let dir = tempfile::tempdir().unwrap();
    let package = Package::build(dir.path(), env!("CARGO_MANIFEST_DIR"), &[]);
    let m = Machine::boot();
    std::fs::copy(&package.deb, m.path("/root/spokegate.deb")).unwrap();
    let installed = m.sh_ok("dpkg -i /root/spokegate.deb 2>&1");
    (m, installed)
}

/// `spokegate watch --json` in the machine, on its mosquitto, with the gateway's public key.
fn watch(m: &Machine) -> (Lines, crate::harness::KillOnDrop) {
    m.sh_ok(&format!("spokegate key show --config {CONFIG} > /root/gw.jwk"));
    let mut child = m
        .command(&["spokegate", "watch", "--url", "mqtt://127.0.0.1:1883", "--key", "/root/gw.jwk", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = Lines::of(child.stdout.take().unwrap());
    (lines, crate::harness::KillOnDrop(child))
}

#[test]
fn the_packaged_daemon_runs_under_systemd_in_its_sandbox_restarts_after_a_crash_and_stops_cleanly() {
    // Installed as an operator installs it: the postinst makes the user, the state directory and
    // the signing key, and prints the key's public JWK.
    let (m, installed) = installed_machine();
    assert!(installed.contains("\"kty\":\"OKP\""), "the postinst prints the public JWK:\n{installed}");
    let groups = m.sh_ok("id -nG spokegate");
    assert!(groups.contains("dialout") && groups.contains("bluetooth") && groups.contains("video"), "{groups}");
    assert_eq!(
        m.sh_ok("stat -c '%U %a' /var/lib/spokegate /var/lib/spokegate/gateway.key"),
        "spokegate 700\nspokegate 600\n"
    );
    assert_eq!(
        m.sh_ok("systemctl is-enabled spokegate || true").trim(),
        "disabled",
        "not enabled before it is configured"
    );

    std::fs::write(m.path(CONFIG), config("")).unwrap();
    assert_eq!(m.sh_ok(&format!("stat -c '%U:%G %a' {CONFIG}")), "root:spokegate 640\n", "the conffile keeps its mode");
    m.sh_ok("systemctl start mosquitto");
    let mut monitor = Monitor::start(&m);
    let (mut watch, _watch) = watch(&m);

    // Type=notify: `systemctl start` returns once the daemon said READY. It does not wait for the
    // network to be online: a spoke whose link is down at boot reads its devices at once (this
    // machine's network never comes online; the unit waited two minutes for it before).
    let first_pid = m.start_unit("spokegate");
    assert_eq!(m.unit_property("network-online.target", "ActiveState"), "inactive", "started without the network");

    let (before, after) = MESSAGES.split_at(3);
    for name in before {
        assert_eq!(monitor.send(name), expected_ack(name), "{name} acknowledged once committed");
    }
    let want = stated(before);
    watch.until("the first readings, verified", |seen| values_of(seen) == want);

    // The sandbox, as the running daemon has it.
    let sandbox = m.sandbox_of(&first_pid);
    sandbox.assert_confined("/var/lib/spokegate");
    let uid = m.sh_ok("id -u spokegate");
    assert!(sandbox.field("Uid:").starts_with(uid.trim()), "runs as spokegate: {}", sandbox.field("Uid:"));
    assert!(sandbox.mount_options("/home").starts_with("ro"), "ProtectHome=yes");
    // The unplugged adapter is named once, with why, though it is tried again and again (each try
    // publishes its state); as a warning, without colours or times of its own (the journal keeps
    // the priority and the time).
    let tries = |seen: &[String], dev: &str, state: &str| {
        seen.iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| {
                v["topic"].as_str().is_some_and(|t| t.ends_with(&format!("/dev/{dev}/state")))
                    && v["body"]["state"] == state
            })
            .count()
    };
    watch.until("the unplugged adapter and the absent folder tried three times", |seen| {
        tries(seen, "unplugged-1", "error") >= 3 && tries(seen, "scope-2", "disconnected") >= 3
    });
    let journal = m.sh_ok("journalctl -u spokegate --no-pager -o cat");
    assert!(journal.contains("device link open"), "the daemon's log in the journal:\n{journal}");
    assert!(!journal.contains('\u{1b}'), "no terminal colours in the journal:\n{journal}");
    let warnings = m.sh_ok("journalctl -u spokegate --no-pager -o cat -p warning");
    let unplugged = format!("{UNPLUGGED}: No such file or directory");
    assert_eq!(warnings.matches(&unplugged).count(), 1, "`{unplugged}` once, as a warning:\n{warnings}");
    assert!(!warnings.contains("device link open"), "information is not a warning:\n{warnings}");
    let absent = format!("folder={ABSENT_FOLDER}");
    assert_eq!(warnings.matches(&absent).count(), 1, "the absent folder once, as a warning:\n{warnings}");

    // The operator's page and its metrics are served from inside the sandbox.
    let page = m.sh_ok("curl -sf http://127.0.0.1:8480/");
    assert!(page.contains("<html"), "the operator's page:\n{page}");
    let metrics = m.sh_ok("curl -sf http://127.0.0.1:8480/metrics");
    for line in [
        "spokegate_device_up{device=\"monitor-1\",profile=\"hl7-pcd01\"} 1",
        "spokegate_device_up{device=\"unplugged-1\",profile=\"vitals-kv\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "`{line}` in the metrics:\n{metrics}");
    }

    // A crash: systemd restarts it (Restart=on-failure), and the readings carry on.
    m.crash_and_restart("spokegate", &first_pid, || monitor.release());
    for name in after {
        assert_eq!(monitor.send(name), expected_ack(name), "{name} acknowledged after the restart");
    }
    let want = stated(MESSAGES);
    watch.until("every reading, verified", |seen| values_of(seen).len() >= want.len());

    // Stopped by systemd: the drain ends with exit 0, and the hub is told the gateway is offline.
    m.stop_unit("spokegate");
    watch.next("the offline status", |l| {
        serde_json::from_str::<Value>(l).is_ok_and(|v| {
            v["topic"].as_str().is_some_and(|t| t.ends_with("/status")) && v["body"]["state"] == "offline"
        })
    });

    // Every seq once, in order across the restart, each carrying what its device sent.
    let readings = verified_readings(&watch.seen);
    let seqs: Vec<u64> = readings.iter().map(|(s, _)| *s).collect();
    let mut unique = seqs.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(seqs, unique, "seqs strictly increasing, none twice");
    assert_eq!(values_of(&watch.seen), stated(MESSAGES), "every stated value, once, in order");

    // A configuration with a mistake: refused with its place, and not restarted over and over.
    std::fs::write(m.path(CONFIG), config("unknown_key = 1")).unwrap();
    m.assert_config_refused("spokegate", "spokegate.toml:5:1: `gateway.unknown_key`");
}

/// The values of every verified observation, in the order they arrived: (mdc, value).
fn values_of(lines: &[String]) -> Vec<(u64, f64)> {
    verified_readings(lines).into_iter().flat_map(|(_, o)| o).collect()
}

/// The D-Bus policy the bluez package installs for org.bluez (Debian's `bluetooth.conf`, the parts
/// a client meets): root owns the name, the `bluetooth` group may talk to it, nobody else may.
const BLUEZ_POLICY: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <policy user="root">
    <allow own="org.bluez"/>
    <allow send_destination="org.bluez"/>
  </policy>
  <policy group="bluetooth">
    <allow send_destination="org.bluez"/>
  </policy>
  <policy context="default">
    <deny send_destination="org.bluez"/>
  </policy>
</busconfig>
"#;

/// The heart-rate notifications of the sourced GATT vectors that are valid, and the rates they state.
fn heart_rate_vectors() -> (Vec<String>, Vec<f64>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ble/gatt_vectors.json");
    let all: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .filter(|v| v["characteristic_uuid"] == "0x2A37" && v["expected"]["valid"] == true)
        .map(|v| (v["hex"].as_str().unwrap().to_string(), v["expected"]["heart_rate_bpm"].as_f64().unwrap()))
        .unzip()
}

/// BLE from inside the sandbox: the daemon, as user `spokegate` in group `bluetooth` and confined
/// to AF_UNIX and IP sockets, reaches BlueZ on the machine's system bus under the policy the bluez
/// package installs. BlueZ is the mock of `tests/ble_mock/` (this VM has no Bluetooth adapter),
/// owning `org.bluez` on the real system bus as root, as bluetoothd does.
#[test]
fn the_packaged_daemon_reaches_bluez_on_the_system_bus_from_its_sandbox() {
    let (m, _) = installed_machine();
    std::fs::write(m.path("/etc/dbus-1/system.d/spokegate-test-bluez.conf"), BLUEZ_POLICY).unwrap();
    m.sh_ok("systemctl start dbus");
    let (notifications, rates) = heart_rate_vectors();
    assert!(rates.len() >= 3, "the fixture's heart-rate vectors: {rates:?}");
    let scenario = serde_json::json!({"devices": [
        {"kind": "heart_rate", "address": "AA:BB:CC:DD:EE:02", "name": "Mock HR",
         "service": "0000180d-0000-1000-8000-00805f9b34fb", "notifications": notifications, "interval_ms": 50},
    ]});
    let test_dir = m.path("/root/test");
    std::fs::create_dir_all(&test_dir).unwrap();
    std::fs::write(test_dir.join("scenario.json"), scenario.to_string()).unwrap();
    let mock_script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ble_mock/mock_bluez.py");
    std::fs::copy(mock_script, test_dir.join("mock_bluez.py")).unwrap();
    // The python3 that has dbus-next (.ci/setup installs it), by its own path: the machine sees
    // this host's files.
    let out = std::process::Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output().unwrap();
    let python = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let bus = "unix:path=/run/dbus/system_bus_socket";
    let mut mock_child = m
        .command(&[&python, "/root/test/mock_bluez.py", bus, "/root/test/scenario.json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut mock = Lines::of(mock_child.stdout.take().unwrap());
    let _mock = crate::harness::KillOnDrop(mock_child);
    mock.next("the mock BlueZ on the system bus", |l| l == "READY");

    std::fs::write(
        m.path(CONFIG),
        "[gateway]\nsite = \"test-site\"\nid = \"gw-systemd\"\nstate_dir = \"/var/lib/spokegate\"\n\
         [mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\n\n\
         [[device]]\nid = \"hr-1\"\nprofile = \"ble-heart-rate\"\nble = { name = \"Mock HR\", allow_unbonded = true }\n",
    )
    .unwrap();
    m.sh_ok("systemctl start mosquitto");
    let (mut watch, _watch) = watch(&m);
    m.start_unit("spokegate");

    let heart_rates = |lines: &[String]| -> Vec<f64> {
        verified_readings(lines)
            .into_iter()
            .flat_map(|(_, o)| o)
            .filter(|(mdc, _)| *mdc == 147842)
            .map(|(_, v)| v)
            .collect()
    };
    watch.until("every vector's heart rate, verified", |seen| heart_rates(seen).len() >= rates.len());
    assert_eq!(heart_rates(&watch.seen), rates, "the rates the vectors state, in order");
    mock.until("nothing sent unasked", |seen| seen.iter().any(|l| l.contains("stream-complete")));
    assert!(!mock.seen.iter().any(|l| l.contains("refused-unsubscribed")), "{:?}", mock.seen);
}

/// What an operator does to a running gateway over its life: readings queued while the broker is
/// away, the package upgraded in place (the postinst restarts the running service), the broker
/// back, then the package removed and purged. Nothing queued is lost across the upgrade, the key
/// stays the same, and the state directory (the key, anything undelivered) outlives the purge.
#[test]
fn an_upgrade_in_place_loses_no_queued_reading_and_a_purge_keeps_the_key() {
    let (m, _) = installed_machine();
    // This VM's own policy-rc.d forbids maintainer scripts to start or restart services (it is
    // built as a container image); a spoke PC has none.
    m.sh_ok("rm -f /usr/sbin/policy-rc.d");
    std::fs::write(m.path(CONFIG), config("")).unwrap();
    // The hub's subscription is a persistent session at QoS 1, made while the broker ran: what the
    // gateway delivers once the broker is back is kept for it, whoever connects first.
    let readings = "spokegate/v1/test-site/gw-systemd/dev/+/obs";
    m.sh_ok("systemctl start mosquitto");
    m.sh_ok(&format!("mosquitto_sub -c -i hub-1 -q 1 -t '{readings}' -E"));
    m.sh_ok("systemctl stop mosquitto");
    let mut monitor = Monitor::start(&m);
    let kid = |m: &Machine| {
        let jwk: Value = serde_json::from_str(&m.sh_ok(&format!("spokegate key show --config {CONFIG}"))).unwrap();
        jwk["kid"].as_str().unwrap().to_string()
    };
    let first_kid = kid(&m);
    let first_pid = m.start_unit("spokegate");
    // The broker is away: the readings are committed, acknowledged, and wait in the queue.
    for name in MESSAGES {
        assert_eq!(monitor.send(name), expected_ack(name), "{name} acknowledged with the broker away");
    }
    let depth = |m: &Machine| {
        let status = m.sh_ok(&format!("spokegate status --config {CONFIG}"));
        let status: Value = serde_json::from_str(status.lines().next().unwrap_or_default()).unwrap();
        status["queue"]["depth"].as_u64().unwrap()
    };
    let queued = depth(&m);
    assert!(queued >= 5, "the five messages with readings queued: {queued}");

    // Upgraded in place (the same version again: dpkg runs every maintainer script an upgrade runs).
    m.sh_ok("dpkg -i /root/spokegate.deb 2>&1");
    let pid = m.unit_property("spokegate", "MainPID");
    assert!(pid != first_pid && pid != "0", "the postinst restarted the running service");
    assert_eq!(m.unit_property("spokegate", "SubState"), "running");
    assert_eq!(kid(&m), first_kid, "the upgrade keeps the signing key");
    monitor.release();

    // The broker comes back: everything queued before the upgrade arrives, verified.
    m.sh_ok(&format!("spokegate key show --config {CONFIG} > /root/gw.jwk"));
    let ring = KeyRing::new(read_bound_keys(&m.path("/root/gw.jwk")).unwrap());
    m.sh_ok("systemctl start mosquitto");
    let mut hub_child = m
        .command(&["mosquitto_sub", "-c", "-i", "hub-1", "-q", "1", "-t", readings, "-F", "%t %x"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut hub = Lines::of(hub_child.stdout.take().unwrap());
    let _hub = crate::harness::KillOnDrop(hub_child);
    let values = |lines: &[String]| -> Vec<(u64, f64)> {
        published(lines)
            .into_iter()
            .filter_map(|(topic, bytes)| match spokegate::hub::check(&topic, &bytes, &ring) {
                Ok(HubMessage::Signed(b)) => b.obs,
                _ => None,
            })
            .flatten()
            .filter_map(|o| Some((o.code.mdc as u64, o.val?)))
            .collect()
    };
    let want = stated(MESSAGES);
    hub.until("every queued reading, verified", |seen| values(seen).len() >= want.len());
    assert_eq!(values(&hub.seen), want, "every reading once, in order");
    m.wait_for("the queue drained", || (depth(&m) == 0).then_some(()));

    // Removed: the service is stopped first (a drain). Purged: the configuration goes, the state
    // directory with the key stays.
    m.sh_ok("dpkg --remove spokegate 2>&1");
    assert_eq!(m.unit_property("spokegate", "ActiveState"), "inactive");
    assert_eq!(m.unit_property("spokegate", "ExecMainStatus"), "0", "stopped by a clean drain");
    m.sh_ok("dpkg --purge spokegate 2>&1");
    assert!(!m.path(CONFIG).exists(), "the configuration is purged");
    assert!(m.path("/var/lib/spokegate/gateway.key").exists(), "the key outlives the purge");
}

/// The watchdog, as systemd runs it: a daemon that stops answering (here stopped outright with
/// SIGSTOP) is killed once `WatchdogSec` passes without a ping, and restarted. The unit's 30 s are
/// shortened to 2 s by a drop-in, and the abort's grace (`TimeoutAbortSec`, which a stopped
/// process cannot use) to 1 s, so the test takes seconds.
#[test]
fn a_daemon_that_stops_answering_is_killed_by_the_watchdog_and_restarted() {
    let (m, _) = installed_machine();
    std::fs::write(m.path(CONFIG), config("")).unwrap();
    let dropin = m.path("/etc/systemd/system/spokegate.service.d");
    std::fs::create_dir_all(&dropin).unwrap();
    std::fs::write(dropin.join("watchdog.conf"), "[Service]\nWatchdogSec=2\nTimeoutAbortSec=1\n").unwrap();
    m.sh_ok("systemctl daemon-reload && systemctl start mosquitto");
    let _monitor = Monitor::start(&m);
    let pid = m.start_unit("spokegate");
    assert_eq!(m.unit_property("spokegate", "WatchdogUSec"), "2s");
    // Answering: systemd hears its pings (the time of the last one moves on, three times over
    // three periods and more), and leaves it alone.
    let mut heard = std::collections::BTreeSet::new();
    m.wait_for("three pings heard by systemd", || {
        heard.insert(m.unit_property("spokegate", "WatchdogTimestampMonotonic"));
        (heard.len() >= 4).then_some(())
    });
    assert_eq!(m.unit_property("spokegate", "NRestarts"), "0", "a daemon that pings is left alone");
    assert_eq!(m.unit_property("spokegate", "MainPID"), pid);
    // Not answering: killed and restarted.
    m.sh_ok(&format!("kill -STOP {pid}"));
    m.wait_restarted("spokegate", &pid);
    let journal = m.sh_ok("journalctl -u spokegate --no-pager -o cat");
    assert!(journal.contains("Watchdog timeout"), "systemd says why:\n{journal}");
}

/// The device allow-list, enforced (the machine's devices controller is writable): the unit admits
/// USB-serial (major 188) and CDC-ACM (major 166) ports and V4L2 cameras (81) whether or not
/// their driver was loaded when it started, and not another class of port (a Bluetooth RFCOMM
/// port, major 216, without the drop-in the unit's comment gives). This VM has none of these
/// drivers (none of them in /proc/devices), as a spoke PC has not before its first adapter or
/// camera is plugged in; the nodes are made as udev makes them (group dialout, or video for the
/// camera). Admitted, they answer "No such device or address" (no driver behind them); refused,
/// "Operation not permitted". With `char-ttyUSB` (the unit before) the USB node was refused too:
/// an adapter plugged in after the start never opened; and the camera, for want of the `video`
/// group and its major, could never be opened by the service. (The test's PTYs need nothing:
/// `DevicePolicy=closed` admits them with /dev/null and the like.)
#[test]
fn the_device_allow_list_admits_adapters_and_cameras_plugged_after_the_start_and_not_others() {
    let (m, _) = installed_machine();
    m.sh_ok(
        "mknod -m 0660 /dev/ttyUSB-late c 188 0 && mknod -m 0660 /dev/ttyACM-late c 166 0 && \
         mknod -m 0660 /dev/rfcomm-late c 216 0 && chgrp dialout /dev/ttyUSB-late /dev/ttyACM-late /dev/rfcomm-late && \
         mknod -m 0660 /dev/video-late c 81 0 && chgrp video /dev/video-late",
    );
    let mut config = String::from(
        "[gateway]\nsite = \"test-site\"\nid = \"gw-systemd\"\nstate_dir = \"/var/lib/spokegate\"\n\
         [mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\n",
    );
    for (id, path) in [("usb-1", "/dev/ttyUSB-late"), ("acm-1", "/dev/ttyACM-late"), ("rfcomm-1", "/dev/rfcomm-late")] {
        config.push_str(&format!(
            "\n[[device]]\nid = \"{id}\"\nprofile = \"vitals-kv\"\nserial = {{ path = \"{path}\" }}\n"
        ));
    }
    config.push_str(
        "\n[[device]]\nid = \"scope-1\"\nprofile = \"usb-microscope\"\ncamera = { path = \"/dev/video-late\" }\n",
    );
    std::fs::write(m.path(CONFIG), config).unwrap();
    m.start_unit("spokegate");
    // A camera is opened when a still is asked for.
    let capture = m.sh(&format!("spokegate capture scope-1 --config {CONFIG} 2>&1"));
    let capture = String::from_utf8_lossy(&capture.stdout);
    assert!(
        capture.contains("/dev/video-late: No such device or address"),
        "the camera admitted, with no driver behind it:\n{capture}"
    );
    let expected = [
        "/dev/ttyUSB-late: No such device or address".to_string(),
        "/dev/ttyACM-late: No such device or address".to_string(),
        "/dev/rfcomm-late: Operation not permitted".to_string(),
    ];
    let warnings = m.wait_for("a warning for each port", || {
        let w = m.sh_ok("journalctl -u spokegate --no-pager -o cat -p warning");
        (w.matches("cannot reach the device").count() >= 3).then_some(w)
    });
    let drivers = m.sh_ok("cat /proc/devices");
    for e in &expected {
        assert!(warnings.contains(e.as_str()), "`{e}` in:\n{warnings}\n/proc/devices:\n{drivers}");
    }
}
