//! System configuration of a Debian-family rootfs: hostname, hosts,
//! network, locale, timezone, ssh host keys, systemd unit masks, the apt
//! keyring, and the scrubbing that keeps host and per-machine state out of
//! a cached rootfs.

use lxc_tmpl_plugin_api::{
    CommandSpec, FileKind, Host, PluginError, rootfs_paths::SSH_HOST_KEYS, serde_json::json, short_hostname,
};

use crate::templates;

/// Whether any of the rootfs `paths` is a file or symlink (a program, in
/// any of its usual places; merged-/usr symlinks are followed by the host).
pub fn any_exists(host: &mut Host<'_>, paths: &[&str]) -> Result<bool, PluginError> {
    for path in paths {
        if matches!(host.file_kind(path)?, Some(FileKind::File | FileKind::Symlink)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Writes a text file with `mode`, also when it existed with another mode.
fn write_text(host: &mut Host<'_>, path: &str, text: &str, mode: u32) -> Result<(), PluginError> {
    if host.file_kind(path)? == Some(FileKind::Symlink) {
        // Never write through a link the rootfs brought (the host would keep
        // the write inside the rootfs, but the link's target is not ours).
        host.remove(path)?;
    }
    host.write_file(path, text.as_bytes(), mode)?;
    host.set_mode(path, mode)
}

/// `/etc/hostname`: the short host name (the first label of a dotted one),
/// as Debian's installer writes it (hostname(5): the file holds the name
/// without the domain).
pub fn write_hostname(host: &mut Host<'_>, hostname: &str) -> Result<(), PluginError> {
    host.mkdir_all("etc", 0o755)?;
    write_text(host, "etc/hostname", &format!("{}\n", short_hostname(hostname)), 0o644)
}

/// `/etc/hosts` with the usual IPv6 lines and the host name on 127.0.1.1:
/// `127.0.1.1 web.example.com web` for a dotted name (the canonical name
/// first, then the alias: hosts(5)), `127.0.1.1 web` otherwise, as Debian's
/// installer writes it.
pub fn write_hosts(host: &mut Host<'_>, hostname: &str) -> Result<(), PluginError> {
    host.mkdir_all("etc", 0o755)?;
    let context = json!({ "hostname": short_hostname(hostname), "fqdn": hostname.contains('.').then_some(hostname) });
    let text = host.render("etc/hosts", templates::HOSTS, &context)?;
    write_text(host, "etc/hosts", &text, 0o644)
}

/// How the container's network is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkStyle {
    /// `/etc/netplan/10-lxc.yaml` (Ubuntu 17.10 and later).
    Netplan,
    /// `/etc/network/interfaces` (ifupdown).
    Ifupdown,
}

/// The netplan file the plugins write.
pub const NETPLAN_FILE: &str = "etc/netplan/10-lxc.yaml";
/// The ifupdown file the plugins write.
pub const INTERFACES_FILE: &str = "etc/network/interfaces";

const NETPLAN_PROGRAMS: &[&str] = &["usr/sbin/netplan", "sbin/netplan", "usr/bin/netplan"];
const IFUPDOWN_PROGRAMS: &[&str] = &["sbin/ifup", "usr/sbin/ifup"];

/// Picks the network style: the release's `preferred` one when its tool is
/// installed in the rootfs, else the other one when that is installed (and
/// says so in the log), else the preferred one with a warning that nothing
/// will read it.
pub fn choose_network_style(host: &mut Host<'_>, preferred: NetworkStyle) -> Result<NetworkStyle, PluginError> {
    let netplan = any_exists(host, NETPLAN_PROGRAMS)?;
    let ifupdown = any_exists(host, IFUPDOWN_PROGRAMS)?;
    let chosen = match (preferred, netplan, ifupdown) {
        (NetworkStyle::Netplan, true, _) | (NetworkStyle::Ifupdown, _, true) => preferred,
        (NetworkStyle::Netplan, false, true) => {
            host.info(
                "this release configures its network with netplan, but netplan is not installed in the rootfs \
                 while ifupdown is: writing /etc/network/interfaces instead",
            );
            NetworkStyle::Ifupdown
        }
        (NetworkStyle::Ifupdown, true, false) => {
            host.info(
                "this release configures its network with ifupdown, but only netplan is installed in the rootfs: \
                 writing /etc/netplan/10-lxc.yaml instead",
            );
            NetworkStyle::Netplan
        }
        (_, false, false) => {
            host.warn(&format!(
                "neither netplan nor ifupdown is installed in the rootfs: writing {} anyway; \
                 the container will not configure its network by itself",
                match preferred {
                    NetworkStyle::Netplan => "/etc/netplan/10-lxc.yaml",
                    NetworkStyle::Ifupdown => "/etc/network/interfaces",
                }
            ));
            preferred
        }
    };
    Ok(chosen)
}

/// Writes DHCP on `interface` in `style`.
pub fn write_network(host: &mut Host<'_>, style: NetworkStyle, interface: &str) -> Result<(), PluginError> {
    let context = json!({ "interface": interface });
    match style {
        NetworkStyle::Netplan => {
            host.mkdir_all("etc/netplan", 0o755)?;
            let text = host.render(NETPLAN_FILE, templates::NETPLAN, &context)?;
            // netplan warns about (and newer netplan refuses) world-readable files.
            write_text(host, NETPLAN_FILE, &text, 0o600)
        }
        NetworkStyle::Ifupdown => {
            host.mkdir_all("etc/network", 0o755)?;
            let text = host.render(INTERFACES_FILE, templates::INTERFACES, &context)?;
            write_text(host, INTERFACES_FILE, &text, 0o644)
        }
    }
}

/// The locale to set from `LANG`: the old templates' rule, `en_US.UTF-8`
/// when `LANG` is unset, empty, `C`, `C.<anything>` or `POSIX`.
pub fn locale_from_lang(lang: Option<&str>) -> Result<String, PluginError> {
    let lang = lang.map(str::trim).unwrap_or_default();
    if lang.is_empty() || lang == "C" || lang == "POSIX" || lang.starts_with("C.") {
        return Ok("en_US.UTF-8".to_owned());
    }
    let ok = lang.len() <= 64
        && lang.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && lang.chars().all(|c| c.is_ascii_alphanumeric() || "_.@-".contains(c));
    if !ok {
        return Err(PluginError::invalid_input(format!(
            "locale '{lang}' (from --locale or LANG) is not a locale name such as en_US.UTF-8"
        )));
    }
    Ok(lang.to_owned())
}

/// Where glibc's `locales` package lists every locale it can generate, one
/// `NAME CHARSET` line each (`en_US.UTF-8 UTF-8`, `de_DE ISO-8859-1`,
/// `en_IN UTF-8`): the names `locale-gen` and LANG accept.
pub const SUPPORTED: &str = "usr/share/i18n/SUPPORTED";

/// A locale as the rootfs's [`SUPPORTED`] list names it: the name LANG gets
/// and the charset of its `locale.gen` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportedLocale {
    /// `en_IN`, `en_US.UTF-8`, `sr_RS@latin`.
    pub name: String,
    /// `UTF-8`, `ISO-8859-1`.
    pub charset: String,
}

impl SupportedLocale {
    /// Its `/etc/locale.gen` line: `en_IN UTF-8`.
    pub fn locale_gen_line(&self) -> String {
        format!("{} {}", self.name, self.charset)
    }
}

/// The codeset of a locale name normalised as glibc does (setlocale(3),
/// `_nl_normalize_codeset`): letters lowercased, digits kept, everything
/// else dropped, so that `en_US.utf8` and `en_US.UTF-8` are one locale.
fn normalised(name: &str) -> String {
    let (base, modifier) = name.split_once('@').map_or((name, None), |(b, m)| (b, Some(m)));
    let (territory, codeset) = base.split_once('.').map_or((base, None), |(t, c)| (t, Some(c)));
    let mut out = territory.to_owned();
    if let Some(codeset) = codeset {
        out.push('.');
        out.extend(codeset.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()));
    }
    if let Some(modifier) = modifier {
        out.push('@');
        out.push_str(modifier);
    }
    out
}

