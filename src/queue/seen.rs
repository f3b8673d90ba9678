//! Hub commands already executed (`seen_command` table): a command is executed at most once per
//! (`hub`, `id`). Ids are kept until the command's `exp` has passed (after that the time window
//! refuses it anyway), across restarts.

use super::{Queue, QueueError};
use rusqlite::params;

impl Queue {
    /// Records (`hub`, `id`) valid until `exp`; false when it was seen before. Forgets ids whose
    /// `exp` is before `now`. Committed (and synced) before the command runs.
    pub fn first_command(&mut self, hub: &str, id: &str, exp: i64, now: i64) -> Result<bool, QueueError> {
        let inserted = self.transaction(|tx| {
            tx.execute("DELETE FROM seen_command WHERE exp < ?1", [now])?;
            tx.execute("INSERT OR IGNORE INTO seen_command(hub, id, exp) VALUES (?1, ?2, ?3)", params![hub, id, exp])
        })?;
        Ok(inserted == 1)
    }
}

#[cfg(test)]
mod tests {
    use crate::queue::{Queue, QueuePolicy};

    #[test]
    fn a_command_id_runs_once_per_hub_until_it_expires_even_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Queue::open(dir.path(), QueuePolicy::default()).unwrap();
        assert!(q.first_command("hub-a", "c1", 100, 0).unwrap());
        assert!(!q.first_command("hub-a", "c1", 100, 10).unwrap());
        assert!(q.first_command("hub-b", "c1", 100, 10).unwrap(), "ids are per hub");
        drop(q);
        let mut q = Queue::open(dir.path(), QueuePolicy::default()).unwrap();
        assert!(!q.first_command("hub-a", "c1", 100, 20).unwrap(), "remembered across a restart");
        // Once expired the id is forgotten (the time window refuses the command by then).
        assert!(q.first_command("hub-a", "c1", 300, 200).unwrap());
    }
}
