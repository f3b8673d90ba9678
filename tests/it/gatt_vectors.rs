//! The sourced GATT and Polar PMD vectors (tests/fixtures/ble/, see SOURCES.md there) through the
//! gateway's decoders: every valid vector decodes to every value its source states (each stated
//! key is read, and a key no check reads fails the test), a value the source states as absent
//! (null) is absent, and every invalid vector is refused.

use serde_json::Value;
use spokegate::decode::gatt::{self, pmd, racp, Characteristic, GattReading};
use spokegate::model::Quality;
use std::cell::RefCell;
use std::collections::BTreeSet;

fn vectors(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/ble/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn uuid(v: &Value) -> u16 {
    u16::from_str_radix(v["characteristic_uuid"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

/// A vector's stated values. Paths are keys, `/` into nested objects (keys may contain dots, as
/// `time.minute_after_offset` does). [`Stated::done`] fails on any stated value no check read.
struct Stated<'a> {
    e: &'a Value,
    read: RefCell<BTreeSet<String>>,
    label: String,
}

impl<'a> Stated<'a> {
    fn new(e: &'a Value, label: String) -> Self {
        Self { e, read: RefCell::new(BTreeSet::new()), label }
    }

    /// The stated value at `path` (Null when not stated), marked as read.
    fn get(&self, path: &str) -> &'a Value {
        self.read.borrow_mut().insert(path.to_string());
        let mut v = self.e;
        for k in path.split('/') {
            v = v.get(k).unwrap_or(&Value::Null);
        }
        v
    }

    fn has(&self, path: &str) -> bool {
        let mut v = self.e;
        for k in path.split('/') {
            match v.get(k) {
                Some(x) => v = x,
                None => return false,
            }
        }
        true
    }

    fn str(&self, path: &str) -> &'a str {
        self.get(path).as_str().unwrap_or_else(|| panic!("{}: `{path}` is not text", self.label))
    }

    /// A stated number, or a stated null (absent), against what was decoded (`tol` absolute).
    fn value(&self, path: &str, got: Option<f64>, tol: f64) {
        match self.get(path) {
            Value::Null => assert_eq!(got, None, "{}: `{path}` is stated absent", self.label),
            w => {
                let w = w.as_f64().unwrap_or_else(|| panic!("{}: `{path}` = {w}", self.label));
                let g = got.unwrap_or_else(|| panic!("{}: `{path}`: no value, want {w}", self.label));
                assert!((g - w).abs() <= tol, "{}: `{path}`: got {g}, want {w}", self.label);
            }
        }
    }

    /// Every stated leaf value was read by a check.
    fn done(&self) {
        let mut leaves = Vec::new();
        fn walk(v: &Value, prefix: &str, out: &mut Vec<String>) {
            match v.as_object() {
                Some(m) => {
                    for (k, x) in m {
                        walk(x, &if prefix.is_empty() { k.clone() } else { format!("{prefix}/{k}") }, out)
                    }
                }
                None => out.push(prefix.to_string()),
            }
        }
        walk(self.e, "", &mut leaves);
        let read = self.read.borrow();
        let unread: Vec<&String> = leaves.iter().filter(|l| !read.contains(*l)).collect();
        assert!(unread.is_empty(), "{}: stated values no check read: {unread:?}", self.label);
    }
}

fn val(r: &GattReading, source: &str) -> Option<f64> {
    r.value(source).and_then(|v| v.val)
}

fn ctx<'a>(r: &'a GattReading, key: &str) -> Option<&'a str> {
    r.ctx.get(key).map(String::as_str)
}

fn rr_raw(r: &GattReading) -> Vec<u64> {
    r.values.iter().filter(|v| v.source == "rr_interval").map(|v| (v.val.unwrap() * 1024.0).round() as u64).collect()
}

fn iso(t: i64) -> String {
    spokegate::clock::micros_to_rfc3339(t)
}

