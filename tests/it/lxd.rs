//! Images in a real LXD (Debian's `lxd` package, a daemon this test starts
//! itself, see `lxc_tmpl_tests::lxd`): `lxc-tmpl image build --format incus`
//! imported with `lxc image import` and launched; the same image published
//! with `lxc-tmpl image publish` to a simplestreams tree served over https and
//! launched from that remote.
//!
//! Only the LXD daemon and client are LXD's here; nothing is faked. The
//! daemon runs without a network (instances have no nic).

use std::{
    fs,
    path::{Path, PathBuf},
};

use lxc_tmpl_tests::{
    MirrorServer, TestCommand, TestDir, apt_fixture,
    https::{self, HttpsServer, TestCa},
    lxd::Lxd,
    require_root, require_tools,
    snapshot::listing,
};

/// A fixed `SOURCE_DATE_EPOCH` (2024-01-01), earlier than any build.
const EPOCH: &str = "1704067200";

fn sha256(path: &Path) -> String {
    let out = TestCommand::new("sha256sum").arg(path).stdout();
    out.split_whitespace().next().unwrap_or_default().to_owned()
}

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
    // image build's output is what image publish takes: busybox, which has no
    // releases, is published as release `current`.
    let tree = dir.path().join("simplestreams");
    dir.command().args(["image", "publish"]).arg(&split).arg("--simplestreams").arg(&tree).stdout();
    let images: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(tree.join("streams/v1/images.json")).unwrap()).unwrap();
    let products: Vec<&String> = images["products"].as_object().unwrap().keys().collect();
    assert!(
        products.iter().any(|p| p.starts_with("busybox:current:") && p.ends_with(":default")),
        "busybox is not in the tree: {products:?}"
    );
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

/// The ssh host public key of an LXD instance, once its first boot made it.
fn lxd_host_key(lxd: &Lxd, instance: &str) -> String {
    lxd.exec(
        instance,
        &[
            "sh",
            "-c",
            "for i in $(seq 240); do [ -s /etc/ssh/ssh_host_ed25519_key.pub ] && break; sleep 0.5; done; \
             cat /etc/ssh/ssh_host_ed25519_key.pub",
        ],
    )
}

