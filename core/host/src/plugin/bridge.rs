//! The host side of the plugin boundary: [`Bridge`] implements
//! [`HostApi`] for one hook call, on top of the namespaced runner, the
//! symlink-safe [`Rootfs`] and the config being assembled.
//!
//! Every error becomes a one-line [`PluginError`] of kind
//! [`ErrorKind::HOST`] (or [`ErrorKind::FAILED`] for a failed command) that
//! names the path or command, so the plugin can pass it on unchanged.

// Paths here are rootfs paths: every write goes through `Rootfs` (clippy.toml).
#![deny(clippy::disallowed_methods)]

use std::path::Path;

use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString, RVec, Tuple2};
use lxc_tmpl_plugin_api::{
    API_VERSION, CommandOutput, CommandSpec, ConfigEntry, ErrorKind, FileKind, FileKind_NE, HostApi, LogLevel,
    LogLevel_NE, PluginError, RunPlace,
    abi::{CommandOutputBox, CommandSpecRef, ConfigEntryRef},
};

use crate::{
    cache::{self, PackageDir},
    lxcconf::BaseConfig,
    plugin::scratch::Scratch,
    render::render_template,
    report::{Reporter, error_chain},
    rootfs::{Rootfs, RootfsError},
    runner::{HostCommand, RunRequest, Runner},
};

/// How many lines of a failed command's output an error shows.
const OUTPUT_TAIL_LINES: usize = 8;

/// The [`HostApi`] for the hooks of one create.
pub struct Bridge<'a> {
    /// The root that rootfs operations act on; `None` in hooks that run
    /// before any rootfs exists (validate, cache_key).
    pub root: Option<Rootfs>,
    /// The namespaced runner.
    pub runner: &'a Runner,
    /// Hostname for commands run in the rootfs (the short host name of the container).
    pub hostname: &'a str,
    /// Bind the host's resolv.conf into the rootfs for commands (downloads).
    pub bind_resolv_conf: bool,
    /// The base config, for [`HostApi::config_value`].
    pub base: &'a BaseConfig,
    /// Entries collected from the `config` hook.
    pub entries: Vec<ConfigEntry>,
    /// Progress and logs.
    pub reporter: &'a dyn Reporter,
    /// The create's scratch directories, which outlive this hook.
    pub scratch: &'a Scratch,
    /// The cache dir, for [`HostApi::package_cache_dir`].
    pub cache_dir: &'a Path,
    /// The distro, whose part of the cache dir package dirs go in.
    pub distro: &'a str,
    /// Package dirs handed out in this hook, locked until it returns.
    pub package_dirs: Vec<PackageDir>,
}

impl std::fmt::Debug for Bridge<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge").field("root", &self.root.as_ref().map(Rootfs::path)).finish()
    }
}

fn host_error(message: String) -> PluginError {
    PluginError::new(ErrorKind::HOST, message)
}

impl Bridge<'_> {
    fn root(&self, operation: &str) -> Result<&Rootfs, PluginError> {
        self.root
            .as_ref()
            .ok_or_else(|| host_error(format!("{operation}: no rootfs exists yet in this hook (plugin bug)")))
    }

    /// Runs `f` on the current root, turning its error into a `PluginError`
    /// ([`ErrorKind::NOT_FOUND`] when a path is missing).
    fn with_root<T>(
        &self,
        operation: &str,
        f: impl FnOnce(&Rootfs) -> Result<T, RootfsError>,
    ) -> RResult<T, PluginError> {
        self.root(operation)
            .and_then(|root| {
                f(root).map_err(|e| {
                    let kind = if e.is_not_found() { ErrorKind::NOT_FOUND } else { ErrorKind::HOST };
                    PluginError::new(kind, format!("{operation}: {}", error_chain(&e)))
                })
            })
            .into()
    }

    fn run_command(&mut self, spec: &CommandSpec) -> Result<CommandOutput, PluginError> {
        let (argv, env) = (&spec.argv, &spec.env);
        let Some(program) = argv.first() else {
            return Err(host_error("run: empty command (plugin bug)".into()));
        };
        // The runner reports the command (start, output, status) to the reporter it was given.
        let (status, stdout, stderr) = match spec.place {
            RunPlace::Rootfs => {
                let root = self.root("run")?.path().to_owned();
                let output = self
                    .runner
                    .run(&RunRequest {
                        root: &root,
                        argv,
                        env,
                        stdin: &spec.stdin,
                        hostname: Some(self.hostname),
                        bind_resolv_conf: self.bind_resolv_conf,
                    })
                    .map_err(|e| {
                        host_error(format!("cannot run {program} inside {}: {}", root.display(), error_chain(&e)))
                    })?;
                (output.status, output.stdout, output.stderr)
            }
            RunPlace::Host => {
                let output = self
                    .runner
                    .run_on_host(&HostCommand { argv, env, stdin: &spec.stdin, hold: None })
                    .map_err(|e| host_error(format!("cannot run {program} on the host: {}", error_chain(&e))))?;
                (output.status, output.stdout, output.stderr)
            }
            // `RunPlace::from_abi` knows only this build's places.
            _ => unreachable!("run place {:?} decoded by this build", spec.place),
        };
        if spec.check && status != 0 {
            return Err(PluginError::failed(command_failure(argv, spec.place, status, &stdout, &stderr)));
        }
        Ok(CommandOutput::new(status, stdout, stderr))
    }
}

