//! The uplink to the hub: topics of the wire contract, the retained status and device-state
//! messages, and the MQTT session (rumqttc) that publishes signed messages at QoS 1.

mod link;
pub mod status;
pub mod topics;

pub use link::{run_link, LinkCounters, LinkInputs, Publication, QueueHealth};
