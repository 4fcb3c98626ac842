//! Whether a file may be loaded as code, judged the way sshd and sudo judge
//! the files they trust.
//!
//! lxc-tmpl usually runs as root, and a plugin is code it runs: whoever can
//! replace a plugin file, or any directory on the way to it, can run code as
//! root. So a file is loaded only when
//!
//! - it is a regular file,
//! - it and every directory above it, up to `/`, are owned by root or by the
//!   running user (the euid), and
//! - none of them is writable by group or others.
//!
//! **Inside a user namespace** (the template of an unprivileged lxc-create)
//! owners are shown as that namespace maps them: the host's root is the id
//! lxc-create maps it to (65536 with LXC's usual `lxc.idmap`, see
//! `user_namespaces(7)` and `/proc/self/uid_map`), and it is that id that is
//! trusted as root. When the host's root is not mapped at all, its files show
//! as the overflow uid, like any other unmapped owner, and are refused.
//!
//! These are the rules of sshd's `StrictModes` (`safe_path()` in OpenSSH's
//! `misc.c`, which walks from the file up to `/` checking owner and group/other
//! write bits) and of sudo's checks on its sudoers file and plugins
//! (`sudo_secure_path()`: owner root, not writable by group or others). The
//! running user is trusted as well as root because it could run any code it
//! likes anyway; no other user is.
//!
//! **Sticky directories.** A directory writable by others but with the sticky
//! bit (`/tmp`, mode 1777) is accepted when it is owned by a trusted user: in
//! such a directory the kernel lets only the owner of an entry, the owner of
//! the directory and root rename or unlink the entry (`sticky(7)`, "restricted
//! deletion flag" in `chmod(1)`), and the entry below it must itself be owned
//! by a trusted user, so nobody else can swap it. Others can add new names
//! there, but not take over the one we load. sshd's `safe_path()` does not
//! make this exception; without it no plugin below `/tmp` could ever load.
//!
//! **The file actually loaded.** Symlinks are resolved first and the rules are
//! applied to the target and every directory above it (a symlink from a
//! trusted directory to a file in a user's home would otherwise load that
//! user's file), and also to the directories holding the name as given (an
//! untrusted directory could swap the link for another one). The walk itself
//! holds a descriptor per step: each component is opened with
//! `openat(parent, name, O_PATH | O_NOFOLLOW | O_CLOEXEC)` and judged by
//! `fstat` of that descriptor, so a symlink swapped in after the paths were
//! resolved is refused instead of followed, and the descriptor of the file,
//! not its path, is what the caller loads (`dlopen` of `/proc/self/fd/N`).
//! `O_PATH` opens no device or FIFO and needs no read permission to judge.

use std::{
    fmt,
    fs::File,
    os::{fd::OwnedFd, unix::fs::MetadataExt},
    path::{Component, Path, PathBuf},
};

use nix::{
    fcntl::{OFlag, open, openat},
    sys::stat::Mode,
    unistd::{Uid, User},
};

use super::LoadError;

/// A file that passed the rules, open by descriptor.
#[derive(Debug)]
pub struct TrustedFile {
    /// An `O_PATH` descriptor of the file that was judged; load through this.
    pub fd: OwnedFd,
    /// The file with every symlink resolved.
    pub target: PathBuf,
}

/// The owner of a refused path, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Its uid.
    pub uid: u32,
    /// Its user name, when the uid has one on this host.
    pub name: Option<String>,
}

impl Owner {
    fn of(uid: u32) -> Owner {
        let name = User::from_uid(Uid::from_raw(uid)).ok().flatten().map(|u| u.name);
        Owner { uid, name }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "uid {} ({name})", self.uid),
            None => write!(f, "uid {}", self.uid),
        }
    }
}

/// Who may own a file lxc-tmpl loads, in the ids of this process's user namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trusted {
    /// The host's root as seen here: 0 outside a user namespace; inside one,
    /// the id that maps to host uid 0; `None` when it is not mapped.
    pub root: Option<u32>,
    /// The running user.
    pub euid: u32,
}

