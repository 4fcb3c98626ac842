//! Root, or user namespaces an unprivileged user may create.
//!
//! lxc-tmpl's create runs as root; the template of an unprivileged
//! `lxc-create` runs as root of a user namespace. Both need the kernel to
//! allow user namespaces: `user.max_user_namespaces` above 0
//! (`user_namespaces(7)`), and for users other than root Debian's
//! `kernel.unprivileged_userns_clone` not 0 and Ubuntu's
//! `kernel.apparmor_restrict_unprivileged_userns` not 1 (these two files
//! exist only on kernels with those patches).

use super::{Check, Probe};

const MAX_USER_NAMESPACES: &str = "/proc/sys/user/max_user_namespaces";
const UNPRIVILEGED_USERNS_CLONE: &str = "/proc/sys/kernel/unprivileged_userns_clone";
const APPARMOR_RESTRICT: &str = "/proc/sys/kernel/apparmor_restrict_unprivileged_userns";

/// The check named `privileges`.
pub fn check(probe: &Probe) -> Check {
    let number = |file: &str| probe.read(file).and_then(|t| t.trim().parse::<u64>().ok());
    let max = number(MAX_USER_NAMESPACES);
    let clone = number(UNPRIVILEGED_USERNS_CLONE);
    let apparmor = number(APPARMOR_RESTRICT);
    let for_root = max != Some(0);
    let max_text = max.map_or_else(
        || "no user.max_user_namespaces (assumed allowed)".to_owned(),
        |m| format!("user.max_user_namespaces = {m}"),
    );
    const RAISE_MAX: &str = "sysctl -w user.max_user_namespaces=15000 (and put it in /etc/sysctl.d/ to keep it)";
    if probe.euid == 0 {
        return if for_root {
            Check::ok("privileges", format!("running as root; user namespaces available ({max_text})"))
        } else {
            Check::warn(
                "privileges",
                format!("running as root, but {max_text}: unprivileged containers cannot start"),
                RAISE_MAX,
            )
        };
    }
    let blocker = if !for_root {
        Some((max_text.clone(), RAISE_MAX))
    } else if clone == Some(0) {
        Some((
            "kernel.unprivileged_userns_clone = 0".to_owned(),
            "sysctl -w kernel.unprivileged_userns_clone=1 (and put it in /etc/sysctl.d/ to keep it)",
        ))
    } else if apparmor == Some(1) {
        Some((
            "kernel.apparmor_restrict_unprivileged_userns = 1".to_owned(),
            "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or give lxc-tmpl an AppArmor profile allowing userns",
        ))
    } else {
        None
    };
    match blocker {
        None => Check::ok(
            "privileges",
            format!(
                "not root (uid {}), but user namespaces are usable ({max_text}): enough for the template of an \
                 unprivileged lxc-create; lxc-tmpl create needs root",
                probe.euid
            ),
        ),
        Some((why, fix)) => Check::fail(
            "privileges",
            format!("not root (uid {}) and no user namespaces for this user: {why}", probe.euid),
            format!("run lxc-tmpl as root (sudo), or {fix}"),
        ),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures are built with std::fs on purpose
mod tests {
    use super::*;
    use crate::doctor::{Status, testing::FakeRoot};

    #[test]
    fn doctor_privileges_root_with_user_namespaces_is_ok() {
        let fake = FakeRoot::new();
        fake.write(MAX_USER_NAMESPACES, "63488\n");
        let check = check(&fake.probe);
        assert_eq!(check.status, Status::Ok, "{check:?}");
        assert!(check.detail.contains("63488"), "{check:?}");
    }

    #[test]
    fn doctor_privileges_root_without_user_namespaces_warns() {
        let fake = FakeRoot::new();
        fake.write(MAX_USER_NAMESPACES, "0\n");
        let check = check(&fake.probe);
        assert_eq!(check.status, Status::Warn, "{check:?}");
        assert!(check.fix.unwrap().contains("sysctl -w user.max_user_namespaces="));
    }

    #[test]
    fn doctor_privileges_user_without_user_namespaces_fails() {
        let mut fake = FakeRoot::new();
        fake.probe.euid = 1000;
        fake.write(MAX_USER_NAMESPACES, "63488\n").write(UNPRIVILEGED_USERNS_CLONE, "0\n");
        let failed = check(&fake.probe);
        assert_eq!(failed.status, Status::Fail, "{failed:?}");
        assert!(failed.fix.unwrap().contains("kernel.unprivileged_userns_clone=1"));
        fake.write(UNPRIVILEGED_USERNS_CLONE, "1\n");
        assert_eq!(check(&fake.probe).status, Status::Ok, "a user with user namespaces");
        fake.write(APPARMOR_RESTRICT, "1\n");
        assert_eq!(check(&fake.probe).status, Status::Fail, "Ubuntu's AppArmor restriction");
    }
}
