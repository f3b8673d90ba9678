//! `consult.start` / `consult.end`: bind what the gateway signs from now on to a consultation,
//! and end it. The change goes through the pipeline, so it is ordered with the readings (those
//! signed before it carry the old consult, those after it the new one), committed with its signed
//! `consult` body, and re-published (retained) after every reconnect and restart.

use super::{Answer, Args, BadArgs, Context, Origin, Outcome};
use crate::ids::is_valid_token;
use crate::pipeline::{ConsultChange, Outgoing, Payload, ToSign};
use std::time::Duration;

/// How long a consult change may wait for its commit.
const COMMIT_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub consult: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    /// When given, the consult that must be open.
    pub consult: Option<String>,
}

fn consult_arg(args: &Args, required: bool) -> Result<Option<String>, BadArgs> {
    if let Some(k) = args.keys().find(|k| *k != "consult") {
        return Err(BadArgs(format!("unknown argument `{k}` (only `consult`)")));
    }
    match args.get("consult") {
        Some(serde_json::Value::String(c)) if is_valid_token(c) => Ok(Some(c.clone())),
        Some(other) => Err(BadArgs(format!("`consult` must match [A-Za-z0-9._:-]{{1,64}}, not {other}"))),
        None if required => Err(BadArgs("`consult` is required".into())),
        None => Ok(None),
    }
}

impl Start {
    pub fn parse(args: &Args) -> Result<Self, BadArgs> {
        Ok(Self { consult: consult_arg(args, true)?.unwrap_or_default() })
    }

    /// Opens the consult; one already open is ended by it (the reply names it).
    pub async fn apply(self, ctx: &Context, origin: &Origin) -> Outcome {
        let before = ctx.signer.consult().consult;
        if before.as_deref() == Some(self.consult.as_str()) {
            return Outcome::Done(
                Answer::ok(format!("consult {} is already open", self.consult)).with("consult", self.consult),
            );
        }
        let change = ConsultChange { consult: Some(self.consult.clone()), by: origin.by(), cmd: origin.cmd_id() };
        match bind(ctx, change).await {
            Ok(()) => {
                let mut a = Answer::ok(format!("readings are bound to consult {}", self.consult))
                    .with("consult", self.consult.clone());
                if let Some(b) = before {
                    a = a.with("ended", b);
                }
                Outcome::Done(a)
            }
            Err(a) => Outcome::Failed(a),
        }
    }
}

impl End {
    pub fn parse(args: &Args) -> Result<Self, BadArgs> {
        Ok(Self { consult: consult_arg(args, false)? })
    }

    /// Ends the open consult (refused when another one than named is open).
    pub async fn apply(self, ctx: &Context, origin: &Origin) -> Outcome {
        let open = ctx.signer.consult().consult;
        match (&open, &self.consult) {
            (None, _) => Outcome::Done(Answer::ok("no consult was open")),
            (Some(o), Some(named)) if o != named => Outcome::Refused(
                Answer::new("other-consult-open", format!("consult {o} is open, not {named}")).with("open", o.clone()),
            ),
            (Some(o), _) => {
                let o = o.clone();
                let change = ConsultChange { consult: None, by: origin.by(), cmd: origin.cmd_id() };
                match bind(ctx, change).await {
                    Ok(()) => Outcome::Done(Answer::ok(format!("consult {o} ended")).with("ended", o)),
                    Err(a) => Outcome::Failed(a),
                }
            }
        }
    }
}

/// Sends the change through the pipeline and waits for its commit.
async fn bind(ctx: &Context, change: ConsultChange) -> Result<(), Answer> {
    let (job, receipt) = ToSign::gateway_with_receipt(Payload::Consult(change));
    if ctx.pipeline.send(Outgoing::Signed(job)).await.is_err() {
        return Err(Answer::new("stopping", "the gateway is stopping"));
    }
    match tokio::time::timeout(COMMIT_WAIT, receipt).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(Answer::new(
            "queue-error",
            "the binding is in force but could not be stored durably (see the gateway's queue status)",
        )),
    }
}
