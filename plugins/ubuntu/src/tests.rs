//! Hook-level tests of the ubuntu plugin against the fake host of
//! `lxc_tmpl_deb` (the real debootstrap run is in tests/it/ubuntu.rs).

use lxc_tmpl_deb::fake::{
    FakeHost, Node, PUBLIC_KEY, Refused, assert_options_documented, assert_refused, context, output, run_hooks,
    with_host,
};
use lxc_tmpl_plugin_api::{Distro, ErrorKind, HookContext, PluginError, RunPlace};

use lxc_tmpl_deb::{
    family::PlanOnce,
    systemd::{GETTY_DROP_IN_PATH, GETTY_WANTS},
};

use crate::{Ubuntu, plan::KEYRING};

/// A host with debootstrap and the jammy/gutsy scripts, the Ubuntu
/// keyring, the fixture keyring and a key file; the rootfs debootstrap
/// "makes" has systemd's getty@.service and the locales package.
fn ubuntu_host() -> FakeHost {
    let mut fake = FakeHost::debootstrap_host(&["jammy", "gutsy"], "ubuntu", &KEYRING);
    fake.put("usr/lib/systemd/system/getty@.service", "[Unit]\nConditionPathExists=/dev/tty0\n");
    fake.put("usr/share/i18n/SUPPORTED", "en_IN UTF-8\nen_US.UTF-8 UTF-8\n");
    fake.put_program("usr/sbin/locale-gen");
    fake
}

/// The debootstrap argv, which must have run on the host.
fn debootstrap_argv(fake: &FakeHost) -> Vec<String> {
    let (place, argv) = fake.debootstrap_run();
    assert_eq!(place, RunPlace::Host);
    argv
}

fn create(fake: &mut FakeHost, ctx: &HookContext) -> Result<(Option<String>, String), PluginError> {
    let (key, message) = run_hooks(&Ubuntu, fake, ctx)?;
    assert_eq!(Ubuntu.plans().times_computed(ctx), 1, "the plan is resolved once per create");
    Ok((message, key.expect("ubuntu is cached")))
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
    assert_options_documented(
        &manifest,
        &[
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
        ],
    );
    let user = manifest.options.iter().find(|o| o.long == "user").unwrap();
    assert_eq!(user.default.as_deref(), Some("ubuntu"));
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
    assert_eq!(
        debootstrap_argv(&fake),
        [
            "/usr/sbin/debootstrap",
            "--arch=amd64",
            "--cache-dir=/var/cache/lxc-tmpl.fake/packages/1",
            "--components=main,universe",
            "--include=ssh,vim,sudo,language-pack-en,locales,dbus",
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
    let public = fake.text("etc/ssh/ssh_host_ed25519_key.pub");
    assert!(public.starts_with("ssh-ed25519 KEY") && public.ends_with(" root@u1\n"), "{public}");
    assert!(!fake.text("etc/resolv.conf").contains("10.1.1.1"), "the host's resolver is not kept");
    assert_eq!(fake.text("etc/default/locale"), "LANG=en_US.UTF-8\n");
    assert!(lines.contains(&"locale-gen en_US.UTF-8".to_owned()), "{lines:?}");
    // A getty on each of LXC's 4 ttys, as for Debian: without the drop-in
    // getty@.service wants a /dev/tty0 that LXC does not make.
    assert!(fake.text(GETTY_DROP_IN_PATH).contains("ConditionPathExists=/dev/%I"));
    for tty in 1..=4 {
        assert!(fake.exists(&format!("{GETTY_WANTS}/getty@tty{tty}.service")), "getty@tty{tty}");
    }
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
    assert_eq!(fake.text("home/ubuntu/.ssh/authorized_keys"), PUBLIC_KEY);
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
    assert_eq!(fake.command("/usr/sbin/debootstrap").unwrap().env_value("http_proxy"), Some("http://proxy:3128"));
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
    let argv = debootstrap_argv(&fake);
    assert_eq!(&argv[argv.len() - 4..], ["noble", "/fake-root", "http://127.0.0.1:8000/ubuntu", "gutsy"]);
}

/// Ubuntu's own bad input (the shared option checks are tested in
/// `lxc_tmpl_deb::family`): release and architecture names, the keyring.
#[test]
fn ubuntu_names_and_keyring_are_checked_in_validate() {
    let mut fake = ubuntu_host();
    let cases: &[Refused] = &[
        (&[("release", &["jammmy"])], ErrorKind::INVALID_INPUT, "unknown Ubuntu release 'jammmy'"),
        (&[("arch", &["mips"])], ErrorKind::INVALID_INPUT, "unknown architecture 'mips'"),
    ];
    assert_refused(&Ubuntu, &mut fake, "ubuntu", cases);
    fake.host_files.remove(KEYRING.path);
    assert_refused(&Ubuntu, &mut fake, "ubuntu", &[(&[], ErrorKind::UNSUPPORTED, "apt-get install ubuntu-keyring")]);
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

/// The host name is the host's (RFC 1123, maybe dotted), not the container
/// name: `/etc/hostname` and `lxc.uts.name` get the short name, `/etc/hosts`
/// both; messages keep the container name for `lxc-attach -n`.
#[test]
fn hostname_is_the_host_name_not_the_container_name() {
    for (hostname, short, hosts_line) in
        [("web-01", "web-01", "127.0.1.1\tweb-01\n"), ("web.example.com", "web", "127.0.1.1\tweb.example.com web\n")]
    {
        let mut fake = ubuntu_host();
        let mut ctx = context("ubuntu", "web_01", &local(&[]));
        ctx.hostname = hostname.into();
        let (message, _) = create(&mut fake, &ctx).unwrap();
        assert_eq!(fake.text("etc/hostname"), format!("{short}\n"));
        assert!(fake.text("etc/hosts").contains(hosts_line), "{}", fake.text("etc/hosts"));
        assert_eq!(fake.config_values("lxc.uts.name"), [short]);
        assert!(fake.text("etc/ssh/ssh_host_ed25519_key.pub").ends_with(&format!(" root@{short}\n")));
        let message = message.unwrap();
        assert!(message.contains("lxc-attach -n web_01") && message.contains("'web_01'"), "{message}");
    }
}
