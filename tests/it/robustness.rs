//! A device can send anything. The daemon never panics, counts and reports bad input as events,
//! resynchronises, and delivers the good readings that follow.

use crate::e2e::fixture;
use crate::harness::*;
use proptest::prelude::*;
use spokegate::decode::Decoder;
use spokegate::framing::{framer_for, mllp_wrap};
use spokegate::model::BodyKind;
use spokegate::profile::ProfileRegistry;
use std::sync::atomic::Ordering;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_truncation_oversize_broken_hl7_and_a_flood_are_reported_and_good_frames_still_arrive() {
    let Rig { broker: _broker, gw, mut dev, config, mut sub } = Rig::hl7_monitor().await;
    let gateway = RunningGateway::start(&config, gw.key());
    let good = mllp_wrap(&fixture("pcd01_oru_r01_nibp_acme"));

    // Random bytes (no frame start among them), a frame cut in half, an unterminated frame over the
    // 64 KiB limit, an HL7 message with broken segments, then a good message.
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let noise: Vec<u8> = (0..500).map(|_| rng.byte().max(0x0c)).collect();
    dev.peer.send(&noise).await.unwrap();
    dev.peer.send(&good[..good.len() / 2]).await.unwrap();
    let mut huge = vec![0x0b];
    huge.extend(std::iter::repeat_n(b'A', 70_000));
    dev.peer.send(&huge).await.unwrap();
    dev.peer.send(&mllp_wrap(b"MSH|^~\\&|X\rOBX|||||\x00\x01|\rZZZ")).await.unwrap();
    dev.peer.send(&good).await.unwrap();

    let keys = gw.keys();
    // The broken message has no MSH-9, so it cannot even be typed.
    let codes_wanted = ["frame-garbage", "frame-truncated", "frame-oversize", "hl7-unparseable"];
    sub.until("the four kinds of bad input and the good message", |seen| {
        let bodies = signed(seen, &keys);
        let codes: Vec<String> = bodies.iter().filter_map(|b| b.event.as_ref().map(|e| e.code.clone())).collect();
        codes_wanted.iter().all(|c| codes.iter().any(|x| x == c)) && bodies.iter().any(|b| b.kind == BodyKind::Obs)
    })
    .await;

    // A flood: 2 MB of random bytes with frame starts in it, then one more good message.
    let flood: Vec<u8> = (0..2_000_000).map(|_| rng.byte()).collect();
    for chunk in flood.chunks(64 * 1024) {
        dev.peer.send(chunk).await.unwrap();
    }
    dev.peer.send(b"\x1c\r").await.unwrap();
    dev.peer.send(&good).await.unwrap();
    sub.until_signed("the good message after the flood", &keys, |bodies| {
        bodies.iter().filter(|b| b.kind == BodyKind::Obs).count() >= 2
    })
    .await;
    let c = gateway.counters.devices["monitor-1"].clone();
    let rejected = c.rejected_frames.load(Ordering::Relaxed);
    assert!(rejected > 100, "the flood's bad frames are counted: {rejected}");
    assert!(c.dropped_bytes.load(Ordering::Relaxed) > 1_000_000);
    sub.until_signed("a suppressed-events report", &keys, |bodies| {
        bodies.iter().any(|b| {
            b.event.as_ref().is_some_and(|e| {
                e.code == "events-suppressed" || e.data.as_ref().is_some_and(|d| d.contains_key("suppressed_before"))
            })
        })
    })
    .await;
    let events = sub.verified.iter().filter(|b| b.kind == BodyKind::Event).count() as u64;
    assert!(events < rejected, "events are rate-limited: {events} events for {rejected} bad frames");
    gateway.stop().await;
}

/// Deterministic pseudo-random bytes (xorshift64), so a failure can be replayed.
struct XorShift(u64);

impl XorShift {
    fn byte(&mut self) -> u8 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 32) as u8
    }
}

/// Every shipped serial profile, by id, with its framing and decoder (image devices are not framed:
/// mangled images are the `media::scrub` property test's).
fn decoders() -> Vec<(String, spokegate::profile::FramingSpec, Decoder)> {
    let reg = ProfileRegistry::builtin().unwrap();
    reg.ids()
        .filter_map(|id| {
            let p = reg.get(id).unwrap();
            let framed = p.ble.is_none() && !matches!(p.decoder, spokegate::profile::DecoderSpec::Image(_));
            framed.then(|| (id.to_string(), p.framing.clone(), Decoder::new(p.decoder.clone())))
        })
        .collect()
}

