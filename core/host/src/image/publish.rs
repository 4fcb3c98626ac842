//! `lxc-tmpl image publish`: LXD/Incus images added to a simplestreams tree
//! ([`super::simplestreams`]) that `lxc remote add --protocol simplestreams`
//! can use once a web server serves it over https.
//!
//! An image directory is what `image build --format incus` writes: split,
//! `incus.tar.xz` (or `.tar.zst`: metadata.yaml and templates/) next to
//! `rootfs.squashfs` and/or `rootfs.tar.xz` (`.tar.zst`); or unified, an
//! `incus.tar.xz` that holds `rootfs/` too. Other files (the LXC format's
//! `meta.tar.xz` of `--format both`) are not published. The files go to
//! `ROOT/images/<os>/<release>/<arch>/<variant>/<serial>/` under their own
//! names.
//!
//! A publish is a transaction under an exclusive flock on
//! `ROOT/.lxc-tmpl-publish.lock` (concurrent publishes wait; see
//! [`crate::lock`]):
//!
//! 1. every image directory is read and checked first (a bad one changes nothing);
//! 2. a new version's files are copied under temporary names in its directory,
//!    hashed on the way (sha256, streaming), and synced; a version already in
//!    the tree is hashed in place of copying, and must have the same files;
//! 3. the copies are renamed into place, then `images.json` and then
//!    `index.json` are written to temporary files and renamed over the old
//!    ones, so a reader sees the old tree or the new one, and never an item
//!    whose file is missing or partial;
//! 4. only then are the files of pruned versions deleted.
//!
//! A failure or a signal ([`crate::interrupt`]) before step 3's
//! `images.json` rename removes every copy and directory the publish made:
//! the tree is as it was. `kill -9` or a power loss may leave temporary
//! files (`.NAME.*.tmp`) or files no item names, never a JSON file that
//! names a missing file; the next publish deletes those temporary files
//! once it holds the lock ([`sweep_stale_temps`]), since only a dead
//! publisher can have left them.

// The tree is a host directory the user chose, like an image build's output
// directory; nothing here touches a rootfs.
#![allow(clippy::disallowed_methods)]

pub mod metadata;

use std::{
    collections::BTreeSet,
    fs::{self, File},
    io::{self, Read, Write},
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Component, Path, PathBuf},
};

use sha2::{Digest, Sha256};
use thiserror::Error;

use super::simplestreams::{
    self, Added, FileDigest, ImageEntry, ImageFiles, Products, RootFile, RootKind, StreamsError,
};
use crate::{
    cache::ToolRunner,
    interrupt::{self, Interrupted},
    lock::{FileLock, LockError, LockMode},
};
pub use metadata::{ImageMetadata, MetadataError};

/// The lock file in the tree's root.
pub const LOCK_FILE: &str = ".lxc-tmpl-publish.lock";

/// Read and copy in pieces of this size: rootfs files are hundreds of MB.
const CHUNK: usize = 1 << 20;

/// The names a metadata tarball may have, and the compressor its magic bytes must show.
const META_NAMES: [(&str, Magic); 2] = [("incus.tar.xz", Magic::Xz), ("incus.tar.zst", Magic::Zstd)];

/// The names a rootfs file may have.
const ROOT_NAMES: [(&str, RootKind, Magic); 3] = [
    ("rootfs.squashfs", RootKind::Squashfs, Magic::Squashfs),
    ("rootfs.tar.xz", RootKind::Tar, Magic::Xz),
    ("rootfs.tar.zst", RootKind::Tar, Magic::Zstd),
];

/// The first bytes of a file of each kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Magic {
    /// `FD 37 7A 58 5A 00` (xz file format, section 2.1.1.1).
    Xz,
    /// `28 B5 2F FD` (RFC 8878, section 3.1.1).
    Zstd,
    /// `hsqs` (a little-endian squashfs superblock).
    Squashfs,
}

