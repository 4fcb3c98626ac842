//! The system-call layer under the runner (the youki pattern).
//!
//! The in-namespace setup of [`crate::runner`] talks to the kernel only through the small
//! [`Syscall`] trait, so its exact sequence of `unshare`/`mount`/`chroot` calls can be unit
//! tested with [`RecordingSyscall`] without privileges. [`LinuxSyscall`] is the real thing.
//!
//! The few process-level operations that need `unsafe` (fork, claiming an inherited fd,
//! resetting signal dispositions, `_exit`, passing fds to a spawned child, pidfds) also live here,
//! and so do the descriptor-relative file operations nix lacks (xattrs of an open file or of an
//! `O_PATH` descriptor, reflinks, reading a directory through its descriptor), each behind a safe function that checks or documents its
//! precondition, so that no other module of the crate needs `unsafe`.

use std::ffi::{CStr, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, FcntlArg, FdFlag, fcntl};
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, sigprocmask};
use nix::unistd::ForkResult;

/// The kernel operations the runner's in-namespace setup needs.
pub trait Syscall {
    /// `unshare(2)`: move the calling process into new namespaces.
    fn unshare(&self, flags: CloneFlags) -> nix::Result<()>;
    /// `mount(NULL, "/", NULL, MS_SLAVE|MS_REC, NULL)`: receive mount events from the host
    /// but never send any back, so nothing mounted in the new namespace reaches the host.
    fn make_rslave_root(&self) -> nix::Result<()>;
    /// `mount(2)`. `target` is usually `/proc/self/fd/N` of an fd resolved safely inside the
    /// rootfs.
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()>;
    /// `sethostname(2)` in the (new) UTS namespace.
    fn sethostname(&self, name: &str) -> nix::Result<()>;
    /// `chroot(2)`.
    fn chroot(&self, path: &Path) -> nix::Result<()>;
    /// `chdir(2)`.
    fn chdir(&self, path: &Path) -> nix::Result<()>;
    /// `symlink(2)`; only used after `chroot`, so `link` is resolved inside the new root.
    fn symlink(&self, target: &Path, link: &Path) -> nix::Result<()>;
    /// `prctl(PR_SET_PDEATHSIG)`: get `signal` when the parent (thread) dies.
    fn set_pdeathsig(&self, signal: Signal) -> nix::Result<()>;
}

/// [`Syscall`] on the running kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxSyscall;

impl Syscall for LinuxSyscall {
    fn unshare(&self, flags: CloneFlags) -> nix::Result<()> {
        nix::sched::unshare(flags)
    }

    fn make_rslave_root(&self) -> nix::Result<()> {
        nix::mount::mount(None::<&str>, "/", None::<&str>, MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>)
    }

    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()> {
        nix::mount::mount(source, target, fstype, flags, data)
    }

    fn sethostname(&self, name: &str) -> nix::Result<()> {
        nix::unistd::sethostname(name)
    }

    fn chroot(&self, path: &Path) -> nix::Result<()> {
        nix::unistd::chroot(path)
    }

    fn chdir(&self, path: &Path) -> nix::Result<()> {
        nix::unistd::chdir(path)
    }

    fn symlink(&self, target: &Path, link: &Path) -> nix::Result<()> {
        nix::unistd::symlinkat(target, AT_FDCWD, link)
    }

    fn set_pdeathsig(&self, signal: Signal) -> nix::Result<()> {
        nix::sys::prctl::set_pdeathsig(signal)
    }
}

/// One call recorded by [`RecordingSyscall`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Unshare(CloneFlags),
    MakeRslaveRoot,
    Mount {
        source: Option<PathBuf>,
        target: PathBuf,
        /// Where `target` pointed when it was a `/proc/self/fd/N` magic link, read at the time
        /// of the call (the fd is closed afterwards).
        resolved_target: Option<PathBuf>,
        fstype: Option<String>,
        flags: MsFlags,
        data: Option<String>,
    },
    Sethostname(String),
    Chroot(PathBuf),
    Chdir(PathBuf),
    Symlink {
        target: PathBuf,
        link: PathBuf,
    },
    SetPdeathsig(Signal),
}