impl Trusted {
    /// The host's root and the running user, as this process sees them.
    pub fn here() -> Trusted {
        let uid_map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
        Trusted { root: host_root_in(&uid_map), euid: nix::unistd::geteuid().as_raw() }
    }

    fn owns(self, uid: u32) -> bool {
        self.root == Some(uid) || self.euid == uid
    }
}

impl fmt::Display for Trusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.root {
            Some(0) if self.euid == 0 => write!(f, "root"),
            Some(0) => write!(f, "root or uid {}", self.euid),
            Some(root) => write!(f, "the host's root (uid {root} in this user namespace) or uid {}", self.euid),
            None => write!(f, "uid {} (the host's root is not mapped in this user namespace)", self.euid),
        }
    }
}

/// The id that host uid 0 has in a user namespace whose `/proc/PID/uid_map`
/// is `uid_map` (lines `inside outside count`, `user_namespaces(7)`).
fn host_root_in(uid_map: &str) -> Option<u32> {
    uid_map.lines().find_map(|line| {
        let fields: Vec<u64> = line.split_whitespace().filter_map(|f| f.parse().ok()).collect();
        let [inside, outside, count] = fields[..] else { return None };
        (outside == 0 && count > 0).then(|| u32::try_from(inside).ok()).flatten()
    })
}

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Owned by someone other than the host's root and the running user.
    NotOwned {
        /// Who would have been trusted.
        trusted: Trusted,
    },
    /// Writable by group or others (`who` says which), without the sticky exception.
    Writable {
        /// "group", "others" or "group and others".
        who: &'static str,
    },
    /// Both of the above.
    NotOwnedAndWritable {
        /// Who would have been trusted.
        trusted: Trusted,
        /// "group", "others" or "group and others".
        who: &'static str,
    },
    /// The file to load is a directory, device, FIFO, socket or (swapped in
    /// during the walk) a symlink.
    NotRegular,
}

impl Problem {
    /// The command that fixes it, for `path`.
    pub fn fix(&self, path: &Path) -> String {
        let path = path.display();
        match self {
            Problem::NotOwned { .. } => format!("chown root:root {path}"),
            Problem::Writable { .. } => format!("chmod go-w {path}"),
            Problem::NotOwnedAndWritable { .. } => format!("chown root:root {path} && chmod go-w {path}"),
            Problem::NotRegular => format!("remove {path} or put the plugin library itself there"),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NotOwned { trusted } => write!(f, "not owned by {trusted}"),
            Problem::Writable { who } => write!(f, "writable by {who}"),
            Problem::NotOwnedAndWritable { trusted, who } => write!(f, "not owned by {trusted} and writable by {who}"),
            Problem::NotRegular => write!(f, "not a regular file"),
        }
    }
}

/// Why a file was not loaded: the first path on the way to it that may not
/// be trusted. Shown as one line naming the file (and its target, for a
/// symlink), the refused path, its owner and mode, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The file, as found in its plugin directory.
    pub file: PathBuf,
    /// What `file` resolves to, when that is another path (a symlink).
    pub target: Option<PathBuf>,
    /// The refused path: the target or a directory above it or above `file`.
    pub path: PathBuf,
    /// Who owns `path`.
    pub owner: Owner,
    /// Its permission bits.
    pub mode: u32,
    /// What is wrong with it.
    pub problem: Problem,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(target) = &self.target {
            write!(f, " -> {}", target.display())?;
        }
        write!(
            f,
            ": refusing to load: {} is {} (owner {}, mode {:04o}); fix: {}",
            self.path.display(),
            self.problem,
            self.owner,
            self.mode,
            self.problem.fix(&self.path)
        )
    }
}

/// What a walk step must find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Directory,
    RegularFile,
}

