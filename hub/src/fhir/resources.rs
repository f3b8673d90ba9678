//! Stored readings as FHIR R4 resources, after the HL7 Personal Health Device IG: spot values as
//! PhdNumericObservation (MDC and LOINC codings, UCUM quantity), waveform chunks as
//! PhdRtsaObservation (one per channel, `valueSampledData` with the device's integer counts as
//! sent: factor = gain, origin = -base x gain, so nothing is resampled or rounded), the device
//! as PhdDevice and the spoke gateway as PhgDevice, joined by the observation-gatewayDevice
//! extension. Every resource has an identifier derived from (site, gw, seq, ...), and the
//! consult bundle is a transaction of conditional PUTs on those identifiers, so posting it to a
//! FHIR server twice stores it once. The consult is the encounter (by identifier); no patient
//! identifier ever leaves the spoke, so `subject` is the receiving system's to add.

use serde_json::{json, Value};
use spokegate::clock::micros_to_rfc3339;
use spokegate::model::{Code, Unit, Wave};

pub const MDC_SYSTEM: &str = "urn:iso:std:iso:11073:10101";
pub const LOINC_SYSTEM: &str = "http://loinc.org";
pub const UCUM_SYSTEM: &str = "http://unitsofmeasure.org";
const PHD: &str = "http://hl7.org/fhir/uv/phd/StructureDefinition";
const GATEWAY_EXT: &str = "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice";
pub const ID_OBSERVATION: &str = "urn:spokegate:observation";
pub const ID_DEVICE: &str = "urn:spokegate:device";
pub const ID_GATEWAY: &str = "urn:spokegate:gateway";
const ID_CONSULT: &str = "urn:spokegate:consult";

/// A stable UUID for an identifier (fullUrl of a transaction entry).
pub fn urn(identifier: &str) -> String {
    format!("urn:uuid:{}", uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, identifier.as_bytes()))
}

fn code_concept(code: &Code) -> Value {
    let mut codings = vec![json!({"system": MDC_SYSTEM, "code": code.mdc.to_string()})];
    if let Some(n) = &code.name {
        codings[0]["display"] = json!(n);
    }
    if let Some(l) = &code.loinc {
        codings.push(json!({"system": LOINC_SYSTEM, "code": l}));
    }
    let mut c = json!({"coding": codings});
    if let Some(n) = &code.name {
        c["text"] = json!(n);
    }
    c
}

fn device_identifier(site: &str, gw: &str, dev: &str) -> String {
    format!("{site}/{gw}/{dev}")
}

fn gateway_identifier(site: &str, gw: &str) -> String {
    format!("{site}/{gw}")
}

/// The spoke gateway (PhgDevice).
pub fn gateway_device(site: &str, gw: &str) -> Value {
    let id = gateway_identifier(site, gw);
    json!({
        "resourceType": "Device",
        "meta": {"profile": [format!("{PHD}/PhgDevice")]},
        "identifier": [{"system": ID_GATEWAY, "value": id}],
        "deviceName": [{"name": format!("spokegate {gw} at {site}"), "type": "user-friendly-name"}],
        "manufacturer": "spokegate",
    })
}

/// A peripheral (PhdDevice).
pub fn phd_device(site: &str, gw: &str, dev: &str, profile: Option<&str>) -> Value {
    let mut d = json!({
        "resourceType": "Device",
        "meta": {"profile": [format!("{PHD}/PhdDevice")]},
        "identifier": [{"system": ID_DEVICE, "value": device_identifier(site, gw, dev)}],
        "deviceName": [{"name": dev, "type": "user-friendly-name"}],
    });
    if let Some(p) = profile {
        d["deviceName"].as_array_mut().expect("an array").push(json!({"name": p, "type": "model-name"}));
    }
    d
}

