//! Unprivileged containers: the `lxc.idmap` ranges of a config, and shifting
//! a rootfs built by real root into the mapped range.
//!
//! `lxc-tmpl create` builds every rootfs as real root (debootstrap and
//! friends need it), then, when the base config maps ids, rewrites the owner
//! of every file from container ids to host ids (`0` -> `100000` for
//! `lxc.idmap = u 0 100000 65536`), the "shift ids on copy" way. Device nodes
//! are removed, as the LXC images' `excludes-user` list does: an unprivileged
//! container cannot use them, and LXC's autodev provides the usual ones.
//!
//! What a shift keeps: chown(2) clears setuid/setgid and the file capability
//! (`security.capability`) of a regular file. The mode is put back with
//! fchmod, and the capability is written back as a revision-3 ("namespaced")
//! capability whose root id is the host uid of the container's root, so that
//! it takes effect inside the container and nowhere else (capabilities(7),
//! "Namespaced file capabilities"; `struct vfs_ns_cap_data` in
//! linux/capability.h). That is what LXD and Incus do when they shift a
//! rootfs (`shared/idmap/shift_linux.go`, `set_vfs_ns_caps`). POSIX ACLs
//! name users and groups by id: their named entries are shifted like owners
//! (acl(5); the xattr layout is linux/posix_acl_xattr.h). Every other xattr
//! is left as it is (chown keeps them).
//!
//! Race safety: the rootfs is a tree that other code wrote and that may hold
//! anything, so the walk never follows a path. The root is opened once with
//! `O_NOFOLLOW`; each directory is read through its descriptor; each entry is
//! looked up with `fstatat(AT_SYMLINK_NOFOLLOW)` and then opened relative to
//! its directory's descriptor with `O_NOFOLLOW`; the opened descriptor must
//! be the inode the lookup saw (same device, inode and type), and every
//! change (fchown, fchmod, fsetxattr) is made on that descriptor. An entry
//! swapped for something else between the lookup and the open (a symlink to
//! a host directory, say), or an inode met a second time that is no hard
//! link (moved during the walk: shifting it again would shift it twice), is
//! an error ([`IdMapError::Changed`]): the create fails and rolls back rather
//! than guess what the entry is now, since no legitimate process changes a
//! rootfs while it is being shifted.

// Paths here are rootfs paths: no std::fs write may touch them (clippy.toml).
#![deny(clippy::disallowed_methods)]

use std::{
    collections::HashSet,
    ffi::{CStr, OsString},
    io,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    path::{Path, PathBuf},
};

use nix::{
    errno::Errno,
    fcntl::{AtFlags, OFlag, open, openat},
    sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat},
    unistd::{Gid, Uid, UnlinkatFlags, fchown, fchownat, unlinkat},
};
use thiserror::Error;

use crate::{lxcconf::BaseConfig, sys};

/// A problem with an id map or with shifting a tree.
#[derive(Debug, Error)]
pub enum IdMapError {
    /// An `lxc.idmap` line that cannot be parsed.
    #[error("bad lxc.idmap '{0}': expected 'u|g <container id> <host id> <count>'")]
    Parse(String),
    /// A file's owner (or a user or group its ACL names) has no mapping.
    #[error("{path}: {what} {kind}id {id} is outside the container's lxc.idmap ranges")]
    Unmapped {
        /// The file.
        path: PathBuf,
        /// `owner`, or the ACL entry.
        what: &'static str,
        /// `u` or `g`.
        kind: char,
        /// The container id.
        id: u32,
    },
    /// An entry changed between its lookup and its use: something else is
    /// writing the rootfs while it is shifted.
    #[error(
        "{path} changed while its owner was being shifted (replaced by a symlink or another file?): refusing to \
         touch it; is another process writing the rootfs?"
    )]
    Changed {
        /// The entry.
        path: PathBuf,
    },
    /// The tree is deeper than the walk goes (one descriptor per level).
    #[error("{path} is nested more than {MAX_DEPTH} directories deep: refusing to shift a tree that deep")]
    TooDeep {
        /// The directory too deep.
        path: PathBuf,
    },
    /// An xattr (file capability or ACL) in a layout the kernel never writes.
    #[error("{path}: malformed {name} xattr ({detail})")]
    BadXattr {
        /// The file.
        path: PathBuf,
        /// The xattr.
        name: &'static str,
        /// What is wrong.
        detail: String,
    },
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

