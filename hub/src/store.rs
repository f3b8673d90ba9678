//! Writing one batch of checked messages to PostgreSQL in one transaction: every verified
//! message once (a unique (site, gw, seq) makes a redelivery, to this instance or another, a
//! no-op), the rows decoded from it, images whose last part arrived, commands, and what did not
//! verify into the quarantine. Statements are pipelined: a batch costs a few round trips, not a
//! few per message.

use crate::batch::{Batch, Verified};
use futures::future::try_join_all;
use spokegate::model::Body;
use std::collections::BTreeSet;
use tokio_postgres::{Client, Statement};

pub struct Store {
    client: Client,
    st: Statements,
}

struct Statements {
    message: Statement,
    observation: Statement,
    event: Statement,
    wave: Statement,
    media_part: Statement,
    consult: Statement,
    reply: Statement,
    clock_step: Statement,
    command: Statement,
    quarantine: Statement,
    notify: Statement,
}

/// What a commit did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// Messages stored for the first time, and ones that were stored before (redeliveries).
    pub new: usize,
    pub duplicates: usize,
    pub quarantined: usize,
    pub commands: usize,
    /// Images completed by this batch, and ones whose joined parts did not match their SHA-256.
    pub images: usize,
    pub bad_images: usize,
}

impl Store {
    pub async fn new(client: Client) -> Result<Store, tokio_postgres::Error> {
        let st = Statements {
            message: client
                .prepare(
                    "INSERT INTO messages (site, gw, seq, kind, dev, prof, consult, t_us, tdev_us, topic, kid, envelope, body)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                     ON CONFLICT (site, gw, seq) DO NOTHING RETURNING id",
                )
                .await?,
            observation: client
                .prepare(
                    "INSERT INTO observations (message_id, idx, site, gw, seq, dev, prof, consult, mdc, loinc, name, value,
                        ucum, unit_mdc, quality, t_us, tdev_us, ctx)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
                )
                .await?,
            event: client
                .prepare(
                    "INSERT INTO events (message_id, site, gw, dev, consult, code, sev, text, data, t_us)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .await?,
            wave: client
                .prepare(
                    "INSERT INTO wave_chunks (message_id, site, gw, dev, stream, consult, rate, i0, n, t0_us, channels, data)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .await?,
            media_part: client
                .prepare(
                    "INSERT INTO media_parts (message_id, site, gw, dev, media_id, part, parts, size, sha256, mime, data)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
                )
                .await?,
            consult: client
                .prepare(
                    "INSERT INTO consults (message_id, site, gw, consult, since_us, by_whom, cmd)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .await?,
            reply: client
                .prepare(
                    "INSERT INTO replies (message_id, site, gw, cmd, hub, state, code, text, data)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .await?,
            clock_step: client
                .prepare(
                    "INSERT INTO clock_steps (message_id, site, gw, step_us, seq_from, seq_to)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .await?,
            command: client
                .prepare(
                    "INSERT INTO commands (site, gw, hub, id, name, args, iat_us, exp_us, envelope)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
                )
                .await?,
            notify: client.prepare("SELECT pg_notify('spokegate_stored', $1)").await?,
            quarantine: client
                .prepare("INSERT INTO quarantine (topic, reason, detail, kid, payload) VALUES ($1, $2, $3, $4, $5)")
                .await?,
        };
        Ok(Store { client, st })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Stores `batch`; on error nothing of it is stored (and nothing may be acknowledged).
    pub async fn commit(&mut self, batch: &Batch) -> Result<Committed, tokio_postgres::Error> {
        let st = &self.st;
        let tx = self.client.transaction().await?;
        let mut done = Committed::default();

        // Messages first, in (site, gw, seq) order so that two instances never wait on each
        // other's rows in opposite orders.
        let mut order: Vec<&Verified> = batch.verified.iter().collect();
        order.sort_by(|a, b| (&a.body.site, &a.body.gw, a.body.seq).cmp(&(&b.body.site, &b.body.gw, b.body.seq)));
        let ids = try_join_all(order.iter().map(|v| {
            let b = &v.body;
            let kind = b.kind.as_str();
            let consult = consult_of(b);
            let seq = b.seq as i64;
            let tx = &tx;
            async move {
                tx.query_opt(
                    &st.message,
                    &[
                        &b.site,
                        &b.gw,
                        &seq,
                        &kind,
                        &b.dev,
                        &b.prof,
                        &consult,
                        &b.t,
                        &b.tdev,
                        &v.topic,
                        &v.kid,
                        &&v.envelope[..],
                        &v.json,
                    ],
                )
                .await
                .map(|r| r.map(|r| r.get::<_, i64>(0)))
            }
        }))
        .await?;

        let mut rows = Vec::new();
        let mut touched_media = BTreeSet::new();
        for (v, id) in order.iter().zip(&ids) {
            let Some(id) = *id else {
                done.duplicates += 1;
                continue;
            };
            done.new += 1;
            rows.extend(derived_rows(st, id, &v.body));
            if let Some(m) = &v.body.media {
                touched_media.insert((v.body.site.clone(), v.body.gw.clone(), m.id.clone()));
            }
        }
        try_join_all(rows.iter().map(|r| r.run(&tx))).await?;

        for c in &batch.commands {
            let c_args = serde_json::to_value(&c.cmd.args).unwrap_or_default();
            done.commands += tx
                .execute(
                    &st.command,
                    &[
                        &c.cmd.site,
                        &c.cmd.gw,
                        &c.cmd.hub,
                        &c.cmd.id,
                        &c.cmd.name,
                        &c_args,
                        &c.cmd.iat,
                        &c.cmd.exp,
                        &&c.envelope[..],
                    ],
                )
                .await? as usize;
        }
        try_join_all(batch.quarantined.iter().map(|q| {
            let tx = &tx;
            async move {
                let payload: &[u8] = &q.payload;
                tx.execute(&st.quarantine, &[&q.topic, &q.reason, &q.detail, &q.kid, &payload]).await
            }
        }))
        .await?;
        done.quarantined = batch.quarantined.len();

        for (site, gw, media_id) in touched_media {
            match crate::images::complete(&tx, &site, &gw, &media_id).await? {
                crate::images::Completion::Stored => done.images += 1,
                crate::images::Completion::Mismatch => done.bad_images += 1,
                crate::images::Completion::Waiting => {}
            }
        }
        // Pages watching a consult hear of the new rows when the transaction commits.
        let new_ids: Vec<i64> = ids.iter().flatten().copied().collect();
        for payload in crate::view::feed::notices(&new_ids) {
            tx.execute(&st.notify, &[&payload]).await?;
        }
        tx.commit().await?;
        Ok(done)
    }
}

/// The consult a body is bound to (a `consult` body's own value, `None` when it ended).
fn consult_of(b: &Body) -> Option<String> {
    b.consult.clone().flatten()
}

/// One row to insert, its statement and its values.
struct Row<'a> {
    st: &'a Statement,
    values: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send + 'a>>,
}

impl<'a> Row<'a> {
    async fn run(&self, tx: &tokio_postgres::Transaction<'_>) -> Result<u64, tokio_postgres::Error> {
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            self.values.iter().map(|v| &**v as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
        tx.execute(self.st, &params).await
    }
}

macro_rules! row {
    ($st:expr, $($v:expr),* $(,)?) => {
        Row { st: $st, values: vec![$(Box::new($v)),*] }
    };
}

fn derived_rows<'a>(st: &'a Statements, id: i64, b: &'a Body) -> Vec<Row<'a>> {
    let mut rows = Vec::new();
    let consult = consult_of(b);
    let (site, gw) = (b.site.as_str(), b.gw.as_str());
    for (i, o) in b.obs.iter().flatten().enumerate() {
        let ctx = o.ctx.as_ref().map(|c| serde_json::to_value(c).unwrap_or_default());
        rows.push(row!(
            &st.observation,
            id,
            i as i32,
            site,
            gw,
            b.seq as i64,
            b.dev.as_deref(),
            b.prof.as_deref(),
            consult.clone(),
            o.code.mdc as i64,
            o.code.loinc.as_deref(),
            o.code.name.as_deref(),
            o.val,
            o.unit.ucum.as_str(),
            o.unit.mdc.map(i64::from),
            o.q.as_str(),
            b.t,
            o.tdev.or(b.tdev),
            ctx,
        ));
    }
    if let Some(e) = &b.event {
        let data = e.data.as_ref().map(|d| serde_json::to_value(d).unwrap_or_default());
        rows.push(row!(
            &st.event,
            id,
            site,
            gw,
            b.dev.as_deref(),
            consult.clone(),
            e.code.as_str(),
            e.sev.as_str(),
            e.text.as_str(),
            data,
            b.t
        ));
    }
    // Checked when the batch was sorted: a claim that is not possible was quarantined.
    if let Some(Ok(step)) = spokegate::hub::clock_step(b) {
        rows.push(row!(&st.clock_step, id, site, gw, step.step_us, step.seq_from as i64, step.seq_to as i64));
    }
    if let (Some(w), Some(dev)) = (&b.wave, b.dev.as_deref()) {
        let channels: Vec<serde_json::Value> = w
            .ch
            .iter()
            .map(|c| {
                serde_json::json!({"label": c.label, "code": c.code, "unit": c.unit, "gain": c.gain, "base": c.base, "enc": c.enc})
            })
            .collect();
        let data: Vec<&[u8]> = w.ch.iter().map(|c| c.data.as_slice()).collect();
        rows.push(row!(
            &st.wave,
            id,
            site,
            gw,
            dev,
            w.stream.as_str(),
            consult.clone(),
            w.rate,
            w.i0 as i64,
            w.n as i32,
            w.t0,
            serde_json::Value::Array(channels),
            data,
        ));
    }
    if let Some(m) = &b.media {
        rows.push(row!(
            &st.media_part,
            id,
            site,
            gw,
            b.dev.as_deref(),
            m.id.as_str(),
            m.part as i32,
            m.parts as i32,
            m.size as i64,
            m.sha256.as_str(),
            m.mime.as_str(),
            m.data.as_slice(),
        ));
    }
    if let Some(c) = &b.binding {
        rows.push(row!(&st.consult, id, site, gw, consult.clone(), c.since, c.by.as_str(), c.cmd.as_deref()));
    }
    if let Some(r) = &b.reply {
        let data = r.data.as_ref().map(|d| serde_json::to_value(d).unwrap_or_default());
        rows.push(row!(
            &st.reply,
            id,
            site,
            gw,
            r.cmd.as_str(),
            r.hub.as_str(),
            r.state.as_str(),
            r.code.as_str(),
            r.text.as_str(),
            data
        ));
    }
    rows
}
