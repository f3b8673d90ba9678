//! `records.fetch`: ask a meter for its stored records now (RACP, meter dump, ASTM download).

use super::{dev_arg, Answer, Args, BadArgs, Context, DeviceHandle, Outcome};
use crate::device::{DeviceControl, Done};
use std::time::Duration;

/// How long a device may take to answer a control request before it counts as failed.
const DEVICE_WAIT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    pub dev: String,
}

impl Fetch {
    pub fn parse(args: &Args) -> Result<Self, BadArgs> {
        if let Some(k) = args.keys().find(|k| *k != "dev") {
            return Err(BadArgs(format!("unknown argument `{k}` (only `dev`)")));
        }
        Ok(Self { dev: dev_arg(args)? })
    }

    pub fn apply(self, ctx: &Context) -> Outcome {
        match ctx.device(&self.dev) {
            Ok(d) => ask(d, |done| DeviceControl::FetchRecords { done }),
            Err(a) => Outcome::Refused(a),
        }
    }
}

/// Hands a request to the device task: accepted now, done or failed when the device says.
pub(super) fn ask(d: &DeviceHandle, request: impl FnOnce(Done) -> DeviceControl) -> Outcome {
    let (tx, rx) = tokio::sync::oneshot::channel();
    if d.control.try_send(request(tx)).is_err() {
        return Outcome::Failed(Answer::new("device-busy", "the device is busy with another request"));
    }
    Outcome::Later(Box::pin(async move {
        match tokio::time::timeout(DEVICE_WAIT, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Answer::new("stopping", "the device task ended")),
            Err(_) => Err(Answer::new("timeout", format!("no answer from the device in {} s", DEVICE_WAIT.as_secs()))),
        }
    }))
}
