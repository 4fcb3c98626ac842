//! The container directory (`<lxcpath>/<name>`), claimed with lxc-create's
//! `partial` protocol and removed again if the create does not finish.
//!
//! lxc-create marks a container under construction with a `partial` file,
//! created exclusively and held under an OFD write lock. Every LXC tool that
//! opens the container checks it: locked means "ongoing creation", unlocked
//! means a create died and the container is destroyed. Using the same
//! protocol makes a half-made `lxc-tmpl create` look to LXC exactly like a
//! half-made `lxc-create`, and makes two creates of one name exclude each other.
//!
//! LXC only looks at the lock, never at the file's content, so lxc-tmpl writes
//! a small JSON record into it ([`PartialRecord`]): who is creating, and what
//! that create made (the directory? the rootfs?). A create killed by `SIGKILL`
//! or a power loss leaves the file unlocked; the next claim of that name (or
//! `lxc-tmpl destroy NAME`) reads the record and removes exactly what the dead
//! create made, never a directory or file the user had before.

// The container directory is <lxcpath>/<name>, a host path root chose; nothing is written into
// it by path once it belongs to the container's root (see `write_config`).
#![allow(clippy::disallowed_methods)]

use std::{
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use std::io::{Read, Write};

use nix::{
    errno::Errno,
    fcntl::{FcntlArg, fcntl},
};
use serde::{Deserialize, Serialize};
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
    #[error("container '{name}' is being created by {holder} ({partial} is locked): wait for it to finish")]
    Busy {
        /// Container name.
        name: String,
        /// The partial file.
        partial: PathBuf,
        /// `process 4242`, or `another process` when the file names none.
        holder: String,
    },
    /// An abandoned create whose partial file records nothing lxc-tmpl made.
    #[error(
        "container '{name}' was left half-made by an interrupted lxc-create ({partial} is unlocked and records \
         nothing lxc-tmpl made): check {dir} and remove it (rm -rf {dir}), then create again"
    )]
    Abandoned {
        /// Container name.
        name: String,
        /// The partial file.
        partial: PathBuf,
        /// The container directory.
        dir: PathBuf,
    },
    /// `destroy` found nothing to destroy.
    #[error("there is no container '{name}' at {dir}: nothing to remove (check the name and -P LXCPATH)")]
    NotFound {
        /// Container name.
        name: String,
        /// Where it was looked for.
        dir: PathBuf,
    },
    /// A user-supplied rootfs is not empty.
    #[error("rootfs {0} is not empty: pass an empty directory or leave out --rootfs")]
    RootfsNotEmpty(PathBuf),
    /// A filesystem operation failed.
    #[error("{what} {path}")]
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
    recovered: Option<Recovered>,
}

/// What lxc-tmpl writes into `partial`: enough for a later run to remove
/// exactly what an interrupted create made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialRecord {
    /// Always `lxc-tmpl`: an empty or foreign partial file (lxc-create's) is not ours to judge.
    pub tool: String,
    /// The creating process.
    pub pid: u32,
    /// Whether the create made the container directory (else it existed, and only what the
    /// create put into it is removed).
    pub dir_created: bool,
    /// The rootfs directory.
    pub rootfs: PathBuf,
    /// Whether the create made the rootfs directory (else it was the user's empty `--rootfs`,
    /// which is emptied but kept).
    pub rootfs_created: bool,
}

const RECORD_TOOL: &str = "lxc-tmpl";

/// The scratch lxcpath inside a container directory where the create checks a
/// copy of the config (LXC will not open a container whose `partial` is
/// locked); part of what a create makes, and removed with it.
pub const CHECK_DIR: &str = ".lxc-tmpl-check";

/// The remains of an interrupted create that a claim or [`destroy`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// The process that made them, as its record says (none for a bare partial file).
    pub pid: Option<u32>,
    /// The container directory.
    pub dir: PathBuf,
}

impl std::fmt::Display for Recovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "removed the remains of an interrupted create")?;
        if let Some(pid) = self.pid {
            write!(f, " (pid {pid})")?;
        }
        write!(f, " in {}", self.dir.display())
    }
}

/// What [`destroy`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destroyed {
    /// An abandoned create's remains were removed.
    Remains(Recovered),
    /// The container is complete: it is LXC's to destroy (`lxc-destroy`).
    Complete,
}

