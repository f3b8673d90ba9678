//! How fast messages reach the sealer: a smoothed gap between arrivals, so that a commit does not
//! wait for a message that is not expected before its window closes.

use std::time::Duration;
use tokio::time::Instant;

/// A smoothed gap between the messages arriving at the sealer (an exponentially weighted mean,
/// weight 1/8 for each new arrival batch).
#[derive(Debug, Default)]
pub struct ArrivalPace {
    last: Option<Instant>,
    /// Mean gap in nanoseconds; `None` until two arrivals have been seen.
    gap_nanos: Option<u64>,
}

/// A gap longer than this says nothing about the next commit (the device paused).
const IDLE: Duration = Duration::from_secs(1);

impl ArrivalPace {
    /// Notes `n` messages that arrived together at `now`: the time since the last arrival is
    /// shared among them (a gap under a second; a longer one is a pause, not a pace).
    pub fn arrived(&mut self, now: Instant, n: usize) {
        if n == 0 {
            return;
        }
        if let Some(last) = self.last {
            let gap = now.saturating_duration_since(last);
            if gap < IDLE {
                let per = gap.as_nanos() as u64 / n as u64;
                self.gap_nanos = Some(match self.gap_nanos {
                    Some(mean) => mean - mean / 8 + per / 8,
                    None => per,
                });
            }
        }
        self.last = Some(now);
    }

    /// The gap to expect before the next message, once the pace is known.
    pub fn expected_gap(&self) -> Option<Duration> {
        self.gap_nanos.map(Duration::from_nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_pace_is_learnt_and_a_batch_shares_its_gap() {
        let mut pace = ArrivalPace::default();
        let t0 = Instant::now();
        assert_eq!(pace.expected_gap(), None);
        for i in 0..64 {
            pace.arrived(t0 + Duration::from_millis(2 * i), 1);
        }
        assert_eq!(pace.expected_gap(), Some(Duration::from_millis(2)));
        // Four messages together after 2 ms: half a millisecond each pulls the mean down.
        pace.arrived(t0 + Duration::from_millis(2 * 64), 4);
        let gap = pace.expected_gap().unwrap();
        assert!(gap < Duration::from_millis(2) && gap > Duration::from_micros(1_500), "{gap:?}");
    }

    #[test]
    fn a_pause_longer_than_a_second_is_not_a_gap() {
        let mut pace = ArrivalPace::default();
        let t0 = Instant::now();
        pace.arrived(t0, 1);
        pace.arrived(t0 + Duration::from_millis(3), 1);
        pace.arrived(t0 + Duration::from_secs(10), 1);
        assert_eq!(pace.expected_gap(), Some(Duration::from_millis(3)));
    }
}
