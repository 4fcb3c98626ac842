//! The backing stores (`-B/--backing`) end to end, with real debootstrap
//! from the local mirror, real overlayfs and btrfs, and LXC starting what
//! each made.
//!
//! - overlay: the container starts, its writes land in its own upper layer
//!   and never in the cache, and a `--flush-cache` or `cache purge` while it
//!   exists leaves it working; once it is destroyed, a purge removes the
//!   generation it kept. The rebuild of `--flush-cache` fetches no package
//!   the first build fetched (the mirror server counts the requests).
//! - btrfs: on a loop-mounted btrfs holding both the cache and the lxcpath,
//!   the rootfs is a snapshot subvolume that starts, and `auto` picks it.
//! - auto on an ordinary filesystem picks overlay for a privileged container
//!   (the overlay test's second container).
//! - bad choices fail in one line, leaving nothing behind.

use std::{fs, os::unix::fs::MetadataExt, path::Path};

use lxc_tmpl_tests::{
    AptFixture, LXC_TOOLS, MirrorServer, TestCommand, TestDir, apt_fixture, assert_mentions, assert_same_text, config,
    error_line, heavy_lock, leftovers, loopfs::LoopBtrfs, require_root, require_tools, rootfs::cache_entries, snapshot,
};

const BOOTSTRAP_TOOLS: &[&str] = &["debootstrap", "wget", "gpgv"];

/// A debian bookworm create from the local mirror with `-B backing`.
fn create(dir: &TestDir, server: &MirrorServer, fixture: &AptFixture, name: &str, backing: &str) -> TestCommand {
    let mut cmd = dir.create("debian", name);
    fixture.from_mirror(&mut cmd, &server.url("debian"), "bookworm");
    cmd.args(["--backing", backing]);
    cmd
}

fn rootfs_line(config_text: &str) -> String {
    config::value(config_text, "lxc.rootfs.path").unwrap_or_else(|| panic!("no lxc.rootfs.path in:\n{config_text}"))
}

#[test]
fn overlay_never_writes_the_cache_and_outlives_flush_and_purge() {
    require_root();
    require_tools(LXC_TOOLS);
    require_tools(BOOTSTRAP_TOOLS);
    let fixture = apt_fixture();
    let server = MirrorServer::start();
    let dir = TestDir::new("backing-overlay");

    create(&dir, &server, &fixture, "seed", "dir").stdout();
    let [cached] = &cache_entries(&dir.cache(), "debian")[..] else { panic!("expected one debian cache entry") };
    let cached = cached.clone();
    let fingerprint = leftovers::fingerprint(&cached);

    let mut ov1 = dir.container("ov1");
    // Other tests change the mount table too; they do it under this lock.
    let heavy = heavy_lock();
    let mounts_before = snapshot::mountinfo();
    let made = create(&dir, &server, &fixture, "ov1", "overlay").run();
    made.assert_success();
    assert_mentions(&made.stderr, &["rootfs: overlay", &cached.display().to_string()]);
    let upper = ov1.dir().join("overlay/delta");
    assert_eq!(rootfs_line(&ov1.config()), format!("overlay:{}:{}", cached.display(), upper.display()));
    // What the create wrote is in the upper layer only; the mount is gone.
    assert!(upper.join("etc/hostname").is_file(), "the create's files are not in the upper layer");
    assert_eq!(fs::read_dir(ov1.rootfs()).unwrap().count(), 0, "the create left its overlay mounted");
    assert_same_text!(mounts_before, snapshot::mountinfo(), "the create changed the host's mount table");
    drop(heavy);

    ov1.start();
    assert_eq!(ov1.state(), "RUNNING");
    assert_eq!(ov1.attach(&["hostname"]).trim(), "ov1");
    ov1.attach(&["sh", "-c", "echo written-in-ov1 > /root/mark && rm /etc/issue"]);
    assert_eq!(fs::read_to_string(upper.join("root/mark")).unwrap(), "written-in-ov1\n");
    assert!(cached.join("etc/issue").is_file(), "a delete in the container reached the cache");
    assert!(!cached.join("root/mark").exists(), "a write in the container reached the cache");
    assert!(leftovers::fingerprint(&cached) == fingerprint, "the overlay container changed the cached rootfs");
    ov1.stop_clean(30).assert_success();

    // A flush builds a new generation for new containers and keeps ov1's;
    // debootstrap takes the packages the first build fetched from the
    // package cache instead of the mirror.
    let debs = |served: &[lxc_tmpl_tests::mirror::Served]| -> Vec<String> {
        served.iter().filter(|r| r.method == "GET" && r.target.ends_with(".deb")).map(|r| r.target.clone()).collect()
    };
    let fetched_before = debs(&server.served());
    assert!(!fetched_before.is_empty(), "the cold build fetched no .deb from the mirror");
    // `auto` off btrfs picks overlay for a privileged container.
    let ov2 = dir.container("ov2");
    let auto = create(&dir, &server, &fixture, "ov2", "auto").arg("--flush-cache").run();
    auto.assert_success();
    assert_mentions(&auto.stderr, &["rootfs: overlay"]);
    assert!(rootfs_line(&ov2.config()).starts_with("overlay:"), "{}", ov2.config());
    let refetched: Vec<String> = debs(&server.served()[..])
        .split_off(fetched_before.len())
        .into_iter()
        .filter(|t| fetched_before.contains(t))
        .collect();
    assert!(refetched.is_empty(), "the rebuild fetched again: {refetched:?}");
    let [current] = &cache_entries(&dir.cache(), "debian")[..] else { panic!("expected one debian cache entry") };
    assert_ne!(current, &cached, "--flush-cache reused the old generation");
    assert!(leftovers::fingerprint(&cached) == fingerprint, "the flush touched ov1's lower layer");

    // A purge keeps it too, and says for whom.
    let purge = dir.command().args(["cache", "purge", "debian", "--cache-dir"]).arg(dir.cache()).stdout();
    assert_mentions(
        &purge,
        &["kept", &cached.parent().unwrap().display().to_string(), &ov1.dir().display().to_string()],
    );
    ov1.start();
    assert_eq!(ov1.attach(&["cat", "/root/mark"]).trim(), "written-in-ov1", "ov1 lost its own files");
    assert!(ov1.attach(&["cat", "/etc/os-release"]).contains("bookworm"), "ov1 lost its lower layer");
    ov1.stop_clean(30).assert_success();

    // Destroyed by LXC, the containers let the next purge take everything.
    ov1.destroy().assert_success();
    ov2.destroy().assert_success();
    assert!(!upper.exists(), "lxc-destroy left the upper layer");
    dir.command().args(["cache", "purge", "debian", "--cache-dir"]).arg(dir.cache()).stdout();
    assert!(!cached.exists(), "an unused generation survived the purge");
    assert!(cache_entries(&dir.cache(), "debian").is_empty());
}

