//! The steps every debootstrap-based plugin takes, in order, so that the
//! plugins only say *what* (release, mirrors, packages, network style) and
//! never repeat *how*:
//!
//! - [`build_cached_rootfs`] for the `download` hook,
//! - [`configure_system`] for `configure`,
//! - [`install_packages`] for `post_process`,
//! - [`setup_login_user`] for `finalize`,
//! - [`keyring_cache_id`] for `cache_key`,
//! - [`warn_about_choices`] for `validate`.

use lxc_tmpl_plugin_api::{Host, PluginError};

use crate::{
    apt::Apt,
    debootstrap::{DebootstrapPlan, SignatureCheck, content_hash, run_debootstrap},
    options::UserOptions,
    sources::write_sources_list,
    system::{
        LocaleGen, NetworkStyle, any_exists, choose_network_style, configure_locale, configure_timezone,
        install_apt_keyring, regenerate_ssh_host_keys, scrub_for_cache, write_hostname, write_hosts, write_network,
    },
    users::{PasswdEntry, add_to_group, create_user, import_host_user, install_authorized_keys, set_password},
};

/// The name an installed `--keyring` gets in the rootfs's `trusted.gpg.d`.
pub const ROOTFS_KEYRING_NAME: &str = "lxc-tmpl-archive";

/// What [`build_cached_rootfs`] builds.
#[derive(Debug, Clone)]
pub struct BuildSpec<'a> {
    /// The distro, for messages (`Ubuntu`).
    pub distro: &'a str,
    /// The debootstrap program (see [`find_debootstrap`](crate::debootstrap::find_debootstrap)).
    pub debootstrap: &'a str,
    /// The debootstrap run; its `target` is the current root.
    pub plan: DebootstrapPlan,
    /// The sources.list text of the cached rootfs (native form).
    pub sources_list: String,
    /// A keyring to trust inside (a `--keyring` other than the distro's own,
    /// which the distro's keyring package already installs).
    pub install_keyring: Option<&'a str>,
    /// The proxy for debootstrap and apt.
    pub proxy: Option<String>,
}

/// The `download` hook of a debootstrap plugin: debootstrap into the current
/// root (the cache staging dir) with signature checks, the package sources,
/// the keyring, `apt-get update --error-on=any` + `dist-upgrade` + `clean`
/// in the host's namespaced runner, and finally the scrub that keeps ssh host
/// keys and host state out of the cache.
pub fn build_cached_rootfs(host: &mut Host<'_>, spec: &BuildSpec<'_>) -> Result<(), PluginError> {
    let plan = DebootstrapPlan { target: host.root_path()?, ..spec.plan.clone() };
    host.progress(&format!("debootstrap {} {} from {}", plan.suite, plan.arch, plan.mirror));
    run_debootstrap(host, spec.debootstrap, &plan, spec.proxy.as_deref())?;
    if !any_exists(host, &["usr/bin/apt-get", "bin/apt-get"])? {
        return Err(PluginError::failed(format!(
            "debootstrap of {} finished but the rootfs has no apt-get: {} is not a {} archive",
            plan.suite, plan.mirror, spec.distro
        )));
    }
    write_sources_list(host, &spec.sources_list)?;
    if let Some(keyring) = spec.install_keyring {
        let path = install_apt_keyring(host, keyring, ROOTFS_KEYRING_NAME)?;
        host.debug(&format!("installed {keyring} as /{path}"));
    }
    let apt = Apt::new(spec.proxy.clone());
    let hint = |step: &'static str| {
        move |e: PluginError| {
            PluginError::new(
                e.kind,
                format!(
                    "{step} in the new rootfs failed (is the mirror complete and signed by the keyring?): {}",
                    e.message
                ),
            )
        }
    };
    apt.update(host).map_err(hint("apt-get update"))?;
    apt.dist_upgrade(host).map_err(hint("apt-get dist-upgrade"))?;
    apt.clean(host)?;
    scrub_for_cache(host)
}

/// What [`configure_system`] writes.
#[derive(Debug, Clone, Copy)]
pub struct SystemSpec<'a> {
    /// The container name: hostname, hosts, ssh key comments.
    pub name: &'a str,
    /// The release's network style (the installed tools may override it).
    pub network: NetworkStyle,
    /// The interface configured by DHCP (`eth0`).
    pub interface: &'a str,
    /// The locale.
    pub locale: &'a str,
    /// How this distro's locale-gen is driven.
    pub locale_gen: LocaleGen,
}

/// The `configure` hook's common part: hostname, hosts, the network file,
/// locale, the host's time zone and fresh ssh host keys.
pub fn configure_system(host: &mut Host<'_>, spec: &SystemSpec<'_>) -> Result<(), PluginError> {
    write_hostname(host, spec.name)?;
    write_hosts(host, spec.name)?;
    let style = choose_network_style(host, spec.network)?;
    write_network(host, style, spec.interface)?;
    configure_locale(host, spec.locale, spec.locale_gen)?;
    configure_timezone(host)?;
    if !regenerate_ssh_host_keys(host, spec.name)? {
        host.info("no ssh in the container: no ssh host keys generated");
    }
    Ok(())
}

