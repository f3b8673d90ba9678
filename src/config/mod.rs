//! The daemon's TOML configuration: read, checked in full at start (every problem reported with
//! file, line, column and item), and turned into [`Config`].

mod images;
mod mqtt_url;
pub mod raw;

pub use mqtt_url::{MqttUrl, MqttUrlError};

use crate::diagnostic::{read_source, Diagnostics, SourceFile};
use crate::ids::is_valid_id;
use crate::model::BodyFormat;
use crate::profile::{Profile, ProfileRegistry};
use crate::queue::QueuePolicy;
use crate::sign::{read_bound_keys, Binding, KeyRing};
use raw::RawConfig;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: PathBuf,
    pub gateway: GatewayConfig,
    pub mqtt: MqttConfig,
    pub queue: QueuePolicy,
    pub hub: HubConfig,
    pub media: MediaConfig,
    pub ui: UiConfig,
    pub devices: Vec<DeviceConfig>,
}

/// The operator's page (`[ui]`).
#[derive(Debug, Clone, PartialEq)]
pub struct UiConfig {
    pub enabled: bool,
    pub listen: std::net::SocketAddr,
    pub password_hash: Option<String>,
    pub language: String,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8480)),
            password_hash: None,
            language: "en".into(),
        }
    }
}

/// What deletes a message from the durable queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The broker's PUBACK (v1).
    Broker,
    /// A signed `ack` from a hub whose key the gateway obeys (v1.1, end to end).
    Hub,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Broker => "broker",
            Delivery::Hub => "hub",
        }
    }
}

/// The hubs a gateway obeys.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Hub keys: commands and acknowledgements signed by them are obeyed.
    pub keys: KeyRing,
    pub delivery: Delivery,
    /// Hub delivery: a message not acknowledged this long after it was sent is sent again.
    pub ack_timeout: Duration,
    /// Hub delivery: at most this many messages sent and not yet acknowledged by a hub.
    pub unacked_max: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            keys: KeyRing::default(),
            delivery: Delivery::Broker,
            ack_timeout: Duration::from_secs(DEFAULT_ACK_TIMEOUT_SECS),
            unacked_max: DEFAULT_UNACKED_MAX,
        }
    }
}

/// Defaults of `[hub]`: half a minute before resending, and at most as many messages out as
/// mosquitto queues for a slow subscriber by default (`max_queued_messages 1000`).
pub const DEFAULT_ACK_TIMEOUT_SECS: u64 = 30;
pub const DEFAULT_UNACKED_MAX: usize = 1000;

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub site: String,
    pub id: String,
    pub state_dir: PathBuf,
    pub key_file: PathBuf,
    pub body_format: BodyFormat,
}

#[derive(Debug, Clone)]
pub struct MqttConfig {
    pub url: MqttUrl,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The operator allowed a password over plain `mqtt://` (warned about at every start).
    pub allow_plaintext_password: bool,
    pub ca: Option<PathBuf>,
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub client_id: String,
    pub keep_alive: Duration,
    /// Bytes per second sent to the broker at most (`None`: as fast as the link takes them).
    pub max_bytes_per_sec: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct DeviceConfig {
    pub id: String,
    pub profile: Arc<Profile>,
    pub transport: DeviceTransport,
    /// Image devices: send metadata as the file has it (no scrubbing).
    pub keep_metadata: bool,
}

/// How images are cut into parts and bounded (`[media]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    pub part_bytes: usize,
    pub max_file_bytes: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self { part_bytes: crate::media::parts::DEFAULT_PART_BYTES, max_file_bytes: 50 << 20 }
    }
}

