//! Run a command inside a rootfs in fresh namespaces; nothing it starts or mounts survives it.
//!
//! The old templates ran `chroot $rootfs apt-get ...` after bind-mounting `/proc` and `/dev`
//! into the rootfs on the host, and leaked those mounts (and daemons started by maintainer
//! scripts) whenever a step failed or the script was killed. Here:
//!
//! 1. [`Runner::run`] (host side) puts a `policy-rc.d` that forbids starting services into the
//!    rootfs, optionally prepares `etc/resolv.conf` as a bind target, and re-executes the
//!    lxc-tmpl binary itself as a helper (`lxc-tmpl __run-in-rootfs ...`) with the request in
//!    argv, a clean environment and piped stdio. Afterwards it restores both files, whatever
//!    the outcome.
//! 2. [`helper_main`] (a fresh, single-threaded process) asks for `SIGKILL` when its parent
//!    dies, unshares mount, PID, UTS and IPC namespaces, makes `/` recursively slave (so no
//!    mount propagates back to the host) and forks.
//! 3. The child is PID 1 of the new PID namespace. It also asks for `SIGKILL` when the helper
//!    dies, sets the hostname, mounts proc, sys, a tmpfs `/dev` with bind-mounted device nodes,
//!    devpts, `/dev/shm` and optionally resolv.conf inside the rootfs (each target resolved
//!    through [`Rootfs`] and mounted via `/proc/self/fd/N`, so a symlink in the rootfs cannot
//!    redirect a mount to a host path), then `chroot`s, forks the command and reaps every
//!    process until the command exits, and exits with its status.
//!
//! When PID 1 exits the kernel kills everything left in its PID namespace, and the mount
//! namespace with all those mounts disappears with its last process. If lxc-tmpl itself is
//! killed, the `PDEATHSIG` chain (lxc-tmpl → helper → PID 1) tears it all down the same way.
//!
//! The runner cannot undo its rootfs edits (`policy-rc.d`, the resolv.conf placeholder) if
//! lxc-tmpl is killed with `SIGKILL` between steps 1 and its cleanup; a later run restores
//! neither, so callers building caches should treat an interrupted build as garbage (the cache
//! is only renamed into place when complete).

// Paths here are rootfs paths: every write goes through `Rootfs` (clippy.toml).
#![deny(clippy::disallowed_methods)]

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use lxc_tmpl_plugin_api::FileKind;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, execve, getppid, pipe2};

use crate::rootfs::{Rootfs, RootfsError};
use crate::sys::{self, LinuxSyscall, Syscall};

/// The hidden subcommand the CLI dispatches to [`helper_main`].
pub const HELPER_SUBCOMMAND: &str = "__run-in-rootfs";

/// The environment every command starts with; nothing is inherited from the host.
pub const BASE_ENV: [(&str, &str); 5] = [
    ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
    ("HOME", "/root"),
    ("LANG", "C.UTF-8"),
    ("DEBIAN_FRONTEND", "noninteractive"),
    ("TERM", "dumb"),
];

/// Where the service-start policy goes, and what it says: exit 101 = "action forbidden", so
/// package maintainer scripts do not start daemons inside the rootfs.
const POLICY_RC_D: &str = "usr/sbin/policy-rc.d";
const POLICY_RC_D_SCRIPT: &[u8] = b"#!/bin/sh\nexit 101\n";

const RESOLV_CONF: &str = "etc/resolv.conf";
const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";

