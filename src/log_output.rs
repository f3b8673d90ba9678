//! Where the log goes and how it looks, for the gateway and the hub service alike. On a terminal
//! or a file: coloured where stderr is a terminal, with times. Into systemd's journal (stderr is
//! the stream `JOURNAL_STREAM` names): plain text without times, since the journal stamps every
//! line itself, each line led by its syslog priority (`<4>` a warning), which the journal takes
//! as the line's priority, so `journalctl -u spokegate -p warning` shows what went wrong.

use std::fmt;
use std::io::IsTerminal;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// Sets the process's log up: `filter` chooses what is logged; `targets` shows each line's module.
pub fn init(filter: EnvFilter, targets: bool) {
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if stderr_is_the_journal() {
        let format = tracing_subscriber::fmt::format().with_target(targets).without_time().with_ansi(false);
        builder.with_ansi(false).event_format(Prioritised(format)).init();
    } else {
        builder.with_target(targets).with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// A line's syslog priority (RFC 5424's severities, as sd-daemon(3) prefixes them).
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// Leads each event's line with its syslog priority.
struct Prioritised<F>(F);

impl<S, N, F> FormatEvent<S, N> for Prioritised<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        write!(writer, "<{}>", priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// Whether stderr is the journal's stream: systemd names it in `JOURNAL_STREAM` (`device:inode`),
/// and a process that inherited the variable with stderr sent elsewhere is not.
fn stderr_is_the_journal() -> bool {
    let Ok(named) = std::env::var("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = named.split_once(':') else { return false };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else { return false };
    // SAFETY: fstat writes into the zeroed struct it is given, for a descriptor every process has.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(libc::STDERR_FILENO, &mut st) } != 0 {
        return false;
    }
    st.st_dev == dev && st.st_ino == ino
}
