//! Checking passwords without handing anyone the hub's CPU. An argon2id check costs tens of
//! milliseconds of a core by design; the sign-in form and every FHIR request with HTTP Basic
//! credentials ask for one. So:
//! - a name that failed [`FAILURES`] times within [`WINDOW`] is refused at once until the window
//!   ends (no check: guessing is slowed to a few tries a minute a name, and a flood of wrong
//!   passwords costs nothing), known and unknown names alike; the failures are counted in
//!   PostgreSQL (`password_failures`), so all instances of the hub count them together;
//! - a name and password that matched are remembered (as the SHA-256 of both, never the
//!   password) with the stored hash they matched, for [`REMEMBERED_FOR`]: a FHIR client polling
//!   with Basic credentials costs a lookup, not a check, a changed password forgets them, and
//!   someone guessing at a name does not lock out who signed in with it (a remembered pair is
//!   taken before the refusal: it proves the password, and guesses cannot use it);
//! - at most [`AT_ONCE`] checks run at once; the rest wait their turn.
//!
//! Neither table grows without limit under a flood of invented names: the remembered pairs are
//! bounded, and failure rows whose window has ended are deleted (at most once a window).

use super::password_failures;
use crate::at_most::AtMostEvery;
use prometheus_client::metrics::counter::Counter;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// Failed checks of one name within [`WINDOW`] before it is refused at once.
pub const FAILURES: u32 = 5;
pub const WINDOW: Duration = Duration::from_secs(60);
/// How long a matched name and password are taken without a check.
pub const REMEMBERED_FOR: Duration = Duration::from_secs(600);
/// Checks running at once at most.
pub const AT_ONCE: usize = 2;
/// Matched pairs remembered at most.
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
struct Remembered {
    /// The stored hash the password matched.
    hash: String,
    at: Instant,
}

/// The service's password checks (one for all requests).
#[derive(Debug)]
pub struct PasswordChecks {
    /// When this instance last deleted ended failure windows.
    prunes: Mutex<AtMostEvery>,
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
            prunes: Mutex::new(AtMostEvery::new(WINDOW)),
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
    /// as much as a known one. Failures are counted in `db`. A request that waited for its turn
    /// looks again before its check: guesses sent together cost at most a turn's checks more
    /// than [`FAILURES`], and a client's requests sent together one check.
    pub async fn check(
        &self,
        db: &Client,
        name: &str,
        password: &str,
        stored: Option<String>,
        unknown: &str,
    ) -> Result<Verdict, tokio_postgres::Error> {
        let key = pair_key(name, password);
        if let Some(v) = self.without_check(db, name, &key, stored.as_deref()).await? {
            return Ok(v);
        }
        // The turn is held until the outcome is recorded, so the next one in line sees it.
        let _turn = self.at_once.acquire().await;
        if let Some(v) = self.without_check(db, name, &key, stored.as_deref()).await? {
            return Ok(v);
        }
        self.checks.inc();
        let matched = {
            let (hash, password) = (stored.clone().unwrap_or_else(|| unknown.to_string()), password.to_string());
            tokio::task::spawn_blocking(move || super::accounts::password_matches(&hash, &password))
                .await
                .unwrap_or(false)
        };
        let now = Instant::now();
        match stored.filter(|_| matched) {
            Some(hash) => {
                password_failures::cleared(db, name).await?;
                let mut remembered = lock(&self.remembered);
                if remembered.len() >= MAX_ENTRIES {
                    remembered.retain(|_, r| now.duration_since(r.at) < REMEMBERED_FOR);
                    if remembered.len() >= MAX_ENTRIES {
                        remembered.clear();
                    }
                }
                remembered.insert(key, Remembered { hash, at: now });
                Ok(Verdict::Match)
            }
            None => {
                password_failures::failed(db, name, WINDOW).await?;
                self.prune(db, now).await?;
                Ok(Verdict::NoMatch)
            }
        }
    }

    /// The verdict that needs no check, if there is one: a remembered match (taken before the
    /// refusal: it proves the password), or a name refused after too many failures.
    async fn without_check(
        &self,
        db: &Client,
        name: &str,
        key: &[u8; 32],
        stored: Option<&str>,
    ) -> Result<Option<Verdict>, tokio_postgres::Error> {
        if let Some(hash) = stored {
            let known =
                lock(&self.remembered).get(key).is_some_and(|r| r.hash == hash && r.at.elapsed() < REMEMBERED_FOR);
            if known {
                return Ok(Some(Verdict::Match));
            }
        }
        if let Some(wait) = password_failures::refused_for(db, name, FAILURES, WINDOW).await? {
            self.throttled.inc();
            return Ok(Some(Verdict::Throttled(wait)));
        }
        Ok(None)
    }

    /// Deletes the ended failure windows, at most once a window.
    async fn prune(&self, db: &Client, now: Instant) -> Result<(), tokio_postgres::Error> {
        if !lock(&self.prunes).due(now) {
            return Ok(());
        }
        password_failures::prune(db, WINDOW).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_name_and_password_pairs_share_a_key() {
        assert_ne!(pair_key("ab", "c"), pair_key("a", "bc"));
        assert_ne!(pair_key("dr", "one"), pair_key("dr", "two"));
        assert_eq!(pair_key("dr", "one"), pair_key("dr", "one"));
    }
}
