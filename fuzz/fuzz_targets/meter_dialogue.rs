//! A meter that must be asked, answering anything: the dialogue state machine of every shipped
//! profile with a `[dialogue]`, driven by a script of events (a run begins, a fetch, time passes,
//! the task finds a reply usable or not, a reply line arrives). Besides not panicking, every
//! whole reply it hands over holds at most what the profile allows: one line, or a header and
//! at most `max_count` counted lines.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spokegate::dialogue::{Dialogue, Step};
use spokegate::profile::{DecoderSpec, ReplyShape};
use std::time::{Duration, Instant};

mod common;

fuzz_target!(|data: &[u8]| {
    let reg = common::profiles();
    let meters: Vec<_> = reg.ids().filter_map(|id| reg.get(id)).filter(|p| p.dialogue.is_some()).collect();
    let [pick, script @ ..] = data else { return };
    let Some(p) = meters.get(*pick as usize % meters.len().max(1)) else { return };
    let Some(spec) = p.dialogue.clone() else { return };
    let text = match &p.decoder {
        DecoderSpec::Text(t) => Some(t.clone()),
        _ => None,
    };
    let mut d = Dialogue::new(spec.clone(), text);
    let t0 = Instant::now();
    let mut now = t0;
    let Ok(utc) = time::OffsetDateTime::from_unix_timestamp(1_796_598_000) else { return };
    let mut rest = script;
    while let [op, tail @ ..] = rest {
        rest = tail;
        let steps = match op % 8 {
            0 => d.connected(now, utc),
            1 => d.fetch(now, utc),
            2 => {
                now += Duration::from_millis(u64::from(*op) * 40);
                d.tick(now, utc)
            }
            3 => d.used(now, utc),
            4 => d.unusable("fuzz", now, utc),
            5 => {
                d.clear();
                Vec::new()
            }
            _ => {
                // A reply line: the bytes up to the next `\n` (or the end).
                let end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
                let line = &rest[..end];
                rest = rest.get(end + 1..).unwrap_or(&[]);
                d.line(line, now, utc).unwrap_or_default()
            }
        };
        for step in steps {
            if let Step::Reply { req, lines } = step {
                let most = match spec.requests[req].reply {
                    ReplyShape::Counted { max, .. } => max + 1,
                    ReplyShape::Line => 1,
                    ReplyShape::None => 0,
                };
                assert!(lines.len() <= most, "a reply of {} lines to a request allowing {most}", lines.len());
            }
        }
    }
});
