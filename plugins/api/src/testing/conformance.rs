//! One suite of [`Host`] behaviour, run against every implementation of the
//! host callbacks: the [`FakeHost`] plugin unit tests use
//! (`plugins/api`, test `fake_host_conforms`) and the real host's bridge on a
//! temporary rootfs (`core/host/tests/conformance.rs`). A plugin whose unit
//! tests pass against the fake then meets the same file semantics in
//! production.
//!
//! The spec is the real host (`core/host/src/rootfs.rs`): rootfs paths
//! resolve as if chrooted, the final component of an entry being changed is
//! never followed, modes are exact, a missing path is
//! [`ErrorKind::NOT_FOUND`](crate::ErrorKind::NOT_FOUND).
//!
//! An implementation plugs in through [`Subject`]; [`run`] gives every case
//! in [`CASES`] a fresh subject and reports all the cases that failed.
//!
//! ```no_run
//! use lxc_tmpl_plugin_api::testing::conformance;
//!
//! conformance::run(|| Box::new(conformance::FakeSubject::new()));
//! ```

use std::fmt::Debug;

use super::{FakeHost, Node, with_host};
use crate::{ErrorKind, FileKind, Host, PluginError};

/// A host implementation under test, over a fresh, empty root.
///
/// Besides the root, it provides a host directory *outside* the root (see
/// [`Subject::outside`]) that the suite tries to reach and checks is left
/// alone.
pub trait Subject {
    /// Calls `f` once with a [`Host`] over the root.
    fn with_host(&mut self, f: &mut dyn FnMut(&mut Host<'_>));
    /// The permission bits (`& 0o7777`) of the rootfs entry `path` (a final
    /// symlink not followed); `None` when it is missing.
    fn mode(&mut self, path: &str) -> Option<u32>;
    /// The owner `(uid, gid)` of the rootfs entry `path` (a final symlink not
    /// followed); `None` when it is missing.
    fn owner(&mut self, path: &str) -> Option<(u32, u32)>;
    /// Ids `set_owner` may give a file here, other than the default owner
    /// where possible (as root); a host that cannot chown gives its own ids.
    fn chown_ids(&self) -> (u32, u32);
    /// The absolute host path of a directory outside the root, holding
    /// exactly: `victim`, a file with the text `host\n`; `link`, a symlink
    /// to `victim`; `dir`, an empty directory; `dirlink`, a symlink to `dir`.
    fn outside(&self) -> String;
    /// The names in the [`outside`](Subject::outside) directory, sorted (to
    /// check nothing was added), and the text of its `victim`.
    fn outside_state(&mut self) -> (Vec<String>, String);
}

/// One case of the suite.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// What it checks.
    pub name: &'static str,
    /// Runs it; panics on a difference from the spec.
    pub run: fn(&mut dyn Subject),
}

/// Runs every case of [`CASES`] on a fresh subject from `make`.
///
/// # Panics
/// When any case fails, naming every failed case and what differed.
pub fn run(mut make: impl FnMut() -> Box<dyn Subject>) {
    let mut failed = Vec::new();
    for case in CASES {
        let mut subject = make();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            (case.run)(subject.as_mut());
            outside_untouched(subject.as_mut());
        }));
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failed.push(format!("{}: {message}", case.name));
        }
    }
    assert!(failed.is_empty(), "{} of {} conformance cases failed:\n{}", failed.len(), CASES.len(), failed.join("\n"));
}

/// Every case, in the order [`run`] runs them.
pub const CASES: &[Case] = &[
    Case { name: "write_and_read", run: write_and_read },
    Case { name: "modes_are_exact", run: modes_are_exact },
    Case { name: "missing_parents", run: missing_parents },
    Case { name: "write_replaces_a_symlink", run: write_replaces_a_symlink },
    Case { name: "symlink_replaces_but_not_a_dir", run: symlink_replaces_but_not_a_dir },
    Case { name: "reads_follow_symlinks_inside", run: reads_follow_symlinks_inside },
    Case { name: "dirs_through_symlinks", run: dirs_through_symlinks },
    Case { name: "absolute_symlink_out_stays_inside", run: absolute_symlink_out_stays_inside },
    Case { name: "dotdot_stays_inside", run: dotdot_stays_inside },
    Case { name: "owners", run: owners },
    Case { name: "file_kinds", run: file_kinds },
    Case { name: "remove", run: remove },
    Case { name: "hard_links", run: hard_links },
    Case { name: "append", run: append },
    Case { name: "read_dir", run: read_dir },
    Case { name: "host_links_and_paths", run: host_links_and_paths },
    Case { name: "scratch_dirs", run: scratch_dirs },
    Case { name: "copy_from_host", run: copy_from_host },
    Case { name: "errors", run: errors },
];

