//! A gateway's signed word that its wall clock was stepped (`clock-stepped`, a gateway event):
//! the gateway times (`t`, a chunk's `t0`, a binding's `since`) of the messages it signed in
//! `seq_from..=seq_to` were on the old clock, off by `step_us` against the clock it runs on now.
//! A hub keeps every message as signed and shows or exports its gateway time with the steps that
//! cover it added ([`Corrections`]); several steps add up (each says how far the clock of the
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

/// How far the gateway times of one gateway's messages move onto its clock after its steps: the
/// sum of the steps that cover a message (clamped to the range), found in O(log steps) however
/// many steps a gateway reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Corrections(
    /// The seqs where the sum changes, with the sum from there on.
    Vec<(u64, i64)>,
);

impl Corrections {
    pub fn new(steps: &[ClockStepClaim]) -> Self {
        let mut edges: Vec<(u64, i128)> = Vec::with_capacity(2 * steps.len());
        for s in steps {
            edges.push((s.seq_from, i128::from(s.step_us)));
            if let Some(after) = s.seq_to.checked_add(1) {
                edges.push((after, -i128::from(s.step_us)));
            }
        }
        edges.sort_unstable_by_key(|e| e.0);
        let mut sum = 0i128;
        let mut out: Vec<(u64, i64)> = Vec::with_capacity(edges.len());
        for (seq, change) in edges {
            sum += change;
            let now = sum.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
            match out.last_mut() {
                Some(last) if last.0 == seq => last.1 = now,
                _ => out.push((seq, now)),
            }
        }
        Corrections(out)
    }

    /// How far the gateway time of message `seq` moves (0: not at all).
    pub fn at(&self, seq: u64) -> i64 {
        match self.0.partition_point(|&(from, _)| from <= seq) {
            0 => 0,
            i => self.0[i - 1].1,
        }
    }

    /// The seq ranges `from..=to` whose gateway times move, each with how far ([`Self::at`] of
    /// every seq in it), in seq order; the ranges do not overlap.
    pub fn spans(&self) -> impl Iterator<Item = (u64, u64, i64)> + '_ {
        self.0.iter().enumerate().filter(|(_, (_, fix))| *fix != 0).map(|(i, &(from, fix))| {
            let to = self.0.get(i + 1).map_or(u64::MAX, |next| next.0 - 1);
            (from, to, fix)
        })
    }
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
        let c = Corrections::new(&steps);
        assert_eq!(c.at(5), 10 * 86_400_000_000 - 1_000_000);
        assert_eq!((c.at(1), c.at(10)), (c.at(5), c.at(5)), "the ends of a range are in it");
        assert_eq!((c.at(11), c.at(15), c.at(20)), (-1_000_000, -1_000_000, -1_000_000));
        assert_eq!((c.at(0), c.at(21), c.at(u64::MAX)), (0, 0, 0));
        let many = [ClockStepClaim { step_us: MAX_STEP_US, seq_from: 1, seq_to: 2 }; 400];
        assert_eq!(Corrections::new(&many).at(1), i64::MAX, "clamped");
        let to_the_end = ClockStepClaim { step_us: 7, seq_from: 3, seq_to: u64::MAX };
        assert_eq!(Corrections::new(&[to_the_end]).at(u64::MAX), 7);
        // The same as adding the covering steps one by one, for steps that overlap every way.
        let mixed: Vec<ClockStepClaim> = (0..50u64)
            .map(|i| ClockStepClaim {
                step_us: (i as i64 - 25) * 1_000_003,
                seq_from: i * 7 % 40,
                seq_to: i * 7 % 40 + i % 9,
            })
            .collect();
        let c = Corrections::new(&mixed);
        let spans: Vec<(u64, u64, i64)> = c.spans().collect();
        assert!(spans.windows(2).all(|w| w[0].1 < w[1].0), "spans in order, apart: {spans:?}");
        for seq in 0..60 {
            let by_hand: i64 = mixed.iter().filter(|s| s.covers(seq)).map(|s| s.step_us).sum();
            assert_eq!(c.at(seq), by_hand, "seq {seq}");
            // The spans say the same: the one holding seq, or none where nothing moves.
            let in_span = spans.iter().find(|(from, to, _)| (*from..=*to).contains(&seq)).map_or(0, |s| s.2);
            assert_eq!(in_span, by_hand, "seq {seq}: {spans:?}");
        }
        assert_eq!(Corrections::new(&[to_the_end]).spans().collect::<Vec<_>>(), [(3, u64::MAX, 7)]);
    }
}
