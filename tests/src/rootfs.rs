//! Reading what a create left on disk: files and modes of a rootfs, its ssh
//! host keys, the complete entries of a rootfs cache.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

/// The text of a file; panics naming the path when it cannot be read.
pub fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The permission bits (with setuid, setgid and sticky) of a path, not
/// following a final symlink.
pub fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display())).permissions().mode() & 0o7777
}

/// The ssh host public keys of a rootfs: `(file name, text)`, sorted by name.
pub fn ssh_host_keys(rootfs: &Path) -> Vec<(String, String)> {
    let dir = rootfs.join("etc/ssh");
    let mut keys: Vec<(String, String)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ssh_host_") && n.ends_with(".pub"))
        .map(|n| (n.clone(), read(dir.join(&n))))
        .collect();
    keys.sort();
    keys
}

/// The current rootfs of each complete entry of a cache dir
/// (`<cache>/<distro>/<hash>/gen.<id>/rootfs`, what `current` names),
/// sorted; none when the distro has no cache dir.
pub fn cache_entries(cache: &Path, distro: &str) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = fs::read_dir(cache.join(distro))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| fs::canonicalize(e.path().join("current/rootfs")).ok())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    entries.sort();
    entries
}
