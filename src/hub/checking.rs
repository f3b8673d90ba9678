//! The checks of a watch (COSE parse, signature, body) on a thread of their own, batch by
//! batch in arrival order: the next batch is verified while the last one is shown and recorded,
//! so verifying (most of the work) and showing use both cores instead of taking turns.

use super::verify::{check, HubMessage, Rejection};
use crate::mqtt::PollResult;
use crate::sign::KeyRing;
use rumqttc::{Event, Packet};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Batches out for checking at most (one being checked, one waiting): enough to keep the
/// checking thread busy while the caller shows the last one, without holding much in memory.
const DEPTH: usize = 2;

/// A batch of client events and, in order, the verdict on each publish among them.
pub struct Checked {
    pub events: Vec<PollResult>,
    pub verdicts: Vec<Result<HubMessage, Rejection>>,
}

/// The checking thread and the batches out with it.
pub struct Checker {
    to_check: std::sync::mpsc::Sender<Vec<PollResult>>,
    checked: mpsc::UnboundedReceiver<Checked>,
    out: usize,
}

impl Checker {
    /// Starts the thread; it ends when the checker is dropped. Batches of at least
    /// `min_parallel` publishes are verified on several cores.
    pub fn start(keys: KeyRing, min_parallel: usize) -> std::io::Result<Checker> {
        let (to_check, batches) = std::sync::mpsc::channel::<Vec<PollResult>>();
        let (done, checked) = mpsc::unbounded_channel();
        let keys = Arc::new(keys);
        std::thread::Builder::new().name("watch-check".into()).spawn(move || {
            while let Ok(events) = batches.recv() {
                let mut arrived: Vec<(&str, &[u8])> = events
                    .iter()
                    .filter_map(|e| match e {
                        Ok(Event::Incoming(Packet::Publish(p))) => Some((p.topic.as_str(), &p.payload[..])),
                        _ => None,
                    })
                    .collect();
                let verdicts =
                    crate::parallel::map_in_order(&mut arrived, min_parallel, |_, (t, p)| check(t, p, &keys));
                drop(arrived);
                if done.send(Checked { events, verdicts }).is_err() {
                    break;
                }
            }
        })?;
        Ok(Checker { to_check, checked, out: 0 })
    }

    /// Whether another batch may be handed over now.
    pub fn has_room(&self) -> bool {
        self.out < DEPTH
    }

    /// Whether batches are out.
    pub fn is_busy(&self) -> bool {
        self.out > 0
    }

    /// Hands a batch over (checked in the order handed over).
    pub fn check(&mut self, events: Vec<PollResult>) {
        if self.to_check.send(events).is_ok() {
            self.out += 1;
        }
    }

    /// The next checked batch (pending until one is ready; `None` if the thread is gone).
    pub async fn next(&mut self) -> Option<Checked> {
        let c = self.checked.recv().await?;
        self.out -= 1;
        Some(c)
    }
}
