//! Broken configurations and profiles are refused at start, each problem named with file, line,
//! column and item.

use spokegate::config::Config;
use spokegate::profile::compile;
use std::path::Path;

const GOOD_GATEWAY: &str = "[gateway]\nsite = \"s1\"\nid = \"gw-1\"\nstate_dir = \"/tmp/x\"\n";
const GOOD_MQTT: &str = "[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\n";

/// (what is wrong, file text, expected line, expected item, a word the message must contain)
fn broken_configs() -> Vec<(&'static str, String, usize, &'static str, &'static str)> {
    vec![
        ("site with capitals", format!("[gateway]\nsite = \"Upazila\"\nid = \"gw\"\nstate_dir = \"/x\"\n{GOOD_MQTT}"), 2, "gateway.site", "must match"),
        ("unknown key", format!("{GOOD_GATEWAY}colour = \"red\"\n{GOOD_MQTT}"), 5, "gateway.colour", "unknown field"),
        ("missing mqtt table", GOOD_GATEWAY.to_string(), 1, "(document)", "mqtt"),
        ("bad url scheme", format!("{GOOD_GATEWAY}[mqtt]\nurl = \"http://hub\"\n"), 6, "mqtt.url", "not an MQTT URL"),
        ("port out of range", format!("{GOOD_GATEWAY}[mqtt]\nurl = \"mqtt://hub:99999\"\n"), 6, "mqtt.url", "port"),
        ("unknown profile", format!("{GOOD_GATEWAY}{GOOD_MQTT}[[device]]\nid = \"m1\"\nprofile = \"nope\"\nserial = {{ path = \"/dev/ttyUSB0\" }}\n"), 9, "device[0].profile", "no profile `nope`"),
        ("duplicate device id", format!("{GOOD_GATEWAY}{GOOD_MQTT}[[device]]\nid = \"m1\"\nprofile = \"hl7-pcd01\"\nserial = {{ path = \"/dev/a\" }}\n[[device]]\nid = \"m1\"\nprofile = \"hl7-pcd01\"\nserial = {{ path = \"/dev/b\" }}\n"), 12, "device[1].id", "used twice"),
        ("device without transport", format!("{GOOD_GATEWAY}{GOOD_MQTT}[[device]]\nid = \"m1\"\nprofile = \"hl7-pcd01\"\n"), 8, "device[0].serial", "transport"),
        ("wrong type", format!("{GOOD_GATEWAY}[mqtt]\nurl = 1883\n"), 6, "mqtt.url", "string"),
        ("zero queue cap", format!("{GOOD_GATEWAY}{GOOD_MQTT}[queue]\nwave_max_mb = 0\n"), 8, "queue.wave_max_mb", "between 1"),
        ("BLE address malformed", format!("{GOOD_GATEWAY}{GOOD_MQTT}[[device]]\nid = \"g1\"\nprofile = \"ble-glucose\"\nble = {{ address = \"AA:BB:CC\" }}\n"), 10, "device[0].ble.address", "Bluetooth address"),
        ("serial port for a BLE profile", format!("{GOOD_GATEWAY}{GOOD_MQTT}[[device]]\nid = \"g1\"\nprofile = \"ble-heart-rate\"\nserial = {{ path = \"/dev/ttyUSB0\" }}\n"), 10, "device[0].serial", "BLE device"),
        ("ble for a serial profile", format!("{GOOD_GATEWAY}{GOOD_MQTT}[[device]]\nid = \"m1\"\nprofile = \"hl7-pcd01\"\nble = {{ address = \"AA:BB:CC:DD:EE:FF\" }}\n"), 10, "device[0].ble", "serial device"),
        ("ble by name alone", format!("{GOOD_GATEWAY}{GOOD_MQTT}[[device]]\nid = \"hr-1\"\nprofile = \"ble-heart-rate\"\nble = {{ name = \"Mock HR\" }}\n"), 10, "device[0].ble", "allow_unbonded"),
        ("BLE device without ble", format!("{GOOD_GATEWAY}{GOOD_MQTT}[[device]]\nid = \"g1\"\nprofile = \"ble-glucose\"\n"), 8, "device[0].ble", "transport"),
        ("bad body format", format!("[gateway]\nsite = \"s\"\nid = \"g\"\nstate_dir = \"/x\"\nbody_format = \"xml\"\n{GOOD_MQTT}"), 5, "gateway.body_format", "cbor, json"),
        ("hub key file missing", format!("{GOOD_GATEWAY}{GOOD_MQTT}[hub]\nkeys = [\"/nonexistent/hub.jwk\"]\n"), 8, "hub.keys[0]", "No such file"),
        ("hub key not JSON", format!("{GOOD_GATEWAY}{GOOD_MQTT}[hub]\nkeys = [\"/etc/hostname\"]\n"), 8, "hub.keys[0]", "not JSON"),
        ("hub delivery without a hub key", format!("{GOOD_GATEWAY}{GOOD_MQTT}[hub]\ndelivery = \"hub\"\n"), 8, "hub.delivery", "needs the hub's key"),
        ("unknown delivery", format!("{GOOD_GATEWAY}{GOOD_MQTT}[hub]\ndelivery = \"carrier-pigeon\"\n"), 8, "hub.delivery", "broker, hub"),
        ("unacked_max zero", format!("{GOOD_GATEWAY}{GOOD_MQTT}[hub]\nunacked_max = 0\n"), 8, "hub.unacked_max", "between 1"),
        ("folder for a serial profile", format!("{GOOD_GATEWAY}{GOOD_MQTT}[[device]]\nid = \"m1\"\nprofile = \"hl7-pcd01\"\nfolder = {{ path = \"/srv/out\" }}\n"), 10, "device[0].folder", "not an image device"),
        ("image device without a transport", format!("{GOOD_GATEWAY}{GOOD_MQTT}[[device]]\nid = \"scope\"\nprofile = \"usb-microscope\"\n"), 8, "device[0].camera", "needs a transport"),
        ("image device on a serial port", format!("{GOOD_GATEWAY}{GOOD_MQTT}[[device]]\nid = \"scope\"\nprofile = \"usb-microscope\"\nserial = {{ path = \"/dev/ttyUSB0\" }}\n"), 10, "device[0].serial", "folder"),
        ("camera and folder", format!("{GOOD_GATEWAY}{GOOD_MQTT}[[device]]\nid = \"scope\"\nprofile = \"usb-microscope\"\nfolder = {{ path = \"/srv/out\" }}\ncamera = {{ path = \"/dev/video0\" }}\n"), 10, "device[0].folder", "not both"),
        ("folder pattern with a slash", format!("{GOOD_GATEWAY}{GOOD_MQTT}[[device]]\nid = \"scope\"\nprofile = \"usb-microscope\"\nfolder = {{ path = \"/srv/out\", pattern = \"a/*.jpg\" }}\n"), 10, "device[0].folder.pattern", "no `/`"),
        ("media part larger than a packet", format!("{GOOD_GATEWAY}{GOOD_MQTT}[media]\npart_kb = 5000\n"), 8, "media.part_kb", "MQTT packet"),
        ("page on every address without a password", format!("{GOOD_GATEWAY}{GOOD_MQTT}[ui]\nlisten = \"0.0.0.0:8480\"\n"), 8, "ui.listen", "password"),
        ("page password not a hash", format!("{GOOD_GATEWAY}{GOOD_MQTT}[ui]\npassword_hash = \"secret\"\n"), 8, "ui.password_hash", "hash-password"),
        ("byte cap too small", format!("{GOOD_GATEWAY}{GOOD_MQTT}max_bytes_per_sec = 10\n"), 7, "mqtt.max_bytes_per_sec", "at least"),
    ]
}

