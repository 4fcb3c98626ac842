//! The plugin SDK as a third party uses it: `lxc-tmpl new-plugin` writes a
//! crate outside this workspace, cargo builds it against the API crate alone,
//! and lxc-tmpl loads it from `$LXC_TMPL_PLUGIN_PATH`, creates a container
//! with it (from a rootfs tarball the test makes) and LXC starts it.

use std::{fs, path::PathBuf, process::Command};

use lxc_tmpl_tests::{LXC_TOOLS, TestDir, paths, require_root, require_tools};

/// Builds the generated crate; the target dir lives next to the workspace's
/// own (`target/sdk-plugin`) so that later runs reuse the compiled API crate.
fn cargo_build(crate_dir: &std::path::Path) -> PathBuf {
    let target = paths::build_dir().parent().expect("target/debug has a parent").join("sdk-plugin");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .arg("build")
        .arg("--manifest-path")
        .arg(crate_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .output()
        .expect("cannot run cargo");
    assert!(
        output.status.success(),
        "the generated plugin does not build:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    target.join("debug")
}

#[test]
fn generated_plugin_builds_out_of_tree_loads_creates_and_starts() {
    require_root();
    require_tools(LXC_TOOLS);
    let dir = TestDir::new("sdk");

    // The crate depends on the API crate and nothing else.
    dir.command().args(["new-plugin", "tarball-demo", "--dir"]).arg(dir.path()).stdout();
    let crate_dir = dir.path().join("tarball-demo");
    let manifest = fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    let deps: Vec<&str> = manifest
        .split("[dependencies]")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .take_while(|l| !l.starts_with('['))
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    assert!(deps.len() == 1 && deps[0].starts_with("lxc-tmpl-plugin-api "), "dependencies: {deps:?}");

    let built = cargo_build(&crate_dir);
    fs::copy(built.join("liblxc_tmpl_tarball_demo.so"), dir.plugins().join("liblxc_tmpl_tarball_demo.so")).unwrap();
    let listed = dir.command().arg("list").stdout();
    assert!(listed.lines().any(|l| l.starts_with("tarball-demo ")), "not listed:\n{listed}");

    // A rootfs tarball: the rootfs of a busybox container, packed.
    dir.create("busybox", "seed").stdout();
    let tarball = dir.path().join("rootfs.tar");
    let tar = Command::new("tar")
        .arg("--numeric-owner")
        .arg("-C")
        .arg(dir.lxcpath().join("seed/rootfs"))
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .status()
        .unwrap();
    assert!(tar.success(), "tar failed");

    let mut ct = dir.container("sdk1");
    dir.create("tarball-demo", "sdk1").arg("--tarball").arg(&tarball).stdout();
    assert!(ct.rootfs().join("bin/busybox").is_file(), "the tarball was not unpacked");
    ct.start();
    assert_eq!(ct.attach(&["hostname"]).trim(), "sdk1");
    assert_eq!(ct.attach(&["cat", "/etc/hostname"]).trim(), "sdk1");
}

#[test]
fn generated_plugin_is_held_to_the_plugin_lints() {
    // The generated crate carries lxc-tmpl's plugin lint rules: `cargo
    // clippy` passes on it as made, and refuses a host-path write added to it.
    require_root();
    let dir = TestDir::new("sdk-lints");
    dir.command().args(["new-plugin", "lint-demo", "--dir"]).arg(dir.path()).stdout();
    let crate_dir = dir.path().join("lint-demo");
    let target = paths::build_dir().parent().expect("target/debug has a parent").join("sdk-plugin");
    let clippy = || {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        Command::new(cargo)
            .arg("clippy")
            .arg("--manifest-path")
            .arg(crate_dir.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .output()
            .expect("cannot run cargo clippy")
    };
    let clean = clippy();
    assert!(
        clean.status.success(),
        "clippy fails on the generated plugin:\n{}",
        String::from_utf8_lossy(&clean.stderr)
    );

    let lib = crate_dir.join("src/lib.rs");
    let mut source = fs::read_to_string(&lib).unwrap();
    source.push_str("\n#[allow(dead_code)]\nfn leak() {\n    let _ = std::fs::write(\"/etc/motd\", \"hi\");\n}\n");
    fs::write(&lib, source).unwrap();
    let refused = clippy();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "clippy accepted a host-path write in a plugin:\n{stderr}");
    assert!(stderr.contains("a plugin never writes host paths"), "{stderr}");
}

#[test]
fn new_plugin_refuses_bad_names_and_existing_dirs() {
    require_root();
    let dir = TestDir::new("sdk-bad");
    let err = dir.command().args(["new-plugin", "Bad_Name", "--dir"]).arg(dir.path()).assert_fail();
    assert!(err.contains("lowercase"), "{err}");
    dir.mkdir("taken");
    let err = dir.command().args(["new-plugin", "taken", "--dir"]).arg(dir.path()).assert_fail();
    assert!(err.contains("already exists"), "{err}");
}
