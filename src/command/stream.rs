//! `stream.start` / `stream.stop`: a waveform device whose profile says `on_demand = true` sends
//! its samples only between the two.

use super::{dev_arg, Answer, Args, BadArgs, Context, Outcome};
use crate::device::DeviceControl;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    pub dev: String,
}

impl Stream {
    pub fn parse(args: &Args) -> Result<Self, BadArgs> {
        if let Some(k) = args.keys().find(|k| *k != "dev") {
            return Err(BadArgs(format!("unknown argument `{k}` (only `dev`)")));
        }
        Ok(Self { dev: dev_arg(args)? })
    }

    pub fn apply(self, ctx: &Context, on: bool) -> Outcome {
        let d = match ctx.device(&self.dev) {
            Ok(d) => d,
            Err(a) => return Outcome::Refused(a),
        };
        if !d.profile.wave.as_ref().is_some_and(|w| w.on_demand) {
            return Outcome::Failed(Answer::new(
                "not-on-demand",
                format!("device {} does not stream on demand (its profile has no `on_demand = true`)", self.dev),
            ));
        }
        super::records::ask(d, |done| DeviceControl::Stream { on, done })
    }
}
