//! A fake host for unit tests of plugin hooks (cargo feature `testing`).
//!
//! [`FakeHost`] implements [`HostApi`] in memory, so a plugin's hooks can be
//! driven without root, without a rootfs on disk and without LXC:
//!
//! - **The rootfs** is a map of [`Node`]s by normalised path (`etc/hostname`)
//!   on which the file callbacks behave as the real host's do, checked by the
//!   [`conformance`] suite that runs against both: paths resolve as if
//!   chrooted (`..` and absolute symlinks stay inside), parents must exist, a
//!   write replaces a file with exactly the given mode and keeps its owner, a
//!   symlink in the final component is replaced and never written through,
//!   reads and `mkdir_all` follow symlinks inside the root, and a missing path
//!   is an [`ErrorKind::NOT_FOUND`] error. Owners set with `set_owner` are kept
//!   in [`FakeHost::owners`] (none recorded means root's), hard links in
//!   [`FakeHost::hard_links`] (the fake copies the node: a later change through
//!   one name does not show through the other).
//! - **Host files** come from [`FakeHost::host_files`], [`FakeHost::host_dirs`]
//!   and [`FakeHost::host_links`] (symlinks, followed as the kernel would);
//!   any other path is looked up on the real machine when
//!   [`FakeHost::real_host_files`] is set ([`FakeHost::new`]) and is missing
//!   when not ([`FakeHost::sealed`]). `scratch_dir` makes real directories
//!   in the first case and fake ones (in [`FakeHost::host_dirs`]) in the
//!   second; [`FakeHost::end_create`] removes them, as the host does when a
//!   create ends.
//! - **Commands** are recorded in [`FakeHost::commands`] and answered by the
//!   [`FakeHost::responder`] (which may change the rootfs and the host files,
//!   as the real tool would), else by the canned [`FakeHost::outputs`], else
//!   with exit status 0 and no output. [`run_on_machine`] is a responder that
//!   runs host commands for real.
//! - **Templates** are rendered by minijinja exactly as the host does (strict
//!   undefined values, the trailing newline kept).
//! - **Config entries** and **log lines** are collected in
//!   [`FakeHost::config`] and [`FakeHost::logs`]; `config_value` answers from
//!   [`FakeHost::base_config`].
//!
//! ```
//! use lxc_tmpl_plugin_api::{
//!     Distro, HookContext, Host, PluginError,
//!     testing::{FakeHost, context, run_hooks},
//! };
//!
//! struct Hello;
//!
//! impl Distro for Hello {
//!     fn manifest(&self) -> lxc_tmpl_plugin_api::Manifest {
//!         lxc_tmpl_plugin_api::Manifest::new("hello", "0.1.0", "says hello")
//!     }
//!
//!     fn configure(&self, ctx: &HookContext, host: &mut Host<'_>) -> Result<(), PluginError> {
//!         host.mkdir_all("etc", 0o755)?;
//!         let who = lxc_tmpl_plugin_api::serde_json::json!({ "name": ctx.name.as_str() });
//!         host.write_template("etc/hostname", "{{ name }}\n", &who, 0o644)
//!     }
//! }
//!
//! let mut fake = FakeHost::sealed();
//! let (cache_key, _message) = run_hooks(&Hello, &mut fake, &context("hello", "c1", &[])).unwrap();
//! assert_eq!(cache_key, None);
//! assert_eq!(fake.text("etc/hostname"), "c1\n");
//! assert_eq!(fake.mode("etc/hostname"), 0o644);
//! ```

use std::{
    collections::{BTreeMap, BTreeSet},
    ops::{Deref, DerefMut},
    path::PathBuf,
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    sabi_types::RMut,
    std_types::{ROption, RResult, RSlice, RStr, RString, RVec, Tuple2},
};

use crate::{
    CommandOutput, CommandSpec, ConfigEntry, Distro, ErrorKind, FileKind, FileKind_NE, Hook, HookContext, Host,
    HostApi, HostApi_TO, HostFacts, LogLevel, LogLevel_NE, OptionValue, PluginError, RunPlace,
    abi::{CommandOutputBox, CommandSpecRef, ConfigEntryRef},
};

pub mod conformance;
mod fakefs;

/// A node of the fake rootfs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A directory.
    Dir {
        /// Permission bits.
        mode: u32,
    },
    /// A regular file.
    File {
        /// Contents.
        data: Vec<u8>,
        /// Permission bits.
        mode: u32,
    },
    /// A symlink.
    Symlink {
        /// Its target, as given.
        target: String,
    },
}

/// A command a hook ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedCommand {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Standard input.
    pub stdin: Vec<u8>,
    /// Where it ran.
    pub place: RunPlace,
}

impl RecordedCommand {
    /// The argv joined with spaces.
    pub fn line(&self) -> String {
        self.argv.join(" ")
    }

