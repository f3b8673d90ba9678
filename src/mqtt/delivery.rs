//! End-to-end delivery (hub delivery): which messages were sent and not yet acknowledged by a
//! hub, when each was last sent, and how many more may go out. A plain state machine: the link
//! tells it what it sent and what a hub acknowledged; it says what may be sent and what must be
//! sent again:
//!
//! - **timeout**: a message not acknowledged `timeout` after it was sent is sent again;
//! - **loss seen in an acknowledgement**: a hub receives one gateway's messages in the order they
//!   were sent, so when it acknowledges a message, an outstanding one sent well before it (more than
//!   [`LOSS_MARGIN`], the slack for hubs that store in parallel batches) was lost on the way: it is
//!   sent again at once;
//! - **probe**: while no hub has acknowledged anything for [`PROBE_EVERY`], the oldest outstanding
//!   message is sent again on its own now and then, so a hub that comes back (or a broker that
//!   lost everything) is noticed within a probe, not a timeout: its acknowledgement shows the rest
//!   as lost.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How much earlier than an acknowledged message an outstanding one must have been sent to count
/// as lost.
pub const LOSS_MARGIN: Duration = Duration::from_secs(1);
/// How often the oldest outstanding message is sent again while no hub acknowledges anything.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct HubDelivery {
    timeout: Duration,
    max: usize,
    /// seq -> when it was last sent.
    sent: BTreeMap<u64, Instant>,
    /// The most messages ever out at once without a hub's acknowledgement.
    peak: usize,
    /// When a hub last acknowledged anything.
    last_ack: Option<Instant>,
}

impl HubDelivery {
    pub fn new(timeout: Duration, max: usize) -> Self {
        Self { timeout, max: max.max(1), sent: BTreeMap::new(), peak: 0, last_ack: None }
    }

    /// How many more messages may be sent now.
    pub fn room(&self) -> usize {
        self.max.saturating_sub(self.sent.len())
    }

    /// Messages out without a hub's acknowledgement.
    pub fn unacked(&self) -> usize {
        self.sent.len()
    }

    pub fn peak(&self) -> usize {
        self.peak
    }

    /// `seq` was (re)sent at `now`.
    pub fn sent(&mut self, seq: u64, now: Instant) {
        self.sent.insert(seq, now);
        self.peak = self.peak.max(self.sent.len());
    }

    /// A hub acknowledged the inclusive ranges at `now`: how many outstanding messages they
    /// covered, and the outstanding ones the acknowledgement shows lost (to send again now).
    pub fn acknowledged(&mut self, ranges: &[(u64, u64)], now: Instant) -> (usize, Vec<u64>) {
        self.last_ack = Some(now);
        let mut n = 0;
        let mut newest: Option<Instant> = None;
        for &(a, b) in ranges {
            let covered: Vec<(u64, Instant)> = self.sent.range(a..=b).map(|(s, t)| (*s, *t)).collect();
            n += covered.len();
            for (s, t) in covered {
                newest = newest.max(Some(t));
                self.sent.remove(&s);
            }
        }
        let lost = match newest.and_then(|t| t.checked_sub(LOSS_MARGIN)) {
            Some(before) => self.sent.iter().filter(|(_, t)| **t < before).map(|(s, _)| *s).collect(),
            None => Vec::new(),
        };
        (n, lost)
    }

    /// Up to `limit` messages sent at least a timeout ago, oldest `seq` first: to send again.
    pub fn overdue(&self, now: Instant, limit: usize) -> Vec<u64> {
        self.sent
            .iter()
            .filter(|(_, at)| now.saturating_duration_since(**at) >= self.timeout)
            .map(|(s, _)| *s)
            .take(limit)
            .collect()
    }

    /// The oldest outstanding message, when no hub has acknowledged anything for a probe interval
    /// and it was last sent a probe interval ago: to send again on its own.
    pub fn probe(&self, now: Instant) -> Option<u64> {
        let quiet = self.last_ack.is_none_or(|t| now.saturating_duration_since(t) >= PROBE_EVERY);
        let (seq, at) = self.sent.iter().next()?;
        (quiet && now.saturating_duration_since(*at) >= PROBE_EVERY).then_some(*seq)
    }

