//! Asking a spoke (v1.1): sign a command with a hub key, publish it, and collect the gateway's
//! replies until the final one. What `spokegate hub send` runs, and what hub software does.

use crate::clock::now_micros;
use crate::command::auth::sign_command;
use crate::command::Args;
use crate::model::{Body, CmdBody, ReplyState};
use crate::mqtt::{spawn_poller, topics};
use crate::sign::{open_from_gateway, KeyRing, SigningKey};
use rumqttc::{Event, Packet, QoS};
use std::time::Duration;

/// One reply as it arrived: the body, and whether its signature was checked.
#[derive(Debug, Clone)]
pub struct ReceivedReply {
    pub body: Body,
    /// Verified with the gateway key bound to the site and gateway (false: no keyring given).
    pub verified: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error("{0}")]
    Sign(String),
    #[error("MQTT: {0}")]
    Mqtt(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("no final reply within {0} s")]
    Timeout(u64),
    #[error("a reply failed verification: {0}")]
    Rejected(String),
}

/// A command to send.
pub struct Ask<'a> {
    /// The broker, its TLS files and login.
    pub broker: &'a super::BrokerLogin,
    pub key: &'a SigningKey,
    pub site: &'a str,
    pub gw: &'a str,
    pub name: &'a str,
    pub args: Args,
    /// Gateway keys to verify replies with (empty: replies are not verified, and say so).
    pub keys: &'a KeyRing,
    /// How long the command is valid, and how long to wait for its final reply.
    pub timeout: Duration,
}

/// Sends the command and returns every reply, the final one last; `each` sees them as they come.
pub async fn ask(a: Ask<'_>, mut each: impl FnMut(&ReceivedReply)) -> Result<Vec<ReceivedReply>, AskError> {
    let now = now_micros();
    let id = format!("{}-{now}-{}", a.key.hub().unwrap_or("hub"), std::process::id());
    let exp = now + a.timeout.as_micros() as i64;
    let body = CmdBody::new(a.site, a.gw, &id, a.name, a.args, now, exp);
    let cmd = sign_command(a.key, body).map_err(AskError::Sign)?;
    let o = a
        .broker
        .options(&format!("spokegate-ask-{}-{now}", std::process::id()))
        .map_err(|e| AskError::Tls(e.to_string()))?;
    let (client, eventloop) = crate::mqtt::client(o, 16);
    let mut events = spawn_poller(eventloop, 1024);
    let reply_topic = topics::reply(a.site, a.gw, &id);
    let mut replies = Vec::new();
    let deadline = tokio::time::Instant::now() + a.timeout;
    loop {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| AskError::Timeout(a.timeout.as_secs()))?;
        match ev.unwrap_or(Err(None)) {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                client.try_subscribe(&reply_topic, QoS::AtLeastOnce).map_err(|e| AskError::Mqtt(e.to_string()))?;
            }
            // Subscribed first, so no reply can be missed.
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                client
                    .try_publish(topics::cmd(a.site, a.gw, a.name), QoS::AtLeastOnce, false, cmd.clone())
                    .map_err(|e| AskError::Mqtt(e.to_string()))?;
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == reply_topic => {
                let r = open_reply(&p.payload, a.keys, a.site, a.gw)?;
                each(&r);
                let last = r.body.reply.as_ref().is_none_or(|x| x.state.is_final());
                replies.push(r);
                if last {
                    let _ = client.try_disconnect();
                    return Ok(replies);
                }
            }
            Ok(_) => {}
            Err(e) => {
                return Err(AskError::Mqtt(e.map(|e| e.to_string()).unwrap_or_else(|| "connection ended".into())))
            }
        }
    }
}

fn open_reply(payload: &[u8], keys: &KeyRing, site: &str, gw: &str) -> Result<ReceivedReply, AskError> {
    if keys.is_empty() {
        let body = crate::sign::peek_unverified::<Body>(payload)
            .ok_or_else(|| AskError::Rejected("not a signed reply body".into()))?;
        return Ok(ReceivedReply { body, verified: false });
    }
    let (bytes, format) = open_from_gateway(payload, keys, site, gw).map_err(|e| AskError::Rejected(e.to_string()))?;
    let body = Body::decode(&bytes, format).map_err(|e| AskError::Rejected(e.to_string()))?;
    if body.reply.is_none() || body.site != site || body.gw != gw {
        return Err(AskError::Rejected("not a reply from this gateway".into()));
    }
    Ok(ReceivedReply { body, verified: true })
}

/// The final state of a list of replies.
pub fn final_state(replies: &[ReceivedReply]) -> Option<ReplyState> {
    replies.last().and_then(|r| r.body.reply.as_ref()).map(|r| r.state)
}
