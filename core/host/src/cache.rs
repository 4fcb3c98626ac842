//! The rootfs cache: one directory per cache key, holding generations of the
//! rootfs. Each generation is built in a staging directory and renamed into
//! place only when complete, and never changes after that.
//!
//! Layout under the cache dir (`$LXC_CACHE_PATH`, `/var/cache/lxc-tmpl` by default):
//!
//! ```text
//! <distro>/<hash>.lock               flock: exclusive to build/flush/purge, shared to use
//! <distro>/<hash>/key                the full key text, compared with the wanted key before every use
//! <distro>/<hash>/current            symlink to the generation new containers use
//! <distro>/<hash>/gen.<id>/rootfs/   a finished rootfs
//! <distro>/<hash>/gen.<id>/rootfs.tar the same, as a tar with numeric owners, for unprivileged lxc-create
//! <distro>/<hash>/gen.<id>/users/    one file per overlay container using it as its lower layer
//! <distro>/<hash>/staging.<pid>/     a build in progress (or a killed one, removed by the next builder)
//! <distro>/packages/<phash>/         downloaded packages a plugin keeps between builds ([`package_dir`])
//! <distro>/packages/<phash>.lock     flock: exclusive while a build uses them
//! ```
//!
//! Generations exist for the overlay backing store: an overlay container's
//! config names its generation's `rootfs` as the read-only lower layer for
//! good, so that directory must neither change nor go away while the
//! container exists. `--flush-cache` therefore builds a new generation and
//! moves `current` to it; `cache purge` unlinks `current`; and a generation
//! that is not current is removed only once no container in its `users/`
//! still exists and names it ([`generation_users`]). A container made by
//! copying (`dir`, `btrfs`) does not depend on the cache after its create.
//!
//! Inside the user namespace of an unprivileged lxc-create, files owned by
//! ids the namespace does not map read as `nobody`, so the rootfs cannot be
//! copied with its owners; the tar, written by real root when the entry is
//! built, is unpacked there instead (as lxc-download does with its images).
//!
//! `<hash>` is the SHA-256 of the key, in hex. The name alone does not prove
//! what an entry holds (anyone who can write the cache dir can name a
//! directory), so the stored `key` must equal the wanted key: an entry whose
//! key differs is refused, never used as if it matched.
//!
//! A killed build leaves only a `staging.*` directory, which nothing mistakes
//! for a cache: a generation is complete once renamed to `gen.<id>`, and in
//! use once `current` (replaced by one `rename(2)`) names it.
//!
//! The tools (tar, btrfs) run through a [`ToolRunner`]: the host's
//! [`Runner`] in production, which gives each its own PID namespace that dies
//! with lxc-tmpl. A process that reads out of an entry holds the entry's
//! shared lock itself (the lock's descriptor is inherited by it), so a flush
//! or purge can never remove a cache that a copy, even an orphaned one, still
//! reads. The `dir` backing store's copy runs in lxc-tmpl itself
//! (`crate::backing::copy`), under the lock [`ReadyCache`] holds.

// Cache bookkeeping (entry dirs, key files, staging, tars) under the cache dir root chose; the
// rootfs inside an entry is only ever written by the build's hooks (through `Rootfs`) and the tools.
#![allow(clippy::disallowed_methods)]

use std::{
    fs, io,
    os::fd::{AsFd, BorrowedFd},
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::lock::{FileLock, LockError, LockMode};
use crate::runner::{HostCommand, RunOutput, Runner};

/// A cache operation failed.
#[derive(Debug, Error)]
pub enum CacheError {
    /// Locking failed.
    #[error(transparent)]
    Lock(#[from] LockError),
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
    /// A distro name that is no plain name (it would leave the cache dir).
    #[error("'{0}' is not a distro name: use the name lxc-tmpl list shows")]
    BadDistro(String),
    /// The entry's stored key is not the key it is named after.
    #[error(
        "cache entry {dir} holds key '{stored}', not the wanted key '{wanted}': the entry was forged or damaged; \
         rebuild it with --flush-cache or remove it with `lxc-tmpl cache purge`"
    )]
    KeyMismatch {
        /// The entry's directory.
        dir: PathBuf,
        /// What its `key` file says (`<missing>` without one).
        stored: String,
        /// The key the create asked for.
        wanted: String,
    },
    /// The entry does not exist and cannot be built here.
    #[error(
        "the {label} rootfs cache ({dir}) is not built, and it cannot be built inside the user namespace of an \
         unprivileged lxc-create: build it once as root with `lxc-tmpl create` of an unprivileged container \
         (-f with your lxc.idmap config) and the same distro options"
    )]
    NotBuilt {
        /// `<distro> <key>`.
        label: String,
        /// The entry's directory.
        dir: PathBuf,
    },
    /// The entry has no tar for an unprivileged lxc-create to unpack.
    #[error(
        "the rootfs cache {dir} has no rootfs.tar, which an unprivileged lxc-create unpacks: run `lxc-tmpl create` \
         once as root for an unprivileged container (-f with your lxc.idmap config) with the same distro options; \
         that writes it"
    )]
    NoTar {
        /// The generation's directory.
        dir: PathBuf,
    },
    /// The rootfs directory (a btrfs subvolume) of a build could not be made.
    #[error(transparent)]
    Subvolume(#[from] crate::backing::btrfs::BtrfsError),
    /// Copying the cached rootfs out failed.
    #[error("copying {from} to {to} failed: {detail}")]
    Copy {
        /// Cached rootfs.
        from: PathBuf,
        /// Container rootfs.
        to: PathBuf,
        /// What `cp` said.
        detail: String,
    },
}

type Result<T> = std::result::Result<T, CacheError>;

