//! Where plugins are looked for, in order of precedence:
//!
//! 1. every directory in `$LXC_TMPL_PLUGIN_PATH` (colon-separated);
//! 2. the system plugin directories, `/usr/local/lib/lxc-tmpl/plugins` then
//!    `/usr/lib/lxc-tmpl/plugins`;
//! 3. the directory of the running binary, so that a fresh `cargo build`
//!    works without installing anything. That directory also holds other
//!    build outputs, so only files named `liblxc_tmpl_*.so` are taken there.
//!
//! In the plugin directories proper every `*.so` file is taken, and one that
//! is not a plugin is reported. Being found is not being trusted: every
//! candidate, wherever it was found, must pass the rules of
//! [`trust`](super::trust) before it is loaded.

use std::{
    env,
    ffi::OsStr,
    fs,
    path::{Path, PathBuf},
};

/// The environment variable naming extra plugin directories.
pub const PLUGIN_PATH_ENV: &str = "LXC_TMPL_PLUGIN_PATH";

/// System-wide plugin directories.
pub const SYSTEM_PLUGIN_DIRS: &[&str] = &["/usr/local/lib/lxc-tmpl/plugins", "/usr/lib/lxc-tmpl/plugins"];

/// A directory searched for plugins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginDir {
    /// The directory.
    pub path: PathBuf,
    /// Whether only `liblxc_tmpl_*.so` files are taken (the binary's own directory).
    pub named_only: bool,
}

/// The plugin directories in precedence order, from the environment, the
/// system dirs and `exe_dir` (the running binary's directory).
pub fn plugin_dirs(env_path: Option<&OsStr>, exe_dir: Option<&Path>) -> Vec<PluginDir> {
    let mut dirs: Vec<PluginDir> = env_path
        .map(|p| env::split_paths(p).filter(|p| !p.as_os_str().is_empty()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(SYSTEM_PLUGIN_DIRS.iter().map(PathBuf::from))
        .map(|path| PluginDir { path, named_only: false })
        .collect();
    if let Some(exe_dir) = exe_dir {
        dirs.push(PluginDir { path: exe_dir.to_owned(), named_only: true });
    }
    dirs
}

/// The plugin directories of this process.
pub fn default_plugin_dirs() -> Vec<PluginDir> {
    let exe_dir = env::current_exe().ok().and_then(|e| e.parent().map(Path::to_owned));
    plugin_dirs(env::var_os(PLUGIN_PATH_ENV).as_deref(), exe_dir.as_deref())
}

/// The candidate plugin files of one directory, sorted; a missing directory has none.
pub fn candidate_files(dir: &PluginDir) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(&dir.path) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension() == Some(OsStr::new("so")))
        .filter(|p| {
            !dir.named_only || p.file_name().and_then(OsStr::to_str).is_some_and(|n| n.starts_with("liblxc_tmpl_"))
        })
        .collect();
    files.sort();
    files
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures are built with std::fs on purpose
mod tests {
    use super::*;

    #[test]
    fn precedence_env_then_system_then_exe_dir() {
        let dirs = plugin_dirs(Some(OsStr::new("/a:/b")), Some(Path::new("/exe")));
        let paths: Vec<_> = dirs.iter().map(|d| d.path.to_str().unwrap()).collect();
        assert_eq!(paths, ["/a", "/b", "/usr/local/lib/lxc-tmpl/plugins", "/usr/lib/lxc-tmpl/plugins", "/exe"]);
        assert!(dirs.last().unwrap().named_only);
        assert!(!dirs[0].named_only);
    }

    #[test]
    fn exe_dir_takes_only_named_plugins() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["liblxc_tmpl_busybox.so", "libfixture_x.so", "liblxc_tmpl_host.rlib", "notes.txt"] {
            fs::write(dir.path().join(name), "").unwrap();
        }
        let named = candidate_files(&PluginDir { path: dir.path().into(), named_only: true });
        assert_eq!(named, [dir.path().join("liblxc_tmpl_busybox.so")]);
        let all = candidate_files(&PluginDir { path: dir.path().into(), named_only: false });
        assert_eq!(all, [dir.path().join("libfixture_x.so"), dir.path().join("liblxc_tmpl_busybox.so")]);
    }
}
