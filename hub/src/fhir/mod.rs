//! The hub's FHIR R4 API: `GET /fhir/r4/Observation` (a searchset of the spot values, paged),
//! `GET /fhir/r4/Device?identifier=` (the devices the observations refer to, [`devices`]),
//! `GET /fhir/r4/Bundle?consult=` (a consult's readings as a transaction) and
//! `GET /fhir/r4/metadata` (`fhir_capability`). How a stored reading becomes a resource is in
//! [`resources`]; which rows a request reads, in [`rows`].
//!
//! Readings are patients' data: a request names a hub user (HTTP Basic, or the view's session or
//! single sign-on header) and gets only what that user's grants open (401 without credentials;
//! a consult the grants do not open is not found, as one that does not exist).

mod devices;
mod ranges;
mod resources;
mod rows;

pub use resources::{LOINC_SYSTEM, MDC_SYSTEM, UCUM_SYSTEM};

use crate::http::AppState;
use crate::search_page::{self, Position};
use crate::view::access::{Grant, Refusal, Viewer};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ranges::{ranges, Ranges};
use resources::{gateway_device, numeric, phd_device, rtsa, urn, Refs, ID_DEVICE, ID_GATEWAY, ID_OBSERVATION};
use rows::{correct_clocks, numeric_rows, wave_rows, Order};
use serde::Deserialize;
use serde_json::{json, Value};

/// Observations in one search page at most.
const MAX_COUNT: i64 = 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/fhir/r4/metadata", get(crate::fhir_capability::metadata))
        .route("/fhir/r4/Observation", get(observations))
        .route("/fhir/r4/Device", get(devices::search))
        .route("/fhir/r4/Bundle", get(consult_bundle))
}

#[derive(Debug, Deserialize)]
pub struct ObservationQuery {
    consult: Option<String>,
    site: Option<String>,
    gw: Option<String>,
    dev: Option<String>,
    /// A token: an MDC or LOINC code, with its system or without (see `search_code`).
    code: Option<String>,
    #[serde(rename = "_count")]
    count: Option<i64>,
    /// Where the page starts: the cursor of the previous page's `next` link.
    #[serde(rename = "_cursor")]
    cursor: Option<String>,
    /// `count` asks how many match (as `_count=0`); `false` whole resources (as without it);
    /// another value is not applied (`fhir_capability::outside` names it).
    #[serde(rename = "_summary")]
    summary: Option<String>,
    /// `date` or `-date`: in the order of when values were measured ([`Order`]); another value
    /// is not applied (`fhir_capability::outside` names it).
    #[serde(rename = "_sort")]
    sort: Option<String>,
    /// Whether pages say how many match (`Bundle.total`): see [`Total`].
    #[serde(rename = "_total")]
    total: Option<Total>,
    // `_lastUpdated`, `date` and `value-quantity` may come twice (a range): read from the
    // query's pairs, see `ranges`.
}

/// FHIR search's `_total`: `none` (no page says how many match), `estimate` (as without it: the
/// first page says so when it holds them all, which costs nothing) or `accurate` (every page
/// says so: a count of the matches for each page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Total {
    None,
    Estimate,
    Accurate,
}

impl Total {
    fn as_str(self) -> &'static str {
        match self {
            Total::None => "none",
            Total::Estimate => "estimate",
            Total::Accurate => "accurate",
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct BundleQuery {
    consult: String,
}

pub fn fhir_json(v: Value) -> Response {
    ([(header::CONTENT_TYPE, "application/fhir+json")], v.to_string()).into_response()
}

pub fn outcome(status: StatusCode, code: &str, text: &str) -> Response {
    let body = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]});
    (status, [(header::CONTENT_TYPE, "application/fhir+json")], body.to_string()).into_response()
}