/// Runs the tools (`tar`, `btrfs`) of the cache.
pub trait ToolRunner {
    /// Runs `argv` on the host; every process of the run keeps `hold` open until it exits.
    ///
    /// # Errors
    /// When the tool could not be run at all (a tool that runs and fails is an `Ok` output).
    fn run_tool(&self, argv: &[String], hold: Option<BorrowedFd<'_>>) -> io::Result<RunOutput>;
}

impl ToolRunner for Runner {
    fn run_tool(&self, argv: &[String], hold: Option<BorrowedFd<'_>>) -> io::Result<RunOutput> {
        self.run_on_host(&HostCommand { argv, env: &[], stdin: b"", hold }).map_err(io::Error::other)
    }
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CacheError + 'a {
    move |source| CacheError::Io { what, path: path.to_owned(), source }
}

/// One cache entry, identified by distro and key.
#[derive(Debug, Clone)]
pub struct CacheEntry {
    dir: PathBuf,
    lock_path: PathBuf,
    key: String,
    label: String,
}

/// A cached rootfs that is complete and held under a shared lock: it cannot
/// be flushed or rebuilt while this value lives.
#[derive(Debug)]
pub struct ReadyCache {
    /// The cached rootfs: `<entry>/gen.<id>/rootfs`, a path that holds the
    /// same tree for as long as the generation exists.
    pub rootfs: PathBuf,
    /// Whether this call built it (false: it was already there).
    pub built: bool,
    lock: FileLock,
}

impl ReadyCache {
    /// The descriptor of the shared lock, for a copy process to hold.
    pub fn lock_fd(&self) -> BorrowedFd<'_> {
        self.lock.as_fd()
    }

    /// Makes sure the generation has `rootfs.tar`, the copy an unprivileged
    /// lxc-create unpacks in its user namespace (where files of unmapped ids
    /// cannot be read): packed by real root on the first create of an
    /// unprivileged container from this generation, and only then, so that
    /// an entry is no bigger than its rootfs on a host that never needs it.
    /// Returns whether this call packed it. One create packs at a time (an
    /// flock on `rootfs.tar.lock`); whoever holds it first removes what a
    /// killed packer left.
    ///
    /// # Errors
    /// What tar said, or the I/O or lock error.
    pub fn ensure_tar(&self, tools: &dyn ToolRunner) -> Result<bool> {
        let tar = self.generation().join("rootfs.tar");
        if tar.is_file() {
            return Ok(false);
        }
        let _packing = FileLock::acquire(
            &self.generation().join("rootfs.tar.lock"),
            LockMode::Exclusive,
            "packing the cache for unprivileged lxc-create",
            |_| {},
        )?;
        if tar.is_file() {
            return Ok(false);
        }
        for entry in fs::read_dir(self.generation()).map_err(io_err("cannot read", self.generation()))? {
            let path = entry.map_err(io_err("cannot read", self.generation()))?.path();
            if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("rootfs.tar.partial.")) {
                fs::remove_file(&path).map_err(io_err("cannot remove", &path))?;
            }
        }
        pack_rootfs(tools, &self.rootfs, &tar)?;
        Ok(true)
    }

    /// The generation directory (`<entry>/gen.<id>`).
    pub fn generation(&self) -> &Path {
        self.rootfs.parent().expect("a generation's rootfs is inside it")
    }

    /// Records that the container in `container_dir` uses this generation as
    /// its overlay lower layer, so that no flush or purge removes it while
    /// that container exists. Call it before the container's config exists:
    /// until then the container directory alone keeps the generation.
    ///
    /// # Errors
    /// [`CacheError::Io`] when the record cannot be written.
    pub fn add_user(&self, container_dir: &Path) -> Result<()> {
        let users = self.generation().join(USERS);
        fs::create_dir_all(&users).map_err(io_err("cannot create", &users))?;
        let name: String =
            Sha256::digest(container_dir.as_os_str().as_encoded_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        let record = users.join(name);
        let text = container_dir.to_str().ok_or_else(|| CacheError::Io {
            what: "container directory is not UTF-8",
            path: container_dir.to_owned(),
            source: io::Error::from(io::ErrorKind::InvalidData),
        })?;
        fs::write(&record, format!("{text}\n")).map_err(io_err("cannot write", &record))
    }
}

/// The directory in a generation that records its overlay users.
const USERS: &str = "users";

/// The containers that still use `generation` (`<entry>/gen.<id>`) as their
/// overlay lower layer; records of containers that are gone (destroyed, or a
/// create that rolled back) or whose config names another rootfs are removed.
/// A container directory without a config yet is a create in progress, and
/// counts.
///
/// # Errors
/// [`CacheError::Io`] when the records cannot be read or a stale one removed.
pub fn generation_users(generation: &Path) -> Result<Vec<PathBuf>> {
    let users = generation.join(USERS);
    let records = match fs::read_dir(&users) {
        Ok(records) => records,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("cannot read", &users)(e)),
    };
    let lower = generation.join("rootfs");
    let mut live = Vec::new();
    for record in records {
        let record = record.map_err(io_err("cannot read", &users))?.path();
        let text = fs::read_to_string(&record).map_err(io_err("cannot read", &record))?;
        let container = PathBuf::from(text.trim_end_matches('\n'));
        let in_use = match fs::read_to_string(container.join("config")) {
            Ok(config) => lxc_rootfs_lower_layers(&config).any(|layer| Path::new(layer) == lower),
            Err(e) if e.kind() == io::ErrorKind::NotFound => container.is_dir(),
            Err(e) => return Err(io_err("cannot read", &container.join("config"))(e)),
        };
        if in_use {
            live.push(container);
        } else {
            fs::remove_file(&record).map_err(io_err("cannot remove", &record))?;
        }
    }
    Ok(live)
}

