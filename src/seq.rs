//! `seq`: per gateway, strictly increasing, never reused, also across restarts and power cuts.
//!
//! The allocator hands out numbers from a block reserved on disk: before the first number of a
//! block is used, the block's end is written to `<state_dir>/seq` (write to a temporary file, fsync,
//! rename, fsync the directory). After a crash the next start begins at the last reserved end, so a
//! number is never issued twice; numbers reserved but not used are skipped (hubs see a gap in `seq`,
//! never a repeat). Gaps are therefore not a sign of loss; per-stream `i0` and the durable queue are.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How many numbers one disk write reserves.
pub const BLOCK: u64 = 4096;

#[derive(Debug)]
pub struct SeqAllocator {
    path: PathBuf,
    next: u64,
    reserved_end: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SeqError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a sequence number file (holds `{content}`); refusing to guess, which could reuse numbers")]
    Corrupt { path: PathBuf, content: String },
}

impl SeqAllocator {
    /// Opens (or creates) the sequence file in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Self, SeqError> {
        let path = state_dir.join("seq");
        let io = |source| SeqError::Io {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(state_dir).map_err(io)?;
        let next = match fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<u64>().map_err(|_| SeqError::Corrupt {
                path: path.clone(),
                content: text.chars().take(40).collect(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 1,
            Err(e) => return Err(io(e)),
        };
        Ok(Self {
            path,
            next,
            reserved_end: next,
        })
    }

    /// The next number. Reserves a new block on disk when the current one is used up.
    pub fn allocate(&mut self) -> Result<u64, SeqError> {
        if self.next >= self.reserved_end {
            let end = self.next + BLOCK;
            self.persist(end)?;
            self.reserved_end = end;
        }
        let n = self.next;
        self.next += 1;
        Ok(n)
    }

    fn persist(&self, end: u64) -> Result<(), SeqError> {
        let io = |source| SeqError::Io {
            path: self.path.clone(),
            source,
        };
        let tmp = self.path.with_extension("tmp");
        let mut f = fs::File::create(&tmp).map_err(io)?;
        f.write_all(format!("{end}\n").as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(io)?;
        fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_increase_and_never_repeat_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut issued = Vec::new();
        for run in 0..3 {
            let mut a = SeqAllocator::open(dir.path()).unwrap();
            for _ in 0..(10 + run * BLOCK as usize) {
                issued.push(a.allocate().unwrap());
            }
            // dropped without any shutdown step, as in a crash
        }
        assert!(issued.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(issued[0], 1);
    }

    #[test]
    fn a_corrupt_sequence_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("seq"), "garbage").unwrap();
        assert!(matches!(
            SeqAllocator::open(dir.path()),
            Err(SeqError::Corrupt { .. })
        ));
    }
}
