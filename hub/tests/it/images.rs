//! An image sent in parts is stored once joined, and its bytes are then kept twice: joined in
//! `images`, and in the parts' signed envelopes, which prove it. The parts' own copies are let go
//! (before, every image's bytes were stored three times). A part delivered again changes nothing.

use crate::support::*;
use spokegate::model::{Body, BodyFormat};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joined_image_is_kept_whole_and_proven_by_its_envelopes_without_a_third_copy() {
    let rig = CraftedRig::start("images").await;
    let parts = smear_parts(1, spokegate::clock::now_micros());
    assert!(parts.len() >= 2, "the smear is cut into several parts");
    for body in &parts {
        rig.send(body).await;
    }
    // The first part again (a resend after a lost acknowledgement), then a reading to know it was read.
    rig.send(&parts[0]).await;
    rig.send(&reading("site-1", "gw-a", 100, 120.0)).await;
    until("the image is joined and the reading after the resend stored", PATIENCE, || async {
        rig.db.count("SELECT count(*) FROM images").await == 1
            && rig.db.count("SELECT count(*) FROM observations").await == 1
    })
    .await;
    let c = rig.db.client().await;
    let image: Vec<u8> = c.query_one("SELECT bytes FROM images", &[]).await.unwrap().get(0);
    assert_eq!(image, SMEAR, "the image is the file, whole");
    let kept = rig.db.count("SELECT coalesce(sum(octet_length(data)), -1) FROM media_parts").await;
    assert_eq!(kept, 0, "the parts' copies are let go once joined");
    assert_eq!(rig.db.count("SELECT count(*) FROM media_parts").await, parts.len() as i64, "each part once");

    // The proof is whole: every part's envelope verifies with gw-a's key, and their data, joined
    // in order, is the image.
    let ring = rig.gateway_ring();
    let rows = c
        .query("SELECT m.envelope FROM media_parts p JOIN messages m ON m.id = p.message_id ORDER BY p.part", &[])
        .await
        .unwrap();
    let mut joined = Vec::new();
    for r in &rows {
        let (bytes, _) = spokegate::sign::open_from_gateway(r.get(0), &ring, "site-1", "gw-a").unwrap();
        joined.extend(Body::decode(&bytes, BodyFormat::Cbor).unwrap().media.expect("a media body").data);
    }
    assert_eq!(joined, SMEAR, "the signed parts join into the stored image");
}
