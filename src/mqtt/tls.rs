//! TLS to the broker, one way for the daemon and every hub-side tool: the broker's certificate and
//! host name are always verified (nothing turns that off); a configured CA file replaces the
//! system's roots; a client certificate and key (mTLS) work with the system roots or a CA file.

use rumqttc::{TlsConfiguration, Transport};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: no {what} in it (PEM expected)")]
    Empty { path: String, what: &'static str },
    #[error("{path}: a CA certificate rustls refuses: {reason}")]
    BadCa { path: String, reason: String },
    #[error("the system's CA certificates could not be loaded: {0}")]
    NoRoots(String),
    #[error("client certificate and key: {0}")]
    ClientAuth(String),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.display().to_string(), source })
}

/// The certificates of a PEM file.
fn certificates(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice()).filter_map(Result::ok).collect();
    if certs.is_empty() {
        return Err(TlsError::Empty { path: path.display().to_string(), what: "certificate" });
    }
    Ok(certs)
}

/// The TLS transport: `ca` replaces the system roots; `client` is (certificate, key) for mTLS.
pub fn transport(ca: Option<&Path>, client: Option<(&Path, &Path)>) -> Result<Transport, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in certificates(path)? {
                roots
                    .add(cert)
                    .map_err(|e| TlsError::BadCa { path: path.display().to_string(), reason: e.to_string() })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                let why = found.errors.first().map(|e| e.to_string()).unwrap_or_else(|| "none found".into());
                return Err(TlsError::NoRoots(why));
            }
            let _ = roots.add_parsable_certificates(found.certs);
        }
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => {
            let chain = certificates(cert)?;
            let pem = read(key)?;
            let key_der = rustls_pemfile::private_key(&mut pem.as_slice())
                .ok()
                .flatten()
                .ok_or_else(|| TlsError::Empty { path: key.display().to_string(), what: "private key" })?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| TlsError::ClientAuth(e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(config))))
}

/// When the first certificate of a PEM file stops being valid (its notAfter), in seconds since the
/// Unix epoch: the operator's page warns before the gateway's client certificate expires.
pub fn not_after(path: &Path) -> Result<i64, TlsError> {
    let first = certificates(path)?
        .into_iter()
        .next()
        .ok_or(TlsError::Empty { path: path.display().to_string(), what: "certificate" })?;
    let (_, cert) = x509_parser::parse_x509_certificate(first.as_ref())
        .map_err(|e| TlsError::ClientAuth(format!("{}: {e}", path.display())))?;
    Ok(cert.validity().not_after.timestamp())
}

#[cfg(test)]
mod expiry_tests {
    use super::*;

    #[test]
    fn the_not_after_of_a_certificate_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["gw-test".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2027, 1, 9);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let path = dir.path().join("c.pem");
        std::fs::write(&path, cert.pem()).unwrap();
        let want = time::macros::datetime!(2027-01-09 00:00 UTC).unix_timestamp();
        assert_eq!(not_after(&path).unwrap(), want);
        std::fs::write(&path, "not a certificate").unwrap();
        assert!(not_after(&path).is_err());
    }
}
