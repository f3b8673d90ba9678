//! What does not verify is kept apart with its reason and never reaches the readings tables: a
//! body signed by another gateway's key, a tampered body, a key nobody trusts.

use crate::support::*;
use spokegate::model::BodyFormat;
use spokegate::sign::SigningKey;
use spokegate::sim::mosquitto::Mosquitto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_gateways_key_a_tampered_body_and_an_unknown_kid_are_quarantined_with_the_reason() {
    let db = TestDb::create();
    let broker = Mosquitto::start();
    let hub = HubSetup::new(&db, &mqtt_input(broker.port));
    let dir = tempfile::tempdir().unwrap();
    let key_a = hub.trusted_gateway(dir.path(), "site-1", "gw-a");
    let key_b = hub.trusted_gateway(dir.path(), "site-1", "gw-b");
    let stranger = SigningKey::generate(&dir.path().join("x.key")).unwrap();
    let instance = hub.serve("q");
    instance.ready().await;
    let topic = "spokegate/v1/site-1/gw-a/dev/vitals-1/obs";
    let publisher = spokegate_publisher(broker.port).await;

    // gw-b's key on gw-a's body and topic.
    let wrong_gateway = sealed(&key_b, &reading("site-1", "gw-a", 1, 120.0));
    // gw-a's own signature, one byte of the body changed afterwards.
    let mut tampered = sealed(&key_a, &reading("site-1", "gw-a", 2, 121.0));
    let at =
        tampered.windows(8).position(|w| w == 121.0f64.to_be_bytes()).map(|i| i + 2).unwrap_or(tampered.len() - 70);
    tampered[at] ^= 0x01;
    // A key no one added.
    let unknown = sealed(&stranger, &reading("site-1", "gw-a", 3, 122.0));
    // And one good message, so the test knows the instance read them all.
    let good = sealed(&key_a, &reading("site-1", "gw-a", 4, 123.0));
    for p in [wrong_gateway, tampered, unknown, good] {
        publisher.publish(topic, rumqttc::QoS::AtLeastOnce, false, p).await.unwrap();
    }
    until("the good reading is stored and three are quarantined", PATIENCE, || async {
        db.count("SELECT count(*) FROM observations").await == 1
            && db.count("SELECT count(*) FROM quarantine").await == 3
    })
    .await;
    let c = db.client().await;
    let rows = c.query("SELECT reason, kid, topic, length(payload) FROM quarantine ORDER BY id", &[]).await.unwrap();
    let reasons: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(reasons, ["key-not-bound", "bad-signature", "unknown-kid"]);
    let kids: Vec<Option<String>> = rows.iter().map(|r| r.get(1)).collect();
    assert_eq!(kids[0].as_deref(), Some(key_b.public().kid_hex().as_str()));
    assert_eq!(kids[2].as_deref(), Some(stranger.public().kid_hex().as_str()));
    assert!(
        rows.iter().all(|r| r.get::<_, String>(2) == topic && r.get::<_, i32>(3) > 0),
        "kept whole, with its topic"
    );
    let stored: Vec<f64> =
        c.query("SELECT value FROM observations", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(stored, [123.0], "only the verified reading is in the readings tables");
    assert_eq!(db.count("SELECT count(*) FROM messages").await, 1);
    assert_eq!(instance.metric("spokegate_hub_messages_quarantined_total{reason=\"bad-signature\"}").await, 1.0);

    // The stored message re-verifies from its kept envelope with the key of its kid.
    let row = c.query_one("SELECT envelope, kid FROM messages", &[]).await.unwrap();
    let envelope: Vec<u8> = row.get(0);
    let ring = spokegate::sign::KeyRing::gateway(key_a.public(), "site-1", "gw-a");
    let (bytes, _) = spokegate::sign::open_from_gateway(&envelope, &ring, "site-1", "gw-a").unwrap();
    assert_eq!(spokegate::model::Body::decode(&bytes, BodyFormat::Cbor).unwrap().seq, 4);
    assert_eq!(row.get::<_, String>(1), key_a.public().kid_hex());

    // gw-a's key is revoked: within the instances' reload its messages are quarantined as such,
    // it is listed as revoked, and it cannot be trusted again.
    let cfg = hub.config("cli", free_port());
    let cfg = cfg.to_str().unwrap();
    let kid = key_a.public().kid_hex();
    hub_cli(&["keys", "--config", cfg, "revoke", &kid]).unwrap();
    let listed = hub_cli(&["keys", "--config", cfg, "list"]).unwrap();
    assert!(listed.contains(&format!("{kid}  gateway site-1/gw-a  (revoked)")), "{listed}");
    let again = hub_cli(&["keys", "--config", cfg, "add", dir.path().join("gw-a.jwk").to_str().unwrap()]).unwrap_err();
    assert_eq!(again.0, 65, "{}", again.1);
    assert!(again.1.contains("revoked"), "{}", again.1);
    let mut seq = 5;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let p = sealed(&key_a, &reading("site-1", "gw-a", seq, 130.0));
        publisher.publish(topic, rumqttc::QoS::AtLeastOnce, false, p).await.unwrap();
        until("the message is stored or quarantined", PATIENCE, || async {
            db.count("SELECT count(*) FROM messages").await + db.count("SELECT count(*) FROM quarantine").await
                == seq as i64
        })
        .await;
        if db.count("SELECT count(*) FROM quarantine WHERE reason = 'key-revoked'").await == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the revocation never took effect");
        seq += 1;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let stored_then = db.count("SELECT count(*) FROM messages").await;
    let p = sealed(&key_a, &reading("site-1", "gw-a", seq + 1, 131.0));
    publisher.publish(topic, rumqttc::QoS::AtLeastOnce, false, p).await.unwrap();
    until("the next one is refused too", PATIENCE, || async {
        db.count("SELECT count(*) FROM quarantine WHERE reason = 'key-revoked'").await == 2
    })
    .await;
    assert_eq!(db.count("SELECT count(*) FROM messages").await, stored_then);
}
