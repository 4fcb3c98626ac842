//! Free space in the cache dir and the lxcpath.
//!
//! The thresholds come from the sizes measured in the README's speed
//! section: a Debian cache entry is about 210 MiB (its rootfs) plus 50 MiB of
//! kept packages, and a `dir` container copies the 210 MiB rootfs. Under
//! [`FAIL_BELOW`] (300 MiB) not even one of these fits; under
//! [`WARN_BELOW`] (2 GiB) a few distros' cache entries and a few containers
//! do not. Space is what an unprivileged user may use (`f_bavail` of
//! statvfs(3)); root may also use the reserved blocks.

use std::path::Path;

use super::{Check, existing_ancestor, human_bytes};

/// Below this many free bytes the check fails.
pub const FAIL_BELOW: u64 = 300 << 20;
/// Below this many free bytes the check warns.
pub const WARN_BELOW: u64 = 2 << 30;

/// The check named `space:<label>` for `dir` (or, when a create would
/// make it, its nearest existing parent).
pub fn check(label: &str, dir: &Path) -> Check {
    let name = format!("space:{label}");
    let Some(existing) = existing_ancestor(dir) else {
        return Check::fail(name, format!("no directory of {} exists", dir.display()), "give an existing path");
    };
    match nix::sys::statvfs::statvfs(existing) {
        Ok(stat) => judge(&name, dir, existing, stat.blocks_available() * stat.fragment_size()),
        Err(e) => Check::warn(name, format!("cannot statvfs {}: {e}", existing.display()), "check the path"),
    }
}

/// Judges `free` bytes on the filesystem of `existing`, the nearest
/// existing directory of `dir`.
pub fn judge(name: &str, dir: &Path, existing: &Path, free: u64) -> Check {
    let place = if existing == dir {
        dir.display().to_string()
    } else {
        format!("{} (not made yet; measured at {})", dir.display(), existing.display())
    };
    let detail = format!("{} free for {place}", human_bytes(free));
    let option = if name.ends_with("lxcpath") { "-P LXCPATH" } else { "--cache-dir DIR" };
    let fix = format!("free space on the filesystem of {}, or give create another {option}", existing.display());
    if free < FAIL_BELOW {
        Check::fail(name, format!("{detail}: under {}, not even one Debian rootfs fits", human_bytes(FAIL_BELOW)), fix)
    } else if free < WARN_BELOW {
        Check::warn(name, format!("{detail}: under {}", human_bytes(WARN_BELOW)), fix)
    } else {
        Check::ok(name, detail)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures are built with std::fs on purpose
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn doctor_space_thresholds() {
        let dir = Path::new("/c");
        assert_eq!(judge("space:x", dir, dir, 10 << 30).status, Status::Ok);
        assert_eq!(judge("space:x", dir, dir, WARN_BELOW - 1).status, Status::Warn);
        let full = judge("space:x", dir, dir, FAIL_BELOW - 1);
        assert_eq!(full.status, Status::Fail);
        assert!(full.detail.starts_with("300 MiB free for /c"), "{full:?}");
        assert_eq!(
            full.fix.as_deref(),
            Some("free space on the filesystem of /c, or give create another --cache-dir DIR")
        );
        let lxcpath = judge("space:lxcpath", dir, dir, 0);
        assert!(lxcpath.fix.unwrap().ends_with("-P LXCPATH"));
    }

    #[test]
    fn doctor_space_of_a_dir_not_made_yet_is_measured_at_its_parent() {
        let tmp = tempfile::tempdir().unwrap();
        let check = check("cache-dir", &tmp.path().join("cache"));
        assert!(check.detail.contains(&format!("measured at {}", tmp.path().display())), "{check:?}");
    }
}
