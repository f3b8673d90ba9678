//! The durable outbox between signing and MQTT: nothing a device handed over is lost when the
//! uplink, the broker or the power drops.
//!
//! # Invariants
//!
//! 1. A message is signed and **committed** (SQLite transaction in WAL mode) before it is first
//!    published, and the commit is **synced to disk before anyone is told it is stored**: a
//!    device's acknowledgement (HL7 ACK), a device memory (RACP, meter cursors), an operator's or
//!    hub's receipt. Commits nobody waits for (a reading from a device that does not retransmit) are
//!    synced together, at most `sync_ms` (default 200 ms) after they were written: a crash of the
//!    process loses none of them, a power cut at most that last moment of such readings, which the
//!    device would not have sent again anyway. `sync_ms = 0` syncs every commit.
//! 2. A message is deleted only once it is delivered: under broker delivery (the default) after
//!    the broker's PUBACK for it (the MQTT link maps packet ids to `seq`; a `publish()` that
//!    returned means queued in the client, not delivered); under hub delivery only after a hub
//!    whose key the gateway obeys acknowledged its `seq` with a signed `ack` (the PUBACK then
//!    deletes nothing). A message moves written -> sent -> broker-acknowledged -> hub-acknowledged;
//!    only the first and the last are on disk (a row is in `outbox` until it is delivered), the
//!    middle two are the uplink's memory of one connection, so after a restart or a lost
//!    connection every undelivered row is sent again (same bytes, same `seq`).
//! 3. `seq` is strictly increasing and never reused: numbers are reserved 4096 at a time in
//!    `seq.reserved` (rewritten in place and synced before a number of the block is used; in-place
//!    rewrites work on a full disk too), and a restart resumes above the reservation and above
//!    every committed row. Numbers reserved and not used leave gaps, never repeats.
//! 4. Each class (spot, wave, media) is published in `seq` order, on every connection starting
//!    from its oldest undelivered message; per device and stream the hub therefore receives them
//!    in order. The classes interleave: spot readings go first, waveform chunks next, media parts
//!    with what capacity is left (see `mqtt::lanes`), so a large image never holds back the ECG.
//! 5. Spot readings (`obs`, `event`) are never evicted. Waveform and media rows may be evicted,
//!    oldest first, past their class's byte cap or TTL, and every eviction is counted and reported.
//! 6. A store that fails its integrity check is refused with an error, never emptied or recreated.
//!
//! # On-disk layout (`<state_dir>/queue.sqlite`, plus SQLite's `-wal` and `-shm` files)
//!
//! ```sql
//! meta(key TEXT PRIMARY KEY, value INTEGER)    -- format = 1, delivered, dropped
//! outbox(seq INTEGER PRIMARY KEY,              -- the contract `seq`; also the send order
//!        class INTEGER,                        -- 0 spot (obs, event), 1 wave, 2 media
//!        created INTEGER,                      -- gateway time of the commit, µs since the epoch
//!        topic TEXT, payload BLOB)             -- the MQTT topic and the signed COSE_Sign1 bytes
//! outbox_wave ON outbox(seq) WHERE class = 1    -- waveform rows read in order, and media rows
//! outbox_media ON outbox(seq) WHERE class = 2   -- (spot rows, the most frequent, are read by seq)
//! device_memory(dev TEXT PRIMARY KEY, value TEXT)  -- per device: the last record delivered
//!                                                  -- (RACP, meter memory), so a restart fetches only newer
//! consult(one = 1, consult, since, by, cmd,        -- the consult binding and the signed `consult` body
//!         envelope BLOB)                           -- that announced it (committed together)
//! seen_command(hub, id, exp)                       -- hub commands executed, kept until `exp` (no replay)
//! ```
//!
//! `meta` also holds `last_hub_ack`, the time of the last hub acknowledgement (µs), and this
//! boot's clock (`clock_boot`, `clock_from_seq`, `clock_offset`): `created` follows the time that
//! passed when the wall clock is stepped (see `store/clock_steps.rs`).
//!
//! and `<state_dir>/seq.reserved`: the decimal end of the current `seq` reservation, fixed width.
//!
//! Commits are grouped: the sealer appends whatever readings are waiting in one transaction, so
//! one fsync covers many messages. Deletes after PUBACK are grouped too; a delete lost in a crash
//! only means the message is sent again (at-least-once; the hub de-duplicates on (`gw`, `seq`)).

mod consult;
mod hub_ack;
mod policy;
mod seen;
mod store;

pub use policy::{Class, QueuePolicy};

use std::sync::{Mutex, MutexGuard, TryLockError};

/// The queue, shared by the sealer and the uplink. A panic elsewhere never makes it unusable.
pub fn lock(queue: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    queue.lock().unwrap_or_else(|p| p.into_inner())
}

/// The queue if no one else holds it (a commit runs on another thread): the runtime thread never
/// waits for the disk.
pub fn try_lock(queue: &Mutex<Queue>) -> Option<MutexGuard<'_, Queue>> {
    match queue.try_lock() {
        Ok(q) => Some(q),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}
pub use consult::StoredConsult;
pub use store::{ClockStep, Dropped, Queue, QueueError, QueueStats, Record};
