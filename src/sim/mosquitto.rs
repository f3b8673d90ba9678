//! A real mosquitto on a free loopback port for tests and benchmarks, killed on drop (mosquitto
//! must be installed; `.ci/setup` installs it).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a broker may take to listen.
const START_LIMIT: Duration = Duration::from_secs(20);

/// A mosquitto broker on a free loopback port, killed on drop.
pub struct Mosquitto {
    pub port: u16,
    child: Child,
    conf: PathBuf,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        let port = super::broker::free_port().expect("a free loopback port");
        Self::start_on(port)
    }

    pub fn start_on(port: u16) -> Mosquitto {
        Self::with_config(port, "persistence false\n")
    }

    /// A broker that keeps sessions and queued messages across restarts (SIGTERM saves them).
    pub fn start_persistent() -> Mosquitto {
        let port = super::broker::free_port().expect("a free loopback port");
        Self::with_config(port, "persistence true\nmax_queued_messages 0\n")
    }

    pub fn with_config(port: u16, extra: &str) -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        // mosquitto started as root drops to its own user, which must be able to save its state here.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let conf = dir.path().join("mosquitto.conf");
        let text = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence_location {}/\n{extra}",
            dir.path().display()
        );
        std::fs::write(&conf, text).unwrap();
        let child = spawn_mosquitto(&conf, port);
        Mosquitto { port, child, conf, _dir: dir }
    }

    /// Stops the broker cleanly (SIGTERM: a persistent broker saves its state).
    pub fn stop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.child = spawn_mosquitto(&self.conf, self.port);
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_mosquitto(conf: &Path, port: u16) -> Child {
    let child = Command::new(mosquitto_binary())
        .arg("-c")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto must be installed (apt-get install mosquitto); .ci/run installs it");
    let deadline = Instant::now() + START_LIMIT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not start on port {port}");
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

fn mosquitto_binary() -> PathBuf {
    for p in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    "mosquitto".into()
}
