//! Hook-level tests of the sshd plugin against a fake [`Host`].
//!
//! The rootfs is an in-memory map of nodes that enforces what the real host
//! would (parents must exist, no overwriting a link); templates are rendered
//! by minijinja with the host's settings. The host side is either the real
//! machine (real `readlink`, `ssh-keygen`, `/etc/passwd`; needs
//! openssh-server, a CI dependency) or a sealed set of files, dirs, top-level
//! symlinks and scripted commands.

use std::collections::{BTreeMap, BTreeSet};

use lxc_tmpl_plugin_api::{
    CommandOutput, CommandSpec, ConfigEntry, Distro, ErrorKind, FileKind, HookContext, Host, HostApi, HostApi_TO,
    HostFacts, LogLevel, OptionValue, PluginError,
    abi_stable::{
        sabi_trait::TD_Opaque,
        sabi_types::RMut,
        std_types::{RNone, ROption, RResult, RSlice, RSome, RStr, RString, RVec},
    },
};

use crate::{HostDir, Sshd, config_entries, layout::Layout, parse_openssh_version, parse_privsep_user};

/// A real ed25519 public key (its private half was thrown away).
const PUBKEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICup30W9BaE/v/BKcdPRaPCEZCTD0gzPVu8VRywBrtBq alice@example\n";

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Dir { mode: u32 },
    File { data: Vec<u8>, mode: u32 },
    Symlink { target: String },
}

/// The host side when it is not the real machine.
#[derive(Debug, Default)]
struct Sealed {
    files: BTreeMap<String, Vec<u8>>,
    dirs: BTreeSet<String>,
    /// Top-level symlinks (`/bin` -> `usr/bin`).
    links: BTreeMap<String, String>,
    /// What `sshd -V` prints on stderr.
    sshd_version: String,
    made: usize,
}

impl Sealed {
    /// A Debian-like host: merged /usr, sshd, init.lxc, ssh-keygen.
    fn debian() -> Sealed {
        let mut sealed =
            Sealed { sshd_version: "OpenSSH_9.2p1 Debian-2, OpenSSL 3.0.11\n".into(), ..Sealed::default() };
        for dir in ["/usr", "/etc/alternatives", "/tmp"] {
            sealed.dirs.insert(dir.into());
        }
        for (link, target) in [("/bin", "usr/bin"), ("/sbin", "usr/sbin"), ("/lib", "usr/lib"), ("/lib64", "usr/lib64")]
        {
            sealed.links.insert(link.into(), target.into());
            sealed.dirs.insert(format!("/{target}"));
        }
        for file in [
            "/usr/sbin/sshd",
            "/usr/sbin/init.lxc",
            "/usr/bin/ssh-keygen",
            "/usr/bin/bash",
            "/usr/sbin/ip",
            "/usr/lib/openssh/sftp-server",
            "/usr/lib/os-release",
            "/usr/share/lxc/config/common.conf",
            "/etc/ssh/moduli",
        ] {
            sealed.files.insert(file.into(), format!("contents of {file}").into_bytes());
        }
        sealed.files.insert(
            "/etc/passwd".into(),
            b"root:x:0:0:root:/root:/bin/bash\nsshd:x:103:65534::/run/sshd:/usr/sbin/nologin\n".to_vec(),
        );
        sealed.files.insert("/etc/group".into(), b"root:x:0:\nnogroup:x:65534:\n".to_vec());
        sealed.files.insert("/home/alice/.ssh/id_ed25519.pub".into(), PUBKEY.as_bytes().to_vec());
        sealed
    }

    /// Resolves top-level symlinks, as the kernel would on the host.
    fn resolve(&self, path: &str) -> String {
        for (link, target) in &self.links {
            if path == link || path.starts_with(&format!("{link}/")) {
                return format!("/{target}{}", &path[link.len()..]);
            }
        }
        path.to_owned()
    }

    fn run(&mut self, argv: &[String], stdin: &[u8]) -> CommandOutput {
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        match args.as_slice() {
            ["readlink", path] => match self.links.get(*path) {
                Some(target) => output(0, &format!("{target}\n"), ""),
                None => output(1, "", ""),
            },
            ["readlink", "-f", path] => output(0, &format!("{}\n", self.resolve(path)), ""),
            [sshd, "-V"] if self.files.contains_key(&self.resolve(sshd)) => output(0, "", &self.sshd_version.clone()),
            ["mktemp", "-d", "-t", template] => {
                self.made += 1;
                let dir = format!("/tmp/{}", template.replace("XXXXXXXX", &format!("fake{}", self.made)));
                self.dirs.insert(dir.clone());
                output(0, &format!("{dir}\n"), "")
            }
            [keygen, "-l", "-f", "-"] if keygen.ends_with("ssh-keygen") => {
                let key = String::from_utf8_lossy(stdin);
                output(0, &format!("256 SHA256:fingerprint-of-{} (FAKE)\n", key.trim()), "")
            }
            [keygen, "-q", "-t", kind, rest @ ..] if keygen.ends_with("ssh-keygen") => {
                let file = rest.last().unwrap().to_string();
                assert!(self.dirs.contains(file.rsplit_once('/').unwrap().0), "keygen outside the temp dir: {file}");
                self.made += 1;
                let n = self.made;
                self.files.insert(file.clone(), format!("PRIVATE {kind} {n}\n").into_bytes());
                self.files.insert(format!("{file}.pub"), format!("ssh-{kind} PUBLIC{n} root@x\n").into_bytes());
                output(0, "", "")
            }
            ["rm", "-rf", "--", dir] => {
                self.dirs.remove(*dir);
                self.files.retain(|f, _| !f.starts_with(&format!("{dir}/")));
                output(0, "", "")
            }
            _ => output(127, "", "not found"),
        }
    }
}

