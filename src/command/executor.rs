//! The executor: one task that takes every command, from hubs (raw, to authenticate) and from the
//! operator (over the local socket), runs it, and answers: hubs with signed `reply` bodies through
//! the pipeline (and a signed `cmd-refused` event for every refusal), the operator with reply lines.
//! Commands run one at a time; one that takes time (a device request) is accepted, and its end is
//! awaited in its own task so the next command is not held up.

use super::auth::{authenticate, Refused};
use super::{Answer, Args, Command, Context, Origin, Outcome};
use crate::clock::now_micros;
use crate::device::EventLimiter;
use crate::model::{Event, Reply, ReplyState, Severity};
use crate::mqtt::InboundCommand;
use crate::pipeline::{Outgoing, Payload, Source, ToSign};
use crate::queue::{lock, Queue};
use crate::sign::KeyRing;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;

/// A command from the operator (the local socket, the operator page).
#[derive(Debug)]
pub struct LocalRequest {
    pub name: String,
    pub args: Args,
    /// Every reply line goes here; the last one has a final state.
    pub replies: mpsc::Sender<ReplyLine>,
}

/// One answer to the operator, as a JSON line on the socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyLine {
    pub state: ReplyState,
    pub code: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Args>,
}

/// Where a command's replies go.
#[derive(Clone)]
enum ReplyTo {
    Hub { pipeline: mpsc::Sender<Outgoing>, hub: String, id: String, dev: Option<Source> },
    Operator(mpsc::Sender<ReplyLine>),
}

impl ReplyTo {
    async fn send(&self, state: ReplyState, a: Answer) {
        match self {
            ReplyTo::Hub { pipeline, hub, id, dev } => {
                let reply =
                    Reply { cmd: id.clone(), hub: hub.clone(), state, code: a.code, text: a.text, data: a.data };
                let job = ToSign { from: dev.clone(), ..ToSign::gateway(Payload::Reply(reply)) };
                let _ = pipeline.send(Outgoing::Signed(job)).await;
            }
            ReplyTo::Operator(tx) => {
                let _ = tx.send(ReplyLine { state, code: a.code, text: a.text, data: a.data }).await;
            }
        }
    }
}

/// The executor's fixed parts.
pub struct Executor {
    pub ctx: Context,
    /// The hub keys this gateway obeys.
    pub keys: KeyRing,
    pub queue: Arc<Mutex<Queue>>,
}

/// Runs until shutdown (or until both inputs close).
pub async fn run_executor(
    ex: Executor,
    mut hub: mpsc::Receiver<InboundCommand>,
    mut local: mpsc::Receiver<LocalRequest>,
    mut shutdown: crate::shutdown::Shutdown,
) {
    let mut refusals = EventLimiter::new(5, 20);
    let (mut hub_open, mut local_open) = (true, true);
    while hub_open || local_open {
        tokio::select! {
            _ = shutdown.triggered() => break,
            m = hub.recv(), if hub_open => match m {
                Some(m) => ex.hub_command(m, &mut refusals).await,
                None => hub_open = false,
            },
            r = local.recv(), if local_open => match r {
                Some(r) => ex.local_command(r).await,
                None => local_open = false,
            },
        }
    }
}

