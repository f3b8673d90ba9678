//! `cargo bench -p spokegate-hub --bench view`: the hub doctor's consult view in Debian's headless
//! Chromium (over chromedriver) against `spokegate-hub serve` on this machine's PostgreSQL and a
//! mosquitto, while a real gateway (the daemon, PTY devices) streams a 12-lead ECG, MIT-BIH record
//! 100 and a blood pressure every second into one consult.
//!
//! The 12-lead is PTB-XL 00001 (recorded at 100 Hz) replayed at five times its rate under a
//! profile that declares 500 Hz: the data volume of a 500 Hz 12-lead (6,000 samples/s), not a
//! 500 Hz recording. Figures:
//! - page weight: bytes the first load transfers (the browser's Performance API), the page's own
//!   files and the history read apart;
//! - stored -> on screen latency of every live item (the row's write time at the hub to the
//!   browser frame that drew it), p50/p99/max;
//! - CPU of the browser's processes (chromedriver's tree) and of the hub instance over 30 s with the
//!   view open, then 30 s with the tab on about:blank while the data keeps flowing.

#[allow(dead_code)]
#[path = "../tests/it/support.rs"]
mod support;

#[path = "../../tests/support/browser.rs"]
mod chromium;

use fantoccini::Locator;
use spokegate::sim::mosquitto::Mosquitto;
use spokegate::sim::proc_stats::{cpu_seconds, percentile, tree_cpu_seconds};
use spokegate::sim::waves::{self, WireProtocol};
use spokegate::sim::PtyDevice;
use std::time::Duration;
use support::*;

const CONSULT: &str = "BENCH-VIEW-1";
const WINDOW: Duration = Duration::from_secs(30);
const PASSWORD: &str = "bench password 1";

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(run());
}

/// CPU % of (browser tree, hub) over `d`.
async fn cpu_over(browser: u32, hub: u32, d: Duration) -> (f64, f64) {
    let (b0, h0) = (tree_cpu_seconds(browser), cpu_seconds(hub));
    tokio::time::sleep(d).await;
    let s = d.as_secs_f64();
    ((tree_cpu_seconds(browser) - b0) / s * 100.0, (cpu_seconds(hub) - h0) / s * 100.0)
}

