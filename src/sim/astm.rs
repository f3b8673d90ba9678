//! A simulated ASTM E1381 sender (an analyser or meter uploading results) on a PTY, behaving as
//! the standard asks: ENQ and wait for ACK (NAK or silence: wait, try again), each frame waits for
//! its ACK and is sent again on NAK up to six times, silence past the timeout aborts with EOT, and
//! EOT ends the transfer. The test or demo says which frames are damaged on the way.

use super::PtyPeer;
use crate::framing::astm_bytes::{ACK, ENQ, EOT, NAK};
use std::io;
use std::time::Duration;

/// How a transfer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// Every frame acknowledged; `naks` were answered on the way.
    Delivered { naks: usize },
    /// The receiver never acknowledged the ENQ.
    NoAnswer,
    /// A frame was not acknowledged (six NAKs, or silence): the sender gave up with EOT.
    Aborted { frame: usize },
}

/// An E1381 sender. `timeout` is the standard's 15 s, shortened for tests.
pub struct AstmSender {
    pub timeout: Duration,
}

impl Default for AstmSender {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(15) }
    }
}

pub use crate::framing::astm_bytes::frames;

/// The records of a recorded E1381 session (ENQ, frames, EOT), to send again: the frames' texts
/// joined (a record may continue across ETB frames) and cut at CR.
pub fn session_records(session: &[u8]) -> Vec<Vec<u8>> {
    use crate::framing::astm_bytes::{ETB, ETX, STX};
    let text: Vec<u8> = session
        .split(|&b| b == STX)
        .skip(1)
        .filter_map(|f| f.get(1..f.iter().position(|&b| b == ETB || b == ETX)?))
        .flatten()
        .copied()
        .collect();
    text.split(|&b| b == b'\r').filter(|r| !r.is_empty()).map(<[u8]>::to_vec).collect()
}

impl AstmSender {
    /// Waits for the receiver's one-byte answer; stray bytes other than ACK/NAK/EOT are skipped.
    async fn answer(&self, peer: &mut PtyPeer) -> io::Result<Option<u8>> {
        let mut b = [0u8; 1];
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            match tokio::time::timeout_at(deadline, peer.read(&mut b)).await {
                Err(_) => return Ok(None),
                Ok(Ok(0)) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(Ok(_)) if matches!(b[0], ACK | NAK | EOT) => return Ok(Some(b[0])),
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    /// Sends one message. `damage(frame, attempt)` says whether that attempt of that frame goes
    /// out with a corrupted byte (as line noise does); `before(frame)` is written ahead of a
    /// frame's first attempt (noise between frames).
    pub async fn send(
        &self,
        peer: &mut PtyPeer,
        frames: &[Vec<u8>],
        mut damage: impl FnMut(usize, usize) -> bool,
        mut before: impl FnMut(usize) -> Vec<u8>,
    ) -> io::Result<Sent> {
        self.forget_stale(peer).await?;
        peer.send(&[ENQ]).await?;
        if self.answer(peer).await? != Some(ACK) {
            peer.send(&[EOT]).await?;
            return Ok(Sent::NoAnswer);
        }
        let mut naks = 0;
        for (i, f) in frames.iter().enumerate() {
            let noise = before(i);
            if !noise.is_empty() {
                peer.send(&noise).await?;
            }
            let mut attempt = 0;
            loop {
                if attempt == 6 {
                    peer.send(&[EOT]).await?;
                    return Ok(Sent::Aborted { frame: i });
                }
                let mut bytes = f.clone();
                if damage(i, attempt) {
                    let k = 2 + attempt % (bytes.len() - 7).max(1);
                    bytes[k] ^= 0x20;
                }
                peer.send(&bytes).await?;
                attempt += 1;
                match self.answer(peer).await? {
                    Some(ACK) | Some(EOT) => break,
                    Some(_) => naks += 1,
                    None => {
                        peer.send(&[EOT]).await?;
                        return Ok(Sent::Aborted { frame: i });
                    }
                }
            }
        }
        peer.send(&[EOT]).await?;
        Ok(Sent::Delivered { naks })
    }

    /// Throws away answers that arrived after the sender stopped waiting (a late ACK), as a
    /// sender clears its input before a new ENQ.
    async fn forget_stale(&self, peer: &mut PtyPeer) -> io::Result<()> {
        let mut b = [0u8; 64];
        while let Ok(r) = tokio::time::timeout(Duration::from_millis(50), peer.read(&mut b)).await {
            if r? == 0 {
                break;
            }
        }
        Ok(())
    }

    /// Receives one message as an instrument does when the host sends (a host query): waits for
    /// ENQ, answers ACK, checks and acknowledges each frame, until EOT. Returns the records.
    pub async fn receive(&self, peer: &mut PtyPeer, wait: Duration) -> io::Result<Vec<Vec<u8>>> {
        use crate::framing::astm_bytes::{checksum, ETB, ETX, STX};
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = Vec::new();
        let mut text = Vec::new();
        let mut started = false;
        let mut b = [0u8; 256];
        loop {
            let n = tokio::time::timeout_at(deadline, peer.read(&mut b))
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
            buf.extend_from_slice(&b[..n]);
            while let Some(&first) = buf.first() {
                match first {
                    ENQ => {
                        buf.remove(0);
                        started = true;
                        peer.send(&[ACK]).await?;
                    }
                    EOT if started => {
                        let records = text.split(|&c| c == b'\r').filter(|r: &&[u8]| !r.is_empty()).map(<[u8]>::to_vec);
                        return Ok(records.collect());
                    }
                    STX if started => {
                        let Some(end) = buf.iter().position(|&c| c == ETX || c == ETB) else { break };
                        if buf.len() < end + 5 {
                            break;
                        }
                        let good = checksum(&buf[1..=end]) == [buf[end + 1], buf[end + 2]];
                        if good {
                            text.extend_from_slice(&buf[2..end]);
                        }
                        buf.drain(..end + 5);
                        peer.send(&[if good { ACK } else { NAK }]).await?;
                    }
                    _ => {
                        buf.remove(0);
                    }
                }
            }
        }
    }

    /// Sends the first `upto` frames of a message, then EOT: a sender that stops mid-message.
    pub async fn send_partial(&self, peer: &mut PtyPeer, frames: &[Vec<u8>], upto: usize) -> io::Result<()> {
        self.forget_stale(peer).await?;
        peer.send(&[ENQ]).await?;
        if self.answer(peer).await? != Some(ACK) {
            return peer.send(&[EOT]).await;
        }
        for f in &frames[..upto.min(frames.len())] {
            peer.send(f).await?;
            if self.answer(peer).await? != Some(ACK) {
                break;
            }
        }
        peer.send(&[EOT]).await
    }
}
