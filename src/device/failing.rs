//! What the journal is told about a link that cannot be opened. The attempts repeat with backoff
//! (every 30 s at most) for as long as the adapter is unplugged or BlueZ refuses: the first failure
//! is a warning, and so is a change of reason (not sooner than a minute after the last warning:
//! some reasons quote a changing detail, as D-Bus quotes its connection's name) and, while it
//! lasts, one every ten minutes with the count of attempts. The rest goes to debug.

use std::time::{Duration, Instant};

const AGAIN_WHEN_CHANGED: Duration = Duration::from_secs(60);
const AGAIN_WHEN_SAME: Duration = Duration::from_secs(600);

/// The failed attempts since the link was last open.
#[derive(Debug, Default)]
pub(super) struct Failing(Option<Warned>);

#[derive(Debug)]
struct Warned {
    why: String,
    at: Instant,
    attempts: u64,
}

impl Failing {
    /// An attempt failed for `why` at `now`: the attempts so far when this one is worth a warning.
    pub(super) fn failed(&mut self, why: &str, now: Instant) -> Option<u64> {
        let Some(w) = &mut self.0 else {
            self.0 = Some(Warned { why: why.to_string(), at: now, attempts: 1 });
            return Some(1);
        };
        w.attempts += 1;
        let since = now.saturating_duration_since(w.at);
        if (w.why != why && since >= AGAIN_WHEN_CHANGED) || since >= AGAIN_WHEN_SAME {
            (w.why, w.at) = (why.to_string(), now);
            return Some(w.attempts);
        }
        None
    }

    /// The link is open: the next failure is news again.
    pub(super) fn opened(&mut self) {
        self.0 = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_a_change_after_a_minute_and_every_ten_minutes_are_warned() {
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let mut f = Failing::default();
        assert_eq!(f.failed("No such file or directory", at(0)), Some(1));
        assert_eq!(f.failed("No such file or directory", at(1)), None, "the same reason again");
        assert_eq!(f.failed("Rejected send message, sender=:1.4", at(30)), None, "changed, within the minute");
        assert_eq!(f.failed("Rejected send message, sender=:1.5", at(61)), Some(4), "changed, a minute on");
        assert_eq!(f.failed("Rejected send message, sender=:1.6", at(100)), None, "changed, within the minute");
        assert_eq!(f.failed("Rejected send message, sender=:1.5", at(660)), None, "the same, under ten minutes");
        assert_eq!(f.failed("Rejected send message, sender=:1.5", at(661)), Some(7), "ten minutes on");
        f.opened();
        assert_eq!(f.failed("Rejected send message, sender=:1.6", at(662)), Some(1), "news again after an open link");
    }
}