/// Where an observation points for its device and gateway (FHIR References): the Device
/// entries' fullUrls in a transaction, or in a search's results the devices' identifiers (a
/// logical reference, which a client resolves with `Device?identifier=`: the hub's Devices have
/// no ids of their own, and a conditional reference such as `Device?identifier=...` is only
/// allowed in a transaction).
pub struct Refs {
    pub device: Value,
    pub gateway: Value,
}

impl Refs {
    /// To the Device entries of a transaction.
    pub fn entries(site: &str, gw: &str, dev: &str) -> Refs {
        Refs {
            device: json!({"reference": urn(&format!("{ID_DEVICE}|{}", device_identifier(site, gw, dev)))}),
            gateway: json!({"reference": urn(&format!("{ID_GATEWAY}|{}", gateway_identifier(site, gw)))}),
        }
    }

    /// By the devices' identifiers.
    pub fn logical(site: &str, gw: &str, dev: &str) -> Refs {
        Refs {
            device: json!({
                "type": "Device",
                "identifier": {"system": ID_DEVICE, "value": device_identifier(site, gw, dev)},
                "display": dev,
            }),
            gateway: json!({
                "type": "Device",
                "identifier": {"system": ID_GATEWAY, "value": gateway_identifier(site, gw)},
                "display": format!("spokegate {gw} at {site}"),
            }),
        }
    }
}

/// One stored spot value.
pub struct NumericRow {
    pub site: String,
    pub gw: String,
    pub seq: i64,
    pub idx: i32,
    pub dev: Option<String>,
    pub prof: Option<String>,
    pub consult: Option<String>,
    pub code: Code,
    pub value: Option<f64>,
    pub unit: Unit,
    pub quality: String,
    pub t_us: i64,
    pub tdev_us: Option<i64>,
    /// How far the gateway's clock was stepped after it signed this (µs; see `clock_steps`).
    pub clock_fix_us: i64,
    /// When the hub stored it (µs since the epoch): the resource's `meta.lastUpdated`.
    pub stored_us: i64,
    /// When it was measured as the search computed it, in a search sorted by it (its cursor).
    pub measured_us: Option<i64>,
}

/// What every observation has; the caller adds its code, value and effective time.
fn common(identifier: &str, profile: &str, consult: Option<&str>, t: i64, stored: i64, refs: &Refs) -> Value {
    let mut o = json!({
        "resourceType": "Observation",
        "meta": {"profile": [format!("{PHD}/{profile}")], "lastUpdated": crate::search_time::instant_text(stored)},
        "identifier": [{"system": ID_OBSERVATION, "value": identifier}],
        "status": "final",
        "issued": micros_to_rfc3339(t),
        "device": refs.device,
        "extension": [{"url": GATEWAY_EXT, "valueReference": refs.gateway}],
    });
    if let Some(c) = consult {
        o["encounter"] = json!({"identifier": {"system": ID_CONSULT, "value": c}});
    }
    o
}

/// A gateway time on the gateway's clock after the steps reported since it was signed, and a note
/// saying so when they moved it.
fn gateway_time(signed: i64, fix: i64) -> (i64, Option<Value>) {
    if fix == 0 {
        return (signed, None);
    }
    let text = format!(
        "Gateway time corrected by {:+} s: the gateway's clock was stepped after it signed this \
         (its clock-stepped event); signed gateway time {}.",
        fix as f64 / 1e6,
        micros_to_rfc3339(signed)
    );
    (signed.saturating_add(fix), Some(json!([{ "text": text }])))
}

pub fn numeric(r: &NumericRow, refs: &Refs) -> Value {
    let identifier = format!("{}/{}/{}/{}", r.site, r.gw, r.seq, r.idx);
    let (t, note) = gateway_time(r.t_us, r.clock_fix_us);
    let mut o = common(&identifier, "PhdNumericObservation", r.consult.as_deref(), t, r.stored_us, refs);
    o["effectiveDateTime"] = json!(micros_to_rfc3339(r.tdev_us.unwrap_or(t)));
    if let Some(note) = note {
        o["note"] = note;
    }
    o["code"] = code_concept(&r.code);
    match (r.quality.as_str(), r.value) {
        ("ok", Some(v)) => {
            o["valueQuantity"] = json!({"value": v, "unit": r.unit.ucum, "system": UCUM_SYSTEM, "code": r.unit.ucum});
        }
        (q, _) => {
            let reason = match q {
                "nan" => "not-a-number",
                "+inf" => "positive-infinity",
                "-inf" => "negative-infinity",
                "invalid" => "error",
                _ => "unknown",
            };
            o["dataAbsentReason"] = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": reason}]});
        }
    }
    o
}

