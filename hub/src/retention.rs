//! Retention: what the operator chose not to keep for ever is deleted once it is older than they
//! said, a batch at a time, so that a hub's database stops growing by it. Waveform chunks and
//! images go with the signed messages that carried them; quarantined messages go alone. Readings,
//! events, consults, commands and replies are the clinical record and are kept.
//!
//! Age is the time a row was stored (`received_at`, the database's clock). Rows are visited in
//! the order they were stored (their ids), so a round reads the old rows and one batch more: it
//! stops at the first row that is young enough, never scanning what is kept. Instances of one hub
//! take turns: a round runs only while it holds an advisory lock.

use crate::metrics::Metrics;
use serde::Deserialize;
use spokegate::shutdown::Shutdown;
use std::time::Duration;
use tokio_postgres::Client;

/// Rows looked at, and at most deleted, in one transaction.
const BATCH: i64 = 5_000;

/// An arbitrary constant naming the retention lock (one pruning instance at a time).
const RETENTION_LOCK: i64 = 0x5370_6f6b_6552_6574;

/// `[retention]`: days after which each kind of row is deleted (0: kept for ever), and how often
/// the hub looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    #[serde(default)]
    pub waveform_days: u32,
    #[serde(default)]
    pub image_days: u32,
    #[serde(default = "thirty")]
    pub quarantine_days: u32,
    #[serde(default = "hourly")]
    pub every_secs: u64,
}

fn thirty() -> u32 {
    30
}
fn hourly() -> u64 {
    3600
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy { waveform_days: 0, image_days: 0, quarantine_days: thirty(), every_secs: hourly() }
    }
}

/// How many days a gateway keeps an image queued by default (its `[queue] media_ttl_hours`),
/// rounded up.
fn gateway_media_days() -> u32 {
    let ttl = spokegate::queue::QueuePolicy::default().media_ttl.unwrap_or_default();
    ttl.as_secs().div_ceil(86_400) as u32
}

/// A week between looks at most.
const MAX_EVERY_SECS: u64 = 7 * 86_400;

/// A hundred years: more is a typing error, not a policy.
const MAX_DAYS: u32 = 36_500;

impl RetentionPolicy {
    /// What is wrong with the policy, if anything: (item, why).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if !(1..=MAX_EVERY_SECS).contains(&self.every_secs) {
            return Some((
                "retention.every_secs",
                format!("give 1 to {MAX_EVERY_SECS} seconds (a week) between looks"),
            ));
        }
        self.kinds()
            .iter()
            .find(|(_, days)| *days > MAX_DAYS)
            .map(|(kind, _)| (kind.item(), format!("give 0 (kept for ever) to {MAX_DAYS} days")))
    }

    fn kinds(&self) -> [(Pruned, u32); 3] {
        [
            (Pruned::Waveform, self.waveform_days),
            (Pruned::Image, self.image_days),
            (Pruned::Quarantine, self.quarantine_days),
        ]
    }

    /// A warning when images are deleted sooner than a gateway keeps them queued by default
    /// (`media_ttl_hours`, 7 days; waveforms are kept 6 hours, under any retention): a part a
    /// gateway resends after its image was deleted is a new message to the hub, and stored again.
    pub fn shorter_than_gateways_keep(&self) -> Option<String> {
        let gateway_days = gateway_media_days();
        (1..=gateway_days).contains(&self.image_days).then(|| {
            format!(
                "retention.image_days = {} is within the {gateway_days} days a gateway keeps an image queued by default: \
                 an image a gateway sends again after it was deleted is stored again",
                self.image_days
            )
        })
    }

    /// Whether anything is ever deleted.
    pub fn prunes(&self) -> bool {
        self.kinds().iter().any(|(_, days)| *days > 0)
    }
}

/// A kind of row retention deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pruned {
    /// A waveform chunk and its message.
    Waveform,
    /// An image part and its message, and the joined image.
    Image,
    /// A quarantined message.
    Quarantine,
}

