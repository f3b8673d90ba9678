//! A FHIR client asks the hub's CapabilityStatement first (`GET /fhir/r4/metadata`): it validates
//! with the independent FHIR R4 model, is served without credentials, and every search parameter
//! it declares is one the search honours (a value that matches keeps the readings, one that does
//! not keeps none, the two separated by a comma keep them), so a client that builds its queries from it gets what it asked for; a
//! parameter the search does not take is never silently dropped.

use crate::support::*;
use spokegate::model::{Body, Code, Observation, Unit};
use spokegate::pipeline::{make_body, Payload, Source};

const PASSWORD: &str = "a long system password";
const N: usize = 3;

fn bound_reading(seq: u64) -> Body {
    let from = Source { dev: "vitals-1".into(), profile: "vitals-kv".into() };
    let obs = vec![Observation::measured(
        Code { mdc: 150021, loinc: Some("8480-6".into()), name: None },
        110.0 + seq as f64,
        Unit { ucum: "mm[Hg]".into(), mdc: Some(3872) },
    )];
    let mut body =
        make_body("site-1", "gw-a", Some(&from), Payload::Obs(obs), seq, spokegate::clock::now_micros(), None);
    body.consult = Some(Some("C-1".into()));
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capability_statement_validates_and_every_search_parameter_it_declares_narrows_the_search() {
    let rig = CraftedRig::start("capability").await;
    rig.hub.user("his", PASSWORD, &[("site-1", None, None)]);
    let port = rig.instance.http;
    for seq in 1..=N as u64 {
        rig.send(&bound_reading(seq)).await;
    }
    until("stored", PATIENCE, || async { rig.db.count("SELECT count(*) FROM observations").await == N as i64 }).await;

    // No credentials: the statement holds no patient data.
    let (status, head, body) = http_request(port, "GET", "/fhir/r4/metadata", "", "").await;
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/fhir+json"), "{head}");
    let raw: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(raw["implementation"]["url"], format!("http://127.0.0.1:{port}/fhir/r4"), "{raw}");
    let said = crate::fhir::validate(&body);
    assert_eq!(said["fhirVersion"], "4.0.1", "{said}");
    assert_eq!(said["kind"], "instance");
    assert_eq!(said["mode"], "server");
    assert_eq!(said["security"], serde_json::json!(["Basic"]));
    assert!(said["format"].as_array().unwrap().iter().any(|f| f == "application/fhir+json"), "{said}");
    let observation = &said["resources"]["Observation"];
    assert_eq!(observation["interactions"], serde_json::json!(["search-type"]), "{said}");
    assert!(
        observation["profiles"]
            .as_array()
            .unwrap()
            .contains(&"http://hl7.org/fhir/uv/phd/StructureDefinition/PhdNumericObservation".into()),
        "{said}"
    );

    // What each declared parameter is tried with: a value that matches the readings, one that does not.
    let tried = [
        ("consult", "C-1", "C-2"),
        ("site", "site-1", "site-2"),
        ("gw", "gw-a", "gw-b"),
        ("dev", "vitals-1", "vitals-2"),
        ("code", "urn:iso:std:iso:11073:10101|150021", "150022"),
        ("date", "ge2000", "lt2000"),
        ("value-quantity", "gt100|http://unitsofmeasure.org|mm[Hg]", "gt100||mmol/L"),
        ("_lastUpdated", "ge2000", "lt2000"),
    ];
    let declared = observation["search"].as_object().unwrap();
    assert!(!declared.is_empty(), "{said}");
    let count = |bundle: &serde_json::Value| bundle["entry"].as_array().map_or(0, |e| e.len());
    for (name, kind) in declared {
        let (_, matching, other) = tried
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("the statement declares `{name}` ({kind}), which this test does not try"));
        // Values separated by commas: any of them.
        let either = format!("{other},{matching}");
        for (value, want) in [(*matching, N), (*other, 0), (either.as_str(), N)] {
            let path = format!("/fhir/r4/Observation?{name}={}", value.replace('|', "%7C"));
            let (status, _, body) = http_request(port, "GET", &path, &basic("his", PASSWORD), "").await;
            assert_eq!(status, 200, "{path}: {body}");
            let bundle: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(count(&bundle), want, "{path}: {bundle}");
        }
    }
    assert_eq!(said["resources"]["Bundle"]["search"], serde_json::json!({"consult": "token"}), "{said}");
    assert_eq!(said["resources"]["Device"]["search"], serde_json::json!({"identifier": "token"}), "{said}");

    // A parameter the search does not take is ignored and said so: an OperationOutcome entry
    // names it, and the self link leaves it out; with `Prefer: handling=strict` it is refused.
    let path = "/fhir/r4/Observation?site=site-1&patient=Patient/1&code:text=pressure";
    let (status, _, body) = http_request(port, "GET", path, &basic("his", PASSWORD), "").await;
    assert_eq!(status, 200, "{body}");
    let validated = crate::fhir::validate(&body);
    assert_eq!(validated["observations"].as_array().unwrap().len(), N, "{validated}");
    let bundle: serde_json::Value = serde_json::from_str(&body).unwrap();
    let outcomes: Vec<&serde_json::Value> =
        bundle["entry"].as_array().unwrap().iter().filter(|e| e["search"]["mode"] == "outcome").collect();
    assert_eq!(outcomes.len(), 1, "{bundle}");
    let said = outcomes[0]["resource"]["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(said.contains("code:text, patient"), "{said}");
    let own = bundle["link"][0]["url"].as_str().unwrap();
    assert!(own.contains("site=site-1") && !own.contains("patient"), "{own}");
    let strict = format!("Prefer: handling=strict\r\n{}", basic("his", PASSWORD));
    let (status, _, body) = http_request(port, "GET", path, &strict, "").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("does not take code:text, patient"), "{body}");
    let (status, _, body) = http_request(port, "GET", "/fhir/r4/Observation?site=site-1&_count=2", &strict, "").await;
    assert_eq!(status, 200, "strict with only what the search takes: {body}");
    // The consult's Bundle (a transaction: no place for an outcome entry) refuses under strict.
    let (status, _, body) = http_request(port, "GET", "/fhir/r4/Bundle?consult=C-1&_since=x", &strict, "").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("does not take _since"), "{body}");
    let (status, _, body) = http_request(port, "GET", "/fhir/r4/Bundle?consult=C-1", &strict, "").await;
    assert_eq!(status, 200, "{body}");

    // JSON is the one format: a client asking for another (`_format`, or `Accept`) hears so (406).
    let xml = format!("Accept: application/fhir+xml\r\n{}", basic("his", PASSWORD));
    let either = format!("Accept: application/fhir+xml, application/fhir+json;q=0.9\r\n{}", basic("his", PASSWORD));
    for path in ["/fhir/r4/metadata", "/fhir/r4/Observation?site=site-1", "/fhir/r4/Bundle?consult=C-1"] {
        let sep = if path.contains('?') { '&' } else { '?' };
        let (status, _, body) =
            http_request(port, "GET", &format!("{path}{sep}_format=xml"), &basic("his", PASSWORD), "").await;
        assert_eq!(status, 406, "{path} _format=xml: {body}");
        assert!(body.contains("OperationOutcome") && body.contains("_format"), "{body}");
        let (status, _, body) = http_request(port, "GET", path, &xml, "").await;
        assert_eq!(status, 406, "{path} accepting XML only: {body}");
        assert_eq!(http_request(port, "GET", path, &either, "").await.0, 200, "{path} accepting JSON too");
        let json = format!("{path}{sep}_format=json");
        assert_eq!(http_request(port, "GET", &json, &xml, "").await.0, 200, "{path}: _format wins over Accept");
    }

    // A query string the search cannot read is refused with an OperationOutcome saying why,
    // after the credentials are checked (before, axum answered in plain text, and before them).
    for path in ["/fhir/r4/Observation?_count=ten", "/fhir/r4/Observation?site=a&site=b", "/fhir/r4/Bundle"] {
        let (status, head, body) = http_request(port, "GET", path, &basic("his", PASSWORD), "").await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(head.to_ascii_lowercase().contains("content-type: application/fhir+json"), "{path}: {head}");
        let o: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(o["resourceType"], "OperationOutcome", "{path}: {body}");
        assert!(o["issue"][0]["diagnostics"].as_str().unwrap().starts_with("the search's parameters"), "{body}");
        assert_eq!(http_request(port, "GET", path, "", "").await.0, 401, "{path} without credentials");
    }
    // The consult's Bundle is one consult's: a list is refused, not taken for a consult's id.
    let (status, _, body) =
        http_request(port, "GET", "/fhir/r4/Bundle?consult=C-1,C-2", &basic("his", PASSWORD), "").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("OperationOutcome") && body.contains("takes one consult"), "{body}");
}