/// `2019-02-27 11:10:30` or `2020-05-21T10:30:45[.000]` as UTC microseconds.
fn stated_time(text: &str) -> i64 {
    let t = text.replace(' ', "T");
    let t = t.split('.').next().unwrap();
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    spokegate::clock::to_micros(time::PrimitiveDateTime::parse(t, &fmt).unwrap().assume_utc())
}

/// A stated name (`"Long acting insulin"`, `"VENOUS_PLASMA"`, `"2 (capillary plasma)"`,
/// `"Casual (snacks, drinks, etc.)"`) in the gateway's spelling: the part in parentheses when it
/// is a number's meaning, else the text before them; lower case, words joined by hyphens.
fn name(text: &str) -> String {
    let t = match (text.split_once(" ("), text.chars().next().is_some_and(|c| c.is_ascii_digit())) {
        (Some((_, inner)), true) => inner.trim_end_matches(')'),
        (Some((before, _)), false) => before,
        (None, _) => text,
    };
    t.trim().to_lowercase().replace(['_', ' '], "-")
}

/// Whether the source states the vector invalid (`valid: false`, `result: null`, an `error`).
fn stated_invalid(s: &Stated) -> bool {
    let invalid =
        s.get("valid") == &Value::Bool(false) || (s.has("result") && s.get("result").is_null()) || s.has("error");
    if invalid {
        // Why the source says so, for a person: read, not compared.
        let _ = (s.get("reason"), s.get("error"));
    }
    invalid
}

#[test]
fn every_sourced_gatt_vector_decodes_to_its_stated_values_or_is_refused() {
    let all = vectors("gatt_vectors.json");
    let mut checked = 0;
    for v in all.as_array().unwrap() {
        let bytes = hex::decode(v["hex"].as_str().unwrap()).unwrap();
        let s = Stated::new(&v["expected"], format!("{} {}", v["characteristic_uuid"], v["hex"]));
        let c = Characteristic::from_uuid16(uuid(v)).unwrap();
        if c == Characteristic::Racp {
            check_racp(&bytes, &s);
        } else {
            let decoded = gatt::decode(c, &bytes);
            if stated_invalid(&s) {
                assert!(decoded.is_err(), "{} must be refused, got {decoded:?}", s.label);
            } else {
                let r = decoded.unwrap_or_else(|err| panic!("{}: {err}", s.label));
                match c {
                    Characteristic::HeartRate => check_heart_rate(&r, &s),
                    Characteristic::BloodPressure => check_blood_pressure(&r, &s),
                    Characteristic::Temperature => check_temperature(&r, &s),
                    Characteristic::GlucoseMeasurement => check_glucose(&r, &s),
                    Characteristic::GlucoseContext => check_glucose_context(&r, &s),
                    Characteristic::PlxContinuous | Characteristic::PlxSpotCheck | Characteristic::PlxFeatures => {
                        check_plx(&r, &s)
                    }
                    Characteristic::Racp => unreachable!(),
                }
            }
        }
        s.done();
        checked += 1;
    }
    assert_eq!(checked, all.as_array().unwrap().len());
}

fn check_heart_rate(r: &GattReading, s: &Stated) {
    s.value("heart_rate_bpm", val(r, "heart_rate"), 0.0);
    // Nordic states null when the strap does not support contact detection, else detected or not;
    // StanfordSpezi states only whether contact was detected (false also when unsupported).
    if s.has("sensor_contact_detected") {
        let want = s.get("sensor_contact_detected").as_bool().map(|b| if b { "detected" } else { "not-detected" });
        assert_eq!(ctx(r, "sensor_contact"), want, "{}", s.label);
    }
    if s.has("sensor_contact") {
        let detected = s.get("sensor_contact").as_bool().unwrap();
        assert_eq!(ctx(r, "sensor_contact") == Some("detected"), detected, "{}", s.label);
    }
    s.value("energy_expended", val(r, "energy_expended"), 0.0);
    let rr: Vec<u64> =
        s.get("rr_intervals").as_array().map(|a| a.iter().map(|x| x.as_u64().unwrap()).collect()).unwrap_or_default();
    assert_eq!(rr_raw(r), rr, "{}", s.label);
}

