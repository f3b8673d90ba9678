//! The operator's page on the spoke PC, and the fleet's metrics: an HTTP server in the daemon
//! (axum), on loopback by default, with everything it serves built into the binary (it works with
//! the uplink down).
//!
//! - `GET /` the page (in the browser's language: [`i18n`]), `GET /events` its live state as
//!   server-sent events, `GET /api/state` the same once;
//! - `POST /api/command` a request through the daemon's one command executor (the same path as
//!   hub commands and `spokegate consult|capture|fetch`), only with the page's token ([`auth`]);
//! - `GET /metrics` Prometheus text ([`metrics`]).
//!
//! The page shows no patient identifier (the gateway has none) and stores nothing.

pub mod auth;
pub mod i18n;
pub mod metrics;

use crate::command::{Args, LocalRequest, ReplyLine};
use crate::config::{DeviceConfig, DeviceTransport};
use crate::daemon::Counters;
use crate::mqtt::status::LinkState;
use crate::shutdown::Shutdown;
use crate::snapshot::Snapshot;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

const PAGE: &str = include_str!("page.html");

/// The commands the page may send.
const PAGE_COMMANDS: &[&str] =
    &["consult.start", "consult.end", "capture", "records.fetch", "stream.start", "stream.stop"];

/// A device as the page knows it: what it is and which buttons it has.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceInfo {
    pub id: String,
    pub profile: String,
    pub transport: &'static str,
    /// Commands the page offers for it (`capture`, `records.fetch`, `stream.start`/`stop`).
    pub actions: Vec<&'static str>,
    pub waveform: bool,
}

impl DeviceInfo {
    pub fn of(d: &DeviceConfig) -> DeviceInfo {
        let p = &d.profile;
        let mut actions = Vec::new();
        if matches!(d.transport, DeviceTransport::Camera { .. }) {
            actions.push("capture");
        }
        let racp = matches!(&p.decoder, crate::profile::DecoderSpec::Gatt(g) if g.racp);
        if p.dialogue.is_some() || racp || matches!(p.decoder, crate::profile::DecoderSpec::Astm(_)) {
            actions.push("records.fetch");
        }
        if p.wave.as_ref().is_some_and(|w| w.on_demand) {
            actions.extend(["stream.start", "stream.stop"]);
        }
        DeviceInfo {
            id: d.id.clone(),
            profile: p.id.clone(),
            transport: crate::transport::kind(&d.transport),
            actions,
            waveform: p.wave.is_some(),
        }
    }
}

/// Everything the server reads.
pub struct UiState {
    pub site: String,
    pub gw: String,
    pub snapshot: watch::Receiver<Snapshot>,
    /// The waveform chunks signed now (the live traces).
    pub waves: crate::snapshot::WaveTap,
    pub counters: Counters,
    pub requests: mpsc::Sender<LocalRequest>,
    pub devices: Vec<DeviceInfo>,
    pub tokens: auth::Tokens,
    pub catalog: i18n::Catalog,
    pub password: Option<auth::PasswordHash>,
    pub language: String,
    pub registry: Arc<prometheus_client::registry::Registry>,
    pub state_dir: PathBuf,
    /// When the gateway's client certificate (mTLS) stops being valid, seconds since the epoch.
    pub certificate_expires: Option<i64>,
    /// Live streams end when the daemon stops.
    pub shutdown: Shutdown,
}

