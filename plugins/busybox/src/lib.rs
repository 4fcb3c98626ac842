/*!
The `busybox` distro plugin of `lxc-tmpl`: a minimal container made of the
host's busybox binary, replacing LXC's `lxc-busybox` shell template.

The container is a directory tree, one copy of busybox at `/bin/busybox`, a
symlink per applet, `/sbin/init` as a hard link to busybox, and a handful of
boot files (`etc/inittab`, `etc/init.d/rcS`, the udhcpc script). It needs no
network and no cache: [`Distro::cache_key`] stays `None` and `download`
builds straight into the container's rootfs in well under a second.

# What differs from `lxc-busybox`, and why

The old script was written for convenience on a trusted host. This plugin
keeps its behaviour and drops what was unsafe:

- **No root shell without login.** The old inittab had
  `console::askfirst:/bin/sh`: anyone reaching the console got root. Here the
  console and tty1 run `getty`/`login`, and root's password is locked (`*` in
  `/etc/shadow`, mode 0600), so nobody logs in until someone with
  `lxc-attach` runs `passwd`. `*` rather than `!`: `passwd -u` on a `!`-only
  field would unlock to an *empty* password.
- **busybox is not setuid.** The old `chmod +s bin/passwd` followed the
  applet symlink and made the whole multi-call binary setuid root: every
  applet (`sh`, `vi`, ...) became a root shell for any user. It is copied
  0755 here; a container user who needs `passwd` runs it as root.
- **LXC's `common.conf` is included.** Without it the old config had no
  device cgroup allowlist (a privileged container could `mknod` and open host
  disks), no seccomp policy and kept `sys_rawio`.
- **DHCP never blocks boot and stays off the host's network.** rcS starts
  `udhcpc` only when an `eth0` exists, as a background daemon (`-b ... &`),
  and the plugin emits no `lxc.net.*` key at all: the network comes from the
  user's base config. When that config says `lxc.net.N.type = none` (the
  host's own network namespace) rcS gets no `udhcpc` at all. The old rcS ran
  a foreground `udhcpc` unconditionally, which with `type = none`
  reconfigured the host's own interface.
- **Files are written, not appended.** The old `>>` into `etc/passwd` and
  `etc/group` duplicated lines on a re-run; its group line `root:x:0:root`
  also had the wrong field count. The udhcpc script directory was chmod'ed
  0644 (not searchable); it is 0755 here.
- **Dynamic busybox is detected, not assumed.** The old script bind-mounted
  the host's `lib*` dirs into every container. Here the binary's ELF program
  headers decide: a static busybox (preferred) gets no host binds; a dynamic
  one gets read-only binds of the host library dirs and a warning.

All rootfs access goes through [`Host`], which resolves paths as if chrooted,
so a symlink in the rootfs can never redirect a write to a host file (the old
script wrote through host paths).
*/

// No fork, no host-path writes: everything goes through `Host` (plugins/clippy.toml).
#![deny(clippy::disallowed_methods)]

mod applets;
mod elf;

use lxc_tmpl_plugin_api::{
    CommandSpec, ConfigEntry, Distro, FileKind, HookContext, Host, Manifest, OptionSpec, PluginError, export_plugin,
    serde_json::json,
};

use crate::elf::ElfInfo;

/// The long name of the plugin's only option.
const OPT_BUSYBOX_PATH: &str = "busybox-path";

