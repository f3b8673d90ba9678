//! The service's Prometheus metrics (`GET /metrics`): messages stored per second is
//! `rate(spokegate_hub_messages_stored_total[1m])`; no site, gateway or consult in labels.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Registry,
    pub stored: Counter,
    pub duplicates: Counter,
    pub quarantined: Family<Labels, Counter>,
    pub commands: Counter,
    pub images: Counter,
    pub images_mismatched: Counter,
    pub passed_over: Counter,
    pub acks_sent: Counter,
    pub batches: Counter,
    pub commit_failures: Counter,
    pub commit_seconds: Histogram,
    pub consumer_pending: Gauge,
    pub input_connected: Gauge,
    pub password_checks: Counter,
    pub password_throttled: Counter,
    pub retention_deleted: Family<Labels, Counter>,
    pub retention_rounds: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Metrics {
            registry: Registry::default(),
            stored: Counter::default(),
            duplicates: Counter::default(),
            quarantined: Family::default(),
            commands: Counter::default(),
            images: Counter::default(),
            images_mismatched: Counter::default(),
            passed_over: Counter::default(),
            acks_sent: Counter::default(),
            batches: Counter::default(),
            commit_failures: Counter::default(),
            commit_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            consumer_pending: Gauge::default(),
            input_connected: Gauge::default(),
            password_checks: Counter::default(),
            password_throttled: Counter::default(),
            retention_deleted: Family::default(),
            retention_rounds: Counter::default(),
        };
        for r in crate::batch::REASONS {
            let _ = m.quarantined.get_or_create(&vec![("reason".to_string(), r.to_string())]);
        }
        for kind in crate::retention::Pruned::ALL {
            let _ = m.retention_deleted.get_or_create(&vec![("what".to_string(), kind.label().to_string())]);
        }
        let r = &mut m.registry;
        r.register(
            "spokegate_hub_messages_stored",
            "Signed gateway messages stored (first time each)",
            m.stored.clone(),
        );
        r.register(
            "spokegate_hub_messages_duplicate",
            "Messages delivered again and already stored",
            m.duplicates.clone(),
        );
        r.register(
            "spokegate_hub_messages_quarantined",
            "Messages that did not verify, by reason",
            m.quarantined.clone(),
        );
        r.register("spokegate_hub_commands_stored", "Hub commands seen and stored", m.commands.clone());
        r.register("spokegate_hub_images_stored", "Images whose parts all arrived and matched", m.images.clone());
        r.register(
            "spokegate_hub_images_mismatched",
            "Images whose joined parts did not match their SHA-256",
            m.images_mismatched.clone(),
        );
        r.register(
            "spokegate_hub_messages_passed_over",
            "Unsigned status and hub acknowledgements seen",
            m.passed_over.clone(),
        );
        r.register("spokegate_hub_acks_sent", "Signed acknowledgements sent to gateways", m.acks_sent.clone());
        r.register("spokegate_hub_batches_committed", "Transactions committed", m.batches.clone());
        r.register("spokegate_hub_commit_failures", "Transactions that failed (retried)", m.commit_failures.clone());
        r.register_with_unit(
            "spokegate_hub_commit",
            "Time to commit one batch",
            prometheus_client::registry::Unit::Seconds,
            m.commit_seconds.clone(),
        );
        r.register(
            "spokegate_hub_consumer_pending",
            "Messages waiting at the JetStream consumer",
            m.consumer_pending.clone(),
        );
        r.register(
            "spokegate_hub_input_connected",
            "1 when connected to the message engine",
            m.input_connected.clone(),
        );
        r.register(
            "spokegate_hub_password_checks",
            "argon2id password checks run (sign-in form, HTTP Basic)",
            m.password_checks.clone(),
        );
        r.register(
            "spokegate_hub_password_throttled",
            "Password checks refused unchecked after too many failures for the name",
            m.password_throttled.clone(),
        );
        r.register(
            "spokegate_hub_retention_deleted",
            "Rows deleted past their retention, by what (waveform and image: messages with their chunk or part)",
            m.retention_deleted.clone(),
        );
        r.register(
            "spokegate_hub_retention_rounds",
            "Retention rounds this instance ran to the end",
            m.retention_rounds.clone(),
        );
        m
    }
}

impl Metrics {
    pub fn quarantine(&self, reason: &str) {
        self.quarantined.get_or_create(&vec![("reason".to_string(), reason.to_string())]).inc();
    }

    pub fn retention_deleted(&self, kind: crate::retention::Pruned, rows: u64) {
        self.retention_deleted.get_or_create(&vec![("what".to_string(), kind.label().to_string())]).inc_by(rows);
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}
