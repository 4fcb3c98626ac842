//! What a long tool has done so far, read from the lines it prints.
//!
//! debootstrap prints one `I:` line per package and phase on stdout (its fd 4,
//! `functions`' `info`): `I: Retrieving NAME VERSION` and `I: Validating NAME
//! VERSION` while it downloads (or checks a cached `.deb`), then `I:
//! Extracting NAME...` for the required packages, and `I: Unpacking NAME...`
//! and `I: Configuring NAME...` as dpkg's status fd reports each package
//! (`dpkg_progress`). It never prints the package count up front without
//! `--print-debs` (which would mean a second run), so the total is the
//! number of distinct packages it has downloaded or validated, which is known
//! once the downloads are over: until then the display counts without a
//! total, and from the first `Extracting` on it shows `done/total`.
//! Phase lines (`I: Unpacking required packages...`, `I: Configuring the
//! base system...`) hold a space in place of a package name and count for
//! nothing.

use std::collections::BTreeSet;

/// The phase debootstrap is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// Downloading or validating packages (and the Release and Packages files).
    #[default]
    Retrieving,
    /// Extracting the required packages with ar/tar.
    Extracting,
    /// dpkg unpacking packages.
    Unpacking,
    /// dpkg configuring packages.
    Configuring,
}

impl Phase {
    /// The word the display shows after the count.
    pub fn label(self) -> &'static str {
        match self {
            Phase::Retrieving => "retrieved",
            Phase::Extracting => "extracted",
            Phase::Unpacking => "unpacked",
            Phase::Configuring => "configured",
        }
    }
}

/// The progress of one debootstrap run, fed its output lines.
#[derive(Debug, Default)]
pub struct Debootstrap {
    phase: Phase,
    /// Distinct packages downloaded or validated: the total, once that is over.
    packages: BTreeSet<String>,
    /// Distinct packages done in the current phase.
    done: BTreeSet<String>,
}

/// How far a run is: the phase, the packages done in it, and the total when
/// it is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The phase.
    pub phase: Phase,
    /// Packages done in this phase.
    pub done: usize,
    /// All packages of the run (`None` while they are being downloaded).
    pub total: Option<usize>,
}

impl Debootstrap {
    /// Reads one output line; returns whether the status changed.
    pub fn line(&mut self, line: &str) -> bool {
        let Some(info) = line.trim_end().strip_prefix("I: ") else { return false };
        let (verb, rest) = info.split_once(' ').unwrap_or((info, ""));
        let phase = match verb {
            "Retrieving" | "Validating" => Phase::Retrieving,
            "Extracting" => Phase::Extracting,
            "Unpacking" => Phase::Unpacking,
            "Configuring" => Phase::Configuring,
            _ => return false,
        };
        let package = match phase {
            // `NAME VERSION`; index files (`Retrieving InRelease`) have no version.
            Phase::Retrieving => match rest.split_once(' ') {
                Some((name, version)) if !version.is_empty() && !version.contains(' ') => name,
                _ => return false,
            },
            // `NAME...`; phase headers hold a space.
            _ => match rest.strip_suffix("...") {
                Some(name) if !name.is_empty() && !name.contains(' ') => name,
                _ => return false,
            },
        };
        if phase != self.phase {
            self.phase = phase;
            self.done.clear();
        }
        if phase == Phase::Retrieving {
            self.packages.insert(package.to_owned());
        }
        self.done.insert(package.to_owned())
    }

    /// The status now.
    pub fn status(&self) -> Status {
        let total = (self.phase != Phase::Retrieving).then(|| self.packages.len().max(self.done.len()));
        Status { phase: self.phase, done: self.done.len(), total }
    }
}

/// apt's progress from its status fd (`-o APT::Status-Fd=1`, which the
/// Debian-family plugins pass): `dlstatus:N:PERCENT:DESCRIPTION` while it
/// downloads, `pmstatus:PACKAGE:PERCENT:DESCRIPTION` while dpkg works
/// (apt's `README.progress-reporting`). Percentages run from 0 to 100 over
/// each of the two.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AptStatus {
    /// `downloading` or `installing`.
    pub phase: &'static str,
    /// Percent done in the phase.
    pub percent: f64,
    /// What apt says it is doing (`Unpacking libc6 (amd64)`).
    pub doing: String,
}

impl AptStatus {
    /// Reads one stdout line of apt; returns whether the status changed.
    pub fn line(&mut self, line: &str) -> bool {
        let parts: Vec<&str> = line.trim_end().split(':').collect();
        let phase = match parts.first() {
            Some(&"dlstatus") => "downloading",
            Some(&"pmstatus") => "installing",
            _ => return false,
        };
        // The package may hold a `:` (`libc6:amd64`), and so may the description: the
        // percentage is the first number after the second field.
        let Some((at, percent)) = parts.iter().enumerate().skip(2).find_map(|(i, p)| Some((i, p.parse::<f64>().ok()?)))
        else {
            return false;
        };
        let doing = parts[at + 1..].join(":");
        *self = AptStatus { phase, percent: percent.clamp(0.0, 100.0), doing };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_status_lines_give_phase_and_percent() {
        let mut apt = AptStatus::default();
        assert!(apt.line("dlstatus:1:12.5:Retrieving file 1 of 8"));
        assert_eq!((apt.phase, apt.percent), ("downloading", 12.5));
        assert!(apt.line("pmstatus:libc6:amd64:50:Unpacking libc6:amd64"));
        assert_eq!((apt.phase, apt.percent, apt.doing.as_str()), ("installing", 50.0, "Unpacking libc6:amd64"));
        assert!(apt.line("pmstatus:dpkg-exec:80:Running dpkg"));
        assert_eq!((apt.phase, apt.percent, apt.doing.as_str()), ("installing", 80.0, "Running dpkg"));
        assert!(!apt.line("Setting up libc6 (2.36-9) ..."));
    }

    #[test]
    fn counts_packages_per_phase_against_those_downloaded() {
        let mut d = Debootstrap::default();
        let output = "I: Retrieving InRelease\nI: Checking Release signature\nI: Retrieving Packages\n\
             I: Validating Packages\nI: Resolving dependencies of required packages...\n\
             I: Retrieving adduser 3.134\nI: Validating adduser 3.134\nI: Retrieving apt 2.6.1\n\
             I: Validating apt 2.6.1\nI: Validating base-files 12.4\n";
        for line in output.lines() {
            d.line(line);
        }
        assert_eq!(d.status(), Status { phase: Phase::Retrieving, done: 3, total: None });
        for line in
            ["I: Chosen extractor for .deb packages: dpkg-deb", "I: Extracting adduser...", "I: Extracting apt..."]
        {
            d.line(line);
        }
        assert_eq!(d.status(), Status { phase: Phase::Extracting, done: 2, total: Some(3) });
        assert!(!d.line("I: Unpacking required packages..."), "a phase header is no package");
        assert!(d.line("I: Unpacking base-files..."));
        assert!(!d.line("I: Unpacking base-files..."), "a package counts once");
        assert_eq!(d.status(), Status { phase: Phase::Unpacking, done: 1, total: Some(3) });
        d.line("I: Configuring the base system...");
        d.line("I: Configuring apt...");
        assert_eq!(d.status(), Status { phase: Phase::Configuring, done: 1, total: Some(3) });
        assert!(!d.line("W: Retrieving x 1"), "only I: lines count");
    }
}
