//! The host callbacks: everything a plugin may do to the world.
//!
//! [`HostApi`] is the FFI-safe trait the host implements; [`Host`] wraps it
//! with ordinary Rust signatures (`&str`, `&[u8]`, `Result`) for plugin code.

// `#[sabi_trait]` expands to unsafe vtable code; the module itself writes none.
#![allow(unsafe_code)]
// ...and trait impls inside a const block, which rustc flags as non-local.
#![allow(non_local_definitions)]

use abi_stable::{
    StableAbi, sabi_trait,
    sabi_trait::TD_Opaque,
    sabi_types::RMut,
    std_types::{ROption, RResult, RSlice, RStr, RString, RVec, Tuple2},
};

use crate::{
    abi::{CommandOutputBox, CommandSpecAbi_TO, CommandSpecRef, ConfigEntryAbi_TO, ConfigEntryRef},
    error::PluginError,
};

/// Where a command runs.
///
/// **Compatibility:** a minor version may add places; match with a `_` arm.
/// Crosses the boundary as `RunPlace_NE`, abi_stable's non-exhaustive enum.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 2], traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum RunPlace {
    /// Inside the current hook's rootfs: a chroot in fresh mount, PID, UTS
    /// and IPC namespaces, with `/proc`, `/sys`, `/dev`, `/dev/pts` mounted
    /// and a `policy-rc.d` that stops package scripts from starting daemons.
    /// Nothing the command starts or mounts outlives it.
    Rootfs,
    /// On the host, as the user running lxc-tmpl (for `debootstrap`,
    /// `ssh-keygen`, querying host tools), in a private mount namespace:
    /// what it mounts never reaches the host and goes away with it, and it
    /// is killed if lxc-tmpl dies.
    Host,
}

/// A command for [`Host::run`].
///
/// **Compatibility:** a minor version may append fields, each with a default
/// that keeps the behaviour of the version before; a host reads a command
/// from an older plugin as having that default. `#[non_exhaustive]`: build it
/// with [`CommandSpec::in_rootfs`] or [`CommandSpec::on_host`] and the builder
/// methods. Crosses the boundary as [`abi::CommandSpecAbi`](crate::abi::CommandSpecAbi).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct CommandSpec {
    /// Program and arguments. A program without `/` is looked up in `PATH`
    /// (inside the rootfs for [`RunPlace::Rootfs`]).
    pub argv: Vec<String>,
    /// Extra environment variables. Rootfs commands start from a clean
    /// environment (`PATH`, `HOME`, `LANG=C.UTF-8`, `DEBIAN_FRONTEND=noninteractive`).
    pub env: Vec<(String, String)>,
    /// Bytes fed to the command's standard input.
    pub stdin: Vec<u8>,
    /// Where it runs.
    pub place: RunPlace,
    /// When true, a non-zero exit is returned as an error that names the
    /// command, its status and the tail of its output.
    pub check: bool,
    /// Only in `--cfg lxc_tmpl_api_preview` builds: an appended field; `None`
    /// when the plugin was built against an older minor version.
    #[cfg(lxc_tmpl_api_preview)]
    #[doc(hidden)]
    pub preview: Option<String>,
}

impl CommandSpec {
    /// A checked command running inside the rootfs.
    pub fn in_rootfs<S: AsRef<str>>(argv: &[S]) -> Self {
        Self {
            argv: argv.iter().map(|a| a.as_ref().to_owned()).collect(),
            env: Vec::new(),
            stdin: Vec::new(),
            place: RunPlace::Rootfs,
            check: true,
            #[cfg(lxc_tmpl_api_preview)]
            preview: None,
        }
    }

