//! Folder devices: a microscope's vendor software saves images into a folder; the gateway sends
//! each new file once, when it is complete.
//!
//! - The folder is watched with `notify` (inotify) and, as a safety net for missed events, looked
//!   at again every [`RESCAN`].
//! - A file is complete when it was closed after writing and has not changed since, or when its
//!   size and modification time have not changed for [`SETTLE`] (software that keeps it open).
//! - "New" is by the file's status-change time (`ctime`: set when the file is created or moved
//!   into the folder, and not by tools that copy a file's times), then name: the device's
//!   memory in the queue is the (ctime, name) of the last file handled, committed with that file's
//!   parts, so after a restart only later files are sent. At the first start (no memory), the files
//!   already in the folder are not sent.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a file's size and time must stay unchanged for it to count as complete.
pub const SETTLE: Duration = Duration::from_millis(1500);
/// How often the folder is listed even without an event.
pub const RESCAN: Duration = Duration::from_secs(2);

/// The (ctime in ns, name) of the last file handled: later files are new.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mark {
    pub ctime_ns: i128,
    pub name: String,
}

impl Mark {
    /// The memory's text form: `ctime_ns name`.
    pub fn to_memory(&self) -> String {
        format!("{} {}", self.ctime_ns, self.name)
    }

    pub fn from_memory(text: &str) -> Option<Mark> {
        let (t, name) = text.split_once(' ')?;
        Some(Mark { ctime_ns: t.parse().ok()?, name: name.into() })
    }
}

/// A file as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl Listed {
    pub fn mark(&self) -> Mark {
        Mark { ctime_ns: self.ctime_ns, name: self.name.clone() }
    }
}

#[derive(Debug)]
struct Candidate {
    listed: Listed,
    unchanged_since: Instant,
    closed: bool,
}

/// Which files are new and complete: the pure logic of a folder device, fed by listings and
/// close events, tested without a file system.
#[derive(Debug)]
pub struct FolderTracker {
    mark: Mark,
    pattern: Option<String>,
    candidates: HashMap<String, Candidate>,
}

impl FolderTracker {
    pub fn new(mark: Mark, pattern: Option<String>) -> Self {
        Self { mark, pattern, candidates: HashMap::new() }
    }

    pub fn mark(&self) -> &Mark {
        &self.mark
    }

    /// Whether a file name is one the device sends.
    pub fn wanted(&self, name: &str) -> bool {
        !name.starts_with('.') && self.pattern.as_deref().is_none_or(|p| glob_match(p, name))
    }

    /// The folder as listed now (files not in it are forgotten).
    pub fn listed(&mut self, files: Vec<Listed>, now: Instant) {
        let mut next = HashMap::new();
        for f in files {
            if !self.wanted(&f.name) || f.mark() <= self.mark {
                continue;
            }
            let c = match self.candidates.remove(&f.name) {
                Some(c) if c.listed == f => c,
                // New, or changed since: it is being written.
                _ => Candidate { listed: f.clone(), unchanged_since: now, closed: false },
            };
            next.insert(f.name, c);
        }
        self.candidates = next;
    }

    /// A writer closed the file (inotify `IN_CLOSE_WRITE`).
    pub fn closed(&mut self, name: &str) {
        if let Some(c) = self.candidates.get_mut(name) {
            c.closed = true;
        }
    }

    /// The files complete now, oldest first.
    pub fn ready(&self, now: Instant) -> Vec<Listed> {
        let mut ready: Vec<Listed> = self
            .candidates
            .values()
            .filter(|c| c.closed || now.duration_since(c.unchanged_since) >= SETTLE)
            .map(|c| c.listed.clone())
            .collect();
        ready.sort_by_key(|l| l.mark());
        ready
    }

    /// The file was handled (sent or refused): it and everything before it are not new anymore.
    pub fn handled(&mut self, file: &Listed) {
        if file.mark() > self.mark {
            self.mark = file.mark();
        }
        let mark = self.mark.clone();
        self.candidates.retain(|_, c| c.listed.mark() > mark);
    }
}

/// `*` (any run) and `?` (one character), case-insensitive.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let n: Vec<char> = name.to_lowercase().chars().collect();
    let (mut pi, mut ni, mut star, mut from) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            from = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            from += 1;
            ni = from;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn nanos(secs: i64, nsec: i64) -> i128 {
    i128::from(secs) * 1_000_000_000 + i128::from(nsec)
}

/// The regular files in `dir` (not following symbolic links out of it).
pub fn list(dir: &Path) -> std::io::Result<Vec<Listed>> {
    use std::os::unix::fs::MetadataExt;
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
        files.push(Listed {
            name,
            size: meta.len(),
            mtime_ns: nanos(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: nanos(meta.ctime(), meta.ctime_nsec()),
        });
    }
    Ok(files)
}

