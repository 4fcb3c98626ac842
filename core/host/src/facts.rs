//! Facts about the host that plugins and config emission depend on: the
//! architecture in dpkg's spelling, the distribution from os-release and the
//! installed LXC version.

use std::{path::Path, process::Command, sync::OnceLock};

use lxc_tmpl_plugin_api::HostFacts;
use semver::Version;

/// The host architecture as a dpkg name, from the kernel's machine name.
///
/// The same mapping the old templates did with `uname -m`, for the cases
/// where `dpkg` is not there to ask.
pub fn dpkg_arch() -> String {
    let machine = nix::sys::utsname::uname()
        .map(|u| u.machine().to_string_lossy().into_owned())
        .unwrap_or_else(|_| std::env::consts::ARCH.to_owned());
    dpkg_arch_of(&machine).to_owned()
}

/// Maps a kernel machine name (`uname -m`) to a dpkg architecture.
pub fn dpkg_arch_of(machine: &str) -> &str {
    match machine {
        "x86_64" => "amd64",
        "i386" | "i486" | "i586" | "i686" => "i386",
        "aarch64" => "arm64",
        "armv7l" | "armv8l" => "armhf",
        "armv6l" | "armv5tel" => "armel",
        "ppc64le" => "ppc64el",
        "ppc" => "powerpc",
        "mips64" => "mips64el",
        "mips" => "mipsel",
        other => other,
    }
}

/// `ID` and `VERSION_CODENAME` from an os-release file; empty strings when absent.
pub fn os_release(path: &Path) -> (String, String) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_owned())
            .unwrap_or_default()
    };
    (field("ID"), field("VERSION_CODENAME"))
}

/// The host's os-release, `/etc/os-release` then `/usr/lib/os-release`.
pub fn host_os_release() -> (String, String) {
    let etc = Path::new("/etc/os-release");
    os_release(if etc.exists() { etc } else { Path::new("/usr/lib/os-release") })
}

/// The facts every hook is told: this host's architecture and distro, the
/// LXC version the config is written for, and for an unprivileged container
/// the container-side ids the caller maps to (lxc-create's `--mapped-uid`/`--mapped-gid`).
pub fn host_facts(lxc_version: &Version, mapped_uid: Option<u32>, mapped_gid: Option<u32>) -> HostFacts {
    let (distro_id, distro_codename) = host_os_release();
    let mut facts = HostFacts::default();
    facts.arch = dpkg_arch();
    facts.distro_id = distro_id;
    facts.distro_codename = distro_codename;
    facts.lxc_version = lxc_version.to_string();
    facts.mapped_uid = mapped_uid;
    facts.mapped_gid = mapped_gid;
    facts.in_user_namespace = in_user_namespace();
    #[cfg(lxc_tmpl_api_preview)]
    {
        facts.preview = "preview".into();
    }
    facts
}

/// Whether this process runs in a user namespace other than the initial one
/// (whose uid map is the identity over the whole id space).
pub fn in_user_namespace() -> bool {
    let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    !is_initial_uid_map(&map)
}

fn is_initial_uid_map(map: &str) -> bool {
    let fields: Vec<&str> = map.split_whitespace().collect();
    fields == ["0", "0", "4294967295"]
}

/// Whether the process runs with root's effective uid.
pub fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The lxcpath LXC uses by default (`lxc-config lxc.lxcpath`), falling back to `/var/lib/lxc`.
pub fn default_lxcpath() -> std::path::PathBuf {
    Command::new("lxc-config")
        .arg("lxc.lxcpath")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/var/lib/lxc".to_owned())
        .into()
}

/// The installed LXC version from `lxc-create --version`, `None` when LXC is
/// not installed or says something unparsable.
///
/// Asked once per process: a create needs it at start-up and again when the
/// config check fails, and each `lxc-create` exec costs milliseconds of CPU
/// that many creates at once pay in full (issue 11).
pub fn installed_lxc_version() -> Option<Version> {
    static VERSION: OnceLock<Option<Version>> = OnceLock::new();
    VERSION.get_or_init(|| lxc_version_of(Path::new("lxc-create"))).clone()
}

/// The LXC version `lxc_create` (a path, or a name looked up in `PATH`)
/// reports with `--version`; `None` when it cannot run, fails or says
/// something unparsable.
pub fn lxc_version_of(lxc_create: &Path) -> Option<Version> {
    let out = Command::new(lxc_create).arg("--version").output().ok()?;
    if !out.status.success() {
        return None;
    }
    parse_lenient_version(String::from_utf8_lossy(&out.stdout).trim())
}

/// Parses `5.0.2`, `2.0`, `3`, `4.0.12~ubuntu1` or `5.0.2-1+deb12u4` as semver,
/// filling missing parts with zero and dropping distro suffixes.
pub fn parse_lenient_version(text: &str) -> Option<Version> {
    let core: String = text.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let mut parts = core.split('.').filter(|p| !p.is_empty()).map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some(Version::new(major, minor, patch))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures are built with std::fs on purpose
mod tests {
    use super::*;

    #[test]
    fn lenient_versions() {
        assert_eq!(parse_lenient_version("5.0.2"), Some(Version::new(5, 0, 2)));
        assert_eq!(parse_lenient_version("2.0"), Some(Version::new(2, 0, 0)));
        assert_eq!(parse_lenient_version("3"), Some(Version::new(3, 0, 0)));
        assert_eq!(parse_lenient_version("4.0.12~ubuntu1"), Some(Version::new(4, 0, 12)));
        assert_eq!(parse_lenient_version("x"), None);
        assert_eq!(parse_lenient_version(""), None);
    }

    #[test]
    fn initial_uid_map_is_recognised() {
        assert!(is_initial_uid_map("         0          0 4294967295\n"));
        assert!(!is_initial_uid_map("         0     100000      65536\n     65536          0          1\n"));
    }

    #[test]
    fn arch_names() {
        assert_eq!(dpkg_arch_of("x86_64"), "amd64");
        assert_eq!(dpkg_arch_of("i686"), "i386");
        assert_eq!(dpkg_arch_of("aarch64"), "arm64");
        assert_eq!(dpkg_arch_of("riscv64"), "riscv64");
    }

    #[test]
    fn os_release_fields() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("os-release");
        std::fs::write(&file, "NAME=\"Ubuntu\"\nID=ubuntu\nVERSION_CODENAME=jammy\n").unwrap();
        assert_eq!(os_release(&file), ("ubuntu".into(), "jammy".into()));
        assert_eq!(os_release(&dir.path().join("missing")), (String::new(), String::new()));
    }
}