    /// The value of an environment variable given to it.
    pub fn env_value(&self, key: &str) -> Option<&str> {
        self.env.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// What a [`Responder`] may change while it answers a command: the rootfs
/// (which this derefs to, as most tools a hook runs change only the rootfs)
/// and the host's files.
#[derive(Debug)]
pub struct World<'a> {
    /// The rootfs, as [`FakeHost::rootfs`].
    pub rootfs: &'a mut BTreeMap<String, Node>,
    /// The host files, as [`FakeHost::host_files`].
    pub host_files: &'a mut BTreeMap<String, Vec<u8>>,
    /// The host directories, as [`FakeHost::host_dirs`].
    pub host_dirs: &'a mut BTreeSet<String>,
    /// The host symlinks, as [`FakeHost::host_links`].
    pub host_links: &'a mut BTreeMap<String, String>,
}

impl World<'_> {
    /// Creates or replaces a rootfs file with `mode`, its parents made (0755).
    pub fn put(&mut self, path: &str, data: &[u8], mode: u32) {
        put_node(self.rootfs, path, data, mode);
    }

    /// Appends to a rootfs file; does nothing when it is not a file.
    pub fn append(&mut self, path: &str, data: &[u8]) {
        if let Some(Node::File { data: existing, .. }) = self.rootfs.get_mut(&norm(path).expect("rootfs path")) {
            existing.extend_from_slice(data);
        }
    }

    /// A host path with the symlinks of [`host_links`](Self::host_links) resolved.
    pub fn resolve_host(&self, path: &str) -> String {
        resolve_host(self.host_links, path)
    }
}

impl Deref for World<'_> {
    type Target = BTreeMap<String, Node>;

    fn deref(&self) -> &Self::Target {
        self.rootfs
    }
}

impl DerefMut for World<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.rootfs
    }
}

/// Answers a command: `Some(output)` to handle it, `None` to fall through to
/// the canned outputs. It may change the [`World`], as the real tool would.
pub type Responder = Box<dyn FnMut(&RecordedCommand, &mut World<'_>) -> Option<CommandOutput>>;

/// The fake host; see the [module docs](self).
pub struct FakeHost {
    /// The rootfs, by normalised path (`etc/hostname`).
    pub rootfs: BTreeMap<String, Node>,
    /// Owners set with `set_owner`, by rootfs path.
    pub owners: BTreeMap<String, (u32, u32)>,
    /// Hard links made, as `(existing, link)`.
    pub hard_links: Vec<(String, String)>,
    /// Host files by absolute path, over the real machine's.
    pub host_files: BTreeMap<String, Vec<u8>>,
    /// Host directories by absolute path, over the real machine's.
    pub host_dirs: BTreeSet<String>,
    /// Host symlinks by absolute path, with their targets (relative ones
    /// are relative to the link's directory), over the real machine's.
    pub host_links: BTreeMap<String, String>,
    /// Whether host paths in none of the maps above are looked up on the real machine.
    pub real_host_files: bool,
    /// Canned outputs by command line (argv joined with spaces): an exact
    /// match first, then the longest key that is a prefix of the line.
    pub outputs: BTreeMap<String, CommandOutput>,
    /// Called first for every command.
    pub responder: Option<Responder>,
    /// Every command run, in order.
    pub commands: Vec<RecordedCommand>,
    /// Config entries emitted, as `(key, value)`.
    pub config: Vec<(String, String)>,
    /// Log lines (progress steps are logged at info level).
    pub logs: Vec<(LogLevel, String)>,
    /// The base config `config_value` answers from.
    pub base_config: BTreeMap<String, String>,
    /// What `root_path` answers; `None` makes it fail like a hook without a root.
    pub root_path: Option<String>,
    /// The host paths `scratch_dir` handed out since the last
    /// [`end_create`](Self::end_create), in order.
    pub scratch_dirs: Vec<String>,
    /// The keys `package_cache_dir` was asked for, in order, with the paths
    /// handed out (the same key gets the same path, as from the real host).
    pub package_dirs: Vec<(String, String)>,
    /// The real directory holding them, when host files are the machine's.
    scratch_root: Option<ScratchRoot>,
}

/// A real private directory for [`FakeHost`]'s scratch dirs, removed on drop.
#[derive(Debug)]
struct ScratchRoot(PathBuf);

impl ScratchRoot {
    #[allow(clippy::disallowed_methods)] // test support standing in for the host: it makes scratch dirs
    fn new() -> Result<Self, String> {
        use std::{
            os::unix::fs::DirBuilderExt,
            sync::atomic::{AtomicU64, Ordering},
        };
        static MADE: AtomicU64 = AtomicU64::new(0);
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("lxc-tmpl-fake-scratch.{}.{n}", std::process::id()));
        // A leftover of a killed test run with our pid: ours to replace.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for ScratchRoot {
    #[allow(clippy::disallowed_methods)] // test support standing in for the host: it removes scratch dirs
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::fmt::Debug for FakeHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeHost")
            .field("rootfs", &self.rootfs.keys().collect::<Vec<_>>())
            .field("commands", &self.lines())
            .field("config", &self.config)
            .field("logs", &self.logs)
            .finish_non_exhaustive()
    }
}

