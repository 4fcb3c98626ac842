//! What the host side tells its helper, and how.
//!
//! The helper is this binary re-executed as `lxc-tmpl __run-in-rootfs`, with no other argument.
//! Its request (argv, environment, where to run, hostname) arrives as JSON on [`REQUEST_FD`],
//! never in its own argv: `/proc/PID/cmdline` is readable by every local user, and an
//! environment value such as an HTTP proxy URL can carry a password. The helper answers on
//! [`STATUS_FD`]: [`READY`] once the namespaces are set up, or an error message instead.
//!
//! Fds in the helper:
//!
//! | fd | what |
//! |---|---|
//! | 0, 1, 2 | the command's stdin, stdout, stderr (pipes to the host side) |
//! | [`STATUS_FD`] | write end of the status pipe |
//! | [`REQUEST_FD`] | read end of the request pipe |
//! | [`HELD_FD`] | optional: a descriptor the whole process tree keeps open (a cache lock) |

use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::{OwnedFd, RawFd};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The fd number of the status pipe in the helper.
pub(super) const STATUS_FD: RawFd = 3;
/// The fd number of the request pipe in the helper.
pub(super) const REQUEST_FD: RawFd = 4;
/// The fd number of the descriptor the tree holds, when [`HelperRequest::hold_fd`] is set.
pub(super) const HELD_FD: RawFd = 5;
/// What PID 1 writes to the status pipe when the command is about to start.
pub(super) const READY: &[u8] = b"R";
/// Exit status of the helper when it failed before running the command.
pub(super) const SETUP_FAILED: i32 = 125;
/// Exit status when the command could not be executed (as in shells).
pub(super) const CANNOT_EXECUTE: i32 = 126;
/// Exit status when the command was not found (as in shells).
pub(super) const NOT_FOUND: i32 = 127;
/// The most request bytes a helper reads; a real request is a few kilobytes.
const MAX_REQUEST: u64 = 16 << 20;

/// Where the command runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Place {
    /// Inside a rootfs: chroot, private `/proc`, `/sys`, `/dev`, hostname.
    Rootfs {
        /// Host path of the rootfs.
        root: PathBuf,
        /// Hostname in the new UTS namespace.
        hostname: Option<String>,
        /// Bind the host's resolv.conf read-only over the rootfs's.
        bind_resolv_conf: bool,
    },
    /// On the host's filesystem, in a private mount and PID namespace: debootstrap, cp, tar.
    Host,
}

/// The helper's request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct HelperRequest {
    /// PID of the lxc-tmpl process that started the helper; a helper whose parent is already
    /// another process gives up (its parent died before `PR_SET_PDEATHSIG` took effect).
    pub parent_pid: i32,
    /// Where to run.
    pub place: Place,
    /// Program and arguments; the program is looked up in the `PATH` of `env`.
    pub argv: Vec<String>,
    /// The command's whole environment.
    pub env: Vec<(String, String)>,
    /// Whether [`HELD_FD`] is open and must stay open in every process of the tree.
    pub hold_fd: bool,
}

impl HelperRequest {
    /// The JSON the host side writes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a request of strings always serialises")
    }

    /// Reads and parses a request from `fd` until EOF.
    pub fn read_from(fd: OwnedFd) -> Result<HelperRequest, String> {
        let mut bytes = Vec::new();
        std::fs::File::from(fd)
            .take(MAX_REQUEST)
            .read_to_end(&mut bytes)
            .map_err(|e: io::Error| format!("cannot read the request: {e}"))?;
        let request: HelperRequest =
            serde_json::from_slice(&bytes).map_err(|e| format!("malformed request from lxc-tmpl: {e}"))?;
        if request.argv.is_empty() {
            return Err("the request has no command".into());
        }
        Ok(request)
    }

    /// `argv` as C strings for `execve`; `None` if an argument holds a NUL byte.
    pub fn c_argv(&self) -> Option<Vec<CString>> {
        self.argv.iter().map(|a| CString::new(a.as_bytes()).ok()).collect()
    }

    /// `env` as `NAME=value` C strings for `execve`; `None` if one holds a NUL byte.
    pub fn c_env(&self) -> Option<Vec<CString>> {
        self.env.iter().map(|(k, v)| CString::new(format!("{k}={v}")).ok()).collect()
    }

    /// The value of `PATH` in the command's environment.
    pub fn path_var(&self) -> Option<&str> {
        self.env.iter().rev().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_str())
    }

    /// The rootfs, for messages: the root path, or `the host`.
    pub fn place_name(&self) -> String {
        match &self.place {
            Place::Rootfs { root, .. } => root.display().to_string(),
            Place::Host => "the host".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::OFlag;
    use std::io::Write;

    fn request() -> HelperRequest {
        HelperRequest {
            parent_pid: 42,
            place: Place::Rootfs { root: "/r/rootfs".into(), hostname: Some("web1".into()), bind_resolv_conf: true },
            argv: vec!["apt-get".into(), "--".into(), "-y".into(), "install".into()],
            env: vec![("PATH".into(), "/bin".into()), ("A".into(), "x=y".into()), ("PATH".into(), "/usr/bin".into())],
            hold_fd: false,
        }
    }

    #[test]
    fn request_round_trips_through_a_pipe() {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        let sent = request();
        std::fs::File::from(write).write_all(&sent.encode()).unwrap();
        let got = HelperRequest::read_from(read).unwrap();
        assert_eq!(got, sent);
        assert_eq!(got.path_var(), Some("/usr/bin"), "the last PATH wins, as in execve's environment");
        assert_eq!(got.c_env().unwrap()[1].to_str().unwrap(), "A=x=y");
        let host = HelperRequest { place: Place::Host, ..sent };
        assert_eq!(host.place_name(), "the host");
    }

    #[test]
    fn bad_requests_are_refused() {
        for bytes in [&b""[..], b"{", b"{\"parent_pid\":1}"] {
            let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
            std::fs::File::from(write).write_all(bytes).unwrap();
            assert!(HelperRequest::read_from(read).is_err(), "{bytes:?}");
        }
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        std::fs::File::from(write).write_all(&HelperRequest { argv: vec![], ..request() }.encode()).unwrap();
        assert!(HelperRequest::read_from(read).unwrap_err().contains("no command"));
        assert!(HelperRequest { argv: vec!["a\0b".into()], ..request() }.c_argv().is_none());
    }
}
