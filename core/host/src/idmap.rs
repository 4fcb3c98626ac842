//! Unprivileged containers: the `lxc.idmap` ranges of a config, and shifting
//! a rootfs built by real root into the mapped range.
//!
//! `lxc-tmpl create` builds every rootfs as real root (debootstrap and
//! friends need it), then, when the base config maps ids, rewrites the owner
//! of every file from container ids to host ids (`0` -> `100000` for
//! `lxc.idmap = u 0 100000 65536`), the "shift ids on copy" way. Device nodes
//! are removed, as the LXC images' `excludes-user` list does: an unprivileged
//! container cannot use them, and LXC's autodev provides the usual ones.

use std::{
    fs, io,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
};

use nix::unistd::{FchownatFlags, Gid, Uid, fchownat};
use thiserror::Error;

use crate::lxcconf::BaseConfig;

/// A problem with an id map or with shifting a tree.
#[derive(Debug, Error)]
pub enum IdMapError {
    /// An `lxc.idmap` line that cannot be parsed.
    #[error("bad lxc.idmap '{0}': expected 'u|g <container id> <host id> <count>'")]
    Parse(String),
    /// A file's owner has no mapping.
    #[error("{path}: owner {kind}id {id} is outside the container's lxc.idmap ranges")]
    Unmapped {
        /// The file.
        path: PathBuf,
        /// `u` or `g`.
        kind: char,
        /// The container id.
        id: u32,
    },
    /// A filesystem operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// One `lxc.idmap` range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    user: bool,
    container: u32,
    host: u32,
    count: u32,
}

/// The id ranges of an unprivileged container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMap {
    ranges: Vec<Range>,
}

impl IdMap {
    /// The map of a config (`lxc.idmap`, or the legacy `lxc.id_map`); `None`
    /// for a privileged container.
    pub fn from_config(base: &BaseConfig) -> Result<Option<IdMap>, IdMapError> {
        let lines: Vec<&str> = base.values("lxc.idmap").into_iter().chain(base.values("lxc.id_map")).collect();
        if lines.is_empty() {
            return Ok(None);
        }
        let ranges = lines.into_iter().map(parse_range).collect::<Result<Vec<_>, _>>()?;
        Ok(Some(IdMap { ranges }))
    }

    fn map(&self, user: bool, id: u32) -> Option<u32> {
        self.ranges
            .iter()
            .find(|r| r.user == user && id >= r.container && id - r.container < r.count)
            .map(|r| r.host + (id - r.container))
    }

    /// The host uid of container uid `id`.
    pub fn host_uid(&self, id: u32) -> Option<u32> {
        self.map(true, id)
    }

    /// The host gid of container gid `id`.
    pub fn host_gid(&self, id: u32) -> Option<u32> {
        self.map(false, id)
    }

    /// The first container id (of users, or of groups) no range covers: where
    /// lxc-create maps the calling host root, and what it passes to templates
    /// as `--mapped-uid`/`--mapped-gid`.
    pub fn first_unmapped(&self, user: bool) -> u32 {
        self.ranges.iter().filter(|r| r.user == user).map(|r| r.container.saturating_add(r.count)).max().unwrap_or(0)
    }

    /// Makes `path` (the container directory) owned by the host ids of
    /// container root, as lxc-create does for unprivileged containers, so
    /// that the container's root can reach the rootfs below it.
    pub fn give_to_container_root(&self, path: &Path) -> Result<(), IdMapError> {
        let uid = self.host_uid(0).ok_or(IdMapError::Unmapped { path: path.into(), kind: 'u', id: 0 })?;
        let gid = self.host_gid(0).ok_or(IdMapError::Unmapped { path: path.into(), kind: 'g', id: 0 })?;
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(io_err("cannot chown", path))
    }

    /// Rewrites the owner of everything under `root` (itself included) from
    /// container ids to host ids, without following symlinks, keeping
    /// setuid/setgid bits (chown clears them), and removes device nodes.
    pub fn shift_tree(&self, root: &Path) -> Result<(), IdMapError> {
        self.shift_entry(root)?;
        // Hard-linked files are one inode: shift it once.
        let mut linked = std::collections::HashSet::new();
        let mut stack = vec![root.to_owned()];
        while let Some(dir) = stack.pop() {
            let entries = fs::read_dir(&dir).map_err(io_err("cannot read", &dir))?;
            for entry in entries {
                let path = entry.map_err(io_err("cannot read", &dir))?.path();
                let meta = fs::symlink_metadata(&path).map_err(io_err("cannot stat", &path))?;
                let kind = meta.file_type();
                if is_device(&meta) {
                    fs::remove_file(&path).map_err(io_err("cannot remove device", &path))?;
                    continue;
                }
                if !kind.is_dir() && meta.nlink() > 1 && !linked.insert((meta.dev(), meta.ino())) {
                    continue;
                }
                self.shift_entry(&path)?;
                if kind.is_dir() {
                    stack.push(path);
                }
            }
        }
        Ok(())
    }

