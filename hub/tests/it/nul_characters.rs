//! PostgreSQL's text and jsonb cannot hold U+0000, and a message can: a meter's firmware line in
//! a signed `device-info` event, or an unsigned state that is not the contract's JSON, whose parse
//! error quotes it. The signed message is stored with U+FFFD in place of each U+0000 in its
//! decoded columns and its JSON, its envelope kept byte for byte; the state is quarantined with the
//! same replacement in the detail. The hub carries on: the reading after them is stored (before,
//! the transaction failed on every retry and the hub stored nothing more).

use crate::support::*;
use spokegate::model::{Event, Severity};
use spokegate::pipeline::{make_body, Payload, Source};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_holding_nul_characters_are_stored_or_quarantined_and_the_hub_carries_on() {
    let rig = CraftedRig::start("nul").await;
    let (db, key) = (&rig.db, &rig.key);

    let info = Event::new("device-info", Severity::Info, "firmware: ?P02.00\0.00").with("reply", "?P02.00\0.00");
    let from = Source { dev: "glucose-1".into(), profile: "onetouch-ultra2".into() };
    let body = make_body("site-1", "gw-a", Some(&from), Payload::Event(info), 1, spokegate::clock::now_micros(), None);
    let signed = sealed(key, &body);
    rig.publish("spokegate/v1/site-1/gw-a/dev/glucose-1/event", signed.clone()).await;
    let state = br#"{"state":"\u0000","profile":"onetouch-ultra2","since":"2026-12-06T23:00:00Z"}"#.to_vec();
    rig.publish("spokegate/v1/site-1/gw-a/dev/glucose-1/state", state).await;
    rig.publish("spokegate/v1/site-1/gw-a/dev/vitals-1/obs", sealed(key, &reading("site-1", "gw-a", 2, 118.0))).await;

    until("the event, the quarantined state and the reading after them are stored", PATIENCE, || async {
        db.count("SELECT count(*) FROM observations").await == 1
            && db.count("SELECT count(*) FROM events").await == 1
            && db.count("SELECT count(*) FROM quarantine").await == 1
    })
    .await;
    let c = db.client().await;
    let e = c
        .query_one(
            "SELECT e.text, m.body -> 'event' -> 'data' ->> 'reply', m.envelope FROM events e
             JOIN messages m ON m.id = e.message_id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(e.get::<_, String>(0), "firmware: ?P02.00\u{FFFD}.00");
    assert_eq!(e.get::<_, String>(1), "?P02.00\u{FFFD}.00");
    assert_eq!(e.get::<_, Vec<u8>>(2), signed, "the envelope is kept as signed");
    let opened = spokegate::hub::check("spokegate/v1/site-1/gw-a/dev/glucose-1/event", &signed, &rig.gateway_ring());
    assert!(
        matches!(&opened, Ok(spokegate::hub::HubMessage::Signed(b)) if b.event.as_ref().unwrap().text.contains('\0')),
        "the envelope still verifies and holds what the gateway said"
    );
    let q = c.query_one("SELECT reason, detail FROM quarantine", &[]).await.unwrap();
    assert_eq!(q.get::<_, String>(0), "bad-json");
    assert!(q.get::<_, String>(1).contains('\u{FFFD}'), "{}", q.get::<_, String>(1));
}
