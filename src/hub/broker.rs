//! How a hub-side tool (`spokegate watch`, `spokegate hub send`) reaches the broker: the same TLS
//! as the daemon (the broker's certificate and host name always verified, a CA file replacing the
//! system roots, a client certificate for mTLS) and the same login.

use crate::config::MqttUrl;
use crate::mqtt::tls::{self, TlsError};
use rumqttc::MqttOptions;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct BrokerLogin {
    pub url: MqttUrl,
    pub ca: Option<PathBuf>,
    /// (certificate, key) for TLS client authentication.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl BrokerLogin {
    /// No TLS files and no login.
    pub fn plain(url: MqttUrl) -> Self {
        Self { url, ca: None, client_cert: None, username: None, password: None }
    }

    /// Client options for this broker.
    pub fn options(&self, client_id: &str) -> Result<MqttOptions, TlsError> {
        let mut o = MqttOptions::new(client_id, &self.url.host, self.url.port);
        o.set_keep_alive(Duration::from_secs(30));
        o.set_max_packet_size(crate::mqtt::MAX_PACKET, crate::mqtt::MAX_PACKET);
        if let Some(u) = &self.username {
            o.set_credentials(u, self.password.clone().unwrap_or_default());
        }
        if self.url.tls {
            let client = self.client_cert.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
            o.set_transport(tls::transport(self.ca.as_deref(), client)?);
        }
        Ok(o)
    }
}
