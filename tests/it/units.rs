//! Every reading a device sends: units through the built-in MDC unit table, every value a GATT
//! characteristic carries mapped by the shipped profiles where a clinical code exists, and a value
//! a profile does not map reported (once per connection), never dropped in silence.

use crate::e2e::fixture;
use spokegate::capture::{decode_ble_capture, decode_capture};
use spokegate::decode::ble::readings;
use spokegate::decode::gatt::{self, Characteristic};
use spokegate::framing::mllp_wrap;
use spokegate::model::Body;
use spokegate::profile::{compile, DecoderSpec, ProfileRegistry};
use std::path::Path;

fn values(bodies: &[Body]) -> Vec<(u32, f64, String, Option<u32>)> {
    bodies
        .iter()
        .flat_map(|b| b.obs.iter().flatten())
        .map(|o| (o.code.mdc, o.val.unwrap(), o.unit.ucum.clone(), o.unit.mdc))
        .collect()
}

#[test]
fn a_continua_scale_sends_mass_height_and_bmi_with_units_from_the_table() {
    let reg = ProfileRegistry::builtin().unwrap();
    let bodies = decode_capture(&reg.get("hl7-pcd01").unwrap(), &mllp_wrap(&fixture("continua_wan_oru_r01_scale")));
    // As the message states them (OBX-3, OBX-5, OBX-6), for both measurement groups.
    let one = [
        (188736, 80.0, "kg".to_string(), Some(263875)),
        (188740, 180.0, "cm".to_string(), Some(263441)),
        (188752, 24.7, "kg/m2".to_string(), Some(264096)),
    ];
    assert_eq!(values(&bodies), [one.clone(), one].concat());
    assert!(bodies.iter().all(|b| b.event.is_none()), "nothing refused: {bodies:?}");
}

