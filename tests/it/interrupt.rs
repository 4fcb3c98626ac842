//! Interrupted and killed creates: SIGINT, SIGTERM and SIGHUP roll a create
//! back (exit 128 + signal, one `error:` line naming the signal and the
//! step), SIGKILL leaves an unlocked `partial` that the next create or
//! `lxc-tmpl destroy` cleans up, and neither ever leaves a process running,
//! a mount behind, a broken cache or a name that cannot be created again.
//!
//! The fault-injection test signals a busybox create, a cold debian build
//! (debootstrap from the local mirror) and warm debian creates at points
//! spread over the run, found by watching the create's stderr step lines
//! (`==> copy rootfs`) and its processes (debootstrap, the copy tool, a
//! command inside the rootfs). The config check takes milliseconds, so the
//! runs that are signalled there, or before it, find a slowed-down
//! `lxc-info` first in `PATH` ([`SlowTool`]): the create's `lxc-info` then
//! has a `sleep` grandchild that must die with it. Ctrl-C is played as a
//! terminal does it: SIGINT to the whole process group.
//!
//! Timings are printed (`--nocapture`); nothing asserts on them.

use std::{
    fs,
    io::Write,
    path::Path,
    thread,
    time::{Duration, Instant},
};

use lxc_tmpl_tests::{
    AptFixture, LXC_TOOLS, MirrorServer, Outcome, TestCommand, TestDir, apt_fixture, assert_mentions, config,
    error_line, heavy_lock, leftovers,
    procs::{self, Proc},
    require_root, require_tools,
    rootfs::{cache_entries, read},
    running::{Running, Signal, exit_status},
    slowtool::SlowTool,
    snapshot,
};

/// How long a signalled create may take to roll back.
const ROLLBACK_TIMEOUT: Duration = Duration::from_secs(120);

/// How long the processes of a create may take to die after SIGKILL of
/// lxc-tmpl (the kernel delivers the parent-death signals).
const KILL_GRACE: Duration = Duration::from_secs(5);

/// After SIGINT/SIGTERM/SIGHUP lxc-tmpl kills and reaps its children before
/// it exits; this only covers the reaping of a reparented zombie.
const SIGNAL_GRACE: Duration = Duration::from_millis(500);

/// How long to wait for an injection point.
const POINT_TIMEOUT: Duration = Duration::from_secs(300);

/// The line a create prints when it removed what a killed create left.
const REMAINS_LINE: &str = "removed the remains of an interrupted create";

/// The steps of a warm debian create from the copy on; the config check
/// (slowed to 30 s here) keeps a signal sent in any of them from missing.
const WARM_DEBIAN_STEPS: &[&str] = &[
    "copy rootfs",
    "sources_list",
    "configure",
    "config",
    "trim",
    "post_process",
    "finalize",
    "check init",
    "check config",
];

/// The steps of a busybox create, in order, as its stderr names them.
const BUSYBOX_STEPS: &[&str] = &[
    "validate",
    "download",
    "creating the directory tree",
    "installing busybox",
    "sources_list",
    "configure",
    "config",
    "trim",
    "post_process",
    "finalize",
    "check config",
];

/// The host tools the debian creates need besides lxc-tmpl.
const BOOTSTRAP_TOOLS: &[&str] = &["debootstrap", "wget", "gpgv"];

/// Where in a create a signal is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Point {
    /// On the stderr line `==> STEP`: the signal lands in that step or a
    /// later one (busybox's steps take milliseconds; the slowed config
    /// check keeps it from finishing first).
    Step(&'static str),
    /// This many seconds after debootstrap started (it downloads, then
    /// unpacks and configures packages with dpkg in the chroot).
    Debootstrap(u64),
    /// On `==> copy rootfs`: the copy of the cached rootfs runs inside the
    /// create (the dir backing store's engine), so the signal lands in it or,
    /// if the copy is done first, in a later step.
    Copy,
    /// On `==> configure`: a warm create runs no command inside the rootfs
    /// any more (the locale, time zone and host keys need none), so the
    /// signal lands in the configure hook or a later step.
    Configure,
    /// During the config check, while its (slowed) `lxc-info` runs.
    CheckConfig,
}

