//! `hub.toml`: the hub's identity and key, its database, its input (NATS JetStream or an MQTT
//! broker's shared subscription), its HTTP listener. A bad file is refused at start with file,
//! line, column and item, as the gateway's configuration is.

use serde::Deserialize;
use spokegate::diagnostic::{read_source, Diagnostic, Diagnostics, SourceFile};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct HubConfig {
    pub hub: HubIdentity,
    pub database: Database,
    pub input: Input,
    pub http: Http,
    pub ack: AckPolicy,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubIdentity {
    /// The hub id its acknowledgements and commands are signed for.
    pub id: String,
    /// Its Ed25519 key (created by `spokegate-hub identity` if missing).
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    /// A libpq-style connection string (`host=... user=... dbname=...`) or a `postgres://` URL.
    pub url: String,
}

#[derive(Debug, Clone)]
pub enum Input {
    Nats(NatsInput),
    Mqtt(MqttInput),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsInput {
    /// Every node of the cluster the service may connect to.
    pub servers: Vec<String>,
    #[serde(default = "default_stream")]
    pub stream: String,
    #[serde(default = "default_consumer")]
    pub consumer: String,
    /// Replicas of the stream when the service creates it (3 on a 3-node cluster).
    #[serde(default = "one")]
    pub replicas: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttInput {
    /// `mqtt://host:port`.
    pub url: String,
    /// The shared subscription group: every instance of one hub uses the same.
    #[serde(default = "default_group")]
    pub group: String,
    /// Unique per instance.
    pub client_id: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Behind a single sign-on proxy: the request header naming the signed-in user (who must
    /// exist in `users` for their grants). Only when the proxy is the sole way in.
    #[serde(default)]
    pub trusted_user_header: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct AckPolicy {
    /// A gateway's acknowledgement goes out at the latest this long after the first seq it covers.
    pub max_delay: Duration,
}

fn default_stream() -> String {
    "SPOKEGATE".into()
}
fn default_consumer() -> String {
    "spokegate-hub".into()
}
fn default_group() -> String {
    "spokegate-hub".into()
}
fn default_listen() -> SocketAddr {
    "127.0.0.1:8490".parse().expect("a socket address")
}
fn one() -> usize {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    hub: HubIdentity,
    database: Database,
    input: RawInput,
    #[serde(default)]
    http: Option<Http>,
    #[serde(default)]
    ack: Option<RawAck>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    nats: Option<serde_spanned::Spanned<NatsInput>>,
    mqtt: Option<serde_spanned::Spanned<MqttInput>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAck {
    max_delay_ms: u64,
}

impl HubConfig {
    pub fn load(path: &Path) -> Result<HubConfig, Diagnostics> {
        let text = read_source(path)?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<HubConfig, Diagnostics> {
        let src = SourceFile::new(path, text);
        let raw: Raw = toml::from_str(text).map_err(|e| Diagnostics(vec![src.from_toml_error(&e)]))?;
        let mut problems = Vec::new();
        let input = match (raw.input.nats, raw.input.mqtt) {
            (Some(n), None) => {
                let span = n.span();
                let n = n.into_inner();
                if n.servers.is_empty() {
                    problems.push(src.at(span.clone(), "input.nats.servers", "name at least one NATS server"));
                }
                if !(1..=5).contains(&n.replicas) {
                    problems.push(src.at(span, "input.nats.replicas", "JetStream takes 1 to 5 replicas"));
                }
                Input::Nats(n)
            }
            (None, Some(m)) => {
                let span = m.span();
                let m = m.into_inner();
                match spokegate::config::MqttUrl::parse(&m.url) {
                    Err(e) => problems.push(src.at(span, "input.mqtt.url", e.to_string())),
                    Ok(u) if u.tls => problems.push(src.at(
                        span,
                        "input.mqtt.url",
                        "the hub service speaks plain MQTT to its broker (put it on the same host or a private network)",
                    )),
                    Ok(_) => {}
                }
                Input::Mqtt(m)
            }
            _ => {
                return Err(Diagnostics(vec![Diagnostic::whole_file(
                    path,
                    "input",
                    "give exactly one of [input.nats] and [input.mqtt]",
                )]))
            }
        };
        let ack = AckPolicy { max_delay: Duration::from_millis(raw.ack.map_or(500, |a| a.max_delay_ms)) };
        Diagnostics(problems).into_result(HubConfig {
            hub: raw.hub,
            database: raw.database,
            input,
            http: raw.http.unwrap_or(Http { listen: default_listen(), trusted_user_header: None }),
            ack,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_without_an_input_or_with_an_unknown_key_is_refused_with_its_place() {
        let p = Path::new("hub.toml");
        let base = "[hub]\nid = \"h\"\nkey = \"k\"\n[database]\nurl = \"host=x\"\n";
        let e = HubConfig::parse(p, &format!("{base}[input]\n")).unwrap_err().to_string();
        assert!(e.contains("exactly one of"), "{e}");
        let e = HubConfig::parse(p, &format!("{base}[input.nats]\nservers = [\"nats://a\"]\nreplica = 3\n"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("hub.toml:8:1: `input.nats.replica`"), "{e}");
        let ok =
            HubConfig::parse(p, &format!("{base}[input.mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\nclient_id = \"a\"\n"))
                .unwrap();
        assert!(matches!(ok.input, Input::Mqtt(ref m) if m.group == "spokegate-hub"));
        assert_eq!(ok.ack.max_delay, Duration::from_millis(500));
    }

    #[test]
    fn the_example_configuration_loads() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/hub.example.toml"));
        let c = HubConfig::load(path).unwrap_or_else(|d| panic!("{d}"));
        assert!(matches!(c.input, Input::Nats(ref n) if n.servers.len() == 3 && n.replicas == 3));
        assert_eq!(c.hub.id, "hub-kolkata");
    }
}
