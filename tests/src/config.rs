//! Reading LXC config text: `key = value` lines, comments, includes.

use std::{fs, path::Path};

/// The `key = value` entries of a config text, in order, comments and blank
/// lines dropped, both sides trimmed.
pub fn entries(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// The last value of `key` (LXC's rule for single-valued keys).
pub fn value(text: &str, key: &str) -> Option<String> {
    entries(text).into_iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Every value of `key`, in order.
pub fn values(text: &str, key: &str) -> Vec<String> {
    entries(text).into_iter().filter(|(k, _)| k == key).map(|(_, v)| v).collect()
}

/// The entries of the config file at `path` followed by those of every file
/// it includes (recursively; an included directory contributes its `*.conf`
/// files), each paired with the file it came from.
pub fn entries_with_includes(path: &Path) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    collect(path, &mut out, 0);
    out
}

fn collect(path: &Path, out: &mut Vec<(String, String, String)>, depth: usize) {
    assert!(depth < 16, "lxc.include nesting too deep at {}", path.display());
    if path.is_dir() {
        let mut files: Vec<_> = fs::read_dir(path)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", path.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "conf"))
            .collect();
        files.sort();
        for file in files {
            collect(&file, out, depth + 1);
        }
        return;
    }
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read config {}: {e}", path.display()));
    for (key, value) in entries(&text) {
        let include = (key == "lxc.include").then(|| value.clone());
        out.push((path.display().to_string(), key, value));
        // LXC skips an included directory that does not exist
        // (`userns.conf.d/` when nothing is installed there).
        if let Some(include) = include.filter(|i| !i.ends_with('/') || Path::new(i).exists()) {
            collect(Path::new(&include), out, depth + 1);
        }
    }
}

/// Keys of the legacy (LXC < 2.1) dialect that LXC 2.1 renamed or dropped.
pub const LEGACY_KEYS: &[&str] = &[
    "lxc.aa_allow_incomplete",
    "lxc.aa_profile",
    "lxc.console",
    "lxc.devttydir",
    "lxc.haltsignal",
    "lxc.id_map",
    "lxc.init_cmd",
    "lxc.init_gid",
    "lxc.init_uid",
    "lxc.kmsg",
    "lxc.logfile",
    "lxc.loglevel",
    "lxc.mount",
    "lxc.network",
    "lxc.pivotdir",
    "lxc.pts",
    "lxc.rebootsignal",
    "lxc.rootfs",
    "lxc.rootfs.backend",
    "lxc.se_context",
    "lxc.seccomp",
    "lxc.stopsignal",
    "lxc.syslog",
    "lxc.tty",
    "lxc.utsname",
];

/// Key prefixes of the legacy dialect (`lxc.network.0.type`, `lxc.limit.nofile`).
pub const LEGACY_PREFIXES: &[&str] = &["lxc.network.", "lxc.limit."];

/// Whether `key` belongs to the legacy dialect only.
pub fn is_legacy_key(key: &str) -> bool {
    LEGACY_KEYS.contains(&key) || LEGACY_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// Keys that exist only since LXC 2.1 (the new names of [`LEGACY_KEYS`]).
pub const MODERN_KEYS: &[&str] = &[
    "lxc.apparmor.allow_incomplete",
    "lxc.apparmor.profile",
    "lxc.console.path",
    "lxc.idmap",
    "lxc.init.cmd",
    "lxc.init.gid",
    "lxc.init.uid",
    "lxc.log.file",
    "lxc.log.level",
    "lxc.log.syslog",
    "lxc.mount.fstab",
    "lxc.net",
    "lxc.pty.max",
    "lxc.rootfs.path",
    "lxc.selinux.context",
    "lxc.seccomp.profile",
    "lxc.signal.halt",
    "lxc.signal.reboot",
    "lxc.signal.stop",
    "lxc.tty.dir",
    "lxc.tty.max",
    "lxc.uts.name",
];

/// Key prefixes that exist only since LXC 2.1.
pub const MODERN_PREFIXES: &[&str] = &["lxc.net.", "lxc.prlimit.", "lxc.signal.", "lxc.apparmor.", "lxc.selinux."];

/// Whether `key` exists only in the LXC 2.1+ dialect.
pub fn is_modern_key(key: &str) -> bool {
    MODERN_KEYS.contains(&key) || MODERN_PREFIXES.iter().any(|p| key.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_and_modern_keys_are_told_apart() {
        for legacy in ["lxc.utsname", "lxc.rootfs", "lxc.tty", "lxc.pts", "lxc.network.type", "lxc.haltsignal"] {
            assert!(is_legacy_key(legacy), "{legacy}");
            assert!(!is_modern_key(legacy), "{legacy}");
        }
        for modern in ["lxc.uts.name", "lxc.rootfs.path", "lxc.tty.max", "lxc.pty.max", "lxc.net.0.type"] {
            assert!(is_modern_key(modern), "{modern}");
            assert!(!is_legacy_key(modern), "{modern}");
        }
        for both in ["lxc.include", "lxc.arch", "lxc.mount.entry", "lxc.mount.auto", "lxc.cap.drop", "lxc.start.auto"] {
            assert!(!is_legacy_key(both) && !is_modern_key(both), "{both}");
        }
    }

    #[test]
    fn last_value_wins() {
        let text = "# c\nlxc.a = 1\n\n lxc.a=2 \nlxc.b = x = y\n";
        assert_eq!(value(text, "lxc.a").as_deref(), Some("2"));
        assert_eq!(value(text, "lxc.b").as_deref(), Some("x = y"));
        assert_eq!(values(text, "lxc.a"), ["1", "2"]);
    }
}
