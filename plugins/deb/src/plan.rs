//! One create of a debootstrap-based distro, resolved: what every such
//! plugin knows once it has read its options ([`DebPlan`]), and what follows
//! from that in the same way for every distro: the signature check, the
//! architecture support, the debootstrap run, the package sources and the
//! cache key. The distro's own knowledge comes in as data ([`Archive`]).
//!
//! Hooks are stateless: each one resolves the plan again (cheap next to a
//! download).

use lxc_tmpl_plugin_api::{HookContext, Host, PluginError};

use crate::{
    arch::{ArchSupport, check_arch_support, check_interpreter, runs_natively},
    debootstrap::{DebootstrapPlan, Keyring, SignatureCheck, choose_signature_check, content_hash, script_for},
    flow::keyring_cache_id,
    options::{BootstrapOptions, LOCALE},
    release::Release,
    sources::{Mirrors, SourcesPlan},
    system::{LocaleGen, NetworkStyle, locale_from_lang},
};

/// What a distro says about its archive and its rootfs, for one release
/// and architecture: the data the shared steps need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    /// The distro's name in messages (`Ubuntu`, `Debian`).
    pub distro: &'static str,
    /// The name of LXC's config files for it (`ubuntu` for
    /// `/usr/share/lxc/config/ubuntu.common.conf`).
    pub lxc_config_name: &'static str,
    /// The first word of every cache key, with a format version (`ubuntu-v2`):
    /// bump it when what the download puts into the cache changes.
    pub cache_format: &'static str,
    /// The keyring the archive is checked against unless `--keyring` says
    /// otherwise.
    pub keyring: Keyring,
    /// The debootstrap script for a suite debootstrap has no script of
    /// (`gutsy`, `sid`).
    pub fallback_script: &'static str,
    /// debootstrap's `--variant`, `None` for its default.
    pub variant: Option<String>,
    /// debootstrap's `--components`.
    pub components: Vec<String>,
    /// debootstrap's `--include`: the packages of the cached rootfs.
    pub include: Vec<String>,
    /// The components of the container's sources.list.
    pub sources_components: Vec<String>,
    /// The security suite (`jammy-security`, `buster/updates`); `None` when
    /// there is none (Debian unstable).
    pub security_suite: Option<String>,
    /// Whether the release has a `-updates` suite.
    pub updates: bool,
    /// How the release configures its network.
    pub network: NetworkStyle,
    /// How its `locale-gen` is driven.
    pub locale_gen: LocaleGen,
    /// A foreign container also gets the host's architecture
    /// (`dpkg --add-architecture`) in `post_process`.
    pub multiarch: bool,
}

/// A create, resolved: the release, the checked bootstrap options, the
/// mirrors and the archive data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebPlan {
    /// The distro's archive data.
    pub archive: Archive,
    /// The release.
    pub release: Release,
    /// The bootstrap options, checked.
    pub boot: BootstrapOptions,
    /// The host's architecture.
    pub host_arch: String,
    /// The archive mirror (given or the distro's default).
    pub mirror: String,
    /// The security mirror (given or the distro's default).
    pub security_mirror: String,
    /// The locale (`--locale`, `$LANG`).
    pub locale: String,
    /// Whether the rootfs comes from the cache; `false` builds it straight
    /// into the container.
    pub cached: bool,
    /// Today, `YYYY-MM-DD`.
    pub today: String,
}

/// A distro whose plan has nothing of its own uses [`DebPlan`] as its
/// [`DebFamily::Plan`](crate::family::DebFamily::Plan).
impl AsRef<DebPlan> for DebPlan {
    fn as_ref(&self) -> &DebPlan {
        self
    }
}

