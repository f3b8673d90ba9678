//! Hub-side commands: `watch` and `hub send`.

use crate::config::MqttUrl;
use crate::exit;
use crate::hub::ask::{ask, final_state, Ask, AskError, ReceivedReply};
use crate::hub::{watch as watch_loop, KeyRing, WatchFormat, WatchOptions};
use crate::shutdown;
use crate::sign::SigningKey;
use clap::Subcommand;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The broker and how to log in: the same TLS as the daemon (the broker's certificate and host
/// name are always verified).
#[derive(Debug, clap::Args)]
pub struct BrokerArgs {
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub url: String,
    /// CA certificate(s) (PEM) that replace the system's roots for `mqtts://`.
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) for brokers that require one; with --client-key.
    #[arg(long, value_name = "PEM", requires = "client_key")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM, readable by its owner only).
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub client_key: Option<PathBuf>,
    /// MQTT username; the password is read from SPOKEGATE_MQTT_PASSWORD (not the command line,
    /// which other users can see).
    #[arg(long)]
    pub username: Option<String>,
    /// Send the password over plain `mqtt://` all the same.
    #[arg(long)]
    pub allow_plaintext_password: bool,
}

impl BrokerArgs {
    /// The broker login, or the exit code after saying what is wrong.
    fn login(&self, what: &str) -> Result<crate::hub::BrokerLogin, i32> {
        let url = url(&self.url, what)?;
        let password = std::env::var("SPOKEGATE_MQTT_PASSWORD").ok();
        if password.is_some() && self.username.is_some() && !url.tls && !self.allow_plaintext_password {
            eprintln!("spokegate {what}: a password over plain mqtt:// travels in clear text: use mqtts://, or --allow-plaintext-password");
            return Err(exit::USAGE);
        }
        if let Some(k) = &self.client_key {
            if let Ok(Some(_)) = crate::sign::open_to_others(k) {
                eprintln!("spokegate {what}: {} is readable by group or others: chmod 600 it", k.display());
                return Err(exit::NOPERM);
            }
        }
        Ok(crate::hub::BrokerLogin {
            url,
            ca: self.ca.clone(),
            client_cert: self.cert.clone().zip(self.client_key.clone()),
            username: self.username.clone(),
            password,
        })
    }
}

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// Gateway public keys bound to their site and gateway: a JWK file (from `spokegate key show
    /// --config`), a JWK Set file, or a folder of them; repeat for more. Hub keys may be listed too.
    #[arg(long = "key", required = true)]
    pub keys: Vec<PathBuf>,
    /// JSON lines instead of human lines.
    #[arg(long)]
    pub json: bool,
    /// MQTT topic filter.
    #[arg(long, default_value = "spokegate/v1/#")]
    pub filter: String,
    /// Write every waveform stream received as WFDB records (and WAV files for sound) here.
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,
    /// Acknowledge (v1.1 `ack`) what was shown or recorded, signed with this hub key, so gateways
    /// under hub delivery free their queues.
    #[arg(long, value_name = "HUB_KEY")]
    pub hub_key: Option<PathBuf>,
    /// Append the lines to FILE (synced to disk before every acknowledgement) instead of printing them.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum HubCommand {
    /// Sign a command with a hub key, send it to a gateway, and print its replies.
    Send {
        #[command(flatten)]
        broker: BrokerArgs,
        /// The hub's private key (`spokegate key generate-hub`).
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        site: String,
        #[arg(long)]
        gw: String,
        /// Gateway keys to verify the replies with (JWK, JWK Set or folder); without, replies are
        /// printed as unverified.
        #[arg(long = "gateway-key")]
        gateway_keys: Vec<PathBuf>,
        /// How long the command is valid and the replies are awaited, in seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// The command: consult.start, consult.end, capture, stream.start, stream.stop,
        /// records.fetch, status, rebirth.
        name: String,
        /// Arguments as KEY=VALUE (a VALUE that is JSON is read as JSON, otherwise as text).
        args: Vec<String>,
    },
}

fn keyring(paths: &[PathBuf], what: &str) -> Result<KeyRing, i32> {
    KeyRing::load(paths).map_err(|e| {
        eprintln!("spokegate {what}: {e}");
        if e.why.contains("No such file") {
            exit::NOINPUT
        } else {
            exit::DATAERR
        }
    })
}

