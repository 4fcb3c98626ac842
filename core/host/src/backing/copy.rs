//! The `dir` backing store's engine: a faithful, parallel copy of a rootfs tree.
//!
//! [`copy_tree`] makes `to` hold what `rsync -aHAX --numeric-ids from/ to/` would put there,
//! plus access times (which `cp -a` keeps and rsync keeps only with `--atimes`):
//!
//! - every kind of file: directories, regular files, symlinks (never followed, their target
//!   copied as it is), character and block devices (same `rdev`), fifos, and sockets, which are
//!   recreated as socket nodes with `mknod(2)` as rsync's `--specials` (part of `-a`) and
//!   `cp -a` both do: a socket node without its server is useless but harmless, and leaving it out
//!   would make the copy differ from both tools;
//! - owners as numbers (`--numeric-ids`: no name mapping, the rootfs has its own passwd), the
//!   permission bits with setuid, setgid and sticky, access and modification times in
//!   nanoseconds (a directory's set only after everything in it is done, since creating an
//!   entry changes its directory's mtime);
//! - every extended attribute the process can read: `security.capability` (file
//!   capabilities), `system.posix_acl_access` and `system.posix_acl_default` (ACLs, including a
//!   directory's default ACL), `user.*`, and `trusted.*` / `security.*` when run as root;
//! - hard links: names of one source inode become names of one inode in the copy, also for
//!   symlinks and device nodes (`-H`); the link count of an inode that has names outside `from`
//!   is not copied, as it cannot be;
//! - holes: a sparse file stays sparse (`lseek(2)` `SEEK_DATA`/`SEEK_HOLE` find the data; only
//!   the data is copied, and the size is set with `ftruncate(2)`, so a trailing hole stays one).
//!
//! The change time (ctime) cannot be set by anyone and is not kept. Mount points inside `from`
//! are crossed, as rsync and cp do without `-x`.
//!
//! # Data: reflinks first
//!
//! With [`Reflink::Auto`] (the default, cp(1)'s `--reflink=auto`) each regular file is first
//! cloned with `ioctl(FICLONE)` (ioctl_ficlone(2)), which makes the copy share the source's blocks
//! on btrfs and xfs (and others with reflink support): constant time, no space used. Where the
//! filesystem cannot (ext4, tmpfs, or two filesystems), it copies the data segments with
//! `copy_file_range(2)`, and falls back to `read`/`write` where even that is refused. Each file is
//! tried on its own, so a tree that spans filesystems still gets reflinks where it can; a failed
//! clone costs one syscall. [`CopyStats`] says which way each file went.
//!
//! # Safety: no path is ever followed
//!
//! The walk holds directory descriptors and names entries relative to them: entries are
//! examined with `fstatat(AT_SYMLINK_NOFOLLOW)`, opened with `openat(O_NOFOLLOW)` (directories
//! also `O_DIRECTORY`) and created in the destination relative to its directory descriptors,
//! with `O_EXCL`. So a symlink in the source (`etc -> /etc`, `x -> ../../..`) is copied as a
//! symlink and never leads the walk, a read or a write out of `from` or `to`, and neither does
//! one swapped in while the copy runs. Ownership and times of symlinks and device nodes are set
//! with `fchownat`/`utimensat(AT_SYMLINK_NOFOLLOW)`; their mode and xattrs through an `O_PATH`
//! descriptor's `/proc/self/fd/N` link, which names exactly that inode (so `/proc` must be
//! mounted, as it is on any host lxc-tmpl runs on). Only `from` and `to` themselves are looked up
//! by path: the directories above them are the host's, chosen by root; their last component must
//! not be a symlink.
//!
//! # The destination
//!
//! `to` must be absent (its parent must exist: it is then made, mode 0700 until the copy ends)
//! or an empty directory, as `lxc-create` wants a rootfs directory: copying into a non-empty
//! directory would mix two trees, and removing what is there is the caller's decision. An empty
//! `to` loses its own extended attributes (a default ACL on it would otherwise be inherited by
//! every file created in it) and gets `from`'s owner, mode, xattrs and times at the end.
//! Directories are created mode 0700 and get their real mode only when their contents are done,
//! so nobody else can enter a half-copied directory, and a default ACL or setgid bit of the copy
//! cannot change what is created in it.
//!
//! On error the copy stops and `to` holds a partial tree (unfinished directories still mode
//! 0700): the caller removes it, as a failed create removes its whole container directory.
//! Nothing is synced to disk: a create that needs durability syncs once at the end.
//!
//! # Parallelism
//!
//! Workers (see [`CopyOptions::threads`]) take entries from one shared LIFO queue: whoever opens
//! a directory lists it and queues its entries, so big directories are shared out file by file and
//! the walk goes depth first, which keeps few directories open at once. A directory's metadata is
//! applied by whichever worker finishes its last entry (a count of pending entries per directory).
//! A hard-linked inode is copied once, by the first worker to meet one of its names; names met
//! later are linked as soon as that copy exists.
//!
//! A signal that interrupts a create ([`crate::interrupt`]) stops the copy with
//! [`CopyError::Interrupted`] within one file.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag};
use nix::sys::stat::{FchmodatFlags, FileStat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, Whence};

use crate::interrupt::{self, Interrupted};
use crate::sys;

/// When to share data blocks instead of copying them, as cp(1)'s `--reflink=WHEN`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Reflink {
    /// Clone each regular file with `FICLONE` where the filesystem can; copy it otherwise.
    #[default]
    Auto,
    /// Always copy the data.
    Never,
    /// Clone every regular file; fail with [`CopyError::Reflink`] where that is not possible.
    Always,
}

/// How [`copy_tree`] copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    /// Worker threads; 0 means [`default_threads`]. The copy is mostly waiting for the disk, so
    /// a few more threads than cores still help.
    pub threads: usize,
    /// Whether to share data blocks (see [`Reflink`]).
    pub reflink: Reflink,
}

impl Default for CopyOptions {
    fn default() -> CopyOptions {
        CopyOptions { threads: 0, reflink: Reflink::Auto }
    }
}

/// The default number of worker threads: the available parallelism, at least 2 (so a copy
/// overlaps waiting for metadata writes with reading data even on one core) and at most 8
/// (beyond that a single disk does not get faster).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8)
}

