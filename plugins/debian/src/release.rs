//! Debian release knowledge, as data: the release table (distro-info-data's
//! `debian.csv`, with a built-in copy), the suite names people type
//! (`stable`, `testing`, ...) resolved to codenames, each release's
//! architectures and debian-ports for the others, the security suite rule,
//! the components and the default mirrors.

use lxc_tmpl_deb::{
    release::{DistroInfo, Release, ReleaseTable},
    sources::Mirrors,
};
use lxc_tmpl_plugin_api::{PluginError, ReleaseInfo};

/// The Debian release table: distro-info-data's `debian.csv`, and a copy.
pub const DISTRO_INFO: DistroInfo = DistroInfo { csv: "debian.csv", builtin: include_str!("../data/debian.csv") };

/// Where the release architectures of maintained releases are.
pub const MAINTAINED: Mirrors =
    Mirrors::new("http://deb.debian.org/debian", "http://security.debian.org/debian-security");
/// Where releases go once their LTS has ended.
pub const ARCHIVED: Mirrors =
    Mirrors::new("http://archive.debian.org/debian", "http://archive.debian.org/debian-security");
/// The archive of the architectures Debian does not release (unstable
/// only, no security suite).
pub const PORTS: Mirrors = Mirrors::same("http://deb.debian.org/debian-ports");

/// The oldest release this plugin builds (older ones need sysvinit-era
/// package lists and expired archive keys).
pub const OLDEST_VERSION: u32 = 10;

/// The release architectures of buster (10).
const BUSTER_ARCHES: &[&str] =
    &["amd64", "arm64", "armel", "armhf", "i386", "mips", "mips64el", "mipsel", "ppc64el", "s390x"];
/// The release architectures of bullseye (11) and bookworm (12).
const BOOKWORM_ARCHES: &[&str] =
    &["amd64", "arm64", "armel", "armhf", "i386", "mips64el", "mipsel", "ppc64el", "s390x"];
/// The release architectures of trixie (13), also assumed for newer
/// releases and unstable.
const TRIXIE_ARCHES: &[&str] = &["amd64", "arm64", "armel", "armhf", "i386", "ppc64el", "riscv64", "s390x"];
/// Architectures built only on debian-ports.
pub const PORTS_ARCHES: &[&str] = &["alpha", "hppa", "loong64", "m68k", "powerpc", "ppc64", "sh4", "sparc64", "x32"];

/// Suite names that stand for a codename, as the archive's `dists/` has them.
pub const ALIASES: &[&str] = &["stable", "oldstable", "oldoldstable", "testing", "unstable"];

/// The release architectures of `release` (the archive's, not debian-ports').
pub fn release_arches(release: &Release) -> &'static [&'static str] {
    match release.version_number() {
        Some((version, _)) if version <= 10 => BUSTER_ARCHES,
        Some((11 | 12, _)) => BOOKWORM_ARCHES,
        _ => TRIXIE_ARCHES,
    }
}

/// Every architecture the plugin accepts: any release's, and debian-ports'.
pub fn all_arches() -> Vec<&'static str> {
    let mut all: Vec<&str> = [BUSTER_ARCHES, BOOKWORM_ARCHES, TRIXIE_ARCHES, PORTS_ARCHES].concat();
    all.sort_unstable();
    all.dedup();
    all
}

/// The numbered releases out by `today`, newest first.
fn released<'t>(table: &'t ReleaseTable, today: &str) -> Vec<&'t Release> {
    let mut out: Vec<&Release> =
        table.releases().iter().filter(|r| !r.version.is_empty() && r.is_released(today)).collect();
    out.sort_by(|a, b| b.released.cmp(&a.released));
    out
}

/// The codename an alias stands for on `today`: `stable` is the newest
/// release out, `oldstable` the one before, `testing` the next one in
/// development, `unstable` is sid.
pub fn alias_target<'t>(table: &'t ReleaseTable, alias: &str, today: &str) -> Option<&'t Release> {
    match alias {
        "stable" => released(table, today).first().copied(),
        "oldstable" => released(table, today).get(1).copied(),
        "oldoldstable" => released(table, today).get(2).copied(),
        "testing" => table.releases().iter().find(|r| {
            !r.version.is_empty() && !r.is_released(today) && !r.created.is_empty() && r.created.as_str() <= today
        }),
        "unstable" => table.find("sid"),
        _ => None,
    }
}

/// The aliases that name `release` on `today` (`stable` for trixie in 2026).
pub fn aliases_of(table: &ReleaseTable, release: &Release, today: &str) -> Vec<&'static str> {
    ALIASES.iter().copied().filter(|a| alias_target(table, a, today).is_some_and(|r| r == release)).collect()
}

