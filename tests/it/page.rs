//! The operator's page in a real browser (issue #13): headless Debian Chromium driven over
//! WebDriver (chromedriver, fantoccini) against a running gateway with a PTY device and a real
//! mosquitto. Screenshots go to `target/test-output/page/`.

use super::harness::*;
use fantoccini::Locator;
use spokegate::model::Body;
use spokegate::sim::{KillOnDrop, PtyDevice};
use spokegate::ui::i18n::Catalog;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::chromium;

async fn browser() -> (KillOnDrop, fantoccini::Client) {
    chromium::session(chromium::Engine::Chromium, 800, 1200).await
}

/// The page's own state (`window.spokegate.state`), once `pred` holds for it.
async fn page_state(
    c: &fantoccini::Client,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    chromium::page_value(c, "window.spokegate && window.spokegate.state", what, pred).await
}

async fn screenshot(c: &fantoccini::Client, name: &str) {
    chromium::screenshot(c, "page", name).await
}

/// A gateway whose operator page listens on a free port (`config_for` writes its configuration
/// for the port). When another process took the port in between (the daemon then runs without
/// its page, and the test would talk to that process), it is started again on another.
async fn with_page(gw: &GatewayDir, config_for: impl Fn(u16) -> std::path::PathBuf) -> (RunningGateway, u16) {
    for _ in 0..5 {
        let port = spokegate::sim::broker::free_port().unwrap();
        let gateway = RunningGateway::start(&config_for(port), gw.key());
        if serves_the_page(port).await {
            return (gateway, port);
        }
        gateway.stop().await;
    }
    panic!("the operator's page found no free port in five tries");
}

/// Whether the gateway's page answers on `port` within PATIENCE: its state, or its request for a
/// password; false when another server answers or nothing listens.
async fn serves_the_page(port: u16) -> bool {
    exchange(port, "GET /api/state HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.is_ok_and(|text| {
        (text.starts_with("HTTP/1.1 200") && text.contains("\"uplink\""))
            || (text.starts_with("HTTP/1.1 401") && text.contains("realm=\"spokegate\""))
    })
}

