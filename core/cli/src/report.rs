//! How a create looks while it runs, and what its log keeps.
//!
//! [`CliReporter`] receives the host's events (steps, messages, commands and
//! their output, bytes copied) and
//!
//! - writes all of them to the create's log, if it has one ([`crate::log`]);
//! - on a terminal ([`Display::Bars`]), draws the running step with
//!   indicatif: a spinner with the step's elapsed time, debootstrap's
//!   packages retrieved/extracted/unpacked/configured out of the total
//!   ([`crate::progress`]), apt's percentage from its status fd, the bytes
//!   of a rootfs copy; a finished step
//!   becomes the line `==> STEP (1.2 s)`, and the last frame is the list of
//!   steps with their times and the total;
//! - otherwise ([`Display::Plain`]: stderr is not a terminal, or template mode
//!   under lxc-create) prints `==> STEP` when a step starts (scripts and the
//!   tests wait for these exact lines), `    STEP: 1.2 s` when it ends, and
//!   `    total: 42.1 s` at the end.
//!
//! `-q` prints errors only (the caller prints those); `-v` adds every
//! command run and the debug lines.

use std::{
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lxc_tmpl_host::report::{OutputStream, Reporter};
use lxc_tmpl_plugin_api::LogLevel;

use crate::{
    log::{CreateLog, seconds},
    progress::{AptStatus, Debootstrap, Status},
};

/// How much to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Errors only (`-q`).
    Quiet,
    /// Steps, warnings and info lines.
    Normal,
    /// Everything, including each command run (`-v`).
    Verbose,
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// Lines only.
    Plain,
    /// Bars redrawn in place, for a terminal.
    Bars,
}

impl Display {
    /// Bars when stderr is a terminal and the caller allows them.
    pub fn for_stderr(bars_allowed: bool) -> Display {
        use std::io::IsTerminal;
        if bars_allowed && std::io::stderr().is_terminal() { Display::Bars } else { Display::Plain }
    }
}

/// One finished step and how long it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepTime {
    /// The step (`download`, `copy rootfs`).
    pub name: String,
    /// How long it ran.
    pub elapsed: Duration,
}

/// A tool whose output tells how far it is.
#[derive(Debug)]
enum Tool {
    Debootstrap(Debootstrap),
    Apt(AptStatus),
}

/// The state that changes as the create runs.
#[derive(Debug)]
struct State {
    steps: Vec<StepTime>,
    current: Option<(String, Instant)>,
    /// The running command's progress parser, when it is debootstrap or apt.
    tool: Option<Tool>,
    /// The start of an unfinished stdout line of the running command.
    partial: Vec<u8>,
    bar: Option<ProgressBar>,
}

/// Writes progress and messages to stderr (stdout is for results) and
/// everything to the log.
#[derive(Debug)]
pub struct CliReporter {
    verbosity: Verbosity,
    display: Display,
    log: Option<CreateLog>,
    started: Instant,
    state: Mutex<State>,
}

/// Writes one line to stderr, ignoring failure: after SIGHUP the terminal may be gone, and a
/// create must still roll back rather than panic on a lost progress line.
fn line(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{text}");
}

const SPINNER: &str = "{spinner} {prefix:.bold} {wide_msg} {elapsed:>4}";
// Each fits 80 columns with a step name of `short_step`'s length: a line that wraps is redrawn badly.
const PACKAGES: &str = "{spinner} {prefix:.bold} [{bar:12}] {pos}/{len} packages {msg} {elapsed:>4}";
const PERCENT: &str = "{spinner} {prefix:.bold} [{bar:12}] {pos:>3}% {wide_msg} {elapsed:>4}";
const BYTES: &str = "{spinner} {prefix:.bold} {bytes} copied ({bytes_per_sec}) {elapsed:>4}";

