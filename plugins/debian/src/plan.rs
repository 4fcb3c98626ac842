//! One Debian create, resolved: the shared [`DebPlan`] filled with Debian's
//! archive data (release, debian-ports or not, components, include list,
//! keyring, security suite), plus what only Debian has.

use lxc_tmpl_deb::{
    debootstrap::Keyring,
    options::{BootstrapOptions, RELEASE},
    plan::{Archive, DebPlan},
    release::today_utc,
    system::{LocaleGen, NetworkStyle},
};
use lxc_tmpl_plugin_api::{HookContext, Host, PluginError};

use crate::{CLEAN, ENABLE_NON_FREE, release};

/// The keyring the Debian archive is checked against by default.
pub const KEYRING: Keyring =
    Keyring { path: "/usr/share/keyrings/debian-archive-keyring.gpg", package: "debian-archive-keyring" };
/// The keyring of debian-ports; its package is also installed into a
/// debian-ports container.
pub const PORTS_KEYRING: Keyring =
    Keyring { path: "/usr/share/keyrings/debian-ports-archive-keyring.gpg", package: "debian-ports-archive-keyring" };
/// The debootstrap script of Debian suites it has no script of.
pub const FALLBACK_SCRIPT: &str = "sid";
/// lxc-debian's debootstrap variant.
pub const VARIANT: &str = "minbase";
/// The first word of the cache key; bump it when what the download puts
/// into the cache changes.
pub const CACHE_FORMAT: &str = "debian-v1";

/// lxc-debian's include list on top of minbase: an init, ifupdown with a
/// DHCP client, locales, ssh; and dbus, which lxc-debian lacked: systemd's
/// `hostnamectl`, `localectl` and `timedatectl` talk to their daemons over
/// the system bus and fail with "Failed to connect to bus" without it
/// (every release built here, 10 and later, boots systemd). (`apt-transport-https`
/// is gone: apt has spoken https itself since 1.5, older than any release
/// built here.)
pub const BASE_PACKAGES: &[&str] = &[
    "init",
    "ifupdown",
    "locales",
    "ca-certificates",
    "dialog",
    "isc-dhcp-client",
    "netbase",
    "net-tools",
    "iproute2",
    "openssh-server",
    "dbus",
];

/// A Debian create, resolved.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What every debootstrap distro resolves.
    pub deb: DebPlan,
    /// The architecture is built on debian-ports (unstable only).
    pub ports: bool,
    /// The suite name the user gave when it was an alias (`stable`).
    pub alias: Option<String>,
}

impl AsRef<DebPlan> for Plan {
    fn as_ref(&self) -> &DebPlan {
        &self.deb
    }
}

impl Plan {
    /// Resolves the options of `ctx` (reading the release table through `host`).
    pub fn resolve(ctx: &HookContext, host: &mut Host<'_>) -> Result<Self, PluginError> {
        let boot = BootstrapOptions::from_context(ctx, &release::all_arches())?;
        let today = today_utc();
        let table = release::DISTRO_INFO.load(host)?;
        let (release, ports) = release::choose(&table, ctx.option(RELEASE), &boot.arch, &today)?;
        let alias = ctx
            .option(RELEASE)
            .map(|w| w.trim().to_ascii_lowercase())
            .filter(|w| release::ALIASES.contains(&w.as_str()) && *w != release.codename);
        let components = release::components(&release, ctx.flag(ENABLE_NON_FREE));
        let mut include: Vec<String> = BASE_PACKAGES.iter().map(|p| (*p).to_owned()).collect();
        if ports {
            include.push(PORTS_KEYRING.package.to_owned());
        }
        let archive = Archive {
            distro: "Debian",
            lxc_config_name: "debian",
            cache_format: CACHE_FORMAT,
            keyring: if ports { PORTS_KEYRING } else { KEYRING },
            fallback_script: FALLBACK_SCRIPT,
            variant: Some(VARIANT.to_owned()),
            sources_components: components.clone(),
            components,
            include,
            security_suite: if ports { None } else { release::security_suite(&release) },
            updates: !ports && release.version_number().is_some(),
            network: NetworkStyle::Ifupdown,
            locale_gen: LocaleGen::LocaleGenFile,
            multiarch: false,
        };
        let defaults = release::default_mirrors(&release, ports, &today);
        let mut deb = DebPlan::new(ctx, archive, release, boot, defaults, today)?;
        deb.cached = !ctx.flag(CLEAN);
        Ok(Plan { deb, ports, alias })
    }
}
