//! USB-serial devices: opened with `tokio-serial`'s builder (raw mode, exclusively: TIOCEXCL and
//! a lock, so two daemons never read the same meter), read and written through tokio's `AsyncFd`.
//!
//! Why not `tokio_serial::SerialStream`: it reads until the port says "would block", so every line
//! a device sends costs a second `read` that fails. A raw terminal's short read has emptied what
//! the kernel held, so [`SerialLink`] waits for the next readiness event instead of asking again
//! (what tokio does for TCP). Readiness that arrived since the read is not lost: tokio clears only
//! the readiness that the read saw.

use crate::profile::{FlowControl, Parity, SerialSettings};
use std::io::{Read, Write};
use std::path::Path;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An open serial port.
pub struct SerialLink {
    port: AsyncFd<mio_serial::SerialStream>,
}

pub fn open(path: &Path, baud: u32, s: &SerialSettings) -> std::io::Result<SerialLink> {
    let data_bits = match s.data_bits {
        5 => tokio_serial::DataBits::Five,
        6 => tokio_serial::DataBits::Six,
        7 => tokio_serial::DataBits::Seven,
        _ => tokio_serial::DataBits::Eight,
    };
    let parity = match s.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Odd => tokio_serial::Parity::Odd,
        Parity::Even => tokio_serial::Parity::Even,
    };
    let stop_bits = if s.stop_bits == 2 { tokio_serial::StopBits::Two } else { tokio_serial::StopBits::One };
    let flow = match s.flow_control {
        FlowControl::None => tokio_serial::FlowControl::None,
        FlowControl::Software => tokio_serial::FlowControl::Software,
        FlowControl::Hardware => tokio_serial::FlowControl::Hardware,
    };
    let builder = tokio_serial::new(path.to_string_lossy(), baud)
        .data_bits(data_bits)
        .parity(parity)
        .stop_bits(stop_bits)
        .flow_control(flow);
    let port = mio_serial::SerialStream::open(&builder)?;
    // SAFETY: the stream owns its descriptor until it is dropped, and always names the same one.
    let port = unsafe { AsyncFd::register(port) }?;
    Ok(SerialLink { port })
}

impl AsyncRead for SerialLink {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        loop {
            let mut guard = ready!(self.port.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let room = unfilled.len();
            match guard.try_io(|port| port.get_ref().read(unfilled)) {
                Ok(Ok(n)) => {
                    // Short: the terminal is empty now; the next bytes bring a new event.
                    if n > 0 && n < room {
                        guard.clear_ready();
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for SerialLink {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<std::io::Result<usize>> {
        loop {
            let mut guard = ready!(self.port.poll_write_ready(cx))?;
            match guard.try_io(|port| port.get_ref().write(bytes)) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    /// Nothing is buffered here: what `write` took is the kernel's to send. (Waiting until it is
    /// on the wire, `tcdrain`, would block the runtime's only thread for as long as that takes.)
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::PtyDevice;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn read_exactly(link: &mut SerialLink, n: usize, buf_len: usize) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = vec![0u8; buf_len];
        while got.len() < n {
            let k = tokio::time::timeout(Duration::from_secs(5), link.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("stalled after {} of {n} bytes", got.len()))
                .unwrap();
            assert!(k > 0, "end of stream after {} of {n} bytes", got.len());
            got.extend_from_slice(&buf[..k]);
        }
        got
    }

    #[tokio::test]
    async fn bytes_after_a_short_read_wake_the_reader_and_a_full_buffer_reads_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut dev = PtyDevice::create(&dir.path().join("tty")).unwrap();
        let mut link = open(&dev.path, 9600, &SerialSettings::default()).unwrap();
        // Line after line, each written after the last was read (a short read each: readiness is
        // cleared, and the next line must bring it back).
        for i in 0..50 {
            let line = format!("SYS={i}\n");
            dev.peer.send(line.as_bytes()).await.unwrap();
            assert_eq!(read_exactly(&mut link, line.len(), 64).await, line.as_bytes());
        }
        // More than the buffer holds: full reads keep reading without a new event.
        let big: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 26) as u8).collect();
        dev.peer.send(&big).await.unwrap();
        assert_eq!(read_exactly(&mut link, big.len(), 64).await, big);
        // And the other way.
        link.write_all(b"ACK\r\n").await.unwrap();
        link.flush().await.unwrap();
        let mut back = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), dev.peer.read(&mut back)).await.unwrap().unwrap();
        assert_eq!(&back[..n], b"ACK\r\n");
    }
}
