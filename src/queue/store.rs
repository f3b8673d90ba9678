//! The SQLite store behind [`Queue`] (see the module documentation for invariants and layout).

use super::{Class, QueuePolicy};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};

mod clock_steps;
mod eviction;
mod reservation;

pub use clock_steps::ClockStep;

use reservation::{Reservation, RESERVATION_FILE};

/// The store's format version (`meta.format`).
const FORMAT: i64 = 1;
/// How many `seq` numbers one reservation commits ahead.
const SEQ_BLOCK: u64 = 4096;
const FILE: &str = "queue.sqlite";

/// One queued message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub class: Class,
    /// Gateway time of the commit, µs since the epoch.
    pub created: i64,
    pub topic: String,
    /// The signed COSE_Sign1 bytes.
    pub payload: Vec<u8>,
}

/// What the queue holds and has done.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    /// Messages not yet acknowledged by the broker.
    pub depth: u64,
    pub bytes: u64,
    /// Commit time of the oldest undelivered message.
    pub oldest_created: Option<i64>,
    /// Messages acknowledged by the broker and deleted, since the store was created.
    pub delivered: u64,
    /// Messages evicted (waveform, media) since the store was created.
    pub dropped: u64,
    pub next_seq: u64,
    /// When a hub last acknowledged messages (hub delivery), µs since the epoch.
    pub last_hub_ack: Option<i64>,
}

/// Messages evicted at once, for one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub dev: String,
    pub class: Class,
    pub reason: &'static str,
    pub count: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("{path}: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error("{path}: the queue store is damaged ({detail}); it was not opened, and nothing in it was removed. Move it aside to start an empty queue, and keep it for recovery")]
    Corrupt { path: PathBuf, detail: String },
    #[error("{path}: queue format {found} is not the supported {FORMAT}")]
    Format { path: PathBuf, found: i64 },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: in use by another process (a spokegate already running with this state_dir? `spokegate status` asks it)")]
    InUse { path: PathBuf },
}

impl QueueError {
    /// True for a full disk or a file-size limit: the daemon keeps streaming live.
    pub fn is_full(&self) -> bool {
        matches!(self, QueueError::Sqlite { source: rusqlite::Error::SqliteFailure(e, _), .. }
            if e.code == rusqlite::ErrorCode::DiskFull || e.code == rusqlite::ErrorCode::SystemIoFailure)
    }
}

/// The durable outbox.
/// Sets a device's memory.
const MEMORY_UPSERT: &str =
    "INSERT INTO device_memory(dev, value) VALUES (?1, ?2) ON CONFLICT(dev) DO UPDATE SET value = ?2";

pub struct Queue {
    pub(super) conn: Connection,
    pub(super) path: PathBuf,
    policy: QueuePolicy,
    next_seq: u64,
    reserved_until: u64,
    reservation: Reservation,
    depth: u64,
    bytes: [u64; 3],
    pub(super) delivered: u64,
    dropped: u64,
    /// Commits written to the log and not yet synced to disk.
    unsynced: bool,
    /// The wall clock in this boot, so that queued ages follow the time that passed.
    clock: clock_steps::ClockWatch,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("path", &self.path).field("depth", &self.depth).finish_non_exhaustive()
    }
}