impl DebPlan {
    /// The plan of `ctx` for `release`; `defaults` are the distro's mirrors
    /// for this release and architecture, used where
    /// `--mirror`/`--security-mirror` are not given (a `--mirror` alone does
    /// not move the security suite, as in the old templates).
    pub fn new(
        ctx: &HookContext,
        archive: Archive,
        release: Release,
        boot: BootstrapOptions,
        defaults: Mirrors,
        today: String,
    ) -> Result<Self, PluginError> {
        Ok(DebPlan {
            mirror: boot.mirror.clone().unwrap_or_else(|| defaults.archive.to_owned()),
            security_mirror: boot.security_mirror.clone().unwrap_or_else(|| defaults.security.to_owned()),
            locale: locale_from_lang(ctx.option(LOCALE))?,
            host_arch: ctx.facts.arch.to_string(),
            cached: true,
            archive,
            release,
            boot,
            today,
        })
    }

    /// The suite (codename).
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

    /// Whether debootstrap runs in two stages, the second inside the rootfs
    /// through the `-I` interpreter.
    pub fn two_stage(&self) -> bool {
        self.foreign() && self.boot.interpreter.is_some()
    }

    /// How the host runs the container's binaries: natively, through the
    /// `-I` interpreter, or through a qemu binfmt_misc handler with the `F`
    /// flag; refused with the fix otherwise.
    pub fn arch_support(&self, host: &mut Host<'_>) -> Result<ArchSupport, PluginError> {
        match &self.boot.interpreter {
            Some(given) => check_interpreter(host, given, &self.host_arch, self.arch()),
            None => check_arch_support(host, &self.host_arch, self.arch()),
        }
    }

    /// The signature check: `--keyring`, else the distro's keyring; no
    /// check only with `--no-check-gpg`.
    pub fn signature(&self, host: &mut Host<'_>) -> Result<SignatureCheck, PluginError> {
        choose_signature_check(host, self.boot.keyring.as_deref(), self.boot.no_check_gpg, &self.archive.keyring)
    }

