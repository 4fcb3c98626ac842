//! Advisory file locks (flock) that say who holds them.
//!
//! One lock per cache entry: exclusive while the entry is built or flushed,
//! shared while containers copy from it, so creates from a warm cache run in
//! parallel and none ever sees a half-built rootfs. An exclusive holder writes
//! its purpose into the lock file, and a waiter finds the holders' PIDs in
//! `/proc/locks` (proc(5)), so that it can say what it is waiting for instead of
//! hanging silently.
//!
//! Waiting polls (`try_lock` every 100 ms) rather than blocking in `flock(2)`,
//! so that SIGINT, SIGTERM and SIGHUP (see [`crate::interrupt`]) end a wait at
//! once.

// Lock files live in the cache dir and the lxcpath, host paths root chose.
#![allow(clippy::disallowed_methods)]

use std::{
    fs::{File, OpenOptions},
    io::{self, Read, Seek, Write},
    os::{
        fd::{AsFd, BorrowedFd},
        unix::fs::MetadataExt,
    },
    path::{Path, PathBuf},
    time::Duration,
};

use thiserror::Error;

/// A lock file could not be opened or locked.
#[derive(Debug, Error)]
#[error("cannot lock {path}")]
pub struct LockError {
    /// The lock file.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

/// Shared (many readers) or exclusive (one writer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Many holders at once; excludes exclusive holders.
    Shared,
    /// One holder; excludes everyone else.
    Exclusive,
}

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
    mode: LockMode,
}

impl FileLock {
    /// Takes the lock at `path` (created if missing), blocking while someone
    /// else holds it. Before blocking it calls `on_wait` with a description of
    /// the holder, e.g. `pid 4242: building cache ubuntu jammy amd64`.
    pub fn acquire(path: &Path, mode: LockMode, purpose: &str, on_wait: impl FnOnce(&str)) -> Result<Self, LockError> {
        let err = |source| LockError { path: path.to_owned(), source };
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(err)?;
        let attempt = match mode {
            LockMode::Shared => file.try_lock_shared(),
            LockMode::Exclusive => file.try_lock(),
        };
        match attempt {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                on_wait(&holder_of(&mut file));
                wait_for_lock(&file, mode).map_err(err)?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(err(e)),
        }
        let mut lock = FileLock { file, path: path.to_owned(), mode };
        if mode == LockMode::Exclusive {
            lock.record_holder(purpose).map_err(err)?;
        }
        Ok(lock)
    }

    /// Changes the mode of a held lock (flock converts in place; the kernel
    /// may let another waiter in between, so callers re-check what they guard).
    pub fn set_mode(&mut self, mode: LockMode, purpose: &str) -> Result<(), LockError> {
        let path = self.path.clone();
        let err = |source| LockError { path: path.clone(), source };
        match mode {
            LockMode::Shared => self.file.lock_shared().map_err(err)?,
            LockMode::Exclusive => {
                self.file.lock().map_err(err)?;
                self.record_holder(purpose).map_err(err)?;
            }
        }
        self.mode = mode;
        Ok(())
    }

    /// The mode held.
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    fn record_holder(&mut self, purpose: &str) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        writeln!(self.file, "{purpose}")
    }
}

impl AsFd for FileLock {
    /// The locked file: a process that inherits it holds the lock too, until the last
    /// descriptor of it is closed (flock(2)).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// Polls until `file` can be locked in `mode`, giving up when a signal interrupts lxc-tmpl.
fn wait_for_lock(file: &File, mode: LockMode) -> io::Result<()> {
    loop {
        let attempt = match mode {
            LockMode::Shared => file.try_lock_shared(),
            LockMode::Exclusive => file.try_lock(),
        };
        match attempt {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        crate::interrupt::check().map_err(io::Error::other)?;
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Who holds the lock on `file`: `pid 4242 (building the debian bookworm amd64 cache)` for an
/// exclusive holder, `pids 17, 18` for shared holders.
fn holder_of(file: &mut File) -> String {
    let mut purpose = String::new();
    let _ = file.rewind().and_then(|_| file.read_to_string(&mut purpose));
    let (pids, exclusive) = file.metadata().map(|m| lock_holders(&m)).unwrap_or_default();
    let purpose = purpose.trim();
    let who = match pids.as_slice() {
        [] => "another lxc-tmpl process".to_owned(),
        [pid] => format!("pid {pid}"),
        many => format!("pids {}", many.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")),
    };
    if exclusive && !purpose.is_empty() { format!("{who} ({purpose})") } else { who }
}

/// The PIDs holding flock(2) locks on the file `meta` describes, from `/proc/locks`, and
/// whether one of them holds it exclusively.
fn lock_holders(meta: &std::fs::Metadata) -> (Vec<u32>, bool) {
    let text = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    let (major, minor) = (nix::sys::stat::major(meta.dev()), nix::sys::stat::minor(meta.dev()));
    let inode = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    parse_proc_locks(&text, &inode)
}

/// The `FLOCK` lines of `/proc/locks` text for `inode` (`MAJ:MIN:INO`, hex device numbers).
/// A line: `1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234 0 EOF`; waiters are marked `->` and skipped.
fn parse_proc_locks(text: &str, inode: &str) -> (Vec<u32>, bool) {
    let mut pids = Vec::new();
    let mut exclusive = false;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.get(1) != Some(&"FLOCK") || words.get(5) != Some(&inode) {
            continue;
        }
        if let Some(pid) = words.get(4).and_then(|p| p.parse().ok()) {
            exclusive |= words.get(3) == Some(&"WRITE");
            if !pids.contains(&pid) {
                pids.push(pid);
            }
        }
    }
    (pids, exclusive)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{sync::mpsc, thread};

    #[test]
    fn proc_locks_lines_name_the_holders() {
        let text = "1: FLOCK  ADVISORY  READ  17 fd:01:99 0 EOF\n\
                    2: FLOCK  ADVISORY  READ  18 fd:01:99 0 EOF\n\
                    2: -> FLOCK  ADVISORY  WRITE 19 fd:01:99 0 EOF\n\
                    3: POSIX  ADVISORY  WRITE 20 fd:01:99 0 EOF\n\
                    4: FLOCK  ADVISORY  WRITE 21 fd:01:100 0 EOF\n";
        assert_eq!(parse_proc_locks(text, "fd:01:99"), (vec![17, 18], false));
        assert_eq!(parse_proc_locks(text, "fd:01:100"), (vec![21], true));
        assert_eq!(parse_proc_locks(text, "fd:01:101"), (vec![], false));
    }

    #[test]
    fn shared_locks_coexist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let _a = FileLock::acquire(&path, LockMode::Shared, "a", |_| panic!("must not wait")).unwrap();
        let _b = FileLock::acquire(&path, LockMode::Shared, "b", |_| panic!("must not wait")).unwrap();
    }

    #[test]
    fn exclusive_waits_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let held = FileLock::acquire(&path, LockMode::Exclusive, "building cache test", |_| {}).unwrap();
        let (tx, rx) = mpsc::channel();
        let waiter_path = path.clone();
        let waiter = thread::spawn(move || {
            let _lock = FileLock::acquire(&waiter_path, LockMode::Shared, "copy", |holder| {
                tx.send(holder.to_owned()).unwrap();
            })
            .unwrap();
        });
        let holder = rx.recv_timeout(Duration::from_secs(10)).expect("waiter should report the holder");
        assert!(holder.contains("(building cache test)"), "{holder}");
        assert!(holder.contains(&std::process::id().to_string()), "{holder}");
        drop(held);
        waiter.join().unwrap();
    }
}