fn place_name(place: RunPlace) -> &'static str {
    match place {
        RunPlace::Rootfs => "in rootfs",
        RunPlace::Host => "on host",
        _ => "elsewhere",
    }
}

/// `command 'x y' failed on host with exit status 3: <tail>`.
fn command_failure(argv: &[String], place: RunPlace, status: i32, stdout: &[u8], stderr: &[u8]) -> String {
    let output = if stderr.iter().any(|b| !b.is_ascii_whitespace()) { stderr } else { stdout };
    let text = String::from_utf8_lossy(output);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(OUTPUT_TAIL_LINES)..].join("\n    ");
    let mut message = format!("command '{}' failed {} with exit status {status}", argv.join(" "), place_name(place));
    if !tail.is_empty() {
        message.push_str(":\n    ");
        message.push_str(&tail);
    }
    message
}

/// A host path a plugin named: it must be absolute, as relative paths would
/// depend on the host's working directory.
fn absolute_host_path<'p>(operation: &str, host_path: &'p str) -> Result<&'p Path, PluginError> {
    if host_path.starts_with('/') {
        Ok(Path::new(host_path))
    } else {
        Err(host_error(format!("{operation} {host_path}: give an absolute host path (plugin bug)")))
    }
}

/// A host I/O error as a `PluginError`: [`ErrorKind::NOT_FOUND`] for ENOENT.
fn host_io_error(what: String, e: &std::io::Error) -> PluginError {
    let kind = if e.kind() == std::io::ErrorKind::NotFound { ErrorKind::NOT_FOUND } else { ErrorKind::HOST };
    PluginError::new(kind, format!("{what}: {e}"))
}

/// A host path as UTF-8, which is what crosses the boundary.
fn utf8_path(what: &str, path: &Path) -> Result<RString, PluginError> {
    path.to_str().map(RString::from).ok_or_else(|| host_error(format!("{what}: {} is not UTF-8", path.display())))
}

fn kind_of(meta: &std::fs::Metadata) -> FileKind {
    let t = meta.file_type();
    if t.is_file() {
        FileKind::File
    } else if t.is_dir() {
        FileKind::Dir
    } else if t.is_symlink() {
        FileKind::Symlink
    } else {
        FileKind::Other
    }
}

