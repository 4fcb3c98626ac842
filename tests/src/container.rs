//! [`Container`]: a guard for one container of a test's private lxcpath,
//! with the start gate that keeps the host's network alive.

use std::{
    fs::{self, File},
    path::{Path, PathBuf},
};

use crate::{command::TestCommand, config, snapshot};

/// Seconds between two halt signals of [`Container::stop_clean`].
const HALT_RESEND: u32 = 5;

/// The lock file behind [`heavy_lock`].
const HEAVY_LOCK: &str = "/tmp/lxc-tmpl-tests/.heavy.lock";

/// Seconds `lxc-wait` waits for a state.
const WAIT_SECONDS: &str = "30";

/// Held while a test runs something heavy or machine-global: a booted
/// container, or a mount-table comparison. Released on drop.
#[derive(Debug)]
pub struct HeavyLock {
    _file: File,
}

/// Takes the machine-wide lock that serialises container boots and
/// mount-table comparisons across test threads and test processes (an
/// `flock` on a file, so a panicking holder never poisons it).
pub fn heavy_lock() -> HeavyLock {
    fs::create_dir_all("/tmp/lxc-tmpl-tests").expect("cannot create /tmp/lxc-tmpl-tests");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(HEAVY_LOCK)
        .unwrap_or_else(|e| panic!("cannot open {HEAVY_LOCK}: {e}"));
    file.lock().unwrap_or_else(|e| panic!("cannot lock {HEAVY_LOCK}: {e}"));
    HeavyLock { _file: file }
}

/// A container `<lxcpath>/<name>` made by a test. Dropping it stops
/// (`lxc-stop -k`) and destroys it (`lxc-destroy`), then removes whatever is
/// left of its directory, also when the test panicked.
#[derive(Debug)]
pub struct Container {
    lxcpath: PathBuf,
    name: String,
    test_root: PathBuf,
    lock: Option<HeavyLock>,
}

impl Container {
    /// A guard for `<lxcpath>/<name>`; `test_root` is the test dir that must
    /// hold everything the container uses.
    pub fn new(lxcpath: &Path, name: &str, test_root: &Path) -> Container {
        assert!(
            lxcpath.starts_with(test_root) && test_root.starts_with("/tmp/lxc-tmpl-tests"),
            "test containers live in a private lxcpath under the test dir, not in {}",
            lxcpath.display()
        );
        Container { lxcpath: lxcpath.to_owned(), name: name.to_owned(), test_root: test_root.to_owned(), lock: None }
    }

    /// The container name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lxcpath.
    pub fn lxcpath(&self) -> &Path {
        &self.lxcpath
    }

    /// `<lxcpath>/<name>`.
    pub fn dir(&self) -> PathBuf {
        self.lxcpath.join(&self.name)
    }

    /// `<lxcpath>/<name>/config`.
    pub fn config_path(&self) -> PathBuf {
        self.dir().join("config")
    }

    /// `<lxcpath>/<name>/rootfs`.
    pub fn rootfs(&self) -> PathBuf {
        self.dir().join("rootfs")
    }

    /// The text of the config file.
    pub fn config(&self) -> String {
        let path = self.config_path();
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }

    /// An `lxc-*` tool with `-P <lxcpath> -n <name>`.
    pub fn lxc(&self, tool: &str) -> TestCommand {
        let mut cmd = TestCommand::new(tool);
        cmd.arg("-P").arg(&self.lxcpath).args(["-n", &self.name]);
        cmd
    }

    /// The stdout of an `lxc-*` tool that takes only `-P` (`lxc-ls`), run
    /// with `args`; fails the test if the tool fails.
    pub fn lxc_tool_output(&self, tool: &str, args: &[&str]) -> String {
        TestCommand::new(tool).arg("-P").arg(&self.lxcpath).args(args).stdout()
    }

