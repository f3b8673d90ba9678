//! ASTM E1394 (CLSI LIS2-A2) records: one message (H .. L, records separated by CR, as the
//! `astm-e1381` framer yields it) becomes observations. The delimiters come from the H record
//! (`H|\^&`: field, repeat, component, escape). R (result) records become observations through the
//! profile's `[[field]]` tables, matched on the universal test id's local code (its 4th component,
//! or the whole id when that is empty) and the result's unit; the result's time, abnormal flags,
//! status, reference range and comments (C records after it) go to `tdev` and `ctx`. P (patient)
//! records are read past and never forwarded; O records give the specimen id; Q (query) records
//! are reported (the gateway keeps no orders to answer with); M and other records are ignored.

use super::{DecodeError, Decoded};
use crate::clock::to_micros;
use crate::model::{Event, Observation, Severity};
use crate::profile::AstmSpec;
use std::collections::BTreeMap;

/// The delimiters a message's H record declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiters {
    pub field: char,
    pub repeat: char,
    pub component: char,
    pub escape: char,
}

impl Delimiters {
    /// From the first record, which must be the header: `H` and four delimiter characters.
    pub fn from_header(record: &str) -> Option<Self> {
        let mut c = record.chars();
        if c.next()? != 'H' {
            return None;
        }
        let d = Self { field: c.next()?, repeat: c.next()?, component: c.next()?, escape: c.next()? };
        let all = [d.field, d.repeat, d.component, d.escape];
        let distinct = all.iter().enumerate().all(|(i, a)| !all[..i].contains(a));
        (distinct && all.iter().all(|c| c.is_ascii_punctuation())).then_some(d)
    }

    /// Undoes the escape sequences `&F&`, `&S&` (component), `&R&`, `&E&` in a value.
    pub fn unescape(&self, v: &str) -> String {
        if !v.contains(self.escape) {
            return v.to_string();
        }
        let e = self.escape;
        v.replace(&format!("{e}F{e}"), &self.field.to_string())
            .replace(&format!("{e}S{e}"), &self.component.to_string())
            .replace(&format!("{e}R{e}"), &self.repeat.to_string())
            .replace(&format!("{e}E{e}"), &e.to_string())
    }
}

/// One record's fields, numbered as the standard numbers them (`R.4` is `field(4)`, the record
/// type is field 1).
struct Record<'a> {
    fields: Vec<&'a str>,
    d: Delimiters,
}

impl<'a> Record<'a> {
    fn new(text: &'a str, d: Delimiters) -> Self {
        Self { fields: text.split(d.field).collect(), d }
    }

    fn kind(&self) -> Option<char> {
        self.fields.first().and_then(|f| f.chars().next())
    }

    /// Field `n` (1-based), empty when absent.
    fn field(&self, n: usize) -> &'a str {
        n.checked_sub(1).and_then(|i| self.fields.get(i)).copied().unwrap_or("")
    }

    /// Component `c` (1-based) of the first repeat of field `n`.
    fn component(&self, n: usize, c: usize) -> &'a str {
        let first = self.field(n).split(self.d.repeat).next().unwrap_or("");
        first.split(self.d.component).nth(c - 1).unwrap_or("")
    }

    /// A text field for `ctx`, unescaped, or `None` when empty.
    fn text(&self, n: usize) -> Option<String> {
        let v = self.field(n).trim();
        (!v.is_empty()).then(|| self.d.unescape(v))
    }
}

/// An E1394 date and time: `YYYYMMDD[HHMM[SS]]` (the first component, when the field has several).
pub fn parse_time(v: &str, offset: time::UtcOffset) -> Option<i64> {
    let digits = v.trim();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || ![8, 12, 14].contains(&digits.len()) {
        return None;
    }
    let n = |a: usize, b: usize| digits.get(a..b).and_then(|s| s.parse::<u32>().ok());
    let month = time::Month::try_from(n(4, 6)? as u8).ok()?;
    let date = time::Date::from_calendar_date(n(0, 4)? as i32, month, n(6, 8)? as u8).ok()?;
    let (h, m, s) = match digits.len() {
        8 => (0, 0, 0),
        12 => (n(8, 10)?, n(10, 12)?, 0),
        _ => (n(8, 10)?, n(10, 12)?, n(12, 14)?),
    };
    let t = time::Time::from_hms(h as u8, m as u8, s as u8).ok()?;
    Some(to_micros(time::PrimitiveDateTime::new(date, t).assume_offset(offset)))
}