impl Point {
    /// The step names the `error:` line may give for a signal sent here.
    fn steps(self) -> &'static [&'static str] {
        match self {
            Point::Step(step) => {
                let first = BUSYBOX_STEPS.iter().position(|s| *s == step).expect("a busybox step");
                &BUSYBOX_STEPS[first..]
            }
            Point::Debootstrap(_) => &["download", "debootstrap"],
            Point::Copy => WARM_DEBIAN_STEPS,
            Point::Configure => &WARM_DEBIAN_STEPS[2..],
            Point::CheckConfig => &["check config"],
        }
    }

    fn describe(self) -> String {
        match self {
            Point::Step(step) => format!("at step {step:?}"),
            Point::Debootstrap(secs) => format!("{secs} s into debootstrap"),
            Point::Copy => "at the copy of the cached rootfs".into(),
            Point::Configure => "at configure".into(),
            Point::CheckConfig => "during the config check".into(),
        }
    }
}

/// What follows a shot, for the same container name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    /// The next shot creates the name again (and is interrupted in turn):
    /// it must get past the claim and reach its own point.
    NextShot,
    /// `lxc-tmpl create` of the name, which must succeed.
    Create,
    /// `lxc-tmpl destroy` of the remains, then `lxc-tmpl create`.
    DestroyThenCreate,
}

/// One signal (or two) at one point.
#[derive(Debug, Clone, Copy)]
struct Shot {
    point: Point,
    signal: Signal,
    /// To the whole process group, as Ctrl-C does, instead of lxc-tmpl alone.
    to_group: bool,
    /// Sent 50 ms after the first, during the rollback.
    second: Option<Signal>,
    then: Then,
    /// Start the recreated container and check `lxc-attach -- hostname`.
    start: bool,
}

impl Shot {
    fn new(point: Point, signal: Signal, then: Then) -> Shot {
        Shot { point, signal, to_group: false, second: None, then, start: false }
    }

    /// SIGINT to the process group: Ctrl-C in the terminal.
    fn ctrl_c(point: Point, then: Then) -> Shot {
        Shot { to_group: true, ..Shot::new(point, Signal::SIGINT, then) }
    }

    fn twice(self, second: Signal) -> Shot {
        Shot { second: Some(second), ..self }
    }

    fn and_start(self) -> Shot {
        Shot { start: true, ..self }
    }

    fn describe(&self) -> String {
        let mut text = format!("{}{}", self.signal.as_str(), if self.to_group { " to the process group" } else { "" });
        if let Some(second) = self.second {
            text.push_str(&format!(" then {}", second.as_str()));
        }
        format!("{text} {}", self.point.describe())
    }
}

/// What the shots found.
#[derive(Debug, Default)]
struct Tally {
    signals: usize,
    orphans: usize,
    leaked_mounts: usize,
    stuck_names: usize,
    problems: Vec<String>,
}

impl Tally {
    fn summary(&self) -> String {
        format!(
            "fault injection: {} signals, {} orphans, {} leaked mounts, {} stuck names",
            self.signals, self.orphans, self.leaked_mounts, self.stuck_names
        )
    }

    fn check(&mut self, ok: bool, problem: impl FnOnce() -> String) -> bool {
        if !ok {
            let problem = problem();
            eprintln!("PROBLEM: {problem}");
            self.problems.push(problem);
        }
        ok
    }
}

/// A distro to shoot at: how to create a container of it, and whether it
/// keeps a rootfs cache.
struct Target<'a> {
    label: &'static str,
    distro: &'static str,
    cached: bool,
    create: Box<dyn Fn(&str) -> TestCommand + 'a>,
}

/// Runs shots against one test dir and counts what they leave.
struct Injector<'a> {
    dir: &'a TestDir,
    slow: SlowTool,
    tally: Tally,
    /// The last shot on this name was a SIGKILL: the next create must say
    /// it removed the remains.
    remains_pending: bool,
    shots: usize,
    begun: Instant,
}

