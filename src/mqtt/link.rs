//! The MQTT session to the hub's broker (rumqttc), QoS 1 throughout.
//!
//! - The will is the retained `offline` status; the retained `online` birth, and every device's
//!   retained state, are published again after every (re)connect, because a broker without
//!   persistence forgets retained messages when it restarts.
//! - Back-pressure is real: when the broker is slow or away, `publish` waits, which fills the
//!   bounded channel in front of this stage and slows the stages before it.
//! - On shutdown: publish `offline`, wait (bounded) until the broker has acknowledged every publish,
//!   then disconnect.

use super::status::GatewayStatus;
use crate::clock::now_rfc3339;
use crate::config::MqttConfig;
use crate::shutdown::Shutdown;
use crate::transport::Backoff;
use rumqttc::{
    AsyncClient, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS, TlsConfiguration,
    Transport,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// One MQTT message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// What the link has done, for status and benchmarks.
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// QoS 1 publishes handed to the client.
    pub published: AtomicU64,
    /// PUBACKs received.
    pub acked: AtomicU64,
    /// Successful connections (CONNACK).
    pub connects: AtomicU64,
}

/// How long shutdown waits for outstanding PUBACKs.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

fn options(cfg: &MqttConfig, status_topic: &str, kid: &str) -> std::io::Result<MqttOptions> {
    let mut o = MqttOptions::new(&cfg.client_id, &cfg.url.host, cfg.url.port);
    o.set_keep_alive(cfg.keep_alive);
    o.set_max_packet_size(1 << 20, 1 << 20);
    o.set_inflight(500);
    o.set_clean_session(true);
    let will = GatewayStatus::new(false, now_rfc3339(), kid.to_string());
    o.set_last_will(LastWill::new(
        status_topic,
        will.to_json(),
        QoS::AtLeastOnce,
        true,
    ));
    if let (Some(u), p) = (&cfg.username, &cfg.password) {
        o.set_credentials(u, p.clone().unwrap_or_default());
    }
    if cfg.url.tls {
        let client_auth = match &cfg.client_cert {
            Some((cert, key)) => Some((std::fs::read(cert)?, std::fs::read(key)?)),
            None => None,
        };
        let transport = match &cfg.ca {
            Some(ca) => Transport::tls_with_config(TlsConfiguration::Simple {
                ca: std::fs::read(ca)?,
                alpn: None,
                client_auth,
            }),
            None => Transport::tls_with_default_config(),
        };
        o.set_transport(transport);
    }
    Ok(o)
}

/// Runs the session until `publications` closes, then drains and disconnects.
pub async fn run_link(
    cfg: MqttConfig,
    status_topic: String,
    kid: String,
    mut publications: mpsc::Receiver<Publication>,
    counters: Arc<LinkCounters>,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let (client, eventloop) = AsyncClient::new(options(&cfg, &status_topic, &kid)?, 1024);
    let (connected_tx, mut connected_rx) = watch::channel(0u64);
    let (stop_tx, stop_rx) = watch::channel(false);
    let poller = tokio::spawn(poll(
        eventloop,
        counters.clone(),
        connected_tx,
        stop_rx,
        cfg.url.to_string(),
    ));

    let mut retained: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let publish = |topic: String, payload: Vec<u8>, retain: bool| {
        let client = client.clone();
        let counters = counters.clone();
        let draining = shutdown.is_triggered();
        async move {
            let sent = client.publish(topic, QoS::AtLeastOnce, retain, payload);
            // While draining, a broker that stays away must not hold the process forever.
            let sent = if draining {
                tokio::time::timeout(DRAIN_TIMEOUT, sent).await.ok()
            } else {
                Some(sent.await)
            };
            match sent {
                Some(Ok(())) => {
                    counters.published.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Some(Err(_)) => true,
                None => false,
            }
        }
    };
    loop {
        tokio::select! {
            biased;
            changed = connected_rx.changed() => {
                if changed.is_err() { break; }
                let birth = GatewayStatus::new(true, now_rfc3339(), kid.clone());
                publish(status_topic.clone(), birth.to_json(), true).await;
                for (topic, payload) in &retained {
                    publish(topic.clone(), payload.clone(), true).await;
                }
            }
            p = publications.recv() => {
                let Some(p) = p else { break };
                if p.retain {
                    retained.insert(p.topic.clone(), p.payload.clone());
                }
                if !publish(p.topic, p.payload, p.retain).await {
                    tracing::error!(left = publications.len() + 1, "broker unreachable while draining; messages not sent");
                    break;
                }
            }
        }
    }

    // Drain: offline status, then wait for every PUBACK (bounded), then disconnect.
    publish(
        status_topic.clone(),
        GatewayStatus::new(false, now_rfc3339(), kid.clone()).to_json(),
        true,
    )
    .await;
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    while counters.acked.load(Ordering::Relaxed) < counters.published.load(Ordering::Relaxed)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let unacked = counters
        .published
        .load(Ordering::Relaxed)
        .saturating_sub(counters.acked.load(Ordering::Relaxed));
    if unacked > 0 {
        tracing::error!(
            unacked,
            "shutting down with messages the broker has not acknowledged"
        );
    }
    let _ = stop_tx.send(true);
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), poller).await;
    Ok(())
}

async fn poll(
    mut eventloop: EventLoop,
    counters: Arc<LinkCounters>,
    connected: watch::Sender<u64>,
    mut stop: watch::Receiver<bool>,
    url: String,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
    let mut down_since: Option<tokio::time::Instant> = None;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff.reset();
                let n = counters.connects.fetch_add(1, Ordering::Relaxed) + 1;
                if let Some(t) = down_since.take() {
                    tracing::info!(%url, outage_ms = t.elapsed().as_millis() as u64, "MQTT reconnected");
                } else {
                    tracing::info!(%url, "MQTT connected");
                }
                connected.send_replace(n);
            }
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                counters.acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
            Ok(_) => {}
            Err(e) => {
                if *stop.borrow() {
                    break;
                }
                if down_since.is_none() {
                    tracing::warn!(%url, error = %e, "MQTT connection lost; retrying");
                    down_since = Some(tokio::time::Instant::now());
                } else {
                    tracing::debug!(%url, error = %e, "MQTT still unreachable");
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        }
    }
}
