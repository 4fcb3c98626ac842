//! apt inside the rootfs (through the host's namespaced runner, with
//! `policy-rc.d` in place), and the apt proxy setting.
//!
//! Never `--force-yes` or `--allow-unauthenticated`: packages come from
//! archives whose signatures apt checks with the rootfs's own keyrings.

use lxc_tmpl_plugin_api::{CommandSpec, Host, PluginError};

/// The apt proxy file written into containers when a proxy is chosen.
pub const APT_PROXY_CONF: &str = "etc/apt/apt.conf.d/70proxy";

/// apt's machine-readable progress (`dlstatus:` and `pmstatus:` lines with a
/// percentage, apt's `APT::Status-Fd`, documented in apt's README.progress-reporting)
/// on stdout, where the host's progress display reads it.
const STATUS_FD: &str = "APT::Status-Fd=1";

/// The first apt version with `apt-get update --error-on=any`.
const ERROR_ON_ANY_SINCE: (u32, u32, u32) = (2, 1, 16);

/// Runs apt-get in the current root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Apt {
    /// Exported as `http_proxy`/`https_proxy` to apt when set.
    pub proxy: Option<String>,
}

impl Apt {
    /// An apt runner using `proxy`.
    pub fn new(proxy: Option<String>) -> Self {
        Self { proxy }
    }

    fn command(&self, args: &[&str]) -> CommandSpec {
        let mut argv = vec!["apt-get"];
        argv.extend_from_slice(args);
        let mut command = CommandSpec::in_rootfs(&argv).env("DEBIAN_FRONTEND", "noninteractive");
        if let Some(proxy) = &self.proxy {
            command = command.env("http_proxy", proxy).env("https_proxy", proxy);
        }
        command
    }

    /// `apt-get update`, failing on any index that could not be fetched:
    /// `--error-on=any` where apt has it (2.1.16+), else by reading apt's
    /// output (older apt exits 0 when an index is missing).
    pub fn update(&self, host: &mut Host<'_>) -> Result<(), PluginError> {
        host.progress("apt-get update");
        let version = host.run(&CommandSpec::in_rootfs(&["apt-get", "--version"]).unchecked())?;
        if apt_has_error_on_any(&version.stdout_text()) {
            host.run(&self.command(&["update", "--error-on=any"]))?;
            return Ok(());
        }
        let out = host.run(&self.command(&["update"]))?;
        let text = format!("{}\n{}", out.stdout_text(), String::from_utf8_lossy(&out.stderr));
        match update_failure(&text) {
            Some(line) => Err(PluginError::failed(format!("apt-get update could not fetch every index: {line}"))),
            None => Ok(()),
        }
    }

    /// `apt-get dist-upgrade -y`, keeping changed config files.
    pub fn dist_upgrade(&self, host: &mut Host<'_>) -> Result<(), PluginError> {
        host.progress("apt-get dist-upgrade");
        host.run(&self.command(&[
            "-y",
            "-o",
            STATUS_FD,
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
            "dist-upgrade",
        ]))?;
        Ok(())
    }

    /// `apt-get install -y --no-install-recommends PACKAGES`.
    pub fn install(&self, host: &mut Host<'_>, packages: &[String]) -> Result<(), PluginError> {
        if packages.is_empty() {
            return Ok(());
        }
        host.progress(&format!("apt-get install {}", packages.join(" ")));
        let mut args = vec![
            "-y",
            "--no-install-recommends",
            "-o",
            STATUS_FD,
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
            "install",
        ];
        args.extend(packages.iter().map(String::as_str));
        host.run(&self.command(&args))?;
        Ok(())
    }

    /// `apt-get clean`: no downloaded .debs in the cache or the container.
    pub fn clean(&self, host: &mut Host<'_>) -> Result<(), PluginError> {
        host.run(&self.command(&["clean"]))?;
        Ok(())
    }
}

/// Whether `apt-get --version` output (`apt 2.4.5 (amd64)`) names an apt
/// that knows `update --error-on=any`.
pub fn apt_has_error_on_any(version_output: &str) -> bool {
    let Some(version) = version_output.lines().next().and_then(|l| l.split_whitespace().nth(1)) else {
        return false;
    };
    let numbers: Vec<u32> =
        version.split(|c: char| !c.is_ascii_digit()).take(3).map(|n| n.parse().unwrap_or(0)).collect();
    let get = |i: usize| numbers.get(i).copied().unwrap_or(0);
    (get(0), get(1), get(2)) >= ERROR_ON_ANY_SINCE
}

