//! The Debian package end to end: `packaging/build-deb` builds it, `dpkg -i`
//! installs it, the installed `/usr/bin/lxc-tmpl` with its packaged plugins
//! creates and starts a busybox container, and `dpkg --purge` leaves nothing
//! of it behind.
//!
//! The test installs a package system-wide, so it refuses to run where a
//! package named lxc-tmpl, or any file the package would install, is already
//! there: purging at the end would remove someone else's files. A guard
//! purges the package however the test ends.

use std::{
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::Command,
};

use lxc_tmpl_tests::{LXC_TOOLS, TestCommand, TestDir, paths, require_root, require_tools};

/// The package's name (core/cli/Cargo.toml, `[package.metadata.deb]`).
const PACKAGE: &str = "lxc-tmpl";
/// The installed binary.
const BINARY: &str = "/usr/bin/lxc-tmpl";
/// Where the plugins are installed: a directory the host searches by default.
const PLUGIN_DIR: &str = "/usr/lib/lxc-tmpl/plugins";
/// The plugins the package ships.
const PLUGINS: &[&str] = &["busybox", "debian", "sshd", "ubuntu"];
/// Files besides the binary and the plugins that must be in the package (man
/// pages: the top page and create's; the others are checked by tests/it/man.rs).
const FILES: &[&str] = &[
    "/usr/share/man/man1/lxc-tmpl.1.gz",
    "/usr/share/man/man1/lxc-tmpl-create.1.gz",
    "/usr/share/bash-completion/completions/lxc-tmpl",
    "/usr/share/zsh/vendor-completions/_lxc-tmpl",
    "/usr/share/fish/vendor_completions.d/lxc-tmpl.fish",
    "/usr/share/doc/lxc-tmpl/README.md",
    "/usr/share/doc/lxc-tmpl/copyright",
];

/// Runs a command to completion; panics with its output unless it succeeded.
#[track_caller]
fn run_ok(command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// dpkg's status of the package, or None when dpkg knows no such package.
fn package_status() -> Option<String> {
    let out = Command::new("dpkg-query").args(["-W", "-f=${Status}", PACKAGE]).output().expect("cannot run dpkg-query");
    let status = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !status.is_empty() && !status.ends_with("not-installed")).then_some(status)
}

/// Purges the package when dropped, also when the test panicked; the test
/// calls [`Installed::purge`] itself to check the purge.
#[derive(Debug)]
struct Installed {
    purged: bool,
}

impl Installed {
    /// Installs `deb` with `dpkg -i`; the guard exists before dpkg runs, so a
    /// half-done install is purged too.
    fn install(deb: &Path) -> Installed {
        let guard = Installed { purged: false };
        run_ok(Command::new("dpkg").arg("-i").arg(deb).env("DEBIAN_FRONTEND", "noninteractive"));
        guard
    }

    /// `dpkg --purge`, asserting it succeeded.
    fn purge(&mut self) {
        self.purged = true;
        run_ok(Command::new("dpkg").args(["--purge", PACKAGE]).env("DEBIAN_FRONTEND", "noninteractive"));
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        if !self.purged {
            let out = Command::new("dpkg").args(["--purge", PACKAGE]).env("DEBIAN_FRONTEND", "noninteractive").output();
            match out {
                Ok(out) if out.status.success() => eprintln!("package test cleanup: purged {PACKAGE}"),
                Ok(out) => eprintln!(
                    "package test cleanup: dpkg --purge {PACKAGE} FAILED: {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
                Err(e) => eprintln!("package test cleanup: cannot run dpkg --purge {PACKAGE}: {e}"),
            }
        }
    }
}

/// Builds the package with the README's one command; returns the .deb.
fn build_package() -> PathBuf {
    // Not a TestCommand: a build may take longer than its timeout. The package is made from
    // the debug build, in cargo's target dir ($CARGO_TARGET_DIR if set), which tests/run has
    // just built: a release build would add minutes to every CI run and test nothing more of
    // the packaging (the README's command is the same script with its default profile).
    let script = paths::workspace_root().join("packaging/build-deb");
    let stdout = run_ok(Command::new(&script).args(["--profile", "dev"]).env_remove("LXC_TMPL_PLUGIN_PATH"));
    let deb = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    assert!(
        deb.extension().is_some_and(|e| e == "deb") && deb.is_file(),
        "build-deb did not end with the path of a .deb:\n{stdout}"
    );
    deb
}

/// The regular files (and symlinks) of the package, from `dpkg-deb -c`, as absolute paths.
fn package_files(deb: &Path) -> Vec<PathBuf> {
    let listing = run_ok(Command::new("dpkg-deb").arg("-c").arg(deb));
    listing
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| PathBuf::from(p.trim_start_matches('.')))
        .collect()
}

