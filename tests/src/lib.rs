/*!
The harness of the `lxc-tmpl` integration tests.

Modelled on ripgrep's `tests/util.rs`: every test gets its own [`TestDir`]
(a fresh directory holding a private lxcpath, cache dir and plugin dir, plus a
safe base config), and runs the real binary through a [`TestCommand`]
builder. Containers made by a test are held by a [`Container`] guard that
stops and destroys them when dropped, also when the test panics.

The tests run as root against the real tools (`lxc-start`, `lxc-attach`,
busybox). A test that lacks a privilege or a tool *fails* and says why
([`require_root`], [`require_tools`]); it never passes silently.

# Safety

A container whose config has `lxc.net.N.type = none` shares the host's
network namespace, and the DHCP client of a busybox container then wipes the
host's network configuration. [`Container::start`] therefore refuses to start
anything but a container with exactly one network of type `empty` and
AppArmor `unconfined`, checked both in the config text (and everything it
includes) and in what LXC itself parsed (`lxc-info -c`). Starts are serialised
machine-wide with a file lock ([`heavy_lock`]), the machine has two cores.

Everything lives under `/tmp/lxc-tmpl-tests/`, never in `/var/lib/lxc` or
`/var/cache/lxc`. Dropping a [`TestDir`] kills processes the binary leaked
into it, lazily unmounts mounts it leaked under it (so that removing the tree
can never delete files through a bind mount) and only then removes it.

# Layout

- [`paths`] says where the built binary, the fixture plugins and the sources are.
- [`dir`] has [`TestDir`].
- [`command`] has [`TestCommand`] and its [`Outcome`].
- [`container`] has [`Container`], the start gate and [`heavy_lock`].
- [`snapshot`] takes directory trees, mount tables and processes, to compare
  before and after a command.
- [`config`] reads LXC config text.
- [`rootfs`] reads files, modes and ssh host keys of a rootfs and lists
  the entries of a rootfs cache.
- [`running`] starts a command in the background, to watch its stderr and
  signal it part way through; [`procs`] finds the processes it left.
- [`leftovers`] looks at what an interrupted create left: `partial`, cache
  staging, a fingerprint of the cache.
- [`slowtool`] slows down a host tool lxc-tmpl runs by name, so that a test
  can catch a create while it runs; [`tmpfs`] mounts a small tmpfs to run a
  create out of space.
- [`https`] serves a directory over https with a CA made for the test (the
  simplestreams trees LXD reads); [`mirror`] serves the apt fixture over http.
- [`userns`] has the subordinate ids and the `lxc.idmap` base config of
  idmapped (unprivileged) containers.
*/

pub mod command;
pub mod config;
pub mod container;
pub mod dir;
pub mod https;
pub mod leftovers;
pub mod loopfs;
pub mod lxd;
pub mod mirror;
pub mod paths;
pub mod procs;
pub mod rootfs;
pub mod running;
pub mod slowtool;
pub mod snapshot;
pub mod tmpfs;
pub mod userns;

use std::{os::unix::fs::MetadataExt, process::Command};

pub use command::{Outcome, TestCommand};
pub use container::{Container, HeavyLock, heavy_lock};
pub use dir::TestDir;
pub use mirror::{AptFixture, MirrorServer, apt_fixture};
pub use paths::Fixture;

/// Fails the test unless it runs as root (effective uid 0).
///
/// The integration tests create containers, mount and chroot: without root
/// they cannot test anything, and passing without testing would lie.
pub fn require_root() {
    // /proc/self belongs to the effective uid of the process reading it.
    let euid = std::fs::metadata("/proc/self").map(|m| m.uid()).expect("cannot stat /proc/self");
    assert!(
        euid == 0,
        "this test must run as root (effective uid is {euid}): it creates containers, mounts and \
         chroots; run `sudo -E cargo test -p lxc-tmpl-tests`"
    );
}

/// Fails the test unless every program in `tools` can be run.
pub fn require_tools(tools: &[&str]) {
    for tool in tools {
        let found =
            Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success());
        assert!(found, "this test needs `{tool}`, which is not installed (apt-get install lxc busybox-static)");
    }
}

/// The tools the container tests need.
pub const LXC_TOOLS: &[&str] = &["lxc-start", "lxc-stop", "lxc-info", "lxc-attach", "lxc-wait", "lxc-destroy"];

/// Returns the only line of `stderr` that starts with `error: `.
///
/// The contract: a failing command prints exactly one such line, naming the
/// problem (other lines, such as the tail of a failed command's output, may
/// follow it). Panics with the whole stderr otherwise.
pub fn error_line(stderr: &str) -> String {
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert!(
        errors.len() == 1,
        "expected exactly one line starting with `error: ` on stderr, found {}:\n{stderr}",
        errors.len()
    );
    errors[0].to_owned()
}

/// Asserts that `line` contains every one of `needles` (ASCII case-insensitive).
#[track_caller]
pub fn assert_mentions(line: &str, needles: &[&str]) {
    let lower = line.to_ascii_lowercase();
    for needle in needles {
        assert!(lower.contains(&needle.to_ascii_lowercase()), "expected {needle:?} in:\n{line}");
    }
}

/// Like `assert_eq!` for long multi-line text: on mismatch prints the lines
/// only on the left and only on the right, then both texts.
#[macro_export]
macro_rules! assert_same_text {
    ($left:expr, $right:expr, $($what:tt)+) => {{
        let (left, right): (&str, &str) = (&$left, &$right);
        if left != right {
            panic!(
                "{}\n{}\n--- left (before / expected) ---\n{left}\n--- right (after / actual) ---\n{right}",
                format!($($what)+),
                $crate::snapshot::line_diff(left, right),
            );
        }
    }};
}
