//! The page's data: the history of a consult or gateway from PostgreSQL, its live items (server-sent
//! events), a message's proof, an image's bytes, and the commands a doctor sends to the spoke.
//! What a viewer may not see answers 404, exactly as what does not exist.

use super::access::Viewer;
use super::items::{self, StoredRow, ROW_COLUMNS};
use crate::http::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use spokegate::consult_view::live::ScopeQuery;
use spokegate::consult_view::{signed_command, Ask, Scope};

/// A consult's history is read up to this many messages, the newest (the page says when older
/// ones were left out).
const CONSULT_HISTORY: i64 = 50_000;
/// Of a consult's waveforms, the history holds the last ten minutes (a 12-lead at 500 Hz is 3.6
/// million samples in that time), all of those of a gateway whose clock was stepped (its signed
/// times cannot bound the ten minutes); spot readings, events and images all.
const WAVE_HISTORY_US: i64 = 10 * 60 * 1_000_000;
/// A gateway's page starts from its newest messages.
const GATEWAY_HISTORY: i64 = 5_000;

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, "sign in first\n").into_response()
}

pub async fn viewer(s: &AppState, headers: &HeaderMap) -> Option<Viewer> {
    s.view.access.viewer(&*s.db.get().await, headers, &s.view.csrf_secret).await
}

/// True when the viewer may open the scope's page (and it has something in it).
pub async fn may_open(s: &AppState, v: &Viewer, scope: &Scope) -> bool {
    match scope {
        Scope::Gateway { site, gw } => v.may_open_gateway(site, gw),
        Scope::Consult(c) => {
            match s.db.get().await.query("SELECT DISTINCT site, gw FROM messages WHERE consult = $1", &[c]).await {
                Ok(rows) => rows.iter().any(|r| v.may_see(r.get(0), r.get(1), Some(c))),
                Err(e) => {
                    tracing::warn!(error = %e, "view: consult not looked up");
                    false
                }
            }
        }
    }
}

pub async fn history(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<ScopeQuery>) -> Response {
    let Some(v) = viewer(&s, &headers).await else { return unauthorized() };
    let Some(scope) = q.scope() else {
        return (StatusCode::BAD_REQUEST, "consult=, or site= and gw=\n").into_response();
    };
    if !may_open(&s, &v, &scope).await {
        return not_found();
    }
    let rows = match &scope {
        Scope::Consult(c) => {
            s.db.get()
                .await
                .query(
                    &format!(
                        "SELECT * FROM (SELECT {ROW_COLUMNS} FROM messages WHERE consult = $1
                       AND (kind <> 'wave'
                            OR t_us >= (SELECT greatest(max(t_us), $4) FROM messages
                                        WHERE consult = $1 AND kind = 'wave') - $2
                            -- A gateway whose clock was stepped: its signed times cannot bound
                            -- ten minutes, so all its waves (within the newest messages).
                            OR (site, gw) IN (SELECT site, gw FROM clock_steps))
                     ORDER BY id DESC LIMIT $3) newest ORDER BY id"
                    ),
                    // A signed time at the bottom of the range does not take the subtraction below it.
                    &[c, &WAVE_HISTORY_US, &(CONSULT_HISTORY + 1), &(i64::MIN + WAVE_HISTORY_US)],
                )
                .await
        }
        Scope::Gateway { site, gw } => {
            s.db.get()
                .await
                .query(
                    &format!(
                        "SELECT * FROM (SELECT {ROW_COLUMNS} FROM messages WHERE site = $1 AND gw = $2
                     ORDER BY id DESC LIMIT $3) newest ORDER BY id"
                    ),
                    &[site, gw, &GATEWAY_HISTORY],
                )
                .await
        }
    };
    let rows = match rows {
        Ok(r) => r,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}\n")).into_response(),
    };
    let truncated = matches!(scope, Scope::Consult(_)) && rows.len() as i64 > CONSULT_HISTORY;
    let stored: Vec<StoredRow> = rows
        .iter()
        .skip(usize::from(truncated))
        .map(StoredRow::from_row)
        .filter(|r| v.may_see(&r.site, &r.gw, r.consult.as_deref()))
        .collect();
    let items = items::items(&*s.db.get().await, &stored, &s.view.feed.keys()).await;
    Json(serde_json::json!({ "items": items, "truncated": truncated })).into_response()
}

