//! The log of one create: a file that keeps what the terminal does not.
//!
//! Every line starts with the wall-clock time in RFC 3339 UTC with
//! milliseconds (`2026-11-30T13:45:01.123Z`), so that a log can be matched
//! with the journal, lxc-start's log and the apt mirror's access log. It
//! holds the command line (secret option values redacted), every step, every
//! message at every level (debug too, whatever `-q`/`-v` said), and every
//! command the create ran: its place and argv (URL credentials redacted by
//! the host), each line of its stdout and stderr as it came, and its exit
//! status and duration. Neither a command's environment nor its stdin is
//! logged: a proxy URL and a password travel there. As a last guard, any
//! occurrence of a known secret value (the values of secret options, the
//! credentials of the proxy variables) is replaced by `<redacted>`.
//!
//! Where: `--log FILE`, else `$LXC_TMPL_LOG_DIR/<name>-<UTC time>.log`, else
//! `/var/log/lxc-tmpl/<name>-<UTC time>.log`; the directory is made with
//! mode 0700 and the file with mode 0600 (a log holds paths, mirror URLs and
//! the full output of the tools). Logs are kept after a successful create
//! too, and never removed by lxc-tmpl: `logrotate` or the operator decides
//! (see the README).

use std::{
    fs::{DirBuilder, File, OpenOptions},
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, SystemTime},
};

use lxc_tmpl_host::report::OutputStream;

/// Where logs go when neither `--log` nor `$LXC_TMPL_LOG_DIR` says.
pub const DEFAULT_LOG_DIR: &str = "/var/log/lxc-tmpl";

/// The environment variable that moves the default log directory (the
/// tests set it, so that they never write to `/var/log`).
pub const LOG_DIR_ENV: &str = "LXC_TMPL_LOG_DIR";

