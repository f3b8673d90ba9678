//! The MQTT session to the hub's broker (rumqttc), QoS 1 throughout, fed by the durable queue.
//!
//! - Each connection is a fresh rumqttc client: whatever was in flight when a connection died is
//!   sent again from the queue, each class in `seq` order, starting with its oldest undelivered
//!   message. The queue, not the MQTT client, is the memory of what is undelivered.
//! - The classes are lanes ([`super::lanes`]): spot readings first, waveform chunks next, media
//!   parts with what is left (at most two in flight), within `[mqtt] max_bytes_per_sec` when set.
//! - Packet ids are mapped to `seq`: each `publish` is remembered in order, the client reports the
//!   packet id it gave each one (`Outgoing::Publish`), and the broker's PUBACK names that id.
//!   Under broker delivery the message is then deleted from the queue (deletes are grouped).
//! - Under hub delivery ([`HubDelivery`]) the PUBACK deletes nothing: a message leaves the queue
//!   when a hub whose key the gateway obeys acknowledges its `seq` (`{root}/ack`); what stays
//!   unacknowledged past the timeout is sent again, and at most `unacked_max` messages are out
//!   without a hub's acknowledgement, so a slow hub slows the gateway, not the broker's memory.
//! - At most [`WINDOW`] messages are in flight to the broker; the rest wait in the queue, on disk.
//! - Commands (`{root}/cmd/+`) are handed to the command executor as they arrive.
//! - The will is the retained `offline` status; the retained `online` birth (with queue figures),
//!   every device's retained state and the retained `consult` are published after every connect
//!   (and on `rebirth`), because a broker without persistence forgets retained messages when it
//!   restarts. The status is refreshed every [`STATUS_EVERY`].
//! - Shutdown: once the sealer has committed its last message, wait (bounded) for what is in
//!   flight, publish `offline`, disconnect. Whatever is undelivered stays queued for the next start.

use super::delivery::HubDelivery;
use super::lanes::Pacer;
use super::status::{GatewayStatus, QueueStatus};
use super::topics;
use crate::clock::{now_micros, now_rfc3339};
use crate::config::{Delivery, MqttConfig};
use crate::queue::{self, Record};
use crate::transport::Backoff;
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

mod deletes;
mod from_hub;
mod inputs;
mod sending;
mod session;

pub use inputs::{InboundCommand, LinkCounters, LinkInputs, Publication, QueueHealth};
use sending::publish_untracked;
use session::Session;

/// Messages in flight (published, not yet acknowledged by the broker) at most.
pub const WINDOW: usize = 256;
/// How often the retained status is refreshed while connected.
pub const STATUS_EVERY: Duration = Duration::from_secs(10);
/// How long shutdown waits for in-flight messages.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// A refused subscription is asked for again after this long.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);
/// Client events read ahead of the link at most (the link takes them as they come).
const EVENTS_AHEAD: usize = 16_384;
/// Acknowledged messages are deleted from the queue in groups of this many, or every tick.
const DELETE_BATCH: usize = 256;

fn options(cfg: &MqttConfig, status_topic: &str, kid: &str) -> std::io::Result<MqttOptions> {
    let mut o = MqttOptions::new(&cfg.client_id, &cfg.url.host, cfg.url.port);
    o.set_keep_alive(cfg.keep_alive);
    o.set_max_packet_size(super::MAX_PACKET, super::MAX_PACKET);
    o.set_inflight((WINDOW + 64) as u16);
    o.set_clean_session(true);
    let will = GatewayStatus::new(false, now_rfc3339(), kid.to_string());
    o.set_last_will(LastWill::new(status_topic, will.to_json(), QoS::AtLeastOnce, true));
    if let (Some(u), p) = (&cfg.username, &cfg.password) {
        o.set_credentials(u, p.clone().unwrap_or_default());
    }
    if cfg.url.tls {
        let client = cfg.client_cert.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
        let transport = super::tls::transport(cfg.ca.as_deref(), client).map_err(std::io::Error::other)?;
        o.set_transport(transport);
    }
    Ok(o)
}

