//! An independent FHIR client reads the hub as a hospital's system does: SMART on FHIR's Python
//! `fhirclient` (its own R4 models, which refuse JSON R4 does not allow) reads the
//! CapabilityStatement first, then searches Observations by LOINC code a page at a time over
//! HTTP Basic, following the `next` links; it gets every reading with that code, once, as signed,
//! and resolves their device by its identifier. Then by value, latest first.

use crate::support::*;
use spokegate::model::{Body, Code, Observation, Unit};
use spokegate::pipeline::{make_body, Payload, Source};

const PASSWORD: &str = "a long system password";

fn reading(seq: u64, mdc: u32, loinc: &str, ucum: &str, value: f64) -> Body {
    let from = Source { dev: "vitals-1".into(), profile: "vitals-kv".into() };
    let obs = vec![Observation::measured(
        Code { mdc, loinc: Some(loinc.into()), name: None },
        value,
        Unit { ucum: ucum.into(), mdc: None },
    )];
    make_body("site-1", "gw-a", Some(&from), Payload::Obs(obs), seq, spokegate::clock::now_micros(), None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_on_fhirs_client_reads_the_statement_and_pages_through_a_search_by_loinc_code() {
    let rig = CraftedRig::start("fhirclient").await;
    rig.hub.user("his", PASSWORD, &[("site-1", None, None)]);
    // Five systolic pressures and three pulse rates, interleaved.
    let mut systolic = Vec::new();
    for seq in 1..=8u64 {
        let body = if seq % 3 == 0 {
            reading(seq, 149530, "8867-4", "/min", 60.0 + seq as f64)
        } else {
            systolic.push((format!("site-1/gw-a/{seq}/0"), 110.0 + seq as f64));
            reading(seq, 150021, "8480-6", "mm[Hg]", 110.0 + seq as f64)
        };
        rig.send(&body).await;
    }
    until("stored", PATIENCE, || async { rig.db.count("SELECT count(*) FROM observations").await == 8 }).await;

    let client = |params: &[&str]| {
        let out = std::process::Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fhir_client.py"))
            .arg(format!("http://127.0.0.1:{}/fhir/r4", rig.instance.http))
            .args(["his", PASSWORD])
            .args(params)
            .output()
            .expect("python3 runs (.ci/setup installs fhirclient)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "fhirclient failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap()
    };
    let got = client(&["code=http://loinc.org|8480-6", "_count=2"]);
    assert_eq!(got["fhirVersion"], "4.0.1");
    let declared: Vec<&str> =
        got["observation_search"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(declared.contains(&"code") && declared.contains(&"_lastUpdated"), "{got}");
    // Five values two to a page: three pages, every value once, in order, as signed.
    assert_eq!(got["pages"], 3, "{got}");
    let observations = got["observations"].as_array().unwrap();
    let seen: Vec<(String, f64)> = observations
        .iter()
        .map(|o| (o["identifier"].as_str().unwrap().to_string(), o["value"].as_f64().unwrap()))
        .collect();
    assert_eq!(seen, systolic, "{got}");
    for o in observations {
        assert_eq!(
            o["codes"],
            serde_json::json!(["http://loinc.org|8480-6", "urn:iso:std:iso:11073:10101|150021"]),
            "{o}"
        );
        assert_eq!(o["device"], "site-1/gw-a/vitals-1", "{o}");
    }
    // The device reference, resolved by the client.
    assert_eq!(
        got["devices"],
        serde_json::json!([{"identifier": "site-1/gw-a/vitals-1", "names": ["model-name:vitals-kv", "user-friendly-name:vitals-1"]}]),
        "{got}"
    );
    assert!(declared.contains(&"date") && declared.contains(&"value-quantity"), "{got}");

    // Systolic pressures above 113 mmHg, latest first (signed one after another: in seq order).
    let got = client(&["code=http://loinc.org|8480-6", "value-quantity=gt113||mm[Hg]", "_sort=-date", "_count=2"]);
    let mut above: Vec<(String, f64)> = systolic.iter().filter(|(_, v)| *v > 113.0).cloned().collect();
    above.reverse();
    let seen: Vec<(String, f64)> = got["observations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["identifier"].as_str().unwrap().to_string(), o["value"].as_f64().unwrap()))
        .collect();
    assert!(!above.is_empty() && above.len() < systolic.len(), "the test wants a value that tells them apart");
    assert_eq!(seen, above, "{got}");
}
