//! The `_lastUpdated` search parameter (FHIR search, "date" parameters with a prefix): when the
//! hub stored a reading, so that a hospital's system polls for what is new since its last poll
//! (`_lastUpdated=gt2026-12-07T10:00:00Z`). Instants with a time zone and the prefixes `gt`, `ge`,
//! `lt` and `le` are taken; anything else is refused with a reason.

/// A bound on the time a reading was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBound {
    /// The SQL comparison (one of a fixed set: never the client's text).
    pub op: &'static str,
    /// The instant, RFC 3339 in UTC with microseconds (what PostgreSQL's timestamptz holds).
    pub at: String,
}

impl StoredBound {
    pub fn parse(value: &str) -> Result<StoredBound, String> {
        use time::format_description::well_known::Rfc3339;
        let (op, instant) = match value.get(..2) {
            Some("gt") => (">", &value[2..]),
            Some("ge") => (">=", &value[2..]),
            Some("lt") => ("<", &value[2..]),
            Some("le") => ("<=", &value[2..]),
            _ => return Err(format!("_lastUpdated `{value}`: give a prefix gt, ge, lt or le and an instant")),
        };
        let t = time::OffsetDateTime::parse(instant, &Rfc3339).map_err(|_| {
            // A `+` sent bare in a query arrives as a space.
            let hint = if instant.contains(' ') { " (send a `+` in a URL query as %2B)" } else { "" };
            format!("_lastUpdated `{value}`: `{instant}` is not an instant with a time zone (RFC 3339){hint}")
        })?;
        let utc = t.to_offset(time::UtcOffset::UTC);
        let at = utc
            .format(&time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
            ))
            .map_err(|e| format!("_lastUpdated `{value}`: {e}"))?;
        Ok(StoredBound { op, at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_instants_are_taken_and_anything_else_is_refused() {
        let b = StoredBound::parse("gt2026-12-07T15:30:00.25+05:30").unwrap();
        assert_eq!(b, StoredBound { op: ">", at: "2026-12-07T10:00:00.250000Z".into() });
        assert_eq!(StoredBound::parse("le2026-12-07T10:00:00Z").unwrap().op, "<=");
        for bad in ["2026-12-07T10:00:00Z", "eq2026-12-07T10:00:00Z", "gt2026-12-07", "gt", "gtyesterday", "", "g"] {
            assert!(StoredBound::parse(bad).is_err(), "{bad}");
        }
        let spaced = StoredBound::parse("gt2026-12-07T15:30:00 05:30").unwrap_err();
        assert!(spaced.contains("%2B"), "{spaced}");
    }
}
