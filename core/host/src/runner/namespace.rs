//! The namespaces of a run and what PID 1 mounts in them before `chroot`.
//!
//! Every mount target is resolved inside the rootfs by [`Rootfs`] and mounted through
//! `/proc/self/fd/N`, so a symlink in the rootfs (`dev -> /dev`, `proc -> /host/path`) cannot
//! redirect a mount to a host path. `/` is made a recursive slave first, so nothing mounted here
//! propagates back to the host.

// Paths here are rootfs paths: every write goes through `Rootfs` (clippy.toml).
#![deny(clippy::disallowed_methods)]

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;

use super::protocol::Place;
use super::saved::RESOLV_CONF;
use crate::rootfs::{Rootfs, RootfsError};
use crate::sys::{self, Syscall};

/// The host's resolver config, bound read-only over the rootfs's for downloads.
const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";

/// A step of the in-namespace setup that failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum SetupError {
    #[error("{step}")]
    Sys {
        step: String,
        #[source]
        source: Errno,
    },
    #[error("{step}")]
    Rootfs {
        step: String,
        #[source]
        source: RootfsError,
    },
}

fn sys_step(step: impl Into<String>) -> impl FnOnce(Errno) -> SetupError {
    let step = step.into();
    move |source| SetupError::Sys { step, source }
}

/// The namespaces a command gets: mount and PID always (no mount leaks, no process survives
/// the run); UTS and IPC too inside a rootfs, where the command gets its own hostname.
pub(super) fn namespaces_for(place: &Place) -> (CloneFlags, &'static str) {
    match place {
        Place::Rootfs { .. } => (
            CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC,
            "unshare mount, PID, UTS and IPC namespaces",
        ),
        Place::Host => (CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID, "unshare mount and PID namespaces"),
    }
}

/// Helper side, before the fork: die with the parent, then new namespaces, then stop mount
/// propagation to the host before anything is mounted.
pub(super) fn enter_namespaces(sys: &dyn Syscall, place: &Place) -> Result<(), SetupError> {
    sys.set_pdeathsig(Signal::SIGKILL).map_err(sys_step("set the parent-death signal"))?;
    let (flags, step) = namespaces_for(place);
    sys.unshare(flags).map_err(sys_step(step))?;
    sys.make_rslave_root().map_err(sys_step("make / a recursive slave mount"))
}

/// What to mount onto, resolved inside the rootfs when the step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Dir(&'static str),
    File(&'static str),
}

/// One mount of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MountStep {
    source: &'static str,
    target: Target,
    fstype: Option<&'static str>,
    flags: MsFlags,
    data: Option<&'static str>,
    /// Bind mounts ignore MS_RDONLY on creation; a second, remounting call applies it.
    remount_ro: bool,
    /// A host directory to bind (recursively) instead when the mount is not
    /// permitted: inside a user namespace (lxc-tmpl run by an unprivileged
    /// lxc-create) sysfs can only be mounted with a network namespace of
    /// that user namespace, which the runner does not create.
    fallback_bind: Option<&'static str>,
}

/// Host device nodes bound into the rootfs's private `/dev`.
const DEV_NODES: [(&str, &str); 6] = [
    ("/dev/null", "dev/null"),
    ("/dev/zero", "dev/zero"),
    ("/dev/full", "dev/full"),
    ("/dev/random", "dev/random"),
    ("/dev/urandom", "dev/urandom"),
    ("/dev/tty", "dev/tty"),
];

/// Symlinks created in `/dev` after `chroot`.
const DEV_LINKS: [(&str, &str); 5] = [
    ("pts/ptmx", "/dev/ptmx"),
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
];

/// Everything PID 1 sets up before `chroot`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MountPlan {
    root: PathBuf,
    hostname: Option<String>,
    mounts: Vec<MountStep>,
}

