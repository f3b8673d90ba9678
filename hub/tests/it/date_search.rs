//! A hospital system asks the FHIR search for the readings measured in a time window (`date`,
//! FHIR's clinical date on Observation.effective): a reading is found by the time its resource
//! says it was measured, the device's own time when the device gave one, else the gateway's time
//! on the gateway's clock after the steps it reported (a spoke PC that booted ten days behind).
//! What each window should select is read from the resources the unfiltered search returns; the
//! windows are chosen so that signed times, device times and corrected times each decide one.
//! `_sort=date` and `-date` page through them in that order. (Before, `date` and `_sort` were
//! ignored: every reading came back, whatever the window, in the order they were signed.)

use crate::support::*;
use serde_json::Value;
use spokegate::model::{Body, Event, Severity};
use spokegate::pipeline::{make_body, Payload};

const PASSWORD: &str = "a long system password";
const DAY: i64 = 86_400_000_000;
const HOUR: i64 = 3_600_000_000;

/// Whether a measured time is in a window.
type Holds = Box<dyn Fn(i64) -> bool>;

fn reading_at(seq: u64, t: i64, tdev: Option<i64>) -> Body {
    let mut b = reading("site-1", "gw-a", seq, 100.0 + seq as f64);
    b.t = t;
    b.tdev = tdev;
    b
}

fn stepped(seq: u64, step_us: i64, seq_from: u64, seq_to: u64, t: i64) -> Body {
    let e = Event::new("clock-stepped", Severity::Warn, "the gateway clock was stepped")
        .with("step_us", step_us)
        .with("seq_from", seq_from)
        .with("seq_to", seq_to)
        .with("queued", 0);
    make_body("site-1", "gw-a", None, Payload::Event(e), seq, t, None)
}

/// An instant as a search value (RFC 3339 in UTC).
fn at(micros: i64) -> String {
    spokegate::clock::micros_to_rfc3339(micros)
}

fn micros(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap();
    (t.unix_timestamp_nanos() / 1000) as i64
}