/// Calls `f` with the subject's host and returns what it returns.
fn with<R>(s: &mut dyn Subject, f: impl FnOnce(&mut Host<'_>) -> R) -> R {
    let mut f = Some(f);
    let mut out = None;
    s.with_host(&mut |host| {
        if let Some(f) = f.take() {
            out = Some(f(host));
        }
    });
    out.expect("Subject::with_host did not call back")
}

/// Asserts a not-found error.
#[track_caller]
fn not_found<T: Debug>(what: &str, result: Result<T, PluginError>) {
    match result {
        Err(e) if e.is_not_found() => {}
        other => panic!("{what}: expected a not-found error, got {other:?}"),
    }
}

/// Asserts an error that is not a not-found one.
#[track_caller]
fn host_error<T: Debug>(what: &str, result: Result<T, PluginError>) {
    match result {
        Err(e) if e.kind == ErrorKind::HOST => {}
        other => panic!("{what}: expected a host error (not not-found), got {other:?}"),
    }
}

#[track_caller]
fn ok<T: Debug>(what: &str, result: Result<T, PluginError>) -> T {
    result.unwrap_or_else(|e| panic!("{what}: {e} ({:?})", e.kind))
}

fn outside_untouched(s: &mut dyn Subject) {
    let (names, victim) = s.outside_state();
    assert_eq!(names, ["dir", "dirlink", "link", "victim"], "the directory outside the root changed");
    assert_eq!(victim, "host\n", "the file outside the root changed");
}

fn write_and_read(s: &mut dyn Subject) {
    with(s, |h| {
        ok("mkdir etc", h.mkdir_all("etc", 0o755));
        ok("write", h.write_file("/etc/hostname", b"web1\n", 0o644));
        assert_eq!(ok("read", h.read_file("etc/hostname")), b"web1\n");
        ok("rewrite", h.write_file("etc/hostname", b"web2\n", 0o640));
        assert_eq!(ok("read again", h.read_file("/etc//hostname")), b"web2\n");
        assert_eq!(ok("kind", h.file_kind("etc/hostname")), Some(FileKind::File));
        ok("empty file", h.write_file("etc/empty", b"", 0o644));
        assert_eq!(ok("read empty", h.read_file("etc/empty")), b"");
    });
    assert_eq!(s.mode("etc/hostname"), Some(0o640), "a rewrite sets the new mode");
    assert_eq!(s.mode("etc"), Some(0o755));
}

fn modes_are_exact(s: &mut dyn Subject) {
    with(s, |h| {
        ok("setuid file", h.write_file("f", b"", 0o4755));
        ok("sticky dir", h.mkdir_all("tmp", 0o1777));
        ok("private dir", h.mkdir_all("root/.ssh", 0o700));
        ok("file", h.write_file("g", b"", 0o600));
        ok("chmod", h.set_mode("g", 0o640));
        ok("chmod dir", h.set_mode("root", 0o750));
        host_error("type bits in a write mode", h.write_file("h", b"", 0o100644));
        host_error("type bits in a mkdir mode", h.mkdir_all("d", 0o40755));
        host_error("type bits in a chmod", h.set_mode("g", 0o100644));
    });
    // No umask: 0o1777 and 0o4755 survive as given.
    assert_eq!(s.mode("f"), Some(0o4755));
    assert_eq!(s.mode("tmp"), Some(0o1777));
    assert_eq!(s.mode("root/.ssh"), Some(0o700));
    assert_eq!(s.mode("root"), Some(0o750));
    assert_eq!(s.mode("g"), Some(0o640));
    assert_eq!(s.mode("h"), None, "a refused write makes nothing");
    assert_eq!(s.mode("d"), None, "a refused mkdir makes nothing");
}

fn missing_parents(s: &mut dyn Subject) {
    with(s, |h| {
        not_found("write", h.write_file("nope/file", b"x", 0o644));
        not_found("append", h.append_file("nope/file", b"x"));
        not_found("symlink", h.symlink("x", "nope/link"));
        ok("a file", h.write_file("file", b"x", 0o644));
        not_found("hard link", h.hard_link("file", "nope/link"));
        not_found("read", h.read_file("nope/file"));
        not_found("read a missing file", h.read_file("file2"));
        not_found("chmod", h.set_mode("nope", 0o644));
        not_found("chown", h.set_owner("nope", 0, 0));
        not_found("list", h.read_dir("nope"));
        ok("remove", h.remove("nope/file"));
        assert_eq!(ok("kind", h.file_kind("nope/file")), None);
        // A parent that is a file is an error of its own, not "missing".
        host_error("write below a file", h.write_file("file/x", b"x", 0o644));
        host_error("mkdir below a file", h.mkdir_all("file/x", 0o755));
        // mkdir_all makes the parents, each with the mode given.
        ok("mkdir -p", h.mkdir_all("a/b/c", 0o750));
        ok("write below", h.write_file("a/b/c/f", b"", 0o644));
    });
    for dir in ["a", "a/b", "a/b/c"] {
        assert_eq!(s.mode(dir), Some(0o750), "{dir}");
    }
}

fn write_replaces_a_symlink(s: &mut dyn Subject) {
    let outside = s.outside();
    with(s, |h| {
        ok("mkdir", h.mkdir_all("etc", 0o755));
        ok("target", h.write_file("etc/target", b"target\n", 0o644));
        ok("link inside", h.symlink("target", "etc/link"));
        ok("write over the link", h.write_file("etc/link", b"new\n", 0o600));
        assert_eq!(ok("kind", h.file_kind("etc/link")), Some(FileKind::File));
        assert_eq!(ok("read", h.read_file("etc/link")), b"new\n");
        assert_eq!(ok("the target", h.read_file("etc/target")), b"target\n", "written through the link");
        // A link to a host file, absolute and relative: replaced, never followed.
        ok("link out", h.symlink(&format!("{outside}/victim"), "etc/shadow"));
        ok("write over it", h.write_file("etc/shadow", b"root:*:1::::::\n", 0o640));
        assert_eq!(ok("read", h.read_file("etc/shadow")), b"root:*:1::::::\n");
        ok("link up", h.symlink("../../../../../../../../victim", "etc/up"));
        ok("write over it", h.write_file("etc/up", b"up\n", 0o644));
        assert_eq!(ok("kind", h.file_kind("etc/up")), Some(FileKind::File));
        // A dangling link too.
        ok("dangling", h.symlink("/nowhere/at/all", "etc/dangling"));
        ok("write over it", h.write_file("etc/dangling", b"d\n", 0o644));
        assert_eq!(ok("nothing made at its target", h.file_kind("nowhere")), None);
    });
    assert_eq!(s.mode("etc/shadow"), Some(0o640));
    assert_eq!(s.mode("etc/link"), Some(0o600));
}

fn symlink_replaces_but_not_a_dir(s: &mut dyn Subject) {
    with(s, |h| {
        ok("mkdir", h.mkdir_all("bin", 0o755));
        ok("file", h.write_file("bin/ls", b"old", 0o755));
        ok("over a file", h.symlink("busybox", "bin/ls"));
        assert_eq!(ok("kind", h.file_kind("bin/ls")), Some(FileKind::Symlink));
        ok("over a symlink", h.symlink("/bin/busybox", "bin/ls"));
        host_error("over a directory", h.symlink("busybox", "bin"));
        assert_eq!(ok("the directory stays", h.file_kind("bin")), Some(FileKind::Dir));
        host_error("no name", h.symlink("x", "/"));
    });
}

fn reads_follow_symlinks_inside(s: &mut dyn Subject) {
    with(s, |h| {
        ok("mkdir", h.mkdir_all("usr/bin", 0o755));
        ok("busybox", h.write_file("usr/bin/busybox", b"elf", 0o755));
        ok("relative", h.symlink("busybox", "usr/bin/sh"));
        ok("absolute", h.symlink("/usr/bin/busybox", "usr/bin/ash"));
        ok("dir link", h.symlink("usr/bin", "bin"));
        ok("absolute dir link", h.symlink("/usr/bin", "sbin"));
        ok("chain", h.symlink("/sbin/ash", "chain"));
        for path in ["usr/bin/sh", "usr/bin/ash", "bin/busybox", "sbin/sh", "bin/ash", "chain"] {
            assert_eq!(ok(path, h.read_file(path)), b"elf", "{path}");
        }
        ok("dangling", h.symlink("/usr/bin/none", "usr/bin/none-link"));
        not_found("read a dangling link", h.read_file("usr/bin/none-link"));
        ok("loop a", h.symlink("b", "loop-a"));
        ok("loop b", h.symlink("loop-a", "b"));
        host_error("read a symlink loop", h.read_file("loop-a"));
        host_error("read a directory", h.read_file("usr/bin"));
        host_error("read a link to a directory", h.read_file("bin"));
    });
}

fn dirs_through_symlinks(s: &mut dyn Subject) {
    with(s, |h| {
        ok("mkdir", h.mkdir_all("usr/lib", 0o755));
        ok("dir link", h.symlink("usr/lib", "lib"));
        ok("mkdir through it", h.mkdir_all("lib/x/y", 0o700));
        assert_eq!(ok("made at the target", h.file_kind("usr/lib/x/y")), Some(FileKind::Dir));
        assert_eq!(ok("the link stays", h.file_kind("lib")), Some(FileKind::Symlink));
        ok("mkdir of the link itself", h.mkdir_all("lib", 0o755));
        assert_eq!(ok("still a link", h.file_kind("lib")), Some(FileKind::Symlink));
        ok("write through it", h.write_file("lib/x/f", b"f", 0o644));
        assert_eq!(ok("read at the target", h.read_file("usr/lib/x/f")), b"f");
        ok("absolute dir link", h.symlink("/usr/lib/x", "usr/lib64"));
        ok("write through it", h.write_file("usr/lib64/g", b"g", 0o644));
        assert_eq!(ok("read at the target", h.read_file("usr/lib/x/g")), b"g");
        // A dangling link on the way is an error: never a directory made elsewhere.
        ok("dangling", h.symlink("/nowhere", "opt"));
        host_error("mkdir through a dangling link", h.mkdir_all("opt/sub", 0o755));
        host_error("mkdir of a dangling link", h.mkdir_all("opt", 0o755));
        assert_eq!(ok("nothing made", h.file_kind("nowhere")), None);
        assert_eq!(ok("the link stays", h.file_kind("opt")), Some(FileKind::Symlink));
        ok("a file", h.write_file("file", b"", 0o644));
        host_error("mkdir of a file", h.mkdir_all("file", 0o755));
        ok("link to a file", h.symlink("file", "filelink"));
        host_error("mkdir through a link to a file", h.mkdir_all("filelink/x", 0o755));
    });
    assert_eq!(s.mode("usr/lib/x"), Some(0o700));
    assert_eq!(s.mode("usr/lib"), Some(0o755), "an existing directory is left alone");
}

fn absolute_symlink_out_stays_inside(s: &mut dyn Subject) {
    let outside = s.outside();
    with(s, |h| {
        // `etc -> <outside>` means <root>/<outside>, which does not exist.
        ok("link out", h.symlink(&outside, "etc"));
        not_found("write through it", h.write_file("etc/victim", b"pwned\n", 0o644));
        not_found("write a new file through it", h.write_file("etc/new", b"pwned\n", 0o644));
        not_found("append through it", h.append_file("etc/victim", b"pwned\n"));
        not_found("chmod through it", h.set_mode("etc/victim", 0o777));
        not_found("chown through it", h.set_owner("etc/victim", 0, 0));
        not_found("read through it", h.read_file("etc/victim"));
        not_found("symlink through it", h.symlink("x", "etc/new"));
        not_found("list through it", h.read_dir("etc"));
        not_found("copy through it", h.copy_from_host(&format!("{outside}/victim"), "etc/new", 0o644));
        ok("remove through it", h.remove("etc/victim"));
        assert_eq!(ok("kind through it", h.file_kind("etc/victim")), None);
        host_error("mkdir through it", h.mkdir_all("etc/sub", 0o755));
        // Once the target exists inside the root, the link leads there.
        ok("make the target inside", h.mkdir_all(&outside, 0o755));
        ok("write through it", h.write_file("etc/victim", b"inside\n", 0o644));
        assert_eq!(ok("read inside", h.read_file(&format!("{outside}/victim"))), b"inside\n");
        ok("link to the host file", h.symlink(&format!("{outside}/link"), "hostlink"));
        not_found("the host's link is not inside", h.read_file("hostlink"));
    });
}

fn dotdot_stays_inside(s: &mut dyn Subject) {
    with(s, |h| {
        ok("mkdir", h.mkdir_all("etc", 0o755));
        ok("write above the root", h.write_file("../../../etc/a", b"a", 0o644));
        assert_eq!(ok("lands inside", h.read_file("etc/a")), b"a");
        ok("mkdir above the root", h.mkdir_all("../../x/y", 0o755));
        assert_eq!(ok("lands inside", h.file_kind("x/y")), Some(FileKind::Dir));
        ok("link climbing out", h.symlink("../../../../../../..", "etc/up"));
        ok("write through it", h.write_file("etc/up/b", b"b", 0o644));
        assert_eq!(ok("lands at the root", h.read_file("b")), b"b");
        assert_eq!(ok("the root", h.file_kind("..")), Some(FileKind::Dir));
        assert_eq!(ok("dots inside", h.read_file("etc/../etc/./a")), b"a");
        host_error("dotdot below a file", h.read_file("etc/a/../a"));
    });
}

fn owners(s: &mut dyn Subject) {
    let ids = s.chown_ids();
    with(s, |h| {
        ok("file", h.write_file("f", b"1", 0o644));
        ok("other", h.write_file("g", b"1", 0o644));
        ok("dir", h.mkdir_all("d", 0o755));
    });
    let default = s.owner("f").expect("f exists");
    assert_eq!(s.owner("d"), Some(default));
    with(s, |h| {
        ok("chown", h.set_owner("f", ids.0, ids.1));
        ok("chown dir", h.set_owner("d", ids.0, ids.1));
        ok("rewrite", h.write_file("f", b"2", 0o4755));
        ok("link", h.symlink("g", "l"));
        ok("chown the link", h.set_owner("l", ids.0, ids.1));
    });
    assert_eq!(s.owner("f"), Some(ids), "a rewrite keeps the owner");
    assert_eq!(s.mode("f"), Some(0o4755), "and the mode is set after the owner (chown clears set-id bits)");
    assert_eq!(s.owner("d"), Some(ids));
    assert_eq!(s.owner("l"), Some(ids), "lchown: the link itself");
    assert_eq!(s.owner("g"), Some(default), "not the link's target");
    with(s, |h| {
        ok("write over the link", h.write_file("l", b"3", 0o644));
        ok("symlink over the file", h.symlink("g", "f"));
    });
    assert_eq!(s.owner("l"), Some(default), "a file replacing a link is a new file");
    assert_eq!(s.owner("f"), Some(default), "a link replacing a file is a new link");
}

fn file_kinds(s: &mut dyn Subject) {
    with(s, |h| {
        ok("mkdir", h.mkdir_all("usr/lib", 0o755));
        ok("file", h.write_file("usr/lib/f", b"", 0o644));
        ok("dir link", h.symlink("usr/lib", "lib"));
        ok("dangling", h.symlink("/nowhere", "dangling"));
        for (path, kind) in [
            ("", Some(FileKind::Dir)),
            ("/", Some(FileKind::Dir)),
            ("usr", Some(FileKind::Dir)),
            ("usr/lib/f", Some(FileKind::File)),
            ("lib", Some(FileKind::Symlink)),
            ("dangling", Some(FileKind::Symlink)),
            ("lib/f", Some(FileKind::File)),
            ("missing", None),
            ("missing/below", None),
            ("usr/lib/f/below", None),
        ] {
            assert_eq!(ok(path, h.file_kind(path)), kind, "{path}");
        }
    });
}

fn remove(s: &mut dyn Subject) {
    let outside = s.outside();
    with(s, |h| {
        ok("mkdir", h.mkdir_all("usr/lib/sub", 0o755));
        ok("file", h.write_file("usr/lib/f", b"f", 0o644));
        ok("dir link", h.symlink("usr/lib", "lib"));
        ok("remove the link", h.remove("lib"));
        assert_eq!(ok("link gone", h.file_kind("lib")), None);
        assert_eq!(ok("target kept", h.read_file("usr/lib/f")), b"f");
        // Through a symlinked parent: the entry at the target goes.
        ok("dir link again", h.symlink("/usr/lib", "lib"));
        ok("remove through it", h.remove("lib/f"));
        assert_eq!(ok("gone at the target", h.file_kind("usr/lib/f")), None);
        // A tree holding links to a directory inside and to one outside.
        ok("tree", h.mkdir_all("var/lib", 0o755));
        ok("link in the tree", h.symlink("/usr", "var/lib/usr"));
        ok("link out of the tree", h.symlink(&outside, "var/lib/out"));
        ok("remove the tree", h.remove("/var/"));
        assert_eq!(ok("tree gone", h.file_kind("var")), None);
        assert_eq!(ok("link target kept", h.file_kind("usr/lib/sub")), Some(FileKind::Dir));
        ok("missing", h.remove("missing"));
        ok("missing parent", h.remove("missing/also-missing"));
        host_error("the root", h.remove("/"));
        host_error("the root as dots", h.remove("./."));
        host_error("the root as nothing", h.remove(""));
    });
}

fn hard_links(s: &mut dyn Subject) {
    with(s, |h| {
        ok("mkdir", h.mkdir_all("bin", 0o755));
        ok("busybox", h.write_file("bin/busybox", b"elf", 0o755));
        ok("link", h.hard_link("bin/busybox", "bin/cat"));
        assert_eq!(ok("read", h.read_file("bin/cat")), b"elf");
        ok("file in the way", h.write_file("bin/ls", b"old", 0o644));
        ok("replaces it", h.hard_link("/bin/busybox", "bin/ls"));
        assert_eq!(ok("read", h.read_file("bin/ls")), b"elf");
        ok("again", h.hard_link("bin/busybox", "bin/cat"));
        ok("symlink", h.symlink("busybox", "bin/sh"));
        ok("link the symlink", h.hard_link("bin/sh", "bin/ash"));
        assert_eq!(ok("a link to the link", h.file_kind("bin/ash")), Some(FileKind::Symlink));
        host_error("a directory", h.hard_link("bin", "bin2"));
        host_error("onto a directory", h.hard_link("bin/busybox", "bin"));
        not_found("a missing file", h.hard_link("bin/none", "bin/x"));
        let names: Vec<String> = ok("list", h.read_dir("bin")).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["ash", "busybox", "cat", "ls", "sh"], "no temporary names left");
    });
    assert_eq!(s.mode("bin/cat"), Some(0o755));
}