impl MountPlan {
    pub(super) fn new(root: &Path, hostname: Option<&str>, bind_resolv_conf: bool) -> MountPlan {
        let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        let mut mounts = vec![
            MountStep {
                source: "proc",
                target: Target::Dir("proc"),
                fstype: Some("proc"),
                flags: nosuid_nodev_noexec,
                data: None,
                remount_ro: false,
                fallback_bind: None,
            },
            MountStep {
                source: "sysfs",
                target: Target::Dir("sys"),
                fstype: Some("sysfs"),
                flags: nosuid_nodev_noexec | MsFlags::MS_RDONLY,
                data: None,
                remount_ro: false,
                fallback_bind: Some("/sys"),
            },
            // Not nodev: the device nodes bound in below must work.
            MountStep {
                source: "tmpfs",
                target: Target::Dir("dev"),
                fstype: Some("tmpfs"),
                flags: MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
                data: Some("mode=755,size=65536k"),
                remount_ro: false,
                fallback_bind: None,
            },
        ];
        mounts.extend(DEV_NODES.iter().map(|(host, inside)| MountStep {
            source: host,
            target: Target::File(inside),
            fstype: None,
            flags: MsFlags::MS_BIND,
            data: None,
            remount_ro: false,
            fallback_bind: None,
        }));
        mounts.extend([
            // A private devpts instance: the command cannot reach the host's ptys.
            MountStep {
                source: "devpts",
                target: Target::Dir("dev/pts"),
                fstype: Some("devpts"),
                flags: MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
                data: Some("newinstance,ptmxmode=0666,mode=0620"),
                remount_ro: false,
                fallback_bind: None,
            },
            MountStep {
                source: "tmpfs",
                target: Target::Dir("dev/shm"),
                fstype: Some("tmpfs"),
                flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                data: Some("mode=1777"),
                remount_ro: false,
                fallback_bind: None,
            },
        ]);
        if bind_resolv_conf {
            mounts.push(MountStep {
                source: HOST_RESOLV_CONF,
                target: Target::File(RESOLV_CONF),
                fstype: None,
                flags: MsFlags::MS_BIND,
                data: None,
                remount_ro: true,
                fallback_bind: None,
            });
        }
        MountPlan { root: root.to_path_buf(), hostname: hostname.map(str::to_owned), mounts }
    }
}

/// PID 1 side: hostname, mounts, chroot and `/dev` links, in that order.
///
/// Every mount target is resolved inside the rootfs by [`Rootfs`] and mounted through
/// `/proc/self/fd/N`, so `dev -> /dev` or `proc -> /host/path` in a hostile rootfs resolves
/// inside the rootfs, never to a host path.
pub(super) fn setup_in_namespace(sys: &dyn Syscall, plan: &MountPlan) -> Result<(), SetupError> {
    if let Some(hostname) = &plan.hostname {
        sys.sethostname(hostname).map_err(sys_step(format!("set the hostname to {hostname}")))?;
    }
    let rootfs =
        Rootfs::open(&plan.root).map_err(|source| SetupError::Rootfs { step: "open the rootfs".into(), source })?;
    for step in &plan.mounts {
        let (path, fd) = open_target(&rootfs, step.target)?;
        let what = format!("mount {} on {path} inside {}", step.source, plan.root.display());
        let mounted =
            sys.mount(Some(Path::new(step.source)), &sys::proc_fd_path(&fd), step.fstype, step.flags, step.data);
        match (mounted, step.fallback_bind) {
            (Ok(()), _) => {}
            (Err(Errno::EPERM), Some(host)) => sys
                .mount(Some(Path::new(host)), &sys::proc_fd_path(&fd), None, MsFlags::MS_BIND | MsFlags::MS_REC, None)
                .map_err(sys_step(format!("bind {host} on {path} inside {}", plan.root.display())))?,
            (Err(e), _) => return Err(sys_step(what.clone())(e)),
        }
        if step.remount_ro {
            // The old fd still names the inode *under* the new mount; resolve again to reach
            // the bind mount itself.
            let (_, fd) = open_target(&rootfs, step.target)?;
            sys.mount(
                None,
                &sys::proc_fd_path(&fd),
                None,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | step.flags,
                None,
            )
            .map_err(sys_step(format!("{what} (read-only remount)")))?;
        }
    }
    sys.chroot(&plan.root).map_err(sys_step(format!("chroot into {}", plan.root.display())))?;
    sys.chdir(Path::new("/")).map_err(sys_step("chdir to / in the new root"))?;
    for (target, link) in DEV_LINKS {
        sys.symlink(Path::new(target), Path::new(link)).map_err(sys_step(format!("create {link}")))?;
    }
    Ok(())
}

