//! `lxc-tmpl completions SHELL`: the shell completion script, printed on stdout.
//!
//! The script is clap_complete's rendering of the parser, with `create` knowing the options of
//! every distro plugin found when it is generated (`--distro` completes to their names). A
//! completion script cannot make the options offered depend on the `--distro` given, so every
//! distro's options are offered after `create`; the create itself still accepts only the chosen
//! distro's. A plugin installed later shows up in the script once it is generated again.

use std::io::Write;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;
use lxc_tmpl_host::plugin::PluginSet;

use crate::cli::{Cli, with_every_distro_option};

/// The binary name the scripts complete.
const BIN_NAME: &str = "lxc-tmpl";

/// How clap_complete's bash script spells the state of `lxc-tmpl ...` in its dispatch loop, and
/// how (up to 4.6.12) it misspells it in the arms that match that state: the arms escape the `-`
/// of the binary name as the subcommand separator, so nothing after a subcommand ever completed
/// (clap issue 6421). The script is mended by spelling the arms as the loop does.
const BASH_STATE: &str = "lxc__tmpl";
const BASH_MISSPELT_STATE: &str = "lxc__subcmd__tmpl";

/// Writes the completion script for `shell` to `out`.
///
/// # Errors
/// When `out` cannot be written to.
pub fn write_completions(shell: Shell, plugins: &PluginSet, out: &mut dyn Write) -> Result<()> {
    let mut command = with_every_distro_option(Cli::command(), plugins.plugins.iter().map(|p| &p.manifest));
    // clap_complete writes straight to `out` and ignores its errors; render first, then write,
    // so that a closed stdout is reported.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, BIN_NAME, &mut script);
    if shell == Shell::Bash {
        script = String::from_utf8_lossy(&script).replace(BASH_MISSPELT_STATE, BASH_STATE).into_bytes();
    }
    out.write_all(&script).and_then(|()| out.flush()).context("cannot write the completion script")
}
