//! Distro plugins: finding them, loading them, and serving their calls.
//!
//! - [`discovery`]: which directories and files are looked at;
//! - [`trust`]: whether a file may be loaded as code at all (owner and mode
//!   of it and every directory above it, after symlinks, as sshd and sudo
//!   judge files), and opening exactly the file that was judged;
//! - [`loader`]: loading one library with every check that keeps a bad
//!   plugin from aborting or fooling the host;
//! - [`bridge`]: the [`HostApi`](lxc_tmpl_plugin_api::HostApi) the host hands
//!   to each hook, backed by the runner, the safe rootfs and the config.

pub mod bridge;
pub mod discovery;
pub mod loader;
pub mod scratch;
pub mod trust;

use std::path::PathBuf;

pub use discovery::{PLUGIN_PATH_ENV, PluginDir, default_plugin_dirs};
pub use loader::{LoadError, LoadedPlugin, host_api_version};

/// A file that was skipped, and why.
#[derive(Debug)]
pub struct SkippedFile {
    /// The file.
    pub file: PathBuf,
    /// Why it was skipped.
    pub error: LoadError,
}

/// The plugins found in the plugin directories.
#[derive(Debug, Default)]
pub struct PluginSet {
    /// Loaded plugins, one per distro name (the first found wins).
    pub plugins: Vec<LoadedPlugin>,
    /// Files that could not be loaded; reported as warnings, never fatal for the others.
    pub skipped: Vec<SkippedFile>,
    /// Plugins hidden by an earlier one with the same distro name.
    pub shadowed: Vec<LoadedPlugin>,
}

impl PluginSet {
    /// Loads every candidate file in `dirs` that passes the [`trust`] rules
    /// (which hold for every user: root and the running user are trusted,
    /// nobody else).
    pub fn load(dirs: &[PluginDir]) -> Self {
        let mut set = PluginSet::default();
        for dir in dirs {
            for file in discovery::candidate_files(dir) {
                match loader::load(&file) {
                    Ok(plugin) if set.find(&plugin.manifest.name).is_some() => set.shadowed.push(plugin),
                    Ok(plugin) => set.plugins.push(plugin),
                    Err(error) => set.skipped.push(SkippedFile { file, error }),
                }
            }
        }
        set
    }

    /// The plugin for `distro`.
    pub fn find(&self, distro: &str) -> Option<&LoadedPlugin> {
        self.plugins.iter().find(|p| p.manifest.name == distro)
    }

    /// A skipped file whose name suggests it was meant to be `distro`, for a
    /// better "unknown distro" message.
    pub fn skipped_for(&self, distro: &str) -> Option<&SkippedFile> {
        self.skipped.iter().find(|s| {
            matches!(&s.error, LoadError::ApiMismatch { name, .. } if name == distro)
                || s.file.file_stem().is_some_and(|stem| stem.to_string_lossy().ends_with(distro))
        })
    }
}
