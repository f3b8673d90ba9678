//! `capture`: a still from a camera device now; its `media` parts carry `meta.cmd`.

use super::{dev_arg, Answer, Args, BadArgs, Context, Origin, Outcome};

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

    pub fn apply(self, ctx: &Context, _origin: &Origin) -> Outcome {
        if let Err(a) = ctx.device(&self.dev) {
            return Outcome::Refused(a);
        }
        Outcome::Failed(Answer::new("no-camera", format!("device {} is not a camera", self.dev)))
    }
}
