//! A btrfs filesystem on a loop device, for the btrfs backing store tests:
//! a sparse image file in the test dir, `mkfs.btrfs`, `mount -o loop`;
//! unmounted (lazily, so a busy mount cannot wedge the test) and its image
//! removed when dropped. Mounting and unmounting change the host's mount
//! table, so both happen under the [`heavy_lock`](crate::heavy_lock) that
//! other tests hold while they compare it: drop every started
//! [`Container`](crate::Container) (which holds that lock) first.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

/// A mounted btrfs image; see the module docs.
#[derive(Debug)]
pub struct LoopBtrfs {
    mount_point: PathBuf,
    image: PathBuf,
}

impl LoopBtrfs {
    /// Makes a sparse `mib` MiB image at `<dir>/btrfs.img` and mounts it on
    /// `<dir>/btrfs`. `dir` must lie below `/tmp/lxc-tmpl-tests`.
    pub fn mount(dir: &Path, mib: u64) -> LoopBtrfs {
        assert!(dir.starts_with("/tmp/lxc-tmpl-tests/"), "test mounts live below the test dirs: {}", dir.display());
        let image = dir.join("btrfs.img");
        let mount_point = dir.join("btrfs");
        fs::create_dir_all(&mount_point).unwrap();
        fs::File::create(&image).unwrap().set_len(mib << 20).unwrap();
        run(Command::new("mkfs.btrfs").arg("-q").arg(&image), "mkfs.btrfs (apt-get install btrfs-progs)");
        let _heavy = crate::heavy_lock();
        run(Command::new("mount").args(["-o", "loop"]).arg(&image).arg(&mount_point), "mount -o loop");
        LoopBtrfs { mount_point, image }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.mount_point
    }
}

impl Drop for LoopBtrfs {
    fn drop(&mut self) {
        // -l: the loop device goes once nothing uses the filesystem; -d frees it then.
        let _heavy = crate::heavy_lock();
        let _ = Command::new("umount").args(["-l", "-d"]).arg(&self.mount_point).output();
        let _ = fs::remove_file(&self.image);
    }
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
}