/// Where busybox is looked for when `--busybox-path` is not given: the usual
/// `PATH` of root, in its usual order. A fixed list rather than the caller's
/// `PATH`, so that a stray directory in root's environment cannot choose the
/// binary copied into containers.
const SEARCH_DIRS: &[&str] = &["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// Where busybox lives inside the container; every applet links here.
const ROOTFS_BUSYBOX: &str = "bin/busybox";

/// The directory tree of the container, with modes (the old script's list
/// minus `selinux`, which nothing uses any more; `lib64`/`usr/lib64` are
/// added only for a dynamic busybox that needs them).
const TREE: &[(&str, u32)] = &[
    ("bin", 0o755),
    ("sbin", 0o755),
    ("usr", 0o755),
    ("usr/bin", 0o755),
    ("usr/sbin", 0o755),
    ("usr/lib", 0o755),
    ("lib", 0o755),
    ("dev", 0o755),
    ("dev/pts", 0o755),
    ("proc", 0o755),
    ("sys", 0o755),
    // World-writable with the sticky bit, like any /tmp.
    ("tmp", 0o1777),
    // root's home is root's alone.
    ("root", 0o700),
    ("home", 0o755),
    ("etc", 0o755),
    ("etc/init.d", 0o755),
    ("var", 0o755),
    ("var/log", 0o755),
    ("var/run", 0o755),
    ("mnt", 0o755),
];

/// Host library dirs a dynamic busybox may need, as rootfs-relative paths;
/// each one that exists on the host is bind-mounted read-only.
const LIB_DIRS: &[&str] = &["lib", "usr/lib", "lib64", "usr/lib64"];

/// LXC's shared container config (device allowlist, seccomp, cap drops).
const COMMON_CONF: &str = "/usr/share/lxc/config/common.conf";
/// LXC's additions for containers in a user namespace.
const USERNS_CONF: &str = "/usr/share/lxc/config/userns.conf";

/// udhcpc's script when busybox does not say where it looks for one.
const DEFAULT_UDHCPC_SCRIPT: &str = "/etc/udhcpc/default.script";

/// Where applets are looked up when the boot files name them.
const APPLET_DIRS: &[&str] = &["sbin", "bin", "usr/sbin", "usr/bin"];

// The files written into the rootfs; see templates/busybox/README.md.
const PASSWD: &str = include_str!("../../../templates/busybox/passwd");
const GROUP: &str = include_str!("../../../templates/busybox/group");
const SHADOW: &str = include_str!("../../../templates/busybox/shadow");
const FSTAB: &str = include_str!("../../../templates/busybox/fstab");
const PROFILE: &str = include_str!("../../../templates/busybox/profile");
const UDHCPC_SCRIPT: &str = include_str!("../../../templates/busybox/default.script");
const HOSTNAME_J2: &str = include_str!("../../../templates/busybox/hostname.j2");
const HOSTS_J2: &str = include_str!("../../../templates/busybox/hosts.j2");
const INITTAB_J2: &str = include_str!("../../../templates/busybox/inittab.j2");
const RCS_J2: &str = include_str!("../../../templates/busybox/rcS.j2");

/// The busybox distro plugin.
#[derive(Debug, Default)]
pub struct Busybox;

export_plugin!(Busybox);

impl Distro for Busybox {
    fn manifest(&self) -> Manifest {
        Manifest::new(
            "busybox",
            env!("CARGO_PKG_VERSION"),
            "Minimal container made of the host's busybox (offline, no cache)",
        )
        .option(OptionSpec::value(
            OPT_BUSYBOX_PATH,
            "PATH",
            "busybox binary to copy into the container, static preferred \
             (default: busybox found in PATH: /usr/local/sbin, /usr/local/bin, /usr/sbin, /usr/bin, /sbin, /bin)",
        ))
    }

    fn validate(&self, ctx: &HookContext, host: &mut Host<'_>) -> Result<(), PluginError> {
        let busybox = probe(ctx, host)?;
        // The config includes these; a missing one would make LXC reject the
        // config after the rootfs was built.
        require_lxc_conf(host, COMMON_CONF)?;
        if ctx.facts.is_unprivileged() {
            require_lxc_conf(host, USERNS_CONF)?;
        }
        match &busybox.elf.interpreter {
            None => host.debug(&format!("using static busybox {}", busybox.path)),
            Some(loader) => {
                let binds = host_lib_dirs(host)?;
                host.warn(&format!(
                    "{} is dynamically linked (loader {loader}): the container will bind-mount the host's {} \
                     read-only; install busybox-static or pass a static --busybox-path for a self-contained container",
                    busybox.path,
                    binds.iter().map(|d| format!("/{d}")).collect::<Vec<_>>().join(", "),
                ));
                if !loader_is_bound(loader, &binds) {
                    host.warn(&format!(
                        "the loader {loader} of {} is outside the bound library dirs: the container will not start",
                        busybox.path
                    ));
                }
            }
        }
        Ok(())
    }

    fn download(&self, ctx: &HookContext, host: &mut Host<'_>) -> Result<(), PluginError> {
        let busybox = probe(ctx, host)?;

        host.progress("creating the directory tree");
        for &(dir, mode) in TREE {
            host.mkdir_all(dir, mode)?;
            // Explicitly, so the umask cannot take the sticky bit off /tmp.
            host.set_mode(dir, mode)?;
        }
        if !busybox.elf.is_static() {
            // Mount points for the host's 64-bit library dirs (lib and
            // usr/lib are always in the tree).
            for dir in host_lib_dirs(host)? {
                host.mkdir_all(dir, 0o755)?;
            }
        }

        host.progress("installing busybox");
        // 0755 whatever the host file's mode: never setuid (see the crate docs).
        host.copy_from_host(&busybox.path, ROOTFS_BUSYBOX, 0o755)?;

        let applets = list_applets(host, &busybox.path)?;
        if !applets.rejected.is_empty() {
            host.warn(&format!(
                "{} listed applet paths that are not plain relative paths; skipped: {}",
                busybox.path,
                applets.rejected.join(", ")
            ));
        }
        host.debug(&format!("linking {} applets to /{ROOTFS_BUSYBOX}", applets.links.len()));
        let mut made_dirs: Vec<&str> = TREE.iter().map(|(d, _)| *d).collect();
        for link in &applets.links {
            if let Some(dir) = applets::parent(link)
                && !made_dirs.contains(&dir)
            {
                host.mkdir_all(dir, 0o755)?;
                made_dirs.push(dir);
            }
            host.symlink(&format!("/{ROOTFS_BUSYBOX}"), link)?;
        }
        // As the old template: a hard link keeps /sbin/init a real file for
        // lxc-start to exec; busybox picks the init applet from argv[0].
        host.hard_link(ROOTFS_BUSYBOX, "sbin/init")
    }

    fn configure(&self, ctx: &HookContext, host: &mut Host<'_>) -> Result<(), PluginError> {
        // Accounts: root only, password locked (see the crate docs).
        host.write_file("etc/passwd", PASSWD.as_bytes(), 0o644)?;
        host.write_file("etc/group", GROUP.as_bytes(), 0o644)?;
        host.write_file("etc/shadow", SHADOW.as_bytes(), 0o600)?;
        // Written with the mode above only when created: make sure.
        host.set_mode("etc/shadow", 0o600)?;

        // The host name, not the container name (`web_01` is a fine
        // container name but no host name): the short one in /etc/hostname,
        // both on the 127.0.1.1 line of /etc/hosts.
        let who = json!({ "hostname": ctx.short_hostname(), "fqdn": ctx.fqdn() });
        host.write_template("etc/hostname", HOSTNAME_J2, &who, 0o644)?;
        host.write_template("etc/hosts", HOSTS_J2, &who, 0o644)?;
        // `mount -a` in rcS needs the file to exist.
        host.write_file("etc/fstab", FSTAB.as_bytes(), 0o644)?;
        host.write_file("etc/profile", PROFILE.as_bytes(), 0o644)?;

        // Name the applets the boot files use by where they really are
        // (busybox builds differ; `--list` puts everything in bin/), and
        // leave out what this busybox lacks instead of writing dead lines.
        let getty = find_applet(host, "getty")?;
        let login = find_applet(host, "login")?;
        let getty = match (getty, login) {
            (Some(getty), Some(_)) => Some(getty),
            _ => {
                host.warn("this busybox lacks getty or login: no login prompt on the console; use lxc-attach");
                None
            }
        };
        let inittab = json!({
            "getty": getty,
            "reboot": find_applet(host, "reboot")?,
            "umount": find_applet(host, "umount")?,
        });
        host.write_template("etc/inittab", INITTAB_J2, &inittab, 0o644)?;

        let mut udhcpc_script = install_udhcpc_script(ctx, host)?;
        if udhcpc_script.is_some() && shares_host_network(host) {
            // In the host's network namespace, the container's eth0 is the
            // host's: a DHCP client there rewrites the host's addresses and
            // routes. The script stays installed for deliberate use.
            host.warn(
                "the base config shares the host's network (lxc.net.N.type = none): \
                 rcS will not run udhcpc, which would reconfigure the host's interfaces",
            );
            udhcpc_script = None;
        }
        let rcs = json!({
            "loopback": find_applet(host, "ip")?.is_some(),
            "syslogd": find_applet(host, "syslogd")?.is_some(),
            "udhcpc_script": udhcpc_script,
        });
        host.write_template("etc/init.d/rcS", RCS_J2, &rcs, 0o755)
    }

    fn config(&self, ctx: &HookContext, host: &mut Host<'_>) -> Result<(), PluginError> {
        let busybox = probe(ctx, host)?;
        let mut binds = Vec::new();
        if !busybox.elf.is_static() {
            for dir in host_lib_dirs(host)? {
                // As the old script: only where the rootfs has a mount point.
                if host.file_kind(dir)? == Some(FileKind::Dir) {
                    binds.push(dir);
                }
            }
        }
        for entry in config_entries(ctx.short_hostname(), &binds, ctx.facts.is_unprivileged()) {
            host.config(entry)?;
        }
        Ok(())
    }

    fn message(&self, ctx: &HookContext, _host: &mut Host<'_>) -> Result<Option<String>, PluginError> {
        let name = ctx.name.as_str();
        Ok(Some(format!(
            "The busybox container {name} is ready. No root password is set, so console logins are locked.\n\
             Get in with:  lxc-start -n {name} && lxc-attach -n {name}\n\
             Run `passwd` inside to allow logins on the console (lxc-console -n {name})."
        )))
    }
}

/// The busybox binary this create uses.
#[derive(Debug)]
struct Probe {
    /// Its absolute host path.
    path: String,
    /// What its ELF headers say.
    elf: ElfInfo,
}

/// Finds the busybox binary (the option, else the first in [`SEARCH_DIRS`])
/// and reads its ELF headers. Every hook that needs it asks again: hooks are
/// stateless, and reading a 2 MB file is cheap next to the rest of a create.
fn probe(ctx: &HookContext, host: &mut Host<'_>) -> Result<Probe, PluginError> {
    let path = locate(ctx, host)?;
    let bytes = host.read_host_file(&path)?;
    let elf = elf::parse(&bytes).map_err(|e| {
        PluginError::invalid_input(format!(
            "{path} is not a busybox executable ({e}): install busybox-static or pass --busybox-path"
        ))
    })?;
    Ok(Probe { path, elf })
}

fn locate(ctx: &HookContext, host: &mut Host<'_>) -> Result<String, PluginError> {
    let Some(path) = ctx.option(OPT_BUSYBOX_PATH) else {
        for dir in SEARCH_DIRS {
            let candidate = format!("{dir}/busybox");
            if host.host_file_kind(&candidate)? == Some(FileKind::File) {
                return Ok(candidate);
            }
        }
        return Err(PluginError::invalid_input(format!(
            "busybox not found in {}: install busybox-static or pass --busybox-path",
            SEARCH_DIRS.join(", ")
        )));
    };
    if !path.starts_with('/') {
        return Err(PluginError::invalid_input(format!(
            "--busybox-path {path}: give an absolute path (such as /bin/busybox)"
        )));
    }
    match host.host_file_kind(path)? {
        Some(FileKind::File) => Ok(path.to_owned()),
        None => Err(PluginError::invalid_input(format!(
            "busybox not found at {path}: install busybox-static or pass --busybox-path"
        ))),
        Some(kind) => Err(PluginError::invalid_input(format!(
            "busybox at {path} is {kind}, not a regular file: pass the busybox binary with --busybox-path"
        ))),
    }
}

fn require_lxc_conf(host: &mut Host<'_>, path: &str) -> Result<(), PluginError> {
    if host.host_file_kind(path)? == Some(FileKind::File) {
        Ok(())
    } else {
        Err(PluginError::unsupported(format!(
            "{path} is missing: install LXC (liblxc-common); the busybox container's config includes it"
        )))
    }
}

/// The entries of [`LIB_DIRS`] that are directories on the host (symlinks
/// followed, so a merged-/usr `/lib -> usr/lib` counts).
fn host_lib_dirs(host: &mut Host<'_>) -> Result<Vec<&'static str>, PluginError> {
    let mut found = Vec::new();
    for &dir in LIB_DIRS {
        if host.host_file_kind(&format!("/{dir}"))? == Some(FileKind::Dir) {
            found.push(dir);
        }
    }
    Ok(found)
}

/// How many `lxc.net.N` indices of the base config are checked for `none`;
/// LXC allows any index, real configs use the first few.
const NET_INDICES: usize = 16;

/// Whether the container's base config puts it in the host's network
/// namespace (`lxc.net.N.type = none`, or the legacy `lxc.network.type`).
fn shares_host_network(host: &mut Host<'_>) -> bool {
    let keys = (0..NET_INDICES).map(|n| format!("lxc.net.{n}.type")).chain(["lxc.network.type".to_owned()]);
    keys.into_iter().any(|key| host.config_value(&key).is_some_and(|v| v.trim() == "none"))
}

/// Whether the dynamic loader lies inside one of the bound library dirs.
fn loader_is_bound(loader: &str, binds: &[&str]) -> bool {
    binds
        .iter()
        .any(|dir| loader.strip_prefix('/').and_then(|l| l.strip_prefix(dir)).is_some_and(|r| r.starts_with('/')))
}

/// Runs `busybox --list-full` on the host (install paths such as
/// `usr/bin/awk`), falling back to `--list` (names, all linked into bin/)
/// for a busybox too old for `--list-full`.
fn list_applets(host: &mut Host<'_>, busybox: &str) -> Result<applets::AppletLinks, PluginError> {
    let full = host.run(&CommandSpec::on_host(&[busybox, "--list-full"]).unchecked())?;
    let mut parsed = if full.status == 0 { applets::parse_list_full(&full.stdout_text()) } else { Default::default() };
    if parsed.links.is_empty() {
        host.debug(&format!("{busybox} --list-full gave nothing (status {}); using --list", full.status));
        let short = host.run_on_host(&[busybox, "--list"])?;
        parsed = applets::parse_list(&short.stdout_text());
    }
    if parsed.links.is_empty() {
        return Err(PluginError::failed(format!(
            "{busybox} lists no applets: pass a working busybox with --busybox-path"
        )));
    }
    Ok(parsed)
}

/// The absolute in-container path of an applet, looked up in the usual
/// dirs; `None` when this busybox does not have it.
fn find_applet(host: &mut Host<'_>, name: &str) -> Result<Option<String>, PluginError> {
    for dir in APPLET_DIRS {
        let path = format!("{dir}/{name}");
        if matches!(host.file_kind(&path)?, Some(FileKind::Symlink | FileKind::File)) {
            return Ok(Some(format!("/{path}")));
        }
    }
    Ok(None)
}

/// Installs udhcpc's event script where this busybox's udhcpc looks for it
/// by default (read from `udhcpc --help`, as the old template did), so a
/// manual `udhcpc -i eth0` works too. Returns its path, or `None` when the
/// busybox has no `udhcpc` or no `ip` to apply a lease with.
fn install_udhcpc_script(ctx: &HookContext, host: &mut Host<'_>) -> Result<Option<String>, PluginError> {
    if find_applet(host, "udhcpc")?.is_none() {
        host.info("this busybox has no udhcpc: the container will not configure its network by DHCP");
        return Ok(None);
    }
    if find_applet(host, "ip")?.is_none() {
        host.warn("this busybox has udhcpc but no ip applet: the container will not configure its network by DHCP");
        return Ok(None);
    }
    let busybox = locate(ctx, host)?;
    let help = host.run(&CommandSpec::on_host(&[busybox.as_str(), "udhcpc", "--help"]).unchecked())?;
    // busybox prints usage on stderr.
    let text = format!("{}{}", help.stdout_text(), String::from_utf8_lossy(&help.stderr));
    let script = applets::udhcpc_default_script(&text).unwrap_or_else(|| DEFAULT_UDHCPC_SCRIPT.to_owned());
    if let Some(dir) = applets::parent(&script)
        && !dir.is_empty()
    {
        host.mkdir_all(dir, 0o755)?;
        // Searchable: the old script made this dir 0644.
        host.set_mode(dir, 0o755)?;
    }
    host.write_file(&script, UDHCPC_SCRIPT.as_bytes(), 0o755)?;
    host.set_mode(&script, 0o755)?;
    Ok(Some(script))
}

/// The LXC config entries of a busybox container (LXC 2.1+ keys), in order.
///
/// `uts_name` is the short host name. `lib_binds` are the rootfs-relative
/// library dirs to bind read-only from the host (empty for a static
/// busybox). Deliberately no `lxc.net.*` (the
/// user's base config owns the network; `type = none` would hand the
/// container's DHCP client the host's interfaces) and no `lxc.apparmor.*`.
fn config_entries(uts_name: &str, lib_binds: &[&str], unprivileged: bool) -> Vec<ConfigEntry> {
    let mut entries = vec![ConfigEntry::new("lxc.include", COMMON_CONF)];
    if unprivileged {
        // As LXC's own distro configs do: no device cgroup rules, no /dev/lxc.
        entries.push(ConfigEntry::new("lxc.include", USERNS_CONF));
    }
    entries.extend([
        ConfigEntry::new("lxc.uts.name", uts_name),
        // busybox init halts on SIGUSR1 and reboots on SIGTERM.
        ConfigEntry::new("lxc.signal.halt", "SIGUSR1"),
        ConfigEntry::new("lxc.signal.reboot", "SIGTERM"),
        ConfigEntry::new("lxc.autodev", "1"),
        // One tty: inittab runs a getty on tty1 only (common.conf sets 4).
        ConfigEntry::new("lxc.tty.max", "1"),
        // The old script's 1 left no pty for a second login or `script`.
        ConfigEntry::new("lxc.pty.max", "1024"),
    ]);
    if !unprivileged {
        // The old script's choices, kept where they are stricter than
        // common.conf: /sys fully read-only (common.conf: sys:mixed). An
        // unprivileged container keeps userns.conf's settings (full caps
        // inside its user namespace, sys:rw), as LXC intends.
        entries.push(ConfigEntry::new("lxc.cap.drop", "sys_module mac_admin mac_override sys_time"));
        entries.push(ConfigEntry::new("lxc.mount.auto", "cgroup:mixed proc:mixed sys:ro"));
    }
    entries.push(ConfigEntry::new("lxc.mount.entry", "shm dev/shm tmpfs defaults,create=dir 0 0"));
    entries.push(ConfigEntry::new("lxc.mount.entry", "mqueue dev/mqueue mqueue defaults,optional,create=dir 0 0"));
    for dir in lib_binds {
        entries.push(ConfigEntry::new("lxc.mount.entry", &format!("/{dir} {dir} none ro,bind 0 0")));
    }
    entries.push(ConfigEntry::new(
        "lxc.mount.entry",
        "/sys/kernel/security sys/kernel/security none ro,bind,optional 0 0",
    ));
    entries
}

#[cfg(test)]
mod tests;
