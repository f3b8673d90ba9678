//! A hospital's system searches readings by code in either of the systems the hub codes in
//! (IEEE 11073-10101 and LOINC), with a system or without, several at once; a code the hub's
//! readings do not carry, or a system it does not code in, finds nothing. (Before, a LOINC code
//! or any code that was not a number was ignored, and the search returned every reading.)

use crate::support::*;
use spokegate::model::{Body, Code, Observation, Unit};
use spokegate::pipeline::{make_body, Payload, Source};

const PASSWORD: &str = "a long system password";

/// The codes of three readings, as the shipped profiles map them (vitals-kv's systolic pressure
/// and pulse rate, ble-heart-rate's RR interval, which has no LOINC code).
const READINGS: &[(u32, Option<&str>, &str, u32, f64)] = &[
    (150021, Some("8480-6"), "mm[Hg]", 266016, 121.0),
    (149530, Some("8867-4"), "/min", 264864, 72.0),
    (147240, None, "s", 264320, 0.83),
];

fn coded(seq: u64, (mdc, loinc, ucum, unit_mdc, value): (u32, Option<&str>, &str, u32, f64)) -> Body {
    let from = Source { dev: "vitals-1".into(), profile: "vitals-kv".into() };
    let obs = vec![Observation::measured(
        Code { mdc, loinc: loinc.map(str::to_string), name: None },
        value,
        Unit { ucum: ucum.into(), mdc: Some(unit_mdc) },
    )];
    make_body("site-1", "gw-a", Some(&from), Payload::Obs(obs), seq, spokegate::clock::now_micros(), None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_by_code_finds_the_readings_that_carry_it_in_either_system_and_nothing_else() {
    let rig = CraftedRig::start("codes").await;
    rig.hub.user("his", PASSWORD, &[("site-1", None, None)]);
    for (i, r) in READINGS.iter().enumerate() {
        rig.send(&coded(i as u64 + 1, *r)).await;
    }
    until("stored", PATIENCE, || async {
        rig.db.count("SELECT count(*) FROM observations").await == READINGS.len() as i64
    })
    .await;
    let (systolic, pulse, rr) = (121.0, 72.0, 0.83);
    let cases: &[(&str, &[f64])] = &[
        ("150021", &[systolic]),
        ("8480-6", &[systolic]),
        ("urn:iso:std:iso:11073:10101|149530", &[pulse]),
        ("http://loinc.org|8867-4", &[pulse]),
        ("147240", &[rr]),
        ("150021,http://loinc.org|8867-4", &[systolic, pulse]),
        ("http://loinc.org|", &[systolic, pulse]),
        ("urn:iso:std:iso:11073:10101|", &[systolic, pulse, rr]),
        // A code in the wrong system, a system the hub does not code in, a code without one.
        ("http://loinc.org|150021", &[]),
        ("urn:iso:std:iso:11073:10101|8480-6", &[]),
        ("http://snomed.info/sct|271649006", &[]),
        ("|8480-6", &[]),
        ("8462-4", &[]),
    ];
    for (code, want) in cases {
        let query = code.replace('|', "%7C").replace(':', "%3A").replace('/', "%2F");
        let path = format!("/fhir/r4/Observation?code={query}");
        let (status, _, body) = http_request(rig.instance.http, "GET", &path, &basic("his", PASSWORD), "").await;
        assert_eq!(status, 200, "{path}: {body}");
        let bundle: serde_json::Value = serde_json::from_str(&body).unwrap();
        let got: Vec<f64> = bundle["entry"]
            .as_array()
            .map(|e| e.iter().map(|e| e["resource"]["valueQuantity"]["value"].as_f64().unwrap()).collect())
            .unwrap_or_default();
        assert_eq!(got, *want, "code={code}: {bundle}");
    }
}
