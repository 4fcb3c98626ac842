//! The overlay backing store: the container's rootfs is an overlayfs whose
//! read-only lower layer is a cache generation and whose upper layer holds
//! only what the create and the container itself write.
//!
//! LXC mounts it at start from `lxc.rootfs.path = overlay:LOWER:UPPER`
//! (lxc.container.conf(5)), with the work directory next to the upper one:
//! `UPPER = <container>/overlay/delta`, work `<container>/overlay/work`, the
//! names LXC's own overlay storage uses (`LXC_OVERLAY_DELTA_PATH` and
//! `LXC_OVERLAY_WORK_DIR` in src/lxc/storage/storage_utils.h). lxc-destroy
//! removes only the upper directory, never the lower.
//!
//! During the create the hooks write into the merged tree, so lxc-tmpl mounts
//! the same overlay on the container's `rootfs` directory for the length of
//! the create. The mount is made in lxc-tmpl's own mount namespace (see
//! [`private_mount_namespace`]): it is never visible on the host, and it
//! goes away with the process however the process ends, SIGKILL included.
//! [`MountedOverlay`] unmounts it earlier, when the create is done with it.
//!
//! Writes through the overlay reach only the upper directory (overlayfs
//! copies a file up before changing it), so the cache is never modified
//! through a container; the cache keeps the generation for as long as the
//! container names it (see `crate::cache`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use thiserror::Error;

use crate::sys::Syscall;

/// Why an overlay rootfs could not be set up.
#[derive(Debug, Error)]
pub enum OverlayError {
    /// A path that cannot be written into overlayfs mount options or an LXC
    /// `overlay:` value, which separate layers with `:` and options with `,`.
    #[error(
        "{0} cannot be an overlay layer: its path contains ':', ',' or whitespace; choose a cache dir and lxcpath without them"
    )]
    UnusablePath(PathBuf),
    /// A directory of the layout could not be created.
    #[error("cannot create {path}")]
    Create {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused the mount.
    #[error(
        "cannot mount an overlay on {target} (lower {lower}): {errno}; the kernel needs overlayfs \
         (modprobe overlay) and an lxcpath on a filesystem that can hold an overlay upper layer \
         (not overlayfs or NFS); or use --backing dir"
    )]
    Mount {
        /// The mount point.
        target: PathBuf,
        /// The lower layer.
        lower: PathBuf,
        /// What mount(2) said.
        errno: nix::Error,
    },
    /// lxc-tmpl runs without a mount namespace of its own.
    #[error(
        "cannot mount an overlay: lxc-tmpl has no private mount namespace ({0}), and a mount made \
         without one could outlive it; run it as root, or use --backing dir"
    )]
    NoPrivateNamespace(String),
}

/// The directories of a container's overlay rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayLayout {
    /// The upper layer: `<container>/overlay/delta`.
    pub upper: PathBuf,
    /// overlayfs's work directory: `<container>/overlay/work`, on the upper
    /// layer's filesystem as overlayfs requires.
    pub work: PathBuf,
}

impl OverlayLayout {
    /// `<container>/overlay`, holding both directories.
    pub fn base(&self) -> &Path {
        self.upper.parent().expect("the upper layer is inside overlay/")
    }

    /// The layout inside `container_dir`, as LXC's overlay storage names it.
    pub fn of(container_dir: &Path) -> Self {
        let base = container_dir.join("overlay");
        Self { upper: base.join("delta"), work: base.join("work") }
    }

    /// The `lxc.rootfs.path` value for `lower` under this layout:
    /// `overlay:<lower>:<upper>`.
    ///
    /// # Errors
    /// [`OverlayError::UnusablePath`] for a path LXC could not split again.
    pub fn rootfs_value(&self, lower: &Path) -> Result<String, OverlayError> {
        Ok(format!("overlay:{}:{}", layer(lower)?, layer(&self.upper)?))
    }

    /// overlayfs's mount options for `lower` under this layout
    /// (Documentation/filesystems/overlayfs.rst).
    fn mount_options(&self, lower: &Path) -> Result<String, OverlayError> {
        Ok(format!("lowerdir={},upperdir={},workdir={}", layer(lower)?, layer(&self.upper)?, layer(&self.work)?))
    }
}

/// A path as one layer of an overlay value or option string.
fn layer(path: &Path) -> Result<&str, OverlayError> {
    path.to_str()
        .filter(|p| !p.contains([':', ',']) && !p.contains(char::is_whitespace))
        .ok_or_else(|| OverlayError::UnusablePath(path.to_owned()))
}

/// The outcome of [`enter_private_mount_namespace`], if it was called.
static NAMESPACE: OnceLock<Result<(), String>> = OnceLock::new();

/// Moves lxc-tmpl into a private mount namespace ([`private_mount_namespace`])
/// and remembers whether that worked, for [`MountedOverlay::mount`]. The
/// front end calls it first thing for a create, before any thread exists.
pub fn enter_private_mount_namespace() {
    let outcome = private_mount_namespace(&crate::sys::LinuxSyscall).map_err(|e| e.to_string());
    let _ = NAMESPACE.set(outcome);
}

fn namespace_status() -> Result<(), &'static str> {
    match NAMESPACE.get() {
        Some(Ok(())) => Ok(()),
        Some(Err(why)) => Err(why.as_str()),
        None => Err("the front end did not ask for one"),
    }
}

