//! `run`, `check-config`, `status`, `ble scan`, `demo`.

use super::{config_error, keys::key_error, load_config};
use crate::config::Config;
use crate::daemon::{self, Counters};
use crate::demo::{self, DemoOptions};
use crate::exit;
use crate::hub::WatchFormat;
use crate::mqtt::status::QueueStatus;
use crate::queue::{Queue, QueueError};
use crate::shutdown;
use crate::sign::{KeyError, SigningKey};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn check_config(path: &Path) -> i32 {
    match Config::load(path) {
        Ok(c) => {
            println!(
                "{}: valid ({} devices, {} hub keys, {} delivery)",
                path.display(),
                c.devices.len(),
                c.hub.keys.len(),
                c.hub.delivery.as_str()
            );
            exit::OK
        }
        Err(d) => config_error(&d),
    }
}

/// The queue's figures: asked of the running daemon (it holds the store while it runs), else
/// read from the state directory.
pub async fn status(path: &Path) -> i32 {
    let c = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let state_dir = &c.gateway.state_dir;
    if let Ok(reply) = crate::command::socket::request(state_dir, "status", Default::default(), |_| {}).await {
        if let Some(data) = reply.data {
            let out = serde_json::json!({
                "state_dir": state_dir,
                "running": true,
                "queue": data["queue"],
                "uplink": data["uplink"],
                "consult": data["consult"],
            });
            println!("{out}");
            if let Ok(q) = serde_json::from_value::<QueueStatus>(data["queue"].clone()) {
                explain(&q);
            }
            return exit::OK;
        }
    }
    match Queue::inspect(state_dir) {
        Ok(st) => {
            let q = QueueStatus::from_stats(&st, crate::clock::now_micros(), None, c.hub.delivery, None);
            let out = serde_json::json!({
                "state_dir": state_dir,
                "running": false,
                "queue": q,
                "next_seq": st.next_seq,
            });
            println!("{out}");
            explain(&q);
            exit::OK
        }
        Err(e) => {
            eprintln!("spokegate status: {e}");
            match e {
                QueueError::Corrupt { .. } => exit::DATAERR,
                QueueError::InUse { .. } => exit::TEMPFAIL,
                _ => exit::NOINPUT,
            }
        }
    }
}

/// One line for a person: how far delivery has come.
fn explain(q: &QueueStatus) {
    match (&q.delivered_through, q.depth) {
        (Some(t), n) if n > 0 => eprintln!(
            "acknowledged by the {} up to {t}; oldest not acknowledged: {} s old, {n} waiting",
            q.delivery,
            q.oldest_age_s.unwrap_or(0.0)
        ),
        _ => eprintln!("everything committed is acknowledged by the {}", q.delivery),
    }
}

pub async fn run_daemon(config_path: &Path) -> i32 {
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let key = match SigningKey::load(&config.gateway.key_file) {
        Ok(k) => k,
        Err(e) => {
            let code = key_error(&e);
            if matches!(e, KeyError::Io { .. }) {
                eprintln!("create it with: spokegate keygen --config {}", config_path.display());
            }
            return code;
        }
    };
    let (trigger, shutdown) = shutdown::channel();
    tokio::spawn(async move {
        shutdown::signal().await;
        trigger.trigger();
    });
    let mut counters = Counters::default();
    match daemon::run(config, key, shutdown, &mut counters).await {
        Ok(()) => exit::OK,
        Err(daemon::DaemonError::Queue(e)) => {
            eprintln!("spokegate: {e}");
            match e {
                QueueError::Corrupt { .. } | QueueError::Format { .. } => exit::DATAERR,
                QueueError::InUse { .. } => exit::TEMPFAIL,
                _ => exit::IOERR,
            }
        }
        Err(e @ daemon::DaemonError::Socket { .. }) => {
            eprintln!("spokegate: {e}");
            exit::IOERR
        }
        Err(e) => {
            eprintln!("spokegate: {e}");
            exit::UNAVAILABLE
        }
    }
}

pub async fn ble_scan(seconds: u64) -> i32 {
    match crate::transport::ble::scan(Duration::from_secs(seconds)).await {
        Ok(seen) => {
            println!("{:<17}  {:>5}  {:<24}  services", "address", "rssi", "name");
            for d in &seen {
                let services: Vec<String> = d
                    .services
                    .iter()
                    .map(|u| {
                        crate::decode::gatt::short_uuid(u)
                            .map(|s| format!("0x{s:04X}"))
                            .unwrap_or_else(|| u.to_string())
                    })
                    .collect();
                let rssi = d.rssi.map(|r| r.to_string()).unwrap_or_else(|| "-".into());
                println!(
                    "{:<17}  {:>5}  {:<24}  {}",
                    d.address,
                    rssi,
                    d.name.as_deref().unwrap_or("-"),
                    services.join(" ")
                );
            }
            eprintln!("{} devices; put one in the configuration as ble = {{ address = \"...\" }}", seen.len());
            exit::OK
        }
        Err(e) => {
            eprintln!("spokegate ble scan: {e}");
            exit::UNAVAILABLE
        }
    }
}

pub async fn demo(duration: Option<u64>, json: bool, record: Option<PathBuf>) -> i32 {
    let opts = DemoOptions {
        duration: duration.map(Duration::from_secs),
        format: if json { WatchFormat::Json } else { WatchFormat::Human },
        record,
    };
    let mut stdout = std::io::stdout();
    match demo::run(opts, &mut stdout).await {
        Ok(_) => exit::OK,
        Err(e) => {
            eprintln!("spokegate demo: {e:#}");
            exit::SOFTWARE
        }
    }
}