#[test]
fn package_installs_creates_a_busybox_container_and_purges_cleanly() {
    require_root();
    require_tools(&["dpkg", "dpkg-deb", "dpkg-query", "man", "bash"]);
    require_tools(LXC_TOOLS);
    if let Some(status) = package_status() {
        panic!(
            "a package named {PACKAGE} is already on this machine ({status}): this test installs and purges \
             its own; remove it first (dpkg --purge {PACKAGE})"
        );
    }

    let deb = build_package();
    let files = package_files(&deb);
    let present: Vec<&PathBuf> = files.iter().filter(|f| f.symlink_metadata().is_ok()).collect();
    assert!(
        present.is_empty(),
        "files the package would install are already there, and purging would remove them: {present:?}; move them away first"
    );

    let dir = TestDir::new("package");
    let mut installed = Installed::install(&deb);

    // What dpkg says it installed: the binary, each plugin, the pages, completions and docs.
    let listed = run_ok(Command::new("dpkg").args(["-L", PACKAGE]));
    let listed: Vec<&str> = listed.lines().collect();
    let plugins: Vec<String> = PLUGINS.iter().map(|p| format!("{PLUGIN_DIR}/liblxc_tmpl_{p}.so")).collect();
    let mut expected = vec![BINARY.to_owned()];
    expected.extend(plugins.iter().cloned());
    expected.extend(FILES.iter().map(|f| (*f).to_owned()));
    for file in &expected {
        assert!(listed.contains(&file.as_str()), "dpkg -L {PACKAGE} does not list {file}:\n{}", listed.join("\n"));
        let meta = fs::metadata(file).unwrap_or_else(|e| panic!("{file} is listed but not installed: {e}"));
        let mode = if file == BINARY { 0o755 } else { 0o644 };
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (0, 0, mode),
            "{file}: owner, group and mode (expected root:root {mode:o})"
        );
    }
    for dir in [PLUGIN_DIR, "/usr/lib/lxc-tmpl"] {
        let meta = fs::metadata(dir).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o755), "{dir}: owner and mode");
    }

    // The installed binary finds the installed plugins on its own (no LXC_TMPL_PLUGIN_PATH).
    let list = TestCommand::new(BINARY).arg("list").stdout();
    for plugin in &plugins {
        assert!(list.contains(plugin.as_str()), "lxc-tmpl list does not show {plugin}:\n{list}");
    }
    // The installed man page and bash completion are found by their tools.
    let page = run_ok(Command::new("man").arg("lxc-tmpl-create").env("MANWIDTH", "80").env("MANPAGER", "cat"));
    let page: String = page.chars().filter(|c| *c != '\u{8}').collect();
    assert!(page.contains("busybox-path"), "man lxc-tmpl-create does not describe --busybox-path:\n{page}");
    let complete = run_ok(
        Command::new("bash")
            .args(["-c", "source /usr/share/bash-completion/completions/lxc-tmpl && complete -p lxc-tmpl"]),
    );
    assert!(complete.trim_end().ends_with(" lxc-tmpl"), "the installed bash completion does not load:\n{complete}");

    // A busybox container from the installed binary, in the test's private lxcpath.
    let mut ct = dir.container("pkgbb");
    let mut create = TestCommand::new(BINARY);
    create.args(["create", "--distro", "busybox", "--name", "pkgbb"]).arg("-P").arg(dir.lxcpath());
    create.arg("-f").arg(dir.safe_conf()).arg("--cache-dir").arg(dir.cache()).current_dir(dir.path());
    create.stdout();
    // The config's header names the plugin that made it: the packaged one.
    let config = ct.config();
    let header = "# Template used to create this container: lxc-tmpl busybox ";
    let made_by = config.lines().find(|l| l.starts_with(header)).unwrap_or_else(|| panic!("no header:\n{config}"));
    assert!(made_by.ends_with(&format!("({PLUGIN_DIR}/liblxc_tmpl_busybox.so)")), "made by another plugin: {made_by}");
    ct.start();
    assert_eq!(ct.state(), "RUNNING");
    assert_eq!(ct.attach(&["hostname"]).trim(), "pkgbb", "hostname inside the container");
    let stopped = ct.stop_clean(30);
    assert!(stopped.status.success(), "the container did not stop cleanly:\n{stopped}");
    let destroyed = ct.destroy();
    assert!(destroyed.status.success(), "lxc-destroy failed:\n{destroyed}");

    installed.purge();
    assert_eq!(package_status(), None, "dpkg still knows {PACKAGE} after the purge");
    let left: Vec<&PathBuf> = files.iter().filter(|f| f.symlink_metadata().is_ok()).collect();
    assert!(left.is_empty(), "the purge left files of the package: {left:?}");
    for dir in ["/usr/lib/lxc-tmpl", "/usr/share/doc/lxc-tmpl"] {
        assert!(!Path::new(dir).exists(), "the purge left {dir}");
    }
}
