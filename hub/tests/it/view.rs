//! The hub doctor's consult view (issue #15) in real browsers: headless Debian Chromium and Firefox
//! over WebDriver against `spokegate-hub serve` (PostgreSQL, mosquitto) while a real gateway streams
//! MIT-BIH record 100 (with rows left out on the serial line) and the PhysioNet 2016 heart sound
//! from PTYs, and the simulated camera (a recorded JPEG through the camera trait: no camera on a
//! CI machine) takes a picture the page asks for. Screenshots go to `target/test-output/hub-view-{chromium,firefox}/`.
//! And access: what a user has no grant for is not there for them, by HTTP or live.

use crate::support::*;
use fantoccini::actions::InputSource;
use fantoccini::Locator;
use spokegate::sim::mosquitto::Mosquitto;
use spokegate::sim::waves::{self, Recording, WireProtocol};
use spokegate::sim::PtyDevice;

#[path = "../../../tests/support/browser.rs"]
pub(crate) mod chromium;

const CONSULT: &str = "TELE-2026-12-05-015";
/// MIT-BIH rows sent before the page opens (history) and after (live).
const ECG_HISTORY_ROWS: usize = 1800;
const ECG_ROWS: usize = 3600;
/// Rows left out on the serial line (Cyton packets never sent): a gap of 0.5 s.
const GAP: std::ops::Range<usize> = 2700..2880;
/// Heart sound rows (2 s at 2 kHz), in PCM frames of 20.
const PCG_ROWS: usize = 4000;
const PASSWORD: &str = "correct horse battery";

struct Rig {
    db: TestDb,
    _broker: Mosquitto,
    hub: HubSetup,
    instance: HubInstance,
    gw: Gateway,
    ecg: PtyDevice,
    ecg12: PtyDevice,
    steth: PtyDevice,
    _devs: tempfile::TempDir,
}

/// A hub on mosquitto and a gateway `site-1/gw-v` with two ECGs (2 and 12 leads), a stethoscope,
/// a camera and the vital-signs monitor, trusted by the hub, in consult [`CONSULT`].
async fn rig() -> Rig {
    let db = TestDb::create();
    let broker = Mosquitto::start();
    let hub = HubSetup::new(&db, &mqtt_input(broker.port));
    let devs = tempfile::tempdir().unwrap();
    let ecg = PtyDevice::create(&devs.path().join("ttyECG")).unwrap();
    let steth = PtyDevice::create(&devs.path().join("ttySTETH")).unwrap();
    let ecg12 = PtyDevice::create(&devs.path().join("ttyECG12")).unwrap();
    let profiles = devs.path().join("profiles");
    spokegate::sim::recordings::write_wave_profiles(&profiles).unwrap();
    let gw = Gateway::start(
        "site-1",
        "gw-v",
        broker.port,
        &hub.jwk(),
        &[("ecg-1", "mitbih-cyton", &ecg.path), ("steth-1", "pcg-pcm", &steth.path), ("ecg-12", "ptbxl-text", &ecg12.path)],
        &format!(
            "profiles_dir = \"{}\"\n[[device]]\nid = \"scope\"\nprofile = \"usb-microscope\"\ncamera = {{ path = \"sim:blood-smear\" }}\n",
            profiles.display()
        ),
    );
    hub.trust(&gw.jwk());
    let instance = hub.serve("v");
    instance.ready().await;
    gw.start_consult(CONSULT).await;
    Rig { db, _broker: broker, hub, instance, gw, ecg, ecg12, steth, _devs: devs }
}

/// What the page's strip of stream `key` holds (`hubview.shown`) once its last sample is row `end - 1`.
async fn shown_up_to(c: &fantoccini::Client, key: &str, end: usize, what: &str) -> serde_json::Value {
    chromium::page_value(c, &format!("window.hubview && window.hubview.shown({key:?})"), what, |v| {
        v["ch"][0]["runs"]
            .as_array()
            .and_then(|r| r.last())
            .is_some_and(|r| r["i0"].as_u64().unwrap() as usize + r["s"].as_array().unwrap().len() == end)
    })
    .await
}

