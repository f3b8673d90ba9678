//! Stored readings as FHIR R4, after the HL7 Personal Health Device IG: spot values as
//! PhdNumericObservation (MDC and LOINC codings, UCUM quantity), waveform chunks as
//! PhdRtsaObservation (one per channel, `valueSampledData` with the device's integer counts as
//! sent: factor = gain, origin = -base x gain, so nothing is resampled or rounded), the device
//! as PhdDevice and the spoke gateway as PhgDevice, joined by the observation-gatewayDevice
//! extension. Every resource has an identifier derived from (site, gw, seq, ...), and the
//! consult bundle is a transaction of conditional PUTs on those identifiers, so posting it to a
//! FHIR server twice stores it once. The consult is the encounter (by identifier); no patient
//! identifier ever leaves the spoke, so `subject` is the receiving system's to add.
//!
//! Readings are patients' data: a request names a hub user (HTTP Basic, or the view's session or
//! single sign-on header) and gets only what that user's grants open (401 without credentials;
//! a consult the grants do not open is not found, as one that does not exist).

use crate::clock_steps::ClockSteps;
use crate::http::AppState;
use crate::search_code::CodeSearch;
use crate::search_page::{self, Position};
use crate::search_time::StoredTerm;
use crate::view::access::{Grant, Refusal, Viewer};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use spokegate::clock::micros_to_rfc3339;
use spokegate::model::{Channel, Code, Unit, Wave};

pub const MDC_SYSTEM: &str = "urn:iso:std:iso:11073:10101";
pub const LOINC_SYSTEM: &str = "http://loinc.org";
pub const UCUM_SYSTEM: &str = "http://unitsofmeasure.org";
const PHD: &str = "http://hl7.org/fhir/uv/phd/StructureDefinition";
const GATEWAY_EXT: &str = "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice";
const ID_OBSERVATION: &str = "urn:spokegate:observation";
const ID_DEVICE: &str = "urn:spokegate:device";
const ID_GATEWAY: &str = "urn:spokegate:gateway";
const ID_CONSULT: &str = "urn:spokegate:consult";
/// Observations in one search page at most.
const MAX_COUNT: i64 = 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/fhir/r4/metadata", get(crate::fhir_capability::metadata))
        .route("/fhir/r4/Observation", get(observations))
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
    // `_lastUpdated` may come twice (a range): read from the query's pairs, see `observations`.
}

/// A search takes at most this many `_lastUpdated` values (two make a window).
const MAX_STORED_TERMS: usize = 4;

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
    let ignored = crate::fhir_capability::outside(taken, pairs.iter().map(|(k, _)| k.as_str()));
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

/// A stable UUID for an identifier (fullUrl of a transaction entry).
fn urn(identifier: &str) -> String {
    format!("urn:uuid:{}", uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, identifier.as_bytes()))
}

fn code_concept(code: &Code) -> Value {
    let mut codings = vec![json!({"system": MDC_SYSTEM, "code": code.mdc.to_string()})];
    if let Some(n) = &code.name {
        codings[0]["display"] = json!(n);
    }
    if let Some(l) = &code.loinc {
        codings.push(json!({"system": LOINC_SYSTEM, "code": l}));
    }
    let mut c = json!({"coding": codings});
    if let Some(n) = &code.name {
        c["text"] = json!(n);
    }
    c
}

fn device_identifier(site: &str, gw: &str, dev: &str) -> String {
    format!("{site}/{gw}/{dev}")
}

fn gateway_identifier(site: &str, gw: &str) -> String {
    format!("{site}/{gw}")
}

/// The spoke gateway (PhgDevice).
pub fn gateway_device(site: &str, gw: &str) -> Value {
    let id = gateway_identifier(site, gw);
    json!({
        "resourceType": "Device",
        "meta": {"profile": [format!("{PHD}/PhgDevice")]},
        "identifier": [{"system": ID_GATEWAY, "value": id}],
        "deviceName": [{"name": format!("spokegate {gw} at {site}"), "type": "user-friendly-name"}],
        "manufacturer": "spokegate",
    })
}

/// A peripheral (PhdDevice).
pub fn phd_device(site: &str, gw: &str, dev: &str, profile: Option<&str>) -> Value {
    let mut d = json!({
        "resourceType": "Device",
        "meta": {"profile": [format!("{PHD}/PhdDevice")]},
        "identifier": [{"system": ID_DEVICE, "value": device_identifier(site, gw, dev)}],
        "deviceName": [{"name": dev, "type": "user-friendly-name"}],
    });
    if let Some(p) = profile {
        d["deviceName"].as_array_mut().expect("an array").push(json!({"name": p, "type": "model-name"}));
    }
    d
}

