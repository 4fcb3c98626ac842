//! The root module a plugin library exports: the FFI face of [`Distro`](crate::Distro).
//!
//! It is an abi_stable *prefix type*: later minor versions append hooks after
//! the last field of 1.0, and the host sees a missing hook of an older plugin
//! as `None` and uses the default. Plugins never build it by hand; the
//! [`export_plugin!`](crate::export_plugin) macro does.
//!
//! Hook signatures are spelled out on each field rather than through a type
//! alias: abi_stable's derive only understands function pointers written inline.

// abi_stable's derive reads fields appended after the first version's prefix
// with unsafe code; only the preview build has such a field.
#![cfg_attr(lxc_tmpl_api_preview, allow(unsafe_code))]

use abi_stable::{
    StableAbi, declare_root_module_statics,
    library::RootModule,
    sabi_types::VersionStrings,
    std_types::{ROption, RResult, RStr, RString},
};

use crate::{
    abi::{HookContextRef, ManifestBox},
    error::PluginError,
    host::HostApiMut,
};

/// The root module of a plugin library.
#[allow(missing_debug_implementations)] // a table of function pointers
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModule_Ref)))]
#[sabi(missing_field(option))]
pub struct PluginModule {
    /// The API version the plugin was built against ([`API_VERSION`](crate::API_VERSION)
    /// of the API crate it linked). The host checks it before any call.
    pub api_version: RStr<'static>,
    /// Returns the plugin's [`Manifest`](crate::Manifest).
    pub manifest: extern "C" fn() -> RResult<ManifestBox, PluginError>,
    /// [`Distro::validate`](crate::Distro::validate).
    pub validate: extern "C" fn(HookContextRef<'_>, HostApiMut<'_>) -> RResult<(), PluginError>,
    /// [`Distro::cache_key`](crate::Distro::cache_key).
    pub cache_key: extern "C" fn(HookContextRef<'_>, HostApiMut<'_>) -> RResult<ROption<RString>, PluginError>,
    /// [`Distro::download`](crate::Distro::download).
    pub download: extern "C" fn(HookContextRef<'_>, HostApiMut<'_>) -> RResult<(), PluginError>,
    /// [`Distro::sources_list`](crate::Distro::sources_list).
    pub sources_list: extern "C" fn(HookContextRef<'_>, HostApiMut<'_>) -> RResult<(), PluginError>,
    /// [`Distro::configure`](crate::Distro::configure).
    pub configure: extern "C" fn(HookContextRef<'_>, HostApiMut<'_>) -> RResult<(), PluginError>,
    /// [`Distro::config`](crate::Distro::config).
    pub config: extern "C" fn(HookContextRef<'_>, HostApiMut<'_>) -> RResult<(), PluginError>,
    /// [`Distro::trim`](crate::Distro::trim).
    pub trim: extern "C" fn(HookContextRef<'_>, HostApiMut<'_>) -> RResult<(), PluginError>,
    /// [`Distro::post_process`](crate::Distro::post_process).
    pub post_process: extern "C" fn(HookContextRef<'_>, HostApiMut<'_>) -> RResult<(), PluginError>,
    /// [`Distro::finalize`](crate::Distro::finalize).
    pub finalize: extern "C" fn(HookContextRef<'_>, HostApiMut<'_>) -> RResult<(), PluginError>,
    /// [`Distro::message`](crate::Distro::message).
    #[sabi(last_prefix_field)]
    pub message: extern "C" fn(HookContextRef<'_>, HostApiMut<'_>) -> RResult<ROption<RString>, PluginError>,
    /// Only in `--cfg lxc_tmpl_api_preview` builds: a hook appended the way
    /// a minor version appends one, so that the test suite can load a 1.0
    /// plugin into a 1.1 host (the host sees `None` and uses the default).
    #[cfg(lxc_tmpl_api_preview)]
    #[doc(hidden)]
    pub preview: extern "C" fn(HookContextRef<'_>, HostApiMut<'_>) -> RResult<(), PluginError>,
}

impl RootModule for PluginModule_Ref {
    declare_root_module_statics! {PluginModule_Ref}
    const BASE_NAME: &'static str = "lxc_tmpl_plugin";
    const NAME: &'static str = "lxc-tmpl plugin";
    // The API version rather than `package_version_strings!()`, so that the
    // library header tells the host which API a plugin was built for before
    // anything in the plugin runs.
    const VERSION_STRINGS: VersionStrings = VersionStrings { version: RStr::from_str(crate::API_VERSION) };
}
