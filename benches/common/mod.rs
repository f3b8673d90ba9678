//! Helpers the bench binaries share: the processes they start and what they read of them in /proc.

#![allow(dead_code)]

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

pub use spokegate::sim::KillOnDrop as Proc;

pub mod load;

#[allow(unused_imports)]
pub use spokegate::sim::proc_stats::{cpu_seconds, cpu_split, percentile, status_kib};

pub fn start_broker(conf: &std::path::Path, port: u16) -> Proc {
    let mosquitto =
        if std::path::Path::new("/usr/sbin/mosquitto").exists() { "/usr/sbin/mosquitto" } else { "mosquitto" };
    let p = Proc(
        Command::new(mosquitto)
            .arg("-c")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto"),
    );
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(10));
    }
    p
}

/// A mosquitto without persistence on a free loopback port: (process, port).
pub fn mosquitto(dir: &std::path::Path) -> (Proc, u16) {
    let port = spokegate::sim::broker::free_port().unwrap();
    let conf = dir.join("m.conf");
    std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\n")).unwrap();
    (start_broker(&conf, port), port)
}

/// The real gateway binary running `config`, logging warnings, with extra environment.
/// SPOKEGATE_BENCH_WRAP="valgrind --tool=callgrind --callgrind-out-file=FILE" starts it under
/// that command (instruction counts are the same run after run: an A/B needs no alternation).
pub fn gateway(config: &std::path::Path, env: &[(&str, &str)]) -> Proc {
    let wrap = std::env::var("SPOKEGATE_BENCH_WRAP").unwrap_or_default();
    let mut words = wrap.split_whitespace();
    let mut cmd = match words.next() {
        Some(tool) => {
            let mut c = Command::new(tool);
            c.args(words).arg(env!("CARGO_BIN_EXE_spokegate"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_spokegate")),
    };
    cmd.args(["run", "--config", config.to_str().unwrap(), "--log", "warn"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc(cmd.spawn().unwrap())
}

/// The real gateway reading `vitals-kv` lines from `tty`, its state in `dir`, publishing to the
/// broker on `port` as site `bench`, gateway `gw-bench`, device `vitals-1`.
/// SPOKEGATE_BENCH_QUEUE="group_ms = 0" (any `[queue]` keys) compares queue settings.
pub fn gateway_vitals(dir: &std::path::Path, port: u16, tty: &std::path::Path) -> (Proc, std::path::PathBuf) {
    let key = dir.join("gateway.key");
    if !key.exists() {
        spokegate::sign::SigningKey::generate(&key).unwrap();
    }
    let config = dir.join("spokegate.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nsite = \"bench\"\nid = \"gw-bench\"\nstate_dir = \"{}\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\n[[device]]\nid = \"vitals-1\"\nprofile = \"vitals-kv\"\nserial = {{ path = \"{}\" }}\n",
            dir.display(),
            tty.display()
        ) + &std::env::var("SPOKEGATE_BENCH_QUEUE").map(|q| format!("[queue]\n{q}\n")).unwrap_or_default(),
    )
    .unwrap();
    (gateway(&config, &[]), config)
}

/// The queue depth of the gateway running `config`, as `spokegate status` reports it (the
/// running daemon answers), if anything answers.
pub fn queue_depth(config: &std::path::Path) -> Option<u64> {
    let out = Command::new(env!("CARGO_BIN_EXE_spokegate"))
        .args(["status", "--config", config.to_str().unwrap()])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    serde_json::from_slice::<serde_json::Value>(&out.stdout).ok().and_then(|v| v["queue"]["depth"].as_u64())
}

/// A profiler attached to `pid` for the measured part of a run, when asked for:
/// SPOKEGATE_BENCH_PERF=FILE records it with `perf record -g`; SPOKEGATE_BENCH_ATTACH="strace -c
/// -f -o FILE -p {pid}" attaches any other tool. End it with [`detach`].
pub fn attach(pid: u32) -> Option<std::process::Child> {
    let template = std::env::var("SPOKEGATE_BENCH_PERF")
        .ok()
        .map(|out| format!("perf record -F 4000 -g -o {out} -p {{pid}}"))
        .or_else(|| std::env::var("SPOKEGATE_BENCH_ATTACH").ok())?;
    let line = template.replace("{pid}", &pid.to_string());
    let mut words = line.split_whitespace();
    let child = Command::new(words.next().expect("a command"))
        .args(words)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the attached tool");
    std::thread::sleep(Duration::from_millis(300)); // attached before the run starts
    Some(child)
}

/// Stops what [`attach`] started (SIGINT: perf writes its file) and waits for it.
pub fn detach(tool: Option<std::process::Child>) {
    if let Some(mut p) = tool {
        let _ = Command::new("kill").args(["-INT", &p.id().to_string()]).status();
        let _ = p.wait();
    }
}