/// What a copy did. Inodes are counted once however many names they have.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStats {
    /// Directories, `to` itself included.
    pub dirs: u64,
    /// Regular files (inodes).
    pub files: u64,
    /// Regular files whose data was shared with `FICLONE` (empty files are in neither this nor
    /// [`copied`](Self::copied)).
    pub reflinked: u64,
    /// Regular files whose data was copied (`copy_file_range(2)` or `read`/`write`).
    pub copied: u64,
    /// Apparent size of all regular files, in bytes (holes included).
    pub bytes: u64,
    /// Bytes of data actually copied: holes and reflinked files are not in it.
    pub bytes_copied: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Device nodes, fifos and sockets.
    pub specials: u64,
    /// Extra names of hard-linked inodes (made with `linkat(2)`).
    pub hard_links: u64,
}

/// A copy failed. Paths are full paths in `from` or `to`; on error `to` holds a partial copy.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The source tree could not be opened.
    #[error("cannot open the source tree {path}: it must be a directory (not a symlink) that can be read")]
    OpenSource {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The destination could not be made or opened.
    #[error(
        "cannot use {path} as the destination: it must be absent (with an existing parent) or an empty directory, not a symlink"
    )]
    OpenDestination {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The destination already holds files.
    #[error("the destination {path} is not empty: copy into an empty or absent directory, or empty it first")]
    DestinationNotEmpty { path: PathBuf },
    /// The destination is inside the source, so the copy would copy itself.
    #[error("the destination {to} is inside the source tree {from}: choose a destination outside it")]
    DestinationInsideSource { from: PathBuf, to: PathBuf },
    /// An operation on one entry failed.
    #[error(
        "cannot {op} {path}: check that the source can be read and that the destination's filesystem has space and inodes left"
    )]
    Entry {
        /// What was being done, as a verb phrase ("create", "set the owner of").
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// An extended attribute (file capability, ACL, ...) could not be read or written.
    #[error(
        "cannot {op} the extended attribute {name} of {path}: the destination's filesystem must keep the source's \
         attributes (ACLs, user.* and security.* ones), as ext4, xfs and btrfs do"
    )]
    Xattr {
        /// "list", "read", "set" or "remove" ("list" names the attribute "names").
        op: &'static str,
        name: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// [`Reflink::Always`] was asked for and a file could not be cloned.
    #[error(
        "cannot reflink {path}: the source and the destination must be on one filesystem that shares blocks \
         (btrfs, xfs with reflink=1); use Reflink::Auto to copy the data instead"
    )]
    Reflink {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// An entry changed between being examined and being copied.
    #[error("{path} changed while it was copied: the source tree must not change during a copy (hold its cache lock)")]
    Changed { path: PathBuf },
    /// SIGINT, SIGTERM or SIGHUP arrived (see [`crate::interrupt`]).
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
}

/// Copies the tree `from` into `to` (absent or an empty directory), keeping everything
/// `rsync -aHAX --numeric-ids` keeps, plus access times (see the [module docs](self) for the
/// rules and the guarantees).
///
/// Returns what was copied and how ([`CopyStats`]). Needs root (`CAP_CHOWN`, `CAP_MKNOD`,
/// `CAP_FOWNER`, `CAP_SYS_ADMIN` for `trusted.*`) to copy a rootfs faithfully; without it the
/// first owner that cannot be set is an error. Errors name the entry and the operation
/// ([`CopyError`]); `to` then holds a partial copy for the caller to remove.
pub fn copy_tree(from: &Path, to: &Path, options: &CopyOptions) -> Result<CopyStats, CopyError> {
    copy_tree_reporting(from, to, options, &mut |_| {})
}

/// How often [`copy_tree_reporting`] tells of the bytes copied so far.
const PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// [`copy_tree`], calling `progress` with the file bytes written so far (apparent sizes, as
/// [`CopyStats::bytes`]) every [`PROGRESS_INTERVAL`] and once at the end, from the calling
/// thread (the workers only count), so that `progress` need not be thread-safe.
///
/// # Errors
/// As [`copy_tree`].
pub fn copy_tree_reporting(
    from: &Path,
    to: &Path,
    options: &CopyOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<CopyStats, CopyError> {
    let dir_flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let src = nix::fcntl::openat(AT_FDCWD, from, dir_flags, Mode::empty())
        .map_err(|e| CopyError::OpenSource { path: from.to_owned(), source: e.into() })?;
    let src_stat =
        nix::sys::stat::fstat(&src).map_err(|e| CopyError::OpenSource { path: from.to_owned(), source: e.into() })?;
    let dst = open_destination(to)?;
    let dst_stat = nix::sys::stat::fstat(&dst)
        .map_err(|e| CopyError::OpenDestination { path: to.to_owned(), source: e.into() })?;
    if (src_stat.st_dev, src_stat.st_ino) == (dst_stat.st_dev, dst_stat.st_ino) {
        return Err(CopyError::DestinationInsideSource { from: from.to_owned(), to: to.to_owned() });
    }
    let dst_root = dst.try_clone().map_err(|e| CopyError::OpenDestination { path: to.to_owned(), source: e })?;
    let shared = Shared {
        from,
        to,
        dst_root,
        dst_root_id: (dst_stat.st_dev, dst_stat.st_ino),
        reflink: options.reflink,
        queue: Mutex::new(Queue { work: Vec::new(), active: 0 }),
        wake: Condvar::new(),
        abort: AtomicBool::new(false),
        error: Mutex::new(None),
        links: Mutex::new(HashMap::new()),
        stats: Counters::default(),
        done: AtomicBool::new(false),
    };
    let root = DirNode { src, dst, rel: PathBuf::new(), stat: src_stat, pending: AtomicUsize::new(1), parent: None };
    shared.open_listing(root)?;
    let threads = if options.threads == 0 { default_threads() } else { options.threads };
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads).map(|_| scope.spawn(|| shared.worker())).collect();
        // Polled often, so that a short copy is not made longer by the wait; told less often.
        let mut told = std::time::Instant::now();
        while !workers.iter().all(|w| w.is_finished()) {
            std::thread::sleep(std::time::Duration::from_millis(10));
            if told.elapsed() >= PROGRESS_INTERVAL {
                progress(shared.stats.bytes.load(Ordering::Relaxed));
                told = std::time::Instant::now();
            }
        }
    });
    progress(shared.stats.bytes.load(Ordering::Relaxed));
    if let Some(err) = lock(&shared.error).take() {
        return Err(err);
    }
    debug_assert!(shared.done.load(Ordering::SeqCst), "the walk ended before the top directory was finished");
    Ok(shared.stats.snapshot())
}

