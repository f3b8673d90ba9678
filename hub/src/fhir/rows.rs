//! Which stored rows a FHIR request reads: the spot values a search selects, a consult's
//! waveform chunks, both only where the client's grants open them, and the clock steps that move
//! their gateway ranges.

use super::ranges::Ranges;
use super::resources::{NumericRow, WaveRow};
use super::ObservationQuery;
use crate::clock_steps::{ClockSteps, Spans};
use crate::search_code::CodeSearch;
use crate::search_page::Position;
use crate::search_time::Column;
use crate::search_values::SqlValue;
use crate::view::access::Grant;
use serde::Deserialize;
use spokegate::model::{Channel, Code, Unit, Wave};

/// The SQL condition that keeps the rows `grants` open (site, gateway, consult columns prefixed
/// with `of`), with its parameters numbered from `$first`: a client sees what its grants open
/// and nothing else, as in the view.
pub(super) fn granted(grants: &[Grant], of: &str, first: usize) -> (String, Vec<Option<String>>) {
    let mut params = Vec::new();
    let terms: Vec<String> = grants
        .iter()
        .map(|g| {
            let n = first + params.len();
            params.extend([Some(g.site.clone()), g.gw.clone(), g.consult.clone()]);
            format!(
                "({of}site = ${n} AND (${}::text IS NULL OR {of}gw = ${}) AND (${}::text IS NULL OR {of}consult = ${}))",
                n + 1,
                n + 1,
                n + 2,
                n + 2
            )
        })
        .collect();
    let sql = if terms.is_empty() { "FALSE".to_string() } else { format!("({})", terms.join(" OR ")) };
    (sql, params)
}

/// The order of a search's results (`_sort`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Site, gateway, seq and value index: the order of an index, so a page costs the same
    /// however deep it is.
    #[default]
    Signed,
    /// `_sort=date`: earliest measured first ([`MEASURED`]), then as `Signed`.
    Measured,
    /// `_sort=-date`: latest measured first, then as `Signed` backwards.
    LatestFirst,
}

impl Order {
    /// The order `_sort` asks for (another value is not applied: the search's own order).
    pub fn of(sort: Option<&str>) -> Order {
        match sort {
            Some("date") => Order::Measured,
            Some("-date") => Order::LatestFirst,
            _ => Order::Signed,
        }
    }

    /// The `_sort` value that asks for it.
    pub fn sort(self) -> Option<&'static str> {
        match self {
            Order::Signed => None,
            Order::Measured => Some("date"),
            Order::LatestFirst => Some("-date"),
        }
    }
}

/// When a spot value was measured, as its resource's `effectiveDateTime` says: the device's time,
/// else the gateway's time on the gateway's clock after the steps it reported since it signed it
/// (`resources::gateway_time`): moved by the span `f` of its gateway's steps that holds its seq
/// (none: not moved), saturating at the ends of an i64 as `saturating_add` does. (Nested `CASE`s:
/// SQL does not promise to evaluate `AND` left to right, and `max - fix` overflows for a
/// negative `fix`.)
const MEASURED: &str = "COALESCE(o.tdev_us, CASE
    WHEN f.fix IS NULL THEN o.t_us
    WHEN f.fix > 0 THEN CASE WHEN o.t_us > 9223372036854775807 - f.fix THEN 9223372036854775807 ELSE o.t_us + f.fix END
    ELSE CASE WHEN o.t_us < '-9223372036854775808'::bigint - f.fix THEN '-9223372036854775808'::bigint ELSE o.t_us + f.fix END
    END)";

/// What a spot-value search selects, as SQL over `observations o JOIN messages m` and
/// [`Selection::joins`]: the conditions of its parameters and the client's grants, all of which
/// hold, and their parameters numbered in turn from `$first`.
struct Selection<'a> {
    sql: String,
    /// The spans of clock steps (`f`) when the search asks when values were measured (or is in
    /// that order), joined to each value of their gateway and seq (they do not overlap: a value
    /// meets one at most).
    joins: String,
    tokens: Vec<SqlValue>,
    ranges: Vec<String>,
    spans: Option<&'a Spans>,
    code: Vec<SqlValue>,
    grants: Vec<Option<String>>,
}

