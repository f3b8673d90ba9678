//! How `spokegate watch` prints what it received: one human line per reading, or JSON lines.

use super::reassembly::Placed;
use super::verify::HubMessage;
use crate::clock::micros_to_rfc3339;
use crate::model::{Body, BodyKind};

/// Human lines for a verified message (one per observation). Retained status and state are
/// marked unsigned: nothing proves them.
pub fn human_lines(msg: &HubMessage) -> Vec<String> {
    match msg {
        HubMessage::Status { site, gw, status } => {
            vec![clean(&format!(
                "{site}/{gw}  gateway {} since {} (kid {}, v{}; unsigned status)",
                status.state, status.since, status.kid, status.version
            ))]
        }
        HubMessage::DeviceState { site, gw, dev, state } => {
            let detail = state.detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default();
            let streaming = match state.streaming {
                Some(true) => ", streaming",
                Some(false) => ", stream stopped",
                None => "",
            };
            let line = format!("{site}/{gw}/{dev}  device {:?} ({}{streaming}){detail}", state.state, state.profile);
            vec![clean(&line.to_lowercase()) + " (unsigned state)"]
        }
        HubMessage::Signed(body) => body_lines(body),
        HubMessage::Command(c) => vec![clean(&format!(
            "{} hub {} → {}/{} command {} ({}) {}",
            time_of(c.iat),
            c.hub,
            c.site,
            c.gw,
            c.name,
            c.id,
            serde_json::to_string(&c.args).unwrap_or_default()
        ))],
        HubMessage::Ack(a) => vec![clean(&format!(
            "{} hub {} acknowledged {}/{} seq {}",
            time_of(a.t),
            a.hub,
            a.site,
            a.gw,
            a.ranges()
                .map(|(x, y)| if x == y { x.to_string() } else { format!("{x}-{y}") })
                .collect::<Vec<_>>()
                .join(",")
        ))],
    }
}

fn body_lines(b: &Body) -> Vec<String> {
    let consult = b.consult_id().filter(|_| b.kind != BodyKind::Consult).map(|c| format!(" [{c}]")).unwrap_or_default();
    let head = format!("{} {} #{}{consult}", time_of(b.t), b.origin(), b.seq);
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
    if let (Some(binding), BodyKind::Consult) = (&b.binding, b.kind) {
        let by = binding.by.as_str();
        out.push(match b.consult_id() {
            Some(c) => format!("{head} ✔ consult {c} open (by {by})"),
            None => format!("{head} ✔ no consult open (ended by {by})"),
        });
    }
    if let Some(m) = &b.media {
        out.push(format!(
            "{head} ✔ image {} part {}/{} ({}, {} bytes of {})",
            m.id,
            m.part,
            m.parts,
            m.mime,
            m.data.len(),
            m.size
        ));
    }
    if let Some(r) = &b.reply {
        let data =
            r.data.as_ref().map(|d| format!(" {}", serde_json::to_string(d).unwrap_or_default())).unwrap_or_default();
        out.push(format!(
            "{head} ✔ reply to {} of {}: {} {}: {}{data}",
            r.cmd,
            r.hub,
            r.state.as_str(),
            r.code,
            r.text
        ));
    }
    out.into_iter().map(|l| clean(&l)).collect()
}

/// Device and network text on a terminal: control characters (escape sequences that could
/// rewrite the screen) are shown as `\u{..}` instead of being printed.
pub fn clean(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars().map(|c| if c.is_control() { c.escape_unicode().to_string() } else { c.to_string() }).collect()
}

fn time_of(t: i64) -> String {
    let r = micros_to_rfc3339(t);
    r.get(11..23).unwrap_or(&r).to_string()
}

/// One JSON line for a message: `{"topic", "verdict", "body" | "reason"}`.
pub fn json_line(topic: &str, verdict: &str, msg: Option<&HubMessage>, reason: Option<&str>) -> String {
    /// What a line shows as `body`, serialized in place (no JSON tree built first).
    #[derive(serde::Serialize)]
    #[serde(untagged)]
    enum Shown<'a> {
        Body(&'a Body),
        Status(&'a crate::mqtt::status::GatewayStatus),
        State(&'a crate::mqtt::status::DeviceState),
        Command(&'a crate::model::CmdBody),
        Ack(&'a crate::model::AckBody),
    }
    #[derive(serde::Serialize)]
    struct Line<'a> {
        topic: &'a str,
        verdict: &'a str,
        body: Option<Shown<'a>>,
        reason: Option<&'a str>,
    }
    let body = msg.map(|m| match m {
        HubMessage::Signed(b) => Shown::Body(b),
        HubMessage::Status { status, .. } => Shown::Status(status),
        HubMessage::DeviceState { state, .. } => Shown::State(state),
        HubMessage::Command(c) => Shown::Command(c),
        HubMessage::Ack(a) => Shown::Ack(a),
    });
    serde_json::to_string(&Line { topic, verdict, body, reason }).unwrap_or_else(|e| {
        let why = format!("cannot show the body: {e}");
        serde_json::to_string(&Line { topic, verdict, body: None, reason: Some(&why) }).unwrap_or_default()
    })
}

/// Lines for a waveform chunk: a gap or restart note, then the chunk with a trace of its first
/// channel (one block character per slice of samples, scaled to the chunk).
pub fn wave_lines(b: &Body, placed: &Placed) -> Vec<String> {
    let Some(w) = &b.wave else { return Vec::new() };
    let head = format!("{} {} #{}", time_of(b.t), clean(&b.origin()), b.seq);
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
