//! Bad input is refused with one `error:` line naming the problem, a
//! non-zero exit, and nothing made or changed on disk.

use lxc_tmpl_tests::{Outcome, TestCommand, TestDir, assert_mentions, assert_same_text, error_line, require_root};

/// Runs `cmd`, asserts a clean failure whose `error:` line mentions every
/// one of `needles`, and that the test dir (lxcpath, cache, plugins, base
/// config) is exactly as before. Returns how the command ended.
fn assert_refused(dir: &TestDir, cmd: &mut TestCommand, needles: &[&str]) -> Outcome {
    let before = dir.snapshot();
    let outcome = cmd.run();
    outcome.assert_failed();
    let line = error_line(&outcome.stderr);
    assert_mentions(&line, needles);
    assert_same_text!(before, dir.snapshot(), "refused command left something behind:\n{outcome}");
    outcome
}

#[test]
fn unknown_distro_is_refused() {
    require_root();
    let dir = TestDir::new("unknown-distro");
    assert_refused(&dir, &mut dir.create("no-such-distro", "c1"), &["no-such-distro"]);
}

#[test]
fn missing_name_is_a_usage_error() {
    require_root();
    let dir = TestDir::new("missing-name");
    let before = dir.snapshot();
    let mut cmd = dir.command();
    cmd.args(["create", "--distro", "busybox", "-P"]).arg(dir.lxcpath()).arg("-f").arg(dir.safe_conf());
    let outcome = cmd.assert_exit(2).clone();
    error_line(&outcome.stderr);
    assert!(outcome.stderr.starts_with("error: "), "stderr does not start with the error:\n{outcome}");
    assert!(outcome.stderr.contains("--name"), "the error does not name --name:\n{outcome}");
    assert_same_text!(before, dir.snapshot(), "a usage error left something behind");
}

/// Asserts that `create --name=<name>` is refused with an error naming it.
fn assert_bad_name(test: &str, name: &str) {
    require_root();
    let dir = TestDir::new(test);
    let mut cmd = dir.command();
    cmd.args(["create", "--distro", "busybox", &format!("--name={name}"), "-P"]).arg(dir.lxcpath());
    cmd.arg("-f").arg(dir.safe_conf()).arg("--cache-dir").arg(dir.cache());
    assert_refused(&dir, &mut cmd, &["name", name]);
}

#[test]
fn name_with_parent_dir_is_refused() {
    assert_bad_name("name-dotdot-x", "../x");
}

#[test]
fn name_with_slash_is_refused() {
    assert_bad_name("name-slash", "a/b");
}

#[test]
fn name_with_leading_dash_is_refused() {
    assert_bad_name("name-dash", "-x");
}

#[test]
fn name_dot_is_refused() {
    assert_bad_name("name-dot", ".");
}

#[test]
fn name_dotdot_is_refused() {
    assert_bad_name("name-dotdot", "..");
}

#[test]
fn existing_container_is_left_alone() {
    require_root();
    let dir = TestDir::new("existing");
    let _ct = dir.container("twice");
    dir.create("busybox", "twice").stdout();
    assert!(dir.lxcpath().join("twice/config").is_file(), "the first create made no config");
    assert_refused(&dir, &mut dir.create("busybox", "twice"), &["twice", "exist"]);
}

#[test]
fn rootfs_that_is_not_empty_is_refused() {
    require_root();
    let dir = TestDir::new("rootfs-not-empty");
    let rootfs = dir.mkdir("myroot");
    dir.write("myroot/keep-me", "precious\n");
    let mut cmd = dir.create("busybox", "c1");
    cmd.arg("--rootfs").arg(&rootfs);
    assert_refused(&dir, &mut cmd, &[&rootfs.display().to_string(), "empty"]);
}

#[test]
fn unknown_distro_option_is_a_usage_error() {
    require_root();
    let dir = TestDir::new("unknown-option");
    let before = dir.snapshot();
    let outcome = dir.create("busybox", "c1").arg("--no-such-option").assert_exit(2).clone();
    let line = error_line(&outcome.stderr);
    assert!(outcome.stderr.starts_with("error: "), "stderr does not start with the error:\n{outcome}");
    assert_mentions(&line, &["--no-such-option"]);
    assert_same_text!(before, dir.snapshot(), "a usage error left something behind");
}