impl Magic {
    fn bytes(self) -> &'static [u8] {
        match self {
            Magic::Xz => &[0xFD, b'7', b'z', b'X', b'Z', 0x00],
            Magic::Zstd => &[0x28, 0xB5, 0x2F, 0xFD],
            Magic::Squashfs => b"hsqs",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Magic::Xz => "an xz file",
            Magic::Zstd => "a zstd file",
            Magic::Squashfs => "a squashfs image",
        }
    }
}

/// Why a publish failed. The tree is as it was (see the module docs for
/// the one exception, a failure to write `index.json`).
#[derive(Debug, Error)]
pub enum PublishError {
    /// A directory given is not an image directory.
    #[error("{} is not an image directory: {why}", dir.display())]
    NotImageDir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong, and the fix.
        why: String,
    },
    /// The metadata tarball has no metadata.yaml.
    #[error("{} has no metadata.yaml: rebuild the image with lxc-tmpl image build --format incus", archive.display())]
    NoMetadata {
        /// The tarball.
        archive: PathBuf,
    },
    /// metadata.yaml cannot be published.
    #[error("cannot publish {}", dir.display())]
    Metadata {
        /// The image directory.
        dir: PathBuf,
        /// What is wrong with it.
        #[source]
        source: MetadataError,
    },
    /// tar could not read the metadata tarball.
    #[error("cannot read {} with tar: {detail}", archive.display())]
    Tar {
        /// The tarball.
        archive: PathBuf,
        /// The first line tar printed, or why it could not run.
        detail: String,
    },
    /// The tree cannot take an image, or its JSON cannot be read.
    #[error(transparent)]
    Streams(#[from] StreamsError),
    /// The tree's lock.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A file or directory could not be read or written.
    #[error("cannot {what} {}", path.display())]
    Io {
        /// What was being done (`read`, `write`, ...).
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Nothing to publish, and no tree to prune.
    #[error("{} has no {}: publish an image there first", .0.display(), simplestreams::PRODUCTS_PATH)]
    NoTree(PathBuf),
    /// A signal interrupted the publish; the tree is as it was.
    #[error("{signal} during {step}: the publish was rolled back")]
    Interrupted {
        /// The signal.
        signal: Interrupted,
        /// The step that was running.
        step: &'static str,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PublishError + 'a {
    move |source| PublishError::Io { what, path: path.to_owned(), source }
}

fn check(step: &'static str) -> Result<(), PublishError> {
    interrupt::check().map_err(|signal| PublishError::Interrupted { signal, step })
}

/// What to publish where.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// Image directories.
    pub dirs: Vec<PathBuf>,
    /// The tree's root (made if missing; its parent must exist).
    pub root: PathBuf,
    /// Keep only the newest this many versions of each product (at least 1).
    pub prune: Option<usize>,
}

/// One image published.
#[derive(Debug, Clone)]
pub struct Published {
    /// The image directory it came from.
    pub from: PathBuf,
    /// The product key (`debian:bookworm:amd64:default`).
    pub product: String,
    /// The version (serial).
    pub serial: String,
    /// New, or already there with the same files (then nothing was copied).
    pub added: Added,
    /// Its directory in the tree.
    pub dir: PathBuf,
    /// Its fingerprints (what `lxc image list REMOTE:` shows), one per rootfs file.
    pub fingerprints: Vec<String>,
}

/// What a publish did.
#[derive(Debug, Clone)]
pub struct PublishOutcome {
    /// The images, in the order given.
    pub published: Vec<Published>,
    /// The versions `--prune` removed: (product key, serial).
    pub pruned: Vec<(String, String)>,
}

/// An image directory, read and checked.
#[derive(Debug)]
struct ImageDir {
    dir: PathBuf,
    meta: PathBuf,
    /// Empty for a unified image.
    roots: Vec<(RootKind, PathBuf)>,
    metadata: ImageMetadata,
}

impl ImageDir {
    /// Finds the files of the image in `dir` and reads its metadata.yaml.
    fn read(tools: &dyn ToolRunner, dir: &Path) -> Result<ImageDir, PublishError> {
        let not_image = |why: String| PublishError::NotImageDir { dir: dir.to_owned(), why };
        const FIX: &str = "give the output directory of lxc-tmpl image build --format incus";
        match fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(not_image(format!("not a directory: {FIX}"))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(not_image(format!("it does not exist: {FIX}")));
            }
            Err(e) => return Err(io_err("read", dir)(e)),
        }
        let present = |name: &str| dir.join(name).is_file();
        let metas: Vec<(&str, Magic)> = META_NAMES.iter().copied().filter(|(name, _)| present(name)).collect();
        let (meta_name, meta_magic) = match metas.as_slice() {
            [] => return Err(not_image(format!("it has no incus.tar.xz or incus.tar.zst: {FIX}"))),
            [one] => *one,
            _ => return Err(not_image("it has both incus.tar.xz and incus.tar.zst: keep one".to_owned())),
        };
        let meta = dir.join(meta_name);
        check_magic(dir, &meta, meta_magic)?;
        let members = list_members(tools, &meta)?;
        let member = members
            .iter()
            .find(|m| *m == "metadata.yaml" || *m == "./metadata.yaml")
            .ok_or_else(|| PublishError::NoMetadata { archive: meta.clone() })?;
        let unified = members.iter().any(|m| m.starts_with("rootfs/") || m.starts_with("./rootfs/"));
        let mut roots = Vec::new();
        if !unified {
            for (name, kind, magic) in ROOT_NAMES {
                if present(name) {
                    let path = dir.join(name);
                    check_magic(dir, &path, magic)?;
                    roots.push((kind, path));
                }
            }
            if roots.iter().filter(|(kind, _)| *kind == RootKind::Tar).count() > 1 {
                return Err(not_image("it has both rootfs.tar.xz and rootfs.tar.zst: keep one".to_owned()));
            }
            if roots.is_empty() {
                return Err(not_image(format!(
                    "{meta_name} holds no rootfs/ and there is no rootfs.squashfs, rootfs.tar.xz or rootfs.tar.zst next to it: {FIX}"
                )));
            }
        }
        let text = extract_member(tools, &meta, member)?;
        let text = String::from_utf8(text).map_err(|_| PublishError::Metadata {
            dir: dir.to_owned(),
            source: MetadataError::NotYaml("not UTF-8".to_owned()),
        })?;
        let metadata =
            ImageMetadata::parse(&text).map_err(|source| PublishError::Metadata { dir: dir.to_owned(), source })?;
        Ok(ImageDir { dir: dir.to_owned(), meta, roots, metadata })
    }

    /// The tree entry of this image before its files are hashed: its
    /// product key, serial and directory.
    fn probe(&self) -> ImageEntry {
        self.entry(ImageFiles::Unified(FileDigest::default()))
    }

    /// The tree entry of this image with `files`.
    fn entry(&self, files: ImageFiles) -> ImageEntry {
        let p = |name| self.metadata.property(name).to_owned();
        ImageEntry {
            os: p("os"),
            release: p("release"),
            arch: p("architecture"),
            variant: p("variant"),
            serial: p("serial"),
            files,
        }
    }
}

/// Refuses `file` unless it starts with `magic`: a file whose name says
/// xz but holds something else would fail only when LXD unpacks it.
fn check_magic(dir: &Path, file: &Path, magic: Magic) -> Result<(), PublishError> {
    let mut head = vec![0u8; magic.bytes().len()];
    let read = File::open(file).and_then(|mut f| f.read_exact(&mut head));
    match read {
        Ok(()) if head == magic.bytes() => Ok(()),
        Ok(()) => Err(PublishError::NotImageDir {
            dir: dir.to_owned(),
            why: format!(
                "{} is not {}: rebuild the image with lxc-tmpl image build --format incus",
                file.file_name().unwrap_or_default().to_string_lossy(),
                magic.name()
            ),
        }),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(PublishError::NotImageDir {
            dir: dir.to_owned(),
            why: format!(
                "{} is too short to be {}: rebuild the image",
                file.file_name().unwrap_or_default().to_string_lossy(),
                magic.name()
            ),
        }),
        Err(e) => Err(io_err("read", file)(e)),
    }
}

/// Runs tar (through the host's runner, so a signal kills it) and returns its stdout.
fn run_tar(tools: &dyn ToolRunner, archive: &Path, args: &[&str]) -> Result<Vec<u8>, PublishError> {
    let tar_err = |detail: String| PublishError::Tar { archive: archive.to_owned(), detail };
    let path = archive.to_str().ok_or_else(|| tar_err("the path is not UTF-8: rename it".to_owned()))?;
    let mut argv: Vec<String> = vec!["tar".to_owned()];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    argv.extend(["-f".to_owned(), path.to_owned()]);
    let output = tools.run_tool(&argv, None).map_err(|e| tar_err(format!("{e} (is tar installed?)")))?;
    if output.status != 0 {
        let text = String::from_utf8_lossy(&output.stderr);
        let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("tar failed without saying why");
        return Err(tar_err(first.to_owned()));
    }
    Ok(output.stdout)
}

/// The member names of `archive` (GNU tar finds the decompressor itself).
fn list_members(tools: &dyn ToolRunner, archive: &Path) -> Result<Vec<String>, PublishError> {
    let out = run_tar(tools, archive, &["-t"])?;
    Ok(String::from_utf8_lossy(&out).lines().map(str::to_owned).collect())
}

/// The bytes of `member` of `archive`; tar stops at its first occurrence
/// (metadata.yaml sorts before rootfs/ in a unified image).
fn extract_member(tools: &dyn ToolRunner, archive: &Path, member: &str) -> Result<Vec<u8>, PublishError> {
    run_tar(tools, archive, &["-xO", "--occurrence=1", member])
}

/// Hex of a digest.
fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads `from` to its end in [`CHUNK`]s, feeding every hasher and `to` if
/// given; stops at a signal. Returns the byte count.
fn stream(from: &Path, mut to: Option<&mut File>, hashers: &mut [&mut Sha256]) -> Result<u64, PublishError> {
    let mut file = File::open(from).map_err(io_err("read", from))?;
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        check("copy")?;
        let n = match file.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("read", from)(e)),
        };
        for hasher in hashers.iter_mut() {
            hasher.update(&buf[..n]);
        }
        if let Some(to) = to.as_deref_mut() {
            to.write_all(&buf[..n]).map_err(io_err("write a copy of", from))?;
        }
        total += n as u64;
    }
}

