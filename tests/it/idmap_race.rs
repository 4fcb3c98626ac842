//! A race against the id shift of an idmapped create: while `lxc-tmpl
//! create` shifts the owners of a rootfs into the container's id range,
//! another thread keeps swapping directories of that rootfs for symlinks to
//! a host directory (and back), as someone who can write into a rootfs
//! could. A shift that walks by path descends through such a symlink and
//! chowns (and chmods) the host's files: the path walk lxc-tmpl had did so
//! within three rounds in every trial. The descriptor walk never leaves the
//! rootfs. Whatever each create's outcome (it fails when it notices a swap,
//! it succeeds when none fell into its checks), the host directory is
//! untouched, and a failed create leaves nothing behind, although the swaps
//! go on while it rolls back.
//!
//! Busybox, as its create takes a fraction of a second: the swaps start as
//! soon as the rootfs is populated and go on until the create has exited, so
//! every shift runs while they do, and ten rounds take a few seconds. The
//! tree a shift walks is small, but the race is between the lookup of an
//! entry and its use, not over the size of the tree.

use std::{
    fs,
    os::unix::fs::{PermissionsExt, symlink},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use lxc_tmpl_tests::{
    TestDir, assert_same_text, error_line,
    leftovers::{partial, staging_dirs},
    require_root, require_tools, snapshot,
    userns::{ensure_subordinate_ids, idmapped_conf},
};
use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};

/// Pairs of (directory, symlink to the host) swapped back and forth.
const RACERS: usize = 4;
/// Between two rounds of swaps.
const PAUSE: Duration = Duration::from_micros(300);
/// Creates raced.
const ROUNDS: usize = 10;

/// A host directory no create may touch: files of root with telling modes.
fn host_dir(dir: &TestDir) -> PathBuf {
    let host = dir.mkdir("host");
    for (name, mode) in [("secret", 0o600), ("tool", 0o4755), ("plain", 0o644)] {
        let path = dir.write(&format!("host/{name}"), name);
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }
    dir.write("host/sub/file", "sub");
    host
}

/// Waits until `rootfs` is populated, then puts [`RACERS`] directories into
/// it, each next to a symlink to `host`, and swaps each pair
/// (`renameat2(RENAME_EXCHANGE)`, atomic) every [`PAUSE`] until `stop`. A
/// walk by path looks an entry up, and reads it as a directory later: the
/// pause makes it likely that the entry flipped in between. Errors are
/// ignored: the create may remove the rootfs at any time. Returns the number
/// of swaps.
fn swapper(rootfs: PathBuf, host: PathBuf, stop: Arc<AtomicBool>) -> JoinHandle<u64> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) && !rootfs.join("etc").is_dir() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let pairs: Vec<(PathBuf, PathBuf)> = (0..RACERS)
            .map(|k| {
                let (dir, link) = (rootfs.join(format!("race{k}")), rootfs.join(format!("race{k}.link")));
                let _ = fs::create_dir(&dir).and_then(|()| fs::write(dir.join("x"), "x"));
                let _ = symlink(&host, &link);
                (dir, link)
            })
            .collect();
        let mut swaps = 0;
        while !stop.load(Ordering::Relaxed) {
            for (a, b) in &pairs {
                if renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE).is_ok() {
                    swaps += 1;
                }
            }
            std::thread::sleep(PAUSE);
        }
        swaps
    })
}

#[test]
fn swapping_symlinks_into_a_rootfs_while_ids_shift_never_touches_the_host() {
    require_root();
    require_tools(&["busybox"]);
    ensure_subordinate_ids();
    let dir = TestDir::new("idmap-race");
    let conf = idmapped_conf(&dir);
    let host = host_dir(&dir);
    let before = snapshot::tree(&host);
    let (mut completed, mut refused, mut problems) = (0, 0, Vec::new());
    for round in 0..ROUNDS {
        let name = format!("race{round}");
        let _ct = dir.container(&name);
        let container_dir = dir.lxcpath().join(&name);
        let stop = Arc::new(AtomicBool::new(false));
        let swaps = swapper(container_dir.join("rootfs"), host.clone(), stop.clone());
        let mut create = dir.command();
        create.args(["create", "--distro", "busybox", "--name", &name]).arg("-P").arg(dir.lxcpath());
        create.arg("-f").arg(&conf).arg("--cache-dir").arg(dir.cache());
        let outcome = create.run();
        stop.store(true, Ordering::Relaxed);
        let swaps = swaps.join().expect("the swapper panicked");

        assert_same_text!(before, snapshot::tree(&host), "round {round} ({swaps} swaps): the host directory changed");
        if outcome.status.success() {
            completed += 1;
            continue;
        }
        refused += 1;
        // What else went wrong is collected, so that every round checks the host.
        let error = error_line(&outcome.stderr);
        if !error.contains("changed while its owner was being shifted") {
            problems.push(format!("round {round}: not the error of a swapped entry: {error}"));
        }
        problems.extend(leftovers(&container_dir, &dir.cache()).into_iter().map(|l| format!("round {round}: {l}")));
    }
    eprintln!("{completed} creates completed, {refused} refused a swapped entry");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// What a failed create left: its partial file, its container directory
/// (removed while the swaps went on: an attacker does not stop when the
/// create fails), cache staging.
fn leftovers(container_dir: &Path, cache: &Path) -> Vec<String> {
    let mut left = Vec::new();
    if partial(container_dir).is_some() {
        left.push(format!("a partial file is left in {}", container_dir.display()));
    }
    if container_dir.exists() {
        left.push(format!("the failed create left {}", container_dir.display()));
    }
    left.extend(staging_dirs(cache).into_iter().map(|s| format!("cache staging left: {}", s.display())));
    left
}
