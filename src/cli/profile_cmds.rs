//! `profile list` and `profile test`.

use super::config_error;
use crate::capture::{decode_ble_capture, decode_capture, parse_hex};
use crate::exit;
use crate::profile::ProfileRegistry;
use clap::Subcommand;
use std::io::Write;
use std::path::{Path, PathBuf};

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

pub fn run(command: ProfileCommand) -> i32 {
    match command {
        ProfileCommand::List { profiles_dir } => match ProfileRegistry::with_dir(profiles_dir.as_deref()) {
            Ok(reg) => {
                for id in reg.ids() {
                    if let Some(p) = reg.get(id) {
                        println!("{id:<20} {}  ({})", p.description, p.source.display());
                    }
                }
                exit::OK
            }
            Err(d) => config_error(&d),
        },
        ProfileCommand::Test { profile, capture, hex, profiles_dir } => {
            profile_test(&profile, &capture, hex, profiles_dir.as_deref())
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