impl Pruned {
    pub const ALL: [Pruned; 3] = [Pruned::Waveform, Pruned::Image, Pruned::Quarantine];

    /// The metric's label.
    pub fn label(self) -> &'static str {
        match self {
            Pruned::Waveform => "waveform",
            Pruned::Image => "image",
            Pruned::Quarantine => "quarantine",
        }
    }

    fn item(self) -> &'static str {
        match self {
            Pruned::Waveform => "retention.waveform_days",
            Pruned::Image => "retention.image_days",
            Pruned::Quarantine => "retention.quarantine_days",
        }
    }

    /// The oldest rows after id `$3` in the order they were stored: (id, older than `$1` days).
    fn oldest(self) -> &'static str {
        match self {
            Pruned::Waveform => {
                "SELECT w.message_id, m.received_at < now() - make_interval(days => $1)
                 FROM wave_chunks w JOIN messages m ON m.id = w.message_id
                 WHERE w.message_id > $3 ORDER BY w.message_id LIMIT $2"
            }
            Pruned::Image => {
                "SELECT p.message_id, m.received_at < now() - make_interval(days => $1)
                 FROM media_parts p JOIN messages m ON m.id = p.message_id
                 WHERE p.message_id > $3 ORDER BY p.message_id LIMIT $2"
            }
            Pruned::Quarantine => {
                "SELECT id, received_at < now() - make_interval(days => $1) FROM quarantine
                 WHERE id > $3 ORDER BY id LIMIT $2"
            }
        }
    }

    /// Deletes the rows `$1` names, in the order a foreign key needs.
    fn deletes(self) -> &'static [&'static str] {
        match self {
            Pruned::Waveform => {
                &["DELETE FROM wave_chunks WHERE message_id = ANY($1)", "DELETE FROM messages WHERE id = ANY($1)"]
            }
            Pruned::Image => &[
                // An image goes with its first part to go (its parts were stored within moments).
                "WITH parts AS (DELETE FROM media_parts WHERE message_id = ANY($1) RETURNING site, gw, media_id)
                 DELETE FROM images i USING (SELECT DISTINCT site, gw, media_id FROM parts) p
                 WHERE i.site = p.site AND i.gw = p.gw AND i.media_id = p.media_id",
                "DELETE FROM messages WHERE id = ANY($1)",
            ],
            Pruned::Quarantine => &["DELETE FROM quarantine WHERE id = ANY($1)"],
        }
    }
}

/// Looks every `every_secs` (the first time at start) until the hub stops; a round that fails is
/// logged and tried again at the next look.
pub async fn run(url: String, policy: RetentionPolicy, metrics: std::sync::Arc<Metrics>, mut shutdown: Shutdown) {
    if !policy.prunes() {
        return;
    }
    if let Some(w) = policy.shorter_than_gateways_keep() {
        tracing::warn!("{w}");
    }
    let mut every = tokio::time::interval(Duration::from_secs(policy.every_secs));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.triggered() => return,
        }
        match round(&url, &policy, &metrics, &mut shutdown).await {
            Ok(Some(deleted)) => {
                metrics.retention_rounds.inc();
                if deleted.iter().any(|n| *n > 0) {
                    let [waveform, image, quarantine] = deleted;
                    tracing::info!(waveform, image, quarantine, "retention: deleted what is past its time");
                }
            }
            Ok(None) => tracing::debug!("retention: another instance is at it"),
            Err(e) => tracing::warn!(error = %e, "retention round failed; trying again at the next look"),
        }
    }
}

