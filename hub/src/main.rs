//! `spokegate-hub`: the hub service at national scale. See the README's hub section.

mod at_most;
mod batch;
mod clock_steps;
mod config;
mod db;
mod fhir;
mod fhir_capability;
mod fhir_format;
mod http;
mod images;
mod ingest;
mod input;
mod keys;
mod metrics;
mod reads;
mod retention;
mod search_code;
mod search_page;
mod search_quantity;
mod search_time;
mod search_values;
mod storable;
mod store;
mod view;

use clap::{Parser, Subcommand};
use spokegate::exit;
use spokegate::sign::{Binding, BoundKey, SigningKey};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "spokegate-hub",
    version,
    about = "Verifying ingest of spokegate gateways into PostgreSQL, served as FHIR R4"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest from the configured input, store, acknowledge, serve HTTP (health, metrics, FHIR).
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Create or upgrade the database schema.
    Migrate {
        #[arg(long)]
        config: PathBuf,
    },
    /// The keys this hub trusts.
    Keys {
        #[arg(long)]
        config: PathBuf,
        #[command(subcommand)]
        action: KeysAction,
    },
    /// The hub's own public key (JWK bound to its id) for gateways' `[hub] keys`; creates the key if missing.
    Identity {
        #[arg(long)]
        config: PathBuf,
    },
    /// What `[retention]` would delete now (nothing is deleted): rows past their days, by kind.
    Retention {
        #[arg(long)]
        config: PathBuf,
    },
    /// The consult view's users and what each may see.
    Users {
        #[arg(long)]
        config: PathBuf,
        #[command(subcommand)]
        action: UsersAction,
    },
}

