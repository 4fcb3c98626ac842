//! Plugin discovery and loading: `list`, `info`, plugins of another API
//! major, files that are no plugin, plugins that fail or panic.

use std::path::Path;

use lxc_tmpl_tests::{
    Fixture, TestDir, assert_mentions, assert_same_text, error_line, paths::crate_version, require_root, snapshot,
};
use serde_json::Value;

/// The busybox plugin's version, from its Cargo.toml.
fn busybox_version() -> String {
    crate_version("plugins/busybox/Cargo.toml")
}

/// The host's plugin API version, from the API crate's Cargo.toml.
fn host_api_version() -> String {
    crate_version("plugins/api/Cargo.toml")
}

/// `list --format json` of `dir`, parsed; asserts exit 0.
fn list_json(dir: &TestDir) -> Vec<Value> {
    let stdout = dir.command().args(["list", "--format", "json"]).stdout();
    let value: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("list --format json: {e}:\n{stdout}"));
    value.as_array().unwrap_or_else(|| panic!("list --format json is not an array:\n{stdout}")).clone()
}

/// The line of the plain `list` output naming `distro`, if any.
fn list_line<'a>(stdout: &'a str, distro: &str) -> Option<&'a str> {
    stdout.lines().find(|l| l.split_whitespace().next() == Some(distro))
}

#[test]
fn list_shows_busybox_with_its_version() {
    require_root();
    let dir = TestDir::new("list-busybox");
    let stdout = dir.command().arg("list").stdout();
    let line = list_line(&stdout, "busybox").unwrap_or_else(|| panic!("busybox is not listed:\n{stdout}"));
    let version = busybox_version();
    assert!(line.split_whitespace().any(|w| w == version), "busybox line lacks version {version}: {line:?}");
}

#[test]
fn list_json_describes_every_plugin() {
    require_root();
    let dir = TestDir::new("list-json");
    let plugins = list_json(&dir);
    for plugin in &plugins {
        let object = plugin.as_object().unwrap_or_else(|| panic!("not an object: {plugin}"));
        for key in ["name", "version", "api_version", "file", "summary"] {
            assert!(object.get(key).is_some_and(Value::is_string), "no string {key:?} in {plugin}");
        }
    }
    let busybox = plugins.iter().find(|p| p["name"] == "busybox").expect("busybox not in list --format json");
    assert_eq!(busybox["version"], busybox_version().as_str(), "{busybox}");
    assert_eq!(busybox["api_version"], host_api_version().as_str(), "{busybox}");
    let file = busybox["file"].as_str().unwrap_or_default();
    assert!(file.ends_with("liblxc_tmpl_busybox.so") && Path::new(file).is_file(), "file {file:?}");
    assert!(!busybox["summary"].as_str().unwrap_or_default().is_empty(), "empty summary: {busybox}");
}

/// `lxc-tmpl list | head -1`: the reader leaving early ends the output, it is no panic.
#[test]
fn list_and_info_stop_quietly_when_the_reader_leaves() {
    require_root();
    let dir = TestDir::new("list-epipe");
    dir.add_plugin(Fixture::Faulty);
    for args in ["list --format json", "list", "info busybox", "info busybox --format json"] {
        // `true` reads nothing and exits at once, so the write finds the pipe closed.
        let script = format!(
            "'{}' {args} | true; echo \"status ${{PIPESTATUS[0]}}\"",
            lxc_tmpl_tests::paths::binary().display()
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &script])
            .env("LXC_TMPL_PLUGIN_PATH", dir.plugins())
            .output()
            .expect("bash runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "lxc-tmpl {args} panicked on a closed pipe:\n{stderr}");
        assert!(stdout.contains("status 0"), "lxc-tmpl {args} failed on a closed pipe: {stdout}\n{stderr}");
    }
}

