//! An in-memory [`Host`] for hook-level unit tests (feature `test-support`).
//!
//! The rootfs is a map of nodes that enforces what the real host does
//! (parents must exist, a new file gets the given mode, an existing one
//! keeps its mode); the host side is a sealed set of files and dirs; every
//! command is recorded with its place, environment and stdin, and answered
//! by a test-supplied responder (which may also change the rootfs, as a real
//! `useradd` would), else by canned outputs, else with exit status 0 and no
//! output. `render` implements the minijinja subset the plugins' templates
//! use: `{{ var }}`, `{% if var %}`/`{% if not var %}`/`{% else %}`/`{% endif %}`
//! (not nested), `{%-`/`-%}` whitespace control, strict undefined variables,
//! trailing newline kept (as the real host configures minijinja).
//!
//! ```
//! use lxc_tmpl_deb::fake::{FakeHost, with_host};
//! let mut fake = FakeHost::sealed();
//! fake.mkdir("etc");
//! with_host(&mut fake, |host| host.write_file("etc/hostname", b"c1\n", 0o644)).unwrap();
//! assert_eq!(fake.text("etc/hostname"), "c1\n");
//! ```

use std::collections::{BTreeMap, BTreeSet};

use crate::{
    debootstrap::Keyring,
    options::BootstrapOptions,
    plan::{Archive, DebPlan},
    release::ReleaseTable,
    sources::Mirrors,
    system::{LocaleGen, NetworkStyle},
};
use lxc_tmpl_plugin_api::{
    CommandOutput, CommandSpec, ConfigEntry, Distro, ErrorKind, FileKind, HookContext, Host, HostApi, HostApi_TO,
    HostFacts, LogLevel, Manifest, OptionValue, PluginError, RunPlace,
    abi_stable::{
        sabi_trait::TD_Opaque,
        sabi_types::RMut,
        std_types::{RNone, ROption, RResult, RSlice, RStr, RString, RVec},
    },
    serde_json::{self, Value},
};

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

/// Answers a command: `Some(output)` to handle it, `None` to fall through to
/// the canned outputs. It may change the rootfs.
pub type Responder = Box<dyn FnMut(&RecordedCommand, &mut BTreeMap<String, Node>) -> Option<CommandOutput>>;

/// The fake host.
#[derive(Default)]
pub struct FakeHost {
    /// The rootfs, by normalised path (`etc/hostname`).
    pub rootfs: BTreeMap<String, Node>,
    /// Owners set with `set_owner`.
    pub owners: BTreeMap<String, (u32, u32)>,
    /// Host files, by absolute path.
    pub host_files: BTreeMap<String, Vec<u8>>,
    /// Host directories, by absolute path.
    pub host_dirs: BTreeSet<String>,
    /// Canned outputs by argv joined with spaces (exact match first, then the
    /// longest key that is a prefix of the command line).
    pub outputs: BTreeMap<String, CommandOutput>,
    /// Called first for every command.
    pub responder: Option<Responder>,
    /// Every command run, in order.
    pub commands: Vec<RecordedCommand>,
    /// Config entries emitted.
    pub config: Vec<(String, String)>,
    /// Log lines (progress steps are logged at info level).
    pub logs: Vec<(LogLevel, String)>,
    /// The base config `config_value` answers from.
    pub base_config: BTreeMap<String, String>,
    /// What `root_path` answers; `None` makes it fail like a hook without a root.
    pub root_path: Option<String>,
}

