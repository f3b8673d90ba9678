//! Retention: with `[retention]` days set, waveform chunks, images and quarantined messages
//! stored before the horizon are deleted (the chunks and image parts with their signed messages,
//! an image with its parts), and nothing else: not a younger row of the same kind, and not a
//! reading, however old. Rows are aged by moving their `received_at` back, as the days would.

use crate::support::*;
use spokegate::model::Body;
use spokegate::pipeline::{make_body, Payload, Source};
use spokegate::sign::SigningKey;
use spokegate::sim::mosquitto::Mosquitto;

/// A hub with `[retention]` `policy` that trusts gw-a, and a publisher that signs as gw-a or as a
/// stranger whose key nobody trusts.
struct Rig {
    db: TestDb,
    hub: HubSetup,
    instance: HubInstance,
    publisher: rumqttc::AsyncClient,
    key: SigningKey,
    stranger: SigningKey,
    _broker: Mosquitto,
    _keys: tempfile::TempDir,
}

impl Rig {
    async fn start(instance: &str, policy: &str) -> Rig {
        let db = TestDb::create();
        let broker = Mosquitto::start();
        let mut hub = HubSetup::new(&db, &mqtt_input(broker.port));
        hub.sections = format!("[retention]\n{policy}");
        let keys = tempfile::tempdir().unwrap();
        let key = hub.trusted_gateway(keys.path(), "site-1", "gw-a");
        let stranger = SigningKey::generate(&keys.path().join("x.key")).unwrap();
        let instance = hub.serve(instance);
        instance.ready().await;
        let publisher = spokegate_publisher(broker.port).await;
        Rig { db, hub, instance, publisher, key, stranger, _broker: broker, _keys: keys }
    }

    /// `body` signed with `key`, on its topic.
    async fn send(&self, body: &Body, key: &SigningKey) {
        let topic = spokegate::mqtt::topics::for_body(body);
        self.publisher.publish(topic, rumqttc::QoS::AtLeastOnce, false, sealed(key, body)).await.unwrap();
    }

