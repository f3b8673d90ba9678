//! A hub's end-to-end acknowledgements (v1.1 `ack`): the `seq`s a hub has stored (written,
//! shown, committed), gathered per gateway and sent as signed ranges, at the latest `max_delay`
//! after the first of them, or as soon as `max_batch` are waiting.

use crate::clock::now_micros;
use crate::model::{encode, ranges_of, AckBody, BodyFormat, BodyKind, BODY_VERSION};
use crate::mqtt::{topics, Publication};
use crate::sign::{seal, SigningKey};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Acker {
    key: Arc<SigningKey>,
    hub: String,
    max_delay: Duration,
    max_batch: usize,
    /// (site, gw) -> seqs stored, and when the first of them was.
    pending: HashMap<(String, String), (Vec<u64>, Instant)>,
}

impl Acker {
    /// `None` when `key` is not a hub key.
    pub fn new(key: Arc<SigningKey>, max_delay: Duration, max_batch: usize) -> Option<Self> {
        let hub = key.hub()?.to_string();
        Some(Self { key, hub, max_delay, max_batch: max_batch.max(1), pending: HashMap::new() })
    }

    /// The hub id this acker signs for.
    pub fn hub(&self) -> &str {
        &self.hub
    }

    /// `seq` of gateway (`site`, `gw`) is stored.
    pub fn stored(&mut self, site: &str, gw: &str, seq: u64, now: Instant) {
        let e = self.pending.entry((site.to_string(), gw.to_string())).or_insert_with(|| (Vec::new(), now));
        e.0.push(seq);
    }

    /// True when some gateway's acknowledgement is due.
    pub fn due(&self, now: Instant) -> bool {
        self.pending
            .values()
            .any(|(s, first)| s.len() >= self.max_batch || now.duration_since(*first) >= self.max_delay)
    }

    /// Whether anything waits at all.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The signed acknowledgements due now (all of them with `all`), one per gateway.
    pub fn take(&mut self, now: Instant, all: bool) -> Vec<Publication> {
        let due: Vec<(String, String)> = self
            .pending
            .iter()
            .filter(|(_, (s, first))| all || s.len() >= self.max_batch || now.duration_since(*first) >= self.max_delay)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::with_capacity(due.len());
        for k in due {
            let Some((seqs, _)) = self.pending.remove(&k) else { continue };
            let (site, gw) = k;
            let body = AckBody {
                v: BODY_VERSION,
                kind: BodyKind::Ack,
                site: site.clone(),
                gw: gw.clone(),
                hub: self.hub.clone(),
                ranges: ranges_of(&seqs),
                t: now_micros(),
            };
            let sealed = encode(&body, BodyFormat::Cbor)
                .map_err(|e| e.to_string())
                .map(|b| seal(&self.key, &b, BodyFormat::Cbor));
            match sealed {
                Ok(payload) => out.push(Publication { topic: topics::ack(&site, &gw), payload, retain: false }),
                Err(e) => tracing::error!(error = %e, "cannot sign an acknowledgement"),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::{open_from_hub, Binding, BoundKey, KeyRing};

    #[test]
    fn acknowledgements_go_per_gateway_as_signed_ranges_when_due() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(SigningKey::generate_hub(&dir.path().join("h.key"), "hub-1").unwrap());
        let ring =
            KeyRing::new([BoundKey { key: key.public().clone(), binding: Binding::Hub { hub: "hub-1".into() } }]);
        let mut a = Acker::new(key, Duration::from_millis(100), 4).unwrap();
        let t = Instant::now();
        for s in [3, 1, 2, 7] {
            a.stored("s", "gw-a", s, t);
        }
        a.stored("s", "gw-b", 9, t);
        assert!(a.due(t), "gw-a has a full batch");
        let now = a.take(t, false);
        assert_eq!(now.len(), 1);
        assert_eq!(now[0].topic, "spokegate/v1/s/gw-a/ack");
        let (ack, hub): (AckBody, String) = open_from_hub(&now[0].payload, &ring).unwrap();
        assert_eq!((hub.as_str(), ack.ranges), ("hub-1", vec![[1, 3], [7, 7]]));
        assert!(!a.due(t + Duration::from_millis(50)));
        assert!(a.due(t + Duration::from_millis(100)), "gw-b is due after the delay");
        assert_eq!(a.take(t + Duration::from_millis(100), false).len(), 1);
        assert!(a.is_empty());
    }
}
