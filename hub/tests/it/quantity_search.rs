//! A clinician's system asks the FHIR search for readings by value (`value-quantity`, FHIR's
//! quantity search): systolic pressures above 180 mmHg, glucose below 10 mmol/L. What each
//! query should find is what FHIR's quantity search says of the values sent (a number stands for
//! the range of its precision; units compared as codes, not converted; a reading without a value
//! never matches). (Before, `value-quantity` was ignored: every reading came back.)

use crate::support::*;
use serde_json::Value;
use spokegate::model::{Code, Observation, Quality, Unit};
use spokegate::pipeline::{make_body, Payload, Source};

const PASSWORD: &str = "a long system password";

fn systolic() -> Code {
    Code { mdc: 150021, loinc: Some("8480-6".into()), name: None }
}

fn glucose() -> Code {
    Code { mdc: 160184, loinc: Some("2339-0".into()), name: None }
}

fn mmhg() -> Unit {
    Unit { ucum: "mm[Hg]".into(), mdc: Some(3872) }
}

fn mmol() -> Unit {
    Unit { ucum: "mmol/L".into(), mdc: Some(4722) }
}

/// The seqs of the readings every page from `path` on finds (following `next` links).
async fn found(port: u16, path: &str) -> Vec<u64> {
    let mut seqs = Vec::new();
    for bundle in fhir_pages(port, path, &basic("his", PASSWORD)).await {
        for e in bundle["entry"].as_array().into_iter().flatten().filter(|e| e["search"]["mode"] == "match") {
            let id = e["resource"]["identifier"][0]["value"].as_str().unwrap();
            seqs.push(id.split('/').nth(2).unwrap().parse().unwrap());
        }
    }
    seqs.sort();
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_quantity_finds_readings_by_value_and_unit_as_fhir_says() {
    let rig = CraftedRig::start("quantity-search").await;
    rig.hub.user("his", PASSWORD, &[("site-1", None, None)]);
    let port = rig.instance.http;
    let from = Source { dev: "vitals-1".into(), profile: "vitals-kv".into() };
    let no_value = Observation { val: None, q: Quality::Invalid, ..Observation::measured(systolic(), 0.0, mmhg()) };
    let readings = [
        Observation::measured(systolic(), 120.0, mmhg()),
        Observation::measured(systolic(), 185.0, mmhg()),
        Observation::measured(glucose(), 7.4, mmol()),
        Observation::measured(glucose(), 5.0, mmol()),
        no_value,
    ];
    for (i, o) in readings.into_iter().enumerate() {
        let t = spokegate::clock::now_micros();
        rig.send(&make_body("site-1", "gw-a", Some(&from), Payload::Obs(vec![o]), i as u64 + 1, t, None)).await;
    }
    until("stored", PATIENCE, || async { rig.db.count("SELECT count(*) FROM observations").await == 5 }).await;

    let ucum = "http://unitsofmeasure.org";
    let mdc = "urn:iso:std:iso:11073:10101";
    for (query, want) in [
        (format!("value-quantity=gt180|{ucum}|mm[Hg]"), vec![2]),
        ("value-quantity=gt180".to_string(), vec![2]),
        ("value-quantity=lt10||mmol/L".to_string(), vec![3, 4]),
        // A number is the range of its precision: 7 is [6.5, 7.5), 7.40 is [7.395, 7.405).
        ("value-quantity=7||mmol/L".to_string(), vec![3]),
        ("value-quantity=7.40||mmol/L".to_string(), vec![3]),
        ("value-quantity=7.41||mmol/L".to_string(), vec![]),
        ("value-quantity=7.4||mm[Hg]".to_string(), vec![]),
        // Not 120, and a reading without a value is not "not 120" either.
        ("value-quantity=ne120||mm[Hg]".to_string(), vec![2]),
        ("value-quantity=ap190||mm[Hg]".to_string(), vec![2]),
        ("value-quantity=sa120".to_string(), vec![2]),
        ("value-quantity=le120".to_string(), vec![1, 3, 4]),
        (format!("value-quantity=gt100|{mdc}|3872"), vec![1, 2]),
        (format!("value-quantity=gt0|{mdc}|4722"), vec![3, 4]),
        ("value-quantity=gt0|http://snomed.info/sct|259018001".to_string(), vec![]),
        // A system without a code: any unit of it.
        (format!("value-quantity=gt150|{ucum}|"), vec![2]),
        (format!("value-quantity=gt0|{mdc}|"), vec![1, 2, 3, 4]),
        // A window, and either of two.
        ("value-quantity=ge100&value-quantity=lt150".to_string(), vec![1]),
        ("value-quantity=lt6||mmol/L,gt180||mm[Hg]".to_string(), vec![2, 4]),
    ] {
        let query = query.replace('|', "%7C").replace('[', "%5B").replace(']', "%5D");
        // One a page: the parameter is carried by the next links.
        assert_eq!(found(port, &format!("/fhir/r4/Observation?site=site-1&{query}&_count=1")).await, want, "{query}");
        let path = format!("/fhir/r4/Observation?site=site-1&{query}&_summary=count");
        let (_, _, body) = http_request(port, "GET", &path, &basic("his", PASSWORD), "").await;
        let counted: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(counted["total"], want.len(), "{query}: {counted}");
    }
    assert_eq!(found(port, "/fhir/r4/Observation?site=site-1").await, [1, 2, 3, 4, 5]);

    for bad in ["high", "gt180%7Cmm%5BHg%5D", "xx100"] {
        let path = format!("/fhir/r4/Observation?value-quantity={bad}");
        let (status, _, body) = http_request(port, "GET", &path, &basic("his", PASSWORD), "").await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("value-quantity `"), "{bad}: {body}");
    }
}