/// Makes `to` (mode 0700) or opens it if it is an empty directory, without following a symlink
/// in its last component; strips an existing `to` of its extended attributes.
fn open_destination(to: &Path) -> Result<OwnedFd, CopyError> {
    let open_err = |e: Errno| CopyError::OpenDestination { path: to.to_owned(), source: e.into() };
    let existed = match nix::sys::stat::mkdirat(AT_FDCWD, to, Mode::S_IRWXU) {
        Ok(()) => false,
        Err(Errno::EEXIST) => true,
        Err(e) => return Err(open_err(e)),
    };
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let dst = nix::fcntl::openat(AT_FDCWD, to, flags, Mode::empty()).map_err(open_err)?;
    if existed {
        let listing = dst.try_clone().and_then(sys::read_dir_fd);
        let names = listing.map_err(|e| CopyError::OpenDestination { path: to.to_owned(), source: e })?;
        if !names.is_empty() {
            return Err(CopyError::DestinationNotEmpty { path: to.to_owned() });
        }
        // Its own attributes would survive next to the source's; a default ACL would be
        // inherited by everything created in it.
        let xattr_err = |name: &CStr, op, source| CopyError::Xattr {
            op,
            name: name.to_string_lossy().into_owned(),
            path: to.to_owned(),
            source,
        };
        for name in sys::flistxattr(dst.as_fd()).map_err(|e| xattr_err(c"names", "list", e))? {
            sys::fremovexattr(dst.as_fd(), &name).map_err(|e| xattr_err(&name, "remove", e))?;
        }
    }
    Ok(dst)
}

/// Locks a mutex; a worker that panicked while holding it cannot have left it inconsistent in a
/// way that matters, as the copy is then aborted anyway.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One directory being copied: both descriptors, and the count of its entries not yet done
/// (plus one while it is being listed). Its metadata is applied when the count reaches zero.
#[derive(Debug)]
struct DirNode {
    src: OwnedFd,
    dst: OwnedFd,
    /// Path below `from` and `to` ("" for the top), for messages and hard-link origins.
    rel: PathBuf,
    /// The source directory's stat, taken when it was opened (before listing it changed its
    /// atime).
    stat: FileStat,
    pending: AtomicUsize,
    parent: Option<Arc<DirNode>>,
}

/// One entry to copy: `name` in the directory `parent`.
#[derive(Debug)]
struct Work {
    parent: Arc<DirNode>,
    name: OsString,
}

#[derive(Debug)]
struct Queue {
    work: Vec<Work>,
    /// Workers processing an entry (and so possibly about to queue more).
    active: usize,
}

/// What is known about a source inode with several names.
#[derive(Debug)]
enum LinkState {
    /// Its first name is being copied; these names (directory, name) wait to be linked to it.
    Copying(Vec<(Arc<DirNode>, OsString)>),
    /// Copied: its first name in the copy, below `to`.
    Done(PathBuf),
}

#[derive(Debug, Default)]
struct Counters {
    dirs: AtomicU64,
    files: AtomicU64,
    reflinked: AtomicU64,
    copied: AtomicU64,
    bytes: AtomicU64,
    bytes_copied: AtomicU64,
    symlinks: AtomicU64,
    specials: AtomicU64,
    hard_links: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> CopyStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CopyStats {
            dirs: get(&self.dirs),
            files: get(&self.files),
            reflinked: get(&self.reflinked),
            copied: get(&self.copied),
            bytes: get(&self.bytes),
            bytes_copied: get(&self.bytes_copied),
            symlinks: get(&self.symlinks),
            specials: get(&self.specials),
            hard_links: get(&self.hard_links),
        }
    }
}

/// State shared by the workers of one copy.
#[derive(Debug)]
struct Shared<'a> {
    from: &'a Path,
    to: &'a Path,
    /// `to`, to find the first name of a hard-linked inode from.
    dst_root: OwnedFd,
    /// (st_dev, st_ino) of `to`, to refuse copying it into itself.
    dst_root_id: (u64, u64),
    reflink: Reflink,
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Set on the first error (or a worker's panic): workers stop taking work.
    abort: AtomicBool,
    error: Mutex<Option<CopyError>>,
    links: Mutex<HashMap<(u64, u64), LinkState>>,
    stats: Counters,
    /// The top directory was finished (its metadata applied).
    done: AtomicBool,
}

/// Wakes the other workers if this one dies of a panic, so that they stop instead of waiting
/// for its work forever; `std::thread::scope` then passes the panic on.
struct PanicGuard<'s, 'a>(&'s Shared<'a>);

impl Drop for PanicGuard<'_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.abort.store(true, Ordering::SeqCst);
            let _queue = lock(&self.0.queue);
            self.0.wake.notify_all();
        }
    }
}

/// Entries are examined (`fstatat`) and given owners without following a symlink.
const NOFOLLOW: AtFlags = AtFlags::AT_SYMLINK_NOFOLLOW;