fn append(s: &mut dyn Subject) {
    with(s, |h| {
        ok("creates", h.append_file("log", b"a\n"));
        ok("appends", h.append_file("/log", b"b\n"));
        assert_eq!(ok("read", h.read_file("log")), b"a\nb\n");
        ok("link", h.symlink("log", "loglink"));
        host_error("through a symlink", h.append_file("loglink", b"c\n"));
        ok("dir", h.mkdir_all("d", 0o755));
        host_error("to a directory", h.append_file("d", b"c\n"));
        assert_eq!(ok("unchanged", h.read_file("log")), b"a\nb\n");
    });
    assert_eq!(s.mode("log"), Some(0o644));
}

fn read_dir(s: &mut dyn Subject) {
    with(s, |h| {
        ok("mkdir", h.mkdir_all("etc/default", 0o755));
        ok("file", h.write_file("etc/hostname", b"", 0o644));
        ok("dot file", h.write_file("etc/.pwd.lock", b"", 0o600));
        ok("link", h.symlink("/nowhere", "etc/mtab"));
        ok("dir link", h.symlink("etc", "etc2"));
        let etc = vec![
            (".pwd.lock".to_owned(), FileKind::File),
            ("default".to_owned(), FileKind::Dir),
            ("hostname".to_owned(), FileKind::File),
            ("mtab".to_owned(), FileKind::Symlink),
        ];
        assert_eq!(ok("list", h.read_dir("etc")), etc);
        assert_eq!(ok("list through a link", h.read_dir("/etc2/")), etc);
        assert_eq!(ok("list an empty dir", h.read_dir("etc/default")), []);
        let root = vec![("etc".to_owned(), FileKind::Dir), ("etc2".to_owned(), FileKind::Symlink)];
        assert_eq!(ok("list the root", h.read_dir("")), root);
        assert_eq!(ok("list the root", h.read_dir("/")), root);
        not_found("a missing dir", h.read_dir("usr"));
        not_found("a dangling link", h.read_dir("etc/mtab"));
        host_error("a file", h.read_dir("etc/hostname"));
    });
}

