//! The error a hook or a host callback returns across the plugin boundary.

use std::fmt;

use abi_stable::{StableAbi, std_types::RString};

/// What kind of failure a [`PluginError`] reports.
///
/// A `u8` with named values rather than an enum, so that later minor versions
/// can add kinds without breaking plugins built against older ones.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorKind(pub u8);

impl ErrorKind {
    /// The user gave an option value, name or file that cannot work
    /// (unknown release, missing key file). Printed without "internal" hints.
    pub const INVALID_INPUT: Self = Self(1);
    /// An operation failed: a command exited non-zero, a download broke.
    pub const FAILED: Self = Self(2);
    /// A host callback refused or failed (unsafe path, I/O error).
    pub const HOST: Self = Self(3);
    /// The plugin panicked; the message says where.
    pub const PANIC: Self = Self(4);
    /// What was asked is not supported by this plugin or on this host.
    pub const UNSUPPORTED: Self = Self(5);
    /// A host callback found nothing at a path it needs: the file to read,
    /// a parent directory of one to write, the directory to list (ENOENT).
    /// A [`HOST`](Self::HOST) error a plugin may want to tell apart, as
    /// `std::io::ErrorKind::NotFound`; see [`PluginError::is_not_found`].
    pub const NOT_FOUND: Self = Self(6);

    /// A short lowercase name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::INVALID_INPUT => "invalid input",
            Self::FAILED => "failed",
            Self::HOST => "host error",
            Self::PANIC => "panic",
            Self::UNSUPPORTED => "unsupported",
            Self::NOT_FOUND => "not found",
            _ => "error",
        }
    }
}

impl fmt::Debug for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ErrorKind({}: {})", self.0, self.name())
    }
}

/// An error crossing the plugin boundary: a kind and a one-line message that
/// names the problem and, where there is one, the fix.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct PluginError {
    /// What kind of failure this is.
    pub kind: ErrorKind,
    /// The message shown to the user, e.g. `unknown release 'foo': choose one of jammy, noble`.
    pub message: RString,
}

impl PluginError {
    /// An error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: RString::from(message.into()) }
    }

    /// Bad user input: see [`ErrorKind::INVALID_INPUT`].
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::INVALID_INPUT, message)
    }

    /// A failed operation: see [`ErrorKind::FAILED`].
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::FAILED, message)
    }

    /// Not supported: see [`ErrorKind::UNSUPPORTED`].
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::UNSUPPORTED, message)
    }

    /// Nothing at a path: see [`ErrorKind::NOT_FOUND`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NOT_FOUND, message)
    }

    /// Whether a host callback failed because a path it needs does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NOT_FOUND
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PluginError {}
