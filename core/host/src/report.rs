//! How the host reports: progress and log lines go to a [`Reporter`] the
//! front end chooses, and errors are shown as one line by [`error_chain`].
//!
//! Errors follow one rule, so that one printer serves them all: an error
//! either returns its cause from `source()` or writes it into its own
//! message, never both (Rust API guidelines, C-GOOD-ERR; the `thiserror`
//! docs say the same). Every error of this crate returns its cause.

use lxc_tmpl_plugin_api::LogLevel;

/// Where the host reports progress and log lines; the front end decides how
/// they look (`-q`, `-v`, terminal or not).
pub trait Reporter {
    /// A step of the create starts (`download`, `configure`).
    fn step(&self, step: &str);
    /// A log line, from the host or a plugin.
    fn log(&self, level: LogLevel, message: &str);
}

/// An error and its causes on one line: `outer: inner: innermost`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn causes_follow_the_message_once() {
        let io = std::io::Error::from_raw_os_error(28);
        let err = crate::lock::LockError { path: "/c/x.lock".into(), source: io };
        assert_eq!(super::error_chain(&err), "cannot lock /c/x.lock: No space left on device (os error 28)");
    }
}