impl Shared<'_> {
    fn worker(&self) {
        let _guard = PanicGuard(self);
        loop {
            let work = {
                let mut queue = lock(&self.queue);
                loop {
                    if self.abort.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Some(work) = queue.work.pop() {
                        queue.active += 1;
                        break work;
                    }
                    if queue.active == 0 {
                        // Nothing queued and nobody left who could queue more: the walk is over.
                        self.wake.notify_all();
                        return;
                    }
                    queue = self.wake.wait(queue).unwrap_or_else(PoisonError::into_inner);
                }
            };
            // check(), not interrupted(): this runs once per entry, and only a
            // failure needs to wait for a signal that is still arriving.
            let result = match interrupt::check() {
                Err(signal) => Err(CopyError::Interrupted(signal)),
                Ok(()) => self.copy_entry(work),
            };
            if let Err(err) = result {
                self.fail(err);
            }
            let mut queue = lock(&self.queue);
            queue.active -= 1;
            if queue.active == 0 && queue.work.is_empty() {
                self.wake.notify_all();
            }
        }
    }

    /// Records the first error and stops the copy.
    fn fail(&self, err: CopyError) {
        lock(&self.error).get_or_insert(err);
        self.abort.store(true, Ordering::SeqCst);
        let _queue = lock(&self.queue);
        self.wake.notify_all();
    }

    fn src_path(&self, rel: &Path) -> PathBuf {
        self.from.join(rel)
    }

    fn dst_path(&self, rel: &Path) -> PathBuf {
        self.to.join(rel)
    }

    fn src_err(&self, op: &'static str, rel: &Path) -> impl FnOnce(Errno) -> CopyError {
        let path = self.src_path(rel);
        move |e| CopyError::Entry { op, path, source: e.into() }
    }

    fn dst_err(&self, op: &'static str, rel: &Path) -> impl FnOnce(Errno) -> CopyError {
        let path = self.dst_path(rel);
        move |e| CopyError::Entry { op, path, source: e.into() }
    }

    /// Lists the opened directory `node`, queues its entries and drops the listing's own count
    /// (which finishes an empty directory at once).
    fn open_listing(&self, node: DirNode) -> Result<(), CopyError> {
        let listing = node.src.try_clone().and_then(sys::read_dir_fd);
        let names = listing.map_err(|e| CopyError::Entry {
            op: "read the directory",
            path: self.src_path(&node.rel),
            source: e,
        })?;
        node.pending.fetch_add(names.len(), Ordering::SeqCst);
        let node = Arc::new(node);
        if !names.is_empty() {
            let mut queue = lock(&self.queue);
            // Reversed, so that the LIFO queue hands them out in directory order.
            queue.work.extend(names.into_iter().rev().map(|name| Work { parent: Arc::clone(&node), name }));
            self.wake.notify_all();
        }
        self.entry_done(node)
    }

    /// One entry of `dir` is done: when it was the last, applies the directory's metadata and
    /// goes on to its parent.
    fn entry_done(&self, dir: Arc<DirNode>) -> Result<(), CopyError> {
        let mut dir = dir;
        loop {
            if dir.pending.fetch_sub(1, Ordering::SeqCst) != 1 {
                return Ok(());
            }
            self.finish_dir(&dir)?;
            Counters::add(&self.stats.dirs, 1);
            match &dir.parent {
                Some(parent) => dir = Arc::clone(parent),
                None => {
                    self.done.store(true, Ordering::SeqCst);
                    return Ok(());
                }
            }
        }
    }

    fn finish_dir(&self, dir: &DirNode) -> Result<(), CopyError> {
        let rel = &dir.rel;
        set_owner_fd(dir.dst.as_fd(), &dir.stat).map_err(self.dst_err("set the owner of", rel))?;
        self.copy_xattrs(XattrFile::Open(dir.src.as_fd()), XattrFile::Open(dir.dst.as_fd()), rel)?;
        nix::sys::stat::fchmod(&dir.dst, mode_of(&dir.stat)).map_err(self.dst_err("set the mode of", rel))?;
        let (atime, mtime) = times_of(&dir.stat);
        nix::sys::stat::futimens(&dir.dst, &atime, &mtime).map_err(self.dst_err("set the times of", rel))
    }

    fn copy_entry(&self, work: Work) -> Result<(), CopyError> {
        let Work { parent, name } = work;
        let rel = parent.rel.join(&name);
        let stat =
            nix::sys::stat::fstatat(&parent.src, name.as_os_str(), NOFOLLOW).map_err(self.src_err("examine", &rel))?;
        let kind = SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits());
        if kind == SFlag::S_IFDIR {
            return self.copy_dir(&parent, &name, rel, &stat);
        }
        if stat.st_nlink > 1 {
            let key = (stat.st_dev, stat.st_ino);
            let mut links = lock(&self.links);
            match links.entry(key) {
                Entry::Occupied(mut seen) => match seen.get_mut() {
                    LinkState::Copying(waiters) => {
                        // The first name's worker links this one when its copy exists, and only
                        // then counts the entry as done, so the directory's times come after.
                        waiters.push((parent, name));
                        return Ok(());
                    }
                    LinkState::Done(origin) => {
                        let origin = origin.clone();
                        drop(links);
                        self.link(&origin, &parent, &name)?;
                        return self.entry_done(parent);
                    }
                },
                Entry::Vacant(slot) => {
                    slot.insert(LinkState::Copying(Vec::new()));
                }
            }
            drop(links);
            self.copy_non_dir(&parent, &name, &rel, &stat, kind)?;
            let waiters = match lock(&self.links).insert(key, LinkState::Done(rel.clone())) {
                Some(LinkState::Copying(waiters)) => waiters,
                _ => Vec::new(),
            };
            for (dir, other) in waiters {
                self.link(&rel, &dir, &other)?;
                self.entry_done(dir)?;
            }
        } else {
            self.copy_non_dir(&parent, &name, &rel, &stat, kind)?;
        }
        self.entry_done(parent)
    }

    fn copy_dir(&self, parent: &Arc<DirNode>, name: &OsStr, rel: PathBuf, stat: &FileStat) -> Result<(), CopyError> {
        if (stat.st_dev, stat.st_ino) == self.dst_root_id {
            return Err(CopyError::DestinationInsideSource { from: self.from.to_owned(), to: self.to.to_owned() });
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let src = nix::fcntl::openat(&parent.src, name, flags, Mode::empty()).map_err(self.src_err("open", &rel))?;
        let opened = nix::sys::stat::fstat(&src).map_err(self.src_err("examine", &rel))?;
        if !same_inode(&opened, stat.st_ino, stat.st_dev) {
            return Err(CopyError::Changed { path: self.src_path(&rel) });
        }
        // 0700 until its contents are done: see the module docs.
        nix::sys::stat::mkdirat(&parent.dst, name, Mode::S_IRWXU).map_err(self.dst_err("create", &rel))?;
        let dst = nix::fcntl::openat(&parent.dst, name, flags, Mode::empty()).map_err(self.dst_err("open", &rel))?;
        let node =
            DirNode { src, dst, rel, stat: opened, pending: AtomicUsize::new(1), parent: Some(Arc::clone(parent)) };
        self.open_listing(node)
    }

    fn copy_non_dir(
        &self,
        parent: &DirNode,
        name: &OsStr,
        rel: &Path,
        stat: &FileStat,
        kind: SFlag,
    ) -> Result<(), CopyError> {
        match kind {
            SFlag::S_IFREG => self.copy_file(parent, name, rel, stat),
            SFlag::S_IFLNK => self.copy_symlink(parent, name, rel, stat),
            SFlag::S_IFCHR | SFlag::S_IFBLK | SFlag::S_IFIFO | SFlag::S_IFSOCK => {
                self.copy_special(parent, name, rel, stat, kind)
            }
            _ => Err(CopyError::Entry {
                op: "copy",
                path: self.src_path(rel),
                source: io::Error::new(io::ErrorKind::Unsupported, format!("unknown file type {:o}", kind.bits())),
            }),
        }
    }

    fn copy_file(&self, parent: &DirNode, name: &OsStr, rel: &Path, stat: &FileStat) -> Result<(), CopyError> {
        let src = open_source_file(parent.src.as_fd(), name).map_err(self.src_err("open", rel))?;
        let opened = nix::sys::stat::fstat(&src).map_err(self.src_err("examine", rel))?;
        if !same_inode(&opened, stat.st_ino, stat.st_dev) || opened.st_size != stat.st_size {
            return Err(CopyError::Changed { path: self.src_path(rel) });
        }
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let dst = nix::fcntl::openat(&parent.dst, name, flags, Mode::S_IRUSR | Mode::S_IWUSR)
            .map_err(self.dst_err("create", rel))?;
        let size = u64::try_from(stat.st_size).unwrap_or(0);
        if size > 0 {
            let cloned = match self.reflink {
                Reflink::Never => false,
                Reflink::Auto => sys::ficlone(dst.as_fd(), src.as_fd()).is_ok(),
                Reflink::Always => {
                    sys::ficlone(dst.as_fd(), src.as_fd())
                        .map_err(|e| CopyError::Reflink { path: self.dst_path(rel), source: e })?;
                    true
                }
            };
            if cloned {
                Counters::add(&self.stats.reflinked, 1);
            } else {
                let copied = copy_data(src.as_fd(), dst.as_fd(), size).map_err(|e| {
                    // A full or read-only destination is the destination's fault: name it,
                    // so the error points at the filesystem to clean up.
                    let errno = e.raw_os_error().map(Errno::from_raw);
                    if matches!(errno, Some(Errno::ENOSPC | Errno::EDQUOT | Errno::EFBIG | Errno::EROFS)) {
                        CopyError::Entry { op: "write the data of", path: self.dst_path(rel), source: e }
                    } else {
                        CopyError::Entry { op: "copy the data of", path: self.src_path(rel), source: e }
                    }
                })?;
                if copied.short {
                    return Err(CopyError::Changed { path: self.src_path(rel) });
                }
                Counters::add(&self.stats.copied, 1);
                Counters::add(&self.stats.bytes_copied, copied.bytes);
            }
        }
        Counters::add(&self.stats.files, 1);
        Counters::add(&self.stats.bytes, size);
        // Owner first: chown(2) clears setuid/setgid and security.capability, which the next
        // two steps then set.
        set_owner_fd(dst.as_fd(), stat).map_err(self.dst_err("set the owner of", rel))?;
        self.copy_xattrs(XattrFile::Open(src.as_fd()), XattrFile::Open(dst.as_fd()), rel)?;
        nix::sys::stat::fchmod(&dst, mode_of(stat)).map_err(self.dst_err("set the mode of", rel))?;
        let (atime, mtime) = times_of(stat);
        nix::sys::stat::futimens(&dst, &atime, &mtime).map_err(self.dst_err("set the times of", rel))
    }

    fn copy_symlink(&self, parent: &DirNode, name: &OsStr, rel: &Path, stat: &FileStat) -> Result<(), CopyError> {
        let target = nix::fcntl::readlinkat(&parent.src, name).map_err(self.src_err("read the symlink", rel))?;
        nix::unistd::symlinkat(target.as_os_str(), &parent.dst, name).map_err(self.dst_err("create", rel))?;
        Counters::add(&self.stats.symlinks, 1);
        self.set_node_metadata(parent, name, rel, stat, false)
    }

    fn copy_special(
        &self,
        parent: &DirNode,
        name: &OsStr,
        rel: &Path,
        stat: &FileStat,
        kind: SFlag,
    ) -> Result<(), CopyError> {
        nix::sys::stat::mknodat(&parent.dst, name, kind, Mode::S_IRUSR | Mode::S_IWUSR, stat.st_rdev)
            .map_err(self.dst_err("create", rel))?;
        Counters::add(&self.stats.specials, 1);
        self.set_node_metadata(parent, name, rel, stat, true)
    }

    /// Owner, xattrs, mode (unless a symlink, whose mode Linux ignores) and times of a symlink
    /// or special file, which cannot be opened for reading without following or opening it.
    fn set_node_metadata(
        &self,
        parent: &DirNode,
        name: &OsStr,
        rel: &Path,
        stat: &FileStat,
        chmod: bool,
    ) -> Result<(), CopyError> {
        let owner = (Some(Uid::from_raw(stat.st_uid)), Some(Gid::from_raw(stat.st_gid)));
        nix::unistd::fchownat(&parent.dst, name, owner.0, owner.1, NOFOLLOW)
            .map_err(self.dst_err("set the owner of", rel))?;
        let path_flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let src =
            nix::fcntl::openat(&parent.src, name, path_flags, Mode::empty()).map_err(self.src_err("open", rel))?;
        let dst =
            nix::fcntl::openat(&parent.dst, name, path_flags, Mode::empty()).map_err(self.dst_err("open", rel))?;
        self.copy_xattrs(XattrFile::Path(src.as_fd()), XattrFile::Path(dst.as_fd()), rel)?;
        if chmod {
            // Through the O_PATH descriptor's magic link: it is the node just made, never a
            // symlink's target.
            nix::sys::stat::fchmodat(AT_FDCWD, &sys::proc_fd_path(&dst), mode_of(stat), FchmodatFlags::FollowSymlink)
                .map_err(self.dst_err("set the mode of", rel))?;
        }
        let (atime, mtime) = times_of(stat);
        nix::sys::stat::utimensat(&parent.dst, name, &atime, &mtime, UtimensatFlags::NoFollowSymlink)
            .map_err(self.dst_err("set the times of", rel))
    }

    /// Gives the inode at `origin` (below `to`) the extra name `name` in `dir`.
    fn link(&self, origin: &Path, dir: &DirNode, name: &OsStr) -> Result<(), CopyError> {
        let rel = dir.rel.join(name);
        let origin_dir = origin.parent().unwrap_or(Path::new(""));
        let origin_name = origin.file_name().unwrap_or_default();
        let from = open_dir_beneath(self.dst_root.as_fd(), origin_dir).map_err(self.dst_err("open", origin_dir))?;
        nix::unistd::linkat(&from, origin_name, &dir.dst, name, AtFlags::empty())
            .map_err(self.dst_err("create the hard link", &rel))?;
        Counters::add(&self.stats.hard_links, 1);
        Ok(())
    }

    fn copy_xattrs(&self, src: XattrFile<'_>, dst: XattrFile<'_>, rel: &Path) -> Result<(), CopyError> {
        let xattr_err = |op, name: &CStr, path: PathBuf| {
            let name = name.to_string_lossy().into_owned();
            move |source| CopyError::Xattr { op, name, path, source }
        };
        for name in src.list().map_err(xattr_err("list", c"names", self.src_path(rel)))? {
            // Gone since it was listed: nothing to copy.
            let Some(value) = src.get(&name).map_err(xattr_err("read", &name, self.src_path(rel)))? else {
                continue;
            };
            dst.set(&name, &value).map_err(xattr_err("set", &name, self.dst_path(rel)))?;
        }
        Ok(())
    }
}

