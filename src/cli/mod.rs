//! The command line: parsing and dispatch. Each command maps its failures to a sysexits code.

mod camera_cmds;
mod daemon_cmds;
mod hub_cmds;
mod keys;
mod operator;
mod profile_cmds;

use crate::config::Config;
use crate::exit;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

const DEFAULT_CONFIG: &str = "/etc/spokegate/spokegate.toml";

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

/// `--config FILE` of the commands that read the gateway's configuration.
#[derive(Debug, clap::Args)]
pub struct ConfigArg {
    #[arg(long, default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Run(ConfigArg),
    /// Check a configuration (and the profiles and key files it uses) and exit: 0 when valid, 78 otherwise.
    CheckConfig(ConfigArg),
    /// Show the durable queue and delivery (depth, oldest undelivered, hub acknowledgements); works while the daemon runs.
    Status(ConfigArg),
    /// Create the gateway's Ed25519 signing key (mode 0600; never overwrites).
    Keygen(keys::KeyLocation),
    /// Key operations.
    Key {
        #[command(subcommand)]
        command: keys::KeyCommand,
    },
    /// The consultation readings are bound to, on the running daemon (local socket).
    Consult {
        #[command(subcommand)]
        command: operator::ConsultCommand,
    },
    /// Take a still from a camera device now (running daemon).
    Capture {
        dev: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Cameras: list them, take a still (field checks, no daemon needed).
    Camera {
        #[command(subcommand)]
        command: camera_cmds::CameraCommand,
    },
    /// The operator's page: `spokegate ui hash-password` reads a password on stdin and prints the
    /// `[ui] password_hash` for it.
    Ui {
        #[command(subcommand)]
        command: UiCommand,
    },
    /// Ask a meter for its stored records now (running daemon).
    Fetch {
        dev: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Bluetooth Low Energy: find devices to put in the configuration.
    Ble {
        #[command(subcommand)]
        command: BleCommand,
    },
    /// Subscribe to a broker as a hub would: verify, de-duplicate and print every reading.
    Watch(hub_cmds::WatchArgs),
    /// Hub-side tools: talk to a spoke.
    Hub {
        #[command(subcommand)]
        command: hub_cmds::HubCommand,
    },
    /// Run everything on this machine: embedded broker, simulated devices, daemon, hub view.
    Demo {
        /// Stop after this many seconds, once the hub's first capture has been answered (at most 30 s
        /// more); default: run until Ctrl-C.
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
        command: profile_cmds::ProfileCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UiCommand {
    /// Read a password (one line on stdin) and print its hash for `[ui] password_hash`.
    HashPassword,
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

/// Runs a parsed command; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Run(c) => daemon_cmds::run_daemon(&c.config).await,
        Command::CheckConfig(c) => daemon_cmds::check_config(&c.config),
        Command::Status(c) => daemon_cmds::status(&c.config).await,
        Command::Keygen(loc) => keys::keygen(&loc),
        Command::Key { command } => keys::run(command),
        Command::Consult { command } => operator::consult(command).await,
        Command::Capture { dev, config } => operator::device_request(&config.config, "capture", &dev).await,
        Command::Camera { command } => camera_cmds::run(command).await,
        Command::Ui { command: UiCommand::HashPassword } => hash_password(),
        Command::Fetch { dev, config } => operator::device_request(&config.config, "records.fetch", &dev).await,
        Command::Ble { command: BleCommand::Scan { seconds } } => daemon_cmds::ble_scan(seconds).await,
        Command::Watch(w) => hub_cmds::watch(w).await,
        Command::Hub { command } => hub_cmds::run(command).await,
        Command::Demo { duration, json, record } => daemon_cmds::demo(duration, json, record).await,
        Command::Profile { command } => profile_cmds::run(command),
    }
}

/// Prints a configuration's problems; the exit code for them.
fn config_error(d: &crate::diagnostic::Diagnostics) -> i32 {
    eprintln!("{d}");
    eprintln!("configuration refused ({} problem{})", d.0.len(), if d.0.len() == 1 { "" } else { "s" });
    exit::CONFIG
}

/// Loads a configuration, or prints why not and gives the exit code.
fn load_config(path: &std::path::Path) -> Result<Config, i32> {
    Config::load(path).map_err(|d| config_error(&d))
}

/// `spokegate ui hash-password`.
fn hash_password() -> i32 {
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        eprintln!("spokegate: cannot read the password from stdin");
        return exit::IOERR;
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.len() < 8 {
        eprintln!("spokegate: use a password of at least 8 characters");
        return exit::DATAERR;
    }
    println!("{}", crate::ui::auth::PasswordHash::hash_of(password));
    exit::OK
}
