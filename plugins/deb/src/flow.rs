//! The steps every debootstrap-based plugin takes, in order, so that the
//! plugins only say *what* (release, mirrors, packages, network style) and
//! never repeat *how*:
//!
//! - [`build_cached_rootfs`] for the `download` hook (one or two stages),
//! - [`configure_system`] for `configure`,
//! - [`check_lxc_config`] and [`emit_lxc_config`] for `validate` and `config`,
//! - [`install_packages`] for `post_process`,
//! - [`setup_login_user`] (a login user) or [`setup_root_access`] (root
//!   only) for `finalize`,
//! - [`keyring_cache_id`] for `cache_key`,
//! - [`warn_about_choices`] for `validate`,
//! - [`attach_hint`] for `message`.
//!
//! [`family`](crate::family) strings them together into whole hooks.

use lxc_tmpl_plugin_api::{ConfigEntry, FileKind, HookContext, Host, PluginError, short_hostname};

use crate::{
    apt::{Apt, with_unsafe_io},
    arch::lxc_arch,
    debootstrap::{DebootstrapPlan, SignatureCheck, content_hash, run_debootstrap},
    options::{AuthKey, UserOptions},
    sources::write_sources_list,
    system::{
        LocaleGen, NetworkStyle, any_exists, choose_network_style, configure_timezone, generate_locale,
        install_apt_keyring, regenerate_ssh_host_keys, scrub_for_cache, set_locale, write_hostname, write_hosts,
        write_network,
    },
    users::{
        PasswdEntry, Password, add_to_group, create_user, import_host_user, install_authorized_keys, rootfs_user,
        set_password,
    },
};

/// Where LXC keeps the config files a container's config includes.
pub const LXC_CONFIG_DIR: &str = "/usr/share/lxc/config";

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
    /// With `plan.foreign`: the second stage, run inside the rootfs.
    pub second_stage: Option<SecondStage>,
    /// The locale generated into the rootfs (part of the cache key).
    pub locale: &'a str,
    /// How this distro's locale-gen is driven.
    pub locale_gen: LocaleGen,
}

/// debootstrap's second stage, run inside the rootfs after a `--foreign`
/// first stage: the foreign binaries run through a qemu interpreter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondStage {
    /// The interpreter the kernel's binfmt_misc handler runs (a rootfs path
    /// when it has to be copied in).
    pub interpreter: String,
    /// The host file copied into the rootfs as `interpreter` first (a
    /// handler without the `F` flag finds its interpreter inside the chroot).
    pub copy_from: Option<String>,
}

/// The `download` hook of a debootstrap plugin: debootstrap into the current
/// root (the cache staging dir) with signature checks, the package sources,
/// the keyring, `apt-get update --error-on=any` + `dist-upgrade` + `clean`
/// in the host's namespaced runner (all with dpkg's unsafe-io,
/// [`with_unsafe_io`]: the host syncs the entry once before it is renamed
/// into place), the locale ([`generate_locale`]: here,
/// once per cache entry, so that a create from the cache runs no
/// `locale-gen`), and finally the scrub that keeps ssh host keys and host
/// state out of the cache. Without a cache (`--clean`) it builds the
/// container's rootfs itself, just before `configure`.
pub fn build_cached_rootfs(host: &mut Host<'_>, spec: &BuildSpec<'_>) -> Result<(), PluginError> {
    // The packages of earlier builds of this suite, arch and mirror are reused, not fetched again.
    let cache_dir = host.package_cache_dir(&spec.plan.package_cache_key())?;
    let plan = DebootstrapPlan { target: host.root_path()?, cache_dir: Some(cache_dir), ..spec.plan.clone() };
    host.progress(&format!("debootstrap {} {} from {}", plan.suite, plan.arch, plan.mirror));
    // Every dpkg run of the build skips its per-file fsyncs; the host syncs once at the end.
    with_unsafe_io(host, |host| {
        run_debootstrap(host, spec.debootstrap, &plan, spec.proxy.as_deref())?;
        if let Some(stage) = &spec.second_stage {
            run_second_stage(host, stage)?;
        }
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
        apt.clean(host)
    })?;
    generate_locale(host, spec.locale, spec.locale_gen)?;
    scrub_for_cache(host)
}

