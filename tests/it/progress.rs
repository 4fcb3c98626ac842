//! Progress on a terminal: bars are drawn while a create runs, and the last
//! frame is a clean summary (each step with its time, the total, the
//! result). Without a terminal only plain lines are printed.
//!
//! The terminal is a real pseudo-terminal: `script -qfec CMD /dev/null`
//! (util-linux) runs the create with a pty as its stdin, stdout and stderr
//! and copies everything written to it, control sequences included, to its
//! own stdout. One cold debian build (from the local mirror) shows
//! debootstrap's packages counted against their total.

use std::ffi::{OsStr, OsString};

use lxc_tmpl_tests::{MirrorServer, Outcome, TestCommand, TestDir, apt_fixture, paths, require_root, require_tools};

/// `arg` quoted for `sh -c`.
fn quote(arg: &OsStr) -> String {
    format!("'{}'", arg.to_string_lossy().replace('\'', r"'\''"))
}

/// Runs `lxc-tmpl ARGS` on a pseudo-terminal of `script`, from `dir`, with
/// `env` added; returns what the terminal received (stdout and stderr, as
/// one stream).
fn on_terminal(dir: &TestDir, args: &[OsString], env: &[(&str, &str)]) -> Outcome {
    require_tools(&["script"]);
    let binary = paths::binary();
    let command: Vec<String> =
        std::iter::once(binary.as_os_str()).chain(args.iter().map(OsString::as_os_str)).map(quote).collect();
    let mut cmd = TestCommand::new("script");
    cmd.args(["-qfec", &command.join(" "), "/dev/null"]);
    cmd.env("LXC_TMPL_PLUGIN_PATH", dir.plugins()).env("LXC_TMPL_LOG_DIR", dir.logs()).current_dir(dir.path());
    // A terminal that can move the cursor (the harness's default is `dumb`).
    cmd.env("TERM", "xterm");
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.run()
}

/// `create --distro DISTRO --name NAME` into the test dir's lxcpath and cache, from its base config.
fn create_args(dir: &TestDir, distro: &str, name: &str) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["create", "--distro", distro, "--name", name, "-P"].map(OsString::from).to_vec();
    args.extend([dir.lxcpath().into(), "-f".into(), dir.safe_conf().into(), "--cache-dir".into(), dir.cache().into()]);
    args
}

/// What the terminal shows at the end: the text after the last control
/// sequence (indicatif clears the bar's line with `ESC [2K` before it
/// prints a finished step and before it goes).
fn last_frame(screen: &str) -> &str {
    let last = screen.rfind('\x1b').expect("no control sequence at all: no bar was drawn");
    let after = &screen[last..];
    // Skip the sequence itself: ESC [ parameters final-byte.
    let end = after.char_indices().skip(2).find(|(_, c)| c.is_ascii_alphabetic()).map_or(after.len(), |(i, _)| i + 1);
    &after[end..]
}