#[derive(Debug, Default)]
struct FakeHost {
    rootfs: BTreeMap<String, Node>,
    /// `None`: host files and commands are the real machine's.
    sealed: Option<Sealed>,
    commands: Vec<Vec<String>>,
    config: Vec<(String, String)>,
    logs: Vec<(LogLevel, String)>,
    /// The base config `config_value` answers from.
    base_config: BTreeMap<String, String>,
}

fn err<T>(message: String) -> RResult<T, PluginError> {
    RResult::RErr(PluginError::new(ErrorKind::HOST, message))
}

fn norm(path: RStr<'_>) -> String {
    path.as_str().trim_start_matches('/').trim_end_matches('/').to_owned()
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

fn output(status: i32, stdout: &str, stderr: &str) -> CommandOutput {
    CommandOutput { status, stdout: stdout.as_bytes().into(), stderr: stderr.as_bytes().into() }
}

impl FakeHost {
    fn real() -> Self {
        Self::default()
    }

    fn sealed(sealed: Sealed) -> Self {
        Self { sealed: Some(sealed), ..Self::default() }
    }

    fn parent_is_dir(&self, path: &str) -> bool {
        let parent = parent_of(path);
        parent.is_empty() || matches!(self.rootfs.get(parent), Some(Node::Dir { .. }))
    }

    fn text(&self, path: &str) -> String {
        match self.rootfs.get(path) {
            Some(Node::File { data, .. }) => String::from_utf8(data.clone()).unwrap(),
            other => panic!("{path} is not a file: {other:?}"),
        }
    }

    fn bytes(&self, path: &str) -> Vec<u8> {
        match self.rootfs.get(path) {
            Some(Node::File { data, .. }) => data.clone(),
            other => panic!("{path} is not a file: {other:?}"),
        }
    }

    fn mode(&self, path: &str) -> u32 {
        match self.rootfs.get(path) {
            Some(Node::File { mode, .. } | Node::Dir { mode }) => *mode,
            other => panic!("{path} has no mode: {other:?}"),
        }
    }

    fn logged(&self, level: LogLevel) -> Vec<&str> {
        self.logs.iter().filter(|(l, _)| *l == level).map(|(_, m)| m.as_str()).collect()
    }

    fn config_values(&self, key: &str) -> Vec<&str> {
        self.config.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }
}

impl HostApi for FakeHost {
    fn run(&mut self, command: &CommandSpec) -> RResult<CommandOutput, PluginError> {
        let argv: Vec<String> = command.argv.iter().map(|a| a.to_string()).collect();
        self.commands.push(argv.clone());
        let out = match &mut self.sealed {
            Some(sealed) => sealed.run(&argv, &command.stdin),
            None => {
                use std::io::Write;
                let child = std::process::Command::new(&argv[0])
                    .args(&argv[1..])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn();
                let mut child = match child {
                    Ok(child) => child,
                    Err(e) => return err(format!("cannot run {argv:?}: {e}")),
                };
                let _ = child.stdin.take().unwrap().write_all(&command.stdin);
                let o = child.wait_with_output().unwrap();
                CommandOutput {
                    status: o.status.code().unwrap_or(128),
                    stdout: o.stdout.into(),
                    stderr: o.stderr.into(),
                }
            }
        };
        if command.check && out.status != 0 {
            return RResult::RErr(PluginError::failed(format!("{argv:?} exited {}", out.status)));
        }
        RResult::ROk(out)
    }

    fn read_file(&mut self, path: RStr<'_>) -> RResult<RVec<u8>, PluginError> {
        match self.rootfs.get(&norm(path)) {
            Some(Node::File { data, .. }) => RResult::ROk(data.clone().into()),
            _ => err(format!("no file {path}")),
        }
    }

    fn write_file(&mut self, path: RStr<'_>, data: RSlice<'_, u8>, mode: u32) -> RResult<(), PluginError> {
        let path = norm(path);
        if !self.parent_is_dir(&path) {
            return err(format!("write {path}: parent missing"));
        }
        if matches!(self.rootfs.get(&path), Some(Node::Dir { .. } | Node::Symlink { .. })) {
            return err(format!("write {path}: not a file"));
        }
        // Like open(O_CREAT): the mode applies only to a new file.
        let mode = match self.rootfs.get(&path) {
            Some(Node::File { mode, .. }) => *mode,
            _ => mode,
        };
        self.rootfs.insert(path, Node::File { data: data.to_vec(), mode });
        RResult::ROk(())
    }

    fn append_file(&mut self, path: RStr<'_>, _data: RSlice<'_, u8>) -> RResult<(), PluginError> {
        err(format!("append {path}: the sshd plugin writes whole files"))
    }

    fn mkdir_all(&mut self, path: RStr<'_>, mode: u32) -> RResult<(), PluginError> {
        let path = norm(path);
        let mut at = String::new();
        for part in path.split('/') {
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
        let link = norm(link);
        if !self.parent_is_dir(&link) || self.rootfs.contains_key(&link) {
            return err(format!("symlink {link}: parent missing or link exists"));
        }
        self.rootfs.insert(link, Node::Symlink { target: target.to_string() });
        RResult::ROk(())
    }

    fn hard_link(&mut self, _existing: RStr<'_>, link: RStr<'_>) -> RResult<(), PluginError> {
        err(format!("hard link {link}: not expected from the sshd plugin"))
    }

    fn set_mode(&mut self, path: RStr<'_>, new: u32) -> RResult<(), PluginError> {
        match self.rootfs.get_mut(&norm(path)) {
            Some(Node::File { mode, .. } | Node::Dir { mode }) => {
                *mode = new;
                RResult::ROk(())
            }
            _ => err(format!("chmod {path}: missing or a symlink")),
        }
    }

    fn set_owner(&mut self, path: RStr<'_>, _uid: u32, _gid: u32) -> RResult<(), PluginError> {
        err(format!("chown {path}: not expected from the sshd plugin (root makes root's files)"))
    }

    fn remove(&mut self, path: RStr<'_>) -> RResult<(), PluginError> {
        let path = norm(path);
        self.rootfs.retain(|p, _| p != &path && !p.starts_with(&format!("{path}/")));
        RResult::ROk(())
    }

    fn file_kind(&mut self, path: RStr<'_>) -> RResult<ROption<FileKind>, PluginError> {
        let kind = self.rootfs.get(&norm(path)).map(|node| match node {
            Node::Dir { .. } => FileKind::Dir,
            Node::File { .. } => FileKind::File,
            Node::Symlink { .. } => FileKind::Symlink,
        });
        RResult::ROk(kind.into())
    }

    fn copy_from_host(&mut self, host_path: RStr<'_>, path: RStr<'_>, mode: u32) -> RResult<(), PluginError> {
        let data = match self.read_host_file(host_path) {
            RResult::ROk(data) => data,
            RResult::RErr(e) => return RResult::RErr(e),
        };
        let path = norm(path);
        if !self.parent_is_dir(&path) {
            return err(format!("copy to {path}: parent missing"));
        }
        self.rootfs.insert(path, Node::File { data: data.into_vec(), mode });
        RResult::ROk(())
    }

    fn read_host_file(&mut self, host_path: RStr<'_>) -> RResult<RVec<u8>, PluginError> {
        let found = match &self.sealed {
            Some(sealed) => sealed.files.get(&sealed.resolve(host_path.as_str())).cloned(),
            None => std::fs::read(host_path.as_str()).ok(),
        };
        match found {
            Some(data) => RResult::ROk(data.into()),
            None => err(format!("cannot read {host_path}: No such file or directory")),
        }
    }

    fn host_file_kind(&mut self, host_path: RStr<'_>) -> RResult<ROption<FileKind>, PluginError> {
        let kind = match &self.sealed {
            Some(sealed) => {
                let path = sealed.resolve(host_path.as_str());
                if sealed.files.contains_key(&path) {
                    Some(FileKind::File)
                } else if sealed.dirs.contains(&path) {
                    Some(FileKind::Dir)
                } else {
                    None
                }
            }
            None => std::fs::metadata(host_path.as_str()).ok().map(|m| {
                if m.is_file() {
                    FileKind::File
                } else if m.is_dir() {
                    FileKind::Dir
                } else {
                    FileKind::Other
                }
            }),
        };
        RResult::ROk(kind.into())
    }

    fn render(&mut self, name: RStr<'_>, source: RStr<'_>, context_json: RStr<'_>) -> RResult<RString, PluginError> {
        // As core/host/src/render.rs does it.
        let context: lxc_tmpl_plugin_api::serde_json::Value =
            lxc_tmpl_plugin_api::serde_json::from_str(context_json.as_str()).unwrap();
        let mut env = minijinja::Environment::new();
        env.set_keep_trailing_newline(true);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.add_template(name.as_str(), source.as_str()).unwrap();
        match env.get_template(name.as_str()).unwrap().render(minijinja::Value::from_serialize(&context)) {
            Ok(text) => RResult::ROk(text.into()),
            Err(e) => err(format!("template {name}: {e}")),
        }
    }

    fn config(&mut self, entry: &ConfigEntry) -> RResult<(), PluginError> {
        self.config.push((entry.key.to_string(), entry.value.to_string()));
        RResult::ROk(())
    }

    fn config_value(&mut self, key: RStr<'_>) -> ROption<RString> {
        self.base_config.get(key.as_str()).map(|v| RString::from(v.as_str())).into()
    }

    fn root_path(&mut self) -> RResult<RString, PluginError> {
        RResult::ROk(RString::from("/fake-root"))
    }

    fn log(&mut self, level: LogLevel, message: RStr<'_>) {
        self.logs.push((level, message.to_string()));
    }

    fn progress(&mut self, step: RStr<'_>) {
        self.logs.push((LogLevel::Info, step.to_string()));
    }
}

fn context(name: &str, options: &[(&str, &str)]) -> HookContext {
    let options: RVec<OptionValue> = options
        .iter()
        .map(|(long, value)| OptionValue { long: (*long).into(), values: vec![RString::from(*value)].into() })
        .collect();
    HookContext {
        distro: "sshd".into(),
        name: name.into(),
        container_path: format!("/var/lib/lxc/{name}").into(),
        rootfs_path: format!("/var/lib/lxc/{name}/rootfs").into(),
        options,
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

/// Calls `f` with a [`Host`] backed by `fake`.
fn with_host<R>(fake: &mut FakeHost, f: impl FnOnce(&mut Host<'_>) -> R) -> R {
    let mut host = Host::new(HostApi_TO::from_ptr(RMut::new(fake), TD_Opaque));
    f(&mut host)
}

/// Runs the hooks in the host's order, as a create does.
fn create(fake: &mut FakeHost, ctx: &HookContext) -> Result<Option<String>, PluginError> {
    let plugin = Sshd;
    with_host(fake, |host| {
        plugin.validate(ctx, host)?;
        assert_eq!(plugin.cache_key(ctx, host)?, None, "sshd is never cached");
        plugin.download(ctx, host)?;
        plugin.sources_list(ctx, host)?;
        plugin.configure(ctx, host)?;
        plugin.config(ctx, host)?;
        plugin.trim(ctx, host)?;
        plugin.post_process(ctx, host)?;
        plugin.finalize(ctx, host)?;
        plugin.message(ctx, host)
    })
}

fn assert_no_network_or_apparmor(entries: &[(String, String)]) {
    for (key, value) in entries {
        assert!(!key.starts_with("lxc.net") && !key.starts_with("lxc.network"), "{key} = {value}");
        assert!(!key.starts_with("lxc.apparmor") && !key.starts_with("lxc.aa_"), "{key} = {value}");
    }
}

/// The settings every sshd_config must have, whatever the host.
fn assert_keys_only(config: &str) {
    for line in [
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "PermitEmptyPasswords no",
        "PubkeyAuthentication yes",
        "UsePAM no",
        "AuthorizedKeysFile .ssh/authorized_keys",
        "PidFile /run/sshd.pid",
        "HostKey /etc/ssh/ssh_host_ed25519_key",
        "HostKey /etc/ssh/ssh_host_rsa_key",
        "ListenAddress 0.0.0.0",
        "ListenAddress ::",
    ] {
        assert!(config.lines().any(|l| l == line), "no `{line}` in:\n{config}");
    }
    assert!(!config.to_ascii_lowercase().contains("dsa"), "{config}");
    assert!(!config.contains("PermitRootLogin yes") && !config.contains("PermitEmptyPasswords yes"), "{config}");
    assert!(!config.contains("\n\n\n"), "stray blank lines:\n{config}");
}

#[test]
fn manifest_describes_the_plugin_and_its_options() {
    let manifest = Sshd.manifest();
    assert_eq!(manifest.name, "sshd");
    assert_eq!(manifest.version, env!("CARGO_PKG_VERSION"));
    assert!(manifest.releases.is_empty());
    let auth = manifest.options.iter().find(|o| o.long == "auth-key").unwrap();
    assert_eq!(auth.short, RSome(b'S'));
    assert!(auth.takes_value() && auth.repeatable && auth.default.is_none());
    let sshd = manifest.options.iter().find(|o| o.long == "sshd-path").unwrap();
    assert_eq!(sshd.default, RSome("/usr/sbin/sshd".into()));
}

/// The whole create against this very machine: its layout, its sshd, its
/// ssh-keygen (openssh-server and lxc are CI dependencies: a missing one fails).
#[test]
fn creates_a_container_from_the_host_sshd() {
    let scratch = std::env::temp_dir().join(format!("lxc-tmpl-sshd-unit-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let key = scratch.join("id.pub");
    std::fs::write(&key, PUBKEY).unwrap();
    let key = key.display().to_string();

    let mut fake = FakeHost::real();
    let ctx = context("ssh1", &[("auth-key", &key)]);
    let result = create(&mut fake, &ctx);
    std::fs::remove_dir_all(&scratch).unwrap();
    let message = result.expect("create (needs openssh-server and lxc on this machine)").unwrap();
    let fs = &fake.rootfs;

    // Tree and modes.
    assert_eq!(fake.mode("tmp"), 0o1777);
    assert_eq!(fake.mode("root"), 0o700);
    assert_eq!(fake.mode("root/.ssh"), 0o700);
    assert_eq!(fs["var/run"], Node::Symlink { target: "/run".into() });
    assert_eq!(fake.mode("usr"), 0o755);

    // The host's dirs: symlinks where the host has them, mount points and
    // read-only binds for its real dirs.
    let binds = fake.config_values("lxc.mount.entry");
    for dir in crate::HOST_DIRS {
        let host_path = std::path::Path::new("/").join(dir);
        let bind = format!("/{dir} {dir} none ro,bind,create=dir 0 0");
        match std::fs::symlink_metadata(&host_path) {
            Ok(meta) if meta.file_type().is_symlink() && host_path.is_dir() => {
                let target = std::fs::read_link(&host_path).unwrap().display().to_string();
                assert_eq!(fs[*dir], Node::Symlink { target }, "{dir}");
                assert!(!binds.contains(&bind.as_str()), "{dir} is a symlink on the host: {binds:?}");
            }
            Ok(meta) if meta.is_dir() => {
                assert_eq!(fs[*dir], Node::Dir { mode: 0o755 }, "{dir}");
                assert!(binds.contains(&bind.as_str()), "{bind} missing: {binds:?}");
            }
            _ => assert!(!fs.contains_key(*dir), "{dir} is not on the host"),
        }
    }

    // Keys: per container, private ones private, no DSA, temp dir gone.
    for kind in ["ed25519", "rsa"] {
        let private = format!("etc/ssh/ssh_host_{kind}_key");
        assert_eq!(fake.mode(&private), 0o600, "{private}");
        assert_eq!(fake.mode(&format!("{private}.pub")), 0o644);
        assert!(fake.text(&private).contains("PRIVATE KEY"), "{private}");
        assert!(fake.text(&format!("{private}.pub")).trim_end().ends_with(" root@ssh1"), "{private}.pub");
    }
    assert!(!fs.keys().any(|p| p.contains("dsa")), "{:?}", fs.keys().collect::<Vec<_>>());
    let mktemp = fake.commands.iter().position(|c| c[0] == "mktemp").expect("mktemp ran");
    let rm = fake.commands.iter().find(|c| c[0] == "rm").expect("rm ran");
    let tmp = &rm[3];
    assert!(tmp.contains("/lxc-tmpl-sshd.") && !std::path::Path::new(tmp).exists(), "{tmp} left behind");
    assert!(fake.commands[mktemp..].iter().any(|c| c.last() == Some(&format!("{tmp}/ssh_host_rsa_key"))));

    // sshd_config, accounts, start script.
    let sshd_config = fake.text("etc/ssh/sshd_config");
    assert_keys_only(&sshd_config);
    assert!(sshd_config.contains("\nKbdInteractiveAuthentication no\n"), "{sshd_config}");
    let passwd = fake.text("etc/passwd");
    let host_sshd =
        std::fs::read_to_string("/etc/passwd").unwrap().lines().find(|l| l.starts_with("sshd:")).map(str::to_owned);
    let host_sshd = host_sshd.expect("the host has an sshd user (openssh-server)");
    let uid = host_sshd.split(':').nth(2).unwrap();
    assert!(passwd.starts_with("root:x:0:0:root:/root:/bin/"), "{passwd}");
    assert!(passwd.contains(&format!("\nsshd:x:{uid}:")), "{passwd}");
    assert!(fake.text("etc/shadow").starts_with("root:*:"), "root is locked");
    assert_eq!(fake.mode("etc/shadow"), 0o600);
    assert_eq!(fake.text("etc/hostname"), "ssh1\n");
    let start = fake.text("etc/start-sshd");
    assert_eq!(fake.mode("etc/start-sshd"), 0o755);
    assert!(start.starts_with("#!/bin/sh\n") && start.contains("\n    ip link set lo up\n"), "{start}");
    assert!(start.trim_end().ends_with("exec /usr/sbin/sshd -D -e"), "{start}");

    assert_eq!(fake.bytes("root/.ssh/authorized_keys"), PUBKEY.as_bytes());
    assert_eq!(fake.mode("root/.ssh/authorized_keys"), 0o600);

    // Config.
    assert_eq!(fake.config[0], ("lxc.include".to_owned(), "/usr/share/lxc/config/common.conf".to_owned()));
    assert_eq!(fake.config_values("lxc.uts.name"), ["ssh1"]);
    assert_eq!(fake.config_values("lxc.init.cmd"), ["/usr/sbin/init.lxc --name ssh1 -- /etc/start-sshd"]);
    assert_no_network_or_apparmor(&fake.config);
    assert!(fake.logged(LogLevel::Warn).is_empty(), "{:?}", fake.logged(LogLevel::Warn));

    assert!(message.contains("lxc-start -n ssh1") && message.contains("root@<container address>"), "{message}");
    assert!(message.contains("(ED25519)") && message.contains("(RSA)"), "{message}");
}

#[test]
fn merged_usr_host_gets_symlinks_and_one_bind() {
    let mut fake = FakeHost::sealed(Sealed::debian());
    let ctx = context("web", &[("auth-key", "/home/alice/.ssh/id_ed25519.pub")]);
    let message = create(&mut fake, &ctx).unwrap().unwrap();

    for (link, target) in [("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")] {
        assert_eq!(fake.rootfs[link], Node::Symlink { target: target.into() }, "{link}");
    }
    let pairs: Vec<(&str, &str)> = fake.config.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        pairs,
        [
            ("lxc.include", "/usr/share/lxc/config/common.conf"),
            ("lxc.uts.name", "web"),
            ("lxc.autodev", "1"),
            ("lxc.tty.max", "0"),
            ("lxc.pty.max", "1024"),
            ("lxc.mount.auto", "cgroup:mixed proc:mixed sys:mixed"),
            ("lxc.mount.entry", "/usr usr none ro,bind,create=dir 0 0"),
            ("lxc.mount.entry", "/etc/alternatives etc/alternatives none ro,bind,optional,create=dir 0 0"),
            ("lxc.mount.entry", "tmpfs run tmpfs rw,nosuid,nodev,mode=0755,create=dir 0 0"),
            ("lxc.init.cmd", "/usr/sbin/init.lxc --name web -- /etc/start-sshd"),
        ]
    );

    // The keys made in the temp dir are the ones in the rootfs; the dir is gone.
    let sealed = fake.sealed.as_ref().unwrap();
    assert!(!sealed.dirs.iter().any(|d| d.contains("lxc-tmpl-sshd")), "{:?}", sealed.dirs);
    assert!(!sealed.files.keys().any(|f| f.contains("lxc-tmpl-sshd")), "{:?}", sealed.files.keys());
    assert!(fake.text("etc/ssh/ssh_host_ed25519_key").starts_with("PRIVATE ed25519 "));
    assert!(fake.text("etc/ssh/ssh_host_rsa_key.pub").starts_with("ssh-rsa PUBLIC"));
    let rsa = fake.commands.iter().find(|c| c.get(3).is_some_and(|t| t == "rsa")).unwrap();
    assert_eq!(&rsa[..6], ["/usr/bin/ssh-keygen", "-q", "-t", "rsa", "-b", "3072"]);
    assert!(rsa.windows(2).any(|w| w == ["-N", ""]) && rsa.windows(2).any(|w| w == ["-C", "root@web"]));

    let sshd_config = fake.text("etc/ssh/sshd_config");
    assert_keys_only(&sshd_config);
    assert!(sshd_config.contains("(OpenSSH_9.2p1)"), "{sshd_config}");
    assert!(sshd_config.contains("\nSubsystem sftp /usr/lib/openssh/sftp-server\n"), "{sshd_config}");
    assert_eq!(
        fake.text("etc/passwd"),
        "root:x:0:0:root:/root:/bin/bash\nsshd:x:103:65534::/run/sshd:/usr/sbin/nologin\n"
    );
    assert_eq!(fake.text("etc/group"), "root:x:0:\nnogroup:x:65534:\n");
    assert!(fake.text("etc/shadow").lines().all(|l| l.split(':').nth(1) == Some("*")));
    assert_eq!(fake.rootfs["etc/os-release"], Node::Symlink { target: "../usr/lib/os-release".into() });
    assert_eq!(fake.text("etc/ssh/moduli"), "contents of /etc/ssh/moduli");
    assert!(fake.text("etc/nsswitch.conf").contains("\npasswd: files\n"));
    // The privilege separation dir is on the /run tmpfs: made at start.
    assert!(!fake.rootfs.contains_key("run/sshd"));
    let start = fake.text("etc/start-sshd");
    assert!(start.contains("\nmkdir -p /run/sshd\nchmod 0755 /run/sshd\n"), "{start}");
    assert!(start.contains("under /usr/sbin/init.lxc"), "{start}");

    assert!(message.contains("SHA256:fingerprint-of-ssh-ed25519 PUBLIC"), "{message}");
    assert!(message.contains("ssh -i <private key of /home/alice/.ssh/id_ed25519.pub> root@"), "{message}");
    assert!(message.contains("lxc-attach -n web"), "{message}");
}

/// A host without merged /usr, without init.lxc, with an older sshd and an
/// sshd user whose privilege separation dir is not under /run.
fn classic_host() -> Sealed {
    let mut sealed = Sealed::debian();
    sealed.links.clear();
    sealed.dirs.remove("/etc/alternatives");
    for dir in ["/bin", "/sbin", "/lib", "/lib64"] {
        sealed.dirs.insert(dir.into());
    }
    sealed.files.remove("/usr/sbin/init.lxc");
    sealed.files.remove("/usr/bin/bash");
    sealed.sshd_version =
        "unknown option -- V\nOpenSSH_8.2p1 Ubuntu-4, OpenSSL 1.1.1f\nusage: sshd [-46DdeiqTt]\n".into();
    sealed.files.insert(
        "/etc/passwd".into(),
        b"root:x:0:0:root:/root:/bin/bash\nsshd:x:74:74:Privilege-separated SSH:/var/empty/sshd:/sbin/nologin\n"
            .to_vec(),
    );
    sealed.files.insert("/etc/group".into(), b"root:x:0:\nsshd:x:74:\n".to_vec());
    sealed
}

#[test]
fn classic_host_gets_binds_and_runs_sshd_as_init() {
    let mut fake = FakeHost::sealed(classic_host());
    let ctx = context("old", &[("auth-key", "/home/alice/.ssh/id_ed25519.pub")]);
    create(&mut fake, &ctx).unwrap();

    let binds: Vec<&str> =
        fake.config_values("lxc.mount.entry").into_iter().filter(|m| m.contains("ro,bind")).collect();
    assert_eq!(
        binds,
        [
            "/usr usr none ro,bind,create=dir 0 0",
            "/bin bin none ro,bind,create=dir 0 0",
            "/sbin sbin none ro,bind,create=dir 0 0",
            "/lib lib none ro,bind,create=dir 0 0",
            "/lib64 lib64 none ro,bind,create=dir 0 0",
        ]
    );
    for dir in ["usr", "bin", "sbin", "lib", "lib64"] {
        assert_eq!(fake.rootfs[dir], Node::Dir { mode: 0o755 }, "{dir}");
    }
    assert_eq!(fake.config_values("lxc.init.cmd"), ["/etc/start-sshd"]);
    assert_eq!(fake.config_values("lxc.signal.halt"), ["SIGTERM"]);
    assert!(fake.logged(LogLevel::Info).iter().any(|m| m.contains("init.lxc not found")));

    let sshd_config = fake.text("etc/ssh/sshd_config");
    assert!(sshd_config.contains("\nChallengeResponseAuthentication no\n"), "{sshd_config}");
    assert!(!sshd_config.contains("KbdInteractive"), "{sshd_config}");
    assert_eq!(fake.text("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nsshd:x:74:74::/var/empty/sshd:/sbin/nologin\n");
    assert_eq!(fake.text("etc/group"), "root:x:0:\nsshd:x:74:\n");
    assert_eq!(fake.rootfs["var/empty/sshd"], Node::Dir { mode: 0o755 });
    let start = fake.text("etc/start-sshd");
    assert!(start.contains("mkdir -p /var/empty/sshd\n") && !start.contains("init.lxc"), "{start}");
}

#[test]
fn missing_sshd_user_falls_back_with_a_warning() {
    let mut sealed = Sealed::debian();
    sealed.files.insert("/etc/passwd".into(), b"root:x:0:0:root:/root:/bin/bash\n".to_vec());
    let mut fake = FakeHost::sealed(sealed);
    create(&mut fake, &context("nouser", &[("auth-key", "/home/alice/.ssh/id_ed25519.pub")])).unwrap();
    assert!(fake.text("etc/passwd").contains("\nsshd:x:74:65534::/run/sshd:/usr/sbin/nologin\n"));
    assert!(fake.logged(LogLevel::Warn).iter().any(|w| w.contains("no sshd user")));
}

#[test]
fn privsep_dir_is_made_only_where_the_rootfs_owns_it() {
    for (home, made) in [("/var/empty/sshd", true), ("/var/run/sshd", false), ("/usr/share/empty.sshd", false)] {
        let mut sealed = Sealed::debian();
        let passwd = format!("root:x:0:0:root:/root:/bin/bash\nsshd:x:103:65534::{home}:/usr/sbin/nologin\n");
        sealed.files.insert("/etc/passwd".into(), passwd.into_bytes());
        let mut fake = FakeHost::sealed(sealed);
        create(&mut fake, &context("p", &[("auth-key", "/home/alice/.ssh/id_ed25519.pub")])).unwrap();
        let rootfs_path = home.trim_start_matches('/');
        assert_eq!(fake.rootfs.contains_key(rootfs_path), made, "{home}: {:?}", fake.rootfs.keys().collect::<Vec<_>>());
        assert!(!fake.rootfs.keys().any(|p| p.starts_with("usr/")), "{home}: wrote below the /usr mount point");
        assert!(fake.text("etc/start-sshd").contains(&format!("\nmkdir -p {home}\n")), "{home}");
    }
}

#[test]
fn several_key_files_are_concatenated() {
    let mut sealed = Sealed::debian();
    let second = PUBKEY.replace("alice@example", "bob@example");
    sealed.files.insert("/keys/bob.pub".into(), second.trim_end().as_bytes().to_vec());
    let mut fake = FakeHost::sealed(sealed);
    let ctx = context("two", &[("auth-key", "/home/alice/.ssh/id_ed25519.pub"), ("auth-key", "/keys/bob.pub")]);
    create(&mut fake, &ctx).unwrap();
    assert_eq!(fake.text("root/.ssh/authorized_keys"), format!("{PUBKEY}{second}"));
}

/// Runs validate alone and returns its error.
fn refused(sealed: Sealed, ctx: &HookContext) -> PluginError {
    let mut fake = FakeHost::sealed(sealed);
    let error = with_host(&mut fake, |host| Sshd.validate(ctx, host)).unwrap_err();
    assert!(fake.rootfs.is_empty());
    error
}

#[test]
fn validate_names_the_option_and_the_fix() {
    let key = ("auth-key", "/home/alice/.ssh/id_ed25519.pub");
    // All bad input: INVALID_INPUT, one line naming the option or path and the fix.
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![], "--auth-key is required: pass -S/--auth-key FILE"),
        (vec![("auth-key", "/nope.pub")], "--auth-key /nope.pub: no such file"),
        (vec![("auth-key", "/usr")], "--auth-key /usr is a directory"),
        (vec![("auth-key", "/etc/group")], "holds no usable OpenSSH public key"),
        (vec![("auth-key", "/id")], "--auth-key /id is a private key: pass the public key (/id.pub)"),
        (vec![key, ("sshd-path", "sshd")], "--sshd-path sshd: give an absolute path"),
        (
            vec![key, ("sshd-path", "/usr/sbin/nosshd")],
            "sshd not found at /usr/sbin/nosshd: install the OpenSSH server on the host (apt-get install openssh-server)",
        ),
        (vec![key, ("sshd-path", "/opt/sshd")], "outside the host dirs the container sees (/usr)"),
        (vec![key, ("sshd-path", "/usr/sbin/ss hd")], "use a path of letters"),
    ];
    for (options, expected) in cases {
        let mut sealed = Sealed::debian();
        sealed.files.insert(
            "/id".into(),
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n".to_vec(),
        );
        sealed.files.insert("/opt/sshd".into(), Vec::new());
        let error = refused(sealed, &context("x", &options));
        assert_eq!(error.kind, ErrorKind::INVALID_INPUT, "{options:?}: {}", error.message);
        assert!(error.message.contains(expected), "{options:?}: {}", error.message);
        assert!(!error.message.contains('\n'), "one line: {}", error.message);
    }
}

#[test]
fn validate_refuses_what_cannot_work() {
    let ctx = context("x", &[("auth-key", "/home/alice/.ssh/id_ed25519.pub")]);

    let mut unprivileged = ctx.clone();
    unprivileged.facts.mapped_uid = RSome(0);
    let error = refused(Sealed::debian(), &unprivileged);
    assert_eq!(error.kind, ErrorKind::UNSUPPORTED);
    assert!(error.message.contains("unprivileged"), "{}", error.message);

    let mut no_keygen = Sealed::debian();
    no_keygen.files.remove("/usr/bin/ssh-keygen");
    let error = refused(no_keygen, &ctx);
    assert!(error.message.contains("apt-get install openssh-client"), "{}", error.message);

    let mut no_lxc = Sealed::debian();
    no_lxc.files.remove("/usr/share/lxc/config/common.conf");
    assert!(refused(no_lxc, &ctx).message.contains("common.conf is missing"));

    let mut no_usr = Sealed::debian();
    no_usr.dirs.remove("/usr");
    no_usr.links.clear();
    assert!(refused(no_usr, &ctx).message.contains("no /usr directory"));
}

#[test]
fn key_file_oddities_are_warned_about() {
    let mut sealed = Sealed::debian();
    sealed
        .files
        .insert("/k.pub".into(), format!("{PUBKEY}garbage\nssh-dss AAAAB3NzaC1kc3MAAACBAP8= old\n").into_bytes());
    let mut fake = FakeHost::sealed(sealed);
    with_host(&mut fake, |host| Sshd.validate(&context("x", &[("auth-key", "/k.pub")]), host)).unwrap();
    let warnings = fake.logged(LogLevel::Warn);
    assert!(warnings.iter().any(|w| w.contains("line(s) 2 hold no OpenSSH public key")), "{warnings:?}");
    assert!(warnings.iter().any(|w| w.contains("line(s) 3 hold DSA keys")), "{warnings:?}");
}

#[test]
fn network_is_left_to_the_base_config() {
    let ctx = context("net", &[("auth-key", "/home/alice/.ssh/id_ed25519.pub")]);
    for (key, value, level, expected) in [
        ("lxc.net.0.type", "none", LogLevel::Warn, "listen on the host's port 22"),
        ("lxc.net.2.type", "none", LogLevel::Warn, "listen on the host's port 22"),
        ("lxc.net.0.type", "veth", LogLevel::Info, "runs no DHCP client"),
    ] {
        let mut fake = FakeHost::sealed(Sealed::debian());
        fake.base_config.insert(key.into(), value.into());
        create(&mut fake, &ctx).unwrap();
        assert!(fake.logged(level).iter().any(|m| m.contains(expected)), "{key}={value}: {:?}", fake.logs);
        assert_no_network_or_apparmor(&fake.config);
        assert!(!fake.text("etc/start-sshd").contains("dhc"), "never a DHCP client");
    }
    let mut fake = FakeHost::sealed(Sealed::debian());
    fake.base_config.insert("lxc.net.0.type".into(), "veth".into());
    fake.base_config.insert("lxc.net.0.ipv4.address".into(), "10.0.3.5/24".into());
    create(&mut fake, &ctx).unwrap();
    assert!(!fake.logs.iter().any(|(_, m)| m.contains("DHCP")), "{:?}", fake.logs);
}

#[test]
fn config_hook_needs_no_rootfs() {
    // A dry run calls config before any rootfs exists: host facts only.
    let mut fake = FakeHost::sealed(Sealed::debian());
    let ctx = context("dry", &[("auth-key", "/home/alice/.ssh/id_ed25519.pub")]);
    with_host(&mut fake, |host| Sshd.config(&ctx, host)).unwrap();
    assert!(fake.rootfs.is_empty());
    assert_eq!(fake.config_values("lxc.uts.name"), ["dry"]);
}

#[test]
fn config_entries_follow_the_layout() {
    let layout: Layout = vec![("usr", HostDir::Bind), ("bin", HostDir::Link("usr/bin".into())), ("lib", HostDir::Bind)];
    let entries = config_entries("c", &layout, None, false);
    let pairs: Vec<(String, String)> = entries.iter().map(|e| (e.key.to_string(), e.value.to_string())).collect();
    let mounts: Vec<&str> = pairs.iter().filter(|(k, _)| k == "lxc.mount.entry").map(|(_, v)| v.as_str()).collect();
    assert_eq!(
        mounts,
        [
            "/usr usr none ro,bind,create=dir 0 0",
            "/lib lib none ro,bind,create=dir 0 0",
            "tmpfs run tmpfs rw,nosuid,nodev,mode=0755,create=dir 0 0"
        ]
    );
    assert_no_network_or_apparmor(&pairs);
}

#[test]
fn privsep_user_is_read_from_the_host() {
    let user = parse_privsep_user("sshd:x:103:65534::/run/sshd:/usr/sbin/nologin\n", "nogroup:x:65534:\n");
    assert_eq!(
        (user.uid, user.gid, user.dir.as_str(), user.group.as_deref()),
        (103, 65534, "/run/sshd", Some("nogroup"))
    );
    // Odd or missing fields fall back.
    let user = parse_privsep_user("sshd:x:abc:0::/:\n", "");
    assert_eq!((user.uid, user.gid, user.dir.as_str(), user.shell.as_str()), (74, 0, "/run/sshd", "/usr/sbin/nologin"));
    assert_eq!(user.group, None, "gid 0 is root's group, already written");
    let user = parse_privsep_user("sshd:x:5:6::/var/run/$(reboot):/bin/false\n", "");
    assert_eq!((user.dir.as_str(), user.group.as_deref()), ("/run/sshd", Some("sshd")));
}

#[test]
fn openssh_versions_are_parsed() {
    assert_eq!(parse_openssh_version("OpenSSH_9.2, OpenSSL 3.0.19"), Some((9, 2, "OpenSSH_9.2".into())));
    assert_eq!(parse_openssh_version("x\nOpenSSH_8.2p1 Ubuntu-4"), Some((8, 2, "OpenSSH_8.2p1".into())));
    assert_eq!(parse_openssh_version("OpenSSH_10.0p2"), Some((10, 0, "OpenSSH_10.0p2".into())));
    assert_eq!(parse_openssh_version("sshd: illegal option"), None);
}
