//! Checking passwords without handing anyone the hub's CPU. An argon2id check costs tens of
//! milliseconds of a core by design; the sign-in form and every FHIR request with HTTP Basic
//! credentials ask for one. So:
//! - a name that failed [`FAILURES`] times within [`WINDOW`] is refused at once until the window
//!   ends (no check: guessing is slowed to a few tries a minute a name, and a flood of wrong
//!   passwords costs nothing), known and unknown names alike;
//! - a name and password that matched are remembered (as the SHA-256 of both, never the
//!   password) with the stored hash they matched, for [`REMEMBERED_FOR`]: a FHIR client polling
//!   with Basic credentials costs a lookup, not a check, a changed password forgets them, and
//!   someone guessing at a name does not lock out who signed in with it (a remembered pair is
//!   taken before the refusal: it proves the password, and guesses cannot use it);
//! - at most [`AT_ONCE`] checks run at once; the rest wait their turn.
//!
//! Both tables are bounded: a flood of invented names cannot grow them without limit.

use prometheus_client::metrics::counter::Counter;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed checks of one name within [`WINDOW`] before it is refused at once.
pub const FAILURES: u32 = 5;
pub const WINDOW: Duration = Duration::from_secs(60);
/// How long a matched name and password are taken without a check.
pub const REMEMBERED_FOR: Duration = Duration::from_secs(600);
/// Checks running at once at most.
pub const AT_ONCE: usize = 2;
/// Entries each table holds at most.
const MAX_ENTRIES: usize = 10_000;

/// What a password check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Match,
    NoMatch,
    /// Too many failures for this name: not checked; try again after this long.
    Throttled(Duration),
}

#[derive(Debug)]
struct Failures {
    count: u32,
    since: Instant,
}

#[derive(Debug)]
struct Remembered {
    /// The stored hash the password matched.
    hash: String,
    at: Instant,
}

/// The service's password checks (one for all requests).
#[derive(Debug)]
pub struct PasswordChecks {
    failures: Mutex<HashMap<String, Failures>>,
    remembered: Mutex<HashMap<[u8; 32], Remembered>>,
    at_once: tokio::sync::Semaphore,
    /// argon2id checks run, and requests refused at once (the metrics' counters).
    checks: Counter,
    throttled: Counter,
}

