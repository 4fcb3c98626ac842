//! Creates running at the same time: N creates from one cold cache build it
//! once and all succeed, saying what they wait for; `cache purge` waits
//! for the creates copying from the cache; two creates of one name end with
//! exactly one container, intact, and one clear refusal. (A second create
//! of a name whose create is in progress, held with SIGSTOP, is refused in
//! tests/it/interrupt.rs, together with `destroy`.)
//!
//! Timings are printed (`--nocapture`); nothing asserts on them.

use std::{
    fs, thread,
    time::{Duration, Instant},
};

use lxc_tmpl_tests::{
    AptFixture, LXC_TOOLS, MirrorServer, Outcome, TestCommand, TestDir, apt_fixture, assert_mentions, config,
    error_line, leftovers, require_root, require_tools,
    rootfs::{cache_entries, read, ssh_host_keys},
    running::Running,
};

/// How long a cold debian create may take here (debootstrap from the local mirror).
const CREATE_TIMEOUT: Duration = Duration::from_secs(600);

/// `lxc-tmpl create --distro debian` from the local mirror.
fn debian_create(dir: &TestDir, mirror: &str, fixture: &AptFixture, name: &str) -> TestCommand {
    let mut cmd = dir.create("debian", name);
    fixture.from_mirror(&mut cmd, mirror, "bookworm");
    cmd
}

/// Checks that `name` is a whole debian container of the test dir.
fn assert_complete(dir: &TestDir, name: &str) {
    let ct = dir.lxcpath().join(name);
    let text = read(ct.join("config"));
    assert_eq!(config::value(&text, "lxc.uts.name").as_deref(), Some(name), "{text}");
    assert_eq!(read(ct.join("rootfs/etc/hostname")).trim(), name);
    for file in ["sbin/init", "usr/bin/dpkg", "usr/sbin/sshd", "etc/apt/sources.list"] {
        assert!(ct.join("rootfs").join(file).exists(), "{name}: no /{file} in the rootfs");
    }
    assert!(!ct.join("partial").exists(), "{name} kept its partial file");
}

/// The lines of `stderr` that say the create waits for a lock.
fn wait_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.to_ascii_lowercase().contains("waiting")).collect()
}

/// Three creates from one cold cache: one debootstrap, three containers;
/// the waiting ones say for what (distro, release, arch, the builder's
/// pid), not the whole cache key. Then a `cache purge` started while two
/// warm creates copy from the cache waits for the copies, and both
/// creates succeed.
#[test]
fn creates_from_a_cold_cache_build_it_once_and_purge_waits_for_copies() {
    require_root();
    require_tools(LXC_TOOLS);
    require_tools(&["debootstrap", "wget", "gpgv"]);
    let fixture = apt_fixture();
    let server = MirrorServer::start();
    let mirror = server.url("debian");
    let dir = TestDir::new("concurrent-cold");
    let names = ["cc1", "cc2", "cc3"];
    let _guards: Vec<_> = names.iter().map(|n| dir.container(n)).collect();

    let started = Instant::now();
    let runs: Vec<Running> =
        names.iter().map(|name| Running::spawn(&mut debian_create(&dir, &mirror, &fixture, name))).collect();
    let pids: Vec<u32> = runs.iter().map(Running::pid).collect();
    let outcomes: Vec<Outcome> = runs.into_iter().map(|r| r.wait(CREATE_TIMEOUT)).collect();
    eprintln!("3 creates from a cold cache: {:.1?}", started.elapsed());
    for outcome in &outcomes {
        outcome.assert_success();
    }
    for name in names {
        assert_complete(&dir, name);
    }

    // Built once: one debootstrap, one builder, every package fetched once.
    let builders: Vec<usize> = (0..3).filter(|&i| outcomes[i].stderr.contains("cache built")).collect();
    assert_eq!(builders.len(), 1, "expected exactly one create to build the cache:\n{outcomes:#?}");
    let builder = builders[0];
    for (i, outcome) in outcomes.iter().enumerate() {
        let debootstraps = outcome.stderr.lines().filter(|l| l.starts_with("==> debootstrap")).count();
        assert_eq!(debootstraps, usize::from(i == builder), "debootstrap ran in the wrong creates:\n{outcome}");
        if i != builder {
            assert!(outcome.stderr.contains("cache reused"), "{outcome}");
        }
    }
    let mut fetched: Vec<String> = server
        .served()
        .into_iter()
        .filter(|s| s.method == "GET" && s.status == 200 && s.target.ends_with(".deb"))
        .map(|s| s.target)
        .collect();
    let total = fetched.len();
    fetched.sort();
    fetched.dedup();
    assert_eq!(total, fetched.len(), "some packages were downloaded more than once");
    assert_eq!(cache_entries(&dir.cache(), "debian").len(), 1);
    assert!(leftovers::staging_dirs(&dir.cache()).is_empty());
    let keys: Vec<_> = names.iter().map(|n| ssh_host_keys(&dir.lxcpath().join(n).join("rootfs"))).collect();
    assert!(keys[0] != keys[1] && keys[1] != keys[2] && keys[0] != keys[2], "containers share ssh host keys");

    // The waiting creates say who they wait for, briefly.
    let holder = pids[builder].to_string();
    for (i, outcome) in outcomes.iter().enumerate().filter(|(i, _)| *i != builder) {
        let lines = wait_lines(&outcome.stderr);
        assert!(!lines.is_empty(), "create {} waited for the cache build without saying so:\n{outcome}", names[i]);
        for line in lines {
            assert_mentions(line, &["debian", "bookworm", "amd64", &holder]);
            for part_of_the_key in ["debian-v1", "keyring=", "mirror=", "include=", mirror.as_str()] {
                assert!(!line.contains(part_of_the_key), "the wait message shows the whole cache key: {line}");
            }
        }
    }

    // A purge while two warm creates copy from the cache. The copy runs in
    // the create itself, under the entry's shared lock, from its `copy
    // rootfs` step until its next step.
    let more = ["cc4", "cc5"];
    let _more_guards: Vec<_> = more.iter().map(|n| dir.container(n)).collect();
    let mut runs: Vec<Running> =
        more.iter().map(|name| Running::spawn(&mut debian_create(&dir, &mirror, &fixture, name))).collect();
    wait_until_copying(&mut runs);
    let purge_started = Instant::now();
    let mut purge = Running::spawn(dir.command().args(["cache", "purge", "debian", "--cache-dir"]).arg(dir.cache()));
    assert!(
        runs.iter_mut().any(copying),
        "inconclusive: the copies ended before the purge started; the copy is too fast to test with"
    );
    // The purge may end only when no copy reads the cache any more.
    let mut copies_ended = None;
    loop {
        let still_copying = runs.iter_mut().any(copying);
        if !still_copying && copies_ended.is_none() {
            copies_ended = Some(purge_started.elapsed());
        }
        if purge.has_exited() {
            assert!(!runs.iter_mut().any(copying), "cache purge ended while a create still copied from the cache");
            break;
        }
        assert!(purge_started.elapsed() < Duration::from_secs(300), "cache purge hangs");
        thread::sleep(Duration::from_millis(5));
    }
    let purge = purge.wait(Duration::from_secs(10));
    purge.assert_success();
    eprintln!(
        "cache purge ended {:.1?} after it started; the copies ended after {:.1?}",
        purge_started.elapsed(),
        copies_ended.unwrap_or_default()
    );
    for run in runs {
        run.wait(CREATE_TIMEOUT).assert_success();
    }
    for name in more {
        assert_complete(&dir, name);
    }
    let full = fs::read_dir(dir.lxcpath().join("cc1/rootfs/usr/bin")).unwrap().count();
    let copied = fs::read_dir(dir.lxcpath().join("cc5/rootfs/usr/bin")).unwrap().count();
    assert_eq!(full, copied, "cc5's rootfs is not a whole copy of the cache");
    assert!(cache_entries(&dir.cache(), "debian").is_empty(), "the purge left a cache entry");
}

