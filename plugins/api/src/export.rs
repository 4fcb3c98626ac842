//! [`export_plugin!`] and the shims it builds: each hook of the root module
//! calls the plugin's [`Distro`] inside `catch_unwind`, so a panic becomes a
//! [`PluginError`] instead of aborting the host (abi_stable aborts on a panic
//! that reaches the boundary, and so does Rust for `extern "C"` functions).

use std::{
    any::Any,
    cell::RefCell,
    panic::{self, AssertUnwindSafe},
    sync::Once,
};

use abi_stable::{
    prefix_type::PrefixTypeTrait,
    std_types::{ROption, RResult, RString},
};

use crate::{
    abi::{HookContextRef, ManifestBox},
    context::HookContext,
    distro::Distro,
    error::{ErrorKind, PluginError},
    host::{Host, HostApiMut},
    module::{PluginModule, PluginModule_Ref},
};

/// Exports a type implementing [`Distro`] and [`Default`] as the plugin of
/// this library. Use it once, at the crate root of a `cdylib`.
///
/// ```ignore
/// #[derive(Default)]
/// struct MyDistro;
/// impl lxc_tmpl_plugin_api::Distro for MyDistro { /* ... */ }
/// lxc_tmpl_plugin_api::export_plugin!(MyDistro);
/// ```
///
/// It expands to the abi_stable library header (the symbol the host looks
/// up) and to shims that turn panics into errors.
#[macro_export]
macro_rules! export_plugin {
    ($distro:ty) => {
        $crate::export_plugin!(@api_version $crate::API_VERSION, $distro);
    };
    // Hidden form: claim another API version. Only for the host's own tests of
    // version checks; a real plugin reports the version it was built against.
    (@api_version $api:expr, $distro:ty) => {
        impl $crate::__private::Instance for $distro {
            fn instance() -> &'static Self {
                static INSTANCE: ::std::sync::OnceLock<$distro> = ::std::sync::OnceLock::new();
                INSTANCE.get_or_init(<$distro as ::std::default::Default>::default)
            }
        }

        /// The abi_stable library header the host loads this plugin through.
        // The name is abi_stable's mangled root-module symbol
        // (`abi_stable::library::ROOT_MODULE_LOADER_NAME`); the API crate's
        // tests check that it matches.
        #[doc(hidden)]
        #[unsafe(export_name = "_1as_0lib_1header_0root_bmodule_bloader")]
        pub static LXC_TMPL_PLUGIN_HEADER: $crate::abi_stable::library::LibHeader = {
            extern "C" fn constructor() -> $crate::abi_stable::library::RootModuleResult {
                $crate::abi_stable::library::__call_root_module_loader(|| {
                    $crate::__private::root_module::<$distro>($api)
                })
            }
            // SAFETY: `constructor` returns the module built by
            // `root_module`, a `PluginModule_Ref`, erased by abi_stable's own
            // `__call_root_module_loader`: the contract `from_constructor` asks for.
            unsafe {
                $crate::abi_stable::library::LibHeader::from_constructor::<$crate::PluginModule_Ref>(
                    constructor,
                    $crate::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

/// Gives the shims the plugin's single instance. Implemented by [`export_plugin!`].
pub trait Instance: Distro + Sized {
    /// The instance every hook call goes to.
    fn instance() -> &'static Self;
}

/// Builds the root module for `D`, reporting `api_version`.
pub fn root_module<D: Instance>(api_version: &'static str) -> PluginModule_Ref {
    install_panic_hook();
    PluginModule {
        api_version: api_version.into(),
        manifest: manifest::<D>,
        validate: validate::<D>,
        cache_key: cache_key::<D>,
        download: download::<D>,
        sources_list: sources_list::<D>,
        configure: configure::<D>,
        config: config::<D>,
        trim: trim::<D>,
        post_process: post_process::<D>,
        finalize: finalize::<D>,
        message: message::<D>,
        #[cfg(lxc_tmpl_api_preview)]
        preview: preview::<D>,
    }
    .leak_into_prefix()
}

thread_local! {
    /// Where and why the last panic in this plugin happened, recorded by the
    /// panic hook so the error can say it (the payload alone has no location).
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replaces the plugin's panic hook (the plugin has its own copy of std) with
/// one that records the panic for the error message instead of printing a
/// backtrace banner in the middle of the host's output.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        panic::set_hook(Box::new(|info| {
            let location = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            let message = payload_text(info.payload());
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{message}{location}")));
        }));
    });
}

fn payload_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Runs `f`, turning a panic into a [`PluginError`] of kind [`ErrorKind::PANIC`].
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, PluginError>) -> RResult<T, PluginError> {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.into(),
        Err(payload) => {
            let detail = LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_else(|| payload_text(&*payload));
            RResult::RErr(PluginError::new(ErrorKind::PANIC, format!("plugin panicked in {what}: {detail}")))
        }
    }
}

extern "C" fn manifest<D: Instance>() -> RResult<ManifestBox, PluginError> {
    guarded("manifest", || Ok(D::instance().manifest().into_abi()))
}

extern "C" fn cache_key<D: Instance>(
    ctx: HookContextRef<'_>,
    host: HostApiMut<'_>,
) -> RResult<ROption<RString>, PluginError> {
    guarded("hook cache_key", || {
        let ctx = HookContext::from_abi(&ctx);
        D::instance().cache_key(&ctx, &mut Host::new(host)).map(|k| k.map(RString::from).into())
    })
}

extern "C" fn message<D: Instance>(
    ctx: HookContextRef<'_>,
    host: HostApiMut<'_>,
) -> RResult<ROption<RString>, PluginError> {
    guarded("hook message", || {
        let ctx = HookContext::from_abi(&ctx);
        D::instance().message(&ctx, &mut Host::new(host)).map(|m| m.map(RString::from).into())
    })
}

/// Defines the shim of a hook that returns `()`.
macro_rules! unit_hook {
    ($($hook:ident),* $(,)?) => {$(
        extern "C" fn $hook<D: Instance>(ctx: HookContextRef<'_>, host: HostApiMut<'_>) -> RResult<(), PluginError> {
            guarded(concat!("hook ", stringify!($hook)), || {
                let ctx = HookContext::from_abi(&ctx);
                D::instance().$hook(&ctx, &mut Host::new(host))
            })
        }
    )*};
}

unit_hook!(validate, download, sources_list, configure, config, trim, post_process, finalize);
#[cfg(lxc_tmpl_api_preview)]
unit_hook!(preview);

#[cfg(test)]
mod tests {
    #[test]
    fn export_name_is_abi_stables_root_module_symbol() {
        // `export_plugin!` must spell the symbol out as a literal; this keeps
        // it honest if abi_stable's mangling ever changes.
        let macro_source = include_str!("export.rs");
        let needle = format!("export_name = \"{}\"", abi_stable::library::ROOT_MODULE_LOADER_NAME);
        assert!(macro_source.contains(&needle), "export_plugin! must use {needle}");
    }
}