/// What each shipped serial profile's device really sends, as bytes on the line: the HL7 fixtures
/// in MLLP, the OneTouch dump, the vitals line the profile documents, and the recordings (MIT-BIH,
/// PTB-XL, the heart sound) in the profiles' wire formats.
fn wire(id: &str) -> Vec<u8> {
    use spokegate::sim::waves::{self, WireProtocol};
    match id {
        "hl7-pcd01" => [
            "pcd01_oru_r01_nibp_acme",
            "continua_wan_oru_r01_bp",
            "continua_wan_oru_r01_glucose",
            "continua_wan_oru_r01_oximeter",
            "continua_wan_oru_r01_thermometer",
            "continua_wan_oru_r01_scale",
            "oru_r01_lab_glucose_v25",
        ]
        .iter()
        .flat_map(|f| mllp_wrap(&fixture(f)))
        .collect(),
        "onetouch-ultra2" => {
            std::fs::read(format!("{}/tests/fixtures/onetouch_ultra2_dmp.txt", env!("CARGO_MANIFEST_DIR"))).unwrap()
        }
        "vitals-kv" => b"SYS=120 DIA=80 MAP=93 PR=72 SPO2=98 TEMP=367\r\n".to_vec(),
        "openbci-cyton" => WireProtocol::Cyton.stream(&waves::mitbih_100(), 0, 40, |_| false),
        "ecg-text-single" => {
            waves::mitbih_100().channel(0)[..40].iter().flat_map(|v| format!("{v}\r\n").into_bytes()).collect()
        }
        "ecg-12lead-text" => WireProtocol::TextRows.stream(&waves::ptbxl_00001(), 0, 40, |_| false),
        "pcm-stethoscope" => WireProtocol::Pcm { rows: 20 }.stream(&waves::pcg_c0003(), 0, 200, |_| false),
        // A Contour upload as the meter sent it (glucometerutils, vector astm-033).
        "astm-glucometer" => spokegate::sim::recordings::CONTOUR_ASTM_SESSION.to_vec(),
        // An analyser message of sourced records (python-astm's Omnilab/Architect H, P, O, R, C, L;
        // vectors astm-014..021), framed as a sender frames them.
        "astm-analyser" => {
            let records = ["astm-014", "astm-015", "astm-016", "astm-019", "astm-020", "astm-021"].map(astm_vector);
            let records: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
            let mut wire = vec![spokegate::framing::astm_bytes::ENQ];
            wire.extend(spokegate::sim::astm::frames(&records).concat());
            wire.push(spokegate::framing::astm_bytes::EOT);
            wire
        }
        other => panic!("no real input for shipped profile {other}: add one"),
    }
}

