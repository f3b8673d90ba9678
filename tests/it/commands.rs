//! Hub commands (v1.1) through a real mosquitto: every refusal gives a signed `cmd-refused` event
//! and no effect; a replay is refused even after a gateway restart; the commands of the table
//! answer as documented (on-demand streaming, status, capture and fetch on devices that cannot).

use crate::harness::*;
use serde_json::json;
use spokegate::hub::KeyRing;
use spokegate::model::{Body, BodyKind};
use spokegate::sim::PtyDevice;

struct CmdRig {
    broker: Mosquitto,
    gw: GatewayDir,
    dev: PtyDevice,
    ecg: PtyDevice,
    config: std::path::PathBuf,
    hub: HubKey,
    sub: Subscriber,
    keys: KeyRing,
    sender: Publisher,
}

/// An on-demand copy of the single-lead text ECG profile, as an operator would write it.
const ON_DEMAND_ECG: &str = r#"
id = "ecg-on-demand"
description = "Single-lead ECG that streams only when the hub asks"
[framing]
kind = "line"
[decoder]
kind = "samples"
[wave]
stream = "ecg"
rate = 250.0
window_ms = 100
on_demand = true
[[channel]]
source = 1
label = "II"
mdc = 131330
ucum = "mV"
gain = 0.0029296875
base = 512
"#;

