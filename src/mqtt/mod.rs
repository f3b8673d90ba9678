//! The uplink to the hub: topics of the wire contract, the retained status and device-state
//! messages, and the MQTT session (rumqttc) that publishes signed messages at QoS 1, receives hub
//! commands and (under hub delivery) hub acknowledgements.

mod delivery;
mod link;
pub mod status;
pub mod topics;

pub use delivery::HubDelivery;
pub(crate) use link::spawn_poller;
pub use link::{run_link, InboundCommand, LinkCounters, LinkInputs, Publication, QueueHealth};
