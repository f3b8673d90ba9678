//! What the project installs, checked the same way for the gateway and the hub service: a Debian
//! package built by cargo-deb from the test build (`--no-build`, the debug binary in place of the
//! release one: cargo-deb warns about the dev profile, and the files and scripts are the same),
//! inspected with `dpkg-deb` and `lintian`; and a systemd unit rated and verified with
//! `systemd-analyze`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `cmd` to success; its stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{cmd:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

/// A package built into a directory of its own, its file list, control files and contents.
pub struct Package {
    pub deb: PathBuf,
    dir: PathBuf,
    listing: String,
}

impl Package {
    /// `cargo deb --no-build --profile dev --fast` with `args` (`-p NAME` for a workspace
    /// member), run in `workspace`, into `dir`.
    pub fn build(dir: &Path, workspace: &str, args: &[&str]) -> Package {
        // One build at a time: cargo-deb stages the package's files in the shared target
        // directory, and two at once gave a truncated binary (`Exec format error` once installed).
        static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        run(Command::new(cargo)
            .arg("deb")
            .args(args)
            .args(["--no-build", "--profile", "dev", "--fast", "-o"])
            .arg(dir)
            .current_dir(workspace));
        let deb = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "deb"))
            .unwrap();
        let listing = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
        run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(dir.join("control")));
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(dir.join("root")));
        Package { deb, dir: dir.to_path_buf(), listing }
    }

    /// The mode of `path` (`-rw-r--r--`) in the package, `None` when it is not there.
    pub fn mode_of(&self, path: &str) -> Option<String> {
        let line = self.listing.lines().find(|l| l.ends_with(&format!(" ./{path}")))?;
        line.split_whitespace().next().map(str::to_string)
    }

    /// The control fields.
    pub fn fields(&self) -> String {
        run(Command::new("dpkg-deb").arg("-f").arg(&self.deb))
    }

    /// A control file (`conffiles`, `postinst`, ...).
    pub fn control(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join("control").join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// A file the package installs, as packaged.
    pub fn file(&self, path: &str) -> String {
        std::fs::read_to_string(self.dir.join("root").join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// lintian finds nothing but the overrides the package carries (each says why).
    pub fn assert_lintian_clean(&self) {
        let out = Command::new("lintian").args(["--tag-display-limit", "0"]).arg(&self.deb).output().expect("lintian");
        let report = String::from_utf8_lossy(&out.stdout).to_string();
        let tags: Vec<&str> = report.lines().filter(|l| l.starts_with("E:") || l.starts_with("W:")).collect();
        assert!(out.status.success() && tags.is_empty(), "lintian:\n{report}{}", String::from_utf8_lossy(&out.stderr));
    }
}

/// `systemd-analyze security --offline`'s overall exposure of the unit file, and its report.
pub fn exposure(unit: &str) -> (f64, String) {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager", unit])
        .output()
        .expect("systemd-analyze (systemd) is installed");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let line = text.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_else(|| panic!("{text}"));
    let figure: f64 = line
        .split(':')
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no figure in {line}"));
    (figure, text)
}

/// `systemd-analyze verify` finds nothing wrong with the unit file. It insists that ExecStart's
/// binary exists: the unit is checked with the test build's binary `built` in place of
/// `installed` (its path once packaged).
pub fn assert_unit_verifies(unit: &str, installed: &str, built: &str) {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(unit).unwrap().replace(installed, built);
    let path = dir.path().join(Path::new(unit).file_name().unwrap());
    std::fs::write(&path, text).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&path).output().expect("systemd-analyze");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.trim().is_empty(), "{text}");
}
