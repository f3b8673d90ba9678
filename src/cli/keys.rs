//! `keygen`, `key show`, `key generate-hub`.

use super::load_config;
use crate::exit;
use crate::sign::{Binding, BoundKey, KeyError, SigningKey};
use clap::Subcommand;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct KeyLocation {
    /// Use the key_file of this configuration (the JWK then carries the gateway's site and gw).
    #[arg(long, conflicts_with = "key_file")]
    pub config: Option<PathBuf>,
    /// The key file itself (a hub key's file names its hub).
    #[arg(long)]
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Print the public key as a JWK, with what it is bound to (`site` and `gw`, or `hub`).
    Show(KeyLocation),
    /// Make a new signing key; the old one is kept aside and listed (status `kids`) for a grace
    /// period, while messages it signed may still be queued. Prints the new public JWK for the
    /// hub's keyring (keep the old one there until the grace ends); restart the daemon to sign
    /// with the new key.
    Rotate {
        #[command(flatten)]
        loc: KeyLocation,
        /// Days the old key still counts.
        #[arg(long, default_value_t = 7)]
        grace_days: u64,
    },
    /// Create a hub's Ed25519 signing key (mode 0600; never overwrites) and print its public JWK.
    GenerateHub {
        /// The hub's id ([a-z0-9][a-z0-9-]{0,62}).
        #[arg(long)]
        id: String,
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn key_error(e: &KeyError) -> i32 {
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

/// The key file, and the gateway it belongs to when a configuration names it.
fn locate(loc: &KeyLocation) -> Result<(PathBuf, Option<Binding>), i32> {
    match (&loc.key_file, &loc.config) {
        (Some(k), _) => Ok((k.clone(), None)),
        (None, c) => {
            let c = load_config(c.as_deref().unwrap_or(Path::new(super::DEFAULT_CONFIG)))?;
            let binding = Binding::Gateway { site: c.gateway.site.clone(), gw: c.gateway.id.clone() };
            Ok((c.gateway.key_file, Some(binding)))
        }
    }
}

/// The public JWK of a key, with its binding when known.
fn jwk(key: &SigningKey, binding: Option<Binding>) -> String {
    match binding.or_else(|| key.hub().map(|h| Binding::Hub { hub: h.into() })) {
        Some(binding) => BoundKey { key: key.public().clone(), binding }.to_jwk(),
        None => {
            eprintln!(
                "note: a hub binds this key to one gateway: add \"site\" and \"gw\" to the JWK (or use --config)"
            );
            key.public().to_jwk()
        }
    }
}

pub fn keygen(loc: &KeyLocation) -> i32 {
    let (path, binding) = match locate(loc) {
        Ok(p) => p,
        Err(code) => return code,
    };
    match SigningKey::generate(&path) {
        Ok(k) => {
            eprintln!("created {} (kid {})", path.display(), k.public().kid_hex());
            println!("{}", jwk(&k, binding));
            exit::OK
        }
        Err(e) => key_error(&e),
    }
}

pub fn run(command: KeyCommand) -> i32 {
    match command {
        KeyCommand::Show(loc) => {
            let (path, binding) = match locate(&loc) {
                Ok(p) => p,
                Err(code) => return code,
            };
            match SigningKey::load(&path) {
                Ok(k) => {
                    println!("{}", jwk(&k, binding));
                    exit::OK
                }
                Err(e) => key_error(&e),
            }
        }
        KeyCommand::Rotate { loc, grace_days } => {
            let (path, binding) = match locate(&loc) {
                Ok(p) => p,
                Err(code) => return code,
            };
            let until = crate::clock::now_micros().saturating_add(grace_days as i64 * 86_400_000_000);
            match crate::sign::rotation::rotate(&path, until) {
                Ok((new, old)) => {
                    eprintln!(
                        "new key {} (kid {}); the old key (kid {}) is kept as {}.retired-{} and counts until {}",
                        path.display(),
                        new.public().kid_hex(),
                        old.public().kid_hex(),
                        path.display(),
                        old.public().kid_hex(),
                        crate::clock::micros_to_rfc3339(until)
                    );
                    eprintln!("add the new public JWK (below) to the hub's keyring, then restart the daemon");
                    println!("{}", jwk(&new, binding));
                    exit::OK
                }
                Err(e) => key_error(&e),
            }
        }
        KeyCommand::GenerateHub { id, out } => {
            if !crate::ids::is_valid_id(&id) {
                eprintln!("spokegate: hub id `{id}` must match [a-z0-9][a-z0-9-]{{0,62}}");
                return exit::USAGE;
            }
            match SigningKey::generate_hub(&out, &id) {
                Ok(k) => {
                    eprintln!("created {} (hub {id}, kid {})", out.display(), k.public().kid_hex());
                    println!("{}", jwk(&k, None));
                    exit::OK
                }
                Err(e) => key_error(&e),
            }
        }
    }
}
