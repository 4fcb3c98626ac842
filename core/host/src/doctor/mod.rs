//! `lxc-tmpl doctor`: is this host ready for lxc-tmpl?
//!
//! What `lxc-checkconfig` checks of the kernel (namespaces, cgroups), plus
//! what lxc-tmpl itself needs: root or a usable user namespace, LXC, the
//! bootstrap tools and archive keyrings of the distro plugins found, qemu
//! through binfmt_misc for foreign architectures, subordinate ids for
//! unprivileged containers, the filesystems and free space of the cache dir
//! and the lxcpath, and the trust of the plugin directories. Each check is
//! one [`Check`]: `ok`, `warn` or `fail`, what was found, and the fix.
//!
//! A `fail` means lxc-tmpl cannot work here as things are (a create will
//! fail); a `warn` means something works less well or only some of it
//! works (one distro, foreign architectures, unprivileged containers).
//!
//! One concept per module; a check that reads `/proc`, `/sys`, `/etc` or
//! `/usr` does so through a [`Probe`], whose root is `/` on the host and a
//! temp dir in the unit tests, where the files are faked:
//!
//! - [`privileges`]: root, or user namespaces an unprivileged user may use;
//! - [`namespaces`]: the kernel namespaces the runner and LXC need;
//! - [`cgroup`]: the cpu, memory and pids controllers (v2, or v1);
//! - [`lxc`]: LXC's tools and version;
//! - [`tools`]: debootstrap (and mmdebstrap, reported);
//! - [`keyrings`]: the archive keyring of each Debian-family plugin found;
//! - [`binfmt`]: qemu handlers in binfmt_misc, for foreign architectures;
//! - [`subids`]: `/etc/subuid` and `/etc/subgid` ranges of the running user;
//! - [`storage`]: reflinks, overlayfs and btrfs for the cache dir and the lxcpath;
//! - [`space`]: free space there;
//! - [`plugins`]: the plugin directories and files, judged by the loader's trust rules.

pub mod binfmt;
pub mod cgroup;
pub mod keyrings;
pub mod lxc;
pub mod namespaces;
pub mod plugins;
pub mod privileges;
pub mod space;
pub mod storage;
pub mod subids;
pub mod tools;

use std::{
    ffi::OsString,
    fmt,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use crate::plugin::{PluginDir, PluginSet};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Ready.
    Ok,
    /// Works, but less well or not for everything (one distro, foreign
    /// architectures, unprivileged containers).
    Warn,
    /// lxc-tmpl cannot work here until it is fixed.
    Fail,
}

impl Status {
    /// `ok`, `warn` or `fail`, as printed and in the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// A short stable name (`debootstrap`, `space:cache-dir`, `keyring:debian`).
    pub name: String,
    /// ok, warn or fail.
    pub status: Status,
    /// What was found, one line.
    pub detail: String,
    /// What to do about a warn or fail (a command where there is one);
    /// `None` for ok.
    pub fix: Option<String>,
}

impl Check {
    /// An ok check.
    pub fn ok(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check { name: name.into(), status: Status::Ok, detail: detail.into(), fix: None }
    }

    /// A warning with its fix.
    pub fn warn(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { name: name.into(), status: Status::Warn, detail: detail.into(), fix: Some(fix.into()) }
    }

    /// A failure with its fix.
    pub fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { name: name.into(), status: Status::Fail, detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// Where the checks look: the root the host's files are read under, the
/// `PATH` tools are looked up in, and who runs.
#[derive(Debug, Clone)]
pub struct Probe {
    /// `/` on the host; a temp dir holding faked files in unit tests.
    pub root: PathBuf,
    /// The directories tools are looked up in by name (`PATH`), as seen
    /// from `root`.
    pub path: OsString,
    /// The effective uid of the process the checks are for.
    pub euid: u32,
}

impl Probe {
    /// This process on this host.
    pub fn here() -> Probe {
        Probe {
            root: PathBuf::from("/"),
            path: std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()),
            euid: nix::unistd::geteuid().as_raw(),
        }
    }

    /// `absolute` (`/proc/filesystems`) below the root.
    pub fn file(&self, absolute: impl AsRef<Path>) -> PathBuf {
        let absolute = absolute.as_ref();
        self.root.join(absolute.strip_prefix("/").unwrap_or(absolute))
    }

    /// The text of `absolute` below the root, `None` when it cannot be read.
    pub fn read(&self, absolute: impl AsRef<Path>) -> Option<String> {
        std::fs::read_to_string(self.file(absolute)).ok()
    }

    /// The first executable regular file called `name` in the `PATH`, as a
    /// path below the root.
    pub fn which(&self, name: &str) -> Option<PathBuf> {
        std::env::split_paths(&self.path)
            .filter(|dir| dir.is_absolute())
            .map(|dir| self.file(dir).join(name))
            .find(|candidate| is_executable_file(candidate))
    }
}

/// Whether `path` (after symlinks) is a regular file someone may execute.
pub fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What the checks look at besides the host: the directories a create
/// would use and the plugins found.
#[derive(Debug, Clone, Copy)]
pub struct Subjects<'a> {
    /// The rootfs cache dir (`--cache-dir`).
    pub cache_dir: &'a Path,
    /// Where containers live (`-P/--lxcpath`).
    pub lxcpath: &'a Path,
    /// The plugin directories searched, in order.
    pub plugin_dirs: &'a [PluginDir],
    /// The plugins found in them.
    pub plugins: &'a PluginSet,
}

