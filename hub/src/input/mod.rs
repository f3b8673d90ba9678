//! Where messages come from and where acknowledgements go: a NATS JetStream durable consumer
//! (a cluster; every instance pulls from the same consumer) or an MQTT broker's shared
//! subscription (every instance in the same group). Either way a message is settled with its
//! source only after the batch holding it is committed: a crash before that means redelivery,
//! and the unique (site, gw, seq) makes the second store a no-op.

mod mqtt;
mod nats;

pub use mqtt::MqttSource;
pub use nats::NatsSource;

use bytes::Bytes;

/// One message as it arrived, and what settles it with its source.
pub struct Delivery {
    pub topic: String,
    pub payload: Bytes,
    pub token: Token,
}

pub enum Token {
    Nats(Box<async_nats::jetstream::Message>),
    Mqtt(Box<rumqttc::v5::mqttbytes::v5::Publish>),
}

pub enum Source {
    Nats(Box<NatsSource>),
    Mqtt(MqttSource),
}

impl Source {
    pub async fn open(input: &crate::config::Input) -> anyhow::Result<Source> {
        Ok(match input {
            crate::config::Input::Nats(n) => Source::Nats(Box::new(NatsSource::open(n).await?)),
            crate::config::Input::Mqtt(m) => Source::Mqtt(MqttSource::open(m)?),
        })
    }

    /// The next message (waits; cancel-safe).
    pub async fn next(&mut self) -> Option<Delivery> {
        match self {
            Source::Nats(s) => s.next().await,
            Source::Mqtt(s) => s.next().await,
        }
    }

    /// A message that is already here, if any.
    pub fn try_next(&mut self) -> Option<Delivery> {
        match self {
            Source::Nats(s) => s.try_next(),
            Source::Mqtt(s) => s.try_next(),
        }
    }

    /// Tells the source the message is stored (it will not come again).
    pub async fn settle(&self, token: Token) {
        match (self, token) {
            (Source::Nats(_), Token::Nats(m)) => {
                if let Err(e) = m.ack().await {
                    tracing::warn!(error = %e, "JetStream ack not sent; the message will come again and be stored once");
                }
            }
            (Source::Mqtt(s), Token::Mqtt(p)) => s.settle(&p).await,
            _ => {}
        }
    }

    /// Sends a hub message (an acknowledgement) to a gateway's topic.
    pub async fn publish(&self, topic: &str, payload: Vec<u8>) -> anyhow::Result<()> {
        match self {
            Source::Nats(s) => s.publish(topic, payload).await,
            Source::Mqtt(s) => s.publish(topic, payload).await,
        }
    }

    pub fn connected(&self) -> bool {
        match self {
            Source::Nats(s) => s.connected(),
            Source::Mqtt(s) => s.connected(),
        }
    }

    /// Messages waiting for this hub at the source (JetStream's pending count), when it knows.
    pub async fn lag(&self) -> Option<u64> {
        match self {
            Source::Nats(s) => s.lag().await,
            Source::Mqtt(_) => None,
        }
    }
}