struct Link {
    status_topic: String,
    cmd_filter: String,
    ack_topic: String,
    inputs: LinkInputs,
    /// Committed records handed over in memory, not yet published, per class.
    fresh: [VecDeque<Record>; 3],
    /// The byte budget (`[mqtt] max_bytes_per_sec`).
    pacer: Option<Pacer>,
    /// After a failed delete, when to try again.
    delete_retry_at: Option<tokio::time::Instant>,
    retained: BTreeMap<String, Vec<u8>>,
    /// Broker delivery: seqs acknowledged by the broker, to delete.
    acked: Vec<u64>,
    /// Hub delivery: what is out without a hub's acknowledgement, and the ranges to delete.
    hub: Option<HubDelivery>,
    hub_acked: Vec<(u64, u64)>,
    /// Hub delivery: messages an acknowledgement showed lost, to send again.
    lost: Vec<u64>,
}

/// Runs the uplink until the sealer is done and the drain is over.
pub async fn run_link(cfg: MqttConfig, inputs: LinkInputs) -> std::io::Result<()> {
    let hub = (inputs.hub.delivery == Delivery::Hub)
        .then(|| HubDelivery::new(inputs.hub.ack_timeout, inputs.hub.unacked_max));
    let retained = inputs.retained.iter().map(|p| (p.topic.clone(), p.payload.clone())).collect();
    let mut link = Link {
        status_topic: topics::status(&inputs.site, &inputs.gw),
        cmd_filter: topics::cmd(&inputs.site, &inputs.gw, "+"),
        ack_topic: topics::ack(&inputs.site, &inputs.gw),
        inputs,
        fresh: Default::default(),
        pacer: cfg.max_bytes_per_sec.map(|b| Pacer::new(b, std::time::Instant::now())),
        delete_retry_at: None,
        retained,
        acked: Vec::new(),
        hub,
        hub_acked: Vec::new(),
        lost: Vec::new(),
    };
    link.inputs.snapshot.send_modify(|s| {
        s.uplink.delivery = link.inputs.hub.delivery.as_str().into();
        s.uplink.since = Some(now_rfc3339());
    });
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
    let mut down_since: Option<tokio::time::Instant> = None;
    let mut draining: Option<tokio::time::Instant> = None;
    loop {
        let (client, eventloop) = super::client(options(&cfg, &link.status_topic, &link.inputs.kid)?, WINDOW + 512);
        let mut events = spawn_poller(eventloop, EVENTS_AHEAD);
        let mut s = Session::default();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut status_due = tokio::time::Instant::now() + STATUS_EVERY;
        let lost = loop {
            if s.connected {
                link.fill(&client, &mut s);
            }
            if link.acked.len() >= DELETE_BATCH || link.hub_acked.len() >= 64 {
                link.flush_deletes();
            }
            if let Some(deadline) = draining {
                let done =
                    s.connected && s.outstanding() == 0 && !s.maybe_more() && link.fresh.iter().all(VecDeque::is_empty);
                if done || tokio::time::Instant::now() >= deadline {
                    link.finish(&client, &mut events, &s).await;
                    return Ok(());
                }
            }
            tokio::select! {
                ev = events.recv() => match ev.unwrap_or(Err(None)) {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        s.connected = true;
                        backoff.reset();
                        link.inputs.counters.connects.fetch_add(1, Ordering::Relaxed);
                        match down_since.take() {
                            Some(t) => tracing::info!(url = %cfg.url, outage_ms = t.elapsed().as_millis() as u64, "MQTT reconnected"),
                            None => tracing::info!(url = %cfg.url, "MQTT connected"),
                        }
                        link.inputs.snapshot.send_modify(|snap| {
                            snap.uplink.connected = true;
                            snap.uplink.since = Some(now_rfc3339());
                        });
                        link.subscribe(&client);
                        link.birth(&client, &mut s);
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        if let Some(Some(sent)) = s.awaiting_pkid.pop_front() {
                            s.in_flight.insert(pkid, sent);
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(ack))) => {
                        if ack.return_codes.iter().any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure)) {
                            tracing::warn!("the broker refused a subscription (commands or acknowledgements); trying again");
                            s.resubscribe_at = Some(tokio::time::Instant::now() + RESUBSCRIBE_AFTER);
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        if let Some((seq, class)) = s.in_flight.remove(&ack.pkid) {
                            link.inputs.counters.acked.fetch_add(1, Ordering::Relaxed);
                            if link.hub.is_none() {
                                link.acked.push(seq);
                            }
                            s.done(class);
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if link.incoming(&p.topic, &p.payload) {
                            s.more_in_all();
                        }
                        if !link.lost.is_empty() {
                            link.resend_due(&client, &mut s);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => break e.map(|e| e.to_string()).unwrap_or_else(|| "event loop ended".into()),
                },
                _ = link.inputs.committed.notified() => s.more_in_all(),
                _ = crate::clock::until(link.paced().then(|| link.paced_until())) => {}
                _ = link.inputs.rebirth.notified() => if s.connected { link.birth(&client, &mut s) },
                _ = link.inputs.health.changed.notified() => if s.connected {
                    let status = link.status(true);
                    publish_untracked(&client, &mut s, status);
                },
                Some(batch) = link.inputs.fresh.recv() => {
                    for r in batch {
                        let c = r.class as usize;
                        link.fresh[c].push_back(r);
                        if link.fresh[c].len() > 4 * WINDOW {
                            // Far behind: let the queue hold them and read it in order.
                            link.fresh[c].clear();
                            s.lanes[c].maybe_more = true;
                        }
                    }
                }
                state = link.inputs.states.recv(), if draining.is_none() => match state {
                    Some(p) => {
                        link.retained.insert(p.topic.clone(), p.payload.clone());
                        if s.connected {
                            publish_untracked(&client, &mut s, p);
                        }
                    }
                    // The sealer has committed its last message: drain what is in flight.
                    None => draining = Some(tokio::time::Instant::now() + DRAIN_TIMEOUT),
                },
                Some(p) = link.inputs.live.recv() => {
                    if s.connected {
                        publish_untracked(&client, &mut s, p);
                    } else {
                        tracing::error!(topic = %p.topic, "queue unavailable and broker unreachable: message lost");
                    }
                }
                _ = tick.tick() => {
                    link.inputs.heartbeat.beat();
                    link.flush_deletes();
                    if s.connected {
                        link.resend_due(&client, &mut s);
                        if s.resubscribe_at.is_some_and(|t| tokio::time::Instant::now() >= t) {
                            s.resubscribe_at = None;
                            link.subscribe(&client);
                        }
                        if tokio::time::Instant::now() >= status_due {
                            status_due = tokio::time::Instant::now() + STATUS_EVERY;
                            let status = link.status(true);
                            publish_untracked(&client, &mut s, status);
                        }
                    }
                }
            }
        };
        // The connection is gone: what was in flight stays queued and is sent on the next one.
        link.flush_deletes();
        if let Some(h) = link.hub.as_mut() {
            h.connection_lost();
        }
        link.lost.clear();
        link.publish_unacked();
        link.inputs.snapshot.send_modify(|snap| {
            if snap.uplink.connected {
                snap.uplink.connected = false;
                snap.uplink.since = Some(now_rfc3339());
            }
        });
        if down_since.is_none() {
            tracing::warn!(url = %cfg.url, error = %lost, "MQTT connection lost; messages stay queued; retrying");
            down_since = Some(tokio::time::Instant::now());
        } else {
            tracing::debug!(url = %cfg.url, error = %lost, "MQTT still unreachable");
        }
        if draining.is_some_and(|d| tokio::time::Instant::now() >= d) {
            return Ok(());
        }
        let wait = backoff.next_delay();
        let sleep_until = match draining {
            Some(d) => (tokio::time::Instant::now() + wait).min(d),
            None => tokio::time::Instant::now() + wait,
        };
        // Keep taking states while waiting, so the sealer never blocks on them.
        let mut beat = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(sleep_until) => break,
                _ = beat.tick() => link.inputs.heartbeat.beat(),
                state = link.inputs.states.recv(), if draining.is_none() => match state {
                    Some(p) => { link.retained.insert(p.topic, p.payload); }
                    None => draining = Some(tokio::time::Instant::now() + DRAIN_TIMEOUT),
                },
                Some(p) = link.inputs.live.recv() => {
                    tracing::error!(topic = %p.topic, "queue unavailable and broker unreachable: message lost");
                }
                // Committed records wait in the queue, not in memory; the next connection reads them.
                Some(_) = link.inputs.fresh.recv() => link.fresh.iter_mut().for_each(VecDeque::clear),
            }
        }
    }
}

