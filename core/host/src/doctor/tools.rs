//! The bootstrap tools of the Debian-family plugins.
//!
//! debootstrap is looked for where those plugins run it from, a fixed list
//! rather than `PATH` (`DEBOOTSTRAP_PATHS` in `plugins/deb/src/debootstrap.rs`;
//! the plugin API has no call that gives it), so that doctor and a create
//! agree. mmdebstrap is reported but never required: the plugins use
//! debootstrap (that file's module docs say why).

use super::{Check, Probe, keyrings};

/// Where the Debian-family plugins look for debootstrap, in order.
pub const DEBOOTSTRAP_PATHS: &[&str] = &["/usr/sbin/debootstrap", "/usr/bin/debootstrap", "/sbin/debootstrap"];

/// The check named `debootstrap`: a failure when a plugin found needs it
/// (`distros` are the plugins' names; the Debian-family plugins are those
/// in [`keyrings::ARCHIVE_KEYRINGS`]), a warning otherwise.
pub fn debootstrap(probe: &Probe, distros: &[&str]) -> Check {
    // Regular files only, as the plugins judge it (host_file_kind == File).
    if let Some(found) = DEBOOTSTRAP_PATHS.iter().find(|p| probe.file(p).metadata().is_ok_and(|m| m.is_file())) {
        return Check::ok("debootstrap", format!("installed ({found})"));
    }
    let needing: Vec<&str> = distros.iter().copied().filter(|d| keyrings::for_distro(d).is_some()).collect();
    let detail = format!("not installed (looked in {})", DEBOOTSTRAP_PATHS.join(", "));
    if needing.is_empty() {
        Check::warn("debootstrap", format!("{detail}; no plugin found needs it"), "apt-get install debootstrap")
    } else {
        Check::fail(
            "debootstrap",
            format!("{detail}: {} containers cannot be built", needing.join(" and ")),
            "apt-get install debootstrap",
        )
    }
}

/// The check named `mmdebstrap`: always ok, saying whether it is there.
pub fn mmdebstrap(probe: &Probe) -> Check {
    match probe.which("mmdebstrap") {
        Some(path) => Check::ok("mmdebstrap", format!("installed ({}); the plugins use debootstrap", path.display())),
        None => Check::ok("mmdebstrap", "not installed; not needed: the plugins use debootstrap"),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures are built with std::fs on purpose
mod tests {
    use super::*;
    use crate::doctor::{Status, testing::FakeRoot};

    #[test]
    fn doctor_debootstrap_found_where_the_plugins_look() {
        let fake = FakeRoot::new();
        fake.script("/usr/sbin/debootstrap", "true");
        assert_eq!(debootstrap(&fake.probe, &["debian"]).status, Status::Ok);
    }

    #[test]
    fn doctor_debootstrap_missing_fails_for_a_debian_plugin() {
        let mut fake = FakeRoot::new();
        let check = debootstrap(&fake.probe, &["busybox", "debian"]);
        assert_eq!((check.status, check.fix.as_deref()), (Status::Fail, Some("apt-get install debootstrap")));
        assert!(check.detail.contains("debian containers"), "{check:?}");
        assert_eq!(debootstrap(&fake.probe, &["busybox"]).status, Status::Warn, "nothing needs it");
        // Not in the plugins' places, only in PATH: the plugins would not find it either.
        fake.probe.path = "/usr/local/sbin".into();
        fake.script("/usr/local/sbin/debootstrap", "true");
        assert!(fake.probe.which("debootstrap").is_some());
        assert_eq!(debootstrap(&fake.probe, &["debian"]).status, Status::Fail);
    }

    #[test]
    fn doctor_mmdebstrap_is_reported_not_required() {
        let fake = FakeRoot::new();
        assert!(mmdebstrap(&fake.probe).detail.starts_with("not installed"));
        fake.script("/usr/bin/mmdebstrap", "true");
        let check = mmdebstrap(&fake.probe);
        assert_eq!(check.status, Status::Ok);
        assert!(check.detail.starts_with("installed"), "{check:?}");
    }
}
