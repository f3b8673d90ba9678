//! The hub's Debian package, built by `cargo deb -p spokegate-hub` from this test build
//! (`--no-build`, the debug binary in place of the release one: the files and scripts are the
//! same), inspected with `dpkg-deb` and checked by `lintian`.

use crate::installed::Package;
use std::path::Path;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

#[test]
fn the_hub_package_holds_the_service_and_its_sandbox_and_lintian_passes() {
    let dir = tempfile::tempdir().unwrap();
    let package = Package::build(dir.path(), ROOT, &["-p", "spokegate-hub"]);
    for (path, mode) in [
        ("usr/bin/spokegate-hub", "-rwxr-xr-x"),
        ("lib/systemd/system/spokegate-hub.service", "-rw-r--r--"),
        ("usr/lib/sysusers.d/spokegate-hub.conf", "-rw-r--r--"),
        ("usr/lib/tmpfiles.d/spokegate-hub.conf", "-rw-r--r--"),
        ("etc/spokegate-hub/hub.toml", "-rw-r-----"),
        ("usr/share/doc/spokegate-hub/copyright", "-rw-r--r--"),
    ] {
        assert_eq!(package.mode_of(path).as_deref(), Some(mode), "{path} in the package");
    }
    assert_eq!(package.mode_of("usr/bin/spokegate"), None, "the gateway's binary is not the hub's package's");
    let fields = package.fields();
    assert!(fields.contains("Package: spokegate-hub") && fields.contains("Section: net"), "{fields}");
    let depends = fields.lines().find(|l| l.starts_with("Depends:")).unwrap_or_default();
    assert!(depends.contains("systemd") && depends.contains("libc6"), "{depends}");
    // Conffiles and maintainer scripts.
    let read = |name: &str| package.control(name);
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
    for (packaged, source) in [
        ("lib/systemd/system/spokegate-hub.service", "systemd/spokegate-hub.service"),
        ("usr/lib/sysusers.d/spokegate-hub.conf", "systemd/spokegate-hub.sysusers"),
        ("usr/lib/tmpfiles.d/spokegate-hub.conf", "systemd/spokegate-hub.tmpfiles"),
        ("etc/spokegate-hub/hub.toml", "hub/hub.example.toml"),
    ] {
        assert_eq!(
            package.file(packaged),
            std::fs::read_to_string(Path::new(ROOT).join(source)).unwrap(),
            "{packaged}"
        );
    }
    // lintian: nothing but the overrides the package carries (each says why).
    package.assert_lintian_clean();
}
