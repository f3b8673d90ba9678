//! The hub's Debian package installed on a machine where systemd is PID 1
//! (`tests/support/machine.rs`: this host's own system booted under `systemd-nspawn`), and the
//! service run by its sandboxed unit as a hub machine runs it: a PostgreSQL cluster made for the
//! test, the machine's mosquitto, readings signed by a trusted gateway key published into it, and
//! a hospital system reading them over FHIR. What systemd decides is read from systemd itself
//! (`systemctl show`), what the sandbox does from the running service's `/proc`.

use crate::installed::Package;
use crate::machine::{published, Lines, Machine};
use crate::support::{reading, sealed};
use serde_json::Value;
use spokegate::hub::HubMessage;
use spokegate::sign::{read_bound_keys, Binding, BoundKey, KeyRing, SigningKey};
use std::process::Stdio;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const CONFIG: &str = "/etc/spokegate-hub/hub.toml";
/// The test's PostgreSQL cluster, beside any the machine has.
const PG_PORT: u16 = 5499;
const PASSWORD: &str = "a password for the test cluster";

fn config(extra: &str) -> String {
    format!(
        "[hub]\nid = \"hub-systemd\"\nkey = \"/var/lib/spokegate-hub/hub.key\"\n{extra}\n\
         [database]\nurl = \"host=127.0.0.1 port={PG_PORT} user=spokegate_hub password='{PASSWORD}' dbname=spokegate_hub\"\n\
         [input.mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\ngroup = \"spokegate-hub\"\nclient_id = \"hub-systemd-1\"\n\
         [http]\nlisten = \"127.0.0.1:8490\"\n"
    )
}

/// Publishes readings `seqs` of site-1/gw-a, signed with its key, from inside the machine.
fn publish(m: &Machine, key: &SigningKey, seqs: std::ops::RangeInclusive<u64>) {
    for seq in seqs {
        let body = reading("site-1", "gw-a", seq, 100.0 + seq as f64);
        let file = format!("/root/reading-{seq}.cose");
        std::fs::write(m.path(&file), sealed(key, &body)).unwrap();
        let topic = spokegate::mqtt::topics::for_body(&body);
        m.sh_ok(&format!("mosquitto_pub -q 1 -t '{topic}' -f {file}"));
    }
}

/// The systolic values a FHIR search of site-1 finds, in its order.
fn fhir_values(m: &Machine) -> Vec<f64> {
    let out = m.sh(&format!(
        "curl -sf -u 'his:{PASSWORD}' 'http://127.0.0.1:8490/fhir/r4/Observation?site=site-1&code=8480-6'"
    ));
    let Ok(bundle) = serde_json::from_slice::<Value>(&out.stdout) else { return Vec::new() };
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().filter_map(|x| x["resource"]["valueQuantity"]["value"].as_f64()).collect())
        .unwrap_or_default()
}

