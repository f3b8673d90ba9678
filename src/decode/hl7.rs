//! HL7 v2 ORU^R01 observations (IHE PCD-01, Continua WAN), parsed with `hl7-parser`.
//!
//! - OBX-3 `code^name^MDC` gives the MDC code; a code in another system is forwarded only when the
//!   profile's `[[metric]]` table maps it (by LOINC) to an MDC code.
//! - OBX-5 values of type NM and SN become numbers; rows without a value (the MDS/VMD/channel
//!   containment rows) are structure; other types are passed over and reported.
//! - OBX-6 `code^name^MDC` units map to UCUM through the profile's `[[unit]]` table, else the
//!   built-in MDC unit table ([`crate::units`]); a UCUM unit is
//!   taken as it is.
//! - OBX-14 (or OBR-7 for the whole message) is the device time; OBX-18 the equipment id.
//! - PID and every other patient segment are never read: the hub knows the patient from the consult.

use super::hl7_ack::{ack, AckCode};
use super::{DecodeError, Decoded};
use crate::clock::to_micros;
use crate::model::{Code, Event, Observation, Severity, Unit};
use crate::profile::Hl7Spec;
use hl7_parser::message::{Field, Segment};
use hl7_parser::Message;
use std::collections::BTreeMap;

pub fn decode(spec: &Hl7Spec, frame: &[u8], now_micros: i64) -> Result<Decoded, DecodeError> {
    let text = String::from_utf8_lossy(frame);
    let text = text.trim_end_matches(['\r', '\n']);
    let reject = |code: &'static str, why: String, msg: Option<&Message>| DecodeError {
        code,
        reply: spec.ack.then(|| ack(msg, AckCode::Reject, Some(&why), now_micros)),
        text: why,
    };
    if !text.starts_with("MSH") {
        return Err(reject("hl7-unparseable", "message does not start with an MSH segment".into(), None));
    }
    let message = Message::parse_with_lenient_newlines(text, true)
        .map_err(|e| reject("hl7-unparseable", format!("HL7 message could not be parsed: {e}"), None))?;
    let msh = message.segment("MSH");
    let msg_type = msh
        .and_then(|s| field(s, 9))
        .map(|f| (component(f, 1).unwrap_or_default().to_string(), component(f, 2).unwrap_or_default().to_string()));
    match msg_type {
        Some((t, e)) if t == "ORU" && e == "R01" => {}
        Some((t, e)) => {
            return Err(reject(
                "hl7-unsupported",
                format!("message type {t}^{e} is not accepted (ORU^R01 only)"),
                Some(&message),
            ))
        }
        None => return Err(reject("hl7-unparseable", "MSH-9 message type is missing".into(), Some(&message))),
    }

    let message_time = message.segment("OBR").and_then(|s| field(s, 7)).and_then(|f| hl7_time(f.raw_value()));
    let mut out = Decoded { tdev: message_time, ..Decoded::default() };
    let mut skipped_types: BTreeMap<String, u32> = BTreeMap::new();
    for obx in message.segments().filter(|s| s.name == "OBX") {
        match observation(spec, obx) {
            Ok(Some(o)) => out.observations.push(o),
            Ok(None) => {}
            Err(ObxProblem::Skipped(value_type)) => *skipped_types.entry(value_type).or_default() += 1,
            Err(ObxProblem::Unusable(event)) => out.problems.push(event),
        }
    }
    if !skipped_types.is_empty() {
        tracing::debug!(?skipped_types, "OBX value types not forwarded");
    }
    if spec.ack {
        let code =
            if out.observations.is_empty() && !out.problems.is_empty() { AckCode::Error } else { AckCode::Accept };
        let why = (code == AckCode::Error).then(|| out.problems.first().map(|e| e.text.clone())).flatten();
        out.reply = Some(ack(Some(&message), code, why.as_deref(), now_micros));
    }
    Ok(out)
}

enum ObxProblem {
    /// A value type the model does not carry (coded, text, date); not an error.
    Skipped(String),
    /// A value that could not be used.
    Unusable(Event),
}