/// How deep the walk goes: it holds one descriptor per level, and no real
/// rootfs comes near this.
const MAX_DEPTH: usize = 256;

/// The xattr of file capabilities (capabilities(7)).
const XATTR_CAPS: &CStr = c"security.capability";
/// The xattrs of POSIX ACLs (acl(5)): the access ACL and a directory's default ACL.
const XATTR_ACLS: [&CStr; 2] = [c"system.posix_acl_access", c"system.posix_acl_default"];

/// `linux/capability.h`: the revision in the top byte of `magic_etc`.
const VFS_CAP_REVISION_MASK: u32 = 0xFF00_0000;
/// `linux/capability.h`: the file's effective bit ("+e").
const VFS_CAP_FLAGS_EFFECTIVE: u32 = 0x0000_0001;
/// `linux/capability.h`: one 32-bit word per set (capabilities 0-31).
const VFS_CAP_REVISION_1: u32 = 0x0100_0000;
/// `linux/capability.h`: two words per set, no root id (20 bytes).
const VFS_CAP_REVISION_2: u32 = 0x0200_0000;
/// `linux/capability.h`: revision 2 plus the root id it applies under (24 bytes,
/// `struct vfs_ns_cap_data`).
const VFS_CAP_REVISION_3: u32 = 0x0300_0000;
/// Size of `struct vfs_ns_cap_data`.
const XATTR_CAPS_SZ_3: usize = 24;

