//! The hooks of a create and their order, defined once.
//!
//! The host's create flow, [`testing::run_hooks`](crate::testing), the dry-run
//! text and the crate docs all take the order from [`Hook::ORDER`]; a test in
//! this crate checks that the docs' table lists the hooks in that order.

use std::fmt;

/// One hook of [`Distro`](crate::Distro), named as in the trait and in the
/// host's messages (`hook validate`).
///
/// Plain Rust, not part of the ABI: the host and plugins never pass it across
/// the plugin boundary. A minor version may add a variant (a new hook), so
/// matches need a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Hook {
    /// [`Distro::validate`](crate::Distro::validate).
    Validate,
    /// [`Distro::cache_key`](crate::Distro::cache_key).
    CacheKey,
    /// [`Distro::download`](crate::Distro::download).
    Download,
    /// [`Distro::sources_list`](crate::Distro::sources_list).
    SourcesList,
    /// [`Distro::configure`](crate::Distro::configure).
    Configure,
    /// [`Distro::config`](crate::Distro::config).
    Config,
    /// [`Distro::trim`](crate::Distro::trim).
    Trim,
    /// [`Distro::post_process`](crate::Distro::post_process).
    PostProcess,
    /// [`Distro::finalize`](crate::Distro::finalize).
    Finalize,
    /// [`Distro::message`](crate::Distro::message).
    Message,
}

impl Hook {
    /// Every hook, in the order a create calls them. `download` runs only
    /// when the cache entry the key names is missing (or without a key).
    pub const ORDER: [Hook; 10] = [
        Hook::Validate,
        Hook::CacheKey,
        Hook::Download,
        Hook::SourcesList,
        Hook::Configure,
        Hook::Config,
        Hook::Trim,
        Hook::PostProcess,
        Hook::Finalize,
        Hook::Message,
    ];

    /// The hooks that act on the populated container rootfs, after
    /// `download` (or the copy from the cache) and before `message`.
    pub const ON_ROOTFS: [Hook; 6] =
        [Hook::SourcesList, Hook::Configure, Hook::Config, Hook::Trim, Hook::PostProcess, Hook::Finalize];

    /// The hooks that return nothing but success or an error (all but
    /// `cache_key` and `message`).
    pub fn returns_unit(self) -> bool {
        !matches!(self, Hook::CacheKey | Hook::Message)
    }

    /// The hooks a create runs once the container is claimed: everything
    /// after `cache_key`, as the dry run lists them.
    pub fn after_claim() -> impl Iterator<Item = Hook> {
        Hook::ORDER.into_iter().skip_while(|h| *h != Hook::Download)
    }

    /// The hook's name, as the trait method (`post_process`).
    pub fn name(self) -> &'static str {
        match self {
            Hook::Validate => "validate",
            Hook::CacheKey => "cache_key",
            Hook::Download => "download",
            Hook::SourcesList => "sources_list",
            Hook::Configure => "configure",
            Hook::Config => "config",
            Hook::Trim => "trim",
            Hook::PostProcess => "post_process",
            Hook::Finalize => "finalize",
            Hook::Message => "message",
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::Hook;

    #[test]
    fn the_docs_table_lists_the_hooks_in_order() {
        let docs = include_str!("lib.rs");
        let rows: Vec<&str> = docs
            .lines()
            .filter_map(|l| l.strip_prefix("| [`"))
            .filter_map(|l| l.split('`').next())
            .filter(|name| Hook::ORDER.iter().any(|h| h.name() == *name))
            .collect();
        let order: Vec<&str> = Hook::ORDER.iter().map(|h| h.name()).collect();
        assert_eq!(rows, order, "the hooks table in lib.rs is not in Hook::ORDER");
    }

    #[test]
    fn the_rootfs_hooks_are_the_middle_of_the_order() {
        let middle: Vec<Hook> = Hook::ORDER[3..9].to_vec();
        assert_eq!(middle, Hook::ON_ROOTFS);
        let after: Vec<&str> = Hook::after_claim().map(Hook::name).collect();
        assert_eq!(after.first(), Some(&"download"));
        assert_eq!(after.last(), Some(&"message"));
    }
}