#[test]
fn the_packaged_hub_runs_under_systemd_in_its_sandbox_stores_restarts_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let package = Package::build(dir.path(), ROOT, &["-p", "spokegate-hub"]);
    let m = Machine::boot();

    // Installed as an operator installs it.
    std::fs::copy(&package.deb, m.path("/root/spokegate-hub.deb")).unwrap();
    m.sh_ok("dpkg -i /root/spokegate-hub.deb 2>&1");
    assert_eq!(m.sh_ok("stat -c '%U %a' /var/lib/spokegate-hub"), "spokegate-hub 700\n");
    assert_eq!(m.sh_ok(&format!("stat -c '%U:%G %a' {CONFIG}")), "root:spokegate-hub 640\n");
    // The database the operator provides: a cluster of the test's own, a role with a password.
    m.sh_ok(&format!(
        "pg_createcluster $(ls /usr/lib/postgresql | sort -V | tail -1) spokegate_test -p {PG_PORT} --start >/dev/null"
    ));
    m.sh_ok(&format!(
        "runuser -u postgres -- psql -p {PG_PORT} -qc \"CREATE ROLE spokegate_hub LOGIN PASSWORD '{PASSWORD}'\" && \
         runuser -u postgres -- createdb -p {PG_PORT} -O spokegate_hub spokegate_hub"
    ));
    std::fs::write(m.path(CONFIG), config("")).unwrap();
    m.sh_ok("systemctl start mosquitto");
    m.sh_ok(&format!("spokegate-hub migrate --config {CONFIG}"));
    let hub_jwk = m.sh_ok(&format!("runuser -u spokegate-hub -- spokegate-hub identity --config {CONFIG}"));
    assert_eq!(m.sh_ok("stat -c '%U %a' /var/lib/spokegate-hub/hub.key"), "spokegate-hub 600\n");
    // A gateway's key, trusted; a hospital system's account with a grant for the site.
    let key = SigningKey::generate(&dir.path().join("gw-a.key")).unwrap();
    let bound =
        BoundKey { key: key.public().clone(), binding: Binding::Gateway { site: "site-1".into(), gw: "gw-a".into() } };
    std::fs::write(m.path("/root/gw-a.jwk"), bound.to_jwk()).unwrap();
    m.sh_ok(&format!("spokegate-hub keys --config {CONFIG} add /root/gw-a.jwk"));
    m.sh_ok(&format!("echo '{PASSWORD}' | spokegate-hub users --config {CONFIG} add his"));
    m.sh_ok(&format!("spokegate-hub users --config {CONFIG} grant his --site site-1"));
    // The unit waits for network-online.target (a hub serves over the network); this machine has
    // no network to configure, so its wait-online service would take its two-minute timeout.
    m.sh_ok("systemctl mask systemd-networkd-wait-online.service");

    // The gateway's acknowledgements, as the gateway's subscription gets them.
    let mut acks_child = m
        .command(&["mosquitto_sub", "-q", "1", "-t", "spokegate/v1/site-1/gw-a/ack", "-F", "%t %x"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut acks = Lines::of(acks_child.stdout.take().unwrap());
    let _acks = spokegate::sim::KillOnDrop(acks_child);

    // Type=notify: `systemctl start` returns once the service said READY.
    let first_pid = m.start_unit("spokegate-hub");

    publish(&m, &key, 1..=3);
    m.wait_for("three readings over FHIR", || (fhir_values(&m) == [101.0, 102.0, 103.0]).then_some(()));
    // Acknowledged to the gateway, signed with the hub's key (read from its state directory).
    std::fs::write(dir.path().join("hub.jwk"), &hub_jwk).unwrap();
    let hub_ring = KeyRing::new(read_bound_keys(&dir.path().join("hub.jwk")).unwrap());
    let acked = |lines: &[String]| -> Vec<(u64, u64)> {
        published(lines)
            .into_iter()
            .filter_map(|(topic, bytes)| match spokegate::hub::check(&topic, &bytes, &hub_ring) {
                Ok(HubMessage::Ack(a)) => Some(a.ranges().collect::<Vec<_>>()),
                _ => None,
            })
            .flatten()
            .collect()
    };
    acks.until("seqs 1-3 acknowledged, verified", |seen| {
        (1..=3).all(|s| acked(seen).iter().any(|(a, b)| (*a..=*b).contains(&s)))
    });

    // The sandbox, as the running service has it; PrivateUsers=yes: a user namespace of its own.
    m.sandbox_of(&first_pid).assert_confined("/var/lib/spokegate-hub");
    let uid_map = m.sh_ok(&format!("cat /proc/{first_pid}/uid_map"));
    assert_ne!(uid_map, m.sh_ok("cat /proc/1/uid_map"), "a user namespace of its own: {uid_map}");
    // The journal: plain lines, information not taken for a warning.
    let journal = m.sh_ok("journalctl -u spokegate-hub --no-pager -o cat");
    assert!(journal.contains("spokegate-hub serving"), "the service's log in the journal:\n{journal}");
    assert!(!journal.contains('\u{1b}'), "no terminal colours in the journal:\n{journal}");
    let warnings = m.sh_ok("journalctl -u spokegate-hub --no-pager -o cat -p warning");
    assert!(!warnings.contains("spokegate-hub serving"), "information is not a warning:\n{warnings}");

    // A crash: systemd restarts it, and it stores what comes next.
    m.crash_and_restart("spokegate-hub", &first_pid, || {});
    publish(&m, &key, 4..=5);
    m.wait_for("five readings over FHIR", || (fhir_values(&m) == [101.0, 102.0, 103.0, 104.0, 105.0]).then_some(()));

    // Stopped by systemd: exit 0.
    m.stop_unit("spokegate-hub");

    // A configuration with a mistake: refused with its place, and not restarted over and over.
    std::fs::write(m.path(CONFIG), config("unknown_key = 1")).unwrap();
    m.assert_config_refused("spokegate-hub", "hub.toml:4:1: `hub.unknown_key`");
}
