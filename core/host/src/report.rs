//! How the host reports: progress and log lines go to a [`Reporter`] the
//! front end chooses, and errors are shown as one line by [`error_chain`].
//!
//! Errors follow one rule, so that one printer serves them all: an error
//! either returns its cause from `source()` or writes it into its own
//! message, never both (Rust API guidelines, C-GOOD-ERR; the `thiserror`
//! docs say the same). Every error of this crate returns its cause.

use std::time::Duration;

use lxc_tmpl_plugin_api::LogLevel;

/// Where the host reports progress and log lines; the front end decides how
/// they look (`-q`, `-v`, terminal or not) and what it keeps (a log file).
///
/// Only [`step`](Reporter::step) and [`log`](Reporter::log) must be given:
/// the command and copy events have defaults (a debug line for a command,
/// nothing for the rest), so a front end that draws no progress and keeps
/// no log needs nothing more.
pub trait Reporter {
    /// A step of the create starts (`download`, `configure`). The step runs
    /// until the next one starts or the create ends.
    fn step(&self, step: &str);
    /// A log line, from the host or a plugin.
    fn log(&self, level: LogLevel, message: &str);
    /// A command starts: `place` is `in rootfs` or `on host`, `root` the
    /// rootfs it runs in, `argv` what runs, with the credentials of URLs
    /// already replaced ([`redact_argv`]). Neither its environment nor its
    /// stdin is reported: secrets travel there (a proxy URL, a password).
    fn command_started(&self, place: &str, root: Option<&std::path::Path>, argv: &[String]) {
        let _ = root;
        self.log(LogLevel::Debug, &format!("running {place}: {}", argv.join(" ")));
    }
    /// Bytes the running command wrote, as they come (not split into lines).
    fn command_output(&self, stream: OutputStream, data: &[u8]) {
        let _ = (stream, data);
    }
    /// The running command ended: its exit status (128 + N when signal N
    /// killed it), or why it could not be run; and how long it took.
    fn command_finished(&self, status: Result<i32, &str>, elapsed: Duration) {
        let _ = (status, elapsed);
    }
    /// The copy of a rootfs has written `bytes` bytes of file data so far
    /// (apparent sizes, holes included); called a few times a second.
    fn bytes_copied(&self, bytes: u64) {
        let _ = bytes;
    }
}

/// Which output of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// `argv` with the user and password of every URL in it
/// (`scheme://USER:PW@host`) replaced by `<redacted>`, the rule
/// `lxc-tmpl-deb` follows for proxy URLs in messages: a mirror or proxy URL
/// on a command line can carry a password, and command lines are reported
/// (`-v`) and logged.
pub fn redact_argv(argv: &[String]) -> Vec<String> {
    argv.iter().map(|arg| redact_url_credentials(arg)).collect()
}

/// `text` with the userinfo of each `scheme://userinfo@` replaced by
/// `<redacted>` (RFC 3986: userinfo ends at the first `@` before any `/`).
pub fn redact_url_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail.find(['/', ' ', '?', '#']).unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(user_end) => {
                out.push_str("<redacted>");
                rest = &tail[user_end..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
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

    #[test]
    fn url_credentials_are_redacted() {
        use super::redact_url_credentials as r;
        assert_eq!(r("http://u:pw@proxy:3128/x"), "http://<redacted>@proxy:3128/x");
        assert_eq!(
            r("--mirror=https://a@b/debian and ftp://c:d@e"),
            "--mirror=https://<redacted>@b/debian and ftp://<redacted>@e"
        );
        assert_eq!(r("http://mirror/debian?x=a@b"), "http://mirror/debian?x=a@b", "an @ after the host is no userinfo");
        assert_eq!(r("no url here"), "no url here");
    }
}