/// The mark at a first start: every file there now is old.
pub fn mark_now(dir: &Path) -> Mark {
    let newest = list(dir).ok().and_then(|files| files.iter().map(Listed::mark).max());
    let now = nanos(crate::clock::now_micros() / 1_000_000, 0);
    match newest {
        Some(m) if m.ctime_ns > now => m,
        _ => Mark { ctime_ns: now, name: String::new() },
    }
}

/// What the watcher saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderEvent {
    /// Something in the folder changed: list it again.
    Changed,
    /// A writer closed this file.
    Closed(String),
}

/// Watches `dir` (inotify); events arrive on the returned channel while the watcher lives.
pub fn watch(
    dir: &Path,
) -> notify::Result<(notify::RecommendedWatcher, tokio::sync::mpsc::UnboundedReceiver<FolderEvent>)> {
    use notify::event::{AccessKind, AccessMode, EventKind};
    use notify::Watcher;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else {
            let _ = tx.send(FolderEvent::Changed);
            return;
        };
        if let EventKind::Access(AccessKind::Close(AccessMode::Write)) = ev.kind {
            for p in &ev.paths {
                if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
                    let _ = tx.send(FolderEvent::Closed(name.to_string()));
                }
            }
        }
        let _ = tx.send(FolderEvent::Changed);
    })?;
    watcher.watch(dir, notify::RecursiveMode::NonRecursive)?;
    Ok((watcher, rx))
}

/// The path of a listed file.
pub fn path_of(dir: &Path, file: &Listed) -> PathBuf {
    dir.join(&file.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64, t: i128) -> Listed {
        Listed { name: name.into(), size, mtime_ns: t, ctime_ns: t }
    }

    fn tracker() -> FolderTracker {
        FolderTracker::new(Mark { ctime_ns: 100, name: String::new() }, Some("*.jpg".into()))
    }

    #[test]
    fn a_file_is_ready_once_it_stops_changing_for_the_settle_time() {
        let mut t = tracker();
        let t0 = Instant::now();
        t.listed(vec![file("a.jpg", 10, 200)], t0);
        assert!(t.ready(t0 + SETTLE / 2).is_empty());
        // Still growing: the clock starts again.
        t.listed(vec![file("a.jpg", 20, 201)], t0 + SETTLE / 2);
        assert!(t.ready(t0 + SETTLE).is_empty());
        t.listed(vec![file("a.jpg", 20, 201)], t0 + SETTLE);
        assert_eq!(t.ready(t0 + SETTLE / 2 + SETTLE), vec![file("a.jpg", 20, 201)]);
    }

    #[test]
    fn a_closed_file_is_ready_at_once_unless_it_changes_again() {
        let mut t = tracker();
        let t0 = Instant::now();
        t.listed(vec![file("a.jpg", 10, 200)], t0);
        t.closed("a.jpg");
        assert_eq!(t.ready(t0).len(), 1);
        t.listed(vec![file("a.jpg", 30, 202)], t0);
        assert!(t.ready(t0).is_empty(), "written again after the close");
    }

    #[test]
    fn old_hidden_and_unmatched_files_are_never_candidates() {
        let mut t = tracker();
        let t0 = Instant::now();
        t.listed(vec![file("old.jpg", 1, 50), file(".partial.jpg", 1, 300), file("notes.txt", 1, 300)], t0);
        assert!(t.ready(t0 + SETTLE).is_empty());
    }

    #[test]
    fn handled_files_move_the_mark_and_ready_files_come_oldest_first() {
        let mut t = tracker();
        let t0 = Instant::now();
        t.listed(vec![file("b.jpg", 1, 300), file("a.JPG", 1, 200)], t0);
        let ready = t.ready(t0 + SETTLE);
        assert_eq!(ready.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["a.JPG", "b.jpg"]);
        t.handled(&ready[0]);
        assert_eq!(t.mark(), &Mark { ctime_ns: 200, name: "a.JPG".into() });
        t.listed(vec![file("b.jpg", 1, 300), file("a.JPG", 1, 200)], t0 + SETTLE);
        assert_eq!(t.ready(t0 + 2 * SETTLE).len(), 1);
    }

    #[test]
    fn the_mark_survives_its_memory_form() {
        let m = Mark { ctime_ns: 1_700_000_000_123_456_789, name: "field 3.jpg".into() };
        assert_eq!(Mark::from_memory(&m.to_memory()), Some(m));
        assert_eq!(Mark::from_memory("garbage"), None);
    }

    #[test]
    fn globs_match_like_a_shell_without_case() {
        assert!(glob_match("*.jpg", "IMG_0001.JPG"));
        assert!(glob_match("img_????.jpg", "img_0001.jpg"));
        assert!(!glob_match("*.jpg", "img.jpeg"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
    }
}