/// What a `--release` names: an alias, a codename, a version or a name.
/// `None` chooses `stable`, or `unstable` when `arch` is not one of stable's
/// release architectures. Returns the release and whether it comes from
/// debian-ports.
pub fn choose(
    table: &ReleaseTable,
    wanted: Option<&str>,
    arch: &str,
    today: &str,
) -> Result<(Release, bool), PluginError> {
    let release = match wanted.map(|w| w.trim().to_ascii_lowercase()) {
        Some(w) if w == "experimental" || w == "rc-buggy" => {
            return Err(PluginError::invalid_input(
                "experimental is not a complete suite: build unstable (--release unstable) and add experimental \
                 to its sources.list",
            ));
        }
        Some(w) => alias_target(table, &w, today).or_else(|| table.find(&w)).cloned().ok_or_else(|| {
            PluginError::invalid_input(format!(
                "unknown Debian release '{}': choose stable, testing, unstable or a codename or version such as \
                 {} (lxc-tmpl info debian lists them)",
                wanted.unwrap_or_default(),
                supported(table, today).join(", ")
            ))
        })?,
        None => {
            let stable = alias_target(table, "stable", today)
                .ok_or_else(|| PluginError::failed("the Debian release table has no released release (plugin bug)"))?;
            let target = if release_arches(stable).contains(&arch) { "stable" } else { "unstable" };
            alias_target(table, target, today)
                .cloned()
                .ok_or_else(|| PluginError::failed(format!("the Debian release table has no {target} (plugin bug)")))?
        }
    };
    if release.version_number().is_some_and(|(major, _)| major < OLDEST_VERSION) {
        return Err(PluginError::unsupported(format!(
            "Debian {} is too old for this plugin (it builds {} and newer); use LXC's download template \
             (lxc-create -t download) for it",
            release.describe(),
            OLDEST_VERSION
        )));
    }
    let ports = !release_arches(&release).contains(&arch);
    if ports && release.codename != "sid" {
        return Err(PluginError::invalid_input(format!(
            "{arch} is not a release architecture of Debian {}: it is built on debian-ports, which has unstable \
             only (--release unstable); {}'s architectures are {}",
            release.describe(),
            release.codename,
            release_arches(&release).join(", ")
        )));
    }
    Ok((release, ports))
}

/// The releases a "choose one of" message names: the supported ones still
/// maintained, newest first, with their alias.
fn supported(table: &ReleaseTable, today: &str) -> Vec<String> {
    let mut list: Vec<String> = table
        .releases()
        .iter()
        .filter(|r| r.version_number().is_some_and(|(v, _)| v >= OLDEST_VERSION) && !past_lts(r, today))
        .filter(|r| !r.created.is_empty() && r.created.as_str() <= today)
        .map(|r| match aliases_of(table, r, today).first() {
            Some(alias) => format!("{} ({alias})", r.describe()),
            None => r.describe(),
        })
        .collect();
    list.reverse();
    list
}

/// The security suite: `<codename>-security` from bullseye (11) on,
/// `<codename>/updates` before; none for unstable.
pub fn security_suite(release: &Release) -> Option<String> {
    match release.version_number() {
        Some((major, _)) if major >= 11 => Some(format!("{}-security", release.codename)),
        Some(_) => Some(format!("{}/updates", release.codename)),
        None => None,
    }
}

/// The components: `main`, or with `non_free` also `contrib non-free` and,
/// from bookworm (12) on, `non-free-firmware`.
pub fn components(release: &Release, non_free: bool) -> Vec<String> {
    let mut components = vec!["main"];
    if non_free {
        components.extend(["contrib", "non-free"]);
        if release.version_number().is_none_or(|(major, _)| major >= 12) {
            components.push("non-free-firmware");
        }
    }
    components.into_iter().map(str::to_owned).collect()
}

/// Whether even Debian LTS has ended for `release` (its `eol-lts` date, or
/// its `eol` when it has none): its packages are on archive.debian.org.
pub fn past_lts(release: &Release, today: &str) -> bool {
    let end = release.eol_of("eol-lts").unwrap_or(&release.eol);
    !end.is_empty() && end < today
}

/// The default archive and security mirrors.
pub fn default_mirrors(release: &Release, ports: bool, today: &str) -> Mirrors {
    if ports {
        PORTS
    } else if past_lts(release, today) {
        ARCHIVED
    } else {
        MAINTAINED
    }
}