/// The page's live state.
#[derive(Debug, Clone, Serialize)]
pub struct ViewState {
    pub site: String,
    pub gw: String,
    pub now: i64,
    pub uplink: crate::snapshot::UplinkSnapshot,
    pub queue: Option<QueueView>,
    pub consult: Option<String>,
    pub devices: Vec<DeviceView>,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueView {
    pub depth: u64,
    pub oldest_age_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeviceView {
    #[serde(flatten)]
    pub info: DeviceInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub now: Option<crate::snapshot::DeviceSnapshot>,
}

/// Something the operator can act on: a message id of the page's language and its values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub key: &'static str,
    pub vars: BTreeMap<&'static str, String>,
}

impl UiState {
    /// The state the page shows now.
    pub fn view(&self) -> ViewState {
        let snap = self.snapshot.borrow().clone();
        let queue = self.counters.queue.as_ref().and_then(|q| crate::queue::try_lock(q)?.stats().ok()).map(|st| {
            let age = st.oldest_created.map(|t| (crate::clock::now_micros() - t).max(0) as f64 / 1e6).unwrap_or(0.0);
            QueueView { depth: st.depth, oldest_age_s: age }
        });
        let devices: Vec<DeviceView> = self
            .devices
            .iter()
            .map(|d| DeviceView { info: d.clone(), now: snap.devices.get(&d.id).cloned() })
            .collect();
        let mut problems = problems(&snap, &devices, free_percent(&self.state_dir));
        problems.extend(certificate_problem(self.certificate_expires, crate::clock::now_micros() / 1_000_000));
        ViewState {
            site: self.site.clone(),
            gw: self.gw.clone(),
            now: crate::clock::now_micros(),
            uplink: snap.uplink.clone(),
            queue,
            consult: snap.consult.clone(),
            devices,
            problems,
        }
    }
}

/// What an operator should do something about, from the daemon's picture of itself.
pub fn problems(snap: &Snapshot, devices: &[DeviceView], disk_free: Option<f64>) -> Vec<Problem> {
    let mut out = Vec::new();
    let vars = |pairs: &[(&'static str, &str)]| pairs.iter().map(|(k, v)| (*k, v.to_string())).collect();
    if !snap.uplink.connected {
        out.push(Problem { key: "problem-uplink", vars: BTreeMap::new() });
    }
    for d in devices {
        let Some(now) = &d.now else { continue };
        if matches!(now.state, LinkState::Disconnected | LinkState::Error) {
            let key = if d.info.transport == "ble" { "problem-ble" } else { "problem-device" };
            let detail = now.detail.clone().unwrap_or_default();
            out.push(Problem { key, vars: vars(&[("dev", &d.info.id), ("detail", &detail)]) });
        }
        if let Some(e) = now.last_event.as_ref().filter(|e| e.code == "device-clock" && e.sev != "info") {
            out.push(Problem { key: "problem-clock", vars: vars(&[("dev", &d.info.id), ("detail", &e.text)]) });
        }
    }
    if let Some(free) = disk_free.filter(|f| *f < 10.0) {
        out.push(Problem { key: "problem-disk", vars: vars(&[("free", &format!("{free:.0}"))]) });
    }
    out
}

/// Warn this many days before the client certificate expires.
pub const CERTIFICATE_WARNING_DAYS: i64 = 14;

/// The client certificate expires within [`CERTIFICATE_WARNING_DAYS`] of `now` (or has expired).
pub fn certificate_problem(expires: Option<i64>, now: i64) -> Option<Problem> {
    let left = expires? - now;
    if left <= 0 {
        return Some(Problem { key: "problem-certificate-expired", vars: BTreeMap::new() });
    }
    let days = left / 86_400;
    (days < CERTIFICATE_WARNING_DAYS)
        .then(|| Problem { key: "problem-certificate", vars: BTreeMap::from([("days", days.to_string())]) })
}

/// The free share of the file system holding `dir`, in percent.
fn free_percent(dir: &std::path::Path) -> Option<f64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a zeroed statvfs the call fills.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 || st.f_blocks == 0 {
        return None;
    }
    Some(st.f_bavail as f64 * 100.0 / st.f_blocks as f64)
}

/// The routes, with the password check in front when one is set.
pub fn router(state: Arc<UiState>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/state", get(|State(s): State<Arc<UiState>>| async move { Json(s.view()) }))
        .route("/events", get(events))
        .route("/waves", get(waves))
        .route("/assets/strip.js", get(|| async { crate::consult_view::asset("strip.js") }))
        .route("/api/command", post(command))
        .route("/metrics", get(metrics_text))
        .layer(axum::middleware::from_fn_with_state(state.clone(), password))
        .with_state(state)
}

async fn password(State(s): State<Arc<UiState>>, req: Request, next: Next) -> Response {
    if let Some(hash) = &s.password {
        let given =
            req.headers().get(header::AUTHORIZATION).and_then(|h| h.to_str().ok()).and_then(auth::basic_password);
        if !given.is_some_and(|p| hash.verify(&p)) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"spokegate\"")],
                "password needed",
            )
                .into_response();
        }
    }
    next.run(req).await
}

#[derive(Deserialize)]
struct PageQuery {
    lang: Option<String>,
}

fn escape_json_for_html(v: &impl Serialize) -> String {
    serde_json::to_string(v).unwrap_or_default().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

async fn page(State(s): State<Arc<UiState>>, Query(q): Query<PageQuery>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|h| h.to_str().ok());
    let lang = i18n::pick(q.lang.as_deref(), accept, &s.language);
    let token = s.tokens.issue();
    let html = PAGE
        .replace("{{LANG}}", lang)
        .replace("{{TOKEN}}", &token)
        .replace("{{MESSAGES}}", &escape_json_for_html(s.catalog.messages(lang)))
        .replace("{{LANGUAGES}}", &escape_json_for_html(&i18n::LANGUAGES));
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            ),
        ],
        Html(html),
    )
        .into_response()
}

