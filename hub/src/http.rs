//! The service's HTTP side: `/healthz` (the process answers), `/readyz` (connected to the message
//! engine and the database), `/metrics` (Prometheus text), the FHIR R4 read API, and the
//! consult view.

use crate::metrics::Metrics;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
    /// A connection of its own for reads (made again when PostgreSQL ends it).
    pub db: Arc<crate::reads::Reads>,
    /// The consult view's pages and their data.
    pub view: Arc<crate::view::View>,
    /// `[http] public_url` without a trailing `/`: where links for clients start.
    pub public_url: Option<String>,
    /// When this instance started (RFC 3339): the date of its CapabilityStatement.
    pub started: String,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(crate::fhir::routes())
        .merge(crate::view::routes())
        .with_state(state)
        .layer(axum::middleware::map_response(spokegate::consult_view::security_headers))
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    if s.ready.load(Ordering::Relaxed) && !s.db.get().await.is_closed() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: message engine or database not connected\n")
    }
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics.text())
}
