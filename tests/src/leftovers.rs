//! What an interrupted create can leave on disk, and whether the cache
//! survived it: the container's `partial` file (its lock and its record),
//! cache staging directories, and a cheap fingerprint of a large tree (a
//! cached rootfs) to tell that it was not touched.

use std::{
    fs::{self, OpenOptions},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use nix::{
    fcntl::{FcntlArg, fcntl},
    libc,
};

/// The `partial` file of a container directory.
#[derive(Debug, Clone)]
pub struct Partial {
    /// Whether some process holds a lock on it (LXC's OFD write lock, the
    /// one lxc-create and lxc-tmpl take): a create in progress.
    pub locked: bool,
    /// Its content.
    pub text: String,
}

impl Partial {
    /// Its content as JSON, or why it is not JSON.
    pub fn record(&self) -> Result<serde_json::Value, String> {
        serde_json::from_str(&self.text).map_err(|e| format!("{e}: {:?}", self.text))
    }
}

/// The `partial` file in `container_dir`, if there is one. Testing the
/// lock takes it for a moment (and releases it when the file is closed).
pub fn partial(container_dir: &Path) -> Option<Partial> {
    let path = container_dir.join("partial");
    let file = OpenOptions::new().read(true).write(true).open(&path).ok()?;
    let text = fs::read_to_string(&path).unwrap_or_default();
    let lock =
        libc::flock { l_type: libc::F_WRLCK as i16, l_whence: libc::SEEK_SET as i16, l_start: 0, l_len: 0, l_pid: 0 };
    // LXC's protocol is an OFD lock (fcntl), which flock(2) would not see.
    let locked = fcntl(&file, FcntlArg::F_OFD_SETLK(&lock)).is_err();
    Some(Partial { locked, text })
}

/// The `staging.*` directories (builds in progress or killed) of every
/// cache entry under `cache`.
pub fn staging_dirs(cache: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for distro in read_dir(cache) {
        for entry in read_dir(&distro) {
            for item in read_dir(&entry) {
                if item.file_name().is_some_and(|n| n.to_string_lossy().starts_with("staging.")) {
                    found.push(item);
                }
            }
        }
    }
    found.sort();
    found
}

fn read_dir(dir: &Path) -> Vec<PathBuf> {
    match fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()).collect(),
        Err(_) => Vec::new(),
    }
}

/// A listing of the tree at `root` from metadata alone (path, type, mode,
/// owner, inode, size, mtime; no content), sorted: cheap enough for a
/// cached rootfs of a few hundred MB. Equal fingerprints mean nothing was
/// added, removed, replaced, rewritten or chmodded.
pub fn fingerprint(root: &Path) -> String {
    let mut lines = Vec::new();
    walk(root, Path::new("."), &mut lines);
    lines.sort();
    lines.concat()
}

fn walk(path: &Path, relative: &Path, lines: &mut Vec<String>) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        lines.push(format!("{} <missing>\n", relative.display()));
        return;
    };
    let kind = meta.file_type();
    let mut line =
        format!("{} mode={:o} owner={}:{} ino={}", relative.display(), meta.mode(), meta.uid(), meta.gid(), meta.ino());
    if !kind.is_dir() {
        line.push_str(&format!(" size={} mtime={}.{:09}", meta.len(), meta.mtime(), meta.mtime_nsec()));
    }
    if kind.is_symlink() {
        let target = fs::read_link(path).map(|t| t.display().to_string()).unwrap_or_default();
        line.push_str(&format!(" -> {target}"));
    }
    line.push('\n');
    lines.push(line);
    if kind.is_dir()
        && let Ok(entries) = fs::read_dir(path)
    {
        for entry in entries.filter_map(Result::ok) {
            walk(&entry.path(), &relative.join(entry.file_name()), lines);
        }
    }
}
