//! Hook-level tests of the busybox plugin against a fake [`Host`].
//!
//! The real host (namespaced runner, symlink-safe writes, minijinja) is built
//! in parallel, so these tests drive the hooks through an in-memory
//! implementation of [`HostApi`]: the rootfs is a map of nodes that enforces
//! what the real host would (parents must exist, no overwriting a link), and
//! `render` understands exactly the template syntax the busybox templates
//! use (`{{ var }}`, `{% if var %}`/`{% endif -%}`). The host side is either
//! the real machine (to build a container from the real busybox-static) or
//! a sealed set of files, dirs and canned command outputs.

use std::collections::{BTreeMap, BTreeSet};

use lxc_tmpl_plugin_api::{
    CommandOutput, CommandSpec, ConfigEntry, Distro, ErrorKind, FileKind, HookContext, Host, HostApi, HostApi_TO,
    HostFacts, LogLevel, OptionValue, PluginError,
    abi_stable::{
        sabi_trait::TD_Opaque,
        sabi_types::RMut,
        std_types::{RNone, ROption, RResult, RSlice, RStr, RString, RVec},
    },
    serde_json::Value,
};

use crate::{
    Busybox, SEARCH_DIRS, config_entries,
    elf::{Class, Endian, make_elf},
    loader_is_bound,
};

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
    /// Output by argv joined with spaces; unknown commands exit 127.
    outputs: BTreeMap<String, CommandOutput>,
}

#[derive(Debug, Default)]
struct FakeHost {
    rootfs: BTreeMap<String, Node>,
    /// `None`: host files and commands are the real machine's.
    sealed: Option<Sealed>,
    commands: Vec<Vec<String>>,
    hard_links: Vec<(String, String)>,
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

    fn mode(&self, path: &str) -> u32 {
        match self.rootfs.get(path) {
            Some(Node::File { mode, .. } | Node::Dir { mode }) => *mode,
            other => panic!("{path} has no mode: {other:?}"),
        }
    }

    fn warnings(&self) -> Vec<&str> {
        self.logs.iter().filter(|(l, _)| *l == LogLevel::Warn).map(|(_, m)| m.as_str()).collect()
    }

    fn config_values(&self, key: &str) -> Vec<&str> {
        self.config.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }
}

