//! The consult view's items from stored rows: the signature checked again now with the trusted
//! key, and the completed images among them (the item itself is the library's).

use crate::clock_steps::ClockSteps;
use spokegate::consult_view::{image_url, item, media_key, ImageDone, MediaKey, Proof};
use spokegate::hub::{check, HubMessage};
use spokegate::model::Body;
use spokegate::sign::KeyRing;
use std::collections::HashMap;
use tokio_postgres::Client;

/// A stored message as the view reads it.
pub struct StoredRow {
    pub id: i64,
    pub topic: String,
    pub kid: String,
    pub envelope: Vec<u8>,
    /// When the row was written, milliseconds since the Unix epoch.
    pub stored_ms: f64,
    pub site: String,
    pub gw: String,
    pub consult: Option<String>,
}

/// The columns [`StoredRow::from_row`] reads, for `SELECT {ROW_COLUMNS} FROM messages ...`.
pub const ROW_COLUMNS: &str =
    "id, topic, kid, envelope, (extract(epoch FROM received_at) * 1000)::double precision, site, gw, consult";

impl StoredRow {
    pub fn from_row(r: &tokio_postgres::Row) -> StoredRow {
        StoredRow {
            id: r.get(0),
            topic: r.get(1),
            kid: r.get(2),
            envelope: r.get(3),
            stored_ms: r.get(4),
            site: r.get(5),
            gw: r.get(6),
            consult: r.get(7),
        }
    }
}

/// The completed images among `keys`.
async fn images_done(db: &Client, keys: &[MediaKey]) -> Result<HashMap<MediaKey, ImageDone>, tokio_postgres::Error> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<String> = keys.iter().map(|k| format!("{}/{}/{}", k.0, k.1, k.2)).collect();
    let rows = db
        .query(
            "SELECT site, gw, media_id, sha256, meta FROM images WHERE site || '/' || gw || '/' || media_id = ANY($1)",
            &[&ids],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let key: MediaKey = (r.get(0), r.get(1), r.get(2));
            let url = image_url(&key);
            (key, ImageDone { url, sha256: r.get(3), meta: r.get(4) })
        })
        .collect())
}

/// The body a row carries, and whether its signature holds now (with the reason when not).
pub fn open(row: &StoredRow, keys: &KeyRing) -> Option<(Body, Result<(), String>)> {
    match check(&row.topic, &row.envelope, keys) {
        Ok(HubMessage::Signed(b)) => Some((*b, Ok(()))),
        // Commands and acknowledgements are the hub's own; not shown.
        Ok(_) => None,
        Err(e) => spokegate::sign::peek_unverified::<Body>(&row.envelope).map(|b| (b, Err(e.to_string()))),
    }
}

/// Items for `rows`, in their order (images completed by then included).
pub async fn items(db: &Client, rows: &[StoredRow], keys: &KeyRing) -> Vec<serde_json::Value> {
    let opened: Vec<(&StoredRow, Body, Result<(), String>)> =
        rows.iter().filter_map(|r| open(r, keys).map(|(b, p)| (r, b, p))).collect();
    let media: Vec<MediaKey> = opened.iter().filter_map(|(_, b, _)| media_key(b)).collect();
    let steps = ClockSteps::of(db, opened.iter().map(|(_, b, _)| (b.site.as_str(), b.gw.as_str()))).await;
    let steps = steps.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "clock steps not read; gateway times shown as signed");
        ClockSteps::default()
    });
    let images = images_done(db, &media).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "completed images not read");
        HashMap::new()
    });
    opened
        .into_iter()
        .map(|(r, b, verified)| {
            let clock_fix_us = steps.correction(&b.site, &b.gw, b.seq);
            let proof = Proof { id: r.id, kid: r.kid.clone(), stored_ms: r.stored_ms, verified, clock_fix_us };
            let image = media_key(&b).and_then(|k| images.get(&k));
            item(&b, &proof, image)
        })
        .collect()
}