/// Debian from the local signed mirror as an Incus image (the default split
/// layout, a squashfs rootfs; zstd, which LXD reads, because xz would add
/// minutes to every CI run here and the LXC format's xz path is tested with
/// busybox in image.rs):
/// - two builds with one `SOURCE_DATE_EPOCH` (the first debootstraps into the
///   cache, the second reuses it and runs every later hook again) are
///   byte-identical, file by file; the image holds no instance state;
/// - the image imported with `lxc image import` launches; published with
///   `lxc-tmpl image publish` to a simplestreams tree served over https (a
///   test CA handed to LXD through `SSL_CERT_FILE`), it launches as
///   `REMOTE:debian/bookworm` after the local copy is deleted, so LXD really
///   downloads it, with the fingerprint the import had; every instance has its
///   own name and makes its own ssh host key at first boot.
///
/// One test, because the Debian build is the slow part (a cold debootstrap).
#[test]
fn debian_incus_image_is_reproducible_and_launches_from_a_simplestreams_remote() {
    require_root();
    require_tools(&["debootstrap", "wget", "gpgv", "sha256sum", "mksquashfs", "unsquashfs", "zstd"]);
    https::require_curl();
    let fixture = apt_fixture();
    let server = MirrorServer::start();
    let dir = TestDir::new("lxd-debian");
    let build = |name: &str| {
        let out = dir.path().join(name);
        let mut cmd = dir.command();
        cmd.args(["image", "build", "--distro", "debian", "--format", "incus", "--compression", "zstd", "-o"])
            .arg(&out);
        cmd.arg("--cache-dir").arg(dir.cache()).env("SOURCE_DATE_EPOCH", EPOCH);
        fixture.from_mirror(&mut cmd, &server.url("debian"), "bookworm");
        cmd.stdout();
        out
    };
    let a = build("a");
    let b = build("b");
    let files = ["incus.tar.zst", "rootfs.squashfs"];
    assert_eq!(listing(&a), files);
    for file in files {
        assert_eq!(
            sha256(&a.join(file)),
            sha256(&b.join(file)),
            "{file} differs between two builds with one SOURCE_DATE_EPOCH"
        );
    }

    let rootfs = a.join("rootfs.squashfs");
    let listed = TestCommand::new("unsquashfs").arg("-l").arg(&rootfs).stdout();
    let members: Vec<&str> = listed.lines().filter_map(|l| l.strip_prefix("squashfs-root")).collect();
    assert!(members.contains(&"/usr/sbin/sshd"), "no sshd in the image:\n{listed}");
    assert!(!members.iter().any(|f| f.starts_with("/etc/ssh/ssh_host_")), "ssh host keys in the image");
    // Files (not directories: apt's lists/partial/ stays) in the apt lists.
    let long = TestCommand::new("unsquashfs").arg("-lln").arg(&rootfs).stdout();
    let lists: Vec<&str> =
        long.lines().filter(|l| !l.starts_with('d') && l.contains("squashfs-root/var/lib/apt/lists/")).collect();
    assert!(lists.is_empty(), "apt lists in the image: {lists:?}");
    assert!(
        members.contains(&"/etc/systemd/system/multi-user.target.wants/lxc-tmpl-ssh-host-keys.service"),
        "no first-boot unit for the ssh host keys"
    );
    let unpacked = dir.path().join("machine-id");
    TestCommand::new("unsquashfs")
        .args(["-no-progress", "-d"])
        .arg(&unpacked)
        .arg(&rootfs)
        .arg("etc/machine-id")
        .stdout();
    assert_eq!(fs::read_to_string(unpacked.join("etc/machine-id")).unwrap(), "", "machine-id is not empty");

    // The simplestreams tree, served over https with a CA made for the test.
    let tree = dir.path().join("simplestreams");
    dir.command().args(["image", "publish"]).arg(&a).arg("--simplestreams").arg(&tree).stdout();
    let ca = TestCa::new();
    let web = HttpsServer::serve_with(&tree, &ca);
    let lxd = Lxd::start(&dir, &[("SSL_CERT_FILE", ca.cert_path())]);

    // LXD: lxc image import, then launch.
    let imported = import(&lxd, &a, &files, "deb-local");
    lxd.launch("deb-local", "l1");
    lxd.lxc().args(["image", "delete", "deb-local"]).stdout();
    assert_eq!(fingerprint(&lxd, &imported), None, "the imported image is still there");

    // LXD: the remote.
    lxd.lxc().args(["remote", "add", "tmpl"]).arg(web.base_url()).args(["--protocol", "simplestreams"]).stdout();
    lxd.launch("tmpl:debian/bookworm", "r1");
    let fetched: Vec<String> = web.served().iter().map(|s| s.target.clone()).collect();
    assert!(fetched.iter().any(|t| t.ends_with("/rootfs.squashfs")), "LXD did not download the rootfs: {fetched:?}");
    assert_eq!(
        fingerprint(&lxd, &imported).as_deref(),
        Some(imported.as_str()),
        "the image downloaded from the remote is not the one imported (LXD's images: {})",
        lxd.lxc().args(["image", "list", "--format", "csv"]).stdout()
    );
    let mut keys = Vec::new();
    for instance in ["l1", "r1"] {
        assert_eq!(lxd.exec(instance, &["hostname"]).trim(), instance, "hostname in {instance}");
        let key = lxd_host_key(&lxd, instance);
        assert!(key.starts_with("ssh-ed25519 "), "{instance} made no host key: {key:?}");
        assert_eq!(lxd.exec(instance, &["sh", "-c", "/usr/sbin/sshd -t 2>&1"]), "", "sshd -t in {instance}");
        keys.push(key);
    }
    assert_ne!(keys[0], keys[1], "two instances of one image share an ssh host key");
}
