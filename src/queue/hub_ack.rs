//! End-to-end delivery: messages a hub acknowledged (`ack` ranges) leave the queue; under hub
//! delivery the broker's PUBACK does not delete anything.

use super::store::{classify, delete_ranges, sql_seq};
use super::{Queue, QueueError, Record};
use rusqlite::OptionalExtension;

impl Queue {
    /// Deletes every queued message whose `seq` is in one of the inclusive `ranges`, and notes the
    /// time of the acknowledgement; returns how many left the queue. Not synced: a lost delete only
    /// means a resend, which the hub acknowledges again.
    pub fn delete_acked(&mut self, ranges: &[(u64, u64)], now: i64) -> Result<u64, QueueError> {
        let result = self.transaction(|tx| {
            let gone = delete_ranges(tx, ranges)?;
            tx.execute("UPDATE meta SET value = value + ?1 WHERE key = 'delivered'", [gone.len() as i64])?;
            tx.execute("UPDATE meta SET value = ?1 WHERE key = 'last_hub_ack'", [now])?;
            Ok(gone)
        });
        let gone = result?;
        self.forget(&gone);
        self.delivered += gone.len() as u64;
        Ok(gone.len() as u64)
    }

    /// The queued messages with these `seq`s (those still queued), in `seq` order.
    pub fn by_seq(&mut self, seqs: &[u64]) -> Result<Vec<Record>, QueueError> {
        let path = self.path.clone();
        let sql = |e| classify(&path, e);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, class, created, topic, payload FROM outbox WHERE seq = ?1")
            .map_err(sql)?;
        let mut sorted = seqs.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut out = Vec::with_capacity(sorted.len());
        for s in sorted {
            if let Some(r) = stmt.query_row([sql_seq(s)], super::store::record_of).optional().map_err(sql)? {
                out.push(r);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::queue::{Class, Queue, QueuePolicy, Record};

    #[test]
    fn a_hub_ack_deletes_its_ranges_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Queue::open(dir.path(), QueuePolicy::default()).unwrap();
        let rs: Vec<Record> = (0..10)
            .map(|i| {
                let seq = q.reserve_seq().unwrap();
                Record { seq, class: Class::Spot, created: i, topic: "t".into(), payload: vec![1; 10] }
            })
            .collect();
        q.append(&rs, &[]).unwrap();
        let s = |i: usize| rs[i].seq;
        assert_eq!(q.delete_acked(&[(s(0), s(2)), (s(5), s(5)), (s(9) + 10, u64::MAX)], 77).unwrap(), 4);
        let left: Vec<u64> = q.after(0, 100).unwrap().iter().map(|r| r.seq).collect();
        assert_eq!(left, [s(3), s(4), s(6), s(7), s(8), s(9)]);
        // Acknowledging again is harmless.
        assert_eq!(q.delete_acked(&[(s(0), s(2))], 78).unwrap(), 0);
        let st = q.stats().unwrap();
        assert_eq!((st.depth, st.delivered, st.last_hub_ack), (6, 4, Some(78)));
        assert_eq!(q.by_seq(&[s(4), s(0), s(9)]).unwrap(), [rs[4].clone(), rs[9].clone()]);
    }
}
