//! A hospital system reads a site's spot values through the FHIR search a page at a time: each
//! page holds `_count` observations and links to the next until there are no more, every stored
//! value comes exactly once and in order, a reading stored while the pages are read shifts none
//! of them, and a user's grants hold on every page. (Before, a search returned its first 1,000
//! values and no link, with `total` saying 1,000: the rest could not be read; and a consult's
//! transaction bundle held at most 1,000 spot values.)

use crate::support::*;
use serde_json::Value;

const PASSWORD: &str = "a long system password";

async fn get(port: u16, path: &str, name: &str) -> Value {
    let (status, head, body) = http_request(port, "GET", path, &basic(name, PASSWORD), "").await;
    assert_eq!(status, 200, "{path}: {head}\n{body}");
    serde_json::from_str(&body).unwrap()
}

/// A request "his" makes that the hub refuses (400): the body that says why.
async fn refused(port: u16, path: &str) -> String {
    let (status, _, body) = http_request(port, "GET", path, &basic("his", PASSWORD), "").await;
    assert_eq!(status, 400, "{path}: {body}");
    body
}

/// (identifier, systolic value) of each observation of a page.
fn values(bundle: &Value) -> Vec<(String, f64)> {
    bundle["entry"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| {
                    let o = &e["resource"];
                    let id = o["identifier"][0]["value"].as_str().unwrap_or("").to_string();
                    (id, o["valueQuantity"]["value"].as_f64().unwrap_or(f64::NAN))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every page of a search from `first`, following `next` links: the pages' values in order.
async fn all_pages(port: u16, first: &str, name: &str) -> (Vec<Vec<(String, f64)>>, Vec<Value>) {
    let bundles = fhir_pages(port, first, &basic(name, PASSWORD)).await;
    (bundles.iter().map(values).collect(), bundles)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_is_read_a_page_at_a_time_each_value_once_in_order() {
    let rig = CraftedRig::start("paging").await;
    rig.hub.user("his", PASSWORD, &[("site-1", None, None)]);
    rig.hub.user("dr-consult", PASSWORD, &[("site-1", None, Some("C-B"))]);
    let port = rig.instance.http;
    // Seq 1-25: systolic 101..=125; seq 26-28: 201..=203, in consult C-B.
    for seq in 1..=28u64 {
        let mut b = reading("site-1", "gw-a", seq, if seq <= 25 { 100.0 } else { 175.0 } + seq as f64);
        if seq > 25 {
            b.consult = Some(Some("C-B".into()));
        }
        rig.send(&b).await;
    }
    until("28 readings stored", PATIENCE, || async { rig.db.count("SELECT count(*) FROM observations").await == 28 })
        .await;

    // Ten at a time; after the first page is read, seq 29 (129) is stored.
    let first = get(port, "/fhir/r4/Observation?site=site-1&_count=10", "his").await;
    assert_eq!(values(&first).len(), 10);
    assert!(first.get("total").is_none(), "total is not known on a page with more after it: {first}");
    let b = reading("site-1", "gw-a", 29, 129.0);
    rig.send(&b).await;
    until("the 29th reading stored", PATIENCE, || async {
        rig.db.count("SELECT count(*) FROM observations").await == 29
    })
    .await;
    let next = path_of(port, &link(&first, "next").expect("a next link"));
    let (rest, bundles) = all_pages(port, &next, "his").await;
    let mut seen = values(&first);
    for page in &rest {
        assert!(page.len() <= 10 && !page.is_empty(), "{page:?}");
        seen.extend(page.iter().cloned());
    }
    assert_eq!(rest.len(), 2, "29 values in pages of 10");
    assert!(link(bundles.last().unwrap(), "next").is_none());
    let want: Vec<f64> = (101..=125).chain(201..=203).chain([129]).map(f64::from).collect();
    assert_eq!(seen.iter().map(|(_, v)| *v).collect::<Vec<_>>(), want, "each value once, in order: {seen:?}");
    for b in &bundles {
        assert!(b.get("total").is_none(), "a later page does not know the total: {b}");
        assert_eq!(b["type"], "searchset");
    }

    // One page holding them all says how many.
    let whole = get(port, "/fhir/r4/Observation?site=site-1&_count=100", "his").await;
    assert_eq!(whole["total"], 29, "{whole}");
    assert!(link(&whole, "next").is_none());
    assert_eq!(
        link(&whole, "self"),
        Some(format!("http://127.0.0.1:{port}/fhir/r4/Observation?site=site-1&_count=100"))
    );

    // A user granted consult C-B only pages through C-B only.
    let (pages, _) = all_pages(port, "/fhir/r4/Observation?site=site-1&_count=2", "dr-consult").await;
    let consult_values: Vec<f64> = pages.iter().flatten().map(|(_, v)| *v).collect();
    assert_eq!(consult_values, vec![201.0, 202.0, 203.0], "{pages:?}");
    assert_eq!(pages.len(), 2);

    // `_count=0`: how many match, within each user's grants and the search's parameters; no
    // entries (no resource beyond the zero asked for) and no next page.
    for (user, query, want) in [
        ("his", "site=site-1", 29),
        ("dr-consult", "site=site-1", 3),
        ("his", "site=site-1&consult=C-B,C-X", 3),
        ("his", "site=site-2", 0),
        ("his", "site=site-1&_lastUpdated=gt2000-01-01", 29),
        ("his", "site=site-1&_lastUpdated=lt2000-01-01", 0),
    ] {
        let counted = get(port, &format!("/fhir/r4/Observation?{query}&_count=0"), user).await;
        assert_eq!(counted["type"], "searchset", "{counted}");
        assert_eq!(counted["total"], want, "{user} {query}: {counted}");
        assert!(counted.get("entry").is_none_or(|e| e.as_array().is_some_and(Vec::is_empty)), "{counted}");
        assert!(link(&counted, "next").is_none(), "{counted}");
        assert_eq!(crate::fhir::validate(&counted.to_string())["observations"], serde_json::json!([]));
    }
    refused(port, "/fhir/r4/Observation?site=site-1&_count=-1").await;
    // `_total=accurate`: every page says how many match, and its next link asks the same;
    // `none`: not even a page that holds them all.
    let (pages, bundles) = all_pages(port, "/fhir/r4/Observation?site=site-1&_total=accurate&_count=12", "his").await;
    assert_eq!(pages.len(), 3, "{pages:?}");
    for b in &bundles {
        assert_eq!(b["total"], 29, "{b}");
    }
    let (_, bundles) = all_pages(port, "/fhir/r4/Observation?site=site-1&_total=accurate&_count=2", "dr-consult").await;
    assert!(bundles.iter().all(|b| b["total"] == 3), "{bundles:?}");
    let whole = get(port, "/fhir/r4/Observation?site=site-1&_total=none", "his").await;
    assert_eq!(values(&whole).len(), 29);
    assert!(whole.get("total").is_none(), "{whole}");
    refused(port, "/fhir/r4/Observation?site=site-1&_total=exact").await;

    // `_summary=count` asks the same; a summary of each resource is not applied, and said so
    // (refused under strict handling).
    let counted = get(port, "/fhir/r4/Observation?site=site-1&consult=C-B&_summary=count", "his").await;
    assert_eq!(counted["total"], 3, "{counted}");
    assert!(counted.get("entry").is_none(), "{counted}");
    let page = get(port, "/fhir/r4/Observation?site=site-1&consult=C-B&_summary=true", "his").await;
    let matches = page["entry"].as_array().unwrap().iter().filter(|e| e["search"]["mode"] == "match").count();
    assert_eq!(matches, 3, "{page}");
    let said = page["entry"].as_array().unwrap().iter().find(|e| e["search"]["mode"] == "outcome").expect("an outcome");
    assert!(said.to_string().contains("_summary=true"), "{said}");
    let strict = format!("Prefer: handling=strict\r\n{}", basic("his", PASSWORD));
    let (status, _, body) =
        http_request(port, "GET", "/fhir/r4/Observation?site=site-1&_summary=text", &strict, "").await;
    assert_eq!(status, 400, "{body}");
    refused(port, "/fhir/r4/Observation?site=site-1&_summary=count&_summary=false").await;

    // A cursor this server did not make.
    let body = refused(port, "/fhir/r4/Observation?site=site-1&_cursor=bm90LWEtY3Vyc29y").await;
    assert!(body.contains("OperationOutcome") && body.contains("_cursor"), "{body}");
}

/// A consult's transaction bundle is whole: a long monitoring session's spot values all go to
/// the hospital's server, past the search's page size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consults_transaction_bundle_holds_every_spot_value() {
    const N: u64 = 1_010;
    let rig = CraftedRig::start("long-consult").await;
    rig.hub.user("his", PASSWORD, &[("site-1", None, None)]);
    for seq in 1..=N {
        let mut b = reading("site-1", "gw-a", seq, 100.0 + (seq % 50) as f64);
        b.consult = Some(Some("C-LONG".into()));
        rig.send(&b).await;
    }
    until("every reading stored", PATIENCE, || async {
        rig.db.count("SELECT count(*) FROM observations").await == N as i64
    })
    .await;
    let bundle = get(rig.instance.http, "/fhir/r4/Bundle?consult=C-LONG", "his").await;
    assert_eq!(bundle["type"], "transaction");
    let observations =
        bundle["entry"].as_array().unwrap().iter().filter(|e| e["resource"]["resourceType"] == "Observation").count()
            as u64;
    assert_eq!(observations, N);
}

/// A hospital's system polls for what the hub stored since its last poll (`_lastUpdated`), and
/// each resource says when it was stored (`meta.lastUpdated`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hospital_system_polls_for_what_was_stored_since_its_last_poll() {
    let rig = CraftedRig::start("polling").await;
    rig.hub.user("his", PASSWORD, &[("site-1", None, None)]);
    let port = rig.instance.http;
    let store = |from: u64, to: u64| {
        let rig = &rig;
        async move {
            for seq in from..=to {
                let b = reading("site-1", "gw-a", seq, 100.0 + seq as f64);
                rig.send(&b).await;
            }
            until("stored", PATIENCE, || async {
                rig.db.count("SELECT count(*) FROM observations").await == to as i64
            })
            .await;
        }
    };
    store(1, 5).await;
    // The last poll: the database's clock now (the one `received_at` is written by).
    let since = db_clock(&rig.db).await;
    store(6, 8).await;
    let until_now = db_clock(&rig.db).await;
    store(9, 10).await;
    let fhir_values = |b: &Value| values(b).into_iter().map(|(_, v)| v).collect::<Vec<f64>>();

    let new = get(port, &format!("/fhir/r4/Observation?site=site-1&_lastUpdated=gt{since}"), "his").await;
    assert_eq!(fhir_values(&new), vec![106.0, 107.0, 108.0, 109.0, 110.0], "{new}");
    // A window: stored after the first poll and not after the second.
    let window = get(
        port,
        &format!("/fhir/r4/Observation?site=site-1&_lastUpdated=gt{since}&_lastUpdated=le{until_now}"),
        "his",
    )
    .await;
    assert_eq!(fhir_values(&window), vec![106.0, 107.0, 108.0], "{window}");
    let parse = |s: &str| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap();
    for e in new["entry"].as_array().unwrap() {
        let stored = e["resource"]["meta"]["lastUpdated"].as_str().expect("meta.lastUpdated");
        assert!(parse(stored) > parse(&since), "{stored} is not after {since}");
    }
    let old = get(port, &format!("/fhir/r4/Observation?site=site-1&_lastUpdated=le{since}"), "his").await;
    assert_eq!(fhir_values(&old), vec![101.0, 102.0, 103.0, 104.0, 105.0], "{old}");

    // Paged, the bound goes with every page.
    let (pages, bundles) =
        all_pages(port, &format!("/fhir/r4/Observation?site=site-1&_lastUpdated=gt{since}&_count=2"), "his").await;
    assert_eq!(pages.iter().flatten().map(|(_, v)| *v).collect::<Vec<_>>(), vec![106.0, 107.0, 108.0, 109.0, 110.0]);
    assert_eq!(bundles.len(), 3);
    assert!(link(&bundles[0], "next").is_some_and(|n| n.contains("_lastUpdated=gt")), "{}", bundles[0]);
    let (pages, _) = all_pages(
        port,
        &format!("/fhir/r4/Observation?site=site-1&_lastUpdated=gt{since}&_lastUpdated=le{until_now}&_count=2"),
        "his",
    )
    .await;
    assert_eq!(
        pages.iter().flatten().map(|(_, v)| *v).collect::<Vec<_>>(),
        vec![106.0, 107.0, 108.0],
        "both bounds on every page"
    );

    // `meta.lastUpdated` has all six digits (a precision of a microsecond): a poll for what came
    // after the eighth value's is exactly the two after it.
    let eighth = new["entry"][2]["resource"]["meta"]["lastUpdated"].as_str().unwrap().to_string();
    assert!(eighth.len() == "2026-12-07T10:00:00.000000Z".len() && eighth.ends_with('Z'), "{eighth}");
    let after = get(port, &format!("/fhir/r4/Observation?site=site-1&_lastUpdated=gt{eighth}"), "his").await;
    assert_eq!(fhir_values(&after), vec![109.0, 110.0], "{after}");

    // A date stands for its day (UTC), month or year, a time without seconds for its minute;
    // `eq` (the default) and `ne` select within and outside it. The expected values are those
    // whose `meta.lastUpdated` falls there.
    let all = get(port, "/fhir/r4/Observation?site=site-1", "his").await;
    let stored: Vec<(f64, time::OffsetDateTime)> = all["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let o = &e["resource"];
            (o["valueQuantity"]["value"].as_f64().unwrap(), parse(o["meta"]["lastUpdated"].as_str().unwrap()))
        })
        .collect();
    assert_eq!(stored.len(), 10);
    let day_start = parse(&format!("{}T00:00:00Z", &since[..10]));
    let day_end = day_start + time::Duration::days(1);
    let sixth = stored[5].1;
    let minute_start = sixth
        - time::Duration::nanoseconds(i64::from(sixth.nanosecond()))
        - time::Duration::seconds(i64::from(sixth.second()));
    let minute_end = minute_start + time::Duration::minutes(1);
    // The sixth value's minute, written in India's time zone.
    let minute = minute_start
        .to_offset(time::macros::offset!(+5:30))
        .format(&time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]+05:30"))
        .unwrap();
    let day = &since[..10];
    let year_month = &since[..7];
    type Keep = Box<dyn Fn(time::OffsetDateTime) -> bool>;
    let cases: Vec<(String, Keep)> = vec![
        (day.to_string(), Box::new(move |t| t >= day_start && t < day_end)),
        (format!("eq{day}"), Box::new(move |t| t >= day_start && t < day_end)),
        (format!("ne{day}"), Box::new(move |t| t < day_start || t >= day_end)),
        (format!("ge{day}"), Box::new(move |t| t >= day_start)),
        (format!("gt{day}"), Box::new(move |t| t >= day_end)),
        (format!("lt{day}"), Box::new(move |t| t < day_start)),
        (format!("le{day}"), Box::new(move |t| t < day_end)),
        (format!("sa{day}"), Box::new(move |t| t >= day_end)),
        (format!("eb{day}"), Box::new(move |t| t < day_start)),
        (format!("eq{year_month}"), Box::new(move |t| t.year() == day_start.year() && t.month() == day_start.month())),
        (format!("ne{}", &since[..4]), Box::new(move |t| t.year() != day_start.year())),
        (format!("eq{minute}"), Box::new(move |t| t >= minute_start && t < minute_end)),
        (format!("ge{minute}"), Box::new(move |t| t >= minute_start)),
        (format!("lt{minute}"), Box::new(move |t| t < minute_start)),
    ];
    for (value, keep) in cases {
        let want: Vec<f64> = stored.iter().filter(|(_, t)| keep(*t)).map(|(v, _)| *v).collect();
        let query = value.replace('+', "%2B");
        let got = get(port, &format!("/fhir/r4/Observation?site=site-1&_lastUpdated={query}"), "his").await;
        assert_eq!(fhir_values(&got), want, "_lastUpdated={value}");
    }
    // Not vacuous: the day and the minute hold values, and `ne` the day holds none of them.
    let in_minute = stored.iter().filter(|(_, t)| *t >= minute_start && *t < minute_end).count();
    assert!(in_minute >= 1 && stored.iter().any(|(_, t)| *t >= day_start && *t < day_end));

    let five =
        format!("gt{since}&_lastUpdated=gt{since}&_lastUpdated=lt{until_now}&_lastUpdated={day}&_lastUpdated={day}");
    for bad in ["yesterday", "ap2026-12-07", "gt2026-12-07T10:00:00", "2026-02-30", five.as_str()] {
        let (status, _, body) =
            http_request(port, "GET", &format!("/fhir/r4/Observation?_lastUpdated={bad}"), &basic("his", PASSWORD), "")
                .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("_lastUpdated"), "{body}");
    }
}

