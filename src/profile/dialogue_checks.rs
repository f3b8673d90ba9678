//! The checks of `[dialogue]`: what the gateway asks a device that speaks only when asked, every
//! request named once and known where it is used, `{now:...}` templates and the clock's format
//! parsed, timeouts and retries in range.

use super::compile::Checker;
use super::raw::{RawDialogue, RawProfile};
use super::{ClockSpec, DialogueSpec, ReplyShape, RequestChecksum, RequestRole, RequestSpec};
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

/// The parts of a request text: literal text and `{now:FORMAT}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    Now(String),
}

/// Splits `DMT{now:[month]/[day]}` into its parts; `Err` names what is wrong.
pub fn template_parts(send: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = send;
    while let Some(i) = rest.find("{now:") {
        if i > 0 {
            parts.push(Part::Text(rest[..i].to_string()));
        }
        let after = &rest[i + 5..];
        let close = after.find('}').ok_or("`{now:` without its closing `}`")?;
        // A format description holds `[...]` items but no `}`.
        let format = &after[..close];
        super::time_format(format).map_err(|e| format!("`{format}`: {e}"))?;
        parts.push(Part::Now(format.to_string()));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    Ok(parts)
}

/// The most lines a counted reply may hold unless the profile says otherwise, and the most it may
/// say: a dump is held whole until its last line, so a header counting more is refused.
const DEFAULT_MAX_COUNT: u64 = 10_000;
const MAX_COUNT: u64 = 1_000_000;

impl Checker<'_> {
    pub(super) fn dialogue(&mut self, raw: &RawProfile) -> Option<Option<Arc<DialogueSpec>>> {
        let Some(d) = &raw.dialogue else { return Some(None) };
        if !matches!(raw.decoder.kind.get_ref().as_str(), "text") {
            self.problem(d, "dialogue", "a dialogue's replies are read by a `text` decoder (lines)");
            return None;
        }
        let d: &RawDialogue = d.get_ref();
        let mut requests = Vec::new();
        for (i, r) in d.requests.iter().enumerate() {
            let item = |k: &str| format!("dialogue.request[{i}].{k}");
            if !crate::ids::is_valid_id(r.name.get_ref()) {
                self.problem(&r.name, &item("name"), "must match [a-z0-9][a-z0-9-]{0,62}");
            }
            if d.requests[..i].iter().any(|p| p.name.get_ref() == r.name.get_ref()) {
                self.problem(&r.name, &item("name"), format!("request `{}` is named twice", r.name.get_ref()));
            }
            if let Err(e) = template_parts(r.send.get_ref()) {
                self.problem(&r.send, &item("send"), e);
            }
            if !r.send.get_ref().is_ascii() {
                self.problem(&r.send, &item("send"), "bytes are written as ASCII text and \\u0000-\\u007f escapes");
            }
            let reply = match (r.reply.get_ref().as_str(), &r.count_column) {
                ("line", None) => ReplyShape::Line,
                ("none", None) => ReplyShape::None,
                ("counted", Some(c)) if *c.get_ref() >= 1 => {
                    let max = self.in_range(&r.max_count, &item("max_count"), 1..=MAX_COUNT, DEFAULT_MAX_COUNT);
                    ReplyShape::Counted { column: *c.get_ref(), max: max as usize }
                }
                ("counted", _) => {
                    self.problem(
                        &r.reply,
                        &item("count_column"),
                        "a counted reply names the column (from 1) that counts the lines after it",
                    );
                    ReplyShape::Line
                }
                (_, Some(c)) => {
                    self.problem(c, &item("count_column"), "only a `counted` reply has a count column");
                    ReplyShape::Line
                }
                (other, None) => {
                    self.problem(
                        &r.reply,
                        &item("reply"),
                        format!("unknown reply `{other}` (known: line, counted, none)"),
                    );
                    ReplyShape::Line
                }
            };
            if let (Some(m), false) = (&r.max_count, matches!(reply, ReplyShape::Counted { .. })) {
                self.problem(m, &item("max_count"), "only a `counted` reply has `max_count`");
            }
            let role = match r.role.get_ref().as_str() {
                "readings" => RequestRole::Readings,
                "clock-read" => RequestRole::ClockRead,
                "clock-set" => RequestRole::ClockSet,
                "info" => RequestRole::Info,
                other => {
                    self.problem(
                        &r.role,
                        &item("role"),
                        format!("unknown role `{other}` (known: readings, clock-read, clock-set, info)"),
                    );
                    RequestRole::Info
                }
            };
            requests.push(RequestSpec { name: r.name.get_ref().clone(), send: r.send.get_ref().clone(), reply, role });
        }
        let on_connect = self.request_list(&d.on_connect, &requests, "dialogue.on_connect");
        let on_fetch = self.request_list(&d.on_fetch, &requests, "dialogue.on_fetch");
        let has = |role| requests.iter().any(|r| r.role == role);
        let clock = match (&d.clock, has(RequestRole::ClockRead)) {
            (Some(c), _) => {
                let format = match super::time_format(c.format.get_ref()) {
                    Ok(f) => Some(f),
                    Err(e) => {
                        self.problem(&c.format, "dialogue.clock.format", format!("not a time format description: {e}"));
                        None
                    }
                };
                for (i, col) in c.from.iter().enumerate() {
                    if *col.get_ref() == 0 {
                        self.problem(col, &format!("dialogue.clock.from[{i}]"), "columns count from 1");
                    }
                }
                if !has(RequestRole::ClockRead) {
                    self.problem(&c.format, "dialogue.clock", "no request has `role = \"clock-read\"` to read it with");
                }
                let max_skew = c.max_skew_secs.as_ref().map_or(120, |s| *s.get_ref());
                format.map(|format| ClockSpec {
                    prefix: c.prefix.clone(),
                    from: c.from.iter().map(|f| *f.get_ref()).collect(),
                    format,
                    utc_offset: self.utc_offset(&c.utc_offset, "dialogue.clock.utc_offset"),
                    max_skew: Duration::from_secs(max_skew),
                })
            }
            (None, true) => {
                let at = &d.requests.iter().find(|r| r.role.get_ref() == "clock-read")?.role;
                self.problem(
                    at,
                    "dialogue.clock",
                    "a `clock-read` request needs a [dialogue.clock] saying how to read it",
                );
                None
            }
            (None, false) => None,
        };
        let checksum = match &d.checksum {
            Some(c) if c.get_ref() == "sum16-hex" => Some(RequestChecksum::Sum16Hex),
            Some(c) => {
                self.problem(c, "dialogue.checksum", format!("unknown checksum `{}` (known: sum16-hex)", c.get_ref()));
                None
            }
            None => None,
        };
        let timeout = self.in_range(&d.timeout_ms, "dialogue.timeout_ms", 50..=600_000, 3000);
        let retries = self.in_range(
            &d.retries.as_ref().map(|r| Spanned::new(r.span(), u64::from(*r.get_ref()))),
            "dialogue.retries",
            0..=10,
            2,
        );
        let every = d.every_minutes.as_ref().map(|m| {
            if *m.get_ref() == 0 {
                self.problem(m, "dialogue.every_minutes", "must be at least 1 (leave it out for never)");
            }
            Duration::from_secs(60 * *m.get_ref())
        });
        if let Some(f) = raw.framing.as_ref().filter(|f| f.kind.get_ref() != "line") {
            self.problem(&f.kind, "framing.kind", "a dialogue reads its replies as lines: `line` framing");
        }
        Some(Some(Arc::new(DialogueSpec {
            wake: d.wake.clone().unwrap_or_default().into_bytes(),
            end: d.end.clone().unwrap_or_default().into_bytes(),
            checksum,
            timeout: Duration::from_millis(timeout),
            retries: retries as u32,
            requests,
            on_connect,
            on_fetch,
            every,
            clock,
        })))
    }

    fn request_list(&mut self, names: &[Spanned<String>], requests: &[RequestSpec], item: &str) -> Vec<usize> {
        names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let found = requests.iter().position(|r| &r.name == n.get_ref());
                if found.is_none() {
                    self.problem(
                        n,
                        &format!("{item}[{i}]"),
                        format!("no [[dialogue.request]] named `{}`", n.get_ref()),
                    );
                }
                found
            })
            .collect()
    }

    fn in_range(
        &mut self,
        v: &Option<Spanned<u64>>,
        item: &str,
        range: std::ops::RangeInclusive<u64>,
        default: u64,
    ) -> u64 {
        match v {
            Some(x) if !range.contains(x.get_ref()) => {
                self.problem(x, item, format!("must be between {} and {}", range.start(), range.end()));
                default
            }
            Some(x) => *x.get_ref(),
            None => default,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_is_cut_into_text_and_time() {
        let parts = template_parts("DMT{now:[month]/[day]/[year repr:last_two]} x").unwrap();
        assert_eq!(
            parts,
            [Part::Text("DMT".into()), Part::Now("[month]/[day]/[year repr:last_two]".into()), Part::Text(" x".into())]
        );
        assert!(template_parts("DMT{now:[month]").is_err());
        assert!(template_parts("DMT{now:[nonsense]}").is_err());
    }

    #[test]
    fn dialogue_mistakes_are_named_with_their_place() {
        let text = format!(
            "{}\n[dialogue]\non_connect = [\"dump\", \"nope\"]\nretries = 99\n[[dialogue.request]]\nname = \"dump\"\nsend = \"DMP\"\nreply = \"counted\"\nrole = \"readings\"\n[[dialogue.request]]\nname = \"dump\"\nsend = \"X{{now:[bad]}}\"\nreply = \"lines\"\nrole = \"what\"\n[[dialogue.request]]\nname = \"info\"\nsend = \"I\"\nreply = \"line\"\nmax_count = 5\nrole = \"info\"\n[[dialogue.request]]\nname = \"dump-all\"\nsend = \"DMA\"\nreply = \"counted\"\ncount_column = 1\nmax_count = 0\nrole = \"readings\"\n",
            include_str!("../../device-profiles/vitals-kv.toml")
        );
        let err = super::super::compile(std::path::Path::new("p.toml"), &text).unwrap_err().to_string();
        for item in [
            "dialogue.on_connect[1]",
            "dialogue.retries",
            "dialogue.request[0].count_column",
            "dialogue.request[1].name",
            "dialogue.request[1].send",
            "dialogue.request[1].reply",
            "dialogue.request[1].role",
            "dialogue.request[2].max_count",
            "dialogue.request[3].max_count",
        ] {
            assert!(err.contains(item), "{item} not named in:\n{err}");
        }
    }
}
