//! A gateway's signature proves who sent an image part or a waveform chunk, not that its claims are
//! possible. A part that claims more than the hub takes (a petabyte) is quarantined as
//! `media-invalid`; a part whose claimed size the parts do not make is joined from what arrived,
//! counted as mismatched and not stored. Either way the hub carries on (before, it reserved the
//! claimed size and, for the petabyte, aborted). A chunk with a rate of 0 Hz or a gain of 0 is
//! quarantined as `wave-invalid` (before, it was stored and served as FHIR with a period of
//! infinity, written as null). A consult whose waves claim the bottom of the time range still
//! opens (before, its history answered 503).

use crate::support::*;
use spokegate::model::Media;
use spokegate::pipeline::{make_body, Payload, Source};

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
    let rig = CraftedRig::start("claims").await;
    let (db, instance, key) = (&rig.db, &rig.instance, &rig.key);
    let topic = "spokegate/v1/site-1/gw-a/dev/scope-1/media";
    for body in [part("m-petabyte", 1 << 50, 1), part("m-gigabyte", 1 << 30, 2)] {
        rig.publish(topic, sealed(key, &body)).await;
    }
    // Then a reading: stored only if the hub lived through the claims.
    rig.publish("spokegate/v1/site-1/gw-a/dev/vitals-1/obs", sealed(key, &reading("site-1", "gw-a", 3, 118.0))).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_waveform_chunks_with_an_impossible_rate_or_gain_are_quarantined_and_the_stream_goes_on() {
    let rig = CraftedRig::start("wave-claims").await;
    let (db, instance, key) = (&rig.db, &rig.instance, &rig.key);
    let from = Source { dev: "ecg-1".into(), profile: "ecg-text-single".into() };
    let topic = "spokegate/v1/site-1/gw-a/dev/ecg-1/wave/ecg";
    let chunks = [ecg_chunk(0, 0.0, 0.005), ecg_chunk(4, 360.0, 0.0), ecg_chunk(8, 360.0, 0.005)];
    for (seq, w) in (1..).zip(chunks) {
        let t = w.t0;
        let body = make_body("site-1", "gw-a", Some(&from), Payload::Wave(w), seq, t, None);
        rig.publish(topic, sealed(key, &body)).await;
    }
    until("the possible chunk is stored and the two others quarantined", PATIENCE, || async {
        db.count("SELECT count(*) FROM wave_chunks").await == 1
            && instance.metric("spokegate_hub_messages_quarantined_total{reason=\"wave-invalid\"}").await == 2.0
    })
    .await;
    let c = db.client().await;
    let kept = c.query_one("SELECT i0, rate FROM wave_chunks", &[]).await.unwrap();
    assert_eq!((kept.get::<_, i64>(0), kept.get::<_, f64>(1)), (8, 360.0));
    let details: Vec<String> = c
        .query("SELECT detail FROM quarantine WHERE reason = 'wave-invalid'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(details.len(), 2);
    assert!(details.iter().any(|d| d.contains("rate 0 Hz")), "{details:?}");
    assert!(details.iter().any(|d| d.contains("channel II: gain 0")), "{details:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consult_whose_waves_are_signed_at_the_bottom_of_the_time_range_still_opens() {
    const PASSWORD: &str = "correct horse battery";
    let rig = CraftedRig::start("edge-time").await;
    rig.hub.user("dr-rao", PASSWORD, &[("site-1", Some("gw-a"), Some("C-EDGE"))]);
    // The consult's one chunk, from a gateway whose clock says the bottom of the range, and a
    // reading (before, the history's "last ten minutes of waves" went below the range: 503).
    let from = Source { dev: "ecg-1".into(), profile: "ecg-text-single".into() };
    let mut w = ecg_chunk(0, 360.0, 0.005);
    w.t0 = i64::MIN + 1;
    let mut wave = make_body("site-1", "gw-a", Some(&from), Payload::Wave(w), 1, i64::MIN + 1, None);
    let mut obs = reading("site-1", "gw-a", 2, 118.0);
    for body in [&mut wave, &mut obs] {
        body.consult = Some(Some("C-EDGE".into()));
    }
    rig.publish("spokegate/v1/site-1/gw-a/dev/ecg-1/wave/ecg", sealed(&rig.key, &wave)).await;
    rig.publish("spokegate/v1/site-1/gw-a/dev/vitals-1/obs", sealed(&rig.key, &obs)).await;
    until("the chunk and the reading are stored", PATIENCE, || async {
        rig.db.count("SELECT count(*) FROM messages WHERE consult = 'C-EDGE'").await == 2
    })
    .await;
    let port = rig.instance.http;
    let cookie = format!("Cookie: {}\r\n", sign_in(port, "dr-rao", PASSWORD).await);
    let (status, _, body) = http_request(port, "GET", "/api/history?consult=C-EDGE", &cookie, "").await;
    assert_eq!(status, 200, "{body}");
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    let types: Vec<&str> = h["items"].as_array().unwrap().iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["wave", "obs"], "{body}");
}
