//! The debian plugin end to end, against the local signed apt mirror (never
//! the public Debian mirrors): real debootstrap of bookworm, apt in the
//! namespaced runner, every hook; then LXC loads, boots and attaches to the
//! container.
//!
//! One cold debootstrap for the whole file: the warm create, the failing
//! create and the boot all use that cache; the other tests never download.
//! Timings are printed (`--nocapture`); nothing asserts on them.

use std::{collections::HashSet, fs, os::unix::fs::MetadataExt, path::Path, time::Instant};

use lxc_tmpl_tests::{
    AptFixture, LXC_TOOLS, MirrorServer, TestCommand, TestDir, apt_fixture, assert_mentions, assert_same_text, config,
    error_line, require_root, require_tools,
    rootfs::{cache_entries, mode, read, ssh_host_keys},
    snapshot,
};

/// An ssh public key for `--auth-key`.
const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl tester@lxc-tmpl\n";

/// The tools a create from the mirror needs besides lxc-tmpl.
const BOOTSTRAP_TOOLS: &[&str] = &["debootstrap", "wget", "gpgv"];

/// Where the host keeps its apt keys: a `--keyring` must never land there.
const HOST_TRUSTED: &str = "/etc/apt/trusted.gpg.d";

/// `lxc-tmpl create --distro debian --name NAME --release RELEASE` from the
/// local mirror with its keyring, into the test dir's lxcpath and cache.
fn create(dir: &TestDir, server: &MirrorServer, fixture: &AptFixture, name: &str, release: &str) -> TestCommand {
    let mut cmd = dir.create("debian", name);
    fixture.from_mirror(&mut cmd, &server.url("debian"), release);
    cmd
}

/// The files of the host's apt trust dir with their contents.
fn host_trusted_keys() -> Vec<(String, Vec<u8>)> {
    let mut keys: Vec<(String, Vec<u8>)> = fs::read_dir(HOST_TRUSTED)
        .map(|dir| {
            dir.filter_map(Result::ok).map(|e| (e.path().display().to_string(), fs::read(e.path()).unwrap_or_default()))
        })
        .into_iter()
        .flatten()
        .collect();
    keys.sort();
    keys
}

/// What a Debian create wrote into a rootfs, file by file.
fn check_rootfs(rootfs: &Path, name: &str, mirror: &str, fixture: &AptFixture) {
    assert_eq!(read(rootfs.join("etc/hostname")), format!("{name}\n"));
    let hosts = read(rootfs.join("etc/hosts"));
    assert!(hosts.contains(&format!("127.0.1.1\t{name}\n")) && hosts.contains("127.0.0.1\tlocalhost\n"), "{hosts}");
    let interfaces = read(rootfs.join("etc/network/interfaces"));
    assert!(interfaces.contains("auto lo\niface lo inet loopback"), "{interfaces}");
    assert!(interfaces.contains("auto eth0\niface eth0 inet dhcp"), "{interfaces}");

    let sources = read(rootfs.join("etc/apt/sources.list"));
    for suite in ["bookworm", "bookworm-updates", "bookworm-security"] {
        let line = format!("deb {mirror} {suite} main\n");
        assert!(sources.contains(&line), "no `{line}` in sources.list:\n{sources}");
    }
    // The fixture keyring is trusted inside the container.
    let trusted = rootfs.join("etc/apt/trusted.gpg.d/lxc-tmpl-archive.gpg");
    assert_eq!(
        fs::read(&trusted).ok(),
        fs::read(&fixture.keyring).ok(),
        "{} is not the fixture keyring",
        trusted.display()
    );

    // No user, no root password.
    let shadow = read(rootfs.join("etc/shadow"));
    let root = shadow.lines().find_map(|l| l.strip_prefix("root:")).expect("root in /etc/shadow");
    assert!(root.starts_with('*') || root.starts_with('!'), "root has a password: root:{root}");
    let passwd = read(rootfs.join("etc/passwd"));
    let users: Vec<&str> = passwd
        .lines()
        .filter(|l| l.split(':').nth(2).and_then(|u| u.parse::<u32>().ok()).is_some_and(|u| (1000..65534).contains(&u)))
        .collect();
    assert!(users.is_empty(), "lxc-debian makes no user: {users:?}");

    // Locale and time zone.
    assert_eq!(read(rootfs.join("etc/default/locale")).lines().last(), Some("LANG=en_US.UTF-8"));
    assert!(read(rootfs.join("etc/locale.gen")).lines().any(|l| l == "en_US.UTF-8 UTF-8"), "locale.gen");
    assert!(rootfs.join("usr/lib/locale/locale-archive").is_file(), "locale-gen did not run");
    if let Ok(zone) = fs::read_to_string("/etc/timezone") {
        assert_eq!(read(rootfs.join("etc/timezone")), zone, "the host's time zone");
        let link = fs::read_link(rootfs.join("etc/localtime")).expect("etc/localtime is a link");
        assert_eq!(link, Path::new("/usr/share/zoneinfo").join(zone.trim()));
    }

    // Fresh ssh host keys, no service policy left, not the host's resolver.
    let keys = ssh_host_keys(rootfs);
    assert!(!keys.is_empty(), "no ssh host keys in {}", rootfs.display());
    for (file, key) in &keys {
        assert!(key.trim_end().ends_with(&format!(" root@{name}")), "{file}: {key}");
    }
    assert!(!rootfs.join("usr/sbin/policy-rc.d").exists(), "policy-rc.d left in the rootfs");
    let host_resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if let Ok(resolv) = fs::read_to_string(rootfs.join("etc/resolv.conf"))
        && host_resolv.contains("nameserver")
    {
        assert_ne!(resolv, host_resolv, "the host's resolv.conf was copied into the container");
    }

    // A getty on each LXC tty (4: the safe config sets no lxc.tty.max).
    let drop_in = read(rootfs.join("etc/systemd/system/getty@.service.d/lxc-tmpl-tty.conf"));
    assert!(drop_in.contains("ConditionPathExists=/dev/%I"), "{drop_in}");
    let wants = rootfs.join("etc/systemd/system/getty.target.wants");
    let gettys: Vec<String> = snapshot::listing(&wants).into_iter().filter(|n| n.starts_with("getty@tty")).collect();
    assert_eq!(gettys, ["getty@tty1.service", "getty@tty2.service", "getty@tty3.service", "getty@tty4.service"]);
}

