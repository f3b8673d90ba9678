//! Places each frame's rows on the stream's sample index (`i`, counted from the stream's start)
//! and names every gap: a jump of the device's sample counter, a frame that was rejected, or a
//! device link that was lost and came back. Samples are never invented: a gap only moves `i` on.

use crate::model::{Event, Severity};

/// Why samples are missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapCause {
    /// The device's counter skipped from `expected` to `got`.
    CounterJump { expected: u64, got: u64 },
    /// Frames were rejected (bad CRC, garbage, unparseable) and the device has no counter.
    Rejected,
    /// The device link was lost; the gap is estimated from the gateway clock.
    LinkLost,
    /// The device's counter went back or leapt further than the clock allows (the device
    /// restarted, or a corrupted counter): the gap is estimated from the gateway clock.
    CounterReset { expected: u64, got: u64 },
}

/// A counter jump is believed up to this much beyond what the gateway clock says went by.
const COUNTER_SLACK_SECS: f64 = 60.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// Index of the first missing sample.
    pub at: u64,
    pub missing: u64,
    pub cause: GapCause,
}

impl Gap {
    /// The `wave-gap` event the hub sees.
    pub fn to_event(&self, stream: &str) -> Event {
        let (reason, estimated) = match self.cause {
            GapCause::CounterJump { .. } => ("counter-jump", false),
            GapCause::Rejected => ("frames-rejected", false),
            GapCause::LinkLost => ("link-lost", true),
            GapCause::CounterReset { .. } => ("counter-reset", true),
        };
        let text = format!(
            "stream {stream}: {}{} samples missing from index {} ({reason})",
            if estimated { "about " } else { "" },
            self.missing,
            self.at
        );
        let mut e = Event::new("wave-gap", Severity::Warn, text)
            .with("stream", stream)
            .with("at", self.at)
            .with("missing", self.missing)
            .with("reason", reason)
            .with("estimated", estimated);
        if let GapCause::CounterJump { expected, got } | GapCause::CounterReset { expected, got } = self.cause {
            e = e.with("counter_expected", expected).with("counter_got", got);
        }
        e
    }
}

#[derive(Debug)]
pub struct Sequencer {
    /// The counter wraps at this value (`u64::MAX`: it does not wrap).
    modulus: Option<u64>,
    rate: f64,
    /// Index of the next row.
    next: u64,
    /// The counter value the next frame should carry.
    expected: Option<u64>,
    /// Gateway time of the last frame, and whether the link was lost since.
    last_t: Option<i64>,
    lost: bool,
}

impl Sequencer {
    pub fn new(modulus: Option<u64>, rate: f64) -> Self {
        Self { modulus, rate, next: 0, expected: None, last_t: None, lost: false }
    }

    /// Index of the next row.
    pub fn next_index(&self) -> u64 {
        self.next
    }

    /// Places a frame of `rows` rows that arrived at `t` (gateway microseconds): the index of its
    /// first row, and the gap before it if there is one.
    pub fn place(&mut self, counter: Option<u64>, rows: u64, t: i64) -> (u64, Option<Gap>) {
        let at = self.next;
        let gap = match (counter, self.modulus, self.expected, self.lost) {
            (Some(got), Some(m), Some(expected), false) if got != expected => {
                let m = u128::from(m);
                let mut missing = ((u128::from(got) + m - u128::from(expected) % m) % m) as u64;
                if m <= 1 << 16 {
                    missing = missing.saturating_add(self.wraps_missed(missing, rows, t, m as u64));
                }
                let believable = self.estimate_missing(rows, t) as f64 + self.rate * COUNTER_SLACK_SECS;
                if missing as f64 > believable {
                    let missing = self.estimate_missing(rows, t);
                    Some(Gap { at, missing, cause: GapCause::CounterReset { expected, got } })
                } else {
                    Some(Gap { at, missing, cause: GapCause::CounterJump { expected, got } })
                }
            }
            _ if self.lost => {
                let missing = self.estimate_missing(rows, t);
                (missing > 0).then_some(Gap { at, missing, cause: GapCause::LinkLost })
            }
            _ => None,
        };
        let first = at.saturating_add(gap.map(|g| g.missing).unwrap_or(0));
        self.next = first.saturating_add(rows);
        self.expected = match (counter, self.modulus) {
            (Some(c), Some(m)) => Some(((u128::from(c) + u128::from(rows)) % u128::from(m)) as u64),
            _ => None,
        };
        self.last_t = Some(t);
        self.lost = false;
        (first, gap)
    }

    /// Frames of a device without a counter were rejected: `rows` rows are missing.
    pub fn rejected(&mut self, rows: u64) -> Option<Gap> {
        if rows == 0 || self.lost {
            return None;
        }
        let gap = Gap { at: self.next, missing: rows, cause: GapCause::Rejected };
        self.next = self.next.saturating_add(rows);
        Some(gap)
    }

    /// The device link went away; the next frame's gap is estimated from the clock.
    pub fn link_lost(&mut self) {
        if self.last_t.is_some() {
            self.lost = true;
        }
    }

