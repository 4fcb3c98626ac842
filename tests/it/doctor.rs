//! `lxc-tmpl doctor` on this host, and on this host with one thing taken
//! away for real: LXC missing from `PATH`, debootstrap hidden in a private
//! mount namespace, a cache dir on a nearly full tmpfs, a plugin dir others
//! may write to. Each such check fails with its fix, and the exit status is
//! 1 exactly when a line says `fail`. (The unit tests of
//! `core/host/src/doctor/` fake each check's files so that it fails.)

use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::{PermissionsExt, symlink},
    path::{Path, PathBuf},
};

use lxc_tmpl_tests::{
    Outcome, TestCommand, TestDir, assert_mentions, heavy_lock, require_root, require_tools, tmpfs::Tmpfs,
};
use serde_json::Value;

/// Where the Debian-family plugins look for debootstrap (as doctor does).
const DEBOOTSTRAP_PATHS: &[&str] = &["/usr/sbin/debootstrap", "/usr/bin/debootstrap", "/sbin/debootstrap"];

/// `lxc-tmpl doctor` on the test dir's cache dir and lxcpath.
fn doctor(dir: &TestDir) -> TestCommand {
    let mut cmd = dir.command();
    cmd.arg("doctor").arg("--cache-dir").arg(dir.cache()).arg("-P").arg(dir.lxcpath());
    cmd
}

/// One printed check: (status, name, the rest of the line).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    status: String,
    name: String,
    text: String,
}

/// The check lines of doctor's text output, asserting their shape: status
/// padded to 4, two spaces, `name: detail`, and ` — fix` on warn and fail.
/// The last line is the count.
#[track_caller]
fn lines(outcome: &Outcome) -> Vec<Line> {
    let mut all: Vec<&str> = outcome.stdout.lines().collect();
    let count = all.pop().unwrap_or_default();
    assert!(count.ends_with("failure(s)"), "no count line at the end:\n{outcome}");
    all.iter()
        .map(|line| {
            let (status, rest) = line.split_at(4);
            let status = status.trim_end().to_owned();
            assert!(["ok", "warn", "fail"].contains(&status.as_str()), "bad status in {line:?}");
            let rest = rest.strip_prefix("  ").unwrap_or_else(|| panic!("no two spaces after the status: {line:?}"));
            let (name, text) = rest.split_once(": ").unwrap_or_else(|| panic!("no 'name: ' in {line:?}"));
            assert_eq!(status != "ok", text.contains(" — "), "a fix goes with warn and fail only: {line:?}");
            Line { status, name: name.to_owned(), text: text.to_owned() }
        })
        .collect()
}

/// The line of check `name`.
#[track_caller]
fn line<'a>(lines: &'a [Line], name: &str, outcome: &Outcome) -> &'a Line {
    lines.iter().find(|l| l.name == name).unwrap_or_else(|| panic!("no {name} line:\n{outcome}"))
}

/// Asserts the contract: exit 1 when a line says fail, 0 when none does.
#[track_caller]
fn assert_exit_matches_lines(outcome: &Outcome, lines: &[Line]) {
    let failed = lines.iter().any(|l| l.status == "fail");
    outcome.assert_exit(if failed { 1 } else { 0 });
}

#[test]
fn doctor_here_exits_1_exactly_when_a_line_fails() {
    require_root();
    let dir = TestDir::new("doctor-here");
    let outcome = doctor(&dir).run();
    let lines = lines(&outcome);
    assert_exit_matches_lines(&outcome, &lines);
    // Every check the issue names has a line.
    for name in [
        "privileges",
        "namespaces",
        "cgroup",
        "lxc",
        "debootstrap",
        "mmdebstrap",
        "keyring:debian",
        "keyring:ubuntu",
        "binfmt",
        "subuid",
        "subgid",
        "filesystem:cache-dir",
        "space:cache-dir",
        "filesystem:lxcpath",
        "space:lxcpath",
        "plugins",
    ] {
        line(&lines, name, &outcome);
    }
    // This machine has what the test suite installs (tests/run checks it).
    for ok in ["privileges", "lxc", "debootstrap", "keyring:debian", "space:cache-dir", "plugins"] {
        assert_eq!(line(&lines, ok, &outcome).status, "ok", "{ok} should pass here:\n{outcome}");
    }
}

