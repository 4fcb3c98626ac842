//! SIGINT, SIGTERM and SIGHUP: a create that is interrupted rolls back like one that failed.
//!
//! A create runs for a minute and is interrupted all the time: Ctrl-C, a closed ssh session
//! (SIGHUP), `timeout`, a service stop or a CI time-out (SIGTERM). The default action of these
//! signals kills lxc-tmpl on the spot, which would leave a half-made container and, worse, tools
//! still writing into it. Instead:
//!
//! 1. [`install`] blocks the three signals in the calling thread (and so in every thread started
//!    after it) and starts one thread that waits for them with `sigwait(2)`.
//! 2. Every child process lxc-tmpl starts is spawned through [`spawn`], which registers a pidfd
//!    for it (`pidfd_open(2)`). The children are the runner's helpers, each the root of its own
//!    PID namespace, so killing one kills its whole tree (see [`crate::runner`]).
//! 3. On the first signal the signal thread records it and `SIGKILL`s every registered child.
//!    The command that was running fails, the step that ran it returns an error, and the create
//!    rolls back on its ordinary failure path (the container directory and cache staging are
//!    removed). Nothing new is spawned afterwards: [`spawn`] refuses, and the create checks
//!    [`check`] between steps. The binary then exits with 128 + the signal number, as a shell
//!    reports a command killed by that signal.
//! 4. A second signal during the rollback only kills children again (there are none): it cannot
//!    cut the rollback short and so leaves no more behind than the first.
//!
//! A pidfd names one process for good, so a child that was reaped meanwhile is never confused
//! with a new process that got its PID.
//!
//! [`install`] also makes lxc-tmpl a child subreaper (`PR_SET_CHILD_SUBREAPER`): when a killed
//! helper leaves its PID 1 behind (dying of its `PDEATHSIG`), that PID 1 becomes our child, and
//! [`reap_orphans`] waits for it, so that no process of the create, not even a zombie, outlives
//! lxc-tmpl.
//!
//! `SIGKILL` cannot be caught; what it leaves (an unlocked `partial` file, a `staging.*`
//! directory) is recognised and removed by the next run (see [`crate::container`] and
//! [`crate::cache`]), and the child trees die with lxc-tmpl through `PR_SET_PDEATHSIG`.

use std::io;
use std::os::fd::OwnedFd;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard, Once};

use nix::sys::signal::{SigSet, Signal};
use thiserror::Error;

use crate::sys;

/// The signals that roll a create back.
pub const SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// The first signal received, as its number; 0 while none has arrived.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// Set by the signal thread as soon as `sigwait` hands it a signal, before it is recorded.
static TAKING: AtomicBool = AtomicBool::new(false);

/// How long [`interrupted`] waits for the signal thread to record a signal that has arrived.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether [`install`] made this process a subreaper whose orphans [`reap_orphans`] collects.
static REAPING: AtomicBool = AtomicBool::new(false);

/// Children that die when a signal arrives, by registration id.
static CHILDREN: Mutex<Vec<(u64, OwnedFd)>> = Mutex::new(Vec::new());
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The create was interrupted by a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("interrupted by {}", .0.as_str())]
pub struct Interrupted(pub Signal);

impl Interrupted {
    /// The exit status a shell gives a command killed by this signal: 128 + its number.
    pub fn exit_status(self) -> u8 {
        128u8.saturating_add(self.0 as u8)
    }
}

/// A child could not be spawned.
#[derive(Debug, Error)]
pub enum SpawnError {
    /// A signal arrived: nothing new is started.
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
    /// `fork`/`exec` failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Blocks [`SIGNALS`] and starts the thread that handles them. Idempotent.
///
/// Call it first thing in `main`, before any other thread exists: a thread started earlier keeps
/// the signals unblocked, and the kernel may deliver one to it (killing the process).
///
/// # Errors
/// When the signal mask cannot be changed or the thread cannot be started.
pub fn install() -> io::Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = start_signal_thread();
    });
    result
}

fn start_signal_thread() -> io::Result<()> {
    let mut set = SigSet::empty();
    for signal in SIGNALS {
        set.add(signal);
    }
    set.thread_block().map_err(io::Error::from)?;
    nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)?;
    REAPING.store(true, Ordering::SeqCst);
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        loop {
            if let Ok(signal) = set.wait() {
                TAKING.store(true, Ordering::SeqCst);
                on_signal(signal);
            }
        }
    })?;
    Ok(())
}

/// Records the first signal and kills every registered child.
fn on_signal(signal: Signal) {
    // Taken under the registry lock, so that `spawn` either sees the signal or registers its
    // child before the kills below.
    let children = registry();
    let _ = RECEIVED.compare_exchange(0, signal as i32, Ordering::SeqCst, Ordering::SeqCst);
    kill_where(&children, |_| true);
}

/// `SIGKILL`s the registered children whose id `select` picks.
fn kill_where(children: &[(u64, OwnedFd)], select: impl Fn(u64) -> bool) {
    for (id, pidfd) in children {
        if select(*id) {
            // ESRCH (already exited) is fine.
            let _ = sys::pidfd_kill(pidfd);
        }
    }
}

