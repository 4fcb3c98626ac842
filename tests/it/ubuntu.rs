//! The ubuntu plugin end to end, against the local signed apt mirror (never
//! the public Ubuntu mirrors): real debootstrap, apt in the namespaced
//! runner, every hook; then LXC loads, boots and attaches to the container.
//!
//! The mirror serves Debian bookworm packages under Ubuntu suite names (see
//! `lxc_tmpl_tests::mirror`), so these tests check what the plugin does
//! (debootstrap arguments, sources.list, users, keys, cache), not Ubuntu's
//! own content; e.g. jammy is a netplan release, but the fixture rootfs has
//! no netplan, so /etc/network/interfaces is what gets written.
//!
//! Timings are printed (`--nocapture`); nothing asserts on them.

use std::{
    collections::HashSet,
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    thread,
    time::Instant,
};

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

/// `lxc-tmpl create --distro ubuntu --release jammy` from the local mirror
/// with its keyring, into the test dir's lxcpath and cache.
fn create(dir: &TestDir, server: &MirrorServer, fixture: &AptFixture, name: &str) -> TestCommand {
    let mut cmd = dir.create("ubuntu", name);
    let mirror = server.url("ubuntu");
    cmd.args(["--release", "jammy", "--mirror", &mirror, "--security-mirror", &mirror]);
    cmd.arg("--keyring").arg(&fixture.keyring);
    // Deterministic whatever the caller's environment says.
    cmd.env("HTTP_PROXY", "none").env("LANG", "C.UTF-8");
    cmd
}

/// The one complete entry (`<cache>/ubuntu/<hash>/rootfs`) of a cache dir.
fn cache_rootfs(cache: &Path) -> PathBuf {
    let entries = cache_entries(cache, "ubuntu");
    assert_eq!(entries.len(), 1, "expected one complete ubuntu cache entry in {}: {entries:?}", cache.display());
    entries[0].clone()
}

/// Paths below `cache` named `staging.*` (builds in progress or killed).
fn staging_dirs(cache: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for distro in fs::read_dir(cache).into_iter().flatten().filter_map(Result::ok) {
        for entry in fs::read_dir(distro.path()).into_iter().flatten().filter_map(Result::ok) {
            for inner in fs::read_dir(entry.path()).into_iter().flatten().filter_map(Result::ok) {
                if inner.file_name().to_string_lossy().starts_with("staging.") {
                    found.push(inner.path());
                }
            }
        }
    }
    found
}

/// What the create wrote into a rootfs, checked file by file.
fn check_rootfs(rootfs: &Path, name: &str, mirror: &str) {
    assert_eq!(read(rootfs.join("etc/hostname")), format!("{name}\n"));
    let hosts = read(rootfs.join("etc/hosts"));
    assert!(hosts.contains(&format!("127.0.1.1\t{name}\n")) && hosts.contains("127.0.0.1\tlocalhost\n"), "{hosts}");

    // jammy is a netplan release; the fixture has no netplan: interfaces.
    let has_netplan = ["usr/sbin/netplan", "sbin/netplan"].iter().any(|p| rootfs.join(p).exists());
    let (written, other) = if has_netplan {
        ("etc/netplan/10-lxc.yaml", "etc/network/interfaces")
    } else {
        ("etc/network/interfaces", "etc/netplan/10-lxc.yaml")
    };
    let network = read(rootfs.join(written));
    assert!(network.contains("Written by lxc-tmpl") && network.contains("eth0"), "{written}:\n{network}");
    if !has_netplan {
        assert!(network.contains("iface eth0 inet dhcp"), "{network}");
    }
    assert!(!rootfs.join(other).exists() || !read(rootfs.join(other)).contains("lxc-tmpl"), "both network files");

    let sources = read(rootfs.join("etc/apt/sources.list"));
    for suite in ["jammy", "jammy-updates", "jammy-security"] {
        let line = format!("deb {mirror} {suite} main restricted universe multiverse\n");
        assert!(sources.contains(&line), "no `{line}` in sources.list:\n{sources}");
    }
    assert!(rootfs.join("etc/apt/trusted.gpg.d/lxc-tmpl-archive.gpg").is_file(), "fixture keyring not installed");

    // The user: locked password, sudo group.
    let passwd = read(rootfs.join("etc/passwd"));
    let user = passwd.lines().find(|l| l.starts_with("ubuntu:")).unwrap_or_else(|| panic!("no ubuntu user:\n{passwd}"));
    let fields: Vec<&str> = user.split(':').collect();
    assert_eq!((fields[5], fields[6]), ("/home/ubuntu", "/bin/bash"), "{user}");
    let shadow = read(rootfs.join("etc/shadow"));
    let hash = shadow.lines().find_map(|l| l.strip_prefix("ubuntu:")).expect("ubuntu in /etc/shadow");
    assert!(hash.starts_with('!') || hash.starts_with('*'), "the password is not locked: ubuntu:{hash}");
    let group = read(rootfs.join("etc/group"));
    let sudo = group.lines().find(|l| l.starts_with("sudo:")).unwrap_or_else(|| panic!("no sudo group:\n{group}"));
    assert!(sudo.rsplit(':').next().unwrap_or_default().split(',').any(|m| m == "ubuntu"), "{sudo}");

    // Fresh host keys, no service policy left behind, no host resolver.
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
}

