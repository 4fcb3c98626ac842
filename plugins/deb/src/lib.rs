/*!
Debootstrap and apt logic shared by the Debian-family plugins of `lxc-tmpl`
(ubuntu, debian): everything that is the same for every distro built with
debootstrap, so that the plugins hold only distro knowledge.

Like the plugins, this crate only talks to the world through the plugin
API's [`Host`](lxc_tmpl_plugin_api::Host): commands run on the host or in the
rootfs through it, files are written with its symlink-safe operations, and
templates are rendered by it.

# Modules

| module | what |
|---|---|
| [`family`] | **the hooks of a debootstrap plugin, written once**: the [`family::DebFamily`] trait a plugin implements (manifest, plan, and the few steps only it takes) and [`debootstrap_plugin!`], which declares the plugin type, implements the plugin API's `Distro` with [`family`]'s hooks and exports it |
| [`plan`] | [`plan::DebPlan`], one create resolved (release, options, mirrors, locale, cached or not), with [`plan::Archive`], the distro's archive data (keyring, components, include list, security suite, network style); what follows from them: signature check, arch support, debootstrap run, sources, cache key |
| [`release`] | release tables from distro-info-data CSVs ([`release::DistroInfo`]: `/usr/share/distro-info/ubuntu.csv`, `debian.csv`) merged with a built-in copy; lookup by codename, version or name; LTS; end-of-life columns; today's date |
| [`arch`] | dpkg architecture names, what a host runs natively, foreign architectures through a qemu binfmt_misc handler with the `F` flag or a static interpreter given with `-I` (checked as an ELF without `PT_INTERP`), `lxc.arch` values |
| [`debootstrap`] | the debootstrap argument vector (variant, components, include list, arch, `--foreign`, `--keyring` + `--force-check-gpg`, `--no-check-gpg` only on request, the 4th positional script argument for suites debootstrap has no script for), the distro [`debootstrap::Keyring`], running it, explaining its failures |
| [`sources`] | `sources.list` in the native and the multiarch (`deb [arch=...]`) form, with `-updates` and a per-distro security suite; a distro's default [`sources::Mirrors`]; mirror URL checks |
| [`apt`] | `apt-get update` that fails on any missing index (`--error-on=any`), `dist-upgrade`, `install --no-install-recommends`, `clean`, never forcing unauthenticated packages; package name checks; the `HTTP_PROXY` setting (`none`, `apt`, URL) and `70proxy` |
| [`system`] | hostname and hosts from the RFC 1123 host name, netplan or ifupdown (chosen by release, with a fallback on what is installed), the locale (checked against the rootfs's `SUPPORTED` list, generated with the cache entry, `LANG` per container), the host's time zone as files, fresh ssh host keys per container from the host's `ssh-keygen`, scrubbing a rootfs before it becomes a cache, systemd unit masks, the apt keyring |
| [`systemd`] | a getty on each tty LXC makes (a drop-in for `getty@.service`, which wants a `/dev/tty0` LXC does not make), the tty count of the base config |
| [`users`] | the login user (useradd, sudo group, locked password unless one is given, passwords on chpasswd's stdin), authorized_keys with the right owner and modes, `--bindhome` users |
| [`flow`] | the steps the hooks are made of, in order: [`flow::build_cached_rootfs`] (one stage, or two with [`flow::SecondStage`]), [`flow::configure_system`], [`flow::check_lxc_config`] and [`flow::emit_lxc_config`], [`flow::install_packages`], [`flow::setup_login_user`] or [`flow::setup_root_access`], [`flow::keyring_cache_id`], [`flow::warn_about_choices`], [`flow::attach_hint`] |
| [`options`] | the shared option specs (old short flags, env fallbacks, help that says every default) and their parsing |
| `fake` | (feature `test-support`) the Debian-family parts of the plugin API's `testing::FakeHost` for hook-level unit tests: a debootstrap-like host and responder, the made-up Testix archive, checks of refusals and option docs |

# How a plugin uses it

A plugin describes its distribution with data and implements
[`family::DebFamily`]:

```ignore
lxc_tmpl_deb::debootstrap_plugin! {
    /// The debian distro plugin.
    pub struct Debian;
}

impl DebFamily for Debian {
    type Plan = Plan; // holds a DebPlan (AsRef<DebPlan>)
    fn describe(&self) -> Manifest { /* options::bootstrap_options(..) and its own */ }
    fn plan(&self, ctx: &HookContext, host: &mut Host<'_>) -> Result<Plan, PluginError> {
        /* release table, default mirrors, an Archive, then DebPlan::new */
    }
    fn finalize_access(/* .. */) -> Result<(), PluginError> { /* flow::setup_root_access */ }
    fn ready_message(/* .. */) -> Result<String, PluginError> { /* .. */ }
    // check, package_sources, configure_distro, config_entries, trim_rootfs,
    // post_process_distro: optional, for what only this distro does
}
```

Every hook then runs the shared step of [`family`] and the distro's part;
see the table there. The other modules are the building blocks of those
steps, for what a distro does differently.

Tests of such plugins drive their hooks against `fake::FakeHost` (feature
`test-support`, on the plugin API's `testing` feature):
`FakeHost::debootstrap_host` acts like debootstrap, useradd, locale-gen and
ssh-keygen on the in-memory rootfs; the API's `run_hooks` runs a whole create,
its `build_cache_entry` and `run_hooks_from_cache` a cold build and a warm
create (all three re-exported by `fake`); `fake::assert_refused` checks bad
input.
*/

// No fork, no host-path writes: everything goes through `Host` (plugins/clippy.toml).
#![deny(clippy::disallowed_methods)]

pub mod apt;
pub mod arch;
pub mod debootstrap;
#[cfg(any(test, feature = "test-support"))]
pub mod fake;
pub mod family;
pub mod flow;
pub mod options;
pub mod plan;
pub mod release;
pub mod sources;
pub mod system;
pub mod systemd;
mod templates;
pub mod users;

/// The plugin API, re-exported for [`debootstrap_plugin!`]: a plugin built on
/// this crate uses the very same API crate.
pub use lxc_tmpl_plugin_api as api;
