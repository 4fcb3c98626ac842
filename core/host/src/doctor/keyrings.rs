//! The archive keyring of each Debian-family plugin found.
//!
//! debootstrap checks the archive's Release signature against the distro's
//! keyring (the plugins never skip the check unless told to), so a missing
//! keyring stops that distro's creates until it is installed or a
//! `--keyring FILE` is given: a warning, as other distros still work.
//!
//! The plugin API (1.x) has no call that says which host files a plugin
//! needs, so the keyrings are this table, copied from the plugins'
//! `KEYRING` constants (`plugins/debian/src/plan.rs`,
//! `plugins/ubuntu/src/plan.rs`); `tests/it/doctor.rs` checks it against
//! the default each plugin states in its `--keyring` help. A plugin not in
//! the table gets no keyring line.

use super::{Check, Probe};

/// A distro's default archive keyring and the package shipping it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveKeyring {
    /// The distro plugin's name.
    pub distro: &'static str,
    /// The keyring file.
    pub path: &'static str,
    /// Its Debian package.
    pub package: &'static str,
}

/// The keyrings of the Debian-family plugins.
pub const ARCHIVE_KEYRINGS: &[ArchiveKeyring] = &[
    ArchiveKeyring {
        distro: "debian",
        path: "/usr/share/keyrings/debian-archive-keyring.gpg",
        package: "debian-archive-keyring",
    },
    ArchiveKeyring {
        distro: "ubuntu",
        path: "/usr/share/keyrings/ubuntu-archive-keyring.gpg",
        package: "ubuntu-keyring",
    },
];

/// The keyring of `distro`, when it is a Debian-family plugin.
pub fn for_distro(distro: &str) -> Option<&'static ArchiveKeyring> {
    ARCHIVE_KEYRINGS.iter().find(|k| k.distro == distro)
}

/// The checks named `keyring:<distro>`, one per plugin in `distros` that has a keyring.
pub fn check(probe: &Probe, distros: &[&str]) -> Vec<Check> {
    distros
        .iter()
        .filter_map(|d| for_distro(d))
        .map(|keyring| {
            let name = format!("keyring:{}", keyring.distro);
            let present = probe.file(keyring.path).metadata().is_ok_and(|m| m.is_file() && m.len() > 0);
            if present {
                Check::ok(name, format!("{} (from {})", keyring.path, keyring.package))
            } else {
                Check::warn(
                    name,
                    format!(
                        "{} is missing: {} creates need --keyring FILE until it is installed",
                        keyring.path, keyring.distro
                    ),
                    format!("apt-get install {}", keyring.package),
                )
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures are built with std::fs on purpose
mod tests {
    use super::*;
    use crate::doctor::{Status, testing::FakeRoot};

    #[test]
    fn doctor_keyrings_one_line_per_debian_family_plugin() {
        let fake = FakeRoot::new();
        fake.write("/usr/share/keyrings/debian-archive-keyring.gpg", "keys");
        let checks = check(&fake.probe, &["busybox", "debian", "ubuntu"]);
        let summary: Vec<(&str, Status)> = checks.iter().map(|c| (c.name.as_str(), c.status)).collect();
        assert_eq!(summary, [("keyring:debian", Status::Ok), ("keyring:ubuntu", Status::Warn)]);
        assert_eq!(checks[1].fix.as_deref(), Some("apt-get install ubuntu-keyring"));
    }

    #[test]
    fn doctor_keyrings_empty_file_is_missing() {
        let fake = FakeRoot::new();
        fake.write("/usr/share/keyrings/debian-archive-keyring.gpg", "");
        assert_eq!(check(&fake.probe, &["debian"])[0].status, Status::Warn);
    }
}