/// One cold create, one warm create from the same cache, a failing create
/// that must not harm the cache, then a boot: the cache is built once for
/// all of it.
#[test]
fn ubuntu_from_the_local_mirror_creates_reuses_the_cache_and_boots() {
    require_root();
    require_tools(LXC_TOOLS);
    require_tools(BOOTSTRAP_TOOLS);
    let fixture = apt_fixture();
    let server = MirrorServer::start();
    let mirror = server.url("ubuntu");
    let dir = TestDir::new("ubuntu-create");
    let key = dir.write("id_ed25519.pub", KEY);
    let mut u1 = dir.container("u1");
    let u2 = dir.container("u2");

    // Cold: debootstrap + apt into the cache, then every hook.
    let started = Instant::now();
    let cold = create(&dir, &server, &fixture, "u1").arg("--auth-key").arg(&key).arg("-v").run();
    let cold_time = started.elapsed();
    cold.assert_success();
    assert!(cold.stderr.contains("cache built"), "{cold}");
    assert!(cold.stderr.contains("--keyring=") && cold.stderr.contains("--force-check-gpg"), "{cold}");
    assert!(!cold.stderr.contains("Cannot check Release signature"), "{cold}");
    assert!(cold.stderr.contains("apt-get update --error-on=any"), "{cold}");
    assert!(cold.stdout.contains("lxc-attach") && cold.stdout.contains("locked"), "{cold}");
    let served = server.served();
    assert!(served.iter().any(|s| s.target.ends_with("/dists/jammy/InRelease") && s.status == 200), "{served:?}");
    assert!(
        served.iter().any(|s| s.target.ends_with("/dists/jammy-security/InRelease")),
        "no apt update in the chroot"
    );

    check_rootfs(&u1.rootfs(), "u1", &mirror);
    let ssh = u1.rootfs().join("home/ubuntu/.ssh");
    let authorized = ssh.join("authorized_keys");
    assert_eq!(read(&authorized), KEY);
    assert_eq!((mode(&ssh), mode(&authorized)), (0o700, 0o600));
    let uid = read(u1.rootfs().join("etc/passwd"))
        .lines()
        .find_map(|l| l.strip_prefix("ubuntu:x:").and_then(|r| r.split(':').next()).map(str::to_owned))
        .expect("ubuntu's uid");
    assert_eq!(fs::metadata(&authorized).unwrap().uid().to_string(), uid, "authorized_keys not owned by ubuntu");
    assert_eq!(fs::metadata(&ssh).unwrap().uid().to_string(), uid);

    // The config: LXC loads it; include, name, arch; the safe network.
    let text = u1.config();
    assert_eq!(u1.lxc_config_item("lxc.uts.name"), "lxc.uts.name = u1", "{text}");
    let includes = config::values(&text, "lxc.include");
    assert!(includes.iter().any(|i| i == "/usr/share/lxc/config/ubuntu.common.conf"), "{text}");
    assert_eq!(config::value(&text, "lxc.arch").as_deref(), Some("amd64"), "{text}");
    assert_eq!(config::value(&text, "lxc.net.0.type").as_deref(), Some("empty"), "{text}");
    assert!(config::entries(&text).iter().all(|(k, _)| !config::is_legacy_key(k)), "legacy keys:\n{text}");

    // The cache: complete, keyed with the keyring, no ssh host keys.
    let cached = cache_rootfs(&dir.cache());
    let key_text = read(cached.parent().unwrap().parent().unwrap().join("key"));
    assert!(
        key_text.contains("release=jammy") && key_text.contains(&format!("keyring={}@", fixture.keyring.display()))
    );
    assert!(ssh_host_keys(&cached).is_empty(), "the cache ships ssh host keys");
    let cache_inode = fs::metadata(&cached).unwrap().ino();

    // Warm: no download, per-container packages.
    let started = Instant::now();
    let warm = create(&dir, &server, &fixture, "u2").args(["--packages", "file"]).arg("-v").run();
    let warm_time = started.elapsed();
    warm.assert_success();
    assert!(warm.stderr.contains("cache reused"), "{warm}");
    assert!(!warm.stderr.contains("debootstrap"), "the warm create ran debootstrap:\n{warm}");
    assert_eq!(fs::metadata(&cached).unwrap().ino(), cache_inode, "the cache was rebuilt");
    check_rootfs(&u2.rootfs(), "u2", &mirror);
    assert!(u2.rootfs().join("usr/bin/file").exists(), "--packages file not installed");
    assert!(!cached.join("usr/bin/file").exists(), "--packages went into the cache");
    assert!(!u1.rootfs().join("usr/bin/file").exists(), "--packages of u2 reached u1");
    assert!(!u2.rootfs().join("home/ubuntu/.ssh/authorized_keys").exists());
    assert_ne!(
        ssh_host_keys(&u1.rootfs()),
        ssh_host_keys(&u2.rootfs()),
        "two containers from one cache share host keys"
    );
    eprintln!("ubuntu jammy from the local mirror: cold create {cold_time:.1?}, warm create {warm_time:.1?}");

    // An unreachable mirror: a clear error, nothing left, the cache unharmed.
    let lxcpath_before = snapshot::listing(&dir.lxcpath());
    let cache_before = snapshot::tree(&dir.cache());
    let unreachable = MirrorServer::unreachable_url().replace("/debian", "/ubuntu");
    let mut failing = dir.create("ubuntu", "u3");
    failing.args(["--release", "jammy", "--mirror", &unreachable, "--security-mirror", &unreachable]);
    failing.arg("--keyring").arg(&fixture.keyring).env("HTTP_PROXY", "none");
    let failed = failing.run();
    failed.assert_failed();
    assert_mentions(&error_line(&failed.stderr), &["debootstrap", &unreachable]);
    assert!(!dir.lxcpath().join("u3").exists(), "the failed create left its container dir");
    assert!(staging_dirs(&dir.cache()).is_empty(), "a staging dir was left: {:?}", staging_dirs(&dir.cache()));
    assert_eq!(cache_rootfs(&dir.cache()), cached, "a second complete entry appeared");
    assert_eq!(fs::metadata(&cached).unwrap().ino(), cache_inode);
    assert_eq!(snapshot::listing(&dir.lxcpath()), lxcpath_before, "the failed create left something in the lxcpath");
    let before: HashSet<&str> = cache_before.lines().collect();
    let cache_after = snapshot::tree(&dir.cache());
    let changed: Vec<&str> = cache_after.lines().filter(|l| !before.contains(l)).collect();
    assert!(
        changed.iter().all(|l| !l.contains("/rootfs") && !l.contains("staging.")),
        "the failed create changed more than an empty cache entry: {changed:?}"
    );

    // Boot u1 with the safe config and get in (start waits for the
    // machine-wide lock other tests' boots hold).
    let started = Instant::now();
    u1.start();
    eprintln!("ubuntu u1 started in {:.1?} (including the wait for the boot lock)", started.elapsed());
    assert_eq!(u1.attach(&["hostname"]).trim(), "u1");
    assert_eq!(u1.attach(&["cat", "/etc/hostname"]).trim(), "u1");
    let id = u1.attach(&["id", "ubuntu"]);
    assert!(id.contains("(sudo)"), "{id}");
    u1.attach(&["test", "!", "-e", "/usr/sbin/policy-rc.d"]);
}

