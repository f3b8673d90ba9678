//! The consult binding in the store (`consult` table, one row): committed in the same transaction
//! as the signed `consult` body it produced, so a restart resumes the binding and re-publishes
//! exactly what was signed.

use super::store::classify;
use super::{Queue, QueueError};
use rusqlite::{params, OptionalExtension};

/// The consult binding as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConsult {
    /// The consult open, `None` after it ended.
    pub consult: Option<String>,
    pub since: i64,
    /// `hub` or `operator`.
    pub by: String,
    pub cmd: Option<String>,
    /// The signed `consult` body (COSE_Sign1) that announced it.
    pub envelope: Vec<u8>,
}

impl StoredConsult {
    pub(super) fn save(&self, tx: &rusqlite::Connection) -> rusqlite::Result<()> {
        tx.execute(
            "INSERT INTO consult(one, consult, since, by, cmd, envelope) VALUES (1, ?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(one) DO UPDATE SET consult = ?1, since = ?2, by = ?3, cmd = ?4, envelope = ?5",
            params![self.consult, self.since, self.by, self.cmd, self.envelope],
        )
        .map(|_| ())
    }
}

impl Queue {
    /// The last consult binding committed, if there ever was one.
    pub fn consult(&self) -> Result<Option<StoredConsult>, QueueError> {
        self.conn
            .query_row("SELECT consult, since, by, cmd, envelope FROM consult WHERE one = 1", [], |r| {
                Ok(StoredConsult {
                    consult: r.get(0)?,
                    since: r.get(1)?,
                    by: r.get(2)?,
                    cmd: r.get(3)?,
                    envelope: r.get(4)?,
                })
            })
            .optional()
            .map_err(|e| classify(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{Class, QueuePolicy, Record};

    #[test]
    fn the_binding_is_committed_with_its_body_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Queue::open(dir.path(), QueuePolicy::default()).unwrap();
        assert_eq!(q.consult().unwrap(), None);
        let seq = q.reserve_seq().unwrap();
        let r = Record { seq, class: Class::Spot, created: 1, topic: "t/consult".into(), payload: vec![7; 9] };
        let c = StoredConsult {
            consult: Some("C-1".into()),
            since: 5,
            by: "operator".into(),
            cmd: None,
            envelope: vec![7; 9],
        };
        q.commit(&[r], &[], Some(&c)).unwrap();
        let ended = StoredConsult { consult: None, since: 9, by: "hub".into(), cmd: Some("x".into()), ..c.clone() };
        drop(q);
        let mut q = Queue::open(dir.path(), QueuePolicy::default()).unwrap();
        assert_eq!(q.consult().unwrap(), Some(c));
        q.commit(&[], &[], Some(&ended)).unwrap();
        assert_eq!(q.consult().unwrap(), Some(ended));
    }
}