fn open_target(rootfs: &Rootfs, target: Target) -> Result<(&'static str, OwnedFd), SetupError> {
    let (path, fd) = match target {
        Target::Dir(path) => (path, rootfs.open_dir(path)),
        Target::File(path) => (path, rootfs.open_file_path(path)),
    };
    let fd = fd.map_err(|source| SetupError::Rootfs { step: format!("prepare the mount point {path}"), source })?;
    Ok((path, fd))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures are built with std::fs on purpose
mod tests {
    use super::*;
    use crate::sys::{Call, RecordingSyscall};

    #[test]
    fn runner_enter_namespaces_sequence() {
        let sys = RecordingSyscall::new();
        let rootfs = Place::Rootfs { root: "/r".into(), hostname: None, bind_resolv_conf: false };
        enter_namespaces(&sys, &rootfs).unwrap();
        assert_eq!(
            sys.calls(),
            vec![
                Call::SetPdeathsig(Signal::SIGKILL),
                Call::Unshare(
                    CloneFlags::CLONE_NEWNS
                        | CloneFlags::CLONE_NEWPID
                        | CloneFlags::CLONE_NEWUTS
                        | CloneFlags::CLONE_NEWIPC
                ),
                Call::MakeRslaveRoot,
            ]
        );
        // A failing unshare stops before anything is mounted.
        let sys = RecordingSyscall::failing_at(1);
        assert!(enter_namespaces(&sys, &rootfs).is_err());
        assert_eq!(sys.calls().len(), 2);
        // A host command gets a private mount and PID namespace, and keeps the host's name.
        let sys = RecordingSyscall::new();
        enter_namespaces(&sys, &Place::Host).unwrap();
        assert_eq!(sys.calls()[1], Call::Unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID));
        assert_eq!(sys.calls()[2], Call::MakeRslaveRoot);
    }

    /// (source, resolved target relative to the root, fstype, flags, data) of each mount.
    type MountSummary = (Option<PathBuf>, PathBuf, Option<String>, MsFlags, Option<String>);

    fn mounts(calls: &[Call], root: &Path) -> Vec<MountSummary> {
        calls
            .iter()
            .filter_map(|c| match c {
                Call::Mount { source, target, resolved_target, fstype, flags, data } => {
                    assert!(target.starts_with("/proc/self/fd/"), "{target:?}");
                    let resolved = resolved_target.clone().expect("fd target resolves");
                    let inside = resolved
                        .strip_prefix(root)
                        .unwrap_or_else(|_| panic!("{resolved:?} is outside {root:?}"))
                        .to_path_buf();
                    Some((source.clone(), inside, fstype.clone(), *flags, data.clone()))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn runner_setup_sequence() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("rootfs");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        let plan = MountPlan::new(&root, Some("web1"), true);
        let sys = RecordingSyscall::new();
        setup_in_namespace(&sys, &plan).unwrap();
        let calls = sys.calls();

        assert_eq!(calls[0], Call::Sethostname("web1".into()));
        let mounts = mounts(&calls, &root);
        let targets: Vec<_> = mounts.iter().map(|m| m.1.to_str().unwrap().to_owned()).collect();
        assert_eq!(
            targets,
            [
                "proc",
                "sys",
                "dev",
                "dev/null",
                "dev/zero",
                "dev/full",
                "dev/random",
                "dev/urandom",
                "dev/tty",
                "dev/pts",
                "dev/shm",
                "etc/resolv.conf",
                "etc/resolv.conf",
            ]
        );
        let proc = &mounts[0];
        assert_eq!(proc.2.as_deref(), Some("proc"));
        assert_eq!(proc.3, MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
        assert!(mounts[1].3.contains(MsFlags::MS_RDONLY));
        assert_eq!(mounts[2].4.as_deref(), Some("mode=755,size=65536k"));
        assert_eq!(mounts[3].0.as_deref(), Some(Path::new("/dev/null")));
        assert_eq!(mounts[3].3, MsFlags::MS_BIND);
        assert_eq!(mounts[9].4.as_deref(), Some("newinstance,ptmxmode=0666,mode=0620"));
        assert_eq!(mounts[11].0.as_deref(), Some(Path::new("/etc/resolv.conf")));
        assert!(mounts[12].3.contains(MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_BIND));

        // chroot and chdir come after every mount, the /dev links after chroot.
        let chroot_at = calls.iter().position(|c| *c == Call::Chroot(root.clone())).unwrap();
        assert!(calls[..chroot_at].iter().all(|c| !matches!(c, Call::Symlink { .. })));
        assert!(calls[chroot_at..].iter().all(|c| !matches!(c, Call::Mount { .. })));
        assert_eq!(calls[chroot_at + 1], Call::Chdir("/".into()));
        assert_eq!(calls[chroot_at + 2], Call::Symlink { target: "pts/ptmx".into(), link: "/dev/ptmx".into() });
        assert_eq!(calls.len(), chroot_at + 2 + DEV_LINKS.len());
    }

    #[test]
    fn sysfs_falls_back_to_a_bind_when_not_permitted() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("rootfs");
        std::fs::create_dir_all(&root).unwrap();
        let plan = MountPlan::new(&root, None, false);
        // Call 1 is the sysfs mount: EPERM, as inside a user namespace.
        let sys = RecordingSyscall::failing_at(1);
        setup_in_namespace(&sys, &plan).unwrap();
        let mounts = mounts(&sys.calls(), &root);
        assert_eq!(mounts[1].2.as_deref(), Some("sysfs"));
        assert_eq!((mounts[2].0.as_deref(), mounts[2].1.to_str()), (Some(Path::new("/sys")), Some("sys")));
        assert_eq!(mounts[2].3, MsFlags::MS_BIND | MsFlags::MS_REC);
        // Mounts without a fallback still fail.
        let sys = RecordingSyscall::failing_at(0);
        assert!(setup_in_namespace(&sys, &plan).is_err());
    }

    #[test]
    fn runner_setup_targets_stay_inside_hostile_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("rootfs");
        let victim = tmp.path().join("victim");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&victim).unwrap();
        // dev and proc point at a "host" directory by absolute path.
        std::os::unix::fs::symlink(&victim, root.join("dev")).unwrap();
        std::os::unix::fs::symlink(&victim, root.join("proc")).unwrap();
        let plan = MountPlan::new(&root, None, false);
        // While the links dangle inside the root, setup fails before mounting anything.
        let sys = RecordingSyscall::new();
        assert!(setup_in_namespace(&sys, &plan).is_err());
        assert!(sys.calls().is_empty());
        // Once their targets exist inside the root, every mount lands there.
        std::fs::create_dir_all(root.join(victim.strip_prefix("/").unwrap())).unwrap();
        let sys = RecordingSyscall::new();
        setup_in_namespace(&sys, &plan).unwrap();
        let calls = sys.calls();
        // mounts() panics if a target resolves outside the root.
        let mounts = mounts(&calls, &root);
        assert!(!mounts.is_empty());
        assert!(std::fs::read_dir(&victim).unwrap().next().is_none());
    }

    #[test]
    fn runner_setup_stops_at_first_failure() {
        let tmp = tempfile::tempdir().unwrap();
        let plan = MountPlan::new(tmp.path(), None, false);
        let sys = RecordingSyscall::failing_at(0);
        let err = setup_in_namespace(&sys, &plan).unwrap_err();
        let text = crate::report::error_chain(&err);
        assert!(text.contains("mount proc on proc"), "{text}");
        assert_eq!(sys.calls().len(), 1);
    }
}