/// How a device is reached.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceTransport {
    Serial {
        path: PathBuf,
        baud: u32,
    },
    /// A BLE device found by address or advertised name (and the profile's service).
    Ble {
        address: Option<String>,
        name: Option<String>,
    },
    /// A folder whose new image files are sent, each once.
    Folder {
        path: PathBuf,
        pattern: Option<String>,
    },
    /// A V4L2 camera (or `sim:NAME`, a simulated one serving recorded frames).
    Camera {
        path: PathBuf,
    },
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, Diagnostics> {
        let text = read_source(path)?;
        Self::parse(path, &text)
    }

    /// Checks a configuration's text; `path` names it in diagnostics and anchors relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Config, Diagnostics> {
        let src = SourceFile::new(path, text);
        let raw: RawConfig = toml::from_str(text).map_err(|e| Diagnostics(vec![src.from_toml_error(&e)]))?;
        let mut problems = Diagnostics::default();
        let mut at = |span: std::ops::Range<usize>, item: &str, msg: String| problems.0.push(src.at(span, item, msg));

        let g = &raw.gateway;
        for (value, item) in [(&g.site, "gateway.site"), (&g.id, "gateway.id")] {
            if !is_valid_id(value.get_ref()) {
                at(value.span(), item, format!("`{}` must match [a-z0-9][a-z0-9-]{{0,62}}", value.get_ref()));
            }
        }
        let body_format = match g.body_format.as_ref().map(|f| (f.get_ref().as_str(), f.span())) {
            None | Some(("cbor", _)) => BodyFormat::Cbor,
            Some(("json", _)) => BodyFormat::Json,
            Some((other, span)) => {
                at(span, "gateway.body_format", format!("`{other}` is not one of cbor, json"));
                BodyFormat::Cbor
            }
        };
        if g.state_dir.get_ref().as_os_str().is_empty() {
            at(g.state_dir.span(), "gateway.state_dir", "must not be empty".into());
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let state_dir = base.join(g.state_dir.get_ref());
        let key_file = g.key_file.as_ref().map(|k| base.join(k)).unwrap_or_else(|| state_dir.join("gateway.key"));

        let url = match MqttUrl::parse(raw.mqtt.url.get_ref()) {
            Ok(u) => Some(u),
            Err(e) => {
                at(raw.mqtt.url.span(), "mqtt.url", e.to_string());
                None
            }
        };
        let client_cert = match (&raw.mqtt.cert, &raw.mqtt.key) {
            (Some(c), Some(k)) => Some((base.join(c.get_ref()), base.join(k.get_ref()))),
            (None, None) => None,
            _ => {
                at(raw.mqtt.url.span(), "mqtt.cert", "`cert` and `key` go together (TLS client authentication)".into());
                None
            }
        };
        let ca = raw.mqtt.ca.as_ref().map(|c| base.join(c.get_ref()));
        tls_files(&raw.mqtt, url.as_ref(), ca.as_deref(), client_cert.as_ref(), &mut at);
        if let Some(ka) = &raw.mqtt.keep_alive_secs {
            if !(5..=65535).contains(ka.get_ref()) {
                at(ka.span(), "mqtt.keep_alive_secs", "must be between 5 and 65535 seconds".into());
            }
        }

        let registry =
            match ProfileRegistry::with_dir(g.profiles_dir.as_ref().map(|d| base.join(d.get_ref())).as_deref()) {
                Ok(r) => r,
                Err(d) => {
                    problems.0.extend(d.0);
                    ProfileRegistry::builtin().unwrap_or_default()
                }
            };
        let mut at = |span: std::ops::Range<usize>, item: &str, msg: String| problems.0.push(src.at(span, item, msg));
        let mut devices = Vec::new();
        for (i, d) in raw.devices.iter().enumerate() {
            let item = |k: &str| format!("device[{i}].{k}");
            if !is_valid_id(d.id.get_ref()) {
                at(d.id.span(), &item("id"), format!("`{}` must match [a-z0-9][a-z0-9-]{{0,62}}", d.id.get_ref()));
            }
            if raw.devices[..i].iter().any(|p| p.id.get_ref() == d.id.get_ref()) {
                at(d.id.span(), &item("id"), format!("device id `{}` is used twice", d.id.get_ref()));
            }
            let profile = registry.get(d.profile.get_ref());
            if profile.is_none() {
                let known: Vec<&str> = registry.ids().collect();
                at(
                    d.profile.span(),
                    &item("profile"),
                    format!("no profile `{}` (known: {})", d.profile.get_ref(), known.join(", ")),
                );
            }
            let is_ble = profile.as_ref().is_some_and(|p| p.ble.is_some());
            let is_image = profile.as_ref().is_some_and(|p| matches!(p.decoder, crate::profile::DecoderSpec::Image(_)));
            let transport = match (&d.serial, &d.ble) {
                _ if is_image || d.folder.is_some() || d.camera.is_some() => {
                    images::transport(d, is_image, &item, &mut at)
                }
                (Some(s), None) if is_ble => {
                    at(
                        s.span(),
                        &item("serial"),
                        format!("profile `{}` is a BLE device: ble = {{ address = \"...\" }}", d.profile.get_ref()),
                    );
                    None
                }
                (None, Some(b)) if profile.is_some() && !is_ble => {
                    at(
                        b.span(),
                        &item("ble"),
                        format!("profile `{}` is a serial device: serial = {{ path = \"...\" }}", d.profile.get_ref()),
                    );
                    None
                }
                (Some(s), Some(_)) => {
                    at(s.span(), &item("serial"), "a device has one transport: serial or ble, not both".into());
                    None
                }
                (None, Some(b)) => {
                    let ble = b.get_ref();
                    let address = ble.address.clone();
                    if let Some(a) = &address {
                        let ok = a.split(':').count() == 6
                            && a.split(':').all(|o| o.len() == 2 && u8::from_str_radix(o, 16).is_ok());
                        if !ok {
                            at(
                                b.span(),
                                &item("ble.address"),
                                format!("`{a}` is not a Bluetooth address like AA:BB:CC:DD:EE:FF"),
                            );
                        }
                    }
                    if address.is_none() && !ble.allow_unbonded.unwrap_or(false) {
                        at(
                            b.span(),
                            &item("ble"),
                            "a device found by name or service alone could be any device nearby (a spoofed one would get its readings signed): give its `address`, or set `allow_unbonded = true`".into(),
                        );
                    }
                    if ble.name.as_deref() == Some("") {
                        at(
                            b.span(),
                            &item("ble.name"),
                            "must not be empty (leave it out to find the device by its service)".into(),
                        );
                    }
                    Some(DeviceTransport::Ble { address: address.map(|a| a.to_uppercase()), name: ble.name.clone() })
                }
                (Some(s), None) => {
                    let port = s.get_ref();
                    if port.path.as_os_str().is_empty() {
                        at(s.span(), &item("serial.path"), "must name the serial device".into());
                    }
                    if port.baud == Some(0) {
                        at(s.span(), &item("serial.baud"), "must be a positive bit rate".into());
                    }
                    let baud = port.baud.or(profile.as_ref().map(|p| p.serial.baud)).unwrap_or(9600);
                    Some(DeviceTransport::Serial { path: port.path.clone(), baud })
                }
                (None, None) => {
                    let hint = if is_ble {
                        "ble = { address = \"AA:BB:CC:DD:EE:FF\" }"
                    } else {
                        "serial = { path = \"...\" }"
                    };
                    at(
                        d.id.span(),
                        &item(if is_ble { "ble" } else { "serial" }),
                        format!("a device needs a transport: {hint}"),
                    );
                    None
                }
            };
            if let (Some(profile), Some(transport)) = (profile, transport) {
                devices.push(DeviceConfig {
                    id: d.id.get_ref().clone(),
                    profile,
                    transport,
                    keep_metadata: d.keep_metadata.unwrap_or(false),
                });
            }
        }

        let mut queue = QueuePolicy::default();
        let q = &raw.queue;
        for (value, item, slot) in [
            (&q.wave_max_mb, "queue.wave_max_mb", &mut queue.wave_max_bytes),
            (&q.media_max_mb, "queue.media_max_mb", &mut queue.media_max_bytes),
        ] {
            if let Some(v) = value {
                if *v.get_ref() == 0 || *v.get_ref() > 1 << 20 {
                    at(v.span(), item, "must be between 1 and 1048576 (MiB)".into());
                }
                *slot = v.get_ref().saturating_mul(1 << 20);
            }
        }
        for (value, item, slot) in [
            (&q.wave_ttl_hours, "queue.wave_ttl_hours", &mut queue.wave_ttl),
            (&q.media_ttl_hours, "queue.media_ttl_hours", &mut queue.media_ttl),
        ] {
            if let Some(v) = value {
                if *v.get_ref() == 0 {
                    at(v.span(), item, "must be at least 1 hour (leave it out for the default)".into());
                }
                *slot = Some(Duration::from_secs(v.get_ref().saturating_mul(3600)));
            }
        }

        if let Some(ms) = &q.sync_ms {
            if *ms.get_ref() > 10_000 {
                at(ms.span(), "queue.sync_ms", "must be between 0 (sync every commit) and 10000 ms".into());
            }
            queue.sync_within = Duration::from_millis(*ms.get_ref());
        }
        if let Some(ms) = &q.group_ms {
            if *ms.get_ref() > 100 {
                at(ms.span(), "queue.group_ms", "must be between 0 (commit what is waiting at once) and 100 ms".into());
            }
            queue.group_within = Duration::from_millis(*ms.get_ref());
        }

        let hub = hub_config(&raw.hub, base, &mut at);
        let media = images::media_config(&raw.media, &mut at);
        let ui = ui_config(&raw.ui, &mut at);
        if let Some(b) = &raw.mqtt.max_bytes_per_sec {
            if *b.get_ref() < 1000 {
                at(b.span(), "mqtt.max_bytes_per_sec", "must be at least 1000 bytes per second".into());
            }
        }

        let Some(url) = url else { return Err(problems) };
        let config = Config {
            source: path.to_path_buf(),
            gateway: GatewayConfig {
                site: g.site.get_ref().clone(),
                id: g.id.get_ref().clone(),
                state_dir,
                key_file,
                body_format,
            },
            mqtt: MqttConfig {
                client_id: raw
                    .mqtt
                    .client_id
                    .clone()
                    .unwrap_or_else(|| format!("spokegate-{}-{}", g.site.get_ref(), g.id.get_ref())),
                url,
                username: raw.mqtt.username.clone(),
                password: raw.mqtt.password.as_ref().map(|p| p.get_ref().clone()),
                allow_plaintext_password: raw.mqtt.allow_plaintext_password.unwrap_or(false),
                ca,
                client_cert,
                keep_alive: Duration::from_secs(raw.mqtt.keep_alive_secs.as_ref().map(|k| *k.get_ref()).unwrap_or(30)),
                max_bytes_per_sec: raw.mqtt.max_bytes_per_sec.as_ref().map(|b| *b.get_ref()),
            },
            queue,
            hub,
            media,
            ui,
            devices,
        };
        problems.into_result(config)
    }
}