/// The file whose extended attributes are read or written: an fd opened for I/O, or an `O_PATH`
/// fd (symlinks, devices, fifos), reached through its `/proc/self/fd` link.
#[derive(Debug, Clone, Copy)]
enum XattrFile<'a> {
    Open(BorrowedFd<'a>),
    Path(BorrowedFd<'a>),
}

impl XattrFile<'_> {
    fn list(self) -> io::Result<Vec<CString>> {
        match self {
            XattrFile::Open(fd) => sys::flistxattr(fd),
            XattrFile::Path(fd) => sys::path_fd_listxattr(fd),
        }
    }

    fn get(self, name: &CStr) -> io::Result<Option<Vec<u8>>> {
        match self {
            XattrFile::Open(fd) => sys::fgetxattr(fd, name),
            XattrFile::Path(fd) => sys::path_fd_getxattr(fd, name),
        }
    }

    fn set(self, name: &CStr, value: &[u8]) -> io::Result<()> {
        match self {
            XattrFile::Open(fd) => sys::fsetxattr(fd, name, value),
            XattrFile::Path(fd) => sys::path_fd_setxattr(fd, name, value),
        }
    }
}

fn same_inode(stat: &FileStat, ino: u64, dev: u64) -> bool {
    stat.st_ino == ino && stat.st_dev == dev
}

