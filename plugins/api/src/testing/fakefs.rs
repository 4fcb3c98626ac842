//! The fake rootfs's file operations, modelled on the real host's
//! (`core/host/src/rootfs.rs`, which is the spec; [`super::conformance`]
//! checks that both agree):
//!
//! - Paths resolve as if chrooted (`RESOLVE_IN_ROOT`): `..` stops at the
//!   root, an absolute symlink target starts again at the root, and symlinks
//!   in the middle of a path are followed, at most 40 (`ELOOP`).
//! - Operations that change an entry resolve its parent and never follow
//!   the final component: a write or a symlink *replaces* a symlink there
//!   (a new inode, so the owner is the creator's again), `set_mode` and
//!   `append` refuse one, `set_owner` changes the link itself, `remove`
//!   removes the link and not what it points to.
//! - Reads (`read_file`, `read_dir`) and `mkdir_all` follow symlinks, a final
//!   one too; a dangling symlink on the way of `mkdir_all` is an error, never
//!   a directory made elsewhere.
//! - Modes are exact (no umask) and never have bits outside `0o7777`.
//! - A missing path is an [`ErrorKind::NOT_FOUND`] error, any other failure
//!   an [`ErrorKind::HOST`] one.

use std::collections::{BTreeMap, VecDeque};

use super::Node;
use crate::{ErrorKind, FileKind, PluginError};

/// The kernel's limit on symlinks followed in one lookup.
const MAX_SYMLINKS: usize = 40;

/// Why a lookup failed, as the errno the real host would see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fail {
    /// ENOENT.
    NotFound,
    /// ENOTDIR.
    NotDir,
    /// ELOOP.
    Loop,
}

impl Fail {
    fn error(self, op: &str, path: &str) -> PluginError {
        match self {
            Fail::NotFound => PluginError::not_found(format!("{op} {path}: No such file or directory (os error 2)")),
            Fail::NotDir => PluginError::new(ErrorKind::HOST, format!("{op} {path}: Not a directory (os error 20)")),
            Fail::Loop => PluginError::new(
                ErrorKind::HOST,
                format!("{op} {path}: Too many levels of symbolic links (os error 40)"),
            ),
        }
    }
}

/// A refusal: the request is malformed or the entry has the wrong type.
fn refused(op: &str, path: &str, reason: &str) -> PluginError {
    PluginError::new(ErrorKind::HOST, format!("refusing to {op} {path}: {reason}"))
}

fn check_mode(op: &str, path: &str, mode: u32) -> Result<(), PluginError> {
    if mode & !0o7777 != 0 {
        return Err(refused(op, path, "mode has bits outside 0o7777"));
    }
    Ok(())
}

fn join(parts: &[String]) -> String {
    parts.join("/")
}

/// The kind of a node.
pub(super) fn kind(node: &Node) -> FileKind {
    match node {
        Node::Dir { .. } => FileKind::Dir,
        Node::File { .. } => FileKind::File,
        Node::Symlink { .. } => FileKind::Symlink,
    }
}

/// The rootfs entries, owners and hard links the operations act on.
#[derive(Debug)]
pub(super) struct Fs<'a> {
    pub rootfs: &'a mut BTreeMap<String, Node>,
    pub owners: &'a mut BTreeMap<String, (u32, u32)>,
    pub hard_links: &'a mut Vec<(String, String)>,
}

