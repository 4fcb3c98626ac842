//! Backing stores: how a container's rootfs is made from a cache entry.
//!
//! lxc-create chooses one with `-B` (`dir`, `overlay`, `btrfs`, ...): a full copy of the cached
//! rootfs, an overlay whose read-only lower layer is the cache, or a snapshot of a subvolume.
//! Whichever is used, the container must see exactly the files of the cache entry, with their
//! owners, modes, times, extended attributes (file capabilities, ACLs) and hard links.
//!
//! - [`copy`]: the engine of the `dir` backing store, a faithful parallel copy that shares data
//!   blocks (reflinks) where the filesystem can;
//! - [`overlay`]: the cache generation as the read-only lower layer of an overlayfs;
//! - [`btrfs`]: a snapshot of the cached rootfs subvolume.
//!
//! [`Backing`] is the choice (`-B/--backing`); `crate::create` carries it out.

pub mod btrfs;
pub mod copy;
pub mod overlay;

use std::fmt;

/// The backing store asked for with `-B/--backing`, as lxc-create's `-B`
/// names them (lxc-create(1)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backing {
    /// A copy of the cached rootfs in the container directory, with reflinks
    /// where the filesystem can: the container does not depend on the cache.
    /// The default, as for lxc-create.
    #[default]
    Dir,
    /// An overlayfs over the cache generation ([`overlay`]): near-instant,
    /// and the container keeps that generation in the cache.
    Overlay,
    /// A snapshot of the cached rootfs subvolume ([`btrfs`]).
    Btrfs,
    /// The fastest the filesystems allow: btrfs when the cache and the
    /// lxcpath share a btrfs filesystem, else overlay for a privileged
    /// container, else dir. The create says which it used.
    Auto,
}

impl Backing {
    /// The name used on the command line and in `lxc.rootfs.path`.
    pub fn name(self) -> &'static str {
        match self {
            Backing::Dir => "dir",
            Backing::Overlay => "overlay",
            Backing::Btrfs => "btrfs",
            Backing::Auto => "auto",
        }
    }

    /// Parses a `--backing` value.
    ///
    /// # Errors
    /// A message naming the accepted values.
    pub fn parse(value: &str) -> Result<Self, String> {
        [Backing::Dir, Backing::Overlay, Backing::Btrfs, Backing::Auto]
            .into_iter()
            .find(|b| b.name() == value)
            .ok_or_else(|| format!("unknown backing store '{value}': choose dir, overlay, btrfs or auto"))
    }
}

impl fmt::Display for Backing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
