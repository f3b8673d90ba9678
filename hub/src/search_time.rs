//! FHIR R4 search's "date" parameters on an instant: `_lastUpdated` (when the hub stored a
//! reading, so that a hospital's system polls for what is new since its last poll,
//! `_lastUpdated=gt2026-12-07T10:00:00.123456Z`) and an Observation's `date` (when it was
//! measured, `date=2026-12-07`).
//!
//! A value stands for the range its precision implies: a year, a month, a day (dates without a
//! time are days in UTC, the hub's time zone), a minute, a second or a fraction of one (a time must
//! carry its zone). The prefix compares the instant with that range as FHIR says for a point in
//! time: `eq` (the default) within it, `ne` outside it, `gt` and `sa` after its end, `ge` from
//! its start, `lt` and `eb` before its start, `le` before its end. `ap` (approximately) is
//! refused, as is anything that is not a FHIR date or dateTime.

/// A condition on an instant (when a reading was stored, or measured), in microseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeTerm {
    /// At or after.
    From(i64),
    /// Before.
    Before(i64),
    /// Within `[from, before)`.
    Within { from: i64, before: i64 },
    /// Outside `[from, before)`.
    Outside { from: i64, before: i64 },
}

/// The range a search value's precision implies, in microseconds: `[from, before)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    from: i64,
    before: i64,
}

impl TimeTerm {
    /// Reads one value of the parameter `name` (named in a refusal).
    pub fn parse(name: &str, value: &str) -> Result<TimeTerm, String> {
        let refuse = |why: &str| format!("{name} `{value}`: {why}");
        let (prefix, date) = match value.get(..2) {
            Some(p) if p.bytes().all(|b| b.is_ascii_lowercase()) => (p, &value[2..]),
            _ => ("eq", value),
        };
        let r = range(date).map_err(|why| {
            // A `+` sent bare in a query arrives as a space.
            let hint = if date.contains(' ') { " (send a `+` in a URL query as %2B)" } else { "" };
            refuse(&format!("{why}{hint}"))
        })?;
        Ok(match prefix {
            "eq" => TimeTerm::Within { from: r.from, before: r.before },
            "ne" => TimeTerm::Outside { from: r.from, before: r.before },
            "gt" | "sa" => TimeTerm::From(r.before),
            "ge" => TimeTerm::From(r.from),
            "lt" | "eb" => TimeTerm::Before(r.from),
            "le" => TimeTerm::Before(r.before),
            "ap" => return Err(refuse("the prefix `ap` (approximately) is not supported")),
            other => return Err(refuse(&format!("`{other}` is not a prefix (eq, ne, gt, ge, lt, le, sa, eb)"))),
        })
    }
}

impl TimeTerm {
    /// Reads one parameter `name`: several values separated by commas, any of which holds.
    pub fn parse_any(name: &str, value: &str) -> Result<Vec<TimeTerm>, String> {
        crate::search_values::any_of(value).iter().map(|v| TimeTerm::parse(name, v)).collect()
    }
}