    /// What LXC parsed for `key`: the output of `lxc-info -c <key>`, trimmed.
    /// Fails the test if LXC cannot load the config.
    pub fn lxc_config_item(&self, key: &str) -> String {
        self.lxc("lxc-info").args(["-c", key]).stdout().trim().to_owned()
    }

    /// The state LXC reports (`RUNNING`, `STOPPED`).
    pub fn state(&self) -> String {
        let out = self.lxc("lxc-info").args(["-s", "-H"]).stdout();
        out.trim().to_owned()
    }

    /// The host pid of the container's init (`lxc-info -p`).
    pub fn init_pid(&self) -> u32 {
        let out = self.lxc("lxc-info").args(["-p", "-H"]).stdout();
        out.trim().parse().unwrap_or_else(|e| panic!("lxc-info -p printed {out:?}: {e}"))
    }

    /// Starts the container and waits until it runs.
    ///
    /// Refuses (panics) unless the config passes the safety gate: see
    /// [`assert_safe_to_start`]. Takes the [`heavy_lock`] until the guard is
    /// dropped.
    pub fn start(&mut self) {
        assert_safe_to_start(&self.lxcpath, &self.name, &self.test_root);
        if self.lock.is_none() {
            self.lock = Some(heavy_lock());
        }
        let log = self.test_root.join(format!("{}.lxc-start.log", self.name));
        let started = self.lxc("lxc-start").arg("-d").arg("-o").arg(&log).args(["-l", "INFO"]).run();
        let log_text = || fs::read_to_string(&log).unwrap_or_default();
        assert!(started.status.success(), "lxc-start failed:\n{started}\n--- lxc log ---\n{}", log_text());
        let waited = self.lxc("lxc-wait").args(["-s", "RUNNING", "-t", WAIT_SECONDS]).run();
        assert!(waited.status.success(), "container did not reach RUNNING:\n{waited}\n--- lxc log ---\n{}", log_text());
    }

    /// Runs a command in the running container (`lxc-attach --clear-env`),
    /// asserts that it succeeded and returns its stdout.
    pub fn attach(&self, argv: &[&str]) -> String {
        self.lxc("lxc-attach").arg("--clear-env").arg("--").args(argv).stdout()
    }

    /// Stops the container cleanly (its halt signal, no SIGKILL) within
    /// `timeout` seconds; returns how the last `lxc-stop` ended.
    ///
    /// The halt signal is sent again every [`HALT_RESEND`] seconds: PID 1
    /// drops a signal it has no handler for yet, and systemd installs its
    /// handlers a moment after `lxc-wait -s RUNNING` returns, so a signal
    /// sent right after a start can be lost. An init that never honours its
    /// `lxc.signal.halt` still fails.
    pub fn stop_clean(&self, timeout: u32) -> crate::Outcome {
        let mut left = timeout.max(1);
        loop {
            let slice = left.min(HALT_RESEND);
            let outcome = self.lxc("lxc-stop").args(["--nokill", "-t", &slice.to_string()]).run();
            left -= slice;
            if outcome.status.success() || left == 0 {
                return outcome;
            }
            // It may have stopped just as the slice ended; the next lxc-stop would then
            // fail with "not running", so ask lxc-wait, which succeeds on a stopped one.
            let stopped = self.lxc("lxc-wait").args(["-s", "STOPPED", "-t", "1"]).run();
            if stopped.status.success() {
                return stopped;
            }
        }
    }

    /// `lxc-destroy`; returns how it ended.
    pub fn destroy(&self) -> crate::Outcome {
        if let Err(why) = self.rootfs_is_private() {
            panic!("{why}");
        }
        self.lxc("lxc-destroy").run()
    }

