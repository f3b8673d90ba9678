//! Keeps a flood of bad input from becoming a flood of events: per device, at most `burst` events
//! at once and `per_sec` a second after that. Events held back are counted, and the next event that
//! goes out says how many were suppressed. Every bad frame is still counted and logged at DEBUG.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct EventLimiter {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    suppressed: u64,
}

impl EventLimiter {
    pub fn new(per_sec: u32, burst: u32) -> Self {
        Self {
            per_sec: f64::from(per_sec),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: Instant::now(),
            suppressed: 0,
        }
    }

    /// `Some(suppressed_before)` when an event may go out now, `None` when it is held back.
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }

    /// Events held back and not yet reported.
    pub fn pending(&self) -> u64 {
        self.suppressed
    }

    /// When a held-back count can next be reported.
    fn refill_time(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.per_sec.max(0.001))
    }

    /// When the held-back count is due to be reported, counted from `now`; none when nothing is
    /// held back.
    pub fn report_due(&self, now: Instant) -> Option<Instant> {
        (self.pending() > 0).then(|| now + self.refill_time())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rest_is_counted_and_reported_later() {
        let mut l = EventLimiter::new(2, 3);
        let t0 = Instant::now();
        assert_eq!((0..3).filter_map(|_| l.admit(t0)).count(), 3);
        for _ in 0..10 {
            assert_eq!(l.admit(t0), None);
        }
        assert_eq!(l.pending(), 10);
        assert_eq!(l.admit(t0 + Duration::from_millis(600)), Some(10));
        assert_eq!(l.pending(), 0);
    }
}
