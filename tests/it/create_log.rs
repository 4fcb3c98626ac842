//! Every create keeps a log: each step, each command with its whole output
//! and its exit status, each line stamped with the time; every error names
//! the log.
//!
//! The failing command is the faulty fixture's `--fail-command 40`: 40 lines
//! on stdout and 40 on stderr, then exit 7. The error shows the last few of
//! them; the log must hold all 80.

use std::{fs, os::unix::fs::PermissionsExt, path::PathBuf};

use lxc_tmpl_tests::{Fixture, TestDir, assert_mentions, error_line, require_root};

/// The log path an error line names: `... (log: PATH)` at its end.
fn log_named_in(line: &str) -> PathBuf {
    let start = line.rfind("(log: ").unwrap_or_else(|| panic!("the error names no log: {line}"));
    PathBuf::from(line[start + 6..].strip_suffix(')').unwrap_or_else(|| panic!("no ')' after the log: {line}")))
}

/// Each line of a log starts with an RFC 3339 UTC time with milliseconds.
fn assert_timestamped(log: &str) {
    for line in log.lines() {
        let stamp = line.split(' ').next().unwrap_or_default();
        let ok = stamp.len() == 24
            && stamp.ends_with('Z')
            && stamp.as_bytes()[10] == b'T'
            && stamp[..4].bytes().all(|b| b.is_ascii_digit());
        assert!(ok, "a log line without an RFC 3339 time: {line:?}");
    }
}

#[test]
fn failing_command_output_is_all_in_the_log_the_error_names() {
    require_root();
    let dir = TestDir::new("create-log-fail");
    dir.add_plugin(Fixture::Faulty);
    let _ct = dir.container("noisy");
    let outcome = dir.create("faulty", "noisy").args(["--fail-command", "40"]).assert_exit(1).clone();
    let line = error_line(&outcome.stderr);
    assert_mentions(&line, &["exit status 7", "(log: "]);
    // The error shows the tail of the output; the rest is in the log only.
    assert!(outcome.stderr.contains("noisy stderr 40\n"), "{outcome}");
    assert!(!outcome.stderr.contains("noisy stderr 10\n"), "{outcome}");

    let path = log_named_in(&line);
    assert!(
        path.starts_with(dir.logs()),
        "the log {} is not in $LXC_TMPL_LOG_DIR {}",
        path.display(),
        dir.logs().display()
    );
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("noisy-") && name.ends_with("Z.log"), "log name {name} is not NAME-<UTC time>.log");
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600, "the log is not private");
    assert_eq!(fs::metadata(dir.logs()).unwrap().permissions().mode() & 0o777, 0o700, "the log dir is not private");
    let log = fs::read_to_string(&path).unwrap();
    assert_timestamped(&log);
    for n in 1..=40 {
        assert!(log.contains(&format!("stdout| noisy stdout {n}\n")), "stdout line {n} is not in the log:\n{log}");
        assert!(log.contains(&format!("stderr| noisy stderr {n}\n")), "stderr line {n} is not in the log:\n{log}");
    }
    assert!(log.contains("-> exit status 7 after "), "the exit status is not in the log:\n{log}");
    assert!(log.contains("==> configure"), "the step is not in the log:\n{log}");
    let error = line.trim_start_matches("error: ").split(" (log: ").next().unwrap();
    assert!(log.contains(&format!("error: {error}")), "the error is not in the log:\n{log}");
}

#[test]
fn successful_create_logs_every_command_with_its_exit_status() {
    require_root();
    let dir = TestDir::new("create-log-ok");
    let _ct = dir.container("quiet");
    let chosen = dir.path().join("chosen.log");
    let outcome = dir.create("busybox", "quiet").arg("--log").arg(&chosen).run();
    outcome.assert_success();
    assert!(dir.log_files().is_empty(), "--log was not used: {:?}", dir.log_files());
    let log = fs::read_to_string(&chosen).unwrap();
    assert_timestamped(&log);
    let lines: Vec<&str> = log.lines().map(|l| l.split_once(' ').unwrap().1).collect();
    let started = lines.iter().filter(|l| l.starts_with("$ ")).count();
    let ended = lines.iter().filter(|l| l.starts_with("  -> exit status 0 after ")).count();
    // busybox --list-full, commands in the rootfs, the lxc-info config check.
    assert!(started >= 2, "too few commands in the log:\n{log}");
    assert_eq!(started, ended, "a command without its exit status:\n{log}");
    assert!(lines.iter().any(|l| l.starts_with("$ on host: ") && l.contains("busybox --list-full")), "{log}");
    assert!(lines.iter().any(|l| l.starts_with("$ on host: lxc-info")), "{log}");
    for step in ["validate", "download", "configure", "check config"] {
        assert!(lines.contains(&format!("==> {step}").as_str()), "step {step} is not in the log:\n{log}");
        assert!(lines.iter().any(|l| l.starts_with(&format!("step {step} done in "))), "{log}");
    }
    assert!(lines.iter().any(|l| l.starts_with("created container 'quiet'")), "{log}");
    // Without a terminal: plain step lines with durations, no control sequences.
    assert!(outcome.stderr.lines().any(|l| l == "==> configure"), "{outcome}");
    assert!(outcome.stderr.lines().any(|l| l.starts_with("    configure: ") && l.ends_with(" s")), "{outcome}");
    assert!(outcome.stderr.lines().any(|l| l.starts_with("    total: ")), "{outcome}");
    assert!(!outcome.stderr.contains('\x1b') && !outcome.stderr.contains('\r'), "{outcome}");
}

#[test]
fn quiet_prints_nothing_but_still_logs() {
    require_root();
    let dir = TestDir::new("create-log-quiet");
    let _ct = dir.container("hush");
    let outcome = dir.create("busybox", "hush").arg("-q").run();
    outcome.assert_success();
    assert!(outcome.stderr.is_empty() && outcome.stdout.is_empty(), "-q printed something:\n{outcome}");
    let logs = dir.log_files();
    assert_eq!(logs.len(), 1, "{logs:?}");
    let log = fs::read_to_string(&logs[0]).unwrap();
    assert!(log.contains("==> configure") && log.contains("-> exit status 0"), "{log}");
}

#[test]
fn verbose_shows_every_command() {
    require_root();
    let dir = TestDir::new("create-log-verbose");
    let _ct = dir.container("loud");
    let outcome = dir.create("busybox", "loud").arg("-v").run();
    outcome.assert_success();
    let log = fs::read_to_string(&dir.log_files()[0]).unwrap();
    let logged = log.lines().filter(|l| l.contains(" $ ")).count();
    let shown = outcome.stderr.lines().filter(|l| l.starts_with("debug: running ")).count();
    assert_eq!(logged, shown, "-v did not show every command that ran:\n{outcome}\n{log}");
}
