//! Release tables: which releases a distribution has, their versions, LTS
//! flags and end-of-life dates.
//!
//! The data comes from distro-info-data's CSV files
//! (`/usr/share/distro-info/ubuntu.csv`, `debian.csv`) when the host has them,
//! merged with a built-in copy of the same CSV that the plugin ships: the
//! host's file wins for the releases it knows (it is updated by the host's
//! package manager), the built-in table fills in releases newer than the
//! host's file. [`ReleaseTable::load`] does both; [`ReleaseTable::parse_csv`]
//! is the pure parser.

use lxc_tmpl_plugin_api::{FileKind, Host, PluginError};

/// One release of a distribution, as distro-info-data describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The version number without the ` LTS` suffix (`22.04`, `12`); empty
    /// for releases without one (Debian `sid`).
    pub version: String,
    /// The codename used in suite names (`jammy`, `bookworm`): the CSV's
    /// `series` column.
    pub codename: String,
    /// The full name (`Jammy Jellyfish`, `Bookworm`): the CSV's `codename` column.
    pub name: String,
    /// A long-term support release (the version says `LTS`).
    pub lts: bool,
    /// When development started, `YYYY-MM-DD`.
    pub created: String,
    /// The release date, `YYYY-MM-DD`; empty when not planned yet.
    pub released: String,
    /// End of standard support, `YYYY-MM-DD`; empty when unknown.
    pub eol: String,
    /// The latest of the other end-of-life columns (`eol-server`, `eol-esm`,
    /// `eol-lts`, `eol-elts`, ...), empty when there are none.
    pub eol_extended: String,
    /// Every other end-of-life column by its header name (`eol-lts`,
    /// `eol-esm`), with its date; columns a row leaves empty are left out.
    pub eol_columns: Vec<(String, String)>,
}

impl Release {
    /// Whether `wanted` names this release: its codename, its version (with
    /// or without ` LTS`), its full name, or the first word of the full name,
    /// all compared case-insensitively.
    pub fn matches(&self, wanted: &str) -> bool {
        let wanted = wanted.trim().to_ascii_lowercase();
        if wanted.is_empty() {
            return false;
        }
        let wanted_version = wanted.strip_suffix(" lts").unwrap_or(&wanted);
        self.codename.eq_ignore_ascii_case(&wanted)
            || (!self.version.is_empty() && self.version == wanted_version)
            || self.name.eq_ignore_ascii_case(&wanted)
            || self.name.split_whitespace().next().is_some_and(|first| first.eq_ignore_ascii_case(&wanted))
    }

    /// Whether the release date has come (`today` is `YYYY-MM-DD`).
    pub fn is_released(&self, today: &str) -> bool {
        !self.released.is_empty() && self.released.as_str() <= today
    }

    /// Whether standard support has ended by `today`.
    pub fn is_eol(&self, today: &str) -> bool {
        !self.eol.is_empty() && self.eol.as_str() < today
    }

    /// The version as numbers (`22.04` is `(22, 4)`, `12` is `(12, 0)`),
    /// `None` without a numeric version.
    pub fn version_number(&self) -> Option<(u32, u32)> {
        parse_version_number(&self.version)
    }

    /// The date of the end-of-life column `column` (`eol-lts`), if the row has one.
    pub fn eol_of(&self, column: &str) -> Option<&str> {
        self.eol_columns.iter().find(|(name, _)| name == column).map(|(_, date)| date.as_str())
    }

    /// `jammy (22.04 LTS)`, for messages.
    pub fn describe(&self) -> String {
        match (self.version.is_empty(), self.lts) {
            (true, _) => self.codename.clone(),
            (false, true) => format!("{} ({} LTS)", self.codename, self.version),
            (false, false) => format!("{} ({})", self.codename, self.version),
        }
    }
}

/// Parses `22.04`, `12`, `5.10` into `(major, minor)`.
pub fn parse_version_number(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = match parts.next() {
        Some(minor) => minor.parse().ok()?,
        None => 0,
    };
    Some((major, minor))
}

/// Where a distribution's release table comes from: distro-info-data's CSV
/// on the host (`/usr/share/distro-info/<csv>`), merged with the copy the
/// plugin ships (see [`ReleaseTable::load`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DistroInfo {
    /// The file name in distro-info-data (`ubuntu.csv`).
    pub csv: &'static str,
    /// The built-in copy of that file (`include_str!`).
    pub builtin: &'static str,
}

impl DistroInfo {
    /// Where distro-info-data keeps its CSVs.
    pub const DIR: &'static str = "/usr/share/distro-info";

