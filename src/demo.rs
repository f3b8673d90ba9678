//! `spokegate demo`: the whole job on one machine with no setup. An embedded broker, simulated
//! serial devices on pseudo-terminals replaying real recordings (an IHE PCD-01 monitor speaking HL7
//! over MLLP, a OneTouch Ultra 2 glucometer that answers the gateway's commands, a Contour
//! glucometer uploading ASTM E1394 records over ASTM E1381, an ECG replaying MIT-BIH record 100
//! as OpenBCI Cyton packets, a stethoscope replaying a PhysioNet heart sound as PCM frames), a
//! microscope camera (simulated, serving a real blood-smear image through the camera trait) and
//! the folder its vendor software saves into, the real daemon reading them, and a hub view
//! verifying every signature, printing the readings, reassembling the waveforms and images and
//! (with `--record`) keeping them: WFDB, WAV, and the images with their sidecars.

use crate::config::Config;
use crate::daemon::{self, Counters};
use crate::framing::mllp_wrap;
use crate::hub::{watch, KeyRing, WatchFormat, WatchOptions, WatchStats};
use crate::shutdown::{self, Shutdown};
use crate::sign::{Binding, BoundKey, SigningKey};
use crate::sim::ble_mock::{ecg_frames, MockBluez, PrivateBus};
use crate::sim::waves::{self, WireProtocol};
use crate::sim::{broker, recordings, PtyDevice, PtyPeer};
use anyhow::Context;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How long a demo with a `--duration` waits past it for the answer to the hub's first capture
/// (each capture's ask times out after 5 s and an unanswered one is asked again after
/// `CAPTURE_RETRY`, after up to five 2 s consult.start asks).
const FIRST_CAPTURE_WAIT: Duration = Duration::from_secs(30);

/// How often the demo's hub asks the microscope for a still once one has been answered.
const CAPTURE_EVERY: Duration = Duration::from_secs(10);

/// How soon an unanswered capture is asked again (the embedded broker has been seen, on a loaded
/// machine, not to pass on a command for the whole of its 5 s).
const CAPTURE_RETRY: Duration = Duration::from_secs(1);

/// At the end, the hub view prints what still arrives until it has been quiet this long...
const FLUSH_QUIET: Duration = Duration::from_millis(500);
/// ...or this long has passed.
const FLUSH_AT_MOST: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Stop by itself after this long (Ctrl-C otherwise).
    pub duration: Option<Duration>,
    pub format: WatchFormat,
    /// Record the waveform streams the hub receives (WFDB and WAV) here.
    pub record: Option<std::path::PathBuf>,
}

/// What the demo did, for its closing summary (and tests).
#[derive(Debug, Clone, Default)]
pub struct DemoReport {
    pub hub: WatchStats,
    pub readings: u64,
    pub rejected_frames: u64,
    pub published: u64,
    pub acked: u64,
    pub device_acks: u64,
}

