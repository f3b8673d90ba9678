//! `GET /metrics`: the gateway's figures in the Prometheus text format (`prometheus-client`),
//! read from the daemon's own counters at each scrape. Labels are device ids and profiles only:
//! never a consult id, never patient data.

use crate::daemon::Counters;
use crate::mqtt::status::LinkState;
use crate::snapshot::Snapshot;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// What a scrape reads.
#[derive(Debug)]
pub struct GatewayCollector {
    pub counters: Counters,
    /// Device id -> profile id.
    pub profiles: Vec<(String, String)>,
    pub snapshot: tokio::sync::watch::Receiver<Snapshot>,
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

impl GatewayCollector {
    /// One family with a sample per device.
    fn per_device(
        &self,
        e: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        value: impl Fn(&crate::device::DeviceCounters) -> u64,
    ) -> Result<(), std::fmt::Error> {
        let kind = ConstCounter::new(0u64).metric_type();
        let mut family = e.encode_descriptor(name, help, None, kind)?;
        for (dev, profile) in &self.profiles {
            let Some(c) = self.counters.devices.get(dev) else { continue };
            let labels = vec![("device".to_string(), dev.clone()), ("profile".to_string(), profile.clone())];
            ConstCounter::new(value(c)).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

impl Collector for GatewayCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.per_device(&mut e, "spokegate_readings", "Readings (and images) handed to the pipeline", |c| {
            c.readings.load(Relaxed)
        })?;
        self.per_device(&mut e, "spokegate_events", "Events about the device signed", |c| c.events.load(Relaxed))?;
        self.per_device(&mut e, "spokegate_rejected_frames", "Frames (or files) refused as bad input", |c| {
            c.rejected_frames.load(Relaxed)
        })?;
        self.per_device(&mut e, "spokegate_device_connects", "Times the device link was opened", |c| {
            c.connects.load(Relaxed)
        })?;
        let snap = self.snapshot.borrow().clone();
        {
            let kind = ConstGauge::new(0i64).metric_type();
            let mut family =
                e.encode_descriptor("spokegate_device_up", "1 while the device link is connected", None, kind)?;
            for (dev, profile) in &self.profiles {
                let up = snap.devices.get(dev).is_some_and(|d| d.state == LinkState::Connected);
                let labels = vec![("device".to_string(), dev.clone()), ("profile".to_string(), profile.clone())];
                ConstGauge::new(i64::from(up)).encode(family.encode_family(&labels)?)?;
            }
        }
        let link = &self.counters.link;
        counter(
            &mut e,
            "spokegate_messages_published",
            "Queued messages handed to MQTT (first sends)",
            link.published.load(Relaxed),
        )?;
        counter(
            &mut e,
            "spokegate_messages_broker_acked",
            "Broker acknowledgements (PUBACK) of queued messages, resends included",
            link.acked.load(Relaxed),
        )?;
        counter(
            &mut e,
            "spokegate_messages_hub_acked",
            "Messages a hub acknowledged as stored (hub delivery)",
            link.hub_acked.load(Relaxed),
        )?;
        counter(
            &mut e,
            "spokegate_messages_resent",
            "Messages sent again because no hub acknowledged them in time",
            link.resent.load(Relaxed),
        )?;
        counter(&mut e, "spokegate_uplink_connects", "MQTT connections made (CONNACK)", link.connects.load(Relaxed))?;
        gauge(
            &mut e,
            "spokegate_uplink_connected",
            "1 while connected to the broker",
            f64::from(u8::from(snap.uplink.connected)),
        )?;
        gauge(
            &mut e,
            "spokegate_messages_unacked",
            "Messages out without a hub's acknowledgement",
            link.unacked.load(Relaxed) as f64,
        )?;
        let times = &self.counters.pipeline;
        counter(&mut e, "spokegate_signed_messages", "Messages signed", times.signed.load(Relaxed))?;
        counter_f(&mut e, "spokegate_signing_seconds", "Time spent signing (sum)", times.sign_micros.load(Relaxed))?;
        counter(&mut e, "spokegate_queue_commits", "Commits to the durable queue", times.commits.load(Relaxed))?;
        counter_f(
            &mut e,
            "spokegate_queue_commit_seconds",
            "Time spent committing (sum)",
            times.commit_micros.load(Relaxed),
        )?;
        if let Some(q) = &self.counters.queue {
            // Read without waiting: a commit in progress skips the queue figures of this scrape.
            if let Some(mut q) = crate::queue::try_lock(q) {
                if let Ok(st) = q.stats() {
                    gauge(&mut e, "spokegate_queue_depth", "Messages waiting to be delivered", st.depth as f64)?;
                    gauge(&mut e, "spokegate_queue_bytes", "Bytes waiting to be delivered", st.bytes as f64)?;
                    let age =
                        st.oldest_created.map(|t| (crate::clock::now_micros() - t).max(0) as f64 / 1e6).unwrap_or(0.0);
                    gauge(&mut e, "spokegate_queue_oldest_age_seconds", "Age of the oldest undelivered message", age)?;
                }
            }
        }
        Ok(())
    }
}

fn counter_f(e: &mut DescriptorEncoder, name: &str, help: &str, micros: u64) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(micros as f64 / 1e6);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

/// The registry a scrape encodes.
pub fn registry(collector: GatewayCollector) -> Arc<Registry> {
    let mut r = Registry::default();
    r.register_collector(Box::new(collector));
    Arc::new(r)
}

/// The text of one scrape.
pub fn scrape(registry: &Registry) -> String {
    let mut out = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}