fn host_links_and_paths(s: &mut dyn Subject) {
    let outside = s.outside();
    with(s, |h| {
        assert_eq!(ok("a link", h.read_host_link(&format!("{outside}/link"))).as_deref(), Some("victim"));
        assert_eq!(ok("a dir link", h.read_host_link(&format!("{outside}/dirlink"))).as_deref(), Some("dir"));
        assert_eq!(ok("a file", h.read_host_link(&format!("{outside}/victim"))), None);
        assert_eq!(ok("a dir", h.read_host_link(&format!("{outside}/dir"))), None);
        assert_eq!(ok("missing", h.read_host_link(&format!("{outside}/missing"))), None);
        host_error("a relative path", h.read_host_link("etc/localtime"));

        let base = ok("the dir", h.canonicalize_host_path(&outside));
        assert!(base.starts_with('/'), "{base}");
        let victim = format!("{base}/victim");
        assert_eq!(ok("a link", h.canonicalize_host_path(&format!("{outside}/link"))), victim);
        assert_eq!(ok("a file", h.canonicalize_host_path(&format!("{outside}/victim"))), victim);
        assert_eq!(ok("dots", h.canonicalize_host_path(&format!("{outside}/dir/../link"))), victim);
        assert_eq!(ok("a dir link", h.canonicalize_host_path(&format!("{outside}/dirlink"))), format!("{base}/dir"));
        not_found("missing", h.canonicalize_host_path(&format!("{outside}/missing")));
        not_found("below a missing dir", h.canonicalize_host_path(&format!("{outside}/missing/x")));
        host_error("a relative path", h.canonicalize_host_path("usr"));

        // The host-side reads follow the same links.
        assert_eq!(ok("read through a link", h.read_host_file(&format!("{outside}/link"))), b"host\n");
        assert_eq!(ok("kind through a link", h.host_file_kind(&format!("{outside}/dirlink"))), Some(FileKind::Dir));
        not_found("read a missing host file", h.read_host_file(&format!("{outside}/missing")));
    });
}