/// The permission bits with setuid, setgid and sticky (the low 12 bits of `st_mode`).
fn mode_of(stat: &FileStat) -> Mode {
    Mode::from_bits_truncate(stat.st_mode & 0o7777)
}

/// (atime, mtime) of a stat, to nanoseconds.
fn times_of(stat: &FileStat) -> (TimeSpec, TimeSpec) {
    (TimeSpec::new(stat.st_atime, stat.st_atime_nsec), TimeSpec::new(stat.st_mtime, stat.st_mtime_nsec))
}

fn set_owner_fd(fd: BorrowedFd<'_>, stat: &FileStat) -> nix::Result<()> {
    nix::unistd::fchown(fd, Some(Uid::from_raw(stat.st_uid)), Some(Gid::from_raw(stat.st_gid)))
}

/// Opens `name` in `dir` for reading, without following a symlink or blocking on a fifo swapped
/// in, and without updating its atime where allowed (`O_NOATIME` needs ownership or
/// `CAP_FOWNER`; refused with `EPERM` otherwise, then it is opened without).
fn open_source_file(dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    match nix::fcntl::openat(dir, name, flags | OFlag::O_NOATIME, Mode::empty()) {
        Err(Errno::EPERM) => nix::fcntl::openat(dir, name, flags, Mode::empty()),
        other => other,
    }
}

/// Opens the directory `rel` below `root` as an `O_PATH` descriptor, one component at a time,
/// never following a symlink. `rel` holds only normal components (it is a path the copy made).
fn open_dir_beneath(root: BorrowedFd<'_>, rel: &Path) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut dir = nix::fcntl::openat(root, ".", flags, Mode::empty())?;
    for component in rel.components() {
        let Component::Normal(name) = component else { return Err(Errno::EINVAL) };
        dir = nix::fcntl::openat(&dir, name, flags, Mode::empty())?;
    }
    Ok(dir)
}

/// What [`copy_data`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DataCopied {
    /// Bytes of data copied (holes not included).
    bytes: u64,
    /// The source ended before `size`: it shrank during the copy.
    short: bool,
}

/// Copies the first `size` bytes of `src` into the empty file `dst`, keeping holes: only the
/// ranges `lseek(2)` `SEEK_DATA`/`SEEK_HOLE` report as data are copied (with [`copy_range`]),
/// and `dst` is then extended to `size` with `ftruncate(2)`, so holes, a trailing one included,
/// stay unallocated. A filesystem without `SEEK_DATA` support reports the whole file as data.
fn copy_data(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, size: u64) -> io::Result<DataCopied> {
    let end = i64::try_from(size).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut copied = DataCopied { bytes: 0, short: false };
    let mut pos = 0i64;
    while pos < end {
        let data = match nix::unistd::lseek(src, pos, Whence::SeekData) {
            Ok(offset) => offset,
            // No data after `pos`: the rest is a hole.
            Err(Errno::ENXIO) => break,
            Err(e) => return Err(e.into()),
        };
        if data >= end {
            break;
        }
        let hole = match nix::unistd::lseek(src, data, Whence::SeekHole) {
            Ok(offset) => offset.min(end),
            Err(Errno::ENXIO) => end,
            Err(e) => return Err(e.into()),
        };
        let len = u64::try_from(hole - data).unwrap_or(0);
        let got = copy_range(src, dst, data, len)?;
        copied.bytes += got;
        if got < len {
            copied.short = true;
            break;
        }
        pos = hole;
    }
    nix::unistd::ftruncate(dst, end)?;
    Ok(copied)
}