/// The key of the page's stream from device `dev`.
async fn stream_key(c: &fantoccini::Client, dev: &str) -> String {
    let keys = chromium::page_value(c, "window.hubview && window.hubview.keys()", &format!("a stream of {dev}"), |v| {
        v.as_array().is_some_and(|a| a.iter().any(|k| k.as_str().unwrap_or("").contains(&format!("/{dev}/"))))
    })
    .await;
    keys.as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .find(|k| k.contains(&format!("/{dev}/")))
        .unwrap()
}

/// The runs of exact samples the page holds for channel `c` of what it shows.
fn runs_of(shown: &serde_json::Value, c: usize) -> Vec<(i64, Vec<i32>)> {
    shown["ch"][c]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (r["i0"].as_i64().unwrap(), r["s"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap() as i32).collect())
        })
        .collect()
}

/// The runs a page showing [a, b) must hold of `rec`'s channel `c` when rows `0..sent` were sent
/// but for `gap`: the recording's own samples, split where the gap is.
fn expected_runs(
    rec: &Recording,
    c: usize,
    a: i64,
    b: i64,
    sent: usize,
    gap: Option<std::ops::Range<usize>>,
) -> Vec<(i64, Vec<i32>)> {
    let source = rec.channel(c);
    let present = |i: usize| i < sent && gap.as_ref().is_none_or(|g| !g.contains(&i));
    let mut out: Vec<(i64, Vec<i32>)> = Vec::new();
    let (from, to) = (a.max(0) as usize, (b.max(0) as usize).min(source.len()));
    for (i, &v) in source.iter().enumerate().take(to).skip(from) {
        if !present(i) {
            continue;
        }
        match out.last_mut() {
            Some((i0, s)) if *i0 as usize + s.len() == i => s.push(v),
            _ => out.push((i as i64, vec![v])),
        }
    }
    out
}