impl Executor {
    async fn hub_command(&self, m: InboundCommand, refusals: &mut EventLimiter) {
        let (site, gw) = (&self.ctx.signer.site, &self.ctx.signer.gw);
        let now = now_micros();
        let cmd = match authenticate(&m.topic, &m.payload, &self.keys, site, gw, now) {
            Ok(a) => a.cmd,
            Err(r) => return self.refuse(r, refusals).await,
        };
        let (hub, id) = (cmd.hub.clone(), cmd.id.clone());
        let who = (hub.clone(), id.clone(), cmd.name.clone());
        let named = move |code: &'static str, text: String| Refused {
            code,
            text,
            hub: Some(who.0.clone()),
            id: Some(who.1.clone()),
            name: Some(who.2.clone()),
        };
        let queue = self.queue.clone();
        let (h, i, exp) = (hub.clone(), id.clone(), cmd.exp);
        let first = tokio::task::spawn_blocking(move || lock(&queue).first_command(&h, &i, exp, now)).await;
        match first {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                return self
                    .refuse(named("replayed", format!("command {id} of {hub} was already received")), refusals)
                    .await
            }
            // Without a durable record of the id, a replay could not be recognised: not executed.
            _ => return self.refuse(named("store-unavailable", "cannot record the command id".into()), refusals).await,
        }
        let command = match Command::parse(&cmd.name, &cmd.args) {
            Ok(Some(c)) => c,
            Ok(None) => {
                let text = format!("unknown command `{}` (known: {})", cmd.name, super::NAMES.join(", "));
                return self.refuse(named("unknown-command", text), refusals).await;
            }
            Err(bad) => return self.refuse(named("bad-args", bad.0), refusals).await,
        };
        let dev = command
            .device()
            .and_then(|d| self.ctx.devices.get(d).map(|h| (d, h)))
            .map(|(d, h)| Source { dev: d.into(), profile: h.profile.id.as_str().into() });
        tracing::info!(%hub, %id, name = %cmd.name, "hub command");
        let to = ReplyTo::Hub { pipeline: self.ctx.pipeline.clone(), hub: hub.clone(), id: id.clone(), dev };
        let origin = Origin::Hub { hub, id };
        match command.apply(&self.ctx, &origin).await {
            Outcome::Refused(a) => {
                let r = named(refusal_code(&a.code), a.text.clone());
                self.refuse(r, refusals).await
            }
            other => answer(other, to).await,
        }
    }

    async fn local_command(&self, r: LocalRequest) {
        let to = ReplyTo::Operator(r.replies.clone());
        let command = match Command::parse(&r.name, &r.args) {
            Ok(Some(c)) => c,
            Ok(None) => {
                let text = format!("unknown command `{}` (known: {})", r.name, super::NAMES.join(", "));
                return to.send(ReplyState::Refused, Answer::new("unknown-command", text)).await;
            }
            Err(bad) => return to.send(ReplyState::Refused, Answer::new("bad-args", bad.0)).await,
        };
        tracing::info!(name = %r.name, "operator command");
        answer(command.apply(&self.ctx, &Origin::Operator).await, to).await;
    }

    /// A refused command: never executed; a signed `cmd-refused` event always, and a `refused`
    /// reply where the command's id could be read (both within a rate, so a flood of forged
    /// commands cannot fill the queue).
    async fn refuse(&self, r: Refused, limiter: &mut EventLimiter) {
        tracing::warn!(code = r.code, reason = %r.text, hub = ?r.hub, id = ?r.id, "hub command refused");
        let Some(suppressed) = limiter.admit(Instant::now()) else { return };
        let mut event =
            Event::new("cmd-refused", Severity::Warn, format!("command refused: {}", r.text)).with("reason", r.code);
        for (k, v) in [("hub", &r.hub), ("id", &r.id), ("name", &r.name)] {
            if let Some(v) = v {
                event = event.with(k, v.as_str());
            }
        }
        if suppressed > 0 {
            event = event.with("suppressed_before", suppressed);
        }
        let pipeline = &self.ctx.pipeline;
        let _ = pipeline.send(Outgoing::Signed(ToSign::gateway(Payload::Event(event)))).await;
        if let (Some(hub), Some(id)) = (r.hub, r.id.filter(|i| crate::ids::is_valid_token(i))) {
            let to = ReplyTo::Hub { pipeline: pipeline.clone(), hub, id, dev: None };
            to.send(ReplyState::Refused, Answer::new(r.code, r.text)).await;
        }
    }
}

/// A refusal a command gave after it was parsed: its own code when it is one the README lists.
fn refusal_code(code: &str) -> &'static str {
    match code {
        "bad-args" => "bad-args",
        "other-consult-open" => "other-consult-open",
        _ => "refused",
    }
}

/// Sends the outcome: done / failed now, or accepted now and the end later.
async fn answer(outcome: Outcome, to: ReplyTo) {
    match outcome {
        Outcome::Done(a) => to.send(ReplyState::Done, a).await,
        Outcome::Failed(a) => to.send(ReplyState::Failed, a).await,
        Outcome::Refused(a) => to.send(ReplyState::Refused, a).await,
        Outcome::Later(pending) => {
            to.send(ReplyState::Accepted, Answer::new("accepted", "the device is on it")).await;
            tokio::spawn(async move {
                match pending.await {
                    Ok(a) => to.send(ReplyState::Done, a).await,
                    Err(a) => to.send(ReplyState::Failed, a).await,
                }
            });
        }
    }
}