    /// A checked command running on the host.
    pub fn on_host<S: AsRef<str>>(argv: &[S]) -> Self {
        Self { place: RunPlace::Host, ..Self::in_rootfs(argv) }
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets standard input.
    pub fn stdin(mut self, data: &[u8]) -> Self {
        self.stdin = data.into();
        self
    }

    /// Returns the exit status instead of an error when the command fails.
    pub fn unchecked(mut self) -> Self {
        self.check = false;
        self
    }
}

/// What a finished command left.
///
/// **Compatibility:** a minor version may append fields (a plugin never sees
/// those of a newer minor); `#[non_exhaustive]`. Crosses the boundary as
/// [`abi::CommandOutputAbi`](crate::abi::CommandOutputAbi).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct CommandOutput {
    /// Exit status; 128+N when killed by signal N.
    pub status: i32,
    /// Everything it wrote to standard output.
    pub stdout: Vec<u8>,
    /// Everything it wrote to standard error.
    pub stderr: Vec<u8>,
}

impl CommandOutput {
    /// The output of a finished command.
    pub fn new(status: i32, stdout: Vec<u8>, stderr: Vec<u8>) -> Self {
        Self { status, stdout, stderr }
    }

    /// Standard output as text (lossy UTF-8).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// The type of a file in the rootfs, as seen without following a final symlink.
///
/// **Compatibility:** a minor version may add kinds; match with a `_` arm. A
/// plugin reads a kind newer than itself as [`FileKind::Other`]. Crosses the
/// boundary as `FileKind_NE`, abi_stable's non-exhaustive enum.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 2], traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A device, fifo or socket.
    Other,
    /// Only in `--cfg lxc_tmpl_api_preview` builds: an appended variant.
    #[cfg(lxc_tmpl_api_preview)]
    #[doc(hidden)]
    Preview,
}

impl FileKind {
    /// Decodes a kind received across the boundary; one this build does not
    /// know (from a newer host) is [`FileKind::Other`].
    pub fn from_abi(kind: &FileKind_NE) -> Self {
        kind.as_enum().copied().unwrap_or(FileKind::Other)
    }

    /// Encodes the kind for the boundary.
    pub fn to_abi(self) -> FileKind_NE {
        FileKind_NE::new(self)
    }
}

impl std::fmt::Display for FileKind {
    /// The kind as a noun phrase for messages: "busybox at /opt is a directory".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileKind::File => "a regular file",
            FileKind::Dir => "a directory",
            FileKind::Symlink => "a symlink",
            FileKind::Other => "a device, fifo or socket",
            #[cfg(lxc_tmpl_api_preview)]
            FileKind::Preview => "a preview kind",
        })
    }
}

/// One LXC config entry, written with the LXC 2.1+ key names; the host
/// translates them when the target LXC is older.
///
/// **Compatibility:** as [`CommandSpec`]: a minor version may append fields
/// with defaults; build it with [`ConfigEntry::new`]. Crosses the boundary as
/// [`abi::ConfigEntryAbi`](crate::abi::ConfigEntryAbi).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigEntry {
    /// The key (`lxc.uts.name`, `lxc.include`, `lxc.mount.entry`).
    pub key: String,
    /// The value.
    pub value: String,
}

impl ConfigEntry {
    /// A config entry.
    pub fn new(key: &str, value: &str) -> Self {
        Self { key: key.into(), value: value.into() }
    }
}

/// Severity of a log line.
///
/// **Compatibility:** a minor version may add levels; match with a `_` arm. A
/// host reads a level newer than itself as [`LogLevel::Info`]. Crosses the
/// boundary as `LogLevel_NE`, abi_stable's non-exhaustive enum.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[sabi(kind(WithNonExhaustive(size = [usize; 2], traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum LogLevel {
    /// Shown with `-v`.
    Debug,
    /// Shown unless `-q`.
    Info,
    /// Always shown.
    Warn,
    /// Only in `--cfg lxc_tmpl_api_preview` builds: an appended variant.
    #[cfg(lxc_tmpl_api_preview)]
    #[doc(hidden)]
    Preview,
}