/// Whether a create is in its copy step: it printed `==> copy rootfs` and
/// not yet the step after it (`==> sources_list`).
fn copying(run: &mut Running) -> bool {
    let lines = run.stderr_lines();
    lines.iter().any(|l| l == "==> copy rootfs") && !lines.iter().any(|l| l == "==> sources_list")
}

/// Waits until every create in `runs` has reached its copy step.
fn wait_until_copying(runs: &mut [Running]) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !runs.iter_mut().all(|r| r.stderr_lines().iter().any(|l| l == "==> copy rootfs")) {
        for run in runs.iter_mut() {
            assert!(!run.has_exited(), "a create ended before the purge: {:?}", run.stderr_lines());
        }
        assert!(Instant::now() < deadline, "no copy from the cache seen");
        thread::sleep(Duration::from_millis(2));
    }
}

/// The refusal of the create that lost a race for `name`: one line, saying
/// the name is taken or being created (by the winner's pid).
fn assert_lost(loser: &Outcome, name: &str, winner_pid: u32) {
    loser.assert_failed();
    let line = error_line(&loser.stderr);
    assert_mentions(&line, &[name]);
    if line.contains("being created") {
        assert_mentions(&line, &[&format!("being created by process {winner_pid}")]);
    } else {
        assert_mentions(&line, &["already exists"]);
    }
}

/// Two busybox creates of one name at once, a few times over: one wins and
/// its container is whole (the last one boots), the other fails with one
/// line and takes nothing from it.
#[test]
fn two_creates_of_one_name_exactly_one_wins() {
    require_root();
    require_tools(LXC_TOOLS);
    let dir = TestDir::new("concurrent-name");
    let mut seen = Vec::new();
    for round in 1..=5 {
        let mut ct = dir.container("race");
        let a = Running::spawn(&mut dir.create("busybox", "race"));
        let b = Running::spawn(&mut dir.create("busybox", "race"));
        let (pa, pb) = (a.pid(), b.pid());
        let (a, b) = (a.wait(CREATE_TIMEOUT), b.wait(CREATE_TIMEOUT));
        let (winner, loser, winner_pid) = match (a.status.success(), b.status.success()) {
            (true, false) => (&a, &b, pa),
            (false, true) => (&b, &a, pb),
            _ => panic!("round {round}: expected exactly one create to succeed:\n{a}\n{b}"),
        };
        winner.assert_success();
        assert_lost(loser, "race", winner_pid);
        seen.push(error_line(&loser.stderr));
        assert_eq!(read(ct.rootfs().join("etc/hostname")).trim(), "race");
        assert!(ct.rootfs().join("sbin/init").exists(), "round {round}: the winner's rootfs lacks /sbin/init");
        assert!(!ct.dir().join("partial").exists(), "round {round}: the winner kept partial");
        assert_eq!(ct.lxc_config_item("lxc.uts.name"), "lxc.uts.name = race");
        if round == 5 {
            ct.start();
            assert_eq!(ct.attach(&["hostname"]).trim(), "race");
        }
    }
    eprintln!("the losers said:\n{}", seen.join("\n"));
}