impl PasswordChecks {
    /// Counting its checks and refusals in `checks` and `throttled`.
    pub fn new(checks: Counter, throttled: Counter) -> Self {
        PasswordChecks {
            failures: Mutex::default(),
            remembered: Mutex::default(),
            at_once: tokio::sync::Semaphore::new(AT_ONCE),
            checks,
            throttled,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The SHA-256 of a name and a password (the name's length first: no two pairs share it).
fn pair_key(name: &str, password: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&(name.len() as u64).to_be_bytes());
    ctx.update(name.as_bytes());
    ctx.update(password.as_bytes());
    let mut key = [0; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

impl PasswordChecks {
    /// Whether `password` is the one `stored` (the user's hash, or `None` for a name nobody has)
    /// was made from; `unknown` is checked in place of a missing hash, so an unknown name costs
    /// as much as a known one.
    pub async fn check(&self, name: &str, password: &str, stored: Option<String>, unknown: &str) -> Verdict {
        let now = Instant::now();
        let key = pair_key(name, password);
        if let Some(hash) = &stored {
            let known = lock(&self.remembered)
                .get(&key)
                .is_some_and(|r| &r.hash == hash && now.duration_since(r.at) < REMEMBERED_FOR);
            if known {
                return Verdict::Match;
            }
        }
        if let Some(wait) = self.refused_until(name, now) {
            self.throttled.inc();
            return Verdict::Throttled(wait);
        }
        let matched = {
            let _turn = self.at_once.acquire().await;
            self.checks.inc();
            let (hash, password) = (stored.clone().unwrap_or_else(|| unknown.to_string()), password.to_string());
            tokio::task::spawn_blocking(move || super::accounts::password_matches(&hash, &password))
                .await
                .unwrap_or(false)
        };
        match stored.filter(|_| matched) {
            Some(hash) => {
                lock(&self.failures).remove(name);
                let mut remembered = lock(&self.remembered);
                if remembered.len() >= MAX_ENTRIES {
                    remembered.retain(|_, r| now.duration_since(r.at) < REMEMBERED_FOR);
                    if remembered.len() >= MAX_ENTRIES {
                        remembered.clear();
                    }
                }
                remembered.insert(key, Remembered { hash, at: now });
                Verdict::Match
            }
            None => {
                self.failed(name, now);
                Verdict::NoMatch
            }
        }
    }

    /// How long `name` is still refused, if it is.
    fn refused_until(&self, name: &str, now: Instant) -> Option<Duration> {
        let failures = lock(&self.failures);
        let f = failures.get(name)?;
        let ends = f.since + WINDOW;
        (f.count >= FAILURES && now < ends).then(|| ends - now)
    }

    fn failed(&self, name: &str, now: Instant) {
        let mut failures = lock(&self.failures);
        if failures.len() >= MAX_ENTRIES && !failures.contains_key(name) {
            failures.retain(|_, f| now.duration_since(f.since) < WINDOW);
            if failures.len() >= MAX_ENTRIES {
                failures.clear();
            }
        }
        let f = failures.entry(name.to_string()).or_insert(Failures { count: 0, since: now });
        if now.duration_since(f.since) >= WINDOW {
            *f = Failures { count: 0, since: now };
        }
        f.count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNKNOWN: &str = super::super::accounts::UNKNOWN_USER_HASH;

    #[tokio::test]
    async fn failures_refuse_a_name_at_once_and_a_match_is_not_checked_again_until_the_hash_changes() {
        let checks = PasswordChecks::new(Counter::default(), Counter::default());
        let hash = super::super::accounts::hash_password("right one").unwrap();
        assert_eq!(checks.check("dr", "right one", Some(hash.clone()), UNKNOWN).await, Verdict::Match);
        assert_eq!(checks.check("dr", "right one", Some(hash.clone()), UNKNOWN).await, Verdict::Match);
        assert_eq!(checks.checks.get(), 1, "the second match is remembered");
        // Another hash (the password was changed): the remembered match does not hold.
        let changed = super::super::accounts::hash_password("new one").unwrap();
        assert_eq!(checks.check("dr", "right one", Some(changed.clone()), UNKNOWN).await, Verdict::NoMatch);
        // Five failures in all, then even the right password is refused unchecked.
        for _ in 1..FAILURES {
            assert_eq!(checks.check("dr", "guess", Some(changed.clone()), UNKNOWN).await, Verdict::NoMatch);
        }
        let before = checks.checks.get();
        let refused = checks.check("dr", "new one", Some(changed.clone()), UNKNOWN).await;
        assert!(matches!(refused, Verdict::Throttled(d) if d <= WINDOW && d > Duration::ZERO), "{refused:?}");
        assert_eq!(checks.checks.get(), before, "a refused name costs no check");
        // Other names are not affected; an unknown name fails like a wrong password.
        assert_eq!(checks.check("nurse", "x", None, UNKNOWN).await, Verdict::NoMatch);
        assert_eq!(checks.throttled.get(), 1);
    }

    #[tokio::test]
    async fn guessing_at_a_name_does_not_lock_out_who_signed_in_with_it() {
        let checks = PasswordChecks::new(Counter::default(), Counter::default());
        let hash = super::super::accounts::hash_password("system password").unwrap();
        assert_eq!(checks.check("his", "system password", Some(hash.clone()), UNKNOWN).await, Verdict::Match);
        for _ in 0..FAILURES {
            assert_eq!(checks.check("his", "guess", Some(hash.clone()), UNKNOWN).await, Verdict::NoMatch);
        }
        assert_eq!(checks.check("his", "system password", Some(hash.clone()), UNKNOWN).await, Verdict::Match);
        assert!(matches!(checks.check("his", "guess", Some(hash), UNKNOWN).await, Verdict::Throttled(_)));
        assert_eq!(checks.checks.get(), 1 + u64::from(FAILURES), "the remembered match and the refusal cost none");
    }

    #[test]
    fn a_failure_window_starts_again_once_it_is_over() {
        let checks = PasswordChecks::new(Counter::default(), Counter::default());
        let start = Instant::now();
        for _ in 0..FAILURES {
            checks.failed("dr", start);
        }
        assert!(checks.refused_until("dr", start + Duration::from_secs(1)).is_some());
        assert_eq!(checks.refused_until("dr", start + WINDOW), None, "refused for the window only");
        checks.failed("dr", start + WINDOW);
        assert_eq!(checks.refused_until("dr", start + WINDOW), None, "one failure of a new window");
        assert_ne!(pair_key("ab", "c"), pair_key("a", "bc"));
    }
}