    fn shift_entry(&self, path: &Path) -> Result<(), IdMapError> {
        let meta = fs::symlink_metadata(path).map_err(io_err("cannot stat", path))?;
        let uid =
            self.host_uid(meta.uid()).ok_or(IdMapError::Unmapped { path: path.into(), kind: 'u', id: meta.uid() })?;
        let gid =
            self.host_gid(meta.gid()).ok_or(IdMapError::Unmapped { path: path.into(), kind: 'g', id: meta.gid() })?;
        fchownat(
            nix::fcntl::AT_FDCWD,
            path,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            FchownatFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| io_err("cannot chown", path)(io::Error::from(e)))?;
        // chown(2) drops setuid/setgid on regular files: put them back.
        if meta.file_type().is_file() && meta.mode() & 0o6000 != 0 {
            fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(io_err("cannot chmod", path))?;
        }
        Ok(())
    }
}

fn is_device(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    t.is_block_device() || t.is_char_device()
}

fn parse_range(line: &str) -> Result<Range, IdMapError> {
    let bad = || IdMapError::Parse(line.to_owned());
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [kind, container, host, count] = fields[..] else { return Err(bad()) };
    let user = match kind {
        "u" => true,
        "g" => false,
        _ => return Err(bad()),
    };
    let number = |s: &str| s.parse::<u32>().map_err(|_| bad());
    Ok(Range { user, container: number(container)?, host: number(host)?, count: number(count)? })
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> IdMapError + 'a {
    move |source| IdMapError::Io { what, path: path.to_owned(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> IdMap {
        let base = BaseConfig::parse("lxc.idmap = u 0 100000 65536\nlxc.idmap = g 0 200000 65536\n");
        IdMap::from_config(&base).unwrap().unwrap()
    }

    #[test]
    fn parses_and_maps_ranges() {
        let m = map();
        assert_eq!(m.host_uid(0), Some(100000));
        assert_eq!(m.host_uid(65535), Some(165535));
        assert_eq!(m.host_uid(65536), None);
        assert_eq!(m.host_gid(5), Some(200005));
        assert_eq!(m.first_unmapped(true), 65536);
        assert_eq!(IdMap::from_config(&BaseConfig::parse("lxc.net.0.type = empty\n")).unwrap(), None);
        assert!(IdMap::from_config(&BaseConfig::parse("lxc.idmap = x 0 1\n")).is_err());
    }

    #[test]
    fn shifts_owners_keeps_setuid_and_drops_devices() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        fs::write(root.join("su"), "").unwrap();
        fs::hard_link(root.join("su"), root.join("su-link")).unwrap();
        fs::set_permissions(root.join("su"), fs::Permissions::from_mode(0o4755)).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", root.join("link")).unwrap();
        std::os::unix::fs::lchown(root.join("etc/passwd"), Some(33), Some(44)).unwrap();
        let null = root.join("null");
        nix::sys::stat::mknod(
            &null,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .unwrap();

        map().shift_tree(&root).unwrap();

        let owner = |p: &str| {
            let m = fs::symlink_metadata(root.join(p)).unwrap();
            (m.uid(), m.gid())
        };
        assert_eq!(owner(""), (100000, 200000));
        assert_eq!(owner("etc"), (100000, 200000));
        assert_eq!(owner("etc/passwd"), (100033, 200044));
        assert_eq!(owner("link"), (100000, 200000), "the symlink itself, not its target");
        assert_eq!(fs::metadata("/etc/shadow").unwrap().uid(), 0, "the host file must not change");
        assert_eq!(fs::metadata(root.join("su")).unwrap().mode() & 0o7777, 0o4755, "setuid kept");
        assert_eq!(owner("su-link"), (100000, 200000), "a hard link is shifted once, not twice");
        assert!(!null.exists(), "device nodes are removed");
    }
}