impl Default for FakeHost {
    fn default() -> Self {
        Self::new()
    }
}

/// An output with the given status and texts.
pub fn output(status: i32, stdout: &str, stderr: &str) -> CommandOutput {
    CommandOutput::new(status, stdout.as_bytes().into(), stderr.as_bytes().into())
}

/// A [`Responder`] that runs host commands on the real machine (with their
/// environment and stdin) and leaves rootfs commands to the canned outputs:
/// for tests that build from the machine's own programs.
#[allow(clippy::disallowed_methods)] // test support standing in for the host's runner: it forks
pub fn run_on_machine(command: &RecordedCommand, _world: &mut World<'_>) -> Option<CommandOutput> {
    use std::{
        io::Write,
        os::unix::process::ExitStatusExt,
        process::{Command, Stdio},
    };
    if command.place != RunPlace::Host {
        return None;
    }
    let Some((program, args)) = command.argv.split_first() else {
        return Some(output(127, "", "empty command"));
    };
    let child = Command::new(program)
        .args(args)
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => return Some(output(127, "", &format!("cannot run {program}: {e}"))),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its stdin closes the pipe: not an error.
        let _ = stdin.write_all(&command.stdin);
    }
    match child.wait_with_output() {
        Ok(out) => Some(CommandOutput::new(
            out.status.code().unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0)),
            out.stdout,
            out.stderr,
        )),
        Err(e) => Some(output(127, "", &format!("cannot wait for {program}: {e}"))),
    }
}

/// A host I/O error as the host reports it: [`ErrorKind::NOT_FOUND`] for ENOENT.
fn io_error(what: &str, e: &std::io::Error) -> PluginError {
    let kind = if e.kind() == std::io::ErrorKind::NotFound { ErrorKind::NOT_FOUND } else { ErrorKind::HOST };
    PluginError::new(kind, format!("{what}: {e}"))
}

fn err<T>(message: String) -> RResult<T, PluginError> {
    RResult::RErr(PluginError::new(ErrorKind::HOST, message))
}

/// Normalises a rootfs path for the fixture and inspection helpers
/// ([`FakeHost::put`], [`FakeHost::text`], ...): no leading or trailing `/`,
/// no `.` or empty components, and no symlinks followed. `..` is refused
/// here; the file callbacks resolve it inside the root, as the host does.
pub fn norm(path: &str) -> Result<String, String> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(format!("path {path} has '..'")),
            other => parts.push(other),
        }
    }
    Ok(parts.join("/"))
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// Makes the directories of a normalised path and its parents, mode 0755.
fn mkdir_nodes(rootfs: &mut BTreeMap<String, Node>, path: &str) {
    let mut at = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if !at.is_empty() {
            at.push('/');
        }
        at.push_str(part);
        rootfs.entry(at.clone()).or_insert(Node::Dir { mode: 0o755 });
    }
}

fn put_node(rootfs: &mut BTreeMap<String, Node>, path: &str, data: &[u8], mode: u32) {
    let path = norm(path).expect("rootfs path");
    mkdir_nodes(rootfs, parent_of(&path));
    rootfs.insert(path, Node::File { data: data.to_vec(), mode });
}