/// A file copied under a temporary name, to be renamed to `target`.
#[derive(Debug)]
struct Staged {
    temp: tempfile::NamedTempFile,
    target: PathBuf,
}

/// What one image contributes once hashed (and, for a new version, copied).
#[derive(Debug)]
struct Prepared {
    entry: ImageEntry,
    staged: Vec<Staged>,
}

/// Hashes the image's files and, when `copy_into` is given, copies them
/// there under temporary names (mode 0644, synced) as they are read.
fn prepare(image: &ImageDir, copy_into: Option<&Path>) -> Result<Prepared, PublishError> {
    let rel_dir = image.probe().dir();
    let mut staged = Vec::new();
    let mut one = |from: &Path, hashers: &mut [&mut Sha256]| -> Result<FileDigest, PublishError> {
        let name = from.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let mut own = Sha256::new();
        let mut all: Vec<&mut Sha256> = vec![&mut own];
        all.extend(hashers.iter_mut().map(|h| &mut **h));
        let size = match copy_into {
            Some(dir) => {
                let mut temp = temp_file_in(dir, &name)?;
                let size = stream(from, Some(temp.as_file_mut()), &mut all)?;
                let file = temp.as_file();
                file.set_permissions(fs::Permissions::from_mode(0o644))
                    .and_then(|()| file.sync_all())
                    .map_err(io_err("write", temp.path()))?;
                staged.push(Staged { temp, target: dir.join(&name) });
                size
            }
            None => stream(from, None, &mut all)?,
        };
        drop(all);
        Ok(FileDigest { path: format!("{rel_dir}/{name}"), sha256: hex(&own.finalize()), size })
    };
    let files = if image.roots.is_empty() {
        ImageFiles::Unified(one(&image.meta, &mut [])?)
    } else {
        // The fingerprint hashes the metadata file's bytes, then the rootfs file's:
        // a copy of the hasher that has seen the metadata goes on with each rootfs.
        let mut after_meta = Sha256::new();
        let meta = one(&image.meta, &mut [&mut after_meta])?;
        let mut roots = Vec::new();
        for (kind, path) in &image.roots {
            let mut combined = after_meta.clone();
            let file = one(path, &mut [&mut combined])?;
            roots.push(RootFile { kind: *kind, file, combined_sha256: hex(&combined.finalize()) });
        }
        ImageFiles::Split { meta, roots }
    };
    Ok(Prepared { entry: image.entry(files), staged })
}