fn registry() -> MutexGuard<'static, Vec<(u64, OwnedFd)>> {
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner())
}

/// The signal recorded so far, if any.
fn recorded() -> Option<Interrupted> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        number => Signal::try_from(number).ok().map(Interrupted),
    }
}

/// Whether one of [`SIGNALS`] has arrived but the signal thread has not recorded it yet.
fn arriving() -> bool {
    TAKING.load(Ordering::SeqCst)
        || sys::pending_signals().is_ok_and(|pending| SIGNALS.iter().any(|s| pending.contains(*s)))
}

/// The signal that interrupted this process, if one did.
///
/// A signal sent to the process group (Ctrl-C, `kill -TERM -PGID`) reaches lxc-tmpl and the
/// command it runs at once, and the command can die and be reaped before the signal thread has
/// run. So a signal that has arrived (pending, or taken by the thread) but is not yet recorded
/// is waited for, up to [`SETTLE`]: the failure of that command is then reported as the
/// interruption it is, not as the command's own failure.
pub fn interrupted() -> Option<Interrupted> {
    if let Some(signal) = recorded() {
        return Some(signal);
    }
    let start = std::time::Instant::now();
    while arriving() && start.elapsed() < SETTLE {
        if let Some(signal) = recorded() {
            return Some(signal);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    recorded()
}

/// `Err` once a signal has arrived: steps call this before starting anything new.
///
/// # Errors
/// [`Interrupted`] with the signal.
pub fn check() -> Result<(), Interrupted> {
    recorded().map_or(Ok(()), Err)
}

/// Asks for SIGTERM when the parent dies (`PR_SET_PDEATHSIG`), so that a template killed out from
/// under it (lxc-create stopped by SIGTERM, which does not pass it on) rolls back as if it had
/// been signalled itself. Call it after [`install`], from the thread that lives for the whole run.
///
/// # Errors
/// When the `prctl` fails.
pub fn follow_parent() -> io::Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(io::Error::from)
}

/// Waits for every child this process has that nobody else waits for: the PID 1s of killed runs,
/// reparented to us as a subreaper. Does nothing unless [`install`] ran.
///
/// Call it only when no other child of this process is running (the runner does, right after it
/// has reaped its helper; lxc-tmpl starts one child at a time): it waits until there are none.
pub fn reap_orphans() {
    if !REAPING.load(Ordering::SeqCst) {
        return;
    }
    loop {
        match nix::sys::wait::waitpid(None::<nix::unistd::Pid>, None) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            // ECHILD: none left.
            Err(_) => return,
        }
    }
}

/// Keeps a spawned child registered for killing until dropped (after the child is reaped).
#[derive(Debug)]
pub struct ChildGuard {
    id: u64,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        registry().retain(|(id, _)| *id != self.id);
    }
}

/// Spawns `cmd` and registers the child, so that a signal kills it.
///
/// Keep the guard until the child has been waited for.
///
/// # Errors
/// [`SpawnError::Interrupted`] when a signal has already arrived (nothing is spawned), or the
/// error of `spawn`/`pidfd_open`; a child whose pidfd cannot be opened is killed and reaped.
pub fn spawn(cmd: &mut Command) -> Result<(Child, ChildGuard), SpawnError> {
    let mut children = registry();
    check()?;
    let mut child = cmd.spawn()?;
    let pidfd = match sys::pidfd_open(child.id()) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SpawnError::Io(e.into()));
        }
    };
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    children.push((id, pidfd));
    Ok((child, ChildGuard { id }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interrupted_exit_status_is_128_plus_signal() {
        assert_eq!(Interrupted(Signal::SIGINT).exit_status(), 130);
        assert_eq!(Interrupted(Signal::SIGTERM).exit_status(), 143);
        assert_eq!(Interrupted(Signal::SIGHUP).exit_status(), 129);
        assert_eq!(Interrupted(Signal::SIGTERM).to_string(), "interrupted by SIGTERM");
    }

    #[test]
    fn registered_children_are_unregistered_when_the_guard_drops() {
        let (mut child, guard) = spawn(Command::new("true").stdout(std::process::Stdio::null())).unwrap();
        assert!(registry().iter().any(|(id, _)| *id == guard.id));
        child.wait().unwrap();
        let id = guard.id;
        drop(guard);
        assert!(registry().iter().all(|(other, _)| *other != id));
    }

    #[test]
    fn the_signal_path_kills_registered_children_by_pidfd() {
        // The kill step of on_signal, limited to this test's child: other tests of this binary
        // run their own registered children concurrently, and RECEIVED must stay 0 for them
        // (the whole path, with real signals, is tested in tests/it/interrupt.rs).
        let (mut child, guard) = spawn(Command::new("sleep").arg("30")).unwrap();
        kill_where(&registry(), |id| id == guard.id);
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
        // Killing a reaped child through its pidfd is harmless (ESRCH), never another process.
        kill_where(&registry(), |id| id == guard.id);
    }
}