fn check_blood_pressure(r: &GattReading, s: &Stated) {
    let tol = s.get("tolerance").as_f64().unwrap_or(0.0);
    s.value("systolic", val(r, "systolic"), tol);
    s.value("diastolic", val(r, "diastolic"), tol);
    s.value("mean_arterial_pressure", val(r, "mean"), tol);
    s.value("pulse_rate", val(r, "pulse_rate"), tol);
    if let Some(u) = s.get("unit").as_str() {
        let want = if u.starts_with("kPa") {
            "kPa"
        } else if u.starts_with("mmHg") {
            "mm[Hg]"
        } else {
            panic!("{u}")
        };
        assert_eq!(r.value("systolic").unwrap().ucum, want, "{}", s.label);
    }
    assert_eq!(ctx(r, "user_id").map(|u| u.parse::<u64>().unwrap()), s.get("user_id").as_u64(), "{}", s.label);
    if s.get("status").is_null() {
        assert_eq!((ctx(r, "status"), ctx(r, "pulse_rate_range")), (None, None), "{}", s.label);
    } else {
        let names: BTreeSet<&str> = ctx(r, "status").unwrap_or("").split(',').filter(|n| !n.is_empty()).collect();
        let mut want = BTreeSet::new();
        for (key, ours) in [
            ("bodyMovementDetected", "body-movement"),
            ("cuffTooLose", "cuff-too-loose"),
            ("irregularPulseDetected", "irregular-pulse"),
            ("improperMeasurementPosition", "improper-position"),
        ] {
            if s.get(&format!("status/{key}")).as_bool().unwrap() {
                want.insert(ours);
            }
        }
        assert_eq!(names, want, "{}", s.label);
        let range = [
            ("pulseRateInRange", "in-range"),
            ("pulseRateExceedsUpperLimit", "above-upper-limit"),
            ("pulseRateIsLessThenLowerLimit", "below-lower-limit"),
        ]
        .iter()
        .filter(|(k, _)| s.get(&format!("status/{k}")).as_bool().unwrap())
        .map(|(_, ours)| *ours)
        .collect::<Vec<_>>();
        assert_eq!(range.len(), 1, "{}", s.label);
        assert_eq!(ctx(r, "pulse_rate_range"), Some(range[0]), "{}", s.label);
    }
    if s.get("timestamp").is_null() {
        assert_eq!((r.tdev, ctx(r, "device_time_without_year")), (None, None), "{}", s.label);
    } else {
        // A time stamp with year 0 (unknown) gives no device time; what it does say is kept.
        assert_eq!(s.get("timestamp/year_set"), &Value::Bool(false), "{}", s.label);
        assert_eq!(r.tdev, None, "{}", s.label);
        let month: time::Month = s.str("timestamp/month").parse().unwrap();
        assert_eq!(s.get("timestamp/millisecond").as_u64(), Some(0), "Date Time has whole seconds");
        let want = format!(
            "--{:02}-{:02}T{:02}:{:02}:{:02}",
            u8::from(month),
            s.get("timestamp/day").as_u64().unwrap(),
            s.get("timestamp/hour").as_u64().unwrap(),
            s.get("timestamp/minute").as_u64().unwrap(),
            s.get("timestamp/second").as_u64().unwrap()
        );
        assert_eq!(ctx(r, "device_time_without_year"), Some(want.as_str()), "{}", s.label);
    }
}