/// The lower layers of every `lxc.rootfs.path = overlay:LOWER[:LOWER...]:UPPER`
/// line in a config (lxc.container.conf(5); `overlayfs:` is the older spelling).
fn lxc_rootfs_lower_layers(config: &str) -> impl Iterator<Item = &str> {
    config
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once('=')?;
            matches!(key.trim(), "lxc.rootfs.path" | "lxc.rootfs").then_some(value.trim())
        })
        .filter_map(|value| value.strip_prefix("overlay:").or_else(|| value.strip_prefix("overlayfs:")))
        .flat_map(|layers| {
            let layers: Vec<&str> = layers.split(':').collect();
            // The last layer is the upper (the container's own) directory.
            layers[..layers.len().saturating_sub(1)].to_vec()
        })
}

impl CacheEntry {
    /// The entry of `key` for `distro` under `cache_dir`.
    pub fn new(cache_dir: &Path, distro: &str, key: &str) -> Self {
        let hash: String = Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        let distro_dir = cache_dir.join(distro);
        CacheEntry {
            dir: distro_dir.join(&hash),
            lock_path: distro_dir.join(format!("{hash}.lock")),
            key: key.to_owned(),
            label: label(distro, key, &hash[..12]),
        }
    }

    /// `debian bookworm amd64`: how messages name the entry.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The entry's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The generation `current` names, when it is complete.
    fn current_generation(&self) -> Result<Option<PathBuf>> {
        let link = self.dir.join("current");
        let target = match fs::read_link(&link) {
            Ok(target) => target,
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => return Ok(None),
            Err(e) => return Err(io_err("cannot read", &link)(e)),
        };
        // Only a sibling `gen.*` counts: the link is ours, but the cache dir may be shared.
        let name = target.to_str().filter(|n| n.starts_with("gen.") && !n.contains('/'));
        let generation = name.map(|n| self.dir.join(n));
        Ok(generation.filter(|g| g.join("rootfs").is_dir()))
    }

    /// Points `current` at `generation` with one `rename(2)`.
    fn set_current(&self, generation: &Path) -> Result<()> {
        let name = generation.file_name().expect("a generation has a name");
        let staged = self.dir.join("current.new");
        let _ = fs::remove_file(&staged);
        std::os::unix::fs::symlink(name, &staged).map_err(io_err("cannot create", &staged))?;
        fs::rename(&staged, self.dir.join("current")).map_err(io_err("cannot move into place", &staged))
    }

    /// Makes sure the entry is complete, building it with `build` (given an
    /// empty directory to fill with the rootfs) if needed and `can_build`,
    /// and returns it under a shared lock.
    /// With `flush`, a new generation is built even if one exists; the old
    /// one goes once nothing uses it. `on_wait` is told who holds the lock
    /// whenever this call has to wait.
    pub fn ensure<E: From<CacheError>>(
        &self,
        tools: &dyn ToolRunner,
        flush: bool,
        can_build: bool,
        mut on_wait: impl FnMut(&str),
        build: impl FnOnce(&Path) -> std::result::Result<(), E>,
    ) -> std::result::Result<ReadyCache, E> {
        let parent = self.dir.parent().expect("cache entry has a parent");
        fs::create_dir_all(parent).map_err(io_err("cannot create cache directory", parent))?;
        let lock_err = |e: LockError| E::from(CacheError::Lock(e));
        let building = format!("building the {} cache", self.label);
        if !flush {
            let lock = FileLock::acquire(&self.lock_path, LockMode::Shared, "copying from it", &mut on_wait)
                .map_err(lock_err)?;
            if let Some(generation) = self.current_generation()? {
                self.check_key()?;
                return Ok(ReadyCache { rootfs: generation.join("rootfs"), built: false, lock });
            }
        }
        if !can_build {
            return Err(CacheError::NotBuilt { label: self.label.clone(), dir: self.dir.clone() }.into());
        }
        let mut lock =
            FileLock::acquire(&self.lock_path, LockMode::Exclusive, &building, &mut on_wait).map_err(lock_err)?;
        self.adopt_unversioned()?;
        if flush {
            let _ = fs::remove_file(self.dir.join("current"));
        }
        // Someone may have built it while we waited for the exclusive lock.
        let (generation, built) = match self.current_generation()? {
            Some(generation) => {
                self.check_key()?;
                (generation, false)
            }
            None => (self.build_into_place(tools, build)?, true),
        };
        self.remove_unused_generations()?;
        lock.set_mode(LockMode::Shared, "copying from it").map_err(lock_err)?;
        Ok(ReadyCache { rootfs: generation.join("rootfs"), built, lock })
    }

    /// Builds a new generation and makes it current; returns its directory.
    fn build_into_place<E: From<CacheError>>(
        &self,
        tools: &dyn ToolRunner,
        build: impl FnOnce(&Path) -> std::result::Result<(), E>,
    ) -> std::result::Result<PathBuf, E> {
        fs::create_dir_all(&self.dir).map_err(io_err("cannot create cache entry", &self.dir))?;
        self.remove_stale_staging()?;
        let staging = self.dir.join(format!("staging.{}", std::process::id()));
        let rootfs = staging.join("rootfs");
        fs::create_dir(&staging).map_err(io_err("cannot create staging directory", &staging))?;
        // A subvolume on btrfs, so that containers can be snapshots of it.
        if let Err(e) = crate::backing::btrfs::make_rootfs_dir(tools, &rootfs) {
            let _ = remove_if_present(&staging);
            return Err(CacheError::from(e).into());
        }
        // From here on the staging dir is ours to remove if the build fails.
        if let Err(e) = build(&rootfs) {
            let _ = remove_if_present(&staging);
            // An entry that never held a rootfs goes too (the lock file
            // stays: another create may be waiting on it).
            if !self.has_generations() {
                let _ = fs::remove_file(self.dir.join("key"));
                let _ = fs::remove_dir(&self.dir);
            }
            return Err(e);
        }
        let generation = self.new_generation_path();
        let finish = || -> Result<()> {
            // The build may have skipped per-file fsyncs (the Debian family runs dpkg with
            // force-unsafe-io); one syncfs(2) makes the rootfs durable before a rename
            // makes it a generation, so a power loss never leaves an entry of empty files.
            crate::sys::syncfs(&rootfs).map_err(io_err("cannot sync the new rootfs", &rootfs))?;
            fs::write(self.dir.join("key"), format!("{}\n", self.key)).map_err(io_err("cannot write", &self.dir))?;
            fs::rename(&staging, &generation).map_err(io_err("cannot move into place", &staging))?;
            self.set_current(&generation)
        };
        // A failed finish leaves no staging dir behind.
        finish().inspect_err(|_| {
            let _ = remove_if_present(&staging);
        })?;
        Ok(generation)
    }

