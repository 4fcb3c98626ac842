//! Subordinate ids of the running user (`subuid(5)`, `subgid(5)`): an
//! unprivileged container's ids are mapped into them (`lxc.idmap`), and
//! LXC's usual map gives a container 65536 of each. Missing ranges are a
//! warning: privileged containers do not need them.

use nix::unistd::{Uid, User};

use super::{Check, Probe};

/// The ids one container's map takes (LXC's usual `lxc.idmap = u 0 100000 65536`).
const PER_CONTAINER: u64 = 65536;

/// Which file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/etc/subuid`.
    Uid,
    /// `/etc/subgid`.
    Gid,
}

impl Kind {
    fn file(self) -> &'static str {
        match self {
            Kind::Uid => "/etc/subuid",
            Kind::Gid => "/etc/subgid",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Uid => "subuid",
            Kind::Gid => "subgid",
        }
    }

    fn usermod_flag(self) -> &'static str {
        match self {
            Kind::Uid => "--add-subuids",
            Kind::Gid => "--add-subgids",
        }
    }
}

/// The check named `subuid` or `subgid`, for the probe's user.
pub fn check(probe: &Probe, kind: Kind) -> Check {
    let user = User::from_uid(Uid::from_raw(probe.euid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| probe.euid.to_string());
    let text = probe.read(kind.file()).unwrap_or_default();
    // Lines `name-or-uid:start:count`.
    let ranges: Vec<(u64, u64)> = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.trim().split(':');
            let owner = fields.next()?;
            let start = fields.next()?.parse().ok()?;
            let count = fields.next()?.parse().ok()?;
            (owner == user || owner == probe.euid.to_string()).then_some((start, count))
        })
        .collect();
    let total: u64 = ranges.iter().map(|(_, count)| count).sum();
    let fix = format!("usermod {} 100000-165535 {user}", kind.usermod_flag());
    if ranges.is_empty() {
        return Check::warn(
            kind.name(),
            format!("no range for {user} in {}: unprivileged containers cannot be made", kind.file()),
            fix,
        );
    }
    let listed: Vec<String> = ranges.iter().map(|(start, count)| format!("{start}-{}", start + count - 1)).collect();
    if total < PER_CONTAINER {
        return Check::warn(
            kind.name(),
            format!(
                "{user} has {total} ids in {} ({}): an unprivileged container maps {PER_CONTAINER}",
                kind.file(),
                listed.join(", ")
            ),
            fix,
        );
    }
    Check::ok(kind.name(), format!("{user}: {}", listed.join(", ")))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures are built with std::fs on purpose
mod tests {
    use super::*;
    use crate::doctor::{Status, testing::FakeRoot};

    #[test]
    fn doctor_subids_range_for_root() {
        let fake = FakeRoot::new();
        fake.write("/etc/subuid", "user:165536:65536\nroot:100000:65536\n");
        let check = check(&fake.probe, Kind::Uid);
        assert_eq!((check.status, check.detail.as_str()), (Status::Ok, "root: 100000-165535"));
    }

    #[test]
    fn doctor_subids_missing_or_short_ranges_warn() {
        let fake = FakeRoot::new();
        fake.write("/etc/subgid", "user:165536:65536\n");
        let missing = check(&fake.probe, Kind::Gid);
        assert_eq!(missing.status, Status::Warn);
        assert_eq!(missing.fix.as_deref(), Some("usermod --add-subgids 100000-165535 root"));
        fake.write("/etc/subgid", "0:100000:1000\n");
        let short = check(&fake.probe, Kind::Gid);
        assert_eq!(short.status, Status::Warn);
        assert!(short.detail.contains("1000 ids"), "{short:?}");
        assert_eq!(check(&FakeRoot::new().probe, Kind::Uid).status, Status::Warn, "no /etc/subuid at all");
    }
}