async fn events(State(s): State<Arc<UiState>>) -> impl IntoResponse {
    let stream = futures::stream::unfold((s.clone(), s.snapshot.clone(), true), |(s, mut rx, first)| async move {
        if s.shutdown.is_triggered() {
            return None;
        }
        if !first {
            // On a change of the picture, or every second (queue figures, times).
            let _ = tokio::time::timeout(Duration::from_secs(1), rx.changed()).await;
            // Coalesce a burst of changes: at most four updates a second (each is the whole state,
            // about 3 kB, and a queue figure read).
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let data = serde_json::to_string(&s.view()).unwrap_or_default();
        Some((Ok::<_, std::convert::Infallible>(Event::default().data(data)), (s, rx, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The waveform chunks as they are signed (JSON, exact samples), for the page's live traces; a
/// page that falls behind skips ahead.
async fn waves(State(s): State<Arc<UiState>>) -> impl IntoResponse {
    let rx = s.waves.subscribe();
    let stream = futures::stream::unfold((rx, s.shutdown.clone()), |(mut rx, mut stop)| async move {
        loop {
            let chunk = tokio::select! {
                _ = stop.triggered() => return None,
                c = rx.recv() => c,
            };
            match chunk {
                Ok(json) => {
                    return Some((Ok::<_, std::convert::Infallible>(Event::default().data(&*json)), (rx, stop)))
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[derive(Debug, Deserialize)]
struct CommandRequest {
    name: String,
    #[serde(default)]
    args: Args,
}

/// The header that carries the page's token.
pub const TOKEN_HEADER: &str = "x-spokegate-token";

async fn command(State(s): State<Arc<UiState>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let token = headers.get(TOKEN_HEADER).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !s.tokens.valid(token) {
        return (StatusCode::FORBIDDEN, "no valid page token: reload the page").into_response();
    }
    // A request from another site's page (a browser always says where it comes from).
    if let (Some(origin), Some(host)) = (headers.get(header::ORIGIN), headers.get(header::HOST)) {
        let origin = origin.to_str().unwrap_or("");
        let host = host.to_str().unwrap_or("");
        if origin.split("://").nth(1) != Some(host) {
            return (StatusCode::FORBIDDEN, "cross-site request refused").into_response();
        }
    }
    let Ok(req) = serde_json::from_slice::<CommandRequest>(&body) else {
        return (StatusCode::BAD_REQUEST, "expected {\"name\":..., \"args\":{...}}").into_response();
    };
    if !PAGE_COMMANDS.contains(&req.name.as_str()) {
        return (StatusCode::BAD_REQUEST, format!("the page does not send `{}`", req.name)).into_response();
    }
    let (tx, mut rx) = mpsc::channel(4);
    if s.requests.send(LocalRequest { name: req.name, args: req.args, replies: tx }).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the gateway is stopping").into_response();
    }
    let mut last: Option<ReplyLine> = None;
    while let Some(r) = rx.recv().await {
        let done = r.state.is_final();
        last = Some(r);
        if done {
            break;
        }
    }
    match last {
        Some(r) => Json(r).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no answer from the gateway").into_response(),
    }
}

async fn metrics_text(State(s): State<Arc<UiState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        metrics::scrape(&s.registry),
    )
        .into_response()
}

/// Serves until shutdown.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<UiState>, mut shutdown: Shutdown) {
    let app = router(state);
    let stop = async move { shutdown.triggered().await };
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop).await {
        tracing::error!(error = %e, "operator page stopped");
    }
}

#[cfg(test)]
mod certificate_tests {
    use super::*;

    #[test]
    fn the_page_warns_two_weeks_before_the_client_certificate_expires_and_after() {
        let now = 1_800_000_000;
        let day = 86_400;
        assert_eq!(certificate_problem(None, now), None, "no client certificate");
        assert_eq!(certificate_problem(Some(now + 30 * day), now), None);
        let soon = certificate_problem(Some(now + 7 * day + 5), now).unwrap();
        assert_eq!((soon.key, soon.vars["days"].as_str()), ("problem-certificate", "7"));
        assert_eq!(certificate_problem(Some(now - 1), now).unwrap().key, "problem-certificate-expired");
    }
}