/// What the publish made in the tree, removed when dropped before [`Changes::commit`]:
/// files renamed into place that were not there, then directories it made
/// (deepest first); temporary copies go with their [`Staged`] handles.
#[derive(Debug, Default)]
struct Changes {
    dirs: Vec<PathBuf>,
    placed: Vec<PathBuf>,
    committed: bool,
}

impl Changes {
    /// Makes `rel` (relative to `root`) and its missing parents, remembering those it made.
    fn make_dirs(&mut self, root: &Path, rel: &str) -> Result<PathBuf, PublishError> {
        let mut dir = root.to_owned();
        for part in rel.split('/') {
            dir.push(part);
            match fs::create_dir(&dir) {
                Ok(()) => self.dirs.push(dir.clone()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
                Err(e) => return Err(io_err("create", &dir)(e)),
            }
        }
        Ok(dir)
    }

    /// Renames a staged copy into place.
    fn place(&mut self, staged: Staged) -> Result<(), PublishError> {
        let existed = staged.target.exists();
        let target = staged.target.clone();
        staged.temp.persist(&target).map_err(|e| io_err("rename a copy to", &target)(e.error))?;
        if !existed {
            self.placed.push(target);
        }
        Ok(())
    }

    fn commit(mut self) {
        self.committed = true;
    }
}

impl Drop for Changes {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        for file in &self.placed {
            let _ = fs::remove_file(file);
        }
        for dir in self.dirs.iter().rev() {
            let _ = fs::remove_dir(dir);
        }
    }
}

