//! The rootfs file templates of `templates/deb/`, compiled in.

/// `/etc/hosts`; variables `hostname` (short) and `fqdn` (dotted, or none).
pub const HOSTS: &str = include_str!("../../../templates/deb/hosts.j2");
/// `/etc/netplan/10-lxc.yaml`; variable `interface`.
pub const NETPLAN: &str = include_str!("../../../templates/deb/netplan.yaml.j2");
/// `/etc/network/interfaces`; variable `interface`.
pub const INTERFACES: &str = include_str!("../../../templates/deb/interfaces.j2");
/// `/etc/apt/apt.conf.d/70proxy`; variable `proxy`.
pub const APT_PROXY: &str = include_str!("../../../templates/deb/70proxy.j2");
/// The `getty@.service` drop-in for the ttys LXC makes; a plain file.
pub const GETTY_DROP_IN: &str = include_str!("../../../templates/deb/getty-tty.conf");
