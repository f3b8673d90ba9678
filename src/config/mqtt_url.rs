//! `mqtt://host[:port]` and `mqtts://host[:port]` (TLS with certificate verification).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MqttUrlError {
    #[error("`{0}` is not an MQTT URL: use mqtt://host[:port] or mqtts://host[:port]")]
    Scheme(String),
    #[error("`{0}` has no host")]
    NoHost(String),
    #[error("`{0}` has a port that is not a number from 1 to 65535")]
    Port(String),
    #[error("`{0}`: put credentials in mqtt.username / mqtt.password, and no path in the URL")]
    Extra(String),
}

impl MqttUrl {
    pub fn parse(url: &str) -> Result<Self, MqttUrlError> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else {
            return Err(MqttUrlError::Scheme(url.into()));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['@', '/', '?', '#']) {
            return Err(MqttUrlError::Extra(url.into()));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| MqttUrlError::NoHost(url.into()))?;
            (h, after.strip_prefix(':'))
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(MqttUrlError::NoHost(url.into()));
        }
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| MqttUrlError::Port(url.into()))?,
            None if tls => 8883,
            None => 1883,
        };
        Ok(Self { tls, host: host.to_string(), port })
    }
}

impl fmt::Display for MqttUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ports_follow_the_scheme() {
        assert_eq!(MqttUrl::parse("mqtt://127.0.0.1").unwrap().port, 1883);
        let tls = MqttUrl::parse("mqtts://hub.example").unwrap();
        assert!(tls.tls);
        assert_eq!(tls.port, 8883);
        assert_eq!(MqttUrl::parse("mqtt://[::1]:1884").unwrap().host, "::1");
    }

    #[test]
    fn malformed_urls_are_refused_with_the_reason() {
        assert!(matches!(MqttUrl::parse("http://x"), Err(MqttUrlError::Scheme(_))));
        assert!(matches!(MqttUrl::parse("mqtt://:1883"), Err(MqttUrlError::NoHost(_))));
        assert!(matches!(MqttUrl::parse("mqtt://h:0"), Err(MqttUrlError::Port(_))));
        assert!(matches!(MqttUrl::parse("mqtt://u:p@h"), Err(MqttUrlError::Extra(_))));
    }
}
