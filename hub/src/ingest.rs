//! The ingest loop: take what arrived (up to a batch), verify it on every core, commit it in
//! one transaction, settle it with the source, then acknowledge the stored seqs to their
//! gateways (signed, per gateway, at most every `ack.max_delay`). A failed commit settles
//! nothing and is retried; shutdown finishes the batch in hand and sends the acknowledgements due.

use crate::batch::{unknown_key, Batch};
use crate::input::Source;
use crate::metrics::Metrics;
use crate::store::Store;
use spokegate::hub::{check, Acker};
use spokegate::shutdown::Shutdown;
use spokegate::sign::KeyRing;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Messages taken into one transaction at most.
pub const MAX_BATCH: usize = 500;
/// Below this many messages a batch is verified on one core.
const PARALLEL_CHECKS: usize = 32;
/// Trusted keys are re-read this often (revocations take effect), and at most this often when a
/// message names an unknown kid.
const KEYS_EVERY: Duration = Duration::from_secs(5);
const KEYS_AT_MOST: Duration = Duration::from_secs(1);

pub struct Ingest {
    pub store: Store,
    pub source: Source,
    pub acker: Acker,
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
    pub db_url: String,
    /// The hub's own public key, always trusted (its acknowledgements come back on the input).
    pub own: spokegate::sign::BoundKey,
    /// Commands the consult view signed, to send to gateways.
    commands: tokio::sync::mpsc::Receiver<crate::view::Outgoing>,
    keys: KeyRing,
    revoked: HashSet<String>,
    keys_at: Instant,
    /// When the store's connection may be made again.
    redial: crate::at_most::AtMostEvery,
    /// Beats on every turn of the loop and every commit retry (the watchdog's sign of life: a
    /// database or engine that is away is waited for, not a wedge).
    pub beat: Arc<spokegate::systemd::Heartbeat>,
}

impl Ingest {
    pub async fn new(
        store: Store,
        source: Source,
        acker: Acker,
        metrics: Arc<Metrics>,
        ready: Arc<AtomicBool>,
        db_url: String,
        own: spokegate::sign::BoundKey,
    ) -> anyhow::Result<Ingest> {
        let mut i = Ingest {
            store,
            source,
            acker,
            metrics,
            ready,
            db_url,
            own,
            commands: tokio::sync::mpsc::channel(1).1,
            keys: KeyRing::default(),
            revoked: HashSet::new(),
            keys_at: Instant::now(),
            redial: crate::db::redial(),
            beat: Arc::default(),
        };
        i.reload_keys().await?;
        Ok(i)
    }

    /// Sends what the consult view signs through this ingest's connection.
    pub fn sending(mut self, commands: tokio::sync::mpsc::Receiver<crate::view::Outgoing>) -> Ingest {
        self.commands = commands;
        self
    }

    async fn reload_keys(&mut self) -> anyhow::Result<()> {
        let (mut ring, revoked) = crate::keys::ring(self.store.client()).await?;
        let _ = ring.insert(self.own.clone());
        self.keys = ring;
        self.revoked = revoked;
        self.keys_at = Instant::now();
        Ok(())
    }

