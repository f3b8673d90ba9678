//! `GET /fhir/r4/metadata`: the hub's CapabilityStatement (FHIR R4 `capabilities` interaction).
//! A FHIR client asks it first (HAPI's client checks the server's FHIR version there before its
//! first search): which resources the hub serves, how they are searched, and what security the
//! server uses. It holds no patient data, so it is served without credentials, as FHIR servers do.

use crate::http::AppState;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{json, Value};

/// The search parameters of `GET /fhir/r4/Observation`: (name, type, definition, documentation).
/// Each of them narrows the search (a test asks with every one).
pub const OBSERVATION_SEARCH: &[(&str, &str, Option<&str>, &str)] = &[
    ("consult", "token", None, "The consult (encounter identifier) the reading was bound to at the spoke."),
    ("site", "token", None, "The spoke site that signed the reading."),
    ("gw", "token", None, "The spoke gateway that signed the reading."),
    ("dev", "token", None, "The device at the gateway (its configured name)."),
    (
        "code",
        "token",
        Some("http://hl7.org/fhir/SearchParameter/clinical-code"),
        "An IEEE 11073-10101 or LOINC code, with its system (urn:iso:std:iso:11073:10101|, http://loinc.org|) or without; several separated by commas.",
    ),
    (
        "date",
        "date",
        Some("http://hl7.org/fhir/SearchParameter/clinical-date"),
        "When the value was measured, as effectiveDateTime says: the device's time, else the gateway's, corrected for the clock steps the gateway reported. Prefixes eq, ne, gt, ge, lt, le, sa, eb (not ap); dates are UTC.",
    ),
    (
        "value-quantity",
        "quantity",
        Some("http://hl7.org/fhir/SearchParameter/Observation-value-quantity"),
        "The value, in a unit: [prefix]number|system|code (gt180|http://unitsofmeasure.org|mm[Hg], ge7||mmol/L, lt95); a UCUM or MDC unit code, not converted; a number stands for the range of its precision. Prefixes eq, ne, gt, ge, lt, le, sa, eb, ap (10 %).",
    ),
    (
        "_lastUpdated",
        "date",
        Some("http://hl7.org/fhir/SearchParameter/Resource-lastUpdated"),
        "When the hub stored the reading: prefixes eq, ne, gt, ge, lt, le, sa, eb (not ap); dates are UTC.",
    ),
];

/// What an Observation search takes besides its search parameters: paging, `_summary` (`count`
/// and `false`), `_sort` (`date` and `-date`), `_total` and `_format` (it always answers in JSON).
const OBSERVATION_RESULT_PARAMETERS: &[&str] = &["_count", "_cursor", "_summary", "_sort", "_total", "_format"];

/// What the Device search takes: identifiers, and `_format`.
pub const DEVICE_PARAMETERS: &[&str] = &["identifier", "_format"];

/// What the consult's Bundle takes: the consult, and `_format`.
pub const BUNDLE_PARAMETERS: &[&str] = &["consult", "_format"];

/// Every parameter an Observation search takes.
pub fn observation_parameters() -> Vec<&'static str> {
    OBSERVATION_SEARCH.iter().map(|(p, ..)| *p).chain(OBSERVATION_RESULT_PARAMETERS.iter().copied()).collect()
}

/// Parameters taken with some of their values only: `_summary` as `count` (only the total) or
/// `false` (whole resources), not as a subset of each resource; `_sort` by when values were
/// measured, earliest or latest first.
const APPLIED_VALUES: &[(&str, &[&str])] = &[("_summary", &["count", "false"]), ("_sort", &["date", "-date"])];

/// What of `pairs` is not applied, each once, in order: a name not in `taken`, or `name=value`
/// for a value [`APPLIED_VALUES`] does not list.
pub fn outside<'a>(taken: &[&str], pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<String> {
    let applied = |name: &str, value: &str| {
        APPLIED_VALUES.iter().find(|(n, _)| *n == name).is_none_or(|(_, values)| values.contains(&value))
    };
    let mut out: Vec<String> = pairs
        .filter_map(|(name, value)| match (taken.contains(&name), applied(name, value)) {
            (false, _) => Some(name.to_string()),
            (true, false) => Some(format!("{name}={value}")),
            (true, true) => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether the client asks for strict handling of search parameters (`Prefer: handling=strict`).
pub fn strict(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().replace(' ', "").eq_ignore_ascii_case("handling=strict"))
}

/// The profiles the hub's resources claim (HL7 Personal Health Device IG).
const OBSERVATION_PROFILES: &[&str] = &["PhdNumericObservation", "PhdRtsaObservation"];
const DEVICE_PROFILES: &[&str] = &["PhdDevice", "PhgDevice"];

/// The statement, for an instance whose FHIR base is `base` and that started at `started` (the
/// statement's date: it changes only with the software and its configuration).
pub fn statement(base: &str, started: &str) -> Value {
    let phd = |names: &[&str]| -> Vec<String> {
        names.iter().map(|n| format!("http://hl7.org/fhir/uv/phd/StructureDefinition/{n}")).collect()
    };
    let search: Vec<Value> = OBSERVATION_SEARCH
        .iter()
        .map(|(name, kind, definition, doc)| {
            let mut p = json!({"name": name, "type": kind, "documentation": doc});
            if let Some(d) = definition {
                p["definition"] = json!(d);
            }
            p
        })
        .collect();
    let mut implementation = json!({"description": "spokegate hub: signed readings from telemedicine spokes"});
    if !base.is_empty() {
        implementation["url"] = json!(format!("{base}/fhir/r4"));
    }
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": started,
        "publisher": "spokegate",
        "kind": "instance",
        "software": {"name": "spokegate-hub", "version": env!("CARGO_PKG_VERSION")},
        "implementation": implementation,
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Read-only. Every request but this one names a hub user, and gets what that user's grants open.",
            "security": {
                "service": [{"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                    "code": "Basic"
                }]}],
                "description": "HTTP Basic with a hub user's name and password (or the consult view's session)."
            },
            "resource": [
                {
                    "type": "Observation",
                    "supportedProfile": phd(OBSERVATION_PROFILES),
                    "interaction": [{"code": "search-type"}],
                    "searchParam": search,
                    "documentation": "Spot values, a page of _count (at most 1,000) at a time with a next link; _count=0 or _summary=count gives the total only; _total=accurate gives it on every page; _sort=date or -date orders them by when they were measured. Every search parameter takes several values separated by commas (any of them; \\, is a comma in a value), and all parameters given hold."
                },
                {
                    "type": "Bundle",
                    "interaction": [{"code": "search-type"}],
                    "searchParam": [{
                        "name": "consult",
                        "type": "token",
                        "documentation": "One consult (not a list): a transaction Bundle of its spot values, waveforms and devices."
                    }]
                },
                {
                    "type": "Device",
                    "supportedProfile": phd(DEVICE_PROFILES),
                    "interaction": [{"code": "search-type"}],
                    "searchParam": [{
                        "name": "identifier",
                        "type": "token",
                        "documentation": "A device's identifier as an Observation refers to it (urn:spokegate:device|site/gw/dev, urn:spokegate:gateway|site/gw; the system may be left out), several separated by commas. Required."
                    }],
                    "documentation": "The devices Observations refer to by identifier (also in the consult's Bundle)."
                }
            ]
        }]
    })
}

/// The handler: the statement with this request's base.
pub async fn metadata(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    if let Some(why) = crate::fhir::not_acceptable(&headers, &pairs) {
        return why;
    }
    let base = crate::search_page::base(s.public_url.as_deref(), &headers);
    crate::fhir::fhir_json(statement(&base, &s.started))
}