/// Where an observation points for its device and gateway (FHIR References): the Device
/// entries' fullUrls in a transaction, or in a search's results the devices' identifiers (a
/// logical reference: the hub serves no Device resources, and a conditional reference such as
/// `Device?identifier=...` is only allowed in a transaction).
struct Refs {
    device: Value,
    gateway: Value,
}

impl Refs {
    /// To the Device entries of a transaction.
    fn entries(site: &str, gw: &str, dev: &str) -> Refs {
        Refs {
            device: json!({"reference": urn(&format!("{ID_DEVICE}|{}", device_identifier(site, gw, dev)))}),
            gateway: json!({"reference": urn(&format!("{ID_GATEWAY}|{}", gateway_identifier(site, gw)))}),
        }
    }

    /// By the devices' identifiers.
    fn logical(site: &str, gw: &str, dev: &str) -> Refs {
        Refs {
            device: json!({
                "type": "Device",
                "identifier": {"system": ID_DEVICE, "value": device_identifier(site, gw, dev)},
                "display": dev,
            }),
            gateway: json!({
                "type": "Device",
                "identifier": {"system": ID_GATEWAY, "value": gateway_identifier(site, gw)},
                "display": format!("spokegate {gw} at {site}"),
            }),
        }
    }
}

/// One stored spot value.
pub struct NumericRow {
    pub site: String,
    pub gw: String,
    pub seq: i64,
    pub idx: i32,
    pub dev: Option<String>,
    pub prof: Option<String>,
    pub consult: Option<String>,
    pub code: Code,
    pub value: Option<f64>,
    pub unit: Unit,
    pub quality: String,
    pub t_us: i64,
    pub tdev_us: Option<i64>,
    /// How far the gateway's clock was stepped after it signed this (µs; see `clock_steps`).
    pub clock_fix_us: i64,
    /// When the hub stored it (µs since the epoch): the resource's `meta.lastUpdated`.
    pub stored_us: i64,
}

/// What every observation has; the caller adds its code, value and effective time.
fn common(identifier: &str, profile: &str, consult: Option<&str>, t: i64, stored: i64, refs: &Refs) -> Value {
    let mut o = json!({
        "resourceType": "Observation",
        "meta": {"profile": [format!("{PHD}/{profile}")], "lastUpdated": crate::search_time::instant_text(stored)},
        "identifier": [{"system": ID_OBSERVATION, "value": identifier}],
        "status": "final",
        "issued": micros_to_rfc3339(t),
        "device": refs.device,
        "extension": [{"url": GATEWAY_EXT, "valueReference": refs.gateway}],
    });
    if let Some(c) = consult {
        o["encounter"] = json!({"identifier": {"system": ID_CONSULT, "value": c}});
    }
    o
}

/// A gateway time on the gateway's clock after the steps reported since it was signed, and a note
/// saying so when they moved it.
fn gateway_time(signed: i64, fix: i64) -> (i64, Option<Value>) {
    if fix == 0 {
        return (signed, None);
    }
    let text = format!(
        "Gateway time corrected by {:+} s: the gateway's clock was stepped after it signed this \
         (its clock-stepped event); signed gateway time {}.",
        fix as f64 / 1e6,
        micros_to_rfc3339(signed)
    );
    (signed.saturating_add(fix), Some(json!([{ "text": text }])))
}

fn numeric(r: &NumericRow, refs: &Refs) -> Value {
    let identifier = format!("{}/{}/{}/{}", r.site, r.gw, r.seq, r.idx);
    let (t, note) = gateway_time(r.t_us, r.clock_fix_us);
    let mut o = common(&identifier, "PhdNumericObservation", r.consult.as_deref(), t, r.stored_us, refs);
    o["effectiveDateTime"] = json!(micros_to_rfc3339(r.tdev_us.unwrap_or(t)));
    if let Some(note) = note {
        o["note"] = note;
    }
    o["code"] = code_concept(&r.code);
    match (r.quality.as_str(), r.value) {
        ("ok", Some(v)) => {
            o["valueQuantity"] = json!({"value": v, "unit": r.unit.ucum, "system": UCUM_SYSTEM, "code": r.unit.ucum});
        }
        (q, _) => {
            let reason = match q {
                "nan" => "not-a-number",
                "+inf" => "positive-infinity",
                "-inf" => "negative-infinity",
                "invalid" => "error",
                _ => "unknown",
            };
            o["dataAbsentReason"] = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": reason}]});
        }
    }
    o
}