fn check_temperature(r: &GattReading, s: &Stated) {
    if s.get("temperature") == "NaN" {
        assert_eq!(r.value("temperature").unwrap().q, Quality::NaN, "{}", s.label);
        assert_eq!(val(r, "temperature"), None);
    } else {
        s.value("temperature", val(r, "temperature"), s.get("tolerance").as_f64().unwrap_or(0.0));
    }
    if let Some(u) = s.get("unit").as_str() {
        let want = match u {
            "Celsius" => "Cel",
            "Fahrenheit" => "[degF]",
            other => panic!("{other}"),
        };
        assert_eq!(r.value("temperature").unwrap().ucum, want, "{}", s.label);
    }
    assert_eq!(r.tdev, s.get("timestamp").as_str().map(stated_time), "{}", s.label);
    assert_eq!(ctx(r, "site").map(str::to_string), s.get("temperature_type").as_str().map(name), "{}", s.label);
}

fn check_glucose(r: &GattReading, s: &Stated) {
    // Values the source's test asserts, and values its comments state (vector 1).
    let at = |k: &str| if s.has(&format!("asserted/{k}")) { format!("asserted/{k}") } else { k.to_string() };
    if s.has(&at("sequence_number")) {
        assert_eq!(r.record.map(u64::from), s.get(&at("sequence_number")).as_u64(), "{}", s.label);
    }
    if s.has(&at("context_information_follows")) {
        assert_eq!(Some(r.context_follows), s.get(&at("context_information_follows")).as_bool(), "{}", s.label);
    }
    if s.has(&at("unit")) {
        let source = if s.str(&at("unit")).starts_with("kg/L") { "glucose_mass" } else { "glucose_molar" };
        assert!(r.value(source).is_some(), "{}: {source}", s.label);
    }
    if s.has("annotated_in_source_comments") {
        let base = stated_time(s.str("annotated_in_source_comments/base_time"));
        let offset = s.get("annotated_in_source_comments/time_offset_minutes").as_i64().unwrap();
        assert_eq!(r.tdev, Some(base + offset * 60_000_000), "{}", s.label);
        let minute = s.get("asserted/time.minute_after_offset").as_u64().unwrap();
        assert_eq!(iso(r.tdev.unwrap())[14..16], format!("{minute:02}"), "{}", s.label);
        // "30.0 kg/L" in mg/dL (1 kg/L = 100,000 mg/dL).
        let kg_l: f64 =
            s.str("annotated_in_source_comments/glucose_concentration").split(' ').next().unwrap().parse().unwrap();
        assert_eq!(val(r, "glucose_mass"), Some(kg_l * 100_000.0), "{}", s.label);
        assert_eq!(ctx(r, "sample_type"), Some(name(s.str("annotated_in_source_comments/type")).as_str()));
        assert_eq!(
            ctx(r, "sample_location"),
            Some(name(s.str("annotated_in_source_comments/sample_location")).as_str())
        );
        assert_eq!(ctx(r, "status_bits"), Some(s.get("asserted/status.value").to_string().as_str()), "{}", s.label);
        let status: BTreeSet<&str> = ctx(r, "status").unwrap_or("").split(',').collect();
        assert_eq!(status.contains("battery-low"), s.get("asserted/status.deviceBatteryLow").as_bool().unwrap());
        assert_eq!(
            status.contains("general-device-fault"),
            s.get("asserted/status.generalDeviceFault").as_bool().unwrap()
        );
        return;
    }
    if s.has("glucose_concentration") {
        // mol/L in mmol/L.
        let tol = s.get("tolerance").as_f64().unwrap_or(0.0) * 1000.0;
        let stated = s.get("glucose_concentration").as_f64();
        match stated {
            Some(c) => {
                let g = val(r, "glucose_molar").unwrap();
                assert!((g - c * 1000.0).abs() <= tol, "{}: {g}", s.label);
            }
            None => assert!(r.values.is_empty(), "{}: stated no concentration", s.label),
        }
    }
    if let Some(t) = s.get("time").as_str().or(s.get("base_time").as_str()) {
        assert_eq!(r.tdev, Some(stated_time(t)), "{}", s.label);
    }
    for key in ["type", "sample_location"] {
        if s.has(key) {
            let ours = if key == "type" { "sample_type" } else { key };
            assert_eq!(ctx(r, ours).map(str::to_string), s.get(key).as_str().map(name), "{} {key}", s.label);
        }
    }
    if let Some(status) = s.get("status").as_str() {
        // "GlucoseStatus(6)": the annunciation bits.
        let bits = status.trim_start_matches("GlucoseStatus(").trim_end_matches(')');
        assert_eq!(ctx(r, "status_bits"), Some(bits), "{}", s.label);
    }
    if let Some(bits) = s.get("sensor_status").as_u64() {
        assert_eq!(ctx(r, "status_bits"), Some(bits.to_string().as_str()), "{}", s.label);
    }
}