impl<'a> Selection<'a> {
    /// `spans`: the gateways' clock steps, read when the search asks when values were measured
    /// (`ranges`) or is in that order.
    fn of(
        q: &ObservationQuery,
        grants: &[Grant],
        ranges: &Ranges,
        spans: Option<&'a Spans>,
        first: usize,
    ) -> Selection<'a> {
        let mut next = first;
        let mut terms = Vec::new();
        let mut tokens = Vec::new();
        for (column, value) in [("o.consult", &q.consult), ("o.site", &q.site), ("o.gw", &q.gw), ("o.dev", &q.dev)] {
            if let Some(v) = value {
                let (sql, param) = crate::search_values::equals_any(column, v, next);
                terms.push(sql);
                tokens.push(param);
                next += 1;
            }
        }
        // TRUE without `_lastUpdated`: then the condition needs no stored message.
        let (stored, mut range_params) =
            crate::search_time::condition(&ranges.stored, Column::Timestamp("m.received_at"), next);
        terms.push(stored);
        next += range_params.len();
        let (measured, measured_params) =
            crate::search_time::condition(&ranges.measured, Column::Micros(MEASURED), next);
        terms.push(measured);
        next += measured_params.len();
        range_params.extend(measured_params);
        let (valued, quantity_params) =
            crate::search_quantity::condition(&ranges.quantity, ("o.value", "o.ucum", "o.unit_mdc"), next);
        terms.push(valued);
        next += quantity_params.len();
        range_params.extend(quantity_params);
        let joins = match &spans {
            Some(_) => {
                let [site, gw, from, to, fix] = [next, next + 1, next + 2, next + 3, next + 4];
                next += 5;
                format!(
                    " LEFT JOIN unnest(${site}::text[], ${gw}::text[], ${from}::bigint[], ${to}::bigint[], ${fix}::bigint[])
                        AS f(site, gw, seq_from, seq_to, fix)
                      ON f.site = o.site AND f.gw = o.gw AND o.seq BETWEEN f.seq_from AND f.seq_to"
                )
            }
            None => String::new(),
        };
        let (coded, code) = match q.code.as_deref().map(CodeSearch::parse) {
            Some(c) => c.condition("o.mdc", "o.loinc", next),
            None => ("TRUE".to_string(), Vec::new()),
        };
        terms.push(coded);
        next += code.len();
        let (open, grants) = granted(grants, "o.", next);
        terms.push(open);
        Selection { sql: terms.join(" AND "), joins, tokens, ranges: range_params, spans, code, grants }
    }

    /// The parameters, in the order of their numbers.
    fn params(&self) -> impl Iterator<Item = &(dyn tokio_postgres::types::ToSql + Sync)> {
        type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);
        let tokens = self.tokens.iter().map(SqlValue::as_sql);
        let ranges = self.ranges.iter().map(|p| p as Param);
        let spans = self.spans.iter().flat_map(|s| [&s.site as Param, &s.gw, &s.from, &s.to, &s.fix]);
        let code = self.code.iter().map(SqlValue::as_sql);
        let grants = self.grants.iter().map(|p| p as Param);
        tokens.chain(ranges).chain(spans).chain(code).chain(grants)
    }
}

/// The clock steps a search by measured time (or in its order) needs: of the sites the client's
/// grants open (none when the search does not ask). Read once for a page and its count.
pub async fn spans_for(
    db: &tokio_postgres::Client,
    ranges: &Ranges,
    order: Order,
    grants: &[Grant],
) -> Result<Option<Spans>, tokio_postgres::Error> {
    if ranges.measured.is_empty() && order == Order::Signed {
        return Ok(None);
    }
    let sites: Vec<&str> = grants.iter().map(|g| g.site.as_str()).collect();
    Ok(Some(ClockSteps::at_sites(db, &sites).await?.spans()))
}

/// How many spot values `q` selects that `grants` open, stored and measured within `ranges`
/// (`spans` from [`spans_for`]).
pub async fn numeric_count(
    db: &tokio_postgres::Client,
    q: &ObservationQuery,
    grants: &[Grant],
    (ranges, spans): (&Ranges, Option<&Spans>),
) -> Result<i64, tokio_postgres::Error> {
    // A count has no order: the steps only for `date`.
    let spans = spans.filter(|_| !ranges.measured.is_empty());
    let selection = Selection::of(q, grants, ranges, spans, 1);
    let params: Vec<_> = selection.params().collect();
    // The join only when `_lastUpdated` asks when they were stored: a count of a site's 300,000
    // readings took 230 ms with it and 60 ms without (EXPLAIN ANALYZE, 2026-12-07).
    let from = if ranges.stored.is_empty() {
        "observations o"
    } else {
        "observations o JOIN messages m ON m.id = o.message_id"
    };
    let sql = format!("SELECT count(*) FROM {from}{} WHERE {}", selection.joins, selection.sql);
    Ok(db.query_one(&sql, &params).await?.get(0))
}

