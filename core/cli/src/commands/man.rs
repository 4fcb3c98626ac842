//! `lxc-tmpl man --output DIR`: one man page (section 1) per command, rendered by clap_mangen
//! from the parser: `lxc-tmpl.1`, `lxc-tmpl-create.1`, `lxc-tmpl-cache-purge.1`, ...
//!
//! Create's page also has a DISTROS section naming each distro plugin found when the pages are
//! made (the search path of `lxc-tmpl list`), then one section per distro with its options, as
//! `create --distro D --help` shows them under `D options`. The package build
//! (`packaging/build-deb`) runs this with the plugins it ships.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use clap::{Command, CommandFactory};
use clap_mangen::Man;
use lxc_tmpl_host::plugin::PluginSet;
use roff::{Roff, bold, roman};

use crate::cli::{Cli, distro_options_command};

/// Writes every page into `dir` (created if missing) and returns their paths, the top-level
/// page first.
///
/// # Errors
/// When `dir` cannot be created or a page cannot be written.
pub fn write_pages(dir: &Path, plugins: &PluginSet) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Built once, so that every subcommand knows its full name (`lxc-tmpl create`, shown as
    // `lxc-tmpl-create`); `help` is clap's, not a command of ours.
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let mut written = Vec::new();
    let mut pending = vec![root];
    while let Some(command) = pending.pop() {
        pending.extend(command.get_subcommands().filter(|sub| !sub.is_hide_set()).cloned());
        let man = Man::new(command.clone());
        let mut page = Vec::new();
        if command.get_name() == "create" {
            render_create(&man, plugins, &mut page)?;
        } else {
            man.render(&mut page)?;
        }
        let path = dir.join(man.get_filename());
        fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Create's page: clap_mangen's sections, then DISTROS and one options section per distro.
fn render_create(man: &Man, plugins: &PluginSet, out: &mut dyn Write) -> std::io::Result<()> {
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    let mut distros = Roff::new();
    distros.control("SH", ["DISTROS"]);
    if plugins.plugins.is_empty() {
        distros.text([
            roman("No distro plugin was found when this page was made: see "),
            bold("lxc-tmpl list"),
            roman("."),
        ]);
    } else {
        distros.text([
            roman("The distro plugins found when this page was made; "),
            bold("lxc-tmpl list"),
            roman(" shows those installed now and "),
            bold("lxc-tmpl create --distro D --help"),
            roman(" the options of each. A distro's options are given to create directly."),
        ]);
        for plugin in &plugins.plugins {
            distros.control("TP", []);
            distros.text([bold(plugin.manifest.name.as_str())]);
            distros.text([roman(format!("{} (plugin {})", plugin.manifest.summary, plugin.manifest.version))]);
        }
    }
    distros.to_writer(out)?;
    for plugin in &plugins.plugins {
        // clap_mangen names an options section after the options' heading: `BUSYBOX OPTIONS`.
        Man::new(distro_options_command(&plugin.manifest)).render_options_section(out)?;
    }
    if let Some(version) = Command::get_version(&Cli::command()) {
        let mut tail = Roff::new();
        tail.control("SH", ["VERSION"]);
        tail.text([roman(format!("v{version}"))]);
        tail.to_writer(out)?;
    }
    Ok(())
}
