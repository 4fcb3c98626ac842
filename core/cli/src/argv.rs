//! Hiding secret option values from this process's own command line.
//!
//! `/proc/PID/cmdline` is readable by every local user, so a value given to an option a plugin
//! marks secret (`--password`) must not stay there. Once the command line is parsed, the value's
//! bytes are overwritten in place in the process's argument area (`arg_start`..`arg_end`,
//! proc_pid_stat(5) fields 48 and 49), as MySQL's client does with `-p`: from then on `ps`
//! shows `--password xxxxxx`. The value was visible from execve(2) until then (milliseconds),
//! which no program can prevent: the options' file and environment alternatives
//! (`--password-file`) are the way to keep a secret off every command line.
//!
//! The area is rewritten through `/proc/self/mem` rather than through pointers: the bytes
//! belong to the initial stack, which Rust never hands out as a slice.

use std::{fs, io, ops::Range, os::unix::fs::FileExt};

use clap::ArgMatches;
use lxc_tmpl_plugin_api::Manifest;

use crate::{cli::secret_values, report::CliReporter};

/// Hides the values of the secret options given on the command line
/// ([`hide`]); a failure only costs a warning, as the value was visible from
/// the start anyway.
pub fn hide_secrets(manifest: &Manifest, matches: &ArgMatches, reporter: &CliReporter) {
    if let Err(e) = hide(&secret_values(manifest, matches)) {
        reporter.warn(&format!("cannot hide secret option values from the command line in /proc: {e}"));
    }
}

/// Overwrites, in this process's argument area, every argument that is one of `secrets`, or
/// ends with `=SECRET` or is a short option with the secret attached (`-pSECRET`), with `x`.
/// Returns how many arguments were changed.
///
/// # Errors
/// When `/proc/self/stat` or `/proc/self/mem` cannot be read or written.
pub fn hide(secrets: &[String]) -> io::Result<usize> {
    let secrets: Vec<&[u8]> = secrets.iter().map(|s| s.as_bytes()).filter(|s| !s.is_empty()).collect();
    if secrets.is_empty() {
        return Ok(0);
    }
    let (start, end) = argument_area()?;
    let mem = fs::OpenOptions::new().read(true).write(true).open("/proc/self/mem")?;
    let len = usize::try_from(end.saturating_sub(start)).map_err(io::Error::other)?;
    let mut area = vec![0u8; len];
    mem.read_exact_at(&mut area, start)?;
    let ranges = secret_ranges(&area, &secrets);
    for range in &ranges {
        let offset = start + range.start as u64;
        mem.write_all_at(&vec![b'x'; range.len()], offset)?;
    }
    Ok(ranges.len())
}

/// `arg_start` and `arg_end` of this process (proc_pid_stat(5), fields 48 and 49).
fn argument_area() -> io::Result<(u64, u64)> {
    let stat = fs::read_to_string("/proc/self/stat")?;
    // `pid (comm) state ...`: comm may hold spaces and parentheses; field 3 follows the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> io::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::other(format!("/proc/self/stat has no field {n}")))
    };
    Ok((field(48)?, field(49)?))
}

/// The byte ranges of `area` (NUL-separated arguments) that hold a secret: a whole argument, the
/// part after `=` of `--opt=SECRET`, or the part after `-o` of `-oSECRET`.
fn secret_ranges(area: &[u8], secrets: &[&[u8]]) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut offset = 0;
    for arg in area.split(|&b| b == 0) {
        for secret in secrets {
            let hidden = if arg == *secret {
                Some(0..arg.len())
            } else if arg.ends_with(secret) && arg.len() > secret.len() {
                let prefix = &arg[..arg.len() - secret.len()];
                let attached = prefix.ends_with(b"=") && prefix.starts_with(b"--")
                    || (prefix.len() == 2 && prefix[0] == b'-' && prefix[1] != b'-');
                attached.then_some(prefix.len()..arg.len())
            } else {
                None
            };
            if let Some(range) = hidden {
                ranges.push(offset + range.start..offset + range.end);
                break;
            }
        }
        offset += arg.len() + 1;
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_secrets_as_arguments_and_attached_values() {
        let area = b"lxc-tmpl\0--password\0s3cret\0--password=s3cret\0-ps3cret\0--user\0s3cretary\0--x=s3cret\0";
        let found: Vec<&[u8]> = secret_ranges(area, &[b"s3cret"]).into_iter().map(|r| &area[r]).collect();
        assert_eq!(found, [&b"s3cret"[..]; 4], "a longer word that starts with the secret is not it");
        let ranges = secret_ranges(area, &[b"s3cret"]);
        assert_eq!(&area[ranges[0].start - 11..ranges[0].start], b"--password\0");
    }

    #[test]
    fn argument_area_is_this_processs_command_line() {
        let (start, end) = argument_area().unwrap();
        assert!(end > start);
        let mem = fs::File::open("/proc/self/mem").unwrap();
        let mut area = vec![0u8; (end - start) as usize];
        mem.read_exact_at(&mut area, start).unwrap();
        assert_eq!(area, fs::read("/proc/self/cmdline").unwrap());
    }
}