impl ContainerDir {
    /// Claims `dir` for container `name`: refuses an existing container,
    /// creates the directory (0770, as lxc-create), the locked `partial`
    /// file and the rootfs directory (`dir/rootfs` unless `rootfs` is given,
    /// which must then be empty or absent).
    ///
    /// A `partial` file nobody holds marks a create that was killed: when its
    /// record says lxc-tmpl made it, what it made is removed first and
    /// [`recovered`](Self::recovered) says so; otherwise the claim fails with
    /// [`ContainerError::Abandoned`].
    pub fn claim(name: &str, dir: &Path, rootfs: Option<&Path>) -> Result<Self> {
        let recovered = match recover_abandoned(name, dir)? {
            Some(Destroyed::Remains(recovered)) => Some(recovered),
            _ => None,
        };
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
        // Recorded before the rootfs is made: after a kill, a later run must know that an
        // existing rootfs is this create's to remove.
        let record = PartialRecord {
            tool: RECORD_TOOL.to_owned(),
            pid: std::process::id(),
            dir_created: created_dir,
            rootfs: rootfs_path.clone(),
            rootfs_created: !rootfs_path.exists(),
        };
        let partial = lock_partial(name, dir, &record).inspect_err(|_| {
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
            recovered,
        };
        match fs::DirBuilder::new().mode(0o755).create(&claimed.rootfs) {
            Ok(()) => claimed.created_rootfs = true,
            // A user-supplied empty rootfs; checked above.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && rootfs.is_some() => {}
            Err(e) => return Err(io_err("cannot create rootfs", &claimed.rootfs)(e)),
        }
        Ok(claimed)
    }

    /// The remains of an interrupted create this claim removed first, if any.
    pub fn recovered(&self) -> Option<&Recovered> {
        self.recovered.as_ref()
    }

    /// The container directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The rootfs directory.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// Writes `config` as container `name` of a scratch lxcpath inside the
    /// container directory (see [`CHECK_DIR`]), where LXC can load it as a
    /// container of its own; returns that lxcpath. It goes with the claim, or
    /// with [`ContainerDir::remove_check_copy`].
    ///
    /// # Errors
    /// [`ContainerError::Io`] when the directory or file cannot be made; a
    /// symlink in their place is refused (`O_NOFOLLOW`), not followed.
    pub fn write_check_copy(&self, name: &str, config: &str) -> Result<PathBuf> {
        let lxcpath = self.dir.join(CHECK_DIR);
        let copy = lxcpath.join(name);
        for dir in [&lxcpath, &copy] {
            match fs::DirBuilder::new().mode(0o700).create(dir) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(io_err("cannot create", dir)(e)),
                _ => {}
            }
        }
        write_config(&copy.join("config"), config).map_err(io_err("cannot write", &copy))?;
        Ok(lxcpath)
    }

    /// Removes what [`ContainerDir::write_check_copy`] made.
    pub fn remove_check_copy(&self) {
        let _ = remove_if_present(&self.dir.join(CHECK_DIR));
    }

    /// The path of the container's config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config")
    }

    /// Keeps whatever was made if the create fails (`--keep-on-failure`), for
    /// debugging. The `partial` file stays too, unlocked, with its record: the
    /// remains are then those of an interrupted create, which the next create
    /// of the name or `lxc-tmpl destroy` removes.
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
    fn release_partial(&mut self) -> Result<()> {
        if self.partial.take().is_some() {
            let path = self.dir.join("partial");
            fs::remove_file(&path).map_err(io_err("cannot remove", &path))?;
        }
        Ok(())
    }

    fn remove_created(&mut self) -> io::Result<()> {
        remove_made(&self.dir, &self.rootfs, self.created_dir, self.created_rootfs)?;
        let _ = self.release_partial();
        if self.created_dir {
            remove_if_present(&self.dir)?;
        }
        Ok(())
    }
}

impl Drop for ContainerDir {
    fn drop(&mut self) {
        if self.keep {
            // Committed: partial is gone already. Failed with --keep-on-failure: closing it
            // unlocks it and leaves the record for `destroy` and the next create.
            self.partial.take();
            return;
        }
        if let Err(e) = self.remove_created() {
            eprintln!("warning: could not remove the half-made container {}: {e}", self.dir.display());
        }
    }
}