/// One cold create, one warm create from the same cache, a failing create
/// that must not harm it, then a boot: bookworm is debootstrapped once.
#[test]
fn debian_from_the_local_mirror_creates_reuses_the_cache_and_boots() {
    require_root();
    require_tools(LXC_TOOLS);
    require_tools(BOOTSTRAP_TOOLS);
    let fixture = apt_fixture();
    let server = MirrorServer::start();
    let mirror = server.url("debian");
    let dir = TestDir::new("debian-create");
    let key = dir.write("id_ed25519.pub", KEY);
    let mut d1 = dir.container("d1");
    let d2 = dir.container("d2");
    let host_trusted_before = host_trusted_keys();

    // Cold: debootstrap + apt into the cache, then every hook.
    let started = Instant::now();
    let cold = create(&dir, &server, &fixture, "d1", "bookworm").arg("--auth-key").arg(&key).arg("-v").run();
    let cold_time = started.elapsed();
    cold.assert_success();
    assert!(cold.stderr.contains("cache built"), "{cold}");
    assert!(cold.stderr.contains("--variant=minbase"), "{cold}");
    assert!(cold.stderr.contains("--keyring=") && cold.stderr.contains("--force-check-gpg"), "{cold}");
    assert!(!cold.stderr.contains("Cannot check Release signature"), "{cold}");
    assert!(cold.stderr.contains("apt-get update --error-on=any"), "{cold}");
    assert!(cold.stdout.contains("lxc-attach") && cold.stdout.contains("locked"), "{cold}");
    let served = server.served();
    for suite in ["bookworm", "bookworm-updates", "bookworm-security"] {
        let index = format!("/debian/dists/{suite}/InRelease");
        assert!(served.iter().any(|s| s.target == index && s.status == 200), "{index} not fetched: {served:?}");
    }

    check_rootfs(&d1.rootfs(), "d1", &mirror, &fixture);
    let ssh = d1.rootfs().join("root/.ssh");
    let authorized = ssh.join("authorized_keys");
    assert_eq!(read(&authorized), KEY);
    assert_eq!((mode(&ssh), mode(&authorized)), (0o700, 0o600));
    assert_eq!((fs::metadata(&ssh).unwrap().uid(), fs::metadata(&authorized).unwrap().uid()), (0, 0));
    assert_eq!(host_trusted_keys(), host_trusted_before, "the create changed the host's {HOST_TRUSTED}");

    // The config: LXC loads it; include, name, arch, ttys; the safe network.
    let text = d1.config();
    assert_eq!(d1.lxc_config_item("lxc.uts.name"), "lxc.uts.name = d1", "{text}");
    assert_eq!(config::values(&text, "lxc.include"), ["/usr/share/lxc/config/debian.common.conf"], "{text}");
    assert_eq!(config::value(&text, "lxc.arch").as_deref(), Some("amd64"), "{text}");
    assert_eq!(config::value(&text, "lxc.tty.max").as_deref(), Some("4"), "{text}");
    assert_eq!(config::value(&text, "lxc.pty.max").as_deref(), Some("1024"), "{text}");
    assert_eq!(d1.lxc_config_item("lxc.tty.max"), "lxc.tty.max = 4");
    assert_eq!(config::value(&text, "lxc.net.0.type").as_deref(), Some("empty"), "{text}");
    assert!(config::entries(&text).iter().all(|(k, _)| !config::is_legacy_key(k)), "legacy keys:\n{text}");

    // The cache: one complete entry, keyed by the codename and the keyring,
    // without ssh host keys.
    let entries = cache_entries(&dir.cache(), "debian");
    assert_eq!(entries.len(), 1, "{entries:?}");
    let cached = entries[0].clone();
    let key_text = read(cached.parent().unwrap().parent().unwrap().join("key"));
    assert!(key_text.starts_with("debian-v1 release=bookworm arch=amd64 variant=minbase"), "{key_text}");
    assert!(key_text.contains(&format!("keyring={}@", fixture.keyring.display())), "{key_text}");
    assert!(ssh_host_keys(&cached).is_empty(), "the cache ships ssh host keys");
    // The build ran dpkg with force-unsafe-io; neither the cache nor a container keeps it.
    for rootfs in [&cached, &d1.rootfs()] {
        let unsafe_io = rootfs.join("etc/dpkg/dpkg.cfg.d/lxc-tmpl-unsafe-io");
        assert!(!unsafe_io.exists(), "{} outlived the build", unsafe_io.display());
        assert!(rootfs.join("etc/dpkg/dpkg.cfg.d").is_dir(), "dpkg's own config dir is missing");
    }
    let cache_inode = fs::metadata(&cached).unwrap().ino();

    // Warm: `--release 12` names the same codename, so the same cache entry;
    // per-container packages.
    let started = Instant::now();
    let warm = create(&dir, &server, &fixture, "d2", "12").args(["--packages", "file"]).arg("-v").run();
    let warm_time = started.elapsed();
    warm.assert_success();
    assert!(warm.stderr.contains("cache reused"), "{warm}");
    assert!(!warm.stderr.contains("debootstrap"), "the warm create ran debootstrap:\n{warm}");
    // Nothing heavy on the warm path: the locale came with the cache entry,
    // the time zone is files, the host keys come from the host's ssh-keygen.
    for heavy in ["in rootfs: locale-gen", "in rootfs: update-locale", "dpkg-reconfigure", "in rootfs: ssh-keygen"] {
        assert!(!warm.stderr.contains(heavy), "the warm create ran {heavy}:\n{warm}");
    }
    assert_eq!(
        cache_entries(&dir.cache(), "debian"),
        std::slice::from_ref(&cached),
        "--release 12 did not reuse bookworm's cache"
    );
    assert_eq!(fs::metadata(&cached).unwrap().ino(), cache_inode, "the cache was rebuilt");
    check_rootfs(&d2.rootfs(), "d2", &mirror, &fixture);
    assert!(d2.rootfs().join("usr/bin/file").exists(), "--packages file not installed");
    assert!(!cached.join("usr/bin/file").exists(), "--packages went into the cache");
    assert!(!d2.rootfs().join("root/.ssh/authorized_keys").exists(), "d1's key reached d2");
    assert_ne!(ssh_host_keys(&d1.rootfs()), ssh_host_keys(&d2.rootfs()), "two containers share host keys");
    eprintln!("debian bookworm from the local mirror: cold create {cold_time:.1?}, warm create {warm_time:.1?}");

    // An unreachable mirror: one clear error, nothing left, the cache unharmed.
    let lxcpath_before = snapshot::listing(&dir.lxcpath());
    let cache_before = snapshot::tree(&dir.cache());
    let unreachable = MirrorServer::unreachable_url();
    let mut failing = dir.create("debian", "d3");
    failing.args(["--release", "bookworm", "--mirror", &unreachable, "--security-mirror", &unreachable]);
    failing.arg("--keyring").arg(&fixture.keyring).env("HTTP_PROXY", "none");
    let failed = failing.run();
    failed.assert_failed();
    assert_mentions(&error_line(&failed.stderr), &["debootstrap", &unreachable]);
    assert!(!dir.lxcpath().join("d3").exists(), "the failed create left its container dir");
    assert_eq!(snapshot::listing(&dir.lxcpath()), lxcpath_before, "the failed create left something in the lxcpath");
    assert_eq!(
        cache_entries(&dir.cache(), "debian"),
        std::slice::from_ref(&cached),
        "the failed create changed the complete entries"
    );
    assert_eq!(fs::metadata(&cached).unwrap().ino(), cache_inode);
    let before: HashSet<&str> = cache_before.lines().collect();
    let cache_after = snapshot::tree(&dir.cache());
    let changed: Vec<&str> = cache_after.lines().filter(|l| !before.contains(l)).collect();
    assert!(
        changed.iter().all(|l| !l.contains("/rootfs") && !l.contains("staging.")),
        "the failed create left more than an empty cache entry: {changed:?}"
    );

    // Boot d1 with the safe config and get in.
    let started = Instant::now();
    d1.start();
    eprintln!("debian d1 started in {:.1?} (including the wait for the boot lock)", started.elapsed());
    assert_eq!(d1.attach(&["hostname"]).trim(), "d1");
    assert_eq!(d1.attach(&["cat", "/root/.ssh/authorized_keys"]), KEY);
    d1.attach(&["test", "!", "-e", "/usr/sbin/policy-rc.d"]);
    assert_eq!(d1.attach(&["sh", "-c", ". /etc/default/locale && echo $LANG"]).trim(), "en_US.UTF-8");
    // systemd came up far enough to start the gettys and sshd (wait for them:
    // lxc-start returns when init runs, not when the boot is done).
    let active = d1.attach(&[
        "sh",
        "-c",
        "for i in $(seq 60); do systemctl is-active --quiet ssh getty@tty1 getty@tty4 && break; sleep 0.5; done; \
         systemctl is-active ssh getty@tty1 getty@tty4",
    ]);
    if active.split_whitespace().ne(["active", "active", "active"]) {
        let status = d1.attach(&["sh", "-c", "systemctl status --no-pager ssh getty@tty1 getty@tty4 2>&1; true"]);
        panic!("not every unit is active after 30 s: {active}\n{status}");
    }
    // The locale generated with the cache entry is usable, and the container's
    // sshd loads every host key the host's ssh-keygen made.
    assert_eq!(d1.attach(&["sh", "-c", ". /etc/default/locale && LANG=$LANG locale 2>&1 >/dev/null"]), "");
    assert_eq!(d1.attach(&["sh", "-c", "/usr/sbin/sshd -t 2>&1"]), "", "sshd -t");
}

