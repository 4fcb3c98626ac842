//! What every hook is told about the container being made.

use abi_stable::{
    StableAbi,
    std_types::{ROption, RString, RVec},
};

/// The container being created and the options the user gave.
///
/// The same context is passed to every hook of one create.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct HookContext {
    /// The distro name (the plugin's [`Manifest::name`](crate::Manifest::name)).
    pub distro: RString,
    /// The container name, as LXC knows it (`lxc-start -n NAME`).
    pub name: RString,
    /// The container's host name (RFC 1123): `--hostname`, or derived from
    /// the name when the name is not a valid host name (`web_01` gives
    /// `web-01`). May be dotted (`web.example.com`): then
    /// [`short_hostname`](Self::short_hostname) goes into `/etc/hostname`
    /// and `lxc.uts.name`, and `/etc/hosts` maps both, as Debian's installer
    /// writes them.
    pub hostname: RString,
    /// The container directory on the host (`<lxcpath>/<name>`), holding `config`.
    pub container_path: RString,
    /// The container's rootfs on the host. For information and messages only:
    /// file operations go through [`Host`](crate::Host).
    pub rootfs_path: RString,
    /// The plugin's options after parsing, environment fallback and defaults.
    /// Options neither given nor defaulted are absent.
    pub options: RVec<OptionValue>,
    /// Facts about the host.
    pub facts: HostFacts,
    /// Identifies this create: the same in every hook of one create, and
    /// different for every create (and dry run) of the process. Per-create
    /// state is keyed on it ([`PerCreate`](crate::PerCreate)).
    pub create_id: u64,
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
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct OptionValue {
    /// The option's long name.
    pub long: RString,
    /// Its values, in command-line order.
    pub values: RVec<RString>,
}

/// What the host knows about itself, for defaults and sanity checks.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct HostFacts {
    /// The host architecture as a dpkg name (`amd64`, `arm64`, `armhf`).
    pub arch: RString,
    /// `ID` from the host's os-release (`debian`, `ubuntu`), empty if unknown.
    pub distro_id: RString,
    /// `VERSION_CODENAME` from the host's os-release, empty if unknown.
    pub distro_codename: RString,
    /// The LXC version the config is written for (`5.0.2`).
    pub lxc_version: RString,
    /// For an unprivileged container, the container-side uid the caller is
    /// mapped to (`--mapped-uid` from `lxc-create`); `None` when privileged.
    pub mapped_uid: ROption<u32>,
    /// Like [`mapped_uid`](Self::mapped_uid), for the gid.
    pub mapped_gid: ROption<u32>,
    /// Whether lxc-tmpl itself runs inside a user namespace (as a template
    /// that `lxc-create` started through `lxc-usernsexec` for an unprivileged
    /// container). Then nothing needing real root (debootstrap, mknod) works;
    /// outside one, an unprivileged container's rootfs is built as root and
    /// the host shifts its owners into the mapped range afterwards.
    pub in_user_namespace: bool,
}

impl HostFacts {
    /// Whether the container is unprivileged (idmapped): `lxc-create` passed
    /// `--mapped-uid` or `--mapped-gid`.
    pub fn is_unprivileged(&self) -> bool {
        self.mapped_uid.is_some() || self.mapped_gid.is_some()
    }
}