#[derive(Subcommand)]
enum UsersAction {
    /// Create a user, or set a new password (read from standard input, one line; ends their sessions).
    Add {
        name: String,
    },
    /// Let a user see a site's consults, one gateway's, or one consult.
    Grant {
        name: String,
        #[arg(long)]
        site: String,
        #[arg(long)]
        gw: Option<String>,
        #[arg(long)]
        consult: Option<String>,
    },
    List,
    /// Remove a user, their grants and sessions.
    Remove {
        name: String,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Trust a key: a JWK file bound to a gateway (as `spokegate key show` prints it) or to a hub.
    Add {
        jwk: Vec<PathBuf>,
    },
    List,
    /// Stop trusting a key, for good.
    Revoke {
        kid: String,
    },
}

fn main() {
    spokegate::log_output::init(
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,tokio_postgres=warn".into()),
        true,
    );
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    std::process::exit(rt.block_on(run(cli)));
}

fn load_config(path: &Path) -> Result<config::HubConfig, i32> {
    config::HubConfig::load(path).map_err(|d| {
        eprintln!("{d}");
        exit::CONFIG
    })
}

async fn connect(cfg: &config::HubConfig) -> Result<tokio_postgres::Client, i32> {
    db::connect(&cfg.database.url).await.map_err(|e| {
        eprintln!("{e}");
        exit::UNAVAILABLE
    })
}

/// A connection to a database of this build's schema version (78 otherwise).
async fn connect_current(cfg: &config::HubConfig) -> Result<tokio_postgres::Client, i32> {
    let client = connect(cfg).await?;
    db::check_schema(&client).await.map_err(|e| {
        eprintln!("{e}");
        exit::CONFIG
    })?;
    Ok(client)
}

fn hub_key(cfg: &config::HubConfig) -> Result<SigningKey, i32> {
    let path = &cfg.hub.key;
    let key = if path.exists() { SigningKey::load(path) } else { SigningKey::generate_hub(path, &cfg.hub.id) }
        .map_err(|e| {
            eprintln!("{}: {e}", path.display());
            exit::CANTCREAT
        })?;
    if key.hub() != Some(cfg.hub.id.as_str()) {
        eprintln!("{}: this key is not a key of hub `{}`", path.display(), cfg.hub.id);
        return Err(exit::CONFIG);
    }
    Ok(key)
}

async fn run(cli: Cli) -> i32 {
    match try_run(cli).await {
        Ok(()) => exit::OK,
        Err(code) => code,
    }
}

async fn try_run(cli: Cli) -> Result<(), i32> {
    match cli.command {
        Command::Migrate { config } => {
            let cfg = load_config(&config)?;
            let mut client = connect(&cfg).await?;
            let applied = db::migrate(&mut client).await.map_err(|e| {
                eprintln!("{e}");
                exit::SOFTWARE
            })?;
            println!("schema up to date (applied now: {applied:?})");
            Ok(())
        }
        Command::Identity { config } => {
            let cfg = load_config(&config)?;
            let key = hub_key(&cfg)?;
            let bound = BoundKey { key: key.public().clone(), binding: Binding::Hub { hub: cfg.hub.id.clone() } };
            println!("{}", bound.to_jwk());
            Ok(())
        }
        Command::Keys { config, action } => {
            let cfg = load_config(&config)?;
            let client = connect_current(&cfg).await?;
            keys_command(&client, action).await
        }
        Command::Serve { config } => {
            let cfg = load_config(&config)?;
            serve(cfg).await
        }
        Command::Retention { config } => {
            let cfg = load_config(&config)?;
            let client = connect_current(&cfg).await?;
            let preview = retention::preview(&client, &cfg.retention).await.map_err(|e| {
                eprintln!("PostgreSQL: {e}");
                exit::UNAVAILABLE
            })?;
            for (kind, days, rows) in preview {
                match days {
                    0 => println!("{}: kept for ever", kind.label()),
                    d => println!("{}: {rows} past {d} days", kind.label()),
                }
            }
            Ok(())
        }
        Command::Users { config, action } => {
            let cfg = load_config(&config)?;
            let client = connect_current(&cfg).await?;
            users_command(&client, action).await
        }
    }
}

async fn users_command(client: &tokio_postgres::Client, action: UsersAction) -> Result<(), i32> {
    use view::accounts;
    let db_error = |e: tokio_postgres::Error| {
        eprintln!("PostgreSQL: {e}");
        exit::UNAVAILABLE
    };
    match action {
        UsersAction::Add { name } => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password).map_err(|e| {
                eprintln!("standard input: {e}");
                exit::IOERR
            })?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.chars().count() < 10 {
                eprintln!("a password of at least 10 characters, on standard input");
                return Err(exit::DATAERR);
            }
            let created = accounts::set_user(client, &name, password).await.map_err(db_error)?;
            println!("{name} {}", if created { "created" } else { "has a new password" });
        }
        UsersAction::Grant { name, site, gw, consult } => {
            if !accounts::exists(client, &name).await.map_err(db_error)? {
                eprintln!("no user {name}: `users add` first");
                return Err(exit::NOUSER);
            }
            let g = view::access::Grant { site, gw, consult };
            let new = accounts::grant(client, &name, &g).await.map_err(db_error)?;
            println!("{name} {} {}", if new { "may now see" } else { "could already see" }, grant_text(&g));
        }
        UsersAction::List => {
            for (name, grants) in accounts::list(client).await.map_err(db_error)? {
                let g: Vec<String> = grants.iter().map(grant_text).collect();
                println!("{name}  {}", if g.is_empty() { "(nothing)".into() } else { g.join("; ") });
            }
        }
        UsersAction::Remove { name } => {
            if !accounts::remove(client, &name).await.map_err(db_error)? {
                eprintln!("no user {name}");
                return Err(exit::NOUSER);
            }
            println!("{name} removed");
        }
    }
    Ok(())
}

fn grant_text(g: &view::access::Grant) -> String {
    let gw = g.gw.as_deref().map_or("every gateway".to_string(), |g| format!("gateway {g}"));
    let consult = g.consult.as_deref().map_or("every consult".to_string(), |c| format!("consult {c}"));
    format!("site {}, {gw}, {consult}", g.site)
}

