//! `cargo bench -p spokegate-hub --bench ingest`: the hub service under the load of 1,000
//! simulated gateways (each its own key, bound in the database; real signed bodies built with the
//! spokegate library), on this machine's PostgreSQL.
//!
//! 1. Throughput with 1, 2 and 3 instances: a backlog of signed messages waits in a 3-replica
//!    JetStream stream on a 3-node NATS cluster (published with JetStream publish, as the cluster's
//!    MQTT listener stores a QoS 1 publish); the instances start and drain it into PostgreSQL.
//! 2. The same through mosquitto and an MQTT v5 shared subscription (published over MQTT while
//!    the instances run).
//! 3. Signed -> stored latency at a steady 2,000 messages/s through NATS with two instances.
//!
//! Everything runs on one machine: the generator, NATS (3 nodes), PostgreSQL and the instances
//! share its cores, so the scaling ratio is a floor.

#[allow(dead_code)]
#[path = "../tests/it/support.rs"]
mod support;

use spokegate::model::{BodyFormat, Code, Observation, Unit};
use spokegate::pipeline::{make_body, Payload, Source};
use spokegate::sign::{seal, Binding, BoundKey, SigningKey};
use spokegate::sim::proc_stats::{cpu_seconds, percentile, status_kib};
use std::time::{Duration, Instant};
use support::*;

const GATEWAYS: usize = 1000;

struct Fleet {
    _dir: tempfile::TempDir,
    keys: Vec<SigningKey>,
    jwks: Vec<std::path::PathBuf>,
    next_seq: Vec<u64>,
}

