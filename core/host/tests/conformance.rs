//! The conformance suite of `Host` behaviour
//! (`lxc_tmpl_plugin_api::testing::conformance`) against the real host: the
//! bridge plugins talk to, over a rootfs in a temporary directory, with a
//! directory outside it that no case may reach. The fake host passes the same
//! suite (plugins/api), so the two agree on every case.

// Fixtures outside the rootfs are built with std::fs on purpose.
#![allow(clippy::disallowed_methods)]

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::PathBuf;

use lxc_tmpl_host::{
    lxcconf::BaseConfig,
    plugin::{bridge::Bridge, scratch::Scratch},
    report::Reporter,
    rootfs::Rootfs,
    runner::Runner,
};
use lxc_tmpl_plugin_api::{
    Host, HostApi_TO, LogLevel,
    abi_stable::sabi_trait::TD_Opaque,
    testing::conformance::{self, Subject},
};

/// Progress and logs go nowhere.
struct Quiet;

impl Reporter for Quiet {
    fn step(&self, _step: &str) {}
    fn log(&self, _level: LogLevel, _message: &str) {}
}

/// A rootfs and a directory outside it, in a fresh temporary directory.
struct Real {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
    runner: Runner,
    base: BaseConfig,
    scratch: Scratch,
}

impl Real {
    fn new() -> Real {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("rootfs");
        let outside = tmp.path().join("outside");
        // A rootfs root is 0755 like a real one (tempdir makes 0700).
        std::fs::DirBuilder::new().mode(0o755).create(&root).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("victim"), b"host\n").unwrap();
        std::os::unix::fs::symlink("victim", outside.join("link")).unwrap();
        std::fs::create_dir(outside.join("dir")).unwrap();
        std::os::unix::fs::symlink("dir", outside.join("dirlink")).unwrap();
        // File operations never run a command: the helper is never started.
        let runner = Runner::new(PathBuf::from("/nonexistent/lxc-tmpl"));
        Real { _tmp: tmp, root, outside, runner, base: BaseConfig::default(), scratch: Scratch::new() }
    }

    /// The host path of a rootfs path whose parents are plain directories
    /// (the cases only inspect such paths).
    fn host_path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }
}

impl Subject for Real {
    fn with_host(&mut self, f: &mut dyn FnMut(&mut Host<'_>)) {
        let reporter = Quiet;
        let mut bridge = Bridge {
            root: Some(Rootfs::open(&self.root).unwrap()),
            runner: &self.runner,
            hostname: "c1",
            bind_resolv_conf: false,
            base: &self.base,
            entries: Vec::new(),
            reporter: &reporter,
            scratch: &self.scratch,
            cache_dir: &self.root,
            distro: "conformance",
            package_dirs: Vec::new(),
        };
        let mut host = Host::new(HostApi_TO::from_ptr(&mut bridge, TD_Opaque));
        f(&mut host);
    }

    fn mode(&mut self, path: &str) -> Option<u32> {
        std::fs::symlink_metadata(self.host_path(path)).ok().map(|m| m.mode() & 0o7777)
    }

    fn owner(&mut self, path: &str) -> Option<(u32, u32)> {
        std::fs::symlink_metadata(self.host_path(path)).ok().map(|m| (m.uid(), m.gid()))
    }

    fn chown_ids(&self) -> (u32, u32) {
        if nix::unistd::geteuid().is_root() {
            (100_000, 100_005)
        } else {
            (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw())
        }
    }

    fn outside(&self) -> String {
        self.outside.display().to_string()
    }

    fn outside_state(&mut self) -> (Vec<String>, String) {
        let mut names: Vec<String> =
            std::fs::read_dir(&self.outside).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        (names, std::fs::read_to_string(self.outside.join("victim")).unwrap())
    }
}

#[test]
fn real_host_conforms() {
    conformance::run(|| Box::new(Real::new()));
}

#[test]
fn scratch_dirs_go_when_the_create_ends() {
    let mut real = Real::new();
    let mut made = Vec::new();
    real.with_host(&mut |h| made.push(h.scratch_dir().unwrap()));
    let dir = PathBuf::from(&made[0]);
    assert!(dir.is_dir());
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o7777, 0o700);
    real.scratch.end().unwrap();
    assert!(!dir.exists());
}