/// What every FHIR read checks before its own work, in this order: the client's credentials, a
/// query string it can read, a format the hub speaks, and the parameters `what` does not take
/// (refused when the client asks for strict handling, FHIR search's "handling" preference;
/// else given back, for a search to report).
async fn admit<T>(
    s: &AppState,
    headers: &HeaderMap,
    q: Result<Query<T>, QueryRejection>,
    pairs: &[(String, String)],
    what: &str,
    taken: &[&str],
) -> Result<(Viewer, T, Vec<String>), Response> {
    let v = client(s, headers).await?;
    let Query(q) = q.map_err(parameters_refused)?;
    if let Some(why) = not_acceptable(headers, pairs) {
        return Err(why);
    }
    let ignored = crate::fhir_capability::outside(taken, pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if !ignored.is_empty() && crate::fhir_capability::strict(headers) {
        let why = format!("{what} does not take {}", ignored.join(", "));
        return Err(outcome(StatusCode::BAD_REQUEST, "not-supported", &why));
    }
    Ok((v, q, ignored))
}

/// 406 when the client asks for a format other than JSON (`_format`, or `Accept`).
pub fn not_acceptable(headers: &HeaderMap, pairs: &[(String, String)]) -> Option<Response> {
    let format = pairs.iter().find(|(k, _)| k == "_format").map(|(_, v)| v.as_str());
    crate::fhir_format::refused(headers, format).map(|why| outcome(StatusCode::NOT_ACCEPTABLE, "not-supported", &why))
}

/// A query string the search cannot read (`_count=ten`, a parameter given twice, a missing
/// `consult`): 400 with an OperationOutcome saying why, as for every other refusal.
fn parameters_refused(e: QueryRejection) -> Response {
    outcome(StatusCode::BAD_REQUEST, "invalid", &format!("the search's parameters: {}", e.body_text()))
}

fn db_error(e: tokio_postgres::Error) -> Response {
    tracing::warn!(error = %e, "FHIR query failed");
    outcome(StatusCode::SERVICE_UNAVAILABLE, "transient", "the database did not answer")
}

/// The client of a FHIR request (a hub user: session, proxy header or HTTP Basic), or the 401 that
/// asks for one (429 while the name is refused after too many failures; 503 when the credentials
/// could not be checked, so that a client does not take a database outage for a wrong password).
async fn client(s: &AppState, headers: &HeaderMap) -> Result<Viewer, Response> {
    match s.view.access.client(&*s.db.get().await, headers, &s.view.csrf_secret, &s.view.passwords).await {
        Ok(v) => Ok(v),
        Err(Refusal::Unavailable) => {
            let mut r = outcome(StatusCode::SERVICE_UNAVAILABLE, "transient", "the database did not answer");
            r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(1));
            Err(r)
        }
        Err(Refusal::Throttled(wait)) => {
            let mut r = outcome(StatusCode::TOO_MANY_REQUESTS, "throttled", "too many failed sign-ins for this name");
            r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(wait.as_secs() + 1));
            Err(r)
        }
        Err(Refusal::Credentials) => {
            let mut r = outcome(StatusCode::UNAUTHORIZED, "login", "a hub user's credentials are needed (HTTP Basic)");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"spokegate-hub\", charset=\"UTF-8\""),
            );
            Err(r)
        }
    }
}