/// `[ui]`: where the page listens; another address than loopback only with a password.
fn ui_config(raw: &raw::RawUi, at: &mut dyn FnMut(std::ops::Range<usize>, &str, String)) -> UiConfig {
    let mut ui = UiConfig { enabled: raw.enabled.unwrap_or(true), ..UiConfig::default() };
    if let Some(l) = &raw.listen {
        match l.get_ref().parse::<std::net::SocketAddr>() {
            Ok(a) => ui.listen = a,
            Err(_) => at(l.span(), "ui.listen", format!("`{}` is not an address like 127.0.0.1:8480", l.get_ref())),
        }
    }
    if let Some(h) = &raw.password_hash {
        if crate::ui::auth::PasswordHash::parse(h.get_ref()).is_none() {
            at(h.span(), "ui.password_hash", "not a hash from `spokegate ui hash-password`".into());
        }
        ui.password_hash = Some(h.get_ref().clone());
    }
    if ui.enabled && !ui.listen.ip().is_loopback() && ui.password_hash.is_none() {
        let span = raw.listen.as_ref().map(|l| l.span()).unwrap_or(0..0);
        at(
            span,
            "ui.listen",
            "the page on another address than loopback needs a password: set password_hash (spokegate ui hash-password)"
                .into(),
        );
    }
    if let Some(l) = &raw.language {
        if !crate::ui::i18n::LANGUAGES.contains(&l.get_ref().as_str()) {
            at(l.span(), "ui.language", format!("one of {}", crate::ui::i18n::LANGUAGES.join(", ")));
        }
        ui.language = l.get_ref().clone();
    }
    ui
}