    /// The `gen.*` directories of the entry.
    fn generations(&self) -> Result<Vec<PathBuf>> {
        let mut found = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
            Err(e) => return Err(io_err("cannot read", &self.dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err("cannot read", &self.dir))?;
            if entry.file_name().to_string_lossy().starts_with("gen.") {
                found.push(entry.path());
            }
        }
        found.sort();
        Ok(found)
    }

    fn has_generations(&self) -> bool {
        self.generations().is_ok_and(|g| !g.is_empty())
    }

    /// Removes every generation that is not current and that no container
    /// uses. Returns the generations kept for their users. Only an
    /// exclusive holder calls this.
    fn remove_unused_generations(&self) -> Result<Vec<(PathBuf, Vec<PathBuf>)>> {
        let current = self.current_generation()?;
        let mut kept = Vec::new();
        for generation in self.generations()? {
            if Some(&generation) == current.as_ref() {
                continue;
            }
            let users = generation_users(&generation)?;
            if users.is_empty() {
                remove_if_present(&generation)?;
            } else {
                kept.push((generation, users));
            }
        }
        Ok(kept)
    }

    /// An entry built before generations existed holds `rootfs` (and
    /// `rootfs.tar`) directly: move them into a generation of their own.
    fn adopt_unversioned(&self) -> Result<()> {
        let old = self.dir.join("rootfs");
        if !old.is_dir() || self.current_generation()?.is_some() {
            return Ok(());
        }
        let generation = self.new_generation_path();
        fs::create_dir(&generation).map_err(io_err("cannot create", &generation))?;
        fs::rename(&old, generation.join("rootfs")).map_err(io_err("cannot move into place", &old))?;
        let tar = self.dir.join("rootfs.tar");
        if tar.is_file() {
            fs::rename(&tar, generation.join("rootfs.tar")).map_err(io_err("cannot move into place", &tar))?;
        }
        self.set_current(&generation)
    }

    /// Fails unless the entry's `key` file holds exactly this entry's key.
    fn check_key(&self) -> Result<()> {
        let path = self.dir.join("key");
        let stored = match fs::read_to_string(&path) {
            Ok(text) => text.strip_suffix('\n').unwrap_or(&text).to_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => "<missing>".to_owned(),
            Err(e) => return Err(io_err("cannot read", &path)(e)),
        };
        if stored == self.key {
            Ok(())
        } else {
            Err(CacheError::KeyMismatch { dir: self.dir.clone(), stored, wanted: self.key.clone() })
        }
    }

    /// Builds that were killed leave `staging.*`; only an exclusive holder
    /// calls this, so none of them is still running.
    fn remove_stale_staging(&self) -> Result<()> {
        for entry in fs::read_dir(&self.dir).map_err(io_err("cannot read", &self.dir))? {
            let entry = entry.map_err(io_err("cannot read", &self.dir))?;
            if entry.file_name().to_string_lossy().starts_with("staging.") {
                remove_if_present(&entry.path())?;
            }
        }
        Ok(())
    }
}

impl CacheEntry {
    /// A name for a new generation: `gen.<build time, unix seconds>.<n>`,
    /// unused in the entry. Only an exclusive holder calls this.
    fn new_generation_path(&self) -> PathBuf {
        let seconds =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        (0..)
            .map(|n| self.dir.join(format!("gen.{seconds}.{n}")))
            .find(|path| !path.exists())
            .expect("an unused generation name")
    }
}

/// A directory of downloaded packages that outlives cache entries, so that a
/// rebuild (`--flush-cache`, another variant of the same release) fetches
/// nothing it already has; held under an exclusive lock until dropped.
#[derive(Debug)]
pub struct PackageDir {
    /// `<cache>/<distro>/packages/<sha256 of the key>`.
    pub path: PathBuf,
    /// The key it was asked for.
    pub key: String,
    _lock: FileLock,
}

/// The package directory of `key` (what decides which package files it can
/// hold: release, architecture, mirror) for `distro`, created if missing,
/// under an exclusive lock: two builds never write it at once. Its `key`
/// file holds the key, for whoever looks.
///
/// # Errors
/// [`CacheError::BadDistro`]; I/O and lock errors.
pub fn package_dir(cache_dir: &Path, distro: &str, key: &str, on_wait: impl FnMut(&str)) -> Result<PackageDir> {
    check_distro(distro)?;
    let parent = cache_dir.join(distro).join(PACKAGES);
    fs::create_dir_all(&parent).map_err(io_err("cannot create", &parent))?;
    let hash: String = Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let lock = FileLock::acquire(
        &parent.join(format!("{hash}.lock")),
        LockMode::Exclusive,
        &format!("downloading {distro} packages"),
        on_wait,
    )?;
    let path = parent.join(hash);
    fs::create_dir_all(&path).map_err(io_err("cannot create", &path))?;
    fs::write(path.join("key"), format!("{key}\n")).map_err(io_err("cannot write", &path))?;
    Ok(PackageDir { path, key: key.to_owned(), _lock: lock })
}

