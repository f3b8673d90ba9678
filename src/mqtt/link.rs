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
use super::lanes::{self, Pacer, LANES, MEDIA_IN_FLIGHT};
use super::status::{GatewayStatus, QueueStatus};
use super::topics;
use crate::clock::{micros_to_rfc3339, now_micros, now_rfc3339};
use crate::config::{Delivery, HubConfig, MqttConfig};
use crate::hub::check_hub_body;
use crate::model::{AckBody, BodyKind};
use crate::queue::{self, Class, Queue, Record};
use crate::sign::open_from_hub;
use crate::snapshot::SnapshotTx;
use crate::transport::Backoff;
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

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
/// Acknowledged messages remembered for deletion while the queue cannot delete.
const MAX_PENDING_DELETES: usize = 100_000;

/// One MQTT message that does not go through the queue (retained state, or live-only fallback).
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// What the link has done, for status and benchmarks.
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Queued messages handed to the client (first sends).
    pub published: AtomicU64,
    /// Queued messages acknowledged by the broker.
    pub acked: AtomicU64,
    /// Successful connections (CONNACK).
    pub connects: AtomicU64,
    /// Messages a hub acknowledged (hub delivery).
    pub hub_acked: AtomicU64,
    /// Messages sent again because no hub acknowledged them in time (hub delivery).
    pub resent: AtomicU64,
    /// Messages out now without a hub's acknowledgement, and the most there ever were.
    pub unacked: AtomicU64,
    pub unacked_peak: AtomicU64,
    /// Hub commands received (before any check) and dropped because the executor was busy.
    pub commands_in: AtomicU64,
    pub commands_dropped: AtomicU64,
    /// Acknowledgements that failed verification.
    pub bad_acks: AtomicU64,
}

/// The queue's health as the status topic reports it. A change (failing, or healthy again) is
/// published at once, not at the next periodic status.
#[derive(Debug, Default)]
pub struct QueueHealth {
    pub error: Mutex<Option<String>>,
    changed: tokio::sync::Notify,
}

impl QueueHealth {
    pub fn set(&self, error: Option<String>) {
        let mut e = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if e.is_some() != error.is_some() {
            self.changed.notify_one();
        }
        *e = error;
    }

    pub fn get(&self) -> Option<String> {
        self.error.lock().ok().and_then(|e| e.clone())
    }
}

/// A hub command as it arrived (checked by the command executor, not here).
#[derive(Debug, Clone)]
pub struct InboundCommand {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// Everything the link reads from.
pub struct LinkInputs {
    pub site: String,
    pub gw: String,
    pub kid: String,
    /// Kids of rotated keys still in their grace period (messages they signed may be queued).
    pub retiring: Vec<String>,
    /// Beats on every turn of the link's loops (the watchdog's sign of life).
    pub heartbeat: Arc<crate::systemd::Heartbeat>,
    pub queue: Arc<Mutex<Queue>>,
    /// Records just committed, in `seq` order: sent from memory when the link is caught up.
    pub fresh: mpsc::Receiver<Vec<Record>>,
    /// Told when committed records were not handed over in memory (read them from the queue).
    pub committed: Arc<Notify>,
    /// Retained messages (device states, the consult); closes when the sealer is done (the
    /// signal to drain).
    pub states: mpsc::Receiver<Publication>,
    /// Retained messages to re-publish on every connect from the start (the stored consult).
    pub retained: Vec<Publication>,
    /// Signed messages that could not be committed (disk full): sent live, best effort.
    pub live: mpsc::Receiver<Publication>,
    /// Hub commands go here.
    pub commands: mpsc::Sender<InboundCommand>,
    /// Re-publish status, states and consult now (the `rebirth` command).
    pub rebirth: Arc<Notify>,
    pub hub: HubConfig,
    pub counters: Arc<LinkCounters>,
    pub health: Arc<QueueHealth>,
    pub snapshot: SnapshotTx,
}

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

/// Where one lane of one connection stands.
#[derive(Debug, Clone, Copy)]
struct Lane {
    /// The highest seq of this class handed to this connection.
    last_sent: u64,
    /// The queue may hold rows of this class above `last_sent` that are not in `Link::fresh`.
    maybe_more: bool,
}

impl Default for Lane {
    fn default() -> Self {
        Self { last_sent: 0, maybe_more: true }
    }
}

/// Where one connection stands.
#[derive(Debug, Default)]
struct Session {
    connected: bool,
    /// Publishes handed to the client, oldest first, waiting for their packet id (`None`: not queued).
    awaiting_pkid: VecDeque<Option<(u64, Class)>>,
    /// Packet id -> seq and class, waiting for PUBACK.
    in_flight: HashMap<u16, (u64, Class)>,
    /// Per class (indexed by `Class as usize`).
    lanes: [Lane; 3],
    /// Media parts published and not yet acknowledged by the broker.
    media_out: usize,
    /// A broker refused a subscription (a clustered broker mid-election does): subscribe again then.
    resubscribe_at: Option<tokio::time::Instant>,
}

impl Session {
    fn outstanding(&self) -> usize {
        self.in_flight.len() + self.awaiting_pkid.iter().filter(|s| s.is_some()).count()
    }