/// One event of the MQTT client, or why the connection ended (`None`: the poller stopped).
pub(crate) type PollResult = Result<Event, Option<rumqttc::ConnectionError>>;

/// Polls the client's event loop in its own task: a poll is never cancelled half-way (which could
/// leave written packets unflushed), and its events reach the caller through a channel of
/// `capacity` events: when the caller falls that far behind, polling waits, and the broker holds
/// what is not yet read (a hub that verifies slower than messages arrive does not fill its
/// memory). Ends after an error or a disconnect; each connection has its own.
pub(crate) fn spawn_poller(mut eventloop: rumqttc::EventLoop, capacity: usize) -> mpsc::Receiver<PollResult> {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    tokio::spawn(async move {
        loop {
            let ev = eventloop.poll().await;
            let last = matches!(ev, Err(_) | Ok(Event::Outgoing(Outgoing::Disconnect)));
            if tx.send(ev.map_err(Some)).await.is_err() || last {
                break;
            }
        }
    });
    rx
}

impl Link {
    /// Subscribes to what hubs send this gateway (on every connect: the session is clean).
    fn subscribe(&self, client: &AsyncClient) {
        let _ = client.try_subscribe(self.cmd_filter.clone(), QoS::AtLeastOnce);
        if self.hub.is_some() {
            let _ = client.try_subscribe(self.ack_topic.clone(), QoS::AtLeastOnce);
        }
    }