pub async fn run(opts: DemoOptions, out: &mut (dyn std::io::Write + Send)) -> anyhow::Result<DemoReport> {
    let dir = tempfile::Builder::new().prefix("spokegate-demo-").tempdir().context("temporary state directory")?;
    // First, before any other thread reads the environment: the BLE devices' private bus.
    let ble = ble_devices(dir.path());
    let key = SigningKey::generate(&dir.path().join("gateway.key"))?;
    let mut keys = KeyRing::gateway(key.public(), "demo-site", "gw-demo");
    // The demo's hub: it opens a consult, and acknowledges what it shows (hub delivery).
    let hub_key = Arc::new(SigningKey::generate_hub(&dir.path().join("hub.key"), "demo-hub")?);
    let hub_bound = BoundKey { key: hub_key.public().clone(), binding: Binding::Hub { hub: "demo-hub".into() } };
    std::fs::write(dir.path().join("hub.jwk"), hub_bound.to_jwk())?;
    keys.insert(hub_bound).map_err(|e| anyhow::anyhow!(e))?;
    let port = broker::free_port()?;
    broker::start(port)?;

    let monitor = PtyDevice::create(&dir.path().join("ttyMONITOR")).context("pseudo-terminal for the monitor")?;
    let meter = PtyDevice::create(&dir.path().join("ttyMETER")).context("pseudo-terminal for the glucometer")?;
    let astm = PtyDevice::create(&dir.path().join("ttyASTM")).context("pseudo-terminal for the ASTM glucometer")?;
    let ecg = PtyDevice::create(&dir.path().join("ttyECG")).context("pseudo-terminal for the ECG")?;
    let steth = PtyDevice::create(&dir.path().join("ttySTETH")).context("pseudo-terminal for the stethoscope")?;
    recordings::write_wave_profiles(&dir.path().join("profiles"))?;
    let config_path = dir.path().join("spokegate.toml");
    let paths = [&monitor.path, &meter.path, &ecg.path, &steth.path];
    let mut text = demo_config(dir.path(), port, paths);
    text.push_str(&format!(
        "\n[[device]]\nid = \"glucose-2\"\nprofile = \"astm-glucometer\"\nserial = {{ path = \"{}\" }}\n",
        astm.path.display()
    ));
    if ble.is_ok() {
        text.push_str(BLE_DEVICES);
    }
    let page_port = broker::free_port()?;
    text.push_str(&format!("\n[ui]\nlisten = \"127.0.0.1:{page_port}\"\n"));
    let scope_folder = dir.path().join("microscope-out");
    std::fs::create_dir_all(&scope_folder)?;
    text.push_str(&format!(
        "\n[[device]]\nid = \"scope-1\"\nprofile = \"usb-microscope\"\ncamera = {{ path = \"sim:blood-smear\" }}\n\n[[device]]\nid = \"scope-2\"\nprofile = \"usb-microscope\"\nfolder = {{ path = \"{}\", pattern = \"*.jpg\" }}\n",
        scope_folder.display()
    ));
    std::fs::write(&config_path, text)?;
    let config = Config::load(&config_path).map_err(|d| anyhow::anyhow!("{d}"))?;

    writeln!(out, "spokegate demo: broker mqtt://127.0.0.1:{port}, gateway kid {}", key.public().kid_hex())?;
    writeln!(out, "  operator page: http://127.0.0.1:{page_port}/ (metrics: /metrics)")?;
    writeln!(out, "  monitor-1  IHE PCD-01 HL7 over MLLP on {}", monitor.path.display())?;
    writeln!(out, "  glucose-1  OneTouch Ultra 2 answering DM?, DM@, DMF, DMT and DMP on {}", meter.path.display())?;
    writeln!(
        out,
        "  glucose-2  Contour glucometer uploading ASTM E1394 records over E1381 on {}",
        astm.path.display()
    )?;
    writeln!(
        out,
        "  ecg-1      MIT-BIH record 100 (MLII, V5; 360 Hz) as OpenBCI Cyton packets on {}",
        ecg.path.display()
    )?;
    writeln!(out, "  steth-1    PhysioNet 2016 heart sound c0003 (2 kHz) as PCM frames on {}", steth.path.display())?;
    match &ble {
        Ok(_) => {
            writeln!(out, "  bp-1       BLE blood-pressure cuff (GATT 0x2A35) on a mock BlueZ, private D-Bus")?;
            writeln!(out, "  temp-1     BLE thermometer (GATT 0x2A1C) on the same bus")?;
            writeln!(out, "  ecg-2      BLE Polar H10 streaming MIT-BIH 100 as PMD ECG frames, 130 Hz")?;
        }
        Err(why) => writeln!(out, "  (BLE devices left out: {why})")?,
    }
    writeln!(
        out,
        "  scope-1    microscope camera (simulated, BCCD blood smear 640x480 JPEG); the hub asks for a capture"
    )?;
    writeln!(out, "  scope-2    the folder its vendor software saves into: {}", scope_folder.display())?;
    writeln!(out, "  hub        demo-hub: opens a consult with a signed consult.start, asks scope-1 for a capture every 10 s, acknowledges what it shows")?;
    writeln!(out, "hub view (every ✔ line passed COSE_Sign1 verification with the key bound to its sender; status and state are unsigned):")?;

    let (trigger, shutdown) = shutdown::channel();
    let (hub_trigger, hub_shutdown) = shutdown::channel();
    let sims = tokio::spawn(simulate(monitor.peer, shutdown.clone()));
    let meter_sim = tokio::spawn(crate::sim::onetouch::serve(onetouch_meter(), meter.peer));
    let astm_sim = tokio::spawn(upload_astm(astm.peer, shutdown.clone()));
    let ecg_sim = tokio::spawn(replay_forever(ecg.peer, waves::mitbih_100(), WireProtocol::Cyton, shutdown.clone()));
    let pcg_sim =
        tokio::spawn(replay_forever(steth.peer, waves::pcg_c0003(), WireProtocol::Pcm { rows: 20 }, shutdown.clone()));
    let mut counters = Counters::default();
    for d in &config.devices {
        counters.devices.insert(d.id.clone(), Default::default());
    }
    let daemon_counters = counters.clone();
    let daemon = tokio::spawn(async move {
        let mut c = daemon_counters;
        daemon::run(config, key, shutdown, &mut c).await
    });
    let mut hub_opts = WatchOptions {
        broker: crate::hub::BrokerLogin::plain(crate::config::MqttUrl { tls: false, host: "127.0.0.1".into(), port }),
        keys: keys.clone(),
        format: opts.format,
        filter: "spokegate/v1/#".into(),
        client_id: "spokegate-demo-hub".into(),
        // Images are joined on disk: in `--record DIR`, or in the demo's own folder.
        record: Some(opts.record.clone().unwrap_or_else(|| dir.path().join("hub"))),
        ack_key: Some(hub_key.clone()),
        out_file: None,
        observe: None,
    };
    let (observe, view_port) = consult_view(dir.path(), hub_key.clone(), port).await?;
    hub_opts.observe = Some(observe);
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let hub = tokio::spawn(async move {
        let mut sink = ChannelWriter(lines_tx);
        watch(hub_opts, hub_shutdown, &mut sink).await
    });

    // The hub doctor opens the consult: a signed command, answered by a signed reply.
    let consult_id = format!("DEMO-{}", crate::clock::now_rfc3339().get(..10).unwrap_or("consult"));
    writeln!(out, "  hub doctor's view: http://127.0.0.1:{view_port}/consult/{consult_id} (ECG, heart sound, readings, images; no sign-in on the demo)")?;
    let url = crate::hub::BrokerLogin::plain(crate::config::MqttUrl { tls: false, host: "127.0.0.1".into(), port });
    let ask_keys = keys.clone();
    let link_counters = counters.link.clone();
    // The first capture's answer (done or failed; an unanswered one is asked again): a demo with
    // a `--duration` shows at least that round of the consult, however slow the machine.
    let (first_capture_tx, first_capture) = tokio::sync::oneshot::channel::<()>();
    let asker = tokio::spawn(async move {
        let mut first_capture_tx = Some(first_capture_tx);
        // Once the gateway is connected (it subscribes to its commands first thing); a command
        // that still went unheard is asked again.
        while link_counters.connects.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for _ in 0..5 {
            let args =
                crate::command::Args::from([("consult".to_string(), serde_json::Value::String(consult_id.clone()))]);
            let ask = crate::hub::ask::Ask {
                broker: &url,
                key: &hub_key,
                site: "demo-site",
                gw: "gw-demo",
                name: "consult.start",
                args,
                keys: &ask_keys,
                timeout: Duration::from_secs(2),
            };
            match crate::hub::ask::ask(ask, |_| {}).await {
                Ok(_) => break,
                Err(e) => tracing::debug!(error = %e, "the demo hub asks again"),
            }
        }
        // "Show me that field again": a still from the microscope now and then.
        let mut n = 0;
        loop {
            n += 1;
            let args = crate::command::Args::from([("dev".to_string(), serde_json::Value::String("scope-1".into()))]);
            let ask = crate::hub::ask::Ask {
                broker: &url,
                key: &hub_key,
                site: "demo-site",
                gw: "gw-demo",
                name: "capture",
                args,
                keys: &ask_keys,
                timeout: Duration::from_secs(5),
            };
            match crate::hub::ask::ask(ask, |_| {}).await {
                Ok(_) => {
                    if let Some(tx) = first_capture_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Err(e) => tracing::warn!(error = %e, capture = n, "the demo hub's capture went unanswered"),
            }
            // Until one is answered, the next is asked soon.
            let pause = if first_capture_tx.is_some() { CAPTURE_RETRY } else { CAPTURE_EVERY };
            tokio::time::sleep(pause).await;
        }
    });
    // The vendor software saves a field into its folder now and then (the same smear, renamed).
    let folder_writer = tokio::spawn(async move {
        let mut n = 0;
        loop {
            tokio::time::sleep(Duration::from_secs(if n == 0 { 2 } else { 15 })).await;
            n += 1;
            let _ =
                tokio::fs::write(scope_folder.join(format!("field-{n:03}.jpg")), recordings::BLOOD_SMEAR_JPEG).await;
        }
    });

    let stop = async {
        match opts.duration {
            Some(d) => {
                tokio::time::sleep(d).await;
                if tokio::time::timeout(FIRST_CAPTURE_WAIT, first_capture).await.is_err() {
                    tracing::warn!("the demo ends without the answer to its first capture");
                }
            }
            None => shutdown::signal().await,
        }
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            line = lines_rx.recv() => match line {
                Some(l) => out.write_all(&l)?,
                None => break,
            },
        }
    }
    asker.abort();
    folder_writer.abort();
    trigger.trigger();
    daemon.await??;
    let device_acks = sims.await.unwrap_or(0);
    meter_sim.abort();
    let _ = astm_sim.await;
    let _ = tokio::join!(ecg_sim, pcg_sim);
    // Let the hub view print what the broker still holds for it: until it has been quiet a while.
    let flush_until = tokio::time::Instant::now() + FLUSH_AT_MOST;
    while let Ok(Ok(Some(l))) =
        tokio::time::timeout_at(flush_until, tokio::time::timeout(FLUSH_QUIET, lines_rx.recv())).await
    {
        out.write_all(&l)?;
    }
    hub_trigger.trigger();
    let hub_stats = hub.await??;
    while let Ok(l) = lines_rx.try_recv() {
        out.write_all(&l)?;
    }
    let sum = |f: fn(&crate::device::DeviceCounters) -> u64| counters.devices.values().map(|c| f(c)).sum::<u64>();
    let report = DemoReport {
        hub: hub_stats,
        readings: sum(|c| c.readings.load(Ordering::Relaxed)),
        rejected_frames: sum(|c| c.rejected_frames.load(Ordering::Relaxed)),
        published: counters.link.published.load(Ordering::Relaxed),
        acked: counters.link.acked.load(Ordering::Relaxed),
        device_acks,
    };
    writeln!(
        out,
        "summary: {} readings and samples decoded, {} bad frames reported, {} messages published ({} broker acknowledgements, resends included), {} HL7 ACKs sent to the monitor; hub verified {}, rejected {}, duplicates {}; {} wave chunks reassembled ({} samples, {} gaps); {} images whole at the hub",
        report.readings,
        report.rejected_frames,
        report.published,
        report.acked,
        report.device_acks,
        report.hub.verified,
        report.hub.rejected,
        report.hub.duplicates,
        report.hub.chunks,
        report.hub.samples,
        report.hub.gaps,
        report.hub.images
    )?;
    if let Some(dir) = &opts.record {
        writeln!(out, "recorded WFDB and WAV files, and the images (media/) in {}", dir.display())?;
    }
    Ok(report)
}

