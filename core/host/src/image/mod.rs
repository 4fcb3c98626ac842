//! Images: a rootfs filled by a plugin's hooks exactly as for a container
//! ([`Creator::fill_rootfs`]), left without instance state
//! ([`instance`]), and packed reproducibly ([`archive`]) in an image format.
//!
//! Formats: [`ImageFormat::Lxc`] ([`lxc`]), for `lxc-create -t local` and
//! `-t download`; [`ImageFormat::Incus`] ([`incus`]), for `incus image
//! import` and `lxc image import` (LXD); [`ImageFormat::Both`], the files of
//! both from one rootfs, whose tarball `rootfs.tar.*` both formats share
//! when the Incus image is split with a tar rootfs.
//!
//! A build is a transaction like a create: the output directory must be
//! absent or empty; the rootfs and the archives are made in a scratch
//! directory inside it and moved into place at the end; a failure or a
//! signal (see [`crate::interrupt`]) removes the scratch directory, and the
//! output directory too when the build made it.
//!
//! Publishing: [`publish`] adds LXD/Incus images to a simplestreams tree
//! ([`simplestreams`]) that LXD and Incus use as a remote.
//!
//! Reproducible: with `SOURCE_DATE_EPOCH` set, no member of a tarball is
//! newer than it and `expiry` is computed from it, so two builds from the
//! same inputs (plugin, options, cache entry) give the same bytes; a
//! `rootfs.squashfs` likewise ([`squashfs`]).

// The output and scratch directories are host paths the user chose (like a
// container directory); nothing here writes into the rootfs but `instance`,
// through `Rootfs`.
#![allow(clippy::disallowed_methods)]

pub mod archive;
pub mod incus;
pub mod instance;
pub mod lxc;
pub mod publish;
pub mod simplestreams;
pub mod squashfs;

use std::{
    fs,
    os::unix::fs::DirBuilderExt,
    path::{Path, PathBuf},
};

use thiserror::Error;

pub use archive::Compression;

use crate::{
    backing::Backing,
    create::{CacheUse, CreateError, Creator},
    interrupt::{self, Interrupted},
    lxcconf::BaseConfig,
    report::Reporter,
    request::{CreateSpec, MappedIds},
    rootfs::{Rootfs, RootfsError},
};
use archive::ArchiveError;

/// LXC's default lxcpath (`lxc.lxcpath`, lxc.system.conf(5)).
const DEFAULT_LXCPATH: &str = "/var/lib/lxc";

/// The scratch directory of a build, inside its output directory.
const SCRATCH: &str = ".lxc-tmpl-build";

/// The kind of image to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// `meta.tar.xz` and `rootfs.tar.xz` for LXC's `local` and `download` templates.
    Lxc,
    /// `incus.tar.xz` and the rootfs (see [`incus::IncusLayout`]) for Incus and LXD.
    Incus,
    /// The files of both, from one rootfs.
    Both,
}

impl ImageFormat {
    /// Parses a format name.
    ///
    /// # Errors
    /// A message naming the formats there are.
    pub fn parse(value: &str) -> Result<ImageFormat, String> {
        match value {
            "lxc" => Ok(ImageFormat::Lxc),
            "incus" => Ok(ImageFormat::Incus),
            "both" => Ok(ImageFormat::Both),
            other => Err(format!("unknown image format '{other}': use lxc, incus or both")),
        }
    }

    /// Whether the LXC format's files are made.
    pub fn has_lxc(self) -> bool {
        matches!(self, ImageFormat::Lxc | ImageFormat::Both)
    }

    /// Whether the Incus format's files are made.
    pub fn has_incus(self) -> bool {
        matches!(self, ImageFormat::Incus | ImageFormat::Both)
    }
}