/// Judges one path's owner `uid` and `st_mode` for a process that trusts
/// `trusted`; `None` when it may be trusted.
fn judge(uid: u32, mode: u32, expect: Expect, trusted: Trusted) -> Option<Problem> {
    const S_IFMT: u32 = 0o170_000;
    const S_IFREG: u32 = 0o100_000;
    const S_ISVTX: u32 = 0o1000;
    if expect == Expect::RegularFile && mode & S_IFMT != S_IFREG {
        return Some(Problem::NotRegular);
    }
    let owned = trusted.owns(uid);
    // The sticky exception (module docs): only for a directory owned by a
    // trusted user; the entry below is judged by the next step of the walk.
    let sticky_ok = expect == Expect::Directory && mode & S_ISVTX != 0 && owned;
    let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
        _ if sticky_ok => None,
        (true, true) => Some("group and others"),
        (true, false) => Some("group"),
        (false, true) => Some("others"),
        (false, false) => None,
    };
    match (owned, who) {
        (true, None) => None,
        (false, None) => Some(Problem::NotOwned { trusted }),
        (true, Some(who)) => Some(Problem::Writable { who }),
        (false, Some(who)) => Some(Problem::NotOwnedAndWritable { trusted, who }),
    }
}

/// Opens `file` for loading if it may be trusted by this process (module
/// docs); a [`Refusal`] names the first path that may not.
pub fn open_trusted(file: &Path) -> Result<TrustedFile, LoadError> {
    open_trusted_as(file, Trusted::here())
}

/// [`open_trusted`] for a process that trusts `trusted`.
fn open_trusted_as(file: &Path, trusted: Trusted) -> Result<TrustedFile, LoadError> {
    let io_error = |path: &Path, e: &dyn fmt::Display| LoadError::Open {
        file: file.to_owned(),
        detail: if path == file { e.to_string() } else { format!("{}: {e}", path.display()) },
    };
    let target = std::fs::canonicalize(file).map_err(|e| io_error(file, &e))?;
    let refuse = |path: PathBuf, uid: u32, mode: u32, problem: Problem| {
        LoadError::Untrusted(Box::new(Refusal {
            file: file.to_owned(),
            target: (target != file).then(|| target.clone()),
            path,
            owner: Owner::of(uid),
            mode: mode & 0o7777,
            problem,
        }))
    };
    // The directories holding the name as given, when they are not those of
    // the target: whoever can write there can swap the symlink.
    let given_dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let given_dir = std::fs::canonicalize(given_dir).map_err(|e| io_error(given_dir, &e))?;
    if Some(given_dir.as_path()) != target.parent() {
        walk(&given_dir, Expect::Directory, trusted, &io_error, &refuse)?;
    }
    let fd = walk(&target, Expect::RegularFile, trusted, &io_error, &refuse)?;
    Ok(TrustedFile { fd, target })
}

/// Checks a plugin directory by the same rules (module docs), for `lxc-tmpl
/// doctor`: `dir` after symlinks and every directory above it, and the
/// directories holding the name as given. A directory that fails would
/// have every plugin in it refused.
///
/// # Errors
/// [`LoadError::Untrusted`] naming the first path at fault (its `file` is
/// `dir`), or [`LoadError::Open`] when a path on the way cannot be opened.
pub fn check_dir(dir: &Path) -> Result<(), LoadError> {
    check_dir_as(dir, Trusted::here())
}

/// [`check_dir`] for a process that trusts `trusted`.
fn check_dir_as(dir: &Path, trusted: Trusted) -> Result<(), LoadError> {
    let io_error = |path: &Path, e: &dyn fmt::Display| LoadError::Open {
        file: dir.to_owned(),
        detail: if path == dir { e.to_string() } else { format!("{}: {e}", path.display()) },
    };
    let target = std::fs::canonicalize(dir).map_err(|e| io_error(dir, &e))?;
    let refuse = |path: PathBuf, uid: u32, mode: u32, problem: Problem| {
        LoadError::Untrusted(Box::new(Refusal {
            file: dir.to_owned(),
            target: (target != dir).then(|| target.clone()),
            path,
            owner: Owner::of(uid),
            mode: mode & 0o7777,
            problem,
        }))
    };
    // As for a file: the directories holding a symlinked name can swap it.
    if let Some(given_dir) = dir.parent().filter(|p| !p.as_os_str().is_empty())
        && target != dir
    {
        let given_dir = std::fs::canonicalize(given_dir).map_err(|e| io_error(given_dir, &e))?;
        walk(&given_dir, Expect::Directory, trusted, &io_error, &refuse)?;
    }
    walk(&target, Expect::Directory, trusted, &io_error, &refuse).map(drop)
}

