//! The FHIR output of a consult (spot readings, an ECG segment, a glucose reading) validates
//! with an independent FHIR R4 model (Python `fhir.resources` 6.4, FHIR 4.0.1), and its values,
//! codes and units are the ones the gateway signed; the ECG's samples are the recording's.
//! The hospital's system reads it as a hub user (HTTP Basic); without credentials, or with a
//! user whose grants open another site, it gets nothing.

use crate::support::*;
use spokegate::model::{Body, BodyKind};
use spokegate::sim::mosquitto::Mosquitto;
use spokegate::sim::waves::{self, WireProtocol};
use spokegate::sim::PtyDevice;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

const CONSULT: &str = "TELE-2026-12-05-007";
/// MIT-BIH record 100's first 1,800 rows (5 s at 360 Hz).
const ECG_ROWS: usize = 1800;
const PASSWORD: &str = "a long system password";

/// A FHIR GET as `name`: (status, head, body).
async fn fhir_get(port: u16, path: &str, name: &str, password: &str) -> (u16, String, String) {
    http_request(port, "GET", path, &basic(name, password), "").await
}

/// Every signed body of the gateway, as a hub that subscribes to everything sees them.
fn collect(port: u16, keys: spokegate::sign::KeyRing) -> Arc<Mutex<Vec<Body>>> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (client, mut ev) = AsyncClient::new(MqttOptions::new("fhir-watch", "127.0.0.1", port), 1000);
    let out = seen.clone();
    tokio::spawn(async move {
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.try_subscribe("spokegate/v1/#", QoS::AtLeastOnce);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Ok(spokegate::hub::HubMessage::Signed(b)) =
                        spokegate::hub::check(&p.topic, &p.payload, &keys)
                    {
                        out.lock().unwrap().push(*b);
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
    });
    seen
}

fn mllp(message: &[u8]) -> Vec<u8> {
    let mut v = vec![0x0b];
    v.extend_from_slice(message);
    v.extend_from_slice(&[0x1c, 0x0d]);
    v
}

