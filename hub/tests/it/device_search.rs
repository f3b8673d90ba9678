//! An Observation refers to its device and its gateway by identifier (a logical reference); a
//! FHIR client resolves them with `Device?identifier=`: the identifiers are taken from the
//! Observations the search returns, and the Devices found validate as FHIR R4 (fhir.resources).
//! A device is found only by a client whose grants open something of it. (Before, the hub
//! served no Device resources: the references could not be resolved.)

use crate::support::*;
use serde_json::Value;
use spokegate::pipeline::{make_body, Payload, Source};

const PASSWORD: &str = "a long system password";

async fn get(port: u16, path: &str, name: &str) -> (u16, String) {
    let (status, _, body) = http_request(port, "GET", path, &basic(name, PASSWORD), "").await;
    (status, body)
}

async fn found(port: u16, path: &str, name: &str) -> Value {
    let (status, body) = get(port, path, name).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// `system|value` of a Reference by identifier, for a query.
fn token(reference: &Value) -> String {
    let id = &reference["identifier"];
    format!("{}|{}", id["system"].as_str().unwrap(), id["value"].as_str().unwrap()).replace('|', "%7C")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_devices_observations_refer_to_are_found_by_their_identifiers_within_the_grants() {
    let rig = CraftedRig::start("device-search").await;
    rig.hub.user("his", PASSWORD, &[("site-1", None, None)]);
    rig.hub.user("other-site", PASSWORD, &[("site-2", None, None)]);
    let port = rig.instance.http;
    let ecg = Source { dev: "ecg-1".into(), profile: "ecg-text-single".into() };
    let chunk = ecg_chunk(0, 360.0, 0.005);
    let t0 = chunk.t0;
    rig.send(&reading("site-1", "gw-a", 1, 120.0)).await;
    rig.send(&make_body("site-1", "gw-a", Some(&ecg), Payload::Wave(chunk), 2, t0, None)).await;
    until("stored", PATIENCE, || async { rig.db.count("SELECT count(*) FROM messages").await == 2 }).await;

    // The references of an Observation the search returns.
    let observations = found(port, "/fhir/r4/Observation?site=site-1", "his").await;
    let o = &observations["entry"][0]["resource"];
    let (device, gateway) = (token(&o["device"]), token(&o["extension"][0]["valueReference"]));
    let path = format!("/fhir/r4/Device?identifier={device},{gateway}");
    let (status, body) = get(port, &path, "his").await;
    assert_eq!(status, 200, "{body}");
    let said = crate::fhir::validate(&body);
    let devices: Vec<(String, String)> = said["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["identifier"].as_str().unwrap().to_string(), d["profile"].as_str().unwrap().to_string()))
        .collect();
    let phd = "http://hl7.org/fhir/uv/phd/StructureDefinition/";
    assert_eq!(
        devices,
        [
            ("site-1/gw-a/vitals-1".to_string(), format!("{phd}PhdDevice")),
            ("site-1/gw-a".to_string(), format!("{phd}PhgDevice"))
        ],
        "{body}"
    );
    let bundle: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(bundle["total"], 2, "{bundle}");
    let names = &bundle["entry"][0]["resource"]["deviceName"];
    assert!(names.as_array().unwrap().iter().any(|n| n["name"] == "vitals-kv" && n["type"] == "model-name"), "{names}");

    // A device with a waveform only, named without its system; one named twice is found once.
    let waves = found(port, "/fhir/r4/Device?identifier=site-1/gw-a/ecg-1,site-1/gw-a/ecg-1", "his").await;
    assert_eq!(waves["total"], 1, "{waves}");
    let names = &waves["entry"][0]["resource"]["deviceName"];
    assert!(names.as_array().unwrap().iter().any(|n| n["name"] == "ecg-text-single"), "{names}");

    // Nothing of it is open to another site's user; a device never heard of is not found.
    let elsewhere = found(port, &path, "other-site").await;
    assert_eq!(elsewhere["total"], 0, "{elsewhere}");
    let unknown = found(port, "/fhir/r4/Device?identifier=site-1/gw-a/nothing,site-1/gw-z", "his").await;
    assert_eq!(unknown["total"], 0, "{unknown}");

    // The search needs an identifier; another parameter is ignored and said so.
    let (status, body) = get(port, "/fhir/r4/Device", "his").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("takes identifier"), "{body}");
    let named = found(port, "/fhir/r4/Device?identifier=site-1/gw-a&manufacturer=x", "his").await;
    assert_eq!(named["total"], 1, "{named}");
    let outcome = named["entry"].as_array().unwrap().iter().find(|e| e["search"]["mode"] == "outcome").unwrap();
    let said = outcome["resource"]["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(said.contains("the Device search") && said.contains("manufacturer"), "{said}");
}
