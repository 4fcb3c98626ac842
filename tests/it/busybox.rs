//! The busybox plugin end to end: create, load in LXC, boot, attach, stop,
//! destroy; and the legacy config dialect against a golden file.

use std::{fs, os::unix::fs::MetadataExt, path::Path};

use lxc_tmpl_tests::{LXC_TOOLS, TestDir, assert_same_text, config, paths, require_root, require_tools};

/// Set to rewrite the golden files from the current output.
const BLESS_ENV: &str = "LXC_TMPL_BLESS";

#[test]
fn busybox_container_boots_and_answers() {
    require_root();
    require_tools(LXC_TOOLS);
    let dir = TestDir::new("busybox-boots");
    let mut ct = dir.container("bbboot");
    dir.create("busybox", "bbboot").stdout();
    assert!(ct.rootfs().is_dir(), "create did not make {}", ct.rootfs().display());

    ct.start();
    assert_eq!(ct.state(), "RUNNING");
    assert_eq!(ct.attach(&["hostname"]).trim(), "bbboot", "hostname inside the container");
    assert_eq!(ct.attach(&["cat", "/etc/hostname"]).trim(), "bbboot", "/etc/hostname inside the container");
    // PID 1 is busybox's init: named init, and the very busybox binary of
    // the rootfs (sbin/init may be a hard link, so compare the inode).
    let cmdline = ct.attach(&["cat", "/proc/1/cmdline"]);
    assert!(cmdline.starts_with("/sbin/init") || cmdline.starts_with("init\0"), "PID 1 is not init: {cmdline:?}");
    let init_exe = fs::metadata(format!("/proc/{}/exe", ct.init_pid())).expect("stat the init's exe");
    let busybox = fs::metadata(ct.rootfs().join("bin/busybox")).expect("stat the rootfs busybox");
    assert_eq!(
        (init_exe.dev(), init_exe.ino()),
        (busybox.dev(), busybox.ino()),
        "PID 1 does not run the rootfs's bin/busybox (inside: {})",
        ct.attach(&["readlink", "/proc/1/exe"]).trim()
    );

    // Stops with its halt signal, like a container made by lxc-create.
    let stopped = ct.stop_clean(30);
    assert!(stopped.status.success(), "the container did not stop cleanly (halt signal):\n{stopped}");
    assert_eq!(ct.state(), "STOPPED");
    let destroyed = ct.destroy();
    assert!(destroyed.status.success(), "lxc-destroy failed:\n{destroyed}");
    assert!(!ct.dir().exists(), "lxc-destroy left {}", ct.dir().display());
}

#[test]
fn busybox_config_is_modern_and_loads_in_lxc() {
    require_root();
    require_tools(LXC_TOOLS);
    let dir = TestDir::new("busybox-config");
    let ct = dir.container("bbconf");
    dir.create("busybox", "bbconf").stdout();
    let text = ct.config();

    // LXC loads it and sees the name.
    assert_eq!(ct.lxc_config_item("lxc.uts.name"), "lxc.uts.name = bbconf", "config:\n{text}");

    assert!(text.starts_with('#'), "the config starts without a header comment:\n{text}");
    let legacy: Vec<_> = config::entries(&text).into_iter().filter(|(k, _)| config::is_legacy_key(k)).collect();
    assert!(legacy.is_empty(), "legacy keys {legacy:?} in a config for LXC 2.1+:\n{text}");

    // The safe base config given with -f is in it.
    assert_eq!(config::value(&text, "lxc.net.0.type").as_deref(), Some("empty"), "{text}");
    assert_eq!(config::value(&text, "lxc.apparmor.profile").as_deref(), Some("unconfined"), "{text}");
    assert_eq!(config::value(&text, "lxc.start.auto").as_deref(), Some("0"), "{text}");

    let includes = config::values(&text, "lxc.include");
    let common = includes.iter().find(|i| i.ends_with("/common.conf"));
    let common = common.unwrap_or_else(|| panic!("no lxc.include of common.conf:\n{text}"));
    assert!(Path::new(common).is_file(), "included {common} does not exist");

    // lxc-ls sees it like a container made by lxc-create.
    let listed = ct.lxc_tool_output("lxc-ls", &["-1"]);
    assert!(listed.lines().any(|l| l.trim() == "bbconf"), "lxc-ls does not list bbconf:\n{listed}");

    let rootfs = ct.rootfs();
    assert_eq!(
        config::value(&text, "lxc.rootfs.path"),
        Some(format!("dir:{}", rootfs.display())),
        "lxc.rootfs.path does not point at the rootfs:\n{text}"
    );
    assert!(rootfs.join("bin/busybox").is_file(), "no bin/busybox in the rootfs");
}