fn url(text: &str, what: &str) -> Result<MqttUrl, i32> {
    MqttUrl::parse(text).map_err(|e| {
        eprintln!("spokegate {what}: {e}");
        exit::USAGE
    })
}

fn hub_key(path: &std::path::Path) -> Result<SigningKey, i32> {
    let key = SigningKey::load(path).map_err(|e| super::keys::key_error(&e))?;
    if key.hub().is_none() {
        eprintln!("spokegate: {} is not a hub key (make one with `spokegate key generate-hub`)", path.display());
        return Err(exit::DATAERR);
    }
    Ok(key)
}

pub async fn watch(a: WatchArgs) -> i32 {
    let (broker, keys) = match (a.broker.login("watch"), keyring(&a.keys, "watch")) {
        (Ok(b), Ok(k)) => (b, k),
        (Err(c), _) | (_, Err(c)) => return c,
    };
    let ack_key = match a.hub_key.as_deref().map(hub_key).transpose() {
        Ok(k) => k.map(Arc::new),
        Err(code) => return code,
    };
    let opts = WatchOptions {
        broker,
        keys,
        format: if a.json { WatchFormat::Json } else { WatchFormat::Human },
        filter: a.filter,
        client_id: format!("spokegate-watch-{}", std::process::id()),
        record: a.record,
        ack_key,
        out_file: a.out,
        observe: None,
    };
    let (trigger, shutdown) = shutdown::channel();
    tokio::spawn(async move {
        shutdown::signal().await;
        trigger.trigger();
    });
    let mut stdout = std::io::stdout();
    match watch_loop(opts, shutdown, &mut stdout).await {
        Ok(s) => {
            eprintln!(
                "watch: {} verified, {} unsigned (status, state), {} duplicates, {} rejected; {} wave chunks, {} samples, {} gaps ({} samples missing); {} acknowledgements sent",
                s.verified, s.unsigned, s.duplicates, s.rejected, s.chunks, s.samples, s.gaps, s.missing, s.acks_sent
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("spokegate watch: {e}");
            exit::IOERR
        }
    }
}

/// `KEY=VALUE` arguments: JSON values as JSON, anything else as text.
pub fn parse_args(args: &[String]) -> Result<crate::command::Args, String> {
    args.iter()
        .map(|a| {
            let (k, v) = a.split_once('=').ok_or_else(|| format!("`{a}` is not KEY=VALUE"))?;
            let value = serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.to_string()));
            Ok((k.to_string(), value))
        })
        .collect()
}

pub async fn run(command: HubCommand) -> i32 {
    let HubCommand::Send { broker, key, site, gw, gateway_keys, timeout, name, args } = command;
    let (broker, keys) = match (broker.login("hub send"), keyring(&gateway_keys, "hub send")) {
        (Ok(b), Ok(k)) => (b, k),
        (Err(c), _) | (_, Err(c)) => return c,
    };
    let key = match hub_key(&key) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let args = match parse_args(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("spokegate hub send: {e}");
            return exit::USAGE;
        }
    };
    let request = Ask {
        broker: &broker,
        key: &key,
        site: &site,
        gw: &gw,
        name: &name,
        args,
        keys: &keys,
        timeout: Duration::from_secs(timeout.max(1)),
    };
    let print = |r: &ReceivedReply| {
        let Some(x) = &r.body.reply else { return };
        let mark = if r.verified { "✔ verified" } else { "unverified (no --gateway-key)" };
        let data = x.data.as_ref().map(|d| format!(" {}", serde_json::to_string(d).unwrap_or_default()));
        println!(
            "{} {}: {}{}  [{mark}, seq {}]",
            x.state.as_str(),
            x.code,
            x.text,
            data.unwrap_or_default(),
            r.body.seq
        );
    };
    match ask(request, print).await {
        Ok(replies) => final_state(&replies).map_or(exit::SOFTWARE, super::operator::exit_code),
        Err(e @ AskError::Timeout(_)) => {
            eprintln!("spokegate hub send: {e}");
            exit::TEMPFAIL
        }
        Err(e @ AskError::Rejected(_)) => {
            eprintln!("spokegate hub send: {e}");
            exit::DATAERR
        }
        Err(e) => {
            eprintln!("spokegate hub send: {e}");
            exit::UNAVAILABLE
        }
    }
}
