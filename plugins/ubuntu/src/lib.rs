/*!
The `ubuntu` distro plugin of `lxc-tmpl`: Ubuntu containers built with
debootstrap, replacing LXC's `lxc-ubuntu` template (lxc-templates 3.0.4) and
the older script the seed document walks through. The shared
debootstrap/apt logic lives in [`lxc_tmpl_deb`]; this crate holds the Ubuntu
knowledge: releases, mirrors, keyring, include list, the login user and the
upstart-era quirks, as an implementation of
[`DebFamily`]; the hooks themselves are the
shared ones of [`lxc_tmpl_deb::family`].

# Options

The old names and short flags still work (`-r`, `-a`, `-v`, `-u`, `-b`, `-S`,
`-x`; `-F`/`--flush-cache` and `-d`/`--debug` are options of `lxc-tmpl create`
itself, and so is `LXC_CACHE_PATH`; in `lxc-tmpl create` the short `-v` is the
host's `--verbose`, so the variant is given as `--variant` there). `MIRROR`,
`SECURITY_MIRROR`, `HTTP_PROXY` and `LANG` are read from the environment as
the script did. A release is named by codename or version (`jammy`, `22.04`).
`lxc-tmpl create --distro ubuntu --help` lists every option with its default.

# Hooks

| hook | what it does |
|---|---|
| `validate` | resolves and checks every option (release, arch and its emulation, keyring, key and password files, bindhome user, mirrors, packages); refuses unprivileged containers |
| `cache_key` | release, arch, variant, mirrors, components, include list, keyring path and content, locale |
| `download` | debootstrap into the cache staging dir with signature checks, the keyring into `trusted.gpg.d`, sources.list, `apt-get update --error-on=any`, `dist-upgrade`, `clean` (in the host's namespaced runner with `policy-rc.d`), `locale-gen` of the locale, then removes ssh host keys, the machine id, the host's hostname and resolv.conf |
| `sources_list` | native or multiarch (`deb [arch=...]`) sources with `-updates` and `-security`; `70proxy` for a proxy |
| `configure` | hostname, hosts (the RFC 1123 host name), netplan or ifupdown (by release, falling back on what is installed), `LANG` (checked against the rootfs's `SUPPORTED`), time zone (files), fresh ssh host keys (the host's `ssh-keygen`), a getty on each LXC tty; no `locale-gen`, `dpkg-reconfigure` or `ssh-keygen -A` in the rootfs |
| `config` | `ubuntu.common.conf` (and `ubuntu.<release>.conf` when LXC ships one), `lxc.uts.name`, `lxc.arch`, the bindhome mount |
| `trim` | upstart releases with `--trim`: the seed's trim; systemd releases: mask units that cannot work in a container (`--trim` masks more) |
| `post_process` | multiarch for a foreign architecture, `--packages`, the `/dev/shm` link of 12.04 |
| `finalize` | the user (sudo group, locked password unless one is given), `authorized_keys`, the bindhome user |
| `message` | how to get in (`lxc-attach`) |

# Deliberate differences from lxc-ubuntu

- **No default password.** The old `ubuntu`/`ubuntu` is gone: the user's
  password is locked unless `--password` or `--password-file` gives one (fed
  to `chpasswd` on stdin, never on a command line); the message says to use
  `lxc-attach` (or the `--auth-key`).
- **Signatures are always checked.** debootstrap gets `--keyring` and
  `--force-check-gpg`: `--keyring FILE` when given, else
  `/usr/share/keyrings/ubuntu-archive-keyring.gpg`; when that is missing the
  create stops and names `apt-get install ubuntu-keyring` or `--keyring`
  (the old script silently downloaded unverified). `--no-check-gpg` is the
  explicit opt-out and warns. A `--keyring` is installed into the
  container's `/etc/apt/trusted.gpg.d/`, never into the host's.
  `apt-get update` runs with `--error-on=any` (on apt older than 2.1.16 its
  output is checked instead), and nothing is installed with `--force-yes`.
- **`--bindhome` does not copy the host's password hash**: the user is
  created with the host's uid, gid, home and shell, and a locked password.
  `--auth-key` is not written into a bind-mounted home (the host's own
  `~/.ssh/authorized_keys` applies there).
- **No squid-deb-proxy autodetection**: the old script ran a host avahi
  helper and trusted any proxy announced on the LAN. `HTTP_PROXY` is
  explicit: `none` (default), `apt` (the host's apt proxy) or a URL.
- **The cache never ships ssh host keys** (nor a machine id, the host's
  hostname or the host's resolv.conf): they are removed after the download,
  and every container generates its own keys (`ssh-keygen -A` inside, comment
  `root@<name>`).
- **The cache key covers everything that changes the cache** (release,
  arch, variant, mirrors, include list, keyring), not only release and arch;
  `--packages` are installed per container, so they do not split the cache.
  Host language packs are no longer copied into the include list (that made
  the cache depend on the host silently): `language-pack-en` only, other
  languages with `--packages`.
- **Release knowledge is data** (distro-info-data's `ubuntu.csv`, with a
  built-in copy): netplan or ifupdown and upstart or systemd follow the
  release's version, with a fallback on what is actually installed (netplan
  release but no netplan binary: `/etc/network/interfaces` is written and the
  log says so). A release debootstrap has no script for is built with the
  `gutsy` script. End-of-life releases default to old-releases.ubuntu.com.
- **Foreign architectures** run through qemu-user-static's binfmt_misc
  handler (`F` flag) or are refused with the fix; the upstart-era trick of
  installing host-architecture `upstart`/`mountall` into the container is
  gone. A foreign container gets multiarch sources with each architecture's
  own mirror (the old script reused the first one).
- **systemd releases are trimmed** by masking units that cannot work in a
  container (the old script had no systemd handling at all); the seed's
  upstart trim is kept for upstart releases with `--trim`.
- **systemd releases get dbus** (`hostnamectl`, `localectl`, `timedatectl`
  need the system bus) and **a login on each LXC tty**: a drop-in lets
  `getty@ttyN` start without the `/dev/tty0` LXC does not make (shared
  with debian, [`lxc_tmpl_deb::systemd`]), so `lxc-console` shows a prompt.
- **`--variant minbase` boots**: `init` (`upstart` before 15.04) is added
  to minbase, which has none.
- **The locale must exist**: `--locale`/`LANG` is looked up in the rootfs's
  `/usr/share/i18n/SUPPORTED` (its charset comes from there: `en_IN` is
  `en_IN UTF-8`); a locale it does not list is refused, and `locales` is in
  the base set. LANG is set to the listed name (`LANG=en_IN`).
- The sudo `admin` group of sudo < 1.8.3 (before 12.04) is not created.
- Every rootfs write goes through the host's symlink-safe file operations;
  every command inside the rootfs runs in the host's namespaced runner.
*/