#[test]
fn create_as_non_root_is_refused() {
    require_root();
    let dir = TestDir::new("non-root");
    let binary = dir.binary_for_others();
    let before = dir.snapshot();
    let mut cmd = dir.command_with(&binary);
    cmd.as_user(65534, 65534).args(["create", "--distro", "busybox", "--name", "c1", "-P"]).arg(dir.lxcpath());
    cmd.arg("-f").arg(dir.safe_conf()).arg("--cache-dir").arg(dir.cache());
    let outcome = cmd.run();
    outcome.assert_failed();
    assert!(
        !outcome.stderr.contains("Permission denied") || outcome.stderr.contains("root"),
        "the binary could not even run as nobody (test setup problem?):\n{outcome}"
    );
    let line = error_line(&outcome.stderr);
    assert_mentions(&line, &["root"]);
    assert_same_text!(before, dir.snapshot(), "a refused create left something behind");
}

#[test]
fn container_left_by_an_interrupted_lxc_create_is_left_alone() {
    require_root();
    let dir = TestDir::new("partial");
    // What an lxc-create that died left (lxc-create's `partial` protocol): an
    // unlocked, empty partial file. It records nothing lxc-tmpl made, so the
    // files are the user's to judge (tests/it/interrupt.rs covers lxc-tmpl's own).
    dir.write("lxcpath/busy/partial", "");
    dir.write("lxcpath/busy/rootfs/etc/keep", "made by the other create\n");
    assert_refused(&dir, &mut dir.create("busybox", "busy"), &["busy", "partial"]);
}

#[test]
fn concurrent_creates_of_one_name_leave_one_whole_container() {
    require_root();
    // A few rounds: the race is between one create's cleanup and another's build.
    for round in 0..4 {
        let dir = TestDir::new(&format!("concurrent-{round}"));
        let ct = dir.container("same");
        let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
            let runs: Vec<_> = (0..3).map(|_| scope.spawn(|| dir.create("busybox", "same").arg("-q").run())).collect();
            runs.into_iter().map(|r| r.join().expect("create thread panicked")).collect()
        });
        let report: String = outcomes.iter().map(|o| format!("{o}\n")).collect();
        let winners = outcomes.iter().filter(|o| o.status.success()).count();
        assert_eq!(winners, 1, "round {round}: {winners} of 3 concurrent creates of one name succeeded:\n{report}");
        for loser in outcomes.iter().filter(|o| !o.status.success()) {
            loser.assert_failed();
            assert_mentions(&error_line(&loser.stderr), &["same"]);
        }
        assert_eq!(ct.lxc_config_item("lxc.uts.name"), "lxc.uts.name = same", "round {round}:\n{report}");
        assert!(ct.rootfs().join("bin/busybox").is_file(), "round {round}: the winner's rootfs is gone:\n{report}");
    }
}

#[test]
fn missing_base_config_is_refused() {
    require_root();
    let dir = TestDir::new("missing-base");
    let missing = dir.path().join("no-such.conf");
    let mut cmd = dir.command();
    cmd.args(["create", "--distro", "busybox", "--name", "c1", "-P"]).arg(dir.lxcpath());
    cmd.arg("-f").arg(&missing).arg("--cache-dir").arg(dir.cache());
    assert_refused(&dir, &mut cmd, &[&missing.display().to_string()]);
}

#[test]
fn path_that_does_not_end_in_the_name_is_refused_before_anything_is_built() {
    require_root();
    let dir = TestDir::new("path-name");
    let before = dir.snapshot();
    let elsewhere = dir.lxcpath().join("other");
    let outcome = dir.create("busybox", "c1").arg("--path").arg(&elsewhere).assert_exit(2).clone();
    let line = error_line(&outcome.stderr);
    assert_mentions(&line, &["--path", "c1", &dir.lxcpath().join("c1").display().to_string()]);
    assert!(!outcome.stderr.contains("==> validate"), "a step ran before the check:\n{outcome}");
    assert_same_text!(before, dir.snapshot(), "a refused --path left something behind");
}

#[test]
fn container_without_its_init_is_refused_before_it_is_ready() {
    require_root();
    let dir = TestDir::new("no-init");
    let base = dir.path().join("no-init.conf");
    let safe = std::fs::read_to_string(dir.safe_conf()).unwrap();
    std::fs::write(&base, format!("{safe}lxc.init.cmd = /sbin/no-such-init\n")).unwrap();
    let mut cmd = dir.command();
    cmd.args(["create", "--distro", "busybox", "--name", "c1", "-P"]).arg(dir.lxcpath());
    cmd.arg("-f").arg(&base).arg("--cache-dir").arg(dir.cache());
    let outcome = assert_refused(&dir, &mut cmd, &["cannot boot", "/sbin/no-such-init"]);
    assert!(!outcome.stdout.contains("ready"), "a create that cannot boot said ready:\n{outcome}");
}