impl HostApi for FakeHost {
    fn run(&mut self, command: &CommandSpec) -> RResult<CommandOutput, PluginError> {
        let argv: Vec<String> = command.argv.iter().map(|a| a.to_string()).collect();
        self.commands.push(argv.clone());
        let out = match &self.sealed {
            Some(sealed) => {
                sealed.outputs.get(&argv.join(" ")).cloned().unwrap_or_else(|| output(127, "", "not found"))
            }
            None => match std::process::Command::new(&argv[0]).args(&argv[1..]).output() {
                Ok(o) => CommandOutput {
                    status: o.status.code().unwrap_or(128),
                    stdout: o.stdout.into(),
                    stderr: o.stderr.into(),
                },
                Err(e) => return err(format!("cannot run {argv:?}: {e}")),
            },
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
        err(format!("append {path}: the busybox plugin writes whole files"))
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

    fn hard_link(&mut self, existing: RStr<'_>, link: RStr<'_>) -> RResult<(), PluginError> {
        let (existing, link) = (norm(existing), norm(link));
        match self.rootfs.get(&existing) {
            Some(node @ Node::File { .. }) if self.parent_is_dir(&link) && !self.rootfs.contains_key(&link) => {
                let node = node.clone();
                self.rootfs.insert(link.clone(), node);
                self.hard_links.push((existing, link));
                RResult::ROk(())
            }
            _ => err(format!("hard link {link} -> {existing}: bad source or target")),
        }
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
        err(format!("chown {path}: not expected from the busybox plugin"))
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
            Some(sealed) => sealed.files.get(host_path.as_str()).cloned(),
            None => std::fs::read(host_path.as_str()).ok(),
        };
        match found {
            Some(data) => RResult::ROk(data.into()),
            None => err(format!("cannot read host file {host_path}")),
        }
    }

    fn host_file_kind(&mut self, host_path: RStr<'_>) -> RResult<ROption<FileKind>, PluginError> {
        let kind = match &self.sealed {
            Some(sealed) if sealed.files.contains_key(host_path.as_str()) => Some(FileKind::File),
            Some(sealed) if sealed.dirs.contains(host_path.as_str()) => Some(FileKind::Dir),
            Some(_) => None,
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

    fn render(&mut self, _name: RStr<'_>, source: RStr<'_>, context_json: RStr<'_>) -> RResult<RString, PluginError> {
        let context: Value = lxc_tmpl_plugin_api::serde_json::from_str(context_json.as_str()).unwrap();
        RResult::ROk(mini_render(source.as_str(), &context).into())
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

/// The subset of minijinja the busybox templates use, with minijinja's
/// semantics: `{{ var }}`, non-nested `{% if var %}` ... `{% endif %}`, a
/// `-%}` that eats the whitespace after a tag, and the one trailing newline
/// of the source dropped.
fn mini_render(source: &str, context: &Value) -> String {
    let truthy = |v: Option<&Value>| match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    };
    let mut out = String::new();
    let mut rest = source.strip_suffix('\n').unwrap_or(source);
    let mut emitting = true;
    while let Some(start) = rest.find(['{']) {
        let (before, tail) = rest.split_at(start);
        if emitting {
            out.push_str(before);
        }
        if let Some(expr) = tail.strip_prefix("{{") {
            let end = expr.find("}}").expect("unclosed {{");
            let var = expr[..end].trim();
            if emitting {
                match context.get(var) {
                    Some(Value::String(s)) => out.push_str(s),
                    Some(Value::Null) | None => {}
                    Some(other) => out.push_str(&other.to_string()),
                }
            }
            rest = &expr[end + 2..];
        } else if let Some(stmt) = tail.strip_prefix("{%") {
            let end = stmt.find("%}").expect("unclosed {%");
            let (body, trim) = match stmt[..end].strip_suffix('-') {
                Some(body) => (body.trim(), true),
                None => (stmt[..end].trim(), false),
            };
            if let Some(var) = body.strip_prefix("if ") {
                emitting = truthy(context.get(var.trim()));
            } else {
                assert_eq!(body, "endif", "unsupported statement {body}");
                emitting = true;
            }
            rest = &stmt[end + 2..];
            if trim {
                rest = rest.trim_start();
            }
        } else {
            if emitting {
                out.push('{');
            }
            rest = &tail[1..];
        }
    }
    if emitting {
        out.push_str(rest);
    }
    out
}

fn context(name: &str, busybox_path: Option<&str>) -> HookContext {
    let mut options = RVec::new();
    if let Some(path) = busybox_path {
        options.push(OptionValue { long: "busybox-path".into(), values: vec![RString::from(path)].into() });
    }
    HookContext {
        distro: "busybox".into(),
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
    let plugin = Busybox;
    with_host(fake, |host| {
        plugin.validate(ctx, host)?;
        assert_eq!(plugin.cache_key(ctx, host)?, None, "busybox is never cached");
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

#[test]
fn manifest_describes_the_plugin_and_its_option() {
    let manifest = Busybox.manifest();
    assert_eq!(manifest.name, "busybox");
    assert_eq!(manifest.version, env!("CARGO_PKG_VERSION"));
    assert!(manifest.releases.is_empty());
    assert_eq!(manifest.options.len(), 1);
    let option = &manifest.options[0];
    assert_eq!(option.long, "busybox-path");
    assert!(option.takes_value());
    // Resolved in validate, so that "not found" is a clear error there.
    assert!(option.default.is_none());
    assert!(option.help.contains("busybox found in PATH"));
}

/// The whole create, with the real busybox-static and real host commands
/// (busybox-static and lxc are CI dependencies: a missing one fails).
#[test]
fn creates_a_container_from_the_host_busybox() {
    let mut fake = FakeHost::real();
    let ctx = context("bb1", None);
    // What validate must find: the first busybox on the fixed search path.
    let expected_busybox = SEARCH_DIRS
        .iter()
        .map(|dir| format!("{dir}/busybox"))
        .find(|path| std::path::Path::new(path).is_file())
        .expect("busybox on the search path (install busybox-static)");
    let message = create(&mut fake, &ctx).unwrap().unwrap();
    let fs = &fake.rootfs;

    // Tree and modes.
    assert_eq!(fake.mode("tmp"), 0o1777);
    assert_eq!(fake.mode("root"), 0o700);
    for dir in ["bin", "sbin", "usr/bin", "usr/sbin", "dev/pts", "proc", "sys", "etc/init.d", "var/log", "var/run"] {
        assert_eq!(fake.mode(dir), 0o755, "{dir}");
    }
    assert!(!fs.contains_key("lib64"), "static busybox needs no lib64 mount point");
    assert!(!fs.contains_key("selinux"));

    // busybox, never setuid; applets; init.
    assert_eq!(fake.mode("bin/busybox"), 0o755);
    assert_eq!(fs["bin/busybox"], Node::File { data: std::fs::read(&expected_busybox).unwrap(), mode: 0o755 });
    assert_eq!(fs["bin/sh"], Node::Symlink { target: "/bin/busybox".into() });
    assert_eq!(fs["usr/bin/passwd"], Node::Symlink { target: "/bin/busybox".into() });
    assert_eq!(fs["sbin/getty"], Node::Symlink { target: "/bin/busybox".into() });
    assert_eq!(fake.hard_links, [("bin/busybox".to_owned(), "sbin/init".to_owned())]);
    assert!(!fs.contains_key("linuxrc"));
    for (path, node) in fs {
        if let Node::File { mode, .. } | Node::Dir { mode } = node {
            assert_eq!(mode & 0o6000, 0, "{path} is setuid/setgid");
        }
    }
    assert_eq!(fake.commands[0], [expected_busybox.as_str(), "--list-full"]);

    // Accounts: root only, locked.
    assert_eq!(fake.text("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
    assert_eq!(fake.text("etc/group"), "root:x:0:\n");
    assert!(fake.text("etc/shadow").starts_with("root:*:"));
    assert_eq!(fake.mode("etc/shadow"), 0o600);

    assert_eq!(fake.text("etc/hostname"), "bb1\n");
    let hosts = fake.text("etc/hosts");
    assert!(hosts.contains("127.0.0.1\tlocalhost\n") && hosts.contains("127.0.1.1\tbb1\n") && hosts.contains("::1"));
    assert!(fs.contains_key("etc/fstab"));

    // Boot: logins, not a root shell; DHCP in the background, only with eth0.
    let inittab = fake.text("etc/inittab");
    assert!(inittab.contains("::sysinit:/etc/init.d/rcS\n"), "{inittab}");
    assert!(inittab.contains("console::respawn:/sbin/getty -L console 115200 vt100\n"), "{inittab}");
    assert!(inittab.contains("tty1::respawn:/sbin/getty -L tty1 115200 vt100\n"), "{inittab}");
    assert!(inittab.contains("::ctrlaltdel:/sbin/reboot\n"), "{inittab}");
    assert!(inittab.contains("::shutdown:/bin/umount -a -r\n"), "{inittab}");
    assert!(!inittab.contains("askfirst") && !inittab.contains(":/bin/sh"), "{inittab}");

    let rcs = fake.text("etc/init.d/rcS");
    assert_eq!(fake.mode("etc/init.d/rcS"), 0o755);
    assert!(rcs.starts_with("#!/bin/sh\n"));
    assert!(rcs.contains("\nmount -a\n") && rcs.contains("\nsyslogd\n"), "{rcs}");
    assert!(rcs.contains("\nip link set lo up\n"), "{rcs}");
    assert!(rcs.contains("if [ -e /sys/class/net/eth0 ]; then\n"), "{rcs}");
    assert!(rcs.contains("    udhcpc -b -i eth0 -s /etc/udhcpc/default.script &\n"), "{rcs}");
    let runs = rcs.lines().filter(|l| l.trim_start().starts_with("udhcpc")).count();
    assert_eq!(runs, 1, "only the backgrounded udhcpc: {rcs}");
    assert_eq!(fake.mode("etc/udhcpc"), 0o755);
    assert_eq!(fake.mode("etc/udhcpc/default.script"), 0o755);
    assert!(fake.text("etc/udhcpc/default.script").contains("ip route add default via"));

    // Config.
    assert_eq!(fake.config[0], ("lxc.include".to_owned(), "/usr/share/lxc/config/common.conf".to_owned()));
    assert_eq!(fake.config_values("lxc.uts.name"), ["bb1"]);
    assert_eq!(fake.config_values("lxc.signal.halt"), ["SIGUSR1"]);
    assert_eq!(fake.config_values("lxc.signal.reboot"), ["SIGTERM"]);
    assert_eq!(fake.config_values("lxc.tty.max"), ["1"]);
    let mounts = fake.config_values("lxc.mount.entry");
    assert!(mounts.iter().all(|m| !m.contains("ro,bind 0 0")), "no host lib binds for a static busybox: {mounts:?}");
    assert_no_network_or_apparmor(&fake.config);
    assert!(fake.warnings().is_empty(), "{:?}", fake.warnings());

    assert!(message.contains("lxc-start -n bb1 && lxc-attach -n bb1"), "{message}");
}

fn dynamic_host(list_full_works: bool) -> Sealed {
    let mut sealed = Sealed::default();
    sealed.files.insert(
        "/opt/bb/busybox".into(),
        make_elf(Class::Elf64, Endian::Little, Some("/lib64/ld-linux-x86-64.so.2"), 4),
    );
    sealed.files.insert("/usr/share/lxc/config/common.conf".into(), Vec::new());
    for dir in ["/lib", "/usr/lib", "/lib64"] {
        sealed.dirs.insert(dir.into());
    }
    let (full_status, full) =
        if list_full_works { (0, "bin/sh\nsbin/udhcpc\nsbin/ip\nbin/busybox\n") } else { (1, "") };
    sealed.outputs.insert("/opt/bb/busybox --list-full".into(), output(full_status, full, ""));
    sealed.outputs.insert("/opt/bb/busybox --list".into(), output(0, "sh\nudhcpc\nip\nbusybox\n", ""));
    sealed.outputs.insert(
        "/opt/bb/busybox udhcpc --help".into(),
        output(0, "", "\t-s PROG\t\tRun PROG at DHCP events (default /usr/share/udhcpc/default.script)\n"),
    );
    sealed
}

#[test]
fn dynamic_busybox_binds_the_host_library_dirs() {
    let mut fake = FakeHost::sealed(dynamic_host(false));
    let ctx = context("dyn", Some("/opt/bb/busybox"));
    create(&mut fake, &ctx).unwrap();

    let warnings = fake.warnings();
    assert!(warnings.iter().any(|w| w.contains("dynamically linked") && w.contains("/lib64")), "{warnings:?}");
    assert!(!warnings.iter().any(|w| w.contains("will not start")), "{warnings:?}");
    assert_eq!(fake.rootfs["lib64"], Node::Dir { mode: 0o755 });
    assert!(!fake.rootfs.contains_key("usr/lib64"), "absent on this host");

    // --list-full failed: --list, everything in bin/.
    assert!(fake.commands.iter().any(|c| c == &["/opt/bb/busybox", "--list"]));
    assert!(matches!(fake.rootfs["bin/udhcpc"], Node::Symlink { .. }));

    let binds: Vec<&str> =
        fake.config_values("lxc.mount.entry").into_iter().filter(|m| m.ends_with(" none ro,bind 0 0")).collect();
    assert_eq!(
        binds,
        ["/lib lib none ro,bind 0 0", "/usr/lib usr/lib none ro,bind 0 0", "/lib64 lib64 none ro,bind 0 0"]
    );
    assert_no_network_or_apparmor(&fake.config);

    // The script goes where this udhcpc looks for it; rcS names it.
    assert_eq!(fake.mode("usr/share/udhcpc"), 0o755);
    assert_eq!(fake.mode("usr/share/udhcpc/default.script"), 0o755);
    assert!(fake.text("etc/init.d/rcS").contains("udhcpc -b -i eth0 -s /usr/share/udhcpc/default.script &\n"));

    // No getty/login/reboot/umount in this busybox: no dead inittab lines.
    let inittab = fake.text("etc/inittab");
    assert_eq!(
        inittab.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).collect::<Vec<_>>(),
        ["::sysinit:/etc/init.d/rcS"]
    );
    assert!(warnings.iter().any(|w| w.contains("no login prompt")), "{warnings:?}");
    // No syslogd either.
    assert!(!fake.text("etc/init.d/rcS").contains("syslogd"));
}

#[test]
fn list_full_paths_are_used_when_available() {
    let mut fake = FakeHost::sealed(dynamic_host(true));
    create(&mut fake, &context("dyn", Some("/opt/bb/busybox"))).unwrap();
    assert!(matches!(fake.rootfs["sbin/udhcpc"], Node::Symlink { .. }));
    assert!(!fake.rootfs.contains_key("bin/udhcpc"));
    assert!(!fake.commands.iter().any(|c| c == &["/opt/bb/busybox", "--list"]));
}

#[test]
fn validate_names_the_path_and_the_fix() {
    let mut sealed = Sealed::default();
    sealed.files.insert("/opt/script".into(), b"#!/bin/sh\n".to_vec());
    sealed.files.insert("/usr/share/lxc/config/common.conf".into(), Vec::new());
    sealed.dirs.insert("/opt".into());
    let mut fake = FakeHost::sealed(sealed);

    let cases = [
        (Some("busybox"), "give an absolute path"),
        (Some("/x"), "busybox not found at /x: install busybox-static or pass --busybox-path"),
        (Some("/opt"), "busybox at /opt is a directory, not a regular file"),
        (Some("/opt/script"), "/opt/script is not a busybox executable (not an ELF file)"),
        (None, "busybox not found in /usr/local/sbin, /usr/local/bin, /usr/sbin, /usr/bin, /sbin, /bin"),
    ];
    for (path, expected) in cases {
        let error = with_host(&mut fake, |host| Busybox.validate(&context("x", path), host)).unwrap_err();
        assert_eq!(error.kind, ErrorKind::INVALID_INPUT, "{path:?}");
        assert!(error.message.contains(expected), "{path:?}: {}", error.message);
    }
}

#[test]
fn validate_requires_lxc_common_conf() {
    let mut sealed = dynamic_host(true);
    sealed.files.remove("/usr/share/lxc/config/common.conf");
    let mut fake = FakeHost::sealed(sealed);
    let error =
        with_host(&mut fake, |host| Busybox.validate(&context("x", Some("/opt/bb/busybox")), host)).unwrap_err();
    assert_eq!(error.kind, ErrorKind::UNSUPPORTED);
    assert!(error.message.contains("common.conf is missing"), "{}", error.message);
}

#[test]
fn unprivileged_config_defers_to_userns_conf() {
    let entries = config_entries("u1", &[], true);
    let pairs: Vec<(&str, &str)> = entries.iter().map(|e| (e.key.as_str(), e.value.as_str())).collect();
    assert_eq!(pairs[0], ("lxc.include", "/usr/share/lxc/config/common.conf"));
    assert_eq!(pairs[1], ("lxc.include", "/usr/share/lxc/config/userns.conf"));
    assert!(!pairs.iter().any(|(k, _)| *k == "lxc.cap.drop" || *k == "lxc.mount.auto"));
}

#[test]
fn privileged_config_keeps_the_old_scripts_intent() {
    let entries = config_entries("p1", &["lib"], false);
    let pairs: Vec<(String, String)> = entries.iter().map(|e| (e.key.to_string(), e.value.to_string())).collect();
    let expected = [
        ("lxc.include", "/usr/share/lxc/config/common.conf"),
        ("lxc.uts.name", "p1"),
        ("lxc.signal.halt", "SIGUSR1"),
        ("lxc.signal.reboot", "SIGTERM"),
        ("lxc.autodev", "1"),
        ("lxc.tty.max", "1"),
        ("lxc.pty.max", "1024"),
        ("lxc.cap.drop", "sys_module mac_admin mac_override sys_time"),
        ("lxc.mount.auto", "cgroup:mixed proc:mixed sys:ro"),
        ("lxc.mount.entry", "shm dev/shm tmpfs defaults,create=dir 0 0"),
        ("lxc.mount.entry", "mqueue dev/mqueue mqueue defaults,optional,create=dir 0 0"),
        ("lxc.mount.entry", "/lib lib none ro,bind 0 0"),
        ("lxc.mount.entry", "/sys/kernel/security sys/kernel/security none ro,bind,optional 0 0"),
    ];
    let expected: Vec<(String, String)> = expected.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    assert_eq!(pairs, expected);
    assert_no_network_or_apparmor(&pairs);
}

#[test]
fn loader_location_checks() {
    let binds = ["lib", "usr/lib", "lib64"];
    assert!(loader_is_bound("/lib64/ld-linux-x86-64.so.2", &binds));
    assert!(loader_is_bound("/lib/ld-musl-x86_64.so.1", &binds));
    assert!(!loader_is_bound("/libexec/ld.so", &binds));
    assert!(!loader_is_bound("/usr/lib64/ld.so", &binds));
    assert!(!loader_is_bound("/nix/store/x/ld.so", &binds));
}

#[test]
fn mini_render_follows_minijinja_whitespace_rules() {
    let ctx = lxc_tmpl_plugin_api::serde_json::json!({ "a": "X", "t": true, "f": null });
    assert_eq!(
        mini_render("1\n{% if t %}\n2 {{ a }}\n{% endif -%}\n{% if f %}\n3\n{% endif -%}\n4\n", &ctx),
        "1\n\n2 X\n4"
    );
}

/// A base config in the host's network namespace must not get a DHCP client:
/// it would rewrite the host's own interfaces.
#[test]
fn no_dhcp_in_the_hosts_network_namespace() {
    for key in ["lxc.net.0.type", "lxc.net.3.type", "lxc.network.type"] {
        let mut fake = FakeHost::sealed(dynamic_host(true));
        fake.base_config.insert(key.into(), "none".into());
        create(&mut fake, &context("shared", Some("/opt/bb/busybox"))).unwrap();
        let rcs = fake.text("etc/init.d/rcS");
        assert!(!rcs.lines().any(|l| l.trim_start().starts_with("udhcpc")), "{key}: {rcs}");
        assert!(fake.warnings().iter().any(|w| w.contains("will not run udhcpc")), "{key}");
        assert_no_network_or_apparmor(&fake.config);
    }
    let mut fake = FakeHost::sealed(dynamic_host(true));
    fake.base_config.insert("lxc.net.0.type".into(), "empty".into());
    create(&mut fake, &context("own", Some("/opt/bb/busybox"))).unwrap();
    assert!(fake.text("etc/init.d/rcS").contains("udhcpc -b -i eth0"));
}