impl LogLevel {
    /// Decodes a level received across the boundary; one this build does not
    /// know is [`LogLevel::Info`].
    pub fn from_abi(level: &LogLevel_NE) -> Self {
        level.as_enum().copied().unwrap_or(LogLevel::Info)
    }
}

impl RunPlace {
    /// Decodes a place received across the boundary; `None` for one this
    /// build does not know (the host refuses such a command).
    pub fn from_abi(place: &RunPlace_NE) -> Option<Self> {
        place.as_enum().ok().copied()
    }
}

/// The callbacks the host implements for plugins. Plugins use [`Host`].
///
/// Paths named "rootfs path" are resolved inside the current hook's root as
/// if chrooted: `..` and absolute symlinks cannot leave it.
#[sabi_trait]
pub trait HostApi {
    /// Runs a command; see [`CommandSpec`].
    fn run(&mut self, command: CommandSpecRef<'_>) -> RResult<CommandOutputBox, PluginError>;
    /// Reads a rootfs file.
    fn read_file(&mut self, path: RStr<'_>) -> RResult<RVec<u8>, PluginError>;
    /// Creates or replaces a rootfs file with `data` and permission bits `mode`.
    fn write_file(&mut self, path: RStr<'_>, data: RSlice<'_, u8>, mode: u32) -> RResult<(), PluginError>;
    /// Appends to a rootfs file, creating it with mode 0644 if missing.
    fn append_file(&mut self, path: RStr<'_>, data: RSlice<'_, u8>) -> RResult<(), PluginError>;
    /// Creates a rootfs directory and its missing parents.
    fn mkdir_all(&mut self, path: RStr<'_>, mode: u32) -> RResult<(), PluginError>;
    /// Creates a symlink at rootfs path `link` pointing to `target` (stored as given).
    fn symlink(&mut self, target: RStr<'_>, link: RStr<'_>) -> RResult<(), PluginError>;
    /// Creates a hard link at rootfs path `link` to rootfs file `existing`.
    fn hard_link(&mut self, existing: RStr<'_>, link: RStr<'_>) -> RResult<(), PluginError>;
    /// Sets the permission bits of a rootfs path (never through a symlink).
    fn set_mode(&mut self, path: RStr<'_>, mode: u32) -> RResult<(), PluginError>;
    /// Sets the owner of a rootfs path (never through a symlink).
    fn set_owner(&mut self, path: RStr<'_>, uid: u32, gid: u32) -> RResult<(), PluginError>;
    /// Removes a rootfs file, symlink or directory tree; missing is not an error.
    fn remove(&mut self, path: RStr<'_>) -> RResult<(), PluginError>;
    /// The kind of a rootfs path, `None` if it does not exist.
    fn file_kind(&mut self, path: RStr<'_>) -> RResult<ROption<FileKind_NE>, PluginError>;
    /// Copies a host file into the rootfs with permission bits `mode`.
    fn copy_from_host(&mut self, host_path: RStr<'_>, path: RStr<'_>, mode: u32) -> RResult<(), PluginError>;
    /// Reads a host file (`/etc/timezone`, a key given on the command line).
    fn read_host_file(&mut self, host_path: RStr<'_>) -> RResult<RVec<u8>, PluginError>;
    /// The kind of a host path, following symlinks; `None` if it does not exist.
    fn host_file_kind(&mut self, host_path: RStr<'_>) -> RResult<ROption<FileKind_NE>, PluginError>;
    /// Renders a minijinja template; `context_json` is a JSON object.
    fn render(&mut self, name: RStr<'_>, source: RStr<'_>, context_json: RStr<'_>) -> RResult<RString, PluginError>;
    /// Adds an entry to the container's LXC config.
    fn config(&mut self, entry: ConfigEntryRef<'_>) -> RResult<(), PluginError>;
    /// The last value of a key in the base config the container starts from.
    fn config_value(&mut self, key: RStr<'_>) -> ROption<RString>;
    /// The host path of the root the current hook acts on (the cache staging
    /// dir in `download`, else the container rootfs), for host tools that
    /// build a rootfs themselves such as `debootstrap`.
    fn root_path(&mut self) -> RResult<RString, PluginError>;
    /// Logs a line.
    fn log(&mut self, level: LogLevel_NE, message: RStr<'_>);
    /// Reports the start of a long step (shown as progress on a terminal).
    fn progress(&mut self, step: RStr<'_>);
    /// The target of the host symlink `host_path`, as stored (`readlink(2)`,
    /// not resolved); `None` when nothing is there or it is not a symlink
    /// (`readlink` without `-f` exits 1 for both). Symlinks in the parent
    /// directories are followed. Errors: the path is not absolute, another
    /// I/O failure (permission denied), or a target that is not UTF-8.
    fn read_host_link(&mut self, host_path: RStr<'_>) -> RResult<ROption<RString>, PluginError>;
    /// The host path `host_path` with every symlink, `.` and `..` resolved
    /// (`realpath(3)`, `readlink -f` for a path that exists). Errors: the
    /// path is not absolute, it or a parent is missing (the message says "No
    /// such file or directory"), a symlink loop, or a result that is not UTF-8.
    fn canonicalize_host_path(&mut self, host_path: RStr<'_>) -> RResult<RString, PluginError>;
    /// A new, empty host directory with mode 0700, owned by the user running
    /// lxc-tmpl, for host tools that write files the plugin then reads (such
    /// as `ssh-keygen` making a container's host keys). Every call makes
    /// another one, inside a private (0700) directory the host made for this
    /// create under `$TMPDIR`. The host removes them with everything in them
    /// when the create ends: after the last hook, on failure, and on
    /// SIGINT/SIGTERM/SIGHUP (only SIGKILL or a power loss leaves one behind).
    /// Returns its absolute host path.
    fn scratch_dir(&mut self) -> RResult<RString, PluginError>;
    /// The entries of the rootfs directory `path` (symlinks on the way,
    /// including a final one, followed inside the root), without `.` and
    /// `..`, sorted by name, each with its kind as [`HostApi::file_kind`]
    /// sees it (a symlink entry is [`FileKind::Symlink`]). Errors: the path is
    /// missing (the message says "No such file or directory"), it is not a
    /// directory, or an entry name is not UTF-8.
    fn read_dir(&mut self, path: RStr<'_>) -> RResult<RVec<Tuple2<RString, FileKind_NE>>, PluginError>;
    /// A host directory (absolute path) for downloaded packages that
    /// outlives cache entries: the same `key` (write into it what decides
    /// which package files it may hold, such as release, architecture and
    /// mirror) gets the same directory in every create, so a rebuild
    /// (`--flush-cache`) or another variant fetches nothing it already has.
    /// It lives in the cache dir (`<cache>/<distro>/packages/`), goes with
    /// `lxc-tmpl cache purge`, and is locked for this create until the hook
    /// returns, so two builds never write it at once. Hand it to a host tool
    /// (`debootstrap --cache-dir`); the plugin itself never writes host paths.
    #[sabi(last_prefix_field)]
    fn package_cache_dir(&mut self, key: RStr<'_>) -> RResult<RString, PluginError>;
}

/// The host callbacks as passed across the boundary.
pub type HostApiMut<'a> = HostApi_TO<'a, RMut<'a, ()>>;

/// The host, as plugin code sees it: [`HostApi`] with Rust signatures.
///
/// Every hook gets one. Rootfs paths may be written with or without a leading
/// `/`; they always mean a path inside the root the hook acts on.
pub struct Host<'a> {
    api: HostApiMut<'a>,
}

impl std::fmt::Debug for Host<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Host")
    }
}

impl<'a> Host<'a> {
    /// Wraps the FFI handle. Called by the code [`export_plugin!`](crate::export_plugin) generates.
    pub fn new(api: HostApiMut<'a>) -> Self {
        Self { api }
    }

    /// Runs a command; with [`CommandSpec::check`] a failure is an error.
    pub fn run(&mut self, command: &CommandSpec) -> Result<CommandOutput, PluginError> {
        let output = self.api.run(CommandSpecAbi_TO::from_ptr(command, TD_Opaque)).into_result()?;
        Ok(CommandOutput::from_abi(&output))
    }

    /// Runs a checked command inside the rootfs and returns its output.
    pub fn run_in_rootfs<S: AsRef<str>>(&mut self, argv: &[S]) -> Result<CommandOutput, PluginError> {
        self.run(&CommandSpec::in_rootfs(argv))
    }

    /// Runs a checked command on the host and returns its output.
    pub fn run_on_host<S: AsRef<str>>(&mut self, argv: &[S]) -> Result<CommandOutput, PluginError> {
        self.run(&CommandSpec::on_host(argv))
    }

    /// Reads a rootfs file.
    pub fn read_file(&mut self, path: &str) -> Result<Vec<u8>, PluginError> {
        self.api.read_file(path.into()).into_result().map(RVec::into_vec)
    }

    /// Creates or replaces a rootfs file.
    pub fn write_file(&mut self, path: &str, data: &[u8], mode: u32) -> Result<(), PluginError> {
        self.api.write_file(path.into(), data.into(), mode).into_result()
    }

    /// Appends to a rootfs file.
    pub fn append_file(&mut self, path: &str, data: &[u8]) -> Result<(), PluginError> {
        self.api.append_file(path.into(), data.into()).into_result()
    }

    /// Creates a rootfs directory and its parents.
    pub fn mkdir_all(&mut self, path: &str, mode: u32) -> Result<(), PluginError> {
        self.api.mkdir_all(path.into(), mode).into_result()
    }

    /// Creates a symlink `link` -> `target` in the rootfs.
    pub fn symlink(&mut self, target: &str, link: &str) -> Result<(), PluginError> {
        self.api.symlink(target.into(), link.into()).into_result()
    }

    /// Creates a hard link `link` to `existing` in the rootfs.
    pub fn hard_link(&mut self, existing: &str, link: &str) -> Result<(), PluginError> {
        self.api.hard_link(existing.into(), link.into()).into_result()
    }

    /// Sets permission bits.
    pub fn set_mode(&mut self, path: &str, mode: u32) -> Result<(), PluginError> {
        self.api.set_mode(path.into(), mode).into_result()
    }

    /// Sets the owner.
    pub fn set_owner(&mut self, path: &str, uid: u32, gid: u32) -> Result<(), PluginError> {
        self.api.set_owner(path.into(), uid, gid).into_result()
    }

    /// Removes a file or directory tree; missing is fine.
    pub fn remove(&mut self, path: &str) -> Result<(), PluginError> {
        self.api.remove(path.into()).into_result()
    }

    /// The kind of a rootfs path, `None` if absent.
    pub fn file_kind(&mut self, path: &str) -> Result<Option<FileKind>, PluginError> {
        Ok(self.api.file_kind(path.into()).into_result()?.as_ref().map(FileKind::from_abi).into_option())
    }

    /// Copies a host file into the rootfs.
    pub fn copy_from_host(&mut self, host_path: &str, path: &str, mode: u32) -> Result<(), PluginError> {
        self.api.copy_from_host(host_path.into(), path.into(), mode).into_result()
    }

    /// Reads a host file.
    pub fn read_host_file(&mut self, host_path: &str) -> Result<Vec<u8>, PluginError> {
        self.api.read_host_file(host_path.into()).into_result().map(RVec::into_vec)
    }

    /// The kind of a host path (symlinks followed), `None` if absent.
    pub fn host_file_kind(&mut self, host_path: &str) -> Result<Option<FileKind>, PluginError> {
        Ok(self.api.host_file_kind(host_path.into()).into_result()?.as_ref().map(FileKind::from_abi).into_option())
    }

    /// Renders a minijinja template with a serializable context.
    pub fn render<C: serde::Serialize>(
        &mut self,
        name: &str,
        source: &str,
        context: &C,
    ) -> Result<String, PluginError> {
        let json = serde_json::to_string(context)
            .map_err(|e| PluginError::failed(format!("cannot serialize context of template {name}: {e}")))?;
        self.api.render(name.into(), source.into(), json.as_str().into()).into_result().map(RString::into_string)
    }

    /// Renders a template and writes the result to a rootfs file.
    pub fn write_template<C: serde::Serialize>(
        &mut self,
        path: &str,
        source: &str,
        context: &C,
        mode: u32,
    ) -> Result<(), PluginError> {
        let text = self.render(path, source, context)?;
        self.write_file(path, text.as_bytes(), mode)
    }

    /// Adds an LXC config entry.
    pub fn config(&mut self, entry: ConfigEntry) -> Result<(), PluginError> {
        self.api.config(ConfigEntryAbi_TO::from_ptr(&entry, TD_Opaque)).into_result()
    }

    /// The last value of a key in the base config.
    pub fn config_value(&mut self, key: &str) -> Option<String> {
        self.api.config_value(key.into()).into_option().map(RString::into_string)
    }

    /// The host path of the current root; see [`HostApi::root_path`]. Give it
    /// only to host tools that build a rootfs (`debootstrap`): writing there
    /// by host path bypasses the symlink-safe file operations.
    pub fn root_path(&mut self) -> Result<String, PluginError> {
        self.api.root_path().into_result().map(RString::into_string)
    }

    /// Logs at debug level (shown with `-v`).
    pub fn debug(&mut self, message: &str) {
        self.api.log(LogLevel_NE::new(LogLevel::Debug), message.into());
    }

    /// Logs at info level.
    pub fn info(&mut self, message: &str) {
        self.api.log(LogLevel_NE::new(LogLevel::Info), message.into());
    }

    /// Logs a warning.
    pub fn warn(&mut self, message: &str) {
        self.api.log(LogLevel_NE::new(LogLevel::Warn), message.into());
    }

    /// Announces a long step.
    pub fn progress(&mut self, step: &str) {
        self.api.progress(step.into());
    }

    /// The target of a host symlink as stored, `None` if the path is missing
    /// or not a symlink; see [`HostApi::read_host_link`].
    pub fn read_host_link(&mut self, host_path: &str) -> Result<Option<String>, PluginError> {
        self.api.read_host_link(host_path.into()).into_result().map(|t| t.into_option().map(RString::into_string))
    }

    /// A host path with all symlinks resolved (`readlink -f`); the path must
    /// exist. See [`HostApi::canonicalize_host_path`].
    pub fn canonicalize_host_path(&mut self, host_path: &str) -> Result<String, PluginError> {
        self.api.canonicalize_host_path(host_path.into()).into_result().map(RString::into_string)
    }

    /// A new empty private (0700) host directory that the host removes when
    /// the create ends; see [`HostApi::scratch_dir`]. Use it instead of
    /// running `mktemp -d` and `rm -rf` on the host.
    pub fn scratch_dir(&mut self) -> Result<String, PluginError> {
        self.api.scratch_dir().into_result().map(RString::into_string)
    }

    /// The package directory for `key`; see [`HostApi::package_cache_dir`].
    pub fn package_cache_dir(&mut self, key: &str) -> Result<String, PluginError> {
        self.api.package_cache_dir(key.into()).into_result().map(RString::into_string)
    }

    /// The entries of a rootfs directory as `(name, kind)`, sorted by name;
    /// see [`HostApi::read_dir`].
    pub fn read_dir(&mut self, path: &str) -> Result<Vec<(String, FileKind)>, PluginError> {
        let entries = self.api.read_dir(path.into()).into_result()?;
        Ok(entries.into_iter().map(|Tuple2(name, kind)| (name.into_string(), FileKind::from_abi(&kind))).collect())
    }
}
