//! [`Tmpfs`]: a small tmpfs mounted below a test dir, to run a create out of
//! disk space. Unmounted when dropped, also when the test panics.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use crate::snapshot;

/// A mounted tmpfs of a fixed size; see the module docs.
#[derive(Debug)]
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `mib` MiB (mode 0755) on `path`, which must lie
    /// below `/tmp/lxc-tmpl-tests` (created if missing).
    pub fn mount(path: &Path, mib: u32) -> Tmpfs {
        assert!(path.starts_with("/tmp/lxc-tmpl-tests/"), "test mounts live below the test dirs: {}", path.display());
        fs::create_dir_all(path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m,mode=0755"), "lxc-tmpl-test-tmpfs"])
            .arg(path)
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount: {e}"));
        assert!(
            out.status.success(),
            "cannot mount a {mib} MiB tmpfs on {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { path: path.to_owned() }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in use on it.
    pub fn used_bytes(&self) -> u64 {
        let stat = nix::sys::statvfs::statvfs(&self.path)
            .unwrap_or_else(|e| panic!("cannot statvfs {}: {e}", self.path.display()));
        (stat.blocks() - stat.blocks_free()) * stat.fragment_size()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Whatever a failed test left mounted below it goes first.
        let mut below: Vec<PathBuf> =
            snapshot::mounts_under(&self.path).into_iter().filter(|m| m != &self.path).collect();
        below.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for mount in below {
            let _ = Command::new("umount").arg("-l").arg(&mount).status();
        }
        let unmounted = Command::new("umount").arg(&self.path).status().is_ok_and(|s| s.success());
        if !unmounted {
            eprintln!("tmpfs cleanup: {} is busy, detaching it lazily", self.path.display());
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}