/// The directory under `<cache>/<distro>` that holds [`package_dir`]s.
const PACKAGES: &str = "packages";

fn check_distro(distro: &str) -> Result<()> {
    if distro.is_empty() || !distro.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        return Err(CacheError::BadDistro(distro.to_owned()));
    }
    Ok(())
}

/// What [`purge_distro`] did.
#[derive(Debug, Default)]
pub struct Purged {
    /// Entry directories removed with everything in them.
    pub removed: Vec<PathBuf>,
    /// Generations kept because overlay containers use them, with those
    /// containers' directories; they go at a later purge or flush once the
    /// containers are destroyed.
    pub kept: Vec<(PathBuf, Vec<PathBuf>)>,
}

/// Removes every cache entry of `distro` under `cache_dir`, and its
/// downloaded packages (and nothing of any other distro), each under its
/// exclusive lock so that no create is building or copying it meanwhile. A generation an overlay container
/// still uses is kept (and no longer current, so the next create builds
/// afresh) until a later purge finds it unused.
///
/// # Errors
/// [`CacheError::BadDistro`] for a name that is no distro name; I/O and lock errors.
pub fn purge_distro(cache_dir: &Path, distro: &str, mut on_wait: impl FnMut(&str)) -> Result<Purged> {
    check_distro(distro)?;
    let distro_dir = cache_dir.join(distro);
    purge_package_dirs(&distro_dir.join(PACKAGES), &mut on_wait)?;
    let entries = match fs::read_dir(&distro_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Purged::default()),
        Err(e) => return Err(io_err("cannot read", &distro_dir)(e)),
    };
    let mut purged = Purged::default();
    for entry in entries {
        let lock_path = entry.map_err(io_err("cannot read", &distro_dir))?.path();
        let Some(hash) = lock_path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".lock")) else {
            continue;
        };
        let dir = distro_dir.join(hash);
        let _lock =
            FileLock::acquire(&lock_path, LockMode::Exclusive, &format!("purging the {distro} cache"), &mut on_wait)?;
        if !dir.exists() {
            continue;
        }
        let entry =
            CacheEntry { dir: dir.clone(), lock_path: lock_path.clone(), key: String::new(), label: String::new() };
        entry.adopt_unversioned()?;
        let _ = fs::remove_file(dir.join("current"));
        let kept = entry.remove_unused_generations()?;
        if kept.is_empty() {
            remove_if_present(&dir)?;
            purged.removed.push(dir);
        } else {
            entry.remove_stale_staging()?;
            purged.kept.extend(kept);
        }
    }
    Ok(purged)
}

/// Removes every package directory under `dir`, each under its lock.
fn purge_package_dirs(dir: &Path, on_wait: &mut impl FnMut(&str)) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("cannot read", dir)(e)),
    };
    for entry in entries {
        let lock_path = entry.map_err(io_err("cannot read", dir))?.path();
        let Some(hash) = lock_path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".lock")) else {
            continue;
        };
        let _lock = FileLock::acquire(&lock_path, LockMode::Exclusive, "purging downloaded packages", &mut *on_wait)?;
        remove_if_present(&dir.join(hash))?;
    }
    Ok(())
}

/// A path as a command-line argument; the copy tools are given UTF-8 paths only.
fn path_arg(path: &Path) -> Result<String> {
    path.to_str().map(str::to_owned).ok_or_else(|| CacheError::Copy {
        from: path.to_owned(),
        to: path.to_owned(),
        detail: "the path is not UTF-8: choose a cache dir and lxcpath with UTF-8 names".into(),
    })
}

/// Runs a tool that copies `from` to `to`; its stderr explains a failure.
fn run_copy_tool(
    tools: &dyn ToolRunner,
    argv: &[String],
    hold: Option<BorrowedFd<'_>>,
    from: &Path,
    to: &Path,
) -> Result<()> {
    let output = tools.run_tool(argv, hold).map_err(io_err("cannot run the copy tool for", from))?;
    if output.status == 0 {
        Ok(())
    } else {
        Err(CacheError::Copy { from: from.to_owned(), to: to.to_owned(), detail: first_complaint(&output.stderr) })
    }
}

/// The first line of a copy tool's stderr, where `cp` and `tar` name the file
/// and the cause (`No space left on device`); a full disk makes them repeat it
/// for every later file, which would bury the one line that matters.
fn first_complaint(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    match (lines.next(), lines.count()) {
        (None, _) => "the tool failed without saying why".into(),
        (Some(first), 0) => first.to_owned(),
        (Some(first), more) => format!("{first} (and {more} more lines)"),
    }
}

/// What the cache tar keeps besides owners and modes: every xattr, file capabilities
/// (`security.capability`) and POSIX ACLs among them. ACLs travel as their raw
/// `system.posix_acl_*` xattrs, whose ids are numeric like the tar's owners; tar's `--acls`
/// would add them as text with user and group names looked up on the host (acl(5)), which
/// means other ids wherever the host names them differently, so it is not used.
/// What is restored is chosen when unpacking ([`unpack_rootfs`]).
const TAR_METADATA: [&str; 2] = ["--xattrs", "--xattrs-include=*"];