#[test]
fn doctor_json_has_every_check_with_name_status_detail_fix() {
    require_root();
    let dir = TestDir::new("doctor-json");
    let text = doctor(&dir).run();
    let json = doctor(&dir).args(["--format", "json"]).run();
    assert_eq!(json.code(), text.code(), "text and JSON disagree on the exit status:\n{text}\n{json}");
    let report: Value = serde_json::from_str(&json.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{json}"));
    let checks = report["checks"].as_array().unwrap_or_else(|| panic!("no checks array:\n{json}"));
    let mut from_json = Vec::new();
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for check in checks {
        let object = check.as_object().unwrap_or_else(|| panic!("a check is not an object: {check}"));
        let keys: Vec<&str> = object.keys().map(String::as_str).collect();
        assert_eq!(keys, ["detail", "fix", "name", "status"], "{check}");
        let status = check["status"].as_str().expect("status is a string");
        assert!(["ok", "warn", "fail"].contains(&status), "{check}");
        assert!(check["detail"].as_str().is_some_and(|d| !d.is_empty()), "{check}");
        assert_eq!(check["fix"].is_null(), status == "ok", "a fix goes with warn and fail only: {check}");
        *counts.entry(status).or_default() += 1;
        from_json.push((check["name"].as_str().unwrap().to_owned(), status.to_owned()));
    }
    for status in ["ok", "warn", "fail"] {
        assert_eq!(report["summary"][status].as_u64(), Some(counts.get(status).copied().unwrap_or(0)), "{json}");
    }
    let from_text: Vec<(String, String)> = lines(&text).into_iter().map(|l| (l.name, l.status)).collect();
    assert_eq!(from_json, from_text, "the JSON and the text list different checks");
}

#[test]
fn doctor_without_lxc_in_path_fails_with_the_package_to_install() {
    require_root();
    let dir = TestDir::new("doctor-no-lxc");
    // Every tool of the usual PATH but LXC's.
    let bin = dir.mkdir("bin");
    let linked = link_tools_except(&bin, |name| name.starts_with("lxc-"));
    assert!(linked > 100, "only {linked} tools linked");
    let outcome = doctor(&dir).env("PATH", &bin).run();
    let lines = lines(&outcome);
    let lxc = line(&lines, "lxc", &outcome);
    assert_eq!(lxc.status, "fail", "{outcome}");
    assert!(lxc.text.ends_with("— apt-get install lxc"), "{outcome}");
    assert_exit_matches_lines(&outcome, &lines);
    outcome.assert_exit(1);
}

#[test]
fn doctor_without_debootstrap_fails_with_the_package_to_install() {
    require_root();
    require_tools(&["unshare", "debootstrap"]);
    let dir = TestDir::new("doctor-no-debootstrap");
    // The plugins look for debootstrap at fixed paths, not in PATH, and so
    // does doctor: hide it there, in a mount namespace of this command only
    // (private propagation, so the host never sees the bind mounts).
    let hide =
        DEBOOTSTRAP_PATHS.iter().map(|p| format!("[ -f {p} ] && mount --bind /dev/null {p}; ")).collect::<String>();
    let mut cmd = TestCommand::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!("{hide}exec \"$0\" \"$@\""))
        .arg(lxc_tmpl_tests::paths::binary())
        .args(["doctor", "--cache-dir"])
        .arg(dir.cache())
        .arg("-P")
        .arg(dir.lxcpath())
        .env("LXC_TMPL_PLUGIN_PATH", dir.plugins());
    let outcome = cmd.run();
    let lines = lines(&outcome);
    let debootstrap = line(&lines, "debootstrap", &outcome);
    assert_eq!(debootstrap.status, "fail", "{outcome}");
    assert!(debootstrap.text.starts_with("not installed"), "{outcome}");
    assert!(debootstrap.text.ends_with("— apt-get install debootstrap"), "{outcome}");
    outcome.assert_exit(1);
    // And it is back for everyone else.
    assert!(Path::new(DEBOOTSTRAP_PATHS[0]).is_file() || Path::new(DEBOOTSTRAP_PATHS[1]).is_file());
}

/// A tmpfs mounted and unmounted under the heavy lock, which other tests
/// hold while they compare the mount table.
struct LockedTmpfs(Option<Tmpfs>);

