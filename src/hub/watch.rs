//! `spokegate watch`: subscribe to a broker, check every message, print what is valid and report
//! what is not.

use super::dedup::Deduplicator;
use super::reassembly::Reassembler;
use super::record::Recorder;
use super::verify::{check, HubMessage, KeyRing};
use super::view::{human_lines, json_line, wave_lines};
use crate::config::MqttUrl;
use crate::shutdown::Shutdown;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::io::Write;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchFormat {
    Human,
    Json,
}

#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub url: MqttUrl,
    pub keys: KeyRing,
    pub format: WatchFormat,
    /// Topic filter, `spokegate/v1/#` by default.
    pub filter: String,
    pub client_id: String,
    /// Write waveform streams as WFDB records and WAV files here.
    pub record: Option<std::path::PathBuf>,
}

/// What a watch session saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WatchStats {
    pub verified: u64,
    /// Signed messages seen again (same gw and seq): at-least-once delivery.
    pub duplicates: u64,
    pub rejected: u64,
    /// Waveform chunks placed, their samples per channel, and the gaps between them.
    pub chunks: u64,
    pub samples: u64,
    pub gaps: u64,
    pub missing: u64,
}

/// Watches until shutdown, writing a line per reading to `out`.
pub async fn watch(
    opts: WatchOptions,
    mut shutdown: Shutdown,
    out: &mut (dyn Write + Send),
) -> std::io::Result<WatchStats> {
    let mut mqtt = MqttOptions::new(&opts.client_id, &opts.url.host, opts.url.port);
    mqtt.set_keep_alive(Duration::from_secs(30));
    mqtt.set_max_packet_size(1 << 20, 1 << 20);
    if opts.url.tls {
        mqtt.set_transport(rumqttc::Transport::tls_with_default_config());
    }
    let (client, mut eventloop) = AsyncClient::new(mqtt, 64);
    let mut dedup = Deduplicator::new(1 << 20);
    // Retained status and state are published again after every reconnect; show changes only.
    let mut last_retained: std::collections::HashMap<String, Vec<u8>> = std::collections::HashMap::new();
    let mut stats = WatchStats::default();
    let mut waves = Reassembler::default();
    let mut recorder = opts.record.as_deref().map(Recorder::new).transpose()?;
    loop {
        let event = tokio::select! {
            e = eventloop.poll() => e,
            _ = shutdown.triggered() => break,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                // Subscribe on every connect: the session is clean.
                let _ = client.try_subscribe(opts.filter.clone(), QoS::AtLeastOnce);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let line = match check(&p.topic, &p.payload, &opts.keys) {
                    Ok(msg) => {
                        let fresh = match &msg {
                            HubMessage::Signed(b) => dedup.first_time(&b.gw, b.seq),
                            // A retained status or state published again unchanged (after a
                            // reconnect) is not news, and not a duplicate reading either.
                            _ if last_retained.insert(p.topic.clone(), p.payload.to_vec()).as_deref()
                                == Some(&p.payload[..]) =>
                            {
                                continue
                            }
                            _ => true,
                        };
                        if fresh {
                            stats.verified += 1;
                            let wave_notes = match &msg {
                                HubMessage::Signed(b) => place_wave(b, &mut waves, recorder.as_mut(), &mut stats),
                                _ => Vec::new(),
                            };
                            match opts.format {
                                WatchFormat::Human if !wave_notes.is_empty() => wave_notes.join("\n"),
                                WatchFormat::Human => human_lines(&msg).join("\n"),
                                WatchFormat::Json => json_line(&p.topic, "verified", Some(&msg), None),
                            }
                        } else {
                            stats.duplicates += 1;
                            match opts.format {
                                WatchFormat::Human => continue,
                                WatchFormat::Json => json_line(&p.topic, "duplicate", Some(&msg), None),
                            }
                        }
                    }
                    Err(why) => {
                        stats.rejected += 1;
                        match opts.format {
                            WatchFormat::Human => format!("✘ REJECTED {}: {why}", p.topic),
                            WatchFormat::Json => json_line(&p.topic, "rejected", None, Some(&why.to_string())),
                        }
                    }
                };
                if !line.is_empty() {
                    writeln!(out, "{line}")?;
                    out.flush()?;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "watch: broker connection lost; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.triggered() => break,
                }
            }
        }
    }
    Ok(stats)
}

/// Reassembles a `wave` body (and records it): the lines to show for it.
fn place_wave(
    body: &crate::model::Body,
    waves: &mut Reassembler,
    recorder: Option<&mut Recorder>,
    stats: &mut WatchStats,
) -> Vec<String> {
    let Some(result) = waves.accept(body) else { return Vec::new() };
    match result {
        Ok(placed) => {
            stats.chunks += 1;
            stats.samples = stats.samples.saturating_add(placed.channels.first().map_or(0, |c| c.len() as u64));
            if let Some((_, missing)) = placed.gap {
                stats.gaps += 1;
                stats.missing = stats.missing.saturating_add(missing);
            }
            if let (Some(rec), Some(wave)) = (recorder, body.wave.as_ref()) {
                if let Err(e) = rec.write(&placed, wave) {
                    tracing::error!(error = %e, stream = %placed.key, "cannot record the waveform");
                }
            }
            wave_lines(body, &placed)
        }
        Err(e) => vec![format!("✘ wave chunk #{} of {}/{}: {e}", body.seq, body.gw, body.dev)],
    }
}
