//! Hook-level tests of the debian plugin on the fake host of `lxc_tmpl_deb`
//! (the real debootstrap run and boot are in tests/it/debian.rs).

use lxc_tmpl_deb::{
    fake::{
        FakeHost, Node, PUBLIC_KEY, Refused, assert_options_documented, assert_refused, context, elf, run_hooks,
        with_host,
    },
    family::PlanOnce,
    plan::DebPlan,
    systemd::{GETTY_DROP_IN_PATH, GETTY_WANTS},
};
use lxc_tmpl_plugin_api::{Distro, ErrorKind, HookContext, RunPlace};

use crate::{
    Debian,
    plan::{KEYRING, PORTS_KEYRING, Plan},
    release,
};

const MIRROR: &str = "http://127.0.0.1:8000/debian";

/// A Debian host (debootstrap with the bookworm and sid scripts, the Debian
/// keyring); the rootfs debootstrap "makes" has systemd's getty@.service
/// and the locales package (its SUPPORTED list and locale-gen).
fn debian_host() -> FakeHost {
    let mut fake = FakeHost::debootstrap_host(&["bookworm", "sid"], "debian", &KEYRING);
    fake.put("lib/systemd/system/getty@.service", "[Unit]\nConditionPathExists=/dev/tty0\n");
    fake.put("usr/share/i18n/SUPPORTED", "en_IN UTF-8\nen_US.UTF-8 UTF-8\nen_US ISO-8859-1\n");
    fake.put("etc/locale.gen", "# en_IN UTF-8\n# en_US.UTF-8 UTF-8\n");
    fake.put_program("usr/sbin/locale-gen");
    fake
}

