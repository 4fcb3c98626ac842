//! The cgroup controllers containers are limited with.
//!
//! On the unified hierarchy (cgroup v2) the root's `cgroup.controllers`
//! lists what the kernel offers, at `/sys/fs/cgroup` or, on a hybrid
//! layout, `/sys/fs/cgroup/unified`; controllers bound to a v1 hierarchy
//! have a non-zero hierarchy id in `/proc/cgroups` (`cgroups(7)`). LXC 5
//! works on either, but systemd 256 and later refuse to boot on cgroup v1
//! (its NEWS), so a v1 host cannot run the newest distros' containers.

use super::{Check, Probe};

/// Controllers LXC's default configs and a container's limits use.
const NEEDED: &[&str] = &["cpu", "memory", "pids"];

/// The check named `cgroup`.
pub fn check(probe: &Probe) -> Check {
    let v2: Option<Vec<String>> = ["/sys/fs/cgroup/cgroup.controllers", "/sys/fs/cgroup/unified/cgroup.controllers"]
        .iter()
        .find_map(|file| probe.read(file))
        .map(|text| text.split_whitespace().map(str::to_owned).collect());
    let v1: Vec<String> = probe
        .read("/proc/cgroups")
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            // subsys_name hierarchy num_cgroups enabled
            match fields[..] {
                [name, hierarchy, _, "1"] if hierarchy != "0" => Some(name.to_owned()),
                _ => None,
            }
        })
        .collect();
    let has = |c: &str| v2.iter().flatten().chain(&v1).any(|x| x == c);
    let missing: Vec<&str> = NEEDED.iter().copied().filter(|c| !has(c)).collect();
    if v2.is_none() && v1.is_empty() {
        return Check::fail(
            "cgroup",
            "no cgroup hierarchy mounted at /sys/fs/cgroup: containers cannot start",
            "mount -t cgroup2 none /sys/fs/cgroup (systemd does this at boot)",
        );
    }
    if !missing.is_empty() {
        return Check::warn(
            "cgroup",
            format!("no {} controller: containers cannot be limited by it", missing.join(", ")),
            "boot with the controller enabled (look for cgroup_disable= in /proc/cmdline; some boards need \
             cgroup_enable=memory)",
        );
    }
    let v2_has_all = v2.as_ref().is_some_and(|v2| NEEDED.iter().all(|c| v2.iter().any(|x| x == c)));
    if v2_has_all {
        Check::ok("cgroup", format!("cgroup v2 with {}", v2.unwrap_or_default().join(" ")))
    } else {
        Check::warn(
            "cgroup",
            format!(
                "cgroup v1 controllers ({}): LXC works, but systemd 256 and later do not boot on cgroup v1",
                v1.join(" ")
            ),
            "boot the host with the unified hierarchy (systemd.unified_cgroup_hierarchy=1)",
        )
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures are built with std::fs on purpose
mod tests {
    use super::*;
    use crate::doctor::{Status, testing::FakeRoot};

    const V1: &str = "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t1\t2\t1\nmemory\t4\t94\t1\npids\t8\t2\t1\nnet_cls\t0\t2\t1\n";

    #[test]
    fn doctor_cgroup_v2_with_the_controllers_is_ok() {
        let fake = FakeRoot::new();
        fake.write("/sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
        assert_eq!(check(&fake.probe).status, Status::Ok);
    }

    #[test]
    fn doctor_cgroup_hybrid_warns_and_nothing_fails() {
        let fake = FakeRoot::new();
        fake.write("/sys/fs/cgroup/unified/cgroup.controllers", "hugetlb\n").write("/proc/cgroups", V1);
        let hybrid = check(&fake.probe);
        assert_eq!(hybrid.status, Status::Warn, "{hybrid:?}");
        assert!(hybrid.detail.contains("cpu memory pids"), "{hybrid:?}");
        let empty = check(&FakeRoot::new().probe);
        assert_eq!(empty.status, Status::Fail, "{empty:?}");
    }

    #[test]
    fn doctor_cgroup_missing_memory_controller_warns() {
        let fake = FakeRoot::new();
        fake.write("/sys/fs/cgroup/cgroup.controllers", "cpu pids\n");
        let check = check(&fake.probe);
        assert_eq!(check.status, Status::Warn);
        assert!(check.detail.contains("no memory controller"), "{check:?}");
    }
}
