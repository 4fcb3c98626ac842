//! [`Lxd`]: a private LXD daemon for one test, started by hand (these
//! machines have no systemd) and stopped with its state removed.
//!
//! ```text
//! <test dir>/lxd/
//!     state/      $LXD_DIR: the daemon's database, images, instances, unix.socket
//!     client/     $LXD_CONF: the `lxc` client's config (remotes), never ~/.config/lxc
//!     lxd.log     the daemon's log (--logfile), printed when it fails to start
//! ```
//!
//! The daemon gets a `dir` storage pool and the default profile a root disk on
//! it, and NO network: no bridge, no `lxd init --auto` (which fails here choosing
//! a subnet, and must not be forced). Instances run without a nic, in their own
//! network namespace.
//!
//! One daemon runs at a time in a test binary ([`Lxd::start`] waits for the
//! previous one to stop): two daemons on one host would both try to own the
//! kernel's shared LXD state (`/dev/lxd`, the `lxc` monitor names).

use std::{
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Mutex, MutexGuard},
    thread,
    time::{Duration, Instant},
};

use crate::{TestDir, command::TestCommand};

/// How long the daemon may take to become ready.
const READY: Duration = Duration::from_secs(60);

/// Held by the running daemon.
static ONE_DAEMON: Mutex<()> = Mutex::new(());

/// The name of the storage pool made for the test.
pub const POOL: &str = "lxc-tmpl-test";

/// A running LXD daemon; see the module docs. Dropping it deletes every
/// instance, shuts the daemon down (killing it by its pid if it will not stop)
/// and removes its state.
#[derive(Debug)]
pub struct Lxd {
    root: PathBuf,
    env: Vec<(OsString, OsString)>,
    daemon: Option<Child>,
    _one: MutexGuard<'static, ()>,
}

impl Lxd {
    /// Starts a daemon for the test in `dir`, with `env` added to the
    /// daemon's and the client's environment (e.g. `SSL_CERT_FILE`, the only
    /// way to make LXD trust a test CA without touching the system's store).
    ///
    /// Panics with the daemon's log if it does not become ready.
    pub fn start(dir: &TestDir, env: &[(&str, &Path)]) -> Lxd {
        crate::require_tools(&["lxd", "lxc"]);
        let one = ONE_DAEMON.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let root = dir.path().join("lxd");
        for sub in ["state", "client"] {
            fs::create_dir_all(root.join(sub)).unwrap_or_else(|e| panic!("cannot create {}: {e}", root.display()));
        }
        let mut env: Vec<(OsString, OsString)> =
            env.iter().map(|(k, v)| (OsString::from(k), v.as_os_str().to_owned())).collect();
        env.push(("LXD_DIR".into(), root.join("state").into_os_string()));
        env.push(("LXD_CONF".into(), root.join("client").into_os_string()));
        let log = root.join("lxd.log");
        let out = fs::File::create(root.join("lxd.out")).expect("cannot create lxd.out");
        let daemon = Command::new("lxd")
            .arg("--logfile")
            .arg(&log)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("cannot dup lxd.out"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start lxd: {e}"));
        let mut lxd = Lxd { root, env, daemon: Some(daemon), _one: one };
        lxd.wait_ready();
        lxd.lxc().args(["storage", "create", POOL, "dir"]).stdout();
        lxd.lxc()
            .args(["profile", "device", "add", "default", "root", "disk", "path=/"])
            .arg(format!("pool={POOL}"))
            .stdout();
        lxd
    }

    /// Waits for `lxd waitready`, or panics with the log if the daemon exits or
    /// takes longer than [`READY`].
    fn wait_ready(&mut self) {
        let started = Instant::now();
        let outcome = self.command("timeout").arg(READY.as_secs().to_string()).args(["lxd", "waitready"]).run();
        if outcome.code() == Some(0) {
            return;
        }
        let exited = self.daemon.as_mut().and_then(|d| d.try_wait().ok().flatten());
        panic!(
            "lxd did not become ready in {:.0?} (exited: {exited:?}; waitready: {}):\n{}\n{}",
            started.elapsed(),
            outcome.stderr.trim(),
            fs::read_to_string(self.root.join("lxd.out")).unwrap_or_default(),
            fs::read_to_string(self.root.join("lxd.log")).unwrap_or_default()
        );
    }

    /// `program` with the daemon's environment (`LXD_DIR`, `LXD_CONF` and the
    /// extra variables).
    pub fn command(&self, program: &str) -> TestCommand {
        let mut cmd = TestCommand::new(program);
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        cmd
    }

    /// The `lxc` client talking to this daemon.
    pub fn lxc(&self) -> TestCommand {
        self.command("lxc")
    }

    /// The daemon's log, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.root.join("lxd.log")).unwrap_or_default()
    }

    /// `lxc exec INSTANCE -- ARGS` with its stdout, panicking on failure.
    pub fn exec(&self, instance: &str, args: &[&str]) -> String {
        self.lxc().args(["exec", instance, "--"]).args(args).stdout()
    }

    /// Launches `image` as `instance` and waits until it runs a command.
    pub fn launch(&self, image: &str, instance: &str) {
        let outcome = self.lxc().args(["launch", image, instance]).run();
        assert!(
            outcome.code() == Some(0),
            "lxc launch {image} {instance} failed: {}\ndaemon log:\n{}",
            outcome.stderr.trim(),
            self.log()
        );
        let started = Instant::now();
        while self.lxc().args(["exec", instance, "--", "true"]).run().code() != Some(0) {
            assert!(started.elapsed() < READY, "{instance} does not run commands:\n{}", self.log());
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Deletes every instance, shuts the daemon down, kills it by its pid if it
    /// is still running after that, and removes its state.
    fn stop(&mut self) {
        let Some(mut daemon) = self.daemon.take() else { return };
        if daemon.try_wait().ok().flatten().is_none() {
            let names = self.lxc().args(["list", "--format", "csv", "-c", "n"]).run().stdout;
            for name in names.lines().filter(|n| !n.is_empty()) {
                self.lxc().args(["delete", "--force", name]).run();
            }
            self.command("timeout").args(["60", "lxd", "shutdown"]).run();
        }
        if daemon.try_wait().ok().flatten().is_none() {
            let _ = daemon.kill();
        }
        let _ = daemon.wait();
        // The daemon unmounts its tmpfs (shmounts, devlxd) on shutdown; a killed
        // one leaves them: detach them before removing the state below them.
        crate::snapshot::detach_mounts_under(&self.root);
        if crate::snapshot::mounts_under(&self.root).is_empty() {
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

impl Drop for Lxd {
    fn drop(&mut self) {
        self.stop();
    }
}
