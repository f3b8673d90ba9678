//! Where one connection stands: per lane what was handed over, what waits for a packet id and
//! what for a PUBACK.

use crate::queue::Class;
use std::collections::{HashMap, VecDeque};

/// Where one lane of one connection stands.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lane {
    /// The highest seq of this class handed to this connection.
    pub(super) last_sent: u64,
    /// The queue may hold rows of this class above `last_sent` that are not in `Link::fresh`.
    pub(super) maybe_more: bool,
}

impl Default for Lane {
    fn default() -> Self {
        Self { last_sent: 0, maybe_more: true }
    }
}

/// Where one connection stands.
#[derive(Debug, Default)]
pub(super) struct Session {
    pub(super) connected: bool,
    /// Publishes handed to the client, oldest first, waiting for their packet id (`None`: not queued).
    pub(super) awaiting_pkid: VecDeque<Option<(u64, Class)>>,
    /// Packet id -> seq and class, waiting for PUBACK.
    pub(super) in_flight: HashMap<u16, (u64, Class)>,
    /// Per class (indexed by `Class as usize`).
    pub(super) lanes: [Lane; 3],
    /// Media parts published and not yet acknowledged by the broker.
    pub(super) media_out: usize,
    /// A broker refused a subscription (a clustered broker mid-election does): subscribe again then.
    pub(super) resubscribe_at: Option<tokio::time::Instant>,
}

impl Session {
    pub(super) fn outstanding(&self) -> usize {
        self.in_flight.len() + self.awaiting_pkid.iter().filter(|s| s.is_some()).count()
    }

    pub(super) fn maybe_more(&self) -> bool {
        self.lanes.iter().any(|l| l.maybe_more)
    }

    pub(super) fn more_in_all(&mut self) {
        for l in &mut self.lanes {
            l.maybe_more = true;
        }
    }

    /// A queued message left the window (acknowledged, or the connection is gone). What waits
    /// behind it is in `Link::fresh`, or its lane already says the queue may hold more: the
    /// queue is not read again for it.
    pub(super) fn done(&mut self, class: Class) {
        if class == Class::Media {
            self.media_out = self.media_out.saturating_sub(1);
        }
    }
}
