//! Loading one plugin library and checking it can be trusted and talked to.
//!
//! Checks, in the order they run: file permissions (as root, a plugin file or
//! directory writable by others would let them run code as root); that the
//! library exports abi_stable's root-module symbol at all (a stray `.so` is
//! reported as "not an lxc-tmpl plugin"); abi_stable's own version and layout
//! checks; and the plugin's API version against the host's (same major,
//! plugin minor not newer), before any hook is called.

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use abi_stable::{
    StableAbi,
    abi_stability::abi_checking::check_layout_compatibility,
    library::{LibHeader, LibraryError, ROOT_MODULE_LOADER_NAME_WITH_NUL, lib_header_from_path},
};
use lxc_tmpl_plugin_api::{API_VERSION, Manifest, PluginModule_Ref};
use semver::Version;
use thiserror::Error;

/// Long option names the host itself uses; a plugin cannot take them.
pub const RESERVED_OPTIONS: &[&str] = &[
    "distro",
    "name",
    "path",
    "rootfs",
    "lxcpath",
    "config",
    "cache-dir",
    "flush-cache",
    "debug",
    "dry-run",
    "lxc-version",
    "quiet",
    "verbose",
    "keep-on-failure",
    "help",
    "version",
    "mapped-uid",
    "mapped-gid",
];

/// Why a plugin file was not loaded.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The file or its directory can be written by others while we run as root.
    #[error("{file}: refusing to load: {what} is writable by group or others (fix: chmod go-w {what})")]
    Writable {
        /// The plugin file.
        file: PathBuf,
        /// The writable path.
        what: PathBuf,
    },
    /// A shared library without the plugin entry point.
    #[error("{file}: not an lxc-tmpl plugin (no abi_stable root module); remove it from the plugin directory")]
    NotAPlugin {
        /// The file.
        file: PathBuf,
    },
    /// dlopen failed.
    #[error("{file}: cannot load: {detail}")]
    Open {
        /// The file.
        file: PathBuf,
        /// The loader's message.
        detail: String,
    },
    /// Built against an API this host cannot serve.
    #[error(
        "{file}: plugin '{name}' was built for plugin API {plugin}, this lxc-tmpl provides API {host}; rebuild the plugin against lxc-tmpl-plugin-api {host_req} or use an lxc-tmpl that provides API {plugin}"
    )]
    ApiMismatch {
        /// The file.
        file: PathBuf,
        /// Distro name, or the file stem when unknown.
        name: String,
        /// The plugin's API version.
        plugin: String,
        /// The host's API version.
        host: String,
        /// What to build against (`^1.2`).
        host_req: String,
    },
    /// abi_stable rejected the library (layout or its own version).
    #[error("{file}: incompatible plugin: {detail}")]
    Abi {
        /// The file.
        file: PathBuf,
        /// abi_stable's explanation.
        detail: String,
    },
    /// The manifest is unusable.
    #[error("{file}: bad plugin manifest: {detail}")]
    Manifest {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// A loaded, checked plugin.
#[derive(Clone)]
pub struct LoadedPlugin {
    /// The library file.
    pub file: PathBuf,
    /// The API version it was built against.
    pub api_version: Version,
    /// What it says about itself.
    pub manifest: Manifest,
    /// Its hooks.
    pub module: PluginModule_Ref,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("file", &self.file)
            .field("name", &self.manifest.name)
            .field("version", &self.manifest.version)
            .field("api_version", &self.api_version)
            .finish()
    }
}

/// The API version this host provides.
pub fn host_api_version() -> Version {
    Version::parse(API_VERSION).expect("API_VERSION is semver")
}

/// Whether a plugin built against `plugin` can be served by a host providing `host`.
pub fn api_compatible(plugin: &Version, host: &Version) -> bool {
    plugin.major == host.major && plugin.minor <= host.minor && (plugin.major > 0 || plugin.minor == host.minor)
}