/// Writes `text` to `root/rel` through a synced temporary file renamed over
/// it, unless the file holds `text` already (publishing the same image
/// again leaves the tree alone).
fn write_atomic(root: &Path, rel: &str, text: &str) -> Result<(), PublishError> {
    let path = root.join(rel);
    if fs::read(&path).is_ok_and(|old| old == text.as_bytes()) {
        return Ok(());
    }
    let dir = path.parent().unwrap_or(root);
    let mut temp = temp_file_in(dir, &path.file_name().unwrap_or_default().to_string_lossy())?;
    temp.write_all(text.as_bytes())
        .and_then(|()| temp.as_file().set_permissions(fs::Permissions::from_mode(0o644)))
        .and_then(|()| temp.as_file().sync_all())
        .map_err(io_err("write", temp.path()))?;
    temp.persist(&path).map_err(|e| io_err("rename a new version to", &path)(e.error))?;
    sync_dir(dir)
}

/// Makes the renames in `dir` durable (fsync(2) of the directory).
fn sync_dir(dir: &Path) -> Result<(), PublishError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("sync", dir))
}

/// The suffix of the temporary files a publish writes ([`temp_file_in`]).
const TEMP_SUFFIX: &str = ".tmp";

/// A new temporary file in `dir` that will be renamed to `name` there:
/// `.NAME.XXXXXX.tmp`, a name no published file has ([`is_temp_name`]).
fn temp_file_in(dir: &Path, name: &str) -> Result<tempfile::NamedTempFile, PublishError> {
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(TEMP_SUFFIX)
        .tempfile_in(dir)
        .map_err(io_err("create a file in", dir))
}