/// The first line of older apt's update output that says an index was not
/// fetched, if any.
pub fn update_failure(output: &str) -> Option<String> {
    output
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("E: ") || l.starts_with("Err:") || l.starts_with("W: Failed to fetch"))
        .map(str::to_owned)
}

/// Checks Debian package names (`--packages`): lowercase letters, digits,
/// `+ - .`, at least two characters, starting with a letter or digit; an
/// optional `:arch` qualifier. Returns them in order, duplicates dropped.
pub fn validate_package_names(names: &[String]) -> Result<Vec<String>, PluginError> {
    let mut out: Vec<String> = Vec::new();
    for name in names {
        let (base, arch) = match name.split_once(':') {
            Some((base, arch)) => (base, Some(arch)),
            None => (name.as_str(), None),
        };
        let base_ok = base.len() >= 2
            && base.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && base.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
        let arch_ok =
            arch.is_none_or(|a| !a.is_empty() && a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        if !base_ok || !arch_ok {
            return Err(PluginError::invalid_input(format!(
                "'{name}' is not a package name (lowercase letters, digits, + - .)"
            )));
        }
        if !out.contains(name) {
            out.push(name.clone());
        }
    }
    Ok(out)
}

/// Splits `--packages` values: each may hold several names separated by
/// commas or spaces (the old templates took one comma-separated list).
pub fn split_package_list<S: AsRef<str>>(values: &[S]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| {
            v.as_ref().split([',', ' ']).map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect::<Vec<_>>()
        })
        .collect()
}

/// The proxy choice of `HTTP_PROXY` as the old templates read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxySetting {
    /// No proxy (`none`, or unset). The old squid-deb-proxy autodetection
    /// over avahi is gone: it trusted any proxy announced on the LAN.
    None,
    /// The host's apt proxy (`Acquire::http::Proxy` of the host's apt config).
    HostApt,
    /// This URL.
    Url(String),
}

impl ProxySetting {
    /// Parses `none`, `apt` or an `http://`/`https://` URL.
    pub fn parse(value: Option<&str>) -> Result<Self, PluginError> {
        match value.map(str::trim) {
            None | Some("" | "none") => Ok(Self::None),
            Some("apt") => Ok(Self::HostApt),
            Some(url)
                if (url.starts_with("http://") || url.starts_with("https://"))
                    && !url.contains(|c: char| c.is_whitespace() || c == '"' || c == ';') =>
            {
                Ok(Self::Url(url.to_owned()))
            }
            Some(other) => Err(PluginError::invalid_input(format!(
                "HTTP_PROXY / --http-proxy '{}': give none, apt, or a proxy URL such as http://proxy:3128",
                without_password(other)
            ))),
        }
    }

    /// The proxy URL to use, asking the host's apt for `HostApt`.
    pub fn resolve(&self, host: &mut Host<'_>) -> Result<Option<String>, PluginError> {
        match self {
            Self::None => Ok(None),
            Self::Url(url) => Ok(Some(url.clone())),
            Self::HostApt => {
                let out = host.run(
                    &CommandSpec::on_host(&["apt-config", "shell", "APT_PROXY", "Acquire::http::Proxy"]).unchecked(),
                )?;
                if out.status != 0 {
                    return Err(PluginError::failed(
                        "HTTP_PROXY=apt: cannot ask the host's apt-config for Acquire::http::Proxy (is apt installed?)",
                    ));
                }
                let proxy = parse_apt_config_shell(&out.stdout_text(), "APT_PROXY");
                if proxy.is_none() {
                    host.info("HTTP_PROXY=apt: the host's apt has no proxy configured; using none");
                }
                Ok(proxy)
            }
        }
    }
}

/// `value` with the user and password of a URL (`scheme://USER:PW@host`)
/// replaced by `<redacted>`, for messages: a proxy URL can carry a password.
pub fn without_password(value: &str) -> String {
    match (value.find("://"), value.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}<redacted>{}", &value[..scheme_end + 3], &value[at..])
        }
        (None, Some(at)) => format!("<redacted>{}", &value[at..]),
        _ => value.to_owned(),
    }
}

