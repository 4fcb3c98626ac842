//! [`Running`]: a command started in the background, to watch its stderr
//! line by line and to signal it part way through (fault injection).
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use lxc_tmpl_tests::{TestDir, running::{Running, Signal}};
//!
//! let dir = TestDir::new("example");
//! let mut create = Running::spawn(&mut dir.create("busybox", "c1"));
//! create.wait_for_line("the download step", Duration::from_secs(30), |l| l == "==> download").unwrap();
//! create.signal(Signal::SIGTERM);
//! let outcome = create.wait(Duration::from_secs(60));
//! assert_eq!(outcome.code(), Some(143));
//! ```
//!
//! The child is the leader of a new process group (its pgid is its pid), so
//! that [`signal_group`](Running::signal_group) can do what Ctrl-C does and
//! the processes it leaves can be found by their group
//! ([`crate::procs`]). Dropping a `Running` that was not waited for kills
//! the child (by its pid) and reaps it.

use std::{
    io::{BufRead, BufReader, Read},
    os::unix::process::CommandExt,
    process::{Child, Stdio},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

pub use nix::sys::signal::Signal;
use nix::{
    sys::signal::{kill, killpg},
    unistd::Pid,
};

use crate::command::{Outcome, TestCommand};

/// How often conditions on processes are polled.
const POLL: Duration = Duration::from_millis(5);

/// How long [`Running::wait`] reads output after the process exited: a
/// process it leaves behind may hold the pipes open.
const DRAIN: Duration = Duration::from_secs(2);

/// A command running in the background; see the module docs.
#[derive(Debug)]
pub struct Running {
    child: Option<Child>,
    command: String,
    started: Instant,
    lines: Receiver<String>,
    stderr_seen: Vec<String>,
    stdout: Receiver<String>,
    stderr: Option<JoinHandle<()>>,
}

impl Running {
    /// Starts `cmd` with standard input closed and stdout and stderr piped,
    /// as the leader of a new process group.
    pub fn spawn(cmd: &mut TestCommand) -> Running {
        let command = cmd.display();
        let mut child = cmd
            .std_command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {command}: {e}"));
        let mut out = child.stdout.take().expect("stdout is piped");
        let (out_tx, stdout) = mpsc::channel();
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = out.read_to_end(&mut bytes);
            let _ = out_tx.send(String::from_utf8_lossy(&bytes).into_owned());
        });
        let err = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = mpsc::channel();
        let stderr = thread::spawn(move || {
            for line in BufReader::new(err).split(b'\n') {
                let Ok(line) = line else { break };
                if tx.send(String::from_utf8_lossy(&line).into_owned()).is_err() {
                    break;
                }
            }
        });
        Running {
            child: Some(child),
            command,
            started: Instant::now(),
            lines,
            stderr_seen: Vec::new(),
            stdout,
            stderr: Some(stderr),
        }
    }

    /// Its pid (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("not waited for yet").id()
    }

    /// The command line, for messages.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// How long ago it was started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Sends `signal` to the process alone (what `kill`, `timeout` and
    /// systemd's main-process stop do).
    pub fn signal(&self, signal: Signal) {
        // Our own child, by its pid; it may have exited (and be a zombie) meanwhile.
        let _ = kill(Pid::from_raw(self.pid() as i32), signal);
    }

    /// Sends `signal` to its whole process group, as a terminal does on
    /// Ctrl-C (SIGINT) or hang-up: the children that stayed in the group get
    /// it too.
    pub fn signal_group(&self, signal: Signal) {
        let _ = killpg(Pid::from_raw(self.pid() as i32), signal);
    }

    /// The stderr lines received so far.
    pub fn stderr_lines(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.stderr_seen.push(line);
        }
        &self.stderr_seen
    }

    /// Whether the process has exited (it is then not reaped yet).
    pub fn has_exited(&mut self) -> bool {
        let child = self.child.as_mut().expect("not waited for yet");
        // WNOWAIT is not in std: peek at /proc instead of reaping.
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
        matches!(state, None | Some('Z' | 'X'))
    }

    /// Polls `condition` (given the stderr lines so far) until it returns
    /// `Some`, and returns that. Fails, with what happened, when the process
    /// exits first or `timeout` passes.
    pub fn wait_until<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut condition: impl FnMut(&[String]) -> Option<T>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = condition(self.stderr_lines()) {
                return Ok(found);
            }
            if self.has_exited() {
                // Its last lines may still be in the pipe.
                thread::sleep(Duration::from_millis(50));
                if let Some(found) = condition(self.stderr_lines()) {
                    return Ok(found);
                }
                let stderr = self.stderr_lines().join("\n");
                return Err(format!("{} exited before {what}; stderr:\n{stderr}", self.command));
            }
            if Instant::now() > deadline {
                let stderr = self.stderr_lines().join("\n");
                return Err(format!("no {what} within {timeout:?} of {}; stderr so far:\n{stderr}", self.command));
            }
            match self.lines.recv_timeout(POLL) {
                Ok(line) => self.stderr_seen.push(line),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => thread::sleep(POLL),
            }
        }
    }

    /// Waits for a stderr line matching `matches` and returns it.
    pub fn wait_for_line(
        &mut self,
        what: &str,
        timeout: Duration,
        mut matches: impl FnMut(&str) -> bool,
    ) -> Result<String, String> {
        self.wait_until(what, timeout, |lines| lines.iter().find(|l| matches(l)).cloned())
    }

    /// Waits for the process to exit (killing it by its pid after `timeout`,
    /// and failing the test then) and returns how it ended. Output is read
    /// for at most a few seconds after the exit: what a process left behind
    /// writes later (or holding the pipes open) is not waited for.
    pub fn wait(mut self, timeout: Duration) -> Outcome {
        let mut child = self.child.take().expect("waited for once");
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{} did not exit within {timeout:?} and was killed", self.command);
                }
                Err(e) => panic!("cannot wait for {}: {e}", self.command),
            }
        };
        let drain_until = Instant::now() + DRAIN;
        let stdout = self.stdout.recv_timeout(DRAIN).unwrap_or_default();
        while let Ok(line) = self.lines.recv_timeout(drain_until.saturating_duration_since(Instant::now())) {
            self.stderr_seen.push(line);
        }
        if let Some(reader) = self.stderr.take().filter(|r| r.is_finished()) {
            reader.join().expect("stderr reader panicked");
        }
        let mut stderr = self.stderr_seen.join("\n");
        if !stderr.is_empty() {
            stderr.push('\n');
        }
        Outcome { command: self.command.clone(), status, stdout, stderr }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Our own child, by its pid.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The exit status a shell reports for a command ended by `signal`, and
/// what lxc-tmpl exits with after rolling back on it: 128 + its number.
pub fn exit_status(signal: Signal) -> i32 {
    128 + signal as i32
}
