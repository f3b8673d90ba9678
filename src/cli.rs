//! The command line: parsing and dispatch. Each command maps its failures to a sysexits code.

use crate::capture::{decode_ble_capture, decode_capture, parse_hex};
use crate::config::{Config, MqttUrl};
use crate::daemon::{self, Counters};
use crate::demo::{self, DemoOptions};
use crate::exit;
use crate::hub::{watch, KeyRing, WatchFormat, WatchOptions};
use crate::profile::ProfileRegistry;
use crate::queue::{Queue, QueueError};
use crate::shutdown;
use crate::sign::{GatewayKey, KeyError, PublicKey};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "spokegate",
    version,
    about = "Spoke-side gateway: clinical peripherals -> signed readings -> MQTT hub"
)]
pub struct Cli {
    /// Log filter (tracing `EnvFilter` syntax); RUST_LOG also works.
    #[arg(long, global = true, default_value = "info")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Run {
        #[arg(long, default_value = "/etc/spokegate/spokegate.toml")]
        config: PathBuf,
    },
    /// Check a configuration (and the profiles it uses) and exit: 0 when valid, 78 otherwise.
    CheckConfig {
        #[arg(long, default_value = "/etc/spokegate/spokegate.toml")]
        config: PathBuf,
    },
    /// Show the durable queue (depth, oldest undelivered, delivered, dropped); works while the daemon runs.
    Status {
        #[arg(long, default_value = "/etc/spokegate/spokegate.toml")]
        config: PathBuf,
    },
    /// Create the gateway's Ed25519 signing key (mode 0600; never overwrites).
    Keygen(KeyLocation),
    /// Key operations.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Bluetooth Low Energy: find devices to put in the configuration.
    Ble {
        #[command(subcommand)]
        command: BleCommand,
    },
    /// Subscribe to a broker as a hub would: verify, de-duplicate and print every reading.
    Watch {
        #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
        url: String,
        /// A gateway public key as JWK (from `spokegate key show`); repeat for several gateways.
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        /// JSON lines instead of human lines.
        #[arg(long)]
        json: bool,
        /// MQTT topic filter.
        #[arg(long, default_value = "spokegate/v1/#")]
        filter: String,
        /// Write every waveform stream received as WFDB records (and WAV files for sound) here.
        #[arg(long, value_name = "DIR")]
        record: Option<PathBuf>,
    },
    /// Run everything on this machine: embedded broker, simulated devices, daemon, hub view.
    Demo {
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long)]
        duration: Option<u64>,
        #[arg(long)]
        json: bool,
        /// Record the ECG and heart-sound streams the hub receives (WFDB and WAV) in this folder.
        #[arg(long, value_name = "DIR")]
        record: Option<PathBuf>,
    },
    /// Device profiles.
    Profile {
        #[command(subcommand)]
        command: ProfileCommand,
    },
}

#[derive(Debug, clap::Args)]
pub struct KeyLocation {
    /// Use the key_file of this configuration.
    #[arg(long, conflicts_with = "key_file")]
    pub config: Option<PathBuf>,
    /// The key file itself.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Print the public key as a JWK.
    Show(KeyLocation),
}

