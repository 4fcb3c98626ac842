//! The `dir` backing store's copy engine (`lxc_tmpl_host::backing::copy`)
//! keeps everything `rsync -aHAX --numeric-ids` keeps.
//!
//! A fixture tree holds every kind of file a rootfs has: regular, empty and
//! sparse files (64 MiB with data at both ends), setuid and setgid bits, a
//! sticky directory, a file capability (`setcap`), access ACLs and a
//! directory's default ACL (`setfacl`), `user.*` and `trusted.*` xattrs (one
//! on a symlink), hard-link groups (regular files and a symlink), relative,
//! absolute and dangling symlinks, character and block devices, a fifo, a
//! socket, owners such as 1234:5678 on a file, a directory and a symlink, and
//! times with nanoseconds, plus a few thousand small files. It is copied with
//! rsync and with the engine, and the two copies are compared entry by entry:
//! type, mode, owner, mtime, size and content, xattrs (ACLs included),
//! symlink target, device number and hard-link groups. The engine's copy is
//! also compared with the source (atimes too, which rsync -a does not keep),
//! and a few facts are checked directly (with getcap and getfacl, shared
//! inodes, allocated blocks), so that the test fails if rsync and the engine
//! were wrong in the same way.
//!
//! Accepted difference: rsync without `-S` writes the holes of a sparse file
//! out as zeros, so allocated blocks are compared with the source's instead.
//!
//! The time the engine, rsync and `cp -a` took is printed, for information
//! only.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    hash::{DefaultHasher, Hash, Hasher},
    io::{Seek, SeekFrom, Write},
    os::{
        fd::{AsFd, OwnedFd},
        unix::fs::{FileTypeExt, MetadataExt, PermissionsExt},
    },
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use lxc_tmpl_host::{
    backing::copy::{CopyOptions, copy_tree},
    sys,
};
use lxc_tmpl_tests::{TestCommand, TestDir, require_root};
use nix::{
    fcntl::{AT_FDCWD, OFlag},
    sys::{
        stat::{Mode, SFlag, UtimensatFlags},
        time::TimeSpec,
    },
};

const MIB: u64 = 1 << 20;

/// Fails unless `tool` can be run, naming the package that has it.
fn require_tool(tool: &str, package: &str) {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "this test needs `{tool}`, which is not installed (apt-get install {package})");
}

fn open_path(path: &Path) -> OwnedFd {
    nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
}

fn set_xattr(path: &Path, name: &std::ffi::CStr, value: &[u8]) {
    sys::path_fd_setxattr(open_path(path).as_fd(), name, value)
        .unwrap_or_else(|e| panic!("cannot set {name:?} on {}: {e}", path.display()));
}

fn lchown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("cannot chown {}: {e}", path.display()));
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
}

/// What the fixture's sparse file holds: 1 MiB of data at the start and 1 MiB at the end of
/// 64 MiB.
const SPARSE: &str = "var/lib/sparse.img";