#[test]
fn busybox_dry_run_touches_nothing() {
    require_root();
    let dir = TestDir::new("busybox-dry-run");
    let before = dir.snapshot();
    let stdout = dir.create("busybox", "dry1").arg("--dry-run").stdout();
    assert_same_text!(before, dir.snapshot(), "--dry-run touched the disk");
    let config = config_part(&stdout);
    assert_eq!(config::value(&config, "lxc.uts.name").as_deref(), Some("dry1"), "{stdout}");
    let rootfs = dir.lxcpath().join("dry1/rootfs");
    assert_eq!(config::value(&config, "lxc.rootfs.path"), Some(format!("dir:{}", rootfs.display())), "{stdout}");
    assert_eq!(config::value(&config, "lxc.net.0.type").as_deref(), Some("empty"), "{stdout}");
}

/// The `lxc.*` lines of a dry run's output, normalised to `key = value`.
fn config_part(stdout: &str) -> String {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("lxc.") && l.contains('='))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| format!("{} = {}\n", k.trim(), v.trim()))
        .collect()
}

#[test]
fn busybox_dry_run_for_lxc_2_0_matches_golden() {
    require_root();
    let nowhere = Path::new("/nonexistent");
    assert!(!nowhere.exists(), "{} exists; this test needs it absent", nowhere.display());
    let dir = TestDir::new("busybox-golden");
    let before = dir.snapshot();
    let base = paths::source_file("golden/base.conf");
    let stdout = dir
        .command()
        .args(["create", "--dry-run", "--lxc-version", "2.0", "--distro", "busybox", "--name", "golden"])
        .args(["-P", "/nonexistent/lxcpath", "--cache-dir", "/nonexistent/cache", "-f"])
        .arg(&base)
        .args(["--busybox-path", "/bin/busybox"])
        .stdout();
    assert!(!nowhere.exists(), "--dry-run created {}", nowhere.display());
    assert_same_text!(before, dir.snapshot(), "--dry-run touched the test dir");

    let actual = config_part(&stdout);
    assert!(!actual.is_empty(), "no `lxc.* = ...` lines in the dry run's output:\n{stdout}");
    // Independent of the golden file: the LXC 2.0 dialect only.
    let modern: Vec<_> = config::entries(&actual).into_iter().filter(|(k, _)| config::is_modern_key(k)).collect();
    assert!(modern.is_empty(), "LXC 2.1+ keys {modern:?} in a config for LXC 2.0:\n{actual}");
    assert_eq!(config::value(&actual, "lxc.utsname").as_deref(), Some("golden"), "{actual}");
    assert_eq!(config::value(&actual, "lxc.network.type").as_deref(), Some("veth"), "{actual}");
    assert_eq!(config::value(&actual, "lxc.network.hwaddr").as_deref(), Some("00:16:3e:00:00:01"), "{actual}");
    assert_eq!(config::value(&actual, "lxc.aa_profile").as_deref(), Some("unconfined"), "{actual}");
    let rootfs = config::value(&actual, "lxc.rootfs").unwrap_or_default();
    assert!(rootfs.ends_with("/nonexistent/lxcpath/golden/rootfs"), "lxc.rootfs is {rootfs:?}:\n{actual}");

    let golden = paths::source_file("golden/busybox-lxc-2.0.conf");
    if std::env::var_os(BLESS_ENV).is_some_and(|v| v == "1") {
        fs::write(&golden, &actual).expect("cannot write the golden file");
        eprintln!("blessed {}", golden.display());
        return;
    }
    let expected = fs::read_to_string(&golden).unwrap_or_else(|e| {
        panic!("cannot read {}: {e}; review the output and run with {BLESS_ENV}=1 to write it", golden.display())
    });
    assert_same_text!(expected, actual, "dry-run config differs from {} ({BLESS_ENV}=1 rewrites it)", golden.display());
}
