//! Run a command inside a rootfs, or a host tool, in fresh namespaces; nothing it starts or
//! mounts survives it, even when lxc-tmpl itself is killed.
//!
//! The old templates ran `chroot $rootfs apt-get ...` after bind-mounting `/proc` and `/dev`
//! into the rootfs on the host, and leaked those mounts (and daemons started by maintainer
//! scripts, and `wget`s started by a killed debootstrap) whenever a step failed or the script
//! was killed. Here every command, in a rootfs ([`Runner::run`]) or on the host
//! ([`Runner::run_on_host`]: debootstrap, cp, tar), runs like this:
//!
//! 1. The host side (this module) puts a `policy-rc.d` that forbids starting services into the
//!    rootfs and optionally prepares `etc/resolv.conf` as a bind target ([`saved`]), then
//!    re-executes the lxc-tmpl binary itself as a helper (`lxc-tmpl __run-in-rootfs`, no other
//!    argument) with a clean environment and piped stdio, and writes the request to it over a
//!    pipe ([`protocol`]). The child is registered with [`crate::interrupt`], so SIGINT, SIGTERM
//!    or SIGHUP kill it. Afterwards the host side restores both rootfs files, whatever the
//!    outcome.
//! 2. The helper ([`helper`]), a fresh single-threaded process, asks for `SIGKILL` when its
//!    parent dies, unshares a mount and a PID namespace (and UTS and IPC for a rootfs), makes `/`
//!    recursively slave (so no mount propagates back to the host) and forks.
//! 3. The child is PID 1 of the new PID namespace. It also asks for `SIGKILL` when the helper
//!    dies; for a rootfs it sets the hostname, mounts proc, sys, a private `/dev` and devpts
//!    inside the rootfs and `chroot`s ([`namespace`]). Then it forks the command ([`exec`]) and
//!    reaps every process until the command exits, and exits with its status.
//!
//! When PID 1 exits the kernel kills everything left in its PID namespace, and the mount
//! namespace with all its mounts disappears with its last process. If lxc-tmpl is killed, even
//! by `SIGKILL`, the `PDEATHSIG` chain (lxc-tmpl → helper → PID 1) tears it all down the same
//! way; a subreaper could not, as it dies too.
//!
//! The runner cannot undo its rootfs edits (`policy-rc.d`, the resolv.conf placeholder) if
//! lxc-tmpl is killed with `SIGKILL` between steps 1 and its cleanup; a later run restores
//! neither, so an interrupted cache build is garbage (the cache is only renamed into place when
//! complete) and an interrupted create is removed.

// Paths here are rootfs paths: every write goes through `Rootfs` (clippy.toml).
#![deny(clippy::disallowed_methods)]

mod exec;
mod helper;
mod namespace;
mod protocol;
mod saved;

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

pub use helper::helper_main;
use nix::fcntl::OFlag;
use nix::unistd::pipe2;
use protocol::{HELD_FD, HelperRequest, Place, READY, REQUEST_FD, SETUP_FAILED, STATUS_FD};
use saved::SavedFile;

use crate::interrupt::{self, Interrupted, SpawnError};
use crate::report::{OutputStream, Reporter, redact_argv};
use crate::rootfs::{Rootfs, RootfsError};
use crate::sys;

/// The hidden subcommand the CLI dispatches to [`helper_main`].
pub const HELPER_SUBCOMMAND: &str = "__run-in-rootfs";

/// The environment every command in a rootfs starts with; nothing is inherited from the host.
pub const BASE_ENV: [(&str, &str); 5] = [
    ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
    ("HOME", "/root"),
    ("LANG", "C.UTF-8"),
    ("DEBIAN_FRONTEND", "noninteractive"),
    ("TERM", "dumb"),
];

/// A command to run inside a rootfs.
#[derive(Debug, Clone, Copy)]
pub struct RunRequest<'a> {
    /// Host path of the rootfs.
    pub root: &'a Path,
    /// Program and arguments; the program is looked up in `PATH` inside the root.
    pub argv: &'a [String],
    /// Extra environment on top of [`BASE_ENV`] (same name replaces).
    pub env: &'a [(String, String)],
    /// Bytes fed to the command's stdin.
    pub stdin: &'a [u8],
    /// Hostname in the new UTS namespace.
    pub hostname: Option<&'a str>,
    /// Bind the host's `/etc/resolv.conf` read-only over the rootfs's for the run (for apt
    /// downloads).
    pub bind_resolv_conf: bool,
}

