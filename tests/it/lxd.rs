//! Images in a real LXD (Debian's `lxd` package, a daemon this test starts
//! itself, see `lxc_tmpl_tests::lxd`): `lxc-tmpl image build --format incus`
//! imported with `lxc image import` and launched; the same image published
//! with `lxc-tmpl image publish` to a simplestreams tree served over https and
//! launched from that remote.
//!
//! Only the LXD daemon and client are LXD's here; nothing is faked. The
//! daemon runs without a network (instances have no nic).

use std::path::{Path, PathBuf};

use lxc_tmpl_tests::{TestCommand, TestDir, lxd::Lxd, require_root, require_tools};

/// `lxc-tmpl image build --distro busybox --format incus -o <dir>/<name>` plus `extra`.
fn busybox_image(dir: &TestDir, name: &str, extra: &[&str]) -> PathBuf {
    let out = dir.path().join(name);
    let mut cmd = dir.command();
    cmd.args(["image", "build", "--distro", "busybox", "--format", "incus", "-o"]).arg(&out);
    cmd.arg("--cache-dir").arg(dir.cache()).args(extra);
    cmd.stdout();
    out
}

/// `lxc image import` of the image files in `out` as `alias`; returns the fingerprint.
fn import(lxd: &Lxd, out: &Path, files: &[&str], alias: &str) -> String {
    let mut cmd = lxd.lxc();
    cmd.args(["image", "import"]);
    for file in files {
        cmd.arg(out.join(file));
    }
    let printed = cmd.args(["--alias", alias]).stdout();
    fingerprint(lxd, alias).unwrap_or_else(|| panic!("no image {alias} after the import:\n{printed}"))
}

/// The fingerprint of the image `alias`, if LXD has it.
fn fingerprint(lxd: &Lxd, alias: &str) -> Option<String> {
    let listed = lxd.lxc().args(["image", "list", alias, "--format", "csv", "-c", "F"]).stdout();
    listed.lines().next().map(str::to_owned).filter(|f| !f.is_empty())
}

/// An instance of a busybox image runs under its own name, and `/etc/hosts`
/// names it: LXD ran the image's templates.
fn assert_named(lxd: &Lxd, instance: &str) {
    assert_eq!(lxd.exec(instance, &["hostname"]).trim(), instance, "hostname in {instance}");
    assert_eq!(lxd.exec(instance, &["cat", "/etc/hostname"]).trim(), instance, "/etc/hostname in {instance}");
    let hosts = lxd.exec(instance, &["cat", "/etc/hosts"]);
    assert!(hosts.split_whitespace().any(|w| w == instance), "/etc/hosts in {instance} does not name it:\n{hosts}");
}

/// Busybox images in both incus layouts (split with a squashfs rootfs,
/// unified) import into LXD, and their instances start with their own names.
#[test]
fn busybox_incus_images_import_and_launch() {
    require_root();
    require_tools(&["mksquashfs", "xz"]);
    let dir = TestDir::new("lxd-busybox");
    let split = busybox_image(&dir, "split", &["--incus-rootfs", "squashfs"]);
    let unified = busybox_image(&dir, "unified", &["--incus-type", "unified"]);
    let lxd = Lxd::start(&dir, &[]);

    let split_fp = import(&lxd, &split, &["incus.tar.xz", "rootfs.squashfs"], "bb-split");
    let unified_fp = import(&lxd, &unified, &["incus.tar.xz"], "bb-unified");
    // LXD's fingerprint of a split image: sha256 of the metadata file followed by the rootfs file.
    let both = TestCommand::new("sh")
        .arg("-c")
        .arg(format!("cat '{0}/incus.tar.xz' '{0}/rootfs.squashfs' | sha256sum", split.display()))
        .stdout();
    assert_eq!(both.split_whitespace().next(), Some(split_fp.as_str()), "LXD's fingerprint of the split image");
    assert_ne!(split_fp, unified_fp);

    let info = lxd.lxc().args(["image", "info", "bb-split"]).stdout();
    for needle in ["os: Busybox", "variant: default", "Architecture: x86_64"] {
        assert!(info.contains(needle), "image info lacks {needle:?}:\n{info}");
    }
    lxd.launch("bb-split", "bb1");
    lxd.launch("bb-split", "bb2");
    lxd.launch("bb-unified", "bb3");
    for instance in ["bb1", "bb2", "bb3"] {
        assert_named(&lxd, instance);
    }
    // Copies get the template run again (`when: copy`).
    lxd.lxc().args(["copy", "bb1", "bb4"]).stdout();
    lxd.lxc().args(["start", "bb4"]).stdout();
    assert_named(&lxd, "bb4");
}
