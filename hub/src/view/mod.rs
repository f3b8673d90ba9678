//! What the hub doctor sees: a live page per consult and per gateway (ECG strips on the standard
//! grid, the heart sound, spot readings with their proof, images, commands to the spoke), for
//! the hub's own users and their grants. Everything the page needs is built into the binary.

pub mod access;
pub mod accounts;
mod api;
pub mod feed;
mod items;
mod pages;
mod password_failures;
pub mod passwords;

use crate::http::AppState;
use axum::routing::{get, post};
use axum::Router;
use spokegate::sign::SigningKey;
use std::sync::Arc;
use tokio::sync::mpsc;

/// A message for the message engine: (topic, signed payload).
pub type Outgoing = (String, Vec<u8>);

pub struct View {
    pub feed: Arc<feed::Feed>,
    pub access: access::Access,
    /// Signs the commands the pages send.
    pub key: Arc<SigningKey>,
    /// Derives the CSRF tokens of users signed in by a proxy.
    pub csrf_secret: Vec<u8>,
    /// Commands go out through the ingest's connection.
    pub outbox: mpsc::Sender<Outgoing>,
    /// Password checks (sign-in form and HTTP Basic): throttled, and remembered once matched.
    pub passwords: passwords::PasswordChecks,
}

impl View {
    pub fn new(
        key: Arc<SigningKey>,
        access: access::Access,
        outbox: mpsc::Sender<Outgoing>,
        passwords: passwords::PasswordChecks,
    ) -> View {
        // A secret only this hub can make: its signature (deterministic for Ed25519) of a label.
        let csrf_secret = key.sign(b"spokegate-hub view csrf secret");
        View { feed: feed::Feed::new(), access, key, csrf_secret, outbox, passwords }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::index))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/consult/{id}", get(pages::consult))
        .route("/gateway/{site}/{gw}", get(pages::gateway))
        .route("/assets/{name}", get(pages::asset))
        .route("/api/history", get(api::history))
        .route("/api/live", get(api::live))
        .route("/api/messages/{id}", get(api::message))
        .route("/api/images/{site}/{gw}/{media}", get(api::image))
        .route("/api/command", post(api::command))
}