    fn maybe_more(&self) -> bool {
        self.lanes.iter().any(|l| l.maybe_more)
    }

    fn more_in_all(&mut self) {
        for l in &mut self.lanes {
            l.maybe_more = true;
        }
    }

    /// A queued message left the window (acknowledged, or the connection is gone). What waits
    /// behind it is in `Link::fresh`, or its lane already says the queue may hold more: the
    /// queue is not read again for it.
    fn done(&mut self, class: Class) {
        if class == Class::Media {
            self.media_out = self.media_out.saturating_sub(1);
        }
    }
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

fn publish_untracked(client: &AsyncClient, s: &mut Session, p: Publication) {
    if client.try_publish(p.topic, QoS::AtLeastOnce, p.retain, p.payload).is_ok() {
        s.awaiting_pkid.push_back(None);
    }
}

impl Link {
    /// Subscribes to what hubs send this gateway (on every connect: the session is clean).
    fn subscribe(&self, client: &AsyncClient) {
        let _ = client.try_subscribe(self.cmd_filter.clone(), QoS::AtLeastOnce);
        if self.hub.is_some() {
            let _ = client.try_subscribe(self.ack_topic.clone(), QoS::AtLeastOnce);
        }
    }

    /// A message from a hub; true when it freed room to send.
    fn incoming(&mut self, topic: &str, payload: &[u8]) -> bool {
        if topic == self.ack_topic {
            return self.hub_ack(payload);
        }
        if !matches!(topics::parse(topic), Some(topics::TopicRef::Cmd { .. })) {
            return false;
        }
        let c = &self.inputs.counters;
        c.commands_in.fetch_add(1, Ordering::Relaxed);
        let cmd = InboundCommand { topic: topic.to_string(), payload: payload.to_vec() };
        if self.inputs.commands.try_send(cmd).is_err() {
            c.commands_dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%topic, "command executor busy; command dropped unread (the hub may send it again)");
        }
        false
    }

    /// A hub's acknowledgement: verified with the hub keys, addressed to this gateway.
    fn hub_ack(&mut self, payload: &[u8]) -> bool {
        let Some(hub) = self.hub.as_mut() else { return false };
        let opened = open_from_hub::<AckBody>(payload, &self.inputs.hub.keys).map_err(|e| e.to_string()).and_then(
            |(ack, key_hub)| {
                check_hub_body(
                    ack.kind,
                    BodyKind::Ack,
                    (&ack.site, &ack.gw, &ack.hub),
                    (&self.inputs.site, &self.inputs.gw, &key_hub),
                )
                .map(|()| ack)
                .map_err(|e| e.to_string())
            },
        );
        let ack = match opened {
            Ok(a) => a,
            Err(why) => {
                self.inputs.counters.bad_acks.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(reason = %why, "acknowledgement refused");
                return false;
            }
        };
        let ranges: Vec<(u64, u64)> = ack.ranges().collect();
        let (n, lost) = hub.acknowledged(&ranges, std::time::Instant::now());
        self.inputs.counters.hub_acked.fetch_add(n as u64, Ordering::Relaxed);
        self.hub_acked.extend(ranges);
        self.lost.extend(lost);
        self.publish_unacked();
        n > 0
    }

    fn publish_unacked(&self) {
        if let Some(h) = &self.hub {
            let c = &self.inputs.counters;
            c.unacked.store(h.unacked() as u64, Ordering::Relaxed);
            c.unacked_peak.fetch_max(h.peak() as u64, Ordering::Relaxed);
        }
    }