/// Whether `name` has the shape of a [`temp_file_in`] name; no published
/// file starts with a dot.
fn is_temp_name(name: &str) -> bool {
    name.len() > ".x".len() + TEMP_SUFFIX.len() && name.starts_with('.') && name.ends_with(TEMP_SUFFIX)
}

/// Deletes the temporary files a publish killed by `kill -9` or a power
/// loss left under `root/images` and `root/streams`. Called with the lock
/// held, so no live publish owns any of them. Symlinks are not followed.
fn sweep_stale_temps(root: &Path) -> Result<(), PublishError> {
    let mut dirs: Vec<PathBuf> = vec![root.join("images"), root.join("streams")];
    while let Some(dir) = dirs.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err("read", &dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err("read", &dir))?;
            let kind = entry.file_type().map_err(io_err("read", &entry.path()))?;
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() && is_temp_name(&entry.file_name().to_string_lossy()) {
                let path = entry.path();
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("remove a stale temporary file", &path)(e)),
                }
            }
        }
    }
    Ok(())
}

/// Whether `rel` is a plain relative path (no `..`, not absolute): only
/// such paths of a tree's items are deleted by a prune.
fn is_inside(rel: &str) -> bool {
    let path = Path::new(rel);
    !rel.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)))
}

/// The tree's root, locked; made if missing, and then removed again when
/// dropped unless kept: the lock file and the directory go while the lock
/// is still held, so a publish that waited for it finds its lock file
/// unlinked ([`Root::lock`] checks) rather than a tree that is gone.
#[derive(Debug)]
struct Root {
    path: PathBuf,
    made: bool,
    keep: bool,
    // Dropped after `drop` has run.
    _lock: FileLock,
}

impl Root {
    /// Makes the root if missing and takes its lock, telling `on_wait` who
    /// holds it before waiting.
    fn lock(path: &Path, mut on_wait: impl FnMut(&str)) -> Result<Root, PublishError> {
        let lock_path = path.join(LOCK_FILE);
        let purpose = format!("publishing to {}", path.display());
        loop {
            let made = match fs::create_dir(path) {
                Ok(()) => true,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => false,
                Err(e) => return Err(io_err("create", path)(e)),
            };
            let lock = FileLock::acquire(&lock_path, LockMode::Exclusive, &purpose, &mut on_wait)?;
            let held = nix::sys::stat::fstat(&lock).map(|st| (st.st_dev, st.st_ino)).ok();
            let named = fs::metadata(&lock_path).ok().map(|m| (m.dev(), m.ino()));
            if held.is_some() && held == named {
                return Ok(Root { path: path.to_owned(), made, keep: false, _lock: lock });
            }
            // The publish that made the tree failed and removed it while this one waited.
        }
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        if self.made && !self.keep {
            let _ = fs::remove_file(self.path.join(LOCK_FILE));
            let _ = fs::remove_dir(&self.path);
        }
    }
}

