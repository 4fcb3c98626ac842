//! What every hook is told about the container being made.
//!
//! These are plain Rust types: each side of the boundary has its own copy,
//! and they cross it as the accessor tables of [`crate::abi`], which a minor
//! version may extend.

/// The container being created and the options the user gave.
///
/// The same context is passed to every hook of one create. Built by the host
/// (or by `testing::context` in a plugin's unit tests).
///
/// **Compatibility:** a minor version may append fields; a plugin never sees
/// the fields of a newer minor than the one it was built against. The type
/// is `#[non_exhaustive]` so that adding one breaks no plugin's code. It
/// crosses the boundary as [`abi::HookContextAbi`](crate::abi::HookContextAbi).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct HookContext {
    /// The distro name (the plugin's [`Manifest::name`](crate::Manifest::name)).
    pub distro: String,
    /// The container name, as LXC knows it (`lxc-start -n NAME`).
    pub name: String,
    /// The container's host name (RFC 1123): `--hostname`, or derived from
    /// the name when the name is not a valid host name (`web_01` gives
    /// `web-01`). May be dotted (`web.example.com`): then
    /// [`short_hostname`](Self::short_hostname) goes into `/etc/hostname`
    /// and `lxc.uts.name`, and `/etc/hosts` maps both, as Debian's installer
    /// writes them.
    pub hostname: String,
    /// The container directory on the host (`<lxcpath>/<name>`), holding `config`.
    pub container_path: String,
    /// The container's rootfs on the host. For information and messages only:
    /// file operations go through [`Host`](crate::Host).
    pub rootfs_path: String,
    /// The plugin's options after parsing, environment fallback and defaults.
    /// Options neither given nor defaulted are absent.
    pub options: Vec<OptionValue>,
    /// Facts about the host.
    pub facts: HostFacts,
    /// Identifies this create: the same in every hook of one create, and
    /// different for every create (and dry run) of the process. Per-create
    /// state is keyed on it ([`PerCreate`](crate::PerCreate)).
    pub create_id: u64,
    /// Only in `--cfg lxc_tmpl_api_preview` builds: a field appended the way
    /// a minor version appends one (see `tests/it/compat.rs`).
    #[cfg(lxc_tmpl_api_preview)]
    #[doc(hidden)]
    pub preview: String,
}

impl HookContext {
    /// The first label of [`hostname`](Self::hostname): what `/etc/hostname`
    /// and `lxc.uts.name` hold (`web` for `web.example.com`).
    pub fn short_hostname(&self) -> &str {
        short_hostname(&self.hostname)
    }

    /// The fully qualified name when [`hostname`](Self::hostname) is dotted.
    pub fn fqdn(&self) -> Option<&str> {
        self.hostname.contains('.').then_some(self.hostname.as_str())
    }

    /// The (last) value of an option, if it has one.
    pub fn option(&self, long: &str) -> Option<&str> {
        self.options.iter().rev().find(|o| o.long == long).and_then(|o| o.values.last()).map(|v| v.as_str())
    }

    /// Every value of a repeatable option, in command-line order.
    pub fn option_values(&self, long: &str) -> Vec<&str> {
        self.options.iter().filter(|o| o.long == long).flat_map(|o| o.values.iter().map(|v| v.as_str())).collect()
    }

    /// Whether a flag (or any option) was given.
    pub fn flag(&self, long: &str) -> bool {
        self.options.iter().any(|o| o.long == long)
    }
}

/// The first label of a host name: `web` for `web.example.com`, what
/// `/etc/hostname` holds (hostname(5): the name without the domain).
pub fn short_hostname(hostname: &str) -> &str {
    hostname.split('.').next().unwrap_or(hostname)
}

/// The values of one option. A flag has no values.
///
/// **Compatibility:** fixed for every 1.x version (it crosses the boundary
/// as a name and a list of values).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptionValue {
    /// The option's long name.
    pub long: String,
    /// Its values, in command-line order.
    pub values: Vec<String>,
}

/// What the host knows about itself, for defaults and sanity checks.
///
/// **Compatibility:** as [`HookContext`]: a minor version may append fields,
/// and the type is `#[non_exhaustive]`. It crosses the boundary as
/// [`abi::HostFactsAbi`](crate::abi::HostFactsAbi).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct HostFacts {
    /// The host architecture as a dpkg name (`amd64`, `arm64`, `armhf`).
    pub arch: String,
    /// `ID` from the host's os-release (`debian`, `ubuntu`), empty if unknown.
    pub distro_id: String,
    /// `VERSION_CODENAME` from the host's os-release, empty if unknown.
    pub distro_codename: String,
    /// The LXC version the config is written for (`5.0.2`).
    pub lxc_version: String,
    /// For an unprivileged container, the container-side uid the caller is
    /// mapped to (`--mapped-uid` from `lxc-create`); `None` when privileged.
    pub mapped_uid: Option<u32>,
    /// Like [`mapped_uid`](Self::mapped_uid), for the gid.
    pub mapped_gid: Option<u32>,
    /// Whether lxc-tmpl itself runs inside a user namespace (as a template
    /// that `lxc-create` started through `lxc-usernsexec` for an unprivileged
    /// container). Then nothing needing real root (debootstrap, mknod) works;
    /// outside one, an unprivileged container's rootfs is built as root and
    /// the host shifts its owners into the mapped range afterwards.
    pub in_user_namespace: bool,
    /// Only in `--cfg lxc_tmpl_api_preview` builds: an appended field.
    #[cfg(lxc_tmpl_api_preview)]
    #[doc(hidden)]
    pub preview: String,
}

impl HostFacts {
    /// Whether the container is unprivileged (idmapped): `lxc-create` passed
    /// `--mapped-uid` or `--mapped-gid`.
    pub fn is_unprivileged(&self) -> bool {
        self.mapped_uid.is_some() || self.mapped_gid.is_some()
    }
}
