//! ASTM E1381/E1394 end to end: a simulated sender on a real PTY that behaves as the standard asks
//! (ENQ and wait, a frame at a time, NAK -> send again, silence -> EOT) uploads the sourced Contour
//! messages through the real daemon and a real mosquitto. Every reading arrives once, with the
//! values and times the sources state, through a corrupted frame, noise between frames, a sender
//! that stops mid-message and a receiver that was not there yet.

use crate::harness::*;
use spokegate::model::BodyKind;
use spokegate::sim::astm::{frames, AstmSender, Sent};
use std::time::Duration;

/// The records of a message (CR-separated, or framed: the text of each frame).
fn records(bytes: &[u8]) -> Vec<Vec<u8>> {
    if bytes.contains(&spokegate::framing::astm_bytes::STX) {
        return spokegate::sim::astm::session_records(bytes);
    }
    bytes.split(|&b| b == b'\r').filter(|r| !r.is_empty()).map(<[u8]>::to_vec).collect()
}

fn local(s: &str) -> i64 {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    // The profile's meter clock runs at +05:30.
    let t = time::PrimitiveDateTime::parse(s, &f).unwrap().assume_offset(time::macros::offset!(+05:30));
    (t.unix_timestamp_nanos() / 1000) as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn astm_results_arrive_once_through_naks_noise_an_abort_and_a_late_receiver() {
    let broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let mut dev = spokegate::sim::PtyDevice::create(&gw.path().join("ttyUSB-meter")).unwrap();
    let config = gw.config(broker.port, &[("meter-1", "astm-glucometer", &dev.path)], "");
    let mut sub = Subscriber::connect(broker.port, "test-hub").await;
    let sender = AstmSender { timeout: Duration::from_millis(1500) };

    // glucometerutils' three Contour records (astm-034) and its full Contour session (astm-033).
    let three = records(&astm_vector("astm-034"));
    let one = records(&astm_vector("astm-033"));
    assert_eq!((three.len(), one.len()), (6, 4));
    let three = frames(&three.iter().map(Vec::as_slice).collect::<Vec<_>>());
    let one = frames(&one.iter().map(Vec::as_slice).collect::<Vec<_>>());

    // Nobody answers yet: the meter gives up after its timeout.
    let early = sender.send(&mut dev.peer, &three, |_, _| false, |_| Vec::new()).await.unwrap();
    assert_eq!(early, Sent::NoAnswer);

    let gateway = RunningGateway::start(&config, gw.key());
    // The gateway finds the ENQ waiting on the line and answers it, too late for that sender.
    let mut b = [0u8; 1];
    let n = tokio::time::timeout(PATIENCE, dev.peer.read(&mut b)).await.expect("a late answer").unwrap();
    assert_eq!(&b[..n], &[spokegate::framing::astm_bytes::ACK]);
    // Frame 3 arrives corrupted once (NAK, sent again); noise before frame 4.
    let sent = sender
        .send(
            &mut dev.peer,
            &three,
            |f, attempt| f == 2 && attempt == 0,
            |f| if f == 3 { b"\x00~~".to_vec() } else { Vec::new() },
        )
        .await
        .unwrap();
    assert_eq!(sent, Sent::Delivered { naks: 1 });
    // A meter that stops after two frames, then sends the whole message again.
    sender.send_partial(&mut dev.peer, &one, 2).await.unwrap();
    let again = sender.send(&mut dev.peer, &one, |_, _| false, |_| Vec::new()).await.unwrap();
    assert_eq!(again, Sent::Delivered { naks: 0 });

    let keys = gw.keys();
    sub.until_signed("four readings and the link events", &keys, |bodies| {
        let n: usize = bodies.iter().filter(|b| b.kind == BodyKind::Obs).map(|b| b.obs.as_ref().unwrap().len()).sum();
        let codes: Vec<&str> = bodies.iter().filter_map(|b| b.event.as_ref()).map(|e| e.code.as_str()).collect();
        n >= 4 && ["astm-checksum", "frame-garbage", "astm-aborted"].iter().all(|c| codes.contains(c))
    })
    .await;
    let bodies = sub.bodies(&keys);
    let readings: Vec<(f64, String, i64)> = bodies
        .iter()
        .filter(|b| b.kind == BodyKind::Obs)
        .flat_map(|b| b.obs.clone().unwrap())
        .map(|o| (o.val.unwrap(), o.unit.ucum.clone(), o.tdev.unwrap()))
        .collect();
    // The values and times the sources state (astm-034: 8.6, 7.8, 7.8; astm-033: 10.9 mmol/L).
    let want =
        [(8.6, "2016-08-24 23:06"), (7.8, "2016-08-25 12:30"), (7.8, "2016-08-25 18:33"), (10.9, "2015-04-17 11:54")];
    let want: Vec<(f64, String, i64)> = want.iter().map(|(v, t)| (*v, "mmol/L".to_string(), local(t))).collect();
    assert_eq!(readings, want, "every reading once, in order");
    gateway.stop().await;
}

/// `records.fetch` on an analyser whose profile has a host query: the gateway sends H, Q, L as an
/// E1381 sender; the simulated analyser receives and checks it, then uploads its results (sourced
/// records), which arrive as readings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_fetch_sends_the_host_query_and_the_analysers_answer_arrives() {
    let broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let mut dev = spokegate::sim::PtyDevice::create(&gw.path().join("ttyUSB-lab")).unwrap();
    let hub = HubKey::new("hub-test");
    let config = gw.config_with(
        broker.port,
        &[("lab-1", "astm-glucometer-query", &dev.path)],
        &format!("profiles_dir = \"{}\"\n", gw.path().join("profiles").display()),
        &format!("[hub]\nkeys = [\"{}\"]\ndelivery = \"broker\"\n", hub.jwk.display()),
    );
    // The shipped glucometer profile, given a host query by the operator.
    std::fs::create_dir_all(gw.path().join("profiles")).unwrap();
    let text = std::fs::read_to_string(format!("{}/device-profiles/astm-glucometer.toml", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .replace("id = \"astm-glucometer\"", "id = \"astm-glucometer-query\"")
        .replace("time_field = 9 ", "fetch_query = \"Q|1|^ALL||||||||||N\"\ntime_field = 9 ");
    std::fs::write(gw.path().join("profiles/astm-glucometer-query.toml"), text).unwrap();
    let mut keys = gw.keys();
    keys.insert(hub.bound()).unwrap();
    let mut sub = Subscriber::connect(broker.port, "lab-hub").await;
    let sender = Publisher::connect(broker.port, "lab-sender").await;
    let gateway = RunningGateway::start(&config, gw.key());
    sub.until("the device connected", |s| {
        s.iter().any(|(t, p)| t.ends_with("/dev/lab-1/state") && String::from_utf8_lossy(p).contains("\"connected\""))
    })
    .await;

    // An analyser that does not answer: after the sender's 15 s the gateway gives up with EOT.
    sender.command("records.fetch", hub.command("q-0", "records.fetch", serde_json::json!({"dev": "lab-1"}))).await;
    sub.until_signed("the query given up", &keys, |b| {
        b.iter().filter_map(|b| b.event.as_ref()).any(|e| e.code == "astm-not-sent")
    })
    .await;
    let mut stale = Vec::new();
    let mut buf = [0u8; 64];
    while !stale.ends_with(&[spokegate::framing::astm_bytes::EOT]) {
        let n = tokio::time::timeout(PATIENCE, dev.peer.read(&mut buf)).await.expect("ENQ and EOT").unwrap();
        stale.extend_from_slice(&buf[..n]);
    }
    assert_eq!(stale, [spokegate::framing::astm_bytes::ENQ, spokegate::framing::astm_bytes::EOT]);

    sender.command("records.fetch", hub.command("q-1", "records.fetch", serde_json::json!({"dev": "lab-1"}))).await;
    let analyser = AstmSender { timeout: Duration::from_secs(5) };
    let query = analyser.receive(&mut dev.peer, PATIENCE).await.unwrap();
    let query: Vec<String> = query.iter().map(|r| String::from_utf8_lossy(r).to_string()).collect();
    assert_eq!(query.len(), 3, "{query:?}");
    assert!(query[0].starts_with("H|\\^&"), "{query:?}");
    assert_eq!(query[1], "Q|1|^ALL||||||||||N");
    assert_eq!(query[2], "L|1|N");
    // The answer: the Contour records (astm-034).
    let three = records(&astm_vector("astm-034"));
    let sent = analyser
        .send(
            &mut dev.peer,
            &frames(&three.iter().map(Vec::as_slice).collect::<Vec<_>>()),
            |_, _| false,
            |_| Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(sent, Sent::Delivered { naks: 0 });
    sub.until_signed("the answer's three readings", &keys, |b| {
        b.iter().filter(|b| b.kind == BodyKind::Obs).map(|b| b.obs.as_ref().unwrap().len()).sum::<usize>() >= 3
            && replies(b, "q-1").iter().any(|(s, _)| *s == "done")
    })
    .await;
    gateway.stop().await;
}