/// Loads the plugin at `file`. `as_root` enables the permission checks.
pub fn load(file: &Path, as_root: bool) -> Result<LoadedPlugin, LoadError> {
    if as_root {
        check_not_writable_by_others(file)?;
    }
    probe_entry_point(file)?;
    let header = lib_header_from_path(file).map_err(|e| abi_error(file, e))?;
    let host = host_api_version();
    // The header records the API version the plugin was built against;
    // check it before running anything in the plugin.
    let linked = Version::parse(header.version_strings().version.as_str()).map_err(|e| LoadError::Manifest {
        file: file.to_owned(),
        detail: format!("API version in the library header is not semver: {e}"),
    })?;
    if !api_compatible(&linked, &host) {
        return Err(api_mismatch(file, stem(file), linked, host));
    }
    let module = if (linked.major, linked.minor) == (host.major, host.minor) {
        header.init_root_module::<PluginModule_Ref>().map_err(|e| abi_error(file, e))?
    } else {
        init_older_minor(file, header)?
    };
    let reported = module.api_version().as_str();
    let api_version = Version::parse(reported).map_err(|e| LoadError::Manifest {
        file: file.to_owned(),
        detail: format!("API version '{reported}' is not semver: {e}"),
    })?;
    if !api_compatible(&api_version, &host) {
        // abi_stable has verified the layout, so asking for the manifest is
        // safe; it only serves to name the distro in the message.
        let name = module.manifest()().into_result().map(|m| m.name.into_string()).unwrap_or_else(|_| stem(file));
        return Err(api_mismatch(file, name, api_version, host));
    }
    let manifest = module.manifest()()
        .into_result()
        .map_err(|e| LoadError::Manifest { file: file.to_owned(), detail: e.message.into_string() })?;
    check_manifest(file, &manifest)?;
    Ok(LoadedPlugin { file: file.to_owned(), api_version, manifest, module })
}

/// Initializes a plugin built against an older minor API version.
///
/// abi_stable's own check lets a library be newer than the executable, never
/// older: a root module with fewer fields than the host's fails it. Our
/// promise is the other way round (old plugins in newer hosts), so check the
/// plugin's layout as the interface and the host's as the implementation:
/// every field and callback the plugin knows must match the host's exactly,
/// and the host may have more. The host then reads appended hooks through
/// the prefix accessors, which report `None` for fields the plugin lacks.
#[allow(unsafe_code)]
fn init_older_minor(file: &Path, header: &'static LibHeader) -> Result<PluginModule_Ref, LoadError> {
    let plugin_layout = header.layout().ok_or_else(|| LoadError::Abi {
        file: file.to_owned(),
        detail: "the library carries no layout information to check".to_owned(),
    })?;
    check_layout_compatibility(plugin_layout, <PluginModule_Ref as StableAbi>::LAYOUT).map_err(|e| LoadError::Abi {
        file: file.to_owned(),
        detail: e.to_string().split_whitespace().collect::<Vec<_>>().join(" "),
    })?;
    // SAFETY: the check above proved the plugin's root module layout, and
    // every type it reaches, to be a prefix of the host's; the host accesses
    // fields past that prefix only through accessors that check the plugin's
    // own field count.
    unsafe { header.init_root_module_with_unchecked_layout::<PluginModule_Ref>() }.map_err(|e| abi_error(file, e))
}

fn stem(file: &Path) -> String {
    file.file_stem().map(|s| s.to_string_lossy().trim_start_matches("lib").to_owned()).unwrap_or_default()
}

fn api_mismatch(file: &Path, name: String, plugin: Version, host: Version) -> LoadError {
    LoadError::ApiMismatch {
        file: file.to_owned(),
        name,
        host_req: format!("^{}.{}", host.major, host.minor),
        plugin: plugin.to_string(),
        host: host.to_string(),
    }
}

fn abi_error(file: &Path, error: LibraryError) -> LoadError {
    match error {
        LibraryError::OpenError { err, .. } => LoadError::Open { file: file.to_owned(), detail: err.to_string() },
        // Keep abi_stable's text but on one line: it spans several.
        other => LoadError::Abi {
            file: file.to_owned(),
            detail: other.to_string().split_whitespace().collect::<Vec<_>>().join(" "),
        },
    }
}