#[test]
fn every_unit_of_every_shipped_profile_is_in_the_mdc_table() {
    let reg = ProfileRegistry::builtin().unwrap();
    let mut checked = 0;
    for id in reg.ids() {
        let p = reg.get(id).unwrap();
        let fields = match &p.decoder {
            DecoderSpec::Text(t) => t.fields.clone(),
            DecoderSpec::Gatt(g) => g.fields.clone(),
            DecoderSpec::Hl7Oru(h) => {
                for (code, ucum) in &h.units {
                    let u = spokegate::units::by_code(*code).unwrap_or_else(|| panic!("{id}: {code}"));
                    assert!(u.synonyms.contains(&ucum.as_str()), "{id}: {code} {ucum} vs {:?}", u.synonyms);
                    checked += 1;
                }
                continue;
            }
            _ => continue,
        };
        for f in fields.iter().filter(|f| f.unit.mdc.is_some()) {
            let code = f.unit.mdc.unwrap();
            let u =
                spokegate::units::by_code(code).unwrap_or_else(|| panic!("{id} {}: {code} not in the table", f.source));
            if !f.unit.ucum.is_empty() {
                assert!(
                    u.synonyms.contains(&f.unit.ucum.as_str()),
                    "{id} {}: {} vs {:?}",
                    f.source,
                    f.unit.ucum,
                    u.synonyms
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} units checked");
}

#[test]
fn a_text_field_needs_only_its_mdc_unit_code() {
    let text = "id = \"scale-kv\"\n[framing]\nkind = \"line\"\n[decoder]\nkind = \"text\"\nformat = \"key-value\"\n\
                [[field]]\nsource = \"H\"\nmdc = 188740\nunit_mdc = 263441\n";
    let p = compile(Path::new("scale-kv.toml"), text).unwrap();
    let bodies = decode_capture(&p, b"H=180\n");
    assert_eq!(values(&bodies), [(188740, 180.0, "cm".to_string(), Some(263441))]);
    let unknown = text.replace("263441", "999999");
    let err = compile(Path::new("scale-kv.toml"), &unknown).unwrap_err().to_string();
    assert!(err.contains("field[0].unit_mdc") && err.contains("not in the built-in MDC unit table"), "{err}");
}

#[test]
fn the_shipped_ble_profiles_forward_every_value_that_has_a_clinical_code() {
    let reg = ProfileRegistry::builtin().unwrap();
    let spec = |id: &str| match &reg.get(id).unwrap().decoder {
        DecoderSpec::Gatt(g) => g.clone(),
        other => panic!("{other:?}"),
    };
    // Heart rate with energy expended and RR intervals (Nordic vector: 257 bpm, 306 kJ).
    let hr = gatt::decode(Characteristic::HeartRate, &hex::decode("1f0101320101000201ffff").unwrap()).unwrap();
    let r = readings(&spec("ble-heart-rate"), Characteristic::HeartRate, hr);
    let energy = r.observations.iter().find(|o| o.code.mdc == 8454263).expect("MDC_HF_ENERGY");
    assert_eq!((energy.val, energy.unit.ucum.as_str()), (Some(306.0), "kJ"));
    assert!(r.unmapped.is_empty(), "{:?}", r.unmapped);
    // Continuous PLX with fast and slow averages and the pulse amplitude index (bluetooth-sig-python).
    let plx =
        gatt::decode(Characteristic::PlxContinuous, &hex::decode("1fdef3caf3caf35af5d4f3b2f220010000007ae3").unwrap())
            .unwrap();
    let r = readings(&spec("ble-pulse-oximeter"), Characteristic::PlxContinuous, plx);
    assert!(r.unmapped.is_empty(), "{:?}", r.unmapped);
    let spo2: Vec<(Option<f64>, Option<&str>)> = r
        .observations
        .iter()
        .filter(|o| o.code.mdc == 150456)
        .map(|o| (o.val, o.ctx.as_ref().and_then(|c| c.get("modality")).map(String::as_str)))
        .collect();
    assert_eq!(
        spo2,
        [(Some(99.0), None), (Some(97.0), Some("MDC_MODALITY_FAST")), (Some(98.0), Some("MDC_MODALITY_SLOW"))]
    );
    let pai = r.observations.iter().find(|o| o.code.mdc == 150448).expect("MDC_PULS_OXIM_PERF_REL");
    assert_eq!(pai.val.map(|v| (v * 10.0).round() / 10.0), Some(8.9));
    // A glucose context with every field (its values as the source states them, in g, mL, %).
    let cx = gatt::decode(Characteristic::GlucoseContext, &hex::decode("ff06000001020304030202080405010203").unwrap())
        .unwrap();
    let r = readings(&spec("ble-glucose"), Characteristic::GlucoseContext, cx);
    let got: Vec<(u32, Option<f64>, &str)> =
        r.observations.iter().map(|o| (o.code.mdc, o.val, o.unit.ucum.as_str())).collect();
    assert_eq!(
        got,
        [
            (8417764, Some(770_000.0), "g"),
            (8417760, Some(8.0), "%"),
            (8417796, Some(261_000.0), "mL"),
            (160220, Some(770.0), "%")
        ]
    );
    // The exercise duration has no code of its own: reported, not dropped in silence.
    assert_eq!(r.unmapped, ["exercise_duration"]);
}

#[test]
fn a_value_the_profile_does_not_map_is_reported_once_per_connection() {
    // An operator's heart-rate profile that maps the rate only.
    let text = "id = \"hr-rate-only\"\n[ble]\nservice = \"0x180D\"\n[decoder]\nkind = \"gatt\"\n\
                characteristics = [\"0x2A37\"]\n[[field]]\nsource = \"heart_rate\"\nmdc = 147842\n";
    let p = compile(Path::new("hr-rate-only.toml"), text).unwrap();
    // Three notifications with energy expended and RR intervals (StanfordSpezi and Nordic vectors).
    let capture = "0x2A37 194b00380404043804\n0x2A37 1f0101320101000201ffff\n0x2A37 194b00380404043804\n";
    let bodies = decode_ble_capture(&p, capture).unwrap();
    let reports: Vec<&Body> =
        bodies.iter().filter(|b| b.event.as_ref().is_some_and(|e| e.code == "values-not-forwarded")).collect();
    assert_eq!(reports.len(), 1, "once per connection: {bodies:?}");
    let data = reports[0].event.as_ref().unwrap().data.as_ref().unwrap();
    assert_eq!(data["values"], serde_json::json!(["energy_expended", "rr_interval"]));
    assert_eq!(bodies.iter().filter(|b| b.obs.is_some()).count(), 3, "the heart rate is forwarded every time");
}
