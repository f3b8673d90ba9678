//! Side by side (`cargo bench --bench peers`): spokegate, a Python gateway (pyserial, paho-mqtt
//! and cryptography: `benches/peers/python_gateway.py`) and Node-RED (`node-red` with
//! `node-red-node-serialport`, a function node signing with Ed25519, `benches/peers/node-red/`)
//! read the same `vitals-kv` lines from a pseudo-terminal, sign each reading with Ed25519 and
//! publish it at QoS 1 to the same mosquitto, where the same subscriber stamps its arrival. One
//! gateway runs at a time. The bench installs the peers itself (a Python venv from PyPI, npm
//! packages from the npm registry, under `target/`); a peer that cannot be installed is skipped
//! and the table says so.
//!
//! What differs, and the table cannot show: spokegate commits every reading to its durable queue
//! before it is sent and holds it until the broker acknowledges it; the peers keep nothing.
//!
//! Per gateway: 500 readings/s for 10 s (CPU per reading from /proc/PID/stat, latency from the
//! line written to the message received), then 50,000 lines as fast as the terminal takes them
//! (throughput: until the last one arrived), and the peak resident memory.
//! `SPOKEGATE_BENCH_ROUNDS=N` runs the gateways N times, alternating, and reports each round's
//! ratios and the medians (this VM's speed drifts within minutes; a ratio compares runs of one
//! round).

use spokegate::sim::PtyDevice;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;

use common::load::{self, Paced, Throughput};
use common::{percentile, Proc};

const PACED_RATE: u64 = 500;
const PACED_SECONDS: u64 = 10;
const THROUGHPUT_READINGS: u64 = 50_000;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(run());
}

#[derive(Clone, Copy, PartialEq)]
enum Peer {
    Spokegate,
    Python,
    NodeRed,
}

impl Peer {
    /// Every gateway, in the order they run and the table lists them.
    const ALL: [Peer; 3] = [Peer::Spokegate, Peer::Python, Peer::NodeRed];

    fn id(self) -> &'static str {
        match self {
            Peer::Spokegate => "spokegate",
            Peer::Python => "python",
            Peer::NodeRed => "node-red",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Peer::Spokegate => "spokegate",
            Peer::Python => "Python (pyserial + paho-mqtt + cryptography)",
            Peer::NodeRed => "Node-RED (serialport + function + mqtt out)",
        }
    }
}

struct Outcome {
    peer: Peer,
    paced: Paced,
    throughput: Throughput,
    peak_rss_kib: u64,
}

