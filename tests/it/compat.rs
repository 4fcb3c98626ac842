//! The plugin API's compatibility promise, tested with real builds: a plugin
//! built against API 1.0 loads in a host whose API is 1.1, creates a
//! container that starts, and reads as having the defaults of everything 1.1
//! appended; a plugin built for a newer minor (1.1) is refused by a 1.0 host,
//! and one built for another major (2.0, the `apinext` fixture) by any host,
//! with messages naming both versions.
//!
//! The "1.1" side is this workspace built with `--cfg lxc_tmpl_api_preview`,
//! into its own target dir so the normal build is untouched. That build of
//! plugins/api reports 1.1.0 and appends what a minor version may append: a
//! hook, a field to `HookContext`, `HostFacts`, `Manifest`, `OptionSpec` and
//! `CommandSpec`, and a variant to `LogLevel` and `FileKind`. The host checks
//! the layout of every type a 1.0 plugin reaches (abi_stable's check, with
//! the plugin as the interface) when it loads it.

use std::{fs, path::PathBuf, process::Command};

use lxc_tmpl_tests::{TestDir, assert_mentions, paths, paths::crate_version, require_root};

/// Builds the host binary and the busybox plugin as API 1.1 and returns
/// their directory. Cargo's own lock serialises concurrent callers.
fn preview_build() -> PathBuf {
    let target = paths::build_dir().parent().expect("target/debug has a parent").join("api-preview");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "-p", "lxc-tmpl", "-p", "lxc-tmpl-busybox", "--target-dir"])
        .arg(&target)
        .env("RUSTFLAGS", "--cfg lxc_tmpl_api_preview")
        .current_dir(paths::workspace_root())
        .output()
        .expect("cannot run cargo");
    assert!(output.status.success(), "the API 1.1 preview build failed:\n{}", String::from_utf8_lossy(&output.stderr));
    target.join("debug")
}

#[test]
fn api_1_0_plugin_loads_in_api_1_1_host_and_gets_the_default_hook() {
    require_root();
    let preview = preview_build();
    let dir = TestDir::new("compat-old-plugin");
    // The 1.0 busybox comes first in the search path; the 1.1 host's own
    // directory holds a 1.1 busybox that must not be the one used.
    fs::copy(paths::busybox_plugin(), dir.plugins().join("liblxc_tmpl_busybox.so")).unwrap();
    let host = preview.join("lxc-tmpl");

    let listed = dir.command_with(&host).args(["list", "--format", "json"]).stdout();
    let plugins: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let busybox = plugins.as_array().unwrap().iter().find(|p| p["name"] == "busybox").expect("busybox not listed");
    let current = crate_version("plugins/api/Cargo.toml");
    assert_eq!(busybox["api_version"], current.as_str(), "{busybox}");
    assert!(busybox["file"].as_str().unwrap().starts_with(dir.plugins().to_str().unwrap()), "{busybox}");

    let mut create = dir.command_with(&host);
    create.args(["create", "--distro", "busybox", "--name", "old1", "-P"]).arg(dir.lxcpath());
    create.arg("-f").arg(dir.safe_conf());
    let outcome = create.run();
    outcome.assert_success();
    assert_mentions(&outcome.stderr, &["hook preview", &format!("API {current}"), "default"]);
    // The fields the preview appends to what a plugin sends read as absent...
    assert_mentions(&outcome.stderr, &["Manifest.preview absent", "OptionSpec.preview on 0 of"]);
    // ...and the container the old plugin made under the newer host works.
    let mut ct = dir.container("old1");
    ct.start();
    assert_eq!(ct.state(), "RUNNING");
    assert_eq!(ct.attach(&["hostname"]).trim(), "old1", "hostname inside the container");
}

#[test]
fn api_1_1_plugin_in_api_1_1_host_sends_the_appended_fields() {
    // The control for the test above: the same host reports the appended
    // fields as present when the plugin was built with them, so "absent"
    // there is what the old plugin sent and not what the host always says.
    require_root();
    let preview = preview_build();
    let dir = TestDir::new("compat-new-pair");
    let host = preview.join("lxc-tmpl");
    let mut create = dir.command_with(&host);
    create.args(["create", "--distro", "busybox", "--name", "new1", "-P"]).arg(dir.lxcpath());
    create.arg("-f").arg(dir.safe_conf());
    let outcome = create.run();
    outcome.assert_success();
    assert_mentions(&outcome.stderr, &["API 1.1.0", "Manifest.preview present", "OptionSpec.preview on"]);
    assert!(!outcome.stderr.contains("OptionSpec.preview on 0 of"), "{outcome}");
    assert!(!outcome.stderr.contains("predates it"), "the 1.1 plugin has the preview hook:\n{outcome}");
}

#[test]
fn api_1_1_plugin_is_refused_by_api_1_0_host() {
    require_root();
    let preview = preview_build();
    let dir = TestDir::new("compat-new-plugin");
    let newer = dir.plugins().join("liblxc_tmpl_newer.so");
    fs::copy(preview.join("liblxc_tmpl_busybox.so"), &newer).unwrap();
    let outcome = dir.command().arg("list").assert_exit(0).clone();
    let warning = outcome.stderr.lines().find(|l| l.contains("liblxc_tmpl_newer.so")).unwrap_or_else(|| {
        panic!("no warning about the 1.1 plugin:\n{outcome}");
    });
    assert_mentions(warning, &["1.1.0", &crate_version("plugins/api/Cargo.toml")]);
}
