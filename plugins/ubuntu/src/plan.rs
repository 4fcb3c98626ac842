//! One create, resolved: the options with their defaults applied and
//! checked, the release and its traits, the mirrors, the package lists and
//! the cache key. Hooks are stateless, so each one resolves the plan again
//! (cheap next to a download); only `validate` logs what it finds.

use lxc_tmpl_deb::{
    arch::runs_natively,
    debootstrap::{SignatureCheck, choose_signature_check},
    flow::keyring_cache_id,
    options::{BootstrapOptions, LOCALE, TRIM},
    release::Release,
    sources::SourcesPlan,
    system::locale_from_lang,
};
use lxc_tmpl_plugin_api::{HookContext, Host, PluginError};

use crate::release::{self, ARCHES, Traits};

/// The keyring debootstrap checks Ubuntu archives with by default.
pub const DEFAULT_KEYRING: &str = "/usr/share/keyrings/ubuntu-archive-keyring.gpg";
/// The package that ships it.
pub const KEYRING_PACKAGE: &str = "ubuntu-keyring";
/// The generic debootstrap script for Ubuntu suites it has no script for.
pub const FALLBACK_SCRIPT: &str = "gutsy";
/// Components debootstrap installs from (as lxc-ubuntu).
pub const DEBOOTSTRAP_COMPONENTS: &[&str] = &["main", "universe"];
/// Components of the container's sources.list (as lxc-ubuntu).
pub const SOURCES_COMPONENTS: &[&str] = &["main", "restricted", "universe", "multiverse"];
/// Bump when what the download hook puts into the cache changes, so that
/// old cache entries are not reused.
pub const CACHE_FORMAT: &str = "v1";

/// The packages every cached Ubuntu rootfs gets on top of debootstrap's
/// choice (lxc-ubuntu's `packages_template`, plus sudo for the user's group).
pub const BASE_PACKAGES: &[&str] = &["ssh", "vim", "sudo", "language-pack-en"];

/// A create, resolved.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The release.
    pub release: Release,
    /// What the release's version implies.
    pub traits: Traits,
    /// The bootstrap options, checked.
    pub boot: BootstrapOptions,
    /// The host's architecture.
    pub host_arch: String,
    /// The archive mirror (given or default).
    pub mirror: String,
    /// The security mirror (given or default).
    pub security_mirror: String,
    /// The locale.
    pub locale: String,
    /// `--trim`.
    pub trim: bool,
    /// Today, `YYYY-MM-DD`.
    pub today: String,
}

impl Plan {
    /// Resolves the options of `ctx` (reading the release table through `host`).
    pub fn resolve(ctx: &HookContext, host: &mut Host<'_>) -> Result<Self, PluginError> {
        let boot = BootstrapOptions::from_context(ctx, ARCHES)?;
        let today = release::today();
        let table = release::table(host)?;
        let release = release::choose(
            &table,
            ctx.option(lxc_tmpl_deb::options::RELEASE),
            &ctx.facts.distro_id,
            &ctx.facts.distro_codename,
            &today,
        )?;
        let (default_mirror, default_security) = release::default_mirrors(&boot.arch, &release, &today);
        let mirror = boot.mirror.clone().unwrap_or_else(|| default_mirror.to_owned());
        // As lxc-ubuntu: a --mirror alone does not move the security suite
        // away from the official security mirror.
        let security_mirror = boot.security_mirror.clone().unwrap_or_else(|| default_security.to_owned());
        Ok(Plan {
            traits: Traits::of(&release),
            release,
            host_arch: ctx.facts.arch.to_string(),
            mirror,
            security_mirror,
            locale: locale_from_lang(ctx.option(LOCALE))?,
            trim: ctx.flag(TRIM),
            today,
            boot,
        })
    }

    /// The codename (`jammy`).
    pub fn suite(&self) -> &str {
        &self.release.codename
    }

    /// The container architecture.
    pub fn arch(&self) -> &str {
        &self.boot.arch
    }

    /// Whether the container's binaries need emulation on this host.
    pub fn foreign(&self) -> bool {
        !runs_natively(&self.host_arch, &self.boot.arch)
    }

    /// The packages installed into the cached rootfs (debootstrap `--include`).
    pub fn include(&self) -> Vec<String> {
        let mut include: Vec<String> = BASE_PACKAGES.iter().map(|p| (*p).to_owned()).collect();
        if self.traits.needs_apt_transport_https {
            include.push("apt-transport-https".into());
        }
        if self.boot.variant.as_deref() == Some("minbase")
            && self.traits.network == lxc_tmpl_deb::system::NetworkStyle::Ifupdown
        {
            // minbase has no network tool; ifupdown releases need these to boot with DHCP.
            include.extend(["ifupdown".into(), "isc-dhcp-client".into()]);
        }
        include
    }