/// A step's name cut to fit the bar's line on an 80-column terminal (a
/// plugin's step may name a mirror URL): a line that wraps is redrawn badly.
fn short_step(step: &str) -> String {
    const MAX: usize = 22;
    if step.chars().count() <= MAX {
        step.to_owned()
    } else {
        let cut: String = step.chars().take(MAX - 3).collect();
        format!("{cut}...")
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner()).progress_chars("=> ")
}

impl CliReporter {
    /// A reporter; `log` gets every event.
    pub fn new(verbosity: Verbosity, display: Display, log: Option<CreateLog>) -> CliReporter {
        let display = if verbosity == Verbosity::Quiet { Display::Plain } else { display };
        CliReporter {
            verbosity,
            display,
            log,
            started: Instant::now(),
            state: Mutex::new(State { steps: Vec::new(), current: None, tool: None, partial: Vec::new(), bar: None }),
        }
    }

    /// Writes `text` to the log only.
    pub fn log_only(&self, text: &str) {
        if let Some(log) = &self.log {
            log.line(text);
        }
    }

    /// A warning line.
    pub fn warn(&self, message: &str) {
        self.log(LogLevel::Warn, message);
    }

    /// An info line.
    pub fn info(&self, message: &str) {
        self.log(LogLevel::Info, message);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Shows a line without tearing the bar: above it on a terminal.
    fn show(&self, state: &State, text: &str) {
        match &state.bar {
            Some(bar) => bar.suspend(|| line(text)),
            None => line(text),
        }
    }

    /// Ends the running step, if any: records its time, logs it, shows it.
    fn end_step(&self, state: &mut State) {
        let Some((name, started)) = state.current.take() else { return };
        let elapsed = started.elapsed();
        self.log_only(&format!("step {name} done in {:.3} s", elapsed.as_secs_f64()));
        if self.verbosity > Verbosity::Quiet {
            match (self.display, state.bar.take()) {
                (Display::Bars, Some(bar)) => {
                    bar.finish_and_clear();
                    line(&format!("==> {name} ({})", seconds(elapsed)));
                }
                _ => line(&format!("    {name}: {}", seconds(elapsed))),
            }
        }
        state.steps.push(StepTime { name, elapsed });
    }

    /// Ends the create: the running step ends, the bar goes, and the total
    /// is shown (on a terminal, after the list of steps: the last frame).
    /// Returns every step's time and the total.
    pub fn finish(&self) -> (Vec<StepTime>, Duration) {
        let mut state = self.state();
        self.end_step(&mut state);
        if let Some(bar) = state.bar.take() {
            bar.finish_and_clear();
        }
        let total = self.started.elapsed();
        self.log_only(&format!("total {:.3} s", total.as_secs_f64()));
        if self.verbosity > Verbosity::Quiet && !state.steps.is_empty() {
            line(&format!("    total: {}", seconds(total)));
        }
        (state.steps.clone(), total)
    }

    /// Redraws the bar for apt's status: percent of the phase.
    fn draw_apt(&self, state: &State, status: &AptStatus) {
        let Some(bar) = &state.bar else { return };
        bar.set_message(format!("{}: {}", status.phase, status.doing));
        bar.set_length(100);
        bar.set_position(status.percent as u64);
        bar.set_style(style(PERCENT));
    }

    /// Redraws the bar for debootstrap's status.
    fn draw_debootstrap(&self, state: &State, status: Status) {
        let Some(bar) = &state.bar else { return };
        match status.total {
            // The message first: a frame drawn between the two calls must fit the line too.
            None => {
                bar.set_message(format!("{} packages {}", status.done, status.phase.label()));
                bar.set_style(style(SPINNER));
            }
            Some(total) => {
                bar.set_message(status.phase.label());
                bar.set_length(total as u64);
                bar.set_position(status.done as u64);
                bar.set_style(style(PACKAGES));
            }
        }
    }
}

impl Reporter for CliReporter {
    fn step(&self, step: &str) {
        let mut state = self.state();
        self.end_step(&mut state);
        self.log_only(&format!("==> {step}"));
        state.current = Some((step.to_owned(), Instant::now()));
        if self.verbosity == Verbosity::Quiet {
            return;
        }
        match self.display {
            Display::Plain => line(&format!("==> {step}")),
            Display::Bars => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                bar.set_style(style(SPINNER));
                bar.set_prefix(short_step(step));
                bar.enable_steady_tick(Duration::from_millis(100));
                bar.tick();
                state.bar = Some(bar);
            }
        }
    }

