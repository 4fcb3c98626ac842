//! A reproducible SquashFS of a rootfs, made by `mksquashfs` (squashfs-tools)
//! run through the host runner like [`super::archive`] runs tar, so that a
//! signal kills it and it leaves no process behind.
//!
//! The flags are those of squashfs-tools 4.5 (Debian 12), checked against its
//! `-help`:
//! - `-reproducible` is its default (fragments and inodes written in one
//!   order whatever the number of processors, which is all of them unless
//!   `-processors` says otherwise); it is given anyway, so that a build where
//!   it is not the default fails rather than differs.
//! - `SOURCE_DATE_EPOCH` in its environment sets the filesystem's creation
//!   time and clamps every later mtime to it, as tar's `--mtime=@EPOCH
//!   --clamp-mtime` does. It cannot be combined with `-mkfs-time`/`-fstime`
//!   or `-all-time` (mksquashfs refuses), which would also set every mtime
//!   rather than clamp it. Without an epoch it is taken out of the
//!   environment, so the build time is used.
//! - Owners are always stored as numbers; `-xattrs` (the default) keeps
//!   every extended attribute, among them file capabilities and ACLs.
//! - `-noappend` (the file is new), `-no-recovery` (no recovery file left in
//!   `$HOME`), `-no-exports` and a 1 MiB block size, as distrobuilder makes
//!   the `rootfs.squashfs` of Incus's and LXD's images.

use std::path::Path;

use super::archive::{ArchiveError, Compression, first_line, utf8};
use crate::cache::ToolRunner;

/// The program, as the error messages name it.
pub const TOOL: &str = "mksquashfs";

/// The Debian package that has [`TOOL`].
pub const PACKAGE: &str = "squashfs-tools";

/// The compressor options of mksquashfs for `compression`: xz at its
/// default, or zstd at the level the tarballs use (mksquashfs's default, 15,
/// takes much longer on two cores for a few per cent).
fn compressor(compression: Compression) -> &'static [&'static str] {
    match compression {
        Compression::Xz => &["-comp", "xz"],
        Compression::Zstd => &["-comp", "zstd", "-Xcompression-level", "12"],
    }
}

/// The command line that makes `image` of `dir` (run through `env` so that
/// `SOURCE_DATE_EPOCH` is set to `epoch`, or unset).
///
/// # Errors
/// [`ArchiveError::NotUtf8`]: a path that cannot be an argument.
pub fn command(
    dir: &Path,
    image: &Path,
    compression: Compression,
    epoch: Option<i64>,
) -> Result<Vec<String>, ArchiveError> {
    let mut argv: Vec<String> = vec!["env".to_owned()];
    match epoch {
        Some(epoch) => argv.push(format!("SOURCE_DATE_EPOCH={epoch}")),
        None => argv.extend(["-u".to_owned(), "SOURCE_DATE_EPOCH".to_owned()]),
    }
    argv.extend([TOOL.to_owned(), utf8(dir)?, utf8(image)?]);
    argv.extend(
        ["-noappend", "-reproducible", "-xattrs", "-no-exports", "-no-recovery", "-no-progress", "-quiet", "-b", "1M"]
            .map(str::to_owned),
    );
    argv.extend(compressor(compression).iter().map(|arg| (*arg).to_owned()));
    Ok(argv)
}

/// Makes the SquashFS `image` of everything in `dir` (its root is the
/// filesystem's root), compressed with `compression`. With `epoch`
/// (`SOURCE_DATE_EPOCH`), no mtime in it is later than the epoch and the
/// filesystem's own time is the epoch, so two runs over the same files give
/// the same bytes.
///
/// # Errors
/// [`ArchiveError`]: mksquashfs could not run or failed (a full disk).
pub fn make(
    tools: &dyn ToolRunner,
    dir: &Path,
    image: &Path,
    compression: Compression,
    epoch: Option<i64>,
) -> Result<(), ArchiveError> {
    let argv = command(dir, image, compression, epoch)?;
    let output = tools.run_tool(&argv, None).map_err(|source| ArchiveError::Spawn {
        tool: TOOL,
        archive: image.to_owned(),
        source,
    })?;
    if output.status == 0 {
        return Ok(());
    }
    Err(ArchiveError::Failed { archive: image.to_owned(), detail: first_line(&output.stderr, TOOL) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_goes_into_the_environment_and_nothing_else_sets_times() {
        let argv =
            command(Path::new("/s/rootfs"), Path::new("/s/rootfs.squashfs"), Compression::Zstd, Some(1)).unwrap();
        assert_eq!(&argv[..4], ["env", "SOURCE_DATE_EPOCH=1", "mksquashfs", "/s/rootfs"]);
        assert!(argv.ends_with(&["-comp", "zstd", "-Xcompression-level", "12"].map(str::to_owned)), "{argv:?}");
        // mksquashfs refuses these together with SOURCE_DATE_EPOCH.
        assert!(!argv.iter().any(|a| a.ends_with("-time") || a == "-fstime"), "{argv:?}");
        let argv = command(Path::new("/r"), Path::new("/i"), Compression::Xz, None).unwrap();
        assert_eq!(&argv[..3], ["env", "-u", "SOURCE_DATE_EPOCH"]);
        assert!(argv.ends_with(&["-comp", "xz"].map(str::to_owned)), "{argv:?}");
    }
}
