//! The operator's page (`cargo bench --bench page`): the real `spokegate` binary with a 12-lead
//! ECG (PTB-XL 00001 at its real rate on a pseudo-terminal) and a vitals monitor, a real mosquitto,
//! and Debian's headless Chromium over chromedriver. Figures: the bytes a first load transfers and
//! the time from navigation start to the first frame after the page drew the gateway's state (the
//! browser's own Performance API), and the gateway's CPU over 20 s
//! without the page and 20 s with it open (live updates over server-sent events, and the live
//! trace of the ECG's first three leads), and the browser's CPU drawing it.

use spokegate::sim::{recordings, waves, PtyDevice};
use std::time::Duration;

#[path = "../tests/support/browser.rs"]
mod chromium;
mod common;

use common::cpu_seconds;

const WINDOW: Duration = Duration::from_secs(20);

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(run());
}

async fn cpu_over(pid: u32, d: Duration) -> f64 {
    let c0 = cpu_seconds(pid);
    tokio::time::sleep(d).await;
    (cpu_seconds(pid) - c0) / d.as_secs_f64() * 100.0
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = common::mosquitto(dir.path());
    spokegate::sign::SigningKey::generate(&dir.path().join("gateway.key")).unwrap();
    let profiles = dir.path().join("profiles");
    recordings::write_wave_profiles(&profiles).unwrap();
    let ecg = PtyDevice::create(&dir.path().join("ttyECG12")).unwrap();
    let ui_port = spokegate::sim::broker::free_port().unwrap();
    let config = dir.path().join("spokegate.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nsite = \"bench\"\nid = \"gw-bench\"\nstate_dir = \"{d}\"\nprofiles_dir = \"{p}\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\n\
             [ui]\nlisten = \"127.0.0.1:{ui_port}\"\n[[device]]\nid = \"ecg-12\"\nprofile = \"ptbxl-text\"\nserial = {{ path = \"{e}\" }}\n",
            d = dir.path().display(),
            p = profiles.display(),
            e = ecg.path.display(),
        ),
    )
    .unwrap();
    let gateway = common::gateway(&config, &[]);
    let pid = gateway.0.id();
    let replay = waves::spawn_looped(ecg.peer, waves::ptbxl_00001(), waves::WireProtocol::TextRows);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let without = cpu_over(pid, WINDOW).await;

    let (driver, client) = chromium::session(chromium::Engine::Chromium, 1000, 1200).await;
    client.goto(&format!("http://127.0.0.1:{ui_port}/")).await.unwrap();
    // Until the first state is drawn (the page marks the frame after its first render).
    chromium::page_value(
        &client,
        "performance.getEntriesByName('spokegate-first-render').length > 0",
        "the page's state",
        |v| v == true,
    )
    .await;
    let perf = client
        .execute(
            "const nav = performance.getEntriesByType('navigation')[0];
             const res = performance.getEntriesByType('resource');
             const fcp = performance.getEntriesByName('spokegate-first-render')[0];
             return { page: nav.transferSize, resources: res.reduce((s, r) => s + (r.transferSize || 0), 0),
                      names: res.map(r => r.name), fcp: fcp ? fcp.startTime : null };",
            vec![],
        )
        .await
        .unwrap();
    // The trace is live once the page has drawn a strip.
    chromium::page_value(&client, "Object.keys(window.spokegate.traces || {}).length > 0", "the ECG's trace", |v| {
        v == true
    })
    .await;
    chromium::screenshot(&client, "page-bench", "12-lead-trace").await;
    let browser = driver.0.id();
    let b0 = spokegate::sim::proc_stats::tree_cpu_seconds(browser);
    let with = cpu_over(pid, WINDOW).await;
    let browser_cpu = (spokegate::sim::proc_stats::tree_cpu_seconds(browser) - b0) / WINDOW.as_secs_f64() * 100.0;
    client.close().await.unwrap();
    replay.abort();
    println!(
        "first load: page {} bytes + {} bytes of other requests ({}) ; first state drawn {:.0} ms after navigation start",
        perf["page"],
        perf["resources"],
        perf["names"],
        perf["fcp"].as_f64().unwrap_or(f64::NAN)
    );
    println!(
        "gateway CPU with a 12-lead ECG streaming: {without:.2} % of a core without the page, {with:.2} % with it open (live state and the ECG's trace), {:+.2} points; the browser drawing it: {browser_cpu:.1} % of a core",
        with - without
    );
    println!(
        "machine: {} cores; `cargo bench --bench page`",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    drop(gateway);
}