/// Finds `locale` in the text of a [`SUPPORTED`] list: by its exact name,
/// else by the glibc-normalised codeset (`en_US.utf8` finds
/// `en_US.UTF-8 UTF-8`). The charset comes from the list, never from a
/// guess: `en_IN` is `en_IN UTF-8`, `de_DE` is `de_DE ISO-8859-1`.
pub fn find_supported(supported: &str, locale: &str) -> Option<SupportedLocale> {
    let entries: Vec<SupportedLocale> = supported
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            Some(SupportedLocale { name: fields.next()?.to_owned(), charset: fields.next()?.to_owned() })
        })
        .collect();
    entries
        .iter()
        .find(|e| e.name == locale)
        .or_else(|| entries.iter().find(|e| normalised(&e.name) == normalised(locale)))
        .cloned()
}

/// Up to `max` names of [`SUPPORTED`] for the language of `locale` (`en`
/// of `en_XX.UTF-8`), for an error message.
fn same_language(supported: &str, locale: &str, max: usize) -> Vec<String> {
    let language = locale.split(['_', '.', '@']).next().unwrap_or(locale);
    supported
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| name.split(['_', '.', '@']).next() == Some(language) && name.contains(".UTF-8"))
        .take(max)
        .map(str::to_owned)
        .collect()
}

