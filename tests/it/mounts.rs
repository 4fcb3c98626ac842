//! The namespaced runner leaves the host as it found it: same mount table,
//! no process left behind, after a good create and after a hook that fails
//! half way (after it ran a command in the rootfs).
//!
//! Every test holds the heavy lock so that no container boot or other
//! create's runner changes the mount table while it compares.

use lxc_tmpl_tests::{
    Fixture, TestDir, assert_mentions, assert_same_text, error_line, heavy_lock, require_root, snapshot,
};

/// Asserts that nothing runs with its root, cwd or binary in the test dir.
fn assert_no_process_left(dir: &TestDir) {
    let strays = snapshot::processes_under(dir.path());
    assert!(strays.is_empty(), "processes left running in the test dir: {strays:#?}");
}

#[test]
fn busybox_create_leaves_mount_table_unchanged() {
    require_root();
    let _lock = heavy_lock();
    let dir = TestDir::new("mounts-busybox");
    let _ct = dir.container("mnt1");
    let before = snapshot::mountinfo();
    dir.create("busybox", "mnt1").stdout();
    assert_same_text!(before, snapshot::mountinfo(), "a busybox create changed the host's mount table");
    assert_no_process_left(&dir);
}

/// A faulty create failing in configure, after its runner ran a command.
fn assert_configure_failure_is_clean(how: &str) {
    require_root();
    let _lock = heavy_lock();
    let dir = TestDir::new(&format!("mounts-fail-{how}"));
    dir.add_plugin(Fixture::Faulty);
    let _ct = dir.container("mnt2");
    let before = snapshot::mountinfo();
    let outcome =
        dir.create("faulty", "mnt2").args(["--fail-in", "configure", "--fail-how", how]).assert_exit(1).clone();
    assert_same_text!(before, snapshot::mountinfo(), "a create failing in configure changed the mount table");
    assert_mentions(&error_line(&outcome.stderr), &["configure"]);
    assert_no_process_left(&dir);
    assert!(
        snapshot::listing(&dir.lxcpath()).is_empty(),
        "the failed create left {:?}",
        snapshot::listing(&dir.lxcpath())
    );
}

#[test]
fn configure_error_leaves_mount_table_unchanged() {
    assert_configure_failure_is_clean("error");
}

#[test]
fn configure_panic_leaves_mount_table_unchanged() {
    assert_configure_failure_is_clean("panic");
}

#[test]
fn runner_kills_what_the_command_left_running() {
    require_root();
    let _lock = heavy_lock();
    let dir = TestDir::new("mounts-daemon");
    dir.add_plugin(Fixture::Faulty);
    let _ct = dir.container("mnt3");
    let before = snapshot::mountinfo();
    dir.create("faulty", "mnt3").arg("--spawn-daemon").stdout();
    assert_no_process_left(&dir);
    assert_same_text!(before, snapshot::mountinfo(), "a create whose command left a daemon changed the mount table");
}
