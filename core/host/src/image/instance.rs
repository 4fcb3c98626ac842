//! The state an image must not carry, because each instance needs its own:
//! the host name, ssh host keys, the machine id; and what would make two
//! builds of one image differ: apt's package lists, logs, random seeds.
//!
//! What is removed here is made again at first boot: LXC's `local` and
//! `download` templates write the container name where the placeholder
//! [`NAME_PLACEHOLDER`] is (the files in [`NAME_TEMPLATES`]), systemd fills
//! an empty `/etc/machine-id`, and a rootfs with sshd and systemd gets a
//! oneshot unit ([`SSH_KEYGEN_UNIT`]) that runs `ssh-keygen -A` once.

use lxc_tmpl_plugin_api::{FileKind, rootfs_paths::SSH_HOST_KEYS};

use crate::rootfs::{Rootfs, RootfsError};

/// The word `lxc-local` and `lxc-download` replace with the container name
/// (`sed s#LXC_NAME#<name>#g` over the files the image's `templates` lists).
pub const NAME_PLACEHOLDER: &str = "LXC_NAME";

/// What stands for the container's name in the image's `create-message`,
/// which no one fills in: `lxc-start -n <name>`.
pub const NAME_IN_MESSAGES: &str = "<name>";

/// The files of the rootfs that carry [`NAME_PLACEHOLDER`], as the image's
/// `templates` file lists them (paths inside the rootfs).
pub const NAME_TEMPLATES: [&str; 2] = ["/etc/hostname", "/etc/hosts"];

/// Files whose content is random or records the build machine or time, and
/// that their owners remake when missing: systemd's and sysvinit's random
/// seeds, ldconfig's cache of inode numbers and mtimes, apt's binary caches.
const VOLATILE_FILES: [&str; 5] = [
    "var/lib/systemd/random-seed",
    "var/lib/urandom/random-seed",
    "var/cache/ldconfig/aux-cache",
    "var/cache/apt/pkgcache.bin",
    "var/cache/apt/srcpkgcache.bin",
];

/// Where the first-boot unit goes, and its text. Ordered before the ssh
/// service (Debian's `ssh.service` and `ssh.socket`, others' `sshd.service`)
/// and run only while a key is missing, so it runs once per instance.
pub const SSH_KEYGEN_UNIT: &str = "etc/systemd/system/lxc-tmpl-ssh-host-keys.service";
const SSH_KEYGEN_UNIT_TEXT: &str = "\
# Made by lxc-tmpl image build: an image carries no ssh host keys, so that
# every instance makes its own at first boot.
[Unit]
Description=Generate the ssh host keys of this instance (lxc-tmpl image)
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
Before=ssh.service ssh.socket sshd.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
";
const SSH_KEYGEN_WANTS: &str = "etc/systemd/system/multi-user.target.wants/lxc-tmpl-ssh-host-keys.service";

/// What [`prepare`] did that the user should know.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Prepared {
    /// The ssh host keys were removed and the first-boot unit installed.
    pub ssh_first_boot: bool,
    /// sshd is there but no systemd to run the first-boot unit: instances
    /// get no host keys unless something else makes them.
    pub sshd_without_systemd: bool,
}

/// Leaves `rootfs` as every instance of the image should start: host name
/// placeholders, no ssh host keys (and the unit that makes them), an empty
/// machine id, no apt lists, no non-empty logs, no random seeds.
///
/// # Errors
/// A [`RootfsError`] of a write or removal.
pub fn prepare(rootfs: &Rootfs) -> Result<Prepared, RootfsError> {
    let mut prepared = Prepared::default();
    rootfs.mkdir_all("etc", 0o755)?;
    // The plugin wrote the placeholder (the image is built for the name
    // LXC_NAME); written again so that a plugin that writes no hostname still
    // gives an instance its name.
    rootfs.write_file("etc/hostname", format!("{NAME_PLACEHOLDER}\n").as_bytes(), 0o644)?;
    let hosts = match rootfs.file_kind("etc/hosts")? {
        Some(FileKind::File) => String::from_utf8_lossy(&rootfs.read_file("etc/hosts")?).into_owned(),
        _ => "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n".to_owned(),
    };
    if !hosts.contains(NAME_PLACEHOLDER) {
        let hosts = format!("{hosts}127.0.1.1\t{NAME_PLACEHOLDER}\n");
        rootfs.write_file("etc/hosts", hosts.as_bytes(), 0o644)?;
    }

    // systemd makes a machine id at boot when the file is empty (machine-id(5));
    // D-Bus's copy is a link to it on Debian, or a file of its own elsewhere.
    if rootfs.file_kind("etc/machine-id")?.is_some() {
        rootfs.write_file("etc/machine-id", b"", 0o444)?;
    }
    if rootfs.file_kind("var/lib/dbus/machine-id")? == Some(FileKind::File) {
        rootfs.remove("var/lib/dbus/machine-id")?;
    }

    let had_keys = SSH_HOST_KEYS.iter().any(|k| rootfs.file_kind(k).is_ok_and(|f| f.is_some()));
    for key in SSH_HOST_KEYS {
        rootfs.remove(key)?;
        rootfs.remove(&format!("{key}.pub"))?;
    }
    let has_sshd = rootfs.is_executable("/usr/sbin/sshd")?;
    let has_systemd =
        rootfs.is_executable("/lib/systemd/systemd")? || rootfs.is_executable("/usr/lib/systemd/systemd")?;
    if has_sshd && has_systemd {
        rootfs.mkdir_all("etc/systemd/system/multi-user.target.wants", 0o755)?;
        rootfs.write_file(SSH_KEYGEN_UNIT, SSH_KEYGEN_UNIT_TEXT.as_bytes(), 0o644)?;
        rootfs.remove(SSH_KEYGEN_WANTS)?;
        rootfs.symlink(&format!("/{SSH_KEYGEN_UNIT}"), SSH_KEYGEN_WANTS)?;
        prepared.ssh_first_boot = true;
    } else {
        prepared.sshd_without_systemd = has_sshd || had_keys;
    }

    // apt's lists are the mirror's state on build day: large, and different
    // in every build. `apt-get update` makes them again.
    clear_dir(rootfs, "var/lib/apt/lists", &|_, _| true)?;
    for file in VOLATILE_FILES {
        rootfs.remove(file)?;
    }
    // Logs of the build (dpkg.log, apt's history, alternatives.log). Empty
    // files (wtmp, btmp, lastlog as packages make them) stay, with the
    // owners and modes their packages gave them.
    clear_dir(rootfs, "var/log", &|rootfs, path| rootfs.read_file(path).is_ok_and(|d| !d.is_empty()))?;
    Ok(prepared)
}