/// Removes what a create made inside `dir` (not `dir` itself): the rootfs it
/// created, or the contents of a user's `--rootfs` it filled, and the config.
///
/// `remove_dir_all` never follows symlinks, so a rootfs holding `etc -> /`
/// only loses the link.
fn remove_made(dir: &Path, rootfs: &Path, dir_created: bool, rootfs_created: bool) -> io::Result<()> {
    if rootfs_created {
        remove_if_present(rootfs)?;
    } else if rootfs.is_dir() {
        // A user-supplied rootfs that was empty: empty it again.
        // Unlink first and fall back to a tree removal for a directory: no
        // type check that an entry swapped in meanwhile could outdate.
        for entry in fs::read_dir(rootfs)? {
            let path = entry?.path();
            match fs::remove_file(&path) {
                Err(e) if e.raw_os_error() == Some(nix::libc::EISDIR) => remove_if_present(&path)?,
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    if !dir_created {
        // The config is the create's: a directory holding one is refused before anything is made.
        match fs::remove_file(dir.join("config")) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        remove_if_present(&dir.join(CHECK_DIR))?;
    }
    Ok(())
}

/// Writes a container config file at `path`, mode 0644 as lxc-create writes
/// it, replacing the content of an existing file. A symlink at `path` is an
/// error (`ELOOP`), never followed: the container directory may belong to the
/// container's root, which must not be able to point the config elsewhere.
///
/// # Errors
/// The `open(2)` or `write(2)` error.
pub fn write_config(path: &Path, config: &str) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)?;
    file.write_all(config.as_bytes())?;
    file.sync_all()
}

/// The OFD write lock lxc-create takes on `partial`, over the whole file.
fn write_lock() -> nix::libc::flock {
    nix::libc::flock {
        l_type: nix::libc::F_WRLCK as i16,
        l_whence: nix::libc::SEEK_SET as i16,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    }
}

/// Makes `dir/partial` holding `record`, under an OFD write lock, as
/// lxc-create makes its (LXC tools read a held lock as "creation in
/// progress"). The file is written and locked while it is still unnamed
/// (`O_TMPFILE`) and then linked into place, so nobody ever sees a `partial`
/// without its lock or its record; on a filesystem without `O_TMPFILE` it is
/// created exclusively, then locked and written.
fn lock_partial(name: &str, dir: &Path, record: &PartialRecord) -> Result<File> {
    let path = dir.join("partial");
    let text = serde_json::to_vec(record).expect("a record of plain fields serialises");
    let lock_and_write = |file: &mut File| -> io::Result<()> {
        fcntl(&*file, FcntlArg::F_OFD_SETLK(&write_lock())).map_err(|e| io::Error::from_raw_os_error(e as i32))?;
        file.write_all(&text)?;
        file.sync_all()
    };
    let busy = || {
        // Taken between our look and now: name the winner if its record says who it is.
        let holder = fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<PartialRecord>(&t).ok())
            .map_or_else(|| "another process".to_owned(), |r| format!("process {}", r.pid));
        ContainerError::Busy { name: name.to_owned(), partial: path.clone(), holder }
    };
    let file = match OpenOptions::new().read(true).write(true).mode(0o000).custom_flags(nix::libc::O_TMPFILE).open(dir)
    {
        Ok(mut file) => {
            lock_and_write(&mut file).map_err(io_err("cannot prepare", &path))?;
            match link_fd(&file, &path) {
                Ok(()) => file,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(busy()),
                Err(e) => return Err(io_err("cannot create", &path)(e)),
            }
        }
        Err(e) if matches!(e.raw_os_error(), Some(nix::libc::EOPNOTSUPP | nix::libc::EISDIR | nix::libc::EINVAL)) => {
            let mut file =
                OpenOptions::new().read(true).write(true).create_new(true).mode(0o000).open(&path).map_err(|e| {
                    if e.kind() == io::ErrorKind::AlreadyExists { busy() } else { io_err("cannot create", &path)(e) }
                })?;
            if let Err(e) = lock_and_write(&mut file) {
                // The file is ours (create_new): leave no stray partial behind.
                let _ = fs::remove_file(&path);
                return Err(io_err("cannot lock", &path)(e));
            }
            file
        }
        Err(e) => return Err(io_err("cannot create", &path)(e)),
    };
    // The directory entry must be as durable as the files it describes.
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(file)
}