    /// Rows that should have arrived between the last frame and this one, beyond `rows`.
    fn estimate_missing(&self, rows: u64, t: i64) -> u64 {
        let Some(last) = self.last_t else { return 0 };
        let expected_rows = t.saturating_sub(last).max(0) as f64 / 1e6 * self.rate;
        (expected_rows - rows as f64).round().max(0.0) as u64
    }

    /// Whole counter cycles lost on top of what the counter shows (a small counter wraps often).
    fn wraps_missed(&self, shown: u64, rows: u64, t: i64, modulus: u64) -> u64 {
        let estimate = self.estimate_missing(rows, t) as f64;
        let cycles = ((estimate - shown as f64) / modulus as f64).round().max(0.0) as u64;
        cycles.saturating_mul(modulus)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1000;

    #[test]
    fn contiguous_counters_have_no_gaps_across_the_wrap() {
        let mut s = Sequencer::new(Some(256), 250.0);
        for i in 0..600u64 {
            let (at, gap) = s.place(Some((i + 100) % 256), 1, i as i64 * 4 * MS);
            assert_eq!((at, gap), (i, None));
        }
    }

    #[test]
    fn a_counter_jump_is_a_gap_of_exactly_the_missing_samples() {
        let mut s = Sequencer::new(Some(256), 250.0);
        s.place(Some(254), 1, 0);
        let (at, gap) = s.place(Some(3), 1, 20 * MS);
        // expected 255, got 3: 255, 0, 1, 2 are missing
        assert_eq!(gap, Some(Gap { at: 1, missing: 4, cause: GapCause::CounterJump { expected: 255, got: 3 } }));
        assert_eq!(at, 5);
    }

    #[test]
    fn a_small_counter_that_wrapped_during_a_long_loss_is_caught_by_the_clock() {
        let mut s = Sequencer::new(Some(256), 250.0);
        s.place(Some(0), 1, 0);
        // 2 s later: 500 samples went by; the counter shows 500 % 256 = 244.
        let (at, gap) = s.place(Some(244), 1, 2000 * MS);
        assert_eq!(gap.unwrap().missing, 243 + 256);
        assert_eq!(at, 500);
    }

    #[test]
    fn frames_counted_in_samples_and_rejections_without_counters() {
        let mut s = Sequencer::new(Some(1 << 32), 2000.0);
        assert_eq!(s.place(Some(u64::from(u32::MAX) - 99), 100, 0), (0, None));
        let (at, gap) = s.place(Some(100), 100, 100 * MS);
        assert_eq!(gap.unwrap().missing, 100);
        assert_eq!(at, 200);
        let mut plain = Sequencer::new(None, 100.0);
        plain.place(None, 1, 0);
        assert_eq!(plain.rejected(1), Some(Gap { at: 1, missing: 1, cause: GapCause::Rejected }));
        assert_eq!(plain.place(None, 1, 20 * MS), (2, None));
    }

    proptest::proptest! {
        /// Counters come from devices: any value, any order, any time never panics.
        #[test]
        fn any_counters_and_times_are_placed_without_panic(
            modulus in proptest::prop_oneof![proptest::strategy::Just(256u64), proptest::strategy::Just(1u64 << 32), proptest::strategy::Just(u64::MAX)],
            frames in proptest::collection::vec((proptest::prelude::any::<u64>(), 1u64..1000, proptest::prelude::any::<i64>(), proptest::prelude::any::<bool>()), 1..40),
        ) {
            let mut s = Sequencer::new(Some(modulus), 4000.0);
            for (counter, rows, t, lost) in frames {
                if lost {
                    s.link_lost();
                }
                let (first, gap) = s.place(Some(counter), rows, t);
                proptest::prop_assert!(first >= gap.map_or(0, |g| g.at));
                let _ = s.rejected(rows);
            }
        }
    }

    #[test]
    fn a_counter_that_goes_back_is_a_reset_estimated_from_the_clock_not_a_jump_of_2_to_the_64() {
        let mut s = Sequencer::new(Some(u64::MAX), 100.0);
        s.place(Some(990), 10, 0);
        // A device restarted: its counter starts at 0 again, 0.5 s later.
        let (at, gap) = s.place(Some(0), 10, 500 * MS);
        let gap = gap.unwrap();
        assert_eq!((gap.missing, gap.cause), (40, GapCause::CounterReset { expected: 1000, got: 0 }));
        assert_eq!(at, 50);
        assert_eq!(gap.to_event("ecg").data.unwrap()["reason"], "counter-reset");
        assert_eq!(s.place(Some(10), 10, 600 * MS), (60, None));
    }

    #[test]
    fn after_a_lost_link_the_gap_is_estimated_from_the_clock() {
        let mut s = Sequencer::new(Some(256), 250.0);
        s.place(Some(10), 1, 0);
        s.link_lost();
        let (at, gap) = s.place(Some(0), 1, 1000 * MS);
        assert_eq!(gap.map(|g| (g.missing, g.cause)), Some((249, GapCause::LinkLost)));
        assert_eq!(at, 250);
        assert_eq!(s.place(Some(1), 1, 1004 * MS), (251, None));
    }
}
