//! Work done at most once a period, however often it is asked for: making a lost PostgreSQL
//! connection again (once a second, so that nothing piles up attempts while the database is
//! away), deleting ended password-failure windows (once a window).

use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct AtMostEvery {
    period: Duration,
    last: Option<Instant>,
}

impl AtMostEvery {
    pub fn new(period: Duration) -> Self {
        AtMostEvery { period, last: None }
    }

    /// Whether the work is due at `now` (and, if so, it counts as done then).
    pub fn due(&mut self, now: Instant) -> bool {
        if self.last.is_some_and(|t| now.saturating_duration_since(t) < self.period) {
            return false;
        }
        self.last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_first_then_not_again_within_the_period() {
        let mut gate = AtMostEvery::new(Duration::from_secs(1));
        let t0 = Instant::now();
        assert!(gate.due(t0));
        assert!(!gate.due(t0 + Duration::from_millis(999)));
        assert!(gate.due(t0 + Duration::from_secs(1)));
        assert!(!gate.due(t0 + Duration::from_millis(1500)));
    }
}