    fn status(&self, online: bool) -> Publication {
        let mut status = GatewayStatus::new(online, now_rfc3339(), self.inputs.kid.clone());
        if !self.inputs.retiring.is_empty() {
            status.kids =
                std::iter::once(self.inputs.kid.clone()).chain(self.inputs.retiring.iter().cloned()).collect();
        }
        let stats = queue::lock(&self.inputs.queue).stats();
        if let Ok(st) = stats {
            let delivery = self.inputs.hub.delivery;
            let unacked = self.hub.as_ref().map(|h| h.unacked() as u64);
            status.queue =
                Some(QueueStatus::from_stats(&st, now_micros(), self.inputs.health.get(), delivery, unacked));
        }
        Publication { topic: self.status_topic.clone(), payload: status.to_json(), retain: true }
    }

    fn birth(&mut self, client: &AsyncClient, s: &mut Session) {
        publish_untracked(client, s, self.status(true));
        for (topic, payload) in &self.retained {
            publish_untracked(client, s, Publication { topic: topic.clone(), payload: payload.clone(), retain: true });
        }
    }

    /// The drain's end: offline status, then disconnect (bounded).
    async fn finish(&mut self, client: &AsyncClient, events: &mut mpsc::Receiver<PollResult>, s: &Session) {
        self.flush_deletes();
        let unacked = s.outstanding();
        if unacked > 0 {
            tracing::warn!(unacked, "stopping with messages in flight; they stay queued for the next start");
        }
        let offline = self.status(false);
        let _ = client.try_publish(offline.topic, QoS::AtLeastOnce, true, offline.payload);
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match events.recv().await.unwrap_or(Err(None)) {
                    Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        if let (Some((seq, _)), None) = (s.in_flight.get(&ack.pkid), &self.hub) {
                            self.acked.push(*seq);
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        self.incoming(&p.topic, &p.payload);
                    }
                    Ok(_) => {}
                }
            }
        })
        .await;
        self.flush_deletes_at_stop();
    }
}