/// The uplink's TLS files, read now as the uplink will read them (a CA or client certificate that
/// cannot be used is a configuration error, not an uplink that silently never connects), the
/// client key's mode, and no password in clear text unless the operator says so.
fn tls_files(
    raw: &raw::RawMqtt,
    url: Option<&MqttUrl>,
    ca: Option<&Path>,
    client: Option<&(PathBuf, PathBuf)>,
    at: &mut impl FnMut(std::ops::Range<usize>, &str, String),
) {
    let Some(url) = url else { return };
    let tls_item = [("mqtt.ca", &raw.ca), ("mqtt.cert", &raw.cert), ("mqtt.key", &raw.key)];
    if !url.tls {
        for (item, v) in tls_item {
            if let Some(v) = v {
                at(v.span(), item, "TLS files need an `mqtts://` url".into());
            }
        }
        if let (Some(p), false) = (&raw.password, raw.allow_plaintext_password.unwrap_or(false)) {
            at(
                p.span(),
                "mqtt.password",
                "a password over plain mqtt:// travels in clear text: use mqtts://, or set allow_plaintext_password = true"
                    .into(),
            );
        }
        return;
    }
    if let (Some((_, key)), Some(k)) = (client, &raw.key) {
        if let Ok(Some(_)) = crate::sign::open_to_others(key) {
            at(k.span(), "mqtt.key", format!("{} is readable by group or others: chmod 600 it", key.display()));
        }
    }
    if let Err(e) = crate::mqtt::tls::transport(ca, client.map(|(c, k)| (c.as_path(), k.as_path()))) {
        let (item, span) = match (&raw.ca, &raw.cert) {
            (Some(c), _) if e.to_string().starts_with(&ca.map(|p| p.display().to_string()).unwrap_or_default()) => {
                ("mqtt.ca", c.span())
            }
            (_, Some(c)) => ("mqtt.cert", c.span()),
            (Some(c), None) => ("mqtt.ca", c.span()),
            (None, None) => ("mqtt.url", raw.url.span()),
        };
        at(span, item, e.to_string());
    }
}

