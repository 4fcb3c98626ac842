//! Trimming: the seed lxc-ubuntu's trim for upstart-era releases, unit
//! masks for systemd releases, and the 12.04 `/dev/shm` link.

use lxc_tmpl_deb::system::{has_systemd, mask_units};
use lxc_tmpl_plugin_api::{FileKind, Host, PluginError};

use crate::run_shell;

/// Units masked in every systemd container: they need hardware, kernel
/// interfaces or capabilities a container does not have (LXC's common.conf
/// drops `sys_time`; audit and configfs are host-only), so they only fail
/// and slow the boot down.
pub const CONTAINER_MASKS: &[&str] = &[
    "systemd-timesyncd.service",
    "systemd-journald-audit.socket",
    "sys-kernel-config.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "ondemand.service",
];

/// Units also masked with `--trim`: periodic maintenance a short-lived or
/// cloned container does not need (not upgrade-safe: apt no longer updates
/// itself).
pub const TRIM_MASKS: &[&str] = &[
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "motd-news.timer",
    "man-db.timer",
    "fstrim.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "dpkg-db-backup.timer",
];

/// Masks [`CONTAINER_MASKS`] (and [`TRIM_MASKS`] with `trim`) when the
/// rootfs has systemd.
pub fn systemd_masks(host: &mut Host<'_>, trim: bool) -> Result<(), PluginError> {
    if !has_systemd(host)? {
        host.info("systemd is not installed in the rootfs: no units to mask");
        return Ok(());
    }
    let mut units: Vec<&str> = CONTAINER_MASKS.to_vec();
    if trim {
        units.extend_from_slice(TRIM_MASKS);
    }
    mask_units(host, &units)?;
    host.debug(&format!("masked {}", units.join(", ")));
    Ok(())
}

const LXC_CONF: &str = include_str!("../../../templates/ubuntu/upstart/lxc.conf");
const SSH_CONF: &str = include_str!("../../../templates/ubuntu/upstart/ssh.conf");
const CONSOLE_CONF: &str = include_str!("../../../templates/ubuntu/upstart/console.conf");
const INIT_FSTAB: &str = include_str!("../../../templates/ubuntu/upstart/fstab");

/// What lxc-ubuntu did on upstart releases without `container-detect.conf`
/// (before 11.10): quiet udev, no jobs for consoles 5 and 6 (LXC makes 4).
pub fn upstart_console_fixes(host: &mut Host<'_>) -> Result<(), PluginError> {
    if host.file_kind("etc/init/container-detect.conf")?.is_some() {
        return Ok(());
    }
    if host.file_kind("etc/udev/udev.conf")? == Some(FileKind::File) {
        let text = String::from_utf8_lossy(&host.read_file("etc/udev/udev.conf")?).replace("=\"err\"", "=0");
        host.write_file("etc/udev/udev.conf", text.as_bytes(), 0o644)?;
    }
    host.remove("etc/init/tty5.conf")?;
    host.remove("etc/init/tty6.conf")
}

/// The seed's `trim` for upstart releases: container-friendly upstart jobs,
/// an empty `/lib/init/fstab`, and the jobs that make no sense in a
/// container moved aside (`*.conf.orig`).
pub fn upstart_trim(host: &mut Host<'_>, suite: &str) -> Result<(), PluginError> {
    host.mkdir_all("etc/init", 0o755)?;
    for (path, text) in
        [("etc/init/lxc.conf", LXC_CONF), ("etc/init/ssh.conf", SSH_CONF), ("etc/init/console.conf", CONSOLE_CONF)]
    {
        host.write_file(path, text.as_bytes(), 0o644)?;
    }
    host.mkdir_all("lib/init", 0o755)?;
    host.write_file("lib/init/fstab", INIT_FSTAB.as_bytes(), 0o644)?;
    run_shell(
        host,
        "update-rc.d -f ondemand remove >/dev/null 2>&1 || true; cd /etc/init || exit 0; \
         for f in u*.conf tty[2-9].conf plymouth*.conf hwclock*.conf module*.conf; do \
         [ -e \"$f\" ] && mv \"$f\" \"$f.orig\"; done; true",
    )?;
    if suite != "lucid" && host.file_kind("etc/network/if-up.d/upstart")? == Some(FileKind::File) {
        let text = String::from_utf8_lossy(&host.read_file("etc/network/if-up.d/upstart")?)
            .lines()
            .map(|l| if l.contains("emission handled") { "echo Emitting lo".to_owned() } else { l.to_owned() })
            .collect::<Vec<_>>()
            .join("\n");
        host.write_file("etc/network/if-up.d/upstart", format!("{text}\n").as_bytes(), 0o755)?;
    }
    Ok(())
}

/// 12.04 and older: `/dev/shm` as a link to `/run/shm`. The rootfs is a
/// fresh copy with nothing mounted in it (the runner's mounts never
/// outlive it), so an existing `dev/shm` is simply replaced.
pub fn dev_shm_link(host: &mut Host<'_>) -> Result<(), PluginError> {
    if host.file_kind("dev/shm")? == Some(FileKind::Symlink) {
        return Ok(());
    }
    host.mkdir_all("dev", 0o755)?;
    host.remove("dev/shm")?;
    host.symlink("/run/shm", "dev/shm")
}