fn scratch_dirs(s: &mut dyn Subject) {
    with(s, |h| {
        let a = ok("scratch", h.scratch_dir());
        let b = ok("scratch", h.scratch_dir());
        assert_ne!(a, b, "every call makes a new one");
        for dir in [&a, &b] {
            assert!(dir.starts_with('/'), "{dir}");
            assert_eq!(ok("kind", h.host_file_kind(dir)), Some(FileKind::Dir), "{dir}");
            assert_eq!(ok("not a link", h.read_host_link(dir)), None, "{dir}");
        }
    });
}

fn copy_from_host(s: &mut dyn Subject) {
    let outside = s.outside();
    with(s, |h| {
        ok("mkdir", h.mkdir_all("etc", 0o755));
        ok("copy", h.copy_from_host(&format!("{outside}/victim"), "etc/copy", 0o600));
        assert_eq!(ok("read", h.read_file("etc/copy")), b"host\n");
        ok("copy through a host link", h.copy_from_host(&format!("{outside}/link"), "etc/copy2", 0o644));
        ok("link", h.symlink(&format!("{outside}/victim"), "etc/link"));
        ok("copy over a link", h.copy_from_host(&format!("{outside}/victim"), "etc/link", 0o640));
        assert_eq!(ok("a file now", h.file_kind("etc/link")), Some(FileKind::File));
        not_found("a missing source", h.copy_from_host(&format!("{outside}/missing"), "etc/x", 0o644));
        assert_eq!(ok("nothing made", h.file_kind("etc/x")), None);
        not_found("a missing parent", h.copy_from_host(&format!("{outside}/victim"), "nope/x", 0o644));
        host_error("onto a directory", h.copy_from_host(&format!("{outside}/victim"), "etc", 0o644));
    });
    assert_eq!(s.mode("etc/copy"), Some(0o600));
    assert_eq!(s.mode("etc/link"), Some(0o640));
}

