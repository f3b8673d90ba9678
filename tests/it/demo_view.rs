//! `spokegate demo` shows the hub doctor's consult view (issue #15): the real binary, its printed
//! address opened in headless Debian Chromium (WebDriver). The ECG strip holds MIT-BIH record 100's
//! samples exactly, a monitor's reading is marked verified, the hub's capture arrives as an image.
//! Screenshot in `target/test-output/demo-view/`.

use spokegate::sim::waves;
use spokegate::sim::KillOnDrop;
use std::io::BufRead;
use std::time::Duration;

use crate::chromium;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_the_consult_view_with_exact_ecg_verified_readings_and_the_picture() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_spokegate"))
        .args(["demo", "--duration", "120"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _demo = KillOnDrop(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.split("hub doctor's view: ").nth(1) {
                let _ = tx.send(url.split(' ').next().unwrap_or("").to_string());
            }
        }
    });
    let url = rx.recv_timeout(Duration::from_secs(30)).expect("the demo prints its consult view's address");
    assert!(url.starts_with("http://127.0.0.1:") && url.contains("/consult/DEMO-"), "{url}");

    // The page and its data come with the view's content security policy (the checks below run
    // under it).
    let head = {
        use std::io::{Read, Write};
        let rest = url.trim_start_matches("http://");
        let (host, path) = rest.split_at(rest.find('/').unwrap());
        let mut s = std::net::TcpStream::connect(host).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text.split("\r\n\r\n").next().unwrap().to_ascii_lowercase()
    };
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let policy = format!("content-security-policy: {}", spokegate::consult_view::CONTENT_SECURITY_POLICY);
    assert!(head.contains(&policy) && head.contains("x-content-type-options: nosniff"), "{head}");
    let (_driver, c) = chromium::session(chromium::Engine::Chromium, 1400, 1400).await;
    c.goto(&url).await.unwrap();
    let keys = chromium::page_value(&c, "window.hubview && window.hubview.keys()", "the ECG stream", |v| {
        v.as_array().is_some_and(|a| a.iter().any(|k| k.as_str().unwrap_or("").contains("/ecg-1/")))
    })
    .await;
    let key =
        keys.as_array().unwrap().iter().filter_map(|k| k.as_str()).find(|k| k.contains("/ecg-1/")).unwrap().to_string();
    // Two seconds of ECG on the strip, then every sample against the recording (the simulated
    // device loops it with its counter running on, so stream index i is row i mod its length).
    let shown = chromium::page_value(&c, &format!("window.hubview.shown({key:?})"), "2 s of ECG", |v| {
        v["ch"][0]["runs"]
            .as_array()
            .is_some_and(|r| r.iter().map(|r| r["s"].as_array().unwrap().len()).sum::<usize>() >= 720)
    })
    .await;
    let mit = waves::mitbih_100();
    let mut checked = 0;
    for c_i in 0..mit.channels {
        let source = mit.channel(c_i);
        for run in shown["ch"][c_i]["runs"].as_array().unwrap() {
            let i0 = run["i0"].as_u64().unwrap() as usize;
            for (k, v) in run["s"].as_array().unwrap().iter().enumerate() {
                assert_eq!(
                    v.as_i64().unwrap() as i32,
                    source[(i0 + k) % source.len()],
                    "channel {c_i}, index {}",
                    i0 + k
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 1440);
    let readings = chromium::page_value(&c, "window.hubview.state.readings", "a monitor reading", |v| {
        v.as_array().is_some_and(|r| r.iter().any(|r| r["dev"] == "monitor-1"))
    })
    .await;
    assert!(readings.as_array().unwrap().iter().all(|r| r["verified"] == true), "{readings}");
    chromium::page_value(&c, "window.hubview.state.images", "the microscope's picture", |v| {
        v.as_object().is_some_and(|m| m.values().any(|i| i["done"]["sha256"].is_string() && i["verified"] == true))
    })
    .await;
    chromium::screenshot(&c, "demo-view", "consult").await;
    let _ = c.close().await;
}
