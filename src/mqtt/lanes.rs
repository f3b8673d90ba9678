//! What the uplink sends next: the queue's classes as lanes, and an optional byte budget.
//!
//! - Lanes are served in order: spot readings (`obs`, `event`), then waveform chunks, then media
//!   parts. Within a lane, `seq` order.
//! - Media parts are at most [`MEDIA_IN_FLIGHT`] in flight (published, not yet acknowledged by the
//!   broker), so the bytes queued in the TCP connection ahead of a waveform chunk are at most that
//!   many parts: on a thin link a chunk waits behind at most a part or two, never a whole image.
//! - With `[mqtt] max_bytes_per_sec`, a token bucket ([`Pacer`]) spends every byte sent; a message
//!   of any class waits until the bucket is not in debt, and the lanes' order decides who goes
//!   when it is. Media is never starved: when no media part went for as long as a part takes at
//!   [`MEDIA_FLOOR`] of the budget, the next part goes regardless.

use crate::queue::Class;
use std::time::{Duration, Instant};

/// Media parts in flight at most.
pub const MEDIA_IN_FLIGHT: usize = 2;
/// The share of the byte budget media gets at least, however busy the other lanes are.
pub const MEDIA_FLOOR: f64 = 0.1;

/// The lanes, in the order they are served.
pub const LANES: [Class; 3] = [Class::Spot, Class::Wave, Class::Media];

/// The bytes a PUBLISH of `payload` on `topic` takes on the wire (fixed header, topic, packet id).
pub fn wire_bytes(topic: &str, payload: usize) -> u64 {
    (payload + topic.len() + 9) as u64
}

/// A token bucket of bytes per second.
#[derive(Debug, Clone)]
pub struct Pacer {
    rate: f64,
    tokens: f64,
    /// Tokens saved at most (a burst after a quiet time).
    burst: f64,
    last: Instant,
    last_media: Option<Instant>,
    /// The size of the last media part (for the floor).
    media_part: f64,
}

impl Pacer {
    pub fn new(bytes_per_sec: u64, now: Instant) -> Self {
        let rate = bytes_per_sec.max(1) as f64;
        // A tenth of a second of the link: enough to send a spot reading at once after a quiet
        // time, not enough to fill a thin link's buffers.
        let burst = (rate / 10.0).max(2048.0);
        Self { rate, tokens: burst, burst, last: now, last_media: None, media_part: 0.0 }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        self.last = now;
    }

    /// Whether a message of `class` may go now.
    pub fn may_send(&mut self, class: Class, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 0.0 {
            return true;
        }
        class == Class::Media && self.media_starved(now)
    }

    fn media_starved(&self, now: Instant) -> bool {
        let Some(last) = self.last_media else { return true };
        let floor = Duration::from_secs_f64(self.media_part / (self.rate * MEDIA_FLOOR));
        now.saturating_duration_since(last) >= floor
    }

    /// `bytes` of `class` went out now.
    pub fn spent(&mut self, class: Class, bytes: u64, now: Instant) {
        self.refill(now);
        self.tokens -= bytes as f64;
        if class == Class::Media {
            self.last_media = Some(now);
            self.media_part = bytes as f64;
        }
    }

    /// When the bucket is out of debt (now, if it is).
    pub fn ready_at(&self, now: Instant) -> Instant {
        if self.tokens >= 0.0 {
            return now;
        }
        self.last + Duration::from_secs_f64(-self.tokens / self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_in_debt_waits_until_the_bucket_refills() {
        let t0 = Instant::now();
        let mut p = Pacer::new(10_000, t0);
        assert!(p.may_send(Class::Wave, t0));
        p.spent(Class::Wave, 6_000, t0);
        // 2048 saved (the least burst), 6000 spent: 3952 in debt, 0.3952 s at 10 kB/s.
        let ready = p.ready_at(t0) - t0;
        assert!((ready.as_secs_f64() - 0.3952).abs() < 1e-6, "{ready:?}");
        assert!(!p.may_send(Class::Wave, t0 + Duration::from_millis(390)));
        assert!(p.may_send(Class::Wave, t0 + Duration::from_millis(396)));
    }

    #[test]
    fn over_a_long_run_no_more_than_the_rate_goes_out() {
        let t0 = Instant::now();
        let mut p = Pacer::new(32_000, t0);
        let mut sent = 0u64;
        let mut now = t0;
        while now < t0 + Duration::from_secs(10) {
            if p.may_send(Class::Wave, now) {
                p.spent(Class::Wave, 1_000, now);
                sent += 1_000;
            }
            now += Duration::from_millis(1);
        }
        // Ten seconds at 32 kB/s, plus the burst and the one message that may overdraw.
        assert!(sent <= 320_000 + 3_200 + 1_000, "{sent} bytes in 10 s");
        assert!(sent >= 310_000, "{sent} bytes in 10 s");
    }

    #[test]
    fn media_gets_its_floor_when_waves_take_everything() {
        let t0 = Instant::now();
        let mut p = Pacer::new(10_000, t0);
        p.spent(Class::Media, 1_000, t0);
        // Waves keep the bucket in debt; media's part of 1000 B at a tenth of 10 kB/s is due
        // every second.
        p.spent(Class::Wave, 50_000, t0);
        assert!(!p.may_send(Class::Media, t0 + Duration::from_millis(900)));
        assert!(p.may_send(Class::Media, t0 + Duration::from_millis(1000)));
        assert!(!p.may_send(Class::Wave, t0 + Duration::from_millis(1000)));
    }
}