/// The fd number the status pipe gets in the helper. PID 1 writes [`READY`] to it once the
/// namespace is set up, or an error message instead; anything else means the helper failed.
const STATUS_FD: RawFd = 3;
const READY: &[u8] = b"R";
/// Exit status of the helper when it failed before running the command.
const SETUP_FAILED: i32 = 125;
/// Exit status when the command could not be executed (as in shells).
const CANNOT_EXECUTE: i32 = 126;
const NOT_FOUND: i32 = 127;

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

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    /// Exit code, or 128 + signal number if it was killed by a signal.
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Failure to run a command at all. A command that runs and fails is a normal [`RunOutput`].
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("nothing to run inside {root}: the command is empty")]
    EmptyCommand { root: PathBuf },
    #[error("cannot run {command} inside {root}: {reason}")]
    BadRequest { root: PathBuf, command: String, reason: String },
    /// Boxed: a `RootfsError` is large, and this keeps every `Result` small.
    #[error("cannot prepare the rootfs for running {command}")]
    Rootfs {
        root: PathBuf,
        command: String,
        #[source]
        source: Box<RootfsError>,
    },
    #[error("cannot start the rootfs helper {helper} for {command}")]
    Spawn {
        helper: PathBuf,
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("lost the rootfs helper while running {command}")]
    Io {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot set up namespaces in {root} to run {command}: {message}")]
    Setup { root: PathBuf, command: String, message: String },
}

/// Runs commands inside rootfs trees by re-executing `helper_exe` (the lxc-tmpl binary).
#[derive(Debug, Clone)]
pub struct Runner {
    helper_exe: PathBuf,
}

/// The environment a command gets: [`BASE_ENV`] with `extra` applied in order.
pub fn command_env(extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = BASE_ENV.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    for (key, value) in extra {
        match env.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.clone(),
            None => env.push((key.clone(), value.clone())),
        }
    }
    env
}

fn display_command(argv: &[String]) -> String {
    argv.join(" ")
}

impl Runner {
    /// A runner that re-executes `helper_exe` (normally `std::env::current_exe()`), whose main
    /// must hand `__run-in-rootfs` to [`helper_main`].
    pub fn new(helper_exe: PathBuf) -> Runner {
        Runner { helper_exe }
    }

