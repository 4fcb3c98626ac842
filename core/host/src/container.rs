//! The container directory (`<lxcpath>/<name>`), claimed with lxc-create's
//! `partial` protocol and removed again if the create does not finish.
//!
//! lxc-create marks a container under construction with a `partial` file,
//! created exclusively and held under an OFD write lock. Every LXC tool that
//! opens the container checks it: locked means "ongoing creation", unlocked
//! means a create died and the container is destroyed. Using the same
//! protocol makes a half-made `lxc-tmpl create` look to LXC exactly like a
//! half-made `lxc-create`, and makes two creates of one name exclude each other.

use std::{
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use nix::fcntl::{FcntlArg, fcntl};
use thiserror::Error;

/// Why a container directory could not be claimed or kept.
#[derive(Debug, Error)]
pub enum ContainerError {
    /// The container already has a config.
    #[error("container '{name}' already exists in {lxcpath}: choose another name or lxc-destroy it first")]
    AlreadyExists {
        /// Container name.
        name: String,
        /// Its lxcpath.
        lxcpath: PathBuf,
    },
    /// Another create holds the `partial` file.
    #[error(
        "container '{name}' is being created by another process ({partial} exists); wait for it, or remove {partial} if no create is running"
    )]
    Busy {
        /// Container name.
        name: String,
        /// The partial file.
        partial: PathBuf,
    },
    /// A user-supplied rootfs is not empty.
    #[error("rootfs {0} is not empty: pass an empty directory or leave out --rootfs")]
    RootfsNotEmpty(PathBuf),
    /// A filesystem operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

type Result<T> = std::result::Result<T, ContainerError>;

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ContainerError + 'a {
    move |source| ContainerError::Io { what, path: path.to_owned(), source }
}

/// A claimed container directory. Dropping it without [`commit`](Self::commit)
/// removes everything it created, unless [`keep_on_failure`](Self::keep_on_failure) was set.
#[derive(Debug)]
pub struct ContainerDir {
    dir: PathBuf,
    rootfs: PathBuf,
    created_dir: bool,
    created_rootfs: bool,
    partial: Option<File>,
    keep: bool,
}

impl ContainerDir {
    /// Claims `dir` for container `name`: refuses an existing container,
    /// creates the directory (0770, as lxc-create), the locked `partial`
    /// file and the rootfs directory (`dir/rootfs` unless `rootfs` is given,
    /// which must then be empty or absent).
    pub fn claim(name: &str, dir: &Path, rootfs: Option<&Path>) -> Result<Self> {
        if dir.join("config").exists() {
            return Err(ContainerError::AlreadyExists {
                name: name.to_owned(),
                lxcpath: dir.parent().unwrap_or(Path::new("/")).to_owned(),
            });
        }
        let rootfs_path = rootfs.map(Path::to_owned).unwrap_or_else(|| dir.join("rootfs"));
        // Checked before anything is made, so refusing leaves nothing behind.
        if rootfs.is_some() && !is_empty_or_absent(&rootfs_path)? {
            return Err(ContainerError::RootfsNotEmpty(rootfs_path));
        }
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent).map_err(io_err("cannot create lxcpath", parent))?;
        }
        let created_dir = match fs::DirBuilder::new().mode(0o770).create(dir) {
            // 0770 whatever the umask, as lxc-create makes it.
            Ok(()) => {
                fs::set_permissions(dir, fs::Permissions::from_mode(0o770))
                    .map_err(io_err("cannot chmod container directory", dir))?;
                true
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(io_err("cannot create container directory", dir)(e)),
        };
        // Until `partial` is ours, nothing in the directory is: a Busy
        // partial belongs to a concurrent create, whose files must survive.
        // Only the directory, if this call made it and it is still empty, goes.
        let partial = lock_partial(name, dir).inspect_err(|_| {
            if created_dir {
                let _ = fs::remove_dir(dir);
            }
        })?;
        let mut claimed = ContainerDir {
            dir: dir.to_owned(),
            rootfs: rootfs_path,
            created_dir,
            created_rootfs: false,
            partial: Some(partial),
            keep: false,
        };
        match fs::DirBuilder::new().mode(0o755).create(&claimed.rootfs) {
            Ok(()) => claimed.created_rootfs = true,
            // A user-supplied empty rootfs; checked above.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && rootfs.is_some() => {}
            Err(e) => return Err(io_err("cannot create rootfs", &claimed.rootfs)(e)),
        }
        Ok(claimed)
    }

    /// The container directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The rootfs directory.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// The path of the container's config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config")
    }

    /// Keeps whatever was made if the create fails (`--keep-on-failure`).
    pub fn keep_on_failure(&mut self) {
        self.keep = true;
    }

    /// Marks the create complete: unlinks `partial` and keeps everything.
    pub fn commit(mut self) -> Result<()> {
        self.keep = true;
        self.release_partial()
    }

    /// Unlinks `partial` (LXC refuses to open a container whose partial file is
    /// locked) while keeping the claim: dropping it still removes everything.
    pub fn release_partial(&mut self) -> Result<()> {
        if self.partial.take().is_some() {
            let path = self.dir.join("partial");
            fs::remove_file(&path).map_err(io_err("cannot remove", &path))?;
        }
        Ok(())
    }

    fn remove_created(&mut self) -> io::Result<()> {
        // remove_dir_all never follows symlinks, so a rootfs holding
        // `etc -> /` only loses the link.
        if self.created_rootfs {
            remove_if_present(&self.rootfs)?;
        } else {
            // A user-supplied rootfs that was empty: empty it again.
            for entry in fs::read_dir(&self.rootfs)? {
                let path = entry?.path();
                if path.is_dir() && !path.is_symlink() { fs::remove_dir_all(&path)? } else { fs::remove_file(&path)? }
            }
        }
        let _ = self.release_partial();
        if self.created_dir {
            remove_if_present(&self.dir)?;
        } else {
            let _ = fs::remove_file(self.dir.join("config"));
        }
        Ok(())
    }
}