pub async fn live(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<ScopeQuery>) -> Response {
    let Some(v) = viewer(&s, &headers).await else { return unauthorized() };
    let Some(scope) = q.scope() else {
        return (StatusCode::BAD_REQUEST, "consult=, or site= and gw=\n").into_response();
    };
    if !may_open(&s, &v, &scope).await {
        return not_found();
    }
    s.view.feed.live.stream(scope, move |item| v.may_see(&item.site, &item.gw, item.consult.as_deref()))
}

/// A message's proof: the signed envelope as it arrived, the key it names, and the check now.
pub async fn message(State(s): State<AppState>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    use base64::Engine;
    let Some(v) = viewer(&s, &headers).await else { return unauthorized() };
    let db = s.db.get().await;
    let row = match db.query_opt(&format!("SELECT {ROW_COLUMNS}, seq FROM messages WHERE id = $1"), &[&id]).await {
        Ok(Some(r)) => r,
        Ok(None) => return not_found(),
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}\n")).into_response(),
    };
    let stored = StoredRow::from_row(&row);
    if !v.may_see(&stored.site, &stored.gw, stored.consult.as_deref()) {
        return not_found();
    }
    let seq: i64 = row.get(8);
    let key = db
        .query_opt("SELECT jwk, revoked_at IS NOT NULL FROM trusted_keys WHERE kid = $1", &[&stored.kid])
        .await
        .ok()
        .flatten();
    let proof = items::open(&stored, &s.view.feed.keys()).map(|(_, p)| p);
    Json(serde_json::json!({
        "id": stored.id,
        "site": stored.site,
        "gw": stored.gw,
        "seq": seq,
        "topic": stored.topic,
        "kid": stored.kid,
        "key": key.as_ref().map(|k| k.get::<_, serde_json::Value>(0)),
        "key_revoked": key.as_ref().map(|k| k.get::<_, bool>(1)),
        "verified_now": matches!(proof, Some(Ok(()))),
        "why": proof.and_then(|p| p.err()),
        "envelope": "COSE_Sign1 (RFC 9052), EdDSA over the protected header and the body",
        "cose_base64": base64::engine::general_purpose::STANDARD.encode(&stored.envelope),
    }))
    .into_response()
}

pub async fn image(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((site, gw, media)): Path<(String, String, String)>,
) -> Response {
    let Some(v) = viewer(&s, &headers).await else { return unauthorized() };
    let row =
        s.db.get()
            .await
            .query_opt(
                "SELECT mime, bytes, consult FROM images WHERE site = $1 AND gw = $2 AND media_id = $3",
                &[&site, &gw, &media],
            )
            .await;
    match row {
        Ok(Some(r)) if v.may_see(&site, &gw, r.get::<_, Option<&str>>(2)) => (
            [(header::CONTENT_TYPE, r.get::<_, String>(0)), (header::CACHE_CONTROL, "private, max-age=86400".into())],
            r.get::<_, Vec<u8>>(1),
        )
            .into_response(),
        Ok(_) => not_found(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}\n")).into_response(),
    }
}

/// Signs a command with the hub's key and sends it to the gateway; the replies come back on the
/// page's live stream (they are signed gateway messages like any other).
pub async fn command(State(s): State<AppState>, headers: HeaderMap, Json(ask): Json<Ask>) -> Response {
    let Some(v) = viewer(&s, &headers).await else { return unauthorized() };
    if headers.get("x-csrf-token").and_then(|h| h.to_str().ok()) != Some(v.csrf.as_str()) {
        return (StatusCode::FORBIDDEN, "missing or wrong x-csrf-token\n").into_response();
    }
    if !v.may_ask(&ask.site, &ask.gw) {
        return not_found();
    }
    let (site, gw, name) = (ask.site.clone(), ask.gw.clone(), ask.name.clone());
    let (id, topic, signed) = match signed_command(&s.view.key, ask) {
        Ok(c) => c,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    if s.view.outbox.send((topic, signed)).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the service is stopping\n").into_response();
    }
    tracing::info!(user = v.name, site, gw, cmd = name, id, "command sent from the view");
    Json(serde_json::json!({ "id": id })).into_response()
}