/// A raw HTTP/1.1 request: (status, body).
async fn http(port: u16, request: &str) -> (u16, String) {
    let text = exchange(port, request).await.unwrap_or_else(|e| panic!("{e}"));
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// `request` sent to `port` (waiting up to PATIENCE for it to listen: the page listens once the
/// daemon has started) and the whole answer, or what went wrong.
async fn exchange(port: u16, request: &str) -> Result<String, String> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut s = loop {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Ok(s) => break s,
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(format!("the page does not listen: {e}")),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    s.write_all(request.as_bytes()).await.map_err(|e| format!("the request: {e}"))?;
    let mut out = Vec::new();
    match tokio::time::timeout(PATIENCE, s.read_to_end(&mut out)).await {
        Ok(Ok(_)) => Ok(String::from_utf8_lossy(&out).to_string()),
        Ok(Err(e)) => Err(format!("the answer: {e}")),
        Err(_) => Err("no HTTP answer in time".to_string()),
    }
}

fn readings_metric(text: &str, dev: &str) -> f64 {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    scrape
        .samples
        .iter()
        .find(|s| s.metric == "spokegate_readings_total" && s.labels.get("device") == Some(dev))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .unwrap_or_else(|| panic!("no spokegate_readings_total for {dev} in:\n{text}"))
}

fn first_value(b: &Body) -> f64 {
    b.obs.as_ref().unwrap()[0].val.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_page_shows_live_state_starts_a_consult_and_speaks_bengali_and_hindi() {
    let broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let mut dev = PtyDevice::create(&gw.path().join("ttyVITALS")).unwrap();
    let mut sub = Subscriber::connect(broker.port, "page-test").await;
    let (gateway, ui_port) = with_page(&gw, |port| {
        gw.config_with(
            broker.port,
            &[("vitals-1", "vitals-kv", &dev.path)],
            "",
            &format!("[ui]\nlisten = \"127.0.0.1:{port}\"\n"),
        )
    })
    .await;
    let keys = gw.keys();
    let metrics_before = http(ui_port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert_eq!(metrics_before.0, 200);
    dev.peer.send(b"SYS=120 DIA=80 MAP=93 PR=72 SPO2=98 TEMP=367\r\n").await.unwrap();
    sub.until_signed("the first reading", &keys, |b| b.iter().any(|b| b.obs.is_some())).await;
    let first = first_value(sub.verified.iter().find(|b| b.obs.is_some()).unwrap());

    let (_driver, c) = browser().await;
    c.goto(&format!("http://127.0.0.1:{ui_port}/?lang=en")).await.unwrap();
    let s = page_state(&c, "the reading on the page", |s| s["devices"][0]["now"]["last"]["value"].is_number()).await;
    assert_eq!(s["devices"][0]["now"]["last"]["value"].as_f64(), Some(first));
    assert_eq!(s["devices"][0]["now"]["state"], "connected");
    assert_eq!(s["uplink"]["connected"], true);
    // Live: a new reading replaces it without a reload.
    dev.peer.send(b"SYS=141 DIA=91 MAP=108 PR=80 SPO2=97 TEMP=371\r\n").await.unwrap();
    sub.until_signed("the second reading", &keys, |b| b.iter().filter(|b| b.obs.is_some()).count() >= 2).await;
    let second = first_value(sub.verified.iter().filter(|b| b.obs.is_some()).nth(1).unwrap());
    assert_ne!(first, second);
    page_state(&c, "the new reading, live", |s| s["devices"][0]["now"]["last"]["value"].as_f64() == Some(second)).await;
    let shown = c.find(Locator::Css("#device-vitals-1 .value")).await.unwrap().text().await.unwrap();
    assert!(shown.starts_with(&second.to_string()), "{shown}");
    screenshot(&c, "en").await;

    // A consult started from the page binds the next readings.
    c.find(Locator::Id("consult-id")).await.unwrap().send_keys("PAGE-CONSULT-1").await.unwrap();
    c.find(Locator::Id("consult-start")).await.unwrap().click().await.unwrap();
    page_state(&c, "the consult open", |s| s["consult"] == "PAGE-CONSULT-1").await;
    dev.peer.send(b"SYS=118 DIA=76 MAP=90 PR=70 SPO2=99 TEMP=366\r\n").await.unwrap();
    sub.until_signed("a reading bound to the consult", &keys, |b| {
        b.iter().any(|b| b.obs.is_some() && b.consult_id() == Some("PAGE-CONSULT-1"))
    })
    .await;
    screenshot(&c, "en-consult").await;

    // Bengali and Hindi: every label is its language's text, none is a message id.
    let catalog = Catalog::load().unwrap();
    for lang in ["bn", "hi"] {
        c.goto(&format!("http://127.0.0.1:{ui_port}/?lang={lang}")).await.unwrap();
        page_state(&c, "the page loaded", |s| s["devices"].is_array()).await;
        let labels = c.find_all(Locator::Css("[data-m]")).await.unwrap();
        assert!(labels.len() >= 7, "{} labels", labels.len());
        for l in labels {
            if !l.is_displayed().await.unwrap() {
                continue; // a section this gateway has no use for (traces without waveform devices)
            }
            let key = l.attr("data-m").await.unwrap().unwrap();
            let text = l.text().await.unwrap();
            assert_eq!(text, catalog.messages(lang)[&key], "{lang}: {key}");
            assert_ne!(text, key, "{lang}: {key} is shown as its id");
        }
        let consult = c.find(Locator::Id("consult")).await.unwrap().text().await.unwrap();
        assert_eq!(consult, catalog.messages(lang)["consult-open"].replace("%consult%", "PAGE-CONSULT-1"));
        screenshot(&c, lang).await;
    }
    c.close().await.unwrap();

    // Without the page's token (another site's page, a script), nothing changes.
    let body = r#"{"name":"consult.end","args":{}}"#;
    let forged = http(
        ui_port,
        &format!("POST /api/command HTTP/1.1\r\nHost: 127.0.0.1:{ui_port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()),
    )
    .await;
    assert_eq!(forged.0, 403, "{}", forged.1);
    let (_, state) = http(ui_port, "GET /api/state HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(state.contains("PAGE-CONSULT-1"), "{state}");

    // Metrics: parsed by a Prometheus text parser; the readings counter moved with the readings.
    let (_, after) = http(ui_port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    let (before, after) = (readings_metric(&metrics_before.1, "vitals-1"), readings_metric(&after, "vitals-1"));
    let values: usize = sub.verified.iter().filter_map(|b| b.obs.as_ref()).map(Vec::len).sum();
    assert_eq!(after - before, values as f64, "the values of the three lines the subscriber got");
    gateway.stop().await;
}

/// With a password set (required for any address but loopback), nothing is served without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_password_the_page_and_the_metrics_ask_for_it() {
    let broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let hash = spokegate::ui::auth::PasswordHash::hash_of("operator-pass-1");
    let (gateway, ui_port) = with_page(&gw, |port| {
        gw.config_with(
            broker.port,
            &[],
            "",
            &format!("[ui]\nlisten = \"127.0.0.1:{port}\"\npassword_hash = \"{hash}\"\n"),
        )
    })
    .await;
    use base64::Engine;
    let good = base64::engine::general_purpose::STANDARD.encode("operator:operator-pass-1");
    let bad = base64::engine::general_purpose::STANDARD.encode("operator:guess");
    for path in ["/", "/metrics", "/api/state"] {
        let none = http(ui_port, &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).await;
        assert_eq!(none.0, 401, "{path}");
        let wrong = http(
            ui_port,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {bad}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(wrong.0, 401, "{path}");
        let right = http(
            ui_port,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {good}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(right.0, 200, "{path}");
    }
    gateway.stop().await;
}

/// A waveform device's live trace on the operator's page: the strip holds the samples the device
/// sent (MIT-BIH record 100, as Cyton packets), exactly, and shows where packets were lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_page_traces_a_waveform_device_live_from_the_exact_samples() {
    use spokegate::sim::waves::{self, WireProtocol};
    let broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let profiles = gw.path().join("profiles");
    spokegate::sim::recordings::write_wave_profiles(&profiles).unwrap();
    let mut ecg = PtyDevice::create(&gw.path().join("ttyECG")).unwrap();
    let (gateway, ui_port) = with_page(&gw, |port| {
        gw.config_with(
            broker.port,
            &[("ecg-1", "mitbih-cyton", &ecg.path)],
            &format!("profiles_dir = \"{}\"", profiles.display()),
            &format!("[ui]\nlisten = \"127.0.0.1:{port}\"\n"),
        )
    })
    .await;
    let (_driver, c) = browser().await;
    c.goto(&format!("http://127.0.0.1:{ui_port}/?lang=en")).await.unwrap();
    page_state(&c, "the ECG connected", |s| {
        s["devices"][0]["waveform"] == true && s["devices"][0]["now"]["state"] == "connected"
    })
    .await;
    // The page listens for chunks before the device sends (the trace shows what is signed now).
    chromium::page_value(&c, "window.spokegate.wavesOpen === true", "the page's trace stream open", |v| v == true)
        .await;
    let mit = waves::mitbih_100();
    let (rows, gap) = (1440, 700..760);
    ecg.peer.send(&WireProtocol::Cyton.stream(&mit, 0, rows, |r| gap.contains(&r))).await.unwrap();
    let shown = chromium::page_value(
        &c,
        "[Object.keys(window.spokegate.traces), window.spokegate.traceShown('ecg-1/ecg')]",
        "the trace up to the last row",
        |v| {
            let v = &v[1];
            v["ch"][0]["runs"]
                .as_array()
                .and_then(|r| r.last())
                .is_some_and(|r| r["i0"].as_u64().unwrap() as usize + r["s"].as_array().unwrap().len() == rows)
        },
    )
    .await[1]
        .clone();
    for ch in 0..2 {
        let source = mit.channel(ch);
        let runs = shown["ch"][ch]["runs"].as_array().unwrap();
        let mut held = Vec::new();
        for r in runs {
            let i0 = r["i0"].as_u64().unwrap() as usize;
            for (k, v) in r["s"].as_array().unwrap().iter().enumerate() {
                assert_eq!(v.as_i64().unwrap() as i32, source[i0 + k], "channel {ch}, row {}", i0 + k);
                held.push(i0 + k);
            }
        }
        assert!(held.iter().all(|i| !gap.contains(i)), "nothing drawn where packets were lost");
        assert!(held.contains(&(gap.start - 1)) && held.contains(&gap.end), "both sides of the gap are on the strip");
    }
    screenshot(&c, "trace").await;
    c.close().await.unwrap();
    gateway.stop().await;
}
