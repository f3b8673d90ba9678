//! The keys this hub trusts, kept in PostgreSQL so that every instance verifies with the same
//! set: a gateway key bound to (site, gw), a hub key bound to a hub id. `spokegate-hub keys
//! add|list|revoke` manage them; a serving instance reloads them every few seconds and at once
//! when a message names a kid it does not know.

use crate::db::DbError;
use spokegate::sign::{Binding, BoundKey, KeyRing};
use std::collections::HashSet;
use tokio_postgres::Client;

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("kid {kid} is already trusted, bound to {bound}")]
    BoundElsewhere { kid: String, bound: String },
    #[error("kid {0} was revoked; a revoked key is never trusted again (give the gateway a new key)")]
    Revoked(String),
    #[error("no key has kid {0}")]
    NotFound(String),
}

impl From<tokio_postgres::Error> for KeyStoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        KeyStoreError::Db(DbError::Query(e))
    }
}

/// One row of `keys list`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrustedKey {
    pub kid: String,
    pub binding: String,
    pub revoked: bool,
}

fn columns(b: &Binding) -> (Option<&str>, Option<&str>, Option<&str>) {
    match b {
        Binding::Gateway { site, gw } => (Some(site), Some(gw), None),
        Binding::Hub { hub } => (None, None, Some(hub)),
    }
}

fn describe(site: Option<String>, gw: Option<String>, hub: Option<String>) -> String {
    match (site, gw, hub) {
        (Some(s), Some(g), _) => format!("gateway {s}/{g}"),
        (_, _, Some(h)) => format!("hub {h}"),
        _ => "nothing".into(),
    }
}

/// Trusts `key`. Adding a key that is already trusted with the same binding changes nothing.
pub async fn add(client: &Client, key: &BoundKey) -> Result<bool, KeyStoreError> {
    let kid = key.key.kid_hex();
    let (site, gw, hub) = columns(&key.binding);
    let jwk: serde_json::Value = serde_json::from_str(&key.to_jwk()).expect("a JWK is JSON");
    let inserted = client
        .execute(
            "INSERT INTO trusted_keys (kid, site, gw, hub, jwk) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kid) DO NOTHING",
            &[&kid, &site, &gw, &hub, &jwk],
        )
        .await?;
    if inserted == 1 {
        return Ok(true);
    }
    let row = client
        .query_one("SELECT site, gw, hub, revoked_at IS NOT NULL FROM trusted_keys WHERE kid = $1", &[&kid])
        .await?;
    let (s, g, h): (Option<String>, Option<String>, Option<String>) = (row.get(0), row.get(1), row.get(2));
    if row.get::<_, bool>(3) {
        return Err(KeyStoreError::Revoked(kid));
    }
    if (s.as_deref(), g.as_deref(), h.as_deref()) != (site, gw, hub) {
        return Err(KeyStoreError::BoundElsewhere { kid, bound: describe(s, g, h) });
    }
    Ok(false)
}

pub async fn list(client: &Client) -> Result<Vec<TrustedKey>, KeyStoreError> {
    let rows = client
        .query("SELECT kid, site, gw, hub, revoked_at IS NOT NULL FROM trusted_keys ORDER BY site, gw, hub, kid", &[])
        .await?;
    Ok(rows
        .iter()
        .map(|r| TrustedKey { kid: r.get(0), binding: describe(r.get(1), r.get(2), r.get(3)), revoked: r.get(4) })
        .collect())
}

pub async fn revoke(client: &Client, kid: &str) -> Result<(), KeyStoreError> {
    let n = client
        .execute(
            "UPDATE trusted_keys SET revoked_at = coalesce(revoked_at, now()) WHERE kid = $1",
            &[&kid.to_ascii_lowercase()],
        )
        .await?;
    if n == 0 {
        return Err(KeyStoreError::NotFound(kid.into()));
    }
    Ok(())
}

/// The keyring of every key not revoked, and the kids of the revoked ones (to say why a message
/// signed with one is refused). A row that no longer reads as a key is left out and logged.
pub async fn ring(client: &Client) -> Result<(KeyRing, HashSet<String>), KeyStoreError> {
    let rows = client.query("SELECT kid, jwk, revoked_at IS NOT NULL FROM trusted_keys", &[]).await?;
    let mut ring = KeyRing::default();
    let mut revoked = HashSet::new();
    for r in rows {
        let kid: String = r.get(0);
        if r.get::<_, bool>(2) {
            revoked.insert(kid);
            continue;
        }
        let jwk: serde_json::Value = r.get(1);
        match BoundKey::from_jwk_value(&jwk) {
            Ok(k) => {
                if let Err(e) = ring.insert(k) {
                    tracing::warn!(kid, error = %e, "trusted key left out");
                }
            }
            Err(e) => tracing::warn!(kid, error = %e, "trusted key does not read as a JWK; left out"),
        }
    }
    Ok((ring, revoked))
}