/// What a condition compares: SQL for an instant, and how it is written.
#[derive(Debug, Clone, Copy)]
pub enum Column<'a> {
    /// A `timestamptz`.
    Timestamp(&'a str),
    /// A `bigint` of microseconds since the epoch.
    Micros(&'a str),
}

/// The SQL condition that keeps rows whose `column` meets every parameter (one of its terms
/// each), with its parameters (text, cast in the SQL) numbered from `$first`; `TRUE` without
/// parameters.
pub fn condition(parameters: &[Vec<TimeTerm>], column: Column, first: usize) -> (String, Vec<String>) {
    let mut params = Vec::new();
    let (column, cast, text): (&str, &str, fn(i64) -> String) = match column {
        Column::Timestamp(c) => (c, "timestamptz", instant_text),
        Column::Micros(c) => (c, "bigint", |micros| micros.to_string()),
    };
    let mut at = |micros: i64| {
        params.push(text(micros));
        format!("${}::text::{cast}", first + params.len() - 1)
    };
    let mut term = |t: &TimeTerm| match *t {
        TimeTerm::From(a) => format!("{column} >= {}", at(a)),
        TimeTerm::Before(b) => format!("{column} < {}", at(b)),
        TimeTerm::Within { from, before } => format!("({column} >= {} AND {column} < {})", at(from), at(before)),
        TimeTerm::Outside { from, before } => format!("({column} < {} OR {column} >= {})", at(from), at(before)),
    };
    let sql: Vec<String> = parameters
        .iter()
        .map(|any| match any.as_slice() {
            [one] => term(one),
            several => format!("({})", several.iter().map(&mut term).collect::<Vec<_>>().join(" OR ")),
        })
        .collect();
    let sql = if sql.is_empty() { "TRUE".to_string() } else { sql.join(" AND ") };
    (sql, params)
}

/// An instant as PostgreSQL's timestamptz reads it: RFC 3339 in UTC with microseconds, or
/// `-infinity` / `infinity` outside the years 1 to 9999 (nothing is stored there). Also a
/// resource's `meta.lastUpdated`: with all six digits, its precision is a microsecond, so a poll
/// for `gt` it is exactly what was stored after it.
pub fn instant_text(micros: i64) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    match time::OffsetDateTime::from_unix_timestamp_nanos(micros as i128 * 1000) {
        Ok(t) if t.year() < 1 => "-infinity".into(),
        Ok(t) => t.format(FORMAT).unwrap_or_else(|_| "infinity".into()),
        Err(_) if micros < 0 => "-infinity".into(),
        Err(_) => "infinity".into(),
    }
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The range a FHIR date (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`) or dateTime (`YYYY-MM-DDThh:mm`, with
/// `:ss` and a fraction of up to nine digits, and a zone `Z` or `±hh:mm`) stands for.
fn range(text: &str) -> Result<Range, String> {
    let (date, time_of_day) = match text.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let not_date = || format!("`{text}` is not a date (YYYY, YYYY-MM, YYYY-MM-DD) or a time with its zone");
    let mut parts = date.split('-');
    let year: i32 = digits(parts.next(), 4).ok_or_else(not_date)?;
    if year == 0 {
        return Err("there is no year 0000".into());
    }
    let month = parts.next().map(|m| digits::<u8>(Some(m), 2).ok_or_else(not_date)).transpose()?;
    let day = parts.next().map(|d| digits::<u8>(Some(d), 2).ok_or_else(not_date)).transpose()?;
    if parts.next().is_some() || (time_of_day.is_some() && day.is_none()) {
        return Err(not_date());
    }
    let month_of = |m: u8| time::Month::try_from(m).map_err(|_| format!("there is no month {m:02}"));
    let first_day = |m: time::Month, d: u8| {
        time::Date::from_calendar_date(year, m, d).map_err(|_| "there is no such day".to_string())
    };
    let midnight = |d: time::Date| d.midnight().assume_utc().unix_timestamp() * 1_000_000;
    let Some(clock) = time_of_day else {
        return Ok(match (month, day) {
            (None, _) => {
                let from = midnight(first_day(time::Month::January, 1)?);
                Range { from, before: from + i64::from(time::util::days_in_year(year)) * MICROS_PER_DAY }
            }
            (Some(m), None) => {
                let m = month_of(m)?;
                let from = midnight(first_day(m, 1)?);
                Range { from, before: from + i64::from(m.length(year)) * MICROS_PER_DAY }
            }
            (Some(m), Some(d)) => {
                let from = midnight(first_day(month_of(m)?, d)?);
                Range { from, before: from + MICROS_PER_DAY }
            }
        });
    };
    let (month, day) = (month.ok_or_else(not_date)?, day.ok_or_else(not_date)?);
    let date = first_day(month_of(month)?, day)?;
    // The zone: `Z` or `±hh:mm` (a time without one is refused: FHIR requires it).
    let (clock, offset_seconds) = if let Some(c) = clock.strip_suffix('Z') {
        (c, 0)
    } else {
        let at = clock.rfind(['+', '-']).ok_or("a time needs its zone (`Z` or `+05:30`)")?;
        let (c, zone) = clock.split_at(at);
        let (hh, mm) = zone[1..].split_once(':').ok_or("the zone is `±hh:mm`")?;
        let (hh, mm): (i32, i32) =
            (digits(Some(hh), 2).ok_or("the zone is `±hh:mm`")?, digits(Some(mm), 2).ok_or("the zone is `±hh:mm`")?);
        if hh > 14 || mm > 59 || (hh == 14 && mm > 0) {
            return Err(format!("`{zone}` is not a time zone"));
        }
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        (c, sign * (hh * 3600 + mm * 60))
    };
    let mut fields = clock.split(':');
    let hour: u8 = digits(fields.next(), 2).ok_or("the time is `hh:mm`, `hh:mm:ss` or `hh:mm:ss.fff`")?;
    let minute: u8 = digits(fields.next(), 2).ok_or("the time is `hh:mm`, `hh:mm:ss` or `hh:mm:ss.fff`")?;
    let seconds = fields.next();
    if fields.next().is_some() || hour > 23 || minute > 59 {
        return Err(format!("`{clock}` is not a time of day"));
    }
    // The span of the last digit given, in nanoseconds, and the nanoseconds past the minute.
    let (span_ns, past_minute_ns): (i64, i64) = match seconds {
        None => (60_000_000_000, 0),
        Some(s) => {
            let (whole, fraction) = match s.split_once('.') {
                Some((w, f)) => (w, Some(f)),
                None => (s, None),
            };
            let second: u8 = digits(Some(whole), 2).ok_or("the seconds are `ss` or `ss.fff`")?;
            if second > 59 {
                return Err(format!("`{s}` is not a second of a minute"));
            }
            match fraction {
                None => (1_000_000_000, i64::from(second) * 1_000_000_000),
                Some(f) if (1..=9).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()) => {
                    let span = 10_i64.pow(9 - f.len() as u32);
                    let nanos: i64 = f.parse::<i64>().map_err(|e| e.to_string())? * span;
                    (span, i64::from(second) * 1_000_000_000 + nanos)
                }
                Some(_) => return Err("a fraction of a second is one to nine digits".into()),
            }
        }
    };
    let start_ns = (midnight(date) - i64::from(offset_seconds) * 1_000_000) as i128 * 1000
        + (i128::from(hour) * 3600 + i128::from(minute) * 60) * 1_000_000_000
        + i128::from(past_minute_ns);
    // Stored instants are whole microseconds: `t >= x` for a finer `x` is `t >= ceil(x)`.
    let micros_up = |ns: i128| -> i64 { (-((-ns).div_euclid(1000))) as i64 };
    Ok(Range { from: micros_up(start_ns), before: micros_up(start_ns + i128::from(span_ns)) })
}

/// Exactly `n` ASCII digits as a number.
fn digits<T: std::str::FromStr>(s: Option<&str>, n: usize) -> Option<T> {
    s.filter(|s| s.len() == n && s.bytes().all(|b| b.is_ascii_digit())).and_then(|s| s.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(rfc3339: &str) -> i64 {
        let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).unwrap();
        (t.unix_timestamp_nanos() / 1000) as i64
    }

    #[test]
    fn a_value_stands_for_the_range_of_its_precision() {
        let r = |s: &str| range(s).unwrap();
        let day = |from: &str, before: &str| Range { from: micros(from), before: micros(before) };
        assert_eq!(r("2024"), day("2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"));
        assert_eq!(r("2024-02"), day("2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"));
        assert_eq!(r("2023-02"), day("2023-02-01T00:00:00Z", "2023-03-01T00:00:00Z"));
        assert_eq!(r("2026-12-31"), day("2026-12-31T00:00:00Z", "2027-01-01T00:00:00Z"));
        assert_eq!(r("2026-12-07T15:30+05:30"), day("2026-12-07T10:00:00Z", "2026-12-07T10:01:00Z"));
        assert_eq!(r("2026-12-07T10:00:05-03:00"), day("2026-12-07T13:00:05Z", "2026-12-07T13:00:06Z"));
        assert_eq!(r("2026-12-07T10:00:05.25Z"), day("2026-12-07T10:00:05.25Z", "2026-12-07T10:00:05.26Z"));
        assert_eq!(r("2026-12-07T10:00:05.123456Z"), day("2026-12-07T10:00:05.123456Z", "2026-12-07T10:00:05.123457Z"));
        // Finer than a microsecond: stored instants are whole microseconds, so the bounds round up.
        assert_eq!(
            r("2026-12-07T10:00:05.1234561Z"),
            day("2026-12-07T10:00:05.123457Z", "2026-12-07T10:00:05.123457Z")
        );
        assert_eq!(r("1969-12-31T23:59:59.9999995Z").from, 0);
    }

    #[test]
    fn prefixes_compare_a_stored_instant_with_the_range() {
        let t = |s: &str| TimeTerm::parse("_lastUpdated", s).unwrap();
        let (from, before) = (micros("2026-12-07T00:00:00Z"), micros("2026-12-08T00:00:00Z"));
        assert_eq!(t("2026-12-07"), TimeTerm::Within { from, before });
        assert_eq!(t("eq2026-12-07"), TimeTerm::Within { from, before });
        assert_eq!(t("ne2026-12-07"), TimeTerm::Outside { from, before });
        assert_eq!(t("gt2026-12-07"), TimeTerm::From(before));
        assert_eq!(t("sa2026-12-07"), TimeTerm::From(before));
        assert_eq!(t("ge2026-12-07"), TimeTerm::From(from));
        assert_eq!(t("lt2026-12-07"), TimeTerm::Before(from));
        assert_eq!(t("eb2026-12-07"), TimeTerm::Before(from));
        assert_eq!(t("le2026-12-07"), TimeTerm::Before(before));
        // A poll with the last `meta.lastUpdated` seen: strictly after it.
        let last = micros("2026-12-07T10:00:00.250000Z");
        assert_eq!(t("gt2026-12-07T15:30:00.250000+05:30"), TimeTerm::From(last + 1));
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        for (bad, why) in [
            ("yesterday", "is not a date"),
            ("ap2026-12-07", "`ap`"),
            ("xx2026-12-07", "not a prefix"),
            ("gt2026-12-07T10:00", "zone"),
            ("gt2026-12-07T10:00:00", "zone"),
            ("2026-12-07T10Z", "time is"),
            ("2026-12-07T24:00Z", "not a time of day"),
            ("2026-12-07T10:00:60Z", "not a second"),
            ("2026-12-07T10:00:00.Z", "fraction"),
            ("2026-12-07T10:00:00.1234567890Z", "fraction"),
            ("2026-12-07T10:00+15:00", "not a time zone"),
            ("2026-12-07T10:00+0530", "zone is"),
            ("2026-13", "no month 13"),
            ("2026-02-30", "no such day"),
            ("0000", "no year 0000"),
            ("26-12-07", "is not a date"),
            ("2026-12T10:00Z", "is not a date"),
            ("2026-12-07-01", "is not a date"),
            ("gt", "is not a date"),
            ("", "is not a date"),
            ("g", "is not a date"),
        ] {
            let e = TimeTerm::parse("_lastUpdated", bad).expect_err(bad);
            assert!(e.starts_with(&format!("_lastUpdated `{bad}`")) && e.contains(why), "{bad}: {e}");
        }
        let spaced = TimeTerm::parse("_lastUpdated", "gt2026-12-07T15:30:00 05:30").unwrap_err();
        assert!(spaced.contains("%2B"), "{spaced}");
    }

    proptest::proptest! {
        /// Whatever a client sends is read or refused, never a panic.
        #[test]
        fn any_text_is_read_or_refused(s in "\\PC{0,40}") {
            let _ = TimeTerm::parse("_lastUpdated", &s);
        }

        /// Near misses of a date too; what is read is a range that starts before it ends.
        #[test]
        fn near_dates_are_read_or_refused(
            s in "(eq|ne|gt|ap|)[0-9]{4}(-[0-9]{1,2}(-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{0,10})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?"
        ) {
            let _ = TimeTerm::parse("_lastUpdated", &s);
            if let Ok(r) = range(s.trim_start_matches(|c: char| c.is_ascii_lowercase())) {
                proptest::prop_assert!(r.from <= r.before, "{}", s);
            }
        }

        /// An instant written with microseconds in any zone stands for exactly that microsecond.
        #[test]
        fn an_instant_stands_for_its_microsecond(
            seconds in 0_i64..253_402_000_000, micro in 0_u32..1_000_000, zone_minutes in -14 * 60_i32..=14 * 60
        ) {
            let at = time::OffsetDateTime::from_unix_timestamp(seconds).unwrap()
                + time::Duration::microseconds(i64::from(micro));
            let zone = time::UtcOffset::from_whole_seconds(zone_minutes * 60).unwrap();
            let text = at.to_offset(zone).format(&time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6][offset_hour sign:mandatory]:[offset_minute]"
            )).unwrap();
            let us = seconds * 1_000_000 + i64::from(micro);
            proptest::prop_assert_eq!(range(&text), Ok(Range { from: us, before: us + 1 }), "{}", text);
            proptest::prop_assert_eq!(instant_text(us), at.format(&time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
            )).unwrap());
        }
    }

    #[test]
    fn the_condition_numbers_its_parameters_and_keeps_the_edges_of_the_calendar() {
        let terms = [vec![TimeTerm::From(0)], vec![TimeTerm::Outside { from: 1, before: 2 }]];
        let (sql, params) = condition(&terms, Column::Timestamp("m.t"), 11);
        assert_eq!(
            sql,
            "m.t >= $11::text::timestamptz AND (m.t < $12::text::timestamptz OR m.t >= $13::text::timestamptz)"
        );
        assert_eq!(
            params,
            ["1970-01-01T00:00:00.000000Z", "1970-01-01T00:00:00.000001Z", "1970-01-01T00:00:00.000002Z"]
        );
        assert_eq!(condition(&[], Column::Timestamp("m.t"), 1), ("TRUE".to_string(), vec![]));
        // Values separated by commas: any of them.
        let any = TimeTerm::parse_any("_lastUpdated", "lt2026-01-01,ge2026-12-07").unwrap();
        let (sql, params) = condition(&[any], Column::Timestamp("m.t"), 1);
        assert_eq!(sql, "(m.t < $1::text::timestamptz OR m.t >= $2::text::timestamptz)");
        assert_eq!(params, ["2026-01-01T00:00:00.000000Z", "2026-12-07T00:00:00.000000Z"]);
        assert!(TimeTerm::parse_any("_lastUpdated", "ge2026,yesterday").unwrap_err().contains("`yesterday`"));
        // An instant in microseconds (a measured time): compared as a number.
        let (sql, params) = condition(&[vec![TimeTerm::Within { from: -5, before: 7 }]], Column::Micros("o.t"), 3);
        assert_eq!(sql, "(o.t >= $3::text::bigint AND o.t < $4::text::bigint)");
        assert_eq!(params, ["-5", "7"]);
        // A refusal names the parameter it was given in.
        assert!(TimeTerm::parse("date", "yesterday").unwrap_err().starts_with("date `yesterday`"));
        // The last day there is: its end is past what a date can say.
        let TimeTerm::From(end) = TimeTerm::parse("_lastUpdated", "gt9999-12-31").unwrap() else { panic!() };
        assert_eq!(instant_text(end), "infinity");
        let TimeTerm::Before(start) = TimeTerm::parse("_lastUpdated", "lt0001-01-01T00:00+14:00").unwrap() else {
            panic!()
        };
        assert_eq!(instant_text(start), "-infinity");
    }
}
