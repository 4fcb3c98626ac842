//! The rootfs files the runner changes for the duration of a run, and their restoration.
//!
//! `policy-rc.d` (exit 101: "action forbidden") keeps package maintainer scripts from starting
//! daemons inside the rootfs; `etc/resolv.conf` must be a regular file for the host's to be bound
//! over it during downloads. Both are put back as they were after the run, whatever its outcome.

// Paths here are rootfs paths: every write goes through `Rootfs` (clippy.toml).
#![deny(clippy::disallowed_methods)]

use std::path::PathBuf;

use lxc_tmpl_plugin_api::FileKind;

use crate::rootfs::{Rootfs, RootfsError};

/// Where the service-start policy goes, and what it says: exit 101 = "action forbidden"
/// (invoke-rc.d(8), "POLICY-RC.D INTERFACE").
pub(super) const POLICY_RC_D: &str = "usr/sbin/policy-rc.d";
pub(super) const POLICY_RC_D_SCRIPT: &[u8] = b"#!/bin/sh\nexit 101\n";

/// The rootfs's resolver config, a bind target during downloads.
pub(super) const RESOLV_CONF: &str = "etc/resolv.conf";

/// A rootfs file the runner changes for the duration of a run, and what was there before.
#[derive(Debug)]
pub(super) enum SavedFile {
    /// Nothing was there: remove ours afterwards.
    Absent(&'static str),
    /// A regular file: write it back.
    File { path: &'static str, data: Vec<u8>, mode: u32 },
    /// A symlink: recreate it.
    Symlink(&'static str, PathBuf),
    /// The file is used as it is; nothing to restore.
    Untouched,
}

impl SavedFile {
    /// Remember what is at `path` (which must not be a directory or special file).
    fn save(rootfs: &Rootfs, path: &'static str) -> Result<Option<SavedFile>, RootfsError> {
        Ok(match rootfs.file_kind(path)? {
            None => Some(SavedFile::Absent(path)),
            Some(FileKind::File) => {
                Some(SavedFile::File { path, data: rootfs.read_file(path)?, mode: rootfs.mode(path)? })
            }
            Some(FileKind::Symlink) => Some(SavedFile::Symlink(path, rootfs.read_link(path)?)),
            // Directories, special files (and kinds a later API may add) are left alone.
            Some(_) => None,
        })
    }

    /// Put `policy-rc.d` in place if the rootfs has `usr/sbin` (a rootfs without it has no
    /// invoke-rc.d to honour it).
    pub(super) fn install_policy(rootfs: &Rootfs) -> Result<SavedFile, RootfsError> {
        if rootfs.file_kind("usr/sbin")? != Some(FileKind::Dir) {
            return Ok(SavedFile::Untouched);
        }
        let Some(saved) = SavedFile::save(rootfs, POLICY_RC_D)? else {
            return Ok(SavedFile::Untouched);
        };
        rootfs.write_file(POLICY_RC_D, POLICY_RC_D_SCRIPT, 0o755)?;
        Ok(saved)
    }

    /// Make `etc/resolv.conf` a regular file to bind onto. A missing file gets an empty
    /// placeholder; a symlink (Ubuntu's points into `/run/systemd/resolve`, which does not
    /// exist in a chroot) is replaced by one. Both are undone afterwards. `None`: nothing can
    /// be bound (no `etc`, or a directory in the way).
    pub(super) fn prepare_resolv_conf(rootfs: &Rootfs) -> Result<Option<SavedFile>, RootfsError> {
        if rootfs.file_kind("etc")? != Some(FileKind::Dir) {
            return Ok(None);
        }
        let saved = match SavedFile::save(rootfs, RESOLV_CONF)? {
            None => return Ok(None),
            Some(SavedFile::File { .. }) => SavedFile::Untouched,
            Some(saved) => {
                rootfs.write_file(RESOLV_CONF, b"", 0o644)?;
                saved
            }
        };
        Ok(Some(saved))
    }

    pub(super) fn restore(self, rootfs: &Rootfs) -> Result<(), RootfsError> {
        match self {
            SavedFile::Absent(path) => rootfs.remove(path),
            SavedFile::File { path, data, mode } => rootfs.write_file(path, &data, mode),
            SavedFile::Symlink(path, target) => rootfs.symlink(&target.to_string_lossy(), path),
            SavedFile::Untouched => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_policy_rc_d_installed_and_restored() {
        let tmp = tempfile::tempdir().unwrap();
        let rootfs = Rootfs::open(tmp.path()).unwrap();
        // No usr/sbin: nothing installed.
        let saved = SavedFile::install_policy(&rootfs).unwrap();
        assert_eq!(rootfs.file_kind(POLICY_RC_D).unwrap(), None);
        saved.restore(&rootfs).unwrap();

        rootfs.mkdir_all("usr/sbin", 0o755).unwrap();
        let saved = SavedFile::install_policy(&rootfs).unwrap();
        assert_eq!(rootfs.read_file(POLICY_RC_D).unwrap(), POLICY_RC_D_SCRIPT);
        assert_eq!(rootfs.mode(POLICY_RC_D).unwrap(), 0o755);
        saved.restore(&rootfs).unwrap();
        assert_eq!(rootfs.file_kind(POLICY_RC_D).unwrap(), None);

        rootfs.write_file(POLICY_RC_D, b"#!/bin/sh\nexit 0\n", 0o700).unwrap();
        let saved = SavedFile::install_policy(&rootfs).unwrap();
        assert_eq!(rootfs.read_file(POLICY_RC_D).unwrap(), POLICY_RC_D_SCRIPT);
        saved.restore(&rootfs).unwrap();
        assert_eq!(rootfs.read_file(POLICY_RC_D).unwrap(), b"#!/bin/sh\nexit 0\n");
        assert_eq!(rootfs.mode(POLICY_RC_D).unwrap(), 0o700);

        rootfs.symlink("/bin/true", POLICY_RC_D).unwrap();
        let saved = SavedFile::install_policy(&rootfs).unwrap();
        assert_eq!(rootfs.file_kind(POLICY_RC_D).unwrap(), Some(FileKind::File));
        saved.restore(&rootfs).unwrap();
        assert_eq!(rootfs.read_link(POLICY_RC_D).unwrap(), PathBuf::from("/bin/true"));
    }

    #[test]
    fn runner_resolv_conf_placeholder_restored() {
        let tmp = tempfile::tempdir().unwrap();
        let rootfs = Rootfs::open(tmp.path()).unwrap();
        assert!(SavedFile::prepare_resolv_conf(&rootfs).unwrap().is_none());
        rootfs.mkdir_all("etc", 0o755).unwrap();

        let saved = SavedFile::prepare_resolv_conf(&rootfs).unwrap().unwrap();
        assert_eq!(rootfs.file_kind(RESOLV_CONF).unwrap(), Some(FileKind::File));
        saved.restore(&rootfs).unwrap();
        assert_eq!(rootfs.file_kind(RESOLV_CONF).unwrap(), None);

        let stub = "../run/systemd/resolve/stub-resolv.conf";
        rootfs.symlink(stub, RESOLV_CONF).unwrap();
        let saved = SavedFile::prepare_resolv_conf(&rootfs).unwrap().unwrap();
        assert_eq!(rootfs.file_kind(RESOLV_CONF).unwrap(), Some(FileKind::File));
        saved.restore(&rootfs).unwrap();
        assert_eq!(rootfs.read_link(RESOLV_CONF).unwrap(), PathBuf::from(stub));

        rootfs.write_file(RESOLV_CONF, b"nameserver 10.0.0.1\n", 0o644).unwrap();
        let saved = SavedFile::prepare_resolv_conf(&rootfs).unwrap().unwrap();
        saved.restore(&rootfs).unwrap();
        assert_eq!(rootfs.read_file(RESOLV_CONF).unwrap(), b"nameserver 10.0.0.1\n");
    }
}
