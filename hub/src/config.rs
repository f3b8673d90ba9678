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
    pub retention: crate::retention::RetentionPolicy,
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
    /// The CA certificates (PEM) the servers' certificates must chain to, instead of the
    /// system's; TLS is then required (as it is for `tls://` servers).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// The instance's client certificate and key (PEM), where the servers verify clients.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// A NATS credentials file (a user JWT and its NKey seed, as `nsc` writes it).
    #[serde(default)]
    pub credentials: Option<PathBuf>,
    /// Or a user and password (NATS `authorization`).
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Lets a password travel without TLS (refused otherwise).
    #[serde(default)]
    pub allow_plaintext_password: bool,
}

impl NatsInput {
    /// The client certificate and key, when both are given.
    pub fn client_cert(&self) -> Option<(&Path, &Path)> {
        self.cert.as_deref().zip(self.key.as_deref())
    }

    /// Whether the connection must be TLS whatever the servers' URLs say.
    pub fn tls(&self) -> bool {
        self.ca.is_some() || self.cert.is_some()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttInput {
    /// `mqtt://host:port`, or `mqtts://host:port` for TLS (the broker's certificate and name
    /// always verified).
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
    /// Lets a password travel without TLS (refused otherwise).
    #[serde(default)]
    pub allow_plaintext_password: bool,
    /// With `mqtts://`: the CA certificates (PEM) the broker's certificate must chain to, instead
    /// of the system's.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// With `mqtts://`: the instance's client certificate and key (PEM), where the broker asks
    /// for one.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
}

impl MqttInput {
    /// The client certificate and key, when both are given.
    pub fn client_cert(&self) -> Option<(&Path, &Path)> {
        self.cert.as_deref().zip(self.key.as_deref())
    }
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
    /// The hub's address as its clients reach it (`https://hub.example.org`, behind a proxy): the
    /// FHIR search's page links start with it. Without it, with `http://` and the request's Host.
    #[serde(default)]
    pub public_url: Option<serde_spanned::Spanned<String>>,
}

impl Http {
    /// The public address without a trailing `/`, if one is configured.
    pub fn public_base(&self) -> Option<String> {
        self.public_url.as_ref().map(|u| u.get_ref().trim_end_matches('/').to_string())
    }
}

/// What is wrong with a public URL, if anything: `http://` or `https://` and a host, no query or
/// fragment, no white space.
fn public_url_problem(url: &str) -> Option<&'static str> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        None => Some("give the address with http:// or https://"),
        Some(r) if r.is_empty() || r.starts_with('/') => Some("give a host after the scheme"),
        Some(r) if r.contains(['?', '#']) || r.chars().any(char::is_whitespace) => {
            Some("give the address alone: no query, fragment or white space")
        }
        Some(_) => None,
    }
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
    #[serde(default)]
    retention: Option<serde_spanned::Spanned<crate::retention::RetentionPolicy>>,
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
                    problems.push(src.at(span.clone(), "input.nats.replicas", "JetStream takes 1 to 5 replicas"));
                }
                if let Some((item, why)) = nats_auth_problem(&n) {
                    problems.push(src.at(span, item, why));
                }
                Input::Nats(n)
            }
            (None, Some(m)) => {
                let span = m.span();
                let m = m.into_inner();
                match spokegate::config::MqttUrl::parse(&m.url) {
                    Err(e) => problems.push(src.at(span, "input.mqtt.url", e.to_string())),
                    Ok(u) => {
                        if let Some((item, why)) = mqtt_tls_problem(&m, u.tls) {
                            problems.push(src.at(span, item, why));
                        }
                    }
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
        let http = raw.http.unwrap_or(Http { listen: default_listen(), trusted_user_header: None, public_url: None });
        if let Some(u) = &http.public_url {
            if let Some(why) = public_url_problem(u.get_ref()) {
                problems.push(src.at(u.span(), "http.public_url", why));
            }
        }
        let retention = match raw.retention {
            Some(r) => {
                if let Some((item, why)) = r.get_ref().problem() {
                    problems.push(src.at(r.span(), item, why));
                }
                r.into_inner()
            }
            None => Default::default(),
        };
        Diagnostics(problems).into_result(HubConfig {
            hub: raw.hub,
            database: raw.database,
            input,
            http,
            ack,
            retention,
        })
    }
}