/// `GET /fhir/r4/Observation?consult=&site=&gw=&dev=&code=&date=&value-quantity=&_lastUpdated=&_sort=&_count=&_total=&_summary=`:
/// a searchset of the spot values (devices by their identifiers, a logical reference), a page of
/// `_count` (at most [`MAX_COUNT`]) at a time: a `next` link while there are more, `total` when
/// the first page holds them all or on every page with `_total=accurate`; with `_count=0` or
/// `_summary=count`, only the total.
async fn observations(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<ObservationQuery>, QueryRejection>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    // Parameters the search does not take are ignored and said so (an OperationOutcome entry).
    let taken = crate::fhir_capability::observation_parameters();
    let (v, q, ignored) = match admit(&s, &headers, q, &pairs, "the Observation search", &taken).await {
        Ok(admitted) => admitted,
        Err(r) => return r,
    };
    let after = match q.cursor.as_deref().map(Position::from_cursor) {
        Some(None) => return outcome(StatusCode::BAD_REQUEST, "invalid", "_cursor is not a cursor this server made"),
        Some(Some(p)) => Some(p),
        None => None,
    };
    let ranges = match ranges(&pairs) {
        Ok(r) => r,
        Err(why) => return outcome(StatusCode::BAD_REQUEST, "invalid", &why),
    };
    let db = s.db.get().await;
    if q.count.is_some_and(|n| n < 0) {
        return outcome(StatusCode::BAD_REQUEST, "invalid", "_count: not a number of resources");
    }
    // FHIR search: no more resources than asked for; zero asks how many match (as R5 says, the
    // same as `_summary=count`): the total and no entries.
    if q.count == Some(0) || q.summary.as_deref() == Some("count") {
        return count_only(&db, &q, &v.grants, &ranges, &ignored).await;
    }
    let count = q.count.map_or(MAX_COUNT, |n| n.min(MAX_COUNT));
    // One more than the page: whether there is a next one.
    let order = Order::of(q.sort.as_deref());
    // A cursor holds a position in the order of the search that made it.
    if after.as_ref().is_some_and(|p| p.measured.is_some() != (order != Order::Signed)) {
        return outcome(StatusCode::BAD_REQUEST, "invalid", "_cursor is from a search in another order (_sort)");
    }
    let spans = match rows::spans_for(&db, &ranges, order, &v.grants).await {
        Ok(s) => s,
        Err(e) => return db_error(e),
    };
    let page = numeric_rows(&db, &q, &v.grants, (after.as_ref(), order), (&ranges, spans.as_ref()), Some(count + 1));
    let mut rows = match page.await {
        Ok(r) => r,
        Err(e) => return db_error(e),
    };
    let more = rows.len() as i64 > count;
    rows.truncate(count as usize);
    if let Err(e) = correct_clocks(&db, &mut rows, &mut []).await {
        return db_error(e);
    }
    let mut entries: Vec<Value> = rows
        .iter()
        .map(|r| {
            let o = numeric(r, &Refs::logical(&r.site, &r.gw, r.dev.as_deref().unwrap_or("")));
            let id = o["identifier"][0]["value"].as_str().unwrap_or("").to_string();
            json!({"fullUrl": urn(&format!("{ID_OBSERVATION}|{id}")), "resource": o, "search": {"mode": "match"}})
        })
        .collect();
    entries.extend(ignored_outcome("the Observation search", &ignored));
    let base = search_page::base(s.public_url.as_deref(), &headers);
    let page_url = |cursor: Option<String>| {
        let mut params = vec![
            ("consult", q.consult.clone()),
            ("site", q.site.clone()),
            ("gw", q.gw.clone()),
            ("dev", q.dev.clone()),
            ("code", q.code.clone()),
        ];
        params.extend(ranges.given.iter().map(|(name, v)| (*name, Some(v.clone()))));
        params.extend([
            ("_sort", order.sort().map(str::to_string)),
            ("_total", q.total.map(|t| t.as_str().to_string())),
            ("_count", Some(count.to_string())),
            ("_cursor", cursor),
        ]);
        search_page::url(&format!("{base}/fhir/r4/Observation"), &params)
    };
    let mut links = vec![json!({"relation": "self", "url": page_url(q.cursor.clone())})];
    if let (true, Some(last)) = (more, rows.last()) {
        let end = Position {
            site: last.site.clone(),
            gw: last.gw.clone(),
            seq: last.seq,
            idx: last.idx,
            measured: last.measured_us,
        };
        links.push(json!({"relation": "next", "url": page_url(Some(end.cursor()))}));
    }
    let mut bundle = json!({"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries});
    match q.total {
        Some(Total::None) => {}
        Some(Total::Accurate) if more || after.is_some() => {
            match rows::numeric_count(&db, &q, &v.grants, (&ranges, spans.as_ref())).await {
                Ok(n) => bundle["total"] = json!(n),
                Err(e) => return db_error(e),
            }
        }
        _ if !more && after.is_none() => bundle["total"] = json!(rows.len()),
        _ => {}
    }
    fhir_json(bundle)
}

/// The searchset of a search with `_count=0` or `_summary=count`: how many spot values match, and no entries (but
/// the outcome naming the parameters ignored, as on any page).
async fn count_only(
    db: &tokio_postgres::Client,
    q: &ObservationQuery,
    grants: &[Grant],
    ranges: &Ranges,
    ignored: &[String],
) -> Response {
    let spans = match rows::spans_for(db, ranges, Order::Signed, grants).await {
        Ok(s) => s,
        Err(e) => return db_error(e),
    };
    let total = match rows::numeric_count(db, q, grants, (ranges, spans.as_ref())).await {
        Ok(n) => n,
        Err(e) => return db_error(e),
    };
    let mut bundle = json!({"resourceType": "Bundle", "type": "searchset", "total": total});
    if let Some(o) = ignored_outcome("the Observation search", ignored) {
        bundle["entry"] = json!([o]);
    }
    fhir_json(bundle)
}

/// The entry that names the parameters a search ignored (`search.mode` outcome), if any.
fn ignored_outcome(what: &str, ignored: &[String]) -> Option<Value> {
    if ignored.is_empty() {
        return None;
    }
    let why = format!("not taken by {what}, and ignored: {}", ignored.join(", "));
    Some(json!({
        "resource": {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "not-supported", "diagnostics": why}]},
        "search": {"mode": "outcome"}
    }))
}