/// The second stage of a `--foreign` debootstrap: the interpreter copied
/// into the rootfs when its handler needs that, then
/// `/debootstrap/debootstrap --second-stage` in the host's namespaced runner.
pub fn run_second_stage(host: &mut Host<'_>, stage: &SecondStage) -> Result<(), PluginError> {
    if let Some(from) = &stage.copy_from {
        let inside = stage.interpreter.trim_start_matches('/');
        if let Some((dir, _)) = inside.rsplit_once('/') {
            host.mkdir_all(dir, 0o755)?;
        }
        host.copy_from_host(from, inside, 0o755)?;
        host.debug(&format!("copied {from} into the rootfs as {}", stage.interpreter));
    }
    host.progress(&format!("debootstrap --second-stage through {}", stage.interpreter));
    host.run_in_rootfs(&["/debootstrap/debootstrap", "--second-stage"]).map_err(|e| {
        PluginError::new(
            e.kind,
            format!("debootstrap's second stage through {} failed: {}", stage.interpreter, e.message),
        )
    })?;
    Ok(())
}

/// What [`configure_system`] writes.
#[derive(Debug, Clone, Copy)]
pub struct SystemSpec<'a> {
    /// The host name (RFC 1123, possibly dotted: `web.example.com`):
    /// `/etc/hostname` gets its first label, `/etc/hosts` both, ssh host
    /// keys are commented `root@<first label>` (what `ssh-keygen` would
    /// take from the container's `hostname`).
    pub hostname: &'a str,
    /// The release's network style (the installed tools may override it).
    pub network: NetworkStyle,
    /// The interface configured by DHCP (`eth0`).
    pub interface: &'a str,
    /// The locale, which [`build_cached_rootfs`] generated.
    pub locale: &'a str,
}