    /// gw-a's ECG chunks numbered `seqs`, four samples each from 0.
    async fn send_ecg(&self, seqs: std::ops::RangeInclusive<u64>) {
        let ecg = Source { dev: "ecg-1".into(), profile: "ecg-text-single".into() };
        for seq in seqs {
            let w = ecg_chunk((seq - 1) * 4, 360.0, 0.005);
            let t = w.t0;
            self.send(&make_body("site-1", "gw-a", Some(&ecg), Payload::Wave(w), seq, t, None), &self.key).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waveforms_images_and_quarantine_past_their_days_are_deleted_and_readings_are_kept() {
    let rig = Rig::start("r", "waveform_days = 7\nimage_days = 30\nquarantine_days = 2\nevery_secs = 1\n").await;
    let (db, instance) = (&rig.db, &rig.instance);

    // seq 1-6: ECG chunks; 7-9: readings; two images (seq 10 on, then after them); two messages
    // signed by a key nobody trusts.
    rig.send_ecg(1..=6).await;
    for seq in 7..=9 {
        rig.send(&reading("site-1", "gw-a", seq, 110.0 + seq as f64), &rig.key).await;
    }
    let now = spokegate::clock::now_micros();
    let first = smear_parts(10, now);
    let second_seq = 10 + first.len() as u64;
    let second = smear_parts(second_seq, now + 1);
    let parts = first.len() as i64;
    assert!(parts >= 2, "the smear is cut into several parts");
    for body in first.iter().chain(&second) {
        rig.send(body, &rig.key).await;
    }
    for seq in [100, 101] {
        rig.send(&reading("site-1", "gw-a", seq, 99.0), &rig.stranger).await;
    }
    until("everything is stored and the strangers quarantined", PATIENCE, || async {
        db.count("SELECT count(*) FROM wave_chunks").await == 6
            && db.count("SELECT count(*) FROM observations").await == 3
            && db.count("SELECT count(*) FROM images").await == 2
            && db.count("SELECT count(*) FROM quarantine").await == 2
    })
    .await;
    let rounds = instance.metric("spokegate_hub_retention_rounds_total").await;
    assert!(rounds >= 1.0, "a round ran at start: {rounds}");

    // Time passes: the first three chunks are eight days old (past 7), the others six (within);
    // the first image 31 days (past 30), the second 29; a reading ten years; the first
    // quarantined message three days (past 2), the other one day.
    let c = db.client().await;
    let age = |sql: &'static str| {
        let c = &c;
        async move { c.execute(sql, &[]).await.unwrap() }
    };
    age("UPDATE messages SET received_at = now() - interval '8 days' WHERE seq <= 3").await;
    age("UPDATE messages SET received_at = now() - interval '6 days' WHERE seq BETWEEN 4 AND 6").await;
    age("UPDATE messages SET received_at = now() - interval '10 years' WHERE seq = 7").await;
    let first_image =
        format!("UPDATE messages SET received_at = now() - interval '31 days' WHERE seq >= 10 AND seq < {second_seq}");
    c.execute(&first_image, &[]).await.unwrap();
    age("UPDATE messages SET received_at = now() - interval '29 days' WHERE kind = 'media' AND received_at > now() - interval '1 day'").await;
    age("UPDATE quarantine SET received_at = now() - interval '3 days' WHERE id = (SELECT min(id) FROM quarantine)")
        .await;
    age("UPDATE quarantine SET received_at = now() - interval '1 day' WHERE id = (SELECT max(id) FROM quarantine)")
        .await;

    until("the rows past their days are deleted", PATIENCE, || async {
        db.count("SELECT count(*) FROM wave_chunks").await == 3
            && db.count("SELECT count(*) FROM images").await == 1
            && db.count("SELECT count(*) FROM quarantine").await == 1
    })
    .await;
    // A few more rounds: what is within its days stays.
    let after = instance.metric("spokegate_hub_retention_rounds_total").await;
    until("two more rounds ran", PATIENCE, || async {
        instance.metric("spokegate_hub_retention_rounds_total").await >= after + 2.0
    })
    .await;

    let i0s: Vec<i64> =
        c.query("SELECT i0 FROM wave_chunks ORDER BY i0", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(i0s, [12, 16, 20], "the chunks of seq 4-6 are kept");
    let seqs: Vec<i64> =
        c.query("SELECT seq FROM messages ORDER BY seq", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    let mut want: Vec<i64> = (4..=9).collect();
    want.extend(second_seq as i64..second_seq as i64 + parts);
    assert_eq!(seqs, want, "the deleted chunks' and parts' signed messages go with them; readings stay");
    assert_eq!(db.count("SELECT count(*) FROM observations").await, 3, "a ten-year-old reading is kept");
    assert_eq!(db.count("SELECT count(*) FROM media_parts").await, parts, "the second image's parts are kept");
    let kept: Vec<u8> = c.query_one("SELECT bytes FROM images", &[]).await.unwrap().get(0);
    assert_eq!(kept, SMEAR, "the second image is kept whole");
    let left: String = c.query_one("SELECT reason FROM quarantine", &[]).await.unwrap().get(0);
    assert_eq!(left, "unknown-kid");
    assert_eq!(db.count("SELECT count(*) FROM quarantine WHERE received_at > now() - interval '2 days'").await, 1);
    for (what, n) in [("waveform", 3.0), ("image", parts as f64), ("quarantine", 1.0)] {
        let name = format!("spokegate_hub_retention_deleted_total{{what=\"{what}\"}}");
        assert_eq!(instance.metric(&name).await, n, "{name}");
    }
    assert!(instance.log().contains("retention: deleted what is past its time"), "{}", instance.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_command_says_what_a_round_would_delete_and_deletes_nothing() {
    // A look a week apart: the instance's round at start finds nothing, and none follows.
    let rig = Rig::start("p", "waveform_days = 7\nquarantine_days = 2\nevery_secs = 604800\n").await;
    let (db, instance, hub) = (&rig.db, &rig.instance, &rig.hub);
    until("the round at start ran", PATIENCE, || async {
        instance.metric("spokegate_hub_retention_rounds_total").await >= 1.0
    })
    .await;
    rig.send_ecg(1..=6).await;
    for _ in 0..2 {
        rig.send(&reading("site-1", "gw-a", 100, 99.0), &rig.stranger).await;
    }
    until("the chunks stored and the strangers quarantined", PATIENCE, || async {
        db.count("SELECT count(*) FROM wave_chunks").await == 6
            && db.count("SELECT count(*) FROM quarantine").await == 2
    })
    .await;
    let c = db.client().await;
    c.batch_execute(
        "UPDATE messages SET received_at = now() - interval '8 days' WHERE seq <= 4;
         UPDATE quarantine SET received_at = now() - interval '3 days' WHERE id = (SELECT min(id) FROM quarantine);",
    )
    .await
    .unwrap();
    // More old chunks than one batch reads (5,000), stored before the gateway's: copies of its
    // first chunk under ids below any the database gave, so that the command reads three batches.
    c.batch_execute(
        "INSERT INTO messages (id, site, gw, seq, kind, dev, prof, t_us, topic, kid, envelope, body, received_at)
         SELECT -g, site, gw, 1000000 + g, kind, dev, prof, t_us, topic, kid, envelope, body, received_at
         FROM messages, generate_series(1, 11000) g WHERE seq = 1;
         INSERT INTO wave_chunks (message_id, site, gw, dev, stream, consult, rate, i0, n, t0_us, channels, data)
         SELECT -g, site, gw, dev, stream, consult, rate, i0, n, t0_us, channels, data
         FROM wave_chunks, generate_series(1, 11000) g WHERE i0 = 0;",
    )
    .await
    .unwrap();
    let want = db.count("SELECT count(*) FROM wave_chunks w JOIN messages m ON m.id = w.message_id WHERE m.received_at < now() - interval '7 days'").await;
    assert_eq!(want, 11_004);

    let cfg = hub.config("cli", free_port());
    let out = hub_cli(&["retention", "--config", cfg.to_str().unwrap()]).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [&format!("waveform: {want} past 7 days") as &str, "image: kept for ever", "quarantine: 1 past 2 days"]
    );
    assert_eq!(db.count("SELECT count(*) FROM wave_chunks").await, 11_006, "nothing deleted");
    assert_eq!(db.count("SELECT count(*) FROM quarantine").await, 2, "nothing deleted");
}
