//! Snapshots to compare before and after a command: directory trees, the
//! mount table, processes living in a directory.

use std::{
    collections::{BTreeSet, hash_map::DefaultHasher},
    fs,
    hash::{Hash, Hasher},
    os::unix::fs::{FileTypeExt, MetadataExt},
    path::{Path, PathBuf},
    process::Command,
};

/// Files up to this size are shown whole in a tree snapshot, larger ones by hash.
const INLINE_LIMIT: u64 = 256;

/// A text listing of the tree at `root`: one line per entry (path relative
/// to `root`, type, mode, owner, and for files size and content, for
/// symlinks the target), sorted. Symlinks are never followed. A missing
/// `root` gives `<missing>`.
///
/// Two snapshots are equal when nothing was added, removed, rewritten
/// (content or mtime), chmodded or chowned. Directory mtimes are left out:
/// creating and removing a temporary file inside is not "leaving something
/// behind".
pub fn tree(root: &Path) -> String {
    let Ok(meta) = fs::symlink_metadata(root) else {
        return "<missing>\n".to_owned();
    };
    let mut lines = Vec::new();
    walk(root, Path::new("."), &meta, &mut lines);
    lines.sort();
    lines.concat()
}

fn walk(path: &Path, relative: &Path, meta: &fs::Metadata, lines: &mut Vec<String>) {
    let kind = meta.file_type();
    let head = format!("{} mode={:o} owner={}:{}", relative.display(), meta.mode() & 0o7777, meta.uid(), meta.gid());
    if kind.is_symlink() {
        let target = fs::read_link(path).map(|t| t.display().to_string()).unwrap_or_else(|e| format!("<{e}>"));
        lines.push(format!("{head} symlink -> {target}\n"));
    } else if kind.is_dir() {
        lines.push(format!("{head} dir\n"));
        let mut children: Vec<_> = match fs::read_dir(path) {
            Ok(entries) => entries.filter_map(Result::ok).collect(),
            Err(e) => {
                lines.push(format!("{head} <cannot list: {e}>\n"));
                return;
            }
        };
        children.sort_by_key(|e| e.file_name());
        for child in children {
            if let Ok(child_meta) = child.metadata() {
                walk(&child.path(), &relative.join(child.file_name()), &child_meta, lines);
            }
        }
    } else if kind.is_file() {
        let content = match fs::read(path) {
            Ok(bytes) if meta.len() <= INLINE_LIMIT => {
                format!("{:?}", String::from_utf8_lossy(&bytes))
            }
            Ok(bytes) => {
                let mut hasher = DefaultHasher::new();
                bytes.hash(&mut hasher);
                format!("hash={:016x}", hasher.finish())
            }
            Err(e) => format!("<cannot read: {e}>"),
        };
        let mtime = format!("{}.{:09}", meta.mtime(), meta.mtime_nsec());
        lines.push(format!("{head} file size={} mtime={mtime} nlink={} {content}\n", meta.len(), meta.nlink()));
    } else {
        let what = if kind.is_block_device() || kind.is_char_device() {
            format!("device rdev={:x}", meta.rdev())
        } else {
            "special".to_owned()
        };
        lines.push(format!("{head} {what}\n"));
    }
}

/// The names directly inside `dir`, sorted; empty if it does not exist.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// This process's mount table (`/proc/self/mountinfo`), lines sorted, mount
/// and parent ids kept: compare the whole text before and after.
pub fn mountinfo() -> String {
    let text = fs::read_to_string("/proc/self/mountinfo").expect("cannot read /proc/self/mountinfo");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// Mount points (as in mountinfo's fifth field, unescaped) at or below `dir`.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").expect("cannot read /proc/self/mountinfo");
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mountinfo(p)))
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape_mountinfo(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 4).and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Lazily unmounts (`umount -l`) every mount at or below `dir`, deepest
/// first. Returns the mount points that were there.
pub fn detach_mounts_under(dir: &Path) -> Vec<PathBuf> {
    let mut mounts = mounts_under(dir);
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for mount in &mounts {
        let _ = Command::new("umount").arg("-l").arg(mount).status();
    }
    mounts
}

