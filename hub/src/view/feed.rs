//! The live feed of the consult view. Every ingest transaction notifies (PostgreSQL
//! `NOTIFY spokegate_stored`, delivered at commit) the ids of the messages it stored; every
//! instance listens, reads those of the consults and gateways its pages watch, and hands the items
//! to the pages' event streams. So a page on one instance sees what another instance stored.

use super::items::{self, StoredRow, ROW_COLUMNS};
use spokegate::consult_view::{FeedEvent, Live, LiveFeed, Scope};
use spokegate::shutdown::Shutdown;
use spokegate::sign::KeyRing;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_postgres::Client;

/// The PostgreSQL channel.
pub const CHANNEL: &str = "spokegate_stored";
/// A notification's payload stays well under PostgreSQL's 8,000 bytes.
const NOTICE_BYTES: usize = 7000;
/// Trusted keys are re-read this often (a revocation shows on the pages).
const KEYS_EVERY: Duration = Duration::from_secs(5);

/// The payloads that announce `ids`: comma-separated, each under the size limit.
pub fn notices(ids: &[i64]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for id in ids {
        let s = id.to_string();
        if !cur.is_empty() && cur.len() + 1 + s.len() > NOTICE_BYTES {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(',');
        }
        cur.push_str(&s);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn parse_notice(payload: &str) -> Vec<i64> {
    payload.split(',').filter_map(|s| s.parse().ok()).collect()
}

pub struct Feed {
    pub live: Arc<LiveFeed>,
    keys: RwLock<KeyRing>,
}

impl Feed {
    pub fn new() -> Arc<Feed> {
        Arc::new(Feed { live: LiveFeed::new(), keys: RwLock::default() })
    }

    pub fn keys(&self) -> KeyRing {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub async fn reload_keys(&self, db: &Client) {
        match crate::keys::ring(db).await {
            Ok((ring, _)) => *self.keys.write().unwrap_or_else(|p| p.into_inner()) = ring,
            Err(e) => tracing::warn!(error = %e, "view: trusted keys not re-read"),
        }
    }

    /// Reads the watched among `ids` and hands them to the pages.
    async fn publish(&self, db: &Client, ids: Vec<i64>) -> Result<(), tokio_postgres::Error> {
        let mut consults = Vec::new();
        let mut gateways = Vec::new();
        for s in self.live.watched() {
            match s {
                Scope::Consult(id) => consults.push(id),
                Scope::Gateway { site, gw } => gateways.push(format!("{site}/{gw}")),
            }
        }
        if consults.is_empty() && gateways.is_empty() {
            return Ok(());
        }
        let rows = db
            .query(
                &format!(
                    "SELECT {ROW_COLUMNS} FROM messages WHERE id = ANY($1)
                     AND (consult = ANY($2) OR site || '/' || gw = ANY($3)) ORDER BY id"
                ),
                &[&ids, &consults, &gateways],
            )
            .await?;
        let stored: Vec<StoredRow> = rows.iter().map(StoredRow::from_row).collect();
        let keys = self.keys();
        for (row, json) in stored.iter().zip(items::items(db, &stored, &keys).await) {
            self.live.send(FeedEvent::Item(Arc::new(Live {
                site: row.site.clone(),
                gw: row.gw.clone(),
                consult: row.consult.clone(),
                json: json.to_string(),
            })));
        }
        Ok(())
    }

    /// Listens until shutdown, reconnecting; `db` reads the rows.
    pub async fn run(self: Arc<Self>, url: String, reads: Arc<crate::reads::Reads>, mut shutdown: Shutdown) {
        self.reload_keys(&*reads.get().await).await;
        let mut keys = tokio::time::interval(KEYS_EVERY);
        loop {
            let (listener, mut notes) = match listen(&url).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "view: cannot listen for stored messages; trying again");
                    tokio::select! {
                        _ = shutdown.triggered() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            self.live.send(FeedEvent::Reset);
            loop {
                tokio::select! {
                    _ = shutdown.triggered() => return,
                    _ = keys.tick() => self.reload_keys(&*reads.get().await).await,
                    note = notes.recv() => {
                        let Some(payload) = note else { break };
                        if let Err(e) = self.publish(&*reads.get().await, parse_notice(&payload)).await {
                            tracing::warn!(error = %e, "view: stored messages not read");
                            self.live.send(FeedEvent::Reset);
                        }
                    }
                }
            }
            drop(listener);
            tracing::warn!("view: the listening connection ended; reconnecting");
        }
    }
}

/// A connection that LISTENs, and its notifications' payloads.
async fn listen(url: &str) -> Result<(Client, tokio::sync::mpsc::UnboundedReceiver<String>), tokio_postgres::Error> {
    use futures::StreamExt;
    let (client, mut connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(m) = messages.next().await {
            match m {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_string()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "view: listening connection failed");
                    return;
                }
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    Ok((client, rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_carry_every_id_once_and_stay_under_the_limit() {
        let ids: Vec<i64> = (1_000_000_000..1_000_002_000).collect();
        let n = notices(&ids);
        assert!(n.len() > 1);
        assert!(n.iter().all(|p| p.len() <= NOTICE_BYTES));
        let back: Vec<i64> = n.iter().flat_map(|p| parse_notice(p)).collect();
        assert_eq!(back, ids);
        assert!(notices(&[]).is_empty());
    }
}
