//! One create, resolved: the shared [`DebPlan`] (options with their
//! defaults applied and checked, release, mirrors, package lists) with what
//! only Ubuntu has: the release's traits and `--trim`. Hooks are stateless,
//! so each one resolves the plan again (cheap next to a download); only
//! `validate` logs what it finds.

use lxc_tmpl_deb::{
    debootstrap::Keyring,
    options::{BootstrapOptions, RELEASE, TRIM},
    plan::{Archive, DebPlan},
    sources::SourcesPlan,
    system::{LocaleGen, NetworkStyle},
};
use lxc_tmpl_plugin_api::{HookContext, Host, PluginError};

use crate::release::{self, ARCHES, Init, Traits};

/// The keyring debootstrap checks Ubuntu archives with by default.
pub const KEYRING: Keyring =
    Keyring { path: "/usr/share/keyrings/ubuntu-archive-keyring.gpg", package: "ubuntu-keyring" };
/// The generic debootstrap script for Ubuntu suites it has no script for.
pub const FALLBACK_SCRIPT: &str = "gutsy";
/// Components debootstrap installs from (as lxc-ubuntu).
pub const DEBOOTSTRAP_COMPONENTS: &[&str] = &["main", "universe"];
/// Components of the container's sources.list (as lxc-ubuntu).
pub const SOURCES_COMPONENTS: &[&str] = &["main", "restricted", "universe", "multiverse"];
/// The first word of the cache key: bump the version when what the download
/// hook puts into the cache changes, so that old cache entries are not reused.
pub const CACHE_FORMAT: &str = "ubuntu-v2";

/// The packages every cached Ubuntu rootfs gets on top of debootstrap's
/// choice (lxc-ubuntu's `packages_template`, plus sudo for the user's group
/// and locales, whose `locale-gen` and `SUPPORTED` list the `configure`
/// hook needs to make the container's locale: a LANG naming a locale that
/// was never generated makes every perl and apt run warn).
pub const BASE_PACKAGES: &[&str] = &["ssh", "vim", "sudo", "language-pack-en", "locales"];

/// A create, resolved.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What every debootstrap distro resolves.
    pub deb: DebPlan,
    /// What the release's version implies.
    pub traits: Traits,
    /// `--trim`.
    pub trim: bool,
}

impl AsRef<DebPlan> for Plan {
    fn as_ref(&self) -> &DebPlan {
        &self.deb
    }
}

impl Plan {
    /// Resolves the options of `ctx` (reading the release table through `host`).
    pub fn resolve(ctx: &HookContext, host: &mut Host<'_>) -> Result<Self, PluginError> {
        let boot = BootstrapOptions::from_context(ctx, ARCHES)?;
        let today = release::today();
        let table = release::DISTRO_INFO.load(host)?;
        let release =
            release::choose(&table, ctx.option(RELEASE), &ctx.facts.distro_id, &ctx.facts.distro_codename, &today)?;
        let traits = Traits::of(&release);
        let defaults = release::default_mirrors(&boot.arch, &release, &today);
        let owned = |list: &[&str]| list.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>();
        let archive = Archive {
            distro: "Ubuntu",
            lxc_config_name: "ubuntu",
            cache_format: CACHE_FORMAT,
            keyring: KEYRING,
            fallback_script: FALLBACK_SCRIPT,
            variant: boot.variant.clone(),
            components: owned(DEBOOTSTRAP_COMPONENTS),
            include: include(&traits, boot.variant.as_deref()),
            sources_components: owned(SOURCES_COMPONENTS),
            security_suite: Some(format!("{}-security", release.codename)),
            updates: true,
            network: traits.network,
            locale_gen: LocaleGen::Argument,
            multiarch: true,
        };
        Ok(Plan { deb: DebPlan::new(ctx, archive, release, boot, defaults, today)?, traits, trim: ctx.flag(TRIM) })
    }