/// `[hub]`: the keys a gateway obeys (files read and checked now) and the delivery it promises.
fn hub_config(raw: &raw::RawHub, base: &Path, at: &mut impl FnMut(std::ops::Range<usize>, &str, String)) -> HubConfig {
    let mut hub = HubConfig::default();
    for (i, k) in raw.keys.iter().enumerate() {
        let item = format!("hub.keys[{i}]");
        let path = base.join(k.get_ref());
        match read_bound_keys(&path) {
            Ok(keys) => {
                for bound in keys {
                    if !matches!(bound.binding, Binding::Hub { .. }) {
                        at(
                            k.span(),
                            &item,
                            format!(
                                "{}: key {} is not a hub key (it has no \"hub\")",
                                path.display(),
                                bound.key.kid_hex()
                            ),
                        );
                    } else if let Err(e) = hub.keys.insert(bound) {
                        at(k.span(), &item, format!("{}: {e}", path.display()));
                    }
                }
            }
            Err(e) => at(k.span(), &item, format!("{}: {e}", path.display())),
        }
    }
    hub.delivery = match raw.delivery.as_ref().map(|d| (d.get_ref().as_str(), d.span())) {
        Some(("broker", _)) => Delivery::Broker,
        Some(("hub", span)) => {
            if raw.keys.is_empty() {
                at(span, "hub.delivery", "hub delivery needs the hub's key: add hub.keys = [\"hub.jwk\"]".into());
            }
            Delivery::Hub
        }
        Some((other, span)) => {
            at(span, "hub.delivery", format!("`{other}` is not one of broker, hub"));
            Delivery::Broker
        }
        // With hub keys configured, the hub confirms delivery; without, the broker does.
        None if raw.keys.is_empty() => Delivery::Broker,
        None => Delivery::Hub,
    };
    if let Some(t) = &raw.ack_timeout_secs {
        if !(1..=86_400).contains(t.get_ref()) {
            at(t.span(), "hub.ack_timeout_secs", "must be between 1 and 86400 seconds".into());
        }
        hub.ack_timeout = Duration::from_secs(*t.get_ref());
    }
    if let Some(n) = &raw.unacked_max {
        if !(1..=1_000_000).contains(n.get_ref()) {
            at(n.span(), "hub.unacked_max", "must be between 1 and 1000000 messages".into());
        }
        hub.unacked_max = *n.get_ref() as usize;
    }
    hub
}