impl LockedTmpfs {
    fn mount(path: &Path, mib: u32) -> LockedTmpfs {
        let _heavy = heavy_lock();
        LockedTmpfs(Some(Tmpfs::mount(path, mib)))
    }

    fn path(&self) -> &Path {
        self.0.as_ref().expect("mounted").path()
    }
}

impl Drop for LockedTmpfs {
    fn drop(&mut self) {
        let _heavy = heavy_lock();
        self.0.take();
    }
}

#[test]
fn doctor_cache_dir_on_a_nearly_full_filesystem_fails_free_space() {
    require_root();
    let dir = TestDir::new("doctor-full");
    let small = LockedTmpfs::mount(&dir.path().join("small"), 8);
    let cache = small.path().join("cache");
    fs::create_dir(&cache).unwrap();
    fs::write(cache.join("filler"), vec![0x5a_u8; 6 << 20]).unwrap();
    let outcome = dir.command().arg("doctor").arg("--cache-dir").arg(&cache).arg("-P").arg(dir.lxcpath()).run();
    let lines = lines(&outcome);
    let space = line(&lines, "space:cache-dir", &outcome);
    assert_eq!(space.status, "fail", "{outcome}");
    assert_mentions(&space.text, &[&cache.display().to_string(), "MiB free", "another --cache-dir"]);
    assert_eq!(line(&lines, "space:lxcpath", &outcome).status, "ok", "the lxcpath is on the big disk:\n{outcome}");
    assert!(line(&lines, "filesystem:cache-dir", &outcome).text.starts_with("tmpfs"), "{outcome}");
    outcome.assert_exit(1);
}

#[test]
fn doctor_untrusted_plugin_dir_fails_with_chmod() {
    require_root();
    let dir = TestDir::new("doctor-plugin-dir");
    fs::set_permissions(dir.plugins(), fs::Permissions::from_mode(0o777)).unwrap();
    let outcome = doctor(&dir).run();
    let lines = lines(&outcome);
    let name = format!("plugin-dir:{}", dir.plugins().display());
    let refused = line(&lines, &name, &outcome);
    assert_eq!(refused.status, "fail", "{outcome}");
    assert!(refused.text.ends_with(&format!("— chmod go-w {}", dir.plugins().display())), "{outcome}");
    outcome.assert_exit(1);
}

#[test]
fn doctor_keyrings_are_the_ones_the_plugins_default_to() {
    // doctor's keyring table (core/host/src/doctor/keyrings.rs) copies the
    // plugins' constants; each plugin states its default in --keyring's help.
    require_root();
    let dir = TestDir::new("doctor-keyrings");
    let report: Value = serde_json::from_str(&doctor(&dir).args(["--format", "json"]).run().stdout).unwrap();
    for distro in ["debian", "ubuntu"] {
        let check = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == format!("keyring:{distro}"))
            .unwrap_or_else(|| panic!("no keyring:{distro} check: {report}"));
        let keyring = check["detail"].as_str().unwrap().split_whitespace().next().unwrap().to_owned();
        let info: Value =
            serde_json::from_str(&dir.command().args(["info", distro, "--format", "json"]).stdout()).unwrap();
        let help = info["options"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["long"] == "keyring")
            .and_then(|o| o["help"].as_str())
            .unwrap_or_else(|| panic!("{distro} has no --keyring option"))
            .to_owned();
        let named = [",", " ", ")"].iter().any(|after| help.contains(&format!("default: {keyring}{after}")));
        assert!(named, "{distro}: doctor checks {keyring}, the plugin says: {help}");
    }
}

/// Symlinks every executable of the usual `PATH` dirs into `bin`, except
/// the names `skip` picks; returns how many were linked.
fn link_tools_except(bin: &Path, skip: impl Fn(&str) -> bool) -> usize {
    let mut linked = 0;
    for source in ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let Ok(entries) = fs::read_dir(source) else { continue };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let target: PathBuf = entry.path();
            if skip(&name) || fs::symlink_metadata(bin.join(&name)).is_ok() {
                continue;
            }
            if symlink(&target, bin.join(&name)).is_ok() {
                linked += 1;
            }
        }
    }
    linked
}