impl HostApi for Bridge<'_> {
    fn run(&mut self, command: CommandSpecRef<'_>) -> RResult<CommandOutputBox, PluginError> {
        let Some(command) = CommandSpec::from_abi(&command) else {
            return RResult::RErr(PluginError::unsupported(format!(
                "run: the plugin asks for a place to run commands that API {API_VERSION} does not know"
            )));
        };
        #[cfg(lxc_tmpl_api_preview)]
        if command.preview.is_none() {
            self.reporter.log(LogLevel::Debug, "appended field CommandSpec.preview: absent (older plugin)");
        }
        self.run_command(&command).map(CommandOutput::into_abi).into()
    }

    fn read_file(&mut self, path: RStr<'_>) -> RResult<RVec<u8>, PluginError> {
        self.with_root(&format!("read {path}"), |r| r.read_file(path.as_str()).map(RVec::from))
    }

    fn write_file(&mut self, path: RStr<'_>, data: RSlice<'_, u8>, mode: u32) -> RResult<(), PluginError> {
        self.with_root(&format!("write {path}"), |r| r.write_file(path.as_str(), data.as_slice(), mode))
    }

    fn append_file(&mut self, path: RStr<'_>, data: RSlice<'_, u8>) -> RResult<(), PluginError> {
        self.with_root(&format!("append to {path}"), |r| r.append_file(path.as_str(), data.as_slice()))
    }

    fn mkdir_all(&mut self, path: RStr<'_>, mode: u32) -> RResult<(), PluginError> {
        self.with_root(&format!("mkdir {path}"), |r| r.mkdir_all(path.as_str(), mode))
    }

    fn symlink(&mut self, target: RStr<'_>, link: RStr<'_>) -> RResult<(), PluginError> {
        self.with_root(&format!("symlink {link} -> {target}"), |r| r.symlink(target.as_str(), link.as_str()))
    }

    fn hard_link(&mut self, existing: RStr<'_>, link: RStr<'_>) -> RResult<(), PluginError> {
        self.with_root(&format!("hard link {link} to {existing}"), |r| r.hard_link(existing.as_str(), link.as_str()))
    }

    fn set_mode(&mut self, path: RStr<'_>, mode: u32) -> RResult<(), PluginError> {
        self.with_root(&format!("chmod {path}"), |r| r.set_mode(path.as_str(), mode))
    }

    fn set_owner(&mut self, path: RStr<'_>, uid: u32, gid: u32) -> RResult<(), PluginError> {
        self.with_root(&format!("chown {path}"), |r| r.set_owner(path.as_str(), uid, gid))
    }

    fn remove(&mut self, path: RStr<'_>) -> RResult<(), PluginError> {
        self.with_root(&format!("remove {path}"), |r| r.remove(path.as_str()))
    }

    fn file_kind(&mut self, path: RStr<'_>) -> RResult<ROption<FileKind_NE>, PluginError> {
        self.with_root(&format!("stat {path}"), |r| r.file_kind(path.as_str()).map(|k| k.map(FileKind::to_abi).into()))
    }

    fn copy_from_host(&mut self, host_path: RStr<'_>, path: RStr<'_>, mode: u32) -> RResult<(), PluginError> {
        self.with_root(&format!("copy {host_path} to {path}"), |r| {
            r.copy_from_host(Path::new(host_path.as_str()), path.as_str(), mode)
        })
    }

    fn read_host_file(&mut self, host_path: RStr<'_>) -> RResult<RVec<u8>, PluginError> {
        std::fs::read(host_path.as_str())
            .map(RVec::from)
            .map_err(|e| host_io_error(format!("cannot read {host_path}"), &e))
            .into()
    }

    fn host_file_kind(&mut self, host_path: RStr<'_>) -> RResult<ROption<FileKind_NE>, PluginError> {
        match std::fs::metadata(host_path.as_str()) {
            Ok(meta) => RResult::ROk(ROption::RSome(kind_of(&meta).to_abi())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RResult::ROk(ROption::RNone),
            Err(e) => RResult::RErr(host_error(format!("cannot stat {host_path}: {e}"))),
        }
    }

    fn render(&mut self, name: RStr<'_>, source: RStr<'_>, context_json: RStr<'_>) -> RResult<RString, PluginError> {
        render_template(name.as_str(), source.as_str(), context_json.as_str())
            .map(RString::from)
            .map_err(host_error)
            .into()
    }

    fn config(&mut self, entry: ConfigEntryRef<'_>) -> RResult<(), PluginError> {
        let entry = ConfigEntry::from_abi(&entry);
        let key = entry.key.as_str();
        if !key.starts_with("lxc.") || key.contains(char::is_whitespace) || entry.value.contains('\n') {
            return RResult::RErr(host_error(format!(
                "config entry '{key} = {}' is not a valid LXC entry",
                entry.value
            )));
        }
        self.entries.push(entry);
        RResult::ROk(())
    }

    fn config_value(&mut self, key: RStr<'_>) -> ROption<RString> {
        self.base.value(key.as_str()).map(RString::from).into()
    }

    fn root_path(&mut self) -> RResult<RString, PluginError> {
        self.root("root_path").map(|r| RString::from(r.path().display().to_string())).into()
    }

    fn log(&mut self, level: LogLevel_NE, message: RStr<'_>) {
        self.reporter.log(LogLevel::from_abi(&level), message.as_str());
    }

    fn progress(&mut self, step: RStr<'_>) {
        self.reporter.step(step.as_str());
    }

    fn read_host_link(&mut self, host_path: RStr<'_>) -> RResult<ROption<RString>, PluginError> {
        const OP: &str = "read host symlink";
        (|| {
            let path = absolute_host_path(OP, host_path.as_str())?;
            match std::fs::read_link(path) {
                Ok(target) => utf8_path(&format!("{OP} {host_path}"), &target).map(ROption::RSome),
                // EINVAL: not a symlink; ENOENT: nothing there. `readlink` exits 1 for both.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(nix::libc::EINVAL) => {
                    Ok(ROption::RNone)
                }
                Err(e) => Err(host_io_error(format!("{OP} {host_path}"), &e)),
            }
        })()
        .into()
    }

    fn canonicalize_host_path(&mut self, host_path: RStr<'_>) -> RResult<RString, PluginError> {
        const OP: &str = "canonicalize host path";
        (|| {
            let path = absolute_host_path(OP, host_path.as_str())?;
            let canonical = std::fs::canonicalize(path).map_err(|e| host_io_error(format!("{OP} {host_path}"), &e))?;
            utf8_path(&format!("{OP} {host_path}"), &canonical)
        })()
        .into()
    }

    fn scratch_dir(&mut self) -> RResult<RString, PluginError> {
        self.scratch
            .make_dir()
            .map_err(|e| host_error(error_chain(&e)))
            .and_then(|dir| utf8_path("scratch dir", &dir))
            .into()
    }

    fn package_cache_dir(&mut self, key: RStr<'_>) -> RResult<RString, PluginError> {
        if let Some(held) = self.package_dirs.iter().find(|d| d.key == key.as_str()) {
            return utf8_path("package cache dir", &held.path).into();
        }
        let reporter = self.reporter;
        let dir = cache::package_dir(self.cache_dir, self.distro, key.as_str(), |holder| {
            reporter.log(LogLevel::Warn, &format!("waiting for the {} package cache: {holder} holds it", self.distro))
        });
        match dir {
            Ok(dir) => {
                let path = utf8_path("package cache dir", &dir.path);
                self.package_dirs.push(dir);
                path.into()
            }
            Err(e) => RResult::RErr(host_error(format!("package cache dir: {}", error_chain(&e)))),
        }
    }

    fn read_dir(&mut self, path: RStr<'_>) -> RResult<RVec<Tuple2<RString, FileKind_NE>>, PluginError> {
        let operation = format!("list {path}");
        let entries = self.with_root(&operation, |r| r.read_dir(path.as_str())).into_result();
        (|| {
            entries?
                .into_iter()
                .map(|(name, kind)| match name.into_string() {
                    Ok(name) => Ok(Tuple2(RString::from(name), kind.to_abi())),
                    Err(name) => Err(host_error(format!("{operation}: entry {name:?} is not UTF-8"))),
                })
                .collect::<Result<RVec<_>, PluginError>>()
        })()
        .into()
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures are built with std::fs on purpose
mod tests {
    use super::*;

    #[test]
    fn failure_message_has_command_status_and_tail() {
        let argv = vec!["apt-get".to_owned(), "update".to_owned()];
        let stderr = (1..=20).map(|i| format!("line {i}\n")).collect::<String>();
        let text = command_failure(&argv, RunPlace::Rootfs, 100, b"", stderr.as_bytes());
        assert!(text.starts_with("command 'apt-get update' failed in rootfs with exit status 100:"), "{text}");
        assert!(text.contains("line 20") && text.contains("line 13") && !text.contains("line 12\n"), "{text}");
    }
}
