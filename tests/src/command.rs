//! [`TestCommand`]: runs the real `lxc-tmpl` binary and checks how it ended.

use std::{
    ffi::OsStr,
    fmt,
    io::Read,
    os::unix::process::{CommandExt, ExitStatusExt},
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

/// How long one command may run before the harness kills it.
const TIMEOUT: Duration = Duration::from_secs(600);

/// A command under test, built like `std::process::Command`.
///
/// Standard input is closed, output is captured, and the command is killed
/// (by its pid, which only this builder knows) if it runs past a timeout.
#[derive(Debug)]
pub struct TestCommand {
    cmd: Command,
}

impl TestCommand {
    /// A command running `program` (an absolute path or a name in `PATH`).
    pub fn new(program: impl AsRef<OsStr>) -> TestCommand {
        let mut cmd = Command::new(program);
        // Plain output: no colours, no progress bars, no user-set plugin dirs; create logs
        // never go to /var/log (TestDir moves them into its own dir).
        cmd.env("NO_COLOR", "1")
            .env("TERM", "dumb")
            .env("LXC_TMPL_LOG_DIR", crate::paths::shared_log_dir())
            .env_remove("LXC_TMPL_PLUGIN_PATH")
            .env_remove("RUST_LOG")
            .env_remove("LXC_CACHE_PATH");
        TestCommand { cmd }
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut TestCommand {
        self.cmd.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut TestCommand
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// Sets an environment variable.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut TestCommand {
        self.cmd.env(key, value);
        self
    }

    /// Sets the working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut TestCommand {
        self.cmd.current_dir(dir);
        self
    }

    /// Runs the command as another user (`setgid`, `setuid`; when run by
    /// root, std also drops the supplementary groups with `setgroups(0)`).
    pub fn as_user(&mut self, uid: u32, gid: u32) -> &mut TestCommand {
        self.cmd.gid(gid).uid(uid);
        self
    }

    /// The underlying command, for harness modules that start it
    /// themselves ([`Running`](crate::running::Running)).
    pub fn std_command(&mut self) -> &mut Command {
        &mut self.cmd
    }

    /// The command line, for messages.
    pub fn display(&self) -> String {
        let mut line = self.cmd.get_program().to_string_lossy().into_owned();
        for arg in self.cmd.get_args() {
            line.push(' ');
            line.push_str(&arg.to_string_lossy());
        }
        line
    }

    /// Runs the command to completion and returns how it ended.
    pub fn run(&mut self) -> Outcome {
        let display = self.display();
        let mut child = self
            .cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {display}: {e}"));
        let stdout = reader(&mut child, true);
        let stderr = reader(&mut child, false);
        let status = wait_with_timeout(&mut child, &display);
        Outcome {
            command: display,
            status,
            stdout: stdout.join().expect("stdout reader panicked"),
            stderr: stderr.join().expect("stderr reader panicked"),
        }
    }

    /// Runs the command, asserts that it succeeded and returns its stdout.
    #[track_caller]
    pub fn stdout(&mut self) -> String {
        let outcome = self.run();
        outcome.assert_success();
        outcome.stdout
    }

    /// Runs the command, asserts that it failed with an ordinary exit code
    /// (not a signal, not a crash) and returns its stderr.
    #[track_caller]
    pub fn assert_fail(&mut self) -> String {
        let outcome = self.run();
        outcome.assert_failed();
        outcome.stderr
    }

    /// Runs the command, asserts that it exited with `code` and returns how it ended.
    #[track_caller]
    pub fn assert_exit(&mut self, code: i32) -> Outcome {
        let outcome = self.run();
        outcome.assert_exit(code);
        outcome
    }
}

fn reader(child: &mut Child, stdout: bool) -> thread::JoinHandle<String> {
    let mut pipe: Box<dyn Read + Send> = if stdout {
        Box::new(child.stdout.take().expect("stdout is piped"))
    } else {
        Box::new(child.stderr.take().expect("stderr is piped"))
    };
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn wait_with_timeout(child: &mut Child, display: &str) -> ExitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                // Our own child, killed by its pid.
                let _ = child.kill();
                let _ = child.wait();
                panic!("{display} ran longer than {TIMEOUT:?} and was killed");
            }
            Err(e) => panic!("cannot wait for {display}: {e}"),
        }
    }
}

/// How a command ended: status and captured output.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The command line.
    pub command: String,
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl Outcome {
    /// The exit code, `None` if a signal ended it.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Asserts exit code 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Outcome {
        assert!(self.status.success(), "expected success:\n{self}");
        self
    }

    /// Asserts an ordinary non-zero exit code (a signal or crash is a failure
    /// of the test: the binary must never abort).
    #[track_caller]
    pub fn assert_failed(&self) -> &Outcome {
        assert!(
            self.status.signal().is_none(),
            "killed by a signal (crash or abort), expected a clean failure:\n{self}"
        );
        assert!(!self.status.success(), "expected failure, got success:\n{self}");
        self
    }

    /// Asserts exit code `code`.
    #[track_caller]
    pub fn assert_exit(&self, code: i32) -> &Outcome {
        assert!(self.status.signal().is_none(), "killed by a signal (crash or abort), expected exit {code}:\n{self}");
        assert_eq!(self.code(), Some(code), "unexpected exit code:\n{self}");
        self
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match (self.status.code(), self.status.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => {
                format!("signal {signal}{}", if self.status.core_dumped() { " (core dumped)" } else { "" })
            }
            (None, None) => "unknown status".to_owned(),
        };
        write!(
            f,
            "command: {}\nstatus: {status}\n--- stdout ---\n{}--- stderr ---\n{}--- end ---",
            self.command, self.stdout, self.stderr
        )
    }
}