/// The spot values `q` selects that `grants` open, in `order`, after `after` when a page starts
/// there (a position in that order), stored and measured within `ranges` (`spans` from
/// [`spans_for`]); at most `limit` (`None`: all).
pub async fn numeric_rows(
    db: &tokio_postgres::Client,
    q: &ObservationQuery,
    grants: &[Grant],
    (after, order): (Option<&Position>, Order),
    (ranges, spans): (&Ranges, Option<&Spans>),
    limit: Option<i64>,
) -> Result<Vec<NumericRow>, tokio_postgres::Error> {
    let (after_site, after_gw) = (after.map(|p| p.site.clone()), after.map(|p| p.gw.clone()));
    let (after_seq, after_idx) = (after.map(|p| p.seq), after.map(|p| p.idx));
    let after_measured = after.and_then(|p| p.measured);
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        vec![&limit, &after_site, &after_gw, &after_seq, &after_idx];
    // $1 to $5 the page ($6 too in an order by measured time); then the selection's.
    let signed_key = "o.site, o.gw, o.seq, o.idx";
    let (after_key, ordered, measured) = match order {
        Order::Signed => (
            format!("({signed_key}) > ($2::text, $3::text, $4::bigint, $5::integer)"),
            signed_key.to_string(),
            "NULL::bigint",
        ),
        Order::Measured | Order::LatestFirst => {
            params.push(&after_measured);
            let (after, ordered) = match order {
                Order::Measured => (">", format!("{MEASURED}, {signed_key}")),
                _ => ("<", format!("{MEASURED} DESC, o.site DESC, o.gw DESC, o.seq DESC, o.idx DESC")),
            };
            let after_key =
                format!("({MEASURED}, {signed_key}) {after} ($6::bigint, $2::text, $3::text, $4::bigint, $5::integer)");
            (after_key, ordered, MEASURED)
        }
    };
    let selection = Selection::of(q, grants, ranges, spans, params.len() + 1);
    params.extend(selection.params());
    let rows = db
        .query(
            &format!(
                "SELECT o.site, o.gw, o.seq, o.idx, o.dev, o.consult, o.mdc, o.loinc, o.name, o.value, o.ucum, o.unit_mdc,
                        o.quality, o.t_us, o.tdev_us, o.prof, (EXTRACT(EPOCH FROM m.received_at) * 1000000)::bigint,
                        {measured}
                 FROM observations o JOIN messages m ON m.id = o.message_id{}
                 WHERE {} AND ($2::text IS NULL OR {after_key})
                 ORDER BY {ordered} LIMIT $1::bigint",
                selection.joins, selection.sql
            ),
            &params,
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| NumericRow {
            site: r.get(0),
            gw: r.get(1),
            seq: r.get(2),
            idx: r.get(3),
            dev: r.get(4),
            prof: r.get(15),
            consult: r.get(5),
            code: Code { mdc: r.get::<_, i64>(6) as u32, loinc: r.get(7), name: r.get(8) },
            value: r.get(9),
            unit: Unit { ucum: r.get(10), mdc: r.get::<_, Option<i64>>(11).map(|m| m as u32) },
            quality: r.get(12),
            t_us: r.get(13),
            tdev_us: r.get(14),
            clock_fix_us: 0,
            stored_us: r.get(16),
            measured_us: r.get(17),
        })
        .collect())
}

#[derive(Deserialize)]
struct StoredChannel {
    label: String,
    code: Code,
    unit: Unit,
    gain: f64,
    base: i64,
    enc: String,
}

pub async fn wave_rows(
    db: &tokio_postgres::Client,
    consult: &str,
    grants: &[Grant],
) -> Result<Vec<WaveRow>, tokio_postgres::Error> {
    let (open, grant_params) = granted(grants, "w.", 2);
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&consult];
    params.extend(grant_params.iter().map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync)));
    let rows = db
        .query(
            &format!(
                "SELECT w.site, w.gw, m.seq, w.dev, w.consult, w.stream, w.rate, w.i0, w.n, w.t0_us, w.channels, w.data, m.prof,
                        (EXTRACT(EPOCH FROM m.received_at) * 1000000)::bigint
                 FROM wave_chunks w JOIN messages m ON m.id = w.message_id
                 WHERE w.consult = $1 AND {open} ORDER BY w.site, w.gw, w.dev, w.stream, w.i0"
            ),
            &params,
        )
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let channels: Vec<StoredChannel> = serde_json::from_value(r.get(10)).unwrap_or_default();
        let data: Vec<Vec<u8>> = r.get(11);
        let ch = channels
            .into_iter()
            .zip(data)
            .map(|(c, data)| Channel {
                label: c.label,
                code: c.code,
                unit: c.unit,
                gain: c.gain,
                base: c.base,
                enc: c.enc,
                data,
            })
            .collect();
        out.push(WaveRow {
            site: r.get(0),
            gw: r.get(1),
            seq: r.get(2),
            dev: r.get(3),
            prof: r.get(12),
            consult: r.get(4),
            wave: Wave {
                stream: r.get(5),
                rate: r.get(6),
                i0: r.get::<_, i64>(7) as u64,
                t0: r.get(9),
                n: r.get::<_, i32>(8) as u32,
                ch,
            },
            clock_fix_us: 0,
            stored_us: r.get(13),
        });
    }
    Ok(out)
}

/// Sets the rows' `clock_fix_us` from their gateways' clock steps (one read of them for both).
pub async fn correct_clocks(
    db: &tokio_postgres::Client,
    numbers: &mut [NumericRow],
    waves: &mut [WaveRow],
) -> Result<(), tokio_postgres::Error> {
    let gateways = numbers.iter().map(|r| (r.site.as_str(), r.gw.as_str()));
    let steps = ClockSteps::of(db, gateways.chain(waves.iter().map(|r| (r.site.as_str(), r.gw.as_str())))).await?;
    for r in numbers {
        r.clock_fix_us = steps.correction(&r.site, &r.gw, r.seq as u64);
    }
    for r in waves {
        r.clock_fix_us = steps.correction(&r.site, &r.gw, r.seq as u64);
    }
    Ok(())
}