fn errors(s: &mut dyn Subject) {
    with(s, |h| {
        ok("mkdir", h.mkdir_all("etc", 0o755));
        host_error("write onto a directory", h.write_file("etc", b"x", 0o644));
        host_error("write the root", h.write_file("/", b"x", 0o644));
        host_error("write a dot", h.write_file("etc/.", b"x", 0o644));
        host_error("write a dotdot", h.write_file("etc/..", b"x", 0o644));
        host_error("read the root", h.read_file(""));
        ok("link", h.symlink("etc", "l"));
        host_error("chmod a symlink", h.set_mode("l", 0o755));
    });
}

/// [`FakeHost`] as a [`Subject`]: sealed (no real host files), with the
/// outside directory in its host maps.
#[derive(Debug)]
pub struct FakeSubject {
    /// The fake host.
    pub fake: FakeHost,
}

/// Where [`FakeSubject`] puts the directory outside the root.
const FAKE_OUTSIDE: &str = "/srv/outside";

impl FakeSubject {
    /// A sealed fake host with the outside directory.
    pub fn new() -> Self {
        let mut fake = FakeHost::sealed();
        fake.put_host_dir(FAKE_OUTSIDE);
        fake.put_host(&format!("{FAKE_OUTSIDE}/victim"), "host\n");
        fake.put_host_link(&format!("{FAKE_OUTSIDE}/link"), "victim");
        fake.put_host_dir(&format!("{FAKE_OUTSIDE}/dir"));
        fake.put_host_link(&format!("{FAKE_OUTSIDE}/dirlink"), "dir");
        Self { fake }
    }
}

