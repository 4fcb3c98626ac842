/*!
The `debian` distro plugin of `lxc-tmpl`: Debian containers built with
debootstrap, replacing LXC's `lxc-debian` template (lxc-templates 3.0.4).
Everything debootstrap- and apt-shaped is shared with the ubuntu plugin
through [`lxc_tmpl_deb`]: this crate is Debian's knowledge only (release
names and architectures, debian-ports, mirrors, keyrings, security suites,
the include list, root-only access),
as an implementation of [`DebFamily`]; the hooks are those of
[`lxc_tmpl_deb::family`].

# Options

The old names and short flags still work: `-r/--release`, `-a/--arch`,
`-I/--interpreter-path`, `-S/--auth-key`, `--packages`, `--mirror`,
`--security-mirror`, `--keyring`, `--enable-non-free`, `-c/--clean`;
`-F/--flush-cache`, `-d/--debug` and `LXC_CACHE_PATH` are the host's. `MIRROR`,
`SECURITY_MIRROR`, `HTTP_PROXY` and `LANG` are read from the environment.
A release is named by alias (`stable`, `oldstable`, `testing`, `unstable`),
codename (`bookworm`, `sid`) or version (`12`). `lxc-tmpl create --distro
debian --help` lists every option with its default.

# Hooks

| hook | shared step ([`lxc_tmpl_deb::family`]) | Debian's part |
|---|---|---|
| `validate` | options, arch support (binfmt_misc, `-I`), debootstrap, keyring, LXC's config | release notes: the alias resolved, LTS, archive.debian.org, debian-ports, development releases |
| `cache_key` | release codename (never the alias), arch, mirrors, components, include list, keyring, second-stage interpreter, locale | none with `--clean` |
| `download` | `debootstrap --variant=minbase` (with `--foreign` and the second stage inside the rootfs for `-I`), keyring, sources, `apt-get update --error-on=any`, `dist-upgrade`, `clean`, the locale (`locale.gen`, `locale-gen`), scrub | |
| `sources_list` | release, `-updates` and security lines | |
| `configure` | hostname, hosts, `/etc/network/interfaces`, `LANG`, time zone (files), ssh host keys (the host's `ssh-keygen`), getty units on the LXC ttys; no `locale-gen`, `dpkg-reconfigure` or `ssh-keygen -A` in the rootfs | |
| `config` | `debian.common.conf`, `lxc.uts.name`, `lxc.arch` | `lxc.tty.max`, `lxc.pty.max = 1024` |
| `post_process` | `--packages` | |
| `finalize` | | root locked, `--auth-key` in `/root/.ssh/authorized_keys` |
| `message` | how to get in | |

# Deliberate differences from lxc-debian

- **Signatures are always checked**: debootstrap gets `--keyring` and
  `--force-check-gpg`. The old script downloaded `archive-key-8.asc` without a
  fingerprint check, imported it into the **host's**
  `/etc/apt/trusted.gpg.d`, and fell back to `--no-check-gpg` silently.
  Now a missing keyring stops the create and names
  `apt-get install debian-archive-keyring` or `--keyring`; a `--keyring`
  goes into the container's `/etc/apt/trusted.gpg.d/` only;
  `--no-check-gpg` is an explicit, warned opt-out.
- **Release knowledge is data**: aliases resolve through distro-info-data
  (with a built-in copy), and the cache is keyed by the codename (the old
  script cached under `stable` and kept serving the old release after a
  Debian release). The release and architecture probes over `wget` are gone:
  release architectures come from a built-in list, other architectures use
  debian-ports (unstable, its own keyring) — also offline.
- **The security suite follows the release** (`<codename>-security` from
  bullseye on, `<codename>/updates` before, none for unstable) and there is
  a `-updates` line; releases whose LTS has ended default to
  archive.debian.org.
- **The cache is updated**: `apt-get dist-upgrade` when it is built (the old
  cache was never upgraded); it never holds ssh host keys, a machine id, the
  host's hostname or resolv.conf; it is keyed by everything that changes it.
- **`-c/--clean`** builds this container from a fresh debootstrap without
  reading or writing the cache (the old option deleted all of
  `/var/cache/lxc`, other templates' caches included, under the debian lock
  only). `-F/--flush-cache` rebuilds the cache entry.
- **No sysvinit leftovers**: no `/etc/inittab`, `mknod` of ttys (LXC makes
  them), `/selinux`, `update-rc.d` disables, `.profile` `mesg` fix (Debian
  ships it fixed). Of `configure_debian_systemd` only what still matters on
  systemd under LXC 5 is kept (see [`lxc_tmpl_deb::systemd`]).
- **`-I/--interpreter-path`** is checked as an ELF without a program
  interpreter (static-pie counts, which `file | grep "statically linked"`
  refused) registered as the `qemu-<cpu>` binfmt_misc handler; it is copied
  into the rootfs only when that handler lacks the `F` flag.
- **`--auth-key`** files are checked to hold ssh public keys (the old
  script only wanted a name ending in `.pub`).
- Unprivileged containers (`--mapped-uid`) are refused, as before.
- Every rootfs write is symlink-safe; every command inside the rootfs runs in
  the host's namespaced runner with `policy-rc.d`.
*/

// No fork, no host-path writes: everything goes through `Host` (plugins/clippy.toml).
#![deny(clippy::disallowed_methods)]

mod plan;
mod release;

use lxc_tmpl_deb::{
    family::DebFamily,
    flow::setup_root_access,
    options::{self, DistroTexts, UserOptions},
    systemd::tty_count,
};
use lxc_tmpl_plugin_api::{ConfigEntry, HookContext, Host, Manifest, OptionSpec, PluginError};