/// One stored waveform chunk.
pub struct WaveRow {
    pub site: String,
    pub gw: String,
    pub seq: i64,
    pub dev: String,
    pub prof: Option<String>,
    pub consult: Option<String>,
    pub wave: Wave,
    /// How far the gateway's clock was stepped after it signed this (µs; see `clock_steps`).
    pub clock_fix_us: i64,
    /// When the hub stored it (µs since the epoch): the resources' `meta.lastUpdated`.
    pub stored_us: i64,
}

/// One PhdRtsaObservation per channel: the exact counts, with gain and base as factor and origin.
fn rtsa(r: &WaveRow, refs: &Refs) -> Result<Vec<Value>, String> {
    let samples = spokegate::hub::unpack_channels(&r.wave).map_err(|e| e.to_string())?;
    let period_ms = 1000.0 / r.wave.rate;
    Ok(r.wave
        .ch
        .iter()
        .zip(samples)
        .map(|(c, counts)| {
            let identifier = format!("{}/{}/{}/{}", r.site, r.gw, r.seq, c.label);
            let (t0, note) = gateway_time(r.wave.t0, r.clock_fix_us);
            let mut o = common(&identifier, "PhdRtsaObservation", r.consult.as_deref(), t0, r.stored_us, refs);
            o["code"] = code_concept(&c.code);
            o["effectivePeriod"] = json!({
                "start": micros_to_rfc3339(t0),
                "end": micros_to_rfc3339(t0.saturating_add((r.wave.n as f64 * 1e6 / r.wave.rate) as i64)),
            });
            if let Some(note) = note {
                o["note"] = note;
            }
            let data: Vec<String> = counts.iter().map(i32::to_string).collect();
            o["valueSampledData"] = json!({
                "origin": {"value": -(c.base as f64) * c.gain, "unit": c.unit.ucum, "system": UCUM_SYSTEM, "code": c.unit.ucum},
                "period": period_ms,
                "factor": c.gain,
                "dimensions": 1,
                "data": data.join(" "),
            });
            o
        })
        .collect())
}

/// The SQL condition that keeps the rows `grants` open (site, gateway, consult columns prefixed
/// with `of`), with its parameters numbered from `$first`: a client sees what its grants open
/// and nothing else, as in the view.
fn granted(grants: &[Grant], of: &str, first: usize) -> (String, Vec<Option<String>>) {
    let mut params = Vec::new();
    let terms: Vec<String> = grants
        .iter()
        .map(|g| {
            let n = first + params.len();
            params.extend([Some(g.site.clone()), g.gw.clone(), g.consult.clone()]);
            format!(
                "({of}site = ${n} AND (${}::text IS NULL OR {of}gw = ${}) AND (${}::text IS NULL OR {of}consult = ${}))",
                n + 1,
                n + 1,
                n + 2,
                n + 2
            )
        })
        .collect();
    let sql = if terms.is_empty() { "FALSE".to_string() } else { format!("({})", terms.join(" OR ")) };
    (sql, params)
}

