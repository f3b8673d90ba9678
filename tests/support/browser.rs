//! Headless Debian Chromium and Firefox driven over WebDriver (chromedriver, geckodriver;
//! fantoccini), shared by the gateway's page tests and the hub's view tests (included with
//! `#[path]`).

use fantoccini::ClientBuilder;
use spokegate::sim::KillOnDrop;
use std::time::Duration;

/// How long a browser may take to show what a test waits for.
const BROWSER_PATIENCE: Duration = Duration::from_secs(30);

/// The browsers the pages are tested in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Debian's chromium, driven by chromedriver.
    Chromium,
    /// Debian's firefox-esr, driven by geckodriver (`.ci/setup` installs both).
    Firefox,
}

/// The engine's WebDriver on a free port, and a headless session `width`x`height` through it.
pub async fn session(engine: Engine, width: u32, height: u32) -> (KillOnDrop, fantoccini::Client) {
    let port = spokegate::sim::broker::free_port().unwrap();
    let profile = tempfile::tempdir().unwrap().keep();
    let (driver, args): (&str, Vec<String>) = match engine {
        Engine::Chromium => ("chromedriver", vec![format!("--port={port}")]),
        Engine::Firefox => {
            ("geckodriver", vec![format!("--port={port}"), "--host=127.0.0.1".into(), "--log=fatal".into()])
        }
    };
    let driver = KillOnDrop(
        std::process::Command::new(driver)
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{driver} (.ci/setup installs it): {e}")),
    );
    let mut caps = serde_json::Map::new();
    match engine {
        Engine::Chromium => {
            caps.insert(
                "goog:chromeOptions".into(),
                serde_json::json!({
                    "binary": "/usr/bin/chromium",
                    "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                             "--no-first-run", "--disable-background-networking", "--disable-component-update",
                             "--disable-sync", "--autoplay-policy=no-user-gesture-required",
                             format!("--window-size={width},{height}"),
                             format!("--user-data-dir={}", profile.display())]
                }),
            );
        }
        Engine::Firefox => {
            caps.insert(
                "moz:firefoxOptions".into(),
                serde_json::json!({
                    "binary": "/usr/bin/firefox-esr",
                    "args": ["-headless", format!("--width={width}"), format!("--height={height}"), "-profile", profile.display().to_string()],
                    "prefs": {"media.autoplay.default": 0, "app.update.enabled": false, "browser.shell.checkDefaultBrowser": false}
                }),
            );
        }
    }
    let deadline = tokio::time::Instant::now() + BROWSER_PATIENCE;
    loop {
        match ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => {
                if engine == Engine::Firefox {
                    // Its window size comes from WebDriver, not from arguments.
                    let _ = c.set_window_size(width, height).await;
                }
                return (driver, c);
            }
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
