//! Config key dialects: LXC 2.1 renamed most keys and LXC 3.0 removed the
//! old names, so a config is written in the dialect of the LXC that will read
//! it. Plugins always speak the 2.1+ dialect; this module translates for older
//! targets (the reverse of `lxc-update-config`).

use semver::Version;

/// Which key names the target LXC understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialect {
    target: Version,
}

/// What becomes of one entry in a dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Translated {
    /// Write this key and value.
    Entry(String, String),
    /// The target has no such key; the entry is left out (and listed as a comment).
    Dropped,
}

/// 2.1+ name prefix -> legacy name prefix. Exact keys and prefixes of
/// `lxc.net.N.` are handled in [`Dialect::translate`].
const LEGACY_RENAMES: &[(&str, &str)] = &[
    ("lxc.uts.name", "lxc.utsname"),
    ("lxc.tty.max", "lxc.tty"),
    ("lxc.pty.max", "lxc.pts"),
    ("lxc.tty.dir", "lxc.devttydir"),
    ("lxc.mount.fstab", "lxc.mount"),
    ("lxc.apparmor.profile", "lxc.aa_profile"),
    ("lxc.apparmor.allow_incomplete", "lxc.aa_allow_incomplete"),
    ("lxc.selinux.context", "lxc.se_context"),
    ("lxc.seccomp.profile", "lxc.seccomp"),
    ("lxc.console.path", "lxc.console"),
    ("lxc.signal.halt", "lxc.haltsignal"),
    ("lxc.signal.reboot", "lxc.rebootsignal"),
    ("lxc.signal.stop", "lxc.stopsignal"),
    ("lxc.log.syslog", "lxc.syslog"),
    ("lxc.log.level", "lxc.loglevel"),
    ("lxc.log.file", "lxc.logfile"),
    ("lxc.init.cmd", "lxc.init_cmd"),
    ("lxc.init.uid", "lxc.init_uid"),
    ("lxc.init.gid", "lxc.init_gid"),
    ("lxc.idmap", "lxc.id_map"),
];

/// Keys (or prefixes ending in `.`) that LXC before 2.1 does not know at all.
const LEGACY_MISSING: &[&str] =
    &["lxc.cgroup2.", "lxc.apparmor.allow_nesting", "lxc.rootfs.managed", "lxc.hook.version"];

impl Dialect {
    /// The dialect of LXC `target`.
    pub fn for_version(target: Version) -> Self {
        Dialect { target }
    }

    /// The target version.
    pub fn target(&self) -> &Version {
        &self.target
    }

    /// Whether the target predates the 2.1 key names.
    pub fn is_legacy(&self) -> bool {
        self.target < Version::new(2, 1, 0)
    }

    /// Translates one 2.1+ entry into this dialect.
    pub fn translate(&self, key: &str, value: &str) -> Translated {
        if !self.is_legacy() {
            return Translated::Entry(key.to_owned(), value.to_owned());
        }
        if LEGACY_MISSING.iter().any(|m| key == *m || (m.ends_with('.') && key.starts_with(m))) {
            return Translated::Dropped;
        }
        if key == "lxc.rootfs.path" {
            // `dir:` backend prefixes came with lxc.rootfs.path.
            let path = value.strip_prefix("dir:").unwrap_or(value);
            return Translated::Entry("lxc.rootfs".into(), path.into());
        }
        if let Some(rest) = key.strip_prefix("lxc.prlimit.") {
            return Translated::Entry(format!("lxc.limit.{rest}"), value.into());
        }
        if let Some(sub) = net_subkey(key) {
            // The legacy form has no index: each lxc.network.type starts the
            // next interface, so entries must already be grouped per NIC.
            let sub = match sub {
                "ipv4.address" => "ipv4",
                "ipv6.address" => "ipv6",
                other => other,
            };
            return Translated::Entry(format!("lxc.network.{sub}"), value.into());
        }
        for (new, old) in LEGACY_RENAMES {
            if key == *new {
                return Translated::Entry((*old).into(), value.into());
            }
        }
        Translated::Entry(key.into(), value.into())
    }
}