/// A host tool to run (debootstrap, cp, tar) in a private mount and PID namespace.
#[derive(Debug, Clone, Copy)]
pub struct HostCommand<'a> {
    /// Program and arguments; the program is looked up in lxc-tmpl's own `PATH`.
    pub argv: &'a [String],
    /// Extra environment on top of lxc-tmpl's own (same name replaces).
    pub env: &'a [(String, String)],
    /// Bytes fed to the command's stdin.
    pub stdin: &'a [u8],
    /// A descriptor every process of the run keeps open until it exits: the shared lock of the
    /// cache entry a copy reads, so that the lock outlives any process still reading.
    pub hold: Option<BorrowedFd<'a>>,
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    /// Exit code, or 128 + signal number if it was killed by a signal.
    pub status: i32,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr.
    pub stderr: Vec<u8>,
}

/// Failure to run a command at all. A command that runs and fails is a normal [`RunOutput`].
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The request had no program.
    #[error("nothing to run inside {place}: the command is empty")]
    EmptyCommand {
        /// The rootfs path, or `the host`.
        place: String,
    },
    /// The request cannot be passed to `execve`.
    #[error("cannot run {command} inside {place}: {reason}")]
    BadRequest {
        /// The rootfs path, or `the host`.
        place: String,
        /// The command line.
        command: String,
        /// What is wrong.
        reason: String,
    },
    /// Boxed: a `RootfsError` is large, and this keeps every `Result` small.
    #[error("cannot prepare the rootfs for running {command}")]
    Rootfs {
        /// The rootfs path.
        root: PathBuf,
        /// The command line.
        command: String,
        /// The rootfs operation that failed.
        #[source]
        source: Box<RootfsError>,
    },
    /// The helper could not be started.
    #[error("cannot start the rootfs helper {helper} for {command}")]
    Spawn {
        /// The lxc-tmpl binary.
        helper: PathBuf,
        /// The command line.
        command: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A signal arrived before the command could start.
    #[error("{command} was not started")]
    Interrupted {
        /// The command line.
        command: String,
        /// The signal.
        #[source]
        source: Interrupted,
    },
    /// Talking to the helper failed.
    #[error("lost the rootfs helper while running {command}")]
    Io {
        /// The command line.
        command: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The helper could not set up the namespaces.
    #[error("cannot set up namespaces in {place} to run {command}: {message}")]
    Setup {
        /// The rootfs path, or `the host`.
        place: String,
        /// The command line.
        command: String,
        /// What the helper said.
        message: String,
    },
}

/// Runs commands by re-executing `helper_exe` (the lxc-tmpl binary).
#[derive(Clone)]
pub struct Runner {
    helper_exe: PathBuf,
    /// Told of every command: its start, its output as it comes, its end
    /// ([`Runner::reporting_to`]).
    reporter: Option<Arc<dyn Reporter + Send + Sync>>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").field("helper_exe", &self.helper_exe).finish_non_exhaustive()
    }
}

/// The environment a command in a rootfs gets: [`BASE_ENV`] with `extra` applied in order.
pub fn command_env(extra: &[(String, String)]) -> Vec<(String, String)> {
    let base = BASE_ENV.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    overlay_env(base, extra)
}

/// `env` with `extra` applied in order: a name already there gets the new value.
fn overlay_env(mut env: Vec<(String, String)>, extra: &[(String, String)]) -> Vec<(String, String)> {
    for (key, value) in extra {
        match env.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.clone(),
            None => env.push((key.clone(), value.clone())),
        }
    }
    env
}

/// The environment a host tool gets: lxc-tmpl's own (names and values that are not UTF-8 are
/// left out) with `extra` applied.
fn host_env(extra: &[(String, String)]) -> Vec<(String, String)> {
    overlay_env(
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect(),
        extra,
    )
}

fn display_command(argv: &[String]) -> String {
    argv.join(" ")
}

impl Runner {
    /// A runner that re-executes `helper_exe` (normally `std::env::current_exe()`), whose main
    /// must hand `__run-in-rootfs` to [`helper_main`] before doing anything else.
    pub fn new(helper_exe: PathBuf) -> Runner {
        Runner { helper_exe, reporter: None }
    }

    /// This runner, telling `reporter` of every command it runs: the start
    /// (argv with URL credentials redacted, never the environment or stdin),
    /// the output as it comes and the exit status with the duration. This is
    /// what a create's log and its progress display are made from.
    pub fn reporting_to(mut self, reporter: Arc<dyn Reporter + Send + Sync>) -> Runner {
        self.reporter = Some(reporter);
        self
    }