/// What is wrong with `[input.nats]`'s TLS files and credentials, if anything: a certificate and
/// its key go together, as do a user and password (and not with a credentials file), and each file
/// is read now (the PEM files as rustls will read them).
fn nats_auth_problem(n: &NatsInput) -> Option<(String, String)> {
    if let Some(p) = together("input.nats", ("cert", n.cert.is_some()), ("key", n.key.is_some()), CLIENT_AUTH) {
        return Some(p);
    }
    let login = ("username", n.username.is_some());
    if let Some(p) = together("input.nats", login, ("password", n.password.is_some()), "") {
        return Some(p);
    }
    if let (Some(_), Some(_)) = (&n.credentials, &n.username) {
        return Some(("input.nats.credentials".into(), "give a credentials file or a username, not both".into()));
    }
    if let Some(c) = &n.credentials {
        match std::fs::read_to_string(c) {
            Err(e) => return Some(("input.nats.credentials".into(), format!("{}: {e}", c.display()))),
            Ok(t) if !t.contains("BEGIN NATS USER JWT") || !t.contains("BEGIN USER NKEY SEED") => {
                return Some((
                    "input.nats.credentials".into(),
                    format!("{}: not a NATS credentials file (a user JWT and an NKey seed)", c.display()),
                ))
            }
            Ok(_) => {}
        }
    }
    let plain = !n.tls() && n.servers.iter().any(|s| !s.starts_with("tls://"));
    if plain && n.password.is_some() && !n.allow_plaintext_password {
        return Some(("input.nats.password".into(), PLAINTEXT_PASSWORD.replace("{tls}", "tls:// servers or a `ca`")));
    }
    if !n.tls() {
        return None;
    }
    let e = spokegate::mqtt::tls::transport(n.ca.as_deref(), n.client_cert()).err()?;
    Some((format!("input.nats.{}", tls_item(&e.to_string(), &n.ca, &n.key, &n.cert, "servers")), e.to_string()))
}

const CLIENT_AUTH: &str = " (TLS client authentication)";

/// As the gateway says it: a password without TLS is refused unless the operator says so.
const PLAINTEXT_PASSWORD: &str =
    "a password without TLS travels in clear text: use {tls}, or set allow_plaintext_password = true";

/// Two settings of `section` that are given together or not at all: the one missing, if one is.
fn together(section: &str, a: (&str, bool), b: (&str, bool), what_for: &str) -> Option<(String, String)> {
    let missing = match (a.1, b.1) {
        (true, false) => b.0,
        (false, true) => a.0,
        _ => return None,
    };
    Some((format!("{section}.{missing}"), format!("`{}` and `{}` go together{what_for}", a.0, b.0)))
}

/// Which of a section's TLS files an error is about: the file its text names, else the
/// certificate, else `url_item`.
fn tls_item(
    error: &str,
    ca: &Option<PathBuf>,
    key: &Option<PathBuf>,
    cert: &Option<PathBuf>,
    url_item: &str,
) -> String {
    let names = |p: &Option<PathBuf>| p.as_ref().is_some_and(|p| error.starts_with(&p.display().to_string()));
    let item = if names(ca) {
        "ca"
    } else if names(key) {
        "key"
    } else if cert.is_some() {
        "cert"
    } else {
        url_item
    };
    item.to_string()
}