async fn keys_command(client: &tokio_postgres::Client, action: KeysAction) -> Result<(), i32> {
    match action {
        KeysAction::Add { jwk } => {
            for path in jwk {
                let bound = spokegate::sign::read_bound_keys(&path).map_err(|e| {
                    eprintln!("{}: {e}", path.display());
                    exit::DATAERR
                })?;
                for k in bound {
                    let new = keys::add(client, &k).await.map_err(|e| {
                        eprintln!("{}: {e}", path.display());
                        exit::DATAERR
                    })?;
                    println!("{} {}", k.key.kid_hex(), if new { "trusted" } else { "already trusted" });
                }
            }
        }
        KeysAction::List => {
            for k in keys::list(client).await.map_err(|e| {
                eprintln!("{e}");
                exit::UNAVAILABLE
            })? {
                println!("{}  {}{}", k.kid, k.binding, if k.revoked { "  (revoked)" } else { "" });
            }
        }
        KeysAction::Revoke { kid } => {
            keys::revoke(client, &kid).await.map_err(|e| {
                eprintln!("{e}");
                exit::DATAERR
            })?;
            println!("{kid} revoked");
        }
    }
    Ok(())
}

async fn serve(cfg: config::HubConfig) -> Result<(), i32> {
    let key = Arc::new(hub_key(&cfg)?);
    let client = connect_current(&cfg).await?;
    let reads = Arc::new(reads::Reads::new(&cfg.database.url, connect(&cfg).await?));
    let store = store::Store::new(client).await.map_err(|e| {
        eprintln!("PostgreSQL: {e}");
        exit::UNAVAILABLE
    })?;
    let source = input::Source::open(&cfg.input).await.map_err(|e| {
        eprintln!("input: {e:#}");
        exit::UNAVAILABLE
    })?;
    let metrics = Arc::new(metrics::Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(cfg.http.listen).await.map_err(|e| {
        eprintln!("http.listen {}: {e}", cfg.http.listen);
        exit::UNAVAILABLE
    })?;
    let (outbox, commands) = tokio::sync::mpsc::channel(64);
    let access = view::access::Access { trusted_user_header: cfg.http.trusted_user_header.clone() };
    let passwords =
        view::passwords::PasswordChecks::new(metrics.password_checks.clone(), metrics.password_throttled.clone());
    let view = Arc::new(view::View::new(key.clone(), access, outbox, passwords));
    let (trigger, shutdown) = spokegate::shutdown::channel();
    tokio::spawn(view.feed.clone().run(cfg.database.url.clone(), reads.clone(), shutdown.clone()));
    tokio::spawn(retention::run(cfg.database.url.clone(), cfg.retention, metrics.clone(), shutdown.clone()));
    let live = view.feed.live.clone();
    let app = http::router(http::AppState {
        metrics: metrics.clone(),
        ready: ready.clone(),
        db: reads,
        view,
        public_url: cfg.http.public_base(),
        started: spokegate::clock::now_rfc3339(),
    });
    let mut http_stop = shutdown.clone();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(async move { http_stop.triggered().await }).await;
    });
    let own = BoundKey { key: key.public().clone(), binding: Binding::Hub { hub: cfg.hub.id.clone() } };
    let acker = spokegate::hub::Acker::new(key, cfg.ack.max_delay, 1000).ok_or(exit::CONFIG)?;
    let ingest = ingest::Ingest::new(store, source, acker, metrics, ready, cfg.database.url.clone(), own)
        .await
        .map_err(|e| {
            eprintln!("{e:#}");
            exit::UNAVAILABLE
        })?
        .sending(commands);
    tokio::spawn(async move {
        spokegate::shutdown::signal().await;
        // systemd (Type=notify) hears the service is draining.
        spokegate::systemd::stopping();
        trigger.trigger();
        // Open pages' live streams end, so that the HTTP server's graceful shutdown can finish.
        live.close();
    });
    tracing::info!(listen = %cfg.http.listen, hub = cfg.hub.id, "spokegate-hub serving");
    spokegate::systemd::ready();
    let watchdog = spokegate::systemd::spawn_watchdog(vec![ingest.beat.clone()], "the ingest stopped moving");
    let result = ingest.run(shutdown).await;
    if let Some(w) = watchdog {
        w.abort();
    }
    let _ = server.await;
    result.map_err(|e| {
        eprintln!("{e:#}");
        exit::SOFTWARE
    })
}