/// The frames the profile's own framer cuts from its real input; each decodes cleanly.
fn real_frames() -> Vec<(String, Decoder, Vec<Vec<u8>>)> {
    decoders()
        .into_iter()
        .map(|(id, framing, decoder)| {
            let mut framer = framer_for(&framing);
            framer.push(&wire(&id));
            let mut frames = Vec::new();
            while let Ok(Some(f)) = framer.next_frame() {
                frames.push(f);
            }
            assert!(!frames.is_empty(), "{id}: its real input forms frames");
            let decoded: Vec<_> = frames
                .iter()
                .map(|f| decoder.decode(f, 0).unwrap_or_else(|e| panic!("{id}: a real frame is refused: {e:?}")))
                .collect();
            let readings = decoded.iter().filter(|d| !d.observations.is_empty() || d.wave.is_some()).count();
            if id == "astm-analyser" {
                // The generic analyser maps glucose and HbA1c; the sourced analyser result is a
                // sodium: read, and reported as a test the profile does not map.
                assert!(decoded[0].problems.iter().any(|e| e.code == "astm-test-unknown"), "{id}: {decoded:?}");
            } else {
                assert!(readings > 0, "{id}: the decoder reads its device's frames");
            }
            (id, decoder, frames)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn framers_and_decoders_never_panic_on_arbitrary_bytes(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8)) {
        for (_, framing, decoder) in decoders() {
            let mut framer = framer_for(&framing);
            for chunk in &chunks {
                // Arbitrary bytes rarely form a frame: each chunk also goes to the decoder as one.
                let _ = decoder.decode(chunk, 0);
                framer.push(chunk);
                loop {
                    match framer.next_frame() {
                        Ok(Some(frame)) => {
                            let _ = decoder.decode(&frame, 0);
                        }
                        Ok(None) => break,
                        Err(_) => {}
                    }
                }
            }
            let _ = framer.finish();
        }
    }

    /// Each shipped decoder (HL7, text, Cyton, samples, PCM) gets its own device's real frames,
    /// cut short, with a byte changed and a byte inserted.
    #[test]
    fn every_decoder_survives_its_real_frames_mangled(pick in any::<usize>(), cut in any::<usize>(), flip in any::<usize>(), byte in any::<u8>(), insert in any::<usize>()) {
        for (_id, decoder, frames) in real_frames() {
            let mut m = frames[pick % frames.len()].clone();
            m.truncate((cut % (m.len() + 1)).max(1));
            let i = flip % m.len();
            m[i] = byte;
            let _ = decoder.decode(&m, 0);
            m.insert(insert % (m.len() + 1), byte);
            let _ = decoder.decode(&m, 0);
        }
    }

    #[test]
    fn a_frame_is_recovered_whatever_junk_precedes_it(junk in proptest::collection::vec(0x0c..=0xffu8, 0..200)) {
        let mut framer = framer_for(&spokegate::profile::FramingSpec::Mllp { max_len: 1024 });
        framer.push(&junk);
        framer.push(&mllp_wrap(b"MSH|ok"));
        let mut frames = Vec::new();
        loop {
            match framer.next_frame() {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(_) => {}
            }
        }
        prop_assert_eq!(frames, vec![b"MSH|ok".to_vec()]);
    }
}

/// A reading whose signed message would not fit the 1 MiB MQTT packet limit (a key-value line with
/// 30,000 mapped values) is never queued as such: an event says so, and the small reading after it
/// is delivered (the queue is not blocked by a message the broker would refuse).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reading_too_large_for_the_broker_becomes_an_event_and_the_queue_goes_on() {
    const N: usize = 30_000;
    let broker = Mosquitto::start();
    let gw = GatewayDir::new();
    let profiles = gw.path().join("profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    let mut profile = String::from(
        "id = \"kv-wide\"\n[framing]\nkind = \"line\"\nmax_len = 1000000\n[decoder]\nkind = \"text\"\nformat = \"key-value\"\n",
    );
    for i in 0..N {
        profile.push_str(&format!("[[field]]\nsource = \"F{i}\"\nmdc = 150021\nucum = \"mm[Hg]\"\n"));
    }
    std::fs::write(profiles.join("kv-wide.toml"), profile).unwrap();
    let mut dev = spokegate::sim::PtyDevice::create(&gw.path().join("ttyWIDE")).unwrap();
    let config = gw.config(
        broker.port,
        &[("wide-1", "kv-wide", &dev.path)],
        &format!("profiles_dir = \"{}\"\n", profiles.display()),
    );
    let mut sub = Subscriber::connect(broker.port, "wide-hub").await;
    let gateway = RunningGateway::start(&config, gw.key());
    let line: Vec<String> = (0..N).map(|i| format!("F{i}=1")).collect();
    dev.peer.send(format!("{}\r\n", line.join(" ")).as_bytes()).await.unwrap();
    dev.peer.send(b"F0=5\r\n").await.unwrap();
    let keys = gw.keys();
    sub.until_signed("the event, then the small reading", &keys, |b| {
        b.iter().any(|b| b.event.as_ref().is_some_and(|e| e.code == "message-too-large"))
            && b.iter().any(|b| b.obs.as_ref().is_some_and(|o| o.len() == 1 && o[0].val == Some(5.0)))
    })
    .await;
    let bodies = sub.bodies(&keys);
    let e = bodies.iter().filter_map(|b| b.event.as_ref()).find(|e| e.code == "message-too-large").unwrap();
    let data = e.data.as_ref().unwrap();
    assert!(data["bytes"].as_u64().unwrap() > data["limit"].as_u64().unwrap());
    assert_eq!(data["type"], "obs");
    gateway.stop().await;
}