pub(crate) async fn sign_in_page(c: &fantoccini::Client, port: u16, name: &str, next: &str) {
    c.goto(&format!("http://127.0.0.1:{port}{next}")).await.unwrap();
    // Not signed in: the page sends the browser to the sign-in form, which brings it back.
    c.wait().for_element(Locator::Css("input[name=name]")).await.unwrap();
    c.find(Locator::Css("input[name=name]")).await.unwrap().send_keys(name).await.unwrap();
    c.find(Locator::Css("input[name=password]")).await.unwrap().send_keys(PASSWORD).await.unwrap();
    c.find(Locator::Css("form button")).await.unwrap().click().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doctor_sees_the_consults_ecg_heart_sound_readings_and_picture_live_and_exact_in_chromium() {
    doctor_view(chromium::Engine::Chromium).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doctor_sees_the_consults_ecg_heart_sound_readings_and_picture_live_and_exact_in_firefox() {
    doctor_view(chromium::Engine::Firefox).await;
}

async fn doctor_view(engine: chromium::Engine) {
    let shots = format!("hub-view-{engine:?}").to_lowercase();
    let mut rig = rig().await;
    rig.hub.user("dr-rao", PASSWORD, &[("site-1", None, Some(CONSULT))]);
    let mit = waves::mitbih_100();
    let pcg = waves::pcg_c0003();

    // Before the doctor opens the page: the first 5 s of ECG and a blood pressure (history).
    rig.ecg.peer.send(&WireProtocol::Cyton.stream(&mit, 0, ECG_HISTORY_ROWS, |_| false)).await.unwrap();
    rig.gw.send(&[121]).await;
    until("the first ECG rows are stored", PATIENCE, || async {
        rig.db.count(&format!("SELECT coalesce(sum(n), 0)::bigint FROM wave_chunks WHERE consult = '{CONSULT}'")).await
            >= ECG_HISTORY_ROWS as i64
    })
    .await;

    let (_driver, c) = chromium::session(engine, 1400, 1600).await;
    sign_in_page(&c, rig.instance.http, "dr-rao", &format!("/consult/{CONSULT}")).await;
    chromium::page_value(
        &c,
        "window.hubview && window.hubview.state.live && window.hubview.state.loaded",
        "the page live",
        |v| v == &serde_json::Value::Bool(true),
    )
    .await;
    let ecg_key = stream_key(&c, "ecg-1").await;

    // Live: the rest of the ECG with Cyton packets left out on the serial line, the heart sound.
    rig.ecg
        .peer
        .send(&WireProtocol::Cyton.stream(&mit, ECG_HISTORY_ROWS, ECG_ROWS, |r| GAP.contains(&r)))
        .await
        .unwrap();
    rig.steth.peer.send(&WireProtocol::Pcm { rows: 20 }.stream(&pcg, 0, PCG_ROWS, |_| false)).await.unwrap();

    // The ECG strip holds exactly the recording's samples, and the gap as a gap.
    let s = shown_up_to(&c, &ecg_key, ECG_ROWS, "every ECG row on the strip").await;
    let (a, b) = (s["a"].as_i64().unwrap(), s["b"].as_i64().unwrap());
    assert!(a <= GAP.start as i64 && b >= ECG_ROWS as i64, "the window [{a}, {b}) shows the gap and the end");
    assert_eq!(s["rate"].as_f64(), Some(mit.rate));
    for c_i in 0..mit.channels {
        let got = runs_of(&s, c_i);
        let want = expected_runs(&mit, c_i, a, b, ECG_ROWS, Some(GAP));
        assert_eq!(
            got.len(),
            want.len(),
            "channel {c_i}: runs {:?}",
            got.iter().map(|r| (r.0, r.1.len())).collect::<Vec<_>>()
        );
        assert_eq!(got, want, "channel {c_i} equals MIT-BIH 100, with the gap left out");
        let gap_on_page = got[got.len() - 1].0 - (got[got.len() - 2].0 + got[got.len() - 2].1.len() as i64);
        assert_eq!(gap_on_page, GAP.len() as i64, "the gap is exactly the rows left out");
    }

    // The heart sound: its strip holds the recording's samples, and plays.
    let pcg_key = stream_key(&c, "steth-1").await;
    let s = shown_up_to(&c, &pcg_key, PCG_ROWS, "the heart sound on its strip").await;
    let (a, b) = (s["a"].as_i64().unwrap(), s["b"].as_i64().unwrap());
    assert_eq!(runs_of(&s, 0), expected_runs(&pcg, 0, a, b, PCG_ROWS, None), "the heart sound's samples");
    let play = c.find(Locator::XPath("//button[text()='Play']")).await.unwrap();
    play.click().await.unwrap();
    let audio = chromium::page_value(&c, "window.hubview.audio", "the heart sound playing", |v| v.is_object()).await;
    assert_eq!(audio["rate"].as_f64(), Some(pcg.rate));
    assert_eq!(audio["samples"].as_i64(), Some(PCG_ROWS as i64), "the last 10 s hold the 2 s sent");
    assert!(audio["playedAt"].as_f64().unwrap() >= 8000.0);

    // The 12-lead (PTB-XL 00001, 10 s at 100 Hz): the printed layout, every lead exact.
    let ptb = waves::ptbxl_00001();
    rig.ecg12.peer.send(&WireProtocol::TextRows.stream(&ptb, 0, ptb.rows(), |_| false)).await.unwrap();
    let key12 = stream_key(&c, "ecg-12").await;
    let s = shown_up_to(&c, &key12, ptb.rows(), "the whole 12-lead record").await;
    let twelve = c.execute(&format!("return window.hubview.state.streams[{key12:?}].twelve"), vec![]).await.unwrap();
    assert_eq!(twelve, true, "laid out as a 12-lead");
    let (a, b) = (s["a"].as_i64().unwrap(), s["b"].as_i64().unwrap());
    assert_eq!(b - a, 1000, "four columns of 2.5 s and the rhythm strip: 10 s");
    assert_eq!(s["ch"].as_array().unwrap().len(), 12);
    for c_i in 0..ptb.channels {
        assert_eq!(
            runs_of(&s, c_i),
            expected_runs(&ptb, c_i, a, b, ptb.rows(), None),
            "lead {}",
            s["ch"][c_i]["label"]
        );
    }

    // A spot reading committed now is on screen within the 500 ms budget.
    rig.gw.send(&[131]).await;
    let readings = chromium::page_value(&c, "window.hubview.state.readings", "the new reading", |v| {
        v.as_array().is_some_and(|r| r.iter().any(|r| r["val"].as_f64() == Some(131.0)))
    })
    .await;
    let r = readings.as_array().unwrap().iter().find(|r| r["val"].as_f64() == Some(131.0)).unwrap();
    assert_eq!(r["verified"], true, "{r}");
    assert_eq!(r["ucum"], "mm[Hg]");
    assert!(readings.as_array().unwrap().iter().any(|r| r["val"].as_f64() == Some(121.0)), "the history's reading");
    let id = r["msg"].clone();
    let latencies = chromium::page_value(&c, "window.hubview.state.latencies", "its latency", |v| {
        v.as_array().is_some_and(|l| l.iter().any(|l| l["id"] == id))
    })
    .await;
    let ms = latencies.as_array().unwrap().iter().find(|l| l["id"] == id).unwrap()["ms"].as_f64().unwrap();
    assert!((0.0..=500.0).contains(&ms), "stored -> on screen took {ms} ms");

    // The doctor asks for a picture: the command is signed by the hub, the gateway replies, and
    // the image arrives whole.
    let input = c.find(Locator::Css("input[data-gateway]")).await.unwrap();
    input.send_keys("scope").await.unwrap();
    c.find(Locator::XPath("//div[contains(@class,'gateway')]/button[@data-cmd='capture']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let images = chromium::page_value(&c, "window.hubview.state.images", "the picture on the page", |v| {
        v.as_object().is_some_and(|m| m.values().any(|i| i["done"].is_object()))
    })
    .await;
    let image = images.as_object().unwrap().values().find(|i| i["done"].is_object()).unwrap().clone();
    assert_eq!(image["dev"], "scope");
    assert_eq!(image["verified"], true);
    let commands = chromium::page_value(&c, "window.hubview.state.commands", "the capture's final reply", |v| {
        v.as_object().is_some_and(|m| {
            m.values().any(|c| c["replies"].as_array().is_some_and(|r| r.iter().any(|r| r["state"] == "done")))
        })
    })
    .await;
    let cmd = commands.as_object().unwrap().values().next().unwrap();
    assert_eq!(cmd["name"], "capture");
    let width = chromium::page_value(
        &c,
        "document.querySelector('.thumb img') && document.querySelector('.thumb img').naturalWidth",
        "the thumbnail decoded",
        |v| v.as_i64().is_some_and(|w| w > 0),
    )
    .await;
    assert!(width.as_i64().unwrap() > 0);
    // The bytes the page shows are the ones whose SHA-256 the gateway signed.
    let cookie = sign_in(rig.instance.http, "dr-rao", PASSWORD).await;
    let (status, _, _) = http_request(
        rig.instance.http,
        "GET",
        image["done"]["url"].as_str().unwrap(),
        &format!("Cookie: {cookie}\r\n"),
        "",
    )
    .await;
    assert_eq!(status, 200);
    let stored: Vec<u8> = {
        let client = rig.db.client().await;
        client
            .query_one("SELECT bytes FROM images WHERE media_id = $1", &[&image["id"].as_str().unwrap()])
            .await
            .unwrap()
            .get(0)
    };
    assert_eq!(spokegate::media::sha256_hex(&stored), image["done"]["sha256"].as_str().unwrap());
    assert_eq!(image["sha256"], image["done"]["sha256"], "the sidecar's SHA-256 is the stored image's");

    chromium::screenshot(&c, &shots, "consult").await;
    // Freeze and measure: two clicks on the ECG strip give an interval.
    c.find(Locator::Id("freeze")).await.unwrap().click().await.unwrap();
    let strip = c.find(Locator::Css(".stream canvas.strip")).await.unwrap();
    let actions = fantoccini::actions::MouseActions::new("mouse".into())
        .then(fantoccini::actions::PointerAction::MoveToElement {
            element: strip.clone(),
            duration: None,
            x: -200.0,
            y: 0.0,
        })
        .then(fantoccini::actions::PointerAction::Down { button: fantoccini::actions::MOUSE_BUTTON_LEFT })
        .then(fantoccini::actions::PointerAction::Up { button: fantoccini::actions::MOUSE_BUTTON_LEFT })
        .then(fantoccini::actions::PointerAction::MoveToElement { element: strip, duration: None, x: 100.0, y: 0.0 })
        .then(fantoccini::actions::PointerAction::Down { button: fantoccini::actions::MOUSE_BUTTON_LEFT })
        .then(fantoccini::actions::PointerAction::Up { button: fantoccini::actions::MOUSE_BUTTON_LEFT });
    c.perform_actions(actions).await.unwrap();
    let cal = chromium::page_value(&c, "window.hubview.state.calipers", "the calipers", |v| v["ms"].is_number()).await;
    let px_per_ms = 96.0 / 25.4 * 25.0 / 1000.0;
    assert!(
        (cal["ms"].as_f64().unwrap() - 300.0 / px_per_ms).abs() < 1000.0 / mit.rate + 1.0,
        "300 px at 25 mm/s: {cal}"
    );
    chromium::screenshot(&c, &shots, "consult-frozen").await;
    let _ = c.close().await;
    rig.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_a_grant_gets_nothing_of_a_consult_by_http_or_live() {
    let mut rig = rig().await;
    rig.hub.user("dr-rao", PASSWORD, &[("site-1", Some("gw-v"), Some(CONSULT))]);
    rig.hub.user("dr-other", PASSWORD, &[("site-2", None, None), ("site-1", Some("gw-v"), Some("ANOTHER-CONSULT"))]);
    rig.gw.send(&[118]).await;
    until("the reading is stored", PATIENCE, || async {
        rig.db.count(&format!("SELECT count(*) FROM observations WHERE consult = '{CONSULT}'")).await >= 1
    })
    .await;
    let id = rig.db.count(&format!("SELECT max(id) FROM messages WHERE consult = '{CONSULT}' AND kind = 'obs'")).await;
    let port = rig.instance.http;
    let paths = [
        format!("/consult/{CONSULT}"),
        format!("/api/history?consult={CONSULT}"),
        format!("/api/live?consult={CONSULT}"),
        format!("/api/messages/{id}"),
        "/gateway/site-1/gw-v".to_string(),
        "/api/history?site=site-1&gw=gw-v".to_string(),
    ];

    // Nobody signed in: nothing (the pages send to the sign-in form).
    for p in &paths {
        let (status, head, _) = http_request(port, "GET", p, "", "").await;
        assert!(status == 401 || (status == 303 && head.contains("/login")), "{p} without a session: {status}");
    }
    let (status, _, _) = http_request(
        port,
        "POST",
        "/login",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        "name=dr-rao&password=wrong",
    )
    .await;
    assert_eq!(status, 401, "a wrong password");
    let (status, _, _) = http_request(
        port,
        "POST",
        "/login",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        &format!("name=dr-rao%00&password={}", PASSWORD.replace(' ', "+")),
    )
    .await;
    assert_eq!(status, 401, "a name holding U+0000 names nobody");

    // A user with grants elsewhere (another site, another consult of this gateway): 404 for all.
    let other = format!("Cookie: {}\r\n", sign_in(port, "dr-other", PASSWORD).await);
    for p in &paths {
        let (status, _, body) = http_request(port, "GET", p, &other, "").await;
        assert_eq!(status, 404, "{p} for dr-other: {body}");
    }
    let ask = serde_json::json!({"site": "site-1", "gw": "gw-v", "name": "status"}).to_string();
    let (status, _, _) =
        http_request(port, "POST", "/api/command", &format!("{other}Content-Type: application/json\r\n"), &ask).await;
    assert_eq!(status, 403, "no CSRF token");

    // The doctor of the consult: its history and its live stream, but not the gateway's page.
    // Its history: every spot reading, and the last ten minutes of waveforms (chunks made to look
    // eleven minutes older are left out).
    let mit = waves::mitbih_100();
    rig.ecg.peer.send(&WireProtocol::Cyton.stream(&mit, 0, 720, |_| false)).await.unwrap();
    until("two seconds of ECG stored", PATIENCE, || async {
        rig.db.count(&format!("SELECT coalesce(sum(n), 0)::bigint FROM wave_chunks WHERE consult = '{CONSULT}'")).await
            >= 720
    })
    .await;
    let aged = rig
        .db
        .client()
        .await
        .execute(
            "UPDATE messages m SET t_us = m.t_us - 660000000 FROM wave_chunks w WHERE w.message_id = m.id AND w.i0 < 360",
            &[],
        )
        .await
        .unwrap();
    assert!(aged >= 1);
    let rao = format!("Cookie: {}\r\n", sign_in(port, "dr-rao", PASSWORD).await);
    let (status, _, body) = http_request(port, "GET", &format!("/api/history?consult={CONSULT}"), &rao, "").await;
    assert_eq!(status, 200);
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    let items = h["items"].as_array().unwrap();
    assert!(items.iter().any(|i| i["obs"][0]["val"].as_f64() == Some(118.0)), "{body}");
    let wave_i0: Vec<u64> = items.iter().filter(|i| i["type"] == "wave").map(|i| i["i0"].as_u64().unwrap()).collect();
    assert!(!wave_i0.is_empty() && wave_i0.iter().all(|&i| i >= 360), "waves in the history: {wave_i0:?}");
    let (status, _, _) = http_request(port, "GET", "/gateway/site-1/gw-v", &rao, "").await;
    assert_eq!(status, 404, "a consult grant does not open the whole gateway");
    // The page runs only the hub's own scripts, and nothing is sniffed into another type (the
    // browser tests above draw the consult under this policy).
    let (status, head, _) = http_request(port, "GET", &format!("/consult/{CONSULT}"), &rao, "").await;
    let head = head.to_ascii_lowercase();
    assert_eq!(status, 200);
    assert!(head.contains("content-security-policy: default-src 'self'; object-src 'none'"), "{head}");
    assert!(
        head.contains("x-content-type-options: nosniff") && head.contains("referrer-policy: no-referrer"),
        "{head}"
    );

    // Live: two streams open, the doctor's and the other user's (refused), then a reading.
    let live = |cookie: String| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(format!("GET /api/live?consult={CONSULT} HTTP/1.1\r\nHost: x\r\n{cookie}\r\n").as_bytes())
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        (s, String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    let (mut rao_stream, head) = live(rao.clone()).await;
    assert!(head.starts_with("HTTP/1.1 200") && head.contains("text/event-stream"), "{head}");
    let (_, head) = live(other.clone()).await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    rig.gw.send(&[119]).await;
    let mut got = String::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !got.contains("\"val\":119.0") {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 65536];
        let n = tokio::time::timeout_at(deadline, rao_stream.read(&mut buf)).await.expect("the live reading").unwrap();
        assert!(n > 0, "the stream ended: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.contains("event: item"), "{got}");
    rig.gw.stop().await;
}
