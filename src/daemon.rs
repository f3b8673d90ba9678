//! `spokegate run`: wires the pipeline for a configuration and runs it until shutdown.
//!
//! ```text
//! devices (one task each) ─┐
//! command executor ────────┴-> [bounded channel] -> sealer (seq, consult, body, COSE, commit) -> MQTT link
//!   ^ hub commands <- MQTT link          ^ operator requests <- control socket
//! ```

use crate::command::{self, Context, DeviceHandle, Executor};
use crate::config::Config;
use crate::config::DeviceTransport;
use crate::device::{DeviceCounters, DeviceTask, ImageDevice};
use crate::mqtt::{run_link, topics, LinkCounters, LinkInputs, Publication, QueueHealth};
use crate::pipeline::{ConsultNow, Sealer, Signer};
use crate::queue::Queue;
use crate::shutdown::Shutdown;
use crate::sign::SigningKey;
use crate::snapshot::{self, Snapshot};
use crate::systemd;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::{mpsc, Notify};

/// Capacity of the channels between stages.
const STAGE_CAPACITY: usize = 1024;

/// Live counters of a running daemon.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub link: Arc<LinkCounters>,
    pub devices: BTreeMap<String, Arc<DeviceCounters>>,
    /// The open queue, once the daemon has started.
    pub queue: Option<Arc<std::sync::Mutex<Queue>>>,
    /// Signing and commit times.
    pub pipeline: Arc<crate::pipeline::PipelineTimes>,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("queue: {0}")]
    Queue(#[from] crate::queue::QueueError),
    #[error("MQTT: {0}")]
    Mqtt(std::io::Error),
    #[error("control socket {path}: {source}")]
    Socket { path: std::path::PathBuf, source: std::io::Error },
}