/// Bad input is refused before anything is made: one `error:` line naming
/// the problem, a non-zero exit, the test dir (lxcpath and cache) unchanged,
/// and the mirror never asked.
#[test]
fn debian_bad_input_is_refused_and_leaves_nothing() {
    require_root();
    let fixture = apt_fixture();
    let server = MirrorServer::start();
    let dir = TestDir::new("debian-bad-input");
    let cases: &[(&[&str], &[&str])] = &[
        (&["--release", "bookwurm"], &["unknown debian release", "bookwurm", "stable"]),
        (&["--release", "experimental"], &["experimental", "unstable"]),
        (&["--release", "bookworm", "--arch", "vax"], &["unknown architecture", "vax"]),
        (&["--release", "bookworm", "--arch", "s390x"], &["s390x", "qemu-user-static"]),
        (&["--release", "bookworm", "--arch", "riscv64"], &["riscv64", "debian-ports", "--release unstable"]),
        (&["--release", "bookworm", "--arch", "arm64", "-I", "/bin/sh"], &["--interpreter-path", "statically"]),
        (&["--release", "bookworm", "--auth-key", "/nonexistent/id.pub"], &["--auth-key", "/nonexistent/id.pub"]),
        (&["--release", "bookworm", "--mirror", "deb.debian.org"], &["--mirror", "not a mirror URL"]),
    ];
    let mirror = server.url("debian");
    for (args, needles) in cases {
        let before = dir.snapshot();
        let mut cmd = dir.create("debian", "bad");
        if !args.contains(&"--mirror") {
            cmd.args(["--mirror", &mirror]);
        }
        cmd.args(["--security-mirror", &mirror]).arg("--keyring").arg(&fixture.keyring);
        cmd.args(*args).env("HTTP_PROXY", "none");
        let outcome = cmd.run();
        outcome.assert_failed();
        assert_mentions(&error_line(&outcome.stderr), needles);
        assert_same_text!(before, dir.snapshot(), "{args:?} left something behind:\n{outcome}");
    }
    assert!(server.served().is_empty(), "bad input reached the mirror: {:?}", server.served());
}

