//! What the filesystems of the cache dir and the lxcpath allow a create:
//! reflinks (the `dir` store then shares the cache's blocks instead of
//! copying them), overlayfs (`-B overlay`), btrfs snapshots (`-B btrfs`).
//! A host with none of them is a warning: every create copies the whole
//! rootfs, which works but is the slow path.
//!
//! Reflinks are probed, not guessed from the filesystem type (xfs has them
//! only with `reflink=1`): two unnamed temp files (`O_TMPFILE`, nothing is
//! left behind even on a crash) in the directory, one cloned from the other
//! with `FICLONE`. overlayfs is what `/proc/filesystems` lists, or a module
//! the kernel can load.

use std::{io::Write, os::fd::AsFd, path::Path};

use nix::sys::statfs::{self, FsType};

use super::{Check, Probe, existing_ancestor};

/// Whether files in `dir` can be reflinked: `Some(false)` when the
/// filesystem refuses, `None` when it could not be tried (read-only, no
/// permission).
pub fn reflinks(dir: &Path) -> Option<bool> {
    let mut src = tempfile::tempfile_in(dir).ok()?;
    let dst = tempfile::tempfile_in(dir).ok()?;
    src.write_all(&[0x5a; 4096]).ok()?;
    src.flush().ok()?;
    Some(crate::sys::ficlone(dst.as_fd(), src.as_fd()).is_ok())
}

/// Whether the kernel has overlayfs: `Some(true)` when loaded or built in,
/// `Some(false)` when its module can be loaded (`modprobe overlay`), `None`
/// when neither.
pub fn overlay(probe: &Probe) -> Option<bool> {
    let listed = probe
        .read("/proc/filesystems")
        .is_some_and(|t| t.lines().any(|l| l.split_whitespace().last() == Some("overlay")));
    if listed {
        return Some(true);
    }
    let release = nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
    probe.file(format!("/lib/modules/{release}/kernel/fs/overlayfs")).is_dir().then_some(false)
}

/// The usual name of a filesystem type (statfs(2)'s magic numbers).
fn type_name(kind: FsType) -> String {
    const NAMES: &[(FsType, &str)] = &[
        (statfs::EXT4_SUPER_MAGIC, "ext4"),
        (statfs::BTRFS_SUPER_MAGIC, "btrfs"),
        (statfs::XFS_SUPER_MAGIC, "xfs"),
        (statfs::TMPFS_MAGIC, "tmpfs"),
        (statfs::OVERLAYFS_SUPER_MAGIC, "overlay"),
        (statfs::NFS_SUPER_MAGIC, "nfs"),
    ];
    NAMES
        .iter()
        .find(|(magic, _)| *magic == kind)
        .map_or_else(|| format!("filesystem type {:#x}", kind.0), |(_, name)| (*name).to_owned())
}

/// The check named `filesystem:<label>` for `dir` (or its nearest existing parent).
pub fn check(probe: &Probe, label: &str, dir: &Path) -> Check {
    let name = format!("filesystem:{label}");
    let Some(existing) = existing_ancestor(dir) else {
        return Check::fail(name, format!("no directory of {} exists", dir.display()), "give an existing path");
    };
    let kind = match statfs::statfs(existing) {
        Ok(stat) => stat.filesystem_type(),
        Err(e) => return Check::warn(name, format!("cannot statfs {}: {e}", existing.display()), "check the path"),
    };
    judge(name, &type_name(kind), kind == statfs::BTRFS_SUPER_MAGIC, reflinks(existing), overlay(probe))
}

/// Judges what was found on one filesystem of type `fs`.
pub fn judge(name: String, fs: &str, btrfs: bool, reflinks: Option<bool>, overlay: Option<bool>) -> Check {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let reflink_text = reflinks.map_or("unknown (cannot write here to try)", yes_no);
    let overlay_text = match overlay {
        Some(true) => "yes",
        Some(false) => "module not loaded",
        None => "no",
    };
    let detail = format!("{fs}; reflinks: {reflink_text}; overlay: {overlay_text}; btrfs snapshots: {}", yes_no(btrfs));
    if reflinks == Some(true) || overlay.is_some() || btrfs {
        let detail =
            if overlay == Some(false) { format!("{detail} (modprobe overlay for -B overlay)") } else { detail };
        Check::ok(name, detail)
    } else {
        Check::warn(
            name,
            format!("{detail}: every create copies the whole rootfs"),
            "load overlayfs (modprobe overlay) for -B overlay, or put the cache dir and the lxcpath on one btrfs \
             (or xfs with reflink=1)",
        )
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures are built with std::fs on purpose
mod tests {
    use super::*;
    use crate::doctor::{Status, testing::FakeRoot};

    #[test]
    fn doctor_storage_without_any_sharing_warns() {
        let plain = judge("filesystem:x".into(), "ext4", false, Some(false), None);
        assert_eq!(plain.status, Status::Warn, "{plain:?}");
        assert!(plain.fix.unwrap().contains("modprobe overlay"));
        assert_eq!(judge("f".into(), "ext4", false, Some(false), Some(true)).status, Status::Ok, "overlay");
        assert_eq!(judge("f".into(), "xfs", false, Some(true), None).status, Status::Ok, "reflinks");
        assert_eq!(judge("f".into(), "btrfs", true, Some(true), None).status, Status::Ok, "btrfs");
    }

    #[test]
    fn doctor_storage_overlay_is_read_from_proc_filesystems() {
        let fake = FakeRoot::new();
        fake.write("/proc/filesystems", "nodev\tsysfs\n\text4\n");
        assert_eq!(overlay(&fake.probe), None);
        fake.write("/proc/filesystems", "nodev\tsysfs\nnodev\toverlay\n");
        assert_eq!(overlay(&fake.probe), Some(true));
    }

    #[test]
    fn doctor_storage_reflinks_are_probed() {
        // tmpfs has no reflinks; the temp dir here is on whatever /tmp is,
        // so only the answer's presence is certain.
        let tmp = tempfile::tempdir().unwrap();
        assert!(reflinks(tmp.path()).is_some());
        assert_eq!(reflinks(&tmp.path().join("missing")), None);
    }
}