/// The `post_process` packages: multiarch for a foreign container
/// (`dpkg --add-architecture <host arch>`), then `packages`, with one
/// `apt-get update` for both and a `clean` after.
pub fn install_packages(
    host: &mut Host<'_>,
    apt: &Apt,
    add_architecture: Option<&str>,
    packages: &[String],
) -> Result<(), PluginError> {
    if add_architecture.is_none() && packages.is_empty() {
        return Ok(());
    }
    if let Some(arch) = add_architecture {
        host.progress(&format!("multiarch: adding {arch} to dpkg"));
        host.run_in_rootfs(&["dpkg", "--add-architecture", arch])?;
    }
    apt.update(host)?;
    if !packages.is_empty() {
        apt.install(host, packages)?;
        apt.clean(host)?;
    }
    Ok(())
}

/// The `finalize` hook's user: the bindhome user (imported from the host,
/// locked) or the created `--user`, its password (locked unless given),
/// membership of `sudo_group`, and the authorized keys (not into a
/// bind-mounted home, which is the host's). Returns the user, `None` when
/// there is none to make.
pub fn setup_login_user(
    host: &mut Host<'_>,
    users: &UserOptions,
    sudo_group: &str,
) -> Result<Option<PasswdEntry>, PluginError> {
    let entry = match (&users.bindhome, &users.user) {
        (Some(bind), _) => import_host_user(host, bind)?,
        (None, Some(user)) => create_user(host, user, "/bin/bash")?,
        (None, None) => return Ok(None),
    };
    set_password(host, &entry.name, &users.password)?;
    add_to_group(host, &entry.name, sudo_group)?;
    if let Some(key) = &users.auth_key {
        if users.bindhome.is_some() {
            host.debug("--auth-key skipped: the home is bind-mounted from the host");
        } else {
            let path = install_authorized_keys(host, &entry, &key.keys)?;
            host.info(&format!("installed the ssh public key from {} as /{path}", key.path));
        }
    }
    Ok(Some(entry))
}

/// The keyring part of a cache key: `path@content-hash`, or `no-check-gpg`.
pub fn keyring_cache_id(host: &mut Host<'_>, signature: &SignatureCheck) -> Result<String, PluginError> {
    Ok(match signature {
        SignatureCheck::Keyring(path) => format!("{path}@{}", content_hash(&host.read_host_file(path)?)),
        SignatureCheck::Skip => "no-check-gpg".to_owned(),
    })
}

/// The warnings `validate` gives for risky choices every debootstrap plugin
/// offers: no signature check, a password on the command line, an auth key
/// that cannot go into a bind-mounted home.
pub fn warn_about_choices(
    host: &mut Host<'_>,
    signature: &SignatureCheck,
    password_on_command_line: bool,
    users: &UserOptions,
) {
    if *signature == SignatureCheck::Skip {
        host.warn(
            "--no-check-gpg: the downloaded archive is NOT authenticated; anyone between you and the mirror \
             can change what the container runs",
        );
    }
    if password_on_command_line {
        host.warn(
            "--password is visible to other users in ps and is recorded in the container's config header; \
             prefer --password-file",
        );
    }
    if users.bindhome.is_some() && users.auth_key.is_some() {
        host.warn(
            "--auth-key is not installed with --bindhome: the home is the host's, whose \
             ~/.ssh/authorized_keys applies",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeHost, output, with_host};

    #[test]
    fn packages_share_one_update() {
        let mut fake = FakeHost::sealed();
        fake.on("apt-get --version", output(0, "apt 2.6.1 (amd64)\n", ""));
        let apt = Apt::default();
        with_host(&mut fake, |h| install_packages(h, &apt, None, &[])).unwrap();
        assert!(fake.commands.is_empty());
        with_host(&mut fake, |h| install_packages(h, &apt, Some("amd64"), &["file".into()])).unwrap();
        let lines = fake.lines();
        assert_eq!(lines[0], "dpkg --add-architecture amd64");
        assert_eq!(lines.iter().filter(|l| l.starts_with("apt-get update")).count(), 1, "{lines:?}");
        assert!(lines.iter().any(|l| l.ends_with("install file")), "{lines:?}");
        assert_eq!(lines.last().unwrap(), "apt-get clean");
    }

    #[test]
    fn keyring_ids() {
        let mut fake = FakeHost::sealed();
        fake.put_host("/k", "a");
        let id = with_host(&mut fake, |h| keyring_cache_id(h, &SignatureCheck::Keyring("/k".into()))).unwrap();
        assert_eq!(id, format!("/k@{}", content_hash(b"a")));
        assert_eq!(with_host(&mut fake, |h| keyring_cache_id(h, &SignatureCheck::Skip)).unwrap(), "no-check-gpg");
    }
}