    /// Checks that the rootfs the config names (with every layer of an
    /// overlay) is inside the test dir, so that `lxc-destroy` can only ever
    /// delete test files.
    fn rootfs_is_private(&self) -> Result<(), String> {
        let text = fs::read_to_string(self.config_path()).map_err(|e| format!("cannot read the config: {e}"))?;
        let rootfs =
            config::value(&text, "lxc.rootfs.path").or_else(|| config::value(&text, "lxc.rootfs")).unwrap_or_default();
        // `dir:PATH`, `btrfs:PATH`, `overlay:LOWER:UPPER` (lxc.container.conf(5)): every path
        // named, the lower layers too, must be a test path.
        let paths = ["dir:", "btrfs:", "overlay:", "overlayfs:"]
            .iter()
            .find_map(|prefix| rootfs.strip_prefix(prefix))
            .unwrap_or(&rootfs);
        let private =
            |p: &str| Path::new(p).is_absolute() && Path::new(p).starts_with(&self.test_root) && !p.contains("..");
        if !paths.is_empty() && paths.split(':').all(private) {
            Ok(())
        } else {
            Err(format!(
                "refusing lxc-destroy: rootfs {rootfs:?} is not inside the test dir {}",
                self.test_root.display()
            ))
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let dir = self.dir();
        if dir.exists() {
            if self.config_path().is_file() {
                let state = self.lxc("lxc-info").args(["-s", "-H"]).run();
                if state.stdout.trim() != "STOPPED" {
                    let _ = self.lxc("lxc-stop").arg("-k").run();
                }
                snapshot::detach_mounts_under(&dir);
                let private = self.rootfs_is_private();
                if let Err(why) = &private {
                    eprintln!("container cleanup: {why}");
                } else {
                    let destroyed = self.lxc("lxc-destroy").run();
                    if !destroyed.status.success() {
                        eprintln!("container cleanup: lxc-destroy failed:\n{destroyed}");
                    }
                }
            }
            snapshot::detach_mounts_under(&dir);
            if dir.exists() && snapshot::mounts_under(&dir).is_empty() {
                let _ = fs::remove_dir_all(&dir);
            }
        }
        self.lock.take();
    }
}

/// The start gate. Panics unless all of this holds:
///
/// - the lxcpath is inside the test dir;
/// - the container's own config sets `lxc.net.0.type = empty` and
///   `lxc.apparmor.profile = unconfined`;
/// - neither it nor any file it includes has a network whose type is not
///   `empty` (above all `none`: the host's network namespace), nor shares or
///   keeps the host's network namespace;
/// - LXC itself parsed `lxc.net.0.type` as `empty`, every network as `empty`
///   and the AppArmor profile as `unconfined` (`lxc-info -c`).
pub fn assert_safe_to_start(lxcpath: &Path, name: &str, test_root: &Path) {
    assert!(
        lxcpath.starts_with(test_root) && !lxcpath.starts_with("/var/lib/lxc"),
        "refusing to start {name}: lxcpath {} is not private to the test",
        lxcpath.display()
    );
    let config_path = lxcpath.join(name).join("config");
    let text = fs::read_to_string(&config_path)
        .unwrap_or_else(|e| panic!("refusing to start {name}: cannot read {}: {e}", config_path.display()));
    let refuse = |why: String| -> ! { panic!("refusing to start {name}: {why}\n--- config ---\n{text}") };

    if config::value(&text, "lxc.net.0.type").as_deref() != Some("empty") {
        refuse("its config does not set `lxc.net.0.type = empty`".to_owned());
    }
    if config::value(&text, "lxc.apparmor.profile").as_deref() != Some("unconfined") {
        refuse("its config does not set `lxc.apparmor.profile = unconfined`".to_owned());
    }
    for (file, key, value) in config::entries_with_includes(&config_path) {
        let is_net_type = key == "lxc.network.type"
            || (key.starts_with("lxc.net.") && key.ends_with(".type"))
            || (key.starts_with("lxc.network.") && key.ends_with(".type"));
        if is_net_type && value != "empty" {
            refuse(format!(
                "{file} sets `{key} = {value}`; only `empty` networks may be started (`none` is the host's network)"
            ));
        }
        if key == "lxc.namespace.share.net"
            || (key == "lxc.namespace.keep" && value.split_whitespace().any(|n| n == "net"))
        {
            refuse(format!("{file} sets `{key} = {value}`, which keeps the host's network namespace"));
        }
    }

    let info = |key: &str| -> String {
        let out = TestCommand::new("lxc-info").arg("-P").arg(lxcpath).args(["-n", name, "-c", key]).run();
        if !out.status.success() {
            refuse(format!("LXC cannot load its config:\n{out}"));
        }
        out.stdout
    };
    let parsed_values = |out: &str| -> Vec<String> {
        out.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| l.split_once('=').map_or(l, |(_, v)| v).trim().to_owned())
            .collect()
    };
    let net0 = parsed_values(&info("lxc.net.0.type"));
    if net0 != ["empty"] {
        refuse(format!("LXC parsed lxc.net.0.type as {net0:?}, not \"empty\""));
    }
    let nets = parsed_values(&info("lxc.net"));
    if nets.is_empty() || nets.iter().any(|n| n != "empty") {
        refuse(format!("LXC parsed the networks as {nets:?}; only one `empty` network may be started"));
    }
    let profile = parsed_values(&info("lxc.apparmor.profile"));
    if profile != ["unconfined"] {
        refuse(format!("LXC parsed lxc.apparmor.profile as {profile:?}, not \"unconfined\""));
    }
}