async fn run() {
    let work = tempfile::tempdir().unwrap();
    let (_broker, port) = broker(work.path());
    let arrivals = load::subscriber(port, "bench-hub", &["spokegate/v1/+/+/dev/+/obs", "bench/+/obs"]).await;
    let installs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-peers");
    // SPOKEGATE_BENCH_PEERS=spokegate,python,node-red picks who runs (spokegate always does).
    let wanted = std::env::var("SPOKEGATE_BENCH_PEERS").unwrap_or_else(|_| "spokegate,python,node-red".into());
    let peers: Vec<Peer> = Peer::ALL
        .into_iter()
        .filter(|p| *p == Peer::Spokegate || wanted.split(',').any(|w| w.trim() == p.id()))
        .collect();
    // SPOKEGATE_BENCH_ROUNDS=N runs them all N times, alternating (this VM's speed drifts within
    // minutes: a ratio is only fair between runs close in time), and reports each round's ratios
    // and the medians.
    let rounds: usize = std::env::var("SPOKEGATE_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let mut outcomes: Vec<Vec<Outcome>> = Vec::new();
    let mut skipped = Vec::new();
    let mut runs = 0;
    for round in 1..=rounds {
        let mut this_round = Vec::new();
        for &peer in &peers {
            if skipped.iter().any(|(p, _)| *p == peer) {
                continue;
            }
            let dir = work.path().join(format!("{runs}"));
            runs += 1;
            match run_one(peer, &dir, &installs, port, &arrivals).await {
                Ok(o) => this_round.push(o),
                Err(why) => {
                    println!("{}: skipped: {why}", peer.name());
                    skipped.push((peer, why));
                }
            }
        }
        if rounds > 1 {
            print_ratios(&format!("round {round}"), &this_round);
        }
        outcomes.push(this_round);
    }
    print_table(&outcomes, &skipped);
}

/// One gateway: started, warmed up, paced, then at full speed; `Err` when it cannot run here.
async fn run_one(
    peer: Peer,
    dir: &Path,
    installs: &Path,
    port: u16,
    arrivals: &load::Arrivals,
) -> Result<Outcome, String> {
    std::fs::create_dir_all(dir).unwrap();
    let mut dev = PtyDevice::create(&dir.join("ttyBENCH")).unwrap();
    let gateway = match peer {
        Peer::Spokegate => Ok(common::gateway_vitals(dir, port, &dev.path).0),
        Peer::Python => python(installs, &dev.path, port),
        Peer::NodeRed => node_red(installs, dir, &dev.path, port),
    }?;
    let pid = gateway.0.id();
    if !load::warm_up(&mut dev.peer, arrivals, Duration::from_secs(60)).await {
        return Err("no reading arrived within 60 s of starting it".to_string());
    }
    let limit = Duration::from_secs(120);
    let paced = load::paced(&mut dev.peer, pid, arrivals, PACED_RATE, PACED_SECONDS, limit).await;
    println!(
        "{}: {PACED_RATE}/s: {:.0} us CPU/reading (user {:.0}, kernel {:.0}; {:.1} % of a core), latency p50 {:.2} ms p99 {:.2} ms, {} of {} arrived; steal {:.0} %",
        peer.name(),
        paced.cpu_us(),
        paced.user_us,
        paced.kernel_us,
        paced.core_pct,
        paced.p(0.5),
        paced.p(0.99),
        paced.arrived,
        paced.n,
        paced.steal_pct
    );
    arrivals.settle(Duration::from_millis(300)).await;
    let throughput = load::throughput(&mut dev.peer, pid, arrivals, THROUGHPUT_READINGS, limit).await;
    println!(
        "{}: throughput {:.0} readings/s ({} of {} in {:.2} s), {:.1} us CPU/reading; steal {:.0} %",
        peer.name(),
        throughput.per_sec(),
        throughput.arrived,
        throughput.n,
        throughput.secs,
        throughput.cpu_us_per_reading,
        throughput.steal_pct
    );
    let (_, peak_rss_kib) = load::rss_kib(pid);
    drop(gateway);
    arrivals.settle(Duration::from_millis(300)).await;
    Ok(Outcome { peer, paced, throughput, peak_rss_kib })
}

fn broker(dir: &Path) -> (Proc, u16) {
    let port = spokegate::sim::broker::free_port().unwrap();
    let conf = dir.join("m.conf");
    // No limit on what waits for the subscriber: every gateway's every message is counted.
    std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n")).unwrap();
    (common::start_broker(&conf, port), port)
}

/// spokegate's throughput over each peer's, and each peer's CPU per reading over spokegate's.
fn ratios(round: &[Outcome]) -> Vec<(Peer, f64, f64)> {
    let Some(ours) = round.iter().find(|o| o.peer == Peer::Spokegate) else { return Vec::new() };
    round
        .iter()
        .filter(|o| o.peer != Peer::Spokegate)
        .map(|o| (o.peer, ours.throughput.per_sec() / o.throughput.per_sec(), o.paced.cpu_us() / ours.paced.cpu_us()))
        .collect()
}

fn print_ratios(label: &str, round: &[Outcome]) {
    for (peer, throughput, cpu) in ratios(round) {
        println!("{label}: against {}: throughput {throughput:.2}x, CPU {cpu:.2}x", peer.name());
    }
}

/// The median of `values` (for an even number of them, the upper of the middle two: the
/// project's nearest-rank [`percentile`]).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    percentile(&values, 0.5)
}