/// `path` with `.`, `..` and repeated `/` folded, as an absolute path.
fn lexical(path: &str) -> String {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Resolves the symlinks of `links` in a host path, as the kernel would.
fn resolve_host(links: &BTreeMap<String, String>, path: &str) -> String {
    if links.is_empty() {
        return path.to_owned();
    }
    let mut path = lexical(path);
    // As the kernel's limit on nested links (ELOOP).
    for _ in 0..40 {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let mut prefix = String::new();
        let mut replaced = None;
        for (i, part) in parts.iter().enumerate() {
            let parent = prefix.clone();
            prefix = format!("{prefix}/{part}");
            if let Some(target) = links.get(&prefix) {
                let base = if target.starts_with('/') { target.clone() } else { format!("{parent}/{target}") };
                replaced = Some(lexical(&format!("{base}/{}", parts[i + 1..].join("/"))));
                break;
            }
        }
        match replaced {
            Some(next) => path = next,
            None => return path,
        }
    }
    path
}

impl FakeHost {
    /// An empty rootfs on this machine: host paths not added to the fake are
    /// the machine's own; `root_path` is `/fake-root`.
    pub fn new() -> Self {
        Self {
            rootfs: BTreeMap::new(),
            owners: BTreeMap::new(),
            hard_links: Vec::new(),
            host_files: BTreeMap::new(),
            host_dirs: BTreeSet::new(),
            host_links: BTreeMap::new(),
            real_host_files: true,
            outputs: BTreeMap::new(),
            responder: None,
            commands: Vec::new(),
            config: Vec::new(),
            logs: Vec::new(),
            base_config: BTreeMap::new(),
            root_path: Some("/fake-root".into()),
            scratch_dirs: Vec::new(),
            package_dirs: Vec::new(),
            scratch_root: None,
        }
    }

    /// An empty rootfs and an empty host: only host paths added to the fake exist.
    pub fn sealed() -> Self {
        Self { real_host_files: false, ..Self::new() }
    }

    /// Creates a rootfs directory (and parents) with mode 0755.
    pub fn mkdir(&mut self, path: &str) {
        mkdir_nodes(&mut self.rootfs, &norm(path).expect("rootfs path"));
    }

    /// Creates a rootfs file (parents made) with mode 0644.
    pub fn put(&mut self, path: &str, data: &str) {
        put_node(&mut self.rootfs, path, data.as_bytes(), 0o644);
    }

    /// Creates an executable rootfs file (a program a hook may look for).
    pub fn put_program(&mut self, path: &str) {
        put_node(&mut self.rootfs, path, b"#!/bin/sh\n", 0o755);
    }

    /// Adds a host file.
    pub fn put_host(&mut self, path: &str, data: &str) {
        self.host_files.insert(path.to_owned(), data.as_bytes().to_vec());
    }

    /// Adds a host directory.
    pub fn put_host_dir(&mut self, path: &str) {
        self.host_dirs.insert(path.to_owned());
    }

    /// Adds a host symlink `link` -> `target`.
    pub fn put_host_link(&mut self, link: &str, target: &str) {
        self.host_links.insert(link.to_owned(), target.to_owned());
    }

    /// Sets a canned output for a command line (or a prefix of one).
    pub fn on(&mut self, command: &str, out: CommandOutput) {
        self.outputs.insert(command.to_owned(), out);
    }

    /// Sets the [`Responder`].
    pub fn set_responder(
        &mut self,
        responder: impl FnMut(&RecordedCommand, &mut World<'_>) -> Option<CommandOutput> + 'static,
    ) {
        self.responder = Some(Box::new(responder));
    }

    /// The contents of a rootfs file; panics if it is not a file.
    pub fn bytes(&self, path: &str) -> Vec<u8> {
        match self.rootfs.get(&norm(path).expect("rootfs path")) {
            Some(Node::File { data, .. }) => data.clone(),
            other => panic!("{path} is not a file: {other:?}"),
        }
    }

    /// The text of a rootfs file; panics if it is not a UTF-8 file.
    pub fn text(&self, path: &str) -> String {
        String::from_utf8(self.bytes(path)).unwrap_or_else(|e| panic!("{path} is not UTF-8: {e}"))
    }

    /// The mode of a rootfs file or directory; panics otherwise.
    pub fn mode(&self, path: &str) -> u32 {
        match self.rootfs.get(&norm(path).expect("rootfs path")) {
            Some(Node::File { mode, .. } | Node::Dir { mode }) => *mode,
            other => panic!("{path} has no mode: {other:?}"),
        }
    }

    /// Whether a rootfs path exists.
    pub fn exists(&self, path: &str) -> bool {
        self.rootfs.contains_key(&norm(path).expect("rootfs path"))
    }

    /// The command lines run, in order.
    pub fn lines(&self) -> Vec<String> {
        self.commands.iter().map(RecordedCommand::line).collect()
    }

    /// The first recorded command whose line starts with `prefix`.
    pub fn command(&self, prefix: &str) -> Option<&RecordedCommand> {
        self.commands.iter().find(|c| c.line().starts_with(prefix))
    }

    /// The log lines of one level.
    pub fn logs_at(&self, level: LogLevel) -> Vec<&str> {
        self.logs.iter().filter(|(l, _)| *l == level).map(|(_, m)| m.as_str()).collect()
    }

    /// The logged warnings.
    pub fn warnings(&self) -> Vec<&str> {
        self.logs_at(LogLevel::Warn)
    }

    /// Whether any log line (of any level) contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.logs.iter().any(|(_, m)| m.contains(needle))
    }

    /// The values emitted for a config key, in order.
    pub fn config_values(&self, key: &str) -> Vec<&str> {
        self.config.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    /// Removes the scratch dirs, as the host does when a create ends.
    pub fn end_create(&mut self) {
        for dir in self.scratch_dirs.drain(..) {
            let below = format!("{dir}/");
            self.host_dirs.remove(&dir);
            self.host_files.retain(|f, _| !f.starts_with(&below));
            self.host_dirs.retain(|d| !d.starts_with(&below));
        }
        self.scratch_root = None;
    }

    /// The rootfs with the file operations of the real host.
    fn fs(&mut self) -> fakefs::Fs<'_> {
        fakefs::Fs { rootfs: &mut self.rootfs, owners: &mut self.owners, hard_links: &mut self.hard_links }
    }

    #[allow(clippy::disallowed_methods)] // test support standing in for the host: it makes scratch dirs
    fn make_scratch_dir(&mut self) -> Result<String, PluginError> {
        let n = self.scratch_dirs.len() + 1;
        let dir = if self.real_host_files {
            if self.scratch_root.is_none() {
                self.scratch_root = Some(ScratchRoot::new().map_err(|e| PluginError::new(ErrorKind::HOST, e))?);
            }
            let root = self.scratch_root.as_ref().map(|r| r.0.clone()).unwrap_or_default();
            let dir = root.join(n.to_string());
            {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&dir)
                    .map_err(|e| PluginError::new(ErrorKind::HOST, format!("cannot create {}: {e}", dir.display())))?;
            }
            dir.display().to_string()
        } else {
            let dir = format!("/tmp/lxc-tmpl-scratch.fake/{n}");
            self.host_dirs.insert(dir.clone());
            dir
        };
        self.scratch_dirs.push(dir.clone());
        Ok(dir)
    }

    /// The target of a host symlink, the parents' symlinks followed.
    fn host_link(&self, host_path: &str) -> Result<Option<String>, PluginError> {
        let what = format!("read host symlink {host_path}");
        if !host_path.starts_with('/') {
            return Err(PluginError::new(ErrorKind::HOST, format!("{what}: give an absolute host path (plugin bug)")));
        }
        let path = lexical(host_path);
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", ""));
        let path = format!("{}/{name}", resolve_host(&self.host_links, if parent.is_empty() { "/" } else { parent }))
            .replace("//", "/");
        if let Some(target) = self.host_links.get(&path) {
            return Ok(Some(target.clone()));
        }
        if self.host_files.contains_key(&path) || self.host_dirs.contains(&path) || !self.real_host_files {
            return Ok(None);
        }
        match std::fs::read_link(&path) {
            Ok(target) => Ok(Some(target.display().to_string())),
            // ENOENT: nothing there; EINVAL (InvalidInput): not a symlink.
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::InvalidInput) => Ok(None),
            Err(e) => Err(PluginError::new(ErrorKind::HOST, format!("{what}: {e}"))),
        }
    }

    /// A host path with every symlink resolved; it must exist.
    fn host_canonical(&self, host_path: &str) -> Result<String, PluginError> {
        let what = format!("canonicalize host path {host_path}");
        if !host_path.starts_with('/') {
            return Err(PluginError::new(ErrorKind::HOST, format!("{what}: give an absolute host path (plugin bug)")));
        }
        let path = lexical(&resolve_host(&self.host_links, host_path));
        if path == "/" || self.host_files.contains_key(&path) || self.host_dirs.contains(&path) {
            return Ok(path);
        }
        if self.real_host_files {
            return std::fs::canonicalize(&path).map(|p| p.display().to_string()).map_err(|e| io_error(&what, &e));
        }
        Err(PluginError::not_found(format!("{what}: No such file or directory (os error 2)")))
    }

    fn answer(&mut self, recorded: &RecordedCommand) -> CommandOutput {
        if let Some(responder) = self.responder.as_mut() {
            let mut world = World {
                rootfs: &mut self.rootfs,
                host_files: &mut self.host_files,
                host_dirs: &mut self.host_dirs,
                host_links: &mut self.host_links,
            };
            if let Some(out) = responder(recorded, &mut world) {
                return out;
            }
        }
        let line = recorded.line();
        if let Some(out) = self.outputs.get(&line) {
            return out.clone();
        }
        let prefix = self.outputs.keys().filter(|k| line.starts_with(k.as_str())).max_by_key(|k| k.len());
        match prefix {
            Some(key) => self.outputs[key].clone(),
            None => output(0, "", ""),
        }
    }

    /// The contents of a host file, symlinks followed.
    fn host_bytes(&self, host_path: &str) -> Result<Vec<u8>, PluginError> {
        let path = resolve_host(&self.host_links, host_path);
        if let Some(data) = self.host_files.get(&path) {
            return Ok(data.clone());
        }
        if self.host_dirs.contains(&path) {
            return Err(PluginError::new(
                ErrorKind::HOST,
                format!("cannot read {host_path}: Is a directory (os error 21)"),
            ));
        }
        if self.real_host_files {
            return std::fs::read(&path).map_err(|e| io_error(&format!("cannot read {host_path}"), &e));
        }
        Err(PluginError::not_found(format!("cannot read {host_path}: No such file or directory (os error 2)")))
    }
}

