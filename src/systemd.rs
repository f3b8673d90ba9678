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
