//! Hook-level tests of the ubuntu plugin against the fake host of
//! `lxc_tmpl_deb` (the real debootstrap run is in tests/it/ubuntu.rs).

use lxc_tmpl_deb::fake::{FakeHost, Node, RecordedCommand, context, output, with_host};
use lxc_tmpl_plugin_api::{
    CommandOutput, Distro, ErrorKind, HookContext, PluginError, RunPlace, abi_stable::std_types::RSome,
};

use crate::{Ubuntu, plan::DEFAULT_KEYRING};

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host\n";

/// A host with debootstrap, its scripts, the Ubuntu keyring, LXC's configs
/// and a time zone; debootstrap "builds" a small rootfs, useradd and
/// ssh-keygen act on it.
fn ubuntu_host() -> FakeHost {
    let mut fake = FakeHost::sealed();
    for file in [
        "/usr/sbin/debootstrap",
        "/usr/bin/unshare",
        "/usr/share/debootstrap/scripts/jammy",
        "/usr/share/debootstrap/scripts/gutsy",
        "/usr/share/lxc/config/ubuntu.common.conf",
        "/usr/share/lxc/config/common.conf",
    ] {
        fake.put_host(file, "");
    }
    fake.put_host(DEFAULT_KEYRING, "ubuntu keys");
    fake.put_host("/fixture.gpg", "fixture keys");
    fake.put_host("/etc/timezone", "Etc/UTC\n");
    fake.put_host("/key.pub", KEY);
    fake.on("apt-get --version", output(0, "apt 2.6.1 (amd64)\n", ""));
    fake.responder = Some(Box::new(respond));
    fake
}

fn append(rootfs: &mut std::collections::BTreeMap<String, Node>, path: &str, line: &str) {
    if let Some(Node::File { data, .. }) = rootfs.get_mut(path) {
        data.extend_from_slice(line.as_bytes());
    }
}

fn file(rootfs: &mut std::collections::BTreeMap<String, Node>, path: &str, text: &str, mode: u32) {
    let mut at = String::new();
    for part in path.split('/').collect::<Vec<_>>().split_last().unwrap().1 {
        if !at.is_empty() {
            at.push('/');
        }
        at.push_str(part);
        rootfs.entry(at.clone()).or_insert(Node::Dir { mode: 0o755 });
    }
    rootfs.insert(path.to_owned(), Node::File { data: text.as_bytes().to_vec(), mode });
}