#[test]
fn info_json_describes_options() {
    require_root();
    let dir = TestDir::new("info-json");
    let copied = dir.add_plugin(Fixture::Faulty);
    let stdout = dir.command().args(["info", "faulty", "--format", "json"]).stdout();
    let info: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("info --format json: {e}:\n{stdout}"));
    assert_eq!(info["name"], "faulty", "{info}");
    assert_eq!(info["version"], crate_version("tests/fixtures/plugins/faulty/Cargo.toml").as_str(), "{info}");
    assert_eq!(info["api_version"], host_api_version().as_str(), "{info}");
    let file = info["file"].as_str().unwrap_or_default();
    assert!(
        Path::new(file).file_name() == copied.file_name() && Path::new(file).starts_with(dir.path()),
        "file {file:?} is not the copy in the plugin dir {}",
        copied.display()
    );
    assert!(info["summary"].as_str().is_some_and(|s| !s.is_empty()), "{info}");
    assert!(info["arches"].is_array() && info["releases"].is_array(), "{info}");
    assert!(info["default_release"].is_string(), "{info}");

    let options = info["options"].as_array().unwrap_or_else(|| panic!("no options array: {info}"));
    for option in options {
        for key in ["long", "short", "value_name", "help", "default", "env", "repeatable"] {
            assert!(option.get(key).is_some(), "option lacks {key:?}: {option}");
        }
    }
    let option = |long: &str| {
        options.iter().find(|o| o["long"] == long).unwrap_or_else(|| panic!("no option {long}: {info}")).clone()
    };
    let fail_in = option("fail-in");
    assert_eq!(fail_in["value_name"], "HOOK", "{fail_in}");
    assert!(fail_in["short"].is_null() && fail_in["default"].is_null() && fail_in["env"].is_null(), "{fail_in}");
    assert_eq!(fail_in["repeatable"], false, "{fail_in}");
    assert!(fail_in["help"].as_str().is_some_and(|h| h.contains("fail")), "{fail_in}");
    assert_eq!(option("fail-how")["default"], "error");
    assert!(option("plant-symlink")["value_name"].is_null(), "a flag has no value name");

    let busybox = dir.command().args(["info", "busybox", "--format", "json"]).stdout();
    let busybox: Value = serde_json::from_str(&busybox).unwrap_or_else(|e| panic!("info busybox: {e}:\n{busybox}"));
    assert!(
        busybox["options"].as_array().is_some_and(|o| o.iter().any(|o| o["long"] == "busybox-path")),
        "busybox has no busybox-path option: {busybox}"
    );
}

#[test]
fn create_help_shows_distro_options() {
    require_root();
    let dir = TestDir::new("create-help");
    dir.add_plugin(Fixture::Faulty);
    let help = dir.command().args(["create", "--distro", "faulty", "--help"]).stdout();
    for option in ["--fail-in", "--fail-how", "--plant-symlink", "--victim"] {
        assert!(help.contains(option), "{option} missing from create --distro faulty --help:\n{help}");
    }
}

#[test]
fn plugin_of_another_api_major_is_skipped_by_list() {
    require_root();
    let dir = TestDir::new("api-next-list");
    dir.add_plugin(Fixture::ApiNext);
    let outcome = dir.command().arg("list").assert_exit(0).clone();
    assert!(list_line(&outcome.stdout, "busybox").is_some(), "busybox is not listed:\n{outcome}");
    assert!(list_line(&outcome.stdout, "apinext").is_none(), "a plugin of API 2.0.0 is listed:\n{outcome}");
    let file = Fixture::ApiNext.file_name();
    let warning = outcome.stderr.lines().find(|l| l.contains(file));
    let warning = warning.unwrap_or_else(|| panic!("no warning naming {file}:\n{outcome}"));
    assert_mentions(warning, &["2.0.0", &host_api_version()]);

    // Warnings stay on stderr: JSON on stdout still parses.
    assert!(list_json(&dir).iter().all(|p| p["name"] != "apinext"));
}

#[test]
fn plugin_writable_by_others_is_refused_as_root() {
    use std::os::unix::fs::PermissionsExt;
    require_root();
    let dir = TestDir::new("writable-plugin");
    let plugin = dir.add_plugin(Fixture::Faulty);
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o666)).unwrap();

    let outcome = dir.command().arg("list").assert_exit(0).clone();
    assert!(list_line(&outcome.stdout, "faulty").is_none(), "a world-writable plugin was loaded as root:\n{outcome}");
    let file = Fixture::Faulty.file_name();
    let warning = outcome.stderr.lines().find(|l| l.contains(file));
    let warning = warning.unwrap_or_else(|| panic!("no warning naming {file}:\n{outcome}"));
    assert_mentions(warning, &["writable", "chmod go-w"]);

    // Back to 0644 it loads: the refusal was about the mode alone.
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o644)).unwrap();
    let stdout = dir.command().arg("list").stdout();
    assert!(list_line(&stdout, "faulty").is_some(), "faulty is not listed at 0644:\n{stdout}");
}

#[test]
fn plugin_of_another_api_major_cannot_create() {
    require_root();
    let dir = TestDir::new("api-next-create");
    dir.add_plugin(Fixture::ApiNext);
    let before = dir.snapshot();
    let outcome = dir.create("apinext", "next1").assert_exit(1).clone();
    let line = error_line(&outcome.stderr);
    assert_mentions(&line, &["2.0.0", &host_api_version()]);
    assert_same_text!(before, dir.snapshot(), "a refused create left something behind");
}

