//! The btrfs backing store: the container's rootfs is a snapshot of the
//! cache generation's rootfs subvolume, made in constant time and sharing
//! every block until one side writes it.
//!
//! It needs the cache dir and the lxcpath on one btrfs filesystem, and the
//! cached rootfs to be a subvolume: [`CacheEntry`](crate::cache::CacheEntry)
//! builds it as one whenever its cache dir is on btrfs
//! ([`make_rootfs_dir`]). The config says `lxc.rootfs.path =
//! btrfs:<container>/rootfs`, so that lxc-destroy deletes the snapshot as a
//! subvolume (LXC's btrfs storage, src/lxc/storage/btrfs.c). The snapshot is
//! writable and independent: flushing or purging the cache never touches it.
//!
//! The `btrfs` tool (btrfs-progs) makes subvolumes and snapshots, run like
//! the cache's other tools in its own PID namespace that dies with
//! lxc-tmpl; btrfs-subvolume(8).

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::cache::ToolRunner;

/// Why a btrfs snapshot or subvolume could not be made.
#[derive(Debug, Error)]
pub enum BtrfsError {
    /// The `btrfs` tool could not be run or failed.
    #[error("{what} failed: {detail}; install btrfs-progs, or use --backing dir")]
    Tool {
        /// `btrfs subvolume snapshot A B`.
        what: String,
        /// What it said.
        detail: String,
    },
    /// A path that is not UTF-8 cannot be given to the tool.
    #[error("{0} is not a UTF-8 path: choose a cache dir and lxcpath with UTF-8 names")]
    NotUtf8(PathBuf),
    /// The rootfs directory to replace could not be removed.
    #[error("cannot remove the empty rootfs directory {path} to put the snapshot there")]
    Remove {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Whether `path` is on a btrfs filesystem (`f_type` of statfs(2) is
/// `BTRFS_SUPER_MAGIC`); false when it cannot be asked.
pub fn is_btrfs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::BTRFS_SUPER_MAGIC)
}

/// Whether `path` is the root of a btrfs subvolume: on btrfs the root
/// directory of every subvolume has inode number 256
/// (`BTRFS_FIRST_FREE_OBJECTID`, the test btrfs-progs itself uses).
pub fn is_subvolume(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    is_btrfs(path) && std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir() && m.ino() == 256)
}

/// Creates the empty directory a cache build fills: a subvolume when
/// `path`'s parent is on btrfs (so that containers can be snapshots of it),
/// else a plain directory with mode 0755.
///
/// # Errors
/// [`BtrfsError`] when the subvolume cannot be made, or the directory's I/O error.
pub fn make_rootfs_dir(tools: &dyn ToolRunner, path: &Path) -> Result<(), BtrfsError> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    if is_btrfs(parent) && which_btrfs().is_some() {
        run(tools, &["subvolume", "create"], &[path])
    } else {
        #[allow(clippy::disallowed_methods)] // an empty directory in the cache's staging dir, which root chose
        std::fs::create_dir(path)
            .map_err(|e| BtrfsError::Tool { what: format!("mkdir {}", path.display()), detail: e.to_string() })
    }
}

/// Makes `to` (the container's empty `rootfs` directory, replaced) a
/// writable snapshot of the subvolume `from`. On failure `to` is an empty
/// directory again.
///
/// # Errors
/// [`BtrfsError`]: `from` is no subvolume, the two are on different
/// filesystems (the tool's message says so), or the tool is missing.
pub fn snapshot(tools: &dyn ToolRunner, from: &Path, to: &Path) -> Result<(), BtrfsError> {
    // The snapshot must create `to` itself.
    #[allow(clippy::disallowed_methods)] // the empty rootfs dir this create made under its container dir
    std::fs::remove_dir(to)
        .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
        .map_err(|source| BtrfsError::Remove { path: to.to_owned(), source })?;
    run(tools, &["subvolume", "snapshot"], &[from, to]).inspect_err(|_| {
        // Put the empty rootfs directory back, for whatever the caller does instead.
        #[allow(clippy::disallowed_methods)] // as above
        let _ = std::fs::create_dir(to);
    })
}

/// The `btrfs` program, if installed.
pub fn which_btrfs() -> Option<PathBuf> {
    ["/usr/bin/btrfs", "/bin/btrfs", "/usr/sbin/btrfs", "/sbin/btrfs"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

fn run(tools: &dyn ToolRunner, args: &[&str], paths: &[&Path]) -> Result<(), BtrfsError> {
    let program = which_btrfs().ok_or_else(|| BtrfsError::Tool {
        what: format!("btrfs {}", args.join(" ")),
        detail: "the btrfs tool is not installed".into(),
    })?;
    let mut argv = vec![program.display().to_string()];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    for path in paths {
        argv.push(path.to_str().ok_or_else(|| BtrfsError::NotUtf8(path.to_path_buf()))?.to_owned());
    }
    let what = format!("btrfs {}", argv[1..].join(" "));
    let output =
        tools.run_tool(&argv, None).map_err(|e| BtrfsError::Tool { what: what.clone(), detail: e.to_string() })?;
    if output.status == 0 {
        Ok(())
    } else {
        let detail = String::from_utf8_lossy(&output.stderr)
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_owned();
        Err(BtrfsError::Tool { what, detail })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tmp_dir_is_not_a_subvolume_unless_on_btrfs() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(is_subvolume(dir.path()), is_btrfs(dir.path()) && is_subvolume(dir.path()));
        assert!(!is_subvolume(&dir.path().join("missing")));
    }
}
