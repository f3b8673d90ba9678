//! `spokegate run`: wires the pipeline for a configuration and runs it until shutdown.
//!
//! devices (one task each) -> [bounded channel] -> sealer (seq, body, COSE) -> [bounded channel] -> MQTT link

use crate::config::Config;
use crate::device::{DeviceCounters, DeviceTask};
use crate::mqtt::{run_link, topics, LinkCounters, LinkInputs, QueueHealth};
use crate::pipeline::{Sealer, Signer};
use crate::queue::Queue;
use crate::shutdown::Shutdown;
use crate::sign::GatewayKey;
use crate::systemd;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Capacity of the channels between stages.
const STAGE_CAPACITY: usize = 1024;

/// Live counters of a running daemon.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub link: Arc<LinkCounters>,
    pub devices: BTreeMap<String, Arc<DeviceCounters>>,
    /// The open queue, once the daemon has started.
    pub queue: Option<Arc<std::sync::Mutex<Queue>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("queue: {0}")]
    Queue(#[from] crate::queue::QueueError),
    #[error("MQTT: {0}")]
    Mqtt(std::io::Error),
}

/// Runs the daemon until `shutdown`, then drains. `counters` is filled in as it starts.
pub async fn run(
    config: Config,
    key: GatewayKey,
    shutdown: Shutdown,
    counters: &mut Counters,
) -> Result<(), DaemonError> {
    let g = &config.gateway;
    let mut opened = Queue::open(&g.state_dir, config.queue.clone())?;
    let st = opened.stats()?;
    if st.depth > 0 {
        tracing::info!(
            undelivered = st.depth,
            bytes = st.bytes,
            "queue opened with undelivered messages; sending them first"
        );
    }
    let queue = Arc::new(std::sync::Mutex::new(opened));
    counters.queue = Some(queue.clone());
    let key = Arc::new(key);
    let kid = key.public().kid_hex();
    let committed = Arc::new(tokio::sync::Notify::new());
    let health = Arc::new(QueueHealth::default());
    let (out_tx, out_rx) = mpsc::channel(STAGE_CAPACITY);
    let (state_tx, state_rx) = mpsc::channel(STAGE_CAPACITY);
    let (live_tx, live_rx) = mpsc::channel(STAGE_CAPACITY);
    let (fresh_tx, fresh_rx) = mpsc::channel(8);

    let link = tokio::spawn(run_link(
        config.mqtt.clone(),
        topics::status(&g.site, &g.id),
        kid.clone(),
        LinkInputs {
            queue: queue.clone(),
            fresh: fresh_rx,
            committed: committed.clone(),
            states: state_rx,
            live: live_rx,
            counters: counters.link.clone(),
            health: health.clone(),
        },
    ));
    let signer = Arc::new(Signer { site: g.site.clone(), gw: g.id.clone(), key, format: g.body_format });
    // What each device remembers (the last stored record delivered), read before the queue moves on.
    let memories: Vec<Option<String>> = {
        let q = crate::queue::lock(&queue);
        config.devices.iter().map(|d| q.device_memory(&d.id).ok().flatten()).collect()
    };
    let sealer = Sealer { signer, queue, committed, health };
    let sealer = tokio::spawn(sealer.run(out_rx, fresh_tx, state_tx, live_tx));

    let mut devices = Vec::new();
    for (d, memory) in config.devices.iter().zip(memories) {
        let c = counters.devices.entry(d.id.clone()).or_default().clone();
        let task = DeviceTask::new(d.clone(), out_tx.clone(), shutdown.clone(), c).remembering(memory);
        devices.push(tokio::spawn(task.run()));
    }
    drop(out_tx);
    tracing::info!(site = %g.site, gw = %g.id, kid = %kid, devices = config.devices.len(), broker = %config.mqtt.url, "spokegate running");
    systemd::ready();
    let watchdog = systemd::watchdog_interval().map(|every| {
        tokio::spawn(async move {
            loop {
                systemd::watchdog_ping();
                tokio::time::sleep(every / 2).await;
            }
        })
    });

    let mut wait = shutdown.clone();
    wait.triggered().await;
    systemd::stopping();
    for d in devices {
        let _ = d.await;
    }
    let _ = sealer.await;
    let result = match link.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(DaemonError::Mqtt(e)),
        Err(e) => Err(DaemonError::Mqtt(std::io::Error::other(e.to_string()))),
    };
    if let Some(w) = watchdog {
        w.abort();
    }
    result
}