/// The spot values `q` selects that `grants` open, in the search's order (site, gateway, seq,
/// value index), after `after` when a page starts there, stored within `stored` when given; at
/// most `limit` (`None`: all).
async fn numeric_rows(
    db: &tokio_postgres::Client,
    q: &ObservationQuery,
    grants: &[Grant],
    after: Option<&Position>,
    stored: &[Vec<StoredTerm>],
    limit: Option<i64>,
) -> Result<Vec<NumericRow>, tokio_postgres::Error> {
    let (after_site, after_gw) = (after.map(|p| p.site.clone()), after.map(|p| p.gw.clone()));
    let (after_seq, after_idx) = (after.map(|p| p.seq), after.map(|p| p.idx));
    // $1 to $5 the page; then, numbered in turn, the parameters of each condition.
    let mut next = 6;
    let mut tokens = Vec::new();
    let mut token_params = Vec::new();
    for (column, value) in [("o.consult", &q.consult), ("o.site", &q.site), ("o.gw", &q.gw), ("o.dev", &q.dev)] {
        if let Some(v) = value {
            let (sql, param) = crate::search_values::equals_any(column, v, next);
            tokens.push(sql);
            token_params.push(param);
            next += 1;
        }
    }
    let tokens = if tokens.is_empty() { "TRUE".to_string() } else { tokens.join(" AND ") };
    let (within, stored_params) = crate::search_time::condition(stored, "m.received_at", next);
    next += stored_params.len();
    let code = q.code.as_deref().map(CodeSearch::parse);
    let (coded, code_params) = match &code {
        Some(c) => c.condition("o.mdc", "o.loinc", next),
        None => ("TRUE".to_string(), Vec::new()),
    };
    next += code_params.len();
    let (open, grant_params) = granted(grants, "o.", next);
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        vec![&limit, &after_site, &after_gw, &after_seq, &after_idx];
    params.extend(token_params.iter().map(|p| p.as_sql()));
    params.extend(stored_params.iter().map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync)));
    params.extend(code_params.iter().map(|p| p.as_sql()));
    params.extend(grant_params.iter().map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync)));
    let rows = db
        .query(
            &format!(
                "SELECT o.site, o.gw, o.seq, o.idx, o.dev, o.consult, o.mdc, o.loinc, o.name, o.value, o.ucum, o.unit_mdc,
                        o.quality, o.t_us, o.tdev_us, o.prof, (EXTRACT(EPOCH FROM m.received_at) * 1000000)::bigint
                 FROM observations o JOIN messages m ON m.id = o.message_id
                 WHERE {tokens} AND {coded} AND {open}
                   AND ($2::text IS NULL OR (o.site, o.gw, o.seq, o.idx) > ($2::text, $3::text, $4::bigint, $5::integer))
                   AND {within}
                 ORDER BY o.site, o.gw, o.seq, o.idx LIMIT $1::bigint"
            ),
            &params,
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| NumericRow {
            site: r.get(0),
            gw: r.get(1),
            seq: r.get(2),
            idx: r.get(3),
            dev: r.get(4),
            prof: r.get(15),
            consult: r.get(5),
            code: Code { mdc: r.get::<_, i64>(6) as u32, loinc: r.get(7), name: r.get(8) },
            value: r.get(9),
            unit: Unit { ucum: r.get(10), mdc: r.get::<_, Option<i64>>(11).map(|m| m as u32) },
            quality: r.get(12),
            t_us: r.get(13),
            tdev_us: r.get(14),
            clock_fix_us: 0,
            stored_us: r.get(16),
        })
        .collect())
}

#[derive(Deserialize)]
struct StoredChannel {
    label: String,
    code: Code,
    unit: Unit,
    gain: f64,
    base: i64,
    enc: String,
}

async fn wave_rows(
    db: &tokio_postgres::Client,
    consult: &str,
    grants: &[Grant],
) -> Result<Vec<WaveRow>, tokio_postgres::Error> {
    let (open, grant_params) = granted(grants, "w.", 2);
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&consult];
    params.extend(grant_params.iter().map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync)));
    let rows = db
        .query(
            &format!(
                "SELECT w.site, w.gw, m.seq, w.dev, w.consult, w.stream, w.rate, w.i0, w.n, w.t0_us, w.channels, w.data, m.prof,
                        (EXTRACT(EPOCH FROM m.received_at) * 1000000)::bigint
                 FROM wave_chunks w JOIN messages m ON m.id = w.message_id
                 WHERE w.consult = $1 AND {open} ORDER BY w.site, w.gw, w.dev, w.stream, w.i0"
            ),
            &params,
        )
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let channels: Vec<StoredChannel> = serde_json::from_value(r.get(10)).unwrap_or_default();
        let data: Vec<Vec<u8>> = r.get(11);
        let ch = channels
            .into_iter()
            .zip(data)
            .map(|(c, data)| Channel {
                label: c.label,
                code: c.code,
                unit: c.unit,
                gain: c.gain,
                base: c.base,
                enc: c.enc,
                data,
            })
            .collect();
        out.push(WaveRow {
            site: r.get(0),
            gw: r.get(1),
            seq: r.get(2),
            dev: r.get(3),
            prof: r.get(12),
            consult: r.get(4),
            wave: Wave {
                stream: r.get(5),
                rate: r.get(6),
                i0: r.get::<_, i64>(7) as u64,
                t0: r.get(9),
                n: r.get::<_, i32>(8) as u32,
                ch,
            },
            clock_fix_us: 0,
            stored_us: r.get(13),
        });
    }
    Ok(out)
}