#[test]
fn a_gateway_key_among_the_hub_keys_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let gw_key = spokegate::sign::SigningKey::generate(&dir.path().join("g.key")).unwrap();
    let bound = spokegate::sign::BoundKey {
        key: gw_key.public().clone(),
        binding: spokegate::sign::Binding::Gateway { site: "s1".into(), gw: "gw-1".into() },
    };
    let jwk = dir.path().join("g.jwk");
    std::fs::write(&jwk, bound.to_jwk()).unwrap();
    let text = format!("{GOOD_GATEWAY}{GOOD_MQTT}[hub]\nkeys = [\"{}\"]\n", jwk.display());
    let err = Config::parse(Path::new("c.toml"), &text).unwrap_err().to_string();
    assert!(err.contains("c.toml:8:") && err.contains("hub.keys[0]") && err.contains("not a hub key"), "{err}");
}

#[test]
fn every_broken_config_is_refused_with_file_line_and_item() {
    for (what, text, line, item, word) in broken_configs() {
        let path = Path::new("/etc/spokegate/broken.toml");
        let err = Config::parse(path, &text).expect_err(what);
        let rendered = err.to_string();
        let hit = err
            .0
            .iter()
            .find(|d| d.item == item)
            .unwrap_or_else(|| panic!("{what}: no diagnostic for `{item}` in:\n{rendered}"));
        assert_eq!(hit.line, line, "{what}: {rendered}");
        assert!(hit.column >= 1);
        assert!(hit.message.contains(word), "{what}: `{word}` not in {rendered}");
        assert!(rendered.starts_with(&format!("/etc/spokegate/broken.toml:{line}:")), "{what}: {rendered}");
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let text = "[gateway]\nsite = \"BAD\"\nid = \"also bad\"\nstate_dir = \"/x\"\n[mqtt]\nurl = \"ftp://x\"\n[[device]]\nid = \"m\"\nprofile = \"nope\"\n";
    let err = Config::parse(Path::new("c.toml"), text).unwrap_err();
    let items: Vec<&str> = err.0.iter().map(|d| d.item.as_str()).collect();
    for item in ["gateway.site", "gateway.id", "mqtt.url", "device[0].profile", "device[0].serial"] {
        assert!(items.contains(&item), "{item} missing from {items:?}");
    }
}

const PROFILE_HEAD: &str = "id = \"p1\"\n[framing]\nkind = \"line\"\n";

fn broken_profiles() -> Vec<(&'static str, String, usize, &'static str)> {
    vec![
        ("unknown framing", "id = \"p1\"\n[framing]\nkind = \"slip\"\n[decoder]\nkind = \"hl7-oru\"\n".into(), 3, "framing.kind"),
        ("unknown decoder", format!("{PROFILE_HEAD}[decoder]\nkind = \"magic\"\n"), 5, "decoder.kind"),
        ("bad LOINC check digit", format!("{PROFILE_HEAD}[decoder]\nkind = \"text\"\nformat = \"key-value\"\n[[field]]\nsource = \"HR\"\nmdc = 147842\nloinc = \"8867-5\"\nucum = \"/min\"\n"), 10, "field[0].loinc"),
        ("unit with a space", format!("{PROFILE_HEAD}[decoder]\nkind = \"text\"\nformat = \"key-value\"\n[[field]]\nsource = \"HR\"\nmdc = 147842\nucum = \"beats per min\"\n"), 10, "field[0].ucum"),
        ("field not among the columns", format!("{PROFILE_HEAD}[decoder]\nkind = \"text\"\nformat = \"csv\"\ncolumns = [\"a\", \"b\"]\n[[field]]\nsource = \"c\"\nmdc = 1\nucum = \"1\"\n"), 9, "field[0].source"),
        ("bad time format", format!("{PROFILE_HEAD}[decoder]\nkind = \"text\"\nformat = \"csv\"\ncolumns = [\"d\", \"v\"]\ndevice_time = {{ from = [\"d\"], format = \"[mnth]\" }}\n[[field]]\nsource = \"v\"\nmdc = 1\nucum = \"1\"\n"), 8, "decoder.device_time.format"),
        ("zero baud", "id = \"p1\"\n[serial]\nbaud = 0\n[framing]\nkind = \"mllp\"\n[decoder]\nkind = \"hl7-oru\"\n".into(), 3, "serial.baud"),
        ("invalid id", "id = \"P 1\"\n[framing]\nkind = \"mllp\"\n[decoder]\nkind = \"hl7-oru\"\n".into(), 1, "id"),
        ("frame limit too big", "id = \"p\"\n[framing]\nkind = \"mllp\"\nmax_len = 99999999\n[decoder]\nkind = \"hl7-oru\"\n".into(), 4, "framing.max_len"),
        ("unknown key", format!("{PROFILE_HEAD}[decoder]\nkind = \"hl7-oru\"\nspeed = 3\n"), 6, "decoder.speed"),
        ("gatt characteristic unknown", "id = \"b\"\n[ble]\nservice = \"0x180D\"\n[decoder]\nkind = \"gatt\"\ncharacteristics = [\"0x2A37\", \"0x2A99\"]\n[[field]]\nsource = \"heart_rate\"\nmdc = 147842\n".into(), 6, "decoder.characteristics[1]"),
        ("gatt field no characteristic gives", "id = \"b\"\n[ble]\nservice = \"0x180D\"\n[decoder]\nkind = \"gatt\"\ncharacteristics = [\"0x2A37\"]\n[[field]]\nsource = \"spo2\"\nmdc = 150456\n".into(), 8, "field[0].source"),
        ("BLE service not a UUID", "id = \"b\"\n[ble]\nservice = \"heart\"\n[decoder]\nkind = \"gatt\"\ncharacteristics = [\"0x2A37\"]\n[[field]]\nsource = \"heart_rate\"\nmdc = 1\n".into(), 3, "ble.service"),
        ("BLE profile with framing", "id = \"b\"\n[ble]\nservice = \"0x180D\"\n[framing]\nkind = \"line\"\n[decoder]\nkind = \"gatt\"\ncharacteristics = [\"0x2A37\"]\n[[field]]\nsource = \"heart_rate\"\nmdc = 1\n".into(), 5, "framing"),
        ("RACP without glucose measurement", "id = \"b\"\n[ble]\nservice = \"0x1808\"\n[decoder]\nkind = \"gatt\"\ncharacteristics = [\"0x2A37\"]\nracp = true\n[[field]]\nsource = \"heart_rate\"\nmdc = 1\n".into(), 5, "decoder.racp"),
        ("waveform without channels", format!("{PROFILE_HEAD}[decoder]\nkind = \"samples\"\n[wave]\nstream = \"ecg\"\nrate = 250.0\n"), 5, "channel"),
        ("wave window too short", format!("{PROFILE_HEAD}[decoder]\nkind = \"samples\"\n[wave]\nstream = \"ecg\"\nrate = 250.0\nwindow_ms = 1\n[[channel]]\nsource = 1\nlabel = \"II\"\nmdc = 131330\nucum = \"mV\"\ngain = 0.005\n"), 9, "wave.window_ms"),
        ("stream name not a topic segment", format!("{PROFILE_HEAD}[decoder]\nkind = \"samples\"\n[wave]\nstream = \"ECG/II\"\nrate = 250.0\n[[channel]]\nsource = 1\nlabel = \"II\"\nmdc = 131330\nucum = \"mV\"\ngain = 0.005\n"), 7, "wave.stream"),
        ("camera table for a serial profile", format!("{PROFILE_HEAD}[decoder]\nkind = \"hl7-oru\"\n[camera]\nwarmup_frames = 1\n"), 6, "camera"),
        ("too many warm-up frames", "id = \"c\"\n[decoder]\nkind = \"image\"\n[camera]\nwarmup_frames = 1000\n".into(), 5, "camera.warmup_frames"),
        ("image profile with framing", "id = \"c\"\n[framing]\nkind = \"line\"\n[decoder]\nkind = \"image\"\n".into(), 3, "framing"),
        ("sync word too long", "id = \"s\"\n[framing]\nkind = \"sync-length\"\nsync = [1, 2, 3, 4, 5, 6, 7, 8, 9]\n[decoder]\nkind = \"pcm\"\nchannels = 1\n[wave]\nstream = \"pcg\"\nrate = 4000.0\n[[channel]]\nsource = 1\nlabel = \"P\"\nmdc = 1\nucum = \"1\"\ngain = 1.0\n".into(), 4, "framing.sync"),
    ]
}

#[test]
fn every_broken_profile_is_refused_with_file_line_and_item() {
    for (what, text, line, item) in broken_profiles() {
        let err = compile(Path::new("device-profiles/p1.toml"), &text).expect_err(what);
        let rendered = err.to_string();
        let hit =
            err.0.iter().find(|d| d.item == item).unwrap_or_else(|| panic!("{what}: no `{item}` in:\n{rendered}"));
        assert_eq!(hit.line, line, "{what}: {rendered}");
        assert!(rendered.contains("device-profiles/p1.toml:"), "{what}: {rendered}");
    }
}

#[test]
fn a_broken_operator_profile_is_named_when_the_config_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("meter.toml"),
        "id = \"meter\"\n[framing]\nkind = \"line\"\n[decoder]\nkind = \"text\"\nformat = \"yaml\"\n",
    )
    .unwrap();
    let text = format!(
        "[gateway]\nsite = \"s\"\nid = \"g\"\nstate_dir = \"/x\"\nprofiles_dir = \"{}\"\n{GOOD_MQTT}",
        dir.path().display()
    );
    let err = Config::parse(Path::new("c.toml"), &text).unwrap_err();
    let d = err.0.iter().find(|d| d.item == "decoder.format").unwrap_or_else(|| panic!("{err}"));
    assert_eq!(d.file, dir.path().join("meter.toml"));
    assert_eq!(d.line, 6);
}