#[test]
fn btrfs_snapshots_start_and_auto_picks_them() {
    require_root();
    require_tools(LXC_TOOLS);
    require_tools(BOOTSTRAP_TOOLS);
    require_tools(&["mkfs.btrfs", "btrfs"]);
    let fixture = apt_fixture();
    let server = MirrorServer::start();
    let dir = TestDir::new("backing-btrfs");
    // The cache and the lxcpath on one btrfs filesystem.
    let btrfs = LoopBtrfs::mount(dir.path(), 3072);
    for (link, target) in [(dir.lxcpath(), "lxcpath"), (dir.cache(), "cache")] {
        let _ = fs::remove_dir(&link);
        fs::create_dir(btrfs.path().join(target)).unwrap();
        std::os::unix::fs::symlink(btrfs.path().join(target), &link).unwrap();
    }

    let mut b1 = dir.container("b1");
    let made = create(&dir, &server, &fixture, "b1", "btrfs").run();
    made.assert_success();
    assert_mentions(&made.stderr, &["rootfs: btrfs", "a snapshot of"]);
    let [cached] = &cache_entries(&dir.cache(), "debian")[..] else { panic!("expected one debian cache entry") };
    // The root of a btrfs subvolume has inode 256, in the cache and in the container.
    assert_eq!(fs::metadata(cached).unwrap().ino(), 256, "the cached rootfs is not a subvolume");
    assert_eq!(fs::metadata(b1.rootfs()).unwrap().ino(), 256, "the container rootfs is not a snapshot");
    assert_eq!(rootfs_line(&b1.config()), format!("btrfs:{}", b1.rootfs().display()));
    b1.start();
    assert_eq!(b1.attach(&["hostname"]).trim(), "b1");
    b1.attach(&["touch", "/root/mark"]);
    assert!(!cached.join("root/mark").exists(), "a write in the snapshot reached the cache");
    b1.stop_clean(30).assert_success();

    let b2 = dir.container("b2");
    let auto = create(&dir, &server, &fixture, "b2", "auto").run();
    auto.assert_success();
    assert_mentions(&auto.stderr, &["rootfs: btrfs"]);
    assert_eq!(fs::metadata(b2.rootfs()).unwrap().ino(), 256);

    // lxc-destroy removes a snapshot as a subvolume.
    b1.destroy().assert_success();
    b2.destroy().assert_success();
    assert!(!b1.dir().exists() && !b2.dir().exists());
    // b1 and b2 (holding the heavy lock since b1 started) drop before `btrfs`,
    // whose unmount takes that lock.
}

#[test]
fn unusable_backing_stores_fail_in_one_line_and_leave_nothing() {
    require_root();
    let dir = TestDir::new("backing-bad");
    // busybox keeps no cache: there is nothing to lay an overlay over.
    let err = dir.create("busybox", "bb").args(["--backing", "overlay"]).assert_fail();
    let line = error_line(&err);
    assert_mentions(&line, &["--backing overlay", "busybox keeps no rootfs cache", "--backing dir"]);
    let err = dir.create("busybox", "bb").args(["-B", "zfs"]).assert_exit(2).stderr.clone();
    assert_mentions(&err, &["unknown backing store 'zfs'", "dir, overlay, btrfs or auto"]);
    assert!(
        snapshot::listing(&dir.lxcpath()).is_empty(),
        "a refused create left {:?}",
        snapshot::listing(&dir.lxcpath())
    );
    assert!(!Path::new(&dir.lxcpath().join("bb")).exists());
}