/// Two creates started at once on an empty cache: one builds, the other
/// waits for it and copies, both succeed.
#[test]
fn ubuntu_concurrent_creates_build_the_cache_once() {
    require_root();
    require_tools(LXC_TOOLS);
    require_tools(BOOTSTRAP_TOOLS);
    let fixture = apt_fixture();
    let server = MirrorServer::start();
    let dir = TestDir::new("ubuntu-concurrent");
    let _a = dir.container("ca");
    let _b = dir.container("cb");
    let started = Instant::now();
    let outcomes: Vec<_> = thread::scope(|scope| {
        let runs: Vec<_> = ["ca", "cb"]
            .into_iter()
            .map(|name| {
                let mut cmd = create(&dir, &server, &fixture, name);
                scope.spawn(move || cmd.run())
            })
            .collect();
        runs.into_iter().map(|r| r.join().expect("create thread")).collect()
    });
    eprintln!("two concurrent ubuntu creates on an empty cache: {:.1?}", started.elapsed());
    for outcome in &outcomes {
        outcome.assert_success();
    }
    let built = outcomes.iter().filter(|o| o.stderr.contains("cache built")).count();
    let reused = outcomes.iter().filter(|o| o.stderr.contains("cache reused")).count();
    assert_eq!((built, reused), (1, 1), "one builds, the other reuses:\n{}\n{}", outcomes[0], outcomes[1]);
    let waited = outcomes.iter().find(|o| o.stderr.contains("cache reused")).unwrap();
    // The wait names distro, release and arch and who builds, not the whole cache key.
    assert_mentions(&waited.stderr, &["waiting for the ubuntu jammy amd64 cache: pid "]);
    cache_rootfs(&dir.cache());
    let debootstraps = server.served().iter().filter(|s| s.target.ends_with("/dists/jammy/InRelease")).count();
    // One debootstrap, plus the apt-get update of the build.
    assert!(debootstraps <= 2, "jammy/InRelease fetched {debootstraps} times");
    for name in ["ca", "cb"] {
        check_rootfs(&dir.lxcpath().join(name).join("rootfs"), name, &server.url("ubuntu"));
    }
}

