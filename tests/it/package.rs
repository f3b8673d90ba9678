//! The Debian package, built by `cargo deb` from this test build (`--no-build`, the debug binary in
//! place of the release one: cargo-deb warns about the dev profile, and the files and scripts are
//! the same), inspected with `dpkg-deb` and checked by `lintian`.

use crate::installed::Package;

#[test]
fn the_debian_package_holds_what_a_spoke_needs_and_lintian_passes() {
    let dir = tempfile::tempdir().unwrap();
    let package = Package::build(dir.path(), env!("CARGO_MANIFEST_DIR"), &[]);
    // Files and their modes.
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
        assert_eq!(package.mode_of(path).as_deref(), Some(mode), "{path} in the package");
    }
    // Control fields.
    let fields = package.fields();
    assert!(fields.contains("Package: spokegate") && fields.contains("Section: net"), "{fields}");
    let depends = fields.lines().find(|l| l.starts_with("Depends:")).unwrap_or_default();
    assert!(depends.contains("systemd") && depends.contains("libc6"), "{depends}");
    // Conffiles and maintainer scripts.
    let read = |name: &str| package.control(name);
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
    assert_eq!(
        package.file("lib/systemd/system/spokegate.service"),
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/spokegate.service")).unwrap()
    );
    // lintian: nothing but the overrides the package carries (each says why).
    package.assert_lintian_clean();
}
