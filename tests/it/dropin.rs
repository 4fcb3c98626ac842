//! lxc-tmpl as a drop-in LXC template: `install-templates` makes the links,
//! the real `lxc-create -t <link>` runs them, and LXC starts the result.

use std::{
    fs,
    path::Path,
    time::{Duration, Instant},
};

use lxc_tmpl_tests::{
    AptFixture, LXC_TOOLS, MirrorServer, TestCommand, TestDir, apt_fixture, assert_mentions, leftovers, paths, procs,
    require_root, require_tools,
    running::{Running, Signal},
    snapshot,
};

/// `lxc-create -P <lxcpath> -f <safe.conf> -n <name> -t <template>`, with the
/// test's plugin, cache and log dirs in the environment (lxc-create passes
/// it on), so the template's create logs go with the test dir.
fn lxc_create(dir: &TestDir, name: &str, template: &Path) -> TestCommand {
    let mut cmd = TestCommand::new("lxc-create");
    cmd.arg("-P").arg(dir.lxcpath()).arg("-f").arg(dir.safe_conf()).args(["-n", name]).arg("-t").arg(template);
    cmd.env("LXC_TMPL_PLUGIN_PATH", dir.plugins()).env("LXC_CACHE_PATH", dir.cache());
    cmd.env("LXC_TMPL_LOG_DIR", dir.logs());
    cmd
}

/// `lxc-create -t lxc-tmpl-debian` from the local mirror, with the old
/// lxc-debian short flag `-r` after `--`, as lxc-create users type it.
fn debian_template(dir: &TestDir, name: &str, templates: &Path, mirror: &str, fixture: &AptFixture) -> TestCommand {
    let mut cmd = lxc_create(dir, name, &templates.join("lxc-tmpl-debian"));
    cmd.args(["--", "-r", "bookworm", "--mirror", mirror, "--security-mirror", mirror]);
    cmd.arg("--keyring").arg(&fixture.keyring).env("HTTP_PROXY", "none");
    cmd
}

/// Installs the template links into a private template dir and returns it.
fn install(dir: &TestDir, extra: &[&str]) -> std::path::PathBuf {
    let templates = dir.mkdir("templates");
    dir.command().arg("install-templates").arg("--dir").arg(&templates).args(extra).stdout();
    templates
}

#[test]
fn lxc_create_runs_the_installed_template_and_lxc_starts_the_container() {
    require_root();
    require_tools(LXC_TOOLS);
    let dir = TestDir::new("dropin-busybox");
    let templates = install(&dir, &[]);
    let link = templates.join("lxc-tmpl-busybox");
    assert_eq!(
        fs::canonicalize(&link).unwrap(),
        fs::canonicalize(paths::binary()).unwrap(),
        "lxc-tmpl-busybox does not lead to the lxc-tmpl binary"
    );

    let mut ct = dir.container("drop1");
    lxc_create(&dir, "drop1", &link).arg("--").args(["--busybox-path", "/bin/busybox"]).stdout();
    let config = ct.config();
    // lxc-create's own header names the template it ran and the options.
    assert!(config.contains(&format!("# Template used to create this container: {}", link.display())), "{config}");
    assert!(config.contains("# Parameters passed to the template: --busybox-path /bin/busybox"), "{config}");
    assert!(config.contains("lxc.include = /usr/share/lxc/config/common.conf"), "{config}");
    assert!(config.contains("lxc.uts.name = drop1"), "{config}");
    assert!(!ct.dir().join("partial").exists(), "lxc-create's partial file is left");

    ct.start();
    assert_eq!(ct.attach(&["hostname"]).trim(), "drop1");
    assert_eq!(ct.attach(&["cat", "/etc/hostname"]).trim(), "drop1");
}

/// Starts the container and checks lxc-attach sees its name.
fn start_and_check_name(dir: &TestDir, name: &str) {
    let mut ct = dir.container(name);
    ct.start();
    assert_eq!(ct.attach(&["hostname"]).trim(), name);
    assert_eq!(ct.attach(&["cat", "/etc/hostname"]).trim(), name);
}

#[test]
fn lxc_create_runs_the_ubuntu_template_from_the_local_mirror() {
    require_root();
    require_tools(LXC_TOOLS);
    require_tools(&["debootstrap"]);
    let fixture = apt_fixture();
    let server = MirrorServer::start();
    let mirror = server.url("ubuntu");
    let dir = TestDir::new("dropin-ubuntu");
    let templates = install(&dir, &[]);
    let _ct = dir.container("dropu1");
    // The old lxc-ubuntu short flags after `--`, as lxc-create users type them.
    lxc_create(&dir, "dropu1", &templates.join("lxc-tmpl-ubuntu"))
        .args(["--", "-r", "jammy", "--mirror", &mirror, "--security-mirror", &mirror, "-u", "admin"])
        .arg("--keyring")
        .arg(&fixture.keyring)
        .env("HTTP_PROXY", "none")
        .stdout();
    let config = fs::read_to_string(dir.lxcpath().join("dropu1/config")).unwrap();
    assert!(config.contains("# Parameters passed to the template: -r jammy"), "{config}");
    assert!(config.contains("lxc.include = /usr/share/lxc/config/ubuntu.common.conf"), "{config}");
    let passwd = fs::read_to_string(dir.lxcpath().join("dropu1/rootfs/etc/passwd")).unwrap();
    assert!(passwd.lines().any(|l| l.starts_with("admin:")), "-u admin made no user:\n{passwd}");
    start_and_check_name(&dir, "dropu1");
}