#[test]
fn bars_on_a_terminal_end_in_a_summary_and_plain_lines_without_one() {
    require_root();
    let dir = TestDir::new("progress-tty");
    let _cts = [dir.container("tty1"), dir.container("plain1")];
    let outcome = on_terminal(&dir, &create_args(&dir, "busybox", "tty1"), &[]);
    outcome.assert_success();
    let screen = &outcome.stdout;
    // A bar: a spinner frame with the step and its elapsed time, cleared and redrawn in place.
    let frames: Vec<&str> = screen.split("\r\x1b[2K").collect();
    let drawn = |step: &str| {
        frames.iter().any(|f| {
            f.chars().next().is_some_and(|c| !c.is_ascii())
                && f.contains(&format!(" {step} "))
                && f.trim_end().ends_with('s')
        })
    };
    assert!(frames.len() > 10, "the bar was never redrawn in place:\n{screen:?}");
    assert!(drawn("configure"), "no bar for the configure step:\n{screen:?}");
    // Every step ends as a line with its time.
    for step in ["validate", "download", "configure", "check init"] {
        assert!(screen.contains(&format!("==> {step} (")), "no summary line for {step}:\n{screen:?}");
    }
    let last = last_frame(screen);
    assert!(last.contains("    total: "), "the last frame has no total:\n{last:?}");
    assert!(last.contains("created container 'tty1'"), "the last frame does not say what was made:\n{last:?}");
    // The terminal turns each \n into \r\n; any other \r would be a redraw.
    assert!(!last.replace("\r\n", "\n").contains('\r'), "the last frame is redrawn over, not clean:\n{last:?}");

    // The same create without a terminal: plain lines only.
    let plain = dir.create("busybox", "plain1").run();
    plain.assert_success();
    assert!(
        !plain.stderr.contains('\x1b') && !plain.stderr.contains('\r'),
        "control sequences off a terminal:\n{plain}"
    );
    assert!(plain.stderr.lines().any(|l| l == "==> configure"), "{plain}");
    assert!(plain.stderr.lines().any(|l| l.starts_with("    configure: ")), "{plain}");
}

#[test]
fn quiet_on_a_terminal_draws_nothing() {
    require_root();
    let dir = TestDir::new("progress-quiet");
    let _ct = dir.container("hush");
    let mut args = create_args(&dir, "busybox", "hush");
    args.push("-q".into());
    let outcome = on_terminal(&dir, &args, &[]);
    outcome.assert_success();
    assert!(outcome.stdout.trim().is_empty(), "-q printed on the terminal:\n{:?}", outcome.stdout);
}

#[test]
fn debootstrap_packages_are_counted_against_their_total() {
    require_root();
    require_tools(&["debootstrap", "wget", "gpgv"]);
    let fixture = apt_fixture();
    let server = MirrorServer::start();
    let dir = TestDir::new("progress-debootstrap");
    let _ct = dir.container("deb1");
    let mirror = server.url("debian");
    let mut args = create_args(&dir, "debian", "deb1");
    args.extend(
        ["--release", "bookworm", "--mirror", &mirror, "--security-mirror", &mirror, "--keyring"].map(OsString::from),
    );
    args.push(fixture.keyring.clone().into());
    let outcome = on_terminal(&dir, &args, &[("HTTP_PROXY", "none"), ("LANG", "C.UTF-8")]);
    outcome.assert_success();
    let screen = &outcome.stdout;
    assert!(screen.contains(" packages retrieved"), "no count while debootstrap downloads:\n{screen:?}");
    // `[=====>    ] 12/97 packages unpacked`: a bar with a total.
    let counted = ["extracted", "unpacked", "configured"].iter().all(|phase| {
        screen.match_indices(&format!(" packages {phase}")).any(|(at, _)| {
            let before = &screen[..at];
            let count = before.rsplit(' ').next().unwrap_or_default();
            count
                .split_once('/')
                .is_some_and(|(done, total)| done.parse::<u32>().is_ok() && total.parse::<u32>().is_ok_and(|t| t > 10))
        })
    });
    assert!(counted, "debootstrap's phases are not counted as done/total:\n{screen:?}");
    let last = last_frame(screen);
    assert!(last.contains("    total: ") && last.contains("created container 'deb1'"), "{last:?}");
    let summary = screen.split("==> debootstrap ").nth(1).and_then(|rest| rest.split("\r\n").next());
    assert!(summary.is_some_and(|l| l.ends_with(" s)")), "no summary line for debootstrap:\n{screen:?}");
    // The bar's line fits the terminal: a line that wraps makes indicatif move the cursor up.
    assert!(!screen.contains("\x1b[1A"), "a bar line wrapped on the 80-column terminal");
    let log = std::fs::read_to_string(&dir.log_files()[0]).unwrap();
    assert!(log.contains("stdout| I: Configuring"), "debootstrap's output is not in the log");
    assert!(log.contains("debootstrap: ") && log.contains(" packages\n"), "no package total in the log");
}
