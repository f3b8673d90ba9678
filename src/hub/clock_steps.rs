//! A gateway's signed word that its wall clock was stepped (`clock-stepped`, a gateway event):
//! the gateway times (`t`, a chunk's `t0`, a binding's `since`) of the messages it signed in
//! `seq_from..=seq_to` were on the old clock, off by `step_us` against the clock it runs on now.
//! A hub keeps every message as signed and shows or exports its gateway time with the steps that
//! cover it added ([`correction`]); several steps add up (each says how far the clock of the
//! messages before it was from the clock after it). Device times (`tdev`) are the device's own.

use crate::model::Body;

/// The code of the event.
pub const CODE: &str = "clock-stepped";

/// A step is refused beyond this (a thousand years, µs): no clock is that far off, and sums of
/// steps stay far inside an `i64`.
pub const MAX_STEP_US: i64 = 1_000 * 366 * 86_400 * 1_000_000;

/// A step as a gateway claimed it, once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockStepClaim {
    pub step_us: i64,
    pub seq_from: u64,
    pub seq_to: u64,
}

impl ClockStepClaim {
    /// Whether the gateway time of message `seq` was on the clock before this step.
    pub fn covers(&self, seq: u64) -> bool {
        (self.seq_from..=self.seq_to).contains(&seq)
    }
}

/// The step a body reports, if it is the gateway's own `clock-stepped` event (`None` for any
/// other body, a device's event of that name included); `Err` names what is impossible about it:
/// a field missing or not an integer, a step of zero or beyond [`MAX_STEP_US`], a range that is
/// empty or does not end before the event itself.
pub fn clock_step(body: &Body) -> Option<Result<ClockStepClaim, String>> {
    let e = body.event.as_ref().filter(|e| e.code == CODE && body.dev.is_none())?;
    let field = |name: &str| e.data.as_ref().and_then(|d| d.get(name));
    let int =
        |name: &str| field(name).and_then(serde_json::Value::as_i64).ok_or_else(|| format!("{name}: not an integer"));
    // A seq a database's signed 64-bit integer holds.
    let seq = |name: &str| {
        field(name)
            .and_then(serde_json::Value::as_i64)
            .and_then(|s| u64::try_from(s).ok())
            .ok_or_else(|| format!("{name}: not a seq"))
    };
    let claim = (|| {
        let step_us = int("step_us")?;
        let (seq_from, seq_to) = (seq("seq_from")?, seq("seq_to")?);
        if step_us == 0 || step_us.unsigned_abs() > MAX_STEP_US.unsigned_abs() {
            return Err(format!("step_us {step_us}: not a step a clock can take"));
        }
        if seq_from > seq_to || seq_to >= body.seq {
            return Err(format!(
                "seq {seq_from}..={seq_to}: not a range of messages signed before this one (seq {})",
                body.seq
            ));
        }
        Ok(ClockStepClaim { step_us, seq_from, seq_to })
    })();
    Some(claim)
}

/// How far the gateway time of message `seq` moves onto the gateway's clock after the `steps`
/// (those of the same gateway): the sum of the steps that cover it, saturating.
pub fn correction(seq: u64, steps: &[ClockStepClaim]) -> i64 {
    steps.iter().filter(|s| s.covers(seq)).fold(0, |sum: i64, s| sum.saturating_add(s.step_us))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Event, Severity};
    use crate::pipeline::{make_body, Payload, Source};

    fn event(seq: u64, dev: Option<&Source>, data: &[(&str, serde_json::Value)]) -> Body {
        let e = data.iter().fold(Event::new(CODE, Severity::Warn, "stepped"), |e, (k, v)| e.with(k, v.clone()));
        make_body("s", "g", dev, Payload::Event(e), seq, 1, None)
    }

    #[test]
    fn the_gateways_step_is_read_and_what_no_clock_can_do_is_refused() {
        use serde_json::json;
        let ok = event(9, None, &[("step_us", json!(-5_000_000)), ("seq_from", json!(1)), ("seq_to", json!(8))]);
        assert_eq!(clock_step(&ok), Some(Ok(ClockStepClaim { step_us: -5_000_000, seq_from: 1, seq_to: 8 })));
        let device = Source { dev: "ecg-1".into(), profile: "p".into() };
        let from_a_device =
            event(9, Some(&device), &[("step_us", json!(1)), ("seq_from", json!(1)), ("seq_to", json!(8))]);
        assert_eq!(clock_step(&from_a_device), None, "a device's event is not the gateway's clock");
        for (data, why) in [
            (vec![("seq_from", json!(1)), ("seq_to", json!(8))], "step_us: not an integer"),
            (vec![("step_us", json!(1.5)), ("seq_from", json!(1)), ("seq_to", json!(8))], "step_us: not an integer"),
            (vec![("step_us", json!(0)), ("seq_from", json!(1)), ("seq_to", json!(8))], "step_us 0"),
            (vec![("step_us", json!(i64::MIN)), ("seq_from", json!(1)), ("seq_to", json!(8))], "not a step"),
            (vec![("step_us", json!(7)), ("seq_from", json!(-1)), ("seq_to", json!(8))], "seq_from: not a seq"),
            (vec![("step_us", json!(7)), ("seq_from", json!(1)), ("seq_to", json!(u64::MAX))], "seq_to: not a seq"),
            (vec![("step_us", json!(7)), ("seq_from", json!(5)), ("seq_to", json!(4))], "seq 5..=4"),
            (vec![("step_us", json!(7)), ("seq_from", json!(1)), ("seq_to", json!(9))], "seq 1..=9"),
        ] {
            let got = clock_step(&event(9, None, &data));
            assert!(matches!(&got, Some(Err(e)) if e.contains(why)), "{data:?}: {got:?}");
        }
    }

    #[test]
    fn steps_that_cover_a_message_add_up_and_others_change_nothing() {
        // Booted ten days behind: stepped forward (1..=10), then back a second (1..=20).
        let steps = [
            ClockStepClaim { step_us: 10 * 86_400_000_000, seq_from: 1, seq_to: 10 },
            ClockStepClaim { step_us: -1_000_000, seq_from: 1, seq_to: 20 },
        ];
        assert_eq!(correction(5, &steps), 10 * 86_400_000_000 - 1_000_000);
        assert_eq!(correction(15, &steps), -1_000_000);
        assert_eq!(correction(21, &steps), 0);
        let many = [ClockStepClaim { step_us: MAX_STEP_US, seq_from: 1, seq_to: 2 }; 400];
        assert_eq!(correction(1, &many), i64::MAX, "saturates");
    }
}
