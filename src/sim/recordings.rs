//! Real recordings replayed by the demo's simulated devices (see `recordings/SOURCES.md`).

/// HL7 v2 ORU^R01 messages from an IHE PCD-01 / Continua device, one per entry.
pub const HL7_MESSAGES: &[(&str, &[u8])] = &[
    ("pcd01_oru_r01_nibp_acme", include_bytes!("recordings/pcd01_oru_r01_nibp_acme.hl7")),
    ("continua_wan_oru_r01_bp", include_bytes!("recordings/continua_wan_oru_r01_bp.hl7")),
    ("continua_wan_oru_r01_glucose", include_bytes!("recordings/continua_wan_oru_r01_glucose.hl7")),
    ("continua_wan_oru_r01_oximeter", include_bytes!("recordings/continua_wan_oru_r01_oximeter.hl7")),
    ("continua_wan_oru_r01_thermometer", include_bytes!("recordings/continua_wan_oru_r01_thermometer.hl7")),
    ("oru_r01_lab_glucose_v25", include_bytes!("recordings/oru_r01_lab_glucose_v25.hl7")),
];

/// A OneTouch Ultra 2 memory dump as the meter sends it (CR LF lines).
pub const ONETOUCH_DUMP: &[u8] = include_bytes!("recordings/onetouch_ultra2_dmp.txt");
