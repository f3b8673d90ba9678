//! `rebirth`: re-publish the status, every device's state and the consult (retained).

use super::{Answer, Context, Outcome};

pub fn apply(ctx: &Context) -> Outcome {
    ctx.rebirth.notify_one();
    Outcome::Done(Answer::ok("status, device states and consult are published again"))
}