/// Bad input is refused before anything is made: one `error:` line naming
/// the problem, a non-zero exit, the test dir unchanged.
#[test]
fn ubuntu_bad_input_is_refused_and_leaves_nothing() {
    require_root();
    let fixture = apt_fixture();
    let server = MirrorServer::start();
    let dir = TestDir::new("ubuntu-bad-input");
    let cases: &[(&[&str], &[&str])] = &[
        (&["--release", "jammmy"], &["unknown ubuntu release", "jammmy"]),
        (&["--release", "jammy", "--arch", "sparc64"], &["unknown architecture", "sparc64"]),
        (&["--release", "jammy", "--arch", "s390x"], &["s390x", "qemu-user-static"]),
        (&["--release", "jammy", "--auth-key", "/nonexistent/id.pub"], &["--auth-key", "/nonexistent/id.pub"]),
        (&["--release", "jammy", "--bindhome", "no-such-user-x"], &["--bindhome", "no-such-user-x"]),
        (&["--release", "jammy", "--variant", "fakechroot"], &["--variant", "fakechroot"]),
    ];
    let mirror = server.url("ubuntu");
    for (args, needles) in cases {
        let before = dir.snapshot();
        let mut cmd = dir.create("ubuntu", "bad");
        cmd.args(["--mirror", &mirror, "--security-mirror", &mirror]).arg("--keyring").arg(&fixture.keyring);
        cmd.args(*args).env("HTTP_PROXY", "none");
        let outcome = cmd.run();
        outcome.assert_failed();
        assert_mentions(&error_line(&outcome.stderr), needles);
        assert_same_text!(before, dir.snapshot(), "{args:?} left something behind:\n{outcome}");
    }
    assert!(server.served().is_empty(), "bad input reached the mirror: {:?}", server.served());

    // Without --keyring, a host without the Ubuntu keyring is told what to do.
    if !Path::new("/usr/share/keyrings/ubuntu-archive-keyring.gpg").exists() {
        let before = dir.snapshot();
        let mut cmd = dir.create("ubuntu", "bad");
        cmd.args(["--release", "jammy", "--mirror", &mirror]).env("HTTP_PROXY", "none");
        let outcome = cmd.run();
        outcome.assert_failed();
        assert_mentions(&error_line(&outcome.stderr), &["apt-get install ubuntu-keyring", "--keyring"]);
        assert_same_text!(before, dir.snapshot(), "a missing keyring left something behind");
    }
}

