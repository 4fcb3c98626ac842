//! Results on stdout, where a reader that went away is not an error.
//!
//! `println!` panics when stdout is a closed pipe (`lxc-tmpl list | head -1`): Rust ignores
//! `SIGPIPE`, so the write fails with `EPIPE` instead of ending the process. lxc-tmpl keeps
//! ignoring it (its runner writes to pipes of commands that may exit early), and prints results
//! through [`print`], which treats the departed reader as the end of the output.

use std::io::Write;

use anyhow::Result;

/// Writes `text` to stdout and flushes it; a closed pipe ends the output without an error.
///
/// # Errors
/// Any other write error (a full disk behind a redirection, say).
pub fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
