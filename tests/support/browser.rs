//! A headless Debian Chromium driven over WebDriver (chromedriver, fantoccini), shared by the
//! gateway's page tests and the hub's view tests (included with `#[path]`).

use fantoccini::ClientBuilder;
use spokegate::sim::KillOnDrop;
use std::time::Duration;

/// How long a browser may take to show what a test waits for.
const BROWSER_PATIENCE: Duration = Duration::from_secs(30);

/// chromedriver on a free port, and a headless Chromium session `width`x`height` through it.
pub async fn browser(width: u32, height: u32) -> (KillOnDrop, fantoccini::Client) {
    let port = spokegate::sim::broker::free_port().unwrap();
    let driver = KillOnDrop(
        std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver (.ci/setup installs Debian's chromium-driver)"),
    );
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--autoplay-policy=no-user-gesture-required",
                     format!("--window-size={width},{height}"),
                     format!("--user-data-dir={}", tempfile::tempdir().unwrap().keep().display())]
        }),
    );
    let deadline = tokio::time::Instant::now() + BROWSER_PATIENCE;
    loop {
        match ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => return (driver, c),
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "no WebDriver session: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The value of the page's JS expression `expr` once `pred` holds for it.
pub async fn page_value(
    c: &fantoccini::Client,
    expr: &str,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + BROWSER_PATIENCE;
    loop {
        let v = c.execute(&format!("return {expr}"), vec![]).await.unwrap();
        if pred(&v) {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: the page shows {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes a screenshot to `target/test-output/{folder}/{name}.png` (of the workspace).
pub async fn screenshot(c: &fantoccini::Client, folder: &str, name: &str) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = if root.join("Cargo.lock").exists() { root.to_path_buf() } else { root.join("..") };
    let dir = root.join("target/test-output").join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), c.screenshot().await.unwrap()).unwrap();
}