#[test]
fn shared_library_that_is_no_plugin_is_a_warning() {
    require_root();
    let dir = TestDir::new("not-a-plugin");
    dir.add_plugin(Fixture::NotAPlugin);
    let outcome = dir.command().arg("list").assert_exit(0).clone();
    assert!(list_line(&outcome.stdout, "busybox").is_some(), "busybox is not listed:\n{outcome}");
    let file = Fixture::NotAPlugin.file_name();
    assert!(outcome.stderr.lines().any(|l| l.contains(file)), "no warning naming {file}:\n{outcome}");
    assert!(outcome.stdout.lines().all(|l| !l.contains(file)), "the non-plugin shows up on stdout:\n{outcome}");
}

#[test]
fn plugin_panicking_in_its_manifest_is_a_warning() {
    require_root();
    let dir = TestDir::new("manifest-panic");
    dir.add_plugin(Fixture::Faulty);
    let outcome = dir.command().arg("list").env("FIXTURE_FAULTY_PANIC_IN_MANIFEST", "1").assert_exit(0).clone();
    assert!(list_line(&outcome.stdout, "busybox").is_some(), "busybox is not listed:\n{outcome}");
    assert!(list_line(&outcome.stdout, "faulty").is_none(), "a plugin without manifest is listed:\n{outcome}");
    let file = Fixture::Faulty.file_name();
    let warning = outcome.stderr.lines().find(|l| l.contains(file));
    let warning = warning.unwrap_or_else(|| panic!("no warning naming {file}:\n{outcome}"));
    assert_mentions(warning, &["panic"]);
}

/// Runs `create --distro faulty` with `options`, expecting exit 1 and a
/// one-line error mentioning `needles`, with nothing left behind.
fn assert_faulty_create_fails(dir: &TestDir, name: &str, options: &[&str], needles: &[&str]) {
    let before = dir.snapshot();
    let outcome = dir.create("faulty", name).args(options).assert_exit(1).clone();
    let line = error_line(&outcome.stderr);
    assert_mentions(&line, needles);
    assert_same_text!(before, dir.snapshot(), "failed create {options:?} left something behind");
}

#[test]
fn plugin_panic_in_configure_is_a_clean_failure() {
    require_root();
    let dir = TestDir::new("faulty-panic");
    dir.add_plugin(Fixture::Faulty);
    let _ct = dir.container("panicky");
    assert_faulty_create_fails(
        &dir,
        "panicky",
        &["--fail-in", "configure", "--fail-how", "panic"],
        &["panic", "configure", "deliberate panic in configure"],
    );
}

#[test]
fn plugin_error_in_configure_is_a_clean_failure() {
    require_root();
    let dir = TestDir::new("faulty-error");
    dir.add_plugin(Fixture::Faulty);
    let _ct = dir.container("erring");
    assert_faulty_create_fails(
        &dir,
        "erring",
        &["--fail-in", "configure", "--fail-how", "error"],
        &["deliberate failure in configure"],
    );
}

#[test]
fn keep_on_failure_keeps_what_was_made() {
    require_root();
    let dir = TestDir::new("keep-on-failure");
    dir.add_plugin(Fixture::Faulty);
    let ct = dir.container("kept");
    let outcome =
        dir.create("faulty", "kept").args(["--fail-in", "configure", "--keep-on-failure"]).assert_exit(1).clone();
    assert_mentions(&error_line(&outcome.stderr), &["deliberate failure in configure"]);
    assert!(ct.rootfs().join("bin/busybox").is_file(), "--keep-on-failure removed the rootfs:\n{outcome}");
    // What was kept does not take the name: the next create removes it and goes on.
    let again = dir.create("faulty", "kept").run();
    again.assert_success();
    assert_mentions(&again.stderr, &["removed the remains of an interrupted create"]);
}