    /// The host's CSV path.
    pub fn host_csv(&self) -> String {
        format!("{}/{}", Self::DIR, self.csv)
    }

    /// The host's table merged with the built-in one.
    pub fn load(&self, host: &mut Host<'_>) -> Result<ReleaseTable, PluginError> {
        ReleaseTable::load(host, &self.host_csv(), self.builtin)
    }

    /// The built-in table alone (for a manifest, which has no host).
    /// Panics when the built-in CSV does not parse: a plugin bug its tests catch.
    pub fn builtin_table(&self) -> ReleaseTable {
        let source = format!("built-in {}", self.csv);
        ReleaseTable::parse_csv(self.builtin, &source).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The releases of one distribution, oldest first (the CSV order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleaseTable {
    releases: Vec<Release>,
    /// Where the data came from, for messages.
    source: String,
}

impl ReleaseTable {
    /// Parses a distro-info-data CSV (header line first). Columns are found by
    /// their header names (`version`, `codename`, `series`, `created`,
    /// `release`, `eol`, and any `eol-*`), so both `ubuntu.csv` and
    /// `debian.csv` parse. Blank lines and `#` comments are skipped.
    pub fn parse_csv(text: &str, source: &str) -> Result<Self, String> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
        let header: Vec<&str> =
            lines.next().ok_or_else(|| format!("{source}: empty release table"))?.split(',').collect();
        let column = |name: &str| header.iter().position(|h| h.trim() == name);
        let series = column("series").ok_or_else(|| format!("{source}: no 'series' column in the header"))?;
        let (version, name, created, release, eol) =
            (column("version"), column("codename"), column("created"), column("release"), column("eol"));
        let extended: Vec<(usize, &str)> = header
            .iter()
            .enumerate()
            .filter(|(_, h)| h.trim().starts_with("eol-"))
            .map(|(i, h)| (i, h.trim()))
            .collect();
        let mut releases = Vec::new();
        for (number, line) in lines.enumerate() {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let field = |i: Option<usize>| i.and_then(|i| fields.get(i)).copied().unwrap_or_default().to_owned();
            let codename = field(Some(series));
            if codename.is_empty() || !is_valid_codename(&codename) {
                return Err(format!("{source}: row {} has a bad series name {codename:?}", number + 2));
            }
            let raw_version = field(version);
            let lts = raw_version.ends_with(" LTS");
            let version = raw_version.trim_end_matches(" LTS").trim().to_owned();
            let eol_columns: Vec<(String, String)> = extended
                .iter()
                .map(|&(i, name)| (name.to_owned(), field(Some(i))))
                .filter(|(_, date)| !date.is_empty())
                .collect();
            let eol_extended = eol_columns.iter().map(|(_, date)| date.clone()).max().unwrap_or_default();
            releases.push(Release {
                version,
                codename,
                name: field(name),
                lts,
                created: field(created),
                released: field(release),
                eol: field(eol),
                eol_extended,
                eol_columns,
            });
        }
        if releases.is_empty() {
            return Err(format!("{source}: no releases in the table"));
        }
        Ok(ReleaseTable { releases, source: source.to_owned() })
    }

    /// The host's distro-info-data CSV at `host_csv` merged with the plugin's
    /// built-in CSV: rows of the host file win, built-in rows for codenames
    /// the host file lacks are added. A missing or unreadable host file is
    /// not an error (logged at debug level); a broken built-in table is a bug.
    pub fn load(host: &mut Host<'_>, host_csv: &str, builtin_csv: &str) -> Result<Self, PluginError> {
        let builtin = Self::parse_csv(builtin_csv, "built-in release table")
            .map_err(|e| PluginError::failed(format!("plugin bug: {e}")))?;
        if host.host_file_kind(host_csv)? != Some(FileKind::File) {
            host.debug(&format!("{host_csv} not found: using the built-in release table"));
            return Ok(builtin);
        }
        let text = host.read_host_file(host_csv)?;
        match Self::parse_csv(&String::from_utf8_lossy(&text), host_csv) {
            Ok(table) => Ok(table.merged_with(builtin)),
            Err(e) => {
                host.warn(&format!("ignoring {host_csv}: {e}; using the built-in release table"));
                Ok(builtin)
            }
        }
    }

    /// This table plus the releases of `other` it does not have, appended.
    pub fn merged_with(mut self, other: ReleaseTable) -> Self {
        for release in other.releases {
            if !self.releases.iter().any(|r| r.codename == release.codename) {
                self.releases.push(release);
            }
        }
        self.source = format!("{} + {}", self.source, other.source);
        self
    }

    /// Where the data came from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every release, oldest first.
    pub fn releases(&self) -> &[Release] {
        &self.releases
    }

    /// The release named by codename, version or name (see [`Release::matches`]).
    pub fn find(&self, wanted: &str) -> Option<&Release> {
        // A codename match wins over a name match of another row.
        self.releases
            .iter()
            .find(|r| r.codename.eq_ignore_ascii_case(wanted.trim()))
            .or_else(|| self.releases.iter().find(|r| r.matches(wanted)))
    }

    /// The newest LTS release that is out by `today`.
    pub fn latest_lts(&self, today: &str) -> Option<&Release> {
        self.releases.iter().filter(|r| r.lts && r.is_released(today)).max_by(|a, b| a.released.cmp(&b.released))
    }

    /// The newest release that is out by `today` and has a version number
    /// (Debian's `stable`).
    pub fn latest_released(&self, today: &str) -> Option<&Release> {
        self.releases
            .iter()
            .filter(|r| r.is_released(today) && !r.version.is_empty())
            .max_by(|a, b| a.released.cmp(&b.released))
    }

    /// Releases still supported on `today` plus every LTS release, newest
    /// first, as `codename (version)`, for "choose one of" messages.
    pub fn suggestions(&self, today: &str) -> Vec<String> {
        let mut list: Vec<&Release> =
            self.releases.iter().filter(|r| !r.is_eol(today) && (r.is_released(today) || r.lts)).collect();
        list.reverse();
        list.into_iter().map(Release::describe).collect()
    }
}

/// Codenames are what distro-info-data and debootstrap use: lowercase
/// letters, digits and `-`, starting with a letter. Checked because the
/// codename ends up in paths (`scripts/<codename>`) and suite names.
pub fn is_valid_codename(codename: &str) -> bool {
    let mut chars = codename.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && codename.len() <= 64
}

/// Today's date in UTC as `YYYY-MM-DD`.
pub fn today_utc() -> String {
    let secs =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    let days = i64::try_from(secs / 86_400).unwrap_or_default();
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UBUNTU: &str = "\
version,codename,series,created,release,eol,eol-server,eol-esm,eol-legacy
12.04 LTS,Precise Pangolin,precise,2011-10-13,2012-04-26,2017-04-28,2017-04-28,2019-04-26
17.10,Artful Aardvark,artful,2017-04-13,2017-10-19,2018-07-19
22.04 LTS,Jammy Jellyfish,jammy,2021-10-14,2022-04-21,2027-06-01,2027-06-01,2032-04-09,2034-04-21
24.04 LTS,Noble Numbat,noble,2023-10-12,2024-04-25,2029-05-31,2029-05-31,2034-04-25,2036-04-29
24.10,Oracular Oriole,oracular,2024-04-25,2024-10-10,2025-07-10
26.04 LTS,Resolute Raccoon,resolute,2025-10-09,2026-04-23,2031-05-29
";

    const DEBIAN: &str = "\
version,codename,series,created,release,eol,eol-lts,eol-elts
12,Bookworm,bookworm,2021-08-14,2023-06-10,2026-06-10,2028-06-30,2033-06-30
13,Trixie,trixie,2023-06-10,2025-08-09,2028-08-09,2030-06-30,2035-06-30
14,Forky,forky,2025-08-09
,Sid,sid,1993-08-16
";

    #[test]
    fn parses_ubuntu_csv() {
        let table = ReleaseTable::parse_csv(UBUNTU, "test").unwrap();
        let jammy = table.find("jammy").unwrap();
        assert_eq!(jammy.version, "22.04");
        assert!(jammy.lts);
        assert_eq!(jammy.name, "Jammy Jellyfish");
        assert_eq!(jammy.eol, "2027-06-01");
        assert_eq!(jammy.eol_extended, "2034-04-21");
        assert_eq!(jammy.version_number(), Some((22, 4)));
        assert_eq!(jammy.describe(), "jammy (22.04 LTS)");
        let artful = table.find("17.10").unwrap();
        assert_eq!(artful.codename, "artful");
        assert!(!artful.lts);
        assert_eq!(artful.eol_extended, "");
    }

    #[test]
    fn finds_by_codename_version_and_name() {
        let table = ReleaseTable::parse_csv(UBUNTU, "test").unwrap();
        for wanted in ["jammy", "JAMMY", "22.04", "22.04 LTS", "Jammy", "jammy jellyfish"] {
            assert_eq!(table.find(wanted).map(|r| r.codename.as_str()), Some("jammy"), "{wanted}");
        }
        for wanted in ["", "22", "jam", "22.10", "../jammy"] {
            assert!(table.find(wanted).is_none(), "{wanted}");
        }
    }

    #[test]
    fn parses_debian_csv_with_empty_versions() {
        let table = ReleaseTable::parse_csv(DEBIAN, "test").unwrap();
        let sid = table.find("sid").unwrap();
        assert_eq!(sid.version, "");
        assert_eq!(sid.version_number(), None);
        assert_eq!(sid.describe(), "sid");
        assert_eq!(table.find("12").unwrap().codename, "bookworm");
        assert_eq!(table.find("bookworm").unwrap().eol_extended, "2033-06-30");
        assert_eq!(table.find("bookworm").unwrap().eol_of("eol-lts"), Some("2028-06-30"));
        assert_eq!(table.find("forky").unwrap().eol_of("eol-lts"), None);
        assert!(!table.find("trixie").unwrap().lts);
        assert_eq!(table.latest_released("2026-01-01").unwrap().codename, "trixie");
        assert_eq!(table.latest_released("2024-01-01").unwrap().codename, "bookworm");
    }

    #[test]
    fn latest_lts_depends_on_the_date() {
        let table = ReleaseTable::parse_csv(UBUNTU, "test").unwrap();
        assert_eq!(table.latest_lts("2025-01-01").unwrap().codename, "noble");
        assert_eq!(table.latest_lts("2026-04-23").unwrap().codename, "resolute");
        assert_eq!(table.latest_lts("2023-01-01").unwrap().codename, "jammy");
    }

    #[test]
    fn eol_and_suggestions() {
        let table = ReleaseTable::parse_csv(UBUNTU, "test").unwrap();
        assert!(table.find("artful").unwrap().is_eol("2020-01-01"));
        assert!(!table.find("jammy").unwrap().is_eol("2026-11-29"));
        let suggestions = table.suggestions("2026-11-29");
        assert_eq!(suggestions, ["resolute (26.04 LTS)", "noble (24.04 LTS)", "jammy (22.04 LTS)"]);
    }

    #[test]
    fn rejects_bad_tables() {
        assert!(ReleaseTable::parse_csv("", "t").is_err());
        assert!(ReleaseTable::parse_csv("version,codename\n1,a\n", "t").unwrap_err().contains("series"));
        assert!(ReleaseTable::parse_csv("version,codename,series\n", "t").unwrap_err().contains("no releases"));
        let bad = "version,codename,series\n1,X,../etc\n";
        assert!(ReleaseTable::parse_csv(bad, "t").unwrap_err().contains("bad series"));
    }

    #[test]
    fn merge_keeps_host_rows_and_adds_new_ones() {
        let host = ReleaseTable::parse_csv(
            "version,codename,series,created,release,eol\n22.04 LTS,Jammy Jellyfish,jammy,2021-10-14,2022-04-21,2099-01-01\n",
            "host",
        )
        .unwrap();
        let merged = host.merged_with(ReleaseTable::parse_csv(UBUNTU, "builtin").unwrap());
        assert_eq!(merged.find("jammy").unwrap().eol, "2099-01-01", "host row wins");
        assert!(merged.find("resolute").is_some(), "built-in rows fill in");
        assert_eq!(merged.releases().iter().filter(|r| r.codename == "jammy").count(), 1);
        assert_eq!(merged.source(), "host + builtin");
    }

    #[test]
    fn distro_info_sources() {
        let info = DistroInfo { csv: "debian.csv", builtin: DEBIAN };
        assert_eq!(info.host_csv(), "/usr/share/distro-info/debian.csv");
        assert_eq!(info.builtin_table().find("sid").unwrap().codename, "sid");
        let mut fake = crate::fake::FakeHost::sealed();
        let table = crate::fake::with_host(&mut fake, |h| info.load(h)).unwrap();
        assert_eq!(table.source(), "built-in release table", "no host file");
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_756), (2026, 10, 30));
        let today = today_utc();
        assert_eq!(today.len(), 10);
        assert!(today.as_str() > "2024-01-01");
    }

    #[test]
    fn codenames() {
        assert!(is_valid_codename("jammy"));
        assert!(is_valid_codename("jessie-kfreebsd"));
        assert!(!is_valid_codename("Jammy"));
        assert!(!is_valid_codename("1x"));
        assert!(!is_valid_codename("a/b"));
        assert!(!is_valid_codename(""));
    }
}