fn observation(spec: &Hl7Spec, obx: &Segment) -> Result<Option<Observation>, ObxProblem> {
    let value_type = field(obx, 2).map(|f| f.raw_value()).unwrap_or("");
    let value = field(obx, 5).map(|f| f.raw_value()).unwrap_or("");
    let status = field(obx, 11).map(|f| f.raw_value()).unwrap_or("");
    if value.is_empty() || status == "X" {
        return Ok(None); // containment row or "results cannot be obtained"
    }
    let set_id = field(obx, 1).map(|f| f.raw_value()).unwrap_or("?").to_string();
    let problem = |code: &str, text: String| {
        ObxProblem::Unusable(Event::new(code, Severity::Warn, text).with("obx", set_id.as_str()))
    };
    let number = match value_type {
        "NM" => value.trim().parse::<f64>().ok().filter(|v| v.is_finite()),
        // SN: comparator ^ num1 [^ separator ^ num2]; a plain or compared single number is kept.
        "SN" => {
            let f = field(obx, 5);
            let num2 = f.and_then(|f| component(f, 4)).unwrap_or("");
            if !num2.is_empty() {
                return Err(problem(
                    "value-unsupported",
                    format!("OBX {set_id}: SN ratio/range is not a single value"),
                ));
            }
            f.and_then(|f| component(f, 2)).and_then(|n| n.trim().parse::<f64>().ok()).filter(|v| v.is_finite())
        }
        other => return Err(ObxProblem::Skipped(other.to_string())),
    };
    let Some(number) = number else {
        return Err(problem("value-invalid", format!("OBX {set_id}: {value_type} value is not a number")));
    };
    let code_field = field(obx, 3)
        .filter(|f| !f.raw_value().trim().is_empty())
        .ok_or_else(|| problem("code-missing", format!("OBX {set_id}: no OBX-3")))?;
    let code = metric_code(spec, code_field).ok_or_else(|| {
        problem("code-unmapped", format!("OBX {set_id}: `{}` has no MDC code in the profile", code_field.raw_value()))
    })?;
    let unit_field = field(obx, 6);
    let unit = unit_field.and_then(|f| unit(spec, f)).ok_or_else(|| {
        let raw = unit_field.map(|f| f.raw_value()).unwrap_or("");
        problem("unit-unmapped", format!("OBX {set_id}: unit `{raw}` is in neither the profile nor the MDC unit table"))
    })?;

    let mut obs = Observation::measured(code, number, unit);
    if value_type == "SN" {
        let comparator = field(obx, 5).and_then(|f| component(f, 1)).unwrap_or("");
        if !comparator.is_empty() {
            obs.ctx.get_or_insert_with(BTreeMap::new).insert("comparator".into(), comparator.into());
        }
    }
    obs.tdev = field(obx, 14).and_then(|f| hl7_time(f.raw_value()));
    for (n, key) in [(4, "sub_id"), (8, "flags"), (18, "equipment")] {
        if let Some(v) = field(obx, n).map(|f| f.raw_value()).filter(|v| !v.is_empty()) {
            obs.ctx.get_or_insert_with(BTreeMap::new).insert(key.into(), v.into());
        }
    }
    Ok(Some(obs))
}

/// OBX-3 to an MDC code: `code^name^MDC`, or another system's code mapped by LOINC in the profile.
fn metric_code(spec: &Hl7Spec, f: &Field) -> Option<Code> {
    let id = component(f, 1)?.trim();
    let text = component(f, 2).filter(|s| !s.is_empty());
    let system = component(f, 3).unwrap_or("");
    let mdc = if system == "MDC" || (system.is_empty() && text.is_some_and(|t| t.starts_with("MDC_"))) {
        id.parse::<u32>().ok()?
    } else {
        *spec.metrics.iter().find(|(_, m)| m.loinc.as_deref() == Some(id))?.0
    };
    let known = spec.metrics.get(&mdc);
    Some(Code {
        mdc,
        loinc: known.and_then(|m| m.loinc.clone()),
        name: known.and_then(|m| m.name.clone()).or_else(|| text.map(str::to_string)),
    })
}

/// OBX-6 to a unit: an MDC unit code through the profile table, or UCUM text as given (matched to
/// the profile's spelling when it differs only in case, as `mg/dl` for `mg/dL`).
fn unit(spec: &Hl7Spec, f: &Field) -> Option<Unit> {
    let id = component(f, 1)?.trim();
    let system = component(f, 3).unwrap_or("");
    let mdc_text = component(f, 2).is_some_and(|t| t.starts_with("MDC_DIM"));
    if system == "MDC" || mdc_text {
        let code = id.parse::<u32>().ok()?;
        let ucum =
            spec.units.get(&code).cloned().or_else(|| crate::units::by_code(code).map(|u| u.ucum.to_string()))?;
        return Some(Unit { ucum, mdc: Some(code) });
    }
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let spelled = spec.units.iter().find(|(_, u)| u.eq_ignore_ascii_case(id));
    Some(match spelled {
        Some((code, u)) => Unit { ucum: u.clone(), mdc: Some(*code) },
        None => match crate::units::by_ucum(id) {
            // The table's spelling of the same unit (UCUM is case-sensitive).
            Some(u) => Unit {
                ucum: u.synonyms.iter().find(|s| s.eq_ignore_ascii_case(id)).unwrap_or(&u.ucum).to_string(),
                mdc: Some(u.code),
            },
            None => Unit { ucum: id.to_string(), mdc: None },
        },
    })
}

