//! Reproducible compressed tarballs of a directory, made by GNU tar and
//! xz or zstd run through the host runner (so that a signal kills them and
//! they leave no process behind).
//!
//! GNU tar rather than the `tar` crate: the rules that make an archive
//! reproducible (reproducible-builds.org, "Archive metadata") are tar flags
//! that GNU tar has had for years (`--sort=name`, `--mtime` with
//! `--clamp-mtime`, `--pax-option` without atime, ctime or the PID in the
//! extended header names), xattrs such as file capabilities come along with
//! the same flags the cache's tar uses, and xz and zstd compress on every
//! core. The `tar` crate would need each of these rebuilt by hand, and the
//! archive that `lxc-local` unpacks is GNU tar's anyway.

use std::path::{Path, PathBuf};

use crate::cache::ToolRunner;

/// How the tarballs are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// xz (`.tar.xz`), what LXC's `local` and `download` templates unpack.
    Xz,
    /// zstd (`.tar.zst`): faster to make and to unpack; LXC's templates
    /// cannot read it (they call `tar -J`).
    Zstd,
}

impl Compression {
    /// Parses `xz` or `zstd`.
    ///
    /// # Errors
    /// A message naming the accepted values.
    pub fn parse(value: &str) -> Result<Compression, String> {
        match value {
            "xz" => Ok(Compression::Xz),
            "zstd" => Ok(Compression::Zstd),
            other => Err(format!("unknown compression '{other}': use xz or zstd")),
        }
    }

    /// The file name extension after `.tar`: `xz` or `zst`.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Xz => "xz",
            Compression::Zstd => "zst",
        }
    }

    /// The compressor command line tar runs (`tar -I`).
    ///
    /// Every core (`-T0`), with the output fixed whatever the number of
    /// cores: xz cuts its input into blocks of the size given (24 MiB, what
    /// `-6` uses with threads) in single- and multi-threaded mode alike, and
    /// zstd's multi-threaded output does not depend on its worker count.
    /// zstd level 19 would take minutes for a Debian rootfs on two cores;
    /// 12 is close to xz's size in a fraction of its time.
    fn program(self) -> &'static str {
        match self {
            Compression::Xz => "xz -T0 -6 --block-size=25165824",
            Compression::Zstd => "zstd -T0 -12 -q",
        }
    }

    /// The tool that must be installed.
    pub fn tool(self) -> &'static str {
        match self {
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        })
    }
}

/// Why a tarball could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A path given to tar or mksquashfs is not UTF-8.
    #[error("{0} is not UTF-8: choose an output dir with a UTF-8 name")]
    NotUtf8(PathBuf),
    /// tar or mksquashfs could not be run.
    #[error("cannot run {tool} for {archive}")]
    Spawn {
        /// The program.
        tool: &'static str,
        /// The archive.
        archive: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// tar, the compressor or mksquashfs failed.
    #[error("cannot make {archive}: {detail}")]
    Failed {
        /// The archive.
        archive: PathBuf,
        /// The first line the tool printed.
        detail: String,
    },
}

/// Makes `archive` of everything in `dir` (members `./...`, sorted by name,
/// numeric owners, modes, file capabilities and ACLs as xattrs), compressed
/// with `compression`. With `epoch` (`SOURCE_DATE_EPOCH`, seconds since
/// 1970), no member's mtime is later than it, so two runs over the same
/// files give the same bytes.
///
/// # Errors
/// [`ArchiveError`]: tar or the compressor failed (a full disk, a missing tool).
pub fn pack(
    tools: &dyn ToolRunner,
    dir: &Path,
    archive: &Path,
    compression: Compression,
    epoch: Option<i64>,
) -> Result<(), ArchiveError> {
    pack_parts(tools, &[(dir, &["."])], archive, compression, epoch)
}

/// Makes `archive` as [`pack`] does, of the `names` inside each directory of
/// `parts` in turn (tar's `-C DIR NAME...`): the members are the names as
/// given (`metadata.yaml`, `rootfs/...`), what is below a directory sorted.
///
/// # Errors
/// [`ArchiveError`]: tar or the compressor failed (a full disk, a missing tool).
pub fn pack_parts(
    tools: &dyn ToolRunner,
    parts: &[(&Path, &[&str])],
    archive: &Path,
    compression: Compression,
    epoch: Option<i64>,
) -> Result<(), ArchiveError> {
    let mut argv: Vec<String> = [
        "tar",
        "--sort=name",
        "--format=posix",
        // The default extended header name holds tar's PID; atime and ctime change on every read.
        "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
        "--numeric-owner",
        "--xattrs",
        "--xattrs-include=security.capability",
        "--xattrs-include=system.posix_acl_access",
        "--xattrs-include=system.posix_acl_default",
    ]
    .map(str::to_owned)
    .to_vec();
    if let Some(epoch) = epoch {
        argv.extend([format!("--mtime=@{epoch}"), "--clamp-mtime".to_owned()]);
    }
    argv.extend(["-I".to_owned(), compression.program().to_owned(), "-cf".to_owned(), utf8(archive)?]);
    for (dir, names) in parts {
        argv.extend(["-C".to_owned(), utf8(dir)?]);
        argv.extend(names.iter().map(|name| (*name).to_owned()));
    }
    let output = tools.run_tool(&argv, None).map_err(|source| ArchiveError::Spawn {
        tool: "tar",
        archive: archive.to_owned(),
        source,
    })?;
    if output.status == 0 {
        return Ok(());
    }
    Err(ArchiveError::Failed { archive: archive.to_owned(), detail: first_line(&output.stderr, "tar") })
}

/// `path` as a command-line argument.
pub(crate) fn utf8(path: &Path) -> Result<String, ArchiveError> {
    path.to_str().map(str::to_owned).ok_or_else(|| ArchiveError::NotUtf8(path.to_owned()))
}

/// The first non-empty line a failed `tool` printed.
pub(crate) fn first_line(stderr: &[u8], tool: &str) -> String {
    let text = String::from_utf8_lossy(stderr);
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map_or_else(|| format!("{tool} failed without saying why"), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::Compression;

    #[test]
    fn compressions_parse_and_name_their_files() {
        assert_eq!(Compression::parse("xz"), Ok(Compression::Xz));
        assert_eq!(Compression::parse("zstd").map(Compression::extension), Ok("zst"));
        let err = Compression::parse("gzip").unwrap_err();
        assert!(err.contains("'gzip'") && err.contains("xz or zstd"), "{err}");
    }
}
