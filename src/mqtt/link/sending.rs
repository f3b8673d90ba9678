//! Handing queued messages to the client: lane by lane within the window and the byte budget,
//! and (hub delivery) sending again what no hub acknowledged.

use super::session::Session;
use super::{Link, Publication, WINDOW};
use crate::mqtt::lanes::{self, LANES, MEDIA_IN_FLIGHT};
use crate::queue::{self, Class, Record};
use rumqttc::{AsyncClient, QoS};
use std::sync::atomic::Ordering;

/// Publishes a message that is not in the queue (status, retained state, live fallback): its
/// PUBACK deletes nothing, so only its place among the packet ids is kept.
pub(super) fn publish_untracked(client: &AsyncClient, s: &mut Session, p: Publication) {
    if client.try_publish(p.topic, QoS::AtLeastOnce, p.retain, p.payload).is_ok() {
        s.awaiting_pkid.push_back(None);
    }
}

impl Link {
    /// Hub delivery: what is out without a hub's acknowledgement, for status and benchmarks.
    pub(super) fn publish_unacked(&self) {
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
    pub(super) fn paced(&self) -> bool {
        self.pacer.as_ref().is_some_and(|p| p.ready_at(std::time::Instant::now()) > std::time::Instant::now())
    }

    /// When the byte budget lets the next message go.
    pub(super) fn paced_until(&self) -> tokio::time::Instant {
        let now = std::time::Instant::now();
        let at = self.pacer.as_ref().map_or(now, |p| p.ready_at(now));
        tokio::time::Instant::now() + at.saturating_duration_since(now)
    }

    /// Hands queued messages to the client up to the room, lane by lane (spot, wave, media),
    /// each lane in seq order: from the queue while it may hold messages not handed over in
    /// memory, then from memory.
    pub(super) fn fill(&mut self, client: &AsyncClient, s: &mut Session) {
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
                if !self.send(client, s, r) {
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
                if !self.send(client, s, r) {
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
    fn send(&mut self, client: &AsyncClient, s: &mut Session, r: Record) -> bool {
        let (seq, class) = (r.seq, r.class);
        if !self.publish_queued(client, s, r) {
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
    fn publish_queued(&mut self, client: &AsyncClient, s: &mut Session, r: Record) -> bool {
        let Record { seq, class, topic, payload, .. } = r;
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
    pub(super) fn resend_due(&mut self, client: &AsyncClient, s: &mut Session) {
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
            if !self.publish_queued(client, s, r) {
                break;
            }
            self.inputs.counters.resent.fetch_add(1, Ordering::Relaxed);
        }
    }
}