/// A [`Syscall`] that records calls instead of making them, for tests of call sequences.
/// It can be told to fail the n-th call (0-based) with `EPERM` to test error paths.
#[derive(Debug, Default)]
pub struct RecordingSyscall {
    calls: Mutex<Vec<Call>>,
    fail_at: Option<usize>,
}

impl RecordingSyscall {
    /// A recorder whose calls all succeed.
    pub fn new() -> RecordingSyscall {
        RecordingSyscall::default()
    }

    /// A recorder whose `n`-th call (0-based) fails with `EPERM`; the failing call is recorded.
    pub fn failing_at(n: usize) -> RecordingSyscall {
        RecordingSyscall { calls: Mutex::default(), fail_at: Some(n) }
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn record(&self, call: Call) -> nix::Result<()> {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.push(call);
        if self.fail_at == Some(calls.len() - 1) {
            return Err(Errno::EPERM);
        }
        Ok(())
    }
}

impl Syscall for RecordingSyscall {
    fn unshare(&self, flags: CloneFlags) -> nix::Result<()> {
        self.record(Call::Unshare(flags))
    }

    fn make_rslave_root(&self) -> nix::Result<()> {
        self.record(Call::MakeRslaveRoot)
    }

    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()> {
        let resolved_target = target.starts_with("/proc/self/fd").then(|| std::fs::read_link(target).ok()).flatten();
        self.record(Call::Mount {
            source: source.map(Path::to_path_buf),
            target: target.to_path_buf(),
            resolved_target,
            fstype: fstype.map(str::to_owned),
            flags,
            data: data.map(str::to_owned),
        })
    }

    fn sethostname(&self, name: &str) -> nix::Result<()> {
        self.record(Call::Sethostname(name.to_owned()))
    }

    fn chroot(&self, path: &Path) -> nix::Result<()> {
        self.record(Call::Chroot(path.to_path_buf()))
    }

    fn chdir(&self, path: &Path) -> nix::Result<()> {
        self.record(Call::Chdir(path.to_path_buf()))
    }

    fn symlink(&self, target: &Path, link: &Path) -> nix::Result<()> {
        self.record(Call::Symlink { target: target.to_path_buf(), link: link.to_path_buf() })
    }

    fn set_pdeathsig(&self, signal: Signal) -> nix::Result<()> {
        self.record(Call::SetPdeathsig(signal))
    }
}

/// Number of threads of the calling process, from `/proc/self/status`.
fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|n| n.trim().parse().ok())
}

/// `fork(2)`, refused unless the calling process has exactly one thread.
///
/// The runner's helper forks and then keeps running Rust code (allocating, formatting) in the
/// child; that is only sound when no other thread could have held a lock (e.g. the allocator's)
/// at the time of the fork. Returns `EDEADLK` if the process is multi-threaded.
pub fn fork_single_threaded() -> nix::Result<ForkResult> {
    if thread_count() != Some(1) {
        return Err(Errno::EDEADLK);
    }
    // SAFETY: the process has a single thread (checked just above, and nothing in between
    // starts one), so the child inherits no lock held by another thread and may run arbitrary
    // code, not only async-signal-safe functions.
    #[allow(unsafe_code)]
    unsafe {
        nix::unistd::fork()
    }
}

