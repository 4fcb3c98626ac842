//! Rootfs paths that the host and the plugins both act on, so that the two
//! sides cannot drift apart: what a plugin removes before it makes a file,
//! the host's image build removes again before it packs a rootfs.

/// Every ssh host key file that `ssh-keygen -A` and older OpenSSH releases
/// make (sshd(8), FILES), as rootfs paths without the `.pub` of the public
/// half. A plugin removes them before making a container's own keys; an
/// image build removes them so that no two instances share a key.
pub const SSH_HOST_KEYS: &[&str] = &[
    "etc/ssh/ssh_host_key",
    "etc/ssh/ssh_host_rsa_key",
    "etc/ssh/ssh_host_dsa_key",
    "etc/ssh/ssh_host_ecdsa_key",
    "etc/ssh/ssh_host_ed25519_key",
    "etc/ssh/ssh_host_ecdsa_sk_key",
    "etc/ssh/ssh_host_ed25519_sk_key",
];