    /// The sources of the host's architecture, for a foreign container's
    /// multiarch sources.list: the given mirrors, else that architecture's
    /// default ones (the archive and ports mirrors differ).
    pub fn host_arch_sources(&self) -> SourcesPlan {
        let deb = &self.deb;
        let defaults = release::default_mirrors(&deb.host_arch, &deb.release, &deb.today);
        SourcesPlan {
            mirror: deb.boot.mirror.clone().unwrap_or_else(|| defaults.archive.to_owned()),
            security_mirror: deb.boot.security_mirror.clone().unwrap_or_else(|| defaults.security.to_owned()),
            ..deb.sources()
        }
    }
}

/// The packages installed into the cached rootfs (debootstrap `--include`):
/// [`BASE_PACKAGES`], and by release and variant:
///
/// - systemd releases: `dbus` (systemd's `hostnamectl`, `localectl` and
///   `timedatectl` fail with "Failed to connect to bus" without the system
///   bus) and, for minbase, `init` (minbase is debootstrap's `required`
///   priority only, which has no init: the container would not boot; as
///   lxc-debian adds `init` to its minbase);
/// - upstart releases with minbase: `upstart`, for the same reason;
/// - apt before 1.5: `apt-transport-https`;
/// - ifupdown releases with minbase: `ifupdown` and `isc-dhcp-client`.
pub fn include(traits: &Traits, variant: Option<&str>) -> Vec<String> {
    let minbase = variant == Some("minbase");
    let mut include: Vec<String> = BASE_PACKAGES.iter().map(|p| (*p).to_owned()).collect();
    match traits.init {
        Init::Systemd => {
            if minbase {
                include.push("init".into());
            }
            include.push("dbus".into());
        }
        Init::Upstart if minbase => include.push("upstart".into()),
        Init::Upstart => {}
    }
    if traits.needs_apt_transport_https {
        include.push("apt-transport-https".into());
    }
    if minbase && traits.network == NetworkStyle::Ifupdown {
        // minbase has no network tool; ifupdown releases need these to boot with DHCP.
        include.extend(["ifupdown".into(), "isc-dhcp-client".into()]);
    }
    include
}

#[cfg(test)]
mod tests {
    use super::*;
    use lxc_tmpl_deb::{
        debootstrap::SignatureCheck,
        fake::{FakeHost, context, with_host},
    };

    fn resolve(options: &[(&str, &[&str])]) -> (DebPlan, Plan, FakeHost) {
        let mut fake = FakeHost::sealed();
        fake.put_host(KEYRING.path, "ubuntu keys");
        let plan = with_host(&mut fake, |h| Plan::resolve(&context("ubuntu", "u1", options), h)).unwrap();
        (plan.deb.clone(), plan, fake)
    }

    #[test]
    fn defaults_on_a_debian_amd64_host() {
        let (deb, _, mut fake) = resolve(&[]);
        assert!(deb.release.lts, "latest LTS on a non-Ubuntu host");
        assert_eq!(deb.arch(), "amd64");
        assert_eq!(
            (deb.mirror.as_str(), deb.security_mirror.as_str()),
            (release::ARCHIVE.archive, release::ARCHIVE.security)
        );
        assert!(!deb.locale.is_empty());
        assert!(!deb.foreign());
        assert_eq!(deb.archive.include, ["ssh", "vim", "sudo", "language-pack-en", "locales", "dbus"]);
        let signature = with_host(&mut fake, |h| deb.signature(h)).unwrap();
        assert_eq!(signature, SignatureCheck::Keyring(KEYRING.path.into()));
        assert_eq!(deb.keyring_to_install(&signature), None);
    }

    #[test]
    fn local_mirrors() {
        let (deb, _, _) = resolve(&[("release", &["22.04"]), ("mirror", &["http://127.0.0.1:9/ubuntu"])]);
        assert_eq!(deb.security_mirror, release::ARCHIVE.security, "as lxc-ubuntu");
        let local = ["http://127.0.0.1:9/ubuntu"];
        let (deb, _, _) = resolve(&[("release", &["22.04"]), ("mirror", &local), ("security-mirror", &local)]);
        assert_eq!(deb.suite(), "jammy");
        assert_eq!(
            deb.sources().lines(None),
            [
                "deb http://127.0.0.1:9/ubuntu jammy main restricted universe multiverse",
                "deb http://127.0.0.1:9/ubuntu jammy-updates main restricted universe multiverse",
                "deb http://127.0.0.1:9/ubuntu jammy-security main restricted universe multiverse",
            ]
        );
    }