/// Take ownership of an fd this process inherited from its parent (the runner's status pipe),
/// and mark it close-on-exec so the command run later does not inherit it.
///
/// Returns `None` if `fd` is a standard stream or is not open. Must be called at most once per
/// fd, before anything else in the process could have adopted it.
pub fn take_inherited_fd(fd: RawFd) -> Option<OwnedFd> {
    if fd <= 2 {
        return None;
    }
    // SAFETY: a borrow for the duration of one fcntl call; an invalid fd just makes fcntl fail
    // with EBADF.
    #[allow(unsafe_code)]
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).ok()?;
    // SAFETY: the fd is open (fcntl succeeded) and was passed to us by the parent for exactly
    // this purpose; no other owner exists in this freshly started helper process.
    #[allow(unsafe_code)]
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Arrange for each `(fd, target)` pair: `fd` appears as `target` (without close-on-exec) in
/// the child `cmd` spawns. The caller keeps the fds open until the child has been spawned.
///
/// The sources are first duplicated above every target, so that one pair's `dup2` cannot
/// overwrite another pair's source (status fd 4 onto 3 while the request fd is 3, say).
pub fn pass_fds_to_child(cmd: &mut Command, fds: &[(BorrowedFd<'_>, RawFd)]) {
    let pairs: Vec<(RawFd, RawFd)> = fds.iter().map(|(fd, target)| (fd.as_raw_fd(), *target)).collect();
    let above = pairs.iter().map(|(_, target)| *target).max().unwrap_or(2) + 1;
    // SAFETY: the closure runs between fork and exec in the child and only calls fcntl and dup2,
    // which are async-signal-safe; it reads the captured Vec (allocated before the fork) and
    // writes only a fixed-size array on the stack.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            let mut temps = [-1 as RawFd; 8];
            if pairs.len() > temps.len() {
                return Err(std::io::Error::from_raw_os_error(nix::libc::EMFILE));
            }
            for (i, (source, _)) in pairs.iter().enumerate() {
                // Close-on-exec: the copies above the targets must not reach the command.
                let temp = nix::libc::fcntl(*source, nix::libc::F_DUPFD_CLOEXEC, above);
                if temp == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                temps[i] = temp;
            }
            for (i, (_, target)) in pairs.iter().enumerate() {
                // dup2 onto a different fd clears close-on-exec on the target.
                if nix::libc::dup2(temps[i], *target) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// `pidfd_open(2)`: a descriptor that names process `pid` for good, even after it is reaped and
/// its PID reused (Linux 5.3).
pub fn pidfd_open(pid: u32) -> nix::Result<OwnedFd> {
    let pid = nix::libc::pid_t::try_from(pid).map_err(|_| Errno::EINVAL)?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is passed.
    #[allow(unsafe_code)]
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    #[allow(unsafe_code)]
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_send_signal(2)` with `SIGKILL`: kills exactly the process `pidfd` names; `ESRCH` if it
/// has exited.
pub fn pidfd_kill(pidfd: &impl AsFd) -> nix::Result<()> {
    let fd = pidfd.as_fd().as_raw_fd();
    // SAFETY: the fd is valid for the duration of the call (borrowed); the info pointer is NULL,
    // which the kernel reads as "as if by kill(2)".
    #[allow(unsafe_code)]
    let rc = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_pidfd_send_signal,
            fd,
            nix::libc::SIGKILL,
            std::ptr::null::<nix::libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// `sigpending(2)`: the signals raised for this thread or the process that are blocked and not
/// yet taken (by `sigwait`).
pub fn pending_signals() -> nix::Result<SigSet> {
    let mut set = std::mem::MaybeUninit::<nix::libc::sigset_t>::uninit();
    // SAFETY: sigpending fills the set it is given; it is only read after a success.
    #[allow(unsafe_code)]
    let rc = unsafe { nix::libc::sigpending(set.as_mut_ptr()) };
    if rc < 0 {
        return Err(Errno::last());
    }
    // SAFETY: initialised by the successful call above, so a valid sigset_t.
    #[allow(unsafe_code)]
    Ok(unsafe { SigSet::from_sigset_t_unchecked(set.assume_init()) })
}

/// Prepare a forked child for `execve`: default dispositions for the signals the Rust runtime
/// (or anyone) may have ignored, and an empty signal mask. Ignored dispositions and the mask
/// survive exec, and a command started with SIGPIPE ignored misbehaves in pipelines.
pub fn reset_signals_for_exec() -> nix::Result<()> {
    for signal in [
        Signal::SIGPIPE,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGCHLD,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
        Signal::SIGTSTP,
    ] {
        // SAFETY: installing SIG_DFL runs no handler code, so no signal-safety requirement of a
        // handler applies.
        #[allow(unsafe_code)]
        unsafe {
            nix::sys::signal::signal(signal, SigHandler::SigDfl)?;
        }
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
}

/// `_exit(2)`: leave a forked child at once, without running exit handlers or flushing stdio
/// buffers inherited from the parent.
pub fn exit_immediately(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and never returns.
    #[allow(unsafe_code)]
    unsafe {
        nix::libc::_exit(code)
    }
}

/// `Path` from a `/proc/self/fd/N` magic link for `fd`: mounting onto it mounts onto exactly
/// the inode `fd` refers to, with no second path lookup.
pub fn proc_fd_path(fd: &impl AsFd) -> PathBuf {
    Path::new("/proc/self/fd").join(OsStr::new(&fd.as_fd().as_raw_fd().to_string()))
}

/// `fgetxattr(2)`: the value of the extended attribute `name` of the file `fd` refers to, with no
/// path lookup; `None` when the file has no such attribute (`ENODATA`) or its filesystem keeps
/// none (`EOPNOTSUPP`).
pub fn fgetxattr(fd: BorrowedFd<'_>, name: &CStr) -> std::io::Result<Option<Vec<u8>>> {
    loop {
        // SAFETY: a NULL buffer of size 0 asks only for the value's size; `name` is a valid C
        // string for the duration of the call.
        #[allow(unsafe_code)]
        let size = unsafe { nix::libc::fgetxattr(fd.as_raw_fd(), name.as_ptr(), std::ptr::null_mut(), 0) };
        let Ok(size) = usize::try_from(size) else { return absent_xattr(std::io::Error::last_os_error()) };
        let mut value = vec![0u8; size];
        // SAFETY: `value` is a writable buffer of exactly `value.len()` bytes, and the kernel writes
        // at most that many.
        #[allow(unsafe_code)]
        let got =
            unsafe { nix::libc::fgetxattr(fd.as_raw_fd(), name.as_ptr(), value.as_mut_ptr().cast(), value.len()) };
        match usize::try_from(got) {
            Ok(len) => {
                value.truncate(len);
                return Ok(Some(value));
            }
            // The value grew between the two calls: ask again.
            Err(_) if Errno::last() == Errno::ERANGE => continue,
            Err(_) => return absent_xattr(std::io::Error::last_os_error()),
        }
    }
}

fn absent_xattr(err: std::io::Error) -> std::io::Result<Option<Vec<u8>>> {
    match Errno::from_raw(err.raw_os_error().unwrap_or(0)) {
        Errno::ENODATA | Errno::EOPNOTSUPP => Ok(None),
        _ => Err(err),
    }
}

/// `fsetxattr(2)`: sets the extended attribute `name` of the file `fd` refers to (created or
/// replaced), with no path lookup.
pub fn fsetxattr(fd: BorrowedFd<'_>, name: &CStr, value: &[u8]) -> std::io::Result<()> {
    // SAFETY: `value` is readable for `value.len()` bytes and `name` is a valid C string for the
    // duration of the call; flags 0 means create or replace.
    #[allow(unsafe_code)]
    let rc = unsafe { nix::libc::fsetxattr(fd.as_raw_fd(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// The names in the directory `dir` refers to (without `.` and `..`), read through that
/// descriptor (`fdopendir(3)`/`readdir(3)`), never through a path.
///
/// `dir` is consumed: the directory stream owns it and closes it.
pub fn read_dir_fd(dir: OwnedFd) -> std::io::Result<Vec<std::ffi::OsString>> {
    use std::os::fd::IntoRawFd;
    use std::os::unix::ffi::OsStrExt;
    let raw = dir.into_raw_fd();
    // SAFETY: `raw` is an open descriptor we own (just released from its OwnedFd); on success the
    // stream takes it over and closedir below closes it.
    #[allow(unsafe_code)]
    let stream = unsafe { nix::libc::fdopendir(raw) };
    if stream.is_null() {
        let err = std::io::Error::last_os_error();
        // SAFETY: fdopendir failed, so `raw` is still ours to close (and nothing else uses it).
        #[allow(unsafe_code)]
        drop(unsafe { OwnedFd::from_raw_fd(raw) });
        return Err(err);
    }
    let mut names = Vec::new();
    let result = loop {
        Errno::clear();
        // SAFETY: `stream` is a valid directory stream until closedir below; readdir's entry is
        // read (its NUL-terminated d_name copied) before the next readdir call can reuse it.
        #[allow(unsafe_code)]
        let entry = unsafe { nix::libc::readdir(stream) };
        if entry.is_null() {
            let errno = Errno::last();
            break if errno == Errno::UnknownErrno { Ok(()) } else { Err(std::io::Error::from(errno)) };
        }
        // SAFETY: a non-NULL entry points at a dirent whose d_name is NUL-terminated.
        #[allow(unsafe_code)]
        let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) };
        let name = OsStr::from_bytes(name.to_bytes());
        if name != "." && name != ".." {
            names.push(name.to_owned());
        }
    };
    // SAFETY: `stream` came from fdopendir and is closed exactly once; it closes `raw` too.
    #[allow(unsafe_code)]
    unsafe {
        nix::libc::closedir(stream);
    }
    result.map(|()| names)
}

/// `ioctl(dst, FICLONE, src)` (ioctl_ficlone(2)): make the regular file `dst` share all of
/// `src`'s data blocks (a reflink, what `cp --reflink` does), replacing `dst`'s contents.
///
/// Fails with `EOPNOTSUPP` (or `ENOTTY`, `EINVAL`) where the filesystem cannot share blocks
/// (ext4, tmpfs), `EXDEV` when the two files are on different filesystems; callers fall back to
/// copying the data.
pub fn ficlone(dst: BorrowedFd<'_>, src: BorrowedFd<'_>) -> std::io::Result<()> {
    // SAFETY: FICLONE takes the source descriptor as its integer argument and touches no memory
    // of ours; both fds are valid for the duration of the call (borrowed).
    #[allow(unsafe_code)]
    let rc = unsafe { nix::libc::ioctl(dst.as_raw_fd(), nix::libc::FICLONE, src.as_raw_fd()) };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Calls `call(buffer, size)` first with an empty buffer to learn the size of a variable-length
/// value (an xattr value or name list), then with a buffer of that size; asks again when the
/// value grew in between (`ERANGE`). `call` returns what the syscall returned (-1 on error).
fn sized_read(mut call: impl FnMut(*mut nix::libc::c_void, usize) -> isize) -> std::io::Result<Vec<u8>> {
    loop {
        let size = call(std::ptr::null_mut(), 0);
        let Ok(size) = usize::try_from(size) else { return Err(std::io::Error::last_os_error()) };
        let mut value = vec![0u8; size];
        match usize::try_from(call(value.as_mut_ptr().cast(), value.len())) {
            Ok(len) => {
                value.truncate(len);
                return Ok(value);
            }
            Err(_) if Errno::last() == Errno::ERANGE => continue,
            Err(_) => return Err(std::io::Error::last_os_error()),
        }
    }
}

/// Splits a `listxattr(2)` result (NUL-terminated names, one after the other) into names.
fn split_xattr_names(list: &[u8]) -> Vec<std::ffi::CString> {
    list.split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| std::ffi::CString::new(n).expect("split at NUL"))
        .collect()
}

/// `flistxattr(2)`: the names of the extended attributes of the file `fd` refers to (an fd opened
/// for reading or writing, not `O_PATH`), with no path lookup. Empty when its filesystem keeps
/// none (`EOPNOTSUPP`). Without `CAP_SYS_ADMIN` the kernel leaves `trusted.*` names out.
pub fn flistxattr(fd: BorrowedFd<'_>) -> std::io::Result<Vec<std::ffi::CString>> {
    // SAFETY: the kernel writes at most `size` bytes to `buf`, which is NULL only with size 0 or
    // a writable buffer of `size` bytes (see sized_read).
    #[allow(unsafe_code)]
    let list = sized_read(|buf, size| unsafe { nix::libc::flistxattr(fd.as_raw_fd(), buf.cast(), size) });
    match list {
        Ok(list) => Ok(split_xattr_names(&list)),
        Err(err) if err.raw_os_error() == Some(nix::libc::EOPNOTSUPP) => Ok(Vec::new()),
        Err(err) => Err(err),
    }
}

/// `fremovexattr(2)`: removes the extended attribute `name` of the file `fd` refers to; a missing
/// attribute (`ENODATA`) is not an error.
pub fn fremovexattr(fd: BorrowedFd<'_>, name: &CStr) -> std::io::Result<()> {
    // SAFETY: `name` is a valid C string for the duration of the call.
    #[allow(unsafe_code)]
    let rc = unsafe { nix::libc::fremovexattr(fd.as_raw_fd(), name.as_ptr()) };
    if rc == 0 || Errno::last() == Errno::ENODATA { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// `listxattr(2)` of the inode an `O_PATH` descriptor refers to, through its `/proc/self/fd/N`
/// magic link: the f*xattr calls refuse `O_PATH` fds, and symlinks, device nodes and fifos can
/// only be opened as `O_PATH` without following or opening them. The magic link resolves to
/// exactly the inode of `fd` (a symlink's own inode for an `O_PATH|O_NOFOLLOW` fd), with no
/// lookup by name. Needs `/proc` mounted. Empty when the filesystem keeps no xattrs
/// (`EOPNOTSUPP`).
pub fn path_fd_listxattr(fd: BorrowedFd<'_>) -> std::io::Result<Vec<std::ffi::CString>> {
    let path = proc_fd_cpath(fd);
    // SAFETY: as in flistxattr; `path` is a valid C string for the duration of the calls.
    #[allow(unsafe_code)]
    let list = sized_read(|buf, size| unsafe { nix::libc::listxattr(path.as_ptr(), buf.cast(), size) });
    match list {
        Ok(list) => Ok(split_xattr_names(&list)),
        Err(err) if err.raw_os_error() == Some(nix::libc::EOPNOTSUPP) => Ok(Vec::new()),
        Err(err) => Err(err),
    }
}

/// `getxattr(2)` of the inode an `O_PATH` descriptor refers to (see [`path_fd_listxattr`]);
/// `None` when it has no such attribute (`ENODATA`) or its filesystem keeps none.
pub fn path_fd_getxattr(fd: BorrowedFd<'_>, name: &CStr) -> std::io::Result<Option<Vec<u8>>> {
    let path = proc_fd_cpath(fd);
    // SAFETY: as in flistxattr; `path` and `name` are valid C strings for the duration of the
    // calls.
    #[allow(unsafe_code)]
    let value = sized_read(|buf, size| unsafe { nix::libc::getxattr(path.as_ptr(), name.as_ptr(), buf, size) });
    match value {
        Ok(value) => Ok(Some(value)),
        Err(err) => absent_xattr(err),
    }
}

/// `setxattr(2)` (create or replace) of the inode an `O_PATH` descriptor refers to (see
/// [`path_fd_listxattr`]).
pub fn path_fd_setxattr(fd: BorrowedFd<'_>, name: &CStr, value: &[u8]) -> std::io::Result<()> {
    let path = proc_fd_cpath(fd);
    // SAFETY: `value` is readable for `value.len()` bytes, `path` and `name` are valid C strings
    // for the duration of the call.
    #[allow(unsafe_code)]
    let rc = unsafe { nix::libc::setxattr(path.as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// [`proc_fd_path`] as a C string.
fn proc_fd_cpath(fd: BorrowedFd<'_>) -> std::ffi::CString {
    std::ffi::CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL in a number")
}

/// `umount2(target, MNT_DETACH)`: detaches a mount now and lets the kernel
/// finish unmounting once nothing uses it (umount(2)).
///
/// # Errors
/// What `umount2` said (EINVAL when `target` is not a mount point).
pub fn unmount_detached(target: &Path) -> nix::Result<()> {
    nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH)
}

/// `syncfs(2)` of the file system that holds `path`: writes out everything
/// dirty on it, once, where a build skipped per-file fsyncs.
///
/// # Errors
/// The `open(2)` of `path` or the `syncfs(2)` error (EIO, ENOSPC, EDQUOT:
/// data that never reached the disk).
pub fn syncfs(path: &Path) -> std::io::Result<()> {
    let dir = std::fs::File::open(path)?;
    nix::unistd::syncfs(&dir).map_err(|e| std::io::Error::from_raw_os_error(e as i32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sys_recording_records_and_fails_on_request() {
        let sys = RecordingSyscall::failing_at(1);
        sys.sethostname("web1").unwrap();
        assert_eq!(sys.chroot(Path::new("/r")), Err(Errno::EPERM));
        sys.chdir(Path::new("/")).unwrap();
        assert_eq!(
            sys.calls(),
            vec![Call::Sethostname("web1".into()), Call::Chroot("/r".into()), Call::Chdir("/".into()),]
        );
    }

    #[test]
    fn sys_recording_resolves_fd_targets() {
        let dir = tempfile::tempdir().unwrap();
        let fd: OwnedFd = std::fs::File::open(dir.path()).unwrap().into();
        let sys = RecordingSyscall::new();
        sys.mount(None, &proc_fd_path(&fd), Some("tmpfs"), MsFlags::empty(), None).unwrap();
        match &sys.calls()[0] {
            Call::Mount { resolved_target, .. } => assert_eq!(resolved_target.as_deref(), Some(dir.path())),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn sys_fork_refused_when_multithreaded() {
        // The test harness runs tests on worker threads, so this process has several threads.
        let _keep = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(200)));
        assert_eq!(fork_single_threaded().err(), Some(Errno::EDEADLK));
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // a fixture file
    fn sys_xattrs_through_open_and_path_fds() {
        use nix::fcntl::OFlag;
        use nix::sys::stat::Mode;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let open = |flags| nix::fcntl::openat(AT_FDCWD, &file, flags | OFlag::O_CLOEXEC, Mode::empty()).unwrap();
        let (fd, path_fd) = (open(OFlag::O_RDONLY), open(OFlag::O_PATH | OFlag::O_NOFOLLOW));
        if path_fd_setxattr(path_fd.as_fd(), c"user.a", b"1").is_err() {
            eprintln!("skipped: the temp dir's filesystem keeps no user.* xattrs");
            return;
        }
        fsetxattr(fd.as_fd(), c"user.b", b"2").unwrap();
        let names = |v: Vec<std::ffi::CString>| {
            let mut v: Vec<String> = v.into_iter().map(|n| n.into_string().unwrap()).collect();
            v.sort();
            v
        };
        assert_eq!(names(flistxattr(fd.as_fd()).unwrap()), ["user.a", "user.b"]);
        assert_eq!(names(path_fd_listxattr(path_fd.as_fd()).unwrap()), ["user.a", "user.b"]);
        assert_eq!(path_fd_getxattr(path_fd.as_fd(), c"user.b").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(path_fd_getxattr(path_fd.as_fd(), c"user.none").unwrap(), None);
        fremovexattr(fd.as_fd(), c"user.a").unwrap();
        fremovexattr(fd.as_fd(), c"user.a").unwrap();
        assert_eq!(names(flistxattr(fd.as_fd()).unwrap()), ["user.b"]);
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // fixture files
    fn sys_ficlone_shares_or_says_why_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("src"), b"data").unwrap();
        let src = std::fs::File::open(dir.path().join("src")).unwrap();
        let dst = std::fs::File::create(dir.path().join("dst")).unwrap();
        match ficlone(dst.as_fd(), src.as_fd()) {
            Ok(()) => assert_eq!(std::fs::read(dir.path().join("dst")).unwrap(), b"data"),
            Err(err) => {
                let errno = Errno::from_raw(err.raw_os_error().unwrap());
                assert!(matches!(errno, Errno::EOPNOTSUPP | Errno::ENOTTY | Errno::EINVAL | Errno::EXDEV), "{err}");
            }
        }
    }

    #[test]
    fn sys_take_inherited_fd_rejects_std_streams_and_closed_fds() {
        assert!(take_inherited_fd(0).is_none());
        assert!(take_inherited_fd(2).is_none());
        assert!(take_inherited_fd(1_000_000).is_none());
    }
}