/// HL7 DTM `YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]` to microseconds; no offset = UTC.
pub fn hl7_time(raw: &str) -> Option<i64> {
    let ts: hl7_parser::datetime::TimeStamp = raw.trim().parse().ok()?;
    let month = time::Month::try_from(ts.month.unwrap_or(1)).ok()?;
    let date = time::Date::from_calendar_date(i32::from(ts.year), month, ts.day.unwrap_or(1)).ok()?;
    let t = time::Time::from_hms_micro(
        ts.hour.unwrap_or(0),
        ts.minute.unwrap_or(0),
        ts.second.unwrap_or(0),
        ts.microsecond.unwrap_or(0),
    )
    .ok()?;
    let offset = match ts.offset {
        Some(o) => {
            let minutes = i8::try_from(o.minutes).ok()?;
            time::UtcOffset::from_hms(o.hours, if o.hours < 0 { -minutes } else { minutes }, 0).ok()?
        }
        None => time::UtcOffset::UTC,
    };
    Some(to_micros(time::PrimitiveDateTime::new(date, t).assume_offset(offset)))
}

pub(super) fn field<'a, 'm>(s: &'a Segment<'m>, n: usize) -> Option<&'a Field<'m>> {
    s.fields.get(n.checked_sub(1)?)
}

pub(super) fn component<'m>(f: &Field<'m>, n: usize) -> Option<&'m str> {
    let repeat = f.repeats.first()?;
    if n == 1 && repeat.components.is_empty() {
        return Some(repeat.raw_value());
    }
    repeat.components.get(n.checked_sub(1)?).map(|c| c.raw_value())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{DecoderSpec, ProfileRegistry};

    fn spec() -> Hl7Spec {
        match &ProfileRegistry::builtin().unwrap().get("hl7-pcd01").unwrap().decoder {
            DecoderSpec::Hl7Oru(s) => s.clone(),
            other => panic!("{other:?}"),
        }
    }

    const NIBP: &[u8] = include_bytes!("../../tests/fixtures/hl7/pcd01_oru_r01_nibp_acme.hl7");
    const LAB: &[u8] = include_bytes!("../../tests/fixtures/hl7/oru_r01_lab_glucose_v25.hl7");

    #[test]
    fn pcd01_nibp_gives_three_pressures_in_mmhg() {
        let d = decode(&spec(), NIBP, 0).unwrap();
        let got: Vec<(u32, f64, &str)> =
            d.observations.iter().map(|o| (o.code.mdc, o.val.unwrap(), o.unit.ucum.as_str())).collect();
        assert_eq!(got, [(150021, 120.0, "mm[Hg]"), (150022, 80.0, "mm[Hg]"), (150023, 100.0, "mm[Hg]")]);
        assert_eq!(d.observations[0].code.loinc.as_deref(), Some("8480-6"));
        assert_eq!(d.observations[0].ctx.as_ref().unwrap()["sub_id"], "1.0.1.1");
        // OBR-7 20090813095715+0500
        assert_eq!(d.tdev, hl7_time("20090813045715+0000"));
        assert!(d.problems.is_empty());
    }

    #[test]
    fn the_reply_is_an_accept_ack_echoing_the_control_id() {
        let d = decode(&spec(), NIBP, 0).unwrap();
        let reply = String::from_utf8(d.reply.unwrap()).unwrap();
        assert!(reply.starts_with("\x0bMSH|^~\\&|SPOKEGATE||AcmeInc^ACDE48234567ABCD^EUI-64|"), "{reply}");
        assert!(reply.ends_with("\r\x1c\r"), "{reply}");
        assert!(reply.contains("\rMSA|AA|MSGID1234\r"), "{reply}");
    }

    #[test]
    fn no_patient_data_leaves_the_decoder() {
        let d = decode(&spec(), NIBP, 0).unwrap();
        let all = format!("{d:?}");
        for needle in ["Doe", "John", "789567", "Imaginary"] {
            assert!(!all.contains(needle), "{needle} leaked: {all}");
        }
    }

    #[test]
    fn a_lab_result_coded_only_in_loinc_is_reported_not_forwarded() {
        let d = decode(&spec(), LAB, 0).unwrap();
        assert!(d.observations.is_empty());
        assert_eq!(d.problems[0].code, "code-unmapped");
        let reply = String::from_utf8(d.reply.unwrap()).unwrap();
        assert!(reply.contains("MSA|AE|CTRL-9876"), "{reply}");
    }

    #[test]
    fn hl7_times_honour_the_offset() {
        assert_eq!(hl7_time("20090715070707+0000"), Some(1_247_641_627_000_000));
        assert_eq!(hl7_time("20090715120707+0500"), Some(1_247_641_627_000_000));
        assert_eq!(hl7_time("2009071507"), Some(1_247_641_200_000_000));
        assert_eq!(hl7_time("garbage"), None);
    }

    #[test]
    fn broken_messages_are_rejected_with_an_ar_ack() {
        for bad in [&b"MSH|^~\\&|A|B|||2020||ADT^A01|X|P|2.6"[..], b"PID|||1", b"MSH"] {
            let err = decode(&spec(), bad, 0).unwrap_err();
            let reply = String::from_utf8(err.reply.clone().unwrap()).unwrap();
            assert!(reply.contains("MSA|AR|"), "{err:?} {reply}");
        }
    }
}