/// Opens the canonical `path` one component at a time from `/`, judging each
/// by its descriptor; `expect` is what the last component must be.
fn walk(
    path: &Path,
    expect: Expect,
    trusted: Trusted,
    io_error: &dyn Fn(&Path, &dyn fmt::Display) -> LoadError,
    refuse: &dyn Fn(PathBuf, u32, u32, Problem) -> LoadError,
) -> Result<OwnedFd, LoadError> {
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let root = Path::new("/");
    let mut here = root.to_path_buf();
    let mut fd = open(root, flags | OFlag::O_DIRECTORY, Mode::empty()).map_err(|e| io_error(root, &e))?;
    let components: Vec<Component<'_>> = path.components().collect();
    for (i, component) in components.iter().enumerate() {
        let last = i + 1 == components.len();
        let step = if last { expect } else { Expect::Directory };
        if let Component::Normal(name) = component {
            here.push(name);
            let dir_flag = if step == Expect::Directory { OFlag::O_DIRECTORY } else { OFlag::empty() };
            fd = openat(&fd, *name, flags | dir_flag, Mode::empty()).map_err(|e| io_error(&here, &e))?;
        } else if *component != Component::RootDir {
            // canonicalize() returns an absolute path without `.` or `..`.
            return Err(io_error(&here, &"not a canonical path"));
        }
        let meta =
            File::from(fd.try_clone().map_err(|e| io_error(&here, &e))?).metadata().map_err(|e| io_error(&here, &e))?;
        if let Some(problem) = judge(meta.uid(), meta.mode(), step, trusted) {
            return Err(refuse(here, meta.uid(), meta.mode(), problem));
        }
    }
    Ok(fd)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures are built with std::fs on purpose
mod tests {
    use std::os::unix::fs::{PermissionsExt, chown, symlink};

    use super::*;

    /// A uid with no business owning plugins.
    const USER: u32 = 1000;
    /// Root outside any user namespace.
    const ROOT: Trusted = Trusted { root: Some(0), euid: 0 };
    /// An ordinary user outside any user namespace.
    const AS_USER: Trusted = Trusted { root: Some(0), euid: USER };

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn make_dir(path: PathBuf, mode: u32) -> PathBuf {
        std::fs::create_dir(&path).unwrap();
        set_mode(&path, mode);
        path
    }

    /// `<tmp>/plugins/libp.so`, root-owned, 0755 and 0644: trusted.
    fn plugin_tree() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        set_mode(tmp.path(), 0o755);
        let dir = make_dir(tmp.path().join("plugins"), 0o755);
        let file = dir.join("libp.so");
        std::fs::write(&file, "library").unwrap();
        set_mode(&file, 0o644);
        (tmp, file)
    }

    fn refusal(file: &Path, trusted: Trusted) -> (PathBuf, Problem, String) {
        match open_trusted_as(file, trusted) {
            Err(LoadError::Untrusted(refusal)) => {
                let text = LoadError::Untrusted(refusal.clone()).to_string();
                (refusal.path, refusal.problem, text)
            }
            Err(other) => panic!("{}: not a trust refusal: {other}", file.display()),
            Ok(_) => panic!("{} was trusted", file.display()),
        }
    }

    #[test]
    fn trust_root_owned_tree_below_sticky_tmp_is_trusted() {
        let (_tmp, file) = plugin_tree();
        let trusted = open_trusted_as(&file, ROOT).unwrap();
        assert_eq!(trusted.target, file.canonicalize().unwrap());
        // The descriptor is the file: its /proc link names it.
        let link = std::fs::read_link(crate::sys::proc_fd_path(&trusted.fd)).unwrap();
        assert_eq!(link, trusted.target);
    }

    #[test]
    fn trust_file_of_another_user_is_refused_unless_it_is_the_running_user() {
        let (_tmp, file) = plugin_tree();
        chown(&file, Some(USER), None).unwrap();
        let (path, problem, text) = refusal(&file, ROOT);
        assert_eq!((path.as_path(), problem), (file.as_path(), Problem::NotOwned { trusted: ROOT }));
        assert!(text.contains("uid 1000") && text.contains("mode 0644"), "{text}");
        assert!(text.contains(&format!("chown root:root {}", file.display())), "{text}");
        assert!(open_trusted_as(&file, AS_USER).is_ok(), "the running user's own file");
    }

    #[test]
    fn trust_directory_of_another_user_is_refused() {
        let (_tmp, file) = plugin_tree();
        let dir = file.parent().unwrap();
        chown(dir, Some(USER), None).unwrap();
        let (path, problem, _) = refusal(&file, ROOT);
        assert_eq!((path.as_path(), problem), (dir, Problem::NotOwned { trusted: ROOT }));
    }

    #[test]
    fn trust_writable_grandparent_is_refused_with_chmod_fix() {
        let (tmp, file) = plugin_tree();
        set_mode(tmp.path(), 0o775);
        let (path, problem, text) = refusal(&file, ROOT);
        assert_eq!((path.as_path(), problem), (tmp.path(), Problem::Writable { who: "group" }));
        assert!(text.contains("mode 0775") && text.contains(&format!("chmod go-w {}", tmp.path().display())), "{text}");
    }

    #[test]
    fn trust_writable_file_names_both_fixes_when_also_foreign() {
        let (_tmp, file) = plugin_tree();
        chown(&file, Some(USER), None).unwrap();
        set_mode(&file, 0o666);
        let (_, problem, text) = refusal(&file, ROOT);
        assert_eq!(problem, Problem::NotOwnedAndWritable { trusted: ROOT, who: "group and others" });
        assert!(text.contains("chown root:root") && text.contains("chmod go-w"), "{text}");
    }

    #[test]
    fn trust_sticky_directory_needs_a_trusted_owner() {
        let (tmp, file) = plugin_tree();
        set_mode(tmp.path(), 0o1777);
        assert!(open_trusted_as(&file, ROOT).is_ok(), "a root-owned sticky dir is like /tmp");
        chown(tmp.path(), Some(USER), None).unwrap();
        let (path, _, _) = refusal(&file, ROOT);
        assert_eq!(path, tmp.path(), "a user's sticky dir: that user can swap the entry");
        // And without the sticky bit anyone can swap the entry.
        chown(tmp.path(), Some(0), None).unwrap();
        set_mode(tmp.path(), 0o777);
        assert_eq!(refusal(&file, ROOT).1, Problem::Writable { who: "group and others" });
    }

    #[test]
    fn trust_symlink_is_judged_by_its_target_and_named_in_the_refusal() {
        let (tmp, file) = plugin_tree();
        let home = make_dir(tmp.path().join("home"), 0o755);
        chown(&home, Some(USER), None).unwrap();
        let real = home.join("libreal.so");
        std::fs::write(&real, "library").unwrap();
        let link = file.with_file_name("liblink.so");
        symlink(&real, &link).unwrap();
        let (path, _, text) = refusal(&link, ROOT);
        assert_eq!(path, home);
        assert!(text.starts_with(&format!("{} -> {}:", link.display(), real.display())), "{text}");

        // A link to a trusted file loads that file, by descriptor.
        std::fs::remove_file(&link).unwrap();
        symlink(&file, &link).unwrap();
        let trusted = open_trusted_as(&link, ROOT).unwrap();
        assert_eq!(std::fs::read_link(crate::sys::proc_fd_path(&trusted.fd)).unwrap(), file.canonicalize().unwrap());
    }

    #[test]
    fn trust_link_in_an_untrusted_directory_is_refused_even_to_a_trusted_file() {
        let (tmp, file) = plugin_tree();
        let drop_dir = make_dir(tmp.path().join("drop"), 0o777);
        let link = drop_dir.join("libp.so");
        symlink(&file, &link).unwrap();
        let (path, _, _) = refusal(&link, ROOT);
        assert_eq!(path, drop_dir);
    }

    #[test]
    fn trust_plugin_dirs_are_judged_up_to_the_root() {
        let (tmp, file) = plugin_tree();
        let dir = file.parent().unwrap();
        assert!(check_dir_as(dir, ROOT).is_ok());
        set_mode(dir, 0o775);
        match check_dir_as(dir, ROOT) {
            Err(LoadError::Untrusted(refusal)) => {
                assert_eq!((refusal.path.as_path(), refusal.problem), (dir, Problem::Writable { who: "group" }))
            }
            other => panic!("a group-writable plugin dir was not refused: {other:?}"),
        }
        set_mode(dir, 0o755);
        chown(tmp.path(), Some(USER), None).unwrap();
        assert!(matches!(check_dir_as(dir, ROOT), Err(LoadError::Untrusted(r)) if r.path == tmp.path()));
    }

    #[test]
    fn trust_only_regular_files_are_loaded() {
        let (_tmp, file) = plugin_tree();
        let dir = make_dir(file.with_file_name("libdir.so"), 0o755);
        assert_eq!(refusal(&dir, ROOT).1, Problem::NotRegular);
        let fifo = file.with_file_name("libfifo.so");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o644)).unwrap();
        assert_eq!(refusal(&fifo, ROOT).1, Problem::NotRegular, "judged without blocking on open");
    }

    #[test]
    fn trust_judge_rules() {
        let dir = Expect::Directory;
        assert_eq!(judge(0, 0o040_755, dir, ROOT), None);
        assert_eq!(judge(USER, 0o040_755, dir, AS_USER), None, "the running user is trusted");
        assert_eq!(judge(0, 0o041_777, dir, AS_USER), None, "/tmp");
        assert_eq!(judge(0, 0o040_757, dir, ROOT), Some(Problem::Writable { who: "others" }));
        assert_eq!(judge(0, 0o101_777, Expect::RegularFile, ROOT), Some(Problem::Writable { who: "group and others" }));
        assert_eq!(judge(0, 0o040_755, Expect::RegularFile, ROOT), Some(Problem::NotRegular));
        // The template of an unprivileged lxc-create: host root shows as 65536.
        let userns = Trusted { root: Some(65536), euid: 0 };
        assert_eq!(judge(65536, 0o040_755, dir, userns), None, "the host's root, as the namespace maps it");
        assert_eq!(judge(65534, 0o040_755, dir, userns), Some(Problem::NotOwned { trusted: userns }), "overflow uid");
        assert!(Problem::NotOwned { trusted: userns }.to_string().contains("the host's root (uid 65536"));
    }

    #[test]
    fn trust_host_root_is_found_in_the_uid_map() {
        assert_eq!(host_root_in("         0          0 4294967295\n"), Some(0));
        // lxc-create's map for an unprivileged container created by root.
        assert_eq!(host_root_in("         0     100000      65536\n     65536          0          1\n"), Some(65536));
        assert_eq!(host_root_in("         0     100000      65536\n"), None);
        assert_eq!(host_root_in(""), None);
    }

    #[test]
    fn trust_owner_names_resolve_when_known() {
        assert_eq!(Owner::of(0).to_string(), "uid 0 (root)");
        assert_eq!(Owner { uid: 4_000_000, name: None }.to_string(), "uid 4000000");
    }
}