/// Removes the regular files below `dir` for which `remove` says yes,
/// keeping every directory.
fn clear_dir(rootfs: &Rootfs, dir: &str, remove: &dyn Fn(&Rootfs, &str) -> bool) -> Result<(), RootfsError> {
    if rootfs.file_kind(dir)? != Some(FileKind::Dir) {
        return Ok(());
    }
    for (name, kind) in rootfs.read_dir(dir)? {
        let path = format!("{dir}/{}", name.to_string_lossy());
        match kind {
            FileKind::Dir => clear_dir(rootfs, &path, remove)?,
            FileKind::File if remove(rootfs, &path) => rootfs.remove(&path)?,
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::{fs, os::unix::fs::PermissionsExt, path::Path};

    use super::*;

    fn put(root: &Path, path: &str, text: &str, mode: u32) {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn instance_state_goes_and_first_boot_makes_host_keys() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        put(root, "etc/hostname", "LXC_NAME\n", 0o644);
        put(root, "etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\tLXC_NAME\n", 0o644);
        put(root, "etc/machine-id", "0123456789abcdef0123456789abcdef\n", 0o444);
        put(root, "etc/ssh/ssh_host_ed25519_key", "secret", 0o600);
        put(root, "etc/ssh/ssh_host_ed25519_key.pub", "ssh-ed25519 AAAA root@LXC_NAME\n", 0o644);
        put(root, "etc/ssh/sshd_config", "Port 22\n", 0o644);
        put(root, "usr/sbin/sshd", "#!/bin/sh\n", 0o755);
        put(root, "lib/systemd/systemd", "#!/bin/sh\n", 0o755);
        put(root, "var/lib/apt/lists/deb.debian.org_InRelease", "x", 0o644);
        put(root, "var/lib/systemd/random-seed", "random", 0o600);
        put(root, "var/log/dpkg.log", "2026-11-30 install x\n", 0o644);
        put(root, "var/log/apt/history.log", "Start-Date: 2026-11-30\n", 0o644);
        put(root, "var/log/wtmp", "", 0o664);

        let prepared = prepare(&Rootfs::open(root).unwrap()).unwrap();
        assert_eq!(prepared, Prepared { ssh_first_boot: true, sshd_without_systemd: false });
        assert_eq!(fs::read_to_string(root.join("etc/machine-id")).unwrap(), "");
        assert!(
            !root.join("etc/ssh/ssh_host_ed25519_key").exists()
                && !root.join("etc/ssh/ssh_host_ed25519_key.pub").exists()
        );
        assert!(root.join("etc/ssh/sshd_config").exists(), "only the host keys go");
        assert!(fs::read_to_string(root.join(SSH_KEYGEN_UNIT)).unwrap().contains("ExecStart=/usr/bin/ssh-keygen -A"));
        assert_eq!(fs::read_link(root.join(SSH_KEYGEN_WANTS)).unwrap(), Path::new("/").join(SSH_KEYGEN_UNIT));
        assert!(!root.join("var/lib/apt/lists/deb.debian.org_InRelease").exists());
        assert!(root.join("var/lib/apt/lists").is_dir(), "the directory stays");
        assert!(!root.join("var/lib/systemd/random-seed").exists());
        assert!(!root.join("var/log/dpkg.log").exists() && !root.join("var/log/apt/history.log").exists());
        assert!(root.join("var/log/wtmp").exists(), "empty logs keep their owner and mode");
        assert_eq!(fs::read_to_string(root.join("etc/hostname")).unwrap(), "LXC_NAME\n");
    }

    #[test]
    fn a_rootfs_without_placeholders_gets_them_and_sshd_alone_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        put(root, "etc/hosts", "127.0.0.1\tlocalhost\n", 0o644);
        put(root, "usr/sbin/sshd", "#!/bin/sh\n", 0o755);
        let prepared = prepare(&Rootfs::open(root).unwrap()).unwrap();
        assert_eq!(prepared, Prepared { ssh_first_boot: false, sshd_without_systemd: true });
        assert_eq!(fs::read_to_string(root.join("etc/hostname")).unwrap(), "LXC_NAME\n");
        assert!(fs::read_to_string(root.join("etc/hosts")).unwrap().ends_with("127.0.1.1\tLXC_NAME\n"));
        assert!(!root.join("etc/machine-id").exists(), "no machine-id is made where there was none");
    }
}