fn check_glucose_context(r: &GattReading, s: &Stated) {
    assert_eq!(r.record.map(u64::from), s.get("sequence_number").as_u64(), "{}", s.label);
    for (keys, source) in [
        (["exercise_duration_s", "exercise_duration_seconds"], "exercise_duration"),
        (["exercise_intensity_pct", "exercise_intensity_percent"], "exercise_intensity"),
    ] {
        for k in keys.iter().filter(|k| s.has(k)) {
            s.value(k, val(r, source), 0.0);
        }
    }
    if s.has("carbohydrate") {
        // "flags": 0xFF, all fields present, medication in litres (bit 5).
        assert!(s.str("flags").starts_with("0xFF"), "{}", s.label);
        // SFLOAT kg in grams; litres in millilitres.
        s.value("carbohydrate", val(r, "carbohydrate").map(|g| g / 1000.0), 1e-9);
        assert_eq!(ctx(r, "carbohydrate_meal").map(str::to_string), Some(name(s.str("carbohydrate_id"))));
        assert_eq!(ctx(r, "meal").map(str::to_string), Some(name(s.str("meal"))));
        assert_eq!(ctx(r, "medication").map(str::to_string), Some(name(s.str("medication_id"))));
        assert_eq!(s.str("medication_units"), "Units of liters");
        s.value("medication", val(r, "medication_volume").map(|ml| ml / 1000.0), 1e-9);
        assert_eq!(val(r, "medication_mass"), None, "litres, not kilograms");
        s.value("hba1c", val(r, "hba1c"), 0.0);
        // The source reads the Tester-Health byte with Health in the low nibble, against the
        // specification (Tester low, Health high; see SOURCES.md): the same byte, read by the
        // specification, gives the source's health as our tester and its tester as our health.
        let tester_code =
            |t: &str| ["reserved", "self", "health-care-professional", "lab-test"].iter().position(|x| *x == t);
        let health_code = |t: &str| {
            [
                "reserved",
                "minor-health-issues",
                "major-health-issues",
                "during-menses",
                "under-stress",
                "no-health-issues",
            ]
            .iter()
            .position(|x| *x == t)
        };
        let stated_health = health_code(&name(s.str("health"))).unwrap();
        let stated_tester = if s.str("tester").starts_with("Reserved") { 0 } else { panic!("{}", s.str("tester")) };
        assert_eq!(tester_code(ctx(r, "tester").unwrap()), Some(stated_health), "{}", s.label);
        assert_eq!(health_code(ctx(r, "health").unwrap()), Some(stated_tester), "{}", s.label);
    }
    for k in ["all_optional_fields", "other_optional_fields"] {
        if s.has(k) {
            // Stated null: no further field. The context carries its record number only.
            assert!(s.get(k).is_null());
            let stated =
                ["exercise_duration_seconds", "exercise_intensity_percent"].iter().filter(|k| s.has(k)).count();
            assert_eq!(r.values.len(), stated, "{}", s.label);
            assert_eq!(r.ctx.keys().collect::<Vec<_>>(), ["record"], "{}", s.label);
        }
    }
}

