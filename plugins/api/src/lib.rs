/*!
The plugin API of `lxc-tmpl`: the one crate a distro plugin depends on.

`lxc-tmpl` builds LXC containers. The engine (the *host*) owns everything
privileged: locks, the namespaced chroot runner, symlink-safe writes into the
rootfs, the rootfs cache and the LXC config file. A *plugin* knows one
distribution: which options it takes, how to build its root filesystem, which
files to write and which config entries its containers need. A plugin never
forks, mounts, chroots or opens a rootfs path itself; it asks the host through
the [`Host`] handed to every hook. That keeps privileged code in one audited
place and keeps plugins small.

# Shape of a plugin

A plugin is a `cdylib` that implements [`Distro`] and exports it with
[`export_plugin!`]:

```no_run
use lxc_tmpl_plugin_api::{
    export_plugin, ConfigEntry, Distro, Host, HookContext, Manifest, OptionSpec, PluginError,
};

#[derive(Default)]
struct Hello;

impl Distro for Hello {
    fn manifest(&self) -> Manifest {
        Manifest::new("hello", env!("CARGO_PKG_VERSION"), "A container that says hello")
            .option(OptionSpec::value("greeting", "TEXT", "Text written to /etc/motd").default_value("hello"))
    }

    fn download(&self, _ctx: &HookContext, host: &mut Host<'_>) -> Result<(), PluginError> {
        host.mkdir_all("etc", 0o755)?;
        Ok(())
    }

    fn configure(&self, ctx: &HookContext, host: &mut Host<'_>) -> Result<(), PluginError> {
        let greeting = ctx.option("greeting").unwrap_or("hello");
        host.write_file("etc/motd", format!("{greeting}\n").as_bytes(), 0o644)?;
        host.write_file("etc/hostname", format!("{}\n", ctx.name).as_bytes(), 0o644)
    }

    fn config(&self, ctx: &HookContext, host: &mut Host<'_>) -> Result<(), PluginError> {
        host.config(ConfigEntry::new("lxc.uts.name", ctx.name.as_str()))
    }
}

export_plugin!(Hello);
```

with this in the plugin's `Cargo.toml`:

```toml
[lib]
crate-type = ["cdylib"]

[dependencies]
lxc-tmpl-plugin-api = "1"
```

Build it, drop the `.so` into a plugin directory (or point
`$LXC_TMPL_PLUGIN_PATH` at its folder) and it shows up in `lxc-tmpl list`.
The host refuses a plugin that anyone but root (or the user running it) could
change: the file and every directory above it must be owned by root or that
user and not writable by group or others. So to run it as root, copy the
`.so` into a root-owned plugin directory rather than pointing at your own
build folder.

# Hooks

The host calls the hooks of [`Distro`] in this order ([`Hook::ORDER`]); each
has a default that does nothing, so a plugin writes only the ones its
distribution needs:

| hook | what it does | root the [`Host`] file operations act on |
|---|---|---|
| [`validate`](Distro::validate) | check options and host facts before anything is made | none (file operations fail) |
| [`cache_key`](Distro::cache_key) | name the cached rootfs this container is copied from, or none | none |
| [`download`](Distro::download) | build the rootfs | the cache staging dir, or the container rootfs when uncached |
| [`sources_list`](Distro::sources_list) | package sources | container rootfs |
| [`configure`](Distro::configure) | hostname, hosts, network, locale, keys | container rootfs |
| [`config`](Distro::config) | LXC config entries via [`Host::config`] | container rootfs |
| [`trim`](Distro::trim) | remove or mask what makes no sense in a container | container rootfs |
| [`post_process`](Distro::post_process) | extra packages, timezone, fixes | container rootfs |
| [`finalize`](Distro::finalize) | users, keys, bind mounts | container rootfs |
| [`message`](Distro::message) | text printed when creation succeeded | container rootfs |

Hooks keep no state of their own between calls, but every hook of one create
gets the same [`HookContext::create_id`]: what a plugin works out once (its
plan, what it probed on the host) goes into a [`PerCreate`] in `validate`, and
the later hooks of that create get it back instead of computing it again.

Paths given to [`Host`] file operations are rootfs paths (`etc/hostname` and
`/etc/hostname` mean the same file); they are resolved as if chrooted, so a
symlink in the rootfs can never lead a write out of it.

# Errors and panics

A hook returns [`PluginError`]; the host prints it as one line and cleans up
what the create made. A panic inside a hook is caught by the code that
[`export_plugin!`] generates and becomes a [`PluginError`] of kind
[`ErrorKind::PANIC`]: a faulty plugin can never abort the host.

# Testing hooks

With the cargo feature `testing` (off by default; enable it under
`[dev-dependencies]`), the module `testing` provides a `FakeHost`: an
in-memory [`HostApi`] with a rootfs of files, dirs and symlinks, scripted
host files and commands, the host's template rendering, and the config
entries and log lines a hook emitted. Its `run_hooks` runs a plugin's hooks
in the host's order, so a plugin's unit tests can check a whole create:

```toml
[dev-dependencies]
lxc-tmpl-plugin-api = { version = "1", features = ["testing"] }
```

# Compatibility promise

The crate version is the API version ([`API_VERSION`]). The host loads a
plugin when both have the same major version and the plugin's minor version is
not newer than the host's: a plugin built against 1.0 loads in any 1.x host.
Another major version, or a newer minor, is refused with a message naming
both versions. abi_stable checks, when the plugin is loaded, that every type
it reaches is a prefix of the host's.

What a minor version (1.x) may change, per public item:

| item | a minor version may | a plugin built before it sees |
|---|---|---|
| [`Distro`] / [`PluginModule`] | append hooks | the hook's do-nothing default |
| [`HostApi`] / [`Host`] | append callbacks | nothing (it does not call them) |
| [`HookContext`], [`HostFacts`], [`CommandOutput`] (host to plugin) | append fields | nothing: it copies the fields it knows |
| [`Manifest`], [`ReleaseInfo`], [`OptionSpec`], [`CommandSpec`], [`ConfigEntry`] (plugin to host) | append fields, each with a default that keeps the earlier behaviour | the host reads its value as that default |
| [`RunPlace`], [`FileKind`], [`LogLevel`] | add variants | an unknown [`FileKind`] as [`FileKind::Other`] |
| [`ErrorKind`] | add kinds (it is an open `u8`) | the name "error" |
| [`PluginError`], [`OptionValue`] | nothing | |

The structs are `#[non_exhaustive]` and the enums too, so that an appended
field or variant breaks no plugin's source either: build the structs with
their constructors and builders, and match the enums with a `_` arm. How the
types cross the boundary, and why that lets them grow, is in [`abi`].
Anything else (removing or reordering, changing a type) is a new major
version. The changes of each version are in the crate's `CHANGELOG.md`.
*/

