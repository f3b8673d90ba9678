//! How `spokegate watch` prints what it received: one human line per reading, or JSON lines.

use super::reassembly::Placed;
use super::verify::HubMessage;
use crate::clock::micros_to_rfc3339;
use crate::model::Body;

/// Human lines for a verified message (one per observation).
pub fn human_lines(msg: &HubMessage) -> Vec<String> {
    match msg {
        HubMessage::Status { site, gw, status } => {
            vec![format!(
                "{site}/{gw}  gateway {} since {} (kid {}, v{})",
                status.state, status.since, status.kid, status.version
            )]
        }
        HubMessage::DeviceState { site, gw, dev, state } => {
            let detail = state.detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default();
            vec![format!("{site}/{gw}/{dev}  device {:?} ({}){detail}", state.state, state.profile).to_lowercase()]
        }
        HubMessage::Signed(body) => body_lines(body),
    }
}

fn body_lines(b: &Body) -> Vec<String> {
    let head = format!("{} {}/{}/{} #{}", time_of(b.t), b.site, b.gw, b.dev, b.seq);
    let mut out = Vec::new();
    for o in b.obs.iter().flatten() {
        let name = o.code.name.clone().unwrap_or_else(|| format!("MDC {}", o.code.mdc));
        let loinc = o.code.loinc.as_deref().map(|l| format!(" LOINC {l}")).unwrap_or_default();
        let value = match o.val {
            Some(v) => format!("{v} {}", o.unit.ucum),
            None => format!("({})", o.q.as_str()),
        };
        let tdev = o.tdev.or(b.tdev).map(|t| format!("  device time {}", micros_to_rfc3339(t))).unwrap_or_default();
        out.push(format!("{head} ✔ {name} [{}{loinc}] = {value}{tdev}", o.code.mdc));
    }
    if let Some(e) = &b.event {
        out.push(format!("{head} ✔ event {} {}: {}", e.sev.as_str().to_uppercase(), e.code, e.text));
    }
    out
}

fn time_of(t: i64) -> String {
    let r = micros_to_rfc3339(t);
    r.get(11..23).unwrap_or(&r).to_string()
}

/// One JSON line for a message: `{"topic", "verdict", "body" | "reason"}`.
pub fn json_line(topic: &str, verdict: &str, msg: Option<&HubMessage>, reason: Option<&str>) -> String {
    let body = match msg {
        Some(HubMessage::Signed(b)) => serde_json::to_value(b).ok(),
        Some(HubMessage::Status { status, .. }) => serde_json::to_value(status).ok(),
        Some(HubMessage::DeviceState { state, .. }) => serde_json::to_value(state).ok(),
        None => None,
    };
    serde_json::json!({ "topic": topic, "verdict": verdict, "body": body, "reason": reason }).to_string()
}

/// Lines for a waveform chunk: a gap or restart note, then the chunk with a trace of its first
/// channel (one block character per slice of samples, scaled to the chunk).
pub fn wave_lines(b: &Body, placed: &Placed) -> Vec<String> {
    let Some(w) = &b.wave else { return Vec::new() };
    let head = format!("{} {}/{}/{} #{}", time_of(b.t), b.site, b.gw, b.dev, b.seq);
    let mut out = Vec::new();
    if placed.restarted {
        out.push(format!("{head} ⟲ stream {} restarted at index 0", w.stream));
    }
    if let Some((at, missing)) = placed.gap {
        out.push(format!("{head} ⚠ GAP stream {}: {missing} samples missing from index {at}", w.stream));
    }
    let labels: Vec<&str> = w.ch.iter().map(|c| c.label.as_str()).collect();
    let trace = placed.channels.first().map(|c| sparkline(c, 32)).unwrap_or_default();
    out.push(format!(
        "{head} ✔ wave {} {} Hz i{}..{} [{}] {}",
        w.stream,
        w.rate,
        w.i0,
        w.i0.saturating_add(u64::from(w.n)),
        labels.join(","),
        trace
    ));
    out
}

fn sparkline(samples: &[i32], width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let (Some(&lo), Some(&hi)) = (samples.iter().min(), samples.iter().max()) else { return String::new() };
    let span = (i64::from(hi) - i64::from(lo)).max(1) as f64;
    let step = samples.len().div_ceil(width).max(1);
    samples
        .chunks(step)
        .map(|c| {
            let peak = c.iter().max_by_key(|v| (i64::from(**v) - i64::from(lo)).abs()).copied().unwrap_or(lo);
            BARS[(((i64::from(peak) - i64::from(lo)) as f64 / span) * 7.0).round() as usize]
        })
        .collect()
}
