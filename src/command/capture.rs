//! `capture`: a still from a camera device now; its `media` parts carry `meta.cmd`.

use super::records::ask;
use super::{dev_arg, Args, BadArgs, Context, Origin, Outcome};
use crate::device::DeviceControl;

#[derive(Debug, Clone, PartialEq)]
pub struct Capture {
    pub dev: String,
    /// Device-specific settings, passed to the camera.
    pub settings: Args,
}

impl Capture {
    pub fn parse(args: &Args) -> Result<Self, BadArgs> {
        let dev = dev_arg(args)?;
        let settings = args.iter().filter(|(k, _)| *k != "dev").map(|(k, v)| (k.clone(), v.clone())).collect();
        Ok(Self { dev, settings })
    }

    /// Accepted now; done with the image's `media` id once every part is committed to the queue.
    pub fn apply(self, ctx: &Context, origin: &Origin) -> Outcome {
        match ctx.device(&self.dev) {
            Ok(d) => {
                let cmd = origin.cmd_id();
                ask(d, |done| DeviceControl::Capture { cmd, settings: self.settings, done })
            }
            Err(a) => Outcome::Refused(a),
        }
    }
}