async fn rig() -> CmdRig {
    let broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let dev = PtyDevice::create(&gw.path().join("ttyVITALS")).unwrap();
    let ecg = PtyDevice::create(&gw.path().join("ttyECG")).unwrap();
    let profiles = gw.path().join("profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::write(profiles.join("ecg-on-demand.toml"), ON_DEMAND_ECG).unwrap();
    let hub = HubKey::new("hub-test");
    let hub_section = format!("[hub]\nkeys = [\"{}\"]\ndelivery = \"broker\"\n", hub.jwk.display());
    let config = gw.config_with(
        broker.port,
        &[("vitals-1", "vitals-kv", &dev.path), ("ecg-1", "ecg-on-demand", &ecg.path)],
        &format!("profiles_dir = \"{}\"\n", profiles.display()),
        &hub_section,
    );
    let sub = Subscriber::connect(broker.port, "cmd-hub").await;
    let mut keys = gw.keys();
    keys.insert(hub.bound()).unwrap();
    let sender = Publisher::connect(broker.port, "cmd-sender").await;
    CmdRig { broker, gw, dev, ecg, config, hub, sub, keys, sender }
}

impl CmdRig {
    /// Starts the gateway and waits until it listens for commands.
    async fn start(&mut self) -> RunningGateway {
        let births = self.sub.births();
        let gateway = RunningGateway::start(&self.config, self.gw.key());
        self.sub.until_birth_after(births).await;
        gateway
    }

    async fn until(&mut self, what: &str, done: impl Fn(&[Body]) -> bool) {
        let keys = self.keys.clone();
        self.sub.until_signed(what, &keys, done).await;
    }

    /// Sends a command and waits for its final reply: (state, code, data).
    async fn ask(&mut self, id: &str, name: &str, args: serde_json::Value) -> (String, String, serde_json::Value) {
        self.sender.command(name, self.hub.command(id, name, args)).await;
        let id2 = id.to_string();
        self.until(&format!("the final reply to {id}"), move |b| {
            replies(b, &id2).iter().any(|(s, _)| *s != "accepted")
        })
        .await;
        let r = self.sub.verified.iter().filter_map(|b| b.reply.as_ref()).rfind(|r| r.cmd == id).unwrap();
        (r.state.as_str().to_string(), r.code.clone(), serde_json::to_value(&r.data).unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refused_command_gives_a_signed_event_and_has_no_effect() {
    let mut r = rig().await;
    let gateway = r.start().await;
    let now = spokegate::clock::now_micros();
    let min = 60_000_000;
    let evil = |n: u32| json!({"consult": format!("EVIL-{n}")});
    let stranger = HubKey::new("hub-stranger");
    let good = r.hub.command("c-ok", "consult.start", json!({"consult": "GOOD-1"}));
    let mut tampered = r.hub.command("c-tampered", "consult.start", evil(1));
    let at = tampered.len() - 70;
    tampered[at] ^= 0x01;
    let other_gw = {
        let body = spokegate::model::CmdBody::new(
            "test-site",
            "gw-other",
            "c-other-gw",
            "consult.start",
            serde_json::from_value(evil(5)).unwrap(),
            now,
            now + min,
        );
        spokegate::command::auth::sign_command(&r.hub.key, body).unwrap()
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("consult.start", tampered, "bad-signature"),
        ("consult.start", stranger.command("c-stranger", "consult.start", evil(2)), "unknown-key"),
        (
            "consult.start",
            r.hub.command_at("c-expired", "consult.start", evil(3), now - 10 * min, now - min),
            "expired",
        ),
        (
            "consult.start",
            r.hub.command_at("c-future", "consult.start", evil(4), now + 10 * min, now + 11 * min),
            "not-yet-valid",
        ),
        ("consult.start", other_gw, "wrong-addressee"),
        ("reboot", r.hub.command("c-unknown", "reboot", json!({})), "unknown-command"),
        ("consult.start", r.hub.command("c-bad-args", "consult.start", json!({"consult": "has space"})), "bad-args"),
        ("consult.start", br#"{"v":1,"type":"cmd","id":"c-unsigned","name":"consult.start"}"#.to_vec(), "unsigned"),
        ("consult.start", good.clone(), "-"),
        // The same command again: a replay.
        ("consult.start", good, "replayed"),
    ];
    for (name, payload, _) in &cases {
        r.sender.command(name, payload.clone()).await;
    }
    let want: Vec<String> = cases.iter().map(|c| c.2.to_string()).filter(|c| c != "-").collect();
    let w = want.clone();
    r.until("a cmd-refused event per refusal, and the replies", move |b| {
        refusals(b).len() >= w.len() && replies(b, "c-ok").len() >= 2 && !replies(b, "c-bad-args").is_empty()
    })
    .await;
    let mut got = refusals(&r.sub.verified);
    got.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(got, want_sorted);
    // Every refusal event is the gateway's own (no device), and signed like everything else.
    for b in r.sub.verified.iter().filter(|b| b.event.as_ref().is_some_and(|e| e.code == "cmd-refused")) {
        assert_eq!((b.dev.as_deref(), b.kind), (None, BodyKind::Event));
    }
    // A refused reply where the command's id could be read.
    for (id, code) in [
        ("c-tampered", "bad-signature"),
        ("c-stranger", "unknown-key"),
        ("c-expired", "expired"),
        ("c-bad-args", "bad-args"),
    ] {
        assert_eq!(replies(&r.sub.verified, id), [("refused", code)], "{id}");
    }
    // The genuine command ran exactly once; nothing EVIL was ever bound.
    assert_eq!(replies(&r.sub.verified, "c-ok").iter().filter(|(s, _)| *s == "done").count(), 1);
    assert!(replies(&r.sub.verified, "c-ok").contains(&("refused", "replayed")));
    r.dev.peer.send(b"SYS=131\n").await.unwrap();
    r.until("a reading", |b| b.iter().any(|x| x.obs.as_ref().is_some_and(|o| o[0].val == Some(131.0)))).await;
    for b in &r.sub.verified {
        assert!(!b.consult_id().unwrap_or("").starts_with("EVIL"), "a refused command had an effect: {b:?}");
    }
    let last = r.sub.verified.iter().rev().find(|b| b.obs.is_some()).unwrap();
    assert_eq!(last.consult_id(), Some("GOOD-1"));
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_after_a_gateway_restart_is_refused() {
    let mut r = rig().await;
    let gateway = r.start().await;
    let cmd = r.hub.command("c-once", "consult.start", json!({"consult": "ONCE-1"}));
    r.sender.command("consult.start", cmd.clone()).await;
    r.until("done", |b| replies(b, "c-once").contains(&("done", "ok"))).await;
    let (state, code, _) = r.ask("c-end", "consult.end", json!({})).await;
    assert_eq!((state.as_str(), code.as_str()), ("done", "ok"));
    gateway.stop().await;

    let gateway = r.start().await;
    r.sender.command("consult.start", cmd).await;
    r.until("the replay refused", |b| replies(b, "c-once").contains(&("refused", "replayed"))).await;
    assert!(refusals(&r.sub.verified).contains(&"replayed".to_string()));
    r.dev.peer.send(b"SYS=132\n").await.unwrap();
    r.until("a reading", |b| b.iter().any(|x| x.obs.as_ref().is_some_and(|o| o[0].val == Some(132.0)))).await;
    let last = r.sub.verified.iter().rev().find(|b| b.obs.is_some()).unwrap();
    assert_eq!(last.consult, None, "the replayed consult.start was not executed");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commands_of_the_table_answer_as_documented() {
    let mut r = rig().await;
    let gateway = r.start().await;
    // An on-demand ECG sends nothing until stream.start, and says so in its state.
    let samples: Vec<u8> = (0..250).flat_map(|i| format!("{}\n", 500 + i % 40).into_bytes()).collect();
    r.ecg.peer.send(&samples).await.unwrap();
    let waves = |b: &[Body]| b.iter().filter(|x| x.kind == BodyKind::Wave).count();
    let (state, code, data) = r.ask("c-status", "status", json!({})).await;
    assert_eq!((state.as_str(), code.as_str()), ("done", "ok"));
    assert_eq!(data["devices"]["ecg-1"]["streaming"], false, "{data}");
    assert!(data["devices"]["ecg-1"]["counters"]["frames"].as_u64().unwrap() > 0, "samples were read: {data}");
    assert_eq!(data["gateway"]["gw"], "gw-test");
    assert_eq!(data["uplink"]["connected"], true);
    assert_eq!(waves(&r.sub.verified), 0, "nothing streamed while stopped");

    let (state, _, data) = r.ask("c-start", "stream.start", json!({"dev": "ecg-1"})).await;
    assert_eq!((state.as_str(), data["streaming"].as_bool()), ("done", Some(true)));
    assert_eq!(replies(&r.sub.verified, "c-start")[0], ("accepted", "accepted"));
    r.ecg.peer.send(&samples).await.unwrap();
    r.until("wave chunks after stream.start", |b| {
        b.iter().filter(|x| x.kind == BodyKind::Wave).map(|x| x.wave.as_ref().unwrap().n).sum::<u32>() >= 250
    })
    .await;
    let first = r.sub.verified.iter().find(|b| b.kind == BodyKind::Wave).unwrap();
    assert_eq!(first.wave.as_ref().unwrap().i0, 0, "each start is a new stream");
    let reply = r.sub.verified.iter().find(|b| b.reply.as_ref().is_some_and(|x| x.cmd == "c-start")).unwrap();
    assert_eq!(reply.dev.as_deref(), Some("ecg-1"), "a reply names the device it was about");
    let (state, _, _) = r.ask("c-stop", "stream.stop", json!({"dev": "ecg-1"})).await;
    assert_eq!(state, "done");
    let after_stop = waves(&r.sub.verified);
    r.ecg.peer.send(&samples).await.unwrap();
    // Still stopped: a status round trip later, no new chunk.
    let (_, _, data) = r.ask("c-status-2", "status", json!({})).await;
    assert_eq!(data["devices"]["ecg-1"]["streaming"], false);
    assert_eq!(waves(&r.sub.verified), after_stop);

    // Devices that cannot: capture and fetch fail with their codes; a device that does not exist
    // is a refusal; stream.start on a device that always streams fails.
    assert_eq!(r.ask("c-cap", "capture", json!({"dev": "vitals-1"})).await.1, "not-supported");
    assert_eq!(r.ask("c-fetch", "records.fetch", json!({"dev": "vitals-1"})).await.1, "not-supported");
    assert_eq!(r.ask("c-nodev", "records.fetch", json!({"dev": "nope-1"})).await.0, "refused");
    assert_eq!(r.ask("c-always", "stream.start", json!({"dev": "vitals-1"})).await.1, "not-on-demand");
    // rebirth: the retained status and states are published again.
    let statuses = |b: &[(String, Vec<u8>)]| b.iter().filter(|(t, _)| t.ends_with("/status")).count();
    let before = statuses(&r.sub.seen);
    assert_eq!(r.ask("c-rebirth", "rebirth", json!({})).await.0, "done");
    r.sub.until("status again", |s| statuses(s) > before).await;
    gateway.stop().await;
    drop(r.broker);
}
