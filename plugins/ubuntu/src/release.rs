//! Ubuntu release knowledge, as data: the release table (distro-info-data's
//! `ubuntu.csv`, with a built-in copy) and, per version, the init system,
//! the network configuration tool and the few quirks the old template
//! handled in code.

use lxc_tmpl_deb::{
    release::{DistroInfo, Release, ReleaseTable, today_utc},
    sources::Mirrors,
    system::NetworkStyle,
};
use lxc_tmpl_plugin_api::{PluginError, ReleaseInfo};

/// The Ubuntu release table: distro-info-data's `ubuntu.csv`, and a copy.
pub const DISTRO_INFO: DistroInfo = DistroInfo { csv: "ubuntu.csv", builtin: include_str!("../data/ubuntu.csv") };

/// The mirrors of amd64 and i386.
pub const ARCHIVE: Mirrors = Mirrors::new("http://archive.ubuntu.com/ubuntu", "http://security.ubuntu.com/ubuntu");
/// The mirror (archive and security) of every other architecture.
pub const PORTS: Mirrors = Mirrors::same("http://ports.ubuntu.com/ubuntu-ports");
/// Where releases go after their end of life (all architectures).
pub const OLD_RELEASES: Mirrors = Mirrors::same("http://old-releases.ubuntu.com/ubuntu");

/// The architectures Ubuntu builds.
pub const ARCHES: &[&str] = &["amd64", "i386", "arm64", "armhf", "ppc64el", "s390x", "riscv64"];

/// The init system of a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// Upstart (before 15.04).
    Upstart,
    /// systemd (15.04 and later).
    Systemd,
}

/// What differs between Ubuntu releases, for this plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traits {
    /// The init system.
    pub init: Init,
    /// How the network is configured.
    pub network: NetworkStyle,
    /// apt before 1.5 (before 18.04) needs apt-transport-https for https mirrors.
    pub needs_apt_transport_https: bool,
    /// 12.04 and older want `/dev/shm` as a link to `/run/shm`.
    pub dev_shm_link: bool,
}

/// From which version each trait changes (`(major, minor)`): the release
/// knowledge the old script spread over `case` statements and probes.
pub const SYSTEMD_SINCE: (u32, u32) = (15, 4);
/// Netplan replaced ifupdown in 17.10 (artful).
pub const NETPLAN_SINCE: (u32, u32) = (17, 10);
/// apt 1.5 (18.04) speaks https itself.
pub const APT_HTTPS_SINCE: (u32, u32) = (18, 4);
/// The `/dev/shm` -> `/run/shm` link, needed up to 12.04.
pub const RUN_SHM_UNTIL: (u32, u32) = (12, 4);

impl Traits {
    /// The traits of a release; a release without a version number is
    /// treated as the newest.
    pub fn of(release: &Release) -> Self {
        let version = release.version_number().unwrap_or((u32::MAX, 0));
        Traits {
            init: if version >= SYSTEMD_SINCE { Init::Systemd } else { Init::Upstart },
            network: if version >= NETPLAN_SINCE { NetworkStyle::Netplan } else { NetworkStyle::Ifupdown },
            needs_apt_transport_https: version < APT_HTTPS_SINCE,
            dev_shm_link: version <= RUN_SHM_UNTIL,
        }
    }
}

/// The release to build: `wanted` (codename, version or name), else the
/// host's release when the host runs Ubuntu, else the latest LTS.
pub fn choose(
    table: &ReleaseTable,
    wanted: Option<&str>,
    host_id: &str,
    host_codename: &str,
    today: &str,
) -> Result<Release, PluginError> {
    if let Some(wanted) = wanted {
        return table.find(wanted).cloned().ok_or_else(|| {
            PluginError::invalid_input(format!(
                "unknown Ubuntu release '{wanted}': choose a codename or version such as {} (lxc-tmpl info ubuntu lists them)",
                table.suggestions(today).join(", ")
            ))
        });
    }
    if host_id == "ubuntu"
        && let Some(release) = table.find(host_codename)
    {
        return Ok(release.clone());
    }
    table
        .latest_lts(today)
        .cloned()
        .ok_or_else(|| PluginError::failed("the Ubuntu release table has no released LTS (plugin bug)"))
}

/// Whether a release's packages have moved to old-releases.ubuntu.com: its
/// standard support is over and so is any extended support.
pub fn on_old_releases(release: &Release, today: &str) -> bool {
    release.is_eol(today) && (release.eol_extended.is_empty() || release.eol_extended.as_str() < today)
}

