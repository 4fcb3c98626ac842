//! How progress and log lines look: plain lines on stderr, filtered by `-q`/`-v`.

use lxc_tmpl_host::plugin::bridge::Reporter;
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

impl Reporter for StderrReporter {
    fn step(&self, step: &str) {
        if self.verbosity >= Verbosity::Normal {
            eprintln!("==> {step}");
        }
    }

    fn log(&self, level: LogLevel, message: &str) {
        match level {
            LogLevel::Warn => eprintln!("warning: {message}"),
            LogLevel::Info if self.verbosity >= Verbosity::Normal => eprintln!("{message}"),
            LogLevel::Debug if self.verbosity >= Verbosity::Verbose => {
                eprintln!("debug: {message}")
            }
            _ => {}
        }
    }
}
