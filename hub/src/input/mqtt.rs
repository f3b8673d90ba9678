//! An MQTT v5 broker (mosquitto): every instance of the hub subscribes to
//! `$share/{group}/spokegate/v1/#`, so the broker gives each message to one of them. Messages are
//! acknowledged (PUBACK) by hand, after the batch holding them is committed. Over `mqtts://` the
//! connection is TLS as the gateway's is (`spokegate::mqtt::tls`: the broker always verified, a
//! CA file and a client certificate where configured).

use super::{Delivery, Token};
use crate::config::MqttInput;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Unacknowledged messages the broker may send this instance (MQTT v5 Receive Maximum): more
/// than a few batches, so that one instance is kept busy while the last batch commits.
const RECEIVE_MAXIMUM: u16 = 2000;

pub struct MqttSource {
    client: AsyncClient,
    arrived: mpsc::UnboundedReceiver<Publish>,
    connected: Arc<AtomicBool>,
}

impl MqttSource {
    pub fn open(cfg: &MqttInput) -> anyhow::Result<MqttSource> {
        let url = spokegate::config::MqttUrl::parse(&cfg.url)?;
        let mut o = MqttOptions::new(&cfg.client_id, url.host, url.port);
        o.set_manual_acks(true);
        o.set_clean_start(true);
        o.set_keep_alive(Duration::from_secs(15));
        o.set_max_packet_size(Some(spokegate::mqtt::MAX_PACKET as u32));
        // The broker sends at most this many messages we have not acknowledged: it bounds what
        // waits in the channel below (which must never make the event loop wait, or the
        // acknowledgements that would empty it could not go out).
        o.set_receive_maximum(Some(RECEIVE_MAXIMUM));
        if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
            o.set_credentials(u, p);
        }
        if url.tls {
            // The files were read when the configuration was checked; read again here, a file
            // gone since is an error at start rather than a plain connection.
            o.set_transport(spokegate::mqtt::tls::transport(cfg.ca.as_deref(), cfg.client_cert())?);
        }
        let (client, mut eventloop) = AsyncClient::new(o, 4096);
        let (tx, arrived) = mpsc::unbounded_channel();
        let connected = Arc::new(AtomicBool::new(false));
        let filter = format!("$share/{}/{}/#", cfg.group, spokegate::mqtt::topics::PREFIX);
        let (sub, flag) = (client.clone(), connected.clone());
        // The event loop runs on its own task and is never cancelled half-way.
        tokio::spawn(async move {
            // The last failure logged: a broker that refuses us says why once, not every retry.
            let mut last_failure = String::new();
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        flag.store(true, Ordering::Relaxed);
                        last_failure.clear();
                        if let Err(e) = sub.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                            tracing::warn!(error = %e, "cannot subscribe");
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if tx.send(p).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let why = e.to_string();
                        if flag.swap(false, Ordering::Relaxed) {
                            tracing::warn!(error = %why, "broker connection lost; reconnecting");
                        } else if why != last_failure {
                            tracing::warn!(error = %why, "cannot reach the broker; retrying");
                        }
                        last_failure = why;
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
        Ok(MqttSource { client, arrived, connected })
    }

    fn delivery(p: Publish) -> Delivery {
        Delivery {
            topic: String::from_utf8_lossy(&p.topic).into_owned(),
            payload: p.payload.clone(),
            token: Token::Mqtt(Box::new(p)),
        }
    }

    pub async fn next(&mut self) -> Option<Delivery> {
        self.arrived.recv().await.map(Self::delivery)
    }

    pub fn try_next(&mut self) -> Option<Delivery> {
        self.arrived.try_recv().ok().map(Self::delivery)
    }

    pub async fn settle(&self, p: &Publish) {
        if let Err(e) = self.client.ack(p).await {
            tracing::warn!(error = %e, "PUBACK not sent; the message may come again and be stored once");
        }
    }

    pub async fn publish(&self, topic: &str, payload: Vec<u8>) -> anyhow::Result<()> {
        self.client.publish(topic, QoS::AtLeastOnce, false, payload).await?;
        Ok(())
    }

    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
}