impl Drop for ContainerDir {
    fn drop(&mut self) {
        if self.keep {
            let _ = self.release_partial();
            return;
        }
        if let Err(e) = self.remove_created() {
            eprintln!("warning: could not remove the half-made container {}: {e}", self.dir.display());
        }
    }
}

/// Creates `dir/partial` exclusively and takes an OFD write lock on it, as
/// lxc-create does; LXC tools read a held lock as "creation in progress".
fn lock_partial(name: &str, dir: &Path) -> Result<File> {
    let path = dir.join("partial");
    let file = OpenOptions::new().write(true).create_new(true).mode(0o000).open(&path).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            ContainerError::Busy { name: name.to_owned(), partial: path.clone() }
        } else {
            io_err("cannot create", &path)(e)
        }
    })?;
    let lock = nix::libc::flock {
        l_type: nix::libc::F_WRLCK as i16,
        l_whence: nix::libc::SEEK_SET as i16,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    if let Err(e) = fcntl(&file, FcntlArg::F_OFD_SETLK(&lock)) {
        // The file is ours (create_new): leave no stray partial behind.
        let _ = fs::remove_file(&path);
        return Err(io_err("cannot lock", &path)(io::Error::from_raw_os_error(e as i32)));
    }
    Ok(file)
}

fn is_empty_or_absent(path: &Path) -> Result<bool> {
    match fs::read_dir(path) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(io_err("cannot read rootfs", path)(e)),
    }
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_claim_leaves_nothing() {
        let lxcpath = tempfile::tempdir().unwrap();
        let dir = lxcpath.path().join("c1");
        {
            let claim = ContainerDir::claim("c1", &dir, None).unwrap();
            assert!(claim.rootfs().is_dir());
            assert!(dir.join("partial").exists());
            fs::write(claim.rootfs().join("file"), "x").unwrap();
        }
        assert!(!dir.exists());
    }

    #[test]
    fn committed_claim_keeps_everything_but_partial() {
        let lxcpath = tempfile::tempdir().unwrap();
        let dir = lxcpath.path().join("c1");
        let claim = ContainerDir::claim("c1", &dir, None).unwrap();
        fs::write(claim.config_path(), "lxc.uts.name = c1\n").unwrap();
        claim.commit().unwrap();
        assert!(dir.join("config").exists());
        assert!(dir.join("rootfs").is_dir());
        assert!(!dir.join("partial").exists());
    }

    #[test]
    fn second_claim_of_same_name_is_busy_and_harmless() {
        let lxcpath = tempfile::tempdir().unwrap();
        let dir = lxcpath.path().join("c1");
        let first = ContainerDir::claim("c1", &dir, None).unwrap();
        let err = ContainerDir::claim("c1", &dir, None).unwrap_err();
        assert!(matches!(err, ContainerError::Busy { .. }), "{err}");
        // The failed claim must not have removed the first one's files.
        assert!(first.rootfs().is_dir() && dir.join("partial").exists());
    }

    #[test]
    fn losing_to_a_foreign_partial_touches_nothing() {
        let lxcpath = tempfile::tempdir().unwrap();
        let dir = lxcpath.path().join("busy");
        fs::create_dir_all(dir.join("rootfs/etc")).unwrap();
        fs::write(dir.join("partial"), "").unwrap();
        fs::write(dir.join("rootfs/etc/keep"), "mine").unwrap();
        let err = ContainerDir::claim("busy", &dir, None).unwrap_err();
        assert!(matches!(err, ContainerError::Busy { .. }), "{err}");
        assert_eq!(fs::read_to_string(dir.join("rootfs/etc/keep")).unwrap(), "mine");
        assert!(dir.join("partial").exists());
    }

    #[test]
    fn existing_container_and_non_empty_rootfs_are_refused() {
        let lxcpath = tempfile::tempdir().unwrap();
        let dir = lxcpath.path().join("c1");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("config"), "").unwrap();
        assert!(matches!(ContainerDir::claim("c1", &dir, None), Err(ContainerError::AlreadyExists { .. })));

        let rootfs = lxcpath.path().join("custom");
        fs::create_dir(&rootfs).unwrap();
        fs::write(rootfs.join("junk"), "").unwrap();
        let other = lxcpath.path().join("c2");
        assert!(matches!(ContainerDir::claim("c2", &other, Some(&rootfs)), Err(ContainerError::RootfsNotEmpty(_))));
        assert!(!other.exists(), "a refused claim must create nothing");
    }

    #[test]
    fn user_rootfs_is_emptied_not_removed() {
        let lxcpath = tempfile::tempdir().unwrap();
        let rootfs = lxcpath.path().join("custom");
        fs::create_dir(&rootfs).unwrap();
        {
            let claim = ContainerDir::claim("c1", &lxcpath.path().join("c1"), Some(&rootfs)).unwrap();
            fs::create_dir(claim.rootfs().join("etc")).unwrap();
        }
        assert!(rootfs.is_dir());
        assert_eq!(fs::read_dir(&rootfs).unwrap().count(), 0);
    }
}