/// Gives the unnamed (`O_TMPFILE`) `file` the name `path` (linkat(2) through
/// `/proc/self/fd`, which needs no capability); `AlreadyExists` if taken.
fn link_fd(file: &File, path: &Path) -> io::Result<()> {
    use std::os::{fd::AsRawFd, unix::ffi::OsStrExt};
    let from = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    let to = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: both pointers are valid NUL-terminated strings for the duration of the call.
    #[allow(unsafe_code)]
    let rc = unsafe {
        nix::libc::linkat(
            nix::libc::AT_FDCWD,
            from.as_ptr(),
            nix::libc::AT_FDCWD,
            to.as_ptr(),
            nix::libc::AT_SYMLINK_FOLLOW,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Looks at `dir/partial`, if there is one. A locked one is a create in progress
/// ([`ContainerError::Busy`]). An unlocked one whose record is lxc-tmpl's is an
/// abandoned create: what it made is removed, under the lock, and returned as
/// [`Destroyed::Remains`]. An unlocked one with no record is removed only when
/// it is alone in `dir` (a create killed right after making it); otherwise the
/// directory is the user's to judge ([`ContainerError::Abandoned`]).
///
/// `Ok(None)`: there is no partial file.
fn recover_abandoned(name: &str, dir: &Path) -> Result<Option<Destroyed>> {
    let path = dir.join("partial");
    let mut file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("cannot open", &path)(e)),
    };
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let record: Option<PartialRecord> =
        serde_json::from_str(&text).ok().filter(|r: &PartialRecord| r.tool == RECORD_TOOL);
    match fcntl(&file, FcntlArg::F_OFD_SETLK(&write_lock())) {
        Ok(_) => {}
        Err(Errno::EAGAIN | Errno::EACCES) => {
            let holder = record.map_or_else(|| "another process".to_owned(), |r| format!("process {}", r.pid));
            return Err(ContainerError::Busy { name: name.to_owned(), partial: path, holder });
        }
        Err(e) => return Err(io_err("cannot lock", &path)(io::Error::from_raw_os_error(e as i32))),
    }
    // Ours now: no other create can take it while we clean up.
    let Some(record) = record else {
        let alone = fs::read_dir(dir).map_err(io_err("cannot read", dir))?.count() == 1;
        if !alone {
            return Err(ContainerError::Abandoned { name: name.to_owned(), partial: path, dir: dir.to_owned() });
        }
        fs::remove_file(&path).map_err(io_err("cannot remove", &path))?;
        return Ok(Some(Destroyed::Remains(Recovered { pid: None, dir: dir.to_owned() })));
    };
    remove_made(dir, &record.rootfs, record.dir_created, record.rootfs_created)
        .map_err(io_err("cannot remove the remains of an interrupted create in", dir))?;
    fs::remove_file(&path).map_err(io_err("cannot remove", &path))?;
    if record.dir_created {
        remove_if_present(dir).map_err(io_err("cannot remove", dir))?;
    }
    Ok(Some(Destroyed::Remains(Recovered { pid: Some(record.pid), dir: dir.to_owned() })))
}

/// `lxc-tmpl destroy NAME`: removes the remains of an interrupted create of
/// `name` in `dir`, or says that the container is complete (LXC's to destroy).
///
/// # Errors
/// [`ContainerError::Busy`] while a create holds the name,
/// [`ContainerError::Abandoned`] for remains lxc-tmpl did not record,
/// [`ContainerError::NotFound`] when there is no container.
pub fn destroy(name: &str, dir: &Path) -> Result<Destroyed> {
    if let Some(done) = recover_abandoned(name, dir)? {
        return Ok(done);
    }
    if dir.join("config").exists() {
        return Ok(Destroyed::Complete);
    }
    Err(ContainerError::NotFound { name: name.to_owned(), dir: dir.to_owned() })
}

fn is_empty_or_absent(path: &Path) -> Result<bool> {
    match fs::read_dir(path) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(io_err("cannot read rootfs", path)(e)),
    }
}

