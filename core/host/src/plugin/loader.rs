//! Loading one plugin library and checking it can be trusted and talked to.
//!
//! Checks, in the order they run: trust ([`trust`]: the file
//! that is actually loaded, after symlinks, and every directory above it are
//! owned by root or the running user and not writable by group or others, as
//! sshd's `StrictModes` and sudo demand; whoever could replace a plugin could
//! run code as root); that the library exports abi_stable's root-module
//! symbol at all (a stray `.so` is reported as "not an lxc-tmpl plugin");
//! abi_stable's own version and layout checks; and the plugin's API version
//! against the host's (same major, plugin minor not newer), before any hook is
//! called.
//!
//! The file is opened once, by the trust check, and that descriptor is what
//! is loaded (`dlopen` of `/proc/self/fd/N`), once: no second lookup of the
//! path can reach a file that was not judged.

use std::{
    os::fd::IntoRawFd,
    path::{Path, PathBuf},
};

use abi_stable::{
    StableAbi,
    abi_stability::abi_checking::check_layout_compatibility,
    library::{LibHeader, LibraryError, RawLibrary, lib_header_from_raw_library},
};
use lxc_tmpl_plugin_api::{API_VERSION, Manifest, PluginModule_Ref};
use semver::Version;
use thiserror::Error;

use super::trust::{self, Refusal, TrustedFile};
use crate::sys::proc_fd_path;

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
    "backing",
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
    /// The file, or a directory on the way to it, could be replaced by a
    /// user other than root and the running user (see [`trust`]). Boxed: the
    /// refusal carries three paths and would make every `Result` large.
    #[error("{0}")]
    Untrusted(Box<Refusal>),
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

/// Loads the plugin at `file` if it may be trusted (see [`trust`]).
pub fn load(file: &Path) -> Result<LoadedPlugin, LoadError> {
    let header = open_header(file, trust::open_trusted(file)?)?;
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
        let name = module.manifest()().into_result().map(|m| m.name().to_string()).unwrap_or_else(|_| stem(file));
        return Err(api_mismatch(file, name, api_version, host));
    }
    let manifest = module.manifest()()
        .into_result()
        .map(|m| Manifest::from_abi(&m))
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

/// Loads the judged descriptor and finds abi_stable's header in it; a library
/// without the root-module symbol gets a clear "not a plugin" instead of
/// abi_stable's symbol-lookup error.
///
/// The library is never unloaded (unloading a Rust library that registered
/// thread-local destructors is unsound), and neither is its descriptor
/// closed: the dynamic loader (glibc matches loaded objects by name before
/// it opens anything) knows the library by the name
/// `/proc/self/fd/N`, and a later `dlopen` of a reused `N` would be handed
/// this library again instead of opening the new file.
#[allow(unsafe_code)]
fn open_header(file: &Path, trusted: TrustedFile) -> Result<&'static LibHeader, LoadError> {
    let fd_path = proc_fd_path(&trusted.fd);
    // Loading runs the library's initializers: this is where the trust
    // judgement of the descriptor matters.
    let library = RawLibrary::load_at(&fd_path).map_err(|e| match e {
        // dlerror() names the /proc path; the user knows the file.
        LibraryError::OpenError { err, .. } => {
            let detail = err.to_string();
            let prefix = format!("{}: ", fd_path.display());
            LoadError::Open {
                file: file.to_owned(),
                detail: detail.strip_prefix(&prefix).unwrap_or(&detail).to_owned(),
            }
        }
        other => abi_error(file, other),
    })?;
    // From here on the loader holds the library under the fd's name.
    let _ = trusted.fd.into_raw_fd();
    // SAFETY: the returned header borrows the library for 'static, and the
    // library is never unloaded (forgotten below on every path).
    let header = unsafe { lib_header_from_raw_library(&library) };
    std::mem::forget(library);
    header.map_err(|e| match e {
        LibraryError::GetSymbolError { .. } => LoadError::NotAPlugin { file: file.to_owned() },
        other => abi_error(file, other),
    })
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
        if let Some(short) = option.short
            && !shorts.insert(short)
        {
            return bad(format!("short option -{short} is declared twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures are built with std::fs on purpose
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
        let err = load(&file).unwrap_err();
        assert!(matches!(err, LoadError::Open { .. }), "{err}");
    }
}