/// The default archive and security mirrors of an architecture.
pub fn default_mirrors(arch: &str, release: &Release, today: &str) -> Mirrors {
    if on_old_releases(release, today) {
        OLD_RELEASES
    } else if matches!(arch, "amd64" | "i386") {
        ARCHIVE
    } else {
        PORTS
    }
}

/// The releases `lxc-tmpl info ubuntu` lists: 14.04 and newer.
pub fn manifest_releases() -> Vec<ReleaseInfo> {
    DISTRO_INFO
        .builtin_table()
        .releases()
        .iter()
        .filter(|r| r.version_number().is_some_and(|v| v >= (14, 4)))
        .map(|r| {
            let mut info = ReleaseInfo::new(&r.codename, &r.version);
            info.lts = r.lts;
            info.eol = r.eol.as_str().into();
            info
        })
        .collect()
}

/// Today, for release decisions.
pub fn today() -> String {
    today_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_knows_the_lts_releases() {
        let table = DISTRO_INFO.builtin_table();
        for (codename, version) in [("trusty", "14.04"), ("xenial", "16.04"), ("jammy", "22.04"), ("noble", "24.04")] {
            let r = table.find(codename).unwrap();
            assert_eq!(r.version, version);
            assert!(r.lts);
        }
    }

    #[test]
    fn traits_by_version() {
        let table = DISTRO_INFO.builtin_table();
        let traits = |c: &str| Traits::of(table.find(c).unwrap());
        assert_eq!(traits("trusty").init, Init::Upstart);
        assert_eq!(traits("trusty").network, NetworkStyle::Ifupdown);
        assert_eq!(traits("xenial").init, Init::Systemd);
        assert_eq!(traits("zesty").network, NetworkStyle::Ifupdown);
        assert_eq!(traits("artful").network, NetworkStyle::Netplan);
        assert!(traits("xenial").needs_apt_transport_https);
        assert!(!traits("bionic").needs_apt_transport_https);
        assert!(traits("precise").dev_shm_link);
        assert!(!traits("quantal").dev_shm_link);
        let jammy = traits("jammy");
        assert_eq!((jammy.init, jammy.network), (Init::Systemd, NetworkStyle::Netplan));
    }

    #[test]
    fn release_choice() {
        let table = DISTRO_INFO.builtin_table();
        let today = "2026-11-29";
        assert_eq!(choose(&table, Some("22.04"), "", "", today).unwrap().codename, "jammy");
        assert_eq!(choose(&table, Some("noble"), "", "", today).unwrap().codename, "noble");
        assert_eq!(choose(&table, None, "ubuntu", "jammy", today).unwrap().codename, "jammy", "host's release");
        assert_eq!(choose(&table, None, "debian", "bookworm", today).unwrap().codename, "resolute", "latest LTS");
        assert_eq!(choose(&table, None, "debian", "bookworm", "2025-01-01").unwrap().codename, "noble");
        let err = choose(&table, Some("jammmy"), "", "", today).unwrap_err();
        assert!(err.message.contains("unknown Ubuntu release 'jammmy'"), "{}", err.message);
        assert!(err.message.contains("jammy (22.04 LTS)"), "{}", err.message);
    }

    #[test]
    fn mirrors() {
        let table = DISTRO_INFO.builtin_table();
        let jammy = table.find("jammy").unwrap();
        let today = "2026-11-29";
        assert_eq!(default_mirrors("amd64", jammy, today), ARCHIVE);
        assert_eq!(default_mirrors("i386", jammy, today), ARCHIVE);
        assert_eq!(default_mirrors("arm64", jammy, today), PORTS);
        let artful = table.find("artful").unwrap();
        assert_eq!(default_mirrors("amd64", artful, today), OLD_RELEASES);
        let xenial = table.find("xenial").unwrap();
        assert!(!on_old_releases(xenial, today), "ESM releases stay on the archive");
    }

    #[test]
    fn manifest_lists_recent_releases() {
        let releases = manifest_releases();
        assert_eq!(releases[0].codename, "trusty");
        let jammy = releases.iter().find(|r| r.codename == "jammy").unwrap();
        assert!(jammy.lts && jammy.matches("22.04"));
        assert_eq!(jammy.eol, "2027-06-01");
    }
}
