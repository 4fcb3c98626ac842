//! systemd in an LXC container: a login prompt on each tty LXC makes.
//!
//! lxc-debian's `configure_debian_systemd`, checked against bookworm's
//! systemd 252 under LXC 5 (booted and looked at, see the README):
//!
//! - **kept, and made to work**: `getty@ttyN` on tty1..`lxc.tty.max`. LXC
//!   binds `/dev/tty1..N` for `lxc-console`, but makes no `/dev/tty0`, so
//!   `getty@.service`'s `ConditionPathExists=/dev/tty0` skips every getty
//!   (and `getty-static.service` too): the old wants links alone start
//!   nothing today. A drop-in replaces that condition by `/dev/%I`.
//! - dropped: masking `udev.service`/`systemd-udevd.service` (udev is not in
//!   the rootfs, and `systemd-udevd.service` has `ConditionPathIsReadWrite=/sys`,
//!   which LXC's read-only `/sys` fails); `default.target` as
//!   `multi-user.target` (`graphical.target` without a display manager is the
//!   same boot); masking `container-getty@N.service` (systemd's generator
//!   starts those only for `pts/N` entries of `$container_ttys`, which LXC
//!   does not set for `/dev/ttyN` consoles, so there is no second agetty to
//!   avoid); rewriting `getty-static.service` (skipped by its own
//!   `/dev/tty0` condition). `console-getty.service` serves `/dev/console`.

use lxc_tmpl_deb::system::has_systemd;
use lxc_tmpl_plugin_api::{FileKind, Host, PluginError};

/// The drop-in that lets `getty@ttyN` start on a tty LXC made.
pub const GETTY_DROP_IN: &str = include_str!("../../../templates/debian/getty-tty.conf");
/// Where it goes.
pub const GETTY_DROP_IN_PATH: &str = "etc/systemd/system/getty@.service.d/lxc-tmpl-tty.conf";
/// Where the getty wants links go.
pub const GETTY_WANTS: &str = "etc/systemd/system/getty.target.wants";

/// A getty on each of the `ttys` LXC makes (`lxc.tty.max`), when the
/// rootfs boots with systemd.
pub fn container_units(host: &mut Host<'_>, ttys: u32) -> Result<(), PluginError> {
    if !has_systemd(host)? {
        host.info("systemd is not installed in the rootfs: no getty units set up");
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