impl Dialect {
    /// Translates one line of a base config, which may be written in either
    /// dialect (an old `/etc/lxc/default.conf` uses the legacy names), into
    /// this dialect. `nic` counts legacy `lxc.network.type` lines, each of
    /// which starts the next interface.
    pub fn translate_base(&self, key: &str, value: &str, nic: &mut Option<usize>) -> Translated {
        if self.is_legacy() {
            return self.translate(key, value);
        }
        if REMOVED_IN_3_0.contains(&key) {
            return Translated::Dropped;
        }
        if let Some(sub) = key.strip_prefix("lxc.network.") {
            if sub == "type" {
                *nic = Some(nic.map_or(0, |n| n + 1));
            }
            let index = nic.unwrap_or(0);
            let sub = match sub {
                "ipv4" => "ipv4.address",
                "ipv6" => "ipv6.address",
                other => other,
            };
            return Translated::Entry(format!("lxc.net.{index}.{sub}"), value.into());
        }
        if let Some(rest) = key.strip_prefix("lxc.limit.") {
            return Translated::Entry(format!("lxc.prlimit.{rest}"), value.into());
        }
        let renamed = LEGACY_RENAMES.iter().find(|(_, old)| key == *old).map_or(key, |(new, _)| *new);
        Translated::Entry(renamed.into(), value.into())
    }
}

/// Legacy keys LXC 3.0 removed without a successor.
const REMOVED_IN_3_0: &[&str] = &["lxc.pivotdir", "lxc.kmsg"];

/// `type` for `lxc.net.0.type`.
fn net_subkey(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("lxc.net.")?;
    let (index, sub) = rest.split_once('.')?;
    index.chars().all(|c| c.is_ascii_digit()).then_some(sub)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legacy() -> Dialect {
        Dialect::for_version(Version::new(2, 0, 0))
    }

    fn entry(k: &str, v: &str) -> Translated {
        Translated::Entry(k.into(), v.into())
    }

    #[test]
    fn modern_targets_keep_keys() {
        let d = Dialect::for_version(Version::new(5, 0, 2));
        assert!(!d.is_legacy());
        assert_eq!(d.translate("lxc.uts.name", "c1"), entry("lxc.uts.name", "c1"));
        assert_eq!(d.translate("lxc.cgroup2.devices.allow", "a"), entry("lxc.cgroup2.devices.allow", "a"));
    }

    #[test]
    fn base_lines_move_to_the_target_dialect() {
        let modern = Dialect::for_version(Version::new(5, 0, 2));
        let mut nic = None;
        let mut t = |k, v| modern.translate_base(k, v, &mut nic);
        assert_eq!(t("lxc.utsname", "c1"), entry("lxc.uts.name", "c1"));
        assert_eq!(t("lxc.network.type", "veth"), entry("lxc.net.0.type", "veth"));
        assert_eq!(t("lxc.network.link", "br0"), entry("lxc.net.0.link", "br0"));
        assert_eq!(t("lxc.network.type", "empty"), entry("lxc.net.1.type", "empty"));
        assert_eq!(t("lxc.network.ipv4", "10.0.0.2/24"), entry("lxc.net.1.ipv4.address", "10.0.0.2/24"));
        assert_eq!(t("lxc.aa_profile", "unconfined"), entry("lxc.apparmor.profile", "unconfined"));
        assert_eq!(t("lxc.pivotdir", "x"), Translated::Dropped);
        assert_eq!(t("lxc.net.0.type", "empty"), entry("lxc.net.0.type", "empty"));

        let mut nic = None;
        assert_eq!(legacy().translate_base("lxc.net.0.type", "empty", &mut nic), entry("lxc.network.type", "empty"));
        assert_eq!(
            legacy().translate_base("lxc.apparmor.profile", "unconfined", &mut nic),
            entry("lxc.aa_profile", "unconfined")
        );
    }

    #[test]
    fn legacy_renames() {
        let d = legacy();
        assert_eq!(d.translate("lxc.uts.name", "c1"), entry("lxc.utsname", "c1"));
        assert_eq!(d.translate("lxc.rootfs.path", "dir:/x/rootfs"), entry("lxc.rootfs", "/x/rootfs"));
        assert_eq!(d.translate("lxc.tty.max", "4"), entry("lxc.tty", "4"));
        assert_eq!(d.translate("lxc.pty.max", "1024"), entry("lxc.pts", "1024"));
        assert_eq!(d.translate("lxc.signal.halt", "SIGUSR1"), entry("lxc.haltsignal", "SIGUSR1"));
        assert_eq!(d.translate("lxc.net.0.type", "veth"), entry("lxc.network.type", "veth"));
        assert_eq!(d.translate("lxc.net.0.ipv4.address", "10.0.0.2/24"), entry("lxc.network.ipv4", "10.0.0.2/24"));
        assert_eq!(d.translate("lxc.prlimit.nofile", "1024"), entry("lxc.limit.nofile", "1024"));
        assert_eq!(d.translate("lxc.mount.entry", "a b"), entry("lxc.mount.entry", "a b"));
        assert_eq!(d.translate("lxc.cgroup2.devices.deny", "a"), Translated::Dropped);
    }
}
