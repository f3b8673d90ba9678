//! A real mosquitto on a free loopback port for tests and benchmarks, killed on drop (mosquitto
//! must be installed; `.ci/setup` installs it).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a broker may take to listen.
const START_LIMIT: Duration = Duration::from_secs(20);
/// How many free ports a broker tries when another process takes its port first.
const PORT_TRIES: usize = 5;

/// A mosquitto broker on a free loopback port, killed on drop.
pub struct Mosquitto {
    pub port: u16,
    child: Child,
    conf: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// Why a broker did not start.
enum Failed {
    /// Its port was taken between choosing it and listening on it.
    PortTaken,
    Other(String),
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        Self::with_settings("persistence false\n")
    }

    /// A broker that keeps sessions and queued messages across restarts (SIGTERM saves them).
    pub fn start_persistent() -> Mosquitto {
        Self::with_settings("persistence true\nmax_queued_messages 0\n")
    }

    /// A broker with `extra` lines of configuration on a free port.
    pub fn with_settings(extra: &str) -> Mosquitto {
        Self::launch(|| {
            let port = super::broker::free_port().expect("a free loopback port");
            (port, extra.to_string())
        })
    }

    /// A broker on the port and with the extra configuration `config` gives, asked again for
    /// another when a port is taken before the broker listens on it (by a process outside this
    /// one: a client's ephemeral port, another test binary's broker).
    pub fn launch(mut config: impl FnMut() -> (u16, String)) -> Mosquitto {
        for _ in 0..PORT_TRIES {
            let (port, extra) = config();
            match Self::try_start(port, &extra) {
                Ok(m) => return m,
                Err(Failed::PortTaken) => continue,
                Err(Failed::Other(why)) => panic!("{why}"),
            }
        }
        panic!("mosquitto found its port taken {PORT_TRIES} times");
    }

    fn try_start(port: u16, extra: &str) -> Result<Mosquitto, Failed> {
        let dir = tempfile::tempdir().unwrap();
        // mosquitto started as root drops to its own user, which must be able to save its state here.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let conf = dir.path().join("mosquitto.conf");
        let log = dir.path().join("mosquitto.log");
        let text = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence_location {}/\nlog_dest file {}\n{extra}",
            dir.path().display(),
            log.display()
        );
        std::fs::write(&conf, text).unwrap();
        let child = spawn_mosquitto(&conf, &log, port)?;
        Ok(Mosquitto { port, child, conf, log, _dir: dir })
    }

    /// Stops the broker cleanly (SIGTERM: a persistent broker saves its state).
    pub fn stop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        match spawn_mosquitto(&self.conf, &self.log, self.port) {
            Ok(child) => self.child = child,
            Err(Failed::PortTaken) => panic!("mosquitto cannot listen again on port {}: it is taken", self.port),
            Err(Failed::Other(why)) => panic!("{why}"),
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts mosquitto and waits until its own log says it runs (a connection alone could reach
/// another process on a port taken meanwhile), or it exits.
fn spawn_mosquitto(conf: &Path, log: &Path, port: u16) -> Result<Child, Failed> {
    // A restart appends to the log: only what this start writes counts.
    let before = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0) as usize;
    let mut child = Command::new(mosquitto_binary())
        .arg("-c")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto must be installed (apt-get install mosquitto); .ci/run installs it");
    let deadline = Instant::now() + START_LIMIT;
    let said = || std::fs::read(log).ok().map(|b| String::from_utf8_lossy(b.get(before..).unwrap_or(&[])).into_owned());
    loop {
        let text = said().unwrap_or_default();
        if text.contains(" running") && TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(child);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let text = said().unwrap_or_default();
            return Err(if text.contains("Address already in use") {
                Failed::PortTaken
            } else {
                Failed::Other(format!("mosquitto on port {port} exited ({status}): {text}"))
            });
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Failed::Other(format!("mosquitto did not start on port {port} in {START_LIMIT:?}: {text}")));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn mosquitto_binary() -> PathBuf {
    for p in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    "mosquitto".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port taken by another process between choosing it and listening on it: the broker
    /// starts on the next one it is given, and a broker started on that port says it is taken.
    #[test]
    fn a_taken_port_is_replaced_by_another() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken_port = taken.local_addr().unwrap().port();
        let mut offered = Vec::new();
        let broker = Mosquitto::launch(|| {
            let port = if offered.is_empty() { taken_port } else { crate::sim::broker::free_port().unwrap() };
            offered.push(port);
            (port, "persistence false\n".into())
        });
        assert_eq!(offered.len(), 2, "{offered:?}");
        assert_eq!(broker.port, offered[1]);
        assert!(matches!(Mosquitto::try_start(taken_port, "persistence false\n"), Err(Failed::PortTaken)));
        drop(taken);
    }
}