// No fork, no host-path writes: everything goes through `Host` (plugins/clippy.toml).
#![deny(clippy::disallowed_methods)]

mod plan;
mod release;
mod trim;

use lxc_tmpl_deb::{
    family::DebFamily,
    flow::setup_login_user,
    options::{self, DistroTexts, UserOptions},
    sources::SourcesPlan,
    users::{self, bind_home_mount_entry},
};
use lxc_tmpl_plugin_api::{CommandSpec, ConfigEntry, HookContext, Host, Manifest, PluginError};

use crate::{
    plan::{KEYRING, Plan},
    release::{ARCHES, Init},
};

/// The user created unless `--user` or `--bindhome` says otherwise.
const DEFAULT_USER: &str = "ubuntu";
/// The group that gets sudo rights.
const SUDO_GROUP: &str = "sudo";

/// The words of the shared options' help.
const TEXTS: DistroTexts<'static> = DistroTexts {
    distro: "Ubuntu",
    default_release: "the host's release on Ubuntu, else the latest LTS",
    release_example: "jammy or 22.04",
    default_mirror: "http://archive.ubuntu.com/ubuntu for amd64/i386, http://ports.ubuntu.com/ubuntu-ports for others, \
                     http://old-releases.ubuntu.com/ubuntu for end-of-life releases",
    default_security_mirror: "http://security.ubuntu.com/ubuntu for amd64/i386, \
                              http://ports.ubuntu.com/ubuntu-ports for others",
    default_keyring: KEYRING.path,
    keyring_package: KEYRING.package,
    default_user: Some(DEFAULT_USER),
};

lxc_tmpl_deb::debootstrap_plugin! {
    /// The ubuntu distro plugin.
    pub struct Ubuntu;
}

impl DebFamily for Ubuntu {
    type Plan = Plan;