/// One round on a connection of its own: for each kind kept for a time, its old rows deleted a
/// batch at a time; the rows deleted, in the order of [`RetentionPolicy::kinds`]. `None` when
/// another instance holds the lock.
async fn round(
    url: &str,
    policy: &RetentionPolicy,
    metrics: &Metrics,
    shutdown: &mut Shutdown,
) -> Result<Option<[u64; 3]>, crate::db::DbError> {
    let mut db = crate::db::connect(url).await?;
    let locked: bool = db.query_one("SELECT pg_try_advisory_lock($1)", &[&RETENTION_LOCK]).await?.get(0);
    if !locked {
        return Ok(None);
    }
    let mut deleted = [0u64; 3];
    for (i, (kind, days)) in policy.kinds().into_iter().enumerate() {
        if days == 0 {
            continue;
        }
        loop {
            let (gone, more) = batch(&mut db, kind, days as i32).await?;
            deleted[i] += gone;
            metrics.retention_deleted(kind, gone);
            if !more || shutdown.is_triggered() {
                break;
            }
        }
    }
    // The session lock ends with the connection.
    Ok(Some(deleted))
}

/// Deletes the oldest rows of `kind` that are older than `days`, up to the first that is not:
/// (rows deleted, whether older ones may follow).
async fn batch(db: &mut Client, kind: Pruned, days: i32) -> Result<(u64, bool), tokio_postgres::Error> {
    let tx = db.transaction().await?;
    let (old, more) = past_their_days(&tx, kind, days, i64::MIN).await?;
    if old.is_empty() {
        return Ok((0, false));
    }
    for sql in kind.deletes() {
        tx.execute(*sql, &[&old]).await?;
    }
    tx.commit().await?;
    Ok((old.len() as u64, more))
}

/// The ids of up to a batch of rows of `kind` after id `after`, older than `days`, up to the first
/// that is not, and whether older ones may follow.
async fn past_their_days(
    db: &impl tokio_postgres::GenericClient,
    kind: Pruned,
    days: i32,
    after: i64,
) -> Result<(Vec<i64>, bool), tokio_postgres::Error> {
    let rows = db.query(kind.oldest(), &[&days, &BATCH, &after]).await?;
    let old: Vec<i64> = rows.iter().take_while(|r| r.get::<_, bool>(1)).map(|r| r.get(0)).collect();
    let more = old.len() == rows.len() && rows.len() as i64 == BATCH;
    Ok((old, more))
}

/// What a round would delete now, without deleting: each kind with its days (0: kept) and the
/// rows past them. Read as a round reads them, a batch at a time.
pub async fn preview(db: &Client, policy: &RetentionPolicy) -> Result<Vec<(Pruned, u32, u64)>, tokio_postgres::Error> {
    let mut out = Vec::new();
    for (kind, days) in policy.kinds() {
        let mut rows = 0u64;
        let mut after = Some(i64::MIN).filter(|_| days > 0);
        while let Some(from) = after {
            let (old, more) = past_their_days(db, kind, days as i32, from).await?;
            rows += old.len() as u64;
            after = old.last().copied().filter(|_| more);
        }
        out.push((kind, days, rows));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_looks_between_once_a_second_and_once_a_week_and_keeps_at_most_a_hundred_years() {
        assert_eq!(RetentionPolicy::default().problem(), None);
        for every_secs in [0, MAX_EVERY_SECS + 1, u64::MAX] {
            let never = RetentionPolicy { every_secs, ..Default::default() };
            assert_eq!(never.problem().map(|p| p.0), Some("retention.every_secs"), "{every_secs}");
        }
        assert_eq!(RetentionPolicy { every_secs: MAX_EVERY_SECS, ..Default::default() }.problem(), None);
        let typo = RetentionPolicy { image_days: MAX_DAYS + 1, ..Default::default() };
        assert_eq!(typo.problem().map(|p| p.0), Some("retention.image_days"));
        let century = RetentionPolicy { waveform_days: MAX_DAYS, ..Default::default() };
        assert_eq!(century.problem(), None);
        let keep_all = RetentionPolicy { quarantine_days: 0, ..Default::default() };
        assert!(!keep_all.prunes() && RetentionPolicy::default().prunes());
        let week = RetentionPolicy { image_days: 7, ..Default::default() };
        assert!(week.shorter_than_gateways_keep().is_some_and(|w| w.contains("image_days = 7")));
        for days in [0, 8] {
            assert_eq!(RetentionPolicy { image_days: days, ..Default::default() }.shorter_than_gateways_keep(), None);
        }
    }
}