/// Gives the calling process a mount namespace of its own that receives the
/// host's mount events but sends none back (`unshare(CLONE_NEWNS)`, then
/// `MS_SLAVE|MS_REC` on `/`, mount_namespaces(7)). Must run before the
/// process starts a thread: `unshare` refuses `CLONE_NEWNS` in a process
/// whose threads share its filesystem information (unshare(2), EINVAL).
///
/// # Errors
/// What `unshare` or `mount` said: EPERM without CAP_SYS_ADMIN, EINVAL once
/// threads exist.
pub fn private_mount_namespace(sys: &dyn Syscall) -> nix::Result<()> {
    sys.unshare(CloneFlags::CLONE_NEWNS)?;
    sys.make_rslave_root()
}

/// An overlay mounted on a container's rootfs directory for the create;
/// unmounted (lazily, `MNT_DETACH`) when dropped.
#[derive(Debug)]
pub struct MountedOverlay {
    target: PathBuf,
    lower: PathBuf,
}

impl MountedOverlay {
    /// Creates the layout in `container_dir` and mounts `lower` + that layout
    /// on `target` (the container's empty `rootfs` directory).
    ///
    /// Only in the private mount namespace [`enter_private_mount_namespace`]
    /// made: a mount made without one could outlive an interrupted lxc-tmpl.
    ///
    /// # Errors
    /// [`OverlayError`], naming the path or the kernel's answer and the fix.
    /// The layout directories this call made are removed again.
    pub fn mount(sys: &dyn Syscall, lower: &Path, container_dir: &Path, target: &Path) -> Result<Self, OverlayError> {
        Self::mount_in(sys, namespace_status(), lower, container_dir, target)
    }

    fn mount_in(
        sys: &dyn Syscall,
        namespace: Result<(), &str>,
        lower: &Path,
        container_dir: &Path,
        target: &Path,
    ) -> Result<Self, OverlayError> {
        namespace.map_err(|why| OverlayError::NoPrivateNamespace(why.to_owned()))?;
        let layout = OverlayLayout::of(container_dir);
        let options = layout.mount_options(lower)?;
        // The container directory is this create's, under the lxcpath root chose.
        #[allow(clippy::disallowed_methods)]
        let made = [&layout.upper, &layout.work]
            .into_iter()
            .try_for_each(|dir| {
                std::fs::create_dir_all(dir).map_err(|source| OverlayError::Create { path: dir.clone(), source })
            })
            .and_then(|()| {
                sys.mount(Some(Path::new("overlay")), target, Some("overlay"), MsFlags::empty(), Some(&options))
                    .map_err(|errno| OverlayError::Mount { target: target.to_owned(), lower: lower.to_owned(), errno })
            });
        if let Err(e) = made {
            #[allow(clippy::disallowed_methods)] // what this call made, just above
            let _ = std::fs::remove_dir_all(layout.base());
            return Err(e);
        }
        Ok(Self { target: target.to_owned(), lower: lower.to_owned() })
    }

    /// Its lower layer (the cache generation's rootfs).
    pub fn lower(&self) -> &Path {
        &self.lower
    }
}

impl Drop for MountedOverlay {
    fn drop(&mut self) {
        // Nothing is left to do on failure: the mount is in lxc-tmpl's own
        // namespace and goes with it.
        let _ = crate::sys::unmount_detached(&self.target);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{Call, RecordingSyscall};

    #[test]
    fn layout_and_rootfs_value_follow_lxc() {
        let layout = OverlayLayout::of(Path::new("/var/lib/lxc/c1"));
        assert_eq!(layout.upper, Path::new("/var/lib/lxc/c1/overlay/delta"));
        assert_eq!(layout.work, Path::new("/var/lib/lxc/c1/overlay/work"));
        assert_eq!(
            layout.rootfs_value(Path::new("/var/cache/lxc-tmpl/debian/ab/gen.1.0/rootfs")).unwrap(),
            "overlay:/var/cache/lxc-tmpl/debian/ab/gen.1.0/rootfs:/var/lib/lxc/c1/overlay/delta"
        );
        assert!(matches!(layout.rootfs_value(Path::new("/odd:dir/rootfs")), Err(OverlayError::UnusablePath(_))));
        assert!(matches!(layout.rootfs_value(Path::new("/odd,dir/rootfs")), Err(OverlayError::UnusablePath(_))));
    }

    #[test]
    fn the_mount_names_all_three_layers_and_needs_a_private_namespace() {
        let ct = tempfile::tempdir().unwrap();
        let sys = RecordingSyscall::new();
        let refused = MountedOverlay::mount_in(&sys, Err("EPERM"), Path::new("/c/rootfs"), ct.path(), Path::new("/t"));
        assert!(matches!(refused, Err(OverlayError::NoPrivateNamespace(_))));
        assert!(sys.calls().is_empty(), "nothing may be mounted without a private namespace");

        let mounted =
            MountedOverlay::mount_in(&sys, Ok(()), Path::new("/c/rootfs"), ct.path(), Path::new("/t")).unwrap();
        let Call::Mount { fstype, data, target, .. } = &sys.calls()[0] else { panic!("{:?}", sys.calls()) };
        assert_eq!((fstype.as_deref(), target.as_path()), (Some("overlay"), Path::new("/t")));
        let ct = ct.path().display();
        assert_eq!(
            data.as_deref(),
            Some(format!("lowerdir=/c/rootfs,upperdir={ct}/overlay/delta,workdir={ct}/overlay/work").as_str())
        );
        assert!(Path::new(&format!("{ct}/overlay/work")).is_dir());
        assert_eq!(mounted.lower(), Path::new("/c/rootfs"));
        // Dropping it unmounts /t, which is not a mount point here: that must not panic.
        drop(mounted);
    }

    #[test]
    fn a_private_namespace_is_unshare_then_rslave() {
        let sys = RecordingSyscall::new();
        private_mount_namespace(&sys).unwrap();
        assert_eq!(sys.calls(), vec![Call::Unshare(CloneFlags::CLONE_NEWNS), Call::MakeRslaveRoot]);
    }
}