    #[test]
    fn old_release_with_minbase_gets_its_init_and_network_tools() {
        let (deb, plan, _) = resolve(&[("release", &["xenial"]), ("variant", &["minbase"])]);
        assert_eq!(
            deb.archive.include,
            [
                "ssh",
                "vim",
                "sudo",
                "language-pack-en",
                "locales",
                "init",
                "dbus",
                "apt-transport-https",
                "ifupdown",
                "isc-dhcp-client"
            ]
        );
        assert_eq!(deb.archive.network, plan.traits.network);
        let (deb, _, _) = resolve(&[("release", &["trusty"]), ("variant", &["minbase"])]);
        assert!(deb.archive.include.contains(&"upstart".to_owned()), "{:?}", deb.archive.include);
        assert!(!deb.archive.include.contains(&"dbus".to_owned()), "upstart releases: {:?}", deb.archive.include);
    }

    #[test]
    fn minbase_of_a_systemd_release_boots() {
        let (deb, _, _) = resolve(&[("release", &["jammy"]), ("variant", &["minbase"])]);
        assert_eq!(deb.archive.include, ["ssh", "vim", "sudo", "language-pack-en", "locales", "init", "dbus"]);
        let (deb, _, _) = resolve(&[("release", &["jammy"])]);
        assert!(!deb.archive.include.contains(&"init".to_owned()), "the default variant has an init");
    }

    #[test]
    fn foreign_arch_uses_ports_and_the_host_archive_for_multiarch() {
        let (deb, plan, _) = resolve(&[("release", &["noble"]), ("arch", &["arm64"])]);
        assert!(deb.foreign() && !deb.two_stage());
        assert_eq!(deb.mirror, release::PORTS.archive);
        assert_eq!(plan.host_arch_sources().mirror, release::ARCHIVE.archive);
        assert_eq!(plan.host_arch_sources().security_mirror, release::ARCHIVE.security);
    }

    #[test]
    fn cache_key_has_everything_that_changes_the_cache() {
        let key = |options: &[(&str, &[&str])], keyring_content: &str| {
            let (deb, _, mut fake) = resolve(options);
            fake.put_host("/fixture.gpg", keyring_content);
            with_host(&mut fake, |h| deb.cache_key(h)).unwrap()
        };
        let base = key(&[("release", &["jammy"])], "a");
        assert!(base.starts_with("ubuntu-v2 release=jammy arch=amd64 variant=default mirror=http://archive"), "{base}");
        assert!(base.contains("include=ssh,vim,sudo,language-pack-en,locales,dbus"), "{base}");
        assert!(base.contains(&format!("keyring={}@", KEYRING.path)), "{base}");
        let differs = [
            key(&[("release", &["noble"])], "a"),
            key(&[("release", &["jammy"]), ("variant", &["minbase"])], "a"),
            key(&[("release", &["jammy"]), ("mirror", &["http://m/ubuntu"])], "a"),
            key(&[("release", &["jammy"]), ("security-mirror", &["http://s/ubuntu"])], "a"),
            key(&[("release", &["jammy"]), ("keyring", &["/fixture.gpg"])], "a"),
            key(&[("release", &["jammy"]), ("no-check-gpg", &[])], "a"),
        ];
        for other in &differs {
            assert_ne!(&base, other);
        }
        assert_ne!(
            key(&[("release", &["jammy"]), ("keyring", &["/fixture.gpg"])], "a"),
            key(&[("release", &["jammy"]), ("keyring", &["/fixture.gpg"])], "b"),
            "keyring content"
        );
        // Per-container options do not split the cache.
        assert_eq!(base, key(&[("release", &["22.04"]), ("packages", &["less"]), ("user", &["bob"])], "a"));
    }
}