/// Runs the daemon until `shutdown`, then drains. `counters` is filled in as it starts.
pub async fn run(config: Config, key: SigningKey, outer: Shutdown, counters: &mut Counters) -> Result<(), DaemonError> {
    // Every task stops on the operator's signal, or when the daemon stops itself (uplink died).
    let (stop_all, shutdown) = crate::shutdown::channel();
    {
        let (mut outer, stop) = (outer.clone(), stop_all.clone());
        tokio::spawn(async move {
            outer.triggered().await;
            stop.trigger();
        });
    }
    let g = &config.gateway;
    if config.mqtt.password.is_some() && !config.mqtt.url.tls {
        tracing::warn!(broker = %config.mqtt.url, "the MQTT password travels in clear text (allow_plaintext_password = true)");
    }
    let mut opened = Queue::open(&g.state_dir, config.queue.clone())?;
    let st = opened.stats()?;
    if st.depth > 0 {
        tracing::info!(
            undelivered = st.depth,
            bytes = st.bytes,
            "queue opened with undelivered messages; sending them first"
        );
    }
    // The consult binding resumes where it was, and its signed body is re-published as it was.
    let stored_consult = opened.consult()?;
    let consult = stored_consult.as_ref().map(ConsultNow::from_stored).unwrap_or_default();
    if let Some(c) = &consult.consult {
        tracing::info!(consult = %c, "readings stay bound to the open consult");
    }
    let queue = Arc::new(std::sync::Mutex::new(opened));
    counters.queue = Some(queue.clone());
    for d in &config.devices {
        counters.devices.entry(d.id.clone()).or_default();
    }
    let key = Arc::new(key);
    let kid = key.public().kid_hex();
    let (snapshot_tx, snapshot_rx) =
        snapshot::channel(Snapshot { consult: consult.consult.clone(), ..Snapshot::default() });
    let committed = Arc::new(Notify::new());
    let rebirth = Arc::new(Notify::new());
    let health = Arc::new(QueueHealth::default());
    let (out_tx, out_rx) = mpsc::channel(STAGE_CAPACITY);
    let (state_tx, state_rx) = mpsc::channel(STAGE_CAPACITY);
    let (live_tx, live_rx) = mpsc::channel(STAGE_CAPACITY);
    let (fresh_tx, fresh_rx) = mpsc::channel(8);
    let (hub_cmd_tx, hub_cmd_rx) = mpsc::channel(64);
    let (local_tx, local_rx) = mpsc::channel(16);

    let retained = stored_consult
        .map(|c| Publication { topic: topics::consult(&g.site, &g.id), payload: c.envelope, retain: true })
        .into_iter()
        .collect();
    // Signs of life for the watchdog.
    let (pipeline_beat, link_beat) = (Arc::new(systemd::Heartbeat::default()), Arc::new(systemd::Heartbeat::default()));
    let link = tokio::spawn(run_link(
        config.mqtt.clone(),
        LinkInputs {
            site: g.site.clone(),
            gw: g.id.clone(),
            kid: kid.clone(),
            retiring: crate::sign::rotation::retiring_kids(&g.key_file, crate::clock::now_micros()),
            heartbeat: link_beat.clone(),
            queue: queue.clone(),
            fresh: fresh_rx,
            committed: committed.clone(),
            states: state_rx,
            retained,
            live: live_rx,
            commands: hub_cmd_tx,
            rebirth: rebirth.clone(),
            hub: config.hub.clone(),
            counters: counters.link.clone(),
            health: health.clone(),
            snapshot: snapshot_tx.clone(),
        },
    ));
    let signer = Arc::new(Signer::new(&g.site, &g.id, key, g.body_format, consult));
    // What each device remembers (the last stored record delivered), read before the queue moves on.
    let memories: Vec<Option<String>> = {
        let q = crate::queue::lock(&queue);
        config.devices.iter().map(|d| q.device_memory(&d.id).ok().flatten()).collect()
    };
    let waves = crate::snapshot::wave_tap();
    let sealer = Sealer {
        signer: signer.clone(),
        queue: queue.clone(),
        committed,
        health,
        snapshot: snapshot_tx.clone(),
        sync_within: config.queue.sync_within,
        group_within: config.queue.group_within,
        heartbeat: pipeline_beat.clone(),
        times: counters.pipeline.clone(),
        waves: waves.clone(),
    };
    let sealer = tokio::spawn(sealer.run(out_rx, fresh_tx, state_tx, live_tx));

    let mut devices = Vec::new();
    let mut handles = BTreeMap::new();
    for (d, memory) in config.devices.iter().zip(memories) {
        let c = counters.devices.entry(d.id.clone()).or_default().clone();
        let (control_tx, control_rx) = mpsc::channel(4);
        handles.insert(d.id.clone(), DeviceHandle { profile: d.profile.clone(), control: control_tx });
        if matches!(d.transport, DeviceTransport::Folder { .. } | DeviceTransport::Camera { .. }) {
            let media = config.media.clone();
            let task = ImageDevice::new(d.clone(), out_tx.clone(), shutdown.clone(), c, control_rx, media, memory);
            devices.push(tokio::spawn(task.run()));
            continue;
        }
        let task = DeviceTask::new(d.clone(), out_tx.clone(), shutdown.clone(), c)
            .remembering(memory)
            .controlled_by(control_rx);
        devices.push(tokio::spawn(task.run()));
    }
    let page_snapshot = snapshot_rx.clone();
    let ctx = Context {
        pipeline: out_tx,
        signer,
        devices: handles,
        snapshot: snapshot_rx,
        counters: counters.clone(),
        rebirth,
        delivery: config.hub.delivery,
    };
    let executor = Executor { ctx, keys: config.hub.keys.clone(), queue: queue.clone() };
    let executor = tokio::spawn(command::run_executor(executor, hub_cmd_rx, local_rx, shutdown.clone()));
    let socket_path = command::socket::path(&g.state_dir);
    let listener = command::socket::bind(&g.state_dir)
        .map_err(|source| DaemonError::Socket { path: socket_path.clone(), source })?;
    let page = if config.ui.enabled {
        start_page(&config, page_snapshot, waves, counters.clone(), local_tx.clone(), shutdown.clone()).await
    } else {
        None
    };
    let socket = tokio::spawn(command::socket::serve(listener, g.state_dir.clone(), local_tx, shutdown.clone()));

    tracing::info!(
        site = %g.site, gw = %g.id, kid = %kid, devices = config.devices.len(), broker = %config.mqtt.url,
        delivery = config.hub.delivery.as_str(), hub_keys = config.hub.keys.len(), socket = %socket_path.display(),
        "spokegate running"
    );
    systemd::ready();
    let watchdog = systemd::spawn_watchdog(vec![pipeline_beat, link_beat], "the pipeline or the uplink stopped moving");

    // Until stopped, or until the uplink dies (a CA file that vanished, ...): then the daemon
    // stops too and exits non-zero, so systemd restarts it and the watchdog does not vouch for a
    // gateway that can deliver nothing.
    let mut wait = shutdown.clone();
    let mut link = link;
    let early = tokio::select! {
        biased;
        _ = wait.triggered() => None,
        ended = &mut link => Some(ended),
    };
    // The uplink ends by itself when everything else has drained after a stop: that is no failure.
    let early_failed = early.is_some() && !outer.is_triggered();
    if let (Some(ended), true) = (&early, early_failed) {
        let why = match ended {
            Ok(Ok(())) => "the uplink ended".to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::error!(error = %why, "the MQTT uplink failed; the daemon stops so it can be restarted");
        snapshot_tx.send_modify(|s| s.uplink.error = Some(why));
        if let Some(w) = &watchdog {
            w.abort();
        }
        stop_all.trigger();
    }
    systemd::stopping();
    for d in devices {
        let _ = d.await;
    }
    let _ = executor.await;
    let _ = socket.await;
    if let Some(p) = page {
        let _ = p.await;
    }
    let _ = sealer.await;
    let ended = match early {
        Some(ended) => ended,
        None => link.await,
    };
    let result = match ended {
        Ok(Ok(())) if early_failed => Err(DaemonError::Mqtt(std::io::Error::other("the uplink ended"))),
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(DaemonError::Mqtt(e)),
        Err(e) => Err(DaemonError::Mqtt(std::io::Error::other(e.to_string()))),
    };
    if let Some(w) = watchdog {
        w.abort();
    }
    result
}

/// Serves the operator's page and the metrics (`[ui]`). A page that cannot listen (the address is
/// taken) is logged and left out: the gateway's work goes on without it.
async fn start_page(
    config: &Config,
    snapshot: tokio::sync::watch::Receiver<crate::snapshot::Snapshot>,
    waves: crate::snapshot::WaveTap,
    counters: Counters,
    requests: mpsc::Sender<command::LocalRequest>,
    shutdown: Shutdown,
) -> Option<tokio::task::JoinHandle<()>> {
    let catalog = match crate::ui::i18n::Catalog::load() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "operator page left out: its messages do not load");
            return None;
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.ui.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(address = %config.ui.listen, error = %e, "operator page not served");
            return None;
        }
    };
    let profiles = config.devices.iter().map(|d| (d.id.clone(), d.profile.id.clone())).collect();
    let registry = crate::ui::metrics::registry(crate::ui::metrics::GatewayCollector {
        counters: counters.clone(),
        profiles,
        snapshot: snapshot.clone(),
    });
    let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(address = %format!("http://{address}/"), "operator page");
    let state = std::sync::Arc::new(crate::ui::UiState {
        site: config.gateway.site.clone(),
        gw: config.gateway.id.clone(),
        snapshot,
        waves,
        counters,
        requests,
        devices: config.devices.iter().map(crate::ui::DeviceInfo::of).collect(),
        tokens: Default::default(),
        catalog,
        password: config.ui.password_hash.as_deref().and_then(crate::ui::auth::PasswordHash::parse),
        language: config.ui.language.clone(),
        registry,
        state_dir: config.gateway.state_dir.clone(),
        certificate_expires: config.mqtt.client_cert.as_ref().and_then(|(cert, _)| {
            crate::mqtt::tls::not_after(cert).map_err(|e| tracing::warn!(error = %e, "certificate expiry unknown")).ok()
        }),
        shutdown: shutdown.clone(),
    });
    Some(tokio::spawn(crate::ui::serve(listener, state, shutdown)))
}