    /// Run `req.argv` inside `req.root` and collect its output.
    ///
    /// Must be called from a thread that stays alive for the whole run (it does, as this call
    /// blocks): the helper's `PDEATHSIG` fires when the *thread* that spawned it exits.
    pub fn run(&self, req: &RunRequest) -> Result<RunOutput, RunnerError> {
        let command = display_command(req.argv);
        validate(req, &command)?;
        let rootfs_err = |source| RunnerError::Rootfs {
            root: req.root.to_path_buf(),
            command: command.clone(),
            source: Box::new(source),
        };
        let rootfs = Rootfs::open(req.root).map_err(rootfs_err)?;

        let policy = SavedFile::install_policy(&rootfs).map_err(rootfs_err)?;
        let resolv = if req.bind_resolv_conf && Path::new(HOST_RESOLV_CONF).exists() {
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

        let env = command_env(req.env);
        let result = self.spawn_helper(req, &command, &env, resolv.is_some());

        // Restore in reverse order, both even if the first fails; the run's own error wins.
        let resolv_restored = resolv.map_or(Ok(()), |saved| saved.restore(&rootfs));
        let policy_restored = policy.restore(&rootfs);
        let output = result?;
        resolv_restored.and(policy_restored).map_err(rootfs_err)?;
        Ok(output)
    }

    fn spawn_helper(
        &self,
        req: &RunRequest,
        command: &str,
        env: &[(String, String)],
        bind_resolv_conf: bool,
    ) -> Result<RunOutput, RunnerError> {
        let io_err = |source| RunnerError::Io { command: command.to_owned(), source };
        // The helper reports setup failures here, so they are told apart from the command's
        // own exit statuses and stderr.
        let (status_read, status_write) = pipe2(OFlag::O_CLOEXEC).map_err(|e| io_err(e.into()))?;

        let mut cmd = Command::new(&self.helper_exe);
        cmd.arg(HELPER_SUBCOMMAND)
            .args(helper_args(req.root, std::process::id(), req.hostname, bind_resolv_conf, env, req.argv))
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        sys::pass_fd_to_child(&mut cmd, status_write.as_fd(), STATUS_FD);
        let mut child = cmd.spawn().map_err(|source| RunnerError::Spawn {
            helper: self.helper_exe.clone(),
            command: command.to_owned(),
            source,
        })?;
        // Only the helper's copy may stay open, so EOF means "the helper tree is gone".
        drop(status_write);

        let stdin = child.stdin.take();
        let output = std::thread::scope(|scope| {
            // Feed stdin from a thread while wait_with_output drains stdout and stderr
            // concurrently: any of the three pipes may fill up first.
            let feeder = scope.spawn(move || {
                if let Some(mut stdin) = stdin {
                    match stdin.write_all(req.stdin) {
                        // The command need not read all of its input.
                        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(e),
                        _ => {}
                    }
                }
                Ok(())
            });
            let output = child.wait_with_output();
            let fed = feeder.join().unwrap_or(Ok(()));
            output.and_then(|o| fed.map(|()| o))
        })
        .map_err(io_err)?;

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
            return Err(RunnerError::Setup { root: req.root.to_path_buf(), command: command.to_owned(), message });
        }

        Ok(RunOutput { status, stdout: output.stdout, stderr: output.stderr })
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

fn validate(req: &RunRequest, command: &str) -> Result<(), RunnerError> {
    let bad =
        |reason: String| RunnerError::BadRequest { root: req.root.to_path_buf(), command: command.to_owned(), reason };
    if req.argv.is_empty() || req.argv[0].is_empty() {
        return Err(RunnerError::EmptyCommand { root: req.root.to_path_buf() });
    }
    if req.argv.iter().any(|a| a.contains('\0')) {
        return Err(bad("an argument contains a NUL byte".into()));
    }
    for (key, value) in req.env {
        if key.is_empty() || key.contains(['=', '\0']) || value.contains('\0') {
            return Err(bad(format!("bad environment variable {key:?}")));
        }
    }
    if let Some(hostname) = req.hostname
        && (hostname.is_empty() || hostname.len() > 64 || hostname.contains('\0'))
    {
        return Err(bad(format!("bad hostname {hostname:?}")));
    }
    Ok(())
}

/// A rootfs file the runner changes for the duration of a run, and what was there before.
#[derive(Debug)]
enum SavedFile {
    /// Nothing was there: remove ours afterwards.
    Absent(&'static str),
    /// A regular file: write it back.
    File { path: &'static str, data: Vec<u8>, mode: u32 },
    /// A symlink: recreate it.
    Symlink(&'static str, PathBuf),
    /// The file is used as it is; nothing to restore.
    Untouched,
}

impl SavedFile {
    /// Remember what is at `path` (which must not be a directory or special file).
    fn save(rootfs: &Rootfs, path: &'static str) -> Result<Option<SavedFile>, RootfsError> {
        Ok(match rootfs.file_kind(path)? {
            None => Some(SavedFile::Absent(path)),
            Some(FileKind::File) => {
                Some(SavedFile::File { path, data: rootfs.read_file(path)?, mode: rootfs.mode(path)? })
            }
            Some(FileKind::Symlink) => Some(SavedFile::Symlink(path, rootfs.read_link(path)?)),
            Some(FileKind::Dir | FileKind::Other) => None,
        })
    }

    /// Put `policy-rc.d` in place if the rootfs has `usr/sbin` (a rootfs without it has no
    /// invoke-rc.d to honour it).
    fn install_policy(rootfs: &Rootfs) -> Result<SavedFile, RootfsError> {
        if rootfs.file_kind("usr/sbin")? != Some(FileKind::Dir) {
            return Ok(SavedFile::Untouched);
        }
        let Some(saved) = SavedFile::save(rootfs, POLICY_RC_D)? else {
            return Ok(SavedFile::Untouched);
        };
        rootfs.write_file(POLICY_RC_D, POLICY_RC_D_SCRIPT, 0o755)?;
        Ok(saved)
    }

    /// Make `etc/resolv.conf` a regular file to bind onto. A missing file gets an empty
    /// placeholder; a symlink (Ubuntu's points into `/run/systemd/resolve`, which does not
    /// exist in a chroot) is replaced by one. Both are undone afterwards. `None`: nothing can
    /// be bound (no `etc`, or a directory in the way).
    fn prepare_resolv_conf(rootfs: &Rootfs) -> Result<Option<SavedFile>, RootfsError> {
        if rootfs.file_kind("etc")? != Some(FileKind::Dir) {
            return Ok(None);
        }
        let saved = match SavedFile::save(rootfs, RESOLV_CONF)? {
            None => return Ok(None),
            Some(SavedFile::File { .. }) => SavedFile::Untouched,
            Some(saved) => {
                rootfs.write_file(RESOLV_CONF, b"", 0o644)?;
                saved
            }
        };
        Ok(Some(saved))
    }

    fn restore(self, rootfs: &Rootfs) -> Result<(), RootfsError> {
        match self {
            SavedFile::Absent(path) => rootfs.remove(path),
            SavedFile::File { path, data, mode } => rootfs.write_file(path, &data, mode),
            SavedFile::Symlink(path, target) => rootfs.symlink(&target.to_string_lossy(), path),
            SavedFile::Untouched => Ok(()),
        }
    }
}

/// The helper's argv after [`HELPER_SUBCOMMAND`].
fn helper_args(
    root: &Path,
    parent_pid: u32,
    hostname: Option<&str>,
    bind_resolv_conf: bool,
    env: &[(String, String)],
    argv: &[String],
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "--root".into(),
        root.as_os_str().to_owned(),
        "--ppid".into(),
        parent_pid.to_string().into(),
        "--status-fd".into(),
        STATUS_FD.to_string().into(),
    ];
    if let Some(hostname) = hostname {
        args.extend(["--hostname".into(), hostname.into()]);
    }
    if bind_resolv_conf {
        args.push("--resolv".into());
    }
    for (key, value) in env {
        args.extend(["--env".into(), format!("{key}={value}").into()]);
    }
    args.push("--".into());
    args.extend(argv.iter().map(OsString::from));
    args
}

/// The request as the helper sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HelperArgs {
    root: PathBuf,
    parent_pid: Option<i32>,
    status_fd: Option<RawFd>,
    hostname: Option<String>,
    bind_resolv_conf: bool,
    env: Vec<OsString>,
    argv: Vec<OsString>,
}

impl HelperArgs {
    fn parse(args: &[OsString]) -> Result<HelperArgs, String> {
        let mut root = None;
        let mut parsed = HelperArgs {
            root: PathBuf::new(),
            parent_pid: None,
            status_fd: None,
            hostname: None,
            bind_resolv_conf: false,
            env: Vec::new(),
            argv: Vec::new(),
        };
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let mut value = |name: &str| iter.next().cloned().ok_or_else(|| format!("{name} needs a value"));
            let number = |name: &str, v: OsString| {
                v.to_str().and_then(|s| s.parse::<i32>().ok()).ok_or_else(|| format!("{name}: not a number: {v:?}"))
            };
            match arg.to_str() {
                Some("--root") => root = Some(PathBuf::from(value("--root")?)),
                Some("--ppid") => parsed.parent_pid = Some(number("--ppid", value("--ppid")?)?),
                Some("--status-fd") => {
                    parsed.status_fd = Some(number("--status-fd", value("--status-fd")?)?);
                }
                Some("--hostname") => {
                    let v = value("--hostname")?;
                    let v = v.into_string().map_err(|v| format!("bad hostname {v:?}"))?;
                    parsed.hostname = Some(v);
                }
                Some("--resolv") => parsed.bind_resolv_conf = true,
                Some("--env") => {
                    let v = value("--env")?;
                    if !v.as_bytes().contains(&b'=') {
                        return Err(format!("--env needs NAME=VALUE, got {v:?}"));
                    }
                    parsed.env.push(v);
                }
                Some("--") => {
                    parsed.argv = iter.cloned().collect();
                    break;
                }
                _ => return Err(format!("unexpected argument {arg:?}")),
            }
        }
        parsed.root = root.ok_or("--root is required")?;
        if parsed.argv.is_empty() {
            return Err("no command given after --".into());
        }
        Ok(parsed)
    }
}

/// Where the helper reports a setup failure: the status pipe if the parent gave us one, else
/// stderr.
#[derive(Debug)]
struct Reporter {
    status: Option<File>,
}

impl Reporter {
    /// Tell the parent that setup is complete and the command is about to start.
    fn ready(&mut self) {
        if let Some(status) = self.status.as_mut() {
            // If this fails the parent reports a setup failure, which is the safe side.
            let _ = status.write_all(READY);
        }
    }

    fn report(&mut self, message: &str) {
        let line = format!("{message}\n");
        let written = self.status.as_mut().is_some_and(|f| f.write_all(line.as_bytes()).is_ok());
        if !written {
            eprint!("lxc-tmpl: {HELPER_SUBCOMMAND}: {line}");
        }
    }
}

/// `message: cause: cause...` for an error and its sources.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Entry point of the helper process (`lxc-tmpl __run-in-rootfs ARGS`); `args` are the
/// arguments after the subcommand. Returns the exit status for the process: the command's, or
/// 125 if the helper failed before running it.
///
/// Must be called in a fresh process before any thread is started: it forks and keeps running
/// Rust code in the children.
pub fn helper_main(args: &[OsString]) -> i32 {
    let args = match HelperArgs::parse(args) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("lxc-tmpl: {HELPER_SUBCOMMAND}: {message}");
            return SETUP_FAILED;
        }
    };
    let mut reporter = Reporter { status: args.status_fd.and_then(sys::take_inherited_fd).map(File::from) };
    let sys = LinuxSyscall;