fn check_not_writable_by_others(file: &Path) -> Result<(), LoadError> {
    let dir = file.parent().unwrap_or(Path::new("/"));
    for path in [file, dir] {
        let meta = std::fs::metadata(path)
            .map_err(|e| LoadError::Open { file: file.to_owned(), detail: format!("{}: {e}", path.display()) })?;
        if meta.mode() & 0o022 != 0 {
            return Err(LoadError::Writable { file: file.to_owned(), what: path.to_owned() });
        }
    }
    Ok(())
}

/// Looks for the root-module symbol with a plain dlopen, so that a library
/// that is simply not a plugin gets a clear message instead of abi_stable's
/// symbol-lookup error.
#[allow(unsafe_code)]
fn probe_entry_point(file: &Path) -> Result<(), LoadError> {
    // SAFETY: loading a library runs its initializers. The file was chosen by
    // an administrator (plugin directories, checked for write access above
    // when root), which is the trust model of any plugin system.
    let library = unsafe { libloading::Library::new(file) }
        .map_err(|e| LoadError::Open { file: file.to_owned(), detail: e.to_string() })?;
    // SAFETY: only the symbol's presence is checked; it is never dereferenced.
    let found = unsafe { library.get::<*const u8>(ROOT_MODULE_LOADER_NAME_WITH_NUL.as_bytes()) }.is_ok();
    if found {
        // abi_stable loads it again and never unloads; unloading a Rust
        // library that registered thread-local destructors is unsound.
        std::mem::forget(library);
        Ok(())
    } else {
        Err(LoadError::NotAPlugin { file: file.to_owned() })
    }
}

fn check_manifest(file: &Path, manifest: &Manifest) -> Result<(), LoadError> {
    let bad = |detail: String| Err(LoadError::Manifest { file: file.to_owned(), detail });
    let name = manifest.name.as_str();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        return bad(format!("distro name '{name}' must be lowercase letters, digits and '-'"));
    }
    if Version::parse(&manifest.version).is_err() {
        return bad(format!("plugin version '{}' is not semver", manifest.version));
    }
    let mut longs = std::collections::HashSet::new();
    let mut shorts = std::collections::HashSet::new();
    for option in manifest.options.iter() {
        let long = option.long.as_str();
        if long.is_empty() || long.starts_with('-') || long.contains(['=', ' ']) {
            return bad(format!("option name '{long}' is not a valid long option"));
        }
        if RESERVED_OPTIONS.contains(&long) {
            return bad(format!("option --{long} is reserved for lxc-tmpl itself"));
        }
        if !longs.insert(long) {
            return bad(format!("option --{long} is declared twice"));
        }
        if let Some(short) = option.short.into_option()
            && !shorts.insert(short)
        {
            return bad(format!("short option -{} is declared twice", short as char));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_compatibility_rule() {
        let v = |s| Version::parse(s).unwrap();
        assert!(api_compatible(&v("1.0.0"), &v("1.0.0")));
        assert!(api_compatible(&v("1.0.0"), &v("1.4.2")), "old plugin, newer host");
        assert!(!api_compatible(&v("1.5.0"), &v("1.4.0")), "plugin needs hooks the host lacks");
        assert!(!api_compatible(&v("2.0.0"), &v("1.4.0")));
        assert!(!api_compatible(&v("0.2.0"), &v("0.3.0")), "0.x minors are breaking");
    }

    #[test]
    fn mismatch_message_names_both_versions() {
        let err = api_mismatch(Path::new("/p/libx.so"), "x".into(), Version::new(2, 0, 0), Version::new(1, 0, 0));
        let text = err.to_string();
        assert!(text.contains("API 2.0.0") && text.contains("API 1.0.0"), "{text}");
    }

    #[test]
    fn stray_file_is_not_a_plugin_or_unloadable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("libjunk.so");
        std::fs::write(&file, "not an ELF").unwrap();
        let err = load(&file, false).unwrap_err();
        assert!(matches!(err, LoadError::Open { .. }), "{err}");
    }
}
