//! Deleting delivered messages from the queue: grouped, retried after a failure, bounded.

use super::Link;
use crate::clock::{micros_to_rfc3339, now_micros};
use crate::queue;
use std::time::Duration;

/// Acknowledged messages remembered for deletion while the queue cannot delete.
const MAX_PENDING_DELETES: usize = 100_000;

impl Link {
    /// Deletes what was delivered, unless nothing was, the queue is busy (the next tick tries
    /// again), or a failed delete's retry time has not come.
    pub(super) fn flush_deletes(&mut self) {
        if (self.acked.is_empty() && self.hub_acked.is_empty())
            || self.delete_retry_at.is_some_and(|t| tokio::time::Instant::now() < t)
        {
            return;
        }
        let queue = self.inputs.queue.clone();
        let Some(q) = queue::try_lock(&queue) else { return };
        self.delete_delivered(q);
    }

    /// The last deletes before the link stops: whatever a failed delete's retry timer says, and
    /// waiting for the queue if someone holds it.
    pub(super) fn flush_deletes_at_stop(&mut self) {
        if self.acked.is_empty() && self.hub_acked.is_empty() {
            return;
        }
        let queue = self.inputs.queue.clone();
        let q = queue.lock().unwrap_or_else(|p| p.into_inner());
        self.delete_delivered(q);
    }

    /// Deletes what brokers (broker delivery) or hubs (hub delivery) acknowledged; on failure keeps
    /// it, bounded, for a retry a second later.
    fn delete_delivered(&mut self, mut q: std::sync::MutexGuard<'_, queue::Queue>) {
        let result = if self.hub.is_some() {
            let now = now_micros();
            let r = q.delete_acked(&self.hub_acked, now).map(|_| ());
            if r.is_ok() {
                self.inputs.snapshot.send_modify(|snap| snap.uplink.last_hub_ack = Some(micros_to_rfc3339(now)));
            }
            r
        } else {
            q.delete(&self.acked)
        };
        drop(q);
        match result {
            Ok(()) => {
                self.acked.clear();
                self.hub_acked.clear();
                if self.delete_retry_at.take().is_some() {
                    tracing::info!("delivered messages are deleted from the queue again");
                }
            }
            Err(e) => {
                // Kept for a later try (a delete that never happens only means a resend after a
                // restart), but not retried on every event, and not kept without bound.
                if self.delete_retry_at.is_none() {
                    tracing::warn!(error = %e, "cannot delete delivered messages from the queue; retrying every second");
                }
                self.delete_retry_at = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                for list in [self.acked.len(), self.hub_acked.len()] {
                    if list > MAX_PENDING_DELETES {
                        let excess = list - MAX_PENDING_DELETES;
                        self.acked.drain(..excess.min(self.acked.len()));
                        self.hub_acked.drain(..excess.min(self.hub_acked.len()));
                    }
                }
            }
        }
    }
}