/// Publishes `request.dirs` into the tree at `request.root`, then prunes.
/// `tools` runs tar (to read metadata.yaml); `on_wait` is told who holds
/// the tree's lock before waiting for it.
///
/// # Errors
/// [`PublishError`]: a bad image directory (before anything is written), a
/// serial already published with other files, an I/O error, a signal. The
/// tree is then as it was.
pub fn publish(
    tools: &dyn ToolRunner,
    request: &PublishRequest,
    on_wait: impl FnMut(&str),
) -> Result<PublishOutcome, PublishError> {
    let mut images = Vec::new();
    for dir in &request.dirs {
        check("read image")?;
        images.push(ImageDir::read(tools, dir)?);
    }

    if request.dirs.is_empty() && !request.root.join(simplestreams::PRODUCTS_PATH).is_file() {
        return Err(PublishError::NoTree(request.root.clone()));
    }
    let mut root = Root::lock(&request.root, on_wait)?;
    let root_path = root.path.clone();
    check("lock")?;
    sweep_stale_temps(&root_path)?;

    let products_path = root_path.join(simplestreams::PRODUCTS_PATH);
    let mut products = match fs::read(&products_path) {
        Ok(text) => Products::parse(&text)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Products::default(),
        Err(e) => return Err(io_err("read", &products_path)(e)),
    };

    let mut changes = Changes::default();
    let mut staged = Vec::new();
    let mut published = Vec::new();
    for image in &images {
        check("copy")?;
        let probe = image.probe();
        let rel_dir = probe.dir();
        let exists =
            products.products.get(&probe.product_key()).is_some_and(|p| p.versions.contains_key(&probe.serial));
        // A version already there is only compared (hashing its source), never copied again.
        let prepared = if exists {
            prepare(image, None)?
        } else {
            let dir = changes.make_dirs(&root_path, &rel_dir)?;
            prepare(image, Some(&dir))?
        };
        let added = products.add(&prepared.entry)?;
        let fingerprints = match &prepared.entry.files {
            ImageFiles::Unified(file) => vec![file.sha256.clone()],
            ImageFiles::Split { roots, .. } => roots.iter().map(|r| r.combined_sha256.clone()).collect(),
        };
        published.push(Published {
            from: image.dir.clone(),
            product: prepared.entry.product_key(),
            serial: prepared.entry.serial.clone(),
            added,
            dir: root_path.join(&rel_dir),
            fingerprints,
        });
        staged.extend(prepared.staged);
    }

    let (pruned, mut freed) = match request.prune {
        Some(keep) => products.prune(keep.max(1)),
        None => (Vec::new(), BTreeSet::new()),
    };

    check("move into place")?;
    let mut synced = BTreeSet::new();
    for copy in staged {
        let rel = copy.target.strip_prefix(&root_path).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        // A version the prune drops at once is not put in place at all.
        if freed.remove(&rel) {
            continue;
        }
        if let Some(dir) = copy.target.parent() {
            synced.insert(dir.to_owned());
        }
        changes.place(copy)?;
    }
    for dir in &synced {
        sync_dir(dir)?;
    }
    changes.make_dirs(&root_path, "streams/v1")?;
    check("write the index")?;
    write_atomic(&root_path, simplestreams::PRODUCTS_PATH, &products.to_json())?;
    // images.json names the new files now: they stay whatever happens next.
    changes.commit();
    root.keep = true;
    write_atomic(&root_path, simplestreams::INDEX_PATH, &products.index().to_json())?;

    // Nothing names the pruned files any more.
    let images_dir = root_path.join("images");
    let mut emptied = BTreeSet::new();
    for rel in freed.iter().filter(|rel| is_inside(rel)) {
        let path = root_path.join(rel);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &path)(e)),
        }
        emptied.extend(path.parent().map(Path::to_owned));
    }
    emptied.extend(
        published.iter().filter(|p| pruned.contains(&(p.product.clone(), p.serial.clone()))).map(|p| p.dir.clone()),
    );
    for dir in emptied {
        let mut dir = dir.as_path();
        while dir.starts_with(&images_dir) && dir != images_dir && fs::remove_dir(dir).is_ok() {
            dir = dir.parent().unwrap_or(&images_dir);
        }
    }
    drop(root);
    Ok(PublishOutcome { published, pruned })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_pruned() {
        assert!(is_inside("images/debian/bookworm/amd64/default/1/incus.tar.xz"));
        assert!(!is_inside("../etc/passwd"));
        assert!(!is_inside("/etc/passwd"));
        assert!(!is_inside("images/../../x"));
        assert!(!is_inside("./images/x"));
        assert!(!is_inside(""));
    }

    #[test]
    fn digests_are_lowercase_hex() {
        assert_eq!(hex(&Sha256::digest(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