/// Writes `tar` of the rootfs at `from`, with numeric owners, xattrs and ACLs, atomically: into
/// a partial file of this process, renamed when complete (a killed pack leaves only the
/// partial file, removed with its generation).
fn pack_rootfs(tools: &dyn ToolRunner, from: &Path, tar: &Path) -> Result<()> {
    let partial = tar.with_extension(format!("tar.partial.{}", std::process::id()));
    let argv: Vec<String> = ["tar", "--numeric-owner"]
        .into_iter()
        .chain(TAR_METADATA)
        .chain(["-C", &path_arg(from)?, "-cpf", &path_arg(&partial)?, "."])
        .map(str::to_owned)
        .collect();
    run_copy_tool(tools, &argv, None, from, tar).inspect_err(|_| {
        let _ = fs::remove_file(&partial);
    })?;
    fs::rename(&partial, tar).map_err(io_err("cannot move into place", &partial))
}

/// Unpacks a cache entry's `rootfs.tar` into an empty container rootfs,
/// inside a user namespace: owners come from the tar (numeric), device
/// nodes are left out as an unprivileged container cannot create them.
/// Restored are the xattrs a user namespace's root may set on its own files:
/// `user.*`, the ACLs (`system.posix_acl_*`, whose ids the kernel maps through
/// the namespace) and `security.capability`, which the kernel stores there as
/// a revision-3 capability of the namespace's root (capabilities(7),
/// "Namespaced file capabilities"; `cap_convert_nscap` in
/// security/commoncap.c). `trusted.*` and the other `security.*` xattrs
/// (SELinux labels, IMA) need privileges of the initial namespace: setting
/// them would fail (a warning or an error, depending on tar's version), so
/// they are left out.
/// `tar` holds the entry's shared lock until it exits.
pub fn unpack_rootfs(tools: &dyn ToolRunner, cache: &ReadyCache, to: &Path) -> Result<()> {
    let tar = cache.generation().join("rootfs.tar");
    if !tar.is_file() {
        return Err(CacheError::NoTar { dir: cache.generation().to_owned() });
    }
    const RESTORED_XATTRS: [&str; 5] = [
        "--xattrs",
        "--xattrs-include=user.*",
        "--xattrs-include=system.posix_acl_access",
        "--xattrs-include=system.posix_acl_default",
        "--xattrs-include=security.capability",
    ];
    let argv: Vec<String> = ["tar", "--numeric-owner"]
        .into_iter()
        .chain(RESTORED_XATTRS)
        .chain(["--exclude=./dev/*", "-C", &path_arg(to)?, "-xpf", &path_arg(&tar)?])
        .map(str::to_owned)
        .collect();
    run_copy_tool(tools, &argv, Some(cache.lock_fd()), &tar, to)
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("cannot remove", path)(e)),
        _ => Ok(()),
    }
}

