//! Secrets stay off every command line, out of the output and out of the
//! config: an HTTP proxy URL with a password, and a user's password.
//!
//! `/proc/PID/cmdline` is readable by every local user. A watcher thread
//! reads every process's command line, many times a second, for the whole of
//! a cold ubuntu create (debootstrap, apt and the other in-rootfs commands
//! all run) whose proxy and password hold the word `s3cret`. The proxy is
//! real: the test's mirror server also answers proxy requests, so the test
//! also shows the proxy was used.
//!
//! Each create's log (every command, its whole output) holds no secret either.
//!
//! A password typed on lxc-tmpl's own command line was visible there from
//! the moment lxc-tmpl was started, which no program can prevent; the
//! second create checks that lxc-tmpl hides it as soon as it has parsed its
//! arguments, and that the config header shows `<redacted>`.

use std::{
    fs,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use lxc_tmpl_tests::{
    MirrorServer, TestCommand, TestDir, apt_fixture, procs, require_root, require_tools, rootfs::read, running::Running,
};

/// The word every secret of this test holds.
const SECRET: &str = "s3cret";

/// Reads every `/proc/*/cmdline` until stopped; keeps what held [`SECRET`].
struct Watcher {
    stop: Arc<AtomicBool>,
    scans: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<String>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Watcher {
    fn start() -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let scans = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, scans, seen) = (stop.clone(), scans.clone(), seen.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for process in procs::all() {
                        if process.cmdline.contains(SECRET) {
                            seen.lock().unwrap().push(process.to_string());
                        }
                    }
                    scans.fetch_add(1, Ordering::Relaxed);
                    thread::sleep(Duration::from_millis(2));
                }
            })
        };
        Watcher { stop, scans, seen, thread: Some(thread) }
    }

    /// Stops the watcher; returns the number of scans and what it saw.
    fn finish(mut self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().expect("the watcher panicked");
        (self.scans.load(Ordering::Relaxed), self.seen.lock().unwrap().clone())
    }
}

/// `lxc-tmpl create -v --distro ubuntu --release jammy` from the local
/// mirror, through `proxy`.
fn create(dir: &TestDir, server: &MirrorServer, name: &str, proxy: &str) -> TestCommand {
    let fixture = apt_fixture();
    let mirror = server.url("ubuntu");
    let mut cmd = dir.create("ubuntu", name);
    cmd.args(["-v", "--release", "jammy", "--mirror", &mirror, "--security-mirror", &mirror, "--user", "tester"]);
    cmd.arg("--keyring").arg(&fixture.keyring);
    cmd.env("HTTP_PROXY", proxy).env("LANG", "C.UTF-8");
    cmd
}

#[test]
fn secrets_stay_off_command_lines_output_and_config() {
    require_root();
    require_tools(&["debootstrap", "wget", "gpgv"]);
    let server = MirrorServer::start();
    let dir = TestDir::new("secrets");
    let containers = [dir.container("sec1"), dir.container("sec2")];
    let proxy = format!("http://lxc:{SECRET}@127.0.0.1:{}", server.port());
    let password_file = dir.write("password", format!("{SECRET}-pw\n"));

    // A cold create: the proxy in the environment, the password in a file.
    let watcher = Watcher::start();
    let started = Instant::now();
    let outcome = create(&dir, &server, "sec1", &proxy).arg("--password-file").arg(&password_file).run();
    let (scans, seen) = watcher.finish();
    let elapsed = started.elapsed();
    outcome.assert_success();
    println!("cold create: {elapsed:.1?}, {scans} scans of every command line");
    assert!(scans as f64 / elapsed.as_secs_f64() > 20.0, "the watcher scanned only {scans} times in {elapsed:?}");
    assert!(seen.is_empty(), "a command line held the secret:\n{}", seen.join("\n"));
    let output = format!("{}{}", outcome.stdout, outcome.stderr);
    assert!(output.contains("debug: running"), "-v did not show the commands:\n{output}");
    assert!(!output.contains(SECRET), "the -v output shows the secret:\n{output}");
    let ct = &containers[0];
    let config = read(ct.config_path());
    assert!(!config.contains(SECRET), "the config holds the secret:\n{config}");
    // The proxy was used (absolute-form requests) and the password was set.
    let proxied = server.served().iter().filter(|s| s.target.starts_with("http://")).count();
    assert!(proxied > 0, "nothing came through the proxy: {:?}", server.served());
    let shadow = read(ct.rootfs().join("etc/shadow"));
    let hash = shadow.lines().find_map(|l| l.strip_prefix("tester:")).expect("tester in /etc/shadow");
    assert!(hash.starts_with('$'), "tester has no password: tester:{hash}");

    // A warm create with both secrets typed on lxc-tmpl's command line.
    let mut cmd = create(&dir, &server, "sec2", "none");
    cmd.args(["--password", SECRET, "--http-proxy", &proxy]);
    let mut running = Running::spawn(&mut cmd);
    let pid = running.pid();
    running
        .wait_for_line("the first debug line", Duration::from_secs(120), |l| l.starts_with("debug:"))
        .unwrap_or_else(|e| panic!("{e}"));
    let cmdline = String::from_utf8_lossy(&fs::read(format!("/proc/{pid}/cmdline")).unwrap()).replace('\0', " ");
    let outcome = running.wait(Duration::from_secs(600));
    outcome.assert_success();
    assert!(cmdline.contains("--password xxxxxx"), "lxc-tmpl did not hide --password: {cmdline}");
    assert!(!cmdline.contains(SECRET), "lxc-tmpl's command line still holds the secret: {cmdline}");
    let output = format!("{}{}", outcome.stdout, outcome.stderr);
    assert!(!output.contains(SECRET), "the -v output shows the secret:\n{output}");
    let config = read(containers[1].config_path());
    assert!(!config.contains(SECRET), "the config holds the secret:\n{config}");
    assert!(
        config.contains("--password <redacted>") && config.contains("--http-proxy <redacted>"),
        "the config header does not say what was redacted:\n{config}"
    );

    // The logs hold every command and its whole output, and no secret.
    let logs = dir.log_files();
    assert_eq!(logs.len(), 2, "one log per create: {logs:?}");
    for log in logs {
        let text = fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("$ on host: ") && text.contains("-> exit status 0"),
            "{} lists no command",
            log.display()
        );
        assert!(!text.contains(SECRET), "the log {} holds the secret", log.display());
    }
}
