//! Advisory file locks (flock) that say who holds them.
//!
//! One lock per cache entry: exclusive while the entry is built or flushed,
//! shared while containers copy from it, so creates from a warm cache run in
//! parallel and none ever sees a half-built rootfs. An exclusive holder writes
//! its pid and purpose into the lock file so that a waiter can say what it is
//! waiting for instead of hanging silently.

use std::{
    fs::{File, OpenOptions},
    io::{self, Read, Seek, Write},
    path::{Path, PathBuf},
};

use thiserror::Error;

/// A lock file could not be opened or locked.
#[derive(Debug, Error)]
#[error("cannot lock {path}: {source}")]
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
                match mode {
                    LockMode::Shared => file.lock_shared(),
                    LockMode::Exclusive => file.lock(),
                }
                .map_err(err)?;
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
        writeln!(self.file, "pid {}: {purpose}", std::process::id())
    }
}

fn holder_of(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind().and_then(|_| file.read_to_string(&mut text));
    let text = text.trim();
    if text.is_empty() { "another lxc-tmpl process".to_owned() } else { text.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{sync::mpsc, thread, time::Duration};

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
        assert!(holder.contains("building cache test"), "{holder}");
        assert!(holder.contains(&std::process::id().to_string()), "{holder}");
        drop(held);
        waiter.join().unwrap();
    }
}