/// Runs every check, in the order they are printed.
pub fn run(probe: &Probe, subjects: &Subjects<'_>) -> Vec<Check> {
    let distros: Vec<&str> = subjects.plugins.plugins.iter().map(|p| p.manifest.name.as_str()).collect();
    let mut checks = vec![
        privileges::check(probe),
        namespaces::check(probe),
        cgroup::check(probe),
        lxc::check(probe),
        tools::debootstrap(probe, &distros),
        tools::mmdebstrap(probe),
    ];
    checks.extend(keyrings::check(probe, &distros));
    checks.push(binfmt::check(probe));
    checks.push(subids::check(probe, subids::Kind::Uid));
    checks.push(subids::check(probe, subids::Kind::Gid));
    for (label, dir) in [("cache-dir", subjects.cache_dir), ("lxcpath", subjects.lxcpath)] {
        checks.push(storage::check(probe, label, dir));
        checks.push(space::check(label, dir));
    }
    checks.extend(plugins::check(subjects.plugin_dirs, subjects.plugins));
    checks
}

/// Whether any check failed: `lxc-tmpl doctor` then exits with status 1.
pub fn any_failed(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.status == Status::Fail)
}

/// The nearest existing directory at or above `dir`, for a directory that
/// a create would make: its filesystem is the one that counts.
pub fn existing_ancestor(dir: &Path) -> Option<&Path> {
    dir.ancestors().find(|a| !a.as_os_str().is_empty() && a.is_dir())
}

/// `bytes` for people: `1.5 GiB`, `300 MiB`, `12 KiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures are built with std::fs on purpose
pub(crate) mod testing {
    //! A faked host root for the checks' unit tests.

    use std::{os::unix::fs::PermissionsExt, path::Path};

    use super::Probe;

    /// A temp dir standing for `/`, with `PATH=/usr/bin:/usr/sbin`, probed as root.
    pub struct FakeRoot {
        pub dir: tempfile::TempDir,
        pub probe: Probe,
    }

    impl FakeRoot {
        pub fn new() -> FakeRoot {
            let dir = tempfile::tempdir().unwrap();
            let probe = Probe { root: dir.path().to_owned(), path: "/usr/bin:/usr/sbin".into(), euid: 0 };
            FakeRoot { dir, probe }
        }

        /// Writes `absolute` below the fake root.
        pub fn write(&self, absolute: &str, text: &str) -> &FakeRoot {
            let path = self.probe.file(absolute);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            self
        }

        /// Writes an executable script `absolute` below the fake root.
        pub fn script(&self, absolute: &str, body: &str) -> &FakeRoot {
            self.write(absolute, &format!("#!/bin/sh\n{body}\n"));
            std::fs::set_permissions(self.probe.file(absolute), std::fs::Permissions::from_mode(0o755)).unwrap();
            self
        }

        pub fn path(&self) -> &Path {
            self.dir.path()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doctor_status_orders_and_names() {
        assert!(Status::Ok < Status::Warn && Status::Warn < Status::Fail);
        assert_eq!([Status::Ok, Status::Warn, Status::Fail].map(Status::name), ["ok", "warn", "fail"]);
        assert!(any_failed(&[Check::ok("a", "x"), Check::fail("b", "y", "z")]));
        assert!(!any_failed(&[Check::ok("a", "x"), Check::warn("b", "y", "z")]));
    }

    #[test]
    fn doctor_which_looks_below_the_root_for_executables() {
        let fake = testing::FakeRoot::new();
        fake.write("/usr/bin/plain", "not executable");
        fake.script("/usr/sbin/tool", "true");
        assert_eq!(fake.probe.which("tool"), Some(fake.path().join("usr/sbin/tool")));
        assert_eq!(fake.probe.which("plain"), None);
        assert_eq!(fake.probe.which("missing"), None);
    }

    #[test]
    fn doctor_human_bytes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(300 << 20), "300 MiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }

    #[test]
    fn doctor_existing_ancestor_of_a_dir_not_made_yet() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(existing_ancestor(&dir.path().join("a/b")), Some(dir.path()));
    }
}