/// The source's flag names, exactly, in the gateway's spelling.
const PLX_FLAGS: &[(&str, &str)] = &[
    ("measurementIsOngoing", "measurement-ongoing"),
    ("fullyQualifiedData", "fully-qualified-data"),
    ("questionableMeasurementDetected", "questionable-measurement"),
    ("equipmentMalfunctionDetected", "equipment-malfunction"),
    ("lowPerfusionDetected", "low-perfusion"),
    ("hasMeasurementStatusSupport", "measurement-status"),
    ("hasDeviceAndSensorStatusSupport", "device-and-sensor-status"),
    ("hasSpO2PRSlowSupport", "spo2pr-slow"),
    ("supportsMultipleBonds", "multiple-bonds"),
    ("calibrationOngoing", "calibration-ongoing"),
    ("earlyEstimatedData", "early-estimated-data"),
    ("nonpulsatileSignalDetected", "nonpulsatile-signal"),
    ("questionablePulseDetected", "questionable-pulse"),
];

fn check_flags(r: &GattReading, ours: &str, s: &Stated, key: &str) {
    let Some(list) = s.get(key).as_array() else { return };
    let want: BTreeSet<&str> = list
        .iter()
        .map(|x| {
            let theirs = x.as_str().unwrap();
            PLX_FLAGS.iter().find(|(t, _)| *t == theirs).unwrap_or_else(|| panic!("no spelling for {theirs}")).1
        })
        .collect();
    let got: BTreeSet<&str> = ctx(r, ours).unwrap_or("").split(',').filter(|n| !n.is_empty()).collect();
    assert_eq!(got, want, "{} {key}", s.label);
}

fn check_plx(r: &GattReading, s: &Stated) {
    let _ = s.get("direction"); // how the source test used the bytes (encode/decode): informational
    for (src, key) in [
        ("spo2", "spo2_pct"),
        ("pulse_rate", "pulse_rate_bpm"),
        ("spo2_fast", "spo2_fast_pct"),
        ("pulse_rate_fast", "pulse_rate_fast_bpm"),
        ("spo2_slow", "spo2_slow_pct"),
        ("pulse_rate_slow", "pulse_rate_slow_bpm"),
        ("pulse_amplitude_index", "pulse_amplitude_index"),
    ] {
        if s.has(key) {
            s.value(key, val(r, src), 1e-9);
        } else {
            assert_eq!(val(r, src), None, "{}: {src} is not stated", s.label);
        }
    }
    check_flags(r, "measurement_status", s, "measurement_status");
    check_flags(r, "device_status", s, "device_and_sensor_status");
    check_flags(r, "features", s, "supported_features");
    check_flags(r, "measurement_status_support", s, "measurement_status_support");
    check_flags(r, "device_status_support", s, "device_and_sensor_status_support");
    if s.has("timestamp") {
        assert_eq!(r.tdev, Some(stated_time(s.str("timestamp"))), "{}", s.label);
    }
}

