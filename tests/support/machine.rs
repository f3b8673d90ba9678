//! A machine with systemd as PID 1, for what only systemd can show: a unit's sandbox applied to the
//! running daemon, `Type=notify`, restarts, exit codes and the journal. `systemd-nspawn` boots this
//! machine's own root file system seen through an overlay whose changes live in a tmpfs and go
//! with it, in a network namespace of its own (loopback only), to a target that starts nothing but
//! systemd's early units (the journal, sysusers, tmpfiles). Needs root, overlayfs and
//! `systemd-nspawn` (Debian's `systemd-container`, installed by `.ci/setup`).
//!
//! This VM's cgroups are the hybrid layout, and nspawn hands the machine the devices controller
//! read-only; the machine mounts it writable so that `DevicePolicy=`/`DeviceAllow=` are enforced
//! (`boot`). Everything per process is too: users, capabilities, `NoNewPrivileges`, the
//! system-call filter, the mount namespace.

// Both crates' test binaries include this file, each using part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a booted machine may take to do what a step asks.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A booted machine; powered off (killed) and its overlay unmounted when dropped.
pub struct Machine {
    nspawn: Child,
    /// The machine's PID 1 as this host sees it.
    leader: u32,
    root: PathBuf,
    dir: tempfile::TempDir,
    /// The machine's own cgroups, removed with it.
    cgroups: Vec<PathBuf>,
}

/// The cgroup hierarchies systemd uses here: the unified one alone, or in the hybrid layout this
/// VM has, its own named hierarchy, the unified one beside it, and the devices controller (for
/// `DevicePolicy=`).
fn cgroup_hierarchies() -> Vec<PathBuf> {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        return vec![PathBuf::from("/sys/fs/cgroup")];
    }
    ["/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/devices"]
        .into_iter()
        .map(PathBuf::from)
        .filter(|h| h.exists())
        .collect()
}

/// The target the machine boots to: systemd's early units and nothing of the host's services.
const TARGET: &str = "[Unit]\nDescription=spokegate test machine\nRequires=sysinit.target\n\
After=sysinit.target\nAllowIsolate=yes\n";

impl Machine {
    /// Boots a machine and waits until systemd says it is running.
    pub fn boot() -> Machine {
        let dir = tempfile::tempdir().unwrap();
        let (layers, root) = (dir.path().join("layers"), dir.path().join("root"));
        std::fs::create_dir_all(&layers).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        // The upper layer must not be inside the lower one's file system: a tmpfs of its own.
        must(Command::new("mount").args(["-t", "tmpfs", "-o", "mode=0755", "machine-layers"]).arg(&layers));
        let (upper, work) = (layers.join("upper"), layers.join("work"));
        std::fs::create_dir_all(&upper).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        let opts = format!("lowerdir=/,upperdir={},workdir={}", upper.display(), work.display());
        must(Command::new("mount").args(["-t", "overlay", "machine-root", "-o", &opts]).arg(&root));
        static BOOTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = BOOTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("spokegate-test-{}-{n}", std::process::id());
        let target = root.join("etc/systemd/system/spokegate-test.target");
        std::fs::write(&target, TARGET).unwrap();
        // The host's machine id would make nspawn refuse: a new one is made at boot.
        let _ = std::fs::remove_file(root.join("etc/machine-id"));
        let log = std::fs::File::create(dir.path().join("console.log")).unwrap();
        // A cgroup of its own in each hierarchy the machine's systemd uses, so that machines booted
        // side by side do not manage each other's units (this host runs no systemd to do it).
        let cgroups: Vec<PathBuf> = cgroup_hierarchies().into_iter().map(|h| h.join(&name)).collect();
        for c in &cgroups {
            std::fs::create_dir_all(c).unwrap_or_else(|e| panic!("{}: {e}", c.display()));
        }
        let join = cgroups.iter().map(|c| format!("echo $$ > {}/cgroup.procs && ", c.display())).collect::<String>();
        let nspawn = Command::new("sh")
            .arg("-c")
            .arg(format!("{join}exec systemd-nspawn \"$@\""))
            .arg("sh")
            .arg("-D")
            .arg(&root)
            .args(["-M", &name, "--private-network", "--register=no", "--link-journal=no", "--keep-unit", "-b"])
            .arg("systemd.unit=spokegate-test.target")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("systemd-nspawn (systemd-container) is installed");
        let mut machine = Machine { nspawn, leader: 0, root, dir, cgroups };
        let started = Instant::now();
        machine.leader = loop {
            if let Some(pid) = init_under(machine.nspawn.id()) {
                break pid;
            }
            if let Ok(Some(status)) = machine.nspawn.try_wait() {
                panic!("systemd-nspawn ended ({status}):\n{}", machine.console());
            }
            assert!(started.elapsed() < PATIENCE, "no systemd under nspawn:\n{}", machine.console());
            std::thread::sleep(Duration::from_millis(50));
        };
        machine.wait_until_running();
        // nspawn gives the machine the devices controller read-only, so systemd cannot apply a
        // unit's DevicePolicy= (a unit with DevicePolicy=strict still opened /dev/null). Mounted
        // writable (the machine's own cgroup of it is the root it sees) and systemd started again
        // on it, the policies hold: that same unit is refused /dev/null.
        machine.sh_ok(
            "if [ -d /sys/fs/cgroup/devices ]; then umount -l /sys/fs/cgroup/devices && \
             mount -t cgroup -o rw,devices cgroup /sys/fs/cgroup/devices && systemctl daemon-reexec; fi",
        );
        machine.wait_until_running();
        machine
    }

