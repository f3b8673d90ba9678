//! NATS JetStream: gateways publish MQTT to the cluster's MQTT listener, NATS maps
//! `spokegate/v1/...` to subjects `spokegate.v1....`, a replicated work-queue stream keeps the
//! gateway-signed ones, and every instance pulls from one durable consumer. Acknowledgements to
//! gateways go out as core NATS messages on the subject their MQTT subscription maps to. The
//! connection is TLS where configured (`tls://`, a CA file, a client certificate) and logs in with
//! a credentials file or a user and password.

use super::{Delivery, Token};
use crate::config::NatsInput;
use async_nats::jetstream::{self, consumer::pull, stream};
use futures::{FutureExt, StreamExt};
use std::time::Duration;

/// What the stream keeps: gateway bodies (device readings, waveforms, media, events, consult,
/// replies) and hubs' commands; not acknowledgements or the unsigned status.
pub const SUBJECTS: &[&str] = &[
    "spokegate.v1.*.*.dev.>",
    "spokegate.v1.*.*.event",
    "spokegate.v1.*.*.consult",
    "spokegate.v1.*.*.reply.>",
    "spokegate.v1.*.*.cmd.>",
];

/// How long the service waits at start for the cluster to take its stream and consumer.
const SETUP_PATIENCE: Duration = Duration::from_secs(60);

/// How long JetStream waits for a settle before giving the message to another instance.
const ACK_WAIT: Duration = Duration::from_secs(30);

pub struct NatsSource {
    client: async_nats::Client,
    consumer: jetstream::consumer::Consumer<pull::Config>,
    messages: pull::Stream,
}

pub fn subject_of(topic: &str) -> String {
    topic.replace('/', ".")
}

pub fn topic_of(subject: &str) -> String {
    subject.replace('.', "/")
}

impl NatsSource {
    /// How to connect: TLS where the servers' URLs (`tls://`) or a CA file or client certificate
    /// ask for it, the credentials given, and every connection event logged (a server that
    /// refuses the instance says why).
    async fn options(cfg: &NatsInput) -> anyhow::Result<async_nats::ConnectOptions> {
        let last_event = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut o = async_nats::ConnectOptions::new()
            .name("spokegate-hub")
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .event_callback(move |event| {
                let last = last_event.clone();
                async move {
                    // Each retry reports again: an event is logged when it differs from the last.
                    let text = event.to_string();
                    let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                    if *last != text {
                        match event {
                            async_nats::Event::Connected => tracing::info!("NATS connected"),
                            _ => tracing::warn!(event = %text, "NATS connection"),
                        }
                        *last = text;
                    }
                }
            });
        if cfg.tls() {
            o = o.require_tls(true);
        }
        if let Some(ca) = &cfg.ca {
            o = o.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = cfg.client_cert() {
            o = o.add_client_certificate(cert.to_path_buf(), key.to_path_buf());
        }
        if let Some(creds) = &cfg.credentials {
            o = o.credentials_file(creds).await.map_err(|e| anyhow::anyhow!("{}: {e}", creds.display()))?;
        }
        if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
            o = o.user_and_password(u.clone(), p.clone());
        }
        Ok(o)
    }

    pub async fn open(cfg: &NatsInput) -> anyhow::Result<NatsSource> {
        let servers: Vec<async_nats::ServerAddr> = cfg.servers.iter().map(|s| s.parse()).collect::<Result<_, _>>()?;
        let client = Self::options(cfg).await?.connect(servers).await?;
        let js = jetstream::new(client.clone());
        // A cluster that is still forming (or electing) refuses for a while: wait for it.
        let deadline = std::time::Instant::now() + SETUP_PATIENCE;
        let consumer = loop {
            match Self::stream_and_consumer(&js, cfg).await {
                Ok(c) => break c,
                Err(e) if std::time::Instant::now() < deadline => {
                    tracing::warn!(error = %e, "JetStream not ready; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let messages = consumer
            .stream()
            .max_messages_per_batch(500)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(10))
            .messages()
            .await?;
        Ok(NatsSource { client, consumer, messages })
    }

    async fn stream_and_consumer(
        js: &jetstream::Context,
        cfg: &NatsInput,
    ) -> anyhow::Result<jetstream::consumer::Consumer<pull::Config>> {
        let stream = js
            .get_or_create_stream(stream::Config {
                name: cfg.stream.clone(),
                subjects: SUBJECTS.iter().map(|s| s.to_string()).collect(),
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                num_replicas: cfg.replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("JetStream stream {}: {e}", cfg.stream))?;
        let consumer = stream
            .get_or_create_consumer(
                &cfg.consumer,
                pull::Config {
                    durable_name: Some(cfg.consumer.clone()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: ACK_WAIT,
                    max_ack_pending: 20_000,
                    num_replicas: cfg.replicas,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("JetStream consumer {}: {e}", cfg.consumer))?;
        Ok(consumer)
    }

    fn delivery(item: Result<jetstream::Message, impl std::fmt::Display>) -> Option<Delivery> {
        match item {
            Ok(m) => Some(Delivery {
                topic: topic_of(m.subject.as_str()),
                payload: m.payload.clone(),
                token: Token::Nats(Box::new(m)),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "JetStream pull: retrying");
                None
            }
        }
    }

    pub async fn next(&mut self) -> Option<Delivery> {
        loop {
            let item = self.messages.next().await?;
            if let Some(d) = Self::delivery(item) {
                return Some(d);
            }
        }
    }

    pub fn try_next(&mut self) -> Option<Delivery> {
        Self::delivery(self.messages.next().now_or_never()??)
    }

    pub async fn publish(&self, topic: &str, payload: Vec<u8>) -> anyhow::Result<()> {
        self.client.publish(subject_of(topic), payload.into()).await?;
        Ok(())
    }

    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    pub async fn lag(&self) -> Option<u64> {
        let mut c = self.consumer.clone();
        c.info().await.ok().map(|i| i.num_pending)
    }
}