/// Opens the log as [`CreateLog::open`] does; when the default place cannot
/// be written (a read-only `/var/log`, or template mode as root of a user
/// namespace, which owns nothing there), the create goes on without a log
/// after a warning, rather than fail for want of one. A `--log` the user chose
/// that cannot be written is an error.
///
/// # Errors
/// `chosen` cannot be written.
pub fn open_or_warn(chosen: Option<&Path>, name: &str, secrets: Vec<String>) -> anyhow::Result<Option<CreateLog>> {
    match CreateLog::open(chosen, name, secrets) {
        Ok(log) => Ok(Some(log)),
        Err(e) if chosen.is_none() => {
            let _ = writeln!(io::stderr(), "warning: {e}; this create keeps no log");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The log file of one create.
#[derive(Debug)]
pub struct CreateLog {
    path: PathBuf,
    inner: Mutex<Inner>,
    secrets: Vec<String>,
}

#[derive(Debug)]
struct Inner {
    file: File,
    /// The start of a line a command has not finished yet, per stream.
    partial: [Vec<u8>; 2],
    /// Set once a write failed: the create goes on, and the error is said once.
    failed: bool,
}

/// `$LXC_TMPL_LOG_DIR`, else [`DEFAULT_LOG_DIR`].
pub fn default_log_dir() -> PathBuf {
    std::env::var_os(LOG_DIR_ENV).filter(|v| !v.is_empty()).map_or_else(|| DEFAULT_LOG_DIR.into(), PathBuf::from)
}

impl CreateLog {
    /// Opens the log of a create of container `name`: `chosen` (`--log`),
    /// truncated, or a new file `<name>-<UTC time>.log` in
    /// [`default_log_dir`] (made with mode 0700 if missing; `-2`, `-3`...
    /// is added when two creates of one name start in the same millisecond).
    /// `secrets` are replaced by `<redacted>` wherever they would appear.
    ///
    /// # Errors
    /// The directory or file cannot be made; the message names it and the fix.
    pub fn open(chosen: Option<&Path>, name: &str, secrets: Vec<String>) -> anyhow::Result<CreateLog> {
        let cannot = |path: &Path, e: io::Error| {
            anyhow::anyhow!(
                "cannot write the log file {}: {e}; choose another with --log FILE (or set {LOG_DIR_ENV})",
                path.display()
            )
        };
        let (path, file) = match chosen {
            Some(path) => {
                let file = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| cannot(path, e))?;
                (path.to_owned(), file)
            }
            None => {
                let dir = default_log_dir();
                DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(|e| cannot(&dir, e))?;
                let stamp = file_stamp(SystemTime::now());
                let mut attempt = 1;
                loop {
                    let suffix = if attempt == 1 { String::new() } else { format!("-{attempt}") };
                    let path = dir.join(format!("{name}-{stamp}{suffix}.log"));
                    match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
                        Ok(file) => break (path, file),
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
                        Err(e) => return Err(cannot(&path, e)),
                    }
                }
            }
        };
        let secrets = secrets.into_iter().filter(|s| s.len() >= 3).collect();
        Ok(CreateLog {
            path,
            inner: Mutex::new(Inner { file, partial: [Vec::new(), Vec::new()], failed: false }),
            secrets,
        })
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `text` with every known secret replaced.
    fn scrub(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_owned(), |text, secret| text.replace(secret.as_str(), "<redacted>"))
    }

    /// Writes `text` (one or more lines), each line stamped with the time.
    pub fn line(&self, text: &str) {
        let stamp = rfc3339(SystemTime::now());
        let text = self.scrub(text);
        let mut out = String::new();
        for line in text.lines() {
            out.push_str(&stamp);
            out.push(' ');
            out.push_str(line);
            out.push('\n');
        }
        self.write(out.as_bytes());
    }

    /// Part of a command's output: whole lines are logged as `stdout| ...`
    /// or `stderr| ...`; the rest waits for its end or [`flush_output`](Self::flush_output).
    pub fn output(&self, stream: OutputStream, data: &[u8]) {
        let lines = {
            let mut inner = self.lock();
            let partial = &mut inner.partial[stream_index(stream)];
            partial.extend_from_slice(data);
            match partial.iter().rposition(|&b| b == b'\n') {
                Some(end) => {
                    let rest = partial.split_off(end + 1);
                    std::mem::replace(partial, rest)
                }
                None => return,
            }
        };
        self.output_lines(stream, &lines);
    }

    /// Logs what is left of the running command's output lines.
    pub fn flush_output(&self) {
        for stream in [OutputStream::Stdout, OutputStream::Stderr] {
            let rest = std::mem::take(&mut self.lock().partial[stream_index(stream)]);
            if !rest.is_empty() {
                self.output_lines(stream, &rest);
            }
        }
    }

    fn output_lines(&self, stream: OutputStream, bytes: &[u8]) {
        let name = match stream {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        };
        let text = String::from_utf8_lossy(bytes);
        // Progress bars of tools redraw with \r: keep the last state of each line.
        let lines: Vec<String> = text
            .lines()
            .map(|l| format!("  {name}| {}", l.rsplit('\r').find(|part| !part.is_empty()).unwrap_or("")))
            .collect();
        self.line(&lines.join("\n"));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self, bytes: &[u8]) {
        let mut inner = self.lock();
        if let Err(e) = inner.file.write_all(bytes)
            && !inner.failed
        {
            inner.failed = true;
            let _ = writeln!(io::stderr(), "warning: cannot write the log {}: {e}", self.path.display());
        }
    }
}

fn stream_index(stream: OutputStream) -> usize {
    match stream {
        OutputStream::Stdout => 0,
        OutputStream::Stderr => 1,
    }
}

/// A duration as seconds with one decimal: `1.2 s`, `42.0 s`.
pub fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

/// `time` in UTC, formatted by `format`.
fn utc(time: SystemTime, format: &[time::format_description::FormatItem<'_>]) -> String {
    time::OffsetDateTime::from(time).format(format).unwrap_or_default()
}

/// RFC 3339 UTC with milliseconds: `2026-11-30T13:45:01.123Z`.
pub fn rfc3339(time: SystemTime) -> String {
    utc(time, time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"))
}

/// The time in a log file name: RFC 3339's basic format, UTC, with
/// milliseconds and no colons (`20261130T134501.123Z`).
pub fn file_stamp(time: SystemTime) -> String {
    utc(time, time::macros::format_description!("[year][month][day]T[hour][minute][second].[subsecond digits:3]Z"))
}

/// The credentials (`user:password`) of the proxy URLs in this process's
/// environment (`http_proxy`, `HTTP_PROXY`, `https_proxy`, `HTTPS_PROXY`),
/// to be kept out of the log. The tools print URLs, not these variables,
/// so this only guards against one that echoes its environment.
pub fn proxy_credentials() -> Vec<String> {
    ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .filter_map(|url| {
            let authority = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
            let authority = authority.split('/').next().unwrap_or_default();
            let (userinfo, _) = authority.rsplit_once('@')?;
            let password = userinfo.split_once(':').map(|(_, pw)| pw.to_owned());
            Some([Some(userinfo.to_owned()), password].into_iter().flatten().collect::<Vec<_>>())
        })
        .flatten()
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_873_501_123);
        assert_eq!(rfc3339(t), "2026-11-28T13:45:01.123Z");
        assert_eq!(file_stamp(t), "20261128T134501.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // A leap day.
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn output_is_logged_by_line_with_secrets_scrubbed() {
        let dir = tempfile_dir();
        let path = dir.join("t.log");
        let log = CreateLog::open(Some(&path), "c1", vec!["s3cret".into()]).unwrap();
        log.line("==> download");
        log.output(OutputStream::Stdout, b"I: Retrieving a 1\nI: Retr");
        log.output(OutputStream::Stderr, b"oops s3cret\n");
        log.output(OutputStream::Stdout, b"ieving b 2\npartial");
        log.flush_output();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().map(|l| l.split_once(' ').unwrap().1).collect();
        assert_eq!(
            lines,
            [
                "==> download",
                "  stdout| I: Retrieving a 1",
                "  stderr| oops <redacted>",
                "  stdout| I: Retrieving b 2",
                "  stdout| partial"
            ]
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lxc-tmpl-log-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