    fn wait_until_running(&self) {
        self.wait_for("the machine to boot", || {
            let state = self.sh("systemctl is-system-running").stdout;
            let state = String::from_utf8_lossy(&state).trim().to_string();
            (state == "running" || state == "degraded").then_some(())
        });
    }

    /// Where a path inside the machine is seen from the host (its files can be written there).
    pub fn path(&self, inside: &str) -> PathBuf {
        self.root.join(inside.trim_start_matches('/'))
    }

    /// Runs a shell script inside the machine: its namespaces, as root.
    pub fn sh(&self, script: &str) -> Output {
        self.command(&["sh", "-c", script]).output().unwrap()
    }

    /// Runs a shell script inside the machine to success; its stdout (stderr with it on failure).
    pub fn sh_ok(&self, script: &str) -> String {
        let out = self.sh(script);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "`{script}` failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// A command inside the machine, to spawn with pipes.
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.leader.to_string(), "-a", "--"])
            .args(argv)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        cmd
    }

    /// One property of a unit (`systemctl show -p NAME --value`).
    pub fn unit_property(&self, unit: &str, name: &str) -> String {
        let [value] = self.unit_properties(unit, [name]);
        value
    }

    /// Several properties of a unit from one `systemctl show`, in the order asked.
    pub fn unit_properties<const N: usize>(&self, unit: &str, names: [&str; N]) -> [String; N] {
        let args: String = names.iter().map(|n| format!(" -p {n}")).collect();
        let shown = self.sh_ok(&format!("systemctl show{args} {unit}"));
        names.map(|name| {
            let prefix = format!("{name}=");
            shown.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_default().trim().to_string()
        })
    }

    /// Waits until `ready` gives something, polling; fails with what the machine's journal says.
    pub fn wait_for<T>(&self, what: &str, mut ready: impl FnMut() -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            if let Some(v) = ready() {
                return v;
            }
            if started.elapsed() > PATIENCE {
                let journal = self.sh("journalctl --no-pager -n 60").stdout;
                panic!("waited {PATIENCE:?} for {what}; the journal's end:\n{}", String::from_utf8_lossy(&journal));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Enables and starts `unit` and checks that systemd says it runs (for `Type=notify`,
    /// `systemctl start` returns once the service said READY). Returns its main PID.
    pub fn start_unit(&self, unit: &str) -> String {
        self.sh_ok(&format!("systemctl enable --now {unit} 2>&1"));
        let [active, sub, pid] = self.unit_properties(unit, ["ActiveState", "SubState", "MainPID"]);
        assert_eq!(active, "active");
        assert_eq!(sub, "running");
        pid
    }

    /// What the sandbox gave a running process, read from its `/proc` in the machine.
    pub fn sandbox_of(&self, pid: &str) -> Sandboxed {
        Sandboxed {
            status: self.sh_ok(&format!("cat /proc/{pid}/status")),
            mounts: self.sh_ok(&format!("cat /proc/{pid}/mountinfo")),
        }
    }

    /// SIGKILLs `unit`'s main process (`pid`), runs `meanwhile`, and waits until systemd has
    /// restarted it (`Restart=on-failure`). Returns the new main PID.
    pub fn crash_and_restart(&self, unit: &str, pid: &str, meanwhile: impl FnOnce()) -> String {
        self.sh_ok(&format!("systemctl kill -s KILL {unit}"));
        meanwhile();
        self.wait_restarted(unit, pid)
    }

    /// Waits until systemd has restarted `unit` once, in place of main process `pid`, and it runs
    /// again. Returns the new main PID.
    pub fn wait_restarted(&self, unit: &str, pid: &str) -> String {
        self.wait_for("the restart", || {
            let [restarts, state, now] = self.unit_properties(unit, ["NRestarts", "SubState", "MainPID"]);
            (restarts == "1" && state == "running" && now != pid && now != "0").then_some(now)
        })
    }

    /// Stops `unit`; it ended as a clean stop does, with exit 0.
    pub fn stop_unit(&self, unit: &str) {
        self.sh_ok(&format!("systemctl stop {unit}"));
        let [result, status] = self.unit_properties(unit, ["Result", "ExecMainStatus"]);
        assert_eq!(result, "success");
        assert_eq!(status, "0");
    }

    /// Starts `unit`, whose configuration has a mistake: the start fails with exit 78, systemd does
    /// not restart it, and the journal names the mistake's `place` (`file:line:column: `item``).
    pub fn assert_config_refused(&self, unit: &str, place: &str) {
        assert!(!self.sh(&format!("systemctl start {unit}")).status.success(), "a bad configuration does not start");
        let settled = self.wait_for("the unit to settle", || {
            let sub = self.unit_property(unit, "SubState");
            (sub == "failed" || sub == "auto-restart").then_some(sub)
        });
        assert_eq!(settled, "failed", "exit 78 stops restarts");
        assert_eq!(self.unit_property(unit, "ExecMainStatus"), "78");
        let journal = self.sh_ok(&format!("journalctl -u {unit} --no-pager -o cat"));
        assert!(journal.contains(place), "the place and the item ({place}):\n{journal}");
    }

    fn console(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("console.log")).unwrap_or_default()
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        // Killing PID 1 of the machine ends every process in its PID namespace, then nspawn.
        if self.leader != 0 {
            let _ = Command::new("kill").args(["-KILL", &self.leader.to_string()]).status();
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
        let _ = Command::new("umount").arg("-l").arg(&self.root).status();
        let _ = Command::new("umount").arg("-l").arg(self.dir.path().join("layers")).status();
        // Removable once every process of the machine is gone (they die with its PID 1, not at
        // once): the deepest first, tried again for a while.
        let started = Instant::now();
        for c in &self.cgroups {
            while c.exists() && started.elapsed() < Duration::from_secs(10) {
                let _ =
                    Command::new("find").arg(c).args(["-depth", "-type", "d", "-exec", "rmdir", "{}", ";"]).status();
                if c.exists() {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
}

/// A running process's sandbox: its `/proc/PID/status` and mount table.
pub struct Sandboxed {
    status: String,
    mounts: String,
}

impl Sandboxed {
    /// A field of `status` (`NoNewPrivs:`), trimmed.
    pub fn field(&self, name: &str) -> String {
        let line = self.status.lines().find(|l| l.starts_with(name));
        line.map(|l| l[name.len()..].trim().to_string()).unwrap_or_default()
    }

    /// The mount options (`ro,nosuid,...`) of the mount the process sees at `target`.
    pub fn mount_options(&self, target: &str) -> String {
        self.mounts
            .lines()
            .rfind(|l| l.split(' ').nth(4) == Some(target))
            .map(|l| l.split(' ').nth(5).unwrap_or_default().to_string())
            .unwrap_or_else(|| panic!("no mount at {target}:\n{}", self.mounts))
    }

    /// Asserts what both services' units ask for: no new privileges, the system-call filter, no
    /// capabilities, a read-only file system but for `state_dir`.
    pub fn assert_confined(&self, state_dir: &str) {
        assert_eq!(self.field("NoNewPrivs:"), "1");
        assert_eq!(self.field("Seccomp:"), "2", "the system-call filter is on");
        assert_eq!(self.field("CapEff:"), "0000000000000000");
        assert_eq!(self.field("CapBnd:"), "0000000000000000");
        assert!(self.mount_options("/").starts_with("ro"), "ProtectSystem=strict: the file system read-only");
        assert!(self.mount_options(state_dir).starts_with("rw"), "the state directory writable");
    }
}

/// The messages in lines `mosquitto_sub -F '%t %x'` printed: (topic, payload).
pub fn published(lines: &[String]) -> Vec<(String, Vec<u8>)> {
    lines
        .iter()
        .filter_map(|l| {
            let (topic, hex) = l.split_once(' ')?;
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                .collect::<Option<Vec<u8>>>()?;
            Some((topic.to_string(), bytes))
        })
        .collect()
}

/// The process named `systemd` among the descendants of `pid` (nspawn forks before it execs init).
fn init_under(pid: u32) -> Option<u32> {
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for child in children(p) {
            let comm = std::fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
            if comm.trim() == "systemd" {
                return Some(child);
            }
            frontier.push(child);
        }
    }
    None
}

fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok())
        .flat_map(|s| s.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<u32>>())
        .collect()
}

fn must(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Lines a child prints, read on a thread: `next` waits for one that `wanted` accepts.
pub struct Lines {
    rx: std::sync::mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Lines {
    pub fn of(out: impl std::io::Read + Send + 'static) -> Lines {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines { rx, seen: Vec::new() }
    }

    /// The next line `wanted` accepts, within `PATIENCE`; every line read is kept in `seen`.
    pub fn next(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        self.until(what, |seen| seen.last().is_some_and(|l| wanted(l)));
        self.seen.last().cloned().unwrap_or_default()
    }

    /// Reads lines until `done` holds for all read so far, within `PATIENCE`.
    pub fn until(&mut self, what: &str, done: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no line for {what} within {PATIENCE:?}; read:\n{}", self.seen.join("\n")),
            }
        }
    }
}