/// What is wrong with `[input.mqtt]`'s TLS files, if anything: they need an `mqtts://` URL, a
/// certificate and its key go together, and each is read now as the input will read it (a file
/// that cannot be used is refused at start, not a broker the service never reaches).
fn mqtt_tls_problem(m: &MqttInput, tls: bool) -> Option<(String, String)> {
    let given = [("input.mqtt.ca", &m.ca), ("input.mqtt.cert", &m.cert), ("input.mqtt.key", &m.key)];
    if !tls {
        if m.password.is_some() && !m.allow_plaintext_password {
            return Some(("input.mqtt.password".into(), PLAINTEXT_PASSWORD.replace("{tls}", "mqtts://")));
        }
        return given
            .iter()
            .find(|(_, v)| v.is_some())
            .map(|(item, _)| (item.to_string(), "TLS files need an `mqtts://` url".to_string()));
    }
    if let Some(p) = together("input.mqtt", ("cert", m.cert.is_some()), ("key", m.key.is_some()), CLIENT_AUTH) {
        return Some(p);
    }
    let e = spokegate::mqtt::tls::transport(m.ca.as_deref(), m.client_cert()).err()?;
    Some((format!("input.mqtt.{}", tls_item(&e.to_string(), &m.ca, &m.key, &m.cert, "url")), e.to_string()))
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
    fn retention_keeps_quarantine_thirty_days_by_default_and_a_bad_policy_is_refused_with_its_place() {
        let p = Path::new("hub.toml");
        let base = "[hub]\nid = \"h\"\nkey = \"k\"\n[database]\nurl = \"host=x\"\n[input.mqtt]\nurl = \"mqtt://b\"\nclient_id = \"a\"\n";
        let plain = HubConfig::parse(p, base).unwrap();
        assert_eq!(plain.retention, crate::retention::RetentionPolicy::default());
        assert_eq!((plain.retention.quarantine_days, plain.retention.waveform_days), (30, 0));
        let set = HubConfig::parse(p, &format!("{base}[retention]\nwaveform_days = 90\nevery_secs = 600\n")).unwrap();
        assert_eq!(
            (set.retention.waveform_days, set.retention.every_secs, set.retention.quarantine_days),
            (90, 600, 30)
        );
        let e = HubConfig::parse(p, &format!("{base}[retention]\nevery_secs = 0\n")).unwrap_err().to_string();
        assert!(e.starts_with("hub.toml:9:1: `retention.every_secs`"), "{e}");
        let e = HubConfig::parse(p, &format!("{base}[retention]\nwaveform_day = 9\n")).unwrap_err().to_string();
        assert!(e.contains("waveform_day"), "{e}");
    }

    #[test]
    fn tls_files_need_mqtts_go_together_and_are_read_at_start() {
        let p = Path::new("hub.toml");
        let base = "[hub]\nid = \"h\"\nkey = \"k\"\n[database]\nurl = \"host=x\"\n[input.mqtt]\nclient_id = \"a\"\n";
        let refused = |lines: &str| HubConfig::parse(p, &format!("{base}{lines}")).unwrap_err().to_string();
        let e = refused("url = \"mqtt://b:1883\"\nca = \"/etc/ca.pem\"\n");
        assert!(e.starts_with("hub.toml:6:1: `input.mqtt.ca`") && e.contains("mqtts://"), "{e}");
        let e = refused("url = \"mqtt://b\"\nusername = \"u\"\npassword = \"p\"\n");
        assert!(e.contains("`input.mqtt.password`") && e.contains("mqtts://"), "{e}");
        let e = refused("url = \"mqtts://b\"\ncert = \"/etc/c.pem\"\n");
        assert!(e.contains("`input.mqtt.key`") && e.contains("go together"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-ca.pem");
        let e = refused(&format!("url = \"mqtts://b\"\nca = \"{}\"\n", missing.display()));
        assert!(e.contains("`input.mqtt.ca`") && e.contains(&missing.display().to_string()), "{e}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let e = refused(&format!("url = \"mqtts://b\"\nca = \"{}\"\n", junk.display()));
        assert!(e.contains("`input.mqtt.ca`") && e.contains("no certificate"), "{e}");
    }

    #[test]
    fn nats_credentials_and_tls_files_are_checked_at_start() {
        let p = Path::new("hub.toml");
        let base =
            "[hub]\nid = \"h\"\nkey = \"k\"\n[database]\nurl = \"host=x\"\n[input.nats]\nservers = [\"tls://a\"]\n";
        let refused = |lines: &str| HubConfig::parse(p, &format!("{base}{lines}")).unwrap_err().to_string();
        let e = refused("username = \"hub\"\n");
        assert!(e.contains("`input.nats.password`") && e.contains("go together"), "{e}");
        let e = refused("key = \"/etc/k.pem\"\n");
        assert!(e.contains("`input.nats.cert`"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("hub.creds");
        std::fs::write(&creds, "not credentials").unwrap();
        let e = refused(&format!("credentials = \"{}\"\n", creds.display()));
        assert!(e.contains("`input.nats.credentials`") && e.contains("not a NATS credentials file"), "{e}");
        let e = refused(&format!("credentials = \"{}\"\nusername = \"u\"\npassword = \"p\"\n", creds.display()));
        assert!(e.contains("not both"), "{e}");
        let missing = dir.path().join("no-ca.pem");
        let e = refused(&format!("ca = \"{}\"\n", missing.display()));
        assert!(e.contains("`input.nats.ca`") && e.contains(&missing.display().to_string()), "{e}");
        let ok = HubConfig::parse(p, &format!("{base}username = \"hub\"\npassword = \"p\"\n")).unwrap();
        assert!(matches!(ok.input, Input::Nats(ref n) if !n.tls() && n.username.as_deref() == Some("hub")));
        // A password to a nats:// server: refused unless the operator allows it.
        let plain = base.replace("tls://a", "nats://a");
        let e = HubConfig::parse(p, &format!("{plain}username = \"hub\"\npassword = \"p\"\n")).unwrap_err().to_string();
        assert!(e.contains("`input.nats.password`") && e.contains("clear text"), "{e}");
        let allowed = format!("{plain}username = \"hub\"\npassword = \"p\"\nallow_plaintext_password = true\n");
        assert!(HubConfig::parse(p, &allowed).is_ok());
    }

    #[test]
    fn the_example_configuration_loads() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/hub.example.toml"));
        let c = HubConfig::load(path).unwrap_or_else(|d| panic!("{d}"));
        assert!(matches!(c.input, Input::Nats(ref n) if n.servers.len() == 3 && n.replicas == 3));
        assert_eq!(c.hub.id, "hub-kolkata");
    }
}