/// `linux/posix_acl_xattr.h`: the only version of the ACL xattr.
const POSIX_ACL_XATTR_VERSION: u32 = 0x0002;
/// `linux/posix_acl.h`: a named user entry (`user:NAME:rwx`); its id is a uid.
const ACL_USER: u16 = 0x02;
/// `linux/posix_acl.h`: a named group entry (`group:NAME:rwx`); its id is a gid.
const ACL_GROUP: u16 = 0x08;

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

    fn mapped(&self, user: bool, id: u32, path: &Path, what: &'static str) -> Result<u32, IdMapError> {
        self.map(user, id).ok_or(IdMapError::Unmapped {
            path: path.into(),
            what,
            kind: if user { 'u' } else { 'g' },
            id,
        })
    }

    /// Makes `path` (the container directory) owned by the host ids of
    /// container root, as lxc-create does for unprivileged containers, so
    /// that the container's root can reach the rootfs below it. The directory
    /// is opened with `O_NOFOLLOW` and changed through that descriptor: a
    /// symlink put in its place is refused, never followed.
    pub fn give_to_container_root(&self, path: &Path) -> Result<(), IdMapError> {
        let uid = self.mapped(true, 0, path, "owner")?;
        let gid = self.mapped(false, 0, path, "owner")?;
        let dir = open(path, dir_flags(), Mode::empty()).map_err(nix_err("cannot open", path))?;
        fchown(&dir, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))).map_err(nix_err("cannot chown", path))
    }

    /// Rewrites the owner of everything under `root` (itself included) from
    /// container ids to host ids, and removes device nodes. Works through
    /// descriptors only (see the module docs): nothing outside `root` is ever
    /// touched, whatever is swapped into the tree while it runs. Keeps the
    /// setuid/setgid bits and file capabilities chown(2) clears (a capability
    /// becomes a revision-3 one for the container's root) and shifts the ids
    /// that ACLs name. Hard-linked files are one inode, shifted once.
    pub fn shift_tree(&self, root: &Path) -> Result<(), IdMapError> {
        let root_fd = open(root, dir_flags(), Mode::empty()).map_err(nix_err("cannot open", root))?;
        let root_stat = fstat(&root_fd).map_err(nix_err("cannot stat", root))?;
        self.shift_fd(root_fd.as_fd(), &root_stat, root, true)?;
        // Every inode shifted so far (device, inode): a second visit is a hard link or a move.
        let mut shifted = HashSet::from([(root_stat.st_dev, root_stat.st_ino)]);
        let names = read_names(&root_fd, root)?;
        let mut stack: Vec<(OwnedFd, PathBuf, std::vec::IntoIter<OsString>)> =
            vec![(root_fd, root.to_owned(), names.into_iter())];
        while let Some((dir, dir_path, names)) = stack.last_mut() {
            let Some(name) = names.next() else {
                stack.pop();
                continue;
            };
            let path = dir_path.join(&name);
            let Some(child) = self.shift_entry(dir.as_fd(), &name, &path, &mut shifted)? else { continue };
            if stack.len() >= MAX_DEPTH {
                return Err(IdMapError::TooDeep { path });
            }
            let names = read_names(&child, &path)?;
            stack.push((child, path, names.into_iter()));
        }
        Ok(())
    }

    /// Shifts the entry `name` of the directory `dir`, unless it is a hard
    /// link to an inode in `shifted`; returns the open descriptor of a
    /// directory, to walk it next.
    fn shift_entry(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsString,
        path: &Path,
        shifted: &mut HashSet<(u64, u64)>,
    ) -> Result<Option<OwnedFd>, IdMapError> {
        let seen = fstatat(dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW).map_err(|e| match e {
            Errno::ENOENT => IdMapError::Changed { path: path.into() },
            e => nix_err("cannot stat", path)(e),
        })?;
        let kind = file_kind(&seen);
        if kind == SFlag::S_IFCHR || kind == SFlag::S_IFBLK {
            // Without AT_REMOVEDIR, a directory swapped in meanwhile is refused (EISDIR).
            unlinkat(dir, name.as_os_str(), UnlinkatFlags::NoRemoveDir)
                .map_err(nix_err("cannot remove device", path))?;
            return Ok(None);
        }
        if shifted.contains(&(seen.st_dev, seen.st_ino)) {
            // Hard links are one inode: shifted once. Anything else seen twice was
            // moved during the walk, and shifting it again would shift it twice.
            return if kind != SFlag::S_IFDIR && seen.st_nlink > 1 {
                Ok(None)
            } else {
                Err(IdMapError::Changed { path: path.into() })
            };
        }
        let flags = match kind {
            SFlag::S_IFDIR => dir_flags(),
            // O_NONBLOCK and O_NOCTTY: should a FIFO or a tty be swapped in after
            // the lookup, the open neither hangs nor takes a controlling terminal.
            SFlag::S_IFREG => {
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC
            }
            // Symlinks, FIFOs, sockets: a descriptor of the inode itself, for fchownat(AT_EMPTY_PATH).
            _ => OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        };
        let fd = openat(dir, name.as_os_str(), flags, Mode::empty()).map_err(|e| match e {
            // ELOOP: a symlink where the lookup saw a directory or file; ENOTDIR: a
            // non-directory where it saw a directory; ENOENT: gone; ENXIO: a socket.
            Errno::ELOOP | Errno::ENOTDIR | Errno::ENOENT | Errno::ENXIO => IdMapError::Changed { path: path.into() },
            e => nix_err("cannot open", path)(e),
        })?;
        let opened = fstat(&fd).map_err(nix_err("cannot stat", path))?;
        if (opened.st_dev, opened.st_ino, file_kind(&opened)) != (seen.st_dev, seen.st_ino, kind) {
            return Err(IdMapError::Changed { path: path.into() });
        }
        shifted.insert((opened.st_dev, opened.st_ino));
        match kind {
            SFlag::S_IFDIR => {
                self.shift_fd(fd.as_fd(), &opened, path, true)?;
                Ok(Some(fd))
            }
            SFlag::S_IFREG => {
                self.shift_fd(fd.as_fd(), &opened, path, true)?;
                Ok(None)
            }
            _ => {
                self.shift_fd(fd.as_fd(), &opened, path, false)?;
                Ok(None)
            }
        }
    }

    /// Shifts the inode `fd` refers to, whose status is `stat`. `full`: a
    /// descriptor that can carry xattrs and a mode (a directory or regular
    /// file opened for reading), not an `O_PATH` one.
    fn shift_fd(&self, fd: BorrowedFd<'_>, stat: &FileStat, path: &Path, full: bool) -> Result<(), IdMapError> {
        let uid = self.mapped(true, stat.st_uid, path, "owner")?;
        let gid = self.mapped(false, stat.st_gid, path, "owner")?;
        let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
        if !full {
            // The inode itself, even a symlink: AT_EMPTY_PATH acts on the descriptor.
            return fchownat(fd, "", uid, gid, AtFlags::AT_EMPTY_PATH | AtFlags::AT_SYMLINK_NOFOLLOW)
                .map_err(nix_err("cannot chown", path));
        }
        let caps = get_xattr(fd, XATTR_CAPS, path)?;
        let caps = match caps {
            Some(old) => Some(self.namespaced_caps(&old, path)?),
            None => None,
        };
        let mut acls = Vec::new();
        for name in XATTR_ACLS {
            if let Some(acl) = get_xattr(fd, name, path)? {
                acls.push((name, self.shifted_acl(acl, name, path)?));
            }
        }
        fchown(fd, uid, gid).map_err(nix_err("cannot chown", path))?;
        for (name, acl) in &acls {
            sys::fsetxattr(fd, name, acl).map_err(io_err("cannot set the ACL of", path))?;
        }
        // chown(2) drops setuid/setgid on regular files: put the mode back.
        let mode = stat.st_mode & 0o7777;
        let now = fstat(fd).map_err(nix_err("cannot stat", path))?;
        if now.st_mode & 0o7777 != mode {
            fchmod(fd, Mode::from_bits_truncate(mode)).map_err(nix_err("cannot chmod", path))?;
        }
        // Last: chown cleared it, and nothing after this may clear it again.
        if let Some(caps) = caps {
            sys::fsetxattr(fd, XATTR_CAPS, &caps).map_err(io_err("cannot set the file capabilities of", path))?;
        }
        Ok(())
    }

    /// `old` (a revision 1, 2 or 3 `security.capability`) as a revision-3
    /// capability of the container's root: same permitted and inheritable
    /// sets, same effective flag, root id = host uid of container uid 0. The
    /// kernel then grants it only to a user namespace whose root is that uid
    /// (linux/capability.h, `struct vfs_ns_cap_data`; security/commoncap.c).
    fn namespaced_caps(&self, old: &[u8], path: &Path) -> Result<[u8; XATTR_CAPS_SZ_3], IdMapError> {
        let bad = |detail: String| IdMapError::BadXattr { path: path.into(), name: "security.capability", detail };
        let magic = old.get(..4).map(le32).ok_or_else(|| bad(format!("{} bytes", old.len())))?;
        let words = match (magic & VFS_CAP_REVISION_MASK, old.len()) {
            (VFS_CAP_REVISION_1, 12) => 1,
            (VFS_CAP_REVISION_2, 20) | (VFS_CAP_REVISION_3, 24) => 2,
            (revision, len) => return Err(bad(format!("revision {:#x} in {len} bytes", revision >> 24))),
        };
        let rootid = self.mapped(true, 0, path, "root (for its file capabilities)")?;
        let mut caps = [0u8; XATTR_CAPS_SZ_3];
        caps[..4].copy_from_slice(&(VFS_CAP_REVISION_3 | (magic & VFS_CAP_FLAGS_EFFECTIVE)).to_le_bytes());
        // {permitted, inheritable} per word; a revision-1 set has no high word (zero).
        caps[4..4 + 8 * words].copy_from_slice(&old[4..4 + 8 * words]);
        caps[20..].copy_from_slice(&rootid.to_le_bytes());
        Ok(caps)
    }

    /// A `system.posix_acl_*` value with the ids of its named user and group
    /// entries shifted (linux/posix_acl_xattr.h: a u32 version, then entries
    /// of u16 tag, u16 perm, u32 id; little-endian).
    fn shifted_acl(&self, mut acl: Vec<u8>, name: &CStr, path: &Path) -> Result<Vec<u8>, IdMapError> {
        let xattr = if name == XATTR_ACLS[0] { "system.posix_acl_access" } else { "system.posix_acl_default" };
        let bad = |detail: String| IdMapError::BadXattr { path: path.into(), name: xattr, detail };
        if acl.len() < 4 || !(acl.len() - 4).is_multiple_of(8) {
            return Err(bad(format!("{} bytes", acl.len())));
        }
        let version = le32(&acl[..4]);
        if version != POSIX_ACL_XATTR_VERSION {
            return Err(bad(format!("version {version}")));
        }
        for entry in acl[4..].chunks_exact_mut(8) {
            let tag = u16::from_le_bytes([entry[0], entry[1]]);
            let user = match tag {
                ACL_USER => true,
                ACL_GROUP => false,
                _ => continue,
            };
            let id = self.mapped(user, le32(&entry[4..8]), path, "ACL entry for")?;
            entry[4..8].copy_from_slice(&id.to_le_bytes());
        }
        Ok(acl)
    }
}

