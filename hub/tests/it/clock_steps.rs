//! A spoke PC without a working RTC signs with a wrong clock until NTP steps it, and then says so
//! in a signed `clock-stepped` event naming the messages signed on the old clock. The hub keeps
//! every message as signed and exports and shows their gateway times on the corrected clock:
//! FHIR times with the step added and a note giving the signed time, the view's items with the
//! correction beside the signed time, which the page (in Chromium) shows corrected and marked,
//! an open page too when the step is reported live.
//! The step applies whatever order the messages arrive in; a
//! step that claims messages not yet signed is quarantined, and a device's event of that name
//! corrects nothing. (Before, the readings of a gateway that booted ten days behind were exported
//! as taken ten days before they were.)

use crate::support::*;
use spokegate::model::{Body, Event, Severity, Wave};
use spokegate::pipeline::{make_body, Payload, Source};

const CONSULT: &str = "C-CLOCK";
/// The view tests' password (their sign-in page is used).
const PASSWORD: &str = "correct horse battery";
const DAY: i64 = 86_400_000_000;

fn in_consult(mut b: Body) -> Body {
    b.consult = Some(Some(CONSULT.into()));
    b
}

fn reading_at(seq: u64, t: i64) -> Body {
    let mut b = reading("site-1", "gw-a", seq, 110.0 + seq as f64);
    b.t = t;
    in_consult(b)
}

fn stepped(seq: u64, from: Option<&Source>, step_us: i64, seq_from: u64, seq_to: u64, t: i64) -> Body {
    let e = Event::new("clock-stepped", Severity::Warn, "the gateway clock was stepped")
        .with("step_us", step_us)
        .with("seq_from", seq_from)
        .with("seq_to", seq_to)
        .with("queued", 0);
    in_consult(make_body("site-1", "gw-a", from, Payload::Event(e), seq, t, None))
}

