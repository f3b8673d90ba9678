//! Eviction: waveform and media rows past their class's TTL or byte cap go, oldest first, and
//! every eviction is counted by device, class and reason (invariant 5). Spot readings stay.

use super::{classify, Dropped, Queue, QueueError};
use crate::mqtt::topics;
use crate::queue::Class;
use std::collections::BTreeMap;

impl Queue {
    /// Evicts waveform and media rows past their TTL or byte cap, oldest first. Spot readings stay.
    pub fn enforce(&mut self, now_micros: i64) -> Result<Vec<Dropped>, QueueError> {
        let mut dropped: BTreeMap<(String, Class, &'static str), (u64, u64)> = BTreeMap::new();
        for class in [Class::Wave, Class::Media] {
            if let Some(ttl) = self.policy.ttl(class) {
                let cutoff = now_micros - ttl.as_micros() as i64;
                let rows = self.evict(
                    "DELETE FROM outbox WHERE class = ?1 AND created < ?2 RETURNING topic, length(payload)",
                    &[&(class as i64), &cutoff],
                    class,
                )?;
                tally(&mut dropped, class, "ttl", rows);
            }
            if let Some(cap) = self.policy.cap(class) {
                let mut excess = self.bytes[class as usize].saturating_sub(cap);
                let mut victims = Vec::new();
                if excess > 0 {
                    let path = self.path.clone();
                    let mut stmt = self
                        .conn
                        .prepare_cached("SELECT seq, length(payload) FROM outbox WHERE class = ?1 ORDER BY seq")
                        .map_err(|e| classify(&path, e))?;
                    let mut rows = stmt.query([class as i64]).map_err(|e| classify(&path, e))?;
                    while excess > 0 {
                        let Some(row) = rows.next().map_err(|e| classify(&path, e))? else {
                            break;
                        };
                        let (seq, len): (i64, i64) =
                            (row.get(0).map_err(|e| classify(&path, e))?, row.get(1).map_err(|e| classify(&path, e))?);
                        victims.push(seq);
                        excess = excess.saturating_sub(len as u64);
                    }
                }
                for chunk in victims.chunks(256) {
                    let list = chunk.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
                    let sql_text = format!("DELETE FROM outbox WHERE seq IN ({list}) RETURNING topic, length(payload)");
                    let rows = self.evict(&sql_text, &[], class)?;
                    tally(&mut dropped, class, "cap", rows);
                }
            }
        }
        Ok(dropped
            .into_iter()
            .map(|((dev, class, reason), (count, bytes))| Dropped { dev, class, reason, count, bytes })
            .collect())
    }

    fn evict(
        &mut self,
        sql_text: &str,
        args: &[&dyn rusqlite::ToSql],
        class: Class,
    ) -> Result<Vec<(String, i64)>, QueueError> {
        let rows: Vec<(String, i64)> = self.transaction(|tx| {
            let rows = {
                let mut stmt = tx.prepare(sql_text)?;
                let it = stmt.query_map(args, |r| Ok((r.get(0)?, r.get(1)?)))?;
                it.collect::<Result<Vec<_>, _>>()?
            };
            tx.execute("UPDATE meta SET value = value + ?1 WHERE key = 'dropped'", [rows.len() as i64])?;
            Ok(rows)
        })?;
        let forgotten: Vec<(i64, i64)> = rows.iter().map(|(_, len)| (class as i64, *len)).collect();
        self.forget(&forgotten);
        self.dropped += rows.len() as u64;
        Ok(rows)
    }
}

fn tally(
    into: &mut BTreeMap<(String, Class, &'static str), (u64, u64)>,
    class: Class,
    reason: &'static str,
    rows: Vec<(String, i64)>,
) {
    for (topic, len) in rows {
        let dev = match topics::parse(&topic) {
            Some(topics::TopicRef::Body { dev, .. }) => dev.unwrap_or_default().to_string(),
            _ => String::new(),
        };
        let e = into.entry((dev, class, reason)).or_default();
        e.0 += 1;
        e.1 += len as u64;
    }
}