    /// The keyring to trust inside the container (its `trusted.gpg.d`): a
    /// `--keyring` other than the distro's own, which the distro's keyring
    /// package in the rootfs already provides.
    pub fn keyring_to_install<'s>(&self, signature: &'s SignatureCheck) -> Option<&'s str> {
        match signature {
            SignatureCheck::Keyring(path) if path != self.archive.keyring.path => Some(path),
            _ => None,
        }
    }

    /// The package sources of the container's own architecture.
    pub fn sources(&self) -> SourcesPlan {
        SourcesPlan {
            suite: self.suite().to_owned(),
            mirror: self.mirror.clone(),
            security_mirror: self.security_mirror.clone(),
            security_suite: self.archive.security_suite.clone(),
            updates: self.archive.updates,
            components: self.archive.sources_components.clone(),
        }
    }

    /// The debootstrap run into the current root (its `target` is filled in
    /// by the download step).
    pub fn debootstrap_plan(
        &self,
        host: &mut Host<'_>,
        signature: &SignatureCheck,
    ) -> Result<DebootstrapPlan, PluginError> {
        Ok(DebootstrapPlan {
            suite: self.suite().to_owned(),
            target: String::new(),
            mirror: self.mirror.clone(),
            arch: self.arch().to_owned(),
            variant: self.archive.variant.clone(),
            components: self.archive.components.clone(),
            include: self.archive.include.clone(),
            exclude: Vec::new(),
            signature: signature.clone(),
            script: script_for(host, self.suite(), self.archive.fallback_script)?,
            foreign: self.two_stage(),
            cache_dir: None,
        })
    }

    /// The cache key: everything that changes the cached rootfs (release,
    /// arch, variant, mirrors, components, include list, keyring path and
    /// content, the second-stage interpreter, and the locale, which the
    /// download generates so that a create from the cache runs no
    /// `locale-gen`). The proxy and the per-container options
    /// (`--packages`, users) are not in it.
    pub fn cache_key(&self, host: &mut Host<'_>) -> Result<String, PluginError> {
        let signature = self.signature(host)?;
        let keyring = keyring_cache_id(host, &signature)?;
        let mut key = format!(
            "{} release={} arch={} variant={} mirror={} security-mirror={} components={} sources={} include={} \
             keyring={keyring} locale={}",
            self.archive.cache_format,
            self.suite(),
            self.arch(),
            self.archive.variant.as_deref().unwrap_or("default"),
            self.mirror,
            self.security_mirror,
            self.archive.components.join(","),
            self.archive.sources_components.join(","),
            self.archive.include.join(","),
            self.locale,
        );
        if self.two_stage()
            && let ArchSupport::Emulated { interpreter, copy_from, .. } = self.arch_support(host)?
        {
            // A copied interpreter becomes part of the rootfs.
            let copied = match &copy_from {
                Some(from) => format!("{from}@{}", content_hash(&host.read_host_file(from)?)),
                None => "none".to_owned(),
            };
            key.push_str(&format!(" second-stage={interpreter} copied={copied}"));
        }
        Ok(key)
    }

    /// `jammy (22.04 LTS) amd64 from http://...`, for the log.
    pub fn describe(&self) -> String {
        format!("{} {} {} from {}", self.archive.distro, self.release.describe(), self.arch(), self.mirror)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        fake::{FakeHost, context, testix_plan, with_host},
        options::{KEYRING, MIRROR, NO_CHECK_GPG, SECURITY_MIRROR},
    };

    fn plan(options: &[(&str, &[&str])]) -> DebPlan {
        testix_plan(&context("testix", "t1", options)).unwrap()
    }

    #[test]
    fn mirrors_sources_and_debootstrap() {
        let plan = plan(&[(MIRROR, &["http://m/testix"])]);
        assert_eq!((plan.mirror.as_str(), plan.security_mirror.as_str()), ("http://m/testix", "http://s/testix"));
        assert_eq!(
            plan.sources().lines(None),
            [
                "deb http://m/testix one main extra",
                "deb http://m/testix one-updates main extra",
                "deb http://s/testix one-security main extra",
            ]
        );
        let mut fake = FakeHost::sealed();
        fake.put_host("/usr/share/debootstrap/scripts/sid", "");
        let run = with_host(&mut fake, |h| plan.debootstrap_plan(h, &SignatureCheck::Skip)).unwrap();
        assert_eq!(run.script.as_deref(), Some("sid"));
        assert_eq!(run.variant.as_deref(), Some("minbase"));
        assert!(!run.foreign);
        assert_eq!(plan.describe(), "Testix one (1) amd64 from http://m/testix");
    }

    #[test]
    fn keyrings() {
        let mut fake = FakeHost::sealed();
        fake.put_host("/usr/share/keyrings/testix.gpg", "k");
        fake.put_host("/fixture.gpg", "f");
        let default = with_host(&mut fake, |h| plan(&[]).signature(h)).unwrap();
        assert_eq!(plan(&[]).keyring_to_install(&default), None);
        let given = plan(&[(KEYRING, &["/fixture.gpg"])]);
        let signature = with_host(&mut fake, |h| given.signature(h)).unwrap();
        assert_eq!(given.keyring_to_install(&signature), Some("/fixture.gpg"));
    }

    #[test]
    fn cache_keys_differ_by_what_changes_the_cache() {
        let mut fake = FakeHost::sealed();
        fake.put_host("/usr/share/keyrings/testix.gpg", "k");
        let mut key = |options: &[(&str, &[&str])]| with_host(&mut fake, |h| plan(options).cache_key(h)).unwrap();
        let base = key(&[]);
        assert!(base.starts_with("testix-v1 release=one arch=amd64 variant=minbase mirror=http://a/testix"), "{base}");
        assert!(
            base.contains(" components=main sources=main,extra include=ssh keyring=/usr/share/keyrings/testix.gpg@")
        );
        assert_ne!(base, key(&[(MIRROR, &["http://m/testix"])]));
        assert_ne!(base, key(&[(SECURITY_MIRROR, &["http://m/testix"])]));
        assert_ne!(base, key(&[(NO_CHECK_GPG, &[])]));
        assert_eq!(base, key(&[("packages", &["less"])]), "per-container packages are not cached");
        // The download generates the locale into the entry.
        assert!(base.ends_with(" locale=en_US.UTF-8"), "{base}");
        assert_ne!(base, key(&[("locale", &["de_DE.UTF-8"])]));
    }
}