fn micros(rfc3339: &serde_json::Value) -> i64 {
    let s = rfc3339.as_str().unwrap_or_else(|| panic!("not a time: {rfc3339}"));
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap();
    (t.unix_timestamp_nanos() / 1000) as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_signed_before_a_clock_step_are_exported_and_shown_on_the_corrected_clock() {
    let rig = CraftedRig::start("clock-steps").await;
    rig.hub.user("dr-rao", PASSWORD, &[("site-1", Some("gw-a"), None)]);
    let now = spokegate::clock::now_micros();
    // The gateway booted ten days behind: two readings and an ECG chunk on that clock (seq 1-3),
    // then NTP stepped it: a reading on the right clock (4), the event (5), another reading (6).
    let wrong = now - 10 * DAY;
    let ecg = Source { dev: "ecg-1".into(), profile: "ecg-text-single".into() };
    let wave = |i0: u64, t0: i64| Wave { t0, ..ecg_chunk(i0, 360.0, 0.005) };
    let chunk =
        |seq, i0, t0| in_consult(make_body("site-1", "gw-a", Some(&ecg), Payload::Wave(wave(i0, t0)), seq, t0, None));
    let vitals = Source { dev: "vitals-1".into(), profile: "vitals-kv".into() };
    // Before the step is reported: a reading on the right clock, one and a chunk on the old one.
    for b in [reading_at(4, now), reading_at(1, wrong + 1_000_000), chunk(3, 0, wrong + 3_000_000)] {
        rig.send(&b).await;
    }
    until("three messages stored", PATIENCE, || async { rig.db.count("SELECT count(*) FROM messages").await == 3 })
        .await;
    // The doctor's page is open, showing both readings as signed.
    let port = rig.instance.http;
    use crate::view::chromium;
    let (_driver, page) = chromium::session(chromium::Engine::Chromium, 1200, 900).await;
    crate::view::sign_in_page(&page, port, "dr-rao", &format!("/consult/{CONSULT}")).await;
    let cells = "Array.from(document.querySelectorAll('#readings tr')).map((tr) => \
                   Array.from(tr.cells).map((td) => [td.className, td.textContent, td.title]))";
    let fixed_in = |rows: &serde_json::Value| -> Vec<serde_json::Value> {
        let rows = rows.as_array().cloned().unwrap_or_default();
        rows.iter().flat_map(|r| r.as_array().cloned().unwrap_or_default()).filter(|c| c[0] == "clock-fixed").collect()
    };
    let rows =
        chromium::page_value(&page, cells, "the two readings", |v| v.as_array().is_some_and(|r| r.len() == 2)).await;
    assert!(fixed_in(&rows).is_empty(), "{rows}");
    // The step is reported (the page is told live), then a reading it covers arrives (a hub may
    // receive them in any order), more on the new clock, a step claiming messages not signed
    // yet, and a device's event of that name.
    let bodies = [
        stepped(5, None, 10 * DAY, 1, 3, now + 1_000),
        reading_at(2, wrong + 2_000_000),
        reading_at(6, now + 2_000),
        // The ECG goes on after the step: the history's "last ten minutes of waves" would have
        // left out the chunk ten days before it by its signed time.
        chunk(10, 4, now + 5_000),
        stepped(7, None, DAY, 1, 9, now + 3_000),
        stepped(8, Some(&vitals), DAY, 4, 4, now + 4_000),
    ];
    for b in &bodies {
        rig.send(b).await;
    }
    // The page: the reading shown before the step and the one after it covers, corrected and
    // marked, the signed time in the tooltip; the others as signed.
    let rows = chromium::page_value(&page, cells, "the corrected readings and the events", |v| {
        v.as_array().is_some_and(|r| r.len() == 6) && fixed_in(v).len() == 2
    })
    .await;
    for cell in fixed_in(&rows) {
        let (text, title) = (cell[1].as_str().unwrap(), cell[2].as_str().unwrap());
        assert!(text.ends_with(" *") && title.contains("+864000 s") && title.contains("signed time"), "{cell}");
    }
    let shown =
        chromium::page_value(&page, "window.hubview.state.readings.map((r) => r.t)", "readings", |_| true).await;
    let mut shown: Vec<i64> = shown.as_array().unwrap().iter().map(|t| t.as_i64().unwrap()).collect();
    shown.sort();
    assert_eq!(shown, [now, now + 2_000, wrong + 1_000_000 + 10 * DAY, wrong + 2_000_000 + 10 * DAY]);

    until("eight messages stored and the impossible step quarantined", PATIENCE, || async {
        rig.db.count("SELECT count(*) FROM messages").await == 8
            && rig.db.count("SELECT count(*) FROM quarantine WHERE reason = 'clock-step-invalid'").await == 1
    })
    .await;
    let c = rig.db.client().await;
    let detail: String = c.query_one("SELECT detail FROM quarantine", &[]).await.unwrap().get(0);
    assert!(detail.contains("seq 1..=9"), "{detail}");
    assert_eq!(rig.db.count("SELECT count(*) FROM clock_steps").await, 1, "only the gateway's own possible step");
    assert_eq!(rig.db.count("SELECT count(*) FROM events WHERE code = 'clock-stepped'").await, 2);

    // FHIR: times on the corrected clock, the signed time in a note.
    let auth = basic("dr-rao", PASSWORD);
    let (status, _, body) = http_request(port, "GET", &format!("/fhir/r4/Bundle?consult={CONSULT}"), &auth, "").await;
    assert_eq!(status, 200, "{body}");
    let bundle: serde_json::Value = serde_json::from_str(&body).unwrap();
    let observation = |id: &str| {
        bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["resource"])
            .find(|r| r["identifier"][0]["value"] == id)
            .unwrap_or_else(|| panic!("no observation {id}: {body}"))
            .clone()
    };
    for (seq, signed) in [(1, wrong + 1_000_000), (2, wrong + 2_000_000)] {
        let o = observation(&format!("site-1/gw-a/{seq}/0"));
        assert_eq!(micros(&o["effectiveDateTime"]), signed + 10 * DAY, "seq {seq}: {o}");
        assert_eq!(micros(&o["issued"]), signed + 10 * DAY, "seq {seq}: {o}");
        let note = o["note"][0]["text"].as_str().unwrap_or_else(|| panic!("seq {seq}: no note: {o}"));
        let signed_text = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(signed) * 1000)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        assert!(note.contains("+864000 s") && note.contains(&signed_text), "seq {seq}: {note}");
    }
    let lead = observation("site-1/gw-a/3/II");
    assert_eq!(micros(&lead["effectivePeriod"]["start"]), wrong + 3_000_000 + 10 * DAY, "{lead}");
    for (seq, signed) in [(4, now), (6, now + 2_000)] {
        let o = observation(&format!("site-1/gw-a/{seq}/0"));
        assert_eq!(micros(&o["effectiveDateTime"]), signed, "seq {seq} was signed on the right clock: {o}");
        assert!(o.get("note").is_none(), "seq {seq}: {o}");
    }

    // The view: each item as signed, with the correction beside it.
    let cookie = format!("Cookie: {}\r\n", sign_in(port, "dr-rao", PASSWORD).await);
    let (status, _, body) = http_request(port, "GET", &format!("/api/history?consult={CONSULT}"), &cookie, "").await;
    assert_eq!(status, 200, "{body}");
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    let fixes: Vec<(u64, i64, i64)> = h["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["seq"].as_u64().unwrap(), i["t"].as_i64().unwrap(), i["msg"]["clock_fix"].as_i64().unwrap()))
        .collect();
    let mut fixes = fixes;
    fixes.sort();
    let expected = [
        (1, wrong + 1_000_000, 10 * DAY),
        (2, wrong + 2_000_000, 10 * DAY),
        (3, wrong + 3_000_000, 10 * DAY),
        (4, now, 0),
        (5, now + 1_000, 0),
        (6, now + 2_000, 0),
        (8, now + 4_000, 0),
        (10, now + 5_000, 0),
    ];
    assert_eq!(fixes, expected, "{body}");
}