impl Queue {
    /// Opens (or creates) the queue in `state_dir`, checking its integrity first.
    pub fn open(state_dir: &Path, policy: QueuePolicy) -> Result<Queue, QueueError> {
        let path = state_dir.join(FILE);
        std::fs::create_dir_all(state_dir).map_err(|source| QueueError::Io { path: path.clone(), source })?;
        let conn = Connection::open(&path).map_err(|e| classify(&path, e))?;
        let sql = |e| classify(&path, e);
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sql)?;
        // The daemon holds the store for itself: no other process opens it while it runs (two
        // daemons on one state directory would hand out the same numbers), and no commit pays
        // for file locks. Set before the write-ahead log is first used, so it lives in memory.
        conn.query_row("PRAGMA locking_mode=EXCLUSIVE", [], |r| r.get::<_, String>(0)).map_err(sql)?;
        let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(sql)?;
        if check != "ok" {
            return Err(QueueError::Corrupt { path, detail: check });
        }
        conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)).map_err(sql)?;
        // Commits append to the write-ahead log without an fsync each; the log is synced where a
        // sync buys something: before anyone is told a commit is stored, and for the rest within
        // the policy's `sync_within` (see the module documentation, invariant 1).
        conn.execute_batch(
            "PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS outbox(seq INTEGER PRIMARY KEY, class INTEGER NOT NULL,
                 created INTEGER NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL);
             DROP INDEX IF EXISTS outbox_class;
             CREATE INDEX IF NOT EXISTS outbox_wave ON outbox(seq) WHERE class = 1;
             CREATE INDEX IF NOT EXISTS outbox_media ON outbox(seq) WHERE class = 2;
             CREATE TABLE IF NOT EXISTS device_memory(dev TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS consult(one INTEGER PRIMARY KEY CHECK (one = 1), consult TEXT,
                 since INTEGER NOT NULL, by TEXT NOT NULL, cmd TEXT, envelope BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS seen_command(hub TEXT NOT NULL, id TEXT NOT NULL, exp INTEGER NOT NULL,
                 PRIMARY KEY(hub, id)) WITHOUT ROWID;
             INSERT OR IGNORE INTO meta VALUES ('format', 1), ('delivered', 0), ('dropped', 0), ('last_hub_ack', 0);",
        )
        .map_err(sql)?;
        let meta = |key: &str| -> Result<i64, QueueError> {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).map_err(|e| classify(&path, e))
        };
        let format = meta("format")?;
        if format != FORMAT {
            return Err(QueueError::Format { path, found: format });
        }
        let (reservation, reserved) = Reservation::open(state_dir)?;
        let delivered = meta("delivered")? as u64;
        let dropped = meta("dropped")? as u64;
        let max_seq: Option<i64> = conn.query_row("SELECT max(seq) FROM outbox", [], |r| r.get(0)).map_err(sql)?;
        let mut bytes = [0u64; 3];
        let mut depth = 0;
        {
            let mut stmt =
                conn.prepare("SELECT class, count(*), sum(length(payload)) FROM outbox GROUP BY class").map_err(sql)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, Option<i64>>(2)?)))
                .map_err(sql)?;
            for row in rows {
                let (class, n, b) = row.map_err(sql)?;
                depth += n as u64;
                if let Some(c) = Class::from_i64(class) {
                    bytes[c as usize] += b.unwrap_or(0) as u64;
                }
            }
        }
        // Numbering resumes above every reservation and every committed row.
        let next_seq = reserved.max(max_seq.map(|m| m as u64 + 1).unwrap_or(1));
        let clock = clock_steps::ClockWatch::load(&conn, next_seq).map_err(sql)?;
        Ok(Queue {
            conn,
            path,
            policy,
            next_seq,
            reserved_until: next_seq,
            reservation,
            depth,
            bytes,
            delivered,
            dropped,
            unsynced: false,
            clock,
        })
    }

    /// Statistics of the store in `state_dir` without taking part in it (works while the daemon runs).
    pub fn inspect(state_dir: &Path) -> Result<QueueStats, QueueError> {
        let path = state_dir.join(FILE);
        let conn =
            Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| classify(&path, e))?;
        let sql = |e| classify(&path, e);
        // A running daemon holds the store for as long as it runs: no use waiting for it.
        conn.busy_timeout(std::time::Duration::ZERO).map_err(sql)?;
        let meta = |key: &str| -> Result<u64, QueueError> {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get::<_, i64>(0))
                .map(|v| v as u64)
                .map_err(|e| classify(&path, e))
        };
        let (depth, bytes, max_seq): (i64, Option<i64>, Option<i64>) = conn
            .query_row("SELECT count(*), sum(length(payload)), max(seq) FROM outbox", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(sql)?;
        let oldest = conn
            .query_row("SELECT created FROM outbox ORDER BY seq LIMIT 1", [], |r| r.get(0))
            .optional()
            .map_err(sql)?;
        Ok(QueueStats {
            depth: depth as u64,
            bytes: bytes.unwrap_or(0) as u64,
            oldest_created: oldest,
            delivered: meta("delivered")?,
            dropped: meta("dropped")?,
            last_hub_ack: Some(meta("last_hub_ack")? as i64).filter(|t| *t > 0),
            next_seq: std::fs::read_to_string(state_dir.join(RESERVATION_FILE))
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .unwrap_or(1)
                .max(max_seq.map(|m| m as u64 + 1).unwrap_or(1)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` in one transaction: committed when it succeeds, rolled back when it or the
    /// commit fails. `BEGIN` and `COMMIT` are prepared once (the hot path runs one per reading).
    pub(super) fn transaction<T>(
        &mut self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, QueueError> {
        let conn = &self.conn;
        let run = || {
            conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
            let value = work(conn)?;
            conn.prepare_cached("COMMIT")?.execute([])?;
            Ok(value)
        };
        run().map_err(|e| {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            classify(&self.path, e)
        })
    }

    /// The next `seq`. Numbers are reserved on disk a block at a time, so even a message that is
    /// published without being committed (a full disk) never shares its number with a later one.
    pub fn reserve_seq(&mut self) -> Result<u64, QueueError> {
        self.reserve_seqs(1)
    }

    /// Reserves `n` consecutive numbers; returns the first.
    pub fn reserve_seqs(&mut self, n: u64) -> Result<u64, QueueError> {
        let first = self.next_seq;
        let end = first + n; // one past the last
        if end > self.reserved_until {
            let until = end - 1 + SEQ_BLOCK;
            self.reservation.write(until)?;
            self.reserved_until = until;
        }
        self.next_seq = end;
        Ok(first)
    }

    /// Commits records, and device memories `(dev, value)`, in one transaction: all or none.
    pub fn append(&mut self, records: &[Record], memories: &[(String, String)]) -> Result<(), QueueError> {
        self.commit(records, memories, None)
    }

    /// Commits records, device memories and a new consult binding in one transaction, synced to
    /// disk before it returns (someone will be told they are stored).
    pub fn commit(
        &mut self,
        records: &[Record],
        memories: &[(String, String)],
        consult: Option<&super::StoredConsult>,
    ) -> Result<(), QueueError> {
        self.commit_unsynced(records, memories, consult)?;
        self.sync()
    }

    /// Commits in one transaction without waiting for the disk: the commit survives a crash of
    /// the process at once, a power cut once [`Queue::sync`] ran.
    pub fn commit_unsynced(
        &mut self,
        records: &[Record],
        memories: &[(String, String)],
        consult: Option<&super::StoredConsult>,
    ) -> Result<(), QueueError> {
        self.transaction(|tx| {
            let mut insert = tx.prepare_cached(
                "INSERT INTO outbox(seq, class, created, topic, payload) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for r in records {
                insert.execute(params![r.seq as i64, r.class as i64, r.created, r.topic, r.payload])?;
            }
            if !memories.is_empty() {
                let mut remember = tx.prepare_cached(MEMORY_UPSERT)?;
                for (dev, value) in memories {
                    remember.execute(params![dev, value])?;
                }
            }
            if let Some(c) = consult {
                c.save(tx)?;
            }
            Ok(())
        })?;
        self.unsynced = true;
        for r in records {
            self.depth += 1;
            self.bytes[r.class as usize] += r.payload.len() as u64;
        }
        Ok(())
    }

    /// Whether commits wait for a sync.
    pub fn unsynced(&self) -> bool {
        self.unsynced
    }

    /// Syncs every commit so far to disk (the write-ahead log, where they are).
    pub fn sync(&mut self) -> Result<(), QueueError> {
        if !self.unsynced {
            return Ok(());
        }
        let wal = self.path.with_extension("sqlite-wal");
        let io = |source| QueueError::Io { path: wal.clone(), source };
        // Opened each time: SQLite may recreate the log; an fsync through any descriptor of the
        // file flushes it.
        std::fs::File::open(&wal).and_then(|f| f.sync_data()).map_err(io)?;
        self.unsynced = false;
        Ok(())
    }

    /// Up to `limit` undelivered records with `seq > after`, in `seq` order.
    pub fn after(&mut self, after: u64, limit: usize) -> Result<Vec<Record>, QueueError> {
        let path = self.path.clone();
        let sql = |e| classify(&path, e);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, class, created, topic, payload FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(sql)?;
        let rows = stmt.query_map(params![after as i64, limit as i64], record_of).map_err(sql)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql)
    }

    /// Up to `limit` undelivered records of `class` with `seq > after`, in `seq` order (the
    /// uplink sends each class in order, and the classes interleaved).
    pub fn after_in_class(&mut self, class: Class, after: u64, limit: usize) -> Result<Vec<Record>, QueueError> {
        let path = self.path.clone();
        let sql = |e| classify(&path, e);
        // The class is written into the text: each partial index (waveform rows, media rows)
        // serves its literal class, and spot rows, the most frequent, pay for no index.
        let query = match class {
            Class::Spot => "SELECT seq, class, created, topic, payload FROM outbox WHERE seq > ?1 AND class = 0 ORDER BY seq LIMIT ?2",
            Class::Wave => "SELECT seq, class, created, topic, payload FROM outbox INDEXED BY outbox_wave WHERE class = 1 AND seq > ?1 ORDER BY seq LIMIT ?2",
            Class::Media => "SELECT seq, class, created, topic, payload FROM outbox INDEXED BY outbox_media WHERE class = 2 AND seq > ?1 ORDER BY seq LIMIT ?2",
        };
        let mut stmt = self.conn.prepare_cached(query).map_err(sql)?;
        let rows = stmt.query_map(params![after as i64, limit as i64], record_of).map_err(sql)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql)
    }

    /// Deletes delivered records (acknowledged by the broker) in one transaction.
    pub fn delete(&mut self, seqs: &[u64]) -> Result<(), QueueError> {
        if seqs.is_empty() {
            return Ok(());
        }
        // A delete lost in a power cut only means the message is sent again: never synced for
        // its own sake (the next sync covers it).
        self.delete_in_tx(seqs)
    }

    fn delete_in_tx(&mut self, seqs: &[u64]) -> Result<(), QueueError> {
        let ranges = runs(seqs);
        let gone = self.transaction(|tx| {
            let gone = delete_ranges(tx, &ranges)?;
            tx.prepare_cached("UPDATE meta SET value = value + ?1 WHERE key = 'delivered'")?
                .execute([gone.len() as i64])?;
            Ok(gone)
        })?;
        self.forget(&gone);
        self.delivered += gone.len() as u64;
        Ok(())
    }

    pub(super) fn forget(&mut self, rows: &[(i64, i64)]) {
        for (class, len) in rows {
            self.depth = self.depth.saturating_sub(1);
            if let Some(c) = Class::from_i64(*class) {
                self.bytes[c as usize] = self.bytes[c as usize].saturating_sub(*len as u64);
            }
        }
    }

    pub fn stats(&mut self) -> Result<QueueStats, QueueError> {
        let oldest = self
            .conn
            .query_row("SELECT created FROM outbox ORDER BY seq LIMIT 1", [], |r| r.get(0))
            .optional()
            .map_err(|e| classify(&self.path, e))?;
        let last_hub_ack: i64 = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'last_hub_ack'", [], |r| r.get(0))
            .map_err(|e| classify(&self.path, e))?;
        Ok(QueueStats {
            depth: self.depth,
            bytes: self.bytes.iter().sum(),
            oldest_created: oldest,
            delivered: self.delivered,
            dropped: self.dropped,
            next_seq: self.next_seq,
            last_hub_ack: Some(last_hub_ack).filter(|t| *t > 0),
        })
    }

    /// The last record a device delivered (RACP sequence number, meter record id), if any.
    pub fn device_memory(&self, dev: &str) -> Result<Option<String>, QueueError> {
        self.conn
            .query_row("SELECT value FROM device_memory WHERE dev = ?1", [dev], |r| r.get(0))
            .optional()
            .map_err(|e| classify(&self.path, e))
    }

    pub fn set_device_memory(&mut self, dev: &str, value: &str) -> Result<(), QueueError> {
        self.conn.execute(MEMORY_UPSERT, [dev, value]).map(|_| ()).map_err(|e| classify(&self.path, e))
    }
}

/// A queued record from a row `seq, class, created, topic, payload`.
pub(super) fn record_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
    Ok(Record {
        seq: r.get::<_, i64>(0)? as u64,
        class: Class::from_i64(r.get(1)?).unwrap_or(Class::Spot),
        created: r.get(2)?,
        topic: r.get(3)?,
        payload: r.get(4)?,
    })
}

/// A `seq` as SQLite stores it (rows never exceed `i64::MAX`).
pub(super) fn sql_seq(s: u64) -> i64 {
    i64::try_from(s).unwrap_or(i64::MAX)
}

/// The inclusive runs of consecutive numbers in `seqs` (any order, repeats allowed): messages
/// delivered in order delete as one range, not one statement each.
pub(super) fn runs(seqs: &[u64]) -> Vec<(u64, u64)> {
    let mut sorted = seqs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for s in sorted {
        match out.last_mut() {
            Some((_, b)) if b.checked_add(1) == Some(s) => *b = s,
            _ => out.push((s, s)),
        }
    }
    out
}

/// Deletes the queued messages in the inclusive `ranges`: the class and size of each one gone.
pub(super) fn delete_ranges(tx: &Connection, ranges: &[(u64, u64)]) -> rusqlite::Result<Vec<(i64, i64)>> {
    let mut gone = Vec::new();
    let mut del =
        tx.prepare_cached("DELETE FROM outbox WHERE seq BETWEEN ?1 AND ?2 RETURNING class, length(payload)")?;
    for (a, b) in ranges {
        for row in
            del.query_map(params![sql_seq(*a), sql_seq(*b)], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?
        {
            gone.push(row?);
        }
    }
    Ok(gone)
}

/// A damaged file is reported as such; everything else as a SQLite error.
pub(super) fn classify(path: &Path, e: rusqlite::Error) -> QueueError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        match f.code {
            rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt => {
                return QueueError::Corrupt { path: path.to_path_buf(), detail: e.to_string() }
            }
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                return QueueError::InUse { path: path.to_path_buf() }
            }
            _ => {}
        }
    }
    QueueError::Sqlite { path: path.to_path_buf(), source: e }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn record(q: &mut Queue, class: Class, created: i64, dev: &str) -> Record {
        let seq = q.reserve_seq().unwrap();
        Record { seq, class, created, topic: format!("spokegate/v1/s/g/dev/{dev}/obs"), payload: vec![seq as u8; 100] }
    }

    #[test]
    fn each_class_is_read_in_seq_order_and_waves_and_media_through_their_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Queue::open(dir.path(), QueuePolicy::default()).unwrap();
        let classes = [Class::Spot, Class::Wave, Class::Media, Class::Spot, Class::Media, Class::Wave, Class::Spot];
        let rs: Vec<Record> = classes.iter().map(|c| record(&mut q, *c, 1, "m")).collect();
        q.append(&rs, &[]).unwrap();
        for class in [Class::Spot, Class::Wave, Class::Media] {
            let want: Vec<u64> = rs.iter().filter(|r| r.class == class).map(|r| r.seq).collect();
            let got: Vec<u64> = q.after_in_class(class, 0, 100).unwrap().iter().map(|r| r.seq).collect();
            assert_eq!(got, want, "{class:?}");
            let after_first: Vec<u64> = q.after_in_class(class, want[0], 100).unwrap().iter().map(|r| r.seq).collect();
            assert_eq!(after_first, want[1..], "{class:?}");
        }
        for (class, index) in [(1, "outbox_wave"), (2, "outbox_media")] {
            let plan: String = q
                .conn
                .query_row(
                    &format!("EXPLAIN QUERY PLAN SELECT seq FROM outbox INDEXED BY {index} WHERE class = {class} AND seq > 0 ORDER BY seq LIMIT 5"),
                    [],
                    |r| r.get::<_, String>(3),
                )
                .unwrap();
            assert!(plan.contains(index), "class {class}: {plan}");
        }
    }

    #[test]
    fn the_store_is_held_by_one_process_while_it_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Queue::open(dir.path(), QueuePolicy::default()).unwrap();
        let r = record(&mut q, Class::Spot, 1, "m");
        q.append(&[r], &[]).unwrap();
        let err = Queue::inspect(dir.path()).unwrap_err();
        assert!(matches!(err, QueueError::InUse { .. }), "{err}");
        assert!(err.to_string().contains("spokegate status"), "{err}");
        drop(q);
        assert_eq!(Queue::inspect(dir.path()).unwrap().depth, 1);
    }

    #[test]
    fn delivered_numbers_delete_as_runs_of_consecutive_seqs() {
        assert_eq!(runs(&[]), []);
        assert_eq!(runs(&[7, 3, 4, 5, 9, 3, 10, 1]), [(1, 1), (3, 5), (7, 7), (9, 10)]);
        assert_eq!(runs(&[u64::MAX, u64::MAX - 1, 0]), [(0, 0), (u64::MAX - 1, u64::MAX)]);
    }

    #[test]
    fn records_come_back_in_seq_order_and_leave_only_when_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Queue::open(dir.path(), QueuePolicy::default()).unwrap();
        let rs: Vec<Record> = (0..5).map(|i| record(&mut q, Class::Spot, i, "m")).collect();
        q.append(&rs, &[]).unwrap();
        assert_eq!(q.after(0, 10).unwrap(), rs);
        assert_eq!(q.after(rs[2].seq, 10).unwrap(), rs[3..]);
        q.delete(&[rs[0].seq, rs[1].seq, 999_999]).unwrap();
        let st = q.stats().unwrap();
        assert_eq!((st.depth, st.delivered, st.oldest_created), (3, 2, Some(2)));
    }

    #[test]
    fn numbering_resumes_above_every_reservation_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Queue::open(dir.path(), QueuePolicy::default()).unwrap();
        let r = record(&mut q, Class::Spot, 0, "m");
        q.append(std::slice::from_ref(&r), &[]).unwrap();
        let unused = q.reserve_seq().unwrap(); // reserved, never committed
        drop(q);
        let mut q = Queue::open(dir.path(), QueuePolicy::default()).unwrap();
        assert!(q.reserve_seq().unwrap() > unused);
        assert_eq!(q.after(0, 10).unwrap(), [r]);
    }

    #[test]
    fn spot_readings_are_never_evicted_but_waves_past_cap_or_ttl_are() {
        let dir = tempfile::tempdir().unwrap();
        let policy = QueuePolicy {
            wave_max_bytes: 250,
            wave_ttl: Some(std::time::Duration::from_secs(1)),
            ..QueuePolicy::default()
        };
        let mut q = Queue::open(dir.path(), policy).unwrap();
        let spot: Vec<Record> = (0..3).map(|i| record(&mut q, Class::Spot, i, "m")).collect();
        let waves: Vec<Record> = (0..5).map(|_| record(&mut q, Class::Wave, 10_000_000, "ecg-1")).collect();
        q.append(&spot, &[]).unwrap();
        q.append(&waves, &[]).unwrap();
        let dropped = q.enforce(10_000_000).unwrap();
        assert_eq!(dropped, [Dropped { dev: "ecg-1".into(), class: Class::Wave, reason: "cap", count: 3, bytes: 300 }]);
        let left: Vec<u64> = q.after(0, 100).unwrap().iter().map(|r| r.seq).collect();
        assert_eq!(left, [spot[0].seq, spot[1].seq, spot[2].seq, waves[3].seq, waves[4].seq]);
        // An hour later the remaining waves are past their TTL; the spot readings, however old, stay.
        let dropped = q.enforce(3_600_000_000 + 10_000_000).unwrap();
        assert_eq!(dropped[0].reason, "ttl");
        assert_eq!(q.stats().unwrap().depth, 3);
        assert_eq!(q.stats().unwrap().dropped, 5);
    }

    #[test]
    fn a_damaged_store_is_refused_and_left_in_place() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut q = Queue::open(dir.path(), QueuePolicy::default()).unwrap();
            let rs: Vec<Record> = (0..200).map(|i| record(&mut q, Class::Spot, i, "m")).collect();
            q.append(&rs, &[]).unwrap();
        }
        let path = dir.path().join(FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let len = bytes.len();
        for b in &mut bytes[4096..len.min(4096 * 3)] {
            *b = 0x5a;
        }
        std::fs::write(&path, &bytes).unwrap();
        let err = Queue::open(dir.path(), QueuePolicy::default()).unwrap_err();
        assert!(matches!(err, QueueError::Corrupt { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap().len(), len, "the damaged file is kept");
        let garbage = tempfile::tempdir().unwrap();
        std::fs::write(
            garbage.path().join(FILE),
            b"this is not a database at all, not even close......................................................",
        )
        .unwrap();
        assert!(matches!(Queue::open(garbage.path(), QueuePolicy::default()), Err(QueueError::Corrupt { .. })));
    }

    /// A power cut while a commit is being written leaves a torn write-ahead log. Every cut point
    /// inside the last commit's frames must give back exactly the commits before it.
    #[test]
    fn a_torn_last_commit_is_discarded_and_every_earlier_commit_survives() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Queue::open(dir.path(), QueuePolicy::default()).unwrap();
        let first: Vec<Record> = (0..10).map(|i| record(&mut q, Class::Spot, i, "m")).collect();
        q.append(&first, &[]).unwrap();
        let wal_path = dir.path().join(format!("{FILE}-wal"));
        let wal_after_first = std::fs::metadata(&wal_path).unwrap().len() as usize;
        let second: Vec<Record> = (0..10).map(|i| record(&mut q, Class::Spot, 100 + i, "m")).collect();
        q.append(&second, &[]).unwrap();
        let wal = std::fs::read(&wal_path).unwrap();
        assert!(wal.len() > wal_after_first, "the second commit is in the log");
        let db = std::fs::read(dir.path().join(FILE)).unwrap();
        let reserved = std::fs::read(dir.path().join(RESERVATION_FILE)).unwrap();
        let copy_with_wal = |cut: usize| {
            let c = tempfile::tempdir().unwrap();
            std::fs::write(c.path().join(FILE), &db).unwrap();
            std::fs::write(c.path().join(format!("{FILE}-wal")), &wal[..cut]).unwrap();
            std::fs::write(c.path().join(RESERVATION_FILE), &reserved).unwrap();
            c
        };
        for cut in [wal_after_first + 1, wal_after_first + 100, (wal_after_first + wal.len()) / 2, wal.len() - 1] {
            let c = copy_with_wal(cut);
            let mut torn = Queue::open(c.path(), QueuePolicy::default()).unwrap();
            assert_eq!(torn.after(0, 100).unwrap(), first, "cut at {cut} of {}", wal.len());
            assert!(torn.reserve_seq().unwrap() > second.last().unwrap().seq, "numbers stay above the lost commit");
        }
        let whole = copy_with_wal(wal.len());
        let mut q2 = Queue::open(whole.path(), QueuePolicy::default()).unwrap();
        assert_eq!(q2.after(0, 100).unwrap(), [first, second].concat());
    }

    #[test]
    fn device_memory_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Queue::open(dir.path(), QueuePolicy::default()).unwrap();
        assert_eq!(q.device_memory("glucose-1").unwrap(), None);
        q.set_device_memory("glucose-1", "41").unwrap();
        q.set_device_memory("glucose-1", "42").unwrap();
        drop(q);
        let mut q = Queue::open(dir.path(), QueuePolicy::default()).unwrap();
        assert_eq!(q.device_memory("glucose-1").unwrap().as_deref(), Some("42"));
        // A record and the memory it advances are committed together.
        let seq = q.reserve_seqs(1).unwrap();
        let r = Record { seq, class: Class::Spot, created: 1, topic: "t".into(), payload: vec![1] };
        q.append(&[r], &[("glucose-1".into(), "43".into())]).unwrap();
        drop(q);
        let mut q = Queue::open(dir.path(), QueuePolicy::default()).unwrap();
        assert_eq!(q.device_memory("glucose-1").unwrap().as_deref(), Some("43"));
        assert_eq!(q.after(0, 10).unwrap().len(), 1);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Append(u8),
        /// Deliver at once the n-th oldest undelivered messages (each modulo depth; in any order,
        /// repeated, or delivered before: the queue deletes each once, in runs).
        Deliver(Vec<u8>),
        /// The process dies and the queue is opened again.
        Crash,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![4 => (1u8..20).prop_map(Op::Append), 3 => proptest::collection::vec(any::<u8>(), 1..8).prop_map(Op::Deliver), 1 => Just(Op::Crash)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn the_queue_behaves_like_an_in_memory_model(ops in proptest::collection::vec(op(), 1..40)) {
            let dir = tempfile::tempdir().unwrap();
            let mut q = Queue::open(dir.path(), QueuePolicy::default()).unwrap();
            let mut model: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
            let mut issued: Vec<u64> = Vec::new();
            let mut delivered = 0u64;
            for op in ops {
                match op {
                    Op::Append(n) => {
                        let rs: Vec<Record> = (0..n).map(|i| record(&mut q, Class::Spot, i64::from(i), "m")).collect();
                        q.append(&rs, &[]).unwrap();
                        for r in rs {
                            issued.push(r.seq);
                            model.insert(r.seq, r.payload);
                        }
                    }
                    Op::Deliver(ks) => {
                        let mut seqs: Vec<u64> =
                            ks.iter().filter_map(|k| model.keys().nth(usize::from(*k) % model.len().max(1)).copied()).collect();
                        // One delivered before, when there is one: deleting it again changes nothing.
                        seqs.extend(issued.iter().find(|s| !model.contains_key(s)));
                        q.delete(&seqs).unwrap();
                        for s in &seqs {
                            if model.remove(s).is_some() {
                                delivered += 1;
                            }
                        }
                    }
                    Op::Crash => {
                        drop(q);
                        q = Queue::open(dir.path(), QueuePolicy::default()).unwrap();
                    }
                }
                let got: BTreeMap<u64, Vec<u8>> = q.after(0, usize::MAX >> 1).unwrap().into_iter().map(|r| (r.seq, r.payload)).collect();
                prop_assert_eq!(&got, &model);
                let st = q.stats().unwrap();
                prop_assert_eq!(st.depth, model.len() as u64);
                prop_assert_eq!(st.bytes, model.values().map(|p| p.len() as u64).sum::<u64>());
                prop_assert_eq!(st.delivered, delivered);
            }
            prop_assert!(issued.windows(2).all(|w| w[0] < w[1]), "seq strictly increasing across crashes");
        }
    }
}