/// Calls `f` with a [`Host`] backed by `fake`.
pub fn with_host<R>(fake: &mut FakeHost, f: impl FnOnce(&mut Host<'_>) -> R) -> R {
    let mut host = Host::new(HostApi_TO::from_ptr(RMut::new(fake), TD_Opaque));
    f(&mut host)
}

/// Runs every hook of `plugin` in the host's order ([`Hook::ORDER`]), as a
/// create does. The cache copy is the identity here (one fake rootfs), so
/// `download` always runs. Returns the cache key and the message.
pub fn run_hooks<D: Distro>(
    plugin: &D,
    fake: &mut FakeHost,
    ctx: &HookContext,
) -> Result<(Option<String>, Option<String>), PluginError> {
    run_hooks_but(plugin, fake, ctx, None)
}

/// A warm create: every hook but `download`, in the host's order, on a
/// `fake` whose rootfs is a copy of a cache entry ([`build_cache_entry`]),
/// as the host runs them when the entry exists. Returns the cache key and
/// the message, as [`run_hooks`].
pub fn run_hooks_from_cache<D: Distro>(
    plugin: &D,
    fake: &mut FakeHost,
    ctx: &HookContext,
) -> Result<(Option<String>, Option<String>), PluginError> {
    run_hooks_but(plugin, fake, ctx, Some(Hook::Download))
}

/// The rootfs a cache entry holds: `validate`, `cache_key` and `download`
/// of `plugin` run on `fake` (as a cold create builds the entry), and the
/// rootfs they leave.
pub fn build_cache_entry<D: Distro>(
    plugin: &D,
    fake: &mut FakeHost,
    ctx: &HookContext,
) -> Result<BTreeMap<String, Node>, PluginError> {
    with_host(fake, |host| {
        plugin.validate(ctx, host)?;
        plugin.cache_key(ctx, host)?;
        plugin.download(ctx, host)
    })?;
    Ok(fake.rootfs.clone())
}

/// Every hook in [`Hook::ORDER`] except `skip`.
fn run_hooks_but<D: Distro>(
    plugin: &D,
    fake: &mut FakeHost,
    ctx: &HookContext,
    skip: Option<Hook>,
) -> Result<(Option<String>, Option<String>), PluginError> {
    with_host(fake, |host| {
        let (mut key, mut message) = (None, None);
        for hook in Hook::ORDER.into_iter().filter(|h| Some(*h) != skip) {
            match hook {
                Hook::CacheKey => key = plugin.cache_key(ctx, host)?,
                Hook::Message => message = plugin.message(ctx, host)?,
                unit => call_unit_hook(plugin, unit, ctx, host)?,
            }
        }
        Ok((key, message))
    })
}

/// Calls one of the hooks that return nothing ([`Hook::returns_unit`]).
///
/// # Panics
/// For `cache_key` and `message`, which return values.
pub fn call_unit_hook<D: Distro>(
    plugin: &D,
    hook: Hook,
    ctx: &HookContext,
    host: &mut Host<'_>,
) -> Result<(), PluginError> {
    match hook {
        Hook::Validate => plugin.validate(ctx, host),
        Hook::Download => plugin.download(ctx, host),
        Hook::SourcesList => plugin.sources_list(ctx, host),
        Hook::Configure => plugin.configure(ctx, host),
        Hook::Config => plugin.config(ctx, host),
        Hook::Trim => plugin.trim(ctx, host),
        Hook::PostProcess => plugin.post_process(ctx, host),
        Hook::Finalize => plugin.finalize(ctx, host),
        other => panic!("hook {other} returns a value: call it directly"),
    }
}

/// A hook context for `distro` and container `name` (also its host name;
/// set [`HookContext::hostname`] to test another) with the given options
/// (`(long, values)`; a flag has no values), privileged, on an amd64 Debian
/// bookworm host with LXC 5.0.2. Each call is another create (its own
/// [`HookContext::create_id`]).
pub fn context(distro: &str, name: &str, options: &[(&str, &[&str])]) -> HookContext {
    HookContext {
        distro: distro.into(),
        name: name.into(),
        hostname: name.into(),
        container_path: format!("/var/lib/lxc/{name}"),
        rootfs_path: format!("/var/lib/lxc/{name}/rootfs"),
        options: options
            .iter()
            .map(|(long, values)| OptionValue {
                long: (*long).into(),
                values: values.iter().map(|v| (*v).to_owned()).collect(),
            })
            .collect(),
        facts: HostFacts {
            arch: "amd64".into(),
            distro_id: "debian".into(),
            distro_codename: "bookworm".into(),
            lxc_version: "5.0.2".into(),
            ..HostFacts::default()
        },
        create_id: crate::new_create_id(),
        ..HookContext::default()
    }
}

/// Renders a template as the host does (core/host/src/render.rs).
fn render_template(name: &str, source: &str, context_json: &str) -> Result<String, String> {
    let context: serde_json::Value =
        serde_json::from_str(context_json).map_err(|e| format!("template {name}: bad context: {e}"))?;
    let mut env = minijinja::Environment::new();
    env.set_keep_trailing_newline(true);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template(name, source).map_err(|e| format!("template {name}: {e}"))?;
    env.get_template(name)
        .and_then(|t| t.render(minijinja::Value::from_serialize(&context)))
        .map_err(|e| format!("template {name}: {e}"))
}

impl HostApi for FakeHost {
    fn run(&mut self, command: CommandSpecRef<'_>) -> RResult<CommandOutputBox, PluginError> {
        let Some(command) = CommandSpec::from_abi(&command) else {
            return err("run: the command names a place this host does not know".into());
        };
        let recorded = RecordedCommand {
            argv: command.argv.clone(),
            env: command.env.clone(),
            stdin: command.stdin.clone(),
            place: command.place,
        };
        let out = self.answer(&recorded);
        let line = recorded.line();
        self.commands.push(recorded);
        if command.check && out.status != 0 {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            return RResult::RErr(PluginError::failed(format!(
                "command '{line}' failed with exit status {}: {stderr}",
                out.status
            )));
        }
        RResult::ROk(out.into_abi())
    }

    fn read_file(&mut self, path: RStr<'_>) -> RResult<RVec<u8>, PluginError> {
        self.fs().read_file(&path).map(RVec::from).into()
    }

    fn write_file(&mut self, path: RStr<'_>, data: RSlice<'_, u8>, mode: u32) -> RResult<(), PluginError> {
        self.fs().write_file("write", &path, data.to_vec(), mode).into()
    }

    fn append_file(&mut self, path: RStr<'_>, data: RSlice<'_, u8>) -> RResult<(), PluginError> {
        self.fs().append_file(&path, &data).into()
    }

    fn mkdir_all(&mut self, path: RStr<'_>, mode: u32) -> RResult<(), PluginError> {
        self.fs().mkdir_all(&path, mode).into()
    }

    fn symlink(&mut self, target: RStr<'_>, link: RStr<'_>) -> RResult<(), PluginError> {
        self.fs().symlink(&target, &link).into()
    }

    fn hard_link(&mut self, existing: RStr<'_>, link: RStr<'_>) -> RResult<(), PluginError> {
        self.fs().hard_link(&existing, &link).into()
    }

    fn set_mode(&mut self, path: RStr<'_>, mode: u32) -> RResult<(), PluginError> {
        self.fs().set_mode(&path, mode).into()
    }

    fn set_owner(&mut self, path: RStr<'_>, uid: u32, gid: u32) -> RResult<(), PluginError> {
        self.fs().set_owner(&path, uid, gid).into()
    }

    fn remove(&mut self, path: RStr<'_>) -> RResult<(), PluginError> {
        self.fs().remove(&path).into()
    }

    fn file_kind(&mut self, path: RStr<'_>) -> RResult<ROption<FileKind_NE>, PluginError> {
        self.fs().file_kind(&path).map(|kind| kind.map(FileKind::to_abi).into()).into()
    }

    fn copy_from_host(&mut self, host_path: RStr<'_>, path: RStr<'_>, mode: u32) -> RResult<(), PluginError> {
        // As the host: the source is read first, so a missing one fails before the rootfs is looked at.
        match self.host_bytes(&host_path) {
            Ok(data) => self.fs().write_file("copy to", &path, data, mode).into(),
            Err(e) => RResult::RErr(e),
        }
    }

    fn read_host_file(&mut self, host_path: RStr<'_>) -> RResult<RVec<u8>, PluginError> {
        self.host_bytes(&host_path).map(RVec::from).into()
    }

    fn host_file_kind(&mut self, host_path: RStr<'_>) -> RResult<ROption<FileKind_NE>, PluginError> {
        let path = resolve_host(&self.host_links, &host_path);
        let kind = if self.host_files.contains_key(&path) {
            Some(FileKind::File)
        } else if self.host_dirs.contains(&path) {
            Some(FileKind::Dir)
        } else if self.real_host_files {
            std::fs::metadata(&path).ok().map(|m| {
                if m.is_file() {
                    FileKind::File
                } else if m.is_dir() {
                    FileKind::Dir
                } else {
                    FileKind::Other
                }
            })
        } else {
            None
        };
        RResult::ROk(kind.map(FileKind::to_abi).into())
    }

    fn render(&mut self, name: RStr<'_>, source: RStr<'_>, context_json: RStr<'_>) -> RResult<RString, PluginError> {
        match render_template(&name, &source, &context_json) {
            Ok(text) => RResult::ROk(text.into()),
            Err(e) => err(e),
        }
    }

    fn config(&mut self, entry: ConfigEntryRef<'_>) -> RResult<(), PluginError> {
        let entry = ConfigEntry::from_abi(&entry);
        let key = entry.key.as_str();
        if !key.starts_with("lxc.") || key.contains(char::is_whitespace) || entry.value.contains('\n') {
            return err(format!("config entry '{key} = {}' is not a valid LXC entry", entry.value));
        }
        self.config.push((key.to_owned(), entry.value.clone()));
        RResult::ROk(())
    }

    fn config_value(&mut self, key: RStr<'_>) -> ROption<RString> {
        self.base_config.get(key.as_str()).map(|v| RString::from(v.as_str())).into()
    }

    fn root_path(&mut self) -> RResult<RString, PluginError> {
        match &self.root_path {
            Some(path) => RResult::ROk(RString::from(path.as_str())),
            None => err("root_path: no rootfs exists yet in this hook (plugin bug)".into()),
        }
    }

    fn log(&mut self, level: LogLevel_NE, message: RStr<'_>) {
        self.logs.push((LogLevel::from_abi(&level), message.to_string()));
    }

    fn progress(&mut self, step: RStr<'_>) {
        self.logs.push((LogLevel::Info, step.to_string()));
    }

    fn read_host_link(&mut self, host_path: RStr<'_>) -> RResult<ROption<RString>, PluginError> {
        self.host_link(&host_path).map(|t| t.map(RString::from).into()).into()
    }

    fn canonicalize_host_path(&mut self, host_path: RStr<'_>) -> RResult<RString, PluginError> {
        self.host_canonical(&host_path).map(RString::from).into()
    }

    fn scratch_dir(&mut self) -> RResult<RString, PluginError> {
        self.make_scratch_dir().map(RString::from).into()
    }

    fn package_cache_dir(&mut self, key: RStr<'_>) -> RResult<RString, PluginError> {
        let path = match self.package_dirs.iter().find(|(k, _)| k == key.as_str()) {
            Some((_, path)) => path.clone(),
            None => {
                let path = format!("/var/cache/lxc-tmpl.fake/packages/{}", self.package_dirs.len() + 1);
                self.host_dirs.insert(path.clone());
                self.package_dirs.push((key.to_string(), path.clone()));
                path
            }
        };
        RResult::ROk(path.into())
    }

    fn read_dir(&mut self, path: RStr<'_>) -> RResult<RVec<Tuple2<RString, FileKind_NE>>, PluginError> {
        let entries = self.fs().read_dir(&path);
        entries
            .map(|entries| entries.into_iter().map(|(name, kind)| Tuple2(name.into(), kind.to_abi())).collect())
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalise() {
        assert_eq!(norm("/etc//hostname/").unwrap(), "etc/hostname");
        assert_eq!(norm("./etc/./x").unwrap(), "etc/x");
        assert!(norm("etc/../x").is_err());
    }

    #[test]
    fn host_symlinks_are_followed() {
        let mut fake = FakeHost::sealed();
        fake.put_host_link("/bin", "usr/bin");
        fake.put_host_link("/etc/alt", "../usr/lib");
        fake.put_host_dir("/usr/bin");
        fake.put_host("/usr/bin/sh", "shell");
        fake.put_host("/usr/lib/x", "x");
        let (sh, dir, alt, none) = with_host(&mut fake, |h| {
            (
                h.read_host_file("/bin/sh"),
                h.host_file_kind("/bin"),
                h.read_host_file("/etc/alt/x"),
                h.host_file_kind("/x"),
            )
        });
        assert_eq!(sh.unwrap(), b"shell");
        assert_eq!(dir.unwrap(), Some(FileKind::Dir));
        assert_eq!(alt.unwrap(), b"x");
        assert_eq!(none.unwrap(), None);
    }

    #[test]
    fn writes_follow_the_host_rules() {
        let mut fake = FakeHost::sealed();
        with_host(&mut fake, |h| {
            assert!(h.write_file("etc/x", b"1", 0o644).is_err(), "parent missing");
            h.mkdir_all("etc", 0o755).unwrap();
            h.write_file("etc/x", b"1", 0o600).unwrap();
            h.set_owner("etc/x", 5, 5).unwrap();
            h.write_file("etc/x", b"2", 0o644).unwrap();
            h.symlink("x", "etc/link").unwrap();
            // As the host: the link is replaced by a new file, never written through.
            h.write_file("etc/link", b"3", 0o644).unwrap();
            h.write_template("etc/t", "{{ a }}\n", &serde_json::json!({ "a": 1 }), 0o644).unwrap();
            assert!(h.render("t", "{{ b }}", &serde_json::json!({})).is_err(), "strict undefined");
        });
        assert_eq!((fake.text("etc/x"), fake.mode("etc/x"), fake.owners["etc/x"]), ("2".into(), 0o644, (5, 5)));
        assert_eq!(fake.text("etc/t"), "1\n", "trailing newline kept");
        assert_eq!((fake.text("etc/link"), fake.text("etc/x")), ("3".into(), "2".into()));
    }

    #[test]
    fn commands_go_to_the_responder_then_the_canned_outputs() {
        let mut fake = FakeHost::sealed();
        fake.on("tool", output(3, "", "bad"));
        fake.set_responder(|cmd, world| {
            (cmd.argv[0] == "make").then(|| {
                world.put("made", b"yes", 0o600);
                output(0, "done\n", "")
            })
        });
        with_host(&mut fake, |h| {
            assert_eq!(h.run_in_rootfs(&["make"]).unwrap().stdout_text(), "done\n");
            assert_eq!(h.run(&CommandSpec::on_host(&["tool", "x"]).unchecked()).unwrap().status, 3);
            assert!(h.run_on_host(&["tool"]).unwrap_err().message.contains("failed with exit status 3: bad"));
            assert_eq!(h.run_on_host(&["other"]).unwrap().status, 0);
        });
        assert_eq!(fake.mode("made"), 0o600);
        assert_eq!(fake.lines(), ["make", "tool x", "tool", "other"]);
    }
}
