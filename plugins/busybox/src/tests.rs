//! Hook-level tests of the busybox plugin against the plugin API's fake host
//! ([`lxc_tmpl_plugin_api::testing`]). The host side is either the real
//! machine (to build a container from the real busybox-static) or a sealed
//! set of files, dirs and canned command outputs.

use lxc_tmpl_plugin_api::{
    Distro, ErrorKind, HookContext, PluginError,
    testing::{FakeHost, Node, output, run_hooks, run_on_machine, with_host},
};

use crate::{
    Busybox, SEARCH_DIRS, config_entries,
    elf::{Class, Endian, make_elf},
    loader_is_bound,
};

fn context(name: &str, busybox_path: Option<&str>) -> HookContext {
    match busybox_path {
        Some(path) => lxc_tmpl_plugin_api::testing::context("busybox", name, &[("busybox-path", &[path])]),
        None => lxc_tmpl_plugin_api::testing::context("busybox", name, &[]),
    }
}

/// Runs the hooks in the host's order, as a create does.
fn create(fake: &mut FakeHost, ctx: &HookContext) -> Result<Option<String>, PluginError> {
    let (cache_key, message) = run_hooks(&Busybox, fake, ctx)?;
    assert_eq!(cache_key, None, "busybox is never cached");
    assert!(fake.owners.is_empty(), "root makes root's files: no chown");
    Ok(message)
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
    let mut fake = FakeHost::new();
    fake.set_responder(run_on_machine);
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
    assert_eq!(fake.commands[0].argv, [expected_busybox.as_str(), "--list-full"]);

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

fn dynamic_host(list_full_works: bool) -> FakeHost {
    let mut fake = FakeHost::sealed();
    fake.host_files.insert(
        "/opt/bb/busybox".into(),
        make_elf(Class::Elf64, Endian::Little, Some("/lib64/ld-linux-x86-64.so.2"), 4),
    );
    fake.put_host("/usr/share/lxc/config/common.conf", "");
    for dir in ["/lib", "/usr/lib", "/lib64"] {
        fake.put_host_dir(dir);
    }
    let (full_status, full) =
        if list_full_works { (0, "bin/sh\nsbin/udhcpc\nsbin/ip\nbin/busybox\n") } else { (1, "") };
    fake.on("/opt/bb/busybox --list-full", output(full_status, full, ""));
    fake.on("/opt/bb/busybox --list", output(0, "sh\nudhcpc\nip\nbusybox\n", ""));
    fake.on(
        "/opt/bb/busybox udhcpc --help",
        output(0, "", "\t-s PROG\t\tRun PROG at DHCP events (default /usr/share/udhcpc/default.script)\n"),
    );
    fake
}

#[test]
fn dynamic_busybox_binds_the_host_library_dirs() {
    let mut fake = dynamic_host(false);
    let ctx = context("dyn", Some("/opt/bb/busybox"));
    create(&mut fake, &ctx).unwrap();

    let warnings = fake.warnings();
    assert!(warnings.iter().any(|w| w.contains("dynamically linked") && w.contains("/lib64")), "{warnings:?}");
    assert!(!warnings.iter().any(|w| w.contains("will not start")), "{warnings:?}");
    assert_eq!(fake.rootfs["lib64"], Node::Dir { mode: 0o755 });
    assert!(!fake.rootfs.contains_key("usr/lib64"), "absent on this host");

    // --list-full failed: --list, everything in bin/.
    assert!(fake.commands.iter().any(|c| c.argv == ["/opt/bb/busybox", "--list"]));
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
    let mut fake = dynamic_host(true);
    create(&mut fake, &context("dyn", Some("/opt/bb/busybox"))).unwrap();
    assert!(matches!(fake.rootfs["sbin/udhcpc"], Node::Symlink { .. }));
    assert!(!fake.rootfs.contains_key("bin/udhcpc"));
    assert!(!fake.commands.iter().any(|c| c.argv == ["/opt/bb/busybox", "--list"]));
}

#[test]
fn validate_names_the_path_and_the_fix() {
    let mut fake = FakeHost::sealed();
    fake.put_host("/opt/script", "#!/bin/sh\n");
    fake.put_host("/usr/share/lxc/config/common.conf", "");
    fake.put_host_dir("/opt");

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
    let mut fake = dynamic_host(true);
    fake.host_files.remove("/usr/share/lxc/config/common.conf");
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

/// A base config in the host's network namespace must not get a DHCP client:
/// it would rewrite the host's own interfaces.
#[test]
fn no_dhcp_in_the_hosts_network_namespace() {
    for key in ["lxc.net.0.type", "lxc.net.3.type", "lxc.network.type"] {
        let mut fake = dynamic_host(true);
        fake.base_config.insert(key.into(), "none".into());
        create(&mut fake, &context("shared", Some("/opt/bb/busybox"))).unwrap();
        let rcs = fake.text("etc/init.d/rcS");
        assert!(!rcs.lines().any(|l| l.trim_start().starts_with("udhcpc")), "{key}: {rcs}");
        assert!(fake.warnings().iter().any(|w| w.contains("will not run udhcpc")), "{key}");
        assert_no_network_or_apparmor(&fake.config);
    }
    let mut fake = dynamic_host(true);
    fake.base_config.insert("lxc.net.0.type".into(), "empty".into());
    create(&mut fake, &context("own", Some("/opt/bb/busybox"))).unwrap();
    assert!(fake.text("etc/init.d/rcS").contains("udhcpc -b -i eth0"));
}

/// `/etc/hostname`, `/etc/hosts` and `lxc.uts.name` follow the host name
/// the host derived or was given (RFC 1123, maybe dotted); the message
/// keeps the container name for `lxc-attach -n`.
#[test]
fn hostname_is_the_host_name_not_the_container_name() {
    for (hostname, short, hosts_line) in
        [("web-01", "web-01", "127.0.1.1\tweb-01\n"), ("web.example.com", "web", "127.0.1.1\tweb.example.com web\n")]
    {
        let mut fake = FakeHost::new();
        fake.set_responder(run_on_machine);
        let mut ctx = context("web_01", None);
        ctx.hostname = hostname.into();
        let message = create(&mut fake, &ctx).unwrap().unwrap();
        assert_eq!(fake.text("etc/hostname"), format!("{short}\n"));
        let hosts = fake.text("etc/hosts");
        assert!(hosts.starts_with(&format!("127.0.0.1\tlocalhost\n{hosts_line}")), "{hosts}");
        assert_eq!(fake.config_values("lxc.uts.name"), [short]);
        assert!(message.contains("lxc-attach -n web_01"), "{message}");
    }
}