async fn run() {
    let db = TestDb::create();
    let broker = Mosquitto::start();
    let hub = HubSetup::new(&db, &mqtt_input(broker.port));
    let devs = tempfile::tempdir().unwrap();
    let profiles = devs.path().join("profiles");
    spokegate::sim::recordings::write_wave_profiles(&profiles).unwrap();
    let ptb_text = std::fs::read_to_string(profiles.join("ptbxl-text.toml")).unwrap();
    std::fs::write(
        profiles.join("ptbxl-text-500.toml"),
        ptb_text.replace("id = \"ptbxl-text\"", "id = \"ptbxl-text-500\"").replace("rate = 100.0", "rate = 500.0"),
    )
    .unwrap();
    let ecg12 = PtyDevice::create(&devs.path().join("ttyECG12")).unwrap();
    let ecg = PtyDevice::create(&devs.path().join("ttyECG")).unwrap();
    let mut gw = Gateway::start(
        "site-b",
        "gw-b",
        broker.port,
        &hub.jwk(),
        &[("ecg-12", "ptbxl-text-500", &ecg12.path), ("ecg-1", "mitbih-cyton", &ecg.path)],
        &format!("profiles_dir = \"{}\"", profiles.display()),
    );
    hub.trust(&gw.jwk());
    hub.user("dr-bench", PASSWORD, &[("site-b", None, None)]);
    let instance = hub.serve("bench");
    instance.ready().await;
    gw.start_consult(CONSULT).await;

    let mut ptb_peer = ecg12.peer;
    let ptb = tokio::spawn(async move {
        let rec = waves::ptbxl_00001();
        let _ = waves::replay(&mut ptb_peer, &rec, WireProtocol::TextRows, 5.0, None, Duration::from_millis(20)).await;
    });
    let mit = waves::spawn_looped(ecg.peer, waves::mitbih_100(), WireProtocol::Cyton);
    tokio::time::sleep(Duration::from_secs(3)).await;

    let (driver, c) = chromium::session(chromium::Engine::Chromium, 1400, 1600).await;
    c.goto(&format!("http://127.0.0.1:{}/login?next=/consult/{CONSULT}", instance.http)).await.unwrap();
    c.find(Locator::Css("input[name=name]")).await.unwrap().send_keys("dr-bench").await.unwrap();
    c.find(Locator::Css("input[name=password]")).await.unwrap().send_keys(PASSWORD).await.unwrap();
    c.find(Locator::Css("form button")).await.unwrap().click().await.unwrap();
    chromium::page_value(
        &c,
        "window.hubview && window.hubview.state.loaded && window.hubview.state.live",
        "the page live",
        |v| v == &serde_json::Value::Bool(true),
    )
    .await;
    let weight = c
        .execute(
            "const n = performance.getEntriesByType('navigation')[0];
             const r = performance.getEntriesByType('resource').map(e => ({name: new URL(e.name).pathname, bytes: e.transferSize, ms: e.responseEnd}));
             return {page: n.transferSize, resources: r, dom: n.domContentLoadedEventEnd};",
            vec![],
        )
        .await
        .unwrap();
    let own: f64 = weight["page"].as_f64().unwrap()
        + weight["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["name"].as_str().unwrap().starts_with("/assets/"))
            .map(|r| r["bytes"].as_f64().unwrap())
            .sum::<f64>();
    let history: f64 = weight["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == "/api/history")
        .map(|r| r["bytes"].as_f64().unwrap())
        .sum();

    // Warm, then measure with the view open.
    tokio::time::sleep(Duration::from_secs(5)).await;
    c.execute("window.hubview.state.latencies = []", vec![]).await.unwrap();
    // A blood pressure every second through the window, the view open.
    let (browser, hub_pid) = (driver.0.id(), instance.proc.0.id());
    let (b0, h0) = (tree_cpu_seconds(browser), cpu_seconds(hub_pid));
    let started = std::time::Instant::now();
    for n in 0..WINDOW.as_secs() as u32 {
        gw.send(&[110 + n % 30]).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let s = started.elapsed().as_secs_f64();
    let (browser_open, hub_open) =
        ((tree_cpu_seconds(browser) - b0) / s * 100.0, (cpu_seconds(hub_pid) - h0) / s * 100.0);
    let lat = c.execute("return window.hubview.state.latencies.map(l => l.ms)", vec![]).await.unwrap();
    let mut ms: Vec<f64> = lat.as_array().unwrap().iter().filter_map(|v| v.as_f64()).collect();
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let samples_12 = c
        .execute(
            "const s = Object.values(window.hubview.state.streams).find(s => s.twelve);
             return s.chunks.reduce((n, k) => n + k.n, 0);",
            vec![],
        )
        .await
        .unwrap();
    chromium::screenshot(&c, "hub-view-bench", "consult-12-lead-500").await;

    c.goto("about:blank").await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (browser_blank, hub_blank) = cpu_over(browser, hub_pid, WINDOW).await;
    ptb.abort();
    mit.abort();

    println!("consult view, `cargo bench -p spokegate-hub --bench view` ({} s windows)", WINDOW.as_secs());
    println!(
        "  page weight, first load: {:.1} kB (HTML, script, style); history {:.1} kB",
        own / 1000.0,
        history / 1000.0
    );
    println!("  DOMContentLoaded: {:.0} ms after navigation start", weight["dom"].as_f64().unwrap_or(f64::NAN));
    println!(
        "  stored -> on screen: {} items, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or(f64::NAN)
    );
    println!("  12-lead samples per lead held by the page: {samples_12}");
    println!(
        "  browser CPU (all its processes): view open {browser_open:.1} % of a core, about:blank {browser_blank:.1} %"
    );
    println!("  hub instance CPU: view open {hub_open:.1} %, no page {hub_blank:.1} %");
    let _ = c.close().await;
    gw.stop().await;
}