impl Default for FakeSubject {
    fn default() -> Self {
        Self::new()
    }
}

impl Subject for FakeSubject {
    fn with_host(&mut self, f: &mut dyn FnMut(&mut Host<'_>)) {
        with_host(&mut self.fake, |h| f(h));
    }

    fn mode(&mut self, path: &str) -> Option<u32> {
        let at = self.fake.fs().resolve(path, false).ok()?;
        match self.fake.rootfs.get(&at)? {
            Node::File { mode, .. } | Node::Dir { mode } => Some(*mode),
            // Linux symlinks have mode 0777.
            Node::Symlink { .. } => Some(0o777),
        }
    }

    fn owner(&mut self, path: &str) -> Option<(u32, u32)> {
        let at = self.fake.fs().resolve(path, false).ok()?;
        self.fake.rootfs.contains_key(&at).then(|| self.fake.owners.get(&at).copied().unwrap_or((0, 0)))
    }

    fn chown_ids(&self) -> (u32, u32) {
        (100_000, 100_005)
    }

    fn outside(&self) -> String {
        FAKE_OUTSIDE.to_owned()
    }

    fn outside_state(&mut self) -> (Vec<String>, String) {
        let below = format!("{FAKE_OUTSIDE}/");
        let mut names: Vec<String> = (self.fake.host_files.keys())
            .chain(self.fake.host_dirs.iter())
            .chain(self.fake.host_links.keys())
            .filter_map(|p| p.strip_prefix(&below))
            .filter(|name| !name.contains('/'))
            .map(str::to_owned)
            .collect();
        names.sort();
        let victim = String::from_utf8_lossy(&self.fake.host_files[&format!("{below}victim")]).into_owned();
        (names, victim)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fake_host_conforms() {
        super::run(|| Box::new(super::FakeSubject::new()));
    }
}
