//! The helper process: a fresh `lxc-tmpl __run-in-rootfs` that enters new namespaces, forks
//! PID 1 of a new PID namespace, and there runs the command and reaps every process until the
//! command exits.
//!
//! The `PDEATHSIG` chain (lxc-tmpl → helper → PID 1) and the PID namespace make the whole tree
//! die with lxc-tmpl: when PID 1 exits, for whatever reason, the kernel kills every process left
//! in its namespace, and the mount namespace disappears with its last process.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, getppid, pipe2};

use super::HELPER_SUBCOMMAND;
use super::exec::exec_command;
use super::namespace::{MountPlan, enter_namespaces, setup_in_namespace};
use super::protocol::{HelperRequest, Place, READY, REQUEST_FD, SETUP_FAILED, STATUS_FD};
use crate::report::error_chain;
use crate::sys::{self, LinuxSyscall, Syscall};

/// Where the helper reports a setup failure: the status pipe if the parent gave us one, else
/// stderr.
#[derive(Debug)]
struct SetupStatus {
    status: Option<File>,
}

impl SetupStatus {
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

/// Entry point of the helper process (`lxc-tmpl __run-in-rootfs`), which reads its request from
/// [`REQUEST_FD`]. Returns the exit status for the process: the command's, or 125 if the helper
/// failed before running it.
///
/// Must be called in a fresh process before any thread is started: it forks and keeps running
/// Rust code in the children.
pub fn helper_main() -> i32 {
    let mut reporter = SetupStatus { status: sys::take_inherited_fd(STATUS_FD).map(File::from) };
    let request = match sys::take_inherited_fd(REQUEST_FD)
        .ok_or_else(|| format!("no request on fd {REQUEST_FD}: only lxc-tmpl itself starts {HELPER_SUBCOMMAND}"))
        .and_then(HelperRequest::read_from)
    {
        Ok(request) => request,
        Err(message) => {
            reporter.report(&message);
            return SETUP_FAILED;
        }
    };
    let sys = LinuxSyscall;

    if let Err(e) = enter_namespaces(&sys, &request.place) {
        reporter.report(&error_chain(&e));
        return SETUP_FAILED;
    }
    // PDEATHSIG only covers a parent dying *after* prctl; if it died before, we have been
    // reparented already.
    if getppid() != Pid::from_raw(request.parent_pid) {
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
            let status = pid1_main(&sys, &request, alive_read, &mut reporter);
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

/// PID 1 of the new PID namespace: set up, run the command, reap until it exits.
fn pid1_main(sys: &dyn Syscall, request: &HelperRequest, alive: OwnedFd, reporter: &mut SetupStatus) -> i32 {
    if let Err(e) = sys.set_pdeathsig(Signal::SIGKILL) {
        reporter.report(&format!("set the parent-death signal: {e}"));
        return SETUP_FAILED;
    }
    if helper_gone(&alive) {
        return SETUP_FAILED;
    }
    drop(alive);

    // A host command needs no setup: its private mount namespace starts as a slave copy of the
    // host's, and the PID namespace is what makes its whole tree die with us.
    if let Place::Rootfs { root, hostname, bind_resolv_conf } = &request.place {
        let plan = MountPlan::new(root, hostname.as_deref(), *bind_resolv_conf);
        if let Err(e) = setup_in_namespace(sys, &plan) {
            reporter.report(&error_chain(&e));
            return SETUP_FAILED;
        }
    }
    reporter.ready();

    let command = match sys::fork_single_threaded() {
        Ok(ForkResult::Child) => exec_command(request),
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