/// `<distro> <release> <arch>` from the `release=` and `arch=` words of a
/// key, as the plugins in this repository write them; `<distro> cache <hash>`
/// for a key without them.
fn label(distro: &str, key: &str, hash: &str) -> String {
    let word = |name: &str| key.split_whitespace().find_map(|w| w.strip_prefix(name)).filter(|v| !v.is_empty());
    match (word("release="), word("arch=")) {
        (Some(release), Some(arch)) => format!("{distro} {release} {arch}"),
        (Some(release), None) => format!("{distro} {release}"),
        _ => format!("{distro} cache {hash}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error type of the tests' builders.
    #[derive(Debug)]
    struct TestError(String);
    impl From<CacheError> for TestError {
        fn from(e: CacheError) -> Self {
            TestError(e.to_string())
        }
    }
    impl From<io::Error> for TestError {
        fn from(e: io::Error) -> Self {
            TestError(e.to_string())
        }
    }
    type TestResult = std::result::Result<(), TestError>;

    /// Runs the copy tools directly: unit tests have no lxc-tmpl binary to be the runner's
    /// helper (the runner's own tests and tests/it cover that path).
    struct DirectTools;
    impl ToolRunner for DirectTools {
        fn run_tool(&self, argv: &[String], _hold: Option<BorrowedFd<'_>>) -> io::Result<RunOutput> {
            let out = std::process::Command::new(&argv[0]).args(&argv[1..]).output()?;
            Ok(RunOutput { status: out.status.code().unwrap_or(128), stdout: out.stdout, stderr: out.stderr })
        }
    }

    #[test]
    fn builds_once_then_reuses() {
        let cache = tempfile::tempdir().unwrap();
        let entry = CacheEntry::new(cache.path(), "demo", "release=x arch=y");
        let ready = entry
            .ensure(
                &DirectTools,
                false,
                true,
                |_| {},
                |staging| -> TestResult {
                    fs::write(staging.join("marker"), "1")?;
                    Ok(())
                },
            )
            .unwrap();
        assert!(ready.built);
        assert_eq!(fs::read_to_string(ready.rootfs.join("marker")).unwrap(), "1");
        drop(ready);
        let again =
            entry.ensure(&DirectTools, false, true, |_| {}, |_| -> TestResult { panic!("must not rebuild") }).unwrap();
        assert!(!again.built);
    }

    #[test]
    fn failed_or_killed_build_leaves_no_cache() {
        let cache = tempfile::tempdir().unwrap();
        let entry = CacheEntry::new(cache.path(), "demo", "k");
        let err = entry.ensure(
            &DirectTools,
            false,
            true,
            |_| {},
            |staging| -> TestResult {
                fs::write(staging.join("half"), "")?;
                Err(TestError("download broke".into()))
            },
        );
        assert!(err.is_err());
        assert!(!entry.dir().exists(), "a failed first build leaves no entry directory");
        // A killed build leaves a staging dir; the next build clears it.
        fs::create_dir_all(entry.dir().join("staging.99999/etc")).unwrap();
        let ready = entry.ensure(&DirectTools, false, true, |_| {}, |_| -> TestResult { Ok(()) }).unwrap();
        assert!(ready.built);
        assert!(!entry.dir().join("staging.99999").exists());
    }

    #[test]
    fn flush_rebuilds() {
        let cache = tempfile::tempdir().unwrap();
        let entry = CacheEntry::new(cache.path(), "demo", "k");
        drop(entry.ensure(&DirectTools, false, true, |_| {}, |_| -> TestResult { Ok(()) }).unwrap());
        let ready = entry
            .ensure(&DirectTools, true, true, |_| {}, |s| -> TestResult { Ok(fs::write(s.join("new"), "")?) })
            .unwrap();
        assert!(ready.built && ready.rootfs.join("new").exists());
    }

    #[test]
    fn entry_is_packed_for_user_namespaces_and_not_built_where_it_cannot_be() {
        let cache = tempfile::tempdir().unwrap();
        let entry = CacheEntry::new(cache.path(), "demo", "k");
        let err = entry
            .ensure(&DirectTools, false, false, |_| {}, |_| -> TestResult { panic!("must not build") })
            .unwrap_err();
        assert!(err.0.contains("cannot be built inside the user namespace"), "{err:?}");
        let ready = entry
            .ensure(
                &DirectTools,
                false,
                true,
                |_| {},
                |s| -> TestResult {
                    fs::create_dir(s.join("etc"))?;
                    Ok(fs::write(s.join("etc/hostname"), "x\n")?)
                },
            )
            .unwrap();
        let to = cache.path().join("container");
        fs::create_dir(&to).unwrap();
        // Packed only when an unprivileged container is first made from it.
        let err = unpack_rootfs(&DirectTools, &ready, &to).unwrap_err();
        assert!(matches!(err, CacheError::NoTar { .. }), "{err}");
        // What a killed packer left goes.
        fs::write(ready.generation().join("rootfs.tar.partial.99999"), "half").unwrap();
        assert!(ready.ensure_tar(&DirectTools).unwrap(), "the first call packs");
        assert!(!ready.generation().join("rootfs.tar.partial.99999").exists());
        assert!(!ready.ensure_tar(&DirectTools).unwrap(), "the second finds it");
        unpack_rootfs(&DirectTools, &ready, &to).unwrap();
        assert_eq!(fs::read_to_string(to.join("etc/hostname")).unwrap(), "x\n");
        drop(ready);
        // Built now: a caller that cannot build gets it.
        assert!(
            !entry
                .ensure(&DirectTools, false, false, |_| {}, |_| -> TestResult { panic!("must not build") })
                .unwrap()
                .built
        );
    }

    #[test]
    fn purge_removes_one_distros_entries_only() {
        let cache = tempfile::tempdir().unwrap();
        for (distro, key) in [("debian", "bookworm"), ("debian", "trixie"), ("ubuntu", "jammy")] {
            let entry = CacheEntry::new(cache.path(), distro, key);
            drop(entry.ensure(&DirectTools, false, true, |_| {}, |_| -> TestResult { Ok(()) }).unwrap());
        }
        let purged = purge_distro(cache.path(), "debian", |_| {}).unwrap();
        assert_eq!(purged.removed.len(), 2);
        assert!(purged.removed.iter().all(|d| !d.exists()) && purged.kept.is_empty());
        let ubuntu = CacheEntry::new(cache.path(), "ubuntu", "jammy");
        assert!(ubuntu.dir().join("current/rootfs").is_dir(), "ubuntu untouched");
        assert!(purge_distro(cache.path(), "alpine", |_| {}).unwrap().removed.is_empty());
        assert!(matches!(purge_distro(cache.path(), "../x", |_| {}), Err(CacheError::BadDistro(_))));
    }

    #[test]
    fn entries_are_named_by_sha256_and_a_foreign_key_is_refused() {
        let cache = tempfile::tempdir().unwrap();
        let entry = CacheEntry::new(cache.path(), "demo", "release=x arch=y");
        // sha256("release=x arch=y"), as sha256sum prints it.
        let name = entry.dir().file_name().unwrap().to_str().unwrap().to_owned();
        assert_eq!(name.len(), 64, "{name}");
        let printed = std::process::Command::new("sh")
            .args(["-c", "printf %s 'release=x arch=y' | sha256sum"])
            .output()
            .unwrap()
            .stdout;
        assert!(String::from_utf8_lossy(&printed).starts_with(&name), "{name} is not the SHA-256 of the key");

        let build = |staging: &Path| -> TestResult { Ok(fs::write(staging.join("marker"), "1")?) };
        drop(entry.ensure(&DirectTools, false, true, |_| {}, build).unwrap());
        fs::write(entry.dir().join("key"), "release=other arch=y\n").unwrap();
        let err = entry.ensure(&DirectTools, false, true, |_| {}, build).unwrap_err();
        let text = err.0;
        assert!(
            text.contains("holds key 'release=other arch=y'") && text.contains("wanted key 'release=x arch=y'"),
            "{text}"
        );
        fs::remove_file(entry.dir().join("key")).unwrap();
        let err = entry.ensure(&DirectTools, false, true, |_| {}, build).unwrap_err();
        assert!(err.0.contains("holds key '<missing>'"), "{}", err.0);
        // --flush-cache replaces the forged entry.
        let rebuilt = entry.ensure(&DirectTools, true, true, |_| {}, build).unwrap();
        assert!(rebuilt.built);
    }

    /// A container directory whose config uses `lower` as its overlay lower layer.
    fn overlay_container(root: &Path, name: &str, lower: &Path) -> PathBuf {
        let dir = root.join(name);
        fs::create_dir_all(&dir).unwrap();
        let config = format!("lxc.rootfs.path = overlay:{}:{}/overlay/delta\n", lower.display(), dir.display());
        fs::write(dir.join("config"), config).unwrap();
        dir
    }

    #[test]
    fn flush_and_purge_keep_a_generation_overlay_containers_use() {
        let cache = tempfile::tempdir().unwrap();
        let lxcpath = tempfile::tempdir().unwrap();
        let entry = CacheEntry::new(cache.path(), "demo", "k");
        let build = |marker: &'static str| move |s: &Path| -> TestResult { Ok(fs::write(s.join(marker), "")?) };
        let first = entry.ensure(&DirectTools, false, true, |_| {}, build("first")).unwrap();
        let lower = first.rootfs.clone();
        first.add_user(&lxcpath.path().join("c1")).unwrap();
        let c1 = overlay_container(lxcpath.path(), "c1", &lower);
        drop(first);

        // A flush builds a new generation for new containers; c1's lower layer stays as it was.
        let second = entry.ensure(&DirectTools, true, true, |_| {}, build("second")).unwrap();
        assert!(second.built && second.rootfs != lower && second.rootfs.join("second").exists());
        assert!(lower.join("first").exists(), "a flush removed the lower layer of an overlay container");
        assert_eq!(generation_users(lower.parent().unwrap()).unwrap(), vec![c1.clone()]);
        drop(second);

        // A purge keeps it too, and names the container.
        let purged = purge_distro(cache.path(), "demo", |_| {}).unwrap();
        assert!(purged.removed.is_empty(), "{purged:?}");
        assert_eq!(purged.kept, vec![(lower.parent().unwrap().to_owned(), vec![c1.clone()])]);
        assert!(lower.join("first").exists());
        assert!(!entry.dir().join("current").exists(), "a purged entry is rebuilt by the next create");

        // Once the container is destroyed, the next purge removes the whole entry.
        fs::remove_dir_all(&c1).unwrap();
        let purged = purge_distro(cache.path(), "demo", |_| {}).unwrap();
        assert_eq!(purged.removed, vec![entry.dir().to_owned()]);
        assert!(!entry.dir().exists());
    }

    #[test]
    fn a_container_that_names_another_lower_layer_does_not_keep_a_generation() {
        let cache = tempfile::tempdir().unwrap();
        let lxcpath = tempfile::tempdir().unwrap();
        let entry = CacheEntry::new(cache.path(), "demo", "k");
        let ready = entry.ensure(&DirectTools, false, true, |_| {}, |_| -> TestResult { Ok(()) }).unwrap();
        let in_progress = lxcpath.path().join("creating");
        fs::create_dir(&in_progress).unwrap();
        ready.add_user(&in_progress).unwrap();
        ready.add_user(&overlay_container(lxcpath.path(), "moved", Path::new("/elsewhere/rootfs"))).unwrap();
        ready.add_user(&lxcpath.path().join("gone")).unwrap();
        // A create in progress (no config yet) counts; the other two records are dropped.
        assert_eq!(generation_users(ready.generation()).unwrap(), vec![in_progress]);
        assert_eq!(fs::read_dir(ready.generation().join(USERS)).unwrap().count(), 1);
    }

    #[test]
    fn an_entry_from_before_generations_is_adopted() {
        let cache = tempfile::tempdir().unwrap();
        let entry = CacheEntry::new(cache.path(), "demo", "k");
        fs::create_dir_all(entry.dir().join("rootfs/etc")).unwrap();
        fs::write(entry.dir().join("key"), "k\n").unwrap();
        fs::write(entry.dir().join("rootfs.tar"), "").unwrap();
        let ready =
            entry.ensure(&DirectTools, false, true, |_| {}, |_| -> TestResult { panic!("must not rebuild") }).unwrap();
        assert!(!ready.built && ready.rootfs.join("etc").is_dir() && ready.generation().join("rootfs.tar").is_file());
        assert!(!entry.dir().join("rootfs").exists());
    }

    #[test]
    fn overlay_lower_layers_are_read_from_the_rootfs_line() {
        let config = "lxc.rootfs.path = overlay:/c/a/rootfs:/c/b/rootfs:/l/c1/overlay/delta\nlxc.uts.name = c1\n";
        assert_eq!(lxc_rootfs_lower_layers(config).collect::<Vec<_>>(), ["/c/a/rootfs", "/c/b/rootfs"]);
        assert_eq!(lxc_rootfs_lower_layers("lxc.rootfs.path = dir:/l/c1/rootfs\n").count(), 0);
    }

    #[test]
    fn labels_name_distro_release_and_arch() {
        let entry = CacheEntry::new(Path::new("/c"), "debian", "debian-v1 release=bookworm arch=amd64 mirror=http://x");
        assert_eq!(entry.label(), "debian bookworm amd64");
        assert!(CacheEntry::new(Path::new("/c"), "x", "opaque").label().starts_with("x cache "));
    }

    #[test]
    fn copy_errors_keep_the_first_complaint() {
        let stderr = b"cp: error writing '/l/c1/rootfs/usr/a': No space left on device\ncp: error writing '/l/c1/rootfs/usr/b': No space left on device\n";
        assert_eq!(
            first_complaint(stderr),
            "cp: error writing '/l/c1/rootfs/usr/a': No space left on device (and 1 more lines)"
        );
        assert_eq!(first_complaint(b"\n"), "the tool failed without saying why");
    }

    #[test]
    fn keys_map_to_distinct_stable_dirs() {
        let a = CacheEntry::new(Path::new("/c"), "ubuntu", "jammy amd64");
        let b = CacheEntry::new(Path::new("/c"), "ubuntu", "jammy arm64");
        assert_ne!(a.dir(), b.dir());
        assert_eq!(a.dir(), CacheEntry::new(Path::new("/c"), "ubuntu", "jammy amd64").dir());
    }
}
