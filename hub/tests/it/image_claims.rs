//! A gateway's signature proves who sent an image part, not that its claims are possible. A part
//! that claims more than the hub takes (a petabyte) is quarantined as `media-invalid`; a part whose
//! claimed size the parts do not make is joined from what arrived, counted as mismatched and not
//! stored. Either way the hub carries on (before, it reserved the claimed size and, for the
//! petabyte, aborted).

use crate::support::*;
use spokegate::model::Media;
use spokegate::pipeline::{make_body, Payload, Source};
use spokegate::sim::mosquitto::Mosquitto;

fn part(id: &str, size: u64, seq: u64) -> spokegate::model::Body {
    let data = b"\xff\xd8\xff\xdb not the size it claims \xff\xd9".to_vec();
    let media = Media {
        id: id.into(),
        mime: "image/jpeg".into(),
        size,
        sha256: spokegate::media::sha256_hex(&data),
        part: 1,
        parts: 1,
        data,
        meta: None,
    };
    let from = Source { dev: "scope-1".into(), profile: "usb-microscope".into() };
    make_body("site-1", "gw-a", Some(&from), Payload::Media(media), seq, spokegate::clock::now_micros(), None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_parts_claiming_impossible_images_are_quarantined_or_mismatched_and_the_hub_carries_on() {
    let db = TestDb::create();
    let broker = Mosquitto::start();
    let hub = HubSetup::new(&db, &mqtt_input(broker.port));
    let dir = tempfile::tempdir().unwrap();
    let key = hub.trusted_gateway(dir.path(), "site-1", "gw-a");
    let instance = hub.serve("claims");
    instance.ready().await;
    let publisher = spokegate_publisher(broker.port).await;

    let topic = "spokegate/v1/site-1/gw-a/dev/scope-1/media";
    for body in [part("m-petabyte", 1 << 50, 1), part("m-gigabyte", 1 << 30, 2)] {
        publisher.publish(topic, rumqttc::QoS::AtLeastOnce, false, sealed(&key, &body)).await.unwrap();
    }
    // Then a reading: stored only if the hub lived through the claims.
    let good = sealed(&key, &reading("site-1", "gw-a", 3, 118.0));
    publisher
        .publish("spokegate/v1/site-1/gw-a/dev/vitals-1/obs", rumqttc::QoS::AtLeastOnce, false, good)
        .await
        .unwrap();
    until("the reading after the claims is stored and the claims counted", PATIENCE, || async {
        db.count("SELECT count(*) FROM observations").await == 1
            && instance.metric("spokegate_hub_images_mismatched_total").await == 1.0
            && instance.metric("spokegate_hub_messages_quarantined_total{reason=\"media-invalid\"}").await == 1.0
    })
    .await;
    let c = db.client().await;
    let q = c.query_one("SELECT reason, detail FROM quarantine", &[]).await.unwrap();
    assert_eq!(q.get::<_, String>(0), "media-invalid");
    assert!(q.get::<_, String>(1).contains(&(1u64 << 50).to_string()), "{}", q.get::<_, String>(1));
    let kept: Vec<String> =
        c.query("SELECT media_id FROM media_parts", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(kept, ["m-gigabyte"], "the possible claim is kept, as signed");
    assert_eq!(db.count("SELECT count(*) FROM images").await, 0, "no image is made of either");
}
