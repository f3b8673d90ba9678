//! One command path. A hub's signed `cmd`, the operator's `spokegate consult|capture|fetch ...`
//! over the local socket, and the operator page's buttons all become the same [`Command`]
//! and go through one executor (`executor.rs`), so a command behaves the same whichever door it came in by.
//!
//! A hub command is authenticated first ([`auth`]: signature with an obeyed hub key, the key's hub,
//! addressee, time window), then checked against replay (the ids seen, kept in the queue store until
//! they expire), and only then parsed: each command's file has `parse(args)` and `apply(ctx)`. A
//! refused command is never executed; it gives a signed `cmd-refused` event and, where its id could
//! be read, a `refused` reply.

pub mod auth;
mod capture;
mod consult;
mod context;
mod executor;
mod rebirth;
mod records;
pub mod socket;
mod status;
mod stream;

pub use context::{Context, DeviceHandle};
pub use executor::{run_executor, Executor, LocalRequest, ReplyLine};

use crate::model::ConsultBy;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

/// A command's arguments (`args` of the `cmd` body).
pub type Args = BTreeMap<String, serde_json::Value>;

/// Who asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A hub, by a signed command with this id.
    Hub { hub: String, id: String },
    /// The operator on the spoke PC.
    Operator,
}

impl Origin {
    pub fn by(&self) -> ConsultBy {
        match self {
            Origin::Hub { .. } => ConsultBy::Hub,
            Origin::Operator => ConsultBy::Operator,
        }
    }

    /// The hub command's id, when a hub asked.
    pub fn cmd_id(&self) -> Option<String> {
        match self {
            Origin::Hub { id, .. } => Some(id.clone()),
            Origin::Operator => None,
        }
    }
}

/// A checked command of the v1.1 table.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    ConsultStart(consult::Start),
    ConsultEnd(consult::End),
    Capture(capture::Capture),
    StreamStart(stream::Stream),
    StreamStop(stream::Stream),
    RecordsFetch(records::Fetch),
    Status,
    Rebirth,
}

/// Every command name, as the contract spells it.
pub const NAMES: [&str; 8] =
    ["consult.start", "consult.end", "capture", "stream.start", "stream.stop", "records.fetch", "status", "rebirth"];

/// Arguments a command cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadArgs(pub String);

impl Command {
    /// Parses a command by name; `Ok(None)` for a name the gateway does not know.
    pub fn parse(name: &str, args: &Args) -> Result<Option<Command>, BadArgs> {
        Ok(Some(match name {
            "consult.start" => Command::ConsultStart(consult::Start::parse(args)?),
            "consult.end" => Command::ConsultEnd(consult::End::parse(args)?),
            "capture" => Command::Capture(capture::Capture::parse(args)?),
            "stream.start" => Command::StreamStart(stream::Stream::parse(args)?),
            "stream.stop" => Command::StreamStop(stream::Stream::parse(args)?),
            "records.fetch" => Command::RecordsFetch(records::Fetch::parse(args)?),
            "status" => no_args(args).map(|()| Command::Status)?,
            "rebirth" => no_args(args).map(|()| Command::Rebirth)?,
            _ => return Ok(None),
        }))
    }

    /// The device the command is about, if any.
    pub fn device(&self) -> Option<&str> {
        match self {
            Command::Capture(c) => Some(&c.dev),
            Command::StreamStart(s) | Command::StreamStop(s) => Some(&s.dev),
            Command::RecordsFetch(f) => Some(&f.dev),
            _ => None,
        }
    }

    /// Runs the command.
    pub async fn apply(self, ctx: &Context, origin: &Origin) -> Outcome {
        match self {
            Command::ConsultStart(c) => c.apply(ctx, origin).await,
            Command::ConsultEnd(c) => c.apply(ctx, origin).await,
            Command::Capture(c) => c.apply(ctx, origin),
            Command::StreamStart(s) => s.apply(ctx, true),
            Command::StreamStop(s) => s.apply(ctx, false),
            Command::RecordsFetch(f) => f.apply(ctx),
            Command::Status => status::apply(ctx),
            Command::Rebirth => rebirth::apply(ctx),
        }
    }
}

fn no_args(args: &Args) -> Result<(), BadArgs> {
    match args.keys().next() {
        Some(k) => Err(BadArgs(format!("takes no arguments (got `{k}`)"))),
        None => Ok(()),
    }
}

/// A device id argument (`dev`), required.
fn dev_arg(args: &Args) -> Result<String, BadArgs> {
    match args.get("dev") {
        Some(serde_json::Value::String(d)) if crate::ids::is_valid_id(d) => Ok(d.clone()),
        Some(other) => Err(BadArgs(format!("`dev` must be a device id, not {other}"))),
        None => Err(BadArgs("`dev` is required".into())),
    }
}

/// What a command says when it ends (or is refused): a stable code, a sentence, and data.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub code: String,
    pub text: String,
    pub data: Option<Args>,
}

impl Answer {
    pub fn new(code: &str, text: impl Into<String>) -> Self {
        Self { code: code.into(), text: text.into(), data: None }
    }

    pub fn ok(text: impl Into<String>) -> Self {
        Self::new("ok", text)
    }

    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.data.get_or_insert_with(Args::new).insert(key.into(), value.into());
        self
    }
}

/// A command that takes time: its end (`Ok` = done, `Err` = failed).
pub type Pending = Pin<Box<dyn Future<Output = Result<Answer, Answer>> + Send>>;

/// What applying a command gave.
pub enum Outcome {
    Done(Answer),
    Failed(Answer),
    /// Not executed (nothing changed).
    Refused(Answer),
    /// Accepted now; done or failed when the future ends.
    Later(Pending),
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Done(a) => f.debug_tuple("Done").field(a).finish(),
            Outcome::Failed(a) => f.debug_tuple("Failed").field(a).finish(),
            Outcome::Refused(a) => f.debug_tuple("Refused").field(a).finish(),
            Outcome::Later(_) => f.write_str("Later"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: serde_json::Value) -> Args {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn every_command_of_the_table_parses_and_unknown_names_are_not_commands() {
        for name in NAMES {
            let a = match name {
                "consult.start" => args(json!({"consult": "C-1"})),
                "consult.end" | "status" | "rebirth" => Args::new(),
                _ => args(json!({"dev": "ecg-1"})),
            };
            assert!(Command::parse(name, &a).unwrap().is_some(), "{name}");
        }
        assert_eq!(Command::parse("reboot", &Args::new()), Ok(None));
    }

    #[test]
    fn bad_arguments_are_named() {
        let bad = [
            ("consult.start", json!({})),
            ("consult.start", json!({"consult": "has space"})),
            ("consult.start", json!({"consult": 5})),
            ("consult.end", json!({"consult": "a/b"})),
            ("capture", json!({})),
            ("stream.start", json!({"dev": "ECG 1"})),
            ("records.fetch", json!({"dev": 3})),
            ("status", json!({"x": 1})),
            ("consult.start", json!({"consult": "C", "extra": true})),
        ];
        for (name, a) in bad {
            assert!(Command::parse(name, &args(a.clone())).is_err(), "{name} {a}");
        }
    }
}
