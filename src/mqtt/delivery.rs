//! End-to-end delivery (hub delivery): which messages were sent and not yet acknowledged by a
//! hub, when each was last sent, and how many more may go out. A plain state machine: the link
//! tells it what it sent and what a hub acknowledged; it says what may be sent and what is due
//! again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct HubDelivery {
    timeout: Duration,
    max: usize,
    /// seq -> when it was last sent.
    sent: BTreeMap<u64, Instant>,
    /// The most messages ever out at once without a hub's acknowledgement.
    peak: usize,
}

impl HubDelivery {
    pub fn new(timeout: Duration, max: usize) -> Self {
        Self { timeout, max: max.max(1), sent: BTreeMap::new(), peak: 0 }
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

    /// A hub acknowledged the inclusive ranges; returns how many outstanding messages they covered.
    pub fn acknowledged(&mut self, ranges: &[(u64, u64)]) -> usize {
        let mut n = 0;
        for &(a, b) in ranges {
            let covered: Vec<u64> = self.sent.range(a..=b).map(|(s, _)| *s).collect();
            n += covered.len();
            for s in covered {
                self.sent.remove(&s);
            }
        }
        n
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

    #[test]
    fn no_more_than_the_limit_goes_out_without_a_hub_acknowledgement() {
        let (mut d, t) = delivery();
        for s in 1..=3 {
            d.sent(s, t);
        }
        assert_eq!((d.room(), d.unacked()), (0, 3));
        assert_eq!(d.acknowledged(&[(1, 2)]), 2);
        assert_eq!(d.room(), 2);
        assert_eq!(d.peak(), 3);
    }

    #[test]
    fn what_stays_unacknowledged_past_the_timeout_is_due_again_oldest_first() {
        let (mut d, t) = delivery();
        d.sent(7, t);
        d.sent(5, t + Duration::from_secs(1));
        d.sent(9, t + Duration::from_secs(5));
        assert!(d.overdue(t + Duration::from_secs(9), 10).is_empty());
        assert_eq!(d.overdue(t + Duration::from_secs(11), 10), [5, 7]);
        assert_eq!(d.overdue(t + Duration::from_secs(11), 1), [5]);
        // Sent again: the clock starts over for it.
        d.sent(5, t + Duration::from_secs(11));
        assert_eq!(d.overdue(t + Duration::from_secs(12), 10), [7]);
    }

    #[test]
    fn acknowledgements_of_unknown_or_repeated_ranges_change_nothing_else() {
        let (mut d, t) = delivery();
        d.sent(4, t);
        assert_eq!(d.acknowledged(&[(1, 3), (5, u64::MAX)]), 0);
        assert_eq!(d.acknowledged(&[(4, 4), (4, 4)]), 1);
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
