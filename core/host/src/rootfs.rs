//! Symlink-safe file operations inside a container rootfs.
//!
//! A rootfs is hostile input: it may come from a cache someone else built, from a
//! user-supplied directory, or from packages whose maintainer scripts just ran in it. A symlink
//! such as `etc -> /tmp/victim` or `etc/hostname -> /etc/shadow` must never make a host-side
//! write land outside the rootfs (the old shell templates wrote through such links, and once
//! `rm -rf`ed a host `/dev` through one).
//!
//! Every path is therefore resolved by [`pathrs::Root`] with `RESOLVE_IN_ROOT` semantics: `..`
//! and absolute symlinks are scoped to the rootfs exactly as if we had `chroot`ed into it, so
//! `etc -> /tmp/victim` resolves to `<root>/tmp/victim`. On top of that, operations that
//! modify an inode never follow a symlink in the *final* component: writes replace the link
//! with a new file (write to a temporary name, then `renameat`), and `chmod`/`chown`/append
//! refuse it. Intermediate components are only ever handled as directory file descriptors, so
//! a path can not be swapped under us between "check" and "use".
//!
//! Paths are rootfs paths given as `&str`, with or without a leading `/`. Host paths (such as
//! the source of [`Rootfs::copy_from_host`]) are plain [`Path`]s and are trusted.
//!
//! Nothing here uses `std::fs` write functions on rootfs paths; `std::fs` only ever touches
//! host paths (the source of a copy).

// Paths here are rootfs paths: every write goes through `Rootfs` (clippy.toml).
#![deny(clippy::disallowed_methods)]

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use lxc_tmpl_plugin_api::FileKind;
use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, openat, renameat};
use nix::sys::stat::{FchmodatFlags, FileStat, Mode, SFlag, fchmodat, fstat, fstatat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fchownat, linkat, symlinkat, unlinkat};
use pathrs::flags::OpenFlags;
use pathrs::{Handle, InodeType, Root};

use crate::sys::{proc_fd_path, read_dir_fd};

/// Mode of files [`Rootfs::append_file`] and [`Rootfs::open_file_path`] create.
const NEW_FILE_MODE: u32 = 0o644;
/// Mode of directories [`Rootfs::open_dir`] creates.
const NEW_DIR_MODE: u32 = 0o755;

/// Why a rootfs operation failed. Every variant names the rootfs and the path inside it.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// The rootfs directory itself could not be opened.
    #[error("cannot open rootfs {root}")]
    Open {
        root: PathBuf,
        #[source]
        source: pathrs::error::Error,
    },
    /// Resolving a path inside the rootfs failed (missing, not a directory, or an escape
    /// attempt that pathrs detected).
    #[error("cannot {op} {path} inside {root}")]
    Resolve {
        op: &'static str,
        root: PathBuf,
        path: String,
        #[source]
        source: pathrs::error::Error,
    },
    /// A system call on a resolved path failed.
    #[error("cannot {op} {path} inside {root}")]
    Io {
        op: &'static str,
        root: PathBuf,
        path: String,
        #[source]
        source: io::Error,
    },
    /// The operation was refused because the target has the wrong type (a symlink where we
    /// would have to follow it, a directory where a file is expected, ...) or the request is
    /// malformed (a path naming the rootfs itself, a mode with file-type bits).
    #[error("refusing to {op} {path} inside {root}: {reason}")]
    Refused { op: &'static str, root: PathBuf, path: String, reason: &'static str },
    /// The host-side source of a copy could not be read.
    #[error("cannot read host file {host_path}")]
    HostRead {
        host_path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl RootfsError {
    /// The OS error number behind this error, if there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            RootfsError::Open { source, .. } | RootfsError::Resolve { source, .. } => pathrs_errno(source),
            RootfsError::Io { source, .. } | RootfsError::HostRead { source, .. } => source.raw_os_error(),
            RootfsError::Refused { .. } => None,
        }
    }

    /// True if the error means "the path does not exist".
    pub fn is_not_found(&self) -> bool {
        self.errno() == Some(libc_enoent())
    }
}

fn libc_enoent() -> i32 {
    Errno::ENOENT as i32
}

fn pathrs_errno(err: &pathrs::error::Error) -> Option<i32> {
    match err.kind() {
        pathrs::error::ErrorKind::OsError(errno) => errno,
        _ => None,
    }
}

/// A container (or cache staging) root filesystem, opened as a resolution root.
#[derive(Debug)]
pub struct Rootfs {
    root: Root,
    path: PathBuf,
}

/// What is at a path, looked at without following a final symlink.
fn kind_of(stat: &FileStat) -> FileKind {
    match SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT {
        SFlag::S_IFREG => FileKind::File,
        SFlag::S_IFDIR => FileKind::Dir,
        SFlag::S_IFLNK => FileKind::Symlink,
        _ => FileKind::Other,
    }
}

/// A name for a temporary sibling of `name` that no one else will pick: the pid keeps
/// concurrent lxc-tmpl processes apart, the counter keeps threads apart.
fn temp_name(name: &OsStr) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut tmp = b".".to_vec();
    // Keep the temporary name well below NAME_MAX even for long names.
    tmp.extend(name.as_bytes().iter().take(128));
    tmp.extend(format!(".lxc-tmpl-{}-{n}", std::process::id()).as_bytes());
    PathBuf::from(OsStr::from_bytes(&tmp))
}