pub fn decode(spec: &AstmSpec, frame: &[u8]) -> Result<Decoded, DecodeError> {
    let text = String::from_utf8_lossy(frame);
    let mut records = text.split(['\r', '\n']).filter(|r| !r.is_empty());
    let header = records.next().unwrap_or("");
    let d = Delimiters::from_header(header).ok_or_else(|| {
        DecodeError::new("astm-no-header", "the message does not start with an H record declaring its delimiters")
    })?;
    let h = Record::new(header, d);
    let mut out = Decoded { tdev: parse_time(h.component(14, 1), spec.utc_offset), ..Default::default() };
    let mut specimen: Option<String> = None;
    let mut patients = 0usize;
    // Index in `out.observations` of the last result, for its comments.
    let mut last_result: Option<usize> = None;
    for text in records {
        let r = Record::new(text, d);
        match r.kind() {
            Some('P') => {
                // Demographics never leave the gateway.
                patients += 1;
                specimen = None;
                last_result = None;
            }
            Some('O') => {
                specimen = r.text(3).map(|s| s.split(d.component).next().unwrap_or("").to_string());
                last_result = None;
            }
            Some('R') => {
                last_result = None;
                match result(spec, &r) {
                    Ok(mut obs) => {
                        if let Some(s) = &specimen {
                            obs.ctx.get_or_insert_with(BTreeMap::new).insert("specimen".into(), s.clone());
                        }
                        out.observations.push(obs);
                        last_result = Some(out.observations.len() - 1);
                    }
                    Err(e) => out.problems.push(e),
                }
            }
            Some('C') => {
                if let (Some(i), Some(c)) = (last_result, r.text(4)) {
                    let ctx = out.observations[i].ctx.get_or_insert_with(BTreeMap::new);
                    let comment = c.split(d.component).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ");
                    ctx.entry("comment".into())
                        .and_modify(|e: &mut String| {
                            e.push_str("; ");
                            e.push_str(&comment)
                        })
                        .or_insert(comment);
                }
            }
            Some('Q') => out.problems.push(Event::new(
                "astm-query",
                Severity::Info,
                "the device asked for orders (Q record); the gateway keeps none to send",
            )),
            Some('L') => {
                let code = r.field(3).trim();
                if !matches!(code, "" | "N" | "F") {
                    out.problems.push(
                        Event::new(
                            "astm-terminated",
                            Severity::Warn,
                            format!("the device ended the message with termination code `{code}`"),
                        )
                        .with("code", code),
                    );
                }
                break;
            }
            _ => {}
        }
    }
    tracing::trace!(patients, "P records read past");
    Ok(out)
}