fn respond(cmd: &RecordedCommand, rootfs: &mut std::collections::BTreeMap<String, Node>) -> Option<CommandOutput> {
    // debootstrap runs behind `unshare ... --`.
    let argv0 = cmd.argv.iter().position(|a| a == "--").map_or(&cmd.argv[0], |i| &cmd.argv[i + 1]);
    let program = argv0.rsplit('/').next().unwrap_or_default();
    match program {
        "debootstrap" => {
            for program in ["usr/bin/apt-get", "usr/bin/ssh-keygen", "sbin/ifup", "bin/bash", "usr/lib/systemd/systemd"]
            {
                file(rootfs, program, "", 0o755);
            }
            file(rootfs, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\n", 0o644);
            file(rootfs, "etc/group", "root:x:0:\n", 0o644);
            file(rootfs, "etc/shadow", "root:*:19000:0:99999:7:::\n", 0o640);
            file(rootfs, "etc/resolv.conf", "nameserver 10.1.1.1\n", 0o644);
            file(rootfs, "etc/hostname", "buildhost\n", 0o644);
            file(rootfs, "etc/ssh/ssh_host_ed25519_key", "SECRET", 0o600);
            file(rootfs, "etc/ssh/ssh_host_ed25519_key.pub", "ssh-ed25519 AAAA root@buildhost\n", 0o644);
            file(rootfs, "etc/apt/sources.list", "deb http://mirror jammy main\n", 0o644);
            file(rootfs, "usr/share/zoneinfo/Etc/UTC", "TZif", 0o644);
            Some(output(0, "I: Base system installed successfully.\n", ""))
        }
        "useradd" => {
            let name = cmd.argv.last().unwrap();
            append(rootfs, "etc/passwd", &format!("{name}:x:1000:1000::/home/{name}:/bin/bash\n"));
            append(rootfs, "etc/shadow", &format!("{name}:!:19000:0:99999:7:::\n"));
            append(rootfs, "etc/group", &format!("{name}:x:1000:\n"));
            rootfs.insert("home".into(), Node::Dir { mode: 0o755 });
            rootfs.insert(format!("home/{name}"), Node::Dir { mode: 0o750 });
            Some(output(0, "", ""))
        }
        "groupadd" => {
            append(rootfs, "etc/group", &format!("{}:x:27:\n", cmd.argv.last().unwrap()));
            Some(output(0, "", ""))
        }
        "ssh-keygen" => {
            file(rootfs, "etc/ssh/ssh_host_ed25519_key", "NEW", 0o600);
            file(rootfs, "etc/ssh/ssh_host_ed25519_key.pub", "ssh-ed25519 NEWKEY root@u1\n", 0o644);
            Some(output(0, "", ""))
        }
        _ => None,
    }
}

/// The debootstrap run (behind unshare), without the unshare prefix.
fn debootstrap_command(fake: &FakeHost) -> RecordedCommand {
    let mut cmd =
        fake.command("/usr/bin/unshare --mount --propagation slave -- /usr/sbin/debootstrap").unwrap().clone();
    cmd.argv.drain(..5);
    cmd
}

/// Runs the hooks in the host's order, as a create does (the cache copy is
/// the identity here: one fake rootfs).
fn create(fake: &mut FakeHost, ctx: &HookContext) -> Result<(Option<String>, String), PluginError> {
    let plugin = Ubuntu;
    with_host(fake, |host| {
        plugin.validate(ctx, host)?;
        let key = plugin.cache_key(ctx, host)?.expect("ubuntu is cached");
        plugin.download(ctx, host)?;
        plugin.sources_list(ctx, host)?;
        plugin.configure(ctx, host)?;
        plugin.config(ctx, host)?;
        plugin.trim(ctx, host)?;
        plugin.post_process(ctx, host)?;
        plugin.finalize(ctx, host)?;
        Ok((plugin.message(ctx, host)?, key))
    })
}

fn local(extra: &[(&'static str, &'static [&'static str])]) -> Vec<(&'static str, &'static [&'static str])> {
    let mut options: Vec<(&str, &[&str])> = vec![
        ("release", &["jammy"]),
        ("mirror", &["http://127.0.0.1:8000/ubuntu"]),
        ("security-mirror", &["http://127.0.0.1:8000/ubuntu"]),
        ("keyring", &["/fixture.gpg"]),
        ("user", &["ubuntu"]),
    ];
    options.extend_from_slice(extra);
    options
}

#[test]
fn manifest_lists_every_option_with_its_default() {
    let manifest = Ubuntu.manifest();
    assert_eq!(manifest.name, "ubuntu");
    let longs: Vec<&str> = manifest.options.iter().map(|o| o.long.as_str()).collect();
    for long in [
        "release",
        "arch",
        "variant",
        "packages",
        "user",
        "password",
        "password-file",
        "bindhome",
        "auth-key",
        "mirror",
        "security-mirror",
        "keyring",
        "no-check-gpg",
        "trim",
        "http-proxy",
        "locale",
    ] {
        assert!(longs.contains(&long), "--{long} missing: {longs:?}");
    }
    for option in manifest.options.iter() {
        let says = option.help.contains("default") || option.default.is_some();
        assert!(says, "--{} does not say its default", option.long);
        for reserved in ["flush-cache", "debug"] {
            assert_ne!(option.long, reserved, "a host option");
        }
    }
    let user = manifest.options.iter().find(|o| o.long == "user").unwrap();
    assert_eq!(user.default, RSome("ubuntu".into()));
    assert!(manifest.find_release("22.04").is_some_and(|r| r.codename == "jammy" && r.lts));
    assert!(manifest.arches.iter().any(|a| a == "arm64"));
}

#[test]
fn full_create_from_a_local_mirror() {
    let mut fake = ubuntu_host();
    let ctx = context("ubuntu", "u1", &local(&[("auth-key", &["/key.pub"]), ("packages", &["less,file"])]));
    let (message, key) = create(&mut fake, &ctx).unwrap();

    assert!(key.contains("release=jammy") && key.contains("keyring=/fixture.gpg@"), "{key}");
    // debootstrap on the host, with the keyring and signature checks.
    let debootstrap = debootstrap_command(&fake);
    assert_eq!(debootstrap.place, RunPlace::Host);
    assert_eq!(
        debootstrap.argv,
        [
            "/usr/sbin/debootstrap",
            "--arch=amd64",
            "--components=main,universe",
            "--include=ssh,vim,sudo,language-pack-en",
            "--keyring=/fixture.gpg",
            "--force-check-gpg",
            "jammy",
            "/fake-root",
            "http://127.0.0.1:8000/ubuntu",
        ]
    );
    // apt in the rootfs, never forced.
    let lines = fake.lines();
    let in_rootfs: Vec<String> =
        fake.commands.iter().filter(|c| c.place == RunPlace::Rootfs).map(|c| c.line()).collect();
    assert!(in_rootfs.contains(&"apt-get update --error-on=any".to_owned()), "{in_rootfs:?}");
    assert!(in_rootfs.iter().any(|l| l.ends_with("dist-upgrade")), "{in_rootfs:?}");
    assert!(in_rootfs.iter().any(|l| l.contains("--no-install-recommends") && l.ends_with("install less file")));
    assert!(lines.iter().all(|l| !l.contains("force-yes") && !l.contains("allow-unauthenticated")), "{lines:?}");
    // The fixture keyring is trusted inside, not on the host.
    assert_eq!(fake.text("etc/apt/trusted.gpg.d/lxc-tmpl-archive.gpg"), "fixture keys");

    // sources.list: release, -updates, -security.
    let sources = fake.text("etc/apt/sources.list");
    for suite in ["jammy", "jammy-updates", "jammy-security"] {
        let line = format!("deb http://127.0.0.1:8000/ubuntu {suite} main restricted universe multiverse\n");
        assert!(sources.contains(&line), "{sources}");
    }
    // configure.
    assert_eq!(fake.text("etc/hostname"), "u1\n");
    assert!(fake.text("etc/hosts").contains("127.0.1.1\tu1\n"));
    assert!(fake.text("etc/network/interfaces").contains("iface eth0 inet dhcp"), "netplan release without netplan");
    assert!(!fake.exists("etc/netplan/10-lxc.yaml"));
    assert!(fake.logged("netplan is not installed"));
    assert_eq!(fake.text("etc/timezone"), "Etc/UTC\n");
    assert_eq!(fake.text("etc/ssh/ssh_host_ed25519_key.pub"), "ssh-ed25519 NEWKEY root@u1\n");
    assert!(!fake.text("etc/resolv.conf").contains("10.1.1.1"), "the host's resolver is not kept");
    // config.
    assert_eq!(fake.config[0], ("lxc.include".into(), "/usr/share/lxc/config/ubuntu.common.conf".into()));
    assert_eq!(fake.config_values("lxc.uts.name"), ["u1"]);
    assert_eq!(fake.config_values("lxc.arch"), ["amd64"]);
    assert!(fake.config_values("lxc.mount.entry").is_empty());
    // trim: systemd units that cannot work in a container.
    assert_eq!(
        fake.rootfs["etc/systemd/system/systemd-timesyncd.service"],
        Node::Symlink { target: "/dev/null".into() }
    );
    assert!(!fake.exists("etc/systemd/system/apt-daily.timer"), "only with --trim");
    // finalize: user, locked, sudo, key.
    assert!(fake.text("etc/passwd").contains("ubuntu:x:1000:1000::/home/ubuntu:/bin/bash"));
    assert!(fake.text("etc/shadow").contains("ubuntu:!:"));
    assert!(lines.contains(&"usermod --append --groups sudo ubuntu".to_owned()), "{lines:?}");
    assert!(!lines.iter().any(|l| l.starts_with("chpasswd")), "no password given: none set");
    assert_eq!(fake.text("home/ubuntu/.ssh/authorized_keys"), KEY);
    assert_eq!(fake.mode("home/ubuntu/.ssh/authorized_keys"), 0o600);
    assert_eq!(fake.owners["home/ubuntu/.ssh/authorized_keys"], (1000, 1000));

    let message = message.unwrap();
    assert!(message.contains("lxc-attach -n u1"), "{message}");
    assert!(message.contains("ssh key"), "{message}");
    assert!(fake.warnings().is_empty(), "{:?}", fake.warnings());
}

#[test]
fn download_scrubs_host_state_from_the_cache() {
    let mut fake = ubuntu_host();
    let ctx = context("ubuntu", "u1", &local(&[]));
    with_host(&mut fake, |h| Ubuntu.download(&ctx, h)).unwrap();
    assert!(!fake.exists("etc/ssh/ssh_host_ed25519_key"), "no ssh host keys in the cache");
    assert!(!fake.exists("etc/ssh/ssh_host_ed25519_key.pub"));
    assert_eq!(fake.text("etc/hostname"), "localhost\n");
    assert!(!fake.text("etc/resolv.conf").contains("nameserver"));
    assert!(!fake.exists("etc/apt/apt.conf.d/70proxy"), "no proxy in the cache");
}

#[test]
fn password_and_proxy_and_trim() {
    let mut fake = ubuntu_host();
    fake.put_host("/pw", "hunter2\n");
    let ctx = context(
        "ubuntu",
        "u2",
        &local(&[("password-file", &["/pw"]), ("http-proxy", &["http://proxy:3128"]), ("trim", &[])]),
    );
    let (message, _) = create(&mut fake, &ctx).unwrap();
    let chpasswd = fake.command("chpasswd").unwrap();
    assert_eq!(chpasswd.stdin, b"ubuntu:hunter2\n");
    assert!(fake.lines().iter().all(|l| !l.contains("hunter2")));
    assert_eq!(fake.text("etc/apt/apt.conf.d/70proxy"), "Acquire::http::Proxy \"http://proxy:3128\";\n");
    assert_eq!(debootstrap_command(&fake).env_value("http_proxy"), Some("http://proxy:3128"));
    assert_eq!(fake.command("apt-get update").unwrap().env_value("http_proxy"), Some("http://proxy:3128"));
    assert!(fake.exists("etc/systemd/system/apt-daily.timer"), "--trim masks more");
    assert!(message.unwrap().contains("with the password you gave"));
}

#[test]
fn bindhome_user_gets_a_bind_mount_and_a_locked_password() {
    let mut fake = ubuntu_host();
    fake.on("getent passwd alice", output(0, "alice:x:1500:1500:Alice:/home/alice:/bin/bash\n", ""));
    fake.on("getent group 1500", output(0, "alice:x:1500:\n", ""));
    let ctx = context("ubuntu", "u3", &local(&[("bindhome", &["alice"])]));
    create(&mut fake, &ctx).unwrap();
    assert_eq!(fake.config_values("lxc.mount.entry"), ["/home/alice home/alice none bind 0 0"]);
    let lines = fake.lines();
    assert!(lines.iter().any(|l| l.starts_with("useradd --no-create-home --home-dir /home/alice")), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("useradd --create-home")), "no ubuntu user with --bindhome");
    assert!(lines.contains(&"usermod --append --groups sudo alice".to_owned()));
    assert!(!lines.iter().any(|l| l.contains("getent shadow")), "the host's hash is never read");
}

#[test]
fn new_release_without_a_debootstrap_script_uses_gutsy() {
    let mut fake = ubuntu_host();
    let ctx = context(
        "ubuntu",
        "u4",
        &[("release", &["24.04"]), ("mirror", &["http://127.0.0.1:8000/ubuntu"]), ("keyring", &["/fixture.gpg"])],
    );
    with_host(&mut fake, |h| Ubuntu.download(&ctx, h)).unwrap();
    let argv = &debootstrap_command(&fake).argv;
    assert_eq!(&argv[argv.len() - 4..], ["noble", "/fake-root", "http://127.0.0.1:8000/ubuntu", "gutsy"]);
}

/// Options as `context` takes them.
type Options<'a> = &'a [(&'a str, &'a [&'a str])];

fn validate_error(fake: &mut FakeHost, ctx: &HookContext) -> PluginError {
    with_host(fake, |h| Ubuntu.validate(ctx, h)).unwrap_err()
}

#[test]
fn bad_input_is_refused_in_validate_with_the_fix() {
    let mut fake = ubuntu_host();
    fake.on("getent passwd ghost", output(2, "", ""));
    let cases: [(Options, ErrorKind, &str); 7] = [
        (&[("release", &["jammmy"])], ErrorKind::INVALID_INPUT, "unknown Ubuntu release 'jammmy'"),
        (&[("arch", &["sparc64"])], ErrorKind::INVALID_INPUT, "unknown architecture 'sparc64'"),
        (&[("arch", &["arm64"])], ErrorKind::UNSUPPORTED, "install qemu-user-static"),
        (&[("auth-key", &["/missing.pub"])], ErrorKind::INVALID_INPUT, "--auth-key /missing.pub: no such file"),
        (&[("bindhome", &["ghost"])], ErrorKind::INVALID_INPUT, "the host has no user ghost"),
        (&[("mirror", &["archive.ubuntu.com"])], ErrorKind::INVALID_INPUT, "not a mirror URL"),
        (&[("keyring", &["/nope.gpg"])], ErrorKind::INVALID_INPUT, "--keyring /nope.gpg: no such file"),
    ];
    for (options, kind, expected) in cases {
        let err = validate_error(&mut fake, &context("ubuntu", "x", options));
        assert_eq!(err.kind, kind, "{options:?}: {}", err.message);
        assert!(err.message.contains(expected), "{options:?}: {}", err.message);
    }
    assert!(fake.commands.iter().all(|c| c.argv[0] == "getent"), "validate runs nothing else: {:?}", fake.lines());
}

#[test]
fn missing_ubuntu_keyring_names_the_package() {
    let mut fake = ubuntu_host();
    fake.host_files.remove(DEFAULT_KEYRING);
    let err = validate_error(&mut fake, &context("ubuntu", "x", &[("release", &["jammy"])]));
    assert!(err.message.contains("apt-get install ubuntu-keyring"), "{}", err.message);
    assert!(err.message.contains("--keyring"), "{}", err.message);
    // The explicit opt-out works, with a warning.
    let ctx = context("ubuntu", "x", &[("release", &["jammy"]), ("no-check-gpg", &[])]);
    with_host(&mut fake, |h| Ubuntu.validate(&ctx, h)).unwrap();
    assert!(fake.warnings().iter().any(|w| w.contains("NOT authenticated")), "{:?}", fake.warnings());
}

#[test]
fn unprivileged_is_refused() {
    let mut fake = ubuntu_host();
    let mut ctx = context("ubuntu", "x", &[]);
    ctx.facts.mapped_uid = RSome(100_000);
    let err = validate_error(&mut fake, &ctx);
    assert_eq!(err.kind, ErrorKind::UNSUPPORTED);
    assert!(err.message.contains("unprivileged"), "{}", err.message);
}

#[test]
fn foreign_arch_with_binfmt_gets_multiarch_sources() {
    let mut fake = ubuntu_host();
    fake.put_host("/proc/sys/fs/binfmt_misc/status", "enabled\n");
    fake.put_host(
        "/proc/sys/fs/binfmt_misc/qemu-aarch64",
        "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: OCF\n",
    );
    let ctx = context("ubuntu", "arm", &[("release", &["jammy"]), ("arch", &["arm64"])]);
    create(&mut fake, &ctx).unwrap();
    let sources = fake.text("etc/apt/sources.list");
    assert!(sources.contains("deb [arch=arm64] http://ports.ubuntu.com/ubuntu-ports jammy main"), "{sources}");
    assert!(sources.contains("deb [arch=amd64] http://archive.ubuntu.com/ubuntu jammy main"), "{sources}");
    assert!(sources.contains("deb [arch=amd64] http://security.ubuntu.com/ubuntu jammy-security main"), "{sources}");
    assert!(fake.lines().contains(&"dpkg --add-architecture amd64".to_owned()));
    assert_eq!(fake.config_values("lxc.arch"), ["arm64"]);
}
