//! A pseudo-terminal pair standing in for a serial device: the daemon opens `path` (a symlink that
//! can be re-pointed, as `/dev/serial/by-id/...` is when a USB adapter is replugged), and the
//! simulator writes and reads on the other end.

use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_serial::{SerialPort, SerialStream};

/// The device end of a PTY pair.
pub struct PtyDevice {
    /// The terminal side the simulator writes to.
    pub peer: PtyPeer,
    /// The stable path the daemon is configured with (a symlink to `/dev/pts/N`).
    pub path: PathBuf,
}

/// The simulator's side of the line.
pub struct PtyPeer {
    master: SerialStream,
    /// The slave side, held open so bytes written before the daemon opens the port are kept.
    _slave: SerialStream,
}

impl PtyDevice {
    /// Creates a PTY and points `link` at its slave side (replacing an earlier link).
    pub fn create(link: &Path) -> io::Result<Self> {
        let (master, slave) = SerialStream::pair().map_err(io::Error::other)?;
        // Not inherited by processes started meanwhile (a daemon under test would otherwise hold
        // other simulators' lines open after they are dropped).
        for fd in [master.as_raw_fd(), slave.as_raw_fd()] {
            // SAFETY: fcntl on descriptors these streams own.
            if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        let target = slave.name().ok_or_else(|| io::Error::other("PTY has no name"))?;
        let tmp = link.with_extension("new");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target, &tmp)?;
        std::fs::rename(&tmp, link)?;
        Ok(Self { peer: PtyPeer { master, _slave: slave }, path: link.to_path_buf() })
    }
}

impl PtyPeer {
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.master.write_all(bytes).await?;
        self.master.flush().await
    }

    /// Reads whatever the daemon wrote back (ACKs).
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.master.read(buf).await
    }
}

/// The reading half of a split [`PtyPeer`].
pub struct PtyReader(tokio::io::ReadHalf<SerialStream>);

/// The writing half of a split [`PtyPeer`] (it keeps the slave side open).
pub struct PtyWriter {
    half: tokio::io::WriteHalf<SerialStream>,
    _slave: SerialStream,
}

impl PtyPeer {
    /// Reading and writing apart, so a simulator can answer while it sends.
    pub fn split(self) -> (PtyReader, PtyWriter) {
        let (r, w) = tokio::io::split(self.master);
        (PtyReader(r), PtyWriter { half: w, _slave: self._slave })
    }
}

impl PtyReader {
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).await
    }
}

impl PtyWriter {
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.half.write_all(bytes).await?;
        self.half.flush().await
    }
}