    fn log(&self, level: LogLevel, message: &str) {
        let (prefix, shown) = match level {
            LogLevel::Warn => ("warning: ", self.verbosity >= Verbosity::Normal),
            LogLevel::Info => ("", self.verbosity >= Verbosity::Normal),
            LogLevel::Debug => ("debug: ", self.verbosity >= Verbosity::Verbose),
            _ => ("", self.verbosity >= Verbosity::Normal),
        };
        let text = format!("{prefix}{message}");
        if prefix.is_empty() {
            self.log_only(&format!("info: {message}"));
        } else {
            self.log_only(&text);
        }
        if shown {
            self.show(&self.state(), &text);
        }
    }

    fn command_started(&self, place: &str, root: Option<&std::path::Path>, argv: &[String]) {
        let command = argv.join(" ");
        let mut state = self.state();
        match root {
            Some(root) => self.log_only(&format!("$ {place} {}: {command}", root.display())),
            None => self.log_only(&format!("$ {place}: {command}")),
        }
        if self.verbosity >= Verbosity::Verbose {
            self.show(&state, &format!("debug: running {place}: {command}"));
        }
        let program = argv.first().map(|p| p.rsplit('/').next().unwrap_or(p)).unwrap_or_default();
        state.tool = match program {
            "debootstrap" => Some(Tool::Debootstrap(Debootstrap::default())),
            "apt-get" | "apt" if argv.iter().any(|a| a == "APT::Status-Fd=1") => Some(Tool::Apt(AptStatus::default())),
            _ => None,
        };
        state.partial.clear();
    }

    fn command_output(&self, stream: OutputStream, data: &[u8]) {
        if let Some(log) = &self.log {
            log.output(stream, data);
        }
        let mut state = self.state();
        if stream != OutputStream::Stdout || state.tool.is_none() {
            return;
        }
        state.partial.extend_from_slice(data);
        let Some(end) = state.partial.iter().rposition(|&b| b == b'\n') else { return };
        let rest = state.partial.split_off(end + 1);
        let lines = std::mem::replace(&mut state.partial, rest);
        let text = String::from_utf8_lossy(&lines);
        match state.tool.as_mut().expect("checked above") {
            Tool::Debootstrap(parser) => {
                if text.lines().fold(false, |changed, l| parser.line(l) | changed) {
                    let status = parser.status();
                    self.draw_debootstrap(&state, status);
                }
            }
            Tool::Apt(parser) => {
                if text.lines().fold(false, |changed, l| parser.line(l) | changed) {
                    let status = parser.clone();
                    self.draw_apt(&state, &status);
                }
            }
        }
    }

    fn command_finished(&self, status: Result<i32, &str>, elapsed: Duration) {
        if let Some(log) = &self.log {
            log.flush_output();
            let how = match status {
                Ok(code) => format!("exit status {code}"),
                Err(why) => format!("not run: {why}"),
            };
            log.line(&format!("  -> {how} after {:.3} s", elapsed.as_secs_f64()));
        }
        let mut state = self.state();
        if let Some(Tool::Debootstrap(parser)) = state.tool.take()
            && let Some(total) = parser.status().total
        {
            self.log_only(&format!("debootstrap: {total} packages"));
        }
        if let Some(bar) = &state.bar {
            bar.set_message("");
            bar.set_style(style(SPINNER));
        }
    }

    fn bytes_copied(&self, bytes: u64) {
        let state = self.state();
        if let Some(bar) = &state.bar {
            if bar.position() == 0 {
                bar.set_style(style(BYTES));
            }
            bar.set_position(bytes);
        }
    }
}
