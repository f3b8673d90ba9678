//! The steps of gateways' wall clocks, as their signed `clock-stepped` events reported them
//! (`clock_steps`), read for the rows a page or an export shows: a message keeps the gateway time
//! it was signed with, and is shown on the gateway's clock after the steps that cover it.

use spokegate::hub::clock_steps::Corrections;
use spokegate::hub::ClockStepClaim;
use std::collections::HashMap;
use tokio_postgres::Client;

/// Steps read for one request at most (the newest): a gateway that floods them cannot make a page
/// or an export read without bound.
const MAX_STEPS: i64 = 10_000;

/// The corrections of some gateways, by (site, gw).
#[derive(Debug, Default)]
pub struct ClockSteps(HashMap<(String, String), Corrections>);

impl ClockSteps {
    /// The steps of the `gateways` (site, gw).
    pub async fn of<'a>(
        db: &Client,
        gateways: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<ClockSteps, tokio_postgres::Error> {
        let distinct: std::collections::BTreeSet<(&str, &str)> = gateways.into_iter().collect();
        let (sites, gws): (Vec<&str>, Vec<&str>) = distinct.into_iter().unzip();
        if sites.is_empty() {
            return Ok(ClockSteps::default());
        }
        let rows = db
            .query(
                "SELECT site, gw, step_us, seq_from, seq_to FROM clock_steps
                 WHERE (site, gw) IN (SELECT * FROM unnest($1::text[], $2::text[]))
                 ORDER BY message_id DESC LIMIT $3",
                &[&sites, &gws, &MAX_STEPS],
            )
            .await?;
        Ok(Self::from_rows(&rows))
    }

    /// The steps of every gateway of the `sites` (a search by measured time may find the readings
    /// of any gateway its client's grants open).
    pub async fn at_sites(db: &Client, sites: &[&str]) -> Result<ClockSteps, tokio_postgres::Error> {
        let rows = db
            .query(
                "SELECT site, gw, step_us, seq_from, seq_to FROM clock_steps WHERE site = ANY($1::text[])
                 ORDER BY message_id DESC LIMIT $2",
                &[&sites, &MAX_STEPS],
            )
            .await?;
        Ok(Self::from_rows(&rows))
    }

    fn from_rows(rows: &[tokio_postgres::Row]) -> ClockSteps {
        let mut steps: HashMap<(String, String), Vec<ClockStepClaim>> = HashMap::new();
        for r in rows {
            let claim = ClockStepClaim {
                step_us: r.get(2),
                seq_from: r.get::<_, i64>(3) as u64,
                seq_to: r.get::<_, i64>(4) as u64,
            };
            steps.entry((r.get(0), r.get(1))).or_default().push(claim);
        }
        ClockSteps(steps.into_iter().map(|(gateway, claims)| (gateway, Corrections::new(&claims))).collect())
    }

    /// Every span of seqs whose gateway times move, as columns (site, gw, first seq, last seq,
    /// how far) for SQL's `unnest`: seqs beyond a database's bigint end at its largest.
    pub fn spans(&self) -> Spans {
        let mut out = Spans::default();
        for ((site, gw), c) in &self.0 {
            for (from, to, fix) in c.spans() {
                let seq = |s: u64| i64::try_from(s).unwrap_or(i64::MAX);
                out.site.push(site.clone());
                out.gw.push(gw.clone());
                out.from.push(seq(from));
                out.to.push(seq(to));
                out.fix.push(fix);
            }
        }
        out
    }

    /// How far the gateway time of message `seq` of (site, gw) is moved (0: not at all).
    pub fn correction(&self, site: &str, gw: &str, seq: u64) -> i64 {
        self.0.get(&(site.to_string(), gw.to_string())).map_or(0, |c| c.at(seq))
    }
}

/// Spans of seqs whose gateway times move ([`ClockSteps::spans`]), column by column.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Spans {
    pub site: Vec<String>,
    pub gw: Vec<String>,
    pub from: Vec<i64>,
    pub to: Vec<i64>,
    pub fix: Vec<i64>,
}