    /// Runs `run`, telling the reporter of its start and end.
    fn reported(
        &self,
        place: &str,
        root: Option<&Path>,
        argv: &[String],
        run: impl FnOnce() -> Result<RunOutput, RunnerError>,
    ) -> Result<RunOutput, RunnerError> {
        let Some(reporter) = &self.reporter else { return run() };
        reporter.command_started(place, root, &redact_argv(argv));
        let started = Instant::now();
        let result = run();
        let elapsed = started.elapsed();
        match &result {
            Ok(output) => reporter.command_finished(Ok(output.status), elapsed),
            Err(e) => reporter.command_finished(Err(&crate::report::error_chain(e)), elapsed),
        }
        result
    }

    /// Run `req.argv` inside `req.root` and collect its output.
    ///
    /// Must be called from a thread that stays alive for the whole run (it does, as this call
    /// blocks): the helper's `PDEATHSIG` fires when the *thread* that spawned it exits.
    ///
    /// # Errors
    /// [`RunnerError`] when the command could not be run at all, including
    /// [`RunnerError::Interrupted`] once a signal has arrived.
    pub fn run(&self, req: &RunRequest) -> Result<RunOutput, RunnerError> {
        self.reported("in rootfs", Some(req.root), req.argv, || self.run_unreported(req))
    }

    fn run_unreported(&self, req: &RunRequest) -> Result<RunOutput, RunnerError> {
        let command = display_command(req.argv);
        let place = req.root.display().to_string();
        validate(req.argv, req.env, req.hostname, &place, &command)?;
        let rootfs_err = |source| RunnerError::Rootfs {
            root: req.root.to_path_buf(),
            command: command.clone(),
            source: Box::new(source),
        };
        let rootfs = Rootfs::open(req.root).map_err(rootfs_err)?;

        let policy = SavedFile::install_policy(&rootfs).map_err(rootfs_err)?;
        let resolv = if req.bind_resolv_conf && Path::new("/etc/resolv.conf").exists() {
            match SavedFile::prepare_resolv_conf(&rootfs) {
                Ok(saved) => saved,
                Err(e) => {
                    let _ = policy.restore(&rootfs);
                    return Err(rootfs_err(e));
                }
            }
        } else {
            None
        };

        let request = HelperRequest {
            parent_pid: std::process::id() as i32,
            place: Place::Rootfs {
                root: req.root.to_path_buf(),
                hostname: req.hostname.map(str::to_owned),
                bind_resolv_conf: resolv.is_some(),
            },
            argv: req.argv.to_vec(),
            env: command_env(req.env),
            hold_fd: false,
        };
        let result = self.spawn_helper(&request, req.stdin, None, &command);

        // Restore in reverse order, both even if the first fails; the run's own error wins.
        let resolv_restored = resolv.map_or(Ok(()), |saved| saved.restore(&rootfs));
        let policy_restored = policy.restore(&rootfs);
        let output = result?;
        resolv_restored.and(policy_restored).map_err(rootfs_err)?;
        Ok(output)
    }

    /// Run a host tool in a private mount and PID namespace and collect its output: its whole
    /// process tree (debootstrap's wget and dpkg, say) dies when it exits, when a signal
    /// interrupts lxc-tmpl, or when lxc-tmpl dies.
    ///
    /// # Errors
    /// As [`Runner::run`].
    pub fn run_on_host(&self, cmd: &HostCommand) -> Result<RunOutput, RunnerError> {
        self.reported("on host", None, cmd.argv, || self.run_on_host_unreported(cmd))
    }

    fn run_on_host_unreported(&self, cmd: &HostCommand) -> Result<RunOutput, RunnerError> {
        let command = display_command(cmd.argv);
        validate(cmd.argv, cmd.env, None, "the host", &command)?;
        let request = HelperRequest {
            parent_pid: std::process::id() as i32,
            place: Place::Host,
            argv: cmd.argv.to_vec(),
            env: host_env(cmd.env),
            hold_fd: cmd.hold.is_some(),
        };
        self.spawn_helper(&request, cmd.stdin, cmd.hold, &command)
    }

