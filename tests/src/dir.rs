//! [`TestDir`]: one private directory per test.

use std::{
    fs,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::Command,
};

use crate::{
    command::TestCommand,
    container::Container,
    paths::{self, Fixture},
    snapshot,
};

/// Where all test dirs live: world-traversable, so that a test can run the
/// binary as an unprivileged user.
const BASE: &str = "/tmp/lxc-tmpl-tests";

/// Names the directory, below [`BASE`], to make the test dirs in instead of
/// [`BASE`] itself. `tests/run` points it at a scratch ext4 file system it
/// mounts there without write barriers: debootstrap's dpkg syncs every file
/// it unpacks, and on the CI disk those syncs, not the work, took two thirds
/// of each cold build.
pub const DIRS_ENV: &str = "LXC_TMPL_TEST_DIRS";

/// The safe base config every test container starts from (`-f safe.conf`).
pub const SAFE_CONF: &str = "lxc.net.0.type = empty\nlxc.apparmor.profile = unconfined\nlxc.start.auto = 0\n";

/// Panics, naming the fix, if a system plugin directory holds a plugin.
fn no_installed_plugins() {
    for dir in ["/usr/local/lib/lxc-tmpl/plugins", "/usr/lib/lxc-tmpl/plugins"] {
        let installed: Vec<String> = fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|name| name.ends_with(".so"))
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            installed.is_empty(),
            "plugins are installed in {dir} ({}): lxc-tmpl would load them before the ones this build made; \
             remove them (dpkg -r lxc-tmpl, or delete the files) to run the tests",
            installed.join(", ")
        );
    }
}

/// Set to keep test dirs after the test, for debugging (containers are still
/// stopped and destroyed).
const KEEP_ENV: &str = "LXC_TMPL_KEEP_TEST_DIRS";

/// A fresh directory for one test:
///
/// ```text
/// /tmp/lxc-tmpl-tests/<name>-XXXXXX/  ($LXC_TMPL_TEST_DIRS/<name>-XXXXXX/ if set)
///     lxcpath/    the private lxcpath (-P)
///     cache/      the private cache dir (--cache-dir)
///     plugins/    $LXC_TMPL_PLUGIN_PATH
///     logs/       $LXC_TMPL_LOG_DIR: create logs (made by the first create)
///     safe.conf   the safe base config (-f)
/// ```
///
/// All of it mode 0755 and owned by root. Dropping it kills processes the
/// binary left in it, detaches mounts left below it and removes it.
#[derive(Debug)]
pub struct TestDir {
    root: PathBuf,
}

impl TestDir {
    /// Makes the directory for the test called `name`.
    pub fn new(name: &str) -> TestDir {
        let base = base();
        fs::create_dir_all(&base).unwrap_or_else(|e| panic!("cannot create {}: {e}", base.display()));
        set_mode(Path::new(BASE), 0o755);
        set_mode(&base, 0o755);
        let root = tempfile::Builder::new()
            .prefix(&format!("{name}-"))
            .tempdir_in(&base)
            .unwrap_or_else(|e| panic!("cannot create a test dir in {}: {e}", base.display()))
            .keep();
        set_mode(&root, 0o755);
        let dir = TestDir { root };
        for sub in ["lxcpath", "cache", "plugins"] {
            dir.mkdir(sub);
        }
        dir.write("safe.conf", SAFE_CONF);
        dir
    }

    /// The test dir itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The private lxcpath.
    pub fn lxcpath(&self) -> PathBuf {
        self.root.join("lxcpath")
    }