/// `locale.gen` with `line` enabled (uncommented if present as a comment,
/// appended otherwise).
pub fn enable_in_locale_gen(text: &str, line: &str) -> String {
    let wanted = line.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut found = false;
    let mut out = String::new();
    for line in text.lines() {
        let bare = line.trim_start_matches('#').split_whitespace().collect::<Vec<_>>().join(" ");
        if bare == wanted {
            found = true;
            out.push_str(&wanted);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    if !found {
        out.push_str(&wanted);
        out.push('\n');
    }
    out
}

/// How a distro's `locale-gen` is told which locale to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocaleGen {
    /// Ubuntu: `locale-gen <locale>` (and the `locale.gen` line, when the
    /// rootfs has that file: Debian's `locale-gen` ignores arguments).
    Argument,
    /// Debian: enable the line in `/etc/locale.gen`, then `locale-gen`.
    LocaleGenFile,
}

/// Where the `download` hook records the locale it generated into the rootfs
/// (a cache entry, or the container's own without a cache): its
/// `locale.gen` line (`en_US.UTF-8 UTF-8`).
///
/// A warm create checks this file instead of the locale archive itself:
/// `/usr/lib/locale/locale-archive` exists for any generated locale and says
/// which only through `localedef --list-archive`, a command in the rootfs,
/// while this one line is read like any file and is written only after
/// `locale-gen` succeeded. It stays in the container, saying what lxc-tmpl
/// generated.
pub const LOCALE_MARKER: &str = "var/lib/lxc-tmpl/locale";

/// The [`SUPPORTED`] entry of `locale`; `None` (with a warning that LANG
/// stays unset, as lxc-debian left it for a locale it could not make) when
/// the rootfs has no `locales` package (no list or no `locale-gen`).
///
/// A locale the list does not name is refused (invalid input, one line),
/// because LANG naming a locale that does not exist makes every perl and apt
/// run inside warn "Setting locale failed".
pub fn supported_locale(host: &mut Host<'_>, locale: &str) -> Result<Option<SupportedLocale>, PluginError> {
    let has_locale_gen = any_exists(host, &["usr/sbin/locale-gen", "sbin/locale-gen"])?;
    if host.file_kind(SUPPORTED)? != Some(FileKind::File) || !has_locale_gen {
        host.warn(&format!(
            "the rootfs has no locales package (no /{SUPPORTED} or locale-gen): locale {locale} is not generated \
             and LANG is left unset"
        ));
        return Ok(None);
    }
    let supported = String::from_utf8_lossy(&host.read_file(SUPPORTED)?).into_owned();
    match find_supported(&supported, locale) {
        Some(found) => Ok(Some(found)),
        None => {
            let examples = same_language(&supported, locale, 4);
            let examples = if examples.is_empty() { "en_US.UTF-8".to_owned() } else { examples.join(", ") };
            Err(PluginError::invalid_input(format!(
                "locale '{locale}' (from --locale or LANG) is not supported by the rootfs (not in /{SUPPORTED}): \
                 choose one it lists, such as {examples}"
            )))
        }
    }
}

/// Generates `locale` in the rootfs, if the rootfs can have it (see
/// [`supported_locale`]), and returns its entry.
///
/// The locale is enabled in `/etc/locale.gen` with the list's charset (so
/// that a later `locales` upgrade, which regenerates from that file, keeps
/// it), generated with `locale-gen` (a failure is an error; locale-gen(8))
/// and recorded in [`LOCALE_MARKER`]. The `download` hook runs this, into
/// the cache entry (whose key names the locale) or, without a cache, into
/// the container's rootfs; `configure` then only sets LANG ([`set_locale`]).
pub fn generate_locale(
    host: &mut Host<'_>,
    locale: &str,
    style: LocaleGen,
) -> Result<Option<SupportedLocale>, PluginError> {
    let Some(found) = supported_locale(host, locale)? else {
        return Ok(None);
    };
    if style == LocaleGen::LocaleGenFile || host.file_kind("etc/locale.gen")? == Some(FileKind::File) {
        let current = match host.file_kind("etc/locale.gen")? {
            Some(FileKind::File) => String::from_utf8_lossy(&host.read_file("etc/locale.gen")?).into_owned(),
            _ => String::new(),
        };
        write_text(host, "etc/locale.gen", &enable_in_locale_gen(&current, &found.locale_gen_line()), 0o644)?;
    }
    let command = match style {
        LocaleGen::Argument => CommandSpec::in_rootfs(&["locale-gen", &found.name]),
        LocaleGen::LocaleGenFile => CommandSpec::in_rootfs(&["locale-gen"]),
    };
    let out = host.run(&command.unchecked())?;
    if out.status != 0 {
        return Err(PluginError::failed(format!(
            "locale-gen {} failed (exit status {}): {}",
            found.locale_gen_line(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim().lines().last().unwrap_or_default()
        )));
    }
    host.mkdir_all("var/lib/lxc-tmpl", 0o755)?;
    write_text(host, LOCALE_MARKER, &format!("{}\n", found.locale_gen_line()), 0o644)?;
    Ok(Some(found))
}

/// `/etc/default/locale` with `LANG=<name>`, the other lines of the file
/// kept: what `update-locale LANG=<name>` leaves (locale(5) of Debian's
/// `locales`: the file holds `VAR=value` lines that pam_env and systemd read
/// at login), written without running it.
pub fn set_lang(host: &mut Host<'_>, locale: &SupportedLocale) -> Result<(), PluginError> {
    const FILE: &str = "etc/default/locale";
    let current = match host.file_kind(FILE)? {
        Some(FileKind::File) => String::from_utf8_lossy(&host.read_file(FILE)?).into_owned(),
        _ => String::new(),
    };
    let lang = format!("LANG={}", locale.name);
    let mut replaced = false;
    let mut text = String::new();
    for line in current.lines() {
        if line.trim_start().starts_with("LANG=") {
            // One LANG line, where the first one was.
            if !replaced {
                text.push_str(&lang);
                text.push('\n');
            }
            replaced = true;
        } else {
            text.push_str(line);
            text.push('\n');
        }
    }
    if !replaced {
        text.push_str(&lang);
        text.push('\n');
    }
    host.mkdir_all("etc/default", 0o755)?;
    write_text(host, FILE, &text, 0o644)
}

/// Makes `locale` the container's locale: [`set_lang`] only, no
/// `locale-gen`. The `download` hook generated it ([`generate_locale`]),
/// into the cache entry (whose key names the locale) or, without a cache,
/// into this rootfs.
///
/// The [`SUPPORTED`] check runs again (a file read) so that the rules and
/// messages are those of [`generate_locale`]; a [`LOCALE_MARKER`] that does
/// not name the locale means the rootfs was not built for it (only a
/// damaged cache entry gets here): refused with the fix, `--flush-cache`.
pub fn set_locale(host: &mut Host<'_>, locale: &str) -> Result<(), PluginError> {
    let Some(found) = supported_locale(host, locale)? else {
        return Ok(());
    };
    let marker = match host.file_kind(LOCALE_MARKER)? {
        Some(FileKind::File) => String::from_utf8_lossy(&host.read_file(LOCALE_MARKER)?).into_owned(),
        _ => String::new(),
    };
    if !marker.lines().any(|l| l.trim() == found.locale_gen_line()) {
        return Err(PluginError::failed(format!(
            "the rootfs has no generated locale {} (no such line in /{LOCALE_MARKER}): \
             rebuild its cache entry with --flush-cache",
            found.locale_gen_line()
        )));
    }
    set_lang(host, &found)
}

/// A zone name from `/etc/timezone` or the `/etc/localtime` link target:
/// `Europe/Berlin`, `Etc/UTC`. `None` for anything else.
pub fn parse_zone(text: &str) -> Option<String> {
    let text = text.trim();
    let zone = match text.rsplit_once("zoneinfo/") {
        Some((_, zone)) => zone,
        None if text.starts_with('/') => return None,
        None => text,
    };
    let ok = !zone.is_empty()
        && zone.len() <= 128
        && !zone.split('/').any(|p| p.is_empty() || p == "." || p == "..")
        && zone.chars().all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c));
    ok.then(|| zone.to_owned())
}

/// The host's time zone: `/etc/timezone`, else the target of the
/// `/etc/localtime` symlink; `None` when neither says.
pub fn host_timezone(host: &mut Host<'_>) -> Result<Option<String>, PluginError> {
    if host.host_file_kind("/etc/timezone")? == Some(FileKind::File)
        && let Some(zone) = parse_zone(&String::from_utf8_lossy(&host.read_host_file("/etc/timezone")?))
    {
        return Ok(Some(zone));
    }
    Ok(host.read_host_link("/etc/localtime")?.and_then(|target| parse_zone(&target)))
}

/// Where tzdata keeps its zone files (tzfile(5)).
pub const ZONEINFO: &str = "usr/share/zoneinfo";

/// Gives the container the host's time zone as files, the way
/// `dpkg-reconfigure tzdata` leaves them, without running it:
///
/// - `/etc/localtime`, a symlink to `/usr/share/zoneinfo/<Zone>` (tzfile(5),
///   localtime(5); tzdata's postinst makes it with `ln -nsf`);
/// - `/etc/timezone` with the zone name, only where the rootfs has that file:
///   the release's tzdata wrote it when debootstrap configured the package
///   (bookworm's postinst writes it on every configure); a release whose
///   tzdata no longer writes it gets none.
///
/// tzdata's debconf answer is not updated: its `config` script reads the
/// zone back from the `/etc/localtime` link first on every reconfigure or
/// upgrade, so the link is what counts.
///
/// Logged and skipped when the host's zone is unknown or the rootfs has no
/// tzdata (no `/usr/share/zoneinfo`). A zone the rootfs's tzdata lacks (an
/// old name a newer release keeps only in tzdata-legacy) gets a warning and
/// the container keeps its own zone (UTC): the zone comes from the host, not
/// from the user, so it must not fail the create, but it must not change
/// without a word either.
pub fn configure_timezone(host: &mut Host<'_>) -> Result<(), PluginError> {
    let Some(zone) = host_timezone(host)? else {
        host.info("the host's time zone is unknown (no /etc/timezone, no /etc/localtime link): left as is");
        return Ok(());
    };
    let zone_file = format!("{ZONEINFO}/{zone}");
    let kind = host.file_kind(&zone_file)?;
    if !matches!(kind, Some(FileKind::File | FileKind::Symlink)) {
        if host.file_kind(ZONEINFO)? != Some(FileKind::Dir) {
            host.info(&format!("the rootfs has no /{zone_file} and no tzdata (no /{ZONEINFO}): time zone left as is"));
            return Ok(());
        }
        host.warn(&format!(
            "the host's time zone {zone} is not in the container's tzdata (no /{zone_file}; an old name that \
             newer releases keep only in tzdata-legacy?): the container keeps its own time zone; give the host \
             the zone's current name to pass it on"
        ));
        return Ok(());
    }
    host.mkdir_all("etc", 0o755)?;
    if host.file_kind("etc/timezone")?.is_some() {
        write_text(host, "etc/timezone", &format!("{zone}\n"), 0o644)?;
    }
    host.remove("etc/localtime")?;
    host.symlink(&format!("/{zone_file}"), "etc/localtime")?;
    host.debug(&format!("time zone set to {zone}"));
    Ok(())
}

