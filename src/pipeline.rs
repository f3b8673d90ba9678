//! The stage between the devices and the uplink: each reading gets its `seq`, becomes a body,
//! is signed into a COSE_Sign1 envelope and is handed to MQTT. One task, so `seq` follows the order
//! in which readings were accepted. The durable queue slots in between signing and MQTT.

use crate::clock::{now_micros, now_rfc3339};
use crate::model::{Body, BodyFormat, BodyKind, Event, Observation, BODY_VERSION};
use crate::mqtt::status::{DeviceState, LinkState};
use crate::mqtt::{topics, Publication};
use crate::seq::{SeqAllocator, SeqError};
use crate::sign::{seal, GatewayKey};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Who a message is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub dev: Arc<str>,
    pub profile: Arc<str>,
}

/// The payload of a signed body.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Obs(Vec<Observation>),
    Event(Event),
}

/// What device tasks send to the pipeline.
#[derive(Debug)]
pub enum Outgoing {
    /// Something to sign and send. `accepted` is told once the message is safely handed on (with the
    /// durable queue: committed), so the device is acknowledged only then.
    Signed {
        from: Source,
        payload: Payload,
        t: i64,
        tdev: Option<i64>,
        accepted: Option<oneshot::Sender<()>>,
    },
    /// A device's link state (retained, unsigned).
    State {
        from: Source,
        state: LinkState,
        detail: Option<String>,
    },
}

/// A contract body for a payload.
pub fn make_body(
    site: &str,
    gw: &str,
    from: &Source,
    payload: Payload,
    seq: u64,
    t: i64,
    tdev: Option<i64>,
) -> Body {
    let (kind, obs, event) = match payload {
        Payload::Obs(o) => (BodyKind::Obs, Some(o), None),
        Payload::Event(e) => (BodyKind::Event, None, Some(e)),
    };
    Body {
        v: BODY_VERSION,
        kind,
        site: site.to_string(),
        gw: gw.to_string(),
        dev: from.dev.to_string(),
        prof: from.profile.to_string(),
        seq,
        t,
        tdev,
        consult: None,
        obs,
        event,
    }
}

/// Turns accepted readings into signed publications.
pub struct Sealer {
    pub site: String,
    pub gw: String,
    pub key: Arc<GatewayKey>,
    pub format: BodyFormat,
    pub seq: SeqAllocator,
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Seq(#[from] SeqError),
    #[error("body: {0}")]
    Body(#[from] crate::model::body::BodyError),
    #[error("envelope: {0}")]
    Envelope(#[from] crate::sign::EnvelopeError),
}

impl Sealer {
    /// The body for a payload, with the next `seq`.
    pub fn body(
        &mut self,
        from: &Source,
        payload: Payload,
        t: i64,
        tdev: Option<i64>,
    ) -> Result<Body, SeqError> {
        Ok(make_body(
            &self.site,
            &self.gw,
            from,
            payload,
            self.seq.allocate()?,
            t,
            tdev,
        ))
    }

    /// Signs a payload into a publication.
    pub fn seal(
        &mut self,
        from: &Source,
        payload: Payload,
        t: i64,
        tdev: Option<i64>,
    ) -> Result<Publication, SealError> {
        let body = self.body(from, payload, t, tdev)?;
        let bytes = seal(&self.key, body.encode(self.format)?, self.format)?;
        Ok(Publication {
            topic: topics::body(&self.site, &self.gw, &from.dev, body.kind, None),
            payload: bytes,
            retain: false,
        })
    }

    fn state(&self, from: &Source, state: LinkState, detail: Option<String>) -> Publication {
        let s = DeviceState {
            state,
            profile: from.profile.to_string(),
            since: now_rfc3339(),
            detail,
        };
        Publication {
            topic: topics::device_state(&self.site, &self.gw, &from.dev),
            payload: s.to_json(),
            retain: true,
        }
    }

    /// Runs until every sender is gone; returns after the last publication is handed on.
    pub async fn run(
        mut self,
        mut input: mpsc::Receiver<Outgoing>,
        output: mpsc::Sender<Publication>,
    ) {
        while let Some(msg) = input.recv().await {
            let publication = match msg {
                Outgoing::State {
                    from,
                    state,
                    detail,
                } => self.state(&from, state, detail),
                Outgoing::Signed {
                    from,
                    payload,
                    t,
                    tdev,
                    accepted,
                } => match self.seal(&from, payload, t, tdev) {
                    Ok(p) => {
                        if output.send(p).await.is_err() {
                            return;
                        }
                        if let Some(a) = accepted {
                            let _ = a.send(());
                        }
                        continue;
                    }
                    Err(e) => {
                        // Dropping `accepted` tells the device task the reading was not taken.
                        tracing::error!(dev = %from.dev, error = %e, "cannot sign a reading; it is not acknowledged");
                        continue;
                    }
                },
            };
            if output.send(publication).await.is_err() {
                return;
            }
        }
    }
}

/// Gateway time for a reading taken now.
pub fn capture_time() -> i64 {
    now_micros()
}
