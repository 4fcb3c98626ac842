//! Container name validation.
//!
//! The name becomes a directory under the lxcpath, the hostname and part of
//! LXC's socket paths, so it must not be able to climb out of the lxcpath
//! (`..`, `a/b`), look like an option (`-x`) or exceed the kernel's hostname
//! length.

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

#[cfg(test)]
mod tests {
    use super::*;

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
