//! A gateway's signature proves who sent an image part, not that its claims are sane: a part that
//! declares a petabyte image is joined from what arrived, counted as mismatched and not stored,
//! and the hub carries on (before, the hub reserved the declared size and aborted).

use crate::support::*;
use spokegate::model::Media;
use spokegate::pipeline::{make_body, Payload, Source};
use spokegate::sign::{Binding, BoundKey, SigningKey};
use spokegate::sim::mosquitto::Mosquitto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_part_claiming_a_petabyte_image_is_a_mismatch_and_the_hub_carries_on() {
    let db = TestDb::create();
    let broker = Mosquitto::start();
    let hub = HubSetup::new(&db, &mqtt_input(broker.port));
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(&dir.path().join("gw.key")).unwrap();
    let bound =
        BoundKey { key: key.public().clone(), binding: Binding::Gateway { site: "site-1".into(), gw: "gw-a".into() } };
    std::fs::write(dir.path().join("gw.jwk"), bound.to_jwk()).unwrap();
    hub.trust(&dir.path().join("gw.jwk"));
    let instance = hub.serve("claims");
    instance.ready().await;
    let publisher = spokegate_publisher(broker.port).await;

    let data = b"\xff\xd8\xff\xdb not really a petabyte \xff\xd9".to_vec();
    let media = Media {
        id: "m-huge".into(),
        mime: "image/jpeg".into(),
        size: 1 << 50,
        sha256: spokegate::media::sha256_hex(&data),
        part: 1,
        parts: 1,
        data,
        meta: None,
    };
    let from = Source { dev: "scope-1".into(), profile: "usb-microscope".into() };
    let claim =
        make_body("site-1", "gw-a", Some(&from), Payload::Media(media), 1, spokegate::clock::now_micros(), None);
    publisher
        .publish("spokegate/v1/site-1/gw-a/dev/scope-1/media", rumqttc::QoS::AtLeastOnce, false, sealed(&key, &claim))
        .await
        .unwrap();
    // Then a reading: stored only if the hub lived through the claim.
    let good = sealed(&key, &reading("site-1", "gw-a", 2, 118.0));
    publisher
        .publish("spokegate/v1/site-1/gw-a/dev/vitals-1/obs", rumqttc::QoS::AtLeastOnce, false, good)
        .await
        .unwrap();
    until("the reading after the claim is stored and the claim counted", PATIENCE, || async {
        db.count("SELECT count(*) FROM observations").await == 1
            && instance.metric("spokegate_hub_images_mismatched_total").await == 1.0
    })
    .await;
    assert_eq!(db.count("SELECT count(*) FROM media_parts").await, 1, "the part is kept, as signed");
    assert_eq!(db.count("SELECT count(*) FROM images").await, 0, "no image is made of it");
}
