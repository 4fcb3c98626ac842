//! Scratch directories on the host for the hooks of one create
//! ([`HostApi::scratch_dir`](lxc_tmpl_plugin_api::HostApi::scratch_dir)).
//!
//! A plugin never forks, so it cannot `mktemp -d` and `rm -rf` itself (sshd
//! did both through host commands to give `ssh-keygen` somewhere to write).
//! The host makes the directories instead and owns them for the whole create:
//! a [`Bridge`](super::bridge::Bridge) lives for one hook only, while a dir
//! made in `configure` may be read in `finalize`. [`Scratch`] belongs to the
//! [`Creator`](crate::create::Creator); it creates one private root lazily
//! (`tempfile`: a random name, created with mode 0700) and hands
//! out fresh 0700 subdirectories of it. [`Scratch::end`] removes the root
//! when a create ends, on success or failure; a signal makes the running step
//! fail, so it is the same path. [`Drop`] covers a panic. A SIGKILL or a
//! power loss leaves the root behind (it may hold private keys), so each root
//! holds a `.held` file under an exclusive `flock` for as long as its create
//! runs, and the next create that makes a root removes every root of ours
//! whose `.held` nobody holds any more (the kernel drops the lock with the
//! process).

// Host paths the host itself chose (a fresh 0700 dir under $TMPDIR), never rootfs paths.
#![allow(clippy::disallowed_methods)]

use std::cell::RefCell;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

/// Why a scratch directory could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    /// The private root under `$TMPDIR` could not be created.
    #[error("cannot create a private scratch directory in {tmpdir}")]
    Root {
        /// `$TMPDIR` (or `/tmp`).
        tmpdir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A subdirectory of the root could not be created.
    #[error("cannot create scratch directory {path}")]
    Dir {
        /// The directory.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The scratch directories of one create; see the [module docs](self).
#[derive(Debug, Default)]
pub struct Scratch {
    state: RefCell<State>,
}

#[derive(Debug, Default)]
struct State {
    root: Option<tempfile::TempDir>,
    /// The locked `.held` file of `root`.
    held: Option<std::fs::File>,
    made: u32,
}

/// The file in a root whose `flock` says a live create owns the root.
const HELD: &str = ".held";

/// Prefix of the private root, so an operator can tell what left one behind.
const ROOT_PREFIX: &str = "lxc-tmpl-scratch.";

impl Scratch {
    /// No directories yet; nothing is created until the first [`Scratch::make_dir`].
    pub fn new() -> Scratch {
        Scratch::default()
    }

    /// A new empty directory, mode 0700, inside this create's private root.
    pub fn make_dir(&self) -> Result<PathBuf, ScratchError> {
        let mut state = self.state.borrow_mut();
        if state.root.is_none() {
            let tmpdir = std::env::temp_dir();
            // A random name that no one can pre-create for us (tempfile retries on EEXIST
            // rather than reusing), and mode 0700 from mkdir(2) on (tempfile's default is
            // 0777 less the umask).
            let root = tempfile::Builder::new()
                .prefix(ROOT_PREFIX)
                .permissions(std::fs::Permissions::from_mode(0o700))
                .tempdir_in(&tmpdir)
                .map_err(|source| ScratchError::Root { tmpdir: tmpdir.clone(), source })?;
            let held = std::fs::File::create_new(root.path().join(HELD))
                .and_then(|file| file.try_lock().map_err(std::io::Error::other).map(|()| file))
                .map_err(|source| ScratchError::Root { tmpdir: tmpdir.clone(), source })?;
            remove_abandoned_roots(&tmpdir, root.path());
            state.root = Some(root);
            state.held = Some(held);
        }
        state.made += 1;
        let path = state.root.as_ref().map(|root| root.path().join(state.made.to_string())).unwrap_or_default();
        // Under the umask, which can only remove bits: never more than 0700.
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|source| ScratchError::Dir { path: path.clone(), source })?;
        Ok(path)
    }

    /// The private root, if a directory was made in this create.
    pub fn root(&self) -> Option<PathBuf> {
        self.state.borrow().root.as_ref().map(|root| root.path().to_owned())
    }

    /// Ends the create's use of scratch space: removes the root and
    /// everything in it. Errors say which directory is left behind.
    pub fn end(&self) -> Result<(), std::io::Error> {
        let mut state = self.state.borrow_mut();
        state.made = 0;
        state.held = None;
        match state.root.take() {
            Some(root) => {
                let path = root.path().to_owned();
                root.close().map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
            }
            None => Ok(()),
        }
    }
}

/// Removes the roots in `tmpdir` that a killed create left: ours (owned by
/// this user, real directories), with a `.held` that nobody holds locked.
/// A root without `.held` is one being made right now; it is left alone.
/// Best effort: a root that cannot be judged or removed stays.
fn remove_abandoned_roots(tmpdir: &std::path::Path, own: &std::path::Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(tmpdir) else { return };
    let euid = nix::unistd::geteuid().as_raw();
    for entry in entries.flatten() {
        let path = entry.path();
        let ours = entry.file_name().to_string_lossy().starts_with(ROOT_PREFIX)
            && path != own
            && std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir() && m.uid() == euid);
        if !ours {
            continue;
        }
        let abandoned = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path.join(HELD))
            .is_ok_and(|held| held.try_lock().is_ok());
        if abandoned {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirs_are_private_fresh_and_removed_at_the_end() {
        let scratch = Scratch::new();
        assert_eq!(scratch.root(), None, "nothing is made before it is asked for");
        let a = scratch.make_dir().unwrap();
        let b = scratch.make_dir().unwrap();
        assert_ne!(a, b);
        let root = scratch.root().unwrap();
        assert!(a.starts_with(&root) && b.starts_with(&root));
        for dir in [&root, &a] {
            assert_eq!(std::fs::metadata(dir).unwrap().permissions().mode() & 0o7777, 0o700, "{dir:?}");
        }
        std::fs::write(a.join("key"), b"secret").unwrap();
        scratch.end().unwrap();
        assert!(!root.exists());
        // A later create starts over with a new root.
        let c = scratch.make_dir().unwrap();
        assert!(!c.starts_with(&root));
        drop(scratch);
        assert!(!c.exists(), "dropped (a panic) removes it too");
    }

    #[test]
    fn roots_of_killed_creates_go_live_ones_stay() {
        // A create that is still running (its .held locked) and one that was killed.
        let live = Scratch::new();
        let live_dir = live.make_dir().unwrap();
        let killed = tempfile::Builder::new().prefix(ROOT_PREFIX).tempdir_in(std::env::temp_dir()).unwrap().keep();
        std::fs::write(killed.join(HELD), "").unwrap();
        std::fs::write(killed.join("ssh_host_ed25519_key"), "private").unwrap();

        let next = Scratch::new();
        next.make_dir().unwrap();
        assert!(!killed.exists(), "the killed create's root (and its key) is left behind");
        assert!(live_dir.exists(), "a running create's root was removed");
        live.end().unwrap();
        next.end().unwrap();
    }
}
