//! The configuration file as written by an operator (serde schema, unknown keys refused).

use serde::Deserialize;
use std::path::PathBuf;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub gateway: RawGateway,
    pub mqtt: RawMqtt,
    #[serde(default)]
    pub queue: RawQueue,
    #[serde(default)]
    pub hub: RawHub,
    #[serde(default)]
    pub media: RawMedia,
    #[serde(default)]
    pub ui: RawUi,
    #[serde(default, rename = "device")]
    pub devices: Vec<RawDevice>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    pub site: Spanned<String>,
    pub id: Spanned<String>,
    pub state_dir: Spanned<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub profiles_dir: Option<Spanned<PathBuf>>,
    /// "cbor" (default) or "json".
    pub body_format: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMqtt {
    pub url: Spanned<String>,
    pub username: Option<String>,
    pub password: Option<Spanned<String>>,
    /// A password over plain `mqtt://` is refused unless this is true (a warning at every start).
    pub allow_plaintext_password: Option<bool>,
    pub ca: Option<Spanned<PathBuf>>,
    pub cert: Option<Spanned<PathBuf>>,
    pub key: Option<Spanned<PathBuf>>,
    pub client_id: Option<String>,
    pub keep_alive_secs: Option<Spanned<u64>>,
    /// Bytes per second the gateway sends to the broker at most (a shared satellite link).
    pub max_bytes_per_sec: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDevice {
    pub id: Spanned<String>,
    pub profile: Spanned<String>,
    pub serial: Option<Spanned<RawSerialPort>>,
    pub ble: Option<Spanned<RawBleDevice>>,
    /// An image folder a microscope's vendor software saves into.
    pub folder: Option<Spanned<RawFolder>>,
    /// A V4L2 (UVC) camera.
    pub camera: Option<Spanned<RawCameraPort>>,
    /// Image devices: send images with their metadata (EXIF, XMP, comments) as the file has it.
    pub keep_metadata: Option<bool>,
}

/// `folder = { path = "/srv/microscope/out", pattern = "*.jpg" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFolder {
    pub path: PathBuf,
    /// File names sent (`*` and `?`, case-insensitive); all files when absent.
    pub pattern: Option<String>,
}

/// `camera = { path = "/dev/v4l/by-id/usb-..." }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCameraPort {
    pub path: PathBuf,
}

/// `[ui]`: the operator's page and the metrics.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawUi {
    pub enabled: Option<bool>,
    /// `127.0.0.1:8480` by default.
    pub listen: Option<Spanned<String>>,
    /// `spokegate ui hash-password` output; required to listen on another address than loopback.
    pub password_hash: Option<Spanned<String>>,
    /// The page's language when the browser asks for none the gateway has (`en`).
    pub language: Option<Spanned<String>>,
}

/// `[media]`: how images are cut and bounded.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawMedia {
    /// Part size in KiB (32).
    pub part_kb: Option<Spanned<u64>>,
    /// Images larger than this many MiB are refused with an event (50).
    pub max_file_mb: Option<Spanned<u64>>,
}

/// `ble = { address = "AA:BB:CC:DD:EE:FF" }`, `ble = { name = "Meter 123" }`, or `ble = {}` for the
/// first device advertising the profile's service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBleDevice {
    pub address: Option<String>,
    pub name: Option<String>,
    /// Accept a device found by name or service alone (without its address): any device nearby
    /// that advertises that name or service would have its readings signed as this one's.
    pub allow_unbonded: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSerialPort {
    pub path: PathBuf,
    pub baud: Option<u32>,
}

/// Limits of the durable queue. Spot readings (obs, event) have none: they are never evicted.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawQueue {
    pub wave_max_mb: Option<Spanned<u64>>,
    pub media_max_mb: Option<Spanned<u64>>,
    pub wave_ttl_hours: Option<Spanned<u64>>,
    pub media_ttl_hours: Option<Spanned<u64>>,
    /// Readings no device waits to hear about are synced to disk within this many milliseconds.
    pub sync_ms: Option<Spanned<u64>>,
    /// A commit waits at most this many milliseconds after its first message for more to join it.
    pub group_ms: Option<Spanned<u64>>,
}

/// The hubs this gateway obeys, and what "delivered" means.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawHub {
    /// Public JWK files of hub keys (each carries its `hub` id).
    #[serde(default)]
    pub keys: Vec<Spanned<PathBuf>>,
    /// "broker" or "hub".
    pub delivery: Option<Spanned<String>>,
    pub ack_timeout_secs: Option<Spanned<u64>>,
    pub unacked_max: Option<Spanned<u64>>,
}