/// The table: each gateway's median over the rounds; the ratios are the medians of each round's
/// ratios (a peer is compared with the spokegate run of its own round), with their range.
fn print_table(rounds: &[Vec<Outcome>], skipped: &[(Peer, String)]) {
    let ran = |peer: Peer| rounds.iter().flatten().any(|o| o.peer == peer);
    if !ran(Peer::Spokegate) {
        return;
    }
    let of = |peer: Peer, f: &dyn Fn(&Outcome) -> f64| {
        median(rounds.iter().flatten().filter(|o| o.peer == peer).map(f).collect())
    };
    let ratio_text = |peer: Peer, pick: &dyn Fn(&(Peer, f64, f64)) -> f64| {
        let all: Vec<f64> = rounds.iter().flat_map(|r| ratios(r)).filter(|r| r.0 == peer).map(|r| pick(&r)).collect();
        let (lo, hi) = all.iter().fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        match all.len() {
            0 => String::new(),
            1 => format!(" ({lo:.1}x)"),
            _ => format!(" ({:.1}x; {lo:.1}-{hi:.1}x)", median(all)),
        }
    };
    println!();
    if rounds.len() > 1 {
        println!("medians over {} rounds, alternating the gateways:", rounds.len());
    }
    println!("| gateway | throughput (readings/s) | CPU per reading at {PACED_RATE}/s | latency p50 / p99 at {PACED_RATE}/s | peak RSS |");
    println!("|---|---|---|---|---|");
    for peer in Peer::ALL.into_iter().filter(|p| ran(*p)) {
        let (t, c) = match peer {
            Peer::Spokegate => (String::new(), String::new()),
            _ => (ratio_text(peer, &|r| r.1), ratio_text(peer, &|r| r.2)),
        };
        println!(
            "| {} | {:.0}{t} | {:.0} µs{c} | {:.2} ms / {:.2} ms | {:.1} MiB |",
            peer.name(),
            of(peer, &|o| o.throughput.per_sec()),
            of(peer, &|o| o.paced.cpu_us()),
            of(peer, &|o| o.paced.p(0.5)),
            of(peer, &|o| o.paced.p(0.99)),
            of(peer, &|o| o.peak_rss_kib as f64) / 1024.0
        );
    }
    for (peer, why) in skipped {
        println!("| {} | skipped: {why} | | | |", peer.name());
    }
    println!();
    println!("(x: spokegate's throughput / the peer's; the peer's CPU per reading / spokegate's; with rounds: median; range)");
    let steal: Vec<f64> = rounds.iter().flatten().flat_map(|o| [o.paced.steal_pct, o.throughput.steal_pct]).collect();
    let (lo, hi) = steal.iter().fold((f64::MAX, f64::MIN), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
    println!(
        "machine: {} cores, steal {lo:.0}-{hi:.0} % during the measurements; `cargo bench --bench peers`",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
}

/// Runs `cmd` to the end; its output only when it fails.
fn quietly(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!("{cmd:?} failed: {}", err.lines().rev().take(3).collect::<Vec<_>>().join(" / ")))
    }
}

fn python(installs: &Path, tty: &Path, port: u16) -> Result<Proc, String> {
    let venv = installs.join("python");
    let py = venv.join("bin/python");
    let ready = |py: &Path| {
        Command::new(py).args(["-c", "import serial, paho.mqtt, cryptography"]).status().is_ok_and(|s| s.success())
    };
    if !ready(&py) {
        quietly(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        quietly(Command::new(&py).args([
            "-m",
            "pip",
            "install",
            "-q",
            "pyserial>=3.5,<4",
            "paho-mqtt>=2,<3",
            "cryptography>=42,<47",
        ]))?;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/python_gateway.py");
    Command::new(&py)
        .arg(script)
        .arg(tty)
        .arg(port.to_string())
        .arg("bench/python/obs")
        .stdout(Stdio::null())
        .spawn()
        .map(Proc)
        .map_err(|e| e.to_string())
}

fn node_red(installs: &Path, dir: &Path, tty: &Path, port: u16) -> Result<Proc, String> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/node-red");
    let app = installs.join("node-red");
    std::fs::create_dir_all(&app).map_err(|e| e.to_string())?;
    let manifest = std::fs::read(source.join("package.json")).map_err(|e| e.to_string())?;
    if std::fs::read(app.join("package.json")).ok().as_ref() != Some(&manifest)
        || !app.join("node_modules/node-red/red.js").exists()
    {
        std::fs::write(app.join("package.json"), &manifest).map_err(|e| e.to_string())?;
        quietly(
            Command::new("npm").args(["install", "--no-audit", "--no-fund", "--loglevel", "error"]).current_dir(&app),
        )?;
    }
    let user_dir = dir.join("node-red");
    std::fs::create_dir_all(&user_dir).map_err(|e| e.to_string())?;
    for f in ["flows.json", "settings.js"] {
        std::fs::copy(source.join(f), user_dir.join(f)).map_err(|e| e.to_string())?;
    }
    let red: PathBuf = app.join("node_modules/node-red/red.js");
    Command::new("node")
        .arg(red)
        .arg("--userDir")
        .arg(&user_dir)
        .arg("--settings")
        .arg(user_dir.join("settings.js"))
        .env("SERIAL_PATH", tty)
        .env("BROKER_PORT", port.to_string())
        .env("NODE_PATH", app.join("node_modules"))
        .stdout(Stdio::null())
        .spawn()
        .map(Proc)
        .map_err(|e| e.to_string())
}