/// bookworm from the local mirror with the fixture keyring, plus `extra`.
fn bookworm<'a>(extra: &[(&'a str, &'a [&'a str])]) -> Vec<(&'a str, &'a [&'a str])> {
    let mut options: Vec<(&str, &[&str])> = vec![
        ("release", &["bookworm"]),
        ("mirror", &[MIRROR]),
        ("security-mirror", &[MIRROR]),
        ("keyring", &["/fixture.gpg"]),
    ];
    options.extend_from_slice(extra);
    options
}

fn plan_of(fake: &mut FakeHost, ctx: &HookContext) -> DebPlan {
    with_host(fake, |h| Plan::resolve(ctx, h)).unwrap().deb
}

#[test]
fn manifest_lists_every_option_of_lxc_debian_with_its_default() {
    let manifest = Debian.manifest();
    assert_eq!(manifest.name, "debian");
    let options = [
        "release",
        "arch",
        "interpreter-path",
        "auth-key",
        "packages",
        "mirror",
        "security-mirror",
        "keyring",
        "enable-non-free",
        "clean",
        "no-check-gpg",
        "http-proxy",
        "locale",
    ];
    assert_options_documented(&manifest, &options);
    let short = |long: &str| manifest.options.iter().find(|o| o.long == long).and_then(|o| o.short);
    for (long, letter) in
        [("release", 'r'), ("arch", 'a'), ("interpreter-path", 'I'), ("auth-key", 'S'), ("clean", 'c')]
    {
        assert_eq!(short(long), Some(letter), "--{long}");
    }
    assert!(manifest.options.iter().all(|o| o.long != "variant" && o.long != "user"), "lxc-debian has neither");
    assert!(manifest.find_release("12").is_some_and(|r| r.codename == "bookworm"));
    assert!(manifest.find_release("unstable").is_some_and(|r| r.codename == "sid"));
    assert!(manifest.arches.iter().any(|a| a == "m68k") && manifest.arches.iter().any(|a| a == "mips64el"));
    assert!(manifest.default_release.starts_with("stable"));
}

#[test]
fn full_create_from_a_local_mirror() {
    let mut fake = debian_host();
    let ctx = context("debian", "d1", &bookworm(&[("auth-key", &["/key.pub"]), ("packages", &["less"])]));
    let (key, message) = run_hooks(&Debian, &mut fake, &ctx).unwrap();
    assert_eq!(Debian.plans().times_computed(&ctx), 1, "the plan is resolved once per create");

    let key = key.expect("debian is cached");
    assert!(key.starts_with("debian-v1 release=bookworm arch=amd64 variant=minbase"), "{key}");
    // debootstrap on the host: lxc-debian's minbase and include list, signature checked.
    let (place, argv) = fake.debootstrap_run();
    assert_eq!(place, RunPlace::Host);
    // Downloaded packages go to the host's package cache for this suite, arch and mirror.
    assert_eq!(fake.package_dirs.len(), 1, "{:?}", fake.package_dirs);
    assert!(fake.package_dirs[0].0.contains("suite=bookworm arch=amd64 mirror=http://127.0.0.1:8000/debian"));
    assert_eq!(
        argv,
        [
            "/usr/sbin/debootstrap",
            "--variant=minbase",
            "--arch=amd64",
            "--cache-dir=/var/cache/lxc-tmpl.fake/packages/1",
            "--components=main",
            "--include=init,ifupdown,locales,ca-certificates,dialog,isc-dhcp-client,netbase,net-tools,iproute2,\
             openssh-server,dbus",
            "--keyring=/fixture.gpg",
            "--force-check-gpg",
            "bookworm",
            "/fake-root",
            MIRROR,
        ]
    );
    let lines = fake.lines();
    assert!(lines.contains(&"apt-get update --error-on=any".to_owned()), "{lines:?}");
    assert!(lines.iter().any(|l| l.ends_with("install less")), "{lines:?}");
    assert!(lines.iter().all(|l| !l.contains("force-yes") && !l.contains("no-check-gpg")), "{lines:?}");
    assert_eq!(fake.text("etc/apt/trusted.gpg.d/lxc-tmpl-archive.gpg"), "fixture keys");

    assert_eq!(
        fake.text("etc/apt/sources.list").lines().skip(1).collect::<Vec<_>>(),
        [
            format!("deb {MIRROR} bookworm main"),
            format!("deb {MIRROR} bookworm-updates main"),
            format!("deb {MIRROR} bookworm-security main"),
        ]
    );
    assert_eq!(fake.text("etc/hostname"), "d1\n");
    assert!(fake.text("etc/hosts").contains("127.0.1.1\td1\n"));
    assert!(fake.text("etc/network/interfaces").contains("auto eth0\niface eth0 inet dhcp\n"));
    assert_eq!(fake.text("etc/default/locale"), "LANG=en_US.UTF-8\n");
    assert_eq!(fake.text("etc/locale.gen"), "# en_IN UTF-8\nen_US.UTF-8 UTF-8\n");
    assert_eq!(fake.text("etc/timezone"), "Etc/UTC\n");
    // Host keys made for this container, named after it.
    let public = fake.text("etc/ssh/ssh_host_ed25519_key.pub");
    assert!(public.starts_with("ssh-ed25519 KEY") && public.ends_with(" root@d1\n"), "{public}");
    assert!(lines.iter().all(|l| !l.contains("dpkg-reconfigure") && l != "ssh-keygen -A"), "{lines:?}");

    // config: as lxc-debian.
    assert_eq!(fake.config_values("lxc.include"), ["/usr/share/lxc/config/debian.common.conf"]);
    assert_eq!(fake.config_values("lxc.uts.name"), ["d1"]);
    assert_eq!(fake.config_values("lxc.arch"), ["amd64"]);
    assert_eq!(fake.config_values("lxc.tty.max"), ["4"]);
    assert_eq!(fake.config_values("lxc.pty.max"), ["1024"]);
    // A getty on each of the 4 ttys, which LXC makes without a /dev/tty0.
    assert!(fake.text(GETTY_DROP_IN_PATH).contains("ConditionPathExists=\nConditionPathExists=/dev/%I\n"));
    for tty in 1..=4 {
        let link = &fake.rootfs[&format!("{GETTY_WANTS}/getty@tty{tty}.service")];
        assert_eq!(*link, Node::Symlink { target: "/lib/systemd/system/getty@.service".into() });
    }
    assert!(!fake.exists(&format!("{GETTY_WANTS}/getty@tty5.service")));

    // No user, root locked, the key for root.
    assert!(!lines.iter().any(|l| l.starts_with("useradd") || l.starts_with("chpasswd")), "{lines:?}");
    assert!(fake.text("etc/shadow").starts_with("root:*:"));
    assert_eq!(fake.text("root/.ssh/authorized_keys"), PUBLIC_KEY);
    assert_eq!((fake.mode("root/.ssh"), fake.mode("root/.ssh/authorized_keys")), (0o700, 0o600));
    assert_eq!(fake.owners["root/.ssh/authorized_keys"], (0, 0));

    let message = message.unwrap();
    assert!(message.starts_with("Debian bookworm (12) container 'd1' is ready."), "{message}");
    assert!(message.contains("key from /key.pub") && message.contains("lxc-attach -n d1"), "{message}");
    assert!(fake.warnings().is_empty(), "{:?}", fake.warnings());
}

#[test]
fn base_config_ttys_non_free_and_clean() {
    let mut fake = debian_host();
    fake.base_config.insert("lxc.tty.max".into(), "2".into());
    let ctx = context("debian", "d2", &bookworm(&[("enable-non-free", &[]), ("clean", &[])]));
    let (key, _) = run_hooks(&Debian, &mut fake, &ctx).unwrap();
    assert_eq!(key, None, "--clean builds in place, without the cache");
    assert_eq!(fake.config_values("lxc.tty.max"), ["2"]);
    assert!(fake.exists(&format!("{GETTY_WANTS}/getty@tty2.service")));
    assert!(!fake.exists(&format!("{GETTY_WANTS}/getty@tty3.service")));
    assert!(fake.debootstrap_run().1.contains(&"--components=main,contrib,non-free,non-free-firmware".to_owned()));
    let sources = fake.text("etc/apt/sources.list");
    assert!(sources.contains(&format!("deb {MIRROR} bookworm-security main contrib non-free non-free-firmware\n")));
}

#[test]
fn cache_key_names_the_codename_never_the_alias() {
    let mut fake = debian_host();
    let key = |fake: &mut FakeHost, release: &'static [&'static str]| {
        let ctx = context("debian", "k", &[("release", release), ("keyring", &["/fixture.gpg"])]);
        with_host(fake, |h| Debian.cache_key(&ctx, h)).unwrap().unwrap()
    };
    assert_eq!(key(&mut fake, &["12"]), key(&mut fake, &["bookworm"]));
    let stable =
        release::alias_target(&release::DISTRO_INFO.builtin_table(), "stable", &lxc_tmpl_deb::release::today_utc())
            .unwrap()
            .codename
            .clone();
    let by_alias = key(&mut fake, &["stable"]);
    assert!(by_alias.contains(&format!(" release={stable} ")) && !by_alias.contains("stable"), "{by_alias}");
}

