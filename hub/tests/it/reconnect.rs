//! PostgreSQL ends every connection a hub instance holds when it restarts, fails over or is
//! upgraded. While it is away, a FHIR client is told to come back (503, `Retry-After`), not that
//! its password is wrong (401). An instance connects again on its own once it is back: its
//! readiness returns without a message having to arrive first, its FHIR API and consult view read
//! again, and what arrives is stored. (Before, the connection the HTTP side reads through was
//! never made again: the instance said it was not ready and its API failed until the process was
//! restarted; readiness stayed down until a message made the ingest reconnect; and a client's
//! credentials that could not be checked were answered 401.)

use crate::support::*;

const PASSWORD: &str = "a long system password";

async fn observations(port: u16) -> (u16, String) {
    let (status, _, body) =
        http_request(port, "GET", "/fhir/r4/Observation?site=site-1", &basic("his", PASSWORD), "").await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_reads_and_stores_again_after_its_database_connections_end() {
    let rig = CraftedRig::start("reconnect").await;
    rig.hub.user("his", PASSWORD, &[("site-1", None, None)]);
    let port = rig.instance.http;
    let send = |seq: u64| reading("site-1", "gw-a", seq, 100.0 + seq as f64);
    rig.send(&send(1)).await;
    until("the first reading stored", PATIENCE, || async { rig.db.count("SELECT count(*) FROM messages").await == 1 })
        .await;
    let (status, body) = observations(port).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"value\":101"), "{body}");
    // The hub's acknowledgement of it comes back on the input and is committed too: after that,
    // nothing arrives to make the ingest notice the database is gone and back.
    until("the acknowledgement committed", PATIENCE, || async {
        rig.instance.metric("spokegate_hub_batches_committed").await >= 2.0
    })
    .await;

    // PostgreSQL goes away: the ingest's, the view's listening and the HTTP side's connections
    // at least end, and no new one is taken.
    let admin = admin_client().await;
    let ended = database_away(&admin, &rig.db, true).await;
    assert!(ended >= 3, "{ended} connections ended");
    // The backends end a moment after PostgreSQL is asked to end them: asked until they have.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let (status, head, body) = loop {
        let answer = http_request(port, "GET", "/fhir/r4/Observation?site=site-1", &basic("his", PASSWORD), "").await;
        if answer.0 != 200 || tokio::time::Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(status, 503, "credentials that cannot be checked are not wrong ones: {head}{body}");
    assert!(head.to_ascii_lowercase().contains("retry-after: "), "{head}");
    assert!(body.contains("\"transient\""), "{body}");
    // Readiness says so once the instance has seen its connections end (they end a moment
    // after PostgreSQL ends them).
    until("not ready while the database is away", PATIENCE, || async {
        matches!(rig.instance.get("/readyz").await, Some((503, _)))
    })
    .await;

    // PostgreSQL is back.
    database_away(&admin, &rig.db, false).await;
    until("ready again without a message arriving", PATIENCE, || async {
        matches!(rig.instance.get("/readyz").await, Some((200, _)))
    })
    .await;
    let (status, body) = observations(port).await;
    assert_eq!(status, 200, "the FHIR API reads again: {body}");
    assert!(body.contains("\"value\":101"), "{body}");

    rig.send(&send(2)).await;
    until("the second reading stored", PATIENCE, || async { rig.db.count("SELECT count(*) FROM messages").await == 2 })
        .await;
    let (status, body) = observations(port).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"value\":102"), "{body}");
}