/// A process whose root, working directory or executable lies below a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrayProcess {
    /// Its pid.
    pub pid: u32,
    /// Its command line, NULs shown as spaces.
    pub cmdline: String,
    /// What tied it to the directory (`root=/tmp/...`).
    pub reason: String,
}

/// Processes whose root, cwd or executable is at or below `dir`.
pub fn processes_under(dir: &Path) -> Vec<StrayProcess> {
    let me = std::process::id();
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.filter_map(Result::ok) {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let proc_dir = entry.path();
        for link in ["root", "cwd", "exe"] {
            let Ok(target) = fs::read_link(proc_dir.join(link)) else {
                continue;
            };
            let target = target.to_string_lossy().trim_end_matches(" (deleted)").to_owned();
            if Path::new(&target).starts_with(dir) {
                let cmdline = fs::read(proc_dir.join("cmdline"))
                    .map(|b| String::from_utf8_lossy(&b).replace('\0', " ").trim().to_owned())
                    .unwrap_or_default();
                found.push(StrayProcess { pid, cmdline, reason: format!("{link}={target}") });
                break;
            }
        }
    }
    found
}

/// The lines only in `left` and only in `right` (as sets), for messages.
pub fn line_diff(left: &str, right: &str) -> String {
    let l: BTreeSet<&str> = left.lines().collect();
    let r: BTreeSet<&str> = right.lines().collect();
    let mut out = String::new();
    for line in l.difference(&r) {
        out.push_str(&format!("- {line}\n"));
    }
    for line in r.difference(&l) {
        out.push_str(&format!("+ {line}\n"));
    }
    if out.is_empty() {
        out.push_str("(same lines, different order or count)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo(r"/tmp/a\040b\134c"), r"/tmp/a b\c");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }

    /// The detectors the mount and process tests rely on do see a leak.
    #[test]
    fn leaked_mounts_and_processes_are_seen() {
        crate::require_root();
        let _lock = crate::heavy_lock();
        let dir = crate::TestDir::new("detectors");
        let before = mountinfo();
        let mnt = dir.mkdir("mnt");
        let mounted = Command::new("mount").args(["-t", "tmpfs", "leak"]).arg(&mnt).status().expect("run mount");
        assert!(mounted.success(), "mount tmpfs failed");
        assert_eq!(mounts_under(dir.path()), std::slice::from_ref(&mnt));
        assert_ne!(before, mountinfo(), "a new mount must change the snapshot");
        assert_eq!(detach_mounts_under(dir.path()), [mnt]);
        assert!(mounts_under(dir.path()).is_empty());
        assert_eq!(before, mountinfo(), "detaching must restore the snapshot");

        let root = dir.mkdir("root");
        dir.mkdir("root/bin");
        fs::copy("/bin/busybox", root.join("bin/busybox")).expect("copy busybox");
        let mut child =
            Command::new("chroot").arg(&root).args(["/bin/busybox", "sleep", "30"]).spawn().expect("run chroot");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let found = loop {
            let found = processes_under(dir.path());
            if !found.is_empty() || std::time::Instant::now() > deadline {
                break found;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.iter().any(|p| p.pid == child.id() && p.reason.starts_with("root=")), "{found:?}");
    }

    #[test]
    fn tree_sees_content_mode_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("f"), "one").unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("l")).unwrap();
        let before = tree(dir.path());
        assert!(before.contains("./l mode=") && before.contains("symlink -> /etc"), "{before}");
        fs::write(dir.path().join("f"), "two").unwrap();
        assert_ne!(before, tree(dir.path()));
        assert_eq!(tree(&dir.path().join("nope")), "<missing>\n");
    }
}