/// Strip the leading slashes: pathrs resolves relative to the root either way, but a relative
/// form makes splitting into (parent, name) simple. The root itself (`/` or ``) is `.`:
/// openat2 refuses an empty path with ENOENT, which made the root look missing.
fn relative(path: &str) -> &str {
    match path.trim_start_matches('/') {
        "" => ".",
        rel => rel,
    }
}

fn check_mode(mode: u32) -> Result<Mode, &'static str> {
    if mode & !0o7777 != 0 {
        return Err("mode has bits outside 0o7777");
    }
    Ok(Mode::from_bits_truncate(mode))
}

impl Rootfs {
    /// Open the rootfs at `path` on the host. The directory must exist; `path` itself is a
    /// trusted host path.
    pub fn open(path: &Path) -> Result<Rootfs, RootfsError> {
        let root = Root::open(path).map_err(|source| RootfsError::Open { root: path.to_path_buf(), source })?;
        Ok(Rootfs { root, path: path.to_path_buf() })
    }

    /// The host path the rootfs was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_err(&self, op: &'static str, path: &str, source: impl Into<io::Error>) -> RootfsError {
        RootfsError::Io { op, root: self.path.clone(), path: path.to_owned(), source: source.into() }
    }

    fn resolve_err(&self, op: &'static str, path: &str, source: pathrs::error::Error) -> RootfsError {
        RootfsError::Resolve { op, root: self.path.clone(), path: path.to_owned(), source }
    }

    fn refused(&self, op: &'static str, path: &str, reason: &'static str) -> RootfsError {
        RootfsError::Refused { op, root: self.path.clone(), path: path.to_owned(), reason }
    }

    /// Resolve the parent directory of `path` inside the root (symlinks in it are followed,
    /// scoped to the root) and return it with the final component. The caller then works on
    /// the final component with `*at` calls that do not follow it.
    fn parent_and_name(&self, op: &'static str, path: &str) -> Result<(Handle, PathBuf), RootfsError> {
        let rel = relative(path).trim_end_matches('/');
        let (parent, name) = match rel.rsplit_once('/') {
            Some((parent, name)) => (parent, name),
            None => ("", rel),
        };
        if name.is_empty() || name == "." || name == ".." {
            return Err(self.refused(op, path, "the path does not name an entry"));
        }
        let parent = if parent.is_empty() { "." } else { parent };
        let dir = self.root.resolve(parent).map_err(|e| self.resolve_err(op, path, e))?;
        // resolve() accepts any inode type; the *at calls below need a directory.
        let st = fstat(dir.as_fd()).map_err(|e| self.io_err(op, path, e))?;
        if kind_of(&st) != FileKind::Dir {
            return Err(self.io_err(op, path, Errno::ENOTDIR));
        }
        Ok((dir, PathBuf::from(name)))
    }

    /// lstat of `name` in `dir`; `None` if it does not exist.
    fn lstat_at(
        &self,
        op: &'static str,
        path: &str,
        dir: &Handle,
        name: &Path,
    ) -> Result<Option<FileStat>, RootfsError> {
        match fstatat(dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(self.io_err(op, path, e)),
        }
    }

    /// Read a regular file. Symlinks (also in the final component) are followed, but only
    /// inside the root.
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>, RootfsError> {
        const OP: &str = "read";
        let handle = self.root.resolve(relative(path)).map_err(|e| self.resolve_err(OP, path, e))?;
        // Only regular files: opening a fifo would block, opening a device has side effects.
        let st = fstat(handle.as_fd()).map_err(|e| self.io_err(OP, path, e))?;
        if kind_of(&st) != FileKind::File {
            return Err(self.refused(OP, path, "not a regular file"));
        }
        let mut file =
            handle.reopen(OpenFlags::O_RDONLY | OpenFlags::O_CLOEXEC).map_err(|e| self.resolve_err(OP, path, e))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(|e| self.io_err(OP, path, e))?;
        Ok(data)
    }

    /// Create a new inode with `fill`, then atomically rename it over `path`.
    ///
    /// The parent must exist. Whatever was at `path` (a file, a symlink, a device) is replaced,
    /// never written through; a directory there is an error. When a regular file is replaced
    /// its owner is kept, so rewriting `etc/shadow` in an unprivileged container's rootfs does
    /// not hand it to host root. `mode` is applied with `fchmod`, so the umask does not reduce
    /// it.
    fn replace_file(
        &self,
        op: &'static str,
        path: &str,
        mode: u32,
        fill: &mut dyn FnMut(&mut File) -> Result<(), RootfsError>,
    ) -> Result<(), RootfsError> {
        let mode = check_mode(mode).map_err(|reason| self.refused(op, path, reason))?;
        let (dir, name) = self.parent_and_name(op, path)?;
        let owner = match self.lstat_at(op, path, &dir, &name)? {
            Some(st) if kind_of(&st) == FileKind::Dir => {
                return Err(self.refused(op, path, "it is a directory"));
            }
            Some(st) if kind_of(&st) == FileKind::File => Some((st.st_uid, st.st_gid)),
            _ => None,
        };

        let tmp = temp_name(name.as_os_str());
        let fd = openat(
            dir.as_fd(),
            &tmp,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| self.io_err(op, path, e))?;
        let mut file = File::from(fd);

        let result = (|| {
            fill(&mut file)?;
            if let Some((uid, gid)) = owner {
                fchown(file.as_fd(), Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
                    .map_err(|e| self.io_err(op, path, e))?;
            }
            // After fchown: chown clears set-id bits, so the mode must come last.
            nix::sys::stat::fchmod(file.as_fd(), mode).map_err(|e| self.io_err(op, path, e))?;
            // rename(2) replaces the directory entry itself; a symlink at `name` is never
            // followed.
            renameat(dir.as_fd(), &tmp, dir.as_fd(), &name).map_err(|e| self.io_err(op, path, e))
        })();
        if result.is_err() {
            let _ = unlinkat(dir.as_fd(), &tmp, UnlinkatFlags::NoRemoveDir);
        }
        result
    }

    /// Create or replace the regular file at `path` with `data` and exactly `mode`.
    ///
    /// The parent directory must exist. A symlink in the final component is replaced by the new
    /// file, never written through.
    pub fn write_file(&self, path: &str, data: &[u8], mode: u32) -> Result<(), RootfsError> {
        const OP: &str = "write";
        self.replace_file(OP, path, mode, &mut |file| file.write_all(data).map_err(|e| self.io_err(OP, path, e)))
    }

    /// Append `data` to the regular file at `path`, creating it with mode 0644 if missing.
    /// A symlink (or any non-regular file) in the final component is refused.
    pub fn append_file(&self, path: &str, data: &[u8]) -> Result<(), RootfsError> {
        const OP: &str = "append to";
        let (dir, name) = self.parent_and_name(OP, path)?;
        let base = OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let file = match openat(
            dir.as_fd(),
            &name,
            base | OFlag::O_CREAT | OFlag::O_EXCL,
            Mode::from_bits_truncate(NEW_FILE_MODE),
        ) {
            Ok(fd) => {
                let file = File::from(fd);
                // We created it: give it the documented mode regardless of the umask.
                nix::sys::stat::fchmod(file.as_fd(), Mode::from_bits_truncate(NEW_FILE_MODE))
                    .map_err(|e| self.io_err(OP, path, e))?;
                file
            }
            Err(Errno::EEXIST) => {
                // Check the type before opening: opening a fifo or device has side effects.
                match self.lstat_at(OP, path, &dir, &name)? {
                    Some(st) if kind_of(&st) == FileKind::File => {}
                    Some(st) if kind_of(&st) == FileKind::Symlink => {
                        return Err(self.refused(OP, path, "it is a symlink"));
                    }
                    _ => return Err(self.refused(OP, path, "not a regular file")),
                }
                // O_NOFOLLOW fails on a symlink swapped in since; O_NONBLOCK keeps a swapped-in
                // fifo from blocking; the fstat below catches any other swap.
                let fd = openat(dir.as_fd(), &name, base | OFlag::O_NONBLOCK, Mode::empty())
                    .map_err(|e| self.io_err(OP, path, e))?;
                let file = File::from(fd);
                let st = fstat(file.as_fd()).map_err(|e| self.io_err(OP, path, e))?;
                if kind_of(&st) != FileKind::File {
                    return Err(self.refused(OP, path, "not a regular file"));
                }
                file
            }
            Err(e) => return Err(self.io_err(OP, path, e)),
        };
        (&file).write_all(data).map_err(|e| self.io_err(OP, path, e))
    }

    /// `mkdir -p` inside the root. Directories this call creates get exactly `mode` (no umask);
    /// existing ones are left alone. Symlinks along the way are followed inside the root.
    pub fn mkdir_all(&self, path: &str, mode: u32) -> Result<(), RootfsError> {
        self.mkdir_all_handle("create directory", path, mode).map(drop)
    }

    fn mkdir_all_handle(&self, op: &'static str, path: &str, mode: u32) -> Result<Handle, RootfsError> {
        let mode = check_mode(mode).map_err(|reason| self.refused(op, path, reason))?;
        let perm = std::fs::Permissions::from_mode(mode.bits());
        let mut prefix = String::new();
        let mut handle = self.root.resolve(".").map_err(|e| self.resolve_err(op, path, e))?;
        for component in relative(path).split('/').filter(|c| !c.is_empty() && *c != ".") {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(component);
            handle = match self.root.resolve(&prefix) {
                Ok(h) => h,
                Err(e) if pathrs_errno(&e) == Some(libc_enoent()) => {
                    // mkdirat(2) never follows a (dangling) symlink in the final component:
                    // it fails with EEXIST instead, so this cannot create a directory elsewhere.
                    if let Err(e) = self.root.create(&prefix, &InodeType::Directory(perm.clone())) {
                        let dangling = pathrs_errno(&e) == Some(Errno::EEXIST as i32)
                            && self.file_kind(&prefix).ok().flatten() == Some(FileKind::Symlink);
                        if dangling {
                            return Err(self.refused(
                                op,
                                path,
                                "a symlink on the way points to nothing inside the rootfs",
                            ));
                        }
                        return Err(self.resolve_err(op, path, e));
                    }
                    let created = self.root.resolve_nofollow(&prefix).map_err(|e| self.resolve_err(op, path, e))?;
                    self.chmod_handle(op, path, &created, mode)?;
                    created
                }
                Err(e) => return Err(self.resolve_err(op, path, e)),
            };
            let st = fstat(handle.as_fd()).map_err(|e| self.io_err(op, path, e))?;
            if kind_of(&st) != FileKind::Dir {
                return Err(self.io_err(op, path, Errno::ENOTDIR));
            }
        }
        Ok(handle)
    }

    /// chmod the inode behind an `O_PATH` handle (which must not be a symlink).
    fn chmod_handle(&self, op: &'static str, path: &str, handle: &Handle, mode: Mode) -> Result<(), RootfsError> {
        // fchmod(2) does not accept O_PATH fds; chmod through the fd's magic link does, and
        // operates on exactly the inode we resolved (what glibc's lchmod emulation does).
        fchmodat(AT_FDCWD, &proc_fd_path(handle), mode, FchmodatFlags::FollowSymlink)
            .map_err(|e| self.io_err(op, path, e))
    }

    /// Create or replace the symlink `link` pointing at `target`. An existing file or symlink
    /// at `link` is replaced atomically; a directory there is an error. `target` is stored as
    /// given and not resolved.
    pub fn symlink(&self, target: &str, link: &str) -> Result<(), RootfsError> {
        const OP: &str = "create symlink";
        let (dir, name) = self.parent_and_name(OP, link)?;
        if let Some(st) = self.lstat_at(OP, link, &dir, &name)?
            && kind_of(&st) == FileKind::Dir
        {
            return Err(self.refused(OP, link, "a directory is in the way"));
        }
        let tmp = temp_name(name.as_os_str());
        symlinkat(target, dir.as_fd(), &tmp).map_err(|e| self.io_err(OP, link, e))?;
        renameat(dir.as_fd(), &tmp, dir.as_fd(), &name).map_err(|e| {
            let _ = unlinkat(dir.as_fd(), &tmp, UnlinkatFlags::NoRemoveDir);
            self.io_err(OP, link, e)
        })
    }

    /// Create or replace the hard link `link` to `existing`. A symlink at `existing` is linked
    /// itself (not its target); a directory at either path is an error.
    pub fn hard_link(&self, existing: &str, link: &str) -> Result<(), RootfsError> {
        const OP: &str = "create hard link";
        let (src_dir, src_name) = self.parent_and_name(OP, existing)?;
        match self.lstat_at(OP, existing, &src_dir, &src_name)? {
            None => return Err(self.io_err(OP, existing, Errno::ENOENT)),
            Some(st) if kind_of(&st) == FileKind::Dir => {
                return Err(self.refused(OP, existing, "it is a directory"));
            }
            Some(_) => {}
        }
        let (dir, name) = self.parent_and_name(OP, link)?;
        if let Some(st) = self.lstat_at(OP, link, &dir, &name)?
            && kind_of(&st) == FileKind::Dir
        {
            return Err(self.refused(OP, link, "a directory is in the way"));
        }
        let tmp = temp_name(name.as_os_str());
        // No AT_SYMLINK_FOLLOW: link the directory entry itself.
        linkat(src_dir.as_fd(), &src_name, dir.as_fd(), &tmp, AtFlags::empty())
            .map_err(|e| self.io_err(OP, link, e))?;
        let result = renameat(dir.as_fd(), &tmp, dir.as_fd(), &name).map_err(|e| self.io_err(OP, link, e));
        // If `link` already was a link to the same inode, rename(2) succeeds without doing
        // anything and leaves the temporary name behind; remove it in every case.
        let _ = unlinkat(dir.as_fd(), &tmp, UnlinkatFlags::NoRemoveDir);
        result
    }

    /// Set the permission bits of `path`. A symlink in the final component is refused (Linux
    /// has no symlink modes, and following it is exactly what we must not do).
    pub fn set_mode(&self, path: &str, mode: u32) -> Result<(), RootfsError> {
        const OP: &str = "change mode of";
        let mode = check_mode(mode).map_err(|reason| self.refused(OP, path, reason))?;
        let handle = self.root.resolve_nofollow(relative(path)).map_err(|e| self.resolve_err(OP, path, e))?;
        let st = fstat(handle.as_fd()).map_err(|e| self.io_err(OP, path, e))?;
        if kind_of(&st) == FileKind::Symlink {
            return Err(self.refused(OP, path, "it is a symlink"));
        }
        self.chmod_handle(OP, path, &handle, mode)
    }

    /// Change the owner of `path` with `lchown` semantics: a symlink in the final component
    /// gets its own owner changed.
    pub fn set_owner(&self, path: &str, uid: u32, gid: u32) -> Result<(), RootfsError> {
        const OP: &str = "change owner of";
        let handle = self.root.resolve_nofollow(relative(path)).map_err(|e| self.resolve_err(OP, path, e))?;
        // AT_EMPTY_PATH on the O_PATH handle: the inode we resolved, no second lookup.
        fchownat(handle.as_fd(), "", Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)), AtFlags::AT_EMPTY_PATH)
            .map_err(|e| self.io_err(OP, path, e))
    }

    /// Remove `path` recursively (`rm -rf`). A missing path is fine. Symlinks are removed, never
    /// followed, so a symlinked directory loses the link and keeps its contents.
    pub fn remove(&self, path: &str) -> Result<(), RootfsError> {
        const OP: &str = "remove";
        let rel = relative(path).trim_end_matches('/');
        if rel.is_empty() || rel.split('/').all(|c| c.is_empty() || c == ".") {
            return Err(self.refused(OP, path, "it is the rootfs itself"));
        }
        match self.root.remove_all(rel) {
            Ok(()) => Ok(()),
            Err(e) if pathrs_errno(&e) == Some(libc_enoent()) => Ok(()),
            Err(e) => Err(self.resolve_err(OP, path, e)),
        }
    }

    /// What is at `path`, without following a final symlink; `None` if nothing is.
    pub fn file_kind(&self, path: &str) -> Result<Option<FileKind>, RootfsError> {
        const OP: &str = "inspect";
        match self.root.resolve_nofollow(relative(path)) {
            Ok(handle) => {
                let st = fstat(handle.as_fd()).map_err(|e| self.io_err(OP, path, e))?;
                Ok(Some(kind_of(&st)))
            }
            // ENOTDIR: a parent is a file, so the path cannot exist either.
            Err(e) if matches!(pathrs_errno(&e), Some(n) if n == libc_enoent() || n == Errno::ENOTDIR as i32) => {
                Ok(None)
            }
            Err(e) => Err(self.resolve_err(OP, path, e)),
        }
    }

    /// The entries of the directory `path` (symlinks on the way, a final one too, followed
    /// inside the root) without `.` and `..`, sorted by name, each with its kind as
    /// [`Rootfs::file_kind`] sees it. The directory is read through a descriptor of the inode
    /// that was resolved, and entries are looked at relative to it, never by a second lookup.
    pub fn read_dir(&self, path: &str) -> Result<Vec<(OsString, FileKind)>, RootfsError> {
        const OP: &str = "list";
        let handle = self.root.resolve(relative(path)).map_err(|e| self.resolve_err(OP, path, e))?;
        let st = fstat(handle.as_fd()).map_err(|e| self.io_err(OP, path, e))?;
        if kind_of(&st) != FileKind::Dir {
            return Err(self.io_err(OP, path, Errno::ENOTDIR));
        }
        let dir = handle
            .reopen(OpenFlags::O_RDONLY | OpenFlags::O_DIRECTORY | OpenFlags::O_CLOEXEC)
            .map_err(|e| self.resolve_err(OP, path, e))?;
        let names = read_dir_fd(OwnedFd::from(dir)).map_err(|e| self.io_err(OP, path, e))?;
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            match fstatat(handle.as_fd(), name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) => entries.push((name, kind_of(&st))),
                // Removed since the directory was read (a command in the rootfs may run).
                Err(Errno::ENOENT) => {}
                Err(e) => return Err(self.io_err(OP, path, e)),
            }
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }

    /// The target of the symlink at `path`, as stored (not resolved, not to be used as a host
    /// path).
    pub fn read_link(&self, path: &str) -> Result<PathBuf, RootfsError> {
        self.root.readlink(relative(path)).map_err(|e| self.resolve_err("read symlink", path, e))
    }

    /// Mode bits (`& 0o7777`) of `path`, without following a final symlink.
    pub fn mode(&self, path: &str) -> Result<u32, RootfsError> {
        const OP: &str = "inspect";
        let handle = self.root.resolve_nofollow(relative(path)).map_err(|e| self.resolve_err(OP, path, e))?;
        let st = fstat(handle.as_fd()).map_err(|e| self.io_err(OP, path, e))?;
        Ok(st.st_mode & 0o7777)
    }

    /// Whether `path` is an executable regular file, symlinks followed inside the root (as the
    /// container's `execve` would see it: `/sbin/init -> /lib/systemd/systemd`). A missing
    /// file, or a dangling link, is `false`.
    pub fn is_executable(&self, path: &str) -> Result<bool, RootfsError> {
        const OP: &str = "inspect";
        let handle = match self.root.resolve(relative(path)) {
            Ok(handle) => handle,
            Err(e) if pathrs_errno(&e) == Some(libc_enoent()) => return Ok(false),
            Err(e) => return Err(self.resolve_err(OP, path, e)),
        };
        let st = fstat(handle.as_fd()).map_err(|e| self.io_err(OP, path, e))?;
        Ok(kind_of(&st) == FileKind::File && st.st_mode & 0o111 != 0)
    }

    /// Copy the bytes of the host file `host_path` to `path` inside the root, with the same
    /// replace-never-follow semantics as [`Rootfs::write_file`].
    pub fn copy_from_host(&self, host_path: &Path, path: &str, mode: u32) -> Result<(), RootfsError> {
        const OP: &str = "copy to";
        // The source is a host path chosen by us or the operator, so plain std::fs is right.
        let mut source = File::open(host_path)
            .map_err(|source| RootfsError::HostRead { host_path: host_path.to_path_buf(), source })?;
        self.replace_file(OP, path, mode, &mut |file| {
            // A plain loop rather than io::copy, so a failure names the right side.
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match source.read(&mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(source) => {
                        return Err(RootfsError::HostRead { host_path: host_path.to_path_buf(), source });
                    }
                };
                file.write_all(&buf[..n]).map_err(|e| self.io_err(OP, path, e))?;
            }
        })
    }

    /// Resolve the directory `path` inside the root, creating it (and missing parents) with
    /// mode 0755 if needed, and return an `O_PATH` fd to it. The runner mounts onto
    /// `/proc/self/fd/N` of this fd, so a symlink in the rootfs cannot redirect a mount to a
    /// host path.
    pub fn open_dir(&self, path: &str) -> Result<OwnedFd, RootfsError> {
        const OP: &str = "open directory";
        self.mkdir_all_handle(OP, path, NEW_DIR_MODE)?;
        let handle = self.root.resolve(relative(path)).map_err(|e| self.resolve_err(OP, path, e))?;
        let st = fstat(handle.as_fd()).map_err(|e| self.io_err(OP, path, e))?;
        if kind_of(&st) != FileKind::Dir {
            return Err(self.io_err(OP, path, Errno::ENOTDIR));
        }
        Ok(handle.into())
    }

    /// Resolve the regular file `path` inside the root (symlinks followed inside the root),
    /// creating an empty 0644 file if nothing is there, and return an `O_PATH` fd to it; used
    /// to bind-mount device nodes and resolv.conf onto. The parent directory must exist.
    pub fn open_file_path(&self, path: &str) -> Result<OwnedFd, RootfsError> {
        const OP: &str = "open file";
        let handle = match self.root.resolve(relative(path)) {
            Ok(handle) => handle,
            Err(e) if pathrs_errno(&e) == Some(libc_enoent()) => {
                // O_EXCL|O_NOFOLLOW: a dangling symlink here makes this fail rather than
                // create its target.
                let file = self
                    .root
                    .create_file(
                        relative(path),
                        OpenFlags::O_WRONLY | OpenFlags::O_EXCL | OpenFlags::O_NOFOLLOW | OpenFlags::O_CLOEXEC,
                        &std::fs::Permissions::from_mode(NEW_FILE_MODE),
                    )
                    .map_err(|e| self.resolve_err(OP, path, e))?;
                nix::sys::stat::fchmod(file.as_fd(), Mode::from_bits_truncate(NEW_FILE_MODE))
                    .map_err(|e| self.io_err(OP, path, e))?;
                self.root.resolve_nofollow(relative(path)).map_err(|e| self.resolve_err(OP, path, e))?
            }
            Err(e) => return Err(self.resolve_err(OP, path, e)),
        };
        let st = fstat(handle.as_fd()).map_err(|e| self.io_err(OP, path, e))?;
        if kind_of(&st) != FileKind::File {
            return Err(self.refused(OP, path, "not a regular file"));
        }
        Ok(handle.into())
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures are built with std::fs on purpose
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// A rootfs in a temp dir plus a "host" victim dir outside it, in its own temp dir so
    /// nothing outside our temp dirs is ever at risk.
    struct Fixture {
        _tmp: tempfile::TempDir,
        root_path: PathBuf,
        victim: PathBuf,
        rootfs: Rootfs,
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let root_path = tmp.path().join("rootfs");
        let victim = tmp.path().join("victim");
        std::fs::create_dir(&root_path).unwrap();
        std::fs::create_dir(&victim).unwrap();
        std::fs::write(victim.join("hostname"), b"host\n").unwrap();
        std::fs::write(victim.join("shadow-victim"), b"secret\n").unwrap();
        let rootfs = Rootfs::open(&root_path).unwrap();
        Fixture { _tmp: tmp, root_path, victim, rootfs }
    }

    fn victim_untouched(f: &Fixture) {
        assert_eq!(std::fs::read(f.victim.join("hostname")).unwrap(), b"host\n");
        assert_eq!(std::fs::read(f.victim.join("shadow-victim")).unwrap(), b"secret\n");
        let names: Vec<_> = std::fs::read_dir(&f.victim).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "victim dir gained entries: {names:?}");
    }

    #[test]
    fn rootfs_writes_land_inside() {
        let f = fixture();
        f.rootfs.mkdir_all("/etc/default", 0o755).unwrap();
        f.rootfs.write_file("/etc/hostname", b"web1\n", 0o644).unwrap();
        f.rootfs.write_file("etc/default/x", b"x", 0o600).unwrap();
        assert_eq!(std::fs::read(f.root_path.join("etc/hostname")).unwrap(), b"web1\n");
        assert_eq!(f.rootfs.read_file("etc/hostname").unwrap(), b"web1\n");
        let md = std::fs::metadata(f.root_path.join("etc/default/x")).unwrap();
        assert_eq!(md.mode() & 0o7777, 0o600);
        // Replacing keeps it a regular file with the new contents and mode.
        f.rootfs.write_file("etc/hostname", b"web2\n", 0o640).unwrap();
        assert_eq!(f.rootfs.read_file("/etc/hostname").unwrap(), b"web2\n");
        assert_eq!(f.rootfs.mode("etc/hostname").unwrap(), 0o640);
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(f.root_path.join("etc"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.contains("lxc-tmpl")), "{names:?}");
    }

    #[test]
    fn rootfs_mode_is_exact_not_umasked() {
        let f = fixture();
        f.rootfs.write_file("f", b"", 0o4777).unwrap();
        assert_eq!(f.rootfs.mode("f").unwrap(), 0o4777);
        f.rootfs.mkdir_all("tmp", 0o1777).unwrap();
        assert_eq!(f.rootfs.mode("tmp").unwrap(), 0o1777);
        assert!(matches!(f.rootfs.write_file("g", b"", 0o100644), Err(RootfsError::Refused { .. })));
    }

    #[test]
    fn rootfs_write_needs_parent() {
        let f = fixture();
        let err = f.rootfs.write_file("nope/file", b"x", 0o644).unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }

    #[test]
    fn rootfs_absolute_symlink_dir_stays_inside() {
        let f = fixture();
        std::os::unix::fs::symlink(&f.victim, f.root_path.join("etc")).unwrap();
        // <root>/<victim path> does not exist: must fail, not write to the host victim.
        assert!(f.rootfs.write_file("etc/hostname", b"pwned\n", 0o644).is_err());
        assert!(f.rootfs.append_file("etc/hostname", b"pwned\n").is_err());
        assert!(f.rootfs.set_mode("etc/hostname", 0o777).is_err());
        assert!(f.rootfs.set_owner("etc/hostname", 1, 1).is_err());
        f.rootfs.remove("etc/hostname").unwrap();
        victim_untouched(&f);

        // Once the link target exists *inside* the root, writes go there.
        let inside = f.root_path.join(f.victim.strip_prefix("/").unwrap());
        std::fs::create_dir_all(&inside).unwrap();
        f.rootfs.write_file("etc/hostname", b"web1\n", 0o644).unwrap();
        assert_eq!(std::fs::read(inside.join("hostname")).unwrap(), b"web1\n");
        f.rootfs.mkdir_all("etc/sub/dir", 0o755).unwrap();
        assert!(inside.join("sub/dir").is_dir());
        victim_untouched(&f);
    }

    #[test]
    fn rootfs_dotdot_stays_inside() {
        let f = fixture();
        f.rootfs.mkdir_all("etc", 0o755).unwrap();
        f.rootfs.write_file("../../../../victim/hostname", b"pwned\n", 0o644).unwrap_err();
        f.rootfs.mkdir_all("../../victim", 0o755).unwrap();
        f.rootfs.write_file("../../victim/hostname", b"inside\n", 0o644).unwrap();
        assert_eq!(std::fs::read(f.root_path.join("victim/hostname")).unwrap(), b"inside\n");
        // A relative symlink climbing out is scoped too.
        std::os::unix::fs::symlink("../../../../../../victim", f.root_path.join("etc/up")).unwrap();
        f.rootfs.write_file("etc/up/hostname", b"inside2\n", 0o644).unwrap();
        assert_eq!(std::fs::read(f.root_path.join("victim/hostname")).unwrap(), b"inside2\n");
        victim_untouched(&f);
    }

    #[test]
    fn rootfs_final_symlink_is_replaced_not_followed() {
        let f = fixture();
        f.rootfs.mkdir_all("etc", 0o755).unwrap();
        let shadow_victim = f.victim.join("shadow-victim");
        std::os::unix::fs::symlink(&shadow_victim, f.root_path.join("etc/shadow")).unwrap();
        assert!(f.rootfs.append_file("etc/shadow", b"x").is_err());
        assert!(f.rootfs.set_mode("etc/shadow", 0o777).is_err());
        f.rootfs.write_file("etc/shadow", b"root:*:1::::::\n", 0o640).unwrap();
        assert_eq!(f.rootfs.file_kind("etc/shadow").unwrap(), Some(FileKind::File));
        assert_eq!(f.rootfs.read_file("etc/shadow").unwrap(), b"root:*:1::::::\n");
        // Same for a relative link to a file inside the root, and for copy_from_host.
        std::os::unix::fs::symlink("shadow", f.root_path.join("etc/gshadow")).unwrap();
        f.rootfs.copy_from_host(&f.victim.join("hostname"), "etc/gshadow", 0o600).unwrap();
        assert_eq!(f.rootfs.read_file("etc/gshadow").unwrap(), b"host\n");
        assert_eq!(f.rootfs.read_file("etc/shadow").unwrap(), b"root:*:1::::::\n");
        victim_untouched(&f);
    }

    #[test]
    fn rootfs_write_keeps_owner_of_replaced_file() {
        let f = fixture();
        f.rootfs.write_file("file", b"a", 0o644).unwrap();
        if nix::unistd::geteuid().is_root() {
            f.rootfs.set_owner("file", 100_000, 100_005).unwrap();
            f.rootfs.write_file("file", b"b", 0o4755).unwrap();
            let md = std::fs::metadata(f.root_path.join("file")).unwrap();
            assert_eq!((md.uid(), md.gid()), (100_000, 100_005));
            assert_eq!(md.mode() & 0o7777, 0o4755);
        }
    }

    #[test]
    fn rootfs_set_mode_refuses_symlink_and_owner_is_lchown() {
        let f = fixture();
        std::os::unix::fs::symlink(f.victim.join("hostname"), f.root_path.join("link")).unwrap();
        let err = f.rootfs.set_mode("link", 0o777).unwrap_err();
        assert!(matches!(err, RootfsError::Refused { .. }), "{err}");
        if nix::unistd::geteuid().is_root() {
            f.rootfs.set_owner("link", 4242, 4242).unwrap();
            let link = std::fs::symlink_metadata(f.root_path.join("link")).unwrap();
            assert_eq!(link.uid(), 4242);
            let target = std::fs::metadata(f.victim.join("hostname")).unwrap();
            assert_ne!(target.uid(), 4242);
        }
        f.rootfs.write_file("plain", b"", 0o644).unwrap();
        f.rootfs.set_mode("/plain", 0o600).unwrap();
        assert_eq!(f.rootfs.mode("plain").unwrap(), 0o600);
        victim_untouched(&f);
    }

    #[test]
    fn rootfs_remove_does_not_follow_symlinked_dir() {
        let f = fixture();
        std::os::unix::fs::symlink(&f.victim, f.root_path.join("victimlink")).unwrap();
        f.rootfs.mkdir_all("var/lib", 0o755).unwrap();
        // A tree containing a symlink to the (host) victim dir, and a symlink named like the
        // victim's absolute path.
        std::os::unix::fs::symlink(&f.victim, f.root_path.join("var/lib/evil")).unwrap();
        f.rootfs.remove("var").unwrap();
        f.rootfs.remove("victimlink").unwrap();
        assert_eq!(f.rootfs.file_kind("var").unwrap(), None);
        assert_eq!(f.rootfs.file_kind("victimlink").unwrap(), None);
        // Removing through an absolute symlinked parent stays inside too.
        std::os::unix::fs::symlink(&f.victim, f.root_path.join("etc")).unwrap();
        f.rootfs.remove("etc/hostname").unwrap();
        f.rootfs.remove("missing/also-missing").unwrap();
        assert!(f.rootfs.remove("/").is_err());
        assert!(f.rootfs.remove("./.").is_err());
        victim_untouched(&f);
    }

    #[test]
    fn rootfs_append_creates_and_appends() {
        let f = fixture();
        f.rootfs.append_file("log", b"a\n").unwrap();
        f.rootfs.append_file("/log", b"b\n").unwrap();
        assert_eq!(f.rootfs.read_file("log").unwrap(), b"a\nb\n");
        assert_eq!(f.rootfs.mode("log").unwrap(), 0o644);
    }

    #[test]
    fn rootfs_symlink_and_hard_link() {
        let f = fixture();
        f.rootfs.mkdir_all("bin", 0o755).unwrap();
        f.rootfs.write_file("bin/busybox", b"elf", 0o755).unwrap();
        f.rootfs.symlink("busybox", "bin/sh").unwrap();
        f.rootfs.symlink("/bin/busybox", "bin/sh").unwrap();
        assert_eq!(f.rootfs.read_link("bin/sh").unwrap(), PathBuf::from("/bin/busybox"));
        assert_eq!(f.rootfs.file_kind("bin/sh").unwrap(), Some(FileKind::Symlink));
        // Symlinks in the root resolve inside the root when read.
        assert_eq!(f.rootfs.read_file("bin/sh").unwrap(), b"elf");
        f.rootfs.write_file("bin/ls", b"old", 0o755).unwrap();
        f.rootfs.symlink("busybox", "bin/ls").unwrap();
        assert_eq!(f.rootfs.file_kind("bin/ls").unwrap(), Some(FileKind::Symlink));
        assert!(f.rootfs.symlink("busybox", "bin").is_err());

        f.rootfs.hard_link("bin/busybox", "bin/cat").unwrap();
        f.rootfs.hard_link("/bin/busybox", "bin/cat").unwrap();
        let a = std::fs::metadata(f.root_path.join("bin/busybox")).unwrap();
        let b = std::fs::metadata(f.root_path.join("bin/cat")).unwrap();
        assert_eq!(a.ino(), b.ino());
        assert!(f.rootfs.hard_link("bin", "bin2").is_err());
        let names: Vec<_> = std::fs::read_dir(f.root_path.join("bin"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.contains("lxc-tmpl")), "{names:?}");
    }

    #[test]
    fn rootfs_file_kind_and_open_paths() {
        let f = fixture();
        assert_eq!(f.rootfs.file_kind("nothing").unwrap(), None);
        // The root itself exists (openat2 calls an empty path missing).
        assert_eq!(f.rootfs.file_kind("/").unwrap(), Some(FileKind::Dir));
        assert_eq!(f.rootfs.file_kind("").unwrap(), Some(FileKind::Dir));
        f.rootfs.write_file("file", b"", 0o644).unwrap();
        assert_eq!(f.rootfs.file_kind("file/below").unwrap(), None);
        let fd = f.rootfs.open_dir("dev/pts").unwrap();
        assert_eq!(std::fs::read_link(proc_fd_path(&fd)).unwrap(), f.root_path.join("dev/pts"));
        assert_eq!(f.rootfs.mode("dev").unwrap(), 0o755);
        let fd = f.rootfs.open_file_path("dev/null").unwrap();
        assert_eq!(std::fs::read_link(proc_fd_path(&fd)).unwrap(), f.root_path.join("dev/null"));
        assert_eq!(f.rootfs.mode("dev/null").unwrap(), 0o644);
        assert!(f.rootfs.open_file_path("dev").is_err());
        assert!(f.rootfs.open_dir("file").is_err());
        // An absolute symlink to a host dir resolves inside the root for mounts too.
        // A dangling one is an error (as `mkdir -p` in a chroot would be), never a host mkdir.
        std::os::unix::fs::symlink(&f.victim, f.root_path.join("proc")).unwrap();
        assert!(f.rootfs.open_dir("proc").is_err());
        std::fs::create_dir_all(f.root_path.join(f.victim.strip_prefix("/").unwrap())).unwrap();
        let fd = f.rootfs.open_dir("proc").unwrap();
        let resolved = std::fs::read_link(proc_fd_path(&fd)).unwrap();
        assert!(resolved.starts_with(&f.root_path), "{resolved:?}");
        // And a dangling final symlink is not followed to create a host file.
        std::os::unix::fs::symlink(f.victim.join("new"), f.root_path.join("resolv")).unwrap();
        assert!(f.rootfs.open_file_path("resolv").is_err());
        victim_untouched(&f);
    }

    #[test]
    fn rootfs_read_dir_lists_inside_the_root() {
        let f = fixture();
        f.rootfs.mkdir_all("etc/default", 0o755).unwrap();
        f.rootfs.write_file("etc/hostname", b"", 0o644).unwrap();
        f.rootfs.symlink("/nowhere", "etc/mtab").unwrap();
        let kinds = |path| -> Vec<(String, FileKind)> {
            let entries = f.rootfs.read_dir(path).unwrap();
            entries.into_iter().map(|(name, kind)| (name.into_string().unwrap(), kind)).collect()
        };
        let etc = [
            ("default".to_owned(), FileKind::Dir),
            ("hostname".to_owned(), FileKind::File),
            ("mtab".to_owned(), FileKind::Symlink),
        ];
        assert_eq!(kinds("/etc"), etc);
        assert_eq!(kinds("/"), [("etc".to_owned(), FileKind::Dir)]);
        // A link to the host's dir lists <root>/<that dir>, not the host's.
        std::os::unix::fs::symlink(&f.victim, f.root_path.join("hostdir")).unwrap();
        assert!(f.rootfs.read_dir("hostdir").unwrap_err().is_not_found());
        std::fs::create_dir_all(f.root_path.join(f.victim.strip_prefix("/").unwrap())).unwrap();
        assert_eq!(kinds("hostdir"), []);
        assert!(!f.rootfs.read_dir("etc/hostname").unwrap_err().is_not_found());
        victim_untouched(&f);
    }

    #[test]
    fn rootfs_error_is_send_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<RootfsError>();
    }
}
