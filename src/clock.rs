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
}
