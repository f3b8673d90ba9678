//! The uplink to the hub: topics of the wire contract, the retained status and device-state
//! messages, and the MQTT session (rumqttc) that publishes signed messages at QoS 1, receives hub
//! commands and (under hub delivery) hub acknowledgements.

mod delivery;
pub mod lanes;
mod link;
pub mod status;
pub mod tls;

/// The largest MQTT packet the gateway and its hub-side tools send or take (1 MiB). A message
/// that would not fit is never queued ([`crate::pipeline::Signer::sign`] replaces it with an
/// event): one oversized message must not block the queue behind it.
pub const MAX_PACKET: usize = 1 << 20;
pub mod topics;

pub use delivery::HubDelivery;
pub use link::{run_link, InboundCommand, LinkCounters, LinkInputs, Publication, QueueHealth};
pub(crate) use link::{spawn_poller, PollResult};

/// An MQTT client and its event loop, with Nagle's algorithm off: commands, replies and
/// acknowledgements are small packets answered by small packets, and Nagle with delayed ACKs would
/// hold each of them back tens of milliseconds.
pub fn client(options: rumqttc::MqttOptions, capacity: usize) -> (rumqttc::AsyncClient, rumqttc::EventLoop) {
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, capacity);
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    (client, eventloop)
}