    /// A message is gone from the queue (evicted): nothing to wait for.
    pub fn forget(&mut self, seq: u64) {
        self.sent.remove(&seq);
    }

    /// The connection is gone: the next one sends every undelivered message again from the queue.
    pub fn connection_lost(&mut self) {
        self.sent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery() -> (HubDelivery, Instant) {
        (HubDelivery::new(Duration::from_secs(10), 3), Instant::now())
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn no_more_than_the_limit_goes_out_without_a_hub_acknowledgement() {
        let (mut d, t) = delivery();
        for s in 1..=3 {
            d.sent(s, t);
        }
        assert_eq!((d.room(), d.unacked()), (0, 3));
        assert_eq!(d.acknowledged(&[(1, 2)], t).0, 2);
        assert_eq!(d.room(), 2);
        assert_eq!(d.peak(), 3);
    }

    #[test]
    fn what_stays_unacknowledged_past_the_timeout_is_due_again_oldest_first() {
        let (mut d, t) = delivery();
        d.sent(7, t);
        d.sent(5, t + secs(1));
        d.sent(9, t + secs(5));
        assert!(d.overdue(t + secs(9), 10).is_empty());
        assert_eq!(d.overdue(t + secs(11), 10), [5, 7]);
        assert_eq!(d.overdue(t + secs(11), 1), [5]);
        // Sent again: the clock starts over for it.
        d.sent(5, t + secs(11));
        assert_eq!(d.overdue(t + secs(12), 10), [7]);
    }

    #[test]
    fn an_acknowledged_later_message_shows_an_earlier_unacknowledged_one_lost() {
        let (mut d, t) = delivery();
        d.sent(1, t);
        d.sent(2, t + Duration::from_millis(2500));
        d.sent(3, t + secs(3));
        // 3 arrived; 1 was sent well before it and is not acknowledged: lost. 2 was sent within
        // the margin (a parallel hub may still be storing it): not yet.
        let (n, lost) = d.acknowledged(&[(3, 3)], t + secs(3));
        assert_eq!((n, lost), (1, vec![1]));
        // Sent again; an acknowledgement of what was sent before it shows nothing lost.
        d.sent(1, t + secs(3));
        d.sent(4, t + secs(4));
        assert_eq!(d.acknowledged(&[(2, 2)], t + secs(4)).1, Vec::<u64>::new());
    }

    #[test]
    fn while_no_hub_acknowledges_the_oldest_message_is_probed_now_and_then() {
        let (mut d, t) = delivery();
        assert_eq!(d.probe(t), None, "nothing outstanding");
        d.sent(4, t);
        d.sent(5, t);
        assert_eq!(d.probe(t + Duration::from_millis(900)), None);
        assert_eq!(d.probe(t + secs(1)), Some(4));
        d.sent(4, t + secs(1));
        assert_eq!(d.probe(t + Duration::from_millis(1500)), None, "probed a moment ago");
        // A hub that acknowledges keeps probes off.
        d.acknowledged(&[(99, 99)], t + secs(2));
        assert_eq!(d.probe(t + Duration::from_millis(2500)), None);
        assert_eq!(d.probe(t + secs(3)), Some(4));
    }

    #[test]
    fn acknowledgements_of_unknown_or_repeated_ranges_change_nothing_else() {
        let (mut d, t) = delivery();
        d.sent(4, t);
        assert_eq!(d.acknowledged(&[(1, 3), (5, u64::MAX)], t).0, 0);
        assert_eq!(d.acknowledged(&[(4, 4), (4, 4)], t).0, 1);
        assert_eq!(d.unacked(), 0);
    }

    #[test]
    fn a_lost_connection_or_an_evicted_message_stops_the_wait() {
        let (mut d, t) = delivery();
        d.sent(1, t);
        d.sent(2, t);
        d.forget(1);
        assert_eq!(d.unacked(), 1);
        d.connection_lost();
        assert_eq!((d.unacked(), d.room()), (0, 3));
    }
}