    fn describe(&self) -> Manifest {
        let manifest = Manifest::new(
            "ubuntu",
            env!("CARGO_PKG_VERSION"),
            "Ubuntu built with debootstrap (cached), signature-checked, no default password",
        )
        .arches(ARCHES)
        .default_release(TEXTS.default_release);
        let manifest = release::manifest_releases().into_iter().fold(manifest, Manifest::release);
        let specs = options::bootstrap_options(&TEXTS).into_iter().chain(options::user_options(&TEXTS)).chain([
            options::locale_option(),
            options::trim_option(
                "trim the container: the old upstart trim on releases before 15.04; on systemd releases also \
                     mask apt/man-db/fstrim timers and the like (default: off; units that cannot work in a \
                     container are always masked)",
            ),
        ]);
        specs.fold(manifest, Manifest::option)
    }

    fn plan(&self, ctx: &HookContext, host: &mut Host<'_>) -> Result<Plan, PluginError> {
        Plan::resolve(ctx, host)
    }

    fn check(&self, plan: &Plan, _ctx: &HookContext, host: &mut Host<'_>) -> Result<(), PluginError> {
        let (release, today) = (&plan.deb.release, plan.deb.today.as_str());
        if release.is_eol(today) {
            host.warn(&format!(
                "Ubuntu {} reached its end of standard support on {}: it gets no security updates from the \
                 public archive",
                release.describe(),
                release.eol
            ));
        }
        if !release.is_released(today) {
            host.warn(&format!("Ubuntu {} is not released yet (development release)", release.describe()));
        }
        Ok(())
    }

    /// A foreign container gets multiarch sources, each architecture with
    /// its own default mirrors.
    fn package_sources(&self, plan: &Plan) -> Vec<(SourcesPlan, Option<String>)> {
        let deb = &plan.deb;
        if !deb.foreign() {
            return vec![(deb.sources(), None)];
        }
        vec![(deb.sources(), Some(deb.arch().to_owned())), (plan.host_arch_sources(), Some(deb.host_arch.clone()))]
    }

    fn configure_distro(&self, plan: &Plan, _ctx: &HookContext, host: &mut Host<'_>) -> Result<(), PluginError> {
        if plan.traits.init == Init::Upstart {
            trim::upstart_console_fixes(host)?;
        }
        Ok(())
    }

    fn config_entries(&self, _plan: &Plan, ctx: &HookContext, host: &mut Host<'_>) -> Result<(), PluginError> {
        if let Some(bind) = &UserOptions::from_context(ctx, host)?.bindhome {
            host.config(ConfigEntry::new("lxc.mount.entry", &bind_home_mount_entry(&bind.entry.home)))?;
        }
        Ok(())
    }

    fn trim_rootfs(&self, plan: &Plan, _ctx: &HookContext, host: &mut Host<'_>) -> Result<(), PluginError> {
        match plan.traits.init {
            Init::Upstart if plan.trim => trim::upstart_trim(host, plan.deb.suite()),
            Init::Upstart => Ok(()),
            Init::Systemd => trim::systemd_masks(host, plan.trim),
        }
    }

    fn post_process_distro(&self, plan: &Plan, _ctx: &HookContext, host: &mut Host<'_>) -> Result<(), PluginError> {
        if plan.traits.dev_shm_link {
            trim::dev_shm_link(host)?;
        }
        Ok(())
    }

    fn finalize_access(&self, _plan: &Plan, ctx: &HookContext, host: &mut Host<'_>) -> Result<(), PluginError> {
        let users = UserOptions::from_context(ctx, host)?;
        setup_login_user(host, &users, SUDO_GROUP)?;
        Ok(())
    }

    fn ready_message(&self, plan: &Plan, ctx: &HookContext, host: &mut Host<'_>) -> Result<String, PluginError> {
        let users = UserOptions::from_context(ctx, host)?;
        let mut text = format!("Ubuntu {} container '{}' is ready.\n", plan.deb.release.describe(), ctx.name);
        if let Some(login) = users.login() {
            let how = match (&users.password, &users.auth_key, users.bindhome.is_some()) {
                (users::Password::Set(_), _, _) => "with the password you gave".to_owned(),
                (_, Some(_), false) => "with the ssh key you gave (its password is locked)".to_owned(),
                _ => format!("once you set a password inside with `passwd {login}` (it is locked)"),
            };
            text.push_str(&format!("User '{login}' is in the sudo group and can log in {how}.\n"));
        }
        Ok(text)
    }
}

/// Runs `sh -c SCRIPT` inside the rootfs (for the upstart trim's globs).
fn run_shell(host: &mut Host<'_>, script: &str) -> Result<(), PluginError> {
    host.run(&CommandSpec::in_rootfs(&["/bin/sh", "-c", script]))?;
    Ok(())
}

#[cfg(test)]
mod tests;