/// The hub doctor's consult view of the demo's hub, on a free loopback port: it shows what the
/// hub verified (handed over on the returned channel) and sends the page's commands, signed with
/// the hub's key, through the embedded broker.
async fn consult_view(
    dir: &Path,
    hub_key: Arc<SigningKey>,
    broker_port: u16,
) -> anyhow::Result<(tokio::sync::mpsc::UnboundedSender<crate::hub::Observed>, u16)> {
    let (outbox, mut commands) = tokio::sync::mpsc::unbounded_channel::<(String, Vec<u8>)>();
    let view = crate::consult_view::memory::MemoryView::new(hub_key, &dir.join("view"), outbox)?;
    let login = crate::hub::BrokerLogin::plain(crate::config::MqttUrl {
        tls: false,
        host: "127.0.0.1".into(),
        port: broker_port,
    });
    let (client, mut eventloop) = crate::mqtt::client(login.options("spokegate-demo-view")?, 64);
    tokio::spawn(async move {
        loop {
            if eventloop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
    tokio::spawn(async move {
        while let Some((topic, payload)) = commands.recv().await {
            let _ = client.publish(topic, rumqttc::QoS::AtLeastOnce, false, payload).await;
        }
    });
    let (observe, mut seen) = tokio::sync::mpsc::unbounded_channel::<crate::hub::Observed>();
    let shown = view.clone();
    tokio::spawn(async move {
        while let Some(o) = seen.recv().await {
            shown.accept(&o.topic, &o.envelope, &o.body);
        }
    });
    let port = broker::free_port()?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.context("the consult view's port")?;
    let app = view.router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((observe, port))
}

fn demo_config(state: &Path, port: u16, [monitor, meter, ecg, steth]: [&std::path::PathBuf; 4]) -> String {
    format!(
        r#"[gateway]
site = "demo-site"
id = "gw-demo"
state_dir = "{state}"
profiles_dir = "{state}/profiles"

[mqtt]
url = "mqtt://127.0.0.1:{port}"

[hub]
keys = ["{state}/hub.jwk"]
delivery = "hub"

[[device]]
id = "monitor-1"
profile = "hl7-pcd01"
serial = {{ path = "{monitor}" }}

[[device]]
id = "glucose-1"
profile = "onetouch-ultra2"
serial = {{ path = "{meter}" }}

[[device]]
id = "ecg-1"
profile = "mitbih-cyton"
serial = {{ path = "{ecg}" }}

[[device]]
id = "steth-1"
profile = "pcg-pcm"
serial = {{ path = "{steth}" }}
"#,
        state = state.display(),
        monitor = monitor.display(),
        meter = meter.display(),
        ecg = ecg.display(),
        steth = steth.display(),
    )
}

/// The BLE devices of the demo, as configured.
const BLE_DEVICES: &str = r#"
[[device]]
id = "bp-1"
profile = "ble-blood-pressure"
ble = { name = "Demo BP Cuff", allow_unbonded = true }

[[device]]
id = "temp-1"
profile = "ble-thermometer"
ble = { address = "D0:00:00:00:00:02" }

[[device]]
id = "ecg-2"
profile = "polar-h10-ecg"
ble = { allow_unbonded = true }
"#;

/// A private D-Bus with a mock BlueZ serving a blood-pressure cuff, a thermometer and a Polar H10,
/// for the real btleplug code; `Err` says why not (dbus-daemon or python3 with dbus-next missing).
fn ble_devices(dir: &Path) -> Result<(PrivateBus, MockBluez), String> {
    let bus = PrivateBus::try_start()?;
    // The strap's clock: now, in ns since 2000-01-01 (the PMD epoch).
    let since_2000 = (crate::clock::now_micros() - 946_684_800_000_000).max(0) as u64 * 1000;
    let (frames, _) = ecg_frames(40, since_2000);
    let scenario = serde_json::json!({"devices": [
        {"kind": "notify", "char": "2A35", "address": "D0:00:00:00:00:01", "name": "Demo BP Cuff",
         "service": "00001810-0000-1000-8000-00805f9b34fb", "notifications": recordings::ble::BLOOD_PRESSURE,
         "interval_ms": 4000, "repeat": true},
        {"kind": "notify", "char": "2A1C", "address": "D0:00:00:00:00:02", "name": "Demo Thermometer",
         "service": "00001809-0000-1000-8000-00805f9b34fb", "notifications": recordings::ble::TEMPERATURE,
         "interval_ms": 5000, "repeat": true},
        {"kind": "pmd", "address": "D0:00:00:00:00:03", "name": "Polar H10 DEMO",
         "service": "fb005c80-02e7-f387-1cad-8acd2d8df0c8", "frames": frames, "interval_ms": 561, "repeat": true},
    ]});
    let mock = MockBluez::try_start(&bus, &scenario, dir)?;
    std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", &bus.address);
    Ok((bus, mock))
}

/// Replays a waveform recording at its real rate, round and round, until shutdown.
async fn replay_forever(mut peer: PtyPeer, rec: waves::Recording, protocol: WireProtocol, mut shutdown: Shutdown) {
    tokio::select! {
        r = waves::replay(&mut peer, &rec, protocol, 1.0, None, Duration::from_millis(10)) => {
            if let Err(e) = r {
                tracing::warn!(recording = rec.name, error = %e, "demo replay stopped");
            }
        }
        _ = shutdown.triggered() => {}
    }
}

/// The simulated OneTouch: the sourced dump's readings, its clock set to the gateway's local time.
fn onetouch_meter() -> Arc<std::sync::Mutex<crate::sim::onetouch::MeterState>> {
    let dump = String::from_utf8_lossy(recordings::ONETOUCH_DUMP);
    let now = time::OffsetDateTime::now_utc().to_offset(time::macros::offset!(+05:30));
    let state = crate::sim::onetouch::MeterState::new(
        crate::sim::onetouch::MeterState::records_of_dump(&dump),
        time::PrimitiveDateTime::new(now.date(), now.time()),
    );
    Arc::new(std::sync::Mutex::new(state))
}

/// The Contour glucometer uploads its recorded session now and every 30 s, as the meter does
/// when it is plugged in, until shutdown.
async fn upload_astm(mut peer: PtyPeer, mut shutdown: Shutdown) {
    use crate::sim::astm::{frames, AstmSender};
    let records = crate::sim::astm::session_records(recordings::CONTOUR_ASTM_SESSION);
    let records: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    let frames = frames(&records);
    let sender = AstmSender::default();
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = shutdown.triggered() => return,
            _ = tick.tick() => {
                if let Err(e) = sender.send(&mut peer, &frames, |_, _| false, |_| Vec::new()).await {
                    tracing::warn!(error = %e, "demo ASTM meter stopped");
                    return;
                }
            }
        }
    }
}

/// Replays the recordings until shutdown; returns how many HL7 ACKs the monitor received.
async fn simulate(mut monitor: PtyPeer, mut shutdown: Shutdown) -> u64 {
    let mut acks = 0u64;
    let mut buf = [0u8; 4096];
    let mut tick = tokio::time::interval(Duration::from_millis(1500));
    let mut round = 0usize;
    loop {
        tokio::select! {
            _ = shutdown.triggered() => return acks,
            n = monitor.read(&mut buf) => match n {
                Ok(n) if n > 0 => acks += buf[..n].windows(3).filter(|w| w == b"MSA").count() as u64,
                _ => return acks,
            },
            _ = tick.tick() => {
                let (_, message) = recordings::HL7_MESSAGES[round % recordings::HL7_MESSAGES.len()];
                if monitor.send(&mllp_wrap(message)).await.is_err() {
                    return acks;
                }
                if round % 4 == 3 {
                    // Line noise on the serial cable: reported as an event, then the stream resyncs.
                    let _ = monitor.send(b"\x00\xff~~noise~~").await;
                }
                round += 1;
            }
        }
    }
}

/// Sends what the hub view writes to the demo's output loop.
struct ChannelWriter(tokio::sync::mpsc::UnboundedSender<Vec<u8>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.send(buf.to_vec()).map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