async fn get(port: u16, path: &str) -> Value {
    let (status, _, body) = http_request(port, "GET", path, &basic("his", PASSWORD), "").await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The observations of every page from `path` on (following `next` links): identifier and
/// effectiveDateTime, in the order the pages gave them.
async fn found(port: u16, path: &str) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for bundle in fhir_pages(port, path, &basic("his", PASSWORD)).await {
        for e in bundle["entry"].as_array().into_iter().flatten().filter(|e| e["search"]["mode"] == "match") {
            let o = &e["resource"];
            out.push((o["identifier"][0]["value"].as_str().unwrap().to_string(), micros(&o["effectiveDateTime"])));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_finds_and_sort_orders_readings_by_when_their_resources_say_they_were_measured() {
    let rig = CraftedRig::start("date-search").await;
    rig.hub.user("his", PASSWORD, &[("site-1", None, None)]);
    let port = rig.instance.http;
    let now = spokegate::clock::now_micros();
    let wrong = now - 10 * DAY;
    let bodies = [
        // Signed on a clock ten days behind; the step (seq 6) covers 1 and 2, not 3.
        reading_at(1, wrong + 1_000_000, None),
        reading_at(2, wrong + 2_000_000, None),
        reading_at(3, wrong + 3_000_000, None),
        // A meter's stored reading, sent today, measured three days ago by its own clock.
        reading_at(4, now, Some(now - 3 * DAY)),
        reading_at(5, now + 1_000_000, None),
        stepped(6, 10 * DAY, 1, 2, now + 2_000_000),
    ];
    for b in &bodies {
        rig.send(b).await;
    }
    until("stored, the step too", PATIENCE, || async {
        rig.db.count("SELECT count(*) FROM observations").await == 5
            && rig.db.count("SELECT count(*) FROM clock_steps").await == 1
    })
    .await;
    let all = found(port, "/fhir/r4/Observation?site=site-1").await;
    assert_eq!(all.len(), 5, "{all:?}");
    let effective = |seq: u64| all.iter().find(|(id, _)| *id == format!("site-1/gw-a/{seq}/0")).unwrap().1;
    // What the resources say, before any window is asked: corrected, device, and signed times.
    assert_eq!(effective(1), wrong + 1_000_000 + 10 * DAY, "{all:?}");
    assert_eq!(effective(4), now - 3 * DAY, "{all:?}");
    assert_eq!(effective(3), wrong + 3_000_000, "{all:?}");

    let enc = |s: &str| s.replace('+', "%2B").replace(':', "%3A");
    let wrong_day = &at(wrong + 3_000_000)[..10];
    let windows: Vec<(String, Holds)> = vec![
        // The last hour on: the corrected readings and the one signed on the right clock.
        (format!("date=ge{}", enc(&at(now - HOUR))), Box::new(move |t| t >= now - HOUR)),
        // With `_lastUpdated` too (every reading was stored this century): both joins in one query.
        (
            format!("date=ge{}&_lastUpdated=ge2000&value-quantity=gt0", enc(&at(now - HOUR))),
            Box::new(move |t| t >= now - HOUR),
        ),
        // Between eleven days and an hour ago, as a window of two values.
        (
            format!("date=ge{}&date=lt{}", enc(&at(now - 11 * DAY)), enc(&at(now - HOUR))),
            Box::new(move |t| t >= now - 11 * DAY && t < now - HOUR),
        ),
        // The day of the wrong clock: only what is still on it (1 and 2 were signed that day too).
        (format!("date={wrong_day}"), {
            let day = wrong_day.to_string();
            Box::new(move |t| at(t).starts_with(&day))
        }),
        // Either of two: before four days ago, or after the reading signed now.
        (
            format!("date=lt{},gt{}", enc(&at(now - 4 * DAY)), enc(&at(now))),
            Box::new(move |t| t < now - 4 * DAY || t > now),
        ),
    ];
    for (query, holds) in &windows {
        let mut want: Vec<&String> = all.iter().filter(|(_, t)| holds(*t)).map(|(id, _)| id).collect();
        want.sort();
        assert!(!want.is_empty() && want.len() < all.len(), "{query}: a window that does not tell readings apart");
        // One reading a page: the window is carried by the next links (and counted on each page).
        let got = found(port, &format!("/fhir/r4/Observation?site=site-1&{query}&_count=1&_total=accurate")).await;
        let mut got: Vec<&String> = got.iter().map(|(id, _)| id).collect();
        got.sort();
        assert_eq!(got, want, "{query}");
        let counted = get(port, &format!("/fhir/r4/Observation?site=site-1&{query}&_summary=count")).await;
        assert_eq!(counted["total"], want.len(), "{query}: {counted}");
    }

    // In the order of when they were measured (`_sort`), two a page: earliest first, latest first
    // (the order and the position in it carried by the next links); ties (1 and 5: a corrected
    // time and a signed one) in seq order, backwards when latest first.
    assert_eq!(effective(1), effective(5), "the test wants a tie");
    let mut by_time: Vec<(i64, String)> = all.iter().map(|(id, t)| (*t, id.clone())).collect();
    by_time.sort();
    let earliest_first: Vec<String> = by_time.iter().map(|(_, id)| id.clone()).collect();
    let ids = |found: Vec<(String, i64)>| found.into_iter().map(|(id, _)| id).collect::<Vec<_>>();
    assert_eq!(ids(found(port, "/fhir/r4/Observation?site=site-1&_sort=date&_count=2").await), earliest_first);
    let latest_first: Vec<String> = earliest_first.iter().rev().cloned().collect();
    assert_eq!(ids(found(port, "/fhir/r4/Observation?site=site-1&_sort=-date&_count=2").await), latest_first);
    // The latest in the last hour.
    let recent = format!("/fhir/r4/Observation?site=site-1&date=ge{}&_sort=-date&_count=1", enc(&at(now - HOUR)));
    let want: Vec<String> = by_time.iter().rev().filter(|(t, _)| *t >= now - HOUR).map(|(_, id)| id.clone()).collect();
    assert_eq!(ids(found(port, &recent).await), want);
    // A cursor is a position in the order of its search: refused in another.
    let page = get(port, "/fhir/r4/Observation?site=site-1&_sort=date&_count=2").await;
    let next = path_of(port, &link(&page, "next").expect("a next link"));
    let unsorted = next.replace("_sort=date&", "");
    assert!(!unsorted.contains("_sort"), "{unsorted}");
    let (status, _, body) = http_request(port, "GET", &unsorted, &basic("his", PASSWORD), "").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("another order"), "{body}");
    // Another sort is not applied, and said so: the search's own order (seq).
    let other = get(port, "/fhir/r4/Observation?site=site-1&_sort=-value-quantity").await;
    let said: Vec<&Value> =
        other["entry"].as_array().unwrap().iter().filter(|e| e["search"]["mode"] == "outcome").collect();
    assert!(
        said[0]["resource"]["issue"][0]["diagnostics"].as_str().unwrap().contains("_sort=-value-quantity"),
        "{other}"
    );
    let in_seq_order: Vec<String> = (1..=5).map(|seq| format!("site-1/gw-a/{seq}/0")).collect();
    assert_eq!(ids(found(port, "/fhir/r4/Observation?site=site-1&_sort=-value-quantity").await), in_seq_order);

    // A value that is not a date is refused, naming the parameter.
    let (status, _, body) =
        http_request(port, "GET", "/fhir/r4/Observation?date=yesterday", &basic("his", PASSWORD), "").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("date `yesterday`"), "{body}");
}