/// The `configure` hook's common part: hostname, hosts, the network file,
/// LANG, the host's time zone and fresh ssh host keys. It runs no
/// package-manager or generator command in the rootfs, so that a create
/// from the cache stays light: the locale was generated with the cache
/// entry ([`build_cached_rootfs`]), the time zone is files, the host keys
/// are made by the host's `ssh-keygen`.
pub fn configure_system(host: &mut Host<'_>, spec: &SystemSpec<'_>) -> Result<(), PluginError> {
    write_hostname(host, spec.hostname)?;
    write_hosts(host, spec.hostname)?;
    let style = choose_network_style(host, spec.network)?;
    write_network(host, style, spec.interface)?;
    set_locale(host, spec.locale)?;
    configure_timezone(host)?;
    if !regenerate_ssh_host_keys(host, short_hostname(spec.hostname))? {
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

/// The `finalize` of a distro without a login user (Debian): root keeps a
/// locked password (debootstrap leaves `root:*`; an empty field would let
/// anyone in), and `--auth-key` becomes root's `/root/.ssh/authorized_keys`
/// (`.ssh` 0700, the file 0600, owned by root).
pub fn setup_root_access(host: &mut Host<'_>, auth_key: Option<&AuthKey>) -> Result<(), PluginError> {
    set_password(host, "root", &Password::Locked)?;
    let Some(key) = auth_key else {
        return Ok(());
    };
    let root = rootfs_user(host, "root")?.unwrap_or_else(|| PasswdEntry {
        name: "root".into(),
        uid: 0,
        gid: 0,
        gecos: "root".into(),
        home: "/root".into(),
        shell: "/bin/sh".into(),
    });
    if host.file_kind(&root.home)?.is_none() {
        host.mkdir_all(&root.home, 0o700)?;
    }
    let path = install_authorized_keys(host, &root, &key.keys)?;
    host.info(&format!("installed the ssh public key from {} as /{path}", key.path));
    Ok(())
}

/// Checks that LXC's config for the distro (`<name>.common.conf`) or its
/// shared `common.conf` is installed: the container's config includes it.
pub fn check_lxc_config(host: &mut Host<'_>, name: &str) -> Result<(), PluginError> {
    let distro_conf = format!("{LXC_CONFIG_DIR}/{name}.common.conf");
    let common = format!("{LXC_CONFIG_DIR}/common.conf");
    if host.host_file_kind(&distro_conf)? == Some(FileKind::File)
        || host.host_file_kind(&common)? == Some(FileKind::File)
    {
        return Ok(());
    }
    Err(PluginError::unsupported(format!(
        "{distro_conf} and {common} are missing: install LXC (liblxc-common); the container's config includes them"
    )))
}

/// The config entries every debootstrap distro gets, as lxc-ubuntu and
/// lxc-debian wrote them: `lxc.include` of `<name>.common.conf` (LXC's
/// `common.conf` when missing, with a warning), of `<name>.<suite>.conf`
/// when LXC ships one and, for an unprivileged container, of
/// `<name>.userns.conf` (or `userns.conf`); `lxc.uts.name` (the short host
/// name: the kernel's UTS name is what `hostname` prints, and a dotted
/// `/etc/hostname` with a short UTS name would disagree), and `lxc.arch`
/// when LXC has a name for the architecture.
pub fn emit_lxc_config(
    host: &mut Host<'_>,
    ctx: &HookContext,
    name: &str,
    suite: &str,
    arch: &str,
) -> Result<(), PluginError> {
    let distro_conf = format!("{LXC_CONFIG_DIR}/{name}.common.conf");
    if host.host_file_kind(&distro_conf)? == Some(FileKind::File) {
        host.config(ConfigEntry::new("lxc.include", &distro_conf))?;
    } else {
        let common = format!("{LXC_CONFIG_DIR}/common.conf");
        host.warn(&format!("{distro_conf} is missing: including {common} instead"));
        host.config(ConfigEntry::new("lxc.include", &common))?;
    }
    let release_conf = format!("{LXC_CONFIG_DIR}/{name}.{suite}.conf");
    if host.host_file_kind(&release_conf)? == Some(FileKind::File) {
        host.config(ConfigEntry::new("lxc.include", &release_conf))?;
    }
    // An unprivileged container needs LXC's user-namespace settings, the
    // distro's own when LXC ships them (they include userns.conf).
    if ctx.facts.is_unprivileged() {
        let distro_userns = format!("{LXC_CONFIG_DIR}/{name}.userns.conf");
        let userns = if host.host_file_kind(&distro_userns)? == Some(FileKind::File) {
            distro_userns
        } else {
            format!("{LXC_CONFIG_DIR}/userns.conf")
        };
        host.config(ConfigEntry::new("lxc.include", &userns))?;
    }
    host.config(ConfigEntry::new("lxc.uts.name", ctx.short_hostname()))?;
    match lxc_arch(arch) {
        Some(value) => host.config(ConfigEntry::new("lxc.arch", value)),
        None => {
            host.debug(&format!("LXC has no lxc.arch name for {arch}: left out"));
            Ok(())
        }
    }
}

/// The last line of every ready message: how to start the container and
/// get in, with `-P` when the lxcpath is not LXC's default.
pub fn attach_hint(ctx: &HookContext) -> String {
    let name = ctx.name.as_str();
    let lxcpath = std::path::Path::new(ctx.container_path.as_str())
        .parent()
        .map(|p| p.display().to_string())
        .filter(|p| p != "/var/lib/lxc")
        .map(|p| format!(" -P {p}"))
        .unwrap_or_default();
    format!("Get in with:  lxc-start{lxcpath} -n {name} && lxc-attach{lxcpath} -n {name}")
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
            "--password was visible to other local users in ps until lxc-tmpl hid it (lxc-create's own command \
             line and config header keep it); prefer --password-file",
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
    fn second_stage_copies_the_interpreter_only_when_asked() {
        let mut fake = FakeHost::sealed();
        fake.put_host("/usr/bin/qemu-arm-static", "qemu");
        let stage = SecondStage {
            interpreter: "/usr/bin/qemu-arm-static".into(),
            copy_from: Some("/usr/bin/qemu-arm-static".into()),
        };
        with_host(&mut fake, |h| run_second_stage(h, &stage)).unwrap();
        assert_eq!(fake.text("usr/bin/qemu-arm-static"), "qemu");
        assert_eq!(fake.mode("usr/bin/qemu-arm-static"), 0o755);
        assert_eq!(fake.lines(), ["/debootstrap/debootstrap --second-stage"]);
        assert_eq!(fake.commands[0].place, lxc_tmpl_plugin_api::RunPlace::Rootfs);

        let mut fake = FakeHost::sealed();
        fake.on("/debootstrap/debootstrap --second-stage", output(1, "", "E: boom"));
        let stage = SecondStage { interpreter: "/usr/libexec/qemu-binfmt/arm-binfmt-P".into(), copy_from: None };
        let err = with_host(&mut fake, |h| run_second_stage(h, &stage)).unwrap_err();
        assert!(err.message.contains("second stage through /usr/libexec/qemu-binfmt/arm-binfmt-P failed"));
        assert!(!fake.exists("usr/libexec"), "nothing copied with the F flag");
    }

    #[test]
    fn root_access_locks_root_and_installs_the_key() {
        let mut fake = FakeHost::sealed();
        fake.put("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n");
        fake.put("etc/shadow", "root:*:19000:0:99999:7:::\n");
        fake.mkdir("root");
        with_host(&mut fake, |h| setup_root_access(h, None)).unwrap();
        assert!(fake.commands.is_empty(), "root:* is locked already");
        let key = AuthKey { path: "/k.pub".into(), keys: "ssh-ed25519 AAAA k\n".into() };
        with_host(&mut fake, |h| setup_root_access(h, Some(&key))).unwrap();
        assert_eq!(fake.text("root/.ssh/authorized_keys"), "ssh-ed25519 AAAA k\n");
        assert_eq!((fake.mode("root/.ssh"), fake.mode("root/.ssh/authorized_keys")), (0o700, 0o600));
        assert_eq!(fake.owners["root/.ssh/authorized_keys"], (0, 0));

        let mut open = FakeHost::sealed();
        open.put("etc/shadow", "root::19000:0:99999:7:::\n");
        with_host(&mut open, |h| setup_root_access(h, None)).unwrap();
        assert_eq!(open.lines(), ["passwd --lock root"], "an empty password is locked");
    }

    #[test]
    fn lxc_config_entries() {
        let mut fake = FakeHost::sealed();
        let ctx = crate::fake::context("testix", "t1", &[]);
        let err = with_host(&mut fake, |h| check_lxc_config(h, "testix")).unwrap_err();
        assert!(err.message.contains("install LXC"), "{}", err.message);
        fake.put_host("/usr/share/lxc/config/common.conf", "");
        with_host(&mut fake, |h| check_lxc_config(h, "testix")).unwrap();
        with_host(&mut fake, |h| emit_lxc_config(h, &ctx, "testix", "one", "i386")).unwrap();
        assert_eq!(fake.config_values("lxc.include"), ["/usr/share/lxc/config/common.conf"]);
        assert!(fake.warnings()[0].contains("testix.common.conf is missing"));
        assert_eq!(fake.config_values("lxc.arch"), ["i686"]);

        let mut fake = FakeHost::sealed();
        fake.put_host("/usr/share/lxc/config/testix.common.conf", "");
        fake.put_host("/usr/share/lxc/config/testix.one.conf", "");
        with_host(&mut fake, |h| emit_lxc_config(h, &ctx, "testix", "one", "riscv64")).unwrap();
        assert_eq!(
            fake.config_values("lxc.include"),
            ["/usr/share/lxc/config/testix.common.conf", "/usr/share/lxc/config/testix.one.conf"]
        );
        assert_eq!(fake.config_values("lxc.uts.name"), ["t1"]);
        assert!(fake.config_values("lxc.arch").is_empty());

        // Unprivileged: the distro's userns.conf, else LXC's generic one.
        let mut ctx = ctx;
        ctx.facts.mapped_uid = Some(65_536);
        let mut fake = FakeHost::sealed();
        fake.put_host("/usr/share/lxc/config/testix.common.conf", "");
        with_host(&mut fake, |h| emit_lxc_config(h, &ctx, "testix", "one", "amd64")).unwrap();
        assert_eq!(
            fake.config_values("lxc.include"),
            ["/usr/share/lxc/config/testix.common.conf", "/usr/share/lxc/config/userns.conf"]
        );
        fake.put_host("/usr/share/lxc/config/testix.userns.conf", "");
        with_host(&mut fake, |h| emit_lxc_config(h, &ctx, "testix", "one", "amd64")).unwrap();
        assert!(fake.config_values("lxc.include").ends_with(&["/usr/share/lxc/config/testix.userns.conf"]));
    }

    #[test]
    fn attach_hints() {
        let mut ctx = crate::fake::context("testix", "t1", &[]);
        assert_eq!(attach_hint(&ctx), "Get in with:  lxc-start -n t1 && lxc-attach -n t1");
        ctx.container_path = "/tmp/lxc/t1".into();
        assert_eq!(attach_hint(&ctx), "Get in with:  lxc-start -P /tmp/lxc -n t1 && lxc-attach -P /tmp/lxc -n t1");
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
