//! Gateway time: microseconds since the Unix epoch (UTC), RFC 3339 for the JSON status topics,
//! and waiting until a time that may not be set.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Sleeps until `due`, or forever when nothing is due. A `select!` builds every branch's future
/// on every turn, taken or not: this one makes a timer only when something is due.
pub async fn until(due: Option<impl Into<tokio::time::Instant>>) {
    match due {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// Now, in microseconds since the Unix epoch, UTC.
pub fn now_micros() -> i64 {
    to_micros(OffsetDateTime::now_utc())
}

/// The wall clock and the time since boot read together: the wall clock is what NTP, an operator or
/// a missing RTC battery may step; the time since boot (`CLOCK_BOOTTIME`, suspend included) only
/// counts what passed, so the two drift apart by exactly the steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// µs since the Unix epoch, by the wall clock.
    pub wall: i64,
    /// µs since the machine booted.
    pub since_boot: i64,
}

impl Now {
    /// Reads both clocks.
    pub fn read() -> Self {
        Self { wall: now_micros(), since_boot: since_boot_micros() }
    }

    /// Wall clock minus time since boot: the wall time of the boot, as the wall clock sees it now.
    pub fn offset(&self) -> i64 {
        self.wall.saturating_sub(self.since_boot)
    }
}

/// µs since the machine booted, suspend included (0 where the clock cannot be read).
fn since_boot_micros() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_BOOTTIME exists on every Linux since 2.6.39.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return 0;
    }
    ts.tv_sec.saturating_mul(1_000_000).saturating_add(ts.tv_nsec / 1_000)
}

/// Now, as RFC 3339 text in UTC.
pub fn now_rfc3339() -> String {
    micros_to_rfc3339(now_micros())
}

/// Microseconds since the epoch as RFC 3339 text in UTC (the epoch itself if out of range).
pub fn micros_to_rfc3339(micros: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// An offset date-time in microseconds since the epoch.
pub fn to_micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_through_micros() {
        let text = "2009-07-15T07:07:07.25Z";
        let t = OffsetDateTime::parse(text, &Rfc3339).unwrap();
        let micros = to_micros(t);
        assert_eq!(micros, 1_247_641_627_250_000);
        assert_eq!(micros_to_rfc3339(micros), text);
    }

    #[test]
    fn the_time_since_boot_is_the_kernels_uptime_and_keeps_its_offset_to_the_wall_clock() {
        let a = Now::read();
        let uptime: f64 = std::fs::read_to_string("/proc/uptime").unwrap().split(' ').next().unwrap().parse().unwrap();
        let b = Now::read();
        assert!((a.since_boot as f64 / 1e6 - uptime).abs() < 1.0, "{a:?} against /proc/uptime {uptime}");
        assert!(b.since_boot >= a.since_boot, "{a:?} -> {b:?}");
        assert!((b.offset() - a.offset()).abs() < 100_000, "{a:?} -> {b:?}");
    }
}