#[test]
fn security_suites_and_updates_by_release() {
    let mut fake = debian_host();
    let sources = |fake: &mut FakeHost, release: &'static str| {
        let releases: &'static [&'static str] = Box::leak(Box::new([release]));
        plan_of(fake, &context("debian", "s", &[("release", releases)])).sources().lines(None)
    };
    let buster = sources(&mut fake, "buster");
    assert_eq!(buster[0], "deb http://archive.debian.org/debian buster main", "past its LTS");
    assert_eq!(buster[2], "deb http://archive.debian.org/debian-security buster/updates main");
    assert_eq!(sources(&mut fake, "bullseye")[2].rsplit(' ').nth(1), Some("bullseye-security"));
    assert_eq!(sources(&mut fake, "sid"), ["deb http://deb.debian.org/debian sid main"], "no -updates, no security");
}

#[test]
fn ports_architectures_use_debian_ports_unstable() {
    let mut fake = debian_host();
    let deb = plan_of(&mut fake, &context("debian", "p", &[("arch", &["m68k"])]));
    assert_eq!(deb.suite(), "sid");
    assert_eq!(deb.mirror, release::PORTS.archive);
    assert_eq!(deb.archive.keyring, PORTS_KEYRING);
    assert_eq!(deb.archive.security_suite, None);
    assert!(deb.archive.include.contains(&"debian-ports-archive-keyring".to_owned()));
    let err = with_host(&mut fake, |h| deb.signature(h)).unwrap_err();
    assert!(err.message.contains("apt-get install debian-ports-archive-keyring"), "{}", err.message);
}

/// A host where arm64 runs through a static qemu whose binfmt_misc handler
/// lacks the `F` flag, so `-I` copies it in.
fn qemu_host() -> FakeHost {
    let mut fake = debian_host();
    fake.host_files.insert("/usr/bin/qemu-aarch64-static".into(), elf(true, false, false));
    fake.put_host("/proc/sys/fs/binfmt_misc/status", "enabled\n");
    fake.put_host(
        "/proc/sys/fs/binfmt_misc/qemu-aarch64",
        "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: OC\n",
    );
    fake
}

