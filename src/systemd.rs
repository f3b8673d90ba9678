//! systemd integration for `Type=notify`: READY once the daemon is running, WATCHDOG pings while the
//! pipeline is alive, STOPPING when it drains. Does nothing when not started by systemd.

use sd_notify::NotifyState;
use std::time::Duration;

pub fn ready() {
    let _ = sd_notify::notify(false, &[NotifyState::Ready]);
}

pub fn stopping() {
    let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
}

pub fn status(text: &str) {
    let _ = sd_notify::notify(false, &[NotifyState::Status(text)]);
}

/// The watchdog interval systemd asked for (`WatchdogSec=`), if any.
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0u64;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec))
}

pub fn watchdog_ping() {
    let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
}

/// A stage's sign of life: it beats on every turn of its loop (at least every few seconds, idle
/// or not), so the watchdog can tell a working stage from a wedged one.
#[derive(Debug, Default)]
pub struct Heartbeat(std::sync::atomic::AtomicU64);

impl Heartbeat {
    pub fn beat(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Decides each watchdog ping: only when every stage beat since the last one, so systemd
/// restarts a daemon whose pipeline or uplink is stuck instead of being told all is well.
#[derive(Debug, Default)]
pub struct WatchdogGate {
    last: Vec<u64>,
}

impl WatchdogGate {
    /// Whether to ping now, given every stage's beat count.
    pub fn alive(&mut self, beats: &[u64]) -> bool {
        let all_moved = self.last.len() != beats.len() || self.last.iter().zip(beats).all(|(a, b)| b != a);
        self.last = beats.to_vec();
        all_moved
    }
}

/// Pings systemd's watchdog, when it asked for one (`WatchdogSec=`), every half interval in which
/// every one of `beats` moved; logs `stuck` instead when one did not. `None` without a watchdog.
pub fn spawn_watchdog(
    beats: Vec<std::sync::Arc<Heartbeat>>,
    stuck: &'static str,
) -> Option<tokio::task::JoinHandle<()>> {
    let every = watchdog_interval()?;
    Some(tokio::spawn(async move {
        let mut gate = WatchdogGate::default();
        loop {
            let counts: Vec<u64> = beats.iter().map(|b| b.count()).collect();
            if gate.alive(&counts) {
                watchdog_ping();
            } else {
                tracing::error!("{stuck}; the watchdog is not pinged");
            }
            tokio::time::sleep(every / 2).await;
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_pinged_only_while_every_stage_beats() {
        let mut gate = WatchdogGate::default();
        assert!(gate.alive(&[1, 1]), "the first look");
        assert!(gate.alive(&[5, 9]), "both moved");
        assert!(!gate.alive(&[6, 9]), "the uplink stood still");
        assert!(!gate.alive(&[6, 12]), "the pipeline stood still");
        assert!(gate.alive(&[7, 13]));
    }
}
