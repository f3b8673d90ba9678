//! The steps of gateways' wall clocks, as their signed `clock-stepped` events reported them
//! (`clock_steps`), read for the rows a page or an export shows: a message keeps the gateway time
//! it was signed with, and is shown on the gateway's clock after the steps that cover it.

use spokegate::hub::ClockStepClaim;
use std::collections::HashMap;
use tokio_postgres::Client;

/// The steps of some gateways, by (site, gw).
#[derive(Debug, Default)]
pub struct ClockSteps(HashMap<(String, String), Vec<ClockStepClaim>>);

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
                 WHERE (site, gw) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
                &[&sites, &gws],
            )
            .await?;
        let mut steps: HashMap<(String, String), Vec<ClockStepClaim>> = HashMap::new();
        for r in rows {
            let claim = ClockStepClaim {
                step_us: r.get(2),
                seq_from: r.get::<_, i64>(3) as u64,
                seq_to: r.get::<_, i64>(4) as u64,
            };
            steps.entry((r.get(0), r.get(1))).or_default().push(claim);
        }
        Ok(ClockSteps(steps))
    }

    /// How far the gateway time of message `seq` of (site, gw) is moved (0: not at all).
    pub fn correction(&self, site: &str, gw: &str, seq: u64) -> i64 {
        let steps = self.0.get(&(site.to_string(), gw.to_string()));
        spokegate::hub::clock_steps::correction(seq, steps.map_or(&[], Vec::as_slice))
    }
}