/// Reads `NAME='value'` from `apt-config shell NAME key` output.
pub fn parse_apt_config_shell(output: &str, name: &str) -> Option<String> {
    output.lines().find_map(|line| {
        let value = line.trim().strip_prefix(name)?.strip_prefix('=')?;
        let value = value.trim().trim_matches('\'').trim_matches('"');
        (!value.is_empty()).then(|| value.to_owned())
    })
}

/// Writes the container's apt proxy config (`70proxy`), as the old
/// templates did, from a template.
pub fn write_apt_proxy(host: &mut Host<'_>, proxy: &str) -> Result<(), PluginError> {
    host.mkdir_all("etc/apt/apt.conf.d", 0o755)?;
    let text = host.render(
        APT_PROXY_CONF,
        crate::templates::APT_PROXY,
        &lxc_tmpl_plugin_api::serde_json::json!({ "proxy": proxy }),
    )?;
    host.write_file(APT_PROXY_CONF, text.as_bytes(), 0o644)
}

/// A dpkg configuration file (dpkg.cfg(5): one option per line) that makes
/// dpkg skip its per-file fsync(2) (dpkg(1), `--force-unsafe-io`) while a
/// rootfs is built (see [`with_unsafe_io`]).
pub const UNSAFE_IO_CONF: &str = "etc/dpkg/dpkg.cfg.d/lxc-tmpl-unsafe-io";

