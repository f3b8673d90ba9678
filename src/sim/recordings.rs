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

/// A Contour glucometer's whole upload as ASTM E1381 frames (ENQ .. EOT), as the meter sent it.
pub const CONTOUR_ASTM_SESSION: &[u8] = include_bytes!("recordings/contour_usb_session.astm");

/// Profiles of the simulated waveform devices (file name, text): the recordings' own rates, leads
/// and scales on the shipped protocols. The demo and the tests put them in a `profiles_dir`.
pub const WAVE_PROFILES: &[(&str, &str)] = &[
    ("mitbih-cyton.toml", include_str!("recordings/profiles/mitbih-cyton.toml")),
    ("ptbxl-text.toml", include_str!("recordings/profiles/ptbxl-text.toml")),
    ("pcg-pcm.toml", include_str!("recordings/profiles/pcg-pcm.toml")),
];

/// Writes [`WAVE_PROFILES`] into `dir`.
pub fn write_wave_profiles(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in WAVE_PROFILES {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}

/// BLE notifications the demo's simulated BLE devices send: sourced GATT vectors (see
/// `recordings/SOURCES.md`; the same bytes as `tests/fixtures/ble/gatt_vectors.json`).
pub mod ble {
    /// Blood Pressure Measurement (0x2A35): 138/88 mmHg, MAP 120, pulse 60, user 1 (Nordic
    /// Android-BLE-Library); 18.9/11.0 kPa, MAP 15.9, pulse 60 (same source).
    pub const BLOOD_PRESSURE: &[&str] = &["1e8a00580078000000041114293b3c00012700", "15bdf00b009ff03c001200"];
    /// Temperature Measurement (0x2A1C): 37.6 Cel at the finger, 2012-12-05T11:50:27 (Nordic).
    pub const TEMPERATURE: &[&str] = &["06b00e00fedc070c050b321b04"];
}

/// A light-microscopy image of a stained blood smear (BCCD, JPEG 640×480): what the demo's
/// simulated microscope camera and its vendor-software folder serve.
pub const BLOOD_SMEAR_JPEG: &[u8] = include_bytes!("recordings/bccd_BloodImage_00000.jpg");