/// `GET /fhir/r4/Bundle?consult=ID`: everything of a consult as a transaction bundle that a FHIR
/// server stores idempotently (conditional PUTs on the identifiers).
async fn consult_bundle(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<BundleQuery>, QueryRejection>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    // A transaction has no place to say what was ignored: only a strict client hears of it.
    let taken = crate::fhir_capability::BUNDLE_PARAMETERS;
    let (v, q, _) = match admit(&s, &headers, q, &pairs, "the consult's Bundle", taken).await {
        Ok(admitted) => admitted,
        Err(r) => return r,
    };
    // A transaction is one consult's (consult ids hold no commas: a list is not one).
    if q.consult.contains(',') {
        return outcome(StatusCode::BAD_REQUEST, "invalid", "the consult's Bundle takes one consult");
    }
    let oq = ObservationQuery {
        consult: Some(q.consult.clone()),
        site: None,
        gw: None,
        dev: None,
        code: None,
        count: None,
        cursor: None,
        summary: None,
        sort: None,
        total: None,
    };
    let db = s.db.get().await;
    // A transaction bundle is whole: every spot value of the consult, however many.
    let (mut numbers, mut waves) = match (
        numeric_rows(&db, &oq, &v.grants, (None, Order::Signed), (&Ranges::default(), None), None).await,
        wave_rows(&db, &q.consult, &v.grants).await,
    ) {
        (Ok(n), Ok(w)) => (n, w),
        (Err(e), _) | (_, Err(e)) => return db_error(e),
    };
    if let Err(e) = correct_clocks(&db, &mut numbers, &mut waves).await {
        return db_error(e);
    }
    if numbers.is_empty() && waves.is_empty() {
        return outcome(StatusCode::NOT_FOUND, "not-found", "no readings are stored for this consult");
    }
    let mut entries = Vec::new();
    let mut devices = std::collections::BTreeSet::new();
    let mut put = |resource: Value, system: &str| {
        let value = resource["identifier"][0]["value"].as_str().unwrap_or("").to_string();
        let kind = resource["resourceType"].as_str().unwrap_or("").to_string();
        let full = urn(&format!("{system}|{value}"));
        entries.push(json!({
            "fullUrl": full,
            "resource": resource,
            "request": {"method": "PUT", "url": format!("{kind}?identifier={system}|{value}")},
        }));
        full
    };
    let mut refs_for =
        |site: &str, gw: &str, dev: &str, prof: Option<&str>, put: &mut dyn FnMut(Value, &str) -> String| {
            if devices.insert((site.to_string(), gw.to_string(), String::new())) {
                put(gateway_device(site, gw), ID_GATEWAY);
            }
            if devices.insert((site.to_string(), gw.to_string(), dev.to_string())) {
                put(phd_device(site, gw, dev, prof), ID_DEVICE);
            }
            Refs::entries(site, gw, dev)
        };
    for r in &numbers {
        let refs = refs_for(&r.site, &r.gw, r.dev.as_deref().unwrap_or(""), r.prof.as_deref(), &mut put);
        put(numeric(r, &refs), ID_OBSERVATION);
    }
    for r in &waves {
        let refs = refs_for(&r.site, &r.gw, &r.dev, r.prof.as_deref(), &mut put);
        match rtsa(r, &refs) {
            Ok(obs) => obs.into_iter().for_each(|o| {
                put(o, ID_OBSERVATION);
            }),
            Err(e) => tracing::warn!(site = r.site, gw = r.gw, seq = r.seq, error = e, "waveform chunk not rendered"),
        }
    }
    fhir_json(json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}))
}
