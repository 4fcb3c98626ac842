//! How progress and log lines look: plain lines on stderr, filtered by `-q`/`-v`.

use lxc_tmpl_host::report::Reporter;
use lxc_tmpl_plugin_api::LogLevel;

/// How much to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Warnings and errors only (`-q`).
    Quiet,
    /// Steps and info lines.
    Normal,
    /// Everything, including each command run (`-v`).
    Verbose,
}

/// Writes progress and logs to stderr, keeping stdout for results.
#[derive(Debug)]
pub struct StderrReporter {
    /// How much to say.
    pub verbosity: Verbosity,
}

impl StderrReporter {
    /// A warning line.
    pub fn warn(&self, message: &str) {
        self.log(LogLevel::Warn, message);
    }

    /// An info line.
    pub fn info(&self, message: &str) {
        self.log(LogLevel::Info, message);
    }
}

/// Writes one line to stderr, ignoring failure: after SIGHUP the terminal may be gone, and a
/// create must still roll back rather than panic on a lost progress line.
fn line(text: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{text}");
}

impl Reporter for StderrReporter {
    fn step(&self, step: &str) {
        if self.verbosity >= Verbosity::Normal {
            line(format_args!("==> {step}"));
        }
    }

    fn log(&self, level: LogLevel, message: &str) {
        match level {
            LogLevel::Warn => line(format_args!("warning: {message}")),
            LogLevel::Info if self.verbosity >= Verbosity::Normal => line(format_args!("{message}")),
            LogLevel::Debug if self.verbosity >= Verbosity::Verbose => line(format_args!("debug: {message}")),
            _ => {}
        }
    }
}
