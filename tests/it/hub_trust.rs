//! Hub-side trust with the real `spokegate watch`: every gateway key is bound to one (site, gw); a
//! key bound to nothing is refused when the keyring is read; a body signed by a gateway key on
//! another gateway's topic, or by a hub key, is rejected; unsigned status is shown as unsigned.

use crate::harness::*;
use spokegate::model::{BodyFormat, Code, Observation, Unit};
use spokegate::pipeline::{make_body, Payload, Source};
use spokegate::sign::{seal, Binding, BoundKey};
use tokio::io::AsyncBufReadExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_bound_to_nothing_is_refused_when_the_keyring_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubKey::new("hub-x");
    // A bare JWK (no site/gw, no hub): bound to nothing.
    let bare = dir.path().join("bare.jwk");
    std::fs::write(&bare, hub.key.public().to_jwk()).unwrap();
    let out = watch_cmd(1, &[&bare]).output().await.unwrap();
    assert_eq!(out.status.code(), Some(65));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bound to nothing"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_key_on_another_gateways_topic_or_a_hub_key_is_rejected_and_status_is_unsigned() {
    let broker = Mosquitto::start();
    let a = GatewayDir::new();
    let b = tempfile::tempdir().unwrap();
    let b_key = spokegate::sign::SigningKey::generate(&b.path().join("b.key")).unwrap();
    let b_jwk = b.path().join("b.jwk");
    let bound_b = BoundKey {
        key: b_key.public().clone(),
        binding: Binding::Gateway { site: "test-site".into(), gw: "gw-other".into() },
    };
    std::fs::write(&b_jwk, bound_b.to_jwk()).unwrap();
    let hub = HubKey::new("hub-x");
    let mut watch = watch_cmd(broker.port, &[&a.jwk_file(), &b_jwk, &hub.jwk]).spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    let publisher = Publisher::connect(broker.port, "forger").await;
    let status_line = until_watch_subscribed(&publisher, &mut lines, "spokegate/v1/test-site/gw-other/status").await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let v: serde_json::Value = serde_json::from_str(&status_line).unwrap();
    assert_eq!(v["verdict"], "unsigned", "a status proves nothing: {status_line}");

    let obs = || {
        Payload::Obs(vec![Observation::measured(
            Code { mdc: 150021, loinc: None, name: None },
            120.0,
            Unit { ucum: "mm[Hg]".into(), mdc: None },
        )])
    };
    let from = Source { dev: "monitor-1".into(), profile: "hl7-pcd01".into() };
    let forge = |key: &spokegate::sign::SigningKey, gw: &str, seq| {
        let body = make_body("test-site", gw, Some(&from), obs(), seq, 1, None);
        seal(key, &body.encode(BodyFormat::Cbor).unwrap(), BodyFormat::Cbor)
    };
    let topic_b = "spokegate/v1/test-site/gw-other/dev/monitor-1/obs";
    // Gateway A's key speaking for gateway B; a hub's key speaking for B; then B's own message.
    publisher.publish(topic_b, forge(&a.key(), "gw-other", 1)).await;
    publisher.publish(topic_b, forge(&hub.key, "gw-other", 2)).await;
    publisher.publish(topic_b, forge(&b_key, "gw-other", 3)).await;
    let mut verdicts = Vec::new();
    while verdicts.len() < 3 {
        let l = tokio::time::timeout_at(deadline, lines.next_line()).await.expect("watch answers").unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        if v["topic"] == topic_b {
            verdicts.push((v["verdict"].as_str().unwrap().to_string(), v["reason"].as_str().unwrap_or("").to_string()));
        }
    }
    assert_eq!(verdicts[0].0, "rejected");
    assert!(
        verdicts[0].1.contains("bound to gateway test-site/gw-test, not to gateway test-site/gw-other"),
        "{:?}",
        verdicts[0]
    );
    assert_eq!(verdicts[1].0, "rejected");
    assert!(verdicts[1].1.contains("bound to hub hub-x"), "{:?}", verdicts[1]);
    assert_eq!(verdicts[2].0, "verified");
    unsafe { libc::kill(watch.id().unwrap() as i32, libc::SIGTERM) };
    let _ = watch.wait().await;
}