    if let Err(e) = enter_namespaces(&sys) {
        reporter.report(&error_chain(&e));
        return SETUP_FAILED;
    }
    // PDEATHSIG only covers a parent dying *after* prctl; if it died before, we have been
    // reparented already.
    if let Some(ppid) = args.parent_pid
        && getppid() != Pid::from_raw(ppid)
    {
        reporter.report("lxc-tmpl exited before the helper started");
        return SETUP_FAILED;
    }

    // PID 1 holds the read end; it sees EOF iff the helper (the only writer) is gone.
    let (alive_read, alive_write) = match pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK) {
        Ok(pair) => pair,
        Err(e) => {
            reporter.report(&format!("cannot create a pipe: {e}"));
            return SETUP_FAILED;
        }
    };
    match sys::fork_single_threaded() {
        Ok(ForkResult::Child) => {
            drop(alive_write);
            let status = pid1_main(&sys, &args, alive_read, &mut reporter);
            sys::exit_immediately(status)
        }
        Ok(ForkResult::Parent { child }) => {
            drop(alive_read);
            let status = wait_for(child);
            drop(alive_write);
            status
        }
        Err(e) => {
            reporter.report(&format!("cannot fork into the new PID namespace: {e}"));
            SETUP_FAILED
        }
    }
}

