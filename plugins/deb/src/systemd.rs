//! systemd in an LXC container: a login prompt on each tty LXC makes, for
//! every Debian-family rootfs that boots with systemd (Debian and Ubuntu
//! ship the same `getty@.service`).
//!
//! lxc-debian's `configure_debian_systemd`, checked against bookworm's
//! systemd 252 under LXC 5 (booted and looked at):
//!
//! - **kept, and made to work**: `getty@ttyN` on tty1..`lxc.tty.max`. LXC
//!   binds `/dev/tty1..N` for `lxc-console`, but makes no `/dev/tty0`, so
//!   `getty@.service`'s `ConditionPathExists=/dev/tty0` skips every getty
//!   (and `getty-static.service` too): the old wants links alone start
//!   nothing today, and an Ubuntu container had no login on any tty. A
//!   drop-in replaces that condition by `/dev/%I`.
//! - dropped: masking `udev.service`/`systemd-udevd.service` (udev is not in
//!   the rootfs, and `systemd-udevd.service` has `ConditionPathIsReadWrite=/sys`,
//!   which LXC's read-only `/sys` fails); `default.target` as
//!   `multi-user.target` (`graphical.target` without a display manager is the
//!   same boot); masking `container-getty@N.service` (systemd's generator
//!   starts those only for `pts/N` entries of `$container_ttys`, which LXC
//!   does not set for `/dev/ttyN` consoles, so there is no second agetty to
//!   avoid); rewriting `getty-static.service` (skipped by its own
//!   `/dev/tty0` condition). `console-getty.service` serves `/dev/console`.

use lxc_tmpl_plugin_api::{FileKind, Host, PluginError};

use crate::{system::has_systemd, templates};

/// The drop-in that lets `getty@ttyN` start on a tty LXC made.
pub const GETTY_DROP_IN: &str = templates::GETTY_DROP_IN;
/// Where it goes.
pub const GETTY_DROP_IN_PATH: &str = "etc/systemd/system/getty@.service.d/lxc-tmpl-tty.conf";
/// Where the getty wants links go.
pub const GETTY_WANTS: &str = "etc/systemd/system/getty.target.wants";
/// The tty count when the base config does not set `lxc.tty.max`: what
/// LXC's `common.conf` (which every distro config includes) sets, and
/// lxc-debian's `num_tty`.
pub const DEFAULT_TTYS: u32 = 4;

/// The number of ttys LXC will make: `lxc.tty.max` of the base config, else
/// [`DEFAULT_TTYS`].
pub fn tty_count(host: &mut Host<'_>) -> u32 {
    match host.config_value("lxc.tty.max") {
        Some(value) => value.trim().parse().unwrap_or_else(|_| {
            host.debug(&format!("lxc.tty.max = {value} of the base config is not a number: using {DEFAULT_TTYS}"));
            DEFAULT_TTYS
        }),
        None => DEFAULT_TTYS,
    }
}

/// A getty on each of the `ttys` LXC makes (`lxc.tty.max`), when the
/// rootfs boots with systemd: the drop-in and `getty.target.wants` links.
pub fn container_gettys(host: &mut Host<'_>, ttys: u32) -> Result<(), PluginError> {
    if !has_systemd(host)? {
        host.debug("systemd is not installed in the rootfs: no getty units set up");
        return Ok(());
    }
    let Some(unit) = ["lib/systemd/system/getty@.service", "usr/lib/systemd/system/getty@.service"]
        .into_iter()
        .find(|path| matches!(host.file_kind(path), Ok(Some(FileKind::File))))
    else {
        host.debug("the rootfs has no getty@.service: no tty gettys");
        return Ok(());
    };
    host.mkdir_all("etc/systemd/system/getty@.service.d", 0o755)?;
    host.write_file(GETTY_DROP_IN_PATH, GETTY_DROP_IN.as_bytes(), 0o644)?;
    host.mkdir_all(GETTY_WANTS, 0o755)?;
    for tty in 1..=ttys {
        let link = format!("{GETTY_WANTS}/getty@tty{tty}.service");
        host.remove(&link)?;
        host.symlink(&format!("/{unit}"), &link)?;
    }
    host.debug(&format!("getty@tty1..{ttys} enabled, started on the ttys LXC makes"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeHost, Node, with_host};

    #[test]
    fn gettys_on_the_ttys_lxc_makes_only_with_systemd() {
        let mut bare = FakeHost::sealed();
        with_host(&mut bare, |h| container_gettys(h, 4)).unwrap();
        assert!(!bare.exists(GETTY_DROP_IN_PATH), "no systemd, no drop-in");

        let mut fake = FakeHost::sealed();
        fake.put_program("usr/lib/systemd/systemd");
        fake.put("usr/lib/systemd/system/getty@.service", "[Unit]\nConditionPathExists=/dev/tty0\n");
        fake.mkdir("etc/systemd/system/getty.target.wants");
        fake.rootfs.insert(
            format!("{GETTY_WANTS}/getty@tty1.service"),
            Node::Symlink { target: "/lib/systemd/system/getty@.service".into() },
        );
        with_host(&mut fake, |h| container_gettys(h, 2)).unwrap();
        assert!(fake.text(GETTY_DROP_IN_PATH).contains("ConditionPathExists=\nConditionPathExists=/dev/%I\n"));
        for tty in 1..=2 {
            assert_eq!(
                fake.rootfs[&format!("{GETTY_WANTS}/getty@tty{tty}.service")],
                Node::Symlink { target: "/usr/lib/systemd/system/getty@.service".into() }
            );
        }
        assert!(!fake.exists(&format!("{GETTY_WANTS}/getty@tty3.service")));
    }
}