#[derive(Debug, Subcommand)]
pub enum BleCommand {
    /// List the BLE devices around: address, name, signal strength (RSSI) and advertised services.
    Scan {
        /// How long to listen, in seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// List the known profiles.
    List {
        #[arg(long)]
        profiles_dir: Option<PathBuf>,
    },
    /// Decode a capture offline and print the contract bodies as JSON lines.
    Test {
        /// A profile id, or the path of a profile file.
        profile: String,
        /// Raw bytes as the device sent them, or hex text lines (`.hex` or --hex).
        capture: PathBuf,
        #[arg(long)]
        hex: bool,
        #[arg(long)]
        profiles_dir: Option<PathBuf>,
    },
}

/// Runs a parsed command; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Run { config } => run_daemon(&config).await,
        Command::Ble { command: BleCommand::Scan { seconds } } => ble_scan(seconds).await,
        Command::CheckConfig { config } => match Config::load(&config) {
            Ok(c) => {
                println!("{}: valid ({} devices)", config.display(), c.devices.len());
                exit::OK
            }
            Err(d) => config_error(&d),
        },
        Command::Status { config } => match Config::load(&config) {
            Ok(c) => match Queue::inspect(&c.gateway.state_dir) {
                Ok(st) => {
                    let now = crate::clock::now_micros();
                    let q = crate::mqtt::status::QueueStatus::from_stats(&st, now, None);
                    let out = serde_json::json!({
                        "state_dir": c.gateway.state_dir,
                        "queue": q,
                        "bytes": st.bytes,
                        "next_seq": st.next_seq,
                    });
                    println!("{out}");
                    exit::OK
                }
                Err(e) => {
                    eprintln!("spokegate status: {e}");
                    if matches!(e, QueueError::Corrupt { .. }) {
                        exit::DATAERR
                    } else {
                        exit::NOINPUT
                    }
                }
            },
            Err(d) => config_error(&d),
        },
        Command::Keygen(loc) => match key_path(&loc) {
            Ok(path) => match GatewayKey::generate(&path) {
                Ok(k) => {
                    eprintln!("created {} (kid {})", path.display(), k.public().kid_hex());
                    println!("{}", k.public().to_jwk());
                    exit::OK
                }
                Err(e) => key_error(&e),
            },
            Err(code) => code,
        },
        Command::Key { command: KeyCommand::Show(loc) } => match key_path(&loc) {
            Ok(path) => match GatewayKey::load(&path) {
                Ok(k) => {
                    println!("{}", k.public().to_jwk());
                    exit::OK
                }
                Err(e) => key_error(&e),
            },
            Err(code) => code,
        },
        Command::Watch { url, keys, json, filter, record } => run_watch(&url, &keys, json, filter, record).await,
        Command::Demo { duration, json, record } => {
            let opts = DemoOptions {
                duration: duration.map(Duration::from_secs),
                format: if json { WatchFormat::Json } else { WatchFormat::Human },
                record,
            };
            let mut stdout = std::io::stdout();
            match demo::run(opts, &mut stdout).await {
                Ok(_) => exit::OK,
                Err(e) => {
                    eprintln!("spokegate demo: {e:#}");
                    exit::SOFTWARE
                }
            }
        }
        Command::Profile { command: ProfileCommand::List { profiles_dir } } => {
            match ProfileRegistry::with_dir(profiles_dir.as_deref()) {
                Ok(reg) => {
                    for id in reg.ids() {
                        if let Some(p) = reg.get(id) {
                            println!("{id:<20} {}  ({})", p.description, p.source.display());
                        }
                    }
                    exit::OK
                }
                Err(d) => config_error(&d),
            }
        }
        Command::Profile { command: ProfileCommand::Test { profile, capture, hex, profiles_dir } } => {
            profile_test(&profile, &capture, hex, profiles_dir.as_deref())
        }
    }
}

fn config_error(d: &crate::diagnostic::Diagnostics) -> i32 {
    eprintln!("{d}");
    eprintln!("configuration refused ({} problem{})", d.0.len(), if d.0.len() == 1 { "" } else { "s" });
    exit::CONFIG
}

fn key_error(e: &KeyError) -> i32 {
    eprintln!("spokegate: {e}");
    match e {
        KeyError::TooOpen { .. } => exit::NOPERM,
        KeyError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => exit::NOINPUT,
        KeyError::Io { .. } => exit::IOERR,
        KeyError::Exists { .. } => exit::CANTCREAT,
        KeyError::Malformed { .. } | KeyError::BadJwk(_) => exit::DATAERR,
        KeyError::Generate => exit::SOFTWARE,
    }
}

fn key_path(loc: &KeyLocation) -> Result<PathBuf, i32> {
    match (&loc.key_file, &loc.config) {
        (Some(k), _) => Ok(k.clone()),
        (None, Some(c)) => Config::load(c).map(|c| c.gateway.key_file).map_err(|d| config_error(&d)),
        (None, None) => Config::load(Path::new("/etc/spokegate/spokegate.toml"))
            .map(|c| c.gateway.key_file)
            .map_err(|d| config_error(&d)),
    }
}

async fn run_daemon(config_path: &Path) -> i32 {
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(d) => return config_error(&d),
    };
    let key = match GatewayKey::load(&config.gateway.key_file) {
        Ok(k) => k,
        Err(e) => {
            let code = key_error(&e);
            if matches!(e, KeyError::Io { .. }) {
                eprintln!("create it with: spokegate keygen --config {}", config_path.display());
            }
            return code;
        }
    };
    let (trigger, shutdown) = shutdown::channel();
    tokio::spawn(async move {
        shutdown::signal().await;
        trigger.trigger();
    });
    let mut counters = Counters::default();
    match daemon::run(config, key, shutdown, &mut counters).await {
        Ok(()) => exit::OK,
        Err(daemon::DaemonError::Queue(e)) => {
            eprintln!("spokegate: {e}");
            if matches!(e, QueueError::Corrupt { .. } | QueueError::Format { .. }) {
                exit::DATAERR
            } else {
                exit::IOERR
            }
        }
        Err(e) => {
            eprintln!("spokegate: {e}");
            exit::UNAVAILABLE
        }
    }
}