/// Exit status of `pid` once it exits (128 + signal if killed).
fn wait_for(pid: Pid) -> i32 {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, signal, _)) => return 128 + signal as i32,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(_) => return SETUP_FAILED,
        }
    }
}

/// A step of the in-namespace setup that failed.
#[derive(Debug, thiserror::Error)]
enum SetupError {
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

/// Helper side, before the fork: die with the parent, then new namespaces, then stop mount
/// propagation to the host before anything is mounted.
fn enter_namespaces(sys: &dyn Syscall) -> Result<(), SetupError> {
    sys.set_pdeathsig(Signal::SIGKILL).map_err(sys_step("set the parent-death signal"))?;
    sys.unshare(
        CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC,
    )
    .map_err(sys_step("unshare mount, PID, UTS and IPC namespaces"))?;
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
struct MountPlan {
    root: PathBuf,
    hostname: Option<String>,
    mounts: Vec<MountStep>,
}

impl MountPlan {
    fn new(root: &Path, hostname: Option<&str>, bind_resolv_conf: bool) -> MountPlan {
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
fn setup_in_namespace(sys: &dyn Syscall, plan: &MountPlan) -> Result<(), SetupError> {
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

/// PID 1 of the new PID namespace: set up, run the command, reap until it exits.
fn pid1_main(sys: &dyn Syscall, args: &HelperArgs, alive: OwnedFd, reporter: &mut Reporter) -> i32 {
    if let Err(e) = sys.set_pdeathsig(Signal::SIGKILL) {
        reporter.report(&format!("set the parent-death signal: {e}"));
        return SETUP_FAILED;
    }
    if helper_gone(&alive) {
        return SETUP_FAILED;
    }
    drop(alive);

    let plan = MountPlan::new(&args.root, args.hostname.as_deref(), args.bind_resolv_conf);
    if let Err(e) = setup_in_namespace(sys, &plan) {
        reporter.report(&error_chain(&e));
        return SETUP_FAILED;
    }
    reporter.ready();

    let command = match sys::fork_single_threaded() {
        Ok(ForkResult::Child) => exec_command(args),
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => {
            reporter.report(&format!("cannot fork the command: {e}"));
            return SETUP_FAILED;
        }
    };
    // We are init here: orphans are reparented to us, so reap everything, and stop once the
    // command itself has exited. Our exit then kills whatever is left in the namespace.
    loop {
        match waitpid(None::<Pid>, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == command => return code,
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == command => {
                return 128 + signal as i32;
            }
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(_) => return SETUP_FAILED,
        }
    }
}

/// True if the helper has exited: the only write end of the `alive` pipe is closed.
fn helper_gone(alive: &OwnedFd) -> bool {
    let mut byte = [0u8; 1];
    matches!(nix::unistd::read(alive.as_fd(), &mut byte), Ok(0))
}

/// In the command's process (after `chroot`): exec `args.argv` with the clean environment,
/// searching `PATH` of that environment inside the root. Never returns.
fn exec_command(args: &HelperArgs) -> ! {
    if let Err(e) = sys::reset_signals_for_exec() {
        eprintln!("lxc-tmpl: cannot reset signal handling: {e}");
        sys::exit_immediately(CANNOT_EXECUTE);
    }
    // A fixed umask, so what the command creates (and a cache built from it) does not depend
    // on the umask of whoever ran lxc-tmpl.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let program = &args.argv[0];
    let to_cstring = |s: &OsStr| CString::new(s.as_bytes()).ok();
    let argv: Option<Vec<CString>> = args.argv.iter().map(|a| to_cstring(a)).collect();
    let env: Option<Vec<CString>> = args.env.iter().map(|e| to_cstring(e)).collect();
    let (Some(argv), Some(env)) = (argv, env) else {
        eprintln!("lxc-tmpl: cannot run {program:?}: an argument contains a NUL byte");
        sys::exit_immediately(CANNOT_EXECUTE);
    };

    let errno = exec_in_path(program, &argv, &env, &args.env);
    eprintln!("lxc-tmpl: cannot run {} inside {}: {}", program.to_string_lossy(), args.root.display(), errno.desc());
    sys::exit_immediately(match errno {
        Errno::ENOENT | Errno::ENOTDIR => NOT_FOUND,
        _ => CANNOT_EXECUTE,
    })
}

/// `execvpe` with the `PATH` of the command's environment (glibc's would use ours). Returns
/// the error that ended the search, as execvp(3) reports it.
fn exec_in_path(program: &OsStr, argv: &[CString], env: &[CString], env_os: &[OsString]) -> Errno {
    let candidates: Vec<OsString> = if program.as_bytes().contains(&b'/') {
        vec![program.to_owned()]
    } else {
        let path = env_os
            .iter()
            .rev()
            .find_map(|e| e.as_bytes().strip_prefix(b"PATH=").map(<[u8]>::to_vec))
            .unwrap_or_else(|| BASE_ENV[0].1.as_bytes().to_vec());
        path.split(|b| *b == b':')
            .map(|dir| {
                let dir = if dir.is_empty() { b"." as &[u8] } else { dir };
                let mut candidate = dir.to_vec();
                candidate.push(b'/');
                candidate.extend_from_slice(program.as_bytes());
                OsString::from_vec(candidate)
            })
            .collect()
    };
    let mut result = Errno::ENOENT;
    let mut saw_eacces = false;
    for candidate in candidates {
        let Ok(path) = CString::new(candidate.into_vec()) else {
            continue;
        };
        let Err(errno) = execve(&path, argv, env);
        match errno {
            // Not here: try the next directory.
            Errno::ENOENT | Errno::ENOTDIR | Errno::ESTALE | Errno::ENODEV | Errno::ETIMEDOUT => {}
            // Found but not executable: remember, keep looking (as execvp does).
            Errno::EACCES => saw_eacces = true,
            other => {
                result = other;
                break;
            }
        }
    }
    if saw_eacces && result == Errno::ENOENT { Errno::EACCES } else { result }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures are built with std::fs on purpose
mod tests {
    use super::*;
    use crate::sys::{Call, RecordingSyscall};

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
    fn runner_helper_args_round_trip() {
        let env = command_env(&[("A".into(), "x=y".into())]);
        let argv = strings(&["apt-get", "--", "-y", "install"]);
        let args = helper_args(Path::new("/r/rootfs"), 42, Some("web1"), true, &env, &argv);
        let parsed = HelperArgs::parse(&args).unwrap();
        assert_eq!(parsed.root, PathBuf::from("/r/rootfs"));
        assert_eq!(parsed.parent_pid, Some(42));
        assert_eq!(parsed.status_fd, Some(STATUS_FD));
        assert_eq!(parsed.hostname.as_deref(), Some("web1"));
        assert!(parsed.bind_resolv_conf);
        assert!(parsed.env.contains(&OsString::from("A=x=y")));
        assert_eq!(parsed.argv, argv.iter().map(OsString::from).collect::<Vec<_>>());

        let bare = helper_args(Path::new("/r"), 1, None, false, &[], &strings(&["true"]));
        let parsed = HelperArgs::parse(&bare).unwrap();
        assert_eq!(parsed.hostname, None);
        assert!(!parsed.bind_resolv_conf);
        assert!(HelperArgs::parse(&["--root".into(), "/r".into()]).is_err());
        assert!(HelperArgs::parse(&["--bogus".into()]).is_err());
    }

    #[test]
    fn runner_enter_namespaces_sequence() {
        let sys = RecordingSyscall::new();
        enter_namespaces(&sys).unwrap();
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
        assert!(enter_namespaces(&sys).is_err());
        assert_eq!(sys.calls().len(), 2);
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
        assert!(error_chain(&err).contains("mount proc on proc"), "{}", error_chain(&err));
        assert_eq!(sys.calls().len(), 1);
    }

    #[test]
    fn runner_policy_rc_d_installed_and_restored() {
        let tmp = tempfile::tempdir().unwrap();
        let rootfs = Rootfs::open(tmp.path()).unwrap();
        // No usr/sbin: nothing installed.
        let saved = SavedFile::install_policy(&rootfs).unwrap();
        assert_eq!(rootfs.file_kind(POLICY_RC_D).unwrap(), None);
        saved.restore(&rootfs).unwrap();

        rootfs.mkdir_all("usr/sbin", 0o755).unwrap();
        let saved = SavedFile::install_policy(&rootfs).unwrap();
        assert_eq!(rootfs.read_file(POLICY_RC_D).unwrap(), POLICY_RC_D_SCRIPT);
        assert_eq!(rootfs.mode(POLICY_RC_D).unwrap(), 0o755);
        saved.restore(&rootfs).unwrap();
        assert_eq!(rootfs.file_kind(POLICY_RC_D).unwrap(), None);

        rootfs.write_file(POLICY_RC_D, b"#!/bin/sh\nexit 0\n", 0o700).unwrap();
        let saved = SavedFile::install_policy(&rootfs).unwrap();
        assert_eq!(rootfs.read_file(POLICY_RC_D).unwrap(), POLICY_RC_D_SCRIPT);
        saved.restore(&rootfs).unwrap();
        assert_eq!(rootfs.read_file(POLICY_RC_D).unwrap(), b"#!/bin/sh\nexit 0\n");
        assert_eq!(rootfs.mode(POLICY_RC_D).unwrap(), 0o700);

        rootfs.symlink("/bin/true", POLICY_RC_D).unwrap();
        let saved = SavedFile::install_policy(&rootfs).unwrap();
        assert_eq!(rootfs.file_kind(POLICY_RC_D).unwrap(), Some(FileKind::File));
        saved.restore(&rootfs).unwrap();
        assert_eq!(rootfs.read_link(POLICY_RC_D).unwrap(), PathBuf::from("/bin/true"));
    }

    #[test]
    fn runner_resolv_conf_placeholder_restored() {
        let tmp = tempfile::tempdir().unwrap();
        let rootfs = Rootfs::open(tmp.path()).unwrap();
        assert!(SavedFile::prepare_resolv_conf(&rootfs).unwrap().is_none());
        rootfs.mkdir_all("etc", 0o755).unwrap();

        let saved = SavedFile::prepare_resolv_conf(&rootfs).unwrap().unwrap();
        assert_eq!(rootfs.file_kind(RESOLV_CONF).unwrap(), Some(FileKind::File));
        saved.restore(&rootfs).unwrap();
        assert_eq!(rootfs.file_kind(RESOLV_CONF).unwrap(), None);

        let stub = "../run/systemd/resolve/stub-resolv.conf";
        rootfs.symlink(stub, RESOLV_CONF).unwrap();
        let saved = SavedFile::prepare_resolv_conf(&rootfs).unwrap().unwrap();
        assert_eq!(rootfs.file_kind(RESOLV_CONF).unwrap(), Some(FileKind::File));
        saved.restore(&rootfs).unwrap();
        assert_eq!(rootfs.read_link(RESOLV_CONF).unwrap(), PathBuf::from(stub));

        rootfs.write_file(RESOLV_CONF, b"nameserver 10.0.0.1\n", 0o644).unwrap();
        let saved = SavedFile::prepare_resolv_conf(&rootfs).unwrap().unwrap();
        saved.restore(&rootfs).unwrap();
        assert_eq!(rootfs.read_file(RESOLV_CONF).unwrap(), b"nameserver 10.0.0.1\n");
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

    #[test]
    fn runner_exec_in_path_reports_not_found() {
        // Candidates that do not exist never exec; the search ends with ENOENT. The PATH
        // entries are inside an empty temp dir, so nothing can actually be executed.
        let tmp = tempfile::tempdir().unwrap();
        let path = format!("PATH={0}/a:{0}/b", tmp.path().display());
        let argv = [CString::new("no-such-program").unwrap()];
        let errno = exec_in_path(OsStr::new("no-such-program"), &argv, &[], &[OsString::from(path)]);
        assert_eq!(errno, Errno::ENOENT);
        assert_eq!(errno.desc(), "No such file or directory");
    }
}