fn check_racp(bytes: &[u8], s: &Stated) {
    if s.has("opcode") {
        // Packets as bluetooth-sig-python writes them: a request, and a response.
        let opcode = s.str("opcode");
        assert_eq!(s.str("operator"), "NULL (0)");
        if opcode.starts_with("ABORT_OPERATION") {
            assert_eq!(racp::Request::Abort.encode(), bytes, "{}", s.label);
        } else {
            assert!(opcode.starts_with("RESPONSE_CODE"), "{opcode}");
            // "01 01 (request op code 1, response success)"
            assert!(s.str("operand").starts_with("01 01"), "{}", s.label);
            let r = racp::decode_response(bytes).unwrap();
            assert_eq!(r, racp::Response::Code { request: 1, code: 1 }, "{}", s.label);
        }
        return;
    }
    let r = racp::decode_response(bytes);
    if stated_invalid(s) {
        assert!(r.is_err(), "{} must be refused: {r:?}", s.label);
        return;
    }
    let kind = s.str("kind");
    match r.unwrap_or_else(|err| panic!("{}: {err}", s.label)) {
        racp::Response::Code { request, code } => {
            assert_eq!(kind, "response code");
            if s.has("request_op_code") {
                assert_eq!(Some(u64::from(request)), s.get("request_op_code").as_u64(), "{}", s.label);
            }
            match s.get("error_code").as_u64() {
                Some(c) => {
                    assert_eq!(u64::from(code), c, "{}", s.label);
                    let meaning = s.str("meaning");
                    assert!(meaning.starts_with(racp::code_meaning(code)), "{}: {meaning}", s.label);
                }
                None => {
                    assert_eq!(code, 1, "{}: success", s.label);
                    assert!(s.str("result").starts_with("success"), "{}", s.label);
                }
            }
        }
        racp::Response::NumberOfRecords(n) => {
            assert_eq!(kind, "number of stored records response");
            assert_eq!(Some(u64::from(n)), s.get("number_of_records").as_u64(), "{}", s.label)
        }
    }
}

#[test]
fn requests_the_collector_writes() {
    assert_eq!(racp::Request::ReportAll.encode(), [0x01, 0x01]);
    // Records with sequence number >= 0x0102: op 1, operator 3 (>=), filter 1 (sequence number).
    assert_eq!(racp::Request::ReportFrom(0x0102).encode(), [0x01, 0x03, 0x01, 0x02, 0x01]);
}

#[test]
fn polar_pmd_vectors() {
    let all = vectors("pmd_ecg_vectors.json");
    for v in all["sdk_test_vectors"].as_array().unwrap() {
        let bytes = hex::decode(v["hex"].as_str().unwrap()).unwrap();
        let name = v["name"].as_str().unwrap();
        let e = &v["expected"];
        if name.starts_with("ECG frame type 0") {
            let f = pmd::decode_ecg(&bytes).unwrap();
            let want: Vec<i32> =
                e["microvolts"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap() as i32).collect();
            assert_eq!(f.samples, want);
            assert_eq!(f.timestamp_ns, e["timestamp_ns_of_last_sample"].as_u64().unwrap());
            // 2 s after 2000-01-01T00:00:00Z.
            assert_eq!(iso(f.last_sample_micros), "2000-01-01T00:00:02Z");
        } else if name.starts_with("ECG frame type") {
            // Frame types the H10 does not send are refused, not misread.
            assert!(pmd::decode_ecg(&bytes).is_err(), "{name}");
        } else if name.starts_with("PMD data header") {
            let h = pmd::decode_header(&bytes).unwrap();
            assert_eq!(h.measurement_type, 0);
            assert_eq!(h.timestamp_ns, e["timestamp_ns"].as_u64().unwrap());
            assert_eq!((h.frame_type, h.compressed), (3, false));
        } else if name.starts_with("PMD settings") {
            let s = pmd::decode_settings(&bytes).unwrap();
            assert_eq!(s.len() as u64, e["number_of_settings"].as_u64().unwrap());
            for (kind, key) in [(0u8, "SAMPLE_RATE"), (1, "RESOLUTION"), (2, "RANGE"), (4, "CHANNELS")] {
                let want: Vec<u32> = e[key].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
                assert_eq!(s[&kind], want, "{key}");
            }
        } else if name.starts_with("PMD control point") {
            let r = pmd::decode_control_response(&bytes).unwrap();
            assert_eq!(r.op, 1);
            assert_eq!(u64::from(r.measurement_type), e["measurement_type"].as_u64().unwrap());
            let status = e["status"].as_str().unwrap();
            assert!(status.ends_with(&format!("({})", r.status)), "{status}");
            assert_eq!(r.more, e["more"].as_bool().unwrap());
            assert_eq!(hex::encode(&r.parameters), e["parameters_hex"].as_str().unwrap());
        } else {
            panic!("vector {name} not checked");
        }
    }
}
