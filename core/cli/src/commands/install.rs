//! `lxc-tmpl install-templates`: makes every loaded plugin usable as an LXC
//! template, by symlinks to this binary in LXC's template directory.
//!
//! `lxc-tmpl-<distro>` is always installed; with `--as-default` also
//! `lxc-<distro>`, so that plain `lxc-create -t <distro>` uses lxc-tmpl. A
//! script that was there (an lxc-templates `lxc-ubuntu`) is kept as
//! `lxc-<distro>.lxc-tmpl-orig` and put back by `--uninstall`.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use lxc_tmpl_host::plugin::PluginSet;

/// Suffix of the backup of a template script replaced by `--as-default`.
const BACKUP_SUFFIX: &str = ".lxc-tmpl-orig";

/// What to install where.
#[derive(Debug)]
pub struct InstallRequest {
    /// LXC's template directory.
    pub dir: PathBuf,
    /// Also take over the plain `lxc-<distro>` names.
    pub as_default: bool,
    /// Remove what an install made and restore backups.
    pub uninstall: bool,
}

/// Runs `install-templates`; prints one line per change.
pub fn install_templates(req: &InstallRequest, plugins: &PluginSet) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the lxc-tmpl binary")?;
    if !req.dir.is_dir() {
        bail!("{} is not a directory: pass LXC's template directory with --dir", req.dir.display());
    }
    if req.uninstall {
        return uninstall(&req.dir, &exe);
    }
    if plugins.plugins.is_empty() {
        bail!("no distro plugins were found: nothing to install (see lxc-tmpl list)");
    }
    for plugin in &plugins.plugins {
        let distro = plugin.manifest.name.as_str();
        link(&exe, &req.dir.join(format!("lxc-tmpl-{distro}")))?;
        if req.as_default {
            let plain = req.dir.join(format!("lxc-{distro}"));
            let backup = req.dir.join(format!("lxc-{distro}{BACKUP_SUFFIX}"));
            if exists(&plain) && !points_to(&plain, &exe) && !exists(&backup) {
                fs::rename(&plain, &backup)
                    .with_context(|| format!("cannot keep {} as {}", plain.display(), backup.display()))?;
                println!("kept {} as {}", plain.display(), backup.display());
            }
            link(&exe, &plain)?;
        }
    }
    Ok(())
}

fn uninstall(dir: &Path, exe: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if name.starts_with("lxc-") && points_to(&path, exe) {
            fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
            println!("removed {}", path.display());
        }
    }
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let backup = entry?.path();
        let name = backup.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if let Some(original) = name.strip_suffix(BACKUP_SUFFIX) {
            let original = dir.join(original);
            if !exists(&original) {
                fs::rename(&backup, &original).with_context(|| format!("cannot restore {}", original.display()))?;
                println!("restored {}", original.display());
            }
        }
    }
    Ok(())
}

/// Makes `link` a symlink to `exe`, replacing an older link of ours.
fn link(exe: &Path, link: &Path) -> Result<()> {
    if points_to(link, exe) {
        return Ok(());
    }
    if exists(link) {
        bail!(
            "{} exists and is not an lxc-tmpl link: remove it or use --as-default for lxc-<distro> names",
            link.display()
        );
    }
    std::os::unix::fs::symlink(exe, link).with_context(|| format!("cannot create {}", link.display()))?;
    println!("installed {} -> {}", link.display(), exe.display());
    Ok(())
}

fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Whether `path` is a symlink to `exe` (or to the same file).
fn points_to(path: &Path, exe: &Path) -> bool {
    let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    is_link && same_file(path, exe).unwrap_or(false)
}

fn same_file(a: &Path, b: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (fs::metadata(a)?, fs::metadata(b)?);
    Ok(a.dev() == b.dev() && a.ino() == b.ino())
}