use crate::plan::{KEYRING, Plan};

/// `--enable-non-free`.
pub const ENABLE_NON_FREE: &str = "enable-non-free";
/// `-c/--clean`.
pub const CLEAN: &str = "clean";

/// The words of the shared options' help.
const TEXTS: DistroTexts<'static> = DistroTexts {
    distro: "Debian",
    default_release: "stable, resolved to its codename; unstable for a debian-ports architecture",
    release_example: "bookworm, 12, stable, testing or unstable",
    default_mirror: "http://deb.debian.org/debian; http://archive.debian.org/debian once a release's LTS has \
                     ended; http://deb.debian.org/debian-ports for architectures Debian does not release",
    default_security_mirror: "http://security.debian.org/debian-security, \
                              http://archive.debian.org/debian-security once a release's LTS has ended",
    default_keyring: "/usr/share/keyrings/debian-archive-keyring.gpg (debian-ports-archive-keyring.gpg for \
                      debian-ports)",
    keyring_package: KEYRING.package,
    default_user: None,
};

lxc_tmpl_deb::debootstrap_plugin! {
    /// The debian distro plugin.
    pub struct Debian;
}

impl DebFamily for Debian {
    type Plan = Plan;

    fn describe(&self) -> Manifest {
        let mut specs = options::bootstrap_options(&TEXTS);
        specs.retain(|spec| spec.long != options::VARIANT);
        let at = specs.iter().position(|spec| spec.long == options::ARCH).map_or(0, |i| i + 1);
        specs.insert(at, options::interpreter_option());
        specs.extend([
            options::auth_key_option("root's /root/.ssh/authorized_keys (root's password stays locked)"),
            OptionSpec::flag(
                ENABLE_NON_FREE,
                "also use contrib and non-free, and non-free-firmware from bookworm on (default: main only)",
            ),
            OptionSpec::flag(
                CLEAN,
                "build this container from a fresh debootstrap, neither reading nor writing the cached rootfs \
                 (-F/--flush-cache rebuilds the cache entry instead; `lxc-tmpl cache purge debian` deletes \
                 every cached debian rootfs) (default: off)",
            )
            .short('c'),
            options::locale_option(),
        ]);
        let manifest = Manifest::new(
            "debian",
            env!("CARGO_PKG_VERSION"),
            "Debian built with debootstrap (cached), signature-checked, no root password",
        )
        .arches(&release::all_arches())
        .default_release(TEXTS.default_release);
        let today = lxc_tmpl_deb::release::today_utc();
        let manifest = release::manifest_releases(&today).into_iter().fold(manifest, Manifest::release);
        specs.into_iter().fold(manifest, Manifest::option)
    }

    fn plan(&self, ctx: &HookContext, host: &mut Host<'_>) -> Result<Plan, PluginError> {
        Plan::resolve(ctx, host)
    }

    /// What the log should say about the release: the alias resolved, its
    /// support status, debian-ports.
    fn check(&self, plan: &Plan, _ctx: &HookContext, host: &mut Host<'_>) -> Result<(), PluginError> {
        let (release, today) = (&plan.deb.release, plan.deb.today.as_str());
        if let Some(alias) = &plan.alias {
            host.info(&format!("{alias} is {} today; the container and its cache follow that", release.describe()));
        }
        if plan.ports {
            host.info(&format!(
                "{} is built on debian-ports (unstable, keyring {})",
                plan.deb.arch(),
                plan.deb.archive.keyring.path
            ));
        }
        if release::past_lts(release, today) {
            host.warn(&format!(
                "Debian {} is past its LTS: no security updates; its archive is {} (the default mirror), whose \
                 Release files old keys sign: pass --keyring /usr/share/keyrings/debian-archive-removed-keys.gpg \
                 if the check fails",
                release.describe(),
                release::ARCHIVED.archive
            ));
        } else if release.is_eol(today) {
            host.info(&format!(
                "Debian {}'s regular security support ended on {}; Debian LTS covers it until {}",
                release.describe(),
                release.eol,
                release.eol_of("eol-lts").unwrap_or("an unknown date")
            ));
        }
        if release.codename != "sid" && !release.is_released(today) {
            host.info(&format!("Debian {} is not released yet (testing)", release.describe()));
        }
        Ok(())
    }

    /// As lxc-debian: the ttys of the base config (or 4) and 1024 ptys.
    fn config_entries(&self, _plan: &Plan, _ctx: &HookContext, host: &mut Host<'_>) -> Result<(), PluginError> {
        let ttys = tty_count(host);
        host.config(ConfigEntry::new("lxc.tty.max", &ttys.to_string()))?;
        host.config(ConfigEntry::new("lxc.pty.max", "1024"))
    }

    /// No user and no root password, as lxc-debian: root stays locked and
    /// gets the `--auth-key`.
    fn finalize_access(&self, _plan: &Plan, ctx: &HookContext, host: &mut Host<'_>) -> Result<(), PluginError> {
        let access = UserOptions::from_context(ctx, host)?;
        setup_root_access(host, access.auth_key.as_ref())
    }

    fn ready_message(&self, plan: &Plan, ctx: &HookContext, host: &mut Host<'_>) -> Result<String, PluginError> {
        let access = UserOptions::from_context(ctx, host)?;
        let root = match &access.auth_key {
            Some(key) => format!("root logs in over ssh with the key from {} (its password is locked)", key.path),
            None => "root has no password (locked); set one inside with `passwd` if you need one".to_owned(),
        };
        Ok(format!("Debian {} container '{}' is ready.\n{root}.\n", plan.deb.release.describe(), ctx.name))
    }
}

#[cfg(test)]
mod tests;