    fn spawn_helper(
        &self,
        request: &HelperRequest,
        stdin: &[u8],
        hold: Option<BorrowedFd<'_>>,
        command: &str,
    ) -> Result<RunOutput, RunnerError> {
        let io_err = |source| RunnerError::Io { command: command.to_owned(), source };
        // The helper reports setup failures here, so they are told apart from the command's
        // own exit statuses and stderr.
        let (status_read, status_write) = pipe2(OFlag::O_CLOEXEC).map_err(|e| io_err(e.into()))?;
        let (request_read, request_write) = pipe2(OFlag::O_CLOEXEC).map_err(|e| io_err(e.into()))?;

        let mut cmd = Command::new(&self.helper_exe);
        cmd.arg(HELPER_SUBCOMMAND).env_clear().stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut fds = vec![(status_write.as_fd(), STATUS_FD), (request_read.as_fd(), REQUEST_FD)];
        fds.extend(hold.map(|fd| (fd, HELD_FD)));
        sys::pass_fds_to_child(&mut cmd, &fds);
        let (mut child, _registered) = interrupt::spawn(&mut cmd).map_err(|e| match e {
            SpawnError::Interrupted(source) => RunnerError::Interrupted { command: command.to_owned(), source },
            SpawnError::Io(source) => {
                RunnerError::Spawn { helper: self.helper_exe.clone(), command: command.to_owned(), source }
            }
        })?;
        // Only the helper's copies may stay open: EOF on the status pipe means "the helper tree
        // is gone", and the helper sees EOF on the request once we have written it.
        drop(status_write);
        drop(request_read);

        let child_stdin = child.stdin.take();
        let (child_stdout, child_stderr) = (child.stdout.take(), child.stderr.take());
        let encoded = request.encode();
        let output = std::thread::scope(|scope| {
            // Feed the request and stdin from a thread while wait_with_output drains stdout and
            // stderr concurrently: any of the pipes may fill up first.
            let feeder = scope.spawn(move || {
                let mut request_pipe = File::from(request_write);
                match request_pipe.write_all(&encoded) {
                    // A helper that died early reports through its exit status.
                    Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(e),
                    _ => {}
                }
                drop(request_pipe);
                if let Some(mut child_stdin) = child_stdin {
                    match child_stdin.write_all(stdin) {
                        // The command need not read all of its input.
                        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(e),
                        _ => {}
                    }
                }
                Ok(())
            });
            let (stdout, stderr) = self.collect_output(scope, child_stdout, child_stderr);
            let output = child.wait().map(|status| std::process::Output { status, stdout, stderr });
            let fed = feeder.join().unwrap_or(Ok(()));
            output.and_then(|o| fed.map(|()| o))
        })
        .map_err(io_err)?;
        // A helper killed by a signal leaves its PID 1 to us (dying of its PDEATHSIG).
        interrupt::reap_orphans();

        let mut report = Vec::new();
        File::from(status_read).read_to_end(&mut report).map_err(io_err)?;
        let status = match (output.status.code(), output.status.signal()) {
            (Some(code), _) => code,
            (None, Some(signal)) => 128 + signal,
            (None, None) => SETUP_FAILED,
        };
        if report != READY {
            let message = if report.is_empty() {
                // The helper died (or was not our helper) before it could say anything.
                format!(
                    "the helper {} exited with status {status} before starting the command{}",
                    self.helper_exe.display(),
                    stderr_tail(&output.stderr)
                )
            } else {
                String::from_utf8_lossy(&report).trim_end().to_owned()
            };
            return Err(RunnerError::Setup { place: request.place_name(), command: command.to_owned(), message });
        }

        Ok(RunOutput { status, stdout: output.stdout, stderr: output.stderr })
    }
}

impl Runner {
    /// Reads the command's stdout and stderr to their ends, each in a thread of `scope` (either
    /// pipe may fill up first), and hands every chunk to the reporter in this thread, as it
    /// comes: a reporter need not be called from several threads at once, and the progress of a
    /// long command (debootstrap's `I:` lines) is seen while it runs.
    fn collect_output<'scope>(
        &self,
        scope: &'scope std::thread::Scope<'scope, '_>,
        stdout: Option<std::process::ChildStdout>,
        stderr: Option<std::process::ChildStderr>,
    ) -> (Vec<u8>, Vec<u8>) {
        let (sender, chunks) = std::sync::mpsc::channel::<(OutputStream, Vec<u8>)>();
        fn pump<'scope>(
            scope: &'scope std::thread::Scope<'scope, '_>,
            mut pipe: impl Read + Send + 'scope,
            stream: OutputStream,
            sender: std::sync::mpsc::Sender<(OutputStream, Vec<u8>)>,
        ) {
            scope.spawn(move || {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match pipe.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            if sender.send((stream, buf[..n].to_vec())).is_err() {
                                break;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            });
        }
        if let Some(pipe) = stdout {
            pump(scope, pipe, OutputStream::Stdout, sender.clone());
        }
        if let Some(pipe) = stderr {
            pump(scope, pipe, OutputStream::Stderr, sender.clone());
        }
        // The receiver ends once both pumps have dropped their senders.
        drop(sender);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        for (stream, chunk) in chunks {
            if let Some(reporter) = &self.reporter {
                reporter.command_output(stream, &chunk);
            }
            match stream {
                OutputStream::Stdout => out.extend_from_slice(&chunk),
                OutputStream::Stderr => err.extend_from_slice(&chunk),
            }
        }
        (out, err)
    }
}