/// Builds the fixture tree in `src` (an existing empty directory). Returns the number of files.
fn build_fixture(src: &Path) {
    let p = |rel: &str| src.join(rel);
    for dir in
        ["etc", "usr/bin", "usr/sbin", "usr/lib", "var/lib", "var/mail", "tmp", "dev", "run", "home/odd", "shared"]
    {
        fs::create_dir_all(p(dir)).unwrap();
        chmod(&p(dir), 0o755);
    }
    fs::write(p("etc/hostname"), "fixture\n").unwrap();
    fs::write(p("etc/empty"), "").unwrap();

    // Sparse: data at both ends, a 62 MiB hole between.
    let mut sparse = fs::File::create(p(SPARSE)).unwrap();
    let block = vec![0x5au8; MIB as usize];
    sparse.write_all(&block).unwrap();
    sparse.seek(SeekFrom::Start(63 * MIB)).unwrap();
    sparse.write_all(&block).unwrap();
    drop(sparse);

    // Setuid binary, setgid directory, sticky directory.
    fs::write(p("usr/bin/su-like"), b"\x7fELF pretend").unwrap();
    chmod(&p("usr/bin/su-like"), 0o4755);
    chmod(&p("var/mail"), 0o2775);
    chmod(&p("tmp"), 0o1777);

    // A file capability, set after the owner (chown clears it).
    fs::write(p("usr/bin/ping-like"), b"\x7fELF ping").unwrap();
    chmod(&p("usr/bin/ping-like"), 0o755);
    TestCommand::new("setcap").arg("cap_net_raw+ep").arg(p("usr/bin/ping-like")).stdout();

    // ACLs: an access ACL on a file, a default ACL on a directory and a file that inherited it.
    fs::write(p("etc/acl-file"), "acl\n").unwrap();
    TestCommand::new("setfacl").args(["-m", "u:1234:rwx,g:5678:r-x"]).arg(p("etc/acl-file")).stdout();
    TestCommand::new("setfacl").args(["-m", "u:1234:rwx", "-d", "-m", "u:1234:rwx,g::r-x"]).arg(p("shared")).stdout();
    fs::write(p("shared/inherited"), "inherits the default ACL\n").unwrap();

    // Other xattrs, one on a symlink (trusted.* may be set on a symlink, user.* may not).
    fs::write(p("etc/xattr-file"), "xattrs\n").unwrap();
    set_xattr(&p("etc/xattr-file"), c"user.mime_type", b"text/plain");
    set_xattr(&p("etc/xattr-file"), c"trusted.lxc-tmpl", b"\x00\x01binary");
    set_xattr(&p("usr/lib"), c"user.dir-attr", b"on a directory");

    // Hard links: a pair across directories plus a third name, and a hard-linked symlink.
    fs::write(p("usr/bin/linked"), "one inode, three names\n").unwrap();
    fs::hard_link(p("usr/bin/linked"), p("usr/sbin/linked-too")).unwrap();
    fs::hard_link(p("usr/bin/linked"), p("usr/bin/linked-3")).unwrap();
    std::os::unix::fs::symlink("linked", p("usr/bin/link-sym")).unwrap();
    fs::hard_link(p("usr/bin/link-sym"), p("usr/sbin/link-sym-hard")).unwrap();

    // Symlinks: relative, absolute, dangling, one with an odd owner and an xattr.
    std::os::unix::fs::symlink("usr/lib", p("lib")).unwrap();
    std::os::unix::fs::symlink("/proc/self/mounts", p("etc/mtab")).unwrap();
    std::os::unix::fs::symlink("../nowhere/at/all", p("etc/dangling")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", p("home/odd/link")).unwrap();
    lchown(&p("home/odd/link"), 1234, 5678);
    set_xattr(&p("home/odd/link"), c"trusted.on-symlink", b"yes");

    // Device nodes, a fifo, a socket.
    nix::sys::stat::mknod(
        &p("dev/null"),
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    nix::sys::stat::mknod(
        &p("dev/loop9"),
        SFlag::S_IFBLK,
        Mode::from_bits_truncate(0o660),
        nix::sys::stat::makedev(7, 9),
    )
    .unwrap();
    lchown(&p("dev/loop9"), 0, 6);
    nix::unistd::mkfifo(&p("run/fifo"), Mode::from_bits_truncate(0o620)).unwrap();
    drop(std::os::unix::net::UnixListener::bind(p("run/socket")).unwrap());

    // Odd owners on a file and a directory.
    fs::write(p("home/odd/file"), "owned by 1234:5678\n").unwrap();
    chmod(&p("home/odd/file"), 0o640);
    lchown(&p("home/odd/file"), 1234, 5678);
    lchown(&p("home/odd"), 1234, 5678);
    chmod(&p("home/odd"), 0o750);

    // Bulk: a few thousand small files, for the timing.
    for d in 0..40 {
        let dir = p(&format!("usr/share/pkg{d:02}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..50 {
            fs::write(dir.join(format!("file{f:02}")), format!("{d}/{f}\n").repeat(200)).unwrap();
        }
    }

    set_times(src);
}

/// Gives every entry below `root` (and `root`) an mtime with nanoseconds, different for each
/// entry, and an atime an hour from now, so that the reads of rsync, cp and the comparison do
/// not move it: relatime updates an atime that is not later than the mtime or the ctime (which
/// setting the times makes "now"), or more than a day old.
fn set_times(root: &Path) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let atime = TimeSpec::new(now + 3600, 987_654_321);
    let mut entries = Vec::new();
    collect(root, &mut entries);
    for (i, path) in entries.iter().rev().enumerate() {
        let mtime = TimeSpec::new(1_600_000_000 + i as i64 * 1000, 123_456_789 + i as i64);
        nix::sys::stat::utimensat(AT_FDCWD, path, &atime, &mtime, UtimensatFlags::NoFollowSymlink)
            .unwrap_or_else(|e| panic!("cannot set the times of {}: {e}", path.display()));
    }
}

/// `root` and everything below it, parents before children, never following a symlink.
fn collect(root: &Path, out: &mut Vec<PathBuf>) {
    out.push(root.to_owned());
    if fs::symlink_metadata(root).unwrap().is_dir() {
        let mut names: Vec<_> = fs::read_dir(root).unwrap().map(|e| e.unwrap().path()).collect();
        names.sort();
        for name in names {
            collect(&name, out);
        }
    }
}

/// One entry of a tree, as compared.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    /// Size and a hash of the content, for regular files.
    content: Option<(u64, u64)>,
    target: Option<PathBuf>,
    rdev: Option<u64>,
    xattrs: BTreeMap<String, Vec<u8>>,
}

/// A tree, as compared: every entry by path, the hard-link groups, and what rsync does not keep
/// (atimes) or keeps differently (allocated blocks).
#[derive(Debug)]
struct Tree {
    nodes: BTreeMap<PathBuf, Node>,
    /// The names of each inode with more than one name in the tree (directories aside).
    link_groups: BTreeSet<BTreeSet<PathBuf>>,
    atimes: BTreeMap<PathBuf, (i64, i64)>,
    blocks: BTreeMap<PathBuf, u64>,
    inodes: BTreeMap<PathBuf, u64>,
}

fn snapshot(root: &Path) -> Tree {
    let mut paths = Vec::new();
    collect(root, &mut paths);
    let mut tree = Tree {
        nodes: BTreeMap::new(),
        link_groups: BTreeSet::new(),
        atimes: BTreeMap::new(),
        blocks: BTreeMap::new(),
        inodes: BTreeMap::new(),
    };
    let mut by_inode: BTreeMap<u64, BTreeSet<PathBuf>> = BTreeMap::new();
    for path in paths {
        let rel = path.strip_prefix(root).unwrap().to_owned();
        let meta = fs::symlink_metadata(&path).unwrap();
        let ft = meta.file_type();
        let kind = match () {
            _ if ft.is_dir() => "dir",
            _ if ft.is_file() => "file",
            _ if ft.is_symlink() => "symlink",
            _ if ft.is_char_device() => "char",
            _ if ft.is_block_device() => "block",
            _ if ft.is_fifo() => "fifo",
            _ if ft.is_socket() => "socket",
            _ => "unknown",
        };
        let fd = open_path(&path);
        let mut xattrs = BTreeMap::new();
        for name in sys::path_fd_listxattr(fd.as_fd()).unwrap() {
            let value = sys::path_fd_getxattr(fd.as_fd(), &name).unwrap().unwrap_or_default();
            xattrs.insert(name.into_string().unwrap(), value);
        }
        let content = ft.is_file().then(|| {
            let mut hasher = DefaultHasher::new();
            fs::read(&path).unwrap().hash(&mut hasher);
            (meta.len(), hasher.finish())
        });
        let node = Node {
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            content,
            target: ft.is_symlink().then(|| fs::read_link(&path).unwrap()),
            rdev: (ft.is_char_device() || ft.is_block_device()).then_some(meta.rdev()),
            xattrs,
        };
        if !ft.is_dir() && meta.nlink() > 1 {
            by_inode.entry(meta.ino()).or_default().insert(rel.clone());
        }
        tree.atimes.insert(rel.clone(), (meta.atime(), meta.atime_nsec()));
        tree.blocks.insert(rel.clone(), meta.blocks());
        tree.inodes.insert(rel.clone(), meta.ino());
        tree.nodes.insert(rel, node);
    }
    tree.link_groups = by_inode.into_values().filter(|names| names.len() > 1).collect();
    tree
}

/// The differences between two trees' entries and hard-link groups, one line each.
fn differences(left: &Tree, right: &Tree, left_name: &str, right_name: &str, atimes: bool) -> Vec<String> {
    let mut diffs = Vec::new();
    let paths: BTreeSet<&PathBuf> = left.nodes.keys().chain(right.nodes.keys()).collect();
    for path in paths {
        match (left.nodes.get(path), right.nodes.get(path)) {
            (Some(l), Some(r)) if l != r => {
                diffs.push(format!("{}: {left_name} {l:?}\n   {right_name} {r:?}", path.display()))
            }
            (Some(_), None) => diffs.push(format!("{}: only in {left_name}", path.display())),
            (None, Some(_)) => diffs.push(format!("{}: only in {right_name}", path.display())),
            _ => {}
        }
        if atimes && left.atimes.get(path) != right.atimes.get(path) {
            diffs.push(format!(
                "{}: atime {left_name} {:?}, {right_name} {:?}",
                path.display(),
                left.atimes.get(path),
                right.atimes.get(path)
            ));
        }
    }
    if left.link_groups != right.link_groups {
        diffs.push(format!(
            "hard-link groups: {left_name} {:?}\n   {right_name} {:?}",
            left.link_groups, right.link_groups
        ));
    }
    diffs
}

fn timed<T>(what: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let result = what();
    (result, start.elapsed())
}

#[test]
fn backing_copy_matches_rsync() {
    require_root();
    require_tool("rsync", "rsync");
    require_tool("setcap", "libcap2-bin");
    require_tool("getcap", "libcap2-bin");
    require_tool("setfacl", "acl");
    require_tool("getfacl", "acl");
    require_tool("cp", "coreutils");
    let dir = TestDir::new("backing-copy");
    let src = dir.mkdir("src");
    build_fixture(&src);

    let by_rsync = dir.path().join("rsync");
    let (_, rsync_time) = timed(|| {
        TestCommand::new("rsync")
            .args(["-aHAX", "--numeric-ids"])
            .arg(format!("{}/", src.display()))
            .arg(format!("{}/", by_rsync.display()))
            .stdout()
    });
    let by_engine = dir.path().join("engine");
    let (stats, engine_time) = timed(|| copy_tree(&src, &by_engine, &CopyOptions::default()));
    let stats = stats.unwrap_or_else(|e| panic!("copy_tree failed: {e} ({:?})", std::error::Error::source(&e)));
    let by_cp = dir.path().join("cp");
    let (_, cp_time) = timed(|| TestCommand::new("cp").arg("-a").arg(&src).arg(&by_cp).stdout());
    eprintln!(
        "backing copy of the fixture ({} files, {} directories, {:.1} MiB apparent): engine {engine_time:.2?} \
         ({} reflinked, {} copied, {:.1} MiB of data copied, {} threads), rsync -aHAX {rsync_time:.2?}, \
         cp -a {cp_time:.2?}",
        stats.files,
        stats.dirs,
        stats.bytes as f64 / MIB as f64,
        stats.reflinked,
        stats.copied,
        stats.bytes_copied as f64 / MIB as f64,
        lxc_tmpl_host::backing::copy::default_threads(),
    );

    let engine = snapshot(&by_engine);
    let rsync = snapshot(&by_rsync);
    let source = snapshot(&src);

    let diffs = differences(&rsync, &engine, "rsync", "engine", false);
    assert!(diffs.is_empty(), "the engine's copy differs from rsync -aHAX's:\n{}", diffs.join("\n"));
    let diffs = differences(&source, &engine, "source", "engine", true);
    assert!(diffs.is_empty(), "the engine's copy differs from the source:\n{}", diffs.join("\n"));

    // Facts checked directly, so that rsync and the engine cannot be wrong together.
    let e = |rel: &str| by_engine.join(rel);
    let ino = |rel: &str| engine.inodes[Path::new(rel)];
    assert_eq!(ino("usr/bin/linked"), ino("usr/sbin/linked-too"), "the hard-linked pair shares one inode");
    assert_eq!(ino("usr/bin/linked"), ino("usr/bin/linked-3"));
    assert_eq!(ino("usr/bin/link-sym"), ino("usr/sbin/link-sym-hard"), "the hard-linked symlink shares one inode");
    assert_ne!(ino("usr/bin/linked"), source.inodes[Path::new("usr/bin/linked")], "the copy is a new inode");
    assert_eq!(fs::symlink_metadata(e("usr/bin/linked")).unwrap().nlink(), 3);

    let sparse_blocks = engine.blocks[Path::new(SPARSE)] * 512;
    let source_blocks = source.blocks[Path::new(SPARSE)] * 512;
    let rsync_blocks = rsync.blocks[Path::new(SPARSE)] * 512;
    eprintln!(
        "sparse 64 MiB file allocates: source {} KiB, engine {} KiB, rsync -aHAX (no -S) {} KiB",
        source_blocks / 1024,
        sparse_blocks / 1024,
        rsync_blocks / 1024
    );
    assert!(sparse_blocks < 8 * MIB, "the sparse file's copy allocates {sparse_blocks} bytes for 2 MiB of data");
    assert!(sparse_blocks <= source_blocks + 256 * 1024, "copy {sparse_blocks} bytes, source {source_blocks}");
    assert!(sparse_blocks <= rsync_blocks);
    assert_eq!(fs::metadata(e(SPARSE)).unwrap().len(), 64 * MIB);

    let getcap = TestCommand::new("getcap").arg(e("usr/bin/ping-like")).stdout();
    assert!(getcap.contains("cap_net_raw=ep"), "getcap of the copy: {getcap:?}");
    let acl = TestCommand::new("getfacl").args(["-n", "-p"]).arg(e("etc/acl-file")).stdout();
    assert!(acl.contains("user:1234:rwx") && acl.contains("group:5678:r-x"), "getfacl of the copy:\n{acl}");
    let acl = TestCommand::new("getfacl").args(["-n", "-p"]).arg(e("shared")).stdout();
    assert!(acl.contains("default:user:1234:rwx"), "getfacl of the copied directory:\n{acl}");

    let meta = |rel: &str| fs::symlink_metadata(e(rel)).unwrap();
    assert_eq!((meta("home/odd/link").uid(), meta("home/odd/link").gid()), (1234, 5678), "the symlink's owner");
    assert_eq!((meta("home/odd/file").uid(), meta("home/odd/file").gid()), (1234, 5678));
    assert_eq!(meta("usr/bin/su-like").mode() & 0o7777, 0o4755);
    assert_eq!(meta("var/mail").mode() & 0o7777, 0o2775);
    assert_eq!(meta("tmp").mode() & 0o7777, 0o1777);
    assert_eq!(meta("dev/null").rdev(), nix::sys::stat::makedev(1, 3));
    assert!(meta("dev/loop9").file_type().is_block_device());
    assert!(meta("run/fifo").file_type().is_fifo());
    assert!(meta("run/socket").file_type().is_socket());
    assert_eq!(fs::read_link(e("etc/dangling")).unwrap(), Path::new("../nowhere/at/all"));
    assert_eq!(meta("etc/hostname").mtime_nsec(), source.nodes[Path::new("etc/hostname")].mtime.1);
    assert_ne!(meta("etc/hostname").mtime_nsec(), 0, "the fixture's times have nanoseconds");
    assert_eq!((stats.specials, stats.hard_links), (4, 3), "{stats:?}");
}
