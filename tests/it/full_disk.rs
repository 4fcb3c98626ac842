//! A create whose lxcpath runs out of space fails with one line naming the
//! path and "no space left", leaves nothing in the lxcpath, and leaves the
//! cache whole: the next create into a big enough lxcpath reuses it.
//!
//! The small lxcpath is a 64 MiB tmpfs mounted below the test dir; a debian
//! rootfs (about 200 MB) cannot fit. The cache lives on the ordinary disk.
//! Timings are printed (`--nocapture`); nothing asserts on them.

use std::{path::Path, time::Instant};

use lxc_tmpl_tests::{
    AptFixture, LXC_TOOLS, MirrorServer, Outcome, TestCommand, TestDir, apt_fixture, assert_mentions, assert_same_text,
    config, error_line, heavy_lock, leftovers, procs, require_root, require_tools,
    rootfs::{cache_entries, read},
    snapshot,
    tmpfs::Tmpfs,
};

/// The size of the small lxcpath.
const SMALL_MIB: u32 = 64;

/// `lxc-tmpl create --distro debian` from the local mirror into `lxcpath`.
fn debian_create(dir: &TestDir, mirror: &str, fixture: &AptFixture, lxcpath: &Path, name: &str) -> TestCommand {
    let mut cmd = dir.command();
    cmd.arg("create").args(["--distro", "debian", "--name", name, "-P"]).arg(lxcpath);
    cmd.arg("-f").arg(dir.safe_conf()).arg("--cache-dir").arg(dir.cache());
    fixture.from_mirror(&mut cmd, mirror, "bookworm");
    cmd
}

/// A create that ran out of space on `small`: one error line naming the
/// path and the reason, nothing left in the lxcpath, no process left.
fn assert_out_of_space(outcome: &Outcome, small: &Tmpfs, dir: &TestDir) {
    outcome.assert_failed();
    let line = error_line(&outcome.stderr);
    assert_mentions(&line, &["no space left", &small.path().display().to_string()]);
    let lxcpath = small.path().join("lxcpath");
    assert!(snapshot::listing(&lxcpath).is_empty(), "the failed create left {:?}", snapshot::listing(&lxcpath));
    // Nothing hidden is left either (a deleted file still held open would count).
    assert!(small.used_bytes() < 1 << 20, "{} bytes are still in use on the small lxcpath", small.used_bytes());
    let left = procs::related(dir.path(), None);
    assert!(left.is_empty(), "processes left running: {left:#?}");
    assert!(leftovers::staging_dirs(&dir.cache()).is_empty(), "cache staging left");
}

#[test]
fn a_full_lxcpath_fails_cleanly_and_keeps_the_cache() {
    require_root();
    require_tools(LXC_TOOLS);
    require_tools(&["debootstrap", "wget", "gpgv"]);
    let fixture = apt_fixture();
    let server = MirrorServer::start();
    let mirror = server.url("debian");
    let dir = TestDir::new("full-disk");
    let small = Tmpfs::mount(&dir.path().join("small"), SMALL_MIB);
    let small_lxcpath = small.path().join("lxcpath");
    std::fs::create_dir(&small_lxcpath).unwrap();

    // Cold: the cache is built on the big disk, then the copy fills the tmpfs.
    let lock = heavy_lock();
    let mounts_before = snapshot::mountinfo();
    let started = Instant::now();
    let cold = debian_create(&dir, &mirror, &fixture, &small_lxcpath, "full").run();
    eprintln!("cold create into a {SMALL_MIB} MiB lxcpath failed after {:.1?}", started.elapsed());
    assert_out_of_space(&cold, &small, &dir);
    assert_same_text!(mounts_before, snapshot::mountinfo(), "the failed create changed the mount table");
    drop(lock);
    let entries = cache_entries(&dir.cache(), "debian");
    assert_eq!(entries.len(), 1, "the cache was not kept: {entries:?}\n{cold}");
    let cached = entries[0].clone();
    for file in ["sbin/init", "usr/bin/dpkg", "usr/sbin/sshd"] {
        assert!(cached.join(file).exists(), "the cached rootfs lacks /{file}");
    }
    let fingerprint = leftovers::fingerprint(&cached);

    // Warm: the same failure, and the cache untouched.
    let warm = debian_create(&dir, &mirror, &fixture, &small_lxcpath, "full").run();
    assert!(!warm.stderr.contains("==> debootstrap"), "the cache was not reused:\n{warm}");
    assert_out_of_space(&warm, &small, &dir);
    assert!(leftovers::fingerprint(&cached) == fingerprint, "the failed create changed the cached rootfs");

    // A big enough lxcpath: the same name, from the warm cache.
    let _ct = dir.container("full");
    let started = Instant::now();
    let ok = debian_create(&dir, &mirror, &fixture, &dir.lxcpath(), "full").run();
    ok.assert_success();
    eprintln!("create into the big lxcpath from the kept cache: {:.1?}", started.elapsed());
    assert!(ok.stderr.contains("cache reused"), "the next create did not reuse the cache:\n{ok}");
    assert!(!ok.stderr.contains("==> debootstrap"), "{ok}");
    assert_eq!(cache_entries(&dir.cache(), "debian"), std::slice::from_ref(&cached));
    assert!(leftovers::fingerprint(&cached) == fingerprint, "the cache changed");
    let text = read(dir.lxcpath().join("full/config"));
    assert_eq!(config::value(&text, "lxc.uts.name").as_deref(), Some("full"), "{text}");
    assert_eq!(read(dir.lxcpath().join("full/rootfs/etc/hostname")).trim(), "full");
}
