//! LXC config emission: the base config a container starts from, the random
//! MAC address LXC users expect, and the final config file rendered from
//! `templates/lxc/config.j2` in the dialect of the target LXC.

mod dialect;

use std::{
    io,
    path::{Path, PathBuf},
};

use lxc_tmpl_plugin_api::ConfigEntry;
use thiserror::Error;

pub use dialect::{Dialect, Translated};

/// The config file layout, compiled in.
const CONFIG_TEMPLATE: &str = include_str!("../../../../templates/lxc/config.j2");

/// A config could not be read or rendered.
#[derive(Debug, Error)]
pub enum LxcConfError {
    /// The base config could not be read.
    #[error("cannot read base config {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The template failed (a bug: the template is compiled in).
    #[error("cannot render the container config")]
    Render(#[from] minijinja::Error),
}

/// One line of a config file, kept verbatim; `key`/`value` are set for
/// `key = value` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    text: String,
    key: Option<String>,
    value: String,
}

impl Line {
    fn parse(text: &str) -> Self {
        let trimmed = text.trim();
        let parsed = (!trimmed.starts_with('#'))
            .then(|| trimmed.split_once('='))
            .flatten()
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()));
        match parsed {
            Some((key, value)) => Line { text: text.to_owned(), key: Some(key), value },
            None => Line { text: text.to_owned(), key: None, value: String::new() },
        }
    }

    fn entry(key: &str, value: &str) -> Self {
        Line { text: format!("{key} = {value}"), key: Some(key.to_owned()), value: value.to_owned() }
    }
}

/// The config a container starts from: `-f FILE`, or the host's
/// `lxc.default_config`, as lxc-create does (never both).
#[derive(Debug, Clone, Default)]
pub struct BaseConfig {
    lines: Vec<Line>,
    source: Option<PathBuf>,
}

impl BaseConfig {
    /// Reads a base config file.
    pub fn load(path: &Path) -> Result<Self, LxcConfError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| LxcConfError::Read { path: path.to_owned(), source })?;
        Ok(BaseConfig { source: Some(path.to_owned()), ..Self::parse(&text) })
    }

    /// Parses config text.
    pub fn parse(text: &str) -> Self {
        BaseConfig { lines: text.lines().map(Line::parse).collect(), source: None }
    }

    /// The host's default config (`lxc-config lxc.default_config`, usually
    /// `/etc/lxc/default.conf`); empty when there is none.
    pub fn host_default() -> Result<Self, LxcConfError> {
        let path = std::process::Command::new("lxc-config")
            .arg("lxc.default_config")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("/etc/lxc/default.conf"));
        if path.exists() { Self::load(&path) } else { Ok(Self::default()) }
    }

    /// Where it came from.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// The last value of `key`, as LXC would see it for a single-valued key.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.lines.iter().rev().find(|l| l.key.as_deref() == Some(key)).map(|l| l.value.as_str())
    }

    /// Every value of `key`, in order (for list keys such as `lxc.idmap`).
    pub fn values(&self, key: &str) -> Vec<&str> {
        self.lines.iter().filter(|l| l.key.as_deref() == Some(key)).map(|l| l.value.as_str()).collect()
    }

    /// Adds `lxc.net.N.hwaddr` after the type line of the one veth interface
    /// when the config has exactly one and it has no address, as lxc-create's
    /// templates do: LXC would otherwise pick a new random MAC on every start.
    pub fn add_hwaddr_if_single_veth(&mut self, hwaddr: &str) {
        let veth: Vec<usize> = self
            .lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.value == "veth" && l.key.as_deref().is_some_and(is_net_type_key))
            .map(|(i, _)| i)
            .collect();
        let [index] = veth[..] else { return };
        let type_key = self.lines[index].key.clone().unwrap_or_default();
        let hw_key = format!("{}hwaddr", type_key.strip_suffix("type").unwrap_or_default());
        if self.value(&hw_key).is_none() {
            self.lines.insert(index + 1, Line::entry(&hw_key, hwaddr));
        }
    }

    /// The lines in `dialect`, except `lxc.rootfs.path`/`lxc.rootfs`, which
    /// the create sets itself. Comments and blank lines stay as they are;
    /// entries the dialect cannot express go to `dropped`.
    fn lines_in(&self, dialect: &Dialect, dropped: &mut Vec<String>) -> Vec<String> {
        let mut nic = None;
        let mut lines = Vec::new();
        for line in &self.lines {
            let Some(key) = line.key.as_deref() else {
                lines.push(line.text.clone());
                continue;
            };
            if matches!(key, "lxc.rootfs.path" | "lxc.rootfs") {
                continue;
            }
            match dialect.translate_base(key, &line.value, &mut nic) {
                Translated::Entry(k, v) if k == key && v == line.value => lines.push(line.text.clone()),
                Translated::Entry(k, v) => lines.push(format!("{k} = {v}")),
                Translated::Dropped => dropped.push(format!("{key} = {}", line.value)),
            }
        }
        lines
    }
}