/// Removes every ssh host key (private and `.pub`); returns how many files
/// were there.
pub fn remove_ssh_host_keys(host: &mut Host<'_>) -> Result<usize, PluginError> {
    let mut removed = 0;
    for key in SSH_HOST_KEYS {
        for path in [(*key).to_owned(), format!("{key}.pub")] {
            if host.file_kind(&path)?.is_some() {
                host.remove(&path)?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// A public key line with its comment replaced: `type base64 comment`.
pub fn with_key_comment(line: &str, comment: &str) -> String {
    let mut fields = line.split_whitespace();
    match (fields.next(), fields.next()) {
        (Some(kind), Some(key)) => format!("{kind} {key} {comment}"),
        _ => line.trim().to_owned(),
    }
}

/// The host key types every container gets, with their `ssh-keygen`
/// arguments: ed25519 and ECDSA P-256, of the default `HostKey` set of
/// sshd_config(5) (rsa, ecdsa and ed25519 in bookworm's OpenSSH 9.2, which
/// Debian's and Ubuntu's `sshd_config` leave commented out). ECDSA keys are
/// written as PEM (`-m PEM`), which every sshd since 5.7 reads; ed25519
/// exists only in the OpenSSH format, and an sshd older than 6.5 has no
/// ed25519 and never loads that file.
///
/// RSA is left out because of its cost, not its safety: measured here (2
/// cores, OpenSSH 9.2, three runs each), `ssh-keygen -t rsa -b 3072` took
/// 0.67, 2.01 and 0.79 s (a random prime search), more than all the rest of
/// a warm create from an overlay, while ecdsa took 0.01-0.02 s and ed25519
/// under 0.01 s. Every OpenSSH client since 6.5 (2014) offers ed25519 and
/// since 5.7 ECDSA; sshd logs one line about the RSA key file it does not
/// find and serves the others. `ssh-keygen -A` in the container adds an RSA
/// key for a client that knows nothing else.
pub const HOST_KEY_TYPES: &[(&str, &[&str])] = &[("ecdsa", &["-b", "256", "-m", "PEM"]), ("ed25519", &[])];

/// Where the host's `ssh-keygen` is looked for (openssh-client).
pub const HOST_KEYGENS: &[&str] = &["/usr/bin/ssh-keygen", "/bin/ssh-keygen"];

/// Fresh ssh host keys for this container, commented `root@<name>`; never
/// from the cache ([`scrub_for_cache`] removes any). Returns false (and does
/// nothing) when the rootfs has no ssh-keygen or `/etc/ssh`.
///
/// The keys ([`HOST_KEY_TYPES`]) are made by the host's `ssh-keygen` in a
/// private scratch dir ([`Host::scratch_dir`], removed with the keys when
/// the create ends) and copied into `/etc/ssh` as `ssh-keygen -A` leaves
/// them: the private key 0600, the public one 0644, both owned by root.
/// The host's tool runs natively, also for a foreign container whose own
/// would run under qemu, and without the namespaced runner. A host without
/// `ssh-keygen` falls back on `ssh-keygen -A` in the rootfs.
pub fn regenerate_ssh_host_keys(host: &mut Host<'_>, name: &str) -> Result<bool, PluginError> {
    if !any_exists(host, &["usr/bin/ssh-keygen", "bin/ssh-keygen"])?
        || host.file_kind("etc/ssh")? != Some(FileKind::Dir)
    {
        host.debug("no ssh-keygen or /etc/ssh in the rootfs: no ssh host keys to generate");
        return Ok(false);
    }
    remove_ssh_host_keys(host)?;
    let comment = format!("root@{name}");
    let mut keygen = None;
    for path in HOST_KEYGENS {
        if host.host_file_kind(path)? == Some(FileKind::File) {
            keygen = Some(*path);
            break;
        }
    }
    match keygen {
        Some(keygen) => copy_in_host_made_keys(host, keygen, &comment)?,
        None => {
            host.debug("no ssh-keygen on the host: running ssh-keygen -A in the rootfs");
            keygen_in_rootfs(host, &comment)?;
        }
    }
    Ok(true)
}

/// [`HOST_KEY_TYPES`] made with the host's `keygen` in a scratch dir, then
/// copied into `etc/ssh`.
fn copy_in_host_made_keys(host: &mut Host<'_>, keygen: &str, comment: &str) -> Result<(), PluginError> {
    let dir = host.scratch_dir()?;
    for (kind, extra) in HOST_KEY_TYPES {
        let file = format!("ssh_host_{kind}_key");
        let made = format!("{dir}/{file}");
        let mut argv = vec![keygen, "-q", "-t", kind];
        argv.extend_from_slice(extra);
        argv.extend_from_slice(&["-N", "", "-C", comment, "-f", &made]);
        host.run_on_host(&argv)?;
        for (from, to, mode) in [
            (made.clone(), format!("etc/ssh/{file}"), 0o600),
            (format!("{made}.pub"), format!("etc/ssh/{file}.pub"), 0o644),
        ] {
            let data = host.read_host_file(&from)?;
            host.write_file(&to, &data, mode)?;
            host.set_mode(&to, mode)?;
            host.set_owner(&to, 0, 0)?;
        }
    }
    Ok(())
}

/// `ssh-keygen -A` inside the rootfs (where the hostname is the
/// container's), then each public key's comment set to `comment`.
fn keygen_in_rootfs(host: &mut Host<'_>, comment: &str) -> Result<(), PluginError> {
    host.run_in_rootfs(&["ssh-keygen", "-A"])?;
    for key in SSH_HOST_KEYS {
        let public = format!("{key}.pub");
        if host.file_kind(&public)? == Some(FileKind::File) {
            let text = String::from_utf8_lossy(&host.read_file(&public)?).into_owned();
            let fixed: String = text.lines().map(|l| format!("{}\n", with_key_comment(l, comment))).collect();
            host.write_file(&public, fixed.as_bytes(), 0o644)?;
        }
    }
    Ok(())
}

const RESOLVED_PROGRAMS: &[&str] = &["usr/lib/systemd/systemd-resolved", "lib/systemd/systemd-resolved"];

/// Removes host and per-machine state from a freshly built rootfs before it
/// becomes a cache: ssh host keys (every container makes its own), the
/// machine id (emptied: systemd makes one at first boot), the hostname and
/// the `resolv.conf` debootstrap copied from the host.
pub fn scrub_for_cache(host: &mut Host<'_>) -> Result<(), PluginError> {
    let keys = remove_ssh_host_keys(host)?;
    if keys > 0 {
        host.debug(&format!("removed {keys} ssh host key files from the cache"));
    }
    if host.file_kind("etc/machine-id")? == Some(FileKind::File) {
        host.write_file("etc/machine-id", b"", 0o444)?;
    }
    if host.file_kind("var/lib/dbus/machine-id")? == Some(FileKind::File) {
        host.remove("var/lib/dbus/machine-id")?;
    }
    if host.file_kind("etc")? == Some(FileKind::Dir) {
        write_text(host, "etc/hostname", "localhost\n", 0o644)?;
    }
    reset_resolv_conf(host)
}

/// Replaces a `resolv.conf` copied from the host: with the systemd-resolved
/// stub link when systemd-resolved is installed, else with a file that only
/// says where its content will come from. A symlink is left alone.
pub fn reset_resolv_conf(host: &mut Host<'_>) -> Result<(), PluginError> {
    if host.file_kind("etc/resolv.conf")? != Some(FileKind::File) {
        return Ok(());
    }
    if any_exists(host, RESOLVED_PROGRAMS)? {
        host.remove("etc/resolv.conf")?;
        host.symlink("../run/systemd/resolve/stub-resolv.conf", "etc/resolv.conf")
    } else {
        write_text(
            host,
            "etc/resolv.conf",
            "# Written by lxc-tmpl: the container's DHCP client fills this in.\n",
            0o644,
        )
    }
}

/// Whether the rootfs boots with systemd.
pub fn has_systemd(host: &mut Host<'_>) -> Result<bool, PluginError> {
    any_exists(host, &["usr/lib/systemd/systemd", "lib/systemd/systemd"])
}

/// Masks systemd units by linking them to `/dev/null` in
/// `/etc/systemd/system` (what `systemctl mask` does, without running it).
pub fn mask_units(host: &mut Host<'_>, units: &[&str]) -> Result<(), PluginError> {
    host.mkdir_all("etc/systemd/system", 0o755)?;
    for unit in units {
        let path = format!("etc/systemd/system/{unit}");
        if matches!(host.file_kind(&path)?, Some(FileKind::File | FileKind::Symlink)) {
            host.remove(&path)?;
        }
        host.symlink("/dev/null", &path)?;
    }
    Ok(())
}

/// Installs a host keyring file into the rootfs's `etc/apt/trusted.gpg.d/`
/// as `<name>.gpg` (or `.asc` when ASCII-armored), so that apt inside trusts
/// the archive debootstrap verified. Returns the rootfs path. The host's own
/// trusted keys are never touched.
pub fn install_apt_keyring(host: &mut Host<'_>, keyring: &str, name: &str) -> Result<String, PluginError> {
    let data = host.read_host_file(keyring)?;
    let armored = data.starts_with(b"-----BEGIN PGP");
    let path = format!("etc/apt/trusted.gpg.d/{name}.{}", if armored { "asc" } else { "gpg" });
    host.mkdir_all("etc/apt/trusted.gpg.d", 0o755)?;
    host.write_file(&path, &data, 0o644)?;
    host.set_mode(&path, 0o644)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeHost, Node, output, with_host};
    use lxc_tmpl_plugin_api::LogLevel;

    #[test]
    fn hostname_and_hosts() {
        let mut fake = FakeHost::sealed();
        with_host(&mut fake, |h| {
            write_hostname(h, "u1")?;
            write_hosts(h, "u1")
        })
        .unwrap();
        assert_eq!(fake.text("etc/hostname"), "u1\n");
        let hosts = fake.text("etc/hosts");
        assert!(hosts.starts_with("127.0.0.1\tlocalhost\n127.0.1.1\tu1\n"), "{hosts}");
        assert!(hosts.contains("ff02::2\tip6-allrouters\n"), "{hosts}");

        // A dotted name: the short name in /etc/hostname, both in /etc/hosts.
        with_host(&mut fake, |h| {
            write_hostname(h, "web.example.com")?;
            write_hosts(h, "web.example.com")
        })
        .unwrap();
        assert_eq!(fake.text("etc/hostname"), "web\n");
        let hosts = fake.text("etc/hosts");
        assert!(hosts.starts_with("127.0.0.1\tlocalhost\n127.0.1.1\tweb.example.com web\n"), "{hosts}");
        assert!(hosts.contains("::1\tlocalhost ip6-localhost ip6-loopback\n"), "{hosts}");
    }

    #[test]
    fn hostname_replaces_a_symlink_instead_of_following_it() {
        let mut fake = FakeHost::sealed();
        fake.mkdir("etc");
        fake.rootfs.insert("etc/hostname".into(), Node::Symlink { target: "/etc/shadow".into() });
        with_host(&mut fake, |h| write_hostname(h, "u1")).unwrap();
        assert_eq!(fake.text("etc/hostname"), "u1\n");
    }

    #[test]
    fn network_style_follows_what_is_installed() {
        let mut fake = FakeHost::sealed();
        fake.put_program("sbin/ifup");
        let style = with_host(&mut fake, |h| choose_network_style(h, NetworkStyle::Netplan)).unwrap();
        assert_eq!(style, NetworkStyle::Ifupdown);
        assert!(fake.logged("netplan is not installed"));
        with_host(&mut fake, |h| write_network(h, style, "eth0")).unwrap();
        let interfaces = fake.text(INTERFACES_FILE);
        assert!(interfaces.contains("auto eth0\niface eth0 inet dhcp\n"), "{interfaces}");
        assert!(interfaces.contains("iface lo inet loopback"), "{interfaces}");

        fake.put_program("usr/sbin/netplan");
        let style = with_host(&mut fake, |h| choose_network_style(h, NetworkStyle::Netplan)).unwrap();
        assert_eq!(style, NetworkStyle::Netplan);
        with_host(&mut fake, |h| write_network(h, style, "eth0")).unwrap();
        assert!(fake.text(NETPLAN_FILE).contains("    eth0:\n      dhcp4: true\n"));
        assert_eq!(fake.mode(NETPLAN_FILE), 0o600);

        let mut bare = FakeHost::sealed();
        let style = with_host(&mut bare, |h| choose_network_style(h, NetworkStyle::Ifupdown)).unwrap();
        assert_eq!(style, NetworkStyle::Ifupdown);
        assert!(bare.warnings().iter().any(|w| w.contains("neither netplan nor ifupdown")));
    }

    /// Lines of bookworm's `/usr/share/i18n/SUPPORTED`.
    const SUPPORTED_TEXT: &str = "de_DE.UTF-8 UTF-8\nde_DE ISO-8859-1\nde_DE@euro ISO-8859-15\nen_IN UTF-8\n\
                                  en_US.UTF-8 UTF-8\nen_US ISO-8859-1\nhi_IN UTF-8\nsr_RS@latin UTF-8\n";

    #[test]
    fn locale_rules() {
        assert_eq!(locale_from_lang(None).unwrap(), "en_US.UTF-8");
        assert_eq!(locale_from_lang(Some("C.UTF-8")).unwrap(), "en_US.UTF-8");
        assert_eq!(locale_from_lang(Some("POSIX")).unwrap(), "en_US.UTF-8");
        assert_eq!(locale_from_lang(Some("de_DE.UTF-8")).unwrap(), "de_DE.UTF-8");
        assert!(locale_from_lang(Some("de;rm")).is_err());
        assert_eq!(
            enable_in_locale_gen("# de_DE.UTF-8 UTF-8\n# en_US.UTF-8 UTF-8\n", "en_US.UTF-8 UTF-8"),
            "# de_DE.UTF-8 UTF-8\nen_US.UTF-8 UTF-8\n"
        );
        assert_eq!(enable_in_locale_gen("", "en_US.UTF-8 UTF-8"), "en_US.UTF-8 UTF-8\n");
        assert_eq!(enable_in_locale_gen("#  en_IN   UTF-8\n", "en_IN UTF-8"), "en_IN UTF-8\n");
    }

    #[test]
    fn charsets_come_from_the_supported_list() {
        let line = |locale: &str| find_supported(SUPPORTED_TEXT, locale).map(|f| f.locale_gen_line());
        // No charset in the name: the list's, not a guessed ISO-8859-1.
        assert_eq!(line("en_IN").as_deref(), Some("en_IN UTF-8"));
        assert_eq!(line("hi_IN").as_deref(), Some("hi_IN UTF-8"));
        assert_eq!(line("de_DE").as_deref(), Some("de_DE ISO-8859-1"));
        assert_eq!(line("de_DE@euro").as_deref(), Some("de_DE@euro ISO-8859-15"));
        assert_eq!(line("sr_RS@latin").as_deref(), Some("sr_RS@latin UTF-8"));
        // Another spelling of the codeset finds the list's name.
        assert_eq!(line("en_US.utf8").as_deref(), Some("en_US.UTF-8 UTF-8"));
        for unknown in ["en_XX.UTF-8", "en_IN.ISO-8859-1", "xx", "en"] {
            assert_eq!(line(unknown), None, "{unknown}");
        }
    }

    /// A rootfs with glibc's locales: SUPPORTED, locale-gen, locale.gen.
    fn locales_rootfs() -> FakeHost {
        let mut fake = FakeHost::sealed();
        fake.put_program("usr/sbin/locale-gen");
        fake.put(SUPPORTED, SUPPORTED_TEXT);
        fake.put("etc/locale.gen", "# de_DE.UTF-8 UTF-8\n# en_IN UTF-8\n# en_US.UTF-8 UTF-8\n");
        fake
    }

    #[test]
    fn a_locale_without_charset_enables_the_supported_line() {
        let mut fake = locales_rootfs();
        let found = with_host(&mut fake, |h| generate_locale(h, "en_IN", LocaleGen::LocaleGenFile)).unwrap();
        assert_eq!(found.map(|f| f.locale_gen_line()).as_deref(), Some("en_IN UTF-8"));
        assert_eq!(fake.text("etc/locale.gen"), "# de_DE.UTF-8 UTF-8\nen_IN UTF-8\n# en_US.UTF-8 UTF-8\n");
        assert_eq!(fake.lines(), ["locale-gen"]);
        assert_eq!(fake.text(LOCALE_MARKER), "en_IN UTF-8\n");

        // Ubuntu's locale-gen takes the name; the locale.gen line is
        // enabled too where the file exists.
        let mut fake = locales_rootfs();
        with_host(&mut fake, |h| generate_locale(h, "hi_IN", LocaleGen::Argument)).unwrap();
        assert_eq!(fake.lines(), ["locale-gen hi_IN"]);
        assert!(fake.text("etc/locale.gen").ends_with("hi_IN UTF-8\n"));
    }

    #[test]
    fn setting_a_generated_locale_runs_nothing_and_keeps_the_other_variables() {
        let mut fake = locales_rootfs();
        with_host(&mut fake, |h| generate_locale(h, "en_US.utf8", LocaleGen::LocaleGenFile)).unwrap();
        fake.commands.clear();
        fake.put("etc/default/locale", "LANGUAGE=en_US:en\nLANG=C\n");
        with_host(&mut fake, |h| set_locale(h, "en_US.utf8")).unwrap();
        // The list's name, where the old LANG line was, as update-locale writes it.
        assert_eq!(fake.text("etc/default/locale"), "LANGUAGE=en_US:en\nLANG=en_US.UTF-8\n");
        assert!(fake.commands.is_empty(), "{:?}", fake.lines());

        let mut fresh = locales_rootfs();
        fresh.put(LOCALE_MARKER, "de_DE.UTF-8 UTF-8\n");
        with_host(&mut fresh, |h| set_locale(h, "de_DE.UTF-8")).unwrap();
        assert_eq!(fresh.text("etc/default/locale"), "LANG=de_DE.UTF-8\n");
    }

    #[test]
    fn a_locale_the_rootfs_was_not_built_with_is_refused_with_the_fix() {
        for marker in [None, Some("en_IN UTF-8\n")] {
            let mut fake = locales_rootfs();
            if let Some(marker) = marker {
                fake.put(LOCALE_MARKER, marker);
            }
            let err = with_host(&mut fake, |h| set_locale(h, "en_US.UTF-8")).unwrap_err();
            assert!(!err.message.contains('\n'), "one line: {}", err.message);
            assert!(
                err.message.contains("en_US.UTF-8 UTF-8") && err.message.contains("--flush-cache"),
                "{}",
                err.message
            );
            assert!(!fake.exists("etc/default/locale"));
            assert!(fake.commands.is_empty());
        }
    }

    #[test]
    fn an_unsupported_locale_is_refused_before_anything_is_written() {
        let mut fake = locales_rootfs();
        let err = with_host(&mut fake, |h| generate_locale(h, "en_XX.UTF-8", LocaleGen::LocaleGenFile)).unwrap_err();
        assert_eq!(err.kind, lxc_tmpl_plugin_api::ErrorKind::INVALID_INPUT);
        assert!(!err.message.contains('\n'), "one line: {}", err.message);
        assert!(
            err.message.contains("'en_XX.UTF-8'") && err.message.contains("usr/share/i18n/SUPPORTED"),
            "{}",
            err.message
        );
        assert!(err.message.contains("en_US.UTF-8"), "names a supported one: {}", err.message);
        assert_eq!(with_host(&mut fake, |h| set_locale(h, "en_XX.UTF-8")).unwrap_err(), err);
        assert!(fake.commands.is_empty());
        assert!(!fake.exists("etc/default/locale") && !fake.exists(LOCALE_MARKER));
        assert_eq!(fake.text("etc/locale.gen"), "# de_DE.UTF-8 UTF-8\n# en_IN UTF-8\n# en_US.UTF-8 UTF-8\n");
    }

    #[test]
    fn a_failing_locale_gen_is_an_error() {
        let mut fake = locales_rootfs();
        fake.on("locale-gen", output(1, "", "localedef: cannot write\n"));
        let err = with_host(&mut fake, |h| generate_locale(h, "en_IN", LocaleGen::LocaleGenFile)).unwrap_err();
        assert!(err.message.contains("locale-gen en_IN UTF-8 failed"), "{}", err.message);
        assert!(!fake.exists(LOCALE_MARKER), "no marker for a locale that was not generated");
    }

    #[test]
    fn without_locales_lang_stays_unset() {
        let mut fake = FakeHost::sealed();
        assert_eq!(with_host(&mut fake, |h| generate_locale(h, "en_US.UTF-8", LocaleGen::Argument)).unwrap(), None);
        with_host(&mut fake, |h| set_locale(h, "en_US.UTF-8")).unwrap();
        assert!(fake.commands.is_empty());
        assert!(!fake.exists("etc/default/locale"));
        assert!(fake.warnings().iter().any(|w| w.contains("LANG is left unset")), "{:?}", fake.warnings());
    }

    #[test]
    fn zones() {
        assert_eq!(parse_zone("Europe/Berlin\n").as_deref(), Some("Europe/Berlin"));
        assert_eq!(parse_zone("/usr/share/zoneinfo/Etc/UTC\n").as_deref(), Some("Etc/UTC"));
        assert_eq!(parse_zone("../../usr/share/zoneinfo/America/New_York").as_deref(), Some("America/New_York"));
        for bad in ["", "/etc/x", "../etc/passwd", "Europe/../x", "a b"] {
            assert_eq!(parse_zone(bad), None, "{bad}");
        }
    }

    #[test]
    fn timezone_from_the_host_as_files() {
        let mut fake = FakeHost::sealed();
        fake.put_host("/etc/timezone", "Europe/Berlin\n");
        fake.put("usr/share/zoneinfo/Europe/Berlin", "TZif");
        // What bookworm's tzdata left at bootstrap.
        fake.put("etc/timezone", "Etc/UTC\n");
        fake.rootfs.insert("etc/localtime".into(), Node::Symlink { target: "/usr/share/zoneinfo/Etc/UTC".into() });
        with_host(&mut fake, configure_timezone).unwrap();
        assert_eq!(fake.text("etc/timezone"), "Europe/Berlin\n");
        assert_eq!(fake.rootfs["etc/localtime"], Node::Symlink { target: "/usr/share/zoneinfo/Europe/Berlin".into() });
        assert!(fake.commands.is_empty(), "no dpkg-reconfigure: {:?}", fake.lines());

        // A tzdata that keeps no /etc/timezone gets none.
        fake.rootfs.remove("etc/timezone");
        fake.put_host("/etc/timezone", "America/New_York\n");
        fake.put("usr/share/zoneinfo/America/New_York", "TZif");
        with_host(&mut fake, configure_timezone).unwrap();
        assert!(!fake.exists("etc/timezone"));
        assert_eq!(
            fake.rootfs["etc/localtime"],
            Node::Symlink { target: "/usr/share/zoneinfo/America/New_York".into() }
        );

        // No tzdata at all: left as is.
        let mut fake = FakeHost::sealed();
        fake.put_host_link("/etc/localtime", "/usr/share/zoneinfo/Asia/Tokyo");
        with_host(&mut fake, configure_timezone).unwrap();
        assert!(fake.logged("no /usr/share/zoneinfo/Asia/Tokyo"));
        assert!(!fake.exists("etc/timezone") && !fake.exists("etc/localtime"));
    }

    #[test]
    fn a_zone_the_rootfs_lacks_is_a_warning_and_changes_nothing() {
        let mut fake = FakeHost::sealed();
        fake.put_host("/etc/timezone", "US/Pacific-New\n");
        fake.put("usr/share/zoneinfo/Etc/UTC", "TZif");
        fake.mkdir("usr/share/zoneinfo/US");
        fake.put("etc/timezone", "Etc/UTC\n");
        with_host(&mut fake, configure_timezone).unwrap();
        let warnings = fake.logs_at(LogLevel::Warn);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("time zone US/Pacific-New") && w.contains("/usr/share/zoneinfo/US/Pacific-New")),
            "{warnings:?}"
        );
        assert_eq!(fake.text("etc/timezone"), "Etc/UTC\n", "nothing written");
        // A directory of zones is no zone either.
        fake.put_host("/etc/timezone", "US\n");
        with_host(&mut fake, configure_timezone).unwrap();
        assert_eq!(fake.logs_at(LogLevel::Warn).len(), 2);
        assert_eq!(fake.text("etc/timezone"), "Etc/UTC\n");
    }

    #[test]
    fn ssh_keys_are_regenerated_with_the_container_name() {
        let mut fake = FakeHost::sealed();
        fake.put_program("usr/bin/ssh-keygen");
        fake.put("etc/ssh/ssh_host_rsa_key", "OLD");
        fake.put("etc/ssh/ssh_host_rsa_key.pub", "ssh-rsa OLD root@buildhost\n");
        fake.responder = Some(Box::new(|cmd, rootfs| {
            (cmd.line() == "ssh-keygen -A").then(|| {
                for kind in ["rsa", "ed25519"] {
                    rootfs.insert(
                        format!("etc/ssh/ssh_host_{kind}_key.pub"),
                        Node::File { data: format!("ssh-{kind} NEW root@u1-ns\n").into_bytes(), mode: 0o644 },
                    );
                }
                output(0, "", "")
            })
        }));
        assert!(with_host(&mut fake, |h| regenerate_ssh_host_keys(h, "u1")).unwrap());
        assert!(!fake.exists("etc/ssh/ssh_host_rsa_key"), "old private key removed");
        assert_eq!(fake.text("etc/ssh/ssh_host_rsa_key.pub"), "ssh-rsa NEW root@u1\n");
        assert_eq!(fake.text("etc/ssh/ssh_host_ed25519_key.pub"), "ssh-ed25519 NEW root@u1\n");
        assert_eq!(with_key_comment("ssh-rsa AAA", "root@x"), "ssh-rsa AAA root@x");

        let mut bare = FakeHost::sealed();
        assert!(!with_host(&mut bare, |h| regenerate_ssh_host_keys(h, "u1")).unwrap());
        assert!(bare.commands.is_empty());
    }

    #[test]
    fn ssh_keys_are_made_by_the_hosts_keygen_and_copied_in() {
        let mut fake = FakeHost::sealed();
        fake.put_host("/usr/bin/ssh-keygen", "");
        fake.set_responder(crate::fake::debootstrap_responder);
        fake.put_program("usr/bin/ssh-keygen");
        fake.put("etc/ssh/ssh_host_dsa_key", "OLD");
        assert!(with_host(&mut fake, |h| regenerate_ssh_host_keys(h, "u1")).unwrap());
        assert!(!fake.exists("etc/ssh/ssh_host_dsa_key"), "old keys removed");
        let dir = &fake.scratch_dirs[0];
        for (kind, _) in HOST_KEY_TYPES {
            let private = format!("etc/ssh/ssh_host_{kind}_key");
            let public = format!("{private}.pub");
            assert!(fake.text(&private).starts_with(&format!("PRIVATE {kind} ")), "{private}");
            assert!(fake.text(&public).starts_with(&format!("ssh-{kind} KEY")), "{public}");
            assert!(fake.text(&public).ends_with(" root@u1\n"), "{public}");
            assert_eq!((fake.mode(&private), fake.mode(&public)), (0o600, 0o644));
            assert_eq!((fake.owners[&private], fake.owners[&public]), ((0, 0), (0, 0)));
            let made = fake.command(&format!("/usr/bin/ssh-keygen -q -t {kind}")).expect("keygen ran");
            assert_eq!(made.place, lxc_tmpl_plugin_api::RunPlace::Host);
            assert_eq!(
                made.argv[made.argv.len() - 4..],
                ["-C", "root@u1", "-f", &format!("{dir}/ssh_host_{kind}_key")]
            );
        }
        assert!(fake.command("/usr/bin/ssh-keygen -q -t ecdsa -b 256 -m PEM -N").is_some(), "{:?}", fake.lines());
        assert!(fake.command("/usr/bin/ssh-keygen -q -t rsa").is_none(), "no RSA: {:?}", fake.lines());
        assert_eq!(fake.commands.len(), HOST_KEY_TYPES.len(), "{:?}", fake.lines());
    }

    #[test]
    fn cache_scrub() {
        let mut fake = FakeHost::sealed();
        fake.put("etc/ssh/ssh_host_ed25519_key", "k");
        fake.put("etc/ssh/ssh_host_ed25519_key.pub", "k");
        fake.put("etc/machine-id", "0123456789abcdef\n");
        fake.put("var/lib/dbus/machine-id", "0123456789abcdef\n");
        fake.put("etc/hostname", "buildhost\n");
        fake.put("etc/resolv.conf", "nameserver 10.0.0.1\nsearch corp.example\n");
        with_host(&mut fake, scrub_for_cache).unwrap();
        assert!(!fake.exists("etc/ssh/ssh_host_ed25519_key") && !fake.exists("etc/ssh/ssh_host_ed25519_key.pub"));
        assert_eq!(fake.text("etc/machine-id"), "");
        assert!(!fake.exists("var/lib/dbus/machine-id"));
        assert_eq!(fake.text("etc/hostname"), "localhost\n");
        assert!(!fake.text("etc/resolv.conf").contains("corp.example"));

        fake.put("etc/resolv.conf", "nameserver 10.0.0.1\n");
        fake.put_program("usr/lib/systemd/systemd-resolved");
        with_host(&mut fake, reset_resolv_conf).unwrap();
        assert_eq!(
            fake.rootfs["etc/resolv.conf"],
            Node::Symlink { target: "../run/systemd/resolve/stub-resolv.conf".into() }
        );
    }

    #[test]
    fn masks_and_keyrings() {
        let mut fake = FakeHost::sealed();
        fake.put("etc/systemd/system/x.service", "[Unit]\n");
        with_host(&mut fake, |h| mask_units(h, &["x.service", "y.timer"])).unwrap();
        assert_eq!(fake.rootfs["etc/systemd/system/x.service"], Node::Symlink { target: "/dev/null".into() });
        assert_eq!(fake.rootfs["etc/systemd/system/y.timer"], Node::Symlink { target: "/dev/null".into() });

        fake.put_host("/k.gpg", "\u{99}\u{1}binary");
        fake.put_host("/k.asc", "-----BEGIN PGP PUBLIC KEY BLOCK-----\n");
        let gpg = with_host(&mut fake, |h| install_apt_keyring(h, "/k.gpg", "lxc-tmpl-archive")).unwrap();
        assert_eq!(gpg, "etc/apt/trusted.gpg.d/lxc-tmpl-archive.gpg");
        let asc = with_host(&mut fake, |h| install_apt_keyring(h, "/k.asc", "lxc-tmpl-archive")).unwrap();
        assert_eq!(asc, "etc/apt/trusted.gpg.d/lxc-tmpl-archive.asc");
        assert_eq!(fake.mode(&gpg), 0o644);
    }
}