/// `--help` lists every option with its default.
#[test]
fn ubuntu_help_lists_every_option_with_its_default() {
    require_root();
    let dir = TestDir::new("ubuntu-help");
    let help = dir.command().args(["create", "--distro", "ubuntu", "--help"]).stdout();
    let section = help.split("ubuntu options:").nth(1).unwrap_or_else(|| panic!("no ubuntu options section:\n{help}"));
    let options = [
        "-r, --release",
        "-a, --arch",
        "--variant",
        "--packages",
        "-u, --user",
        "--password ",
        "--password-file",
        "-b, --bindhome",
        "-S, --auth-key",
        "--mirror <",
        "--security-mirror",
        "--keyring",
        "--no-check-gpg",
        "-x, --trim",
        "--http-proxy",
        "--locale",
    ];
    // Each option's entry starts on a line with the flags in the first,
    // shallow column (help text wraps onto deeply indented lines, which may
    // start with a `--flag` named in the text) and runs up to the next one.
    let mut entries: Vec<String> = Vec::new();
    for line in section.lines() {
        let indent = line.len() - line.trim_start().len();
        if indent <= 8 && line.trim_start().starts_with('-') {
            entries.push(String::new());
        }
        if let Some(entry) = entries.last_mut() {
            entry.push_str(line);
            entry.push('\n');
        }
    }
    for option in options {
        let entry = entries
            .iter()
            .find(|e| e.lines().next().is_some_and(|first| first.contains(option)))
            .unwrap_or_else(|| panic!("{option} is not in the help:\n{section}"));
        assert!(entry.contains("default"), "{option} does not say its default:\n{entry}");
    }
    // The host's own options stay the host's.
    assert!(help.contains("--flush-cache") && help.contains("--debug"), "{help}");
    assert!(section.contains("[env: MIRROR=") && section.contains("[env: HTTP_PROXY="), "{section}");
}

/// A dry run with a veth base config: the config the create would write,
/// with LXC's random hwaddr, and nothing on disk.
#[test]
fn ubuntu_dry_run_config_has_includes_and_hwaddr() {
    require_root();
    let fixture = apt_fixture();
    let dir = TestDir::new("ubuntu-dry-run");
    let base = dir.write("veth.conf", "lxc.net.0.type = veth\nlxc.net.0.link = lxcbr0\n");
    let before = dir.snapshot();
    let mut cmd = dir.command();
    cmd.args(["create", "--dry-run", "--distro", "ubuntu", "--name", "dry", "-P"]).arg(dir.lxcpath());
    cmd.arg("--cache-dir").arg(dir.cache()).arg("-f").arg(&base);
    cmd.args(["--release", "22.04", "--mirror", "http://127.0.0.1:9/ubuntu"]).arg("--keyring").arg(&fixture.keyring);
    let stdout = cmd.env("HTTP_PROXY", "none").stdout();
    assert_same_text!(before, dir.snapshot(), "--dry-run touched the disk");
    let text: String = stdout.lines().filter(|l| l.starts_with("lxc.")).map(|l| format!("{l}\n")).collect();
    assert!(config::values(&text, "lxc.include").contains(&"/usr/share/lxc/config/ubuntu.common.conf".to_owned()));
    assert_eq!(config::value(&text, "lxc.uts.name").as_deref(), Some("dry"), "{stdout}");
    assert_eq!(config::value(&text, "lxc.arch").as_deref(), Some("amd64"), "{stdout}");
    let hwaddr = config::value(&text, "lxc.net.0.hwaddr").unwrap_or_else(|| panic!("no hwaddr:\n{stdout}"));
    let octets: Vec<&str> = hwaddr.split(':').collect();
    assert!(
        hwaddr.starts_with("00:16:3e:")
            && octets.len() == 6
            && octets.iter().all(|o| o.len() == 2 && u8::from_str_radix(o, 16).is_ok()),
        "bad hwaddr {hwaddr}"
    );
}
