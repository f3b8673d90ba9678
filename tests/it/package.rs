//! The Debian package, built by `cargo deb` from this test build (`--no-build`, the debug binary in
//! place of the release one: cargo-deb warns about the dev profile, and the files and scripts are
//! the same), inspected with `dpkg-deb` and checked by `lintian`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{cmd:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

fn build(dir: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(cargo)
        .args(["deb", "--no-build", "--profile", "dev", "--fast", "-o"])
        .arg(dir)
        .current_dir(env!("CARGO_MANIFEST_DIR")));
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .unwrap()
}

#[test]
fn the_debian_package_holds_what_a_spoke_needs_and_lintian_passes() {
    let dir = tempfile::tempdir().unwrap();
    let deb = build(dir.path());
    // Files and their modes.
    let listing = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    let mode_of = |path: &str| {
        listing
            .lines()
            .find(|l| l.ends_with(&format!(" ./{path}")))
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .unwrap_or_else(|| panic!("{path} is not in the package:\n{listing}"))
    };
    for (path, mode) in [
        ("usr/bin/spokegate", "-rwxr-xr-x"),
        ("lib/systemd/system/spokegate.service", "-rw-r--r--"),
        ("usr/lib/sysusers.d/spokegate.conf", "-rw-r--r--"),
        ("usr/lib/tmpfiles.d/spokegate.conf", "-rw-r--r--"),
        ("lib/udev/rules.d/60-spokegate-serial.rules", "-rw-r--r--"),
        ("etc/spokegate/spokegate.toml", "-rw-r-----"),
        ("usr/share/spokegate/device-profiles/onetouch-ultra2.toml", "-rw-r--r--"),
        ("usr/share/doc/spokegate/copyright", "-rw-r--r--"),
    ] {
        assert_eq!(mode_of(path), mode, "{path}");
    }
    // Control fields.
    let fields = run(Command::new("dpkg-deb").arg("-f").arg(&deb));
    assert!(fields.contains("Package: spokegate") && fields.contains("Section: net"), "{fields}");
    let depends = fields.lines().find(|l| l.starts_with("Depends:")).unwrap_or_default();
    assert!(depends.contains("systemd") && depends.contains("libc6"), "{depends}");
    // Conffiles and maintainer scripts.
    let control = dir.path().join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let read = |name: &str| std::fs::read_to_string(control.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(read("conffiles").trim(), "/etc/spokegate/spokegate.toml");
    let postinst = read("postinst");
    for needed in [
        "systemd-sysusers",
        "systemd-tmpfiles --create",
        "dpkg-statoverride --update --add root spokegate",
        "0640 /etc/spokegate/spokegate.toml",
        "spokegate keygen",
        "spokegate key show",
        "udevadm control --reload-rules",
    ] {
        assert!(postinst.contains(needed), "postinst lacks `{needed}`");
    }
    assert!(read("prerm").contains("deb-systemd-invoke stop spokegate.service"));
    assert!(read("postrm").contains("dpkg-statoverride --remove"));
    // The unit in the package is the repository's (the sandbox the unit test rates).
    let extracted = dir.path().join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&extracted));
    assert_eq!(
        std::fs::read_to_string(extracted.join("lib/systemd/system/spokegate.service")).unwrap(),
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/spokegate.service")).unwrap()
    );
    // lintian: nothing but the overrides the package carries (each says why).
    let out = Command::new("lintian").args(["--tag-display-limit", "0"]).arg(&deb).output().expect("lintian");
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    let tags: Vec<&str> = report.lines().filter(|l| l.starts_with("E:") || l.starts_with("W:")).collect();
    assert!(out.status.success() && tags.is_empty(), "lintian:\n{report}{}", String::from_utf8_lossy(&out.stderr));
}