fn is_net_type_key(key: &str) -> bool {
    key == "lxc.network.type"
        || key
            .strip_prefix("lxc.net.")
            .and_then(|r| r.strip_suffix(".type"))
            .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
}

/// A random MAC in the Xen OUI LXC uses for containers: `00:16:3e:xx:xx:xx`.
pub fn random_hwaddr() -> io::Result<String> {
    let mut bytes = [0u8; 3];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(format!("00:16:3e:{:02x}:{:02x}:{:02x}", bytes[0], bytes[1], bytes[2]))
}

/// Everything the final config file is made of.
#[derive(Debug)]
pub struct ConfigDocument<'a> {
    /// What made it, for the header (`lxc-tmpl busybox 0.1.0 (/path/lib.so)`);
    /// `None` writes no header (in template mode lxc-create adds its own).
    pub template: Option<String>,
    /// The distro options as given, for the header.
    pub parameters: Vec<String>,
    /// The base config.
    pub base: &'a BaseConfig,
    /// The value of `lxc.rootfs.path` (`dir:/var/lib/lxc/c1/rootfs`).
    pub rootfs: String,
    /// The distro's entries, in 2.1+ key names.
    pub entries: &'a [ConfigEntry],
    /// The dialect to write.
    pub dialect: &'a Dialect,
}