    /// The private cache dir.
    pub fn cache(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// The plugin dir `$LXC_TMPL_PLUGIN_PATH` points at.
    pub fn plugins(&self) -> PathBuf {
        self.root.join("plugins")
    }

    /// The safe base config.
    pub fn safe_conf(&self) -> PathBuf {
        self.root.join("safe.conf")
    }

    /// Creates `relative` (and parents) with mode 0755 and returns its path.
    pub fn mkdir(&self, relative: &str) -> PathBuf {
        let path = self.root.join(relative);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        set_mode(&path, 0o755);
        path
    }

    /// Writes a file (parents created) and returns its path.
    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.root.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
        }
        fs::write(&path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// Copies a fixture library into the plugin dir (mode 0644) and returns
    /// its path there.
    pub fn add_plugin(&self, fixture: Fixture) -> PathBuf {
        let dest = self.plugins().join(fixture.file_name());
        fs::copy(fixture.path(), &dest).unwrap_or_else(|e| panic!("cannot copy {fixture:?}: {e}"));
        set_mode(&dest, 0o644);
        dest
    }

    /// The `lxc-tmpl` binary with `$LXC_TMPL_PLUGIN_PATH` set to this test's
    /// plugin dir, run from the test dir.
    ///
    /// Panics when plugins are installed system-wide: they come before the
    /// ones built next to the binary (see the host's `plugin::discovery`), so
    /// the tests would run someone else's plugins.
    pub fn command(&self) -> TestCommand {
        no_installed_plugins();
        self.command_with(&paths::binary())
    }

    /// Like [`command`](Self::command), for another copy of the binary.
    pub fn command_with(&self, binary: &Path) -> TestCommand {
        let mut cmd = TestCommand::new(binary);
        cmd.env("LXC_TMPL_PLUGIN_PATH", self.plugins()).env("LXC_TMPL_LOG_DIR", self.logs()).current_dir(&self.root);
        cmd
    }

    /// Where the creates of this test write their logs (`$LXC_TMPL_LOG_DIR`).
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// The log files of this test's creates, oldest name first.
    pub fn log_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = match fs::read_dir(self.logs()) {
            Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        files
    }

    /// `lxc-tmpl create --distro <distro> --name <name>` into the private
    /// lxcpath and cache dir, from the safe base config. Add distro options
    /// and run it.
    pub fn create(&self, distro: &str, name: &str) -> TestCommand {
        let mut cmd = self.command();
        cmd.arg("create").args(["--distro", distro, "--name", name]).arg("-P").arg(self.lxcpath());
        cmd.arg("-f").arg(self.safe_conf()).arg("--cache-dir").arg(self.cache());
        cmd
    }

    /// A guard for the container `name` of the private lxcpath: it is
    /// stopped and destroyed when the guard is dropped.
    pub fn container(&self, name: &str) -> Container {
        Container::new(&self.lxcpath(), name, &self.root)
    }

    /// A snapshot of the whole test dir (see [`snapshot::tree`]).
    pub fn snapshot(&self) -> String {
        // Create logs are kept on purpose, also after a refused create (the error names its
        // log): they are not "something left behind".
        snapshot::tree(&self.root).lines().filter(|l| !l.starts_with("./logs")).map(|l| format!("{l}\n")).collect()
    }

    /// Copies the binary and the plugin libraries next to it into
    /// `<test dir>/bin/` if a user other than root could not run them where
    /// they are; returns the binary to run.
    pub fn binary_for_others(&self) -> PathBuf {
        let binary = paths::binary();
        let plugin = paths::busybox_plugin();
        if world_usable(&binary, true) && world_usable(&plugin, false) {
            return binary;
        }
        let bin = self.mkdir("bin");
        let copy = bin.join("lxc-tmpl");
        fs::copy(&binary, &copy).expect("cannot copy the binary");
        set_mode(&copy, 0o755);
        let plugin_copy = bin.join(plugin.file_name().expect("plugin file name"));
        fs::copy(&plugin, &plugin_copy).expect("cannot copy the busybox plugin");
        set_mode(&plugin_copy, 0o644);
        copy
    }
}

/// The directory the test dirs are made in: `$LXC_TMPL_TEST_DIRS` or
/// [`BASE`]. Panics when the variable names a place outside [`BASE`]: the
/// container and mount guards accept nothing else.
fn base() -> PathBuf {
    match std::env::var_os(DIRS_ENV).filter(|v| !v.is_empty()) {
        None => PathBuf::from(BASE),
        Some(dir) => {
            let dir = PathBuf::from(dir);
            assert!(
                dir.starts_with(BASE)
                    && dir != Path::new(BASE)
                    && !dir.components().any(|c| c == std::path::Component::ParentDir),
                "{DIRS_ENV}={} is not a directory below {BASE}: unset it or name one there",
                dir.display()
            );
            dir
        }
    }
}

/// Whether another user can use `path` where it is: every directory above
/// it world-searchable, the file world-readable (and world-executable when
/// `exec`).
fn world_usable(path: &Path, exec: bool) -> bool {
    let wanted = if exec { 0o005 } else { 0o004 };
    let file_ok = fs::metadata(path).is_ok_and(|m| m.mode() & wanted == wanted);
    file_ok && path.ancestors().skip(1).all(|dir| fs::metadata(dir).is_ok_and(|m| m.mode() & 0o001 != 0))
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
}

impl Drop for TestDir {
    fn drop(&mut self) {
        // Containers still known to LXC (a test that panicked before it
        // made its guard): stop them. Their guard, if any, already did.
        for name in snapshot::listing(&self.lxcpath()) {
            if self.lxcpath().join(&name).join("config").is_file() {
                let _ = Command::new("lxc-stop").arg("-P").arg(self.lxcpath()).args(["-n", &name, "-k"]).output();
            }
        }
        // Processes the binary leaked into the test dir: they were started by
        // this test, so end them, by pid.
        for stray in snapshot::processes_under(&self.root) {
            eprintln!("test dir cleanup: killing leaked process {} ({}; {})", stray.pid, stray.cmdline, stray.reason);
            let _ = Command::new("kill").args(["-KILL", &stray.pid.to_string()]).status();
        }
        // Mounts left below the test dir: detach them first, so that removing
        // the tree can never delete files through them.
        let leaked = snapshot::detach_mounts_under(&self.root);
        if !leaked.is_empty() {
            eprintln!("test dir cleanup: detached leaked mounts {leaked:?}");
        }
        let remaining = snapshot::mounts_under(&self.root);
        if !remaining.is_empty() {
            eprintln!("test dir cleanup: NOT removing {}: still mounted {remaining:?}", self.root.display());
            return;
        }
        if std::env::var_os(KEEP_ENV).is_some() {
            eprintln!("test dir kept: {}", self.root.display());
            return;
        }
        if let Err(e) = fs::remove_dir_all(&self.root) {
            eprintln!("test dir cleanup: cannot remove {}: {e}", self.root.display());
        }
    }
}