/// `watch --out FILE` hands every line to the file as its message arrives (a reader of the file
/// does not wait for kilobytes of later messages).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_out_file_gets_each_message_as_it_arrives() {
    let broker = Mosquitto::start();
    let a = GatewayDir::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hub.jsonl");
    let mut cmd = watch_cmd(broker.port, &[&a.jwk_file()]);
    cmd.arg("--out").arg(&file);
    let _watch = cmd.spawn().unwrap();
    let publisher = Publisher::connect(broker.port, "gw").await;
    let lines = || std::fs::read_to_string(&file).unwrap_or_default();
    let status = br#"{"state":"online","since":"2026-11-29T00:00:00Z","version":"x","kid":"00"}"#.to_vec();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while lines().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no line in the --out file");
        publisher.publish("spokegate/v1/test-site/gw-test/status", status.clone()).await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let from = Source { dev: "monitor-1".into(), profile: "hl7-pcd01".into() };
    let obs = Payload::Obs(vec![Observation::measured(
        Code { mdc: 150021, loinc: None, name: None },
        120.0,
        Unit { ucum: "mm[Hg]".into(), mdc: None },
    )]);
    let body = make_body("test-site", "gw-test", Some(&from), obs, 1, 1, None);
    let signed = seal(&a.key(), &body.encode(BodyFormat::Cbor).unwrap(), BodyFormat::Cbor);
    publisher.publish("spokegate/v1/test-site/gw-test/dev/monitor-1/obs", signed).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let text = lines();
        if let Some(l) = text.lines().find(|l| l.contains("/dev/monitor-1/obs")) {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["verdict"], "verified", "{l}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the reading never reached the --out file: {text}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A flood of retained status topics for gateways nobody knows (large payloads), and of signed
/// bodies from unknown keys with invented gateway ids: every line is unsigned or rejected, none
/// verified, and watch's memory stays flat (the retained cache keeps only known gateways' topics).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_invented_gateways_and_topics_is_shown_unverified_and_costs_no_memory() {
    let broker = Mosquitto::with_settings("persistence false\nmax_queued_messages 0\n");
    let a = GatewayDir::new();
    let mut watch = watch_cmd(broker.port, &[&a.jwk_file()]).spawn().unwrap();
    let pid = watch.id().unwrap();
    let mut lines = tokio::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    let publisher = Publisher::connect(broker.port, "flooder").await;
    until_watch_subscribed(&publisher, &mut lines, "spokegate/v1/test-site/gw-test/status").await;
    let rss = |pid: u32| -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let l = s.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        l.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let before = rss(pid);
    const N: usize = 3000;
    // Every line is read as it comes (a full pipe would stall watch, and the broker drop).
    let reader = tokio::spawn(async move {
        let mut verdicts = Vec::new();
        while verdicts.len() < 2 * N {
            let l = tokio::time::timeout(PATIENCE, lines.next_line()).await.expect("flood lines").unwrap().unwrap();
            let v: serde_json::Value = serde_json::from_str(&l).unwrap();
            verdicts.push(v["verdict"].as_str().unwrap_or("").to_string());
        }
        verdicts
    });
    let stranger = spokegate::sign::SigningKey::generate(&a.path().join("stranger.key")).unwrap();
    let from = Source { dev: "monitor-1".into(), profile: "hl7-pcd01".into() };
    let big =
        format!(r#"{{"state":"online","since":"2026-11-29T00:00:00Z","version":"{}","kid":"00"}}"#, "x".repeat(30_000));
    for i in 0..N {
        publisher.publish(&format!("spokegate/v1/site-{i}/gw-{i}/status"), big.clone().into_bytes()).await;
        let obs = Payload::Obs(vec![Observation::measured(
            Code { mdc: 150021, loinc: None, name: None },
            120.0,
            Unit { ucum: "mm[Hg]".into(), mdc: None },
        )]);
        let gw = format!("gw-x{i}");
        let body = make_body("test-site", &gw, Some(&from), obs, 1, 1, None);
        let signed = seal(&stranger, &body.encode(BodyFormat::Cbor).unwrap(), BodyFormat::Cbor);
        publisher.publish(&format!("spokegate/v1/test-site/{gw}/dev/monitor-1/obs"), signed).await;
    }
    let verdicts = reader.await.unwrap();
    assert!(verdicts.iter().all(|v| v != "verified"), "nothing from the flood is verified");
    assert_eq!(verdicts.iter().filter(|v| *v == "unsigned").count(), N);
    let after = rss(pid);
    // 3,000 topics of 30 kB would be 90 MB if they were cached.
    assert!(after < before + 40_000, "watch grew from {before} to {after} KiB");
}

/// `spokegate key rotate`: the new key signs after a restart, the status lists both kids, the old
/// key is kept aside, and a hub holding both JWKs (bound to the same gateway) verifies what either
/// signed, as messages signed before the rotation may still be queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_and_its_predecessor_both_verify_and_the_status_lists_both() {
    let broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let config = gw.config(broker.port, &[], "");
    let c = config.to_str().unwrap();
    let bin = env!("CARGO_BIN_EXE_spokegate");
    let old_jwk = gw.path().join("old.jwk");
    let out = std::process::Command::new(bin).args(["key", "show", "--config", c]).output().unwrap();
    std::fs::write(&old_jwk, &out.stdout).unwrap();
    let old_kid = gw.key().public().kid_hex();
    let out = std::process::Command::new(bin).args(["key", "rotate", "--config", c]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let new_jwk = gw.path().join("new.jwk");
    std::fs::write(&new_jwk, &out.stdout).unwrap();
    let new_kid = gw.key().public().kid_hex();
    assert_ne!(old_kid, new_kid);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["kid"].as_str(), v["site"].as_str(), v["gw"].as_str()),
        (Some(new_kid.as_str()), Some("test-site"), Some("gw-test"))
    );
    let old_key = spokegate::sign::SigningKey::load(&gw.path().join(format!("gateway.key.retired-{old_kid}"))).unwrap();

    // The daemon signs with the new key and says both are its own.
    let mut sub = Subscriber::connect(broker.port, "rotation-hub").await;
    let _daemon = run_binary(&config);
    sub.until("a status naming both kids", |s| {
        s.iter().any(|(t, p)| {
            let v: serde_json::Value = serde_json::from_slice(p).unwrap_or_default();
            t.ends_with("gw-test/status")
                && v["kid"] == new_kid.as_str()
                && v["kids"] == serde_json::json!([new_kid.clone(), old_kid.clone()])
        })
    })
    .await;

    // A hub with both JWKs verifies a body signed by either.
    let mut watch = watch_cmd(broker.port, &[&old_jwk, &new_jwk]).spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    let publisher = Publisher::connect(broker.port, "rotation-gw").await;
    let from = Source { dev: "monitor-1".into(), profile: "hl7-pcd01".into() };
    let signed = |key: &spokegate::sign::SigningKey, seq| {
        let obs = Payload::Obs(vec![Observation::measured(
            Code { mdc: 150021, loinc: None, name: None },
            120.0,
            Unit { ucum: "mm[Hg]".into(), mdc: None },
        )]);
        let body = make_body("test-site", "gw-test", Some(&from), obs, seq, 1, None);
        seal(key, &body.encode(BodyFormat::Cbor).unwrap(), BodyFormat::Cbor)
    };
    let topic = "spokegate/v1/test-site/gw-test/dev/monitor-1/obs";
    let mut verified = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut seq = 1_000_000;
    while verified.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "not both verified: {verified:?}");
        seq += 2;
        publisher.publish(topic, signed(&old_key, seq)).await;
        publisher.publish(topic, signed(&gw.key(), seq + 1)).await;
        while let Ok(Ok(Some(l))) = tokio::time::timeout(std::time::Duration::from_millis(300), lines.next_line()).await
        {
            let v: serde_json::Value = serde_json::from_str(&l).unwrap();
            if v["verdict"] == "verified" && v["topic"] == topic {
                // Even seqs were signed by the old key, odd ones by the new.
                let seq = v["body"]["seq"].as_u64().unwrap();
                verified.insert(if seq % 2 == 0 { "old" } else { "new" });
            }
        }
    }
}