#[test]
fn lxc_create_runs_the_debian_template_from_the_local_mirror() {
    require_root();
    require_tools(LXC_TOOLS);
    require_tools(&["debootstrap"]);
    let fixture = apt_fixture();
    let server = MirrorServer::start();
    let mirror = server.url("debian");
    let dir = TestDir::new("dropin-debian");
    let templates = install(&dir, &[]);
    let _ct = dir.container("dropd1");
    debian_template(&dir, "dropd1", &templates, &mirror, &fixture).stdout();
    let config = fs::read_to_string(dir.lxcpath().join("dropd1/config")).unwrap();
    assert!(config.contains("# Parameters passed to the template: -r bookworm"), "{config}");
    assert!(config.contains("lxc.include = /usr/share/lxc/config/debian.common.conf"), "{config}");
    start_and_check_name(&dir, "dropd1");
}

/// Ctrl-C on `lxc-create -t lxc-tmpl-debian` during debootstrap (SIGINT to the
/// process group, as a terminal sends it), and SIGTERM to lxc-create alone
/// (which does not pass it on: the template follows its parent's death):
/// either way the template rolls back, lxc-create fails and removes the
/// container, and no process of the create is left.
#[test]
fn interrupted_template_rolls_back_under_lxc_create() {
    require_root();
    require_tools(LXC_TOOLS);
    require_tools(&["debootstrap"]);
    let fixture = apt_fixture();
    let server = MirrorServer::start();
    let mirror = server.url("debian");
    let dir = TestDir::new("dropin-interrupt");
    let templates = install(&dir, &[]);
    for (name, whole_group) in [("dropi1", true), ("dropi2", false)] {
        let _ct = dir.container(name);
        let mut run = Running::spawn(&mut debian_template(&dir, name, &templates, &mirror, &fixture));
        let pid = run.pid();
        // Signalled once debootstrap runs: the step line, then its process.
        run.wait_for_line("the download step", Duration::from_secs(120), |l| l == "==> download").unwrap();
        run.wait_until("debootstrap", Duration::from_secs(60), |_| {
            procs::descendants(pid).iter().any(|p| p.cmdline.contains("debootstrap")).then_some(())
        })
        .unwrap();
        std::thread::sleep(Duration::from_secs(2));
        let known = procs::descendants(pid);
        if whole_group {
            run.signal_group(Signal::SIGINT);
        } else {
            run.signal(Signal::SIGTERM);
        }
        let outcome = run.wait(Duration::from_secs(120));
        assert_ne!(outcome.code(), Some(0), "lxc-create succeeded although its template was interrupted:\n{outcome}");
        // lxc-create itself may die of the signal before it can report; the template's line,
        // when lxc-create survives to show it, names the interruption.
        if whole_group {
            assert_mentions(&outcome.stderr, &["interrupted by SIGINT during download"]);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut left: Vec<_> = known.iter().filter(|p| procs::alive(p)).collect();
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            left.retain(|p| procs::alive(p));
        }
        assert!(left.is_empty(), "processes of the interrupted template are still running: {left:#?}");
        // Without lxc-create's own cleanup (it was killed) the rollback leaves at most the
        // directory lxc-create made, with its unlocked partial, which LXC destroys on sight.
        let rootfs = dir.lxcpath().join(name).join("rootfs");
        assert!(
            !rootfs.exists() || snapshot::listing(&rootfs).is_empty(),
            "the interrupted template left a rootfs: {:?}",
            snapshot::listing(&rootfs)
        );
        assert!(leftovers::staging_dirs(&dir.cache()).is_empty(), "cache staging left");
    }
}

#[test]
fn lxc_create_runs_the_sshd_template() {
    require_root();
    require_tools(LXC_TOOLS);
    let dir = TestDir::new("dropin-sshd");
    let key = dir.path().join("id");
    let keygen = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("cannot run ssh-keygen");
    assert!(keygen.success(), "ssh-keygen failed");
    let templates = install(&dir, &[]);
    let _ct = dir.container("drops1");
    lxc_create(&dir, "drops1", &templates.join("lxc-tmpl-sshd"))
        .arg("--")
        .arg("-S")
        .arg(key.with_extension("pub"))
        .stdout();
    let authorized = fs::read_to_string(dir.lxcpath().join("drops1/rootfs/root/.ssh/authorized_keys")).unwrap();
    assert_eq!(authorized.trim(), fs::read_to_string(key.with_extension("pub")).unwrap().trim());
    start_and_check_name(&dir, "drops1");
}