impl ConfigDocument<'_> {
    /// Renders the config file text.
    pub fn render(&self) -> Result<String, LxcConfError> {
        let mut includes = Vec::new();
        let mut entries = Vec::new();
        let mut dropped = Vec::new();
        let rootfs_entry = ConfigEntry::new("lxc.rootfs.path", &self.rootfs);
        for entry in std::iter::once(&rootfs_entry).chain(self.entries) {
            match self.dialect.translate(&entry.key, &entry.value) {
                Translated::Entry(key, value) if key == "lxc.include" => includes.push(format!("{key} = {value}")),
                Translated::Entry(key, value) => entries.push(format!("{key} = {value}")),
                Translated::Dropped => dropped.push(format!("{} = {}", entry.key, entry.value)),
            }
        }
        let base = self.base.lines_in(self.dialect, &mut dropped);
        let nesting = match self.dialect.translate("lxc.include", "/usr/share/lxc/config/nesting.conf") {
            Translated::Entry(k, v) => format!("{k} = {v}"),
            Translated::Dropped => String::new(),
        };
        let mut env = minijinja::Environment::new();
        env.set_keep_trailing_newline(true);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.add_template("lxc/config.j2", CONFIG_TEMPLATE)?;
        let text = env.get_template("lxc/config.j2")?.render(minijinja::context! {
            template => self.template,
            header => self.template.is_some(),
            parameters => self.parameters,
            nesting_include => nesting,
            includes => includes,
            base => base,
            base_source => self.base.source().map(|p| p.display().to_string()),
            entries => entries,
            dropped => dropped,
            lxc_version => self.dialect.target().to_string(),
        })?;
        // Without our header the text would open with a blank line below
        // the one lxc-create prepends.
        Ok(if self.template.is_some() { text } else { text.trim_start_matches('\n').to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use semver::Version;

    fn doc_text(base: &str, entries: &[ConfigEntry], version: Version) -> String {
        let base = BaseConfig::parse(base);
        let dialect = Dialect::for_version(version);
        ConfigDocument {
            template: Some("lxc-tmpl demo 1.0.0".into()),
            parameters: vec!["--x".into(), "1".into()],
            base: &base,
            rootfs: "dir:/var/lib/lxc/c1/rootfs".into(),
            entries,
            dialect: &dialect,
        }
        .render()
        .unwrap()
    }

    #[test]
    fn modern_layout() {
        let entries = [
            ConfigEntry::new("lxc.include", "/usr/share/lxc/config/common.conf"),
            ConfigEntry::new("lxc.uts.name", "c1"),
        ];
        let text = doc_text("lxc.net.0.type = empty\nlxc.rootfs.path = dir:/old\n", &entries, Version::new(5, 0, 2));
        assert!(text.starts_with("# Template used to create this container: lxc-tmpl demo 1.0.0\n"), "{text}");
        assert!(text.contains("# Parameters passed to the template: --x 1\n"), "{text}");
        let include = text.find("lxc.include = /usr/share/lxc/config/common.conf").unwrap();
        let base = text.find("lxc.net.0.type = empty").unwrap();
        let uts = text.find("lxc.uts.name = c1").unwrap();
        assert!(include < base && base < uts, "includes, then base, then entries:\n{text}");
        assert!(text.contains("lxc.rootfs.path = dir:/var/lib/lxc/c1/rootfs\n"));
        assert!(!text.contains("dir:/old"), "the base rootfs line is replaced:\n{text}");
    }

    #[test]
    fn legacy_layout_has_only_legacy_keys() {
        let entries = [ConfigEntry::new("lxc.uts.name", "c1"), ConfigEntry::new("lxc.cgroup2.devices.deny", "a")];
        let text = doc_text("", &entries, Version::new(2, 0, 0));
        assert!(text.contains("lxc.utsname = c1\n"));
        assert!(text.contains("lxc.rootfs = /var/lib/lxc/c1/rootfs\n"));
        assert!(text.contains("# lxc.cgroup2.devices.deny = a\n"), "dropped keys are listed as comments:\n{text}");
        assert!(!text.lines().any(|l| l.starts_with("lxc.uts.name") || l.starts_with("lxc.rootfs.path")));
    }

    #[test]
    fn base_config_follows_the_dialect() {
        let legacy = doc_text("lxc.net.0.type = veth\nlxc.apparmor.profile = unconfined\n", &[], Version::new(2, 0, 0));
        assert!(
            legacy.contains("lxc.network.type = veth\n") && legacy.contains("lxc.aa_profile = unconfined\n"),
            "{legacy}"
        );
        let modern = doc_text("lxc.network.type = veth\nlxc.utsname = x\n", &[], Version::new(5, 0, 2));
        assert!(modern.contains("lxc.net.0.type = veth\n") && modern.contains("lxc.uts.name = x\n"), "{modern}");
    }

    #[test]
    fn hwaddr_only_for_a_single_veth_without_one() {
        let mut one = BaseConfig::parse("lxc.net.0.type = veth\nlxc.net.0.link = lxcbr0\n");
        one.add_hwaddr_if_single_veth("00:16:3e:00:00:01");
        assert_eq!(one.value("lxc.net.0.hwaddr"), Some("00:16:3e:00:00:01"));
        assert_eq!(one.lines[1].text, "lxc.net.0.hwaddr = 00:16:3e:00:00:01");

        let mut has = BaseConfig::parse("lxc.net.0.type = veth\nlxc.net.0.hwaddr = 00:16:3e:aa:bb:cc\n");
        has.add_hwaddr_if_single_veth("00:16:3e:00:00:01");
        assert_eq!(has.value("lxc.net.0.hwaddr"), Some("00:16:3e:aa:bb:cc"));

        let mut two = BaseConfig::parse("lxc.net.0.type = veth\nlxc.net.1.type = veth\n");
        two.add_hwaddr_if_single_veth("00:16:3e:00:00:01");
        assert_eq!(two.value("lxc.net.0.hwaddr"), None);

        let mut empty = BaseConfig::parse("lxc.net.0.type = empty\n");
        empty.add_hwaddr_if_single_veth("00:16:3e:00:00:01");
        assert_eq!(empty.lines.len(), 1);
    }

    #[test]
    fn random_hwaddr_format() {
        let mac = random_hwaddr().unwrap();
        assert_eq!(mac.len(), 17);
        assert!(mac.starts_with("00:16:3e:"));
        assert!(mac[9..].split(':').all(|b| b.len() == 2 && u8::from_str_radix(b, 16).is_ok()));
    }
}