/// One stored waveform chunk.
pub struct WaveRow {
    pub site: String,
    pub gw: String,
    pub seq: i64,
    pub dev: String,
    pub prof: Option<String>,
    pub consult: Option<String>,
    pub wave: Wave,
    /// How far the gateway's clock was stepped after it signed this (µs; see `clock_steps`).
    pub clock_fix_us: i64,
    /// When the hub stored it (µs since the epoch): the resources' `meta.lastUpdated`.
    pub stored_us: i64,
}

/// One PhdRtsaObservation per channel: the exact counts, with gain and base as factor and origin.
pub fn rtsa(r: &WaveRow, refs: &Refs) -> Result<Vec<Value>, String> {
    let samples = spokegate::hub::unpack_channels(&r.wave).map_err(|e| e.to_string())?;
    let period_ms = 1000.0 / r.wave.rate;
    Ok(r.wave
        .ch
        .iter()
        .zip(samples)
        .map(|(c, counts)| {
            let identifier = format!("{}/{}/{}/{}", r.site, r.gw, r.seq, c.label);
            let (t0, note) = gateway_time(r.wave.t0, r.clock_fix_us);
            let mut o = common(&identifier, "PhdRtsaObservation", r.consult.as_deref(), t0, r.stored_us, refs);
            o["code"] = code_concept(&c.code);
            o["effectivePeriod"] = json!({
                "start": micros_to_rfc3339(t0),
                "end": micros_to_rfc3339(t0.saturating_add((r.wave.n as f64 * 1e6 / r.wave.rate) as i64)),
            });
            if let Some(note) = note {
                o["note"] = note;
            }
            let data: Vec<String> = counts.iter().map(i32::to_string).collect();
            o["valueSampledData"] = json!({
                "origin": {"value": -(c.base as f64) * c.gain, "unit": c.unit.ucum, "system": UCUM_SYSTEM, "code": c.unit.ucum},
                "period": period_ms,
                "factor": c.gain,
                "dimensions": 1,
                "data": data.join(" "),
            });
            o
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use spokegate::model::Channel;

    /// A stored chunk whose signed `t0` sits at the end of the range (a gateway's bug, signed all
    /// the same) gives a resource, not an overflow panic (`t0 + duration` overflowed before).
    #[test]
    fn a_chunk_at_the_end_of_time_gives_a_resource_without_overflow() {
        let counts: [i16; 4] = [-120, 15, 300, -61];
        let ch = Channel {
            label: "I".into(),
            code: Code { mdc: 131329, loinc: None, name: None },
            unit: Unit { ucum: "mV".into(), mdc: None },
            gain: 0.005,
            base: 0,
            enc: "i16le".into(),
            data: counts.iter().flat_map(|v| v.to_le_bytes()).collect(),
        };
        let wave = Wave { stream: "ecg".into(), rate: 360.0, i0: 0, t0: i64::MAX - 1, n: 4, ch: vec![ch] };
        let row = WaveRow {
            site: "s".into(),
            gw: "g".into(),
            seq: 1,
            dev: "ecg-1".into(),
            prof: None,
            consult: None,
            wave,
            clock_fix_us: 0,
            stored_us: 0,
        };
        let refs = Refs::entries("s", "g", "ecg-1");
        let out = rtsa(&row, &refs).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["valueSampledData"]["data"], "-120 15 300 -61");
    }
}