/// How directories are opened: never through a symlink.
fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

fn file_kind(stat: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits())
}

fn le32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// The names in the directory `dir`, read through a descriptor of its own
/// (`openat(dir, ".")`: the same directory, no lookup of a name).
fn read_names(dir: &OwnedFd, path: &Path) -> Result<Vec<OsString>, IdMapError> {
    let own = openat(dir, ".", dir_flags(), Mode::empty()).map_err(nix_err("cannot open", path))?;
    sys::read_dir_fd(own).map_err(io_err("cannot read", path))
}

fn get_xattr(fd: BorrowedFd<'_>, name: &CStr, path: &Path) -> Result<Option<Vec<u8>>, IdMapError> {
    sys::fgetxattr(fd, name).map_err(io_err("cannot read the xattrs of", path))
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

fn nix_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(Errno) -> IdMapError + 'a {
    move |errno| IdMapError::Io { what, path: path.to_owned(), source: io::Error::from(errno) }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures are built with std::fs on purpose
mod tests {
    use std::{
        fs,
        os::unix::fs::{MetadataExt, PermissionsExt, lchown, symlink},
        sync::{
            Arc,
            atomic::{AtomicBool, AtomicUsize, Ordering},
        },
        time::{Duration, Instant},
    };

    use super::*;
    use std::process::Command;

    fn map() -> IdMap {
        let base = BaseConfig::parse("lxc.idmap = u 0 100000 65536\nlxc.idmap = g 0 200000 65536\n");
        IdMap::from_config(&base).unwrap().unwrap()
    }

    fn xattr(path: &Path, name: &CStr) -> Option<Vec<u8>> {
        let fd = open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).unwrap();
        sys::fgetxattr(fd.as_fd(), name).unwrap()
    }

    fn set_xattr(path: &Path, name: &CStr, value: &[u8]) {
        let fd = open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).unwrap();
        sys::fsetxattr(fd.as_fd(), name, value).unwrap();
    }

    /// A revision-2 `security.capability`, as `setcap cap_net_raw+ep` writes it.
    fn cap_net_raw_ep_v2() -> Vec<u8> {
        let mut caps = (VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE).to_le_bytes().to_vec();
        for word in [1u32 << 13, 0, 0, 0] {
            caps.extend(word.to_le_bytes());
        }
        caps
    }

    /// An ACL xattr from `(tag, perm, id)` entries.
    fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut acl = POSIX_ACL_XATTR_VERSION.to_le_bytes().to_vec();
        for (tag, perm, id) in entries {
            acl.extend(tag.to_le_bytes());
            acl.extend(perm.to_le_bytes());
            acl.extend(id.to_le_bytes());
        }
        acl
    }

    const UNDEFINED: u32 = u32::MAX;

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
        fs::write(root.join("wall"), "").unwrap();
        fs::set_permissions(root.join("wall"), fs::Permissions::from_mode(0o2755)).unwrap();
        symlink("/etc/shadow", root.join("link")).unwrap();
        lchown(root.join("etc/passwd"), Some(33), Some(44)).unwrap();
        lchown(root.join("link"), Some(7), Some(8)).unwrap();
        nix::unistd::mkfifo(&root.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        let null = root.join("null");
        nix::sys::stat::mknod(&null, SFlag::S_IFCHR, Mode::from_bits_truncate(0o666), nix::sys::stat::makedev(1, 3))
            .unwrap();

        map().shift_tree(&root).unwrap();

        let owner = |p: &str| {
            let m = fs::symlink_metadata(root.join(p)).unwrap();
            (m.uid(), m.gid())
        };
        assert_eq!(owner(""), (100000, 200000));
        assert_eq!(owner("etc"), (100000, 200000));
        assert_eq!(owner("etc/passwd"), (100033, 200044));
        assert_eq!(owner("link"), (100007, 200008), "the symlink itself, not its target");
        assert_eq!(owner("fifo"), (100000, 200000));
        assert_eq!(fs::metadata("/etc/shadow").unwrap().uid(), 0, "the host file must not change");
        assert_eq!(fs::metadata(root.join("su")).unwrap().mode() & 0o7777, 0o4755, "setuid kept");
        assert_eq!(fs::metadata(root.join("wall")).unwrap().mode() & 0o7777, 0o2755, "setgid kept");
        assert_eq!(owner("su-link"), (100000, 200000), "a hard link is shifted once, not twice");
        assert!(!null.exists(), "device nodes are removed");
    }

    #[test]
    fn file_capabilities_become_namespaced_ones_of_container_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        fs::create_dir_all(root.join("bin")).unwrap();
        let ping = root.join("bin/ping");
        fs::write(&ping, "").unwrap();
        fs::set_permissions(&ping, fs::Permissions::from_mode(0o4755)).unwrap();
        set_xattr(&ping, XATTR_CAPS, &cap_net_raw_ep_v2());
        fs::write(root.join("bin/plain"), "").unwrap();
        set_xattr(&root.join("bin/plain"), c"user.kept", b"yes");

        map().shift_tree(&root).unwrap();

        let caps = xattr(&ping, XATTR_CAPS).expect("the capability survived the chown");
        assert_eq!(caps.len(), 24, "a revision-3 capability (struct vfs_ns_cap_data): {caps:02x?}");
        assert_eq!(le32(&caps[0..4]), 0x0300_0001, "revision 3 with the effective flag");
        assert_eq!(le32(&caps[4..8]), 1 << 13, "permitted: cap_net_raw");
        assert_eq!(le32(&caps[8..12]), 0, "inheritable");
        assert_eq!((le32(&caps[12..16]), le32(&caps[16..20])), (0, 0), "capabilities 32-63: none");
        assert_eq!(le32(&caps[20..24]), 100000, "rootid: the host uid of container root");
        assert_eq!(fs::metadata(&ping).unwrap().mode() & 0o7777, 0o4755, "setuid kept as well");
        assert_eq!(fs::metadata(&ping).unwrap().uid(), 100000);
        assert_eq!(xattr(&root.join("bin/plain"), XATTR_CAPS), None, "no capability made up");
        assert_eq!(xattr(&root.join("bin/plain"), c"user.kept").as_deref(), Some(&b"yes"[..]), "other xattrs kept");
        if Command::new("getcap").arg("--help").output().is_ok() {
            let out = Command::new("getcap").arg("-n").arg(&ping).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("cap_net_raw=ep [rootid=100000]"), "getcap -n says {text:?}");
        }
    }

    #[test]
    fn capability_revisions_convert_to_revision_3() {
        let m = map();
        let path = Path::new("f");
        // Revision 1 (32-bit sets): the high words are zero.
        let mut v1 = VFS_CAP_REVISION_1.to_le_bytes().to_vec();
        v1.extend(0x0000_3000u32.to_le_bytes());
        v1.extend(0x0000_0001u32.to_le_bytes());
        let v3 = m.namespaced_caps(&v1, path).unwrap();
        assert_eq!(le32(&v3[0..4]), VFS_CAP_REVISION_3, "no effective flag");
        assert_eq!((le32(&v3[4..8]), le32(&v3[8..12]), le32(&v3[12..16])), (0x3000, 1, 0));
        // A revision-3 one of another root gets this container's root.
        let mut other = m.namespaced_caps(&cap_net_raw_ep_v2(), path).unwrap().to_vec();
        other[20..].copy_from_slice(&5u32.to_le_bytes());
        assert_eq!(le32(&m.namespaced_caps(&other, path).unwrap()[20..]), 100000);
        for bad in [vec![], vec![0u8; 20], cap_net_raw_ep_v2()[..16].to_vec()] {
            assert!(matches!(m.namespaced_caps(&bad, path), Err(IdMapError::BadXattr { .. })), "{bad:02x?}");
        }
    }

    #[test]
    fn acls_name_shifted_users_and_groups() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        fs::create_dir_all(root.join("srv")).unwrap();
        let access = acl(&[
            (0x01, 6, UNDEFINED),
            (ACL_USER, 4, 1000),
            (0x04, 4, UNDEFINED),
            (ACL_GROUP, 4, 50),
            (0x10, 4, UNDEFINED),
            (0x20, 4, UNDEFINED),
        ]);
        let default = acl(&[
            (0x01, 7, UNDEFINED),
            (ACL_USER, 5, 33),
            (0x04, 5, UNDEFINED),
            (0x10, 5, UNDEFINED),
            (0x20, 5, UNDEFINED),
        ]);
        fs::write(root.join("srv/data"), "").unwrap();
        set_xattr(&root.join("srv/data"), XATTR_ACLS[0], &access);
        set_xattr(&root.join("srv"), XATTR_ACLS[1], &default);

        map().shift_tree(&root).unwrap();

        let ids = |value: Vec<u8>| -> Vec<(u16, u32)> {
            value[4..].chunks(8).map(|e| (u16::from_le_bytes([e[0], e[1]]), le32(&e[4..8]))).collect()
        };
        let shifted = ids(xattr(&root.join("srv/data"), XATTR_ACLS[0]).expect("access ACL kept"));
        assert!(shifted.contains(&(ACL_USER, 101000)), "{shifted:?}");
        assert!(shifted.contains(&(ACL_GROUP, 200050)), "{shifted:?}");
        let shifted = ids(xattr(&root.join("srv"), XATTR_ACLS[1]).expect("default ACL kept"));
        assert!(shifted.contains(&(ACL_USER, 100033)), "{shifted:?}");
        if Command::new("getfacl").arg("--version").output().is_ok() {
            let out = Command::new("getfacl").arg("-n").arg(root.join("srv/data")).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("user:101000:r--") && text.contains("group:200050:r--"), "getfacl -n says {text}");
        }
        // An ACL naming an id outside the map is an error, as an owner is.
        let unmapped = acl(&[(0x01, 6, UNDEFINED), (ACL_USER, 4, 70000), (0x10, 4, UNDEFINED)]);
        let err = map().shifted_acl(unmapped, XATTR_ACLS[0], Path::new("f")).unwrap_err();
        assert!(matches!(err, IdMapError::Unmapped { id: 70000, .. }), "{err}");
    }

    #[test]
    fn refuses_a_symlinked_root_and_container_dir() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host");
        fs::create_dir(&host).unwrap();
        symlink(&host, dir.path().join("rootfs")).unwrap();
        assert!(map().shift_tree(&dir.path().join("rootfs")).is_err());
        assert!(map().give_to_container_root(&dir.path().join("rootfs")).is_err());
        assert_eq!(fs::metadata(&host).unwrap().uid(), 0);
        map().give_to_container_root(&host).unwrap();
        assert_eq!(fs::metadata(&host).unwrap().uid(), 100000);
    }

    /// The owners and modes of everything under `dir`.
    fn owners_and_modes(dir: &Path) -> Vec<(PathBuf, u32, u32, u32)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            let m = fs::symlink_metadata(&d).unwrap();
            out.push((d.clone(), m.uid(), m.gid(), m.mode()));
            if m.is_dir() {
                stack.extend(fs::read_dir(&d).unwrap().map(|e| e.unwrap().path()));
            }
        }
        out.sort();
        out
    }

    /// Another thread keeps swapping directories and files of the tree for
    /// symlinks to a host directory (and back) while `shift_tree` walks it:
    /// the host directory keeps its owners and modes, and every shift either
    /// completes or stops with [`IdMapError::Changed`].
    #[test]
    fn a_symlink_swapped_in_while_shifting_never_reaches_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host");
        fs::create_dir(&host).unwrap();
        for (name, mode) in [("secret", 0o600), ("tool", 0o4755), ("plain", 0o644)] {
            fs::write(host.join(name), name).unwrap();
            fs::set_permissions(host.join(name), fs::Permissions::from_mode(mode)).unwrap();
        }
        fs::create_dir(host.join("sub")).unwrap();
        fs::write(host.join("sub/file"), "").unwrap();
        let before = owners_and_modes(&host);
        // Every container id maps, ids only grow: the same tree can be shifted again and again.
        let map =
            IdMap::from_config(&BaseConfig::parse("lxc.idmap = u 0 1000 4000000\nlxc.idmap = g 0 1000 4000000\n"))
                .unwrap()
                .unwrap();

        let root = dir.path().join("rootfs");
        for d in 0..20 {
            fs::create_dir_all(root.join(format!("d{d}"))).unwrap();
            for f in 0..100 {
                fs::write(root.join(format!("d{d}/f{f}")), "").unwrap();
            }
        }
        const RACERS: usize = 40;
        for k in 0..RACERS {
            let inner = root.join(format!("d{}/race{k}", k % 3));
            fs::create_dir_all(&inner).unwrap();
            fs::write(inner.join("x"), "").unwrap();
            symlink(&host, root.join(format!("d{}/race{k}.link", k % 3))).unwrap();
            fs::write(root.join(format!("d{}/file{k}", k % 3)), "").unwrap();
            symlink(host.join("tool"), root.join(format!("d{}/file{k}.link", k % 3))).unwrap();
        }

        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicUsize::new(0));
        let swapper = {
            let (stop, swaps, root) = (stop.clone(), swaps.clone(), root.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for k in 0..RACERS {
                        for what in ["race", "file"] {
                            let a = root.join(format!("d{}/{what}{k}", k % 3));
                            let b = root.join(format!("d{}/{what}{k}.link", k % 3));
                            let flags = nix::fcntl::RenameFlags::RENAME_EXCHANGE;
                            nix::fcntl::renameat2(nix::fcntl::AT_FDCWD, &a, nix::fcntl::AT_FDCWD, &b, flags).unwrap();
                            swaps.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        };
        let (mut completed, mut refused) = (0, 0);
        let started = Instant::now();
        // The windows of a descriptor walk are short (between an fstatat and its openat): go on
        // until some shift has hit one, within reason.
        while started.elapsed() < Duration::from_secs(30)
            && (started.elapsed() < Duration::from_secs(3) || completed + refused < 20 || refused == 0)
        {
            match map.shift_tree(&root) {
                Ok(()) => completed += 1,
                Err(IdMapError::Changed { .. }) => refused += 1,
                Err(e) => panic!("a shift failed otherwise than by seeing the swap: {e}"),
            }
            assert_eq!(owners_and_modes(&host), before, "the host directory changed (shift {})", completed + refused);
        }
        stop.store(true, Ordering::Relaxed);
        swapper.join().unwrap();
        eprintln!(
            "{completed} shifts completed, {refused} refused a swapped entry, {} swaps",
            swaps.load(Ordering::Relaxed)
        );
        assert_eq!(owners_and_modes(&host), before, "the host directory changed");
        assert!(refused > 0, "no shift ever saw a swapped entry: the race was not exercised");
    }
}