/// Sets the rows' `clock_fix_us` from their gateways' clock steps (one read of them for both).
async fn correct_clocks(
    db: &tokio_postgres::Client,
    numbers: &mut [NumericRow],
    waves: &mut [WaveRow],
) -> Result<(), tokio_postgres::Error> {
    let gateways = numbers.iter().map(|r| (r.site.as_str(), r.gw.as_str()));
    let steps = ClockSteps::of(db, gateways.chain(waves.iter().map(|r| (r.site.as_str(), r.gw.as_str())))).await?;
    for r in numbers {
        r.clock_fix_us = steps.correction(&r.site, &r.gw, r.seq as u64);
    }
    for r in waves {
        r.clock_fix_us = steps.correction(&r.site, &r.gw, r.seq as u64);
    }
    Ok(())
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

/// `GET /fhir/r4/Observation?consult=&site=&gw=&dev=&code=&_lastUpdated=&_count=`: a searchset of the spot
/// values (devices by their identifiers, a logical reference), a page
/// of `_count` (at most [`MAX_COUNT`]) at a time: a `next` link while there are more, `total`
/// when the first page holds them all.
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
    let last_updated: Vec<String> = pairs.into_iter().filter(|(k, _)| k == "_lastUpdated").map(|(_, v)| v).collect();
    if last_updated.len() > MAX_STORED_TERMS {
        return outcome(StatusCode::BAD_REQUEST, "invalid", "_lastUpdated: at most four values");
    }
    let stored = match last_updated.iter().map(|v| StoredTerm::parse_any(v)).collect::<Result<Vec<_>, _>>() {
        Ok(b) => b,
        Err(why) => return outcome(StatusCode::BAD_REQUEST, "invalid", &why),
    };
    let count = q.count.unwrap_or(MAX_COUNT).clamp(1, MAX_COUNT);
    let db = s.db.get().await;
    // One more than the page: whether there is a next one.
    let mut rows = match numeric_rows(&db, &q, &v.grants, after.as_ref(), &stored, Some(count + 1)).await {
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
    if !ignored.is_empty() {
        let why = format!("not taken by the Observation search, and ignored: {}", ignored.join(", "));
        entries.push(json!({
            "resource": {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "not-supported", "diagnostics": why}]},
            "search": {"mode": "outcome"}
        }));
    }
    let base = search_page::base(s.public_url.as_deref(), &headers);
    let page_url = |cursor: Option<String>| {
        let mut params = vec![
            ("consult", q.consult.clone()),
            ("site", q.site.clone()),
            ("gw", q.gw.clone()),
            ("dev", q.dev.clone()),
            ("code", q.code.clone()),
        ];
        params.extend(last_updated.iter().map(|v| ("_lastUpdated", Some(v.clone()))));
        params.extend([("_count", Some(count.to_string())), ("_cursor", cursor)]);
        search_page::url(&format!("{base}/fhir/r4/Observation"), &params)
    };
    let mut links = vec![json!({"relation": "self", "url": page_url(q.cursor.clone())})];
    if let (true, Some(last)) = (more, rows.last()) {
        let end = Position { site: last.site.clone(), gw: last.gw.clone(), seq: last.seq, idx: last.idx };
        links.push(json!({"relation": "next", "url": page_url(Some(end.cursor()))}));
    }
    let mut bundle = json!({"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries});
    if !more && after.is_none() {
        bundle["total"] = json!(rows.len());
    }
    fhir_json(bundle)
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
    };
    let db = s.db.get().await;
    // A transaction bundle is whole: every spot value of the consult, however many.
    let (mut numbers, mut waves) =
        match (numeric_rows(&db, &oq, &v.grants, None, &[], None).await, wave_rows(&db, &q.consult, &v.grants).await) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored chunk whose signed `t0` sits at the end of the range (a gateway's bug, signed all
    /// the same) gives a resource, not an overflow panic (`t0 + duration` overflowed before).
    #[test]
    fn a_chunk_at_the_end_of_time_gives_a_resource_without_overflow() {
        let counts: [i16; 4] = [-120, 15, 300, -61];
        let ch = Channel {
            label: "I".into(),
            code: Code { mdc: 131329, loinc: None, name: None },
            unit: Unit { ucum: "mV".into(), mdc: None },
            gain: 0.005,
            base: 0,
            enc: "i16le".into(),
            data: counts.iter().flat_map(|v| v.to_le_bytes()).collect(),
        };
        let wave = Wave { stream: "ecg".into(), rate: 360.0, i0: 0, t0: i64::MAX - 1, n: 4, ch: vec![ch] };
        let row = WaveRow {
            site: "s".into(),
            gw: "g".into(),
            seq: 1,
            dev: "ecg-1".into(),
            prof: None,
            consult: None,
            wave,
            clock_fix_us: 0,
            stored_us: 0,
        };
        let refs = Refs::entries("s", "g", "ecg-1");
        let out = rtsa(&row, &refs).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["valueSampledData"]["data"], "-120 15 300 -61");
    }
}