/// The releases `lxc-tmpl info debian` lists: buster and newer, and sid,
/// with the aliases they have today.
pub fn manifest_releases(today: &str) -> Vec<ReleaseInfo> {
    let table = DISTRO_INFO.builtin_table();
    table
        .releases()
        .iter()
        .filter(|r| r.version_number().map_or(r.codename == "sid", |(v, _)| v >= OLDEST_VERSION))
        .map(|r| {
            let mut info = ReleaseInfo::new(&r.codename, &r.version);
            info.aliases = aliases_of(&table, r, today).into_iter().map(Into::into).collect();
            info.eol = r.eol.as_str().into();
            info
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: &str = "2026-11-29";

    #[test]
    fn aliases_follow_the_date() {
        let table = DISTRO_INFO.builtin_table();
        let target = |alias: &str, today: &str| alias_target(&table, alias, today).map(|r| r.codename.clone());
        assert_eq!(target("stable", TODAY).as_deref(), Some("trixie"));
        assert_eq!(target("oldstable", TODAY).as_deref(), Some("bookworm"));
        assert_eq!(target("oldoldstable", TODAY).as_deref(), Some("bullseye"));
        assert_eq!(target("testing", TODAY).as_deref(), Some("forky"));
        assert_eq!(target("unstable", TODAY).as_deref(), Some("sid"));
        assert_eq!(target("stable", "2024-01-01").as_deref(), Some("bookworm"));
        assert_eq!(target("testing", "2024-01-01").as_deref(), Some("trixie"));
        let trixie = table.find("trixie").unwrap();
        assert_eq!(aliases_of(&table, trixie, TODAY), ["stable"]);
    }

    #[test]
    fn release_choice() {
        let table = DISTRO_INFO.builtin_table();
        let choose = |wanted: Option<&str>, arch: &str| choose(&table, wanted, arch, TODAY);
        let codename = |wanted: Option<&str>, arch: &str| choose(wanted, arch).map(|(r, ports)| (r.codename, ports));
        assert_eq!(codename(None, "amd64").unwrap(), ("trixie".into(), false), "stable by default");
        assert_eq!(codename(Some("12"), "amd64").unwrap(), ("bookworm".into(), false));
        assert_eq!(codename(Some("Bookworm"), "armel").unwrap(), ("bookworm".into(), false));
        assert_eq!(codename(Some("oldstable"), "amd64").unwrap(), ("bookworm".into(), false));
        assert_eq!(codename(Some("sid"), "amd64").unwrap(), ("sid".into(), false));
        assert_eq!(codename(None, "m68k").unwrap(), ("sid".into(), true), "debian-ports: unstable");
        assert_eq!(codename(Some("bookworm"), "mipsel").unwrap(), ("bookworm".into(), false));
        assert_eq!(codename(Some("trixie"), "riscv64").unwrap(), ("trixie".into(), false));
        assert_eq!(codename(Some("unstable"), "riscv64").unwrap(), ("sid".into(), false));

        let err = choose(Some("bookworm"), "riscv64").unwrap_err();
        assert!(err.message.contains("riscv64 is not a release architecture of Debian bookworm"), "{}", err.message);
        assert!(err.message.contains("--release unstable"), "{}", err.message);
        let err = choose(Some("bookwurm"), "amd64").unwrap_err();
        assert!(err.message.starts_with("unknown Debian release 'bookwurm'"), "{}", err.message);
        assert!(err.message.contains("trixie (13) (stable), bookworm (12)"), "{}", err.message);
        assert!(!err.message.contains("buster"), "past LTS: {}", err.message);
        assert!(choose(Some("experimental"), "amd64").unwrap_err().message.contains("not a complete suite"));
        let err = choose(Some("stretch"), "amd64").unwrap_err();
        assert!(err.message.contains("too old"), "{}", err.message);
    }

    #[test]
    fn suites_components_and_mirrors() {
        let table = DISTRO_INFO.builtin_table();
        let release = |c: &str| table.find(c).unwrap();
        assert_eq!(security_suite(release("bookworm")).as_deref(), Some("bookworm-security"));
        assert_eq!(security_suite(release("bullseye")).as_deref(), Some("bullseye-security"));
        assert_eq!(security_suite(release("buster")).as_deref(), Some("buster/updates"));
        assert_eq!(security_suite(release("sid")), None);
        assert_eq!(components(release("bookworm"), false), ["main"]);
        assert_eq!(components(release("bookworm"), true), ["main", "contrib", "non-free", "non-free-firmware"]);
        assert_eq!(components(release("bullseye"), true), ["main", "contrib", "non-free"]);
        assert_eq!(components(release("sid"), true).len(), 4);
        assert_eq!(default_mirrors(release("bookworm"), false, TODAY), MAINTAINED, "LTS");
        assert_eq!(default_mirrors(release("buster"), false, TODAY), ARCHIVED);
        assert_eq!(default_mirrors(release("sid"), true, TODAY), PORTS);
    }

    #[test]
    fn architectures() {
        let all = all_arches();
        for arch in ["amd64", "mips", "riscv64", "m68k", "loong64"] {
            assert!(all.contains(&arch), "{arch}");
        }
        let table = DISTRO_INFO.builtin_table();
        assert!(release_arches(table.find("bookworm").unwrap()).contains(&"mips64el"));
        assert!(!release_arches(table.find("trixie").unwrap()).contains(&"mipsel"));
    }

    #[test]
    fn manifest_lists_supported_releases() {
        let releases = manifest_releases(TODAY);
        assert_eq!(releases[0].codename, "buster");
        assert!(releases.iter().any(|r| r.codename == "sid" && r.matches("unstable")));
        let bookworm = releases.iter().find(|r| r.codename == "bookworm").unwrap();
        assert!(bookworm.matches("12") && bookworm.matches("oldstable"));
        assert!(!releases.iter().any(|r| r.codename == "experimental"));
    }
}
