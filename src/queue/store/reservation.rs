//! The `seq` reservation file: numbers are reserved a block at a time and the mark is synced
//! before a number of the block is used, so a restart never reuses one (invariant 3).

use super::QueueError;
use std::path::{Path, PathBuf};

/// The `seq` reservation: a small file rewritten in place, so that it can still be updated when
/// the disk is full (overwriting allocated bytes needs no new space) and messages streamed live
/// then still get numbers that are never reused.
pub(super) const RESERVATION_FILE: &str = "seq.reserved";
const RESERVATION_LEN: usize = 24;

/// The reserved-until mark on disk.
#[derive(Debug)]
pub(super) struct Reservation {
    file: std::fs::File,
    path: PathBuf,
}

impl Reservation {
    pub(super) fn open(state_dir: &Path) -> Result<(Reservation, u64), QueueError> {
        use std::io::Read;
        let path = state_dir.join(RESERVATION_FILE);
        let io = |source| QueueError::Io { path: path.clone(), source };
        let mut file =
            std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(io)?;
        let value = match text.trim() {
            "" => 1,
            t => t
                .parse::<u64>()
                .map_err(|_| QueueError::Corrupt { path: path.clone(), detail: format!("`{t}` is not a number") })?,
        };
        let r = Reservation { file, path };
        r.write(value)?;
        Ok((r, value))
    }

    pub(super) fn write(&self, until: u64) -> Result<(), QueueError> {
        use std::os::unix::fs::FileExt;
        let text = format!("{until:0width$}\n", width = RESERVATION_LEN - 1);
        self.file
            .write_all_at(text.as_bytes(), 0)
            .and_then(|()| self.file.sync_data())
            .map_err(|source| QueueError::Io { path: self.path.clone(), source })
    }
}
