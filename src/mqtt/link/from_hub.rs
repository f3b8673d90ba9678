//! What hubs send the gateway: commands (handed to the executor) and signed acknowledgements.

use super::{InboundCommand, Link};
use crate::hub::check_hub_body;
use crate::model::{AckBody, BodyKind};
use crate::mqtt::topics;
use crate::sign::open_from_hub;
use std::sync::atomic::Ordering;

impl Link {
    /// A message from a hub; true when it freed room to send.
    pub(super) fn incoming(&mut self, topic: &str, payload: &[u8]) -> bool {
        if topic == self.ack_topic {
            return self.hub_ack(payload);
        }
        if !matches!(topics::parse(topic), Some(topics::TopicRef::Cmd { .. })) {
            return false;
        }
        let c = &self.inputs.counters;
        c.commands_in.fetch_add(1, Ordering::Relaxed);
        let cmd = InboundCommand { topic: topic.to_string(), payload: payload.to_vec() };
        if self.inputs.commands.try_send(cmd).is_err() {
            c.commands_dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%topic, "command executor busy; command dropped unread (the hub may send it again)");
        }
        false
    }

    /// A hub's acknowledgement: verified with the hub keys, addressed to this gateway.
    fn hub_ack(&mut self, payload: &[u8]) -> bool {
        let Some(hub) = self.hub.as_mut() else { return false };
        let opened = open_from_hub::<AckBody>(payload, &self.inputs.hub.keys).map_err(|e| e.to_string()).and_then(
            |(ack, key_hub)| {
                check_hub_body(
                    ack.kind,
                    BodyKind::Ack,
                    (&ack.site, &ack.gw, &ack.hub),
                    (&self.inputs.site, &self.inputs.gw, &key_hub),
                )
                .map(|()| ack)
                .map_err(|e| e.to_string())
            },
        );
        let ack = match opened {
            Ok(a) => a,
            Err(why) => {
                self.inputs.counters.bad_acks.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(reason = %why, "acknowledgement refused");
                return false;
            }
        };
        let ranges: Vec<(u64, u64)> = ack.ranges().collect();
        let (n, lost) = hub.acknowledged(&ranges, std::time::Instant::now());
        self.inputs.counters.hub_acked.fetch_add(n as u64, Ordering::Relaxed);
        self.hub_acked.extend(ranges);
        self.lost.extend(lost);
        self.publish_unacked();
        n > 0
    }
}
