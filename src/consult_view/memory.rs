//! The consult view of `spokegate demo`: what the demo's hub verified, kept in memory and served
//! without accounts (the demo listens on loopback only, for the person running it). The page, the
//! items and the live feed are the hub service's own.

use super::live::{FeedEvent, Live, LiveFeed, Scope, ScopeQuery};
use super::{asset, esc, image_url, item, media_key, page_html, signed_command, Ask, ImageDone, MediaKey, Proof};
use crate::hub::{MediaProgress, MediaStore};
use crate::model::Body;
use crate::sign::SigningKey;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Messages kept (the oldest are forgotten beyond: hours of a demo's streams).
const KEPT: usize = 200_000;

struct Stored {
    id: i64,
    site: String,
    gw: String,
    consult: Option<String>,
    topic: String,
    kid: String,
    envelope: Vec<u8>,
    json: String,
}

struct Memory {
    messages: VecDeque<Stored>,
    next_id: i64,
    images: HashMap<MediaKey, (String, Vec<u8>)>,
    meta: HashMap<MediaKey, serde_json::Value>,
    media: MediaStore,
}

pub struct MemoryView {
    memory: Mutex<Memory>,
    feed: Arc<LiveFeed>,
    key: Arc<SigningKey>,
    csrf: String,
    outbox: mpsc::UnboundedSender<(String, Vec<u8>)>,
}

impl MemoryView {
    /// Images are joined in `media_dir`; commands the page sends go to `outbox` as (topic, payload).
    pub fn new(
        key: Arc<SigningKey>,
        media_dir: &std::path::Path,
        outbox: mpsc::UnboundedSender<(String, Vec<u8>)>,
    ) -> std::io::Result<Arc<MemoryView>> {
        let mut token = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut token)
            .map_err(|_| std::io::Error::other("no random source"))?;
        Ok(Arc::new(MemoryView {
            memory: Mutex::new(Memory {
                messages: VecDeque::new(),
                next_id: 1,
                images: HashMap::new(),
                meta: HashMap::new(),
                media: MediaStore::new(media_dir)?,
            }),
            feed: LiveFeed::new(),
            key,
            csrf: hex::encode(token),
            outbox,
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a message the demo's hub verified (first time seen) as `envelope` on `topic`.
    pub fn accept(&self, topic: &str, envelope: &[u8], body: &Body) {
        let kid =
            crate::sign::parse_envelope(envelope).map(|s| hex::encode(&s.protected.header.key_id)).unwrap_or_default();
        let mut m = self.lock();
        let image = match media_key(body) {
            Some(k) => {
                if let Some(meta) = body.media.as_ref().and_then(|x| x.meta.as_ref()) {
                    m.meta.insert(k.clone(), serde_json::to_value(meta).unwrap_or_default());
                }
                if let Ok(MediaProgress::Complete { path, .. }) = m.media.accept(body, &kid) {
                    if let (Ok(bytes), Some(media)) = (std::fs::read(&path), body.media.as_ref()) {
                        m.images.insert(k.clone(), (media.mime.clone(), bytes));
                    }
                }
                m.images.get(&k).map(|(_, bytes)| ImageDone {
                    url: image_url(&k),
                    sha256: crate::media::sha256_hex(bytes),
                    meta: m.meta.get(&k).cloned(),
                })
            }
            None => None,
        };
        let id = m.next_id;
        m.next_id += 1;
        let stored_ms = crate::clock::now_micros() as f64 / 1000.0;
        let proof = Proof { id, kid: kid.clone(), stored_ms, verified: Ok(()), clock_fix_us: 0 };
        let json = item(body, &proof, image.as_ref()).to_string();
        let consult = body.consult.clone().flatten();
        if m.messages.len() >= KEPT {
            m.messages.pop_front();
        }
        m.messages.push_back(Stored {
            id,
            site: body.site.clone(),
            gw: body.gw.clone(),
            consult: consult.clone(),
            topic: topic.to_string(),
            kid,
            envelope: envelope.to_vec(),
            json: json.clone(),
        });
        drop(m);
        self.feed.send(FeedEvent::Item(Arc::new(Live { site: body.site.clone(), gw: body.gw.clone(), consult, json })));
    }

    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/", get(index))
            .route("/consult/{id}", get(consult))
            .route("/gateway/{site}/{gw}", get(gateway))
            .route("/assets/{name}", get(|Path(name): Path<String>| async move { asset(&name) }))
            .route("/api/history", get(history))
            .route("/api/live", get(live))
            .route("/api/messages/{id}", get(message))
            .route("/api/images/{site}/{gw}/{media}", get(image))
            .route("/api/command", post(command))
            .with_state(self)
            .layer(axum::middleware::map_response(super::security_headers))
    }
}

type S = State<Arc<MemoryView>>;

async fn index(State(v): S) -> Html<String> {
    let m = v.lock();
    let mut consults: Vec<&str> = Vec::new();
    let mut gateways: Vec<(&str, &str)> = Vec::new();
    for s in m.messages.iter().rev() {
        if let Some(c) = s.consult.as_deref() {
            if !consults.contains(&c) {
                consults.push(c);
            }
        }
        if !gateways.contains(&(s.site.as_str(), s.gw.as_str())) {
            gateways.push((&s.site, &s.gw));
        }
    }
    let mut body = String::from("<h2>Consults</h2><ul>");
    for c in consults {
        body.push_str(&format!("<li><a href=\"/consult/{}\">{}</a></li>", esc(c), esc(c)));
    }
    body.push_str("</ul><h2>Gateways</h2><ul>");
    for (s, g) in gateways {
        body.push_str(&format!("<li><a href=\"/gateway/{0}/{1}\">{0} / {1}</a></li>", esc(s), esc(g)));
    }
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>spokegate demo hub</title>\
         <link rel=\"stylesheet\" href=\"/assets/view.css\"></head><body><header><b>spokegate demo hub</b></header>\
         <main class=\"list\">{body}</ul></main></body></html>"
    ))
}

async fn consult(State(v): S, Path(id): Path<String>) -> Html<String> {
    Html(page_html(&Scope::Consult(id), &v.csrf, None))
}

async fn gateway(State(v): S, Path((site, gw)): Path<(String, String)>) -> Html<String> {
    Html(page_html(&Scope::Gateway { site, gw }, &v.csrf, None))
}

async fn history(State(v): S, Query(q): Query<ScopeQuery>) -> Response {
    let Some(scope) = q.scope() else {
        return (StatusCode::BAD_REQUEST, "consult=, or site= and gw=\n").into_response();
    };
    let m = v.lock();
    let items: Vec<&str> = m
        .messages
        .iter()
        .filter(|s| scope.holds(&s.site, &s.gw, s.consult.as_deref()))
        .map(|s| s.json.as_str())
        .collect();
    let body = format!("{{\"items\":[{}],\"truncated\":false}}", items.join(","));
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn live(State(v): S, Query(q): Query<ScopeQuery>) -> Response {
    match q.scope() {
        Some(scope) => v.feed.stream(scope, |_| true),
        None => (StatusCode::BAD_REQUEST, "consult=, or site= and gw=\n").into_response(),
    }
}

async fn message(State(v): S, Path(id): Path<i64>) -> Response {
    use base64::Engine;
    let m = v.lock();
    match m.messages.iter().find(|s| s.id == id) {
        Some(s) => Json(serde_json::json!({
            "id": s.id,
            "site": s.site,
            "gw": s.gw,
            "topic": s.topic,
            "kid": s.kid,
            "verified_now": true,
            "envelope": "COSE_Sign1 (RFC 9052), EdDSA over the protected header and the body",
            "cose_base64": base64::engine::general_purpose::STANDARD.encode(&s.envelope),
        }))
        .into_response(),
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

async fn image(State(v): S, Path(k): Path<(String, String, String)>) -> Response {
    match v.lock().images.get(&k) {
        Some((mime, bytes)) => ([(header::CONTENT_TYPE, mime.clone())], bytes.clone()).into_response(),
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

async fn command(State(v): S, headers: HeaderMap, Json(ask): Json<Ask>) -> Response {
    if headers.get("x-csrf-token").and_then(|h| h.to_str().ok()) != Some(v.csrf.as_str()) {
        return (StatusCode::FORBIDDEN, "missing or wrong x-csrf-token\n").into_response();
    }
    match signed_command(&v.key, ask) {
        Ok((id, topic, payload)) => {
            if v.outbox.send((topic, payload)).is_err() {
                return (StatusCode::SERVICE_UNAVAILABLE, "the demo is stopping\n").into_response();
            }
            Json(serde_json::json!({ "id": id })).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}