#[test]
fn lxc_create_help_shows_the_distro_options() {
    require_root();
    require_tools(LXC_TOOLS);
    let dir = TestDir::new("dropin-help");
    let templates = install(&dir, &[]);
    let mut cmd = TestCommand::new("lxc-create");
    cmd.arg("-t").arg(templates.join("lxc-tmpl-busybox")).arg("-h").env("LXC_TMPL_PLUGIN_PATH", dir.plugins());
    let outcome = cmd.run();
    let text = format!("{}{}", outcome.stdout, outcome.stderr);
    assert_mentions(&text, &["--busybox-path", "--mapped-uid"]);
}

#[test]
fn failing_template_makes_lxc_create_fail_and_clean_up() {
    require_root();
    require_tools(LXC_TOOLS);
    let dir = TestDir::new("dropin-fail");
    let templates = install(&dir, &[]);
    let _ct = dir.container("drop2");
    let outcome =
        lxc_create(&dir, "drop2", &templates.join("lxc-tmpl-busybox")).args(["--", "--busybox-path", "/nope"]).run();
    assert_ne!(outcome.code(), Some(0), "lxc-create succeeded with a bad busybox path:\n{outcome}");
    assert!(outcome.stderr.contains("busybox not found at /nope"), "the template's error is not shown:\n{outcome}");
    assert!(!dir.lxcpath().join("drop2").exists(), "lxc-create left the failed container");
}

#[test]
fn as_default_keeps_the_old_script_and_uninstall_restores_it() {
    require_root();
    let dir = TestDir::new("dropin-default");
    let templates = dir.mkdir("templates");
    let old = "#!/bin/sh\necho the old lxc-busybox\n";
    fs::write(templates.join("lxc-busybox"), old).unwrap();

    install(&dir, &["--as-default"]);
    let plain = templates.join("lxc-busybox");
    assert!(fs::symlink_metadata(&plain).unwrap().file_type().is_symlink(), "lxc-busybox was not taken over");
    assert_eq!(fs::read_to_string(templates.join("lxc-busybox.lxc-tmpl-orig")).unwrap(), old, "no backup");
    // Installing twice changes nothing and keeps the one backup.
    install(&dir, &["--as-default"]);
    assert_eq!(fs::read_to_string(templates.join("lxc-busybox.lxc-tmpl-orig")).unwrap(), old);

    install(&dir, &["--uninstall"]);
    assert_eq!(fs::read_to_string(&plain).unwrap(), old, "the old script was not restored");
    assert!(!templates.join("lxc-tmpl-busybox").exists(), "uninstall left lxc-tmpl-busybox");
    assert!(!templates.join("lxc-busybox.lxc-tmpl-orig").exists(), "uninstall left the backup");
}

/// `lxc-create -t lxc-tmpl-<distro> -- --help` (and `-h`) prints the
/// distro's help and fails, so lxc-create removes what it made: no
/// container directory is left and the name stays free, for every plugin.
#[test]
fn template_help_through_lxc_create_leaves_nothing() {
    require_root();
    require_tools(LXC_TOOLS);
    let dir = TestDir::new("dropin-help-clean");
    let templates = install(&dir, &[]);
    // A distro option each help must show, besides the template convention.
    let plugins =
        [("busybox", "--busybox-path"), ("sshd", "--auth-key"), ("ubuntu", "--release"), ("debian", "--release")];
    for (distro, option) in plugins {
        for flag in ["--help", "-h"] {
            let name = format!("help-{distro}");
            let _ct = dir.container(&name);
            let outcome =
                lxc_create(&dir, &name, &templates.join(format!("lxc-tmpl-{distro}"))).args(["--", flag]).run();
            let text = format!("{}{}", outcome.stdout, outcome.stderr);
            assert_ne!(outcome.code(), Some(0), "lxc-create -t lxc-tmpl-{distro} -- {flag} succeeded:\n{outcome}");
            assert_mentions(&text, &[option, "--mapped-uid"]);
            let left = lxc_tmpl_tests::snapshot::listing(&dir.lxcpath());
            assert!(
                left.is_empty(),
                "lxc-create -t lxc-tmpl-{distro} -- {flag} left {left:?} in the lxcpath:\n{outcome}"
            );
            let listed = TestCommand::new("lxc-ls").arg("-P").arg(dir.lxcpath()).stdout();
            assert!(!listed.contains(&name), "lxc-ls still lists {name}: {listed}");
        }
    }
    // The name is free: a real create of it works.
    let _ct = dir.container("help-busybox");
    lxc_create(&dir, "help-busybox", &templates.join("lxc-tmpl-busybox")).stdout();
    assert!(dir.lxcpath().join("help-busybox/config").is_file());
}
