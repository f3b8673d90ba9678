//! A test CA made with rcgen and a real mosquitto with TLS listeners, shared by the gateway's TLS
//! tests and the hub's (included with `#[path]`).

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use spokegate::sim::mosquitto::Mosquitto;
use std::path::PathBuf;

/// A certificate authority of the test's own.
pub struct Ca {
    pub cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A leaf certificate for `names`, valid now unless `expired`: (cert PEM, key PEM).
    pub fn issue(&self, names: &[&str], expired: bool) -> (String, String) {
        let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("client"));
        if expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Files readable by the broker (mosquitto drops to its own user) in a directory of their own.
pub struct Files(pub tempfile::TempDir);

impl Files {
    pub fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Files(dir)
    }

    pub fn put(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.0.path().join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }
}

/// A broker with a plain listener (for the test's subscriber) and TLS listeners, each with its
/// own server certificate: (broker, [tls ports]).
pub struct TlsBroker {
    pub broker: Mosquitto,
    pub ports: Vec<u16>,
}

pub fn tls_broker(files: &Files, ca: &Ca, listeners: &[(&str, bool)]) -> TlsBroker {
    let ca_file = files.put("ca.pem", &ca.cert.pem(), 0o644);
    let mut ports: Vec<u16> = Vec::new();
    // Asked again, with new ports, when one is taken before the broker listens on it.
    let broker = Mosquitto::launch(|| {
        // Anonymous clients are let in; a client that gives a username must give its password.
        let mut extra = format!("persistence false\npassword_file {}\n", files.0.path().join("passwd").display());
        ports.clear();
        for (i, (cert, require_cert)) in listeners.iter().enumerate() {
            let port = spokegate::sim::broker::free_port().unwrap();
            ports.push(port);
            let (c, k) = (files.put(&format!("srv{i}.pem"), cert, 0o644), files.0.path().join(format!("srv{i}.key")));
            extra.push_str(&format!(
                "listener {port} 127.0.0.1\ncertfile {}\nkeyfile {}\ncafile {}\nrequire_certificate {require_cert}\n",
                c.display(),
                k.display(),
                ca_file.display()
            ));
        }
        (spokegate::sim::broker::free_port().unwrap(), extra)
    });
    TlsBroker { broker, ports }
}