    /// Room to send: the broker window, and under hub delivery the unacknowledged limit.
    fn room(&self, s: &Session) -> usize {
        let broker = WINDOW.saturating_sub(s.outstanding());
        self.hub.as_ref().map_or(broker, |h| broker.min(h.room()))
    }

    /// Whether the byte budget holds back a message that is ready to go.
    fn paced(&self) -> bool {
        self.pacer.as_ref().is_some_and(|p| p.ready_at(std::time::Instant::now()) > std::time::Instant::now())
    }

    /// When the byte budget lets the next message go.
    fn paced_until(&self) -> tokio::time::Instant {
        let now = std::time::Instant::now();
        let at = self.pacer.as_ref().map_or(now, |p| p.ready_at(now));
        tokio::time::Instant::now() + at.saturating_duration_since(now)
    }

    /// Hands queued messages to the client up to the room, lane by lane (spot, wave, media),
    /// each lane in seq order: from the queue while it may hold messages not handed over in
    /// memory, then from memory.
    fn fill(&mut self, client: &AsyncClient, s: &mut Session) {
        for class in LANES {
            if !self.fill_lane(client, s, class) {
                return;
            }
        }
    }

    /// How many messages of `class` may go now.
    fn lane_room(&mut self, s: &Session, class: Class) -> usize {
        let mut room = self.room(s);
        if class == Class::Media {
            room = room.min(MEDIA_IN_FLIGHT.saturating_sub(s.media_out));
        }
        if room > 0 && self.pacer.as_mut().is_some_and(|p| !p.may_send(class, std::time::Instant::now())) {
            return 0;
        }
        room
    }

    /// Fills one lane; false when the client or the queue cannot take more now (later lanes wait).
    fn fill_lane(&mut self, client: &AsyncClient, s: &mut Session, class: Class) -> bool {
        let c = class as usize;
        if !s.lanes[c].maybe_more {
            while self.lane_room(s, class) > 0 {
                let Some(r) = self.fresh[c].pop_front() else { break };
                if r.seq <= s.lanes[c].last_sent {
                    continue;
                }
                if !self.send(client, s, r.seq, class, r.topic, r.payload) {
                    // The client is full; the record is in the queue and will be read from there.
                    s.lanes[c].maybe_more = true;
                    return false;
                }
            }
            return true;
        }
        // Paced: one message at a time, as long as the budget lets them go; else up to the room.
        loop {
            let room = self.lane_room(s, class);
            if room == 0 {
                return true;
            }
            // Never wait for the queue on the runtime thread: it is busy only while a commit
            // runs, and the link is woken again by the next commit or acknowledgement.
            let Some(mut q) = queue::try_lock(&self.inputs.queue) else { return false };
            let limit = if self.pacer.is_some() { 1 } else { room };
            let rows = q.after_in_class(class, s.lanes[c].last_sent, limit);
            drop(q);
            let rows = match rows {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the queue");
                    self.inputs.health.set(Some(e.to_string()));
                    s.lanes[c].maybe_more = false;
                    return false;
                }
            };
            let full = rows.len() == limit;
            s.lanes[c].maybe_more = full;
            for r in rows {
                if !self.send(client, s, r.seq, class, r.topic, r.payload) {
                    s.lanes[c].maybe_more = true;
                    return false;
                }
            }
            if !full || self.pacer.is_none() {
                return true;
            }
        }
    }

    /// Publishes a queued message (first send); false when the client is full.
    fn send(
        &mut self,
        client: &AsyncClient,
        s: &mut Session,
        seq: u64,
        class: Class,
        topic: String,
        payload: Vec<u8>,
    ) -> bool {
        if !self.publish_queued(client, s, seq, class, topic, payload) {
            return false;
        }
        let lane = &mut s.lanes[class as usize];
        lane.last_sent = lane.last_sent.max(seq);
        self.inputs.counters.published.fetch_add(1, Ordering::Relaxed);
        self.publish_unacked();
        true
    }

