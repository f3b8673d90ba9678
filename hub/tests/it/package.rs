//! The hub's Debian package, built by `cargo deb -p spokegate-hub` from this test build
//! (`--no-build`, the debug binary in place of the release one: the files and scripts are the
//! same), inspected with `dpkg-deb` and checked by `lintian`.

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{cmd:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

fn build(dir: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(cargo)
        .args(["deb", "-p", "spokegate-hub", "--no-build", "--profile", "dev", "--fast", "-o"])
        .arg(dir)
        .current_dir(ROOT));
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .unwrap()
}

#[test]
fn the_hub_package_holds_the_service_and_its_sandbox_and_lintian_passes() {
    let dir = tempfile::tempdir().unwrap();
    let deb = build(dir.path());
    let listing = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    let mode_of = |path: &str| {
        listing
            .lines()
            .find(|l| l.ends_with(&format!(" ./{path}")))
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .unwrap_or_else(|| panic!("{path} is not in the package:\n{listing}"))
    };
    for (path, mode) in [
        ("usr/bin/spokegate-hub", "-rwxr-xr-x"),
        ("lib/systemd/system/spokegate-hub.service", "-rw-r--r--"),
        ("usr/lib/sysusers.d/spokegate-hub.conf", "-rw-r--r--"),
        ("usr/lib/tmpfiles.d/spokegate-hub.conf", "-rw-r--r--"),
        ("etc/spokegate-hub/hub.toml", "-rw-r-----"),
        ("usr/share/doc/spokegate-hub/copyright", "-rw-r--r--"),
    ] {
        assert_eq!(mode_of(path), mode, "{path}");
    }
    assert!(!listing.contains("usr/bin/spokegate\n"), "the gateway's binary is not the hub's package's");
    let fields = run(Command::new("dpkg-deb").arg("-f").arg(&deb));
    assert!(fields.contains("Package: spokegate-hub") && fields.contains("Section: net"), "{fields}");
    let depends = fields.lines().find(|l| l.starts_with("Depends:")).unwrap_or_default();
    assert!(depends.contains("systemd") && depends.contains("libc6"), "{depends}");
    // Conffiles and maintainer scripts.
    let control = dir.path().join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let read = |name: &str| std::fs::read_to_string(control.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(read("conffiles").trim(), "/etc/spokegate-hub/hub.toml");
    let postinst = read("postinst");
    for needed in [
        "systemd-sysusers /usr/lib/sysusers.d/spokegate-hub.conf",
        "systemd-tmpfiles --create /usr/lib/tmpfiles.d/spokegate-hub.conf",
        "dpkg-statoverride --update --add root spokegate-hub",
        "0640 /etc/spokegate-hub/hub.toml",
        "spokegate-hub migrate",
    ] {
        assert!(postinst.contains(needed), "postinst lacks `{needed}`");
    }
    assert!(read("prerm").contains("deb-systemd-invoke stop spokegate-hub.service"));
    assert!(read("postrm").contains("dpkg-statoverride --remove"));
    // The unit, the sysusers and tmpfiles snippets and the configuration in the package are the
    // repository's (the sandbox the unit test rates, the example the README shows).
    let extracted = dir.path().join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&extracted));
    for (packaged, source) in [
        ("lib/systemd/system/spokegate-hub.service", "systemd/spokegate-hub.service"),
        ("usr/lib/sysusers.d/spokegate-hub.conf", "systemd/spokegate-hub.sysusers"),
        ("usr/lib/tmpfiles.d/spokegate-hub.conf", "systemd/spokegate-hub.tmpfiles"),
        ("etc/spokegate-hub/hub.toml", "hub/hub.example.toml"),
    ] {
        assert_eq!(
            std::fs::read_to_string(extracted.join(packaged)).unwrap(),
            std::fs::read_to_string(Path::new(ROOT).join(source)).unwrap(),
            "{packaged}"
        );
    }
    // lintian: nothing but the overrides the package carries (each says why).
    let out = Command::new("lintian").args(["--tag-display-limit", "0"]).arg(&deb).output().expect("lintian");
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    let tags: Vec<&str> = report.lines().filter(|l| l.starts_with("E:") || l.starts_with("W:")).collect();
    assert!(out.status.success() && tags.is_empty(), "lintian:\n{report}{}", String::from_utf8_lossy(&out.stderr));
}