/// Copies `len` bytes at `offset` from `src` to the same offset in `dst`, with
/// `copy_file_range(2)` (in-kernel, no copy through user space; shares blocks itself on some
/// filesystems), or with `pread`/`pwrite` where the kernel refuses it for these files (`EXDEV`
/// before Linux 5.3 or across some filesystems, `EINVAL`, `EOPNOTSUPP`, `ENOSYS`). Returns the
/// bytes copied, less than `len` only if the source ended early.
fn copy_range(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, offset: i64, len: u64) -> io::Result<u64> {
    let mut off_in = offset;
    let mut off_out = offset;
    let mut done = 0u64;
    while done < len {
        let chunk = usize::try_from((len - done).min(1 << 30)).unwrap_or(1 << 30);
        match nix::fcntl::copy_file_range(src, Some(&mut off_in), dst, Some(&mut off_out), chunk) {
            Ok(0) => return Ok(done),
            Ok(n) => done += n as u64,
            Err(Errno::EINTR) => {}
            Err(Errno::EXDEV | Errno::EINVAL | Errno::EOPNOTSUPP | Errno::ENOSYS) => {
                return Ok(done + read_write_range(src, dst, off_in, len - done)?);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(done)
}

/// [`copy_range`] through a buffer in user space.
fn read_write_range(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, offset: i64, len: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    while done < len {
        let want = usize::try_from((len - done).min(buf.len() as u64)).unwrap_or(buf.len());
        let at = offset + i64::try_from(done).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let got = match nix::sys::uio::pread(src, &mut buf[..want], at) {
            Ok(0) => return Ok(done),
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut written = 0;
        while written < got {
            let at = at + i64::try_from(written).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            match nix::sys::uio::pwrite(dst, &buf[written..got], at) {
                Ok(n) => written += n,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        done += got as u64;
    }
    Ok(done)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures are built with std::fs on purpose
mod tests {
    use std::error::Error as _;
    use std::fs;
    use std::io::{Seek, SeekFrom, Write};
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    use super::*;

    const MIB: u64 = 1 << 20;

    /// A file of `size` bytes with `data` at each of `at`, holes elsewhere.
    fn sparse_file(path: &Path, size: u64, at: &[u64], data: &[u8]) {
        let mut file = fs::File::create(path).unwrap();
        for offset in at {
            file.seek(SeekFrom::Start(*offset)).unwrap();
            file.write_all(data).unwrap();
        }
        file.set_len(size).unwrap();
    }

    fn open(path: &Path, flags: OFlag) -> OwnedFd {
        nix::fcntl::openat(AT_FDCWD, path, flags | OFlag::O_CLOEXEC, Mode::from_bits_truncate(0o600)).unwrap()
    }

    #[test]
    fn backing_copy_data_keeps_holes() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
        let data = vec![0xa5u8; 64 * 1024];
        sparse_file(&src, 16 * MIB, &[0, 8 * MIB], &data);
        let src_fd = open(&src, OFlag::O_RDONLY);
        let dst_fd = open(&dst, OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL);
        let copied = copy_data(src_fd.as_fd(), dst_fd.as_fd(), 16 * MIB).unwrap();
        assert!(!copied.short);
        // Filesystems allocate at least what was written, maybe rounded to their block size.
        assert!(copied.bytes >= 2 * data.len() as u64 && copied.bytes < MIB, "copied {} bytes", copied.bytes);
        assert_eq!(fs::read(&src).unwrap(), fs::read(&dst).unwrap());
        let blocks = fs::metadata(&dst).unwrap().blocks() * 512;
        assert!(blocks < 2 * MIB, "the copy allocates {blocks} bytes for 128 KiB of data");
        assert_eq!(fs::metadata(&dst).unwrap().len(), 16 * MIB);
    }

    #[test]
    fn backing_copy_data_reports_a_source_that_shrank() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
        fs::write(&src, b"short").unwrap();
        let src_fd = open(&src, OFlag::O_RDONLY);
        let dst_fd = open(&dst, OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL);
        // SEEK_HOLE clamps the data range to the real end, so a larger `size` is a short copy
        // or a trailing hole, never a read past the end.
        let copied = copy_data(src_fd.as_fd(), dst_fd.as_fd(), 4096).unwrap();
        assert_eq!(copied.bytes, 5);
        assert_eq!(fs::metadata(&dst).unwrap().len(), 4096);
    }

    #[test]
    fn backing_copy_read_write_range_copies_a_middle_range() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
        let content: Vec<u8> = (0..3 * MIB).map(|i| (i % 251) as u8).collect();
        fs::write(&src, &content).unwrap();
        let src_fd = open(&src, OFlag::O_RDONLY);
        let dst_fd = open(&dst, OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL);
        let got = read_write_range(src_fd.as_fd(), dst_fd.as_fd(), 1000, 2 * MIB).unwrap();
        assert_eq!(got, 2 * MIB);
        let copy = fs::read(&dst).unwrap();
        assert_eq!(copy.len() as u64, 1000 + 2 * MIB);
        assert_eq!(&copy[1000..], &content[1000..1000 + 2 * MIB as usize]);
        // Past the end: stops there.
        assert_eq!(read_write_range(src_fd.as_fd(), dst_fd.as_fd(), 3 * MIB as i64 - 10, 100).unwrap(), 10);
    }

    #[test]
    fn backing_open_dir_beneath_never_follows_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("link")).unwrap();
        let root = open(dir.path(), OFlag::O_RDONLY | OFlag::O_DIRECTORY);
        assert!(open_dir_beneath(root.as_fd(), Path::new("a/b")).is_ok());
        assert!(open_dir_beneath(root.as_fd(), Path::new("")).is_ok());
        assert!(open_dir_beneath(root.as_fd(), Path::new("link/b")).is_err());
        assert_eq!(open_dir_beneath(root.as_fd(), Path::new("../x")).err(), Some(Errno::EINVAL));
    }

    #[test]
    fn backing_destination_must_be_absent_or_empty() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("f"), b"x").unwrap();

        let full = dir.path().join("full");
        fs::create_dir(&full).unwrap();
        fs::write(full.join("old"), b"").unwrap();
        let err = copy_tree(&src, &full, &CopyOptions::default()).unwrap_err();
        assert!(matches!(err, CopyError::DestinationNotEmpty { .. }), "{err:?}");
        assert!(err.to_string().contains(&*full.to_string_lossy()), "{err}");

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&full, &link).unwrap();
        let err = copy_tree(&src, &link, &CopyOptions::default()).unwrap_err();
        assert!(matches!(err, CopyError::OpenDestination { .. }), "{err:?}");
        // The message names the path and the rule, the cause is only the source.
        assert!(!err.to_string().contains("symbolic links"), "{err}");
        assert!(err.source().is_some());

        let err = copy_tree(&src, &dir.path().join("no/parent"), &CopyOptions::default()).unwrap_err();
        assert!(matches!(err, CopyError::OpenDestination { .. }), "{err:?}");

        let err = copy_tree(&link, &dir.path().join("x"), &CopyOptions::default()).unwrap_err();
        assert!(matches!(err, CopyError::OpenSource { .. }), "{err:?}");

        let empty = dir.path().join("empty");
        fs::create_dir(&empty).unwrap();
        copy_tree(&src, &empty, &CopyOptions::default()).unwrap();
        assert_eq!(fs::read(empty.join("f")).unwrap(), b"x");

        let absent = dir.path().join("absent");
        copy_tree(&src, &absent, &CopyOptions::default()).unwrap();
        assert_eq!(fs::read(absent.join("f")).unwrap(), b"x");
    }

    #[test]
    fn backing_destination_inside_source_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("a/b")).unwrap();
        let err = copy_tree(dir.path(), &dir.path().join("a/b/into"), &CopyOptions::default()).unwrap_err();
        assert!(matches!(err, CopyError::DestinationInsideSource { .. }), "{err:?}");
    }

    #[test]
    fn backing_copy_tree_keeps_kinds_links_modes_and_times() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("d/e")).unwrap();
        fs::write(src.join("d/file"), b"hello").unwrap();
        fs::write(src.join("empty"), b"").unwrap();
        fs::hard_link(src.join("d/file"), src.join("d/e/again")).unwrap();
        fs::hard_link(src.join("d/file"), src.join("third")).unwrap();
        std::os::unix::fs::symlink("../../outside", src.join("d/up")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("abs")).unwrap();
        nix::unistd::mkfifo(&src.join("fifo"), Mode::from_bits_truncate(0o640)).unwrap();
        fs::set_permissions(src.join("d/file"), fs::Permissions::from_mode(0o4750)).unwrap();
        fs::set_permissions(src.join("d/e"), fs::Permissions::from_mode(0o1777)).unwrap();
        let (atime, mtime) = (TimeSpec::new(1_600_000_000, 123_456_789), TimeSpec::new(1_500_000_000, 987_654_321));
        for path in ["d/file", "d/e", "d", ""] {
            nix::sys::stat::utimensat(AT_FDCWD, &src.join(path), &atime, &mtime, UtimensatFlags::FollowSymlink)
                .unwrap();
        }
        nix::sys::stat::utimensat(AT_FDCWD, &src.join("abs"), &atime, &mtime, UtimensatFlags::NoFollowSymlink).unwrap();

        let dst = dir.path().join("dst");
        let options = CopyOptions { threads: 3, reflink: Reflink::Never };
        let stats = copy_tree(&src, &dst, &options).unwrap();
        assert_eq!(
            stats,
            CopyStats {
                dirs: 3,
                files: 2,
                reflinked: 0,
                copied: 1,
                bytes: 5,
                bytes_copied: 5,
                symlinks: 2,
                specials: 1,
                hard_links: 2,
            }
        );
        let meta = |p: &str| fs::symlink_metadata(dst.join(p)).unwrap();
        // Times first: reading the copy below updates atimes (relatime).
        for path in ["d/file", "d/e", "d", "", "abs"] {
            let m = meta(path);
            assert_eq!((m.mtime(), m.mtime_nsec()), (1_500_000_000, 987_654_321), "mtime of {path:?}");
            assert_eq!((m.atime(), m.atime_nsec()), (1_600_000_000, 123_456_789), "atime of {path:?}");
        }
        assert_eq!(fs::read(dst.join("third")).unwrap(), b"hello");
        assert_eq!(meta("d/file").ino(), meta("d/e/again").ino());
        assert_eq!(meta("d/file").ino(), meta("third").ino());
        assert_eq!(meta("d/file").nlink(), 3);
        assert_eq!(meta("d/file").mode() & 0o7777, 0o4750);
        assert_eq!(meta("d/e").mode() & 0o7777, 0o1777);
        assert_eq!(fs::read_link(dst.join("d/up")).unwrap(), Path::new("../../outside"));
        assert_eq!(fs::read_link(dst.join("abs")).unwrap(), Path::new("/etc/passwd"));
        assert!(meta("fifo").file_type().is_fifo());
        assert_eq!(meta("fifo").mode() & 0o7777, 0o640);
    }

    #[test]
    fn backing_copy_tree_many_files_in_parallel() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        for d in 0..20 {
            fs::create_dir_all(src.join(format!("d{d}/sub"))).unwrap();
            for f in 0..30 {
                fs::write(src.join(format!("d{d}/sub/f{f}")), format!("{d}/{f}")).unwrap();
            }
        }
        let stats =
            copy_tree(&src, &dir.path().join("dst"), &CopyOptions { threads: 4, ..CopyOptions::default() }).unwrap();
        assert_eq!((stats.dirs, stats.files), (41, 600));
        assert_eq!(stats.reflinked + stats.copied, 600);
        assert_eq!(fs::read_to_string(dir.path().join("dst/d7/sub/f29")).unwrap(), "7/29");
    }

    #[test]
    fn backing_copy_tree_keeps_user_xattrs_and_clears_those_of_the_destination() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("f"), b"x").unwrap();
        let f = open(&src.join("f"), OFlag::O_RDONLY);
        if sys::fsetxattr(f.as_fd(), c"user.lxc-tmpl.test", b"value").is_err() {
            eprintln!("skipped: the temp dir's filesystem keeps no user.* xattrs");
            return;
        }
        let dst = dir.path().join("dst");
        fs::create_dir(&dst).unwrap();
        let d = open(&dst, OFlag::O_RDONLY | OFlag::O_DIRECTORY);
        sys::fsetxattr(d.as_fd(), c"user.stale", b"old").unwrap();
        copy_tree(&src, &dst, &CopyOptions::default()).unwrap();
        let copy = open(&dst.join("f"), OFlag::O_RDONLY);
        assert_eq!(sys::fgetxattr(copy.as_fd(), c"user.lxc-tmpl.test").unwrap().as_deref(), Some(&b"value"[..]));
        assert_eq!(sys::fgetxattr(d.as_fd(), c"user.stale").unwrap(), None);
    }

    #[test]
    fn backing_reflink_always_fails_or_shares() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("f"), b"data").unwrap();
        let options = CopyOptions { threads: 2, reflink: Reflink::Always };
        match copy_tree(&src, &dir.path().join("dst"), &options) {
            // A filesystem with reflinks (btrfs, xfs).
            Ok(stats) => assert_eq!((stats.reflinked, stats.copied), (1, 0)),
            Err(err) => {
                assert!(matches!(err, CopyError::Reflink { .. }), "{err:?}");
                assert!(err.to_string().contains("Reflink::Auto"), "{err}");
            }
        }
    }
}