async fn run_watch(url: &str, key_files: &[PathBuf], json: bool, filter: String, record: Option<PathBuf>) -> i32 {
    let url = match MqttUrl::parse(url) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("spokegate watch: {e}");
            return exit::USAGE;
        }
    };
    let mut keys = Vec::new();
    for f in key_files {
        match std::fs::read_to_string(f)
            .map_err(|e| e.to_string())
            .and_then(|t| PublicKey::from_jwk(&t).map_err(|e| e.to_string()))
        {
            Ok(k) => keys.push(k),
            Err(e) => {
                eprintln!("spokegate watch: {}: {e}", f.display());
                return exit::DATAERR;
            }
        }
    }
    let opts = WatchOptions {
        url,
        keys: KeyRing::new(keys),
        format: if json { WatchFormat::Json } else { WatchFormat::Human },
        filter,
        client_id: format!("spokegate-watch-{}", std::process::id()),
        record,
    };
    let (trigger, shutdown) = shutdown::channel();
    tokio::spawn(async move {
        shutdown::signal().await;
        trigger.trigger();
    });
    let mut stdout = std::io::stdout();
    match watch(opts, shutdown, &mut stdout).await {
        Ok(stats) => {
            eprintln!(
                "watch: {} verified, {} duplicates, {} rejected; {} wave chunks, {} samples, {} gaps ({} samples missing)",
                stats.verified, stats.duplicates, stats.rejected, stats.chunks, stats.samples, stats.gaps, stats.missing
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("spokegate watch: {e}");
            exit::IOERR
        }
    }
}

async fn ble_scan(seconds: u64) -> i32 {
    match crate::transport::ble::scan(Duration::from_secs(seconds)).await {
        Ok(seen) => {
            println!("{:<17}  {:>5}  {:<24}  services", "address", "rssi", "name");
            for d in &seen {
                let services: Vec<String> = d
                    .services
                    .iter()
                    .map(|u| {
                        crate::decode::gatt::short_uuid(u)
                            .map(|s| format!("0x{s:04X}"))
                            .unwrap_or_else(|| u.to_string())
                    })
                    .collect();
                let rssi = d.rssi.map(|r| r.to_string()).unwrap_or_else(|| "-".into());
                println!(
                    "{:<17}  {:>5}  {:<24}  {}",
                    d.address,
                    rssi,
                    d.name.as_deref().unwrap_or("-"),
                    services.join(" ")
                );
            }
            eprintln!("{} devices; put one in the configuration as ble = {{ address = \"...\" }}", seen.len());
            exit::OK
        }
        Err(e) => {
            eprintln!("spokegate ble scan: {e}");
            exit::UNAVAILABLE
        }
    }
}

fn profile_test(profile: &str, capture: &Path, hex: bool, profiles_dir: Option<&Path>) -> i32 {
    let profile = match ProfileRegistry::with_dir(profiles_dir).and_then(|r| r.resolve(profile)) {
        Ok(p) => p,
        Err(d) => return config_error(&d),
    };
    let bytes = match std::fs::read(capture) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{}: {e}", capture.display());
            return exit::NOINPUT;
        }
    };
    let bodies = if profile.ble.is_some() {
        match decode_ble_capture(&profile, &String::from_utf8_lossy(&bytes)) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{}: {e}", capture.display());
                return exit::DATAERR;
            }
        }
    } else if hex || capture.extension().is_some_and(|e| e == "hex") {
        match parse_hex(&String::from_utf8_lossy(&bytes)) {
            Ok(b) => decode_capture(&profile, &b),
            Err(e) => {
                eprintln!("{}: {e}", capture.display());
                return exit::DATAERR;
            }
        }
    } else {
        decode_capture(&profile, &bytes)
    };
    let mut out = std::io::stdout().lock();
    for body in bodies {
        match serde_json::to_string(&body) {
            Ok(line) => {
                if writeln!(out, "{line}").is_err() {
                    return exit::IOERR;
                }
            }
            Err(e) => {
                eprintln!("{e}");
                return exit::SOFTWARE;
            }
        }
    }
    exit::OK
}
