//! `/etc/apt/sources.list`: the one-line format, native or multiarch
//! (`deb [arch=...]`), with the release, `-updates` and security suites.

use lxc_tmpl_plugin_api::{Host, PluginError};

/// Where the sources go inside the rootfs.
pub const SOURCES_LIST: &str = "etc/apt/sources.list";

/// A distro's archive and security mirror for some releases or
/// architectures (a plugin's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mirrors {
    /// The archive mirror (release and `-updates` suites).
    pub archive: &'static str,
    /// The security mirror.
    pub security: &'static str,
}

impl Mirrors {
    /// An archive and a security mirror.
    pub const fn new(archive: &'static str, security: &'static str) -> Self {
        Self { archive, security }
    }

    /// One mirror that also serves the security suite.
    pub const fn same(url: &'static str) -> Self {
        Self { archive: url, security: url }
    }
}

/// The package sources of one architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcesPlan {
    /// The release suite (`jammy`, `bookworm`).
    pub suite: String,
    /// The archive mirror (release and `-updates`).
    pub mirror: String,
    /// The security mirror.
    pub security_mirror: String,
    /// The security suite (`jammy-security`, `bookworm-security`,
    /// `buster/updates`): a per-distro rule; `None` for no security line.
    pub security_suite: Option<String>,
    /// Add `<suite>-updates`.
    pub updates: bool,
    /// Components (`main restricted universe multiverse`).
    pub components: Vec<String>,
}

impl SourcesPlan {
    /// The `deb` lines; with `arch`, in the multiarch form `deb [arch=A] ...`.
    pub fn lines(&self, arch: Option<&str>) -> Vec<String> {
        let prefix = match arch {
            Some(arch) => format!("deb [arch={arch}]"),
            None => "deb".to_owned(),
        };
        let components = self.components.join(" ");
        let mut lines = vec![format!("{prefix} {} {} {components}", self.mirror, self.suite)];
        if self.updates {
            lines.push(format!("{prefix} {} {}-updates {components}", self.mirror, self.suite));
        }
        if let Some(security) = &self.security_suite {
            lines.push(format!("{prefix} {} {security} {components}", self.security_mirror));
        }
        lines
    }
}

/// The whole file: a header, then the lines of each plan. One plan with
/// `None` is the native form; a container of a foreign architecture gets one
/// plan per architecture, each `Some(arch)` (its own mirrors: the Ubuntu
/// archive and ports mirrors differ).
pub fn render_sources_list(plans: &[(&SourcesPlan, Option<&str>)]) -> String {
    let mut text = String::from("# Written by lxc-tmpl. See sources.list(5).\n");
    for (plan, arch) in plans {
        for line in plan.lines(*arch) {
            text.push_str(&line);
            text.push('\n');
        }
    }
    text
}

/// Writes `etc/apt/sources.list` (0644), replacing what debootstrap wrote.
pub fn write_sources_list(host: &mut Host<'_>, text: &str) -> Result<(), PluginError> {
    host.mkdir_all("etc/apt", 0o755)?;
    host.write_file(SOURCES_LIST, text.as_bytes(), 0o644)?;
    host.set_mode(SOURCES_LIST, 0o644)
}

/// Checks a mirror URL: `http://`, `https://` or `file:///`, no whitespace or
/// quotes (it goes into sources.list and apt.conf lines). A trailing `/` is
/// dropped.
pub fn validate_mirror(option: &str, url: &str) -> Result<String, PluginError> {
    let url = url.trim();
    let scheme_ok = ["http://", "https://", "file:///"].iter().any(|s| url.starts_with(s));
    let host_part = url.split_once("://").map(|(_, rest)| rest).unwrap_or_default();
    if !scheme_ok || host_part.is_empty() || url.chars().any(|c| c.is_whitespace() || c == '"' || c == '\'' || c == '[')
    {
        return Err(PluginError::invalid_input(format!(
            "--{option} '{url}' is not a mirror URL: give one like http://archive.ubuntu.com/ubuntu"
        )));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> SourcesPlan {
        SourcesPlan {
            suite: "jammy".into(),
            mirror: "http://m/ubuntu".into(),
            security_mirror: "http://s/ubuntu".into(),
            security_suite: Some("jammy-security".into()),
            updates: true,
            components: ["main", "restricted", "universe", "multiverse"].map(String::from).to_vec(),
        }
    }

    #[test]
    fn native_form() {
        assert_eq!(
            render_sources_list(&[(&plan(), None)]),
            "# Written by lxc-tmpl. See sources.list(5).\n\
             deb http://m/ubuntu jammy main restricted universe multiverse\n\
             deb http://m/ubuntu jammy-updates main restricted universe multiverse\n\
             deb http://s/ubuntu jammy-security main restricted universe multiverse\n"
        );
    }

    #[test]
    fn multiarch_form() {
        let ports = SourcesPlan {
            mirror: "http://p/ubuntu-ports".into(),
            security_mirror: "http://p/ubuntu-ports".into(),
            ..plan()
        };
        let text = render_sources_list(&[(&ports, Some("arm64")), (&plan(), Some("amd64"))]);
        let lines: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(
            lines,
            [
                "deb [arch=arm64] http://p/ubuntu-ports jammy main restricted universe multiverse",
                "deb [arch=arm64] http://p/ubuntu-ports jammy-updates main restricted universe multiverse",
                "deb [arch=arm64] http://p/ubuntu-ports jammy-security main restricted universe multiverse",
                "deb [arch=amd64] http://m/ubuntu jammy main restricted universe multiverse",
                "deb [arch=amd64] http://m/ubuntu jammy-updates main restricted universe multiverse",
                "deb [arch=amd64] http://s/ubuntu jammy-security main restricted universe multiverse",
            ]
        );
    }

    #[test]
    fn debian_style_security_and_no_updates() {
        let plan = SourcesPlan {
            suite: "buster".into(),
            security_suite: Some("buster/updates".into()),
            updates: false,
            components: vec!["main".into()],
            ..plan()
        };
        assert_eq!(plan.lines(None), ["deb http://m/ubuntu buster main", "deb http://s/ubuntu buster/updates main"]);
    }

    #[test]
    fn mirrors_are_checked() {
        assert_eq!(validate_mirror("mirror", "http://127.0.0.1:8080/ubuntu/").unwrap(), "http://127.0.0.1:8080/ubuntu");
        assert_eq!(validate_mirror("mirror", "file:///srv/m").unwrap(), "file:///srv/m");
        for bad in ["", "archive.ubuntu.com", "ftp://x", "http://", "http://a b", "http://x\"", "file://relative"] {
            let err = validate_mirror("mirror", bad).unwrap_err();
            assert!(err.message.contains("is not a mirror URL"), "{bad}: {}", err.message);
        }
    }
}
