//! Reading what a busybox binary says about itself: its applets and the
//! default script of its DHCP client.
//!
//! The output comes from running the host's busybox, a program the user may
//! have pointed at with `--busybox-path`, so it is treated as untrusted text:
//! every applet path is checked to be a plain relative path before the plugin
//! asks the host for a symlink there (the host resolves rootfs paths as if
//! chrooted anyway; this keeps nonsense out of the rootfs and the log).

use std::collections::BTreeSet;

/// Where the applets go, as rootfs paths.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AppletLinks {
    /// Rootfs paths (`bin/ash`, `usr/bin/[`) to symlink to `/bin/busybox`,
    /// sorted, without duplicates.
    pub links: Vec<String>,
    /// Lines that were not usable paths, for a warning.
    pub rejected: Vec<String>,
}

/// Paths never turned into symlinks: the binary itself, `init` (a hard link,
/// so that `/sbin/init` stays a real file as LXC expects), and `linuxrc` (the
/// initrd flavour of init, meaningless in a container).
const SKIPPED: &[&str] = &["bin/busybox", "sbin/init", "linuxrc"];

/// Parses `busybox --list-full`: one install path per line, relative to `/`
/// (`bin/ash`, `usr/sbin/brctl`).
pub fn parse_list_full(output: &str) -> AppletLinks {
    collect(output.lines().map(|line| line.trim().trim_start_matches('/').to_owned()))
}

/// Parses `busybox --list` (older busybox without `--list-full`): one applet
/// name per line, all linked into `bin/` as the old lxc-busybox did.
pub fn parse_list(output: &str) -> AppletLinks {
    let mut result = AppletLinks::default();
    let names = output.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut paths = Vec::new();
    for name in names {
        if name.contains('/') {
            result.rejected.push(name.to_owned());
        } else {
            paths.push(format!("bin/{name}"));
        }
    }
    let mut rest = collect(paths.into_iter());
    result.rejected.append(&mut rest.rejected);
    result.links = rest.links;
    result
}

fn collect(paths: impl Iterator<Item = String>) -> AppletLinks {
    let mut links = BTreeSet::new();
    let mut rejected = Vec::new();
    for path in paths {
        if path.is_empty() || SKIPPED.contains(&path.as_str()) {
            continue;
        }
        if is_plain_relative_path(&path) {
            links.insert(path);
        } else {
            rejected.push(path);
        }
    }
    AppletLinks { links: links.into_iter().collect(), rejected }
}

/// A relative path of visible, non-space characters without `.`/`..` or
/// empty components: what an applet install path looks like.
fn is_plain_relative_path(path: &str) -> bool {
    !path.starts_with('/')
        && path.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
        && path.chars().all(|c| c.is_ascii_graphic())
}

/// The parent directory of a rootfs path (`usr/bin` for `usr/bin/[`), if any.
pub fn parent(path: &str) -> Option<&str> {
    path.rsplit_once('/').map(|(dir, _)| dir)
}

/// Finds the compiled-in default script in `busybox udhcpc --help`, from the
/// line `-s PROG  Run PROG at DHCP events (default /etc/udhcpc/default.script)`,
/// as the old template did. `None` when the line is missing or odd.
pub fn udhcpc_default_script(help: &str) -> Option<String> {
    let line = help.lines().find(|l| l.trim_start().starts_with("-s") && l.contains("Run PROG"))?;
    let start = line.find("(default ")? + "(default ".len();
    let rest = &line[start..];
    let path = &rest[..rest.find(')')?];
    let path = path.trim();
    let relative = path.strip_prefix('/')?;
    is_plain_relative_path(relative).then(|| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_full_keeps_paths_and_skips_busybox_init_linuxrc() {
        let out = "usr/bin/[\nusr/bin/[[\nbin/ash\nbin/busybox\nsbin/init\nlinuxrc\nsbin/getty\n\nbin/ash\n";
        let parsed = parse_list_full(out);
        assert_eq!(parsed.links, ["bin/ash", "sbin/getty", "usr/bin/[", "usr/bin/[["]);
        assert!(parsed.rejected.is_empty());
    }

    #[test]
    fn list_full_rejects_escapes_and_odd_names() {
        let out = "bin/../../etc/passwd\nbin/./sh\nusr//bin/x\nbin/with space\nbin/tab\there\n/sbin/ok\n";
        let parsed = parse_list_full(out);
        assert_eq!(parsed.links, ["sbin/ok"]);
        assert_eq!(
            parsed.rejected,
            ["bin/../../etc/passwd", "bin/./sh", "usr//bin/x", "bin/with space", "bin/tab\there"]
        );
    }

    #[test]
    fn short_list_goes_to_bin() {
        let parsed = parse_list("ash\nbusybox\ninit\nsh\n[\n../x\n..\n");
        // `init` becomes bin/init: only sbin/init is the hard link.
        assert_eq!(parsed.links, ["bin/[", "bin/ash", "bin/init", "bin/sh"]);
        assert_eq!(parsed.rejected, ["../x", "bin/.."]);
    }

    #[test]
    fn parent_dirs() {
        assert_eq!(parent("usr/bin/["), Some("usr/bin"));
        assert_eq!(parent("linuxrc"), None);
    }

    #[test]
    fn default_script_from_help() {
        let help = "Usage: udhcpc [-fbqRn] [-t N] [-T SEC] [-A SEC|-n]\n\
                    \t[-i IFACE] [-s PROG] [-p PIDFILE]\n\
                    \t-s PROG\t\tRun PROG at DHCP events (default /etc/udhcpc/default.script)\n";
        assert_eq!(udhcpc_default_script(help).as_deref(), Some("/etc/udhcpc/default.script"));
        let other = "\t-s,--script PROG\tRun PROG at DHCP events (default /usr/share/udhcpc/default.script)";
        assert_eq!(udhcpc_default_script(other).as_deref(), Some("/usr/share/udhcpc/default.script"));
        assert_eq!(udhcpc_default_script("udhcpc: applet not found"), None);
        assert_eq!(udhcpc_default_script("-s PROG Run PROG (default ../../x)"), None);
        assert_eq!(udhcpc_default_script("-s PROG Run PROG (default /etc/../x)"), None);
    }

    /// The host's busybox-static (a CI dependency) lists the applets the
    /// container's boot files rely on. Asked as the plugin asks: a host
    /// command, run for real by the fake host.
    #[test]
    fn host_busybox_applets() {
        use lxc_tmpl_plugin_api::testing::{FakeHost, run_on_machine, with_host};
        let mut fake = FakeHost::new();
        fake.set_responder(run_on_machine);
        let out = with_host(&mut fake, |h| h.run_on_host(&["/bin/busybox", "--list-full"]))
            .expect("run /bin/busybox --list-full (install busybox-static)");
        let parsed = parse_list_full(&String::from_utf8_lossy(&out.stdout));
        assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
        for needed in ["bin/sh", "sbin/getty", "bin/login", "sbin/udhcpc", "sbin/syslogd", "bin/mount"] {
            assert!(parsed.links.iter().any(|l| l == needed), "missing {needed}");
        }
        assert!(!parsed.links.iter().any(|l| l == "sbin/init" || l == "bin/busybox"));
    }
}
