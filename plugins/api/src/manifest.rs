//! What a plugin says about itself: name, versions, releases, options.
//!
//! Everything here is data, so that the host can build `--help`, parse
//! arguments (also the ones `lxc-create` passes in template mode) and answer
//! `lxc-tmpl info` without calling into the plugin again.
//!
//! The plugin builds these with the constructors and builder methods; they
//! cross the boundary as the accessor tables of [`crate::abi`].

/// The description of a distro plugin, returned by [`Distro::manifest`](crate::Distro::manifest).
///
/// **Compatibility:** a minor version may append fields, each with a default
/// that keeps the behaviour of the version before; a host reads a plugin
/// built against an older minor as having that default. `#[non_exhaustive]`:
/// build it with [`Manifest::new`] and the builder methods. Crosses the
/// boundary as [`abi::ManifestAbi`](crate::abi::ManifestAbi).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Manifest {
    /// The distro name used on the command line (`--distro NAME`), lowercase
    /// letters, digits and `-`.
    pub name: String,
    /// The plugin's own version, semver (`0.3.1`).
    pub version: String,
    /// One line for `lxc-tmpl list`.
    pub summary: String,
    /// Architectures the plugin can build, dpkg names (`amd64`, `arm64`);
    /// empty means "whatever the host runs".
    pub arches: Vec<String>,
    /// Releases the plugin knows; empty for distros without releases.
    pub releases: Vec<ReleaseInfo>,
    /// How the default release is chosen, in words (`host release on Ubuntu, else latest LTS`).
    pub default_release: String,
    /// The plugin's own command-line options.
    pub options: Vec<OptionSpec>,
    /// Only in `--cfg lxc_tmpl_api_preview` builds: an appended field; `None`
    /// when the plugin was built against an older minor version.
    #[cfg(lxc_tmpl_api_preview)]
    #[doc(hidden)]
    pub preview: Option<String>,
}

impl Manifest {
    /// A manifest with a name, version and summary and nothing else.
    pub fn new(name: &str, version: &str, summary: &str) -> Self {
        Self { name: name.into(), version: version.into(), summary: summary.into(), ..Self::default() }
    }

    /// Adds an option.
    pub fn option(mut self, option: OptionSpec) -> Self {
        self.options.push(option);
        self
    }

    /// Adds a release.
    pub fn release(mut self, release: ReleaseInfo) -> Self {
        self.releases.push(release);
        self
    }

    /// Sets the supported architectures.
    pub fn arches(mut self, arches: &[&str]) -> Self {
        self.arches = arches.iter().map(|a| (*a).to_owned()).collect();
        self
    }

    /// Sets the words describing the default release.
    pub fn default_release(mut self, rule: &str) -> Self {
        self.default_release = rule.into();
        self
    }

    /// Finds a release by codename, version or alias.
    pub fn find_release(&self, wanted: &str) -> Option<&ReleaseInfo> {
        self.releases.iter().find(|r| r.matches(wanted))
    }
}

/// One release of a distribution.
///
/// **Compatibility:** as [`Manifest`]: a minor version may append fields with
/// defaults; build it with [`ReleaseInfo::new`]. Crosses the boundary as
/// [`abi::ReleaseInfoAbi`](crate::abi::ReleaseInfoAbi).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct ReleaseInfo {
    /// The codename (`jammy`, `bookworm`).
    pub codename: String,
    /// The version number (`22.04`, `12`), empty if none.
    pub version: String,
    /// Other accepted names (`stable`).
    pub aliases: Vec<String>,
    /// Long-term support release.
    pub lts: bool,
    /// End of life as `YYYY-MM-DD`, empty if unknown.
    pub eol: String,
}

impl ReleaseInfo {
    /// A release with a codename and version.
    pub fn new(codename: &str, version: &str) -> Self {
        Self { codename: codename.into(), version: version.into(), ..Self::default() }
    }

    /// Whether `wanted` names this release (codename, version or alias).
    pub fn matches(&self, wanted: &str) -> bool {
        self.codename == wanted
            || (!self.version.is_empty() && self.version == wanted)
            || self.aliases.iter().any(|a| a == wanted)
    }
}

/// A plugin option, described as data.
///
/// The host turns it into a command-line flag for `lxc-tmpl create` and for
/// template mode, shows it in `--help` and `lxc-tmpl info`, applies the
/// environment fallback and the default, and hands the result to every hook
/// in [`HookContext::options`](crate::HookContext::options).
///
/// **Compatibility:** as [`Manifest`]: a minor version may append fields with
/// defaults that keep an older plugin's option working as before; build it
/// with [`OptionSpec::value`] or [`OptionSpec::flag`]. Crosses the boundary
/// as [`abi::OptionSpecAbi`](crate::abi::OptionSpecAbi).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct OptionSpec {
    /// Long name without dashes (`busybox-path`).
    pub long: String,
    /// Short name, one ASCII letter or digit, if any (`r` for `-r`).
    pub short: Option<char>,
    /// Placeholder for the value in help (`PATH`); `None` makes a flag that
    /// takes no value.
    pub value_name: Option<String>,
    /// One line of help.
    pub help: String,
    /// Value used when neither the command line nor the environment gives one.
    pub default: Option<String>,
    /// Environment variable read when the option is not given (`MIRROR`).
    pub env: Option<String>,
    /// May be given more than once; hooks see every value.
    pub repeatable: bool,
    /// The value is a secret (a password): the host never writes it into
    /// the config header or logs, only `<redacted>`.
    pub secret: bool,
    /// Only in `--cfg lxc_tmpl_api_preview` builds: an appended field; `None`
    /// when the plugin was built against an older minor version.
    #[cfg(lxc_tmpl_api_preview)]
    #[doc(hidden)]
    pub preview: Option<String>,
}

impl OptionSpec {
    /// An option that takes a value.
    pub fn value(long: &str, value_name: &str, help: &str) -> Self {
        Self { long: long.into(), value_name: Some(value_name.into()), help: help.into(), ..Self::default() }
    }

    /// A flag that takes no value; hooks see it as present or absent.
    pub fn flag(long: &str, help: &str) -> Self {
        Self { value_name: None, ..Self::value(long, "", help) }
    }

    /// Sets the short name (`'r'` for `-r`).
    pub fn short(mut self, short: char) -> Self {
        assert!(short.is_ascii_alphanumeric(), "short option must be an ASCII letter or digit");
        self.short = Some(short);
        self
    }

    /// Sets the default value.
    pub fn default_value(mut self, default: &str) -> Self {
        self.default = Some(default.into());
        self
    }

    /// Sets the environment variable read when the option is absent.
    pub fn env(mut self, var: &str) -> Self {
        self.env = Some(var.into());
        self
    }

    /// Allows the option more than once.
    pub fn repeatable(mut self) -> Self {
        self.repeatable = true;
        self
    }

    /// Marks the value as a secret (see [`OptionSpec::secret`](Self::secret)).
    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// Whether the option takes a value.
    pub fn takes_value(&self) -> bool {
        self.value_name.is_some()
    }
}