/// Why an image build failed. Nothing it made is left.
#[derive(Debug, Error)]
pub enum ImageError {
    /// The output directory holds files.
    #[error("the output directory {0} is not empty: give an empty or new directory")]
    OutputNotEmpty(PathBuf),
    /// The output directory holds only the scratch dir of a build that was
    /// killed (`kill -9`, a power loss), which could not remove it.
    #[error("the output directory holds {0}, left by a build that was killed: remove it and build again")]
    KilledBuild(PathBuf),
    /// The output path is not a directory.
    #[error("the output path {0} is not a directory: give an empty or new directory")]
    OutputNotDir(PathBuf),
    /// The output or scratch directory could not be made or written.
    #[error("cannot write {path}")]
    Output {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The hooks failed.
    #[error(transparent)]
    Create(#[from] CreateError),
    /// The rootfs could not be prepared.
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    /// A tarball or the squashfs could not be made.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The Incus metadata could not be made.
    #[error(transparent)]
    Metadata(#[from] incus::MetadataError),
    /// The base request could not be built.
    #[error(transparent)]
    IdMap(#[from] crate::idmap::IdMapError),
    /// A signal interrupted the build; everything it made has been removed.
    #[error("{signal} during {step}: the image build was rolled back")]
    Interrupted {
        /// The signal.
        signal: Interrupted,
        /// The step that was running.
        step: &'static str,
    },
}

/// What to build, besides the distro's options.
#[derive(Debug)]
pub struct ImageRequest {
    /// The format.
    pub format: ImageFormat,
    /// The Incus files, when the format has them.
    pub incus: incus::IncusLayout,
    /// The compression of the tarballs (and of `rootfs.squashfs`).
    pub compression: Compression,
    /// The output directory: absent (made) or empty.
    pub output: PathBuf,
    /// `SOURCE_DATE_EPOCH`: the latest mtime in the tarballs, and the time
    /// `expiry` and the Incus `creation_date` count from.
    pub source_date_epoch: Option<i64>,
    /// The time now (Unix seconds), for `expiry` and `creation_date` when there is no `SOURCE_DATE_EPOCH`.
    pub now: i64,
}

/// What a build made.
#[derive(Debug)]
pub struct ImageOutcome {
    /// The files in the output directory.
    pub files: Vec<PathBuf>,
    /// The cache entry used, if any.
    pub cache: Option<CacheUse>,
    /// What [`instance::prepare`] did.
    pub prepared: instance::Prepared,
}

/// The output directory of a build in progress: dropped before
/// [`Output::commit`], it removes the scratch directory, the files moved
/// into place, and the output directory if the build made it.
#[derive(Debug)]
struct Output {
    dir: PathBuf,
    made: bool,
    scratch: PathBuf,
    moved: Vec<PathBuf>,
    committed: bool,
}

impl Output {
    fn claim(dir: &Path) -> Result<Output, ImageError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| ImageError::Output { path, source }
        };
        let made = match fs::symlink_metadata(dir) {
            Ok(meta) if !meta.is_dir() => return Err(ImageError::OutputNotDir(dir.to_owned())),
            Ok(_) => {
                let names: Vec<std::ffi::OsString> =
                    fs::read_dir(dir).map_err(io(dir))?.filter_map(|e| e.ok().map(|e| e.file_name())).collect();
                if names.len() == 1 && names[0] == SCRATCH {
                    return Err(ImageError::KilledBuild(dir.join(SCRATCH)));
                }
                if !names.is_empty() {
                    return Err(ImageError::OutputNotEmpty(dir.to_owned()));
                }
                false
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Not create_dir_all: parents the build made would be left behind.
                fs::create_dir(dir).map_err(io(dir))?;
                true
            }
            Err(e) => return Err(io(dir)(e)),
        };
        let mut output =
            Output { dir: dir.to_owned(), made, scratch: dir.join(SCRATCH), moved: Vec::new(), committed: false };
        std::fs::DirBuilder::new().mode(0o700).create(&output.scratch).map_err(io(&output.scratch))?;
        output.scratch = output.scratch.canonicalize().map_err(io(&output.scratch))?;
        Ok(output)
    }

    /// Moves `file` of the scratch dir into the output dir.
    fn place(&mut self, file: &Path) -> Result<PathBuf, ImageError> {
        let to = self.dir.join(file.file_name().unwrap_or_default());
        fs::rename(file, &to).map_err(|source| ImageError::Output { path: to.clone(), source })?;
        self.moved.push(to.clone());
        Ok(to)
    }

    fn commit(mut self) -> Result<(), ImageError> {
        fs::remove_dir_all(&self.scratch)
            .map_err(|source| ImageError::Output { path: self.scratch.clone(), source })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let _ = fs::remove_dir_all(&self.scratch);
        for file in &self.moved {
            let _ = fs::remove_file(file);
        }
        if self.made {
            let _ = fs::remove_dir(&self.dir);
        }
    }
}

/// Starts step `step`: tells `reporter` (so that progress and its timings
/// name the packing, not the last hook), and stops here if a signal has arrived.
fn check(reporter: &dyn Reporter, step: &'static str) -> Result<(), ImageError> {
    reporter.step(step);
    interrupt::check().map_err(|signal| ImageError::Interrupted { signal, step })
}

/// `err`, or [`ImageError::Interrupted`] when a signal is why a step failed
/// (the command it ran was killed).
fn interrupted_or(err: ImageError, step: &'static str) -> ImageError {
    match interrupt::interrupted() {
        Some(signal) if !matches!(err, ImageError::Interrupted { .. } | ImageError::Create(_)) => {
            ImageError::Interrupted { signal, step }
        }
        _ => err,
    }
}

/// Builds an image with `creator`'s plugin from `spec` (its distro options,
/// cache dir and LXC version are used; its name, places, base config and
/// backing are the image's own: the name is [`instance::NAME_PLACEHOLDER`],
/// the rootfs a scratch dir, the base config empty).
///
/// # Errors
/// [`ImageError`]; nothing the build made is left.
pub fn build(creator: &Creator<'_>, spec: CreateSpec, image: &ImageRequest) -> Result<ImageOutcome, ImageError> {
    let mut output = Output::claim(&image.output)?;
    let scratch = output.scratch.clone();
    let rootfs = scratch.join("rootfs");
    // Where the image's containers will live is lxc-create's choice: the
    // plugin is told LXC's default place, so that what it says (the attach
    // hint of create-message) neither names this scratch dir nor differs
    // between two builds. Nothing is written there: the rootfs is given, the
    // backing is a copy, and no container directory is claimed.
    let lxcpath = PathBuf::from(DEFAULT_LXCPATH);
    let spec = CreateSpec {
        name: instance::NAME_PLACEHOLDER.to_owned(),
        hostname: instance::NAME_PLACEHOLDER.to_owned(),
        container_dir: lxcpath.join(instance::NAME_PLACEHOLDER),
        lxcpath,
        rootfs: Some(rootfs.clone()),
        base: BaseConfig::parse(""),
        backing: Backing::Dir,
        check_config: false,
        keep_on_failure: false,
        mapped: MappedIds::Given { uid: None, gid: None },
        ..spec
    };
    let req = spec.build()?;
    fs::create_dir(&rootfs).map_err(|source| ImageError::Output { path: rootfs.clone(), source })?;
    let filled = creator.fill_rootfs(&req, &rootfs).map_err(|e| match e {
        CreateError::Interrupted { signal, step } => ImageError::Interrupted { signal, step },
        other => ImageError::Create(other),
    })?;

    let (release, arch) = crate::create::release_and_arch(&req, filled.cache.as_ref());
    let created = image.source_date_epoch.unwrap_or(image.now);
    let expiry = created + lxc::EXPIRY_DAYS * 86_400;
    let incus_meta = incus::Metadata {
        distro: creator.plugin.manifest.name.to_string(),
        release: release.map(str::to_owned),
        arch: arch.to_owned(),
        creation_date: created,
        expiry_date: expiry,
    };
    let ext = image.compression.extension();
    let pack = |dir: &Path, names: &[&str], archive: &Path| {
        archive::pack_parts(creator.runner, &[(dir, names)], archive, image.compression, image.source_date_epoch)
    };
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ImageError::Output { path, source }
    };

    let mut step = "instance state";
    let run = |step: &mut &'static str| -> Result<(instance::Prepared, Vec<PathBuf>), ImageError> {
        *step = "instance state";
        check(creator.reporter, step)?;
        let opened = Rootfs::open(&rootfs)?;
        let prepared = instance::prepare(&opened)?;
        let mut made = Vec::new();
        let rootfs_tar = scratch.join(format!("rootfs.tar.{ext}"));
        if image.format.has_lxc() {
            *step = "image metadata";
            check(creator.reporter, step)?;
            let devices = lxc::device_nodes(&rootfs).map_err(io(&rootfs))?;
            let manifest = &creator.plugin.manifest;
            let made_by = format!("lxc-tmpl {} {}", manifest.name, manifest.version);
            // lxc-download prints create-message as it is (lxc-local fills the
            // name only into the rootfs files named by `templates`), so the
            // plugin's hint, written for a container named LXC_NAME, names the
            // container the way a man page would.
            let message = filled
                .message
                .as_deref()
                .map(|m| m.replace(instance::NAME_PLACEHOLDER, instance::NAME_IN_MESSAGES))
                .unwrap_or_else(|| format!("An image made by {made_by}."));
            let meta_dir = scratch.join("meta");
            fs::create_dir(&meta_dir).map_err(io(&meta_dir))?;
            let meta = lxc::Meta {
                made_by,
                entries: &filled.entries,
                user_entries: &filled.user_entries,
                devices: &devices,
                message,
                expiry,
            };
            meta.write(&meta_dir).map_err(|(path, source)| ImageError::Output { path, source })?;
            let meta_tar = scratch.join(format!("meta.tar.{ext}"));
            *step = "pack metadata";
            check(creator.reporter, step)?;
            archive::pack(creator.runner, &meta_dir, &meta_tar, image.compression, image.source_date_epoch)?;
            made.push(meta_tar);
        }
        let incus = image.format.has_incus().then_some(image.incus);
        // One rootfs.tar.* for the LXC files and a split Incus image with a tar rootfs.
        if image.format.has_lxc() || incus == Some(incus::IncusLayout::SplitTar) {
            *step = "pack rootfs";
            check(creator.reporter, step)?;
            archive::pack(creator.runner, &rootfs, &rootfs_tar, image.compression, image.source_date_epoch)?;
            made.push(rootfs_tar);
        }
        if let Some(layout) = incus {
            *step = "Incus metadata";
            check(creator.reporter, step)?;
            let hosts = String::from_utf8_lossy(&opened.read_file("etc/hosts")?).into_owned();
            let incus_dir = scratch.join("incus");
            fs::create_dir(&incus_dir).map_err(io(&incus_dir))?;
            let names = incus_meta.write(&incus_dir, &hosts)?;
            let incus_tar = scratch.join(format!("{}.{ext}", incus::METADATA_TARBALL));
            if layout == incus::IncusLayout::Unified {
                *step = "pack the Incus image";
                check(creator.reporter, step)?;
                // metadata.yaml, templates/ and rootfs/ (the scratch dir's rootfs) as members.
                archive::pack_parts(
                    creator.runner,
                    &[(&incus_dir, &names), (&scratch, &["rootfs"])],
                    &incus_tar,
                    image.compression,
                    image.source_date_epoch,
                )?;
            } else {
                *step = "pack Incus metadata";
                check(creator.reporter, step)?;
                pack(&incus_dir, &names, &incus_tar)?;
            }
            made.push(incus_tar);
            if layout == incus::IncusLayout::SplitSquashfs {
                *step = "pack the squashfs rootfs";
                check(creator.reporter, step)?;
                let squashed = scratch.join(incus::SQUASHFS_ROOTFS);
                squashfs::make(creator.runner, &rootfs, &squashed, image.compression, image.source_date_epoch)?;
                made.push(squashed);
            }
        }
        Ok((prepared, made))
    };
    let result = run(&mut step);
    let (prepared, made) = result.map_err(|e| interrupted_or(e, step))?;
    check(creator.reporter, "move into place")?;
    let mut files = Vec::new();
    for file in made {
        files.push(output.place(&file)?);
    }
    output.commit()?;
    Ok(ImageOutcome { files, cache: filled.cache, prepared })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        assert_eq!(ImageFormat::parse("lxc"), Ok(ImageFormat::Lxc));
        assert_eq!(ImageFormat::parse("incus"), Ok(ImageFormat::Incus));
        assert!(ImageFormat::parse("both").is_ok_and(|f| f.has_lxc() && f.has_incus()));
        let err = ImageFormat::parse("qcow2").unwrap_err();
        assert!(err.contains("'qcow2'") && err.contains("use lxc, incus or both"), "{err}");
    }
}
