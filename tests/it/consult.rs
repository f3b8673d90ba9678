//! The consult (v1.1): readings bound to a consultation by the hub's `consult.start` / `consult.end`
//! and by the operator's `spokegate consult ...` (the real binary, over the daemon's local socket);
//! the retained `consult` message after a broker restart and after a gateway restart.

use crate::harness::*;
use spokegate::hub::{check, HubMessage, KeyRing};
use spokegate::model::{Body, BodyKind, ConsultBy};
use spokegate::sim::PtyDevice;
use std::process::Command;

/// A vitals monitor on a PTY, a gateway obeying one hub, and a subscriber.
struct ConsultRig {
    broker: Mosquitto,
    gw: GatewayDir,
    dev: PtyDevice,
    config: std::path::PathBuf,
    hub: HubKey,
    sub: Subscriber,
    keys: KeyRing,
}

async fn rig() -> ConsultRig {
    let broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let dev = PtyDevice::create(&gw.path().join("ttyVITALS")).unwrap();
    let hub = HubKey::new("hub-test");
    let hub_section = format!("[hub]\nkeys = [\"{}\"]\ndelivery = \"broker\"\n", hub.jwk.display());
    let config = gw.config_with(broker.port, &[("vitals-1", "vitals-kv", &dev.path)], "", &hub_section);
    let sub = Subscriber::connect(broker.port, "consult-hub").await;
    // The subscriber sees the hub's commands too: they verify with the hub's key.
    let mut keys = gw.keys();
    keys.insert(hub.bound()).unwrap();
    ConsultRig { broker, gw, dev, config, hub, sub, keys }
}

/// Sends one reading with a distinctive value and waits until its signed body arrives.
async fn reading(r: &mut ConsultRig, sys: u32) -> Body {
    r.dev.peer.send(format!("SYS={sys}\n").as_bytes()).await.unwrap();
    let find = |bodies: &[Body]| {
        bodies
            .iter()
            .rev()
            .find(|b| b.obs.as_ref().is_some_and(|o| o.iter().any(|x| x.val == Some(f64::from(sys)))))
            .cloned()
    };
    r.sub.until_signed(&format!("reading SYS={sys}"), &r.keys, |b| find(b).is_some()).await;
    find(&r.sub.verified).unwrap()
}

/// Runs `spokegate consult ...` (the real binary) against the running daemon.
fn operator(config: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_spokegate"))
        .arg("consult")
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).to_string())
}

/// The retained `consult` a subscriber connecting now receives.
async fn retained_consult(port: u16, keys: &KeyRing) -> Body {
    let mut late = Subscriber::connect(port, &format!("late-{}", spokegate::clock::now_micros())).await;
    late.until("the retained consult", |seen| seen.iter().any(|(t, _)| t.ends_with("/consult"))).await;
    let (t, p) = late.seen.iter().find(|(t, _)| t.ends_with("/consult")).unwrap();
    match check(t, p, keys).unwrap() {
        HubMessage::Signed(b) => *b,
        other => panic!("the consult is signed: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_before_during_and_after_a_consult_carry_the_right_binding() {
    let mut r = rig().await;
    let gateway = RunningGateway::start(&r.config, r.gw.key());
    let before = reading(&mut r, 101).await;
    assert_eq!(before.consult, None, "no consult is open yet");

    // The hub opens a consult.
    let hub_pub = Publisher::connect(r.broker.port, "hub-sender").await;
    hub_pub
        .command(
            "consult.start",
            r.hub.command("c-start", "consult.start", serde_json::json!({"consult": "TELE-2026-11-29-001"})),
        )
        .await;
    let keys = r.keys.clone();
    r.sub.until_signed("consult.start done", &keys, |b| replies(b, "c-start").contains(&("done", "ok"))).await;
    let during = reading(&mut r, 102).await;
    assert_eq!(during.consult_id(), Some("TELE-2026-11-29-001"));
    let announced = r.sub.verified.iter().find(|b| b.kind == BodyKind::Consult).cloned().expect("a consult body");
    assert_eq!(announced.consult_id(), Some("TELE-2026-11-29-001"));
    let binding = announced.binding.clone().unwrap();
    assert_eq!((binding.by, binding.cmd.as_deref()), (ConsultBy::Hub, Some("c-start")));
    assert!(announced.seq < during.seq && announced.seq > before.seq, "ordered with the readings");

    // The operator switches to another consult, then ends it.
    let (code, out) = operator(&r.config, &["start", "OPD-77"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("done ok") && out.contains("OPD-77"), "{out}");
    let operator_bound = reading(&mut r, 103).await;
    assert_eq!(operator_bound.consult_id(), Some("OPD-77"));
    let (code, out) = operator(&r.config, &["show"]);
    assert_eq!((code, out.trim()), (0, "consult OPD-77 is open"));
    // Ending another consult than the one open is refused and changes nothing.
    let (code, out) = operator(&r.config, &["end", "TELE-2026-11-29-001"]);
    assert_eq!(code, 65, "{out}");
    assert!(out.contains("refused other-consult-open"), "{out}");
    assert_eq!(reading(&mut r, 104).await.consult_id(), Some("OPD-77"));
    let (code, out) = operator(&r.config, &["end"]);
    assert_eq!(code, 0, "{out}");
    let after = reading(&mut r, 105).await;
    assert_eq!(after.consult, None, "a reading after the consult carries none");
    let last = r.sub.verified.iter().rev().find(|b| b.kind == BodyKind::Consult).unwrap();
    assert_eq!((last.consult.clone(), last.binding.as_ref().map(|b| b.by)), (Some(None), Some(ConsultBy::Operator)));
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retained_consult_survives_a_broker_restart_and_a_gateway_restart() {
    let mut r = rig().await;
    let gateway = RunningGateway::start(&r.config, r.gw.key());
    let socket = spokegate::command::socket::path(r.gw.path());
    wait_for("the daemon's control socket", || socket.exists()).await;
    let (code, out) = operator(&r.config, &["start", "WARD-3:BED-12"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(retained_consult(r.broker.port, &r.keys).await.consult_id(), Some("WARD-3:BED-12"));

    // A broker without persistence forgets retained messages when it restarts; the gateway
    // publishes the consult again when it reconnects.
    let connects = gateway.counters.link.connects.load(std::sync::atomic::Ordering::Relaxed);
    r.broker.stop();
    r.broker.restart();
    wait_for("the gateway reconnects", || {
        gateway.counters.link.connects.load(std::sync::atomic::Ordering::Relaxed) > connects
    })
    .await;
    assert_eq!(retained_consult(r.broker.port, &r.keys).await.consult_id(), Some("WARD-3:BED-12"));
    gateway.stop().await;

    // The gateway restarts while the broker also lost everything: the binding and its retained
    // message come back from the gateway's store.
    r.broker.stop();
    r.broker.restart();
    let gateway = RunningGateway::start(&r.config, r.gw.key());
    let again = retained_consult(r.broker.port, &r.keys).await;
    assert_eq!(again.consult_id(), Some("WARD-3:BED-12"));
    r.sub = Subscriber::connect(r.broker.port, "consult-hub-2").await;
    assert_eq!(reading(&mut r, 120).await.consult_id(), Some("WARD-3:BED-12"), "readings after the restart");
    gateway.stop().await;
}

/// Waits (bounded by PATIENCE) until `done` holds.
pub async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
