//! The trait a plugin implements.

use crate::{context::HookContext, error::PluginError, host::Host, manifest::Manifest};

/// A distribution, as a plugin implements it.
///
/// Every hook but [`manifest`](Distro::manifest) has a default that does
/// nothing. The host calls them in declaration order; see the
/// [crate documentation](crate#hooks) for which root each one acts on.
/// Implementations are called from one thread at a time but must be `Sync`
/// because one instance serves the whole process.
pub trait Distro: Send + Sync + 'static {
    /// Describes the plugin. Called once, when the plugin is loaded.
    fn manifest(&self) -> Manifest;

    /// Checks options and host facts before anything is created. Return
    /// [`PluginError::invalid_input`] with the fix in the message.
    fn validate(&self, _ctx: &HookContext, _host: &mut Host<'_>) -> Result<(), PluginError> {
        Ok(())
    }

    /// Names the cached rootfs this container is copied from: a string made of
    /// everything that changes the cache's content (release, arch, variant,
    /// mirror, packages). `None` (the default) means no cache: `download`
    /// then builds straight into the container rootfs.
    fn cache_key(&self, _ctx: &HookContext, _host: &mut Host<'_>) -> Result<Option<String>, PluginError> {
        Ok(None)
    }

    /// Builds the rootfs. With a cache key it runs only when that cache entry
    /// is missing, into a staging dir the host renames into the cache when
    /// the hook succeeds.
    fn download(&self, _ctx: &HookContext, _host: &mut Host<'_>) -> Result<(), PluginError> {
        Ok(())
    }

    /// Writes the package sources of the container.
    fn sources_list(&self, _ctx: &HookContext, _host: &mut Host<'_>) -> Result<(), PluginError> {
        Ok(())
    }

    /// Configures the system: hostname, hosts, network, locale, timezone, keys.
    fn configure(&self, _ctx: &HookContext, _host: &mut Host<'_>) -> Result<(), PluginError> {
        Ok(())
    }

    /// Emits the container's LXC config entries through [`Host::config`].
    fn config(&self, _ctx: &HookContext, _host: &mut Host<'_>) -> Result<(), PluginError> {
        Ok(())
    }

    /// Removes or masks what makes no sense in a container.
    fn trim(&self, _ctx: &HookContext, _host: &mut Host<'_>) -> Result<(), PluginError> {
        Ok(())
    }

    /// Late fixes: extra packages, timezone, compatibility links.
    fn post_process(&self, _ctx: &HookContext, _host: &mut Host<'_>) -> Result<(), PluginError> {
        Ok(())
    }

    /// Users, keys, bind mounts: what makes the container usable by a person.
    fn finalize(&self, _ctx: &HookContext, _host: &mut Host<'_>) -> Result<(), PluginError> {
        Ok(())
    }

    /// Text printed after a successful create (how to get in).
    fn message(&self, _ctx: &HookContext, _host: &mut Host<'_>) -> Result<Option<String>, PluginError> {
        Ok(None)
    }

    /// Only in `--cfg lxc_tmpl_api_preview` builds (see `PluginModule::preview`).
    #[cfg(lxc_tmpl_api_preview)]
    #[doc(hidden)]
    fn preview(&self, _ctx: &HookContext, host: &mut Host<'_>) -> Result<(), PluginError> {
        host.info("preview hook ran in the plugin");
        Ok(())
    }
}