    /// Hands a queued message to the client and records it as out: awaiting its packet id, in
    /// the byte budget, among the media parts in flight, and (hub delivery) awaiting a hub's ack.
    fn publish_queued(
        &mut self,
        client: &AsyncClient,
        s: &mut Session,
        seq: u64,
        class: Class,
        topic: String,
        payload: Vec<u8>,
    ) -> bool {
        let bytes = lanes::wire_bytes(&topic, payload.len());
        if client.try_publish(topic, QoS::AtLeastOnce, false, payload).is_err() {
            return false;
        }
        let now = std::time::Instant::now();
        if let Some(p) = self.pacer.as_mut() {
            p.spent(class, bytes, now);
        }
        if class == Class::Media {
            s.media_out += 1;
        }
        s.awaiting_pkid.push_back(Some((seq, class)));
        if let Some(h) = self.hub.as_mut() {
            h.sent(seq, now);
        }
        true
    }

    /// Hub delivery: sends again (same bytes, same seq) what an acknowledgement showed lost, what
    /// no hub acknowledged in time, and the probe while no hub acknowledges anything.
    fn resend_due(&mut self, client: &AsyncClient, s: &mut Session) {
        let Some(h) = self.hub.as_ref() else { return };
        let now = std::time::Instant::now();
        let room = WINDOW.saturating_sub(s.outstanding());
        let mut due: Vec<u64> = std::mem::take(&mut self.lost);
        due.extend(h.overdue(now, room));
        due.extend(h.probe(now));
        due.sort_unstable();
        due.dedup();
        due.truncate(room);
        if due.is_empty() {
            return;
        }
        let Some(mut q) = queue::try_lock(&self.inputs.queue) else { return };
        let rows = q.by_seq(&due);
        drop(q);
        let Ok(rows) = rows else { return };
        let found: std::collections::HashSet<u64> = rows.iter().map(|r| r.seq).collect();
        if let Some(h) = self.hub.as_mut() {
            for seq in due.iter().filter(|s| !found.contains(s)) {
                h.forget(*seq);
            }
        }
        tracing::debug!(count = rows.len(), "sending again what no hub acknowledged");
        for r in rows {
            if !self.publish_queued(client, s, r.seq, r.class, r.topic, r.payload) {
                break;
            }
            self.inputs.counters.resent.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn flush_deletes(&mut self) {
        if (self.acked.is_empty() && self.hub_acked.is_empty())
            || self.delete_retry_at.is_some_and(|t| tokio::time::Instant::now() < t)
        {
            return;
        }
        let queue = self.inputs.queue.clone();
        let Some(q) = queue::try_lock(&queue) else { return };
        self.delete_delivered(q);
    }

    /// The last deletes before the link stops: whatever a failed delete's retry timer says, and
    /// waiting for the queue if someone holds it.
    fn flush_deletes_at_stop(&mut self) {
        if self.acked.is_empty() && self.hub_acked.is_empty() {
            return;
        }
        let queue = self.inputs.queue.clone();
        let q = queue.lock().unwrap_or_else(|p| p.into_inner());
        self.delete_delivered(q);
    }

    fn delete_delivered(&mut self, mut q: std::sync::MutexGuard<'_, queue::Queue>) {
        let result = if self.hub.is_some() {
            let now = now_micros();
            let r = q.delete_acked(&self.hub_acked, now).map(|_| ());
            if r.is_ok() {
                self.inputs.snapshot.send_modify(|snap| snap.uplink.last_hub_ack = Some(micros_to_rfc3339(now)));
            }
            r
        } else {
            q.delete(&self.acked)
        };
        drop(q);
        match result {
            Ok(()) => {
                self.acked.clear();
                self.hub_acked.clear();
                if self.delete_retry_at.take().is_some() {
                    tracing::info!("delivered messages are deleted from the queue again");
                }
            }
            Err(e) => {
                // Kept for a later try (a delete that never happens only means a resend after a
                // restart), but not retried on every event, and not kept without bound.
                if self.delete_retry_at.is_none() {
                    tracing::warn!(error = %e, "cannot delete delivered messages from the queue; retrying every second");
                }
                self.delete_retry_at = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                for list in [self.acked.len(), self.hub_acked.len()] {
                    if list > MAX_PENDING_DELETES {
                        let excess = list - MAX_PENDING_DELETES;
                        self.acked.drain(..excess.min(self.acked.len()));
                        self.hub_acked.drain(..excess.min(self.hub_acked.len()));
                    }
                }
            }
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