/// Behind a proxy, the page links start with the hub's configured public address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_links_start_with_the_public_address_when_one_is_configured() {
    let db = TestDb::create();
    let broker = spokegate::sim::mosquitto::Mosquitto::start();
    let mut hub = HubSetup::new(&db, &mqtt_input(broker.port));
    hub.http = "public_url = \"https://hub.example.org/\"".into();
    let keys = tempfile::tempdir().unwrap();
    let key = hub.trusted_gateway(keys.path(), "site-1", "gw-a");
    let instance = hub.serve("public");
    instance.ready().await;
    hub.user("his", PASSWORD, &[("site-1", None, None)]);
    let publisher = spokegate_publisher(broker.port).await;
    for seq in 1..=3u64 {
        let b = reading("site-1", "gw-a", seq, 100.0 + seq as f64);
        publisher
            .publish(spokegate::mqtt::topics::for_body(&b), rumqttc::QoS::AtLeastOnce, false, sealed(&key, &b))
            .await
            .unwrap();
    }
    until("stored", PATIENCE, || async { db.count("SELECT count(*) FROM observations").await == 3 }).await;
    let page = get(instance.http, "/fhir/r4/Observation?site=site-1&_count=2", "his").await;
    let next = link(&page, "next").expect("a next link");
    assert!(next.starts_with("https://hub.example.org/fhir/r4/Observation?site=site-1&_count=2&_cursor="), "{next}");
    let rest = get(instance.http, next.strip_prefix("https://hub.example.org").unwrap(), "his").await;
    assert_eq!(values(&rest).len(), 1);
}