/// `: <last line of stderr>` (bounded), or nothing if stderr is empty.
fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    match text.trim_end().lines().last() {
        Some(line) if !line.is_empty() => {
            let line: String = line.chars().take(300).collect();
            format!(": {line}")
        }
        _ => String::new(),
    }
}

fn validate(
    argv: &[String],
    env: &[(String, String)],
    hostname: Option<&str>,
    place: &str,
    command: &str,
) -> Result<(), RunnerError> {
    let bad = |reason: String| RunnerError::BadRequest { place: place.to_owned(), command: command.to_owned(), reason };
    if argv.is_empty() || argv[0].is_empty() {
        return Err(RunnerError::EmptyCommand { place: place.to_owned() });
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(bad("an argument contains a NUL byte".into()));
    }
    for (key, value) in env {
        if key.is_empty() || key.contains(['=', '\0']) || value.contains('\0') {
            return Err(bad(format!("bad environment variable {key:?}")));
        }
    }
    if let Some(hostname) = hostname
        && (hostname.is_empty() || hostname.len() > 64 || hostname.contains('\0'))
    {
        return Err(bad(format!("bad hostname {hostname:?}")));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures are built with std::fs on purpose
mod tests {
    use super::*;
    use saved::{POLICY_RC_D, RESOLV_CONF};

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn runner_env_is_base_plus_overrides() {
        let env = command_env(&[("LANG".into(), "de_DE.UTF-8".into()), ("FOO".into(), "bar".into())]);
        assert_eq!(env[0].0, "PATH");
        assert!(env.contains(&("LANG".into(), "de_DE.UTF-8".into())));
        assert!(env.contains(&("FOO".into(), "bar".into())));
        assert!(env.contains(&("DEBIAN_FRONTEND".into(), "noninteractive".into())));
        assert_eq!(env.len(), BASE_ENV.len() + 1);
    }

    #[test]
    fn host_env_is_ours_plus_overrides() {
        let env = host_env(&[("LXC_TMPL_TEST_VAR".into(), "1".into())]);
        assert!(env.contains(&("LXC_TMPL_TEST_VAR".into(), "1".into())));
        if let Ok(path) = std::env::var("PATH") {
            assert!(env.contains(&("PATH".into(), path)));
        }
    }

    #[test]
    fn runner_rejects_bad_requests_before_touching_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let runner = Runner::new(PathBuf::from("/nonexistent/helper"));
        let base =
            RunRequest { root: tmp.path(), argv: &[], env: &[], stdin: b"", hostname: None, bind_resolv_conf: false };
        assert!(matches!(runner.run(&base), Err(RunnerError::EmptyCommand { .. })));
        let argv = strings(&["true"]);
        let env = [("A=B".to_owned(), "x".to_owned())];
        let req = RunRequest { argv: &argv, env: &env, ..base };
        assert!(matches!(runner.run(&req), Err(RunnerError::BadRequest { .. })));
        // A helper that does not exist is a Spawn error, and the rootfs is left as it was.
        std::fs::create_dir_all(tmp.path().join("usr/sbin")).unwrap();
        let req = RunRequest { argv: &argv, ..base };
        assert!(matches!(runner.run(&req), Err(RunnerError::Spawn { .. })));
        assert!(!tmp.path().join(POLICY_RC_D).exists());
        let host = HostCommand { argv: &[], env: &[], stdin: b"", hold: None };
        assert!(matches!(runner.run_on_host(&host), Err(RunnerError::EmptyCommand { .. })));
    }

    #[test]
    fn runner_helper_that_never_gets_ready_is_a_setup_error() {
        // /bin/false is not our helper: it exits without writing READY. The rootfs edits are
        // undone all the same.
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("usr/sbin")).unwrap();
        std::fs::create_dir_all(tmp.path().join("etc")).unwrap();
        let argv = strings(&["true"]);
        let req = RunRequest {
            root: tmp.path(),
            argv: &argv,
            env: &[],
            stdin: b"ignored",
            hostname: None,
            bind_resolv_conf: true,
        };
        let err = Runner::new(PathBuf::from("/bin/false")).run(&req).unwrap_err();
        match &err {
            RunnerError::Setup { message, .. } => {
                assert!(message.contains("exited with status 1"), "{message}")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(!tmp.path().join(POLICY_RC_D).exists());
        assert!(!tmp.path().join(RESOLV_CONF).exists());
    }
}
