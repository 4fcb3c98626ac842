//! Container names and host names.
//!
//! The name becomes a directory under the lxcpath and part of LXC's socket
//! paths, so it must not be able to climb out of the lxcpath (`..`, `a/b`),
//! look like an option (`-x`) or exceed the kernel's hostname length.
//!
//! The host name written into the rootfs and `lxc.uts.name` follows RFC 1123
//! (section 2.1, with RFC 952's label rules): labels of letters, digits and
//! inner `-`, at most 63 characters each, 253 in all. A container name such as
//! `web_01` or `db-` is a fine name but no host name; [`hostname_for`] derives
//! one (`web-01`, `db`) and says so, and `--hostname` chooses one.

use thiserror::Error;

/// Longest accepted name: the kernel's hostname limit (`HOST_NAME_MAX`).
pub const MAX_NAME_LEN: usize = 64;

/// Why a container name was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid container name '{name}': {reason}")]
pub struct NameError {
    /// The rejected name.
    pub name: String,
    /// What is wrong with it and what would be accepted.
    pub reason: &'static str,
}

/// Checks a container name; the error names the rule it breaks.
pub fn validate_container_name(name: &str) -> Result<(), NameError> {
    let reject = |reason| Err(NameError { name: name.to_owned(), reason });
    if name.is_empty() {
        return reject("the name is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return reject("use at most 64 characters");
    }
    if name == "." || name == ".." {
        return reject("'.' and '..' name directories, not containers");
    }
    if name.starts_with('-') {
        return reject("a name starting with '-' would be read as an option");
    }
    if name.contains('/') {
        return reject("'/' is not allowed: the name is a single directory under the lxcpath");
    }
    if name.starts_with('.') {
        return reject("a name starting with '.' would be hidden from lxc-ls");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return reject("use only letters, digits, '-', '_' and '.'");
    }
    Ok(())
}

/// Longest host name (RFC 1123 section 2.1; DNS's 253 characters).
pub const MAX_HOSTNAME_LEN: usize = 253;
/// Longest label of a host name (RFC 1035 section 2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// Why a host name given with `--hostname` was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "invalid host name '{name}': {reason} (RFC 1123); pass --hostname with letters, digits and inner '-' in dot-separated labels, e.g. web-01 or web.example.com"
)]
pub struct HostnameError {
    /// The rejected name.
    pub name: String,
    /// The rule it breaks.
    pub reason: &'static str,
}

/// Checks a host name against RFC 1123.
pub fn validate_hostname(name: &str) -> Result<(), HostnameError> {
    let reject = |reason| Err(HostnameError { name: name.to_owned(), reason });
    if name.is_empty() {
        return reject("it is empty");
    }
    if name.len() > MAX_HOSTNAME_LEN {
        return reject("it is longer than 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return reject("it has an empty label (a leading, trailing or doubled '.')");
        }
        if label.len() > MAX_LABEL_LEN {
            return reject("a label is longer than 63 characters");
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return reject("only letters, digits and '-' may appear in a label");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return reject("a label may not start or end with '-'");
        }
    }
    Ok(())
}

/// The host name for a container: `chosen` (checked) if given, else the
/// container name itself when it is a valid host name, else one derived
/// from it: each run of characters a label may not hold becomes one `-`,
/// labels lose leading and trailing `-` and are cut to 63 characters, empty
/// labels are dropped, and `localhost` stands in when nothing is left.
///
/// Returns the host name and, when it differs from `name` without being
/// chosen, the warning to show the user.
pub fn hostname_for(name: &str, chosen: Option<&str>) -> Result<(String, Option<String>), HostnameError> {
    if let Some(chosen) = chosen {
        validate_hostname(chosen)?;
        return Ok((chosen.to_owned(), None));
    }
    if validate_hostname(name).is_ok() {
        return Ok((name.to_owned(), None));
    }
    let labels: Vec<String> = name
        .split('.')
        .map(|label| {
            let mut out = String::new();
            for c in label.chars() {
                if c.is_ascii_alphanumeric() {
                    out.push(c);
                } else if !out.ends_with('-') {
                    out.push('-');
                }
            }
            let trimmed: String = out.trim_matches('-').chars().take(MAX_LABEL_LEN).collect();
            trimmed.trim_end_matches('-').to_owned()
        })
        .filter(|label| !label.is_empty())
        .collect();
    let mut derived = labels.join(".");
    derived.truncate(MAX_HOSTNAME_LEN);
    let derived = derived.trim_end_matches(['.', '-']).to_owned();
    let derived = if derived.is_empty() { "localhost".to_owned() } else { derived };
    let warning = format!(
        "container name '{name}' is not a valid host name (RFC 1123): using host name '{derived}'; choose another with --hostname"
    );
    Ok((derived, Some(warning)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_are_their_own_host_names() {
        for name in ["c1", "web-1", "u22.04", "web.example.com", "A1"] {
            assert_eq!(hostname_for(name, None), Ok((name.to_owned(), None)), "{name}");
        }
    }

    #[test]
    fn invalid_host_names_are_derived_with_a_warning() {
        for (name, want) in [
            ("web_01", "web-01"),
            ("db-", "db"),
            ("_x__y_", "x-y"),
            ("a_.b", "a.b"),
            ("___", "localhost"),
            ("-.-", "localhost"),
        ] {
            let (got, warning) = hostname_for(name, None).unwrap();
            assert_eq!(got, want, "{name}");
            assert!(validate_hostname(&got).is_ok(), "{got}");
            let warning = warning.expect("a derived name warns");
            assert!(warning.contains(name) && warning.contains(want) && warning.contains("--hostname"), "{warning}");
        }
        let long = format!("{}_", "a".repeat(70));
        let (got, _) = hostname_for(&long, None).unwrap();
        assert_eq!(got.len(), MAX_LABEL_LEN);
    }

    #[test]
    fn chosen_host_names_are_checked() {
        assert_eq!(hostname_for("web_01", Some("web")), Ok(("web".to_owned(), None)));
        for bad in ["", "a_b", "-a", "a-", "a..b", ".a", &"a".repeat(64)] {
            let err = hostname_for("c1", Some(bad)).unwrap_err();
            assert!(err.to_string().contains("--hostname"), "{err}");
        }
    }

    #[test]
    fn accepts_ordinary_names() {
        for name in ["c1", "web-1", "db_2", "u22.04", &"a".repeat(64)] {
            assert_eq!(validate_container_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn rejects_escapes_options_and_junk() {
        for name in ["", ".", "..", "../x", "a/b", "-x", ".hidden", "a b", "a\nb", "ä", &"a".repeat(65)] {
            assert!(validate_container_name(name).is_err(), "{name:?} must be rejected");
        }
    }

    #[test]
    fn error_names_the_rule() {
        let err = validate_container_name("a/b").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid container name 'a/b': '/' is not allowed: the name is a single directory under the lxcpath"
        );
    }
}
