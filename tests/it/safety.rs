//! Hostile rootfs contents never lead a write out of the rootfs: symlinks
//! in a user-supplied rootfs, symlinks a plugin planted.

use std::{fs, os::unix::fs::PermissionsExt, path::PathBuf};

use lxc_tmpl_tests::{Fixture, TestDir, assert_same_text, error_line, require_root, snapshot};

/// A host directory outside the test dir that a hostile rootfs points at;
/// removed on drop.
#[derive(Debug)]
struct Victim {
    path: PathBuf,
}

impl Victim {
    /// `/tmp/lxc-tmpl-victim-XXXXXX/` holding `marker` and `keep/marker`.
    fn new() -> Victim {
        let path = tempfile::Builder::new().prefix("lxc-tmpl-victim-").tempdir_in("/tmp").expect("victim dir").keep();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod victim");
        fs::write(path.join("marker"), "the victim's marker\n").expect("write marker");
        fs::create_dir(path.join("keep")).expect("mkdir keep");
        fs::write(path.join("keep/marker"), "another marker\n").expect("write keep/marker");
        Victim { path }
    }

    fn path_str(&self) -> String {
        self.path.display().to_string()
    }

    fn snapshot(&self) -> String {
        snapshot::tree(&self.path)
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

#[test]
fn rootfs_with_symlink_to_host_dir_is_refused() {
    require_root();
    let dir = TestDir::new("rootfs-symlink");
    let victim = Victim::new();
    let rootfs = dir.mkdir("myroot");
    std::os::unix::fs::symlink(&victim.path, rootfs.join("etc")).expect("plant etc symlink");
    let victim_before = victim.snapshot();
    let before = dir.snapshot();
    let _ct = dir.container("c1");

    let outcome = dir.create("busybox", "c1").arg("--rootfs").arg(&rootfs).run();
    outcome.assert_failed();
    let line = error_line(&outcome.stderr);
    assert!(line.contains("empty") || line.contains(&rootfs.display().to_string()), "unclear error: {line}");
    assert_same_text!(victim_before, victim.snapshot(), "the victim dir changed:\n{outcome}");
    assert_same_text!(before, dir.snapshot(), "a refused create left something behind:\n{outcome}");
}

#[test]
fn planted_symlinks_never_lead_out_of_the_rootfs() {
    require_root();
    let dir = TestDir::new("planted-symlinks");
    let victim = Victim::new();
    dir.add_plugin(Fixture::Faulty);
    let victim_before = victim.snapshot();
    let ct = dir.container("planted");

    let outcome = dir.create("faulty", "planted").args(["--plant-symlink", "--victim", &victim.path_str()]).run();
    assert_same_text!(victim_before, victim.snapshot(), "the victim dir changed:\n{outcome}");
    for name in ["hostname", "pwned", "copied", "newdir", "resolv.conf", "policy-rc.d"] {
        assert!(!victim.path.join(name).exists(), "{name} appeared in the victim dir:\n{outcome}");
    }

    if outcome.status.success() {
        // The first write through `evil -> <victim>` reported success: it must
        // have landed at the same path inside the rootfs.
        let inside = ct.rootfs().join(victim.path.strip_prefix("/").expect("absolute victim path"));
        let pwned = inside.join("pwned");
        assert!(
            pwned.is_file(),
            "the write through the planted symlink went nowhere ({}):\n{outcome}",
            pwned.display()
        );
    } else {
        outcome.assert_failed();
        error_line(&outcome.stderr);
        assert!(
            snapshot::listing(&dir.lxcpath()).is_empty(),
            "the failed create left {:?} in the lxcpath",
            snapshot::listing(&dir.lxcpath())
        );
    }
}
