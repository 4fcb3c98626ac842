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
| [`release`] | release tables from distro-info-data CSVs (`/usr/share/distro-info/ubuntu.csv`, `debian.csv`) merged with a built-in copy; lookup by codename, version or name; LTS; EOL; today's date |
| [`arch`] | dpkg architecture names, what a host runs natively, foreign architectures through a qemu-user-static binfmt_misc handler (with a clear refusal), `lxc.arch` values |
| [`debootstrap`] | the debootstrap argument vector (variant, components, include list, arch, `--keyring` + `--force-check-gpg`, `--no-check-gpg` only on request, the 4th positional script argument for suites debootstrap has no script for), keyring choice, running it, explaining its failures |
| [`sources`] | `sources.list` in the native and the multiarch (`deb [arch=...]`) form, with `-updates` and a per-distro security suite; mirror URL checks |
| [`apt`] | `apt-get update` that fails on any missing index (`--error-on=any`), `dist-upgrade`, `install --no-install-recommends`, `clean`, never forcing unauthenticated packages; package name checks; the `HTTP_PROXY` setting (`none`, `apt`, URL) and `70proxy` |
| [`system`] | hostname, hosts, netplan or ifupdown (chosen by release, with a fallback on what is installed), locale, time zone from the host, fresh ssh host keys per container, scrubbing a rootfs before it becomes a cache, systemd unit masks, the apt keyring |
| [`users`] | the login user (useradd, sudo group, locked password unless one is given, passwords on chpasswd's stdin), authorized_keys with the right owner and modes, `--bindhome` users |
| [`flow`] | the hook steps in order: [`flow::build_cached_rootfs`] (download), [`flow::configure_system`] (configure), [`flow::install_packages`] (post_process), [`flow::setup_login_user`] (finalize), [`flow::keyring_cache_id`] (cache_key) |
| [`options`] | the shared option specs (old short flags, env fallbacks, help that says every default) and their parsing |
| `fake` | (feature `test-support`) an in-memory `Host` for hook-level unit tests |

# How a plugin uses it

A plugin describes its distribution with data (release table, default
mirrors, keyring, security suite rule, components, include list) and calls
the [`flow`] steps from its hooks; the other modules are the building blocks
those steps are made of, for what a distro does differently:

- `validate`: [`options::BootstrapOptions::from_context`],
  [`options::UserOptions::from_context`], [`arch::check_arch_support`],
  [`debootstrap::find_debootstrap`], [`debootstrap::script_for`],
  [`debootstrap::choose_signature_check`], [`flow::warn_about_choices`];
- `cache_key`: everything that changes the cached rootfs, with
  [`flow::keyring_cache_id`] for the keyring (path and content);
- `download`: [`flow::build_cached_rootfs`] (debootstrap, sources.list,
  keyring, apt update/dist-upgrade/clean, [`system::scrub_for_cache`]);
- `sources_list`: [`sources::render_sources_list`] (native, or multiarch for a
  foreign architecture), [`sources::write_sources_list`], [`apt::write_apt_proxy`];
- `configure`: [`flow::configure_system`] (hostname, hosts, network, locale,
  time zone, ssh host keys);
- `post_process`: [`flow::install_packages`] (multiarch, `--packages`);
- `finalize`: [`flow::setup_login_user`] (user or bindhome user, password,
  sudo, authorized_keys).

Tests of such plugins drive their hooks against `fake::FakeHost` (feature
`test-support`), whose responder can act like debootstrap or useradd on the
in-memory rootfs.
*/

pub mod apt;
pub mod arch;
pub mod debootstrap;
#[cfg(any(test, feature = "test-support"))]
pub mod fake;
pub mod flow;
pub mod options;
pub mod release;
pub mod sources;
pub mod system;
mod templates;
pub mod users;