impl std::fmt::Debug for FakeHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeHost")
            .field("rootfs", &self.rootfs.keys().collect::<Vec<_>>())
            .field("commands", &self.commands.iter().map(RecordedCommand::line).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// An output with the given status and texts.
pub fn output(status: i32, stdout: &str, stderr: &str) -> CommandOutput {
    CommandOutput { status, stdout: stdout.as_bytes().into(), stderr: stderr.as_bytes().into() }
}

fn err<T>(message: String) -> RResult<T, PluginError> {
    RResult::RErr(PluginError::new(ErrorKind::HOST, message))
}

/// Normalises a rootfs path: no leading or trailing `/`, no `.` or empty
/// components. `..` is refused (the real host resolves it inside the root;
/// plugins have no reason to use it).
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

impl FakeHost {
    /// An empty rootfs and an empty host; `root_path` is `/fake-root`.
    pub fn sealed() -> Self {
        Self { root_path: Some("/fake-root".into()), ..Self::default() }
    }

    /// Creates a rootfs directory (and parents) with mode 0755.
    pub fn mkdir(&mut self, path: &str) {
        let path = norm(path).expect("test path");
        let mut at = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(part);
            self.rootfs.entry(at.clone()).or_insert(Node::Dir { mode: 0o755 });
        }
    }

    /// Creates a rootfs file (parents made) with mode 0644.
    pub fn put(&mut self, path: &str, data: &str) {
        let path = norm(path).expect("test path");
        self.mkdir(parent_of(&path));
        self.rootfs.insert(path, Node::File { data: data.as_bytes().to_vec(), mode: 0o644 });
    }

    /// Creates an executable rootfs file (a program a hook may look for).
    pub fn put_program(&mut self, path: &str) {
        self.put(path, "#!/bin/sh\n");
        self.set_node_mode(path, 0o755);
    }

    /// Adds a host file.
    pub fn put_host(&mut self, path: &str, data: &str) {
        self.host_files.insert(path.to_owned(), data.as_bytes().to_vec());
    }

    /// Sets a canned output for a command line (or a prefix of one).
    pub fn on(&mut self, command: &str, out: CommandOutput) {
        self.outputs.insert(command.to_owned(), out);
    }

    fn set_node_mode(&mut self, path: &str, new: u32) {
        if let Some(Node::File { mode, .. } | Node::Dir { mode }) = self.rootfs.get_mut(&norm(path).expect("path")) {
            *mode = new;
        }
    }

    /// The text of a rootfs file; panics if it is not a file.
    pub fn text(&self, path: &str) -> String {
        match self.rootfs.get(&norm(path).expect("path")) {
            Some(Node::File { data, .. }) => String::from_utf8(data.clone()).expect("utf-8 file"),
            other => panic!("{path} is not a file: {other:?}"),
        }
    }

    /// The mode of a rootfs file or directory; panics otherwise.
    pub fn mode(&self, path: &str) -> u32 {
        match self.rootfs.get(&norm(path).expect("path")) {
            Some(Node::File { mode, .. } | Node::Dir { mode }) => *mode,
            other => panic!("{path} has no mode: {other:?}"),
        }
    }

    /// Whether a rootfs path exists.
    pub fn exists(&self, path: &str) -> bool {
        self.rootfs.contains_key(&norm(path).expect("path"))
    }

    /// The command lines run, in order.
    pub fn lines(&self) -> Vec<String> {
        self.commands.iter().map(RecordedCommand::line).collect()
    }

    /// The first recorded command whose line starts with `prefix`.
    pub fn command(&self, prefix: &str) -> Option<&RecordedCommand> {
        self.commands.iter().find(|c| c.line().starts_with(prefix))
    }

    /// The logged warnings.
    pub fn warnings(&self) -> Vec<&str> {
        self.logs.iter().filter(|(l, _)| *l == LogLevel::Warn).map(|(_, m)| m.as_str()).collect()
    }

    /// Whether any log line (of any level) contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.logs.iter().any(|(_, m)| m.contains(needle))
    }

    /// The values emitted for a config key.
    pub fn config_values(&self, key: &str) -> Vec<&str> {
        self.config.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    fn parent_is_dir(&self, path: &str) -> bool {
        let parent = parent_of(path);
        parent.is_empty() || matches!(self.rootfs.get(parent), Some(Node::Dir { .. }))
    }

    fn answer(&mut self, recorded: &RecordedCommand) -> CommandOutput {
        if let Some(responder) = self.responder.as_mut()
            && let Some(out) = responder(recorded, &mut self.rootfs)
        {
            return out;
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
}

/// Calls `f` with a [`Host`] backed by `fake`.
pub fn with_host<R>(fake: &mut FakeHost, f: impl FnOnce(&mut Host<'_>) -> R) -> R {
    let mut host = Host::new(HostApi_TO::from_ptr(RMut::new(fake), TD_Opaque));
    f(&mut host)
}

/// Runs every hook of `plugin` in the host's order, as a create does (the
/// cache copy is the identity here: one fake rootfs). Returns the cache key
/// and the message.
pub fn run_hooks<D: Distro>(
    plugin: &D,
    fake: &mut FakeHost,
    ctx: &HookContext,
) -> Result<(Option<String>, Option<String>), PluginError> {
    with_host(fake, |host| {
        plugin.validate(ctx, host)?;
        let key = plugin.cache_key(ctx, host)?;
        plugin.download(ctx, host)?;
        plugin.sources_list(ctx, host)?;
        plugin.configure(ctx, host)?;
        plugin.config(ctx, host)?;
        plugin.trim(ctx, host)?;
        plugin.post_process(ctx, host)?;
        plugin.finalize(ctx, host)?;
        Ok((key, plugin.message(ctx, host)?))
    })
}

/// A bad-input case for [`assert_refused`]: the options, the error kind and
/// a text the message must contain.
pub type Refused<'a> = (&'a [(&'a str, &'a [&'a str])], ErrorKind, &'a str);

/// Asserts that `validate` of `plugin` refuses each case (options of a
/// `distro` context) with the error kind and a message containing the text,
/// and that it ran nothing but host user lookups (`getent`).
#[track_caller]
pub fn assert_refused<D: Distro>(plugin: &D, fake: &mut FakeHost, distro: &str, cases: &[Refused<'_>]) {
    for (options, kind, expected) in cases {
        let ctx = context(distro, "x", options);
        let err = with_host(fake, |h| plugin.validate(&ctx, h)).expect_err("validate accepted bad input");
        assert_eq!(err.kind, *kind, "{options:?}: {}", err.message);
        assert!(err.message.contains(expected), "{options:?}: {}", err.message);
    }
    assert!(fake.commands.iter().all(|c| c.argv[0] == "getent"), "validate ran more: {:?}", fake.lines());
}

/// Asserts that a manifest offers every option of `longs`, that every
/// option says its default (in its help or as a default value) and that none
/// takes a long name of the host's (`flush-cache`, `debug`).
#[track_caller]
pub fn assert_options_documented(manifest: &Manifest, longs: &[&str]) {
    let offered: Vec<&str> = manifest.options.iter().map(|o| o.long.as_str()).collect();
    for long in longs {
        assert!(offered.contains(long), "--{long} missing: {offered:?}");
    }
    for option in manifest.options.iter() {
        let says = option.help.contains("default") || option.default.is_some();
        assert!(says, "--{} does not say its default", option.long);
        assert!(!["flush-cache", "debug"].contains(&option.long.as_str()), "--{} is a host option", option.long);
    }
}

/// Puts a file with `mode` into a fake rootfs map, parents made.
pub fn put_node(rootfs: &mut BTreeMap<String, Node>, path: &str, text: &str, mode: u32) {
    let mut at = String::new();
    for part in parent_of(path).split('/').filter(|p| !p.is_empty()) {
        if !at.is_empty() {
            at.push('/');
        }
        at.push_str(part);
        rootfs.entry(at.clone()).or_insert(Node::Dir { mode: 0o755 });
    }
    rootfs.insert(path.to_owned(), Node::File { data: text.as_bytes().to_vec(), mode });
}

fn append_node(rootfs: &mut BTreeMap<String, Node>, path: &str, line: &str) {
    if let Some(Node::File { data, .. }) = rootfs.get_mut(path) {
        data.extend_from_slice(line.as_bytes());
    }
}

/// A responder that acts like the tools a debootstrap plugin runs:
/// debootstrap (also behind `unshare ... --`) "installs" a small rootfs
/// (apt-get, ssh-keygen, ifup, bash, systemd, passwd/group/shadow with a
/// locked root, the host's resolv.conf and hostname, an ssh host key, a
/// zone file, root's home); useradd, groupadd and `ssh-keygen -A` change it
/// as the real tools would.
pub fn debootstrap_responder(cmd: &RecordedCommand, rootfs: &mut BTreeMap<String, Node>) -> Option<CommandOutput> {
    let argv0 = cmd.argv.iter().position(|a| a == "--").map_or(&cmd.argv[0], |i| &cmd.argv[i + 1]);
    match argv0.rsplit('/').next().unwrap_or_default() {
        "debootstrap" if !cmd.argv.contains(&"--second-stage".to_owned()) => {
            for program in ["usr/bin/apt-get", "usr/bin/ssh-keygen", "sbin/ifup", "bin/bash", "usr/lib/systemd/systemd"]
            {
                put_node(rootfs, program, "", 0o755);
            }
            put_node(rootfs, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\n", 0o644);
            put_node(rootfs, "etc/group", "root:x:0:\n", 0o644);
            put_node(rootfs, "etc/shadow", "root:*:19000:0:99999:7:::\n", 0o640);
            put_node(rootfs, "etc/resolv.conf", "nameserver 10.1.1.1\n", 0o644);
            put_node(rootfs, "etc/hostname", "buildhost\n", 0o644);
            put_node(rootfs, "etc/ssh/ssh_host_ed25519_key", "SECRET", 0o600);
            put_node(rootfs, "etc/ssh/ssh_host_ed25519_key.pub", "ssh-ed25519 AAAA root@buildhost\n", 0o644);
            put_node(rootfs, "etc/apt/sources.list", "deb http://mirror suite main\n", 0o644);
            put_node(rootfs, "usr/share/zoneinfo/Etc/UTC", "TZif", 0o644);
            rootfs.insert("root".into(), Node::Dir { mode: 0o700 });
            Some(output(0, "I: Base system installed successfully.\n", ""))
        }
        "useradd" => {
            let name = cmd.argv.last()?;
            append_node(rootfs, "etc/passwd", &format!("{name}:x:1000:1000::/home/{name}:/bin/bash\n"));
            append_node(rootfs, "etc/shadow", &format!("{name}:!:19000:0:99999:7:::\n"));
            append_node(rootfs, "etc/group", &format!("{name}:x:1000:\n"));
            rootfs.insert("home".into(), Node::Dir { mode: 0o755 });
            rootfs.insert(format!("home/{name}"), Node::Dir { mode: 0o750 });
            Some(output(0, "", ""))
        }
        "groupadd" => {
            append_node(rootfs, "etc/group", &format!("{}:x:27:\n", cmd.argv.last()?));
            Some(output(0, "", ""))
        }
        "ssh-keygen" => {
            put_node(rootfs, "etc/ssh/ssh_host_ed25519_key", "NEW", 0o600);
            put_node(rootfs, "etc/ssh/ssh_host_ed25519_key.pub", "ssh-ed25519 NEWKEY root@buildhost\n", 0o644);
            Some(output(0, "", ""))
        }
        _ => None,
    }
}

/// An ssh public key, as `--auth-key` files hold them.
pub const PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host\n";

impl FakeHost {
    /// A host that can build a debootstrap rootfs: debootstrap and unshare,
    /// the debootstrap scripts named in `scripts`, LXC's `common.conf` and
    /// `<lxc_name>.common.conf`, the distro's `keyring` (text `archive
    /// keys`), a fixture keyring `/fixture.gpg` (`fixture keys`), an
    /// `--auth-key` file `/key.pub` ([`PUBLIC_KEY`]), the time zone
    /// `Etc/UTC`, apt 2.6 in the rootfs, and [`debootstrap_responder`].
    pub fn debootstrap_host(scripts: &[&str], lxc_name: &str, keyring: &Keyring) -> Self {
        let mut fake = Self::sealed();
        for file in ["/usr/sbin/debootstrap", "/usr/bin/unshare", "/usr/share/lxc/config/common.conf"] {
            fake.put_host(file, "");
        }
        fake.put_host(&format!("/usr/share/lxc/config/{lxc_name}.common.conf"), "");
        for script in scripts {
            fake.put_host(&format!("/usr/share/debootstrap/scripts/{script}"), "");
        }
        fake.put_host(keyring.path, "archive keys");
        fake.put_host("/fixture.gpg", "fixture keys");
        fake.put_host("/key.pub", PUBLIC_KEY);
        fake.put_host("/etc/timezone", "Etc/UTC\n");
        fake.on("apt-get --version", output(0, "apt 2.6.1 (amd64)\n", ""));
        fake.responder = Some(Box::new(debootstrap_responder));
        fake
    }

    /// The debootstrap run: its place and its argv without the `unshare`
    /// prefix. Panics when debootstrap did not run.
    pub fn debootstrap_run(&self) -> (RunPlace, Vec<String>) {
        let run = self
            .commands
            .iter()
            .find(|c| c.argv.iter().any(|a| a.ends_with("/debootstrap")))
            .unwrap_or_else(|| panic!("debootstrap did not run: {:?}", self.lines()));
        let start = run.argv.iter().position(|a| a == "--").map_or(0, |i| i + 1);
        (run.place, run.argv[start..].to_vec())
    }
}

/// A minimal ELF header and program header table (a `PT_LOAD`, then a
/// `PT_INTERP` with `interp`, else a `PT_PHDR`), 64- or 32-bit, either byte
/// order: a stand-in for a static or dynamic program.
pub fn elf(wide: bool, big_endian: bool, interp: bool) -> Vec<u8> {
    let put = |data: &mut Vec<u8>, at: usize, len: usize, value: u64| {
        for i in 0..len {
            let shift = if big_endian { 8 * (len - 1 - i) } else { 8 * i };
            data[at + i] = (value >> shift) as u8;
        }
    };
    let (phoff, entsize) = if wide { (64, 56) } else { (52, 32) };
    let mut data = vec![0u8; phoff + 2 * entsize];
    data[..4].copy_from_slice(b"\x7fELF");
    data[4] = if wide { 2 } else { 1 };
    data[5] = if big_endian { 2 } else { 1 };
    let (off_at, off_len, ent_at, num_at) = if wide { (0x20, 8, 0x36, 0x38) } else { (0x1c, 4, 0x2a, 0x2c) };
    put(&mut data, off_at, off_len, phoff as u64);
    put(&mut data, ent_at, 2, entsize as u64);
    put(&mut data, num_at, 2, 2);
    put(&mut data, phoff, 4, 1);
    put(&mut data, phoff + entsize, 4, if interp { 3 } else { 6 });
    data
}

/// The archive of "Testix", a made-up debootstrap distro for tests of the
/// shared steps: keyring `/usr/share/keyrings/testix.gpg`, minbase, `main`
/// (sources: `main extra`), include `ssh`, a security suite and `-updates`.
pub fn testix_archive() -> Archive {
    Archive {
        distro: "Testix",
        lxc_config_name: "testix",
        cache_format: "testix-v1",
        keyring: Keyring { path: "/usr/share/keyrings/testix.gpg", package: "testix-keyring" },
        fallback_script: "sid",
        variant: Some("minbase".into()),
        components: vec!["main".into()],
        include: vec!["ssh".into()],
        sources_components: vec!["main".into(), "extra".into()],
        security_suite: Some("one-security".into()),
        updates: true,
        network: NetworkStyle::Ifupdown,
        locale_gen: LocaleGen::LocaleGenFile,
        multiarch: false,
    }
}

/// The plan of a Testix create: release `one` (version 1), amd64 or
/// arm64, default mirrors `http://a/testix` and `http://s/testix`.
pub fn testix_plan(ctx: &HookContext) -> Result<DebPlan, PluginError> {
    let table = ReleaseTable::parse_csv("version,codename,series,release\n1,One,one,2020-01-01\n", "testix")
        .map_err(PluginError::failed)?;
    let boot = BootstrapOptions::from_context(ctx, &["amd64", "arm64"])?;
    let defaults = Mirrors::new("http://a/testix", "http://s/testix");
    DebPlan::new(ctx, testix_archive(), table.releases()[0].clone(), boot, defaults, "2026-01-01".into())
}

/// A hook context for `distro` and container `name` with the given options
/// (`(long, values)`; a flag has no values) on an amd64 Debian bookworm host.
pub fn context(distro: &str, name: &str, options: &[(&str, &[&str])]) -> HookContext {
    HookContext {
        distro: distro.into(),
        name: name.into(),
        container_path: format!("/var/lib/lxc/{name}").into(),
        rootfs_path: format!("/var/lib/lxc/{name}/rootfs").into(),
        options: options
            .iter()
            .map(|(long, values)| OptionValue {
                long: (*long).into(),
                values: values.iter().map(|v| RString::from(*v)).collect(),
            })
            .collect(),
        facts: HostFacts {
            arch: "amd64".into(),
            distro_id: "debian".into(),
            distro_codename: "bookworm".into(),
            lxc_version: "5.0.2".into(),
            mapped_uid: RNone,
            mapped_gid: RNone,
            in_user_namespace: false,
        },
    }
}

impl HostApi for FakeHost {
    fn run(&mut self, command: &CommandSpec) -> RResult<CommandOutput, PluginError> {
        let recorded = RecordedCommand {
            argv: command.argv.iter().map(|a| a.to_string()).collect(),
            env: command.env.iter().map(|t| (t.0.to_string(), t.1.to_string())).collect(),
            stdin: command.stdin.to_vec(),
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
        RResult::ROk(out)
    }

    fn read_file(&mut self, path: RStr<'_>) -> RResult<RVec<u8>, PluginError> {
        match norm(&path).map(|p| self.rootfs.get(&p)) {
            Ok(Some(Node::File { data, .. })) => RResult::ROk(data.clone().into()),
            _ => err(format!("read {path}: no such file")),
        }
    }

    fn write_file(&mut self, path: RStr<'_>, data: RSlice<'_, u8>, mode: u32) -> RResult<(), PluginError> {
        let path = match norm(&path) {
            Ok(p) => p,
            Err(e) => return err(e),
        };
        if !self.parent_is_dir(&path) {
            return err(format!("write {path}: parent missing"));
        }
        let mode = match self.rootfs.get(&path) {
            Some(Node::File { mode, .. }) => *mode,
            Some(other) => return err(format!("write {path}: not a file: {other:?}")),
            None => mode,
        };
        self.rootfs.insert(path, Node::File { data: data.to_vec(), mode });
        RResult::ROk(())
    }

    fn append_file(&mut self, path: RStr<'_>, data: RSlice<'_, u8>) -> RResult<(), PluginError> {
        let path = match norm(&path) {
            Ok(p) => p,
            Err(e) => return err(e),
        };
        if !self.parent_is_dir(&path) {
            return err(format!("append {path}: parent missing"));
        }
        match self.rootfs.get_mut(&path) {
            Some(Node::File { data: existing, .. }) => existing.extend_from_slice(&data),
            Some(other) => return err(format!("append {path}: not a file: {other:?}")),
            None => {
                self.rootfs.insert(path, Node::File { data: data.to_vec(), mode: 0o644 });
            }
        }
        RResult::ROk(())
    }

    fn mkdir_all(&mut self, path: RStr<'_>, mode: u32) -> RResult<(), PluginError> {
        let path = match norm(&path) {
            Ok(p) => p,
            Err(e) => return err(e),
        };
        let mut at = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(part);
            match self.rootfs.get(&at) {
                None => {
                    self.rootfs.insert(at.clone(), Node::Dir { mode });
                }
                Some(Node::Dir { .. }) => {}
                Some(other) => return err(format!("mkdir {at}: exists as {other:?}")),
            }
        }
        RResult::ROk(())
    }

    fn symlink(&mut self, target: RStr<'_>, link: RStr<'_>) -> RResult<(), PluginError> {
        let link = match norm(&link) {
            Ok(p) => p,
            Err(e) => return err(e),
        };
        if !self.parent_is_dir(&link) || self.rootfs.contains_key(&link) {
            return err(format!("symlink {link}: parent missing or link exists"));
        }
        self.rootfs.insert(link, Node::Symlink { target: target.to_string() });
        RResult::ROk(())
    }

    fn hard_link(&mut self, existing: RStr<'_>, link: RStr<'_>) -> RResult<(), PluginError> {
        let (Ok(existing), Ok(link)) = (norm(&existing), norm(&link)) else {
            return err("hard link: bad path".into());
        };
        match self.rootfs.get(&existing) {
            Some(node @ Node::File { .. }) if self.parent_is_dir(&link) && !self.rootfs.contains_key(&link) => {
                let node = node.clone();
                self.rootfs.insert(link, node);
                RResult::ROk(())
            }
            _ => err(format!("hard link {link} -> {existing}: bad source or target")),
        }
    }

    fn set_mode(&mut self, path: RStr<'_>, new: u32) -> RResult<(), PluginError> {
        match norm(&path).map(|p| self.rootfs.get_mut(&p)) {
            Ok(Some(Node::File { mode, .. } | Node::Dir { mode })) => {
                *mode = new;
                RResult::ROk(())
            }
            _ => err(format!("chmod {path}: missing or a symlink")),
        }
    }

    fn set_owner(&mut self, path: RStr<'_>, uid: u32, gid: u32) -> RResult<(), PluginError> {
        match norm(&path) {
            Ok(p) if matches!(self.rootfs.get(&p), Some(Node::File { .. } | Node::Dir { .. })) => {
                self.owners.insert(p, (uid, gid));
                RResult::ROk(())
            }
            _ => err(format!("chown {path}: missing or a symlink")),
        }
    }

    fn remove(&mut self, path: RStr<'_>) -> RResult<(), PluginError> {
        let path = match norm(&path) {
            Ok(p) if !p.is_empty() => p,
            _ => return err(format!("remove {path}: refusing to remove the root")),
        };
        let below = format!("{path}/");
        self.rootfs.retain(|p, _| p != &path && !p.starts_with(&below));
        RResult::ROk(())
    }

    fn file_kind(&mut self, path: RStr<'_>) -> RResult<ROption<FileKind>, PluginError> {
        let path = match norm(&path) {
            Ok(p) => p,
            Err(e) => return err(e),
        };
        if path.is_empty() {
            return RResult::ROk(ROption::RSome(FileKind::Dir));
        }
        let kind = self.rootfs.get(&path).map(|node| match node {
            Node::Dir { .. } => FileKind::Dir,
            Node::File { .. } => FileKind::File,
            Node::Symlink { .. } => FileKind::Symlink,
        });
        RResult::ROk(kind.into())
    }

    fn copy_from_host(&mut self, host_path: RStr<'_>, path: RStr<'_>, mode: u32) -> RResult<(), PluginError> {
        let Some(data) = self.host_files.get(host_path.as_str()).cloned() else {
            return err(format!("copy {host_path}: no such host file"));
        };
        let path = match norm(&path) {
            Ok(p) => p,
            Err(e) => return err(e),
        };
        if !self.parent_is_dir(&path) {
            return err(format!("copy to {path}: parent missing"));
        }
        self.rootfs.insert(path, Node::File { data, mode });
        RResult::ROk(())
    }

    fn read_host_file(&mut self, host_path: RStr<'_>) -> RResult<RVec<u8>, PluginError> {
        match self.host_files.get(host_path.as_str()) {
            Some(data) => RResult::ROk(data.clone().into()),
            None => err(format!("cannot read {host_path}: No such file or directory (os error 2)")),
        }
    }

    fn host_file_kind(&mut self, host_path: RStr<'_>) -> RResult<ROption<FileKind>, PluginError> {
        let kind = if self.host_files.contains_key(host_path.as_str()) {
            Some(FileKind::File)
        } else if self.host_dirs.contains(host_path.as_str()) {
            Some(FileKind::Dir)
        } else {
            None
        };
        RResult::ROk(kind.into())
    }

    fn render(&mut self, name: RStr<'_>, source: RStr<'_>, context_json: RStr<'_>) -> RResult<RString, PluginError> {
        let context: Value = match serde_json::from_str(context_json.as_str()) {
            Ok(v) => v,
            Err(e) => return err(format!("template {name}: bad context: {e}")),
        };
        match mini_render(source.as_str(), &context) {
            Ok(text) => RResult::ROk(text.into()),
            Err(e) => err(format!("template {name}: {e}")),
        }
    }

    fn config(&mut self, entry: &ConfigEntry) -> RResult<(), PluginError> {
        if !entry.key.starts_with("lxc.") || entry.value.contains('\n') {
            return err(format!("config entry '{} = {}' is not a valid LXC entry", entry.key, entry.value));
        }
        self.config.push((entry.key.to_string(), entry.value.to_string()));
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

    fn log(&mut self, level: LogLevel, message: RStr<'_>) {
        self.logs.push((level, message.to_string()));
    }

    fn progress(&mut self, step: RStr<'_>) {
        self.logs.push((LogLevel::Info, step.to_string()));
    }
}

/// Renders the minijinja subset described in the module docs.
pub fn mini_render(source: &str, context: &Value) -> Result<String, String> {
    let lookup = |name: &str| -> Result<&Value, String> {
        context.get(name).ok_or_else(|| format!("undefined value '{name}' (strict mode)"))
    };
    let truthy = |v: &Value| match v {
        Value::Null | Value::Bool(false) => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Number(n) => n.as_f64() != Some(0.0),
        _ => true,
    };
    let mut out = String::new();
    let mut rest = source;
    // (emitting in the current branch, inside an if)
    let mut emitting = true;
    let mut in_if = false;
    let mut branch_taken = false;
    while let Some(start) = rest.find('{') {
        let (before, tail) = rest.split_at(start);
        let trims_before = tail.starts_with("{%-") || tail.starts_with("{{-");
        let before = if trims_before { before.trim_end() } else { before };
        if emitting {
            out.push_str(before);
        }
        if let Some(expr) = tail.strip_prefix("{{") {
            let end = expr.find("}}").ok_or("unclosed {{")?;
            let var = expr[..end].trim_matches('-').trim();
            if emitting {
                match lookup(var)? {
                    Value::String(s) => out.push_str(s),
                    Value::Null => out.push_str("none"),
                    other => out.push_str(&other.to_string()),
                }
            }
            rest = &expr[end + 2..];
        } else if let Some(stmt) = tail.strip_prefix("{%") {
            let end = stmt.find("%}").ok_or("unclosed {%")?;
            let inner = stmt[..end].trim_start_matches('-');
            let (body, trim_after) = match inner.strip_suffix('-') {
                Some(body) => (body.trim(), true),
                None => (inner.trim(), false),
            };
            if let Some(cond) = body.strip_prefix("if ") {
                if in_if {
                    return Err("nested if is not supported by the fake renderer".into());
                }
                let cond = cond.trim();
                let value = match cond.strip_prefix("not ") {
                    Some(var) => !truthy(lookup(var.trim())?),
                    None => truthy(lookup(cond)?),
                };
                in_if = true;
                emitting = value;
                branch_taken = value;
            } else if body == "else" {
                emitting = in_if && !branch_taken;
            } else if body == "endif" {
                in_if = false;
                emitting = true;
            } else {
                return Err(format!("unsupported statement {body}"));
            }
            rest = &stmt[end + 2..];
            if trim_after {
                rest = rest.trim_start();
            }
        } else {
            if emitting {
                out.push('{');
            }
            rest = &tail[1..];
        }
    }
    if in_if {
        return Err("unclosed if".into());
    }
    if emitting {
        out.push_str(rest);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lxc_tmpl_plugin_api::serde_json::json;

    #[test]
    fn renders_like_minijinja() {
        let ctx = json!({ "a": "X", "t": true, "f": false, "list": [] });
        assert_eq!(mini_render("1 {{ a }}\n", &ctx).unwrap(), "1 X\n", "trailing newline kept");
        assert_eq!(
            mini_render("{% if t %}yes{% else %}no{% endif %} {% if f %}yes{% else %}no{% endif %}", &ctx).unwrap(),
            "yes no"
        );
        assert_eq!(mini_render("a\n{% if not list -%}\nb\n{%- endif %}\nc", &ctx).unwrap(), "a\nb\nc");
        assert!(mini_render("{{ missing }}", &ctx).unwrap_err().contains("undefined"));
    }

    #[test]
    fn paths_normalise() {
        assert_eq!(norm("/etc//hostname/").unwrap(), "etc/hostname");
        assert_eq!(norm("./etc/./x").unwrap(), "etc/x");
        assert!(norm("etc/../x").is_err());
    }
}