    /// The sources of the container's own architecture.
    pub fn sources(&self) -> SourcesPlan {
        SourcesPlan {
            suite: self.suite().to_owned(),
            mirror: self.mirror.clone(),
            security_mirror: self.security_mirror.clone(),
            security_suite: Some(format!("{}-security", self.suite())),
            updates: true,
            components: SOURCES_COMPONENTS.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    /// The sources of the host's architecture, for a foreign container's
    /// multiarch sources.list: the given mirrors, else that architecture's
    /// default ones (the archive and ports mirrors differ).
    pub fn host_arch_sources(&self) -> SourcesPlan {
        let (mirror, security) = release::default_mirrors(&self.host_arch, &self.release, &self.today);
        SourcesPlan {
            mirror: self.boot.mirror.clone().unwrap_or_else(|| mirror.to_owned()),
            security_mirror: self.boot.security_mirror.clone().unwrap_or_else(|| security.to_owned()),
            ..self.sources()
        }
    }

    /// The signature check: `--keyring`, else the Ubuntu keyring; skipping
    /// only with `--no-check-gpg`.
    pub fn signature(&self, host: &mut Host<'_>) -> Result<SignatureCheck, PluginError> {
        choose_signature_check(
            host,
            self.boot.keyring.as_deref(),
            self.boot.no_check_gpg,
            DEFAULT_KEYRING,
            KEYRING_PACKAGE,
        )
    }

    /// The keyring to install into the container's trusted.gpg.d: a
    /// `--keyring` other than the Ubuntu keyring (which ubuntu-keyring in
    /// the rootfs already provides).
    pub fn keyring_to_install(signature: &SignatureCheck) -> Option<&str> {
        match signature {
            SignatureCheck::Keyring(path) if path != DEFAULT_KEYRING => Some(path),
            _ => None,
        }
    }

    /// The cache key: everything that changes the cached rootfs. The proxy
    /// and the per-container options (`--packages`, users, locale) are not
    /// part of it; the keyring is, by path and content.
    pub fn cache_key(&self, host: &mut Host<'_>) -> Result<String, PluginError> {
        let signature = self.signature(host)?;
        let keyring = keyring_cache_id(host, &signature)?;
        Ok(format!(
            "ubuntu-{CACHE_FORMAT} release={} arch={} variant={} mirror={} security-mirror={} components={} include={} keyring={keyring}",
            self.suite(),
            self.arch(),
            self.boot.variant_name(),
            self.mirror,
            self.security_mirror,
            DEBOOTSTRAP_COMPONENTS.join(","),
            self.include().join(","),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lxc_tmpl_deb::fake::{FakeHost, context, with_host};

    fn resolve(options: &[(&str, &[&str])]) -> (Plan, FakeHost) {
        let mut fake = FakeHost::sealed();
        fake.put_host(DEFAULT_KEYRING, "ubuntu keys");
        let plan = with_host(&mut fake, |h| Plan::resolve(&context("ubuntu", "u1", options), h)).unwrap();
        (plan, fake)
    }

    #[test]
    fn defaults_on_a_debian_amd64_host() {
        let (plan, mut fake) = resolve(&[]);
        assert!(plan.release.lts, "latest LTS on a non-Ubuntu host");
        assert_eq!(plan.arch(), "amd64");
        assert_eq!(plan.mirror, release::ARCHIVE_MIRROR);
        assert_eq!(plan.security_mirror, release::SECURITY_MIRROR);
        assert!(!plan.locale.is_empty());
        assert!(!plan.foreign());
        assert_eq!(plan.include(), ["ssh", "vim", "sudo", "language-pack-en"]);
        let signature = with_host(&mut fake, |h| plan.signature(h)).unwrap();
        assert_eq!(signature, SignatureCheck::Keyring(DEFAULT_KEYRING.into()));
        assert_eq!(Plan::keyring_to_install(&signature), None);
    }

    #[test]
    fn local_mirrors() {
        let (plan, _) = resolve(&[("release", &["22.04"]), ("mirror", &["http://127.0.0.1:9/ubuntu"])]);
        assert_eq!(plan.security_mirror, release::SECURITY_MIRROR, "as lxc-ubuntu");
        let (plan, _) = resolve(&[
            ("release", &["22.04"]),
            ("mirror", &["http://127.0.0.1:9/ubuntu"]),
            ("security-mirror", &["http://127.0.0.1:9/ubuntu"]),
        ]);
        assert_eq!(plan.suite(), "jammy");
        assert_eq!(plan.security_mirror, "http://127.0.0.1:9/ubuntu");
        let lines = plan.sources().lines(None);
        assert_eq!(
            lines,
            [
                "deb http://127.0.0.1:9/ubuntu jammy main restricted universe multiverse",
                "deb http://127.0.0.1:9/ubuntu jammy-updates main restricted universe multiverse",
                "deb http://127.0.0.1:9/ubuntu jammy-security main restricted universe multiverse",
            ]
        );
    }

    #[test]
    fn old_release_with_minbase_gets_its_network_tools() {
        let (plan, _) = resolve(&[("release", &["xenial"]), ("variant", &["minbase"])]);
        assert_eq!(
            plan.include(),
            ["ssh", "vim", "sudo", "language-pack-en", "apt-transport-https", "ifupdown", "isc-dhcp-client"]
        );
    }

    #[test]
    fn foreign_arch_uses_ports_and_the_host_archive_for_multiarch() {
        let (plan, _) = resolve(&[("release", &["noble"]), ("arch", &["arm64"])]);
        assert!(plan.foreign());
        assert_eq!(plan.mirror, release::PORTS_MIRROR);
        assert_eq!(plan.host_arch_sources().mirror, release::ARCHIVE_MIRROR);
        assert_eq!(plan.host_arch_sources().security_mirror, release::SECURITY_MIRROR);
    }

    #[test]
    fn cache_key_has_everything_that_changes_the_cache() {
        let key = |options: &[(&str, &[&str])], keyring_content: &str| {
            let (plan, mut fake) = resolve(options);
            fake.put_host("/fixture.gpg", keyring_content);
            with_host(&mut fake, |h| plan.cache_key(h)).unwrap()
        };
        let base = key(&[("release", &["jammy"])], "a");
        assert!(base.starts_with("ubuntu-v1 release=jammy arch=amd64 variant=default mirror=http://archive"), "{base}");
        assert!(base.contains("include=ssh,vim,sudo,language-pack-en"), "{base}");
        assert!(base.contains(&format!("keyring={DEFAULT_KEYRING}@")), "{base}");
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