#[test]
fn interpreter_path_runs_debootstrap_in_two_stages() {
    let mut fake = qemu_host();
    let qemu: &[(&str, &[&str])] = &[("arch", &["arm64"]), ("interpreter-path", &["/usr/bin/qemu-aarch64-static"])];
    let (key, _) = run_hooks(&Debian, &mut fake, &context("debian", "arm", &bookworm(qemu))).unwrap();
    let key = key.unwrap();
    assert!(key.contains("second-stage=/usr/bin/qemu-aarch64-static copied=/usr/bin/qemu-aarch64-static@"), "{key}");
    assert!(fake.debootstrap_run().1.contains(&"--foreign".to_owned()));
    let second = fake.command("/debootstrap/debootstrap --second-stage").expect("second stage");
    assert_eq!(second.place, RunPlace::Rootfs);
    assert_eq!(fake.mode("usr/bin/qemu-aarch64-static"), 0o755, "copied in for a handler without F");
    assert_eq!(fake.config_values("lxc.arch"), ["arm64"]);
    assert!(fake.logged("arm64 binaries will run through /usr/bin/qemu-aarch64-static (copied into the rootfs)"));
    assert!(!fake.lines().iter().any(|l| l.starts_with("dpkg --add-architecture")), "no multiarch for debian");
}

/// Debian's own bad input (the shared option checks are tested in
/// `lxc_tmpl_deb::family`): suite names, debian-ports, `-I`, keyrings.
#[test]
fn debian_suites_ports_interpreters_and_keyrings_are_checked_in_validate() {
    let mut fake = qemu_host();
    fake.host_files.insert("/usr/bin/dynamic".into(), elf(true, false, true));
    fake.put_host("/proc/sys/fs/binfmt_misc/qemu-m68k", "enabled\ninterpreter /usr/bin/qemu-m68k\nflags: OCF\n");
    let dynamic: &[(&str, &[&str])] = &[("arch", &["arm64"]), ("interpreter-path", &["/usr/bin/dynamic"])];
    let cases: &[Refused] = &[
        (&[("release", &["bookwurm"])], ErrorKind::INVALID_INPUT, "unknown Debian release 'bookwurm'"),
        (&[("release", &["experimental"])], ErrorKind::INVALID_INPUT, "not a complete suite"),
        (&[("release", &["stretch"])], ErrorKind::UNSUPPORTED, "too old"),
        (&[("arch", &["vax"])], ErrorKind::INVALID_INPUT, "unknown architecture 'vax'"),
        (&[("release", &["bookworm"]), ("arch", &["riscv64"])], ErrorKind::INVALID_INPUT, "debian-ports"),
        (dynamic, ErrorKind::INVALID_INPUT, "not a statically linked program"),
    ];
    assert_refused(&Debian, &mut fake, "debian", cases);
    fake.host_files.remove(KEYRING.path);
    let missing: &[Refused] = &[
        (&[], ErrorKind::UNSUPPORTED, "apt-get install debian-archive-keyring"),
        (&[("arch", &["m68k"])], ErrorKind::UNSUPPORTED, "apt-get install debian-ports-archive-keyring"),
    ];
    assert_refused(&Debian, &mut fake, "debian", missing);
}

/// `/etc/hostname`, `/etc/hosts` and `lxc.uts.name` follow the host name
/// (RFC 1123, maybe dotted), messages the container name.
#[test]
fn hostname_is_the_host_name_not_the_container_name() {
    let mut fake = debian_host();
    let mut ctx = context("debian", "db_1", &bookworm(&[]));
    ctx.hostname = "db.example.org".into();
    let (_, message) = run_hooks(&Debian, &mut fake, &ctx).unwrap();
    assert_eq!(fake.text("etc/hostname"), "db\n");
    assert!(fake.text("etc/hosts").contains("127.0.0.1\tlocalhost\n127.0.1.1\tdb.example.org db\n"));
    assert_eq!(fake.config_values("lxc.uts.name"), ["db"]);
    let message = message.unwrap();
    assert!(message.contains("'db_1'") && message.contains("lxc-attach -n db_1"), "{message}");
}