/// `remove_dir_all`, again while it fails because an entry changed type under it (EISDIR,
/// ENOTEMPTY, ENOTDIR, ELOOP: something swapping entries of the tree while it is removed);
/// every attempt removes what it reaches first, so a few attempts finish the job.
fn remove_if_present(path: &Path) -> io::Result<()> {
    let mut attempts = 0;
    loop {
        match fs::remove_dir_all(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e)
                if attempts < 100
                    && matches!(
                        e.raw_os_error(),
                        Some(nix::libc::EISDIR | nix::libc::ENOTEMPTY | nix::libc::ENOTDIR | nix::libc::ELOOP)
                    ) =>
            {
                attempts += 1
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_never_written_through_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        fs::write(&victim, "host file\n").unwrap();
        let config = tmp.path().join("config");
        std::os::unix::fs::symlink(&victim, &config).unwrap();
        let err = write_config(&config, "lxc.uts.name = c1\n").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(nix::libc::ELOOP), "{err}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "host file\n");

        fs::remove_file(&config).unwrap();
        write_config(&config, "lxc.uts.name = c1\n").unwrap();
        let mode = fs::metadata(&config).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "the mode is lxc-create's, whatever the umask");
    }

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
        // Unlocked and recording nothing of ours: an interrupted lxc-create's, for the user to judge.
        assert!(matches!(err, ContainerError::Abandoned { .. }), "{err}");
        assert!(err.to_string().contains("rm -rf"), "{err}");
        assert_eq!(fs::read_to_string(dir.join("rootfs/etc/keep")).unwrap(), "mine");
        assert!(dir.join("partial").exists());
        assert!(matches!(destroy("busy", &dir), Err(ContainerError::Abandoned { .. })));
        assert!(dir.join("rootfs/etc/keep").exists());
    }

    /// A claim whose process "died": the partial stays (unlocked once the fd closes) with its
    /// record, as after SIGKILL.
    fn abandon(claim: ContainerDir) {
        let mut claim = claim;
        claim.partial.take(); // closing the fd drops the OFD lock, the file stays
        claim.keep = true;
        std::mem::forget(claim);
    }

    #[test]
    fn a_killed_creates_remains_are_removed_by_the_next_claim() {
        let lxcpath = tempfile::tempdir().unwrap();
        let dir = lxcpath.path().join("c1");
        let claim = ContainerDir::claim("c1", &dir, None).unwrap();
        fs::write(claim.rootfs().join("half"), "x").unwrap();
        fs::write(claim.config_path(), "lxc.uts.name = c1\n").unwrap();
        abandon(claim);
        let record: PartialRecord = serde_json::from_str(&fs::read_to_string(dir.join("partial")).unwrap()).unwrap();
        assert_eq!(record.pid, std::process::id());
        assert!(record.dir_created && record.rootfs_created);

        let again = ContainerDir::claim("c1", &dir, None).unwrap();
        let recovered = again.recovered().expect("the remains were removed");
        assert_eq!(recovered.pid, Some(std::process::id()));
        assert!(recovered.to_string().starts_with("removed the remains of an interrupted create"), "{recovered}");
        assert!(!again.rootfs().join("half").exists());
        assert!(!dir.join("config").exists());
    }

    #[test]
    fn recovery_keeps_the_users_directories() {
        let lxcpath = tempfile::tempdir().unwrap();
        let dir = lxcpath.path().join("c1");
        let rootfs = lxcpath.path().join("my-rootfs");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("notes"), "mine").unwrap();
        fs::create_dir(&rootfs).unwrap();
        let claim = ContainerDir::claim("c1", &dir, Some(&rootfs)).unwrap();
        fs::write(claim.rootfs().join("half"), "x").unwrap();
        abandon(claim);
        match destroy("c1", &dir).unwrap() {
            Destroyed::Remains(r) => assert_eq!(r.dir, dir),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(fs::read_to_string(dir.join("notes")).unwrap(), "mine", "the user's directory was touched");
        assert!(rootfs.is_dir() && fs::read_dir(&rootfs).unwrap().next().is_none(), "the user's rootfs is kept, empty");
        assert!(!dir.join("partial").exists());
        assert!(matches!(destroy("c1", &dir), Err(ContainerError::NotFound { .. })));
    }

    #[test]
    fn destroy_refuses_a_create_in_progress_and_leaves_complete_ones_to_lxc() {
        let lxcpath = tempfile::tempdir().unwrap();
        let dir = lxcpath.path().join("c1");
        let claim = ContainerDir::claim("c1", &dir, None).unwrap();
        let err = destroy("c1", &dir).unwrap_err();
        assert!(err.to_string().contains(&format!("being created by process {}", std::process::id())), "{err}");
        fs::write(claim.config_path(), "").unwrap();
        claim.commit().unwrap();
        assert_eq!(destroy("c1", &dir).unwrap(), Destroyed::Complete);
        assert!(dir.join("rootfs").is_dir());
    }

    #[test]
    fn kept_failures_stay_recoverable() {
        let lxcpath = tempfile::tempdir().unwrap();
        let dir = lxcpath.path().join("c1");
        {
            let mut claim = ContainerDir::claim("c1", &dir, None).unwrap();
            claim.keep_on_failure();
            fs::write(claim.rootfs().join("half"), "x").unwrap();
        }
        assert!(dir.join("rootfs/half").exists(), "--keep-on-failure kept nothing");
        assert!(matches!(destroy("c1", &dir).unwrap(), Destroyed::Remains(_)));
        assert!(!dir.exists());
    }

    #[test]
    fn a_bare_partial_alone_is_cleared() {
        // A create killed between making `partial` and writing its record.
        let lxcpath = tempfile::tempdir().unwrap();
        let dir = lxcpath.path().join("c1");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("partial"), "").unwrap();
        let claim = ContainerDir::claim("c1", &dir, None).unwrap();
        assert_eq!(claim.recovered().map(|r| r.pid), Some(None));
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