/// `--help` lists every option of lxc-debian with its default; the host's
/// own options stay the host's.
#[test]
fn debian_help_lists_every_option_with_its_default() {
    require_root();
    let dir = TestDir::new("debian-help");
    let help = dir.command().args(["create", "--distro", "debian", "--help"]).stdout();
    let section = help.split("debian options:").nth(1).unwrap_or_else(|| panic!("no debian options section:\n{help}"));
    // An option's entry: its first line, in the shallow flag column, and the
    // deeper-indented lines wrapped after it.
    let indent = |l: &str| l.len() - l.trim_start().len();
    let entry = |flags: &str| -> String {
        let mut lines =
            section.lines().skip_while(|l| !(indent(l) <= 8 && l.trim_start().starts_with('-') && l.contains(flags)));
        let first = lines.next().unwrap_or_else(|| panic!("{flags} is not in the help:\n{section}"));
        let rest = lines.take_while(|l| indent(l) > 8);
        std::iter::once(first).chain(rest).collect::<Vec<_>>().join("\n")
    };
    for flags in [
        "-r, --release",
        "-a, --arch",
        "-I, --interpreter-path",
        "-S, --auth-key",
        "--packages",
        "--mirror <",
        "--security-mirror",
        "--keyring",
        "--enable-non-free",
        "-c, --clean",
        "--no-check-gpg",
        "--http-proxy",
        "--locale",
    ] {
        let text = entry(flags);
        assert!(text.contains("default"), "{flags} does not say its default:\n{text}");
    }
    assert!(entry("-r, --release").contains("default: stable"), "{section}");
    assert!(entry("--keyring").contains("debian-archive-keyring.gpg"), "{section}");
    assert!(section.contains("[env: MIRROR=") && section.contains("[env: SECURITY_MIRROR="), "{section}");
    assert!(!section.contains("--variant") && !section.contains("--user"), "not lxc-debian's:\n{section}");
    assert!(help.contains("--flush-cache") && help.contains("--debug"), "{help}");
}