#[test]
fn plugin_failing_in_any_hook_is_a_clean_failure() {
    require_root();
    let dir = TestDir::new("faulty-hooks");
    dir.add_plugin(Fixture::Faulty);
    // Every hook but message, which runs after the config check; what the
    // faulty plugin accepts (`--fail-in`) names them all, in order.
    let listing = dir.create("faulty", "hooked").args(["--fail-in", "nowhere"]).assert_exit(1).stderr.clone();
    let hooks: Vec<String> = listing
        .split("choose one of ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        // The error line ends by naming the create's log.
        .and_then(|line| line.split(" (log: ").next())
        .unwrap_or_else(|| panic!("the faulty plugin does not list its hooks:\n{listing}"))
        .split(", ")
        .map(str::to_owned)
        .filter(|h| h != "message")
        .collect();
    assert_eq!(hooks.len(), 9, "{listing}");
    for hook in &hooks {
        for how in ["panic", "error"] {
            let _ct = dir.container("hooked");
            let needle = match how {
                "panic" => format!("deliberate panic in {hook}"),
                _ => format!("deliberate failure in {hook}"),
            };
            assert_faulty_create_fails(&dir, "hooked", &["--fail-in", hook, "--fail-how", how], &[&needle]);
        }
    }
}

#[test]
fn failed_download_never_fills_the_cache() {
    require_root();
    let dir = TestDir::new("faulty-cache");
    dir.add_plugin(Fixture::Faulty);
    let _guards: Vec<_> = ["cache1", "cache2", "cache3", "cache4"].iter().map(|n| dir.container(n)).collect();
    let failing = ["--cache-key", "k1", "--fail-in", "download"];

    // Twice: a half-built cache entry must not turn the second into a success.
    // (The cache dir may keep lock files, but never a half-built rootfs.)
    for name in ["cache1", "cache2"] {
        let before = snapshot::tree(&dir.lxcpath());
        let outcome = dir.create("faulty", name).args(failing).assert_exit(1).clone();
        assert_mentions(&error_line(&outcome.stderr), &["deliberate failure in download"]);
        assert_same_text!(before, snapshot::tree(&dir.lxcpath()), "failed create left something in the lxcpath");
        let cache = snapshot::tree(&dir.cache());
        assert!(!cache.contains("/bin/busybox "), "a half-built rootfs stayed in the cache:\n{cache}");
    }

    // A good build fills the private cache dir...
    dir.create("faulty", "cache3").args(["--cache-key", "k1"]).stdout();
    assert!(
        !snapshot::listing(&dir.cache()).is_empty(),
        "the cache was not built in --cache-dir {}",
        dir.cache().display()
    );
    // ...and the next create copies from it without calling download.
    let outcome = dir.create("faulty", "cache4").args(failing).run();
    assert!(outcome.status.success(), "download ran although the cache entry k1 exists:\n{outcome}");
}

/// An entry is used only when its stored key is the wanted key: the
/// directory name (the key's SHA-256) alone proves nothing, as anyone who can
/// write the cache dir can plant a rootfs under it.
#[test]
fn forged_cache_entry_is_refused() {
    require_root();
    let dir = TestDir::new("forged-cache");
    dir.add_plugin(Fixture::Faulty);
    let _guards: Vec<_> = ["forged1", "forged2", "forged3"].iter().map(|n| dir.container(n)).collect();
    dir.create("faulty", "forged1").args(["--cache-key", "k1"]).stdout();
    let entries: Vec<std::path::PathBuf> = std::fs::read_dir(dir.cache().join("faulty"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("current/rootfs").is_dir())
        .collect();
    let [entry] = &entries[..] else { panic!("expected one cache entry: {entries:?}") };
    let name = entry.file_name().unwrap().to_string_lossy();
    assert!(name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit()), "not a SHA-256 name: {name}");
    std::fs::write(entry.join("key"), "k2\n").unwrap();

    let before = snapshot::tree(&dir.lxcpath());
    let outcome = dir.create("faulty", "forged2").args(["--cache-key", "k1"]).assert_exit(1).clone();
    assert_mentions(&error_line(&outcome.stderr), &["holds key 'k2'", "wanted key 'k1'", "--flush-cache"]);
    assert_same_text!(before, snapshot::tree(&dir.lxcpath()), "a refused create left something in the lxcpath");
    // The fix the message names works.
    dir.create("faulty", "forged3").args(["--cache-key", "k1", "--flush-cache"]).stdout();
}

#[test]
fn cache_purge_removes_one_distros_entries_only() {
    require_root();
    let dir = TestDir::new("cache-purge");
    dir.add_plugin(Fixture::Faulty);
    let _guards: Vec<_> = ["purge1", "purge2"].iter().map(|n| dir.container(n)).collect();
    dir.create("faulty", "purge1").args(["--cache-key", "k1"]).stdout();
    dir.create("faulty", "purge2").args(["--cache-key", "k2"]).stdout();
    // Another distro's cache, and a file that must survive.
    let other = dir.mkdir("cache/ubuntu/0123456789abcdef/rootfs");
    let entries = |distro: &str| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir.cache().join(distro))
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.join("current/rootfs").is_dir()).collect())
            .unwrap_or_default()
    };
    assert_eq!(entries("faulty").len(), 2, "two cache entries were built");

    let stdout = dir.command().args(["cache", "purge", "faulty", "--cache-dir"]).arg(dir.cache()).stdout();
    assert!(stdout.contains("removed 2 cached faulty"), "{stdout}");
    assert!(entries("faulty").is_empty(), "faulty entries are left");
    assert!(other.is_dir(), "another distro's cache was touched");

    let err = dir.command().args(["cache", "purge", "../x", "--cache-dir"]).arg(dir.cache()).assert_fail();
    assert!(err.contains("not a distro name"), "{err}");
}