impl Fleet {
    fn new() -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let mut keys = Vec::new();
        let mut jwks = Vec::new();
        for i in 0..GATEWAYS {
            let k = SigningKey::generate(&dir.path().join(format!("g{i}.key"))).unwrap();
            let bound = BoundKey { key: k.public().clone(), binding: Binding::Gateway { site: site(i), gw: gw(i) } };
            let p = dir.path().join(format!("g{i}.jwk"));
            std::fs::write(&p, bound.to_jwk()).unwrap();
            keys.push(k);
            jwks.push(p);
        }
        Fleet { _dir: dir, keys, jwks, next_seq: vec![1; GATEWAYS] }
    }

    fn trust_all(&self, hub: &HubSetup) {
        let cfg = hub.config("keys", free_port());
        let mut args = vec!["keys".to_string(), "--config".into(), cfg.display().to_string(), "add".into()];
        args.extend(self.jwks.iter().map(|p| p.display().to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        hub_cli(&args).unwrap();
    }

    /// The next signed reading of gateway `i`: (topic, envelope).
    fn message(&mut self, i: usize) -> (String, Vec<u8>) {
        let seq = self.next_seq[i];
        self.next_seq[i] += 1;
        let from = Source { dev: "vitals-1".into(), profile: "vitals-kv".into() };
        let obs = vec![Observation::measured(
            Code { mdc: 150021, loinc: Some("8480-6".into()), name: None },
            100.0 + (seq % 60) as f64,
            Unit { ucum: "mm[Hg]".into(), mdc: Some(3872) },
        )];
        let b = make_body(&site(i), &gw(i), Some(&from), Payload::Obs(obs), seq, spokegate::clock::now_micros(), None);
        let topic = spokegate::mqtt::topics::for_body(&b);
        let bytes = spokegate::model::encode(&b, BodyFormat::Cbor).unwrap();
        (topic, seal(&self.keys[i], &bytes, BodyFormat::Cbor))
    }
}

fn site(i: usize) -> String {
    format!("district-{:02}", i / 100)
}
fn gw(i: usize) -> String {
    format!("gw-{i:04}")
}

struct Run {
    rate: f64,
    cpu_per_msg_us: f64,
    rss_mib: f64,
    commit_p50_ms: f64,
    commit_p99_ms: f64,
}

/// Commit latency percentiles from the instances' own histogram (bucket upper bounds).
async fn commit_percentiles(instances: &[HubInstance]) -> (f64, f64) {
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for i in instances {
        let Some((_, text)) = i.get("/metrics").await else { continue };
        for l in text.lines().filter(|l| l.starts_with("spokegate_hub_commit_seconds_bucket")) {
            let le = l.split("le=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("+Inf");
            let le: f64 = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::INFINITY) };
            let n: f64 = l.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
            match buckets.iter_mut().find(|b| b.0 == le) {
                Some(b) => b.1 += n,
                None => buckets.push((le, n)),
            }
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().map_or(0.0, |b| b.1);
    let q = |p: f64| buckets.iter().find(|b| b.1 >= p * total).map_or(f64::NAN, |b| b.0 * 1000.0);
    (q(0.5), q(0.99))
}

/// Waits until `total` messages are stored.
async fn until_stored(db: &TestDb, total: i64) {
    let started = Instant::now();
    let mut last = 0;
    while last < total {
        tokio::time::sleep(Duration::from_millis(200)).await;
        last = db.count("SELECT count(*) FROM messages").await;
        assert!(started.elapsed() < Duration::from_secs(600), "stored {last} of {total} in 10 minutes");
    }
}

/// Rate from the first row written to the last (the instances' start-up is not ingest), and what
/// the instances spent.
async fn measure(db: &TestDb, running: &[HubInstance], total: i64) -> Run {
    let c = db.client().await;
    let span: f64 = c
        .query_one("SELECT extract(epoch from max(received_at) - min(received_at))::float8 FROM messages", &[])
        .await
        .unwrap()
        .get(0);
    let cpu: f64 = running.iter().map(|i| cpu_seconds(i.proc.0.id())).sum();
    let rss = running.iter().map(|i| status_kib(i.proc.0.id(), "VmHWM:")).max().unwrap_or(0) as f64 / 1024.0;
    let (p50, p99) = commit_percentiles(running).await;
    Run {
        rate: total as f64 / span,
        cpu_per_msg_us: cpu * 1e6 / total as f64,
        rss_mib: rss,
        commit_p50_ms: p50,
        commit_p99_ms: p99,
    }
}

async fn drain(db: &TestDb, hub: &HubSetup, instances: usize, total: i64) -> Run {
    let running: Vec<HubInstance> = (0..instances).map(|k| hub.serve(&format!("i{k}"))).collect();
    until_stored(db, total).await;
    measure(db, &running, total).await
}

fn nats_input(nats: &NatsCluster, run: usize) -> String {
    format!(
        "[input.nats]\nservers = {}\nstream = \"SPOKEGATE\"\nconsumer = \"bench-{run}\"\nreplicas = 3\n",
        nats.servers_toml()
    )
}

fn report(what: &str, r: &Run) {
    println!(
        "{what}: {:.0} messages/s stored, {:.0} us CPU/message (hub instances), commit p50 <= {:.1} ms p99 <= {:.1} ms, RSS {:.1} MiB per instance",
        r.rate, r.cpu_per_msg_us, r.commit_p50_ms, r.commit_p99_ms, r.rss_mib
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let per_run: usize = std::env::var("SPOKEGATE_BENCH_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(30_000);
    let mut fleet = Fleet::new();
    println!("{GATEWAYS} gateways, {per_run} signed readings per run");

    let only = std::env::var("SPOKEGATE_BENCH_ONLY").unwrap_or_default();
    if only != "mqtt" {
        nats_runs(&mut fleet, per_run).await;
    }
    if only != "nats" {
        mqtt_runs(&mut fleet, per_run).await;
    }
}

/// Throughput with 1, 2, 3 instances from a JetStream backlog, and the steady 2,000/s latency.
async fn nats_runs(fleet: &mut Fleet, per_run: usize) {
    let nats = NatsCluster::start();
    nats.ready().await;
    let client = async_nats::connect(format!("127.0.0.1:{}", nats.client[0])).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut rates = Vec::new();
    for (run, instances) in [1usize, 2, 3].into_iter().enumerate() {
        // A fresh stream per run (a work-queue stream takes one consumer).
        let _ = js.delete_stream("SPOKEGATE").await;
        let db = TestDb::create();
        let hub = HubSetup::new(&db, &nats_input(&nats, run));
        fleet.trust_all(&hub);
        // The stream is created by the first instance; make it (and its consumer) now, empty.
        let first = hub.serve("setup");
        first.ready().await;
        drop(first);
        let mut acks = Vec::new();
        for n in 0..per_run {
            let (topic, payload) = fleet.message(n % GATEWAYS);
            acks.push(js.publish(topic.replace('/', "."), payload.into()).await.unwrap());
            if acks.len() >= 1000 {
                for a in acks.drain(..) {
                    a.await.unwrap();
                }
            }
        }
        for a in acks.drain(..) {
            a.await.unwrap();
        }
        let r = drain(&db, &hub, instances, per_run as i64).await;
        report(&format!("NATS JetStream (3 nodes, R3), {instances} instance(s)"), &r);
        rates.push(r.rate);
    }
    println!("scaling: 2 instances {:.2}x, 3 instances {:.2}x of one", rates[1] / rates[0], rates[2] / rates[0]);

    // Steady 2,000 messages/s through NATS with two instances: signed -> row written.
    {
        let _ = js.delete_stream("SPOKEGATE").await;
        let db = TestDb::create();
        let hub = HubSetup::new(&db, &nats_input(&nats, 9));
        fleet.trust_all(&hub);
        let running: Vec<HubInstance> = (0..2).map(|k| hub.serve(&format!("s{k}"))).collect();
        for r in &running {
            r.ready().await;
        }
        let cpu0: f64 = running.iter().map(|i| cpu_seconds(i.proc.0.id())).sum();
        let (rate, secs) = (2000usize, 20usize);
        let start = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut sent = 0usize;
        let mut pending = Vec::new();
        while sent < rate * secs {
            tick.tick().await;
            let due = ((start.elapsed().as_secs_f64() * rate as f64) as usize).min(rate * secs);
            while sent < due {
                let (topic, payload) = fleet.message(sent % GATEWAYS);
                pending.push(js.publish(topic.replace('/', "."), payload.into()).await.unwrap());
                sent += 1;
            }
            if pending.len() > 500 {
                for a in pending.drain(..) {
                    a.await.unwrap();
                }
            }
        }
        for a in pending.drain(..) {
            a.await.unwrap();
        }
        while db.count("SELECT count(*) FROM messages").await < (rate * secs) as i64 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(start.elapsed() < Duration::from_secs(300), "the steady run did not finish");
        }
        let c = db.client().await;
        let mut lat: Vec<f64> = c
            .query("SELECT (extract(epoch from received_at) * 1e6 - t_us)::float8 / 1000.0 FROM messages", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        lat.sort_by(f64::total_cmp);
        let cpu: f64 = running.iter().map(|i| cpu_seconds(i.proc.0.id())).sum::<f64>() - cpu0;
        let (p50, p99) = commit_percentiles(&running).await;
        println!(
            "steady {rate}/s for {secs} s, NATS, 2 instances: signed -> stored p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; commit p50 <= {p50:.1} ms p99 <= {p99:.1} ms; {:.0} us CPU/message",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            lat.last().copied().unwrap_or(f64::NAN),
            cpu * 1e6 / (rate * secs) as f64
        );
    }
}

/// mosquitto and an MQTT v5 shared subscription: published over MQTT while the instances run.
async fn mqtt_runs(fleet: &mut Fleet, per_run: usize) {
    for instances in [1usize, 2] {
        let db = TestDb::create();
        let broker = spokegate::sim::mosquitto::Mosquitto::with_settings("persistence false\nmax_queued_messages 0\n");
        let hub = HubSetup::new(
            &db,
            &format!("[input.mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nclient_id = \"bench-{{instance}}\"\n", broker.port),
        );
        fleet.trust_all(&hub);
        let running: Vec<HubInstance> = (0..instances).map(|k| hub.serve(&format!("m{k}"))).collect();
        for r in &running {
            r.ready().await;
        }
        let messages: Vec<(String, Vec<u8>)> = (0..per_run).map(|n| fleet.message(n % GATEWAYS)).collect();
        let mut o = rumqttc::MqttOptions::new("bench-gen", "127.0.0.1", broker.port);
        o.set_inflight(200);
        o.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut ev) = rumqttc::AsyncClient::new(o, 1000);
        tokio::spawn(async move { while ev.poll().await.is_ok() {} });
        for (t, p) in messages {
            client.publish(t, rumqttc::QoS::AtLeastOnce, false, p).await.unwrap();
        }
        until_stored(&db, per_run as i64).await;
        let r = measure(&db, &running, per_run as i64).await;
        report(&format!("mosquitto shared subscription, {instances} instance(s)"), &r);
    }
}
