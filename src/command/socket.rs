//! The operator's door on the spoke PC: a Unix socket in the state directory (`control.sock`,
//! owner-only permissions), one JSON request per connection and JSON reply lines back:
//!
//! ```text
//! -> {"name":"consult.start","args":{"consult":"C-1"}}
//! <- {"state":"done","code":"ok","text":"readings are bound to consult C-1","data":{"consult":"C-1"}}
//! ```
//!
//! Replies end with a final state (`done`, `failed`, `refused`). `spokegate consult ...`,
//! `spokegate capture` and `spokegate fetch` are clients.

use super::{Args, LocalRequest, ReplyLine};
use crate::shutdown::Shutdown;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

/// The longest request line accepted.
const MAX_REQUEST: usize = 64 * 1024;

/// The socket of the daemon whose state directory is `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("control.sock")
}

/// One request line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub name: String,
    #[serde(default)]
    pub args: Args,
}

/// Binds the socket with mode 0600: bound under a temporary name, restricted, then renamed into
/// place, so it is never reachable by others.
pub fn bind(state_dir: &Path) -> std::io::Result<UnixListener> {
    let final_path = path(state_dir);
    let tmp = state_dir.join(format!("control.sock.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, &final_path)?;
    Ok(listener)
}

/// Serves operator requests until shutdown; removes the socket at the end.
pub async fn serve(
    listener: UnixListener,
    state_dir: PathBuf,
    requests: mpsc::Sender<LocalRequest>,
    mut shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            c = listener.accept() => match c {
                Ok((stream, _)) => {
                    tokio::spawn(session(stream, requests.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.triggered() => break,
        }
    }
    let _ = std::fs::remove_file(path(&state_dir));
}

async fn session(stream: UnixStream, requests: mpsc::Sender<LocalRequest>) {
    let (read, mut write) = stream.into_split();
    let mut line = Vec::new();
    let mut reader = BufReader::new(read).take(MAX_REQUEST as u64);
    let answer = |state, code: &str, text: String| ReplyLine { state, code: code.into(), text, data: None };
    let refused = crate::model::ReplyState::Refused;
    let first = match reader.read_until(b'\n', &mut line).await {
        Ok(_) => match serde_json::from_slice::<Request>(&line) {
            Ok(r) => Ok(r),
            Err(e) => Err(answer(refused, "malformed", format!("not a request line: {e}"))),
        },
        Err(e) => Err(answer(refused, "malformed", e.to_string())),
    };
    let (tx, mut rx) = mpsc::channel(8);
    match first {
        Ok(r) => {
            if requests.send(LocalRequest { name: r.name, args: r.args, replies: tx }).await.is_err() {
                let _ = write_line(&mut write, &answer(refused, "stopping", "the gateway is stopping".into())).await;
                return;
            }
        }
        Err(a) => {
            let _ = write_line(&mut write, &a).await;
            return;
        }
    }
    while let Some(reply) = rx.recv().await {
        let last = reply.state.is_final();
        if write_line(&mut write, &reply).await.is_err() || last {
            break;
        }
    }
}

async fn write_line(w: &mut tokio::net::unix::OwnedWriteHalf, r: &ReplyLine) -> std::io::Result<()> {
    let mut text = serde_json::to_vec(r).map_err(std::io::Error::other)?;
    text.push(b'\n');
    w.write_all(&text).await
}

/// Sends one request to the daemon and calls `each` with every reply until the final one, which
/// it returns.
pub async fn request(
    state_dir: &Path,
    name: &str,
    args: Args,
    mut each: impl FnMut(&ReplyLine),
) -> std::io::Result<ReplyLine> {
    let stream = UnixStream::connect(path(state_dir)).await?;
    let (read, mut write) = stream.into_split();
    let mut text = serde_json::to_vec(&Request { name: name.into(), args }).map_err(std::io::Error::other)?;
    text.push(b'\n');
    write.write_all(&text).await?;
    let mut lines = BufReader::new(read).lines();
    while let Some(l) = lines.next_line().await? {
        let reply: ReplyLine = serde_json::from_str(&l).map_err(std::io::Error::other)?;
        each(&reply);
        if reply.state.is_final() {
            return Ok(reply);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "the daemon closed the connection without a final reply",
    ))
}