#![deny(missing_docs)]
// abi_stable's derives name the generated reference types `Foo_Ref`/`Foo_TO`.
#![allow(non_camel_case_types)]

pub mod abi;
mod context;
mod distro;
mod error;
mod export;
mod hook;
mod host;
mod manifest;
mod module;
pub mod rootfs_paths;
mod state;
#[cfg(feature = "testing")]
pub mod testing;

pub use context::{HookContext, HostFacts, OptionValue, short_hostname};
pub use distro::Distro;
pub use error::{ErrorKind, PluginError};
pub use hook::Hook;
pub use host::{
    CommandOutput, CommandSpec, ConfigEntry, FileKind, FileKind_NE, Host, HostApi, HostApi_TO, HostApiMut, LogLevel,
    LogLevel_NE, RunPlace, RunPlace_NE,
};
pub use manifest::{Manifest, OptionSpec, ReleaseInfo};
pub use module::{PluginModule, PluginModule_Ref};
pub use state::{PerCreate, new_create_id};

/// Re-exported so plugins and the host use the very same `abi_stable` build.
pub use abi_stable;
/// Re-exported for [`Host::render`] contexts (`serde_json::json!`), so a plugin
/// needs no dependency besides this crate.
pub use serde_json;

/// The API version this crate defines, and the one a plugin built against it
/// reports to the host. Equal to this crate's package version.
#[cfg(not(lxc_tmpl_api_preview))]
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// In a `--cfg lxc_tmpl_api_preview` build: the next minor version, whose
/// root module has one more hook. Only the compatibility test builds it.
/// Keep it one minor above the package version.
#[cfg(lxc_tmpl_api_preview)]
pub const API_VERSION: &str = "1.1.0";

#[doc(hidden)]
pub mod __private {
    //! Support code for [`export_plugin!`](crate::export_plugin); not part of the API.
    pub use crate::export::{Instance, root_module};
}
