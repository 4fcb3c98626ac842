//! Which host directories the container sees, and how.
//!
//! The container runs the host's own programs: the top-level dirs that hold
//! them (`/usr`, `/bin`, `/lib`, ...) are bind-mounted read-only. On a
//! merged-/usr host most of them are symlinks into `/usr` (`/bin -> usr/bin`);
//! bind-mounting such a path would mount its target a second time, so the
//! rootfs gets the same symlink instead and only the real dirs are mounted.

/// Host dirs the container may need, in mount order: `/usr` first, so a
/// symlink into it works as soon as it exists. Whichever exist are used.
pub const HOST_DIRS: &[&str] = &["usr", "bin", "sbin", "lib", "lib64", "lib32", "libx32"];

/// How one host dir appears in the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostDir {
    /// A real directory: bind-mounted read-only onto a directory of the same name.
    Bind,
    /// A symlink into a bound dir (merged /usr): the same symlink in the rootfs,
    /// target stored as the host has it.
    Link(String),
}

/// The host dirs that exist, each with how the container sees it.
pub type Layout = Vec<(&'static str, HostDir)>;

/// Turns what the host has (`None` for a real dir, `Some(target)` for a
/// symlink) into a layout: a symlink whose target does not lie inside a
/// real, bound dir is bound itself (the bind follows the link), so that the
/// container never holds a dangling link.
pub fn plan(found: Vec<(&'static str, Option<String>)>) -> Layout {
    let real: Vec<&str> = found.iter().filter(|(_, link)| link.is_none()).map(|(dir, _)| *dir).collect();
    found
        .iter()
        .map(|(dir, link)| {
            let how = match link {
                Some(target) if top_dir(target).is_some_and(|top| real.contains(&top)) => HostDir::Link(target.clone()),
                _ => HostDir::Bind,
            };
            (*dir, how)
        })
        .collect()
}

/// The first component of a link target stored in `/`, resolved lexically
/// (`usr/bin`, `/usr/bin` and `./usr/bin` give `usr`); `None` when it leaves
/// `/` or names `/` itself.
pub fn top_dir(target: &str) -> Option<&str> {
    let mut parts: Vec<&str> = Vec::new();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                // In `/`, `..` is `/` again.
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.first().copied()
}

/// Whether an absolute host path lies inside one of the bound dirs of
/// `layout`, so the container sees it at the same path.
pub fn is_visible(layout: &Layout, canonical_path: &str) -> bool {
    canonical_path.starts_with('/')
        && top_dir(canonical_path)
            .is_some_and(|top| layout.iter().any(|(dir, how)| *dir == top && *how == HostDir::Bind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_usr_becomes_symlinks() {
        let found = vec![
            ("usr", None),
            ("bin", Some("usr/bin".to_owned())),
            ("sbin", Some("/usr/sbin".to_owned())),
            ("lib", Some("usr/lib".to_owned())),
            ("lib64", Some("usr/lib64".to_owned())),
        ];
        let layout = plan(found);
        assert_eq!(
            layout,
            [
                ("usr", HostDir::Bind),
                ("bin", HostDir::Link("usr/bin".into())),
                ("sbin", HostDir::Link("/usr/sbin".into())),
                ("lib", HostDir::Link("usr/lib".into())),
                ("lib64", HostDir::Link("usr/lib64".into())),
            ]
        );
        assert!(is_visible(&layout, "/usr/sbin/sshd"));
        assert!(!is_visible(&layout, "/opt/sshd"));
        assert!(!is_visible(&layout, "usr/sbin/sshd"));
    }

    #[test]
    fn links_leaving_the_bound_dirs_are_bound() {
        let found = vec![
            ("usr", None),
            ("bin", None),
            ("lib", Some("/opt/lib".to_owned())),
            ("lib64", Some("../../..".to_owned())),
        ];
        assert_eq!(
            plan(found),
            [("usr", HostDir::Bind), ("bin", HostDir::Bind), ("lib", HostDir::Bind), ("lib64", HostDir::Bind)]
        );
    }

    #[test]
    fn top_dir_resolves_lexically() {
        assert_eq!(top_dir("usr/bin"), Some("usr"));
        assert_eq!(top_dir("/usr/bin"), Some("usr"));
        assert_eq!(top_dir("./usr//bin"), Some("usr"));
        assert_eq!(top_dir("../usr/bin"), Some("usr"));
        assert_eq!(top_dir("usr/../opt/x"), Some("opt"));
        assert_eq!(top_dir("/"), None);
        assert_eq!(top_dir(".."), None);
    }
}