/// One R record as an observation.
fn result(spec: &AstmSpec, r: &Record) -> Result<Observation, Event> {
    let local = r.component(3, 4).trim();
    let test = if local.is_empty() { r.component(3, 1).trim() } else { local };
    let unit_text = r.component(5, 1).trim();
    let ucum = spec.units.get(unit_text).map(String::as_str).unwrap_or(unit_text);
    let same_test: Vec<_> = spec.fields.iter().filter(|f| f.source == test).collect();
    if same_test.is_empty() {
        return Err(Event::new("astm-test-unknown", Severity::Info, "a result for a test the profile does not map")
            .with("test", test));
    }
    let field = same_test.iter().find(|f| f.unit.ucum == ucum).ok_or_else(|| {
        Event::new("astm-unit-unknown", Severity::Warn, format!("a `{test}` result in a unit the profile does not map"))
            .with("test", test)
            .with("unit", unit_text)
    })?;
    let raw = r.field(4).trim();
    let number = if spec.decimal_comma { raw.replace(',', ".") } else { raw.to_string() };
    let number = match number.parse::<f64>() {
        Ok(n) if n.is_finite() => n,
        _ => {
            return Err(Event::new("value-invalid", Severity::Warn, format!("the `{test}` result is not a number"))
                .with("field", test)
                .with("raw", raw))
        }
    };
    let value = super::apply_field(field, number, raw)?;
    let mut obs = Observation::measured(field.code.clone(), value, field.unit.clone());
    obs.tdev = parse_time(r.component(spec.time_field, 1), spec.utc_offset);
    let mut ctx = BTreeMap::new();
    for (key, n) in [("reference_range", 6), ("abnormal_flags", 7), ("result_status", 9), ("instrument", 14)] {
        if let Some(v) = r.text(n) {
            ctx.insert(key.to_string(), v);
        }
    }
    obs.ctx = (!ctx.is_empty()).then_some(ctx);
    Ok(obs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{DecoderSpec, ProfileRegistry};

    fn spec(id: &str) -> AstmSpec {
        match &ProfileRegistry::builtin().unwrap().get(id).unwrap().decoder {
            DecoderSpec::Astm(s) => s.clone(),
            other => panic!("{other:?}"),
        }
    }

    /// The shipped analyser profile plus the sodium test of the sources' Architect records (the
    /// MDC code is this test profile's own: the decoder copies whatever the profile says).
    fn analyser() -> AstmSpec {
        let text = format!(
            "{}\n[[field]]\nsource = \"NA\"\nmdc = 1\nucum = \"mmol/L\"\nloinc = \"2951-2\"\n",
            include_str!("../../device-profiles/astm-analyser.toml")
        );
        match crate::profile::compile(std::path::Path::new("test.toml"), &text).unwrap().decoder {
            DecoderSpec::Astm(s) => s,
            other => panic!("{other:?}"),
        }
    }

    fn vector(id: &str) -> serde_json::Value {
        let all: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../../tests/fixtures/astm/astm_vectors.json")).unwrap();
        all.into_iter().find(|v| v["id"] == id).unwrap()
    }

    fn utc(s: &str) -> i64 {
        at(s, time::UtcOffset::UTC)
    }

    /// A source's naive local time, on a clock `offset` from UTC.
    fn at(s: &str, offset: time::UtcOffset) -> i64 {
        let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
        to_micros(time::PrimitiveDateTime::parse(s, &f).unwrap().assume_offset(offset))
    }

    #[test]
    fn the_contour_meters_three_results_are_read_with_their_times() {
        // glucometerutils' Contour records (astm-034): 8.6, 7.8, 7.8 mmol/L with their timestamps.
        let v = vector("astm-034");
        let expected = v["expected"]["readings"].as_array().unwrap();
        let h = v["hex"].as_str().unwrap();
        let bytes = crate::capture::parse_hex(h).unwrap();
        let meter = spec("astm-glucometer");
        let got = decode(&meter, &bytes).unwrap();
        assert_eq!(got.problems, vec![]);
        assert_eq!(got.observations.len(), expected.len());
        for (o, e) in got.observations.iter().zip(expected) {
            assert_eq!(o.val, e["mmol_l"].as_f64());
            assert_eq!(o.unit.ucum, "mmol/L");
            assert_eq!(o.code.mdc, 160184);
            assert_eq!(o.tdev, Some(at(e["timestamp"].as_str().unwrap(), meter.utc_offset)));
        }
    }

    #[test]
    fn a_contour_result_in_mg_per_dl_maps_to_the_mg_field() {
        // astm-029: 133 mg/dL, markers B/X, 2012-02-05 20:34.
        let msg = "H|\\^&\rR|8|^^^Glucose|133|mg/dL^P||B/X||201202052034\rL|1||N\r";
        let meter = spec("astm-glucometer");
        let got = decode(&meter, msg.as_bytes()).unwrap();
        let o = &got.observations[0];
        assert_eq!((o.val, o.unit.ucum.as_str()), (Some(133.0), "mg/dL"));
        assert_eq!(o.ctx.as_ref().unwrap()["abnormal_flags"], "B/X");
        assert_eq!(o.tdev, Some(at("2012-02-05T20:34:00", meter.utc_offset)));
    }

    #[test]
    fn patient_records_are_never_forwarded() {
        let p = vector("astm-015")["raw_escaped"].as_str().unwrap().to_string();
        let msg = format!("H|\\^&\r{p}\rO|1|12120001||^^^NA^Sodium|R\rR|1|^^^NA^Sodium|7.273|mmol/l\rL|1|N\r");
        let got = decode(&analyser(), msg.as_bytes()).unwrap();
        let all = format!("{got:?}");
        for secret in ["White", "Nicky", "19601218", "117118112", "Smith", "CHIR", "\"1212000\""] {
            assert!(!all.contains(secret), "{secret} leaked: {all}");
        }
        assert_eq!(got.observations.len(), 1);
        assert_eq!(got.observations[0].ctx.as_ref().unwrap()["specimen"], "12120001");
    }

    #[test]
    fn the_architect_sodium_result_gives_its_completion_time_and_status() {
        // astm-018: value 7.273 (in the record), status F, references 10-120, instrument Architect.
        let r = vector("astm-018")["raw_escaped"].as_str().unwrap().to_string();
        let msg = format!("H|\\^&\r{r}\rL|1|N\r");
        let got = decode(&analyser(), msg.as_bytes()).unwrap();
        let o = &got.observations[0];
        assert_eq!(o.val, Some(7.273));
        assert_eq!(o.unit.ucum, "mmol/L");
        let ctx = o.ctx.as_ref().unwrap();
        assert_eq!((ctx["result_status"].as_str(), ctx["reference_range"].as_str()), ("F", "10-120"));
        assert_eq!(ctx["instrument"], "Architect");
        // (python-astm reads these 12-digit times as YYYYMMDDHHMMSS; the test asserts no time here.)
        assert!(o.tdev.is_some());
    }

    #[test]
    fn a_comment_after_a_result_goes_to_its_context() {
        let c = vector("astm-020")["raw_escaped"].as_str().unwrap().to_string();
        let msg = format!("H|\\^&\rR|1|^^^NA^Sodium|140|mmol/l\r{c}\rL|1|N\r");
        let got = decode(&analyser(), msg.as_bytes()).unwrap();
        assert_eq!(got.observations[0].ctx.as_ref().unwrap()["comment"], "SC Sample contaminated");
    }

    #[test]
    fn a_result_for_an_unmapped_test_or_unit_is_reported_not_guessed() {
        let msg = "H|\\^&\rR|1|^^^K^Potassium|4.1|mmol/l\rR|2|^^^NA^Sodium|140|mg/dL\rL|1|N\r";
        let got = decode(&analyser(), msg.as_bytes()).unwrap();
        assert!(got.observations.is_empty());
        let codes: Vec<_> = got.problems.iter().map(|e| e.code.as_str()).collect();
        assert_eq!(codes, ["astm-test-unknown", "astm-unit-unknown"]);
    }

    #[test]
    fn a_message_without_a_header_is_refused() {
        let err = decode(&analyser(), b"R|1|^^^NA|1|mmol/l\rL|1\r").unwrap_err();
        assert_eq!(err.code, "astm-no-header");
    }

    #[test]
    fn delimiters_come_from_the_header_and_escapes_are_undone() {
        let d = Delimiters::from_header("H|\\^&|||x").unwrap();
        assert_eq!((d.field, d.repeat, d.component, d.escape), ('|', '\\', '^', '&'));
        assert_eq!(d.unescape("a&F&b&S&c&E&"), "a|b^c&");
        assert_eq!(Delimiters::from_header("H||^&"), None);
    }

    #[test]
    fn times_are_read_at_their_stated_precision() {
        let utc0 = time::UtcOffset::UTC;
        assert_eq!(parse_time("20091116104722", utc0), Some(utc("2009-11-16T10:47:22")));
        assert_eq!(parse_time("201504171154", utc0), Some(utc("2015-04-17T11:54:00")));
        assert_eq!(parse_time("2015041", utc0), None);
        assert_eq!(parse_time("20151341", utc0), None);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = decode(&analyser(), &bytes);
            let mut msg = b"H|\\^&\r".to_vec();
            msg.extend_from_slice(&bytes);
            let _ = decode(&spec("astm-glucometer"), &msg);
        }
    }
}