/// A dry run: the config the create would write (tty count from the base
/// config, LXC's random hwaddr) and, with `--clean`, no cache; nothing on
/// disk either way.
#[test]
fn debian_dry_run_config_and_clean_without_cache() {
    require_root();
    let fixture = apt_fixture();
    let dir = TestDir::new("debian-dry-run");
    let base = dir.write("veth.conf", "lxc.net.0.type = veth\nlxc.net.0.link = lxcbr0\nlxc.tty.max = 2\n");
    let before = dir.snapshot();
    let dry_run = |extra: &[&str]| {
        let mut cmd = dir.command();
        cmd.args(["create", "--dry-run", "--distro", "debian", "--name", "dry", "-P"]).arg(dir.lxcpath());
        cmd.arg("--cache-dir").arg(dir.cache()).arg("-f").arg(&base);
        cmd.args(["--release", "bookworm", "--mirror", "http://127.0.0.1:9/debian"])
            .arg("--keyring")
            .arg(&fixture.keyring);
        cmd.args(extra).env("HTTP_PROXY", "none").stdout()
    };
    let cached = dry_run(&[]);
    let clean = dry_run(&["--clean"]);
    assert_same_text!(before, dir.snapshot(), "--dry-run touched the disk");
    assert!(cached.contains("# would build or reuse the cached rootfs"), "{cached}");
    assert!(clean.contains("# would build the rootfs in place"), "--clean still uses the cache:\n{clean}");
    let text: String = cached.lines().filter(|l| l.starts_with("lxc.")).map(|l| format!("{l}\n")).collect();
    assert_eq!(config::values(&text, "lxc.include"), ["/usr/share/lxc/config/debian.common.conf"], "{cached}");
    assert_eq!(config::value(&text, "lxc.uts.name").as_deref(), Some("dry"), "{cached}");
    assert_eq!(config::value(&text, "lxc.tty.max").as_deref(), Some("2"), "the base config's tty count:\n{cached}");
    assert_eq!(config::value(&text, "lxc.pty.max").as_deref(), Some("1024"), "{cached}");
    let hwaddr = config::value(&text, "lxc.net.0.hwaddr").unwrap_or_else(|| panic!("no hwaddr:\n{cached}"));
    assert!(hwaddr.starts_with("00:16:3e:") && hwaddr.len() == 17, "bad hwaddr {hwaddr}");
}
