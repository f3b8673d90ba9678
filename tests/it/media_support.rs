//! What the image tests share: the gateway's rate cap, the real `spokegate watch --record` and
//! its lines, the images it wrote, and the image device's connected state.

use super::harness::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

/// Caps the gateway's bytes per second to the broker (`[mqtt] max_bytes_per_sec`).
pub fn limit_rate(config: &Path, bytes_per_sec: u64) {
    let text = std::fs::read_to_string(config).unwrap();
    let text = text.replacen("[mqtt]\nurl", &format!("[mqtt]\nmax_bytes_per_sec = {bytes_per_sec}\nurl"), 1);
    std::fs::write(config, text).unwrap();
}

/// The real `spokegate watch --record DIR` (human lines), and its lines once it saw the gateway.
pub async fn watch(
    port: u16,
    gw: &GatewayDir,
    record: &Path,
    hub_key: Option<&HubKey>,
) -> (tokio::process::Child, tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_spokegate"));
    cmd.args(["watch", "--url", &format!("mqtt://127.0.0.1:{port}"), "--key"]).arg(gw.jwk_file());
    if let Some(h) = hub_key {
        cmd.arg("--hub-key").arg(&h.path);
    }
    let mut child = cmd.arg("--record").arg(record).stdout(Stdio::piped()).kill_on_drop(true).spawn().unwrap();
    let lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// Reads lines until one satisfies `pred`.
pub async fn until_line(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    what: &str,
    patience: Duration,
    pred: impl Fn(&str) -> bool,
) -> String {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{what}: not seen in {patience:?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("{what}: watch ended"));
        if pred(&line) {
            return line;
        }
    }
}

/// The images the hub wrote (path -> bytes), once there are `n`.
pub async fn images_at_hub(record: &Path, n: usize, patience: Duration) -> BTreeMap<PathBuf, Vec<u8>> {
    let dir = record.join("media/test-site/gw-test/scope");
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let found: BTreeMap<PathBuf, Vec<u8>> = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
                    .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
                    .collect()
            })
            .unwrap_or_default();
        if found.len() >= n {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "{n} images at the hub in {patience:?}; found {}", found.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the device's retained state says `connected`.
pub async fn until_connected(sub: &mut Subscriber) {
    sub.until("scope connected", |seen| {
        seen.iter()
            .any(|(t, p)| t.ends_with("/dev/scope/state") && String::from_utf8_lossy(p).contains("\"connected\""))
    })
    .await;
}
