//! Backing stores: how a container's rootfs is made from a cache entry.
//!
//! lxc-create chooses one with `-B` (`dir`, `overlay`, `btrfs`, ...): a full copy of the cached
//! rootfs, an overlay whose read-only lower layer is the cache, or a snapshot of a subvolume.
//! Whichever is used, the container must see exactly the files of the cache entry, with their
//! owners, modes, times, extended attributes (file capabilities, ACLs) and hard links.
//!
//! Only [`copy`] exists for now: the engine of the `dir` backing store, a faithful parallel copy
//! that shares data blocks (reflinks) where the filesystem can.

pub mod copy;
