//! The kernel namespaces lxc-tmpl's runner and LXC use, as
//! `lxc-checkconfig` checks them, but by what the running kernel offers
//! (`/proc/self/ns/*`, `namespaces(7)`) rather than by its build config.

use super::{Check, Probe};

/// Namespaces the runner puts every command in (mount, PID, UTS, IPC): a
/// create cannot run without them. With the kernel option that provides each.
const REQUIRED: &[(&str, &str)] =
    &[("mnt", "CONFIG_NAMESPACES"), ("pid", "CONFIG_PID_NS"), ("uts", "CONFIG_UTS_NS"), ("ipc", "CONFIG_IPC_NS")];

/// Namespaces LXC gives containers: without them containers have no
/// network of their own, cannot be unprivileged, or see the host's cgroups.
const FOR_CONTAINERS: &[(&str, &str)] =
    &[("net", "CONFIG_NET_NS"), ("user", "CONFIG_USER_NS"), ("cgroup", "CONFIG_CGROUPS")];

/// The check named `namespaces`.
pub fn check(probe: &Probe) -> Check {
    let missing = |set: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        set.iter().copied().filter(|(ns, _)| !probe.file(format!("/proc/self/ns/{ns}")).exists()).collect()
    };
    let describe = |missing: &[(&str, &str)]| {
        let names: Vec<&str> = missing.iter().map(|(ns, _)| *ns).collect();
        let options: Vec<&str> = missing.iter().map(|(_, option)| *option).collect();
        (names.join(", "), format!("use a kernel built with {} (lxc-checkconfig lists them)", options.join(", ")))
    };
    let required = missing(REQUIRED);
    let for_containers = missing(FOR_CONTAINERS);
    if !required.is_empty() {
        let (names, fix) = describe(&required);
        return Check::fail(
            "namespaces",
            format!("the kernel has no {names} namespaces: commands cannot be isolated"),
            fix,
        );
    }
    if !for_containers.is_empty() {
        let (names, fix) = describe(&for_containers);
        return Check::warn("namespaces", format!("the kernel has no {names} namespaces for containers"), fix);
    }
    let all: Vec<&str> = REQUIRED.iter().chain(FOR_CONTAINERS).map(|(ns, _)| *ns).collect();
    Check::ok("namespaces", all.join(" "))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures are built with std::fs on purpose
mod tests {
    use super::*;
    use crate::doctor::{Status, testing::FakeRoot};

    fn with(namespaces: &[&str]) -> Check {
        let fake = FakeRoot::new();
        for ns in namespaces {
            fake.write(&format!("/proc/self/ns/{ns}"), "");
        }
        check(&fake.probe)
    }

    #[test]
    fn doctor_namespaces_all_present_is_ok() {
        assert_eq!(with(&["mnt", "pid", "uts", "ipc", "net", "user", "cgroup"]).status, Status::Ok);
    }

    #[test]
    fn doctor_namespaces_missing_pid_fails_and_missing_user_warns() {
        let failed = with(&["mnt", "uts", "ipc", "net", "user", "cgroup"]);
        assert_eq!(failed.status, Status::Fail, "{failed:?}");
        assert!(failed.detail.contains("pid") && failed.fix.unwrap().contains("CONFIG_PID_NS"));
        let warned = with(&["mnt", "pid", "uts", "ipc", "net", "cgroup"]);
        assert_eq!(warned.status, Status::Warn, "{warned:?}");
        assert!(warned.fix.unwrap().contains("CONFIG_USER_NS"));
    }
}