    pub async fn run(mut self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let mut lag_at = Instant::now();
        loop {
            self.beat.beat();
            tokio::select! {
                biased;
                _ = shutdown.triggered() => break,
                first = self.source.next() => {
                    let Some(first) = first else { break };
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match self.source.try_next() {
                            Some(d) => batch.push(d),
                            None => break,
                        }
                    }
                    self.handle(batch, &shutdown).await;
                }
                Some((topic, payload)) = self.commands.recv() => {
                    if let Err(e) = self.source.publish(&topic, payload).await {
                        tracing::warn!(error = %e, topic, "command from the view not sent");
                    }
                }
                _ = tick.tick() => {
                    // PostgreSQL ended the connection (a restart, a failover): made again now,
                    // not only when a message fails to commit, so readiness comes back.
                    self.reconnect_if_closed().await;
                    let connected = self.source.connected();
                    self.metrics.input_connected.set(connected as i64);
                    self.ready.store(connected && !self.store.client().is_closed(), Ordering::Relaxed);
                    self.send_acks(false).await;
                    if self.keys_at.elapsed() >= KEYS_EVERY {
                        if let Err(e) = self.reload_keys().await {
                            tracing::warn!(error = %e, "trusted keys not re-read");
                        }
                    }
                    if lag_at.elapsed() >= Duration::from_secs(2) {
                        lag_at = Instant::now();
                        if let Some(n) = self.source.lag().await {
                            self.metrics.consumer_pending.set(n as i64);
                        }
                    }
                }
            }
        }
        self.send_acks(true).await;
        Ok(())
    }

    /// A new connection (and its prepared statements) when PostgreSQL ended the store's.
    async fn reconnect_if_closed(&mut self) {
        if !self.store.client().is_closed() || !self.redial.due(Instant::now()) {
            return;
        }
        match crate::db::reconnect(&self.db_url).await {
            Ok(c) => match Store::new(c).await {
                Ok(s) => {
                    tracing::info!("PostgreSQL connection for storing made again");
                    self.store = s;
                }
                Err(e) => tracing::warn!(error = %e, "database statements not prepared"),
            },
            Err(e) => tracing::warn!(error = %e, "database not reachable"),
        }
    }

    async fn handle(&mut self, deliveries: Vec<crate::input::Delivery>, shutdown: &Shutdown) {
        let mut items: Vec<(String, bytes::Bytes)> =
            deliveries.iter().map(|d| (d.topic.clone(), d.payload.clone())).collect();
        let keys = &self.keys;
        let mut checked = spokegate::parallel::map_in_order(&mut items, PARALLEL_CHECKS, |_, (t, p)| check(t, p, keys));
        if checked.iter().any(unknown_key) && self.keys_at.elapsed() >= KEYS_AT_MOST {
            // A gateway added a moment ago: look again before quarantining.
            if self.reload_keys().await.is_ok() {
                for (c, (t, p)) in checked.iter_mut().zip(&items) {
                    if unknown_key(c) {
                        *c = check(t, p, &self.keys);
                    }
                }
            }
        }
        let mut batch = Batch::default();
        for ((topic, payload), c) in items.into_iter().zip(checked) {
            batch.add(&topic, payload, c, &self.revoked);
        }
        let done = loop {
            let started = Instant::now();
            match self.store.commit(&batch).await {
                Ok(done) => {
                    self.metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
                    break done;
                }
                Err(e) => {
                    self.beat.beat();
                    self.metrics.commit_failures.inc();
                    tracing::warn!(error = %e, "commit failed; nothing settled, retrying");
                    if shutdown.is_triggered() && self.store.client().is_closed() {
                        // Unsettled: the source gives them to another instance.
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    self.reconnect_if_closed().await;
                }
            }
        };
        futures::future::join_all(deliveries.into_iter().map(|d| self.source.settle(d.token))).await;
        let now = Instant::now();
        for v in &batch.verified {
            self.acker.stored(&v.body.site, &v.body.gw, v.body.seq, now);
        }
        for q in &batch.quarantined {
            self.metrics.quarantine(q.reason);
            tracing::warn!(topic = q.topic, reason = q.reason, detail = q.detail, "quarantined");
        }
        let m = &self.metrics;
        m.batches.inc();
        m.stored.inc_by(done.new as u64);
        m.duplicates.inc_by(done.duplicates as u64);
        m.commands.inc_by(done.commands as u64);
        m.images.inc_by(done.images as u64);
        m.images_mismatched.inc_by(done.bad_images as u64);
        m.passed_over.inc_by(batch.passed_over as u64);
    }

    async fn send_acks(&mut self, all: bool) {
        let now = Instant::now();
        if !all && !self.acker.due(now) {
            return;
        }
        for p in self.acker.take(now, all) {
            match self.source.publish(&p.topic, p.payload).await {
                Ok(()) => {
                    self.metrics.acks_sent.inc();
                }
                Err(e) => {
                    tracing::warn!(error = %e, topic = p.topic, "acknowledgement not sent (the gateway sends again, and is acknowledged then)")
                }
            }
        }
    }
}
