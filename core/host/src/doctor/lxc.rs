//! LXC's tools and version: lxc-tmpl hands every container to them, and
//! writes the config in the dialect of the installed version.

use super::{Check, Probe};
use crate::facts;

/// The LXC tools lxc-tmpl runs or tells the user to run.
const TOOLS: &[&str] = &["lxc-create", "lxc-start", "lxc-attach", "lxc-destroy", "lxc-config"];

/// The check named `lxc`.
pub fn check(probe: &Probe) -> Check {
    let missing: Vec<&str> = TOOLS.iter().copied().filter(|t| probe.which(t).is_none()).collect();
    if missing.len() == TOOLS.len() {
        return Check::fail("lxc", "LXC is not installed (no lxc-create in PATH)", "apt-get install lxc");
    }
    if !missing.is_empty() {
        return Check::fail(
            "lxc",
            format!("{} missing from PATH", missing.join(", ")),
            "apt-get install --reinstall lxc",
        );
    }
    let lxc_create = probe.which("lxc-create").expect("checked above");
    match facts::lxc_version_of(&lxc_create) {
        None => Check::fail(
            "lxc",
            format!("{} --version says no version", lxc_create.display()),
            "apt-get install --reinstall lxc",
        ),
        Some(version) if version < semver::Version::new(2, 1, 0) => Check::warn(
            "lxc",
            format!("LXC {version}: configs are written with the legacy key names of LXC before 2.1"),
            "upgrade LXC to 3.0 or later",
        ),
        Some(version) => Check::ok("lxc", format!("LXC {version} ({})", lxc_create.display())),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures are built with std::fs on purpose
mod tests {
    use super::*;
    use crate::doctor::{Status, testing::FakeRoot};

    fn lxc_with_version(version: &str) -> FakeRoot {
        let fake = FakeRoot::new();
        for tool in TOOLS {
            fake.script(&format!("/usr/bin/{tool}"), &format!("echo {version}"));
        }
        fake
    }

    #[test]
    fn doctor_lxc_version_is_reported() {
        let check = check(&lxc_with_version("5.0.2").probe);
        assert_eq!(check.status, Status::Ok, "{check:?}");
        assert!(check.detail.starts_with("LXC 5.0.2"), "{check:?}");
        assert_eq!(super::check(&lxc_with_version("2.0.11").probe).status, Status::Warn);
    }

    #[test]
    fn doctor_lxc_missing_fails_with_the_package() {
        let check = check(&FakeRoot::new().probe);
        assert_eq!((check.status, check.fix.as_deref()), (Status::Fail, Some("apt-get install lxc")));
        let fake = lxc_with_version("5.0.2");
        std::fs::remove_file(fake.probe.file("/usr/bin/lxc-attach")).unwrap();
        let partial = super::check(&fake.probe);
        assert_eq!(partial.status, Status::Fail);
        assert!(partial.detail.contains("lxc-attach"), "{partial:?}");
        let fake = lxc_with_version("garbage");
        assert_eq!(super::check(&fake.probe).status, Status::Fail, "an unparsable version");
    }
}
