//! `status`: the gateway's full diagnostic picture in the reply's `data`: versions, clock, uplink,
//! consult, every device (state and counters) and the queue.

use super::{Answer, Context, Outcome};
use crate::clock::{now_micros, now_rfc3339};
use crate::mqtt::status::QueueStatus;
use serde_json::json;
use std::sync::atomic::Ordering;

pub fn apply(ctx: &Context) -> Outcome {
    Outcome::Done(picture(ctx))
}

/// The picture (also what `spokegate consult show` and the local socket's `status` print).
pub fn picture(ctx: &Context) -> Answer {
    let snap = ctx.snapshot.borrow().clone();
    let mut devices = serde_json::Map::new();
    for (id, c) in &ctx.counters.devices {
        let mut d = snap.devices.get(id).and_then(|s| serde_json::to_value(s).ok()).unwrap_or_else(|| json!({}));
        let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        d["counters"] = json!({
            "frames": n(&c.frames), "readings": n(&c.readings), "rejected_frames": n(&c.rejected_frames),
            "events": n(&c.events), "connects": n(&c.connects),
        });
        devices.insert(id.clone(), d);
    }
    let link = &ctx.counters.link;
    let queue = ctx.counters.queue.as_ref().and_then(|q| crate::queue::lock(q).stats().ok()).map(|st| {
        let unacked =
            Some(link.unacked.load(Ordering::Relaxed)).filter(|_| ctx.delivery == crate::config::Delivery::Hub);
        QueueStatus::from_stats(&st, now_micros(), None, ctx.delivery, unacked)
    });
    let signer = &ctx.signer;
    Answer::ok("status")
        .with("version", env!("CARGO_PKG_VERSION"))
        .with("gateway", json!({"site": signer.site, "gw": signer.gw, "kid": signer.key.public().kid_hex()}))
        .with("clock", json!({"now": now_rfc3339(), "now_us": now_micros()}))
        .with("uplink", serde_json::to_value(&snap.uplink).unwrap_or_default())
        .with("consult", signer.consult().consult)
        .with("devices", devices)
        .with("queue", serde_json::to_value(queue).unwrap_or_default())
}