/// Runs `build` with [`UNSAFE_IO_CONF`] in place, then removes the file,
/// whether `build` succeeded or not.
///
/// Why: nothing a build writes needs to be durable before the host renames
/// the finished cache entry into place, and the host syncs the whole file
/// system once before that rename (`syncfs(2)`). Measured here with a
/// debootstrap of the debian plugin's package set while another process
/// wrote and fsynced: 121 s and 115 s with dpkg's syncs, 87 s and 105 s
/// without. On an idle disk the two are the same. The file goes into the
/// target before debootstrap runs, so debootstrap's dpkg reads it (dpkg
/// ships `/etc/dpkg/dpkg.cfg.d`, and its unpack keeps a file it does not
/// own), and apt's dpkg runs of the same build read it too. Without a
/// cache (`--clean`) the build writes the container's own rootfs, which a
/// create does not sync (nor did lxc-create's templates, past dpkg), so a
/// power loss right after such a create can cost files dpkg wrote.
///
/// # Errors
/// The error of writing or removing the file, or `build`'s error (which
/// wins over a failed removal: the rootfs is thrown away then anyway).
pub fn with_unsafe_io<T>(
    host: &mut Host<'_>,
    build: impl FnOnce(&mut Host<'_>) -> Result<T, PluginError>,
) -> Result<T, PluginError> {
    host.mkdir_all("etc/dpkg/dpkg.cfg.d", 0o755)?;
    host.write_file(
        UNSAFE_IO_CONF,
        b"# lxc-tmpl: removed when the build ends; the host syncs the rootfs once instead.\nforce-unsafe-io\n",
        0o644,
    )?;
    let built = build(host);
    let removed = host.remove(UNSAFE_IO_CONF);
    let value = built?;
    removed?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeHost, output, with_host};

    #[test]
    fn error_on_any_detection() {
        assert!(apt_has_error_on_any("apt 2.4.5 (amd64)\nSupported modules:\n"));
        assert!(apt_has_error_on_any("apt 2.1.16 (amd64)"));
        assert!(apt_has_error_on_any("apt 2.6.1 (amd64)"));
        assert!(!apt_has_error_on_any("apt 2.0.9 (amd64)"));
        assert!(!apt_has_error_on_any("apt 1.6.12ubuntu0.2 (amd64)"));
        assert!(!apt_has_error_on_any(""));
    }

    #[test]
    fn update_uses_error_on_any_and_the_proxy() {
        let mut fake = FakeHost::sealed();
        fake.on("apt-get --version", output(0, "apt 2.4.5 (amd64)\n", ""));
        let apt = Apt::new(Some("http://proxy:3128".into()));
        with_host(&mut fake, |h| apt.update(h)).unwrap();
        let update = fake.command("apt-get update").unwrap();
        assert_eq!(update.argv, ["apt-get", "update", "--error-on=any"]);
        assert_eq!(update.env_value("http_proxy"), Some("http://proxy:3128"));
        assert_eq!(update.env_value("DEBIAN_FRONTEND"), Some("noninteractive"));
    }

    #[test]
    fn old_apt_update_failures_are_caught() {
        let mut fake = FakeHost::sealed();
        fake.on("apt-get --version", output(0, "apt 2.0.9 (amd64)\n", ""));
        fake.on("apt-get update", output(0, "Err:1 http://x focal InRelease\n", "W: Failed to fetch http://x\n"));
        let err = with_host(&mut fake, |h| Apt::default().update(h)).unwrap_err();
        assert!(err.message.contains("could not fetch every index: Err:1"), "{}", err.message);
        assert_eq!(fake.command("apt-get update").unwrap().argv, ["apt-get", "update"]);
    }

    #[test]
    fn install_and_upgrade_never_force() {
        let mut fake = FakeHost::sealed();
        with_host(&mut fake, |h| {
            let apt = Apt::default();
            apt.dist_upgrade(h)?;
            apt.install(h, &["vim".into(), "curl".into()])?;
            apt.install(h, &[])?;
            apt.clean(h)
        })
        .unwrap();
        let lines = fake.lines();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].ends_with("dist-upgrade") && lines[0].contains("-y"));
        assert!(lines[1].contains("install vim curl") && lines[1].contains("--no-install-recommends"));
        assert_eq!(lines[2], "apt-get clean");
        for line in &lines {
            assert!(!line.contains("--force-yes") && !line.contains("allow-unauthenticated"), "{line}");
        }
    }

    #[test]
    fn package_names() {
        let split = split_package_list(&["vim,curl", "git  htop", "vim"]);
        assert_eq!(split, ["vim", "curl", "git", "htop", "vim"]);
        assert_eq!(validate_package_names(&split).unwrap(), ["vim", "curl", "git", "htop"]);
        assert!(validate_package_names(&["libc6:amd64".into(), "g++".into()]).is_ok());
        for bad in ["Vim", "-x", "a", "x;rm", "x:"] {
            assert!(validate_package_names(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn proxy_settings() {
        assert_eq!(ProxySetting::parse(None).unwrap(), ProxySetting::None);
        assert_eq!(ProxySetting::parse(Some("none")).unwrap(), ProxySetting::None);
        assert_eq!(ProxySetting::parse(Some("apt")).unwrap(), ProxySetting::HostApt);
        assert_eq!(ProxySetting::parse(Some("http://p:3128")).unwrap(), ProxySetting::Url("http://p:3128".into()));
        assert!(ProxySetting::parse(Some("p:3128")).is_err());
        assert!(ProxySetting::parse(Some("http://p\";x")).is_err());
        let err = ProxySetting::parse(Some("http://u:s3cret@p:3128 x")).unwrap_err();
        assert!(err.message.contains("'http://<redacted>@p:3128 x'"), "{}", err.message);
        assert_eq!(without_password("u:pw@p:3128"), "<redacted>@p:3128");
        assert_eq!(without_password("http://p:3128"), "http://p:3128");

        let mut fake = FakeHost::sealed();
        fake.on("apt-config shell", output(0, "APT_PROXY='http://cache:3142/'\n", ""));
        let resolved = with_host(&mut fake, |h| ProxySetting::HostApt.resolve(h)).unwrap();
        assert_eq!(resolved.as_deref(), Some("http://cache:3142/"));
        assert_eq!(fake.commands[0].argv, ["apt-config", "shell", "APT_PROXY", "Acquire::http::Proxy"]);
        assert_eq!(parse_apt_config_shell("", "APT_PROXY"), None);
    }

    #[test]
    fn proxy_file() {
        let mut fake = FakeHost::sealed();
        with_host(&mut fake, |h| write_apt_proxy(h, "http://p:3128")).unwrap();
        assert_eq!(fake.text(APT_PROXY_CONF), "Acquire::http::Proxy \"http://p:3128\";\n");
    }
}