impl<'a> Injector<'a> {
    fn new(dir: &'a TestDir) -> Injector<'a> {
        let slow = SlowTool::install(&dir.path().join("slow-bin"), "lxc-info", Duration::from_secs(30));
        Injector { dir, slow, tally: Tally::default(), remains_pending: false, shots: 0, begun: Instant::now() }
    }

    /// The complete cache entries of the target and their fingerprints.
    fn cache_state(&self, target: &Target<'_>) -> Vec<(String, String)> {
        cache_entries(&self.dir.cache(), target.distro)
            .into_iter()
            .map(|rootfs| (rootfs.display().to_string(), leftovers::fingerprint(&rootfs)))
            .collect()
    }

    /// Waits for `point` in `run`.
    fn reach(&self, run: &mut Running, point: Point) -> Result<(), String> {
        let dir = self.dir.path().to_owned();
        let pid = run.pid();
        let step_seen = |lines: &[String], step: &str| lines.iter().any(|l| l == &format!("==> {step}"));
        match point {
            Point::Step(step) => run.wait_until(&format!("step line `==> {step}`"), POINT_TIMEOUT, |lines| {
                step_seen(lines, step).then_some(())
            }),
            Point::Debootstrap(secs) => {
                let since = run.wait_until("a debootstrap process", POINT_TIMEOUT, |_| {
                    procs::related(&dir, Some(pid))
                        .into_iter()
                        .find(|p| p.comm == "debootstrap")
                        .map(|p| (p, Instant::now()))
                })?;
                let (debootstrap, seen) = since;
                let until = seen + Duration::from_secs(secs);
                run.wait_until(&format!("{secs} s of debootstrap"), POINT_TIMEOUT, |_| {
                    (Instant::now() >= until).then_some(())
                })?;
                if procs::alive(&debootstrap) {
                    Ok(())
                } else {
                    Err(format!("debootstrap ended within {secs} s; the shot would miss it"))
                }
            }
            Point::Copy => run.wait_until("step line `==> copy rootfs`", POINT_TIMEOUT, |lines| {
                step_seen(lines, "copy rootfs").then_some(())
            }),
            Point::Configure => run.wait_until("step line `==> configure`", POINT_TIMEOUT, |lines| {
                step_seen(lines, "configure").then_some(())
            }),
            Point::CheckConfig => {
                let wrapper = self.slow.wrapper("lxc-info").display().to_string();
                run.wait_until("the slowed lxc-info and its sleep", POINT_TIMEOUT, |lines| {
                    if !step_seen(lines, "check config") {
                        return None;
                    }
                    let shell = procs::all().into_iter().find(|p| p.cmdline.contains(&wrapper))?;
                    procs::descendants(shell.pid).iter().any(|p| p.comm == "sleep").then_some(())
                })
            }
        }
    }

    /// Fires `shot` at a create of `name`, checks what it left, and does
    /// what `shot.then` says.
    fn fire(&mut self, target: &Target<'_>, name: &str, shot: Shot) {
        self.shots += 1;
        let what = format!(
            "[{:.0?}] {} shot {} ({}): {}",
            self.begun.elapsed(),
            target.label,
            self.shots,
            name,
            shot.describe()
        );
        let lxcpath = self.dir.lxcpath();
        let container_dir = lxcpath.join(name);

        let lock = heavy_lock();
        let mounts_before = snapshot::mountinfo();
        let preexisting = procs::related(self.dir.path(), None);
        let lxcpath_before: Vec<String> = snapshot::listing(&lxcpath).into_iter().filter(|n| n != name).collect();
        let cache_before = self.cache_state(target);

        let mut cmd = (target.create)(name);
        cmd.env("PATH", self.slow.path_env());
        let mut run = Running::spawn(&mut cmd);
        let pid = run.pid();
        let reached = self.reach(&mut run, shot.point);
        let at = run.elapsed();
        let mut known: Vec<Proc> = procs::read(pid).into_iter().collect();
        known.extend(procs::descendants(pid));
        let reached = self.tally.check(reached.is_ok(), || {
            format!("{what}: the point was not reached: {}", reached.as_ref().err().cloned().unwrap_or_default())
        });
        if shot.to_group {
            run.signal_group(shot.signal);
        } else {
            run.signal(shot.signal);
        }
        self.tally.signals += 1;
        if let Some(second) = shot.second {
            thread::sleep(Duration::from_millis(50));
            run.signal(second);
            self.tally.signals += 1;
        }
        let outcome = run.wait(ROLLBACK_TIMEOUT);
        let killed = shot.signal == Signal::SIGKILL;

        // How it ended.
        if reached {
            self.check_ending(&what, shot, &outcome);
        }
        if self.remains_pending {
            let lines = outcome.stderr.lines().filter(|l| l.contains(REMAINS_LINE)).count();
            self.tally.check(lines == 1, || {
                format!("{what}: the create after a SIGKILL printed {lines} lines with {REMAINS_LINE:?}:\n{outcome}")
            });
        }

        // Nothing of it may run on.
        let grace = if killed { KILL_GRACE } else { SIGNAL_GRACE };
        let survivors = procs::survivors(self.dir.path(), pid, &known, &preexisting, grace);
        if !survivors.is_empty() {
            self.tally.orphans += survivors.len();
            let list: Vec<String> = survivors.iter().map(ToString::to_string).collect();
            self.tally
                .check(false, || format!("{what}: processes still running {grace:?} after:\n{}", list.join("\n")));
            // They are this test's (children of the lxc-tmpl it started).
            procs::kill_all(&survivors);
        }
        let zombies = procs::zombies(self.dir.path(), pid, &known, &preexisting).len();
        let mounts_after = snapshot::mountinfo();
        if mounts_after != mounts_before {
            let diff = snapshot::line_diff(&mounts_before, &mounts_after);
            self.tally.leaked_mounts += diff.lines().filter(|l| l.starts_with("+ ")).count().max(1);
            self.tally.check(false, || format!("{what}: the mount table changed:\n{diff}"));
        }
        drop(lock);

        // What it left on disk.
        let others_now: Vec<String> = snapshot::listing(&lxcpath).into_iter().filter(|n| n != name).collect();
        self.tally.check(others_now == lxcpath_before, || {
            format!("{what}: the lxcpath changed beyond {name}: {lxcpath_before:?} -> {others_now:?}")
        });
        self.tally.check(self.cache_state(target) == cache_before, || {
            format!("{what}: a complete cache entry changed (or one appeared or went)")
        });
        let staging = leftovers::staging_dirs(&self.dir.cache());
        if killed {
            self.check_remains(&what, &container_dir);
        } else {
            self.tally.check(!container_dir.exists(), || {
                format!(
                    "{what}: the rollback left {}: {:?}",
                    container_dir.display(),
                    snapshot::listing(&container_dir)
                )
            });
            self.tally.check(staging.is_empty(), || format!("{what}: the rollback left cache staging {staging:?}"));
        }
        eprintln!(
            "{what}: signalled {:.1?} after start with {} processes ({zombies} zombies left for init); {}",
            at,
            known.len(),
            describe_status(&outcome)
        );

        self.remains_pending = killed && container_dir.exists();
        match shot.then {
            Then::NextShot => {}
            Then::Create | Then::DestroyThenCreate => {
                self.recreate(target, name, shot, &what, &cache_before);
            }
        }
        if container_dir.exists() && shot.then != Then::NextShot {
            // Nothing is mounted there (checked above); the name must be free for the next shot.
            let _ = fs::remove_dir_all(&container_dir);
        }
    }

    /// Exit status and the one `error:` line of a signalled create.
    fn check_ending(&mut self, what: &str, shot: Shot, outcome: &Outcome) {
        use std::os::unix::process::ExitStatusExt;
        if shot.signal == Signal::SIGKILL {
            self.tally.check(outcome.status.signal() == Some(Signal::SIGKILL as i32), || {
                format!("{what}: expected death by SIGKILL:\n{outcome}")
            });
            return;
        }
        let expected = exit_status(shot.signal);
        self.tally.check(outcome.status.signal().is_none() && outcome.code() == Some(expected), || {
            format!("{what}: expected exit status {expected}:\n{outcome}")
        });
        let errors: Vec<&str> = outcome.stderr.lines().filter(|l| l.starts_with("error: ")).collect();
        if !self.tally.check(errors.len() == 1, || format!("{what}: expected one `error: ` line:\n{outcome}")) {
            return;
        }
        let line = errors[0].to_ascii_lowercase();
        let signal = format!("interrupted by {}", shot.signal.as_str()).to_ascii_lowercase();
        self.tally
            .check(line.contains(&signal), || format!("{what}: the error line does not say {signal:?}:\n{outcome}"));
        let steps = shot.point.steps();
        self.tally.check(steps.iter().any(|s| line.contains(s)), || {
            format!("{what}: the error line names none of the steps {steps:?}:\n{outcome}")
        });
    }

    /// After SIGKILL: an unlocked `partial` with a JSON record.
    fn check_remains(&mut self, what: &str, container_dir: &Path) {
        match leftovers::partial(container_dir) {
            None => {
                self.tally.check(false, || {
                    format!(
                        "{what}: no {}/partial after SIGKILL (left: {:?})",
                        container_dir.display(),
                        snapshot::listing(container_dir)
                    )
                });
            }
            Some(partial) => {
                self.tally.check(!partial.locked, || format!("{what}: partial is still locked after SIGKILL"));
                let record = partial.record();
                self.tally.check(record.is_ok(), || format!("{what}: partial is no JSON record: {record:?}"));
            }
        }
    }

    /// Creates `name` again after a shot (destroying the remains first if
    /// asked), checks the container and, if asked, starts it; the guard
    /// destroys it afterwards.
    fn recreate(&mut self, target: &Target<'_>, name: &str, shot: Shot, what: &str, cache_before: &[(String, String)]) {
        // Stops and destroys the new container when this returns.
        let mut guard = self.dir.container(name);
        let container_dir = self.dir.lxcpath().join(name);
        let remains_expected = self.remains_pending;
        if shot.then == Then::DestroyThenCreate && remains_expected {
            let destroyed = self.dir.command().args(["destroy", "-P"]).arg(self.dir.lxcpath()).arg(name).run();
            self.tally.check(destroyed.status.success(), || format!("{what}: lxc-tmpl destroy failed:\n{destroyed}"));
            self.tally.check(!container_dir.exists(), || {
                format!("{what}: lxc-tmpl destroy left {:?}", snapshot::listing(&container_dir))
            });
            self.remains_pending = false;
        }
        let started = Instant::now();
        let again = (target.create)(name).run();
        self.remains_pending = false;
        if !again.status.success() {
            self.tally.stuck_names += 1;
            self.tally.check(false, || format!("{what}: the name is stuck, a new create fails:\n{again}"));
            return;
        }
        let remains_lines = again.stderr.lines().filter(|l| l.contains(REMAINS_LINE)).count();
        let expected = usize::from(remains_expected && shot.then == Then::Create);
        self.tally.check(remains_lines == expected, || {
            format!("{what}: the new create printed {remains_lines} lines with {REMAINS_LINE:?}, expected {expected}:\n{again}")
        });
        let text = fs::read_to_string(container_dir.join("config")).unwrap_or_default();
        self.tally.check(config::value(&text, "lxc.uts.name").as_deref() == Some(name), || {
            format!("{what}: the new container's config has no `lxc.uts.name = {name}`:\n{text}")
        });
        let hostname = fs::read_to_string(container_dir.join("rootfs/etc/hostname")).unwrap_or_default();
        self.tally.check(hostname.trim() == name, || format!("{what}: the new rootfs has hostname {hostname:?}"));
        self.tally.check(container_dir.join("rootfs/sbin/init").exists(), || {
            format!("{what}: the new rootfs has no /sbin/init")
        });
        self.tally.check(!container_dir.join("partial").exists(), || format!("{what}: the new container kept partial"));
        if target.cached {
            let after = self.cache_state(target);
            let staging = leftovers::staging_dirs(&self.dir.cache());
            self.tally.check(after.len() == 1 && staging.is_empty(), || {
                format!("{what}: after the new create the cache holds {after:?} and staging {staging:?}")
            });
            if !cache_before.is_empty() {
                self.tally.check(after == cache_before && again.stderr.contains("cache reused"), || {
                    format!("{what}: the new create did not reuse the cache as it was:\n{again}")
                });
            }
        }
        eprintln!("{what}: created again in {:.1?}", started.elapsed());
        if shot.start {
            guard.start();
            let got = guard.attach(&["hostname"]);
            self.tally.check(got.trim() == name, || format!("{what}: lxc-attach hostname printed {got:?}"));
        }
    }
}

fn describe_status(outcome: &Outcome) -> String {
    use std::os::unix::process::ExitStatusExt;
    let error = outcome.stderr.lines().find(|l| l.starts_with("error: ")).unwrap_or("(no error line)");
    match (outcome.code(), outcome.status.signal()) {
        (Some(code), _) => format!("exit {code}: {error}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => "unknown status".into(),
    }
}

/// `lxc-tmpl create --distro debian` from the local mirror.
fn debian_create(dir: &TestDir, mirror: &str, fixture: &AptFixture, name: &str) -> TestCommand {
    let mut cmd = dir.create("debian", name);
    fixture.from_mirror(&mut cmd, mirror, "bookworm");
    cmd
}

/// SIGINT, SIGTERM, SIGHUP and SIGKILL at points spread over a busybox
/// create, a cold debian build and warm debian creates. After each: no
/// process of the create alive, the mount table unchanged, the cache whole
/// (or rebuilt by the next create), and the name can be created again (and
/// started, once per distro).
#[test]
fn fault_injection_leaves_no_orphans_mounts_or_stuck_names() {
    require_root();
    require_tools(LXC_TOOLS);
    require_tools(BOOTSTRAP_TOOLS);
    let fixture = apt_fixture();
    let server = MirrorServer::start();
    let mirror = server.url("debian");
    let dir = TestDir::new("fault-injection");
    let mut injector = Injector::new(&dir);
    let started = Instant::now();

    let busybox = Target {
        label: "busybox",
        distro: "busybox",
        cached: false,
        create: Box::new(|name| dir.create("busybox", name)),
    };
    use Point::{CheckConfig, Configure, Copy, Debootstrap, Step};
    use Signal::{SIGHUP, SIGKILL, SIGTERM};
    use Then::{Create, DestroyThenCreate, NextShot};
    let busybox_shots = [
        Shot::new(Step("download"), SIGTERM, NextShot),
        Shot::new(Step("download"), SIGKILL, Create),
        Shot::ctrl_c(Step("configure"), Create),
        Shot::new(Step("configure"), SIGHUP, Create),
        Shot::new(Step("configure"), SIGKILL, DestroyThenCreate),
        Shot::new(Step("finalize"), SIGTERM, Create),
        Shot::new(CheckConfig, SIGTERM, Create),
        Shot::ctrl_c(CheckConfig, Create),
        Shot::new(CheckConfig, SIGHUP, Create).twice(SIGTERM),
        Shot::new(CheckConfig, SIGKILL, Create).and_start(),
    ];
    for shot in busybox_shots {
        injector.fire(&busybox, "fi-bb", shot);
    }
    eprintln!("busybox shots done after {:.1?}", started.elapsed());

    let debian = Target {
        label: "debian",
        distro: "debian",
        cached: true,
        create: Box::new(|name| debian_create(&dir, &mirror, &fixture, name)),
    };
    // Cold: the cache is built by debootstrap; each shot's successor creates
    // the same name, and the last one builds the cache to the end.
    let cold_shots = [
        Shot::new(Debootstrap(3), SIGTERM, NextShot),
        Shot::new(Debootstrap(8), SIGKILL, NextShot),
        Shot::ctrl_c(Debootstrap(15), Create),
    ];
    for shot in cold_shots {
        injector.fire(&debian, "fi-deb", shot);
    }
    eprintln!("cold debian shots done after {:.1?}", started.elapsed());
    // Warm: copy, configure and the config check, from that cache.
    // Most shots leave the recreate to the next shot (which must get past
    // the claim, after removing the remains of a SIGKILL): full creates are
    // slow here.
    let warm_shots = [
        Shot::new(Copy, SIGTERM, NextShot),
        Shot::new(Copy, SIGKILL, DestroyThenCreate),
        Shot::ctrl_c(Copy, NextShot),
        Shot::new(Configure, SIGTERM, NextShot).twice(SIGTERM),
        Shot::new(Configure, SIGKILL, NextShot),
        Shot::new(Configure, SIGHUP, NextShot),
        Shot::new(CheckConfig, SIGTERM, NextShot),
        Shot::new(CheckConfig, SIGKILL, Create).and_start(),
    ];
    for shot in warm_shots {
        injector.fire(&debian, "fi-deb", shot);
    }

    let tally = &injector.tally;
    // Straight to stderr, past the test harness's capture (which takes only the print macros),
    // so the summary is in every run's log, CI's included.
    let _ = writeln!(std::io::stderr(), "{} ({} shots in {:.1?})", tally.summary(), injector.shots, started.elapsed());
    assert!(
        tally.problems.is_empty(),
        "{}; {} problems:\n\n{}",
        tally.summary(),
        tally.problems.len(),
        tally.problems.join("\n\n")
    );
}

/// A busybox create whose config check is slowed, so that a signal sent
/// there reliably lands in it.
fn slow_busybox(dir: &TestDir, slow: &SlowTool, name: &str) -> Running {
    let mut cmd = dir.create("busybox", name);
    cmd.env("PATH", slow.path_env());
    Running::spawn(&mut cmd)
}

/// Waits for the slowed config check of `run`; returns the processes of
/// the create then (lxc-tmpl and its descendants).
fn at_check_config(run: &mut Running) -> Vec<Proc> {
    let pid = run.pid();
    run.wait_for_line("the config check", Duration::from_secs(60), |l| l == "==> check config").unwrap();
    // The slowed lxc-info is running once its `sleep` is.
    run.wait_until("the slowed lxc-info", Duration::from_secs(10), |_| {
        procs::descendants(pid).iter().any(|p| p.comm == "sleep").then_some(())
    })
    .unwrap();
    let mut known: Vec<Proc> = procs::read(pid).into_iter().collect();
    known.extend(procs::descendants(pid));
    known
}

/// SIGINT, SIGTERM and SIGHUP give exit status 130, 143 and 129, one
/// `error:` line naming the signal and the step, and nothing left.
#[test]
fn signals_exit_128_plus_the_signal_with_one_error_line() {
    require_root();
    require_tools(LXC_TOOLS);
    let dir = TestDir::new("interrupt-status");
    let slow = SlowTool::install(&dir.path().join("slow-bin"), "lxc-info", Duration::from_secs(30));
    for (signal, status) in [(Signal::SIGINT, 130), (Signal::SIGTERM, 143), (Signal::SIGHUP, 129)] {
        assert_eq!(exit_status(signal), status);
        let _lock = heavy_lock();
        let mut run = slow_busybox(&dir, &slow, "sig");
        let known = at_check_config(&mut run);
        run.signal(signal);
        let outcome = run.wait(ROLLBACK_TIMEOUT);
        outcome.assert_exit(status);
        let line = error_line(&outcome.stderr);
        assert_mentions(&line, &[&format!("interrupted by {}", signal.as_str()), "check config"]);
        let left: Vec<&Proc> = known.iter().filter(|p| procs::alive(p)).collect();
        assert!(left.is_empty(), "{} left processes running: {left:?}", signal.as_str());
        assert!(
            snapshot::listing(&dir.lxcpath()).is_empty(),
            "{} left {:?}",
            signal.as_str(),
            snapshot::listing(&dir.lxcpath())
        );
    }
}

/// A killed create leaves an unlocked `partial`; `lxc-tmpl destroy`
/// removes the remains, and so does the next create of the name, saying so
/// in one line.
#[test]
fn killed_create_is_cleaned_up_by_destroy_and_by_the_next_create() {
    require_root();
    require_tools(LXC_TOOLS);
    let dir = TestDir::new("interrupt-recover");
    let slow = SlowTool::install(&dir.path().join("slow-bin"), "lxc-info", Duration::from_secs(30));
    let ct = dir.container("rec");
    let container_dir = ct.dir();
    let kill_at_check_config = || {
        let mut run = slow_busybox(&dir, &slow, "rec");
        let pid = run.pid();
        let known = at_check_config(&mut run);
        run.signal(Signal::SIGKILL);
        run.wait(ROLLBACK_TIMEOUT);
        let left = procs::survivors(dir.path(), pid, &known, &[], KILL_GRACE);
        procs::kill_all(&left);
        assert!(left.is_empty(), "processes outlived SIGKILL of lxc-tmpl: {left:#?}");
        let partial = leftovers::partial(&container_dir)
            .unwrap_or_else(|| panic!("no partial after SIGKILL: {:?}", snapshot::listing(&container_dir)));
        assert!(!partial.locked, "partial is locked after SIGKILL");
        partial.record().unwrap_or_else(|e| panic!("partial is no JSON record: {e}"));
    };

    kill_at_check_config();
    let destroyed = dir.command().args(["destroy", "-P"]).arg(dir.lxcpath()).arg("rec").run();
    destroyed.assert_success();
    assert!(!container_dir.exists(), "destroy left {:?}", snapshot::listing(&container_dir));
    assert!(snapshot::listing(&dir.lxcpath()).is_empty(), "destroy left {:?}", snapshot::listing(&dir.lxcpath()));

    kill_at_check_config();
    let again = dir.create("busybox", "rec").run();
    again.assert_success();
    let lines: Vec<&str> = again.stderr.lines().filter(|l| l.contains(REMAINS_LINE)).collect();
    assert_eq!(lines.len(), 1, "expected one line saying {REMAINS_LINE:?}:\n{again}");
    assert_eq!(read(container_dir.join("rootfs/etc/hostname")).trim(), "rec");
    assert!(!container_dir.join("partial").exists());
    assert_eq!(ct.lxc_config_item("lxc.uts.name"), "lxc.uts.name = rec");
}

/// While a create holds `partial`, `lxc-tmpl destroy` and a second create of
/// the name refuse with one line naming the holder's pid, and take nothing
/// from it: the create, continued, completes.
#[test]
fn destroy_refuses_a_create_in_progress() {
    require_root();
    require_tools(LXC_TOOLS);
    let dir = TestDir::new("interrupt-busy");
    let ct = dir.container("busy");
    let mut run = Running::spawn(&mut dir.create("busybox", "busy"));
    run.wait_for_line("the download step", Duration::from_secs(60), |l| l == "==> download").unwrap();
    // Stopped while it holds the claim (it is made before the download).
    run.signal(Signal::SIGSTOP);
    let pid = run.pid().to_string();
    let partial = leftovers::partial(&ct.dir()).expect("the create in progress has a partial file");
    assert!(partial.locked, "the partial of a create in progress is not locked");

    let destroy = dir.command().args(["destroy", "-P"]).arg(dir.lxcpath()).arg("busy").run();
    destroy.assert_failed();
    assert_mentions(&error_line(&destroy.stderr), &["busy", "being created by process", &pid]);
    let second = dir.create("busybox", "busy").run();
    second.assert_failed();
    assert_mentions(&error_line(&second.stderr), &["busy", "being created by process", &pid]);
    assert!(ct.dir().join("partial").exists(), "the refusals removed the partial file of the create in progress");

    run.signal(Signal::SIGCONT);
    let outcome = run.wait(ROLLBACK_TIMEOUT);
    outcome.assert_success();
    assert_eq!(read(ct.rootfs().join("etc/hostname")).trim(), "busy");
    assert!(!ct.dir().join("partial").exists());
}

/// Recovery removes only what the create made: a container directory and a
/// `--rootfs` the user made beforehand stay (empty, as they were), after a
/// rollback, after `destroy` and after the next create's clean-up.
#[test]
fn recovery_keeps_the_users_own_directories() {
    require_root();
    require_tools(LXC_TOOLS);
    let dir = TestDir::new("interrupt-own-dirs");
    let slow = SlowTool::install(&dir.path().join("slow-bin"), "lxc-info", Duration::from_secs(30));
    let ct = dir.container("own");
    let own_dir = dir.mkdir("lxcpath/own");
    let own_rootfs = dir.mkdir("own-rootfs");
    let create = || {
        let mut cmd = dir.create("busybox", "own");
        cmd.arg("--rootfs").arg(&own_rootfs).env("PATH", slow.path_env());
        Running::spawn(&mut cmd)
    };
    let assert_kept = |when: &str| {
        assert!(own_dir.is_dir(), "{when}: the user's container directory was removed");
        assert!(own_rootfs.is_dir(), "{when}: the user's rootfs directory was removed");
        assert_eq!(snapshot::listing(&own_rootfs), Vec::<String>::new(), "{when}: the user's rootfs is not empty");
        assert_eq!(snapshot::listing(&own_dir), Vec::<String>::new(), "{when}: the container dir is not empty");
    };

    let mut run = create();
    at_check_config(&mut run);
    run.signal(Signal::SIGTERM);
    run.wait(ROLLBACK_TIMEOUT).assert_exit(143);
    assert_kept("after SIGTERM");

    let mut run = create();
    at_check_config(&mut run);
    run.signal(Signal::SIGKILL);
    run.wait(ROLLBACK_TIMEOUT);
    assert!(own_dir.join("partial").exists(), "no partial after SIGKILL");
    dir.command().args(["destroy", "-P"]).arg(dir.lxcpath()).arg("own").stdout();
    assert_kept("after destroy");

    let mut run = create();
    at_check_config(&mut run);
    run.signal(Signal::SIGKILL);
    run.wait(ROLLBACK_TIMEOUT);
    let again = dir.create("busybox", "own").arg("--rootfs").arg(&own_rootfs).run();
    again.assert_success();
    assert!(again.stderr.contains(REMAINS_LINE), "{again}");
    assert_eq!(read(own_rootfs.join("etc/hostname")).trim(), "own");
    assert!(ct.config().contains(&format!("lxc.rootfs.path = dir:{}", own_rootfs.display())), "{}", ct.config());
}
