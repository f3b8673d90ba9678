//! End to end: HL7 from a pseudo-terminal device, through the daemon, into a real mosquitto, read
//! back by a subscriber that verifies every COSE signature with the public key alone.

use crate::harness::*;
use spokegate::framing::mllp_wrap;
use spokegate::model::{BodyKind, Quality};

/// The HL7 fixtures a device sends, in order.
pub const MESSAGES: &[&str] = &[
    "pcd01_oru_r01_nibp_acme",
    "continua_wan_oru_r01_bp",
    "continua_wan_oru_r01_glucose",
    "continua_wan_oru_r01_oximeter",
    "continua_wan_oru_r01_thermometer",
    "oru_r01_lab_glucose_v25",
];

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/hl7/{name}.hl7", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// A numeric MDC observation as the source message states it: (MDC code, value, MDC unit code, unit name).
#[derive(Debug, Clone, PartialEq)]
pub struct Stated {
    pub mdc: u32,
    pub value: f64,
    pub unit_mdc: u32,
    pub unit_name: String,
}

/// Reads the numeric, MDC-coded OBX rows of a message with plain string splitting, independently
/// of the gateway's HL7 code: the expected values come from the recording itself.
pub fn stated_observations(message: &[u8]) -> Vec<Stated> {
    let text = String::from_utf8_lossy(message);
    text.split('\r')
        .filter(|s| s.starts_with("OBX|"))
        .filter_map(|s| {
            let f: Vec<&str> = s.split('|').collect();
            let code: Vec<&str> = f.get(3)?.split('^').collect();
            let unit: Vec<&str> = f.get(6)?.split('^').collect();
            (f.get(2) == Some(&"NM") && code.get(2) == Some(&"MDC") && f.get(11) != Some(&"X")).then(|| Stated {
                mdc: code[0].parse().unwrap(),
                value: f[5].parse().unwrap(),
                unit_mdc: unit[0].parse().unwrap(),
                unit_name: unit.get(1).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

/// UCUM for the MDC unit names in the fixtures (ISO/IEEE 11073-10101 dimension names).
pub fn ucum_for(mdc_unit_name: &str) -> &'static str {
    match mdc_unit_name {
        "MDC_DIM_MMHG" => "mm[Hg]",
        "MDC_DIM_MILLI_G_PER_DL" => "mg/dL",
        "MDC_DIM_PERCENT" => "%",
        "MDC_DIM_SEC" => "s",
        "MDC_DIM_MILLI_G" => "mg",
        "MDC_DIM_G" => "g",
        "MDC_DIM_FAHR" => "[degF]",
        other => panic!("no UCUM known for {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hl7_readings_reach_the_hub_signed_with_every_value_code_and_unit_intact() {
    let Rig { broker, gw, mut dev, config, mut sub } = Rig::hl7_monitor().await;
    let gateway = RunningGateway::start(&config, gw.key());

    let expected: Vec<Stated> = MESSAGES.iter().flat_map(|m| stated_observations(&fixture(m))).collect();
    assert_eq!(expected.len(), 13, "fixtures hold 13 numeric MDC observations");
    for m in MESSAGES {
        dev.peer.send(&mllp_wrap(&fixture(m))).await.unwrap();
    }
    // Each message is acknowledged, after its readings were accepted; the lab result has no MDC code.
    let acks = read_acks(&mut dev.peer, MESSAGES.len()).await;
    assert_eq!(acks, ["AA", "AA", "AA", "AA", "AA", "AE"]);

    let keys = gw.keys();
    sub.until("every observation and the unmapped-code event", |seen| {
        let bodies = signed(seen, &keys);
        bodies.iter().filter(|b| b.kind == BodyKind::Obs).flat_map(|b| b.obs.clone().unwrap()).count() >= expected.len()
            && bodies.iter().any(|b| b.event.as_ref().is_some_and(|e| e.code == "code-unmapped"))
    })
    .await;
    let bodies = sub.bodies(&keys);
    let obs: Vec<_> = bodies.iter().filter(|b| b.kind == BodyKind::Obs).flat_map(|b| b.obs.clone().unwrap()).collect();
    assert_eq!(obs.len(), expected.len());
    for (o, s) in obs.iter().zip(&expected) {
        assert_eq!(o.code.mdc, s.mdc);
        assert_eq!(o.val, Some(s.value));
        assert_eq!(o.q, Quality::Ok);
        assert_eq!(o.unit.mdc, Some(s.unit_mdc));
        assert_eq!(o.unit.ucum, ucum_for(&s.unit_name));
    }
    for b in &bodies {
        assert_eq!(
            (b.site.as_str(), b.gw.as_str(), b.dev.as_deref().unwrap_or(""), b.prof.as_deref().unwrap_or("")),
            ("test-site", "gw-test", "monitor-1", "hl7-pcd01")
        );
    }
    let seqs: Vec<u64> = bodies.iter().map(|b| b.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seq strictly increasing: {seqs:?}");
    let events: Vec<&str> = bodies.iter().filter_map(|b| b.event.as_ref()).map(|e| e.code.as_str()).collect();
    assert!(events.contains(&"code-unmapped"), "{events:?}");
    // No patient identifier left the gateway.
    for (_, payload) in &sub.seen {
        let text = String::from_utf8_lossy(payload);
        for needle in ["Doe", "Estherhaus", "789567", "Sherwood"] {
            assert!(!text.contains(needle), "{needle} was published");
        }
    }
    // Retained birth and device state are there for late subscribers.
    let mut late = Subscriber::connect(broker.port, "late-hub").await;
    late.until("retained status and state", |seen| {
        seen.iter().any(|(t, p)| t.ends_with("/status") && String::from_utf8_lossy(p).contains("\"online\""))
            && seen.iter().any(|(t, p)| {
                t.ends_with("/dev/monitor-1/state") && String::from_utf8_lossy(p).contains("\"connected\"")
            })
    })
    .await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_or_foreign_message_is_never_shown_as_valid() {
    use spokegate::hub::{check, Rejection};
    use spokegate::sign::{KeyRingError, OpenError};
    let Rig { broker: _broker, gw, mut dev, config, mut sub } = Rig::hl7_monitor().await;
    let gateway = RunningGateway::start(&config, gw.key());
    dev.peer.send(&mllp_wrap(&fixture("pcd01_oru_r01_nibp_acme"))).await.unwrap();
    sub.until("one obs", |seen| seen.iter().any(|(t, _)| t.ends_with("/obs"))).await;
    gateway.stop().await;

    let (topic, payload) = sub.seen.iter().find(|(t, _)| t.ends_with("/obs")).unwrap().clone();
    let keys = gw.keys();
    assert!(check(&topic, &payload, &keys).is_ok());
    // A flipped byte anywhere.
    let mut tampered = payload.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x20;
    assert!(check(&topic, &tampered, &keys).is_err());
    // The right message on another device's topic.
    let moved = topic.replace("monitor-1", "monitor-2");
    assert!(matches!(check(&moved, &payload, &keys), Err(Rejection::Mismatch { field: "dev", .. })));
    // Unsigned JSON on a signed topic.
    assert!(check(&topic, br#"{"v":1,"type":"obs"}"#, &keys).is_err());
    // Another gateway's key.
    let other = GatewayDir::new();
    assert!(matches!(
        check(&topic, &payload, &other.keys()),
        Err(Rejection::Open(OpenError::Key(KeyRingError::UnknownKey(_))))
    ));
}
