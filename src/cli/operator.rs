//! The operator's commands on the spoke PC, sent to the running daemon over its local socket:
//! `consult start|end|show`, `capture`, `fetch`.

use super::load_config;
use crate::command::{socket, Args, ReplyLine};
use crate::exit;
use crate::model::ReplyState;
use clap::Subcommand;
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum ConsultCommand {
    /// Bind the readings signed from now on to consult ID (ends one that is open).
    Start {
        id: String,
        #[arg(long, default_value = super::DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// End the open consult (when ID is given, only if it is the one open).
    End {
        id: Option<String>,
        #[arg(long, default_value = super::DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Show which consult readings are bound to.
    Show {
        #[arg(long, default_value = super::DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

pub async fn consult(command: ConsultCommand) -> i32 {
    let one = |k: &str, v: String| Args::from([(k.to_string(), serde_json::Value::String(v))]);
    match command {
        ConsultCommand::Start { id, config } => send(&config, "consult.start", one("consult", id)).await.0,
        ConsultCommand::End { id, config } => {
            send(&config, "consult.end", id.map(|i| one("consult", i)).unwrap_or_default()).await.0
        }
        ConsultCommand::Show { config } => {
            let (code, last) = send_quiet(&config, "status", Args::new()).await;
            if let Some(r) = last {
                match r.data.as_ref().and_then(|d| d.get("consult")).and_then(|c| c.as_str()) {
                    Some(c) => println!("consult {c} is open"),
                    None => println!("no consult is open"),
                }
            }
            code
        }
    }
}

pub async fn device_request(config: &Path, name: &str, dev: &str) -> i32 {
    send(config, name, Args::from([("dev".to_string(), serde_json::Value::String(dev.into()))])).await.0
}

/// Sends a request and prints every reply line.
async fn send(config: &Path, name: &str, args: Args) -> (i32, Option<ReplyLine>) {
    request(config, name, args, true).await
}

async fn send_quiet(config: &Path, name: &str, args: Args) -> (i32, Option<ReplyLine>) {
    request(config, name, args, false).await
}

async fn request(config: &Path, name: &str, args: Args, print: bool) -> (i32, Option<ReplyLine>) {
    let c = match load_config(config) {
        Ok(c) => c,
        Err(code) => return (code, None),
    };
    let each = |r: &ReplyLine| {
        if print {
            let data = r.data.as_ref().map(|d| format!(" {}", serde_json::to_string(d).unwrap_or_default()));
            println!("{} {}: {}{}", r.state.as_str(), r.code, r.text, data.unwrap_or_default());
        }
    };
    match socket::request(&c.gateway.state_dir, name, args, each).await {
        Ok(last) => (exit_code(last.state), Some(last)),
        Err(e) => {
            eprintln!(
                "spokegate: cannot reach the daemon at {}: {e} (is spokegate running with this configuration?)",
                socket::path(&c.gateway.state_dir).display()
            );
            (exit::UNAVAILABLE, None)
        }
    }
}

/// 0 done; 65 refused (the request was wrong); 69 failed (it could not be done now).
pub fn exit_code(state: ReplyState) -> i32 {
    match state {
        ReplyState::Done => exit::OK,
        ReplyState::Refused => exit::DATAERR,
        ReplyState::Failed | ReplyState::Accepted => exit::UNAVAILABLE,
    }
}
