//! The load the gateway benches put on a serial-to-MQTT gateway, whichever gateway it is: text
//! lines written into a pseudo-terminal (as fast as it takes them, or paced), a subscriber that
//! stamps each message's arrival, and what the gateway process spent (from /proc).

use super::{cpu_split, percentile, status_kib};
use spokegate::sim::proc_stats::MachineTimes;
use spokegate::sim::PtyPeer;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One reading line of the `vitals-kv` kind: what every gateway under test reads.
pub fn line(i: u64) -> String {
    format!("SYS={}\n", 100 + i % 50)
}

/// Arrivals at the subscriber: a count and each one's time.
#[derive(Clone, Default)]
pub struct Arrivals {
    pub count: Arc<AtomicU64>,
    pub times: Arc<Mutex<Vec<Instant>>>,
}

impl Arrivals {
    pub fn now(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Forgets what arrived so far (the times; the count goes on).
    pub fn clear(&self) {
        self.times.lock().unwrap().clear();
    }

    /// Waits until the count reaches `n`; false when `limit` passed first.
    pub async fn until(&self, n: u64, limit: Duration) -> bool {
        let t0 = Instant::now();
        while self.now() < n {
            if t0.elapsed() > limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }

    /// Waits until nothing more has arrived for `quiet`.
    pub async fn settle(&self, quiet: Duration) {
        loop {
            let before = self.now();
            tokio::time::sleep(quiet).await;
            if self.now() == before {
                return;
            }
        }
    }
}

/// A subscriber (QoS 1, persistent session named `id`) on `filters`, stamping every message.
pub async fn subscriber(port: u16, id: &str, filters: &[&str]) -> Arrivals {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let arrivals = Arrivals::default();
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_max_packet_size(1 << 20, 1 << 20);
    o.set_clean_session(false); // the broker keeps what arrives for it while it reconnects
    let (client, mut eventloop) = AsyncClient::new(o, 100);
    for f in filters {
        client.subscribe(*f, QoS::AtLeastOnce).await.unwrap();
    }
    let a = arrivals.clone();
    tokio::spawn(async move {
        let _c = client;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(_))) => {
                    a.times.lock().unwrap().push(Instant::now());
                    a.count.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    arrivals
}

/// Writes a line every 100 ms until one reading arrives (the gateway has the port and the
/// broker), then waits for the stragglers and forgets them.
pub async fn warm_up(peer: &mut PtyPeer, arrivals: &Arrivals, limit: Duration) -> bool {
    let base = arrivals.now();
    let t0 = Instant::now();
    while arrivals.now() == base {
        if t0.elapsed() > limit {
            return false;
        }
        peer.send(line(0).as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    arrivals.settle(Duration::from_millis(300)).await;
    arrivals.clear();
    true
}

/// What a gateway did with `n` lines written as fast as the terminal took them.
pub struct Throughput {
    pub n: u64,
    /// How many arrived before the limit.
    pub arrived: u64,
    pub secs: f64,
    pub cpu_us_per_reading: f64,
    /// Percent of the machine's time the hypervisor took meanwhile (a slow phase of a VM).
    pub steal_pct: f64,
}

impl Throughput {
    pub fn per_sec(&self) -> f64 {
        self.arrived as f64 / self.secs
    }
}

pub async fn throughput(peer: &mut PtyPeer, pid: u32, arrivals: &Arrivals, n: u64, limit: Duration) -> Throughput {
    let lines: Vec<u8> = (0..n).flat_map(|i| line(i).into_bytes()).collect();
    let base = arrivals.now();
    let (u0, s0) = cpu_split(pid);
    let m0 = MachineTimes::now();
    let t0 = Instant::now();
    for chunk in lines.chunks(16 * 1024) {
        peer.send(chunk).await.unwrap();
    }
    arrivals.until(base + n, limit).await;
    let secs = t0.elapsed().as_secs_f64();
    let (u1, s1) = cpu_split(pid);
    let (steal_pct, _) = MachineTimes::now().since(&m0);
    let arrived = arrivals.now() - base;
    let cpu_us_per_reading = ((u1 - u0) + (s1 - s0)) * 1e6 / arrived.max(1) as f64;
    Throughput { n, arrived, secs, cpu_us_per_reading, steal_pct }
}

/// What a gateway spent on lines written at a steady rate, and how long each took to arrive.
pub struct Paced {
    pub n: u64,
    pub arrived: u64,
    pub user_us: f64,
    pub kernel_us: f64,
    pub core_pct: f64,
    /// Percent of the machine's time the hypervisor took meanwhile (a slow phase of a VM).
    pub steal_pct: f64,
    /// Line written -> message received, milliseconds, sorted.
    pub latency_ms: Vec<f64>,
}

impl Paced {
    pub fn cpu_us(&self) -> f64 {
        self.user_us + self.kernel_us
    }

    pub fn p(&self, q: f64) -> f64 {
        percentile(&self.latency_ms, q)
    }
}

/// `rate` lines a second for `secs` seconds; waits up to `limit` for them all to arrive.
pub async fn paced(peer: &mut PtyPeer, pid: u32, arrivals: &Arrivals, rate: u64, secs: u64, limit: Duration) -> Paced {
    arrivals.clear();
    let n = rate * secs;
    let base = arrivals.now();
    let mut sent = Vec::with_capacity(n as usize);
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let (u0, s0) = cpu_split(pid);
    let m0 = MachineTimes::now();
    let t0 = Instant::now();
    for i in 0..n {
        tick.tick().await;
        sent.push(Instant::now());
        peer.send(line(i).as_bytes()).await.unwrap();
    }
    arrivals.until(base + n, limit).await;
    let wall = t0.elapsed().as_secs_f64();
    let (u1, s1) = cpu_split(pid);
    let (steal_pct, _) = MachineTimes::now().since(&m0);
    let arrived = arrivals.now() - base;
    let got = arrivals.times.lock().unwrap().clone();
    let mut latency_ms: Vec<f64> =
        sent.iter().zip(&got).map(|(s, r)| r.duration_since(*s).as_secs_f64() * 1e3).collect();
    latency_ms.sort_by(f64::total_cmp);
    let per = |d: f64| d * 1e6 / arrived.max(1) as f64;
    Paced {
        n,
        arrived,
        user_us: per(u1 - u0),
        kernel_us: per(s1 - s0),
        core_pct: ((u1 - u0) + (s1 - s0)) * 100.0 / wall,
        steal_pct,
        latency_ms,
    }
}

/// Resident memory now and at its peak (KiB).
pub fn rss_kib(pid: u32) -> (u64, u64) {
    (status_kib(pid, "VmRSS:"), status_kib(pid, "VmHWM:"))
}