impl Fs<'_> {
    fn is_dir(&self, path: &str) -> bool {
        path.is_empty() || matches!(self.rootfs.get(path), Some(Node::Dir { .. }))
    }

    /// Resolves `path` inside the root; `follow_final` says whether a symlink
    /// in the last component is followed. Returns the normalised path of the
    /// entry, which need not exist (its parent does).
    pub(super) fn resolve(&self, path: &str, follow_final: bool) -> Result<String, Fail> {
        let mut at: Vec<String> = Vec::new();
        let mut rest: VecDeque<String> = path.split('/').map(str::to_owned).collect();
        let mut followed = 0;
        while let Some(part) = rest.pop_front() {
            if part.is_empty() || part == "." {
                continue;
            }
            // Looking anything up, `..` too, needs a directory to look in.
            if !self.is_dir(&join(&at)) {
                return Err(Fail::NotDir);
            }
            if part == ".." {
                at.pop();
                continue;
            }
            let last = rest.iter().all(|p| p.is_empty() || p == ".");
            at.push(part);
            match self.rootfs.get(&join(&at)) {
                None if last => {}
                None => return Err(Fail::NotFound),
                Some(Node::Symlink { target }) if !last || follow_final => {
                    followed += 1;
                    if followed > MAX_SYMLINKS {
                        return Err(Fail::Loop);
                    }
                    at.pop();
                    if target.starts_with('/') {
                        at.clear();
                    }
                    for part in target.split('/').rev() {
                        rest.push_front(part.to_owned());
                    }
                }
                Some(_) => {}
            }
        }
        Ok(join(&at))
    }

    /// The path of the entry that `path` names, its parent resolved (and
    /// required to be a directory) and its final component not followed,
    /// as the host's `parent_and_name`.
    fn entry(&self, op: &str, path: &str) -> Result<String, PluginError> {
        let rel = path.trim_start_matches('/').trim_end_matches('/');
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        if name.is_empty() || name == "." || name == ".." {
            return Err(refused(op, path, "the path does not name an entry"));
        }
        let parent = self.resolve(parent, true).map_err(|f| f.error(op, path))?;
        match self.rootfs.get(&parent) {
            _ if parent.is_empty() => Ok(name.to_owned()),
            None => Err(Fail::NotFound.error(op, path)),
            Some(Node::Dir { .. }) => Ok(format!("{parent}/{name}")),
            Some(_) => Err(Fail::NotDir.error(op, path)),
        }
    }

    /// Puts a new inode at `entry` (its owner is the creator's: none recorded).
    fn replace(&mut self, entry: String, node: Node) {
        self.owners.remove(&entry);
        self.rootfs.insert(entry, node);
    }

    pub(super) fn read_file(&self, path: &str) -> Result<Vec<u8>, PluginError> {
        const OP: &str = "read";
        let at = self.resolve(path, true).map_err(|f| f.error(OP, path))?;
        match self.rootfs.get(&at) {
            Some(Node::File { data, .. }) => Ok(data.clone()),
            None if !at.is_empty() => Err(Fail::NotFound.error(OP, path)),
            _ => Err(refused(OP, path, "not a regular file")),
        }
    }

    /// Creates or replaces the file at `path`; `data` is only asked for once
    /// the target is known to be writable.
    pub(super) fn write_file(&mut self, op: &str, path: &str, data: Vec<u8>, mode: u32) -> Result<(), PluginError> {
        check_mode(op, path, mode)?;
        let entry = self.entry(op, path)?;
        match self.rootfs.get(&entry) {
            Some(Node::Dir { .. }) => Err(refused(op, path, "it is a directory")),
            // A regular file keeps its owner (the host fchowns the new inode).
            Some(Node::File { .. }) => {
                self.rootfs.insert(entry, Node::File { data, mode });
                Ok(())
            }
            // Anything else, a symlink too, is replaced by a new file.
            _ => {
                self.replace(entry, Node::File { data, mode });
                Ok(())
            }
        }
    }

    pub(super) fn append_file(&mut self, path: &str, data: &[u8]) -> Result<(), PluginError> {
        const OP: &str = "append to";
        let entry = self.entry(OP, path)?;
        match self.rootfs.get_mut(&entry) {
            Some(Node::File { data: existing, .. }) => {
                existing.extend_from_slice(data);
                Ok(())
            }
            Some(Node::Symlink { .. }) => Err(refused(OP, path, "it is a symlink")),
            Some(Node::Dir { .. }) => Err(refused(OP, path, "not a regular file")),
            None => {
                self.replace(entry, Node::File { data: data.to_vec(), mode: 0o644 });
                Ok(())
            }
        }
    }

    pub(super) fn mkdir_all(&mut self, path: &str, mode: u32) -> Result<(), PluginError> {
        const OP: &str = "create directory";
        check_mode(OP, path, mode)?;
        let mut prefix = String::new();
        for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            let found = match self.resolve(&prefix, true) {
                Ok(at) if at.is_empty() || self.rootfs.contains_key(&at) => Some(at),
                Ok(_) | Err(Fail::NotFound) => None,
                Err(f) => return Err(f.error(OP, path)),
            };
            match found {
                Some(at) if self.is_dir(&at) => {}
                Some(_) => return Err(Fail::NotDir.error(OP, path)),
                None => {
                    // mkdirat(2) never follows a final symlink: a dangling one is in the way.
                    let entry = self.entry(OP, &prefix)?;
                    if matches!(self.rootfs.get(&entry), Some(Node::Symlink { .. })) {
                        return Err(refused(OP, path, "a symlink on the way points to nothing inside the rootfs"));
                    }
                    self.replace(entry, Node::Dir { mode });
                }
            }
        }
        Ok(())
    }

    pub(super) fn symlink(&mut self, target: &str, link: &str) -> Result<(), PluginError> {
        const OP: &str = "create symlink";
        let entry = self.entry(OP, link)?;
        if let Some(Node::Dir { .. }) = self.rootfs.get(&entry) {
            return Err(refused(OP, link, "a directory is in the way"));
        }
        self.replace(entry, Node::Symlink { target: target.to_owned() });
        Ok(())
    }

    pub(super) fn hard_link(&mut self, existing: &str, link: &str) -> Result<(), PluginError> {
        const OP: &str = "create hard link";
        let source = self.entry(OP, existing)?;
        let node = match self.rootfs.get(&source) {
            None => return Err(Fail::NotFound.error(OP, existing)),
            Some(Node::Dir { .. }) => return Err(refused(OP, existing, "it is a directory")),
            Some(node) => node.clone(),
        };
        let entry = self.entry(OP, link)?;
        if let Some(Node::Dir { .. }) = self.rootfs.get(&entry) {
            return Err(refused(OP, link, "a directory is in the way"));
        }
        // The same inode: the same owner. (Its data and mode are copied, not
        // shared: a later change through one name does not show through the other.)
        match self.owners.get(&source).copied() {
            Some(owner) => self.owners.insert(entry.clone(), owner),
            None => self.owners.remove(&entry),
        };
        self.rootfs.insert(entry.clone(), node);
        self.hard_links.push((source, entry));
        Ok(())
    }

    /// The existing entry `path` names, a final symlink not followed.
    fn existing_nofollow(&self, op: &str, path: &str) -> Result<String, PluginError> {
        let at = self.resolve(path, false).map_err(|f| f.error(op, path))?;
        if at.is_empty() || self.rootfs.contains_key(&at) { Ok(at) } else { Err(Fail::NotFound.error(op, path)) }
    }

    pub(super) fn set_mode(&mut self, path: &str, new: u32) -> Result<(), PluginError> {
        const OP: &str = "change mode of";
        check_mode(OP, path, new)?;
        let at = self.existing_nofollow(OP, path)?;
        match self.rootfs.get_mut(&at) {
            Some(Node::File { mode, .. } | Node::Dir { mode }) => {
                *mode = new;
                Ok(())
            }
            Some(Node::Symlink { .. }) => Err(refused(OP, path, "it is a symlink")),
            // The root itself: not modelled (it has no node).
            None => Err(refused(OP, path, "the fake rootfs's root has no mode")),
        }
    }

    pub(super) fn set_owner(&mut self, path: &str, uid: u32, gid: u32) -> Result<(), PluginError> {
        const OP: &str = "change owner of";
        let at = self.existing_nofollow(OP, path)?;
        // lchown: a symlink gets its own owner.
        self.owners.insert(at, (uid, gid));
        Ok(())
    }

    pub(super) fn remove(&mut self, path: &str) -> Result<(), PluginError> {
        const OP: &str = "remove";
        let rel = path.trim_start_matches('/').trim_end_matches('/');
        if rel.split('/').all(|c| c.is_empty() || c == ".") {
            return Err(refused(OP, path, "it is the rootfs itself"));
        }
        let entry = match self.entry(OP, path) {
            Ok(entry) => entry,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        // The entry itself, never what a symlink there points to.
        let below = format!("{entry}/");
        let gone = |p: &String| p == &entry || p.starts_with(&below);
        self.rootfs.retain(|p, _| !gone(p));
        self.owners.retain(|p, _| !gone(p));
        Ok(())
    }

    pub(super) fn file_kind(&self, path: &str) -> Result<Option<FileKind>, PluginError> {
        match self.resolve(path, false) {
            Ok(at) if at.is_empty() => Ok(Some(FileKind::Dir)),
            Ok(at) => Ok(self.rootfs.get(&at).map(kind)),
            Err(Fail::NotFound | Fail::NotDir) => Ok(None),
            Err(f) => Err(f.error("inspect", path)),
        }
    }

    pub(super) fn read_dir(&self, path: &str) -> Result<Vec<(String, FileKind)>, PluginError> {
        const OP: &str = "list";
        let at = self.resolve(path, true).map_err(|f| f.error(OP, path))?;
        if !at.is_empty() && !self.rootfs.contains_key(&at) {
            return Err(Fail::NotFound.error(OP, path));
        }
        if !self.is_dir(&at) {
            return Err(Fail::NotDir.error(OP, path));
        }
        let prefix = if at.is_empty() { String::new() } else { format!("{at}/") };
        Ok(self
            .rootfs
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter_map(|(p, node)| {
                let name = &p[prefix.len()..];
                (!name.contains('/')).then(|| (name.to_owned(), kind(node)))
            })
            .collect())
    }
}