#[cfg(test)]
mod tests {
    use std::panic;

    use super::*;
    use crate::{TestDir, dir::SAFE_CONF};

    /// The gate's verdict on a container whose config is `config` (with
    /// `include.conf` in the test dir holding `include`).
    fn gate(test: &str, config: &str, include: &str) -> Result<(), String> {
        let dir = TestDir::new(test);
        let include_path = dir.write("include.conf", include);
        let rootfs = dir.mkdir("lxcpath/gate/rootfs");
        let text = config
            .replace("@INCLUDE@", &include_path.display().to_string())
            .replace("@ROOTFS@", &rootfs.display().to_string());
        dir.write("lxcpath/gate/config", text);
        let (lxcpath, root) = (dir.lxcpath(), dir.path().to_owned());
        panic::catch_unwind(move || assert_safe_to_start(&lxcpath, "gate", &root)).map_err(|payload| {
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default()
        })
    }

    fn safe_config() -> String {
        format!("{SAFE_CONF}lxc.uts.name = gate\nlxc.rootfs.path = dir:@ROOTFS@\nlxc.include = @INCLUDE@\n")
    }

    #[test]
    fn gate_accepts_the_safe_config() {
        crate::require_root();
        assert_eq!(gate("gate-ok", &safe_config(), "lxc.tty.max = 1\n"), Ok(()));
    }

    #[test]
    fn gate_refuses_network_type_none() {
        crate::require_root();
        let config = safe_config().replace("lxc.net.0.type = empty", "lxc.net.0.type = none");
        let why = gate("gate-none", &config, "").unwrap_err();
        assert!(why.contains("refusing to start"), "{why}");
    }

    #[test]
    fn gate_refuses_none_in_an_included_file() {
        crate::require_root();
        let why = gate("gate-include", &safe_config(), "lxc.net.1.type = none\n").unwrap_err();
        assert!(why.contains("include.conf") && why.contains("none"), "{why}");
    }

    #[test]
    fn gate_refuses_a_later_override_and_missing_apparmor() {
        crate::require_root();
        let config = format!("{}lxc.net.0.type = none\n", safe_config());
        assert!(gate("gate-override", &config, "").is_err());
        let config = safe_config().replace("lxc.apparmor.profile = unconfined\n", "");
        assert!(gate("gate-apparmor", &config, "").unwrap_err().contains("apparmor"));
    }

    #[test]
    fn gate_refuses_sharing_the_host_network_namespace() {
        crate::require_root();
        let why = gate("gate-share", &safe_config(), "lxc.namespace.keep = user net\n").unwrap_err();
        assert!(why.contains("lxc.namespace.keep"), "{why}");
    }
}