pub fn validate(bundle: &str) -> serde_json::Value {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let python = format!("{root}/target/venv-fhir/bin/python");
    assert!(std::path::Path::new(&python).exists(), "{python} is missing: run .ci/setup (it installs fhir.resources)");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bundle.json");
    std::fs::write(&file, bundle).unwrap();
    let out = std::process::Command::new(python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fhir_validate.py"))
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "fhir.resources refused the bundle: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consults_readings_ecg_and_glucose_as_fhir_r4_validate_and_equal_what_the_gateway_signed() {
    let db = TestDb::create();
    let broker = Mosquitto::start();
    let hub = HubSetup::new(&db, &mqtt_input(broker.port));
    let devs = tempfile::tempdir().unwrap();
    let mut ecg = PtyDevice::create(&devs.path().join("ttyECG")).unwrap();
    let mut meter = PtyDevice::create(&devs.path().join("ttyHL7")).unwrap();
    let profiles = devs.path().join("profiles");
    spokegate::sim::recordings::write_wave_profiles(&profiles).unwrap();
    let mut gw = Gateway::start(
        "site-1",
        "gw-f",
        broker.port,
        &hub.jwk(),
        &[("ecg-1", "mitbih-cyton", &ecg.path), ("gluco-1", "hl7-pcd01", &meter.path)],
        &format!("profiles_dir = \"{}\"", profiles.display()),
    );
    hub.trust(&gw.jwk());
    let keys = spokegate::sign::KeyRing::new(spokegate::sign::read_bound_keys(&gw.jwk()).unwrap());
    let seen = collect(broker.port, keys);
    let instance = hub.serve("f");
    instance.ready().await;
    hub.user("his", PASSWORD, &[("site-1", None, None)]);
    hub.user("other-site", PASSWORD, &[("site-2", None, None)]);
    hub.user("other-consult", PASSWORD, &[("site-1", Some("gw-f"), Some("ANOTHER-CONSULT"))]);
    hub.user("this-consult", PASSWORD, &[("site-1", Some("gw-f"), Some(CONSULT))]);

    // The operator opens the consult on the spoke PC.
    gw.start_consult(CONSULT).await;

    // Spot readings, a Continua glucose message, 5 s of MIT-BIH record 100.
    gw.send(&[121, 117]).await;
    let glucose =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/hl7/continua_wan_oru_r01_glucose.hl7"))
            .unwrap();
    meter.peer.send(&mllp(&glucose)).await.unwrap();
    let rec = waves::mitbih_100();
    ecg.peer.send(&WireProtocol::Cyton.stream(&rec, 0, ECG_ROWS, |_| false)).await.unwrap();

    until("the consult's readings and every ECG sample are stored", PATIENCE, || async {
        db.count(&format!("SELECT count(*) FROM observations WHERE consult = '{CONSULT}' AND dev = 'gluco-1'")).await
            >= 1
            && db
                .count(&format!("SELECT count(*) FROM observations WHERE consult = '{CONSULT}' AND dev = 'vitals-1'"))
                .await
                >= 2
            && db
                .count(&format!("SELECT coalesce(sum(n), 0)::bigint FROM wave_chunks WHERE consult = '{CONSULT}'"))
                .await
                >= ECG_ROWS as i64
    })
    .await;

    // Nobody, a wrong password, a user of another site: nothing of the consult.
    let bundle = format!("/fhir/r4/Bundle?consult={CONSULT}");
    let (status, head, body) = http_request(instance.http, "GET", &bundle, "", "").await;
    assert_eq!(status, 401, "{body}");
    assert!(head.to_ascii_lowercase().contains("www-authenticate: basic realm="), "{head}");
    assert_eq!(fhir_get(instance.http, &bundle, "his", "wrong").await.0, 401);
    assert_eq!(fhir_get(instance.http, &bundle, "other-site", PASSWORD).await.0, 404);
    let (status, _, text) =
        fhir_get(instance.http, &format!("/fhir/r4/Observation?consult={CONSULT}"), "other-site", PASSWORD).await;
    assert_eq!(status, 200);
    let other: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(other["total"], 0, "another site's user found readings: {text}");
    // A grant on one consult of the gateway opens that consult only.
    assert_eq!(fhir_get(instance.http, &bundle, "other-consult", PASSWORD).await.0, 404);
    let everything = "/fhir/r4/Observation?site=site-1";
    let (_, _, text) = fhir_get(instance.http, everything, "other-consult", PASSWORD).await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap()["total"], 0, "{text}");
    let (_, _, text) = fhir_get(instance.http, everything, "this-consult", PASSWORD).await;
    let granted: serde_json::Value = serde_json::from_str(&text).unwrap();
    let found = granted["entry"].as_array().unwrap();
    assert!(!found.is_empty(), "{text}");
    assert!(
        found.iter().all(|e| e["resource"]["encounter"]["identifier"]["value"] == CONSULT),
        "a consult grant found readings of another consult: {text}"
    );
    assert_eq!(fhir_get(instance.http, &bundle, "this-consult", PASSWORD).await.0, 200);

    let (status, _, text) = fhir_get(instance.http, &bundle, "his", PASSWORD).await;
    assert_eq!(status, 200, "{text}");
    let out_dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/test-output/hub-fhir"));
    std::fs::create_dir_all(out_dir).unwrap();
    std::fs::write(out_dir.join("consult-bundle.json"), &text).unwrap();
    let checked = validate(&text);
    assert_eq!(checked["type"], "transaction");
    let observations = checked["observations"].as_array().unwrap();
    let by_id: BTreeMap<&str, &serde_json::Value> =
        observations.iter().map(|o| (o["identifier"].as_str().unwrap(), o)).collect();
    assert_eq!(by_id.len(), observations.len(), "identifiers are unique");

    // Every spot value the gateway signed for the consult is there, as it was signed.
    let bodies = seen.lock().unwrap().clone();
    let mut spot = 0;
    for b in bodies.iter().filter(|b| b.kind == BodyKind::Obs && b.consult_id() == Some(CONSULT)) {
        for (i, o) in b.obs.iter().flatten().enumerate() {
            let id = format!("{}/{}/{}/{}", b.site, b.gw, b.seq, i);
            let f = by_id.get(id.as_str()).unwrap_or_else(|| panic!("{id} is not in the bundle"));
            assert_eq!(f["codings"]["urn:iso:std:iso:11073:10101"], o.code.mdc.to_string(), "{id}");
            assert_eq!(f["codings"]["http://loinc.org"].as_str(), o.code.loinc.as_deref(), "{id}");
            assert_eq!(f["quantity"]["value"].as_f64(), o.val, "{id}");
            assert_eq!(f["quantity"]["code"].as_str(), Some(o.unit.ucum.as_str()), "{id}");
            assert_eq!(f["quantity"]["system"], "http://unitsofmeasure.org");
            assert_eq!(f["encounter"], CONSULT);
            assert!(f["profile"].as_str().unwrap().ends_with("/PhdNumericObservation"));
            assert_eq!(f["request"], format!("PUT Observation?identifier=urn:spokegate:observation|{id}"));
            spot += 1;
        }
    }
    assert!(spot >= 3, "two pressures and the glucose at least: {spot}");
    let glucose_mdc = bodies
        .iter()
        .filter(|b| b.dev.as_deref() == Some("gluco-1"))
        .flat_map(|b| b.obs.iter().flatten())
        .map(|o| o.code.mdc)
        .next()
        .expect("the glucose reading was signed");
    let glucose_code = glucose_mdc.to_string();
    assert!(observations.iter().any(|o| o["codings"]["urn:iso:std:iso:11073:10101"] == glucose_code.as_str()));

    // The ECG: per channel, the sampled data of the consult's chunks in index order are the
    // recording's first rows, exactly, with the gain and baseline the gateway signed.
    let chunks: Vec<&Body> = {
        let mut c: Vec<&Body> =
            bodies.iter().filter(|b| b.kind == BodyKind::Wave && b.consult_id() == Some(CONSULT)).collect();
        c.sort_by_key(|b| b.wave.as_ref().unwrap().i0);
        c
    };
    let first = chunks.first().expect("ECG chunks were signed").wave.as_ref().unwrap();
    for (ci, ch) in first.ch.iter().enumerate() {
        let mut samples = Vec::new();
        for b in &chunks {
            let id = format!("{}/{}/{}/{}", b.site, b.gw, b.seq, ch.label);
            let f = by_id.get(id.as_str()).unwrap_or_else(|| panic!("{id} is not in the bundle"));
            assert!(f["profile"].as_str().unwrap().ends_with("/PhdRtsaObservation"));
            let s = &f["sampled"];
            assert_eq!(s["factor"].as_f64(), Some(ch.gain));
            assert_eq!(s["origin"].as_f64(), Some(-(ch.base as f64) * ch.gain));
            assert_eq!(s["unit"].as_str(), Some(ch.unit.ucum.as_str()));
            assert!((s["period"].as_f64().unwrap() - 1000.0 / first.rate).abs() < 1e-9);
            samples.extend(s["data"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap() as i32));
        }
        let want: Vec<i32> = rec.channel(ci).into_iter().take(ECG_ROWS).collect();
        assert_eq!(&samples[..ECG_ROWS.min(samples.len())], &want[..], "channel {} equals the recording", ch.label);
    }
    let devices = checked["devices"].as_array().unwrap();
    assert!(devices
        .iter()
        .any(|d| d["profile"].as_str().unwrap().ends_with("/PhgDevice") && d["identifier"] == "site-1/gw-f"));
    assert!(devices.iter().any(|d| d["identifier"] == "site-1/gw-f/ecg-1"));
    // Every observation points at the Device entries of its own device and gateway (by their
    // fullUrls), and the device is the one that signed it.
    let dev_of = |identifier: &str| -> String {
        let seq: u64 = identifier.split('/').nth(2).unwrap().parse().unwrap();
        let b = bodies.iter().find(|b| b.site == "site-1" && b.gw == "gw-f" && b.seq == seq).expect("signed");
        b.dev.clone().expect("a device")
    };
    let device_at: BTreeMap<&str, &str> =
        devices.iter().map(|d| (d["fullUrl"].as_str().unwrap(), d["identifier"].as_str().unwrap())).collect();
    for o in observations {
        let id = o["identifier"].as_str().unwrap();
        let at = |r: &serde_json::Value| device_at.get(r["reference"].as_str().unwrap_or("")).copied();
        assert_eq!(at(&o["device"]), Some(format!("site-1/gw-f/{}", dev_of(id)).as_str()), "{o}");
        assert_eq!(at(&o["gateway"][0]), Some("site-1/gw-f"), "{o}");
    }

    // The search API, with a code: only the glucose, and it validates too.
    let (status, _, text) = fhir_get(
        instance.http,
        &format!("/fhir/r4/Observation?consult={CONSULT}&code=urn:iso:std:iso:11073:10101|{glucose_mdc}"),
        "his",
        PASSWORD,
    )
    .await;
    assert_eq!(status, 200);
    let search = validate(&text);
    assert_eq!(search["type"], "searchset");
    let found = search["observations"].as_array().unwrap();
    assert!(
        !found.is_empty() && found.iter().all(|o| o["codings"]["urn:iso:std:iso:11073:10101"] == glucose_code.as_str())
    );
    // In a search's results the devices are named by their identifiers (a logical reference).
    for o in found {
        let dev = dev_of(o["identifier"].as_str().unwrap());
        let device =
            serde_json::json!({"type": "Device", "identifier": format!("urn:spokegate:device|site-1/gw-f/{dev}")});
        assert_eq!(o["device"], device, "{o}");
        let gateway = serde_json::json!([{"type": "Device", "identifier": "urn:spokegate:gateway|site-1/gw-f"}]);
        assert_eq!(o["gateway"], gateway, "{o}");
    }
    let (status, _, _) = fhir_get(instance.http, "/fhir/r4/Bundle?consult=no-such-consult", "his", PASSWORD).await;
    assert_eq!(status, 404);
    gw.stop().await;
}
