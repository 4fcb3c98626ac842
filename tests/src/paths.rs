//! Where things are: the built binary, the fixture plugins, the sources.
//!
//! The tests run what `cargo build --workspace` left in the target directory
//! next to the test executable (`target/debug/deps/<test>-<hash>` ->
//! `target/debug/`), like ripgrep's harness does.

use std::{
    env, fs,
    path::{Path, PathBuf},
};

/// The directory holding the built binary and plugin libraries (`target/debug`).
pub fn build_dir() -> PathBuf {
    let exe = env::current_exe().expect("cannot find the test executable");
    let mut dir = exe.parent().expect("test executable has no parent dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// Where creates started by a bare [`TestCommand`](crate::TestCommand) (not
/// through a [`TestDir`](crate::TestDir), such as `lxc-create` running the
/// template) write their logs: never `/var/log`.
pub fn shared_log_dir() -> PathBuf {
    PathBuf::from("/tmp/lxc-tmpl-tests/logs")
}

/// The `lxc-tmpl` binary.
pub fn binary() -> PathBuf {
    let path = build_dir().join("lxc-tmpl");
    assert!(path.is_file(), "{} is missing: run `cargo build --workspace` first", path.display());
    path
}

/// The busybox plugin library the binary finds next to itself.
pub fn busybox_plugin() -> PathBuf {
    let path = build_dir().join("liblxc_tmpl_busybox.so");
    assert!(path.is_file(), "{} is missing: run `cargo build --workspace` first", path.display());
    path
}

/// A fixture library from `tests/fixtures/plugins/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fixture {
    /// `faulty`: fails, panics or plants symlinks on request.
    Faulty,
    /// `apinext`: claims plugin API 2.0.0.
    ApiNext,
    /// A shared library that is no plugin.
    NotAPlugin,
}

impl Fixture {
    /// The library's file name in the build dir.
    pub fn file_name(self) -> &'static str {
        match self {
            Fixture::Faulty => "libfixture_faulty.so",
            Fixture::ApiNext => "libfixture_api_next.so",
            Fixture::NotAPlugin => "libfixture_not_a_plugin.so",
        }
    }

    /// The built library.
    pub fn path(self) -> PathBuf {
        let path = build_dir().join(self.file_name());
        assert!(path.is_file(), "{} is missing: run `cargo build --workspace` first", path.display());
        path
    }
}

/// The workspace root (`/work/main`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// A file of the test sources: `source_file("golden/base.conf")` is `tests/golden/base.conf`.
pub fn source_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The package version of the crate whose manifest is `relative_manifest`
/// (relative to the workspace root), resolving `version.workspace = true`.
///
/// Read at test time, so a version bump needs no test change.
pub fn crate_version(relative_manifest: &str) -> String {
    let root = workspace_root();
    let manifest = fs::read_to_string(root.join(relative_manifest))
        .unwrap_or_else(|e| panic!("cannot read {relative_manifest}: {e}"));
    match toml_value(&manifest, "package", "version") {
        Some(TomlValue::Str(v)) => v,
        Some(TomlValue::Workspace) => {
            let workspace = fs::read_to_string(root.join("Cargo.toml")).expect("cannot read Cargo.toml");
            match toml_value(&workspace, "workspace.package", "version") {
                Some(TomlValue::Str(v)) => v,
                _ => panic!("no [workspace.package] version in Cargo.toml"),
            }
        }
        None => panic!("no [package] version in {relative_manifest}"),
    }
}

enum TomlValue {
    Str(String),
    Workspace,
}

/// Just enough TOML for `version = "1.2.3"` and `version.workspace = true`.
fn toml_value(text: &str, table: &str, key: &str) -> Option<TomlValue> {
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim().to_owned();
            continue;
        }
        if current != table {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k == key {
            return Some(TomlValue::Str(v.trim_matches('"').to_owned()));
        }
        if k == format!("{key}.workspace") && v == "true" {
            return Some(TomlValue::Workspace);
        }
    }
    None
}
