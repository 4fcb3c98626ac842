//! How the API's data crosses the plugin boundary, so that it can grow.
//!
//! Plugin code and host code use plain Rust types ([`HookContext`],
//! [`Manifest`], [`CommandSpec`], ...); each side has its own copy, built
//! from the API version it was compiled against. A struct never crosses the
//! boundary by value, because one more field would change its layout and
//! every plugin built before would stop loading. Each crosses as an
//! abi_stable `#[sabi_trait]` object instead: a table of accessor methods
//! over the sender's own value, which the receiver copies into its own type
//! with `from_abi`.
//!
//! A trait object's vtable is an abi_stable *prefix type*: a minor version
//! appends methods after the one marked `#[sabi(last_prefix_field)]`, and
//! abi_stable checks the rest of the table when it loads the plugin. An
//! appended method has a default body; reading it from an object an older
//! plugin made runs that default, because the older table ends before it.
//! Enums that may gain variants ([`RunPlace`], [`FileKind`](crate::FileKind), [`LogLevel`](crate::LogLevel))
//! cross as abi_stable's non-exhaustive enums (`FileKind_NE`, ...).
//!
//! Which side builds which object:
//!
//! | type | made by | read by | appended field read from an older peer |
//! |---|---|---|---|
//! | [`HookContext`], [`HostFacts`] | host | plugin | never: a plugin is never newer than its host |
//! | [`CommandOutput`] | host | plugin | never |
//! | [`Manifest`], [`ReleaseInfo`], [`OptionSpec`] | plugin | host | the method's default |
//! | [`CommandSpec`], [`ConfigEntry`] | plugin | host | the method's default |
//!
//! The host checks the layout of an older-minor plugin with the plugin as
//! the interface and itself as the implementation (see the host's loader):
//! abi_stable's own direction lets a library be newer than its loader,
//! while this API promises the opposite.
//!
//! `#[sabi_trait]` does not see `#[cfg]` on a method, so each trait is
//! written by `growable_abi!`, which adds the preview build's appended
//! method only under `--cfg lxc_tmpl_api_preview`.

// `#[sabi_trait]` expands to unsafe vtable code; this module writes none itself.
#![allow(unsafe_code)]
// ...and to trait impls inside a const block, which rustc flags as non-local.
#![allow(non_local_definitions)]

use abi_stable::{
    sabi_trait,
    sabi_trait::TD_Opaque,
    sabi_types::RRef,
    std_types::{RBox, ROption, RSlice, RStr, RString, RVec, Tuple2},
};

use crate::{
    context::{HookContext, HostFacts, OptionValue},
    host::{CommandOutput, CommandSpec, ConfigEntry, RunPlace, RunPlace_NE},
    manifest::{Manifest, OptionSpec, ReleaseInfo},
};

/// Declares an accessor trait with `#[sabi_trait]`, adding the methods in
/// `preview { ... }` only in `--cfg lxc_tmpl_api_preview` builds.
macro_rules! growable_abi {
    (
        $(#[$meta:meta])*
        pub trait $name:ident { $($body:tt)* }
        preview { $($preview:tt)* }
    ) => {
        #[cfg(not(lxc_tmpl_api_preview))]
        $(#[$meta])*
        #[sabi_trait]
        pub trait $name { $($body)* }

        #[cfg(lxc_tmpl_api_preview)]
        $(#[$meta])*
        #[sabi_trait]
        pub trait $name { $($body)* $($preview)* }
    };
}

fn rstr(s: &str) -> RStr<'_> {
    RStr::from_str(s)
}

fn rstrings(items: &[String]) -> RVec<RString> {
    items.iter().map(|s| RString::from(s.as_str())).collect()
}

fn strings(items: RVec<RString>) -> Vec<String> {
    items.into_iter().map(RString::into_string).collect()
}

fn owned(s: RStr<'_>) -> String {
    s.as_str().to_owned()
}

fn owned_opt(s: ROption<RStr<'_>>) -> Option<String> {
    s.into_option().map(owned)
}

fn opt_rstr(s: &Option<String>) -> ROption<RStr<'_>> {
    s.as_deref().map(rstr).into()
}

// ---------------------------------------------------------------------------
// HookContext and HostFacts: host -> plugin

growable_abi! {
    /// [`HookContext`] at the boundary. Methods appended in a minor version
    /// go after `create_id`.
    pub trait HookContextAbi {
        /// [`HookContext::distro`].
        fn distro(&self) -> RStr<'_>;
        /// [`HookContext::name`].
        fn name(&self) -> RStr<'_>;
        /// [`HookContext::hostname`].
        fn hostname(&self) -> RStr<'_>;
        /// [`HookContext::container_path`].
        fn container_path(&self) -> RStr<'_>;
        /// [`HookContext::rootfs_path`].
        fn rootfs_path(&self) -> RStr<'_>;
        /// [`HookContext::options`], as (long name, values) pairs.
        fn options(&self) -> RVec<Tuple2<RString, RVec<RString>>>;
        /// [`HookContext::facts`].
        fn facts(&self) -> HostFactsAbi_TO<'_, RRef<'_, ()>>;
        /// [`HookContext::create_id`].
        #[sabi(last_prefix_field)]
        fn create_id(&self) -> u64;
    }
    preview {
        /// The preview build's appended field.
        fn preview(&self) -> RStr<'_> {
            RStr::from_str("")
        }
    }
}

/// A [`HookContext`] lent across the boundary for one hook call.
pub type HookContextRef<'a> = HookContextAbi_TO<'a, RRef<'a, ()>>;

impl HookContextAbi for HookContext {
    fn distro(&self) -> RStr<'_> {
        rstr(&self.distro)
    }
    fn name(&self) -> RStr<'_> {
        rstr(&self.name)
    }
    fn hostname(&self) -> RStr<'_> {
        rstr(&self.hostname)
    }
    fn container_path(&self) -> RStr<'_> {
        rstr(&self.container_path)
    }
    fn rootfs_path(&self) -> RStr<'_> {
        rstr(&self.rootfs_path)
    }
    fn options(&self) -> RVec<Tuple2<RString, RVec<RString>>> {
        self.options.iter().map(|o| Tuple2(RString::from(o.long.as_str()), rstrings(&o.values))).collect()
    }
    fn facts(&self) -> HostFactsAbi_TO<'_, RRef<'_, ()>> {
        HostFactsAbi_TO::from_ptr(&self.facts, TD_Opaque)
    }
    fn create_id(&self) -> u64 {
        self.create_id
    }
    #[cfg(lxc_tmpl_api_preview)]
    fn preview(&self) -> RStr<'_> {
        rstr(&self.preview)
    }
}

impl HookContext {
    /// Lends this context across the boundary (the host, before each hook).
    pub fn as_abi(&self) -> HookContextRef<'_> {
        HookContextAbi_TO::from_ptr(self, TD_Opaque)
    }

    /// Copies a context received across the boundary (the plugin, in each hook).
    pub fn from_abi(ctx: &HookContextRef<'_>) -> Self {
        Self {
            distro: owned(ctx.distro()),
            name: owned(ctx.name()),
            hostname: owned(ctx.hostname()),
            container_path: owned(ctx.container_path()),
            rootfs_path: owned(ctx.rootfs_path()),
            options: ctx
                .options()
                .into_iter()
                .map(|Tuple2(long, values)| OptionValue { long: long.into_string(), values: strings(values) })
                .collect(),
            facts: HostFacts::from_abi(&ctx.facts()),
            create_id: ctx.create_id(),
            #[cfg(lxc_tmpl_api_preview)]
            preview: owned(ctx.preview()),
        }
    }
}

growable_abi! {
    /// [`HostFacts`] at the boundary. Methods appended in a minor version go
    /// after `in_user_namespace`.
    pub trait HostFactsAbi {
        /// [`HostFacts::arch`].
        fn arch(&self) -> RStr<'_>;
        /// [`HostFacts::distro_id`].
        fn distro_id(&self) -> RStr<'_>;
        /// [`HostFacts::distro_codename`].
        fn distro_codename(&self) -> RStr<'_>;
        /// [`HostFacts::lxc_version`].
        fn lxc_version(&self) -> RStr<'_>;
        /// [`HostFacts::mapped_uid`].
        fn mapped_uid(&self) -> ROption<u32>;
        /// [`HostFacts::mapped_gid`].
        fn mapped_gid(&self) -> ROption<u32>;
        /// [`HostFacts::in_user_namespace`].
        #[sabi(last_prefix_field)]
        fn in_user_namespace(&self) -> bool;
    }
    preview {
        /// The preview build's appended field.
        fn preview(&self) -> RStr<'_> {
            RStr::from_str("")
        }
    }
}

impl HostFactsAbi for HostFacts {
    fn arch(&self) -> RStr<'_> {
        rstr(&self.arch)
    }
    fn distro_id(&self) -> RStr<'_> {
        rstr(&self.distro_id)
    }
    fn distro_codename(&self) -> RStr<'_> {
        rstr(&self.distro_codename)
    }
    fn lxc_version(&self) -> RStr<'_> {
        rstr(&self.lxc_version)
    }
    fn mapped_uid(&self) -> ROption<u32> {
        self.mapped_uid.into()
    }
    fn mapped_gid(&self) -> ROption<u32> {
        self.mapped_gid.into()
    }
    fn in_user_namespace(&self) -> bool {
        self.in_user_namespace
    }
    #[cfg(lxc_tmpl_api_preview)]
    fn preview(&self) -> RStr<'_> {
        rstr(&self.preview)
    }
}

impl HostFacts {
    fn from_abi(facts: &HostFactsAbi_TO<'_, RRef<'_, ()>>) -> Self {
        Self {
            arch: owned(facts.arch()),
            distro_id: owned(facts.distro_id()),
            distro_codename: owned(facts.distro_codename()),
            lxc_version: owned(facts.lxc_version()),
            mapped_uid: facts.mapped_uid().into_option(),
            mapped_gid: facts.mapped_gid().into_option(),
            in_user_namespace: facts.in_user_namespace(),
            #[cfg(lxc_tmpl_api_preview)]
            preview: owned(facts.preview()),
        }
    }
}

// ---------------------------------------------------------------------------
// Manifest, ReleaseInfo, OptionSpec: plugin -> host

growable_abi! {
    /// [`Manifest`] at the boundary. Methods appended in a minor version go
    /// after `options` and have a default body: what a plugin built against
    /// an older minor reads as.
    pub trait ManifestAbi {
        /// [`Manifest::name`].
        fn name(&self) -> RStr<'_>;
        /// [`Manifest::version`].
        fn version(&self) -> RStr<'_>;
        /// [`Manifest::summary`].
        fn summary(&self) -> RStr<'_>;
        /// [`Manifest::arches`].
        fn arches(&self) -> RVec<RString>;
        /// [`Manifest::releases`].
        fn releases(&self) -> RVec<ReleaseInfoAbi_TO<'_, RRef<'_, ()>>>;
        /// [`Manifest::default_release`].
        fn default_release(&self) -> RStr<'_>;
        /// [`Manifest::options`].
        #[sabi(last_prefix_field)]
        fn options(&self) -> RVec<OptionSpecAbi_TO<'_, RRef<'_, ()>>>;
    }
    preview {
        /// The preview build's appended field; `RNone` from an older plugin.
        fn preview(&self) -> ROption<RString> {
            ROption::RNone
        }
    }
}

/// A [`Manifest`] handed over by the plugin; the host drops it after copying.
pub type ManifestBox = ManifestAbi_TO<'static, RBox<()>>;

impl ManifestAbi for Manifest {
    fn name(&self) -> RStr<'_> {
        rstr(&self.name)
    }
    fn version(&self) -> RStr<'_> {
        rstr(&self.version)
    }
    fn summary(&self) -> RStr<'_> {
        rstr(&self.summary)
    }
    fn arches(&self) -> RVec<RString> {
        rstrings(&self.arches)
    }
    fn releases(&self) -> RVec<ReleaseInfoAbi_TO<'_, RRef<'_, ()>>> {
        self.releases.iter().map(|r| ReleaseInfoAbi_TO::from_ptr(r, TD_Opaque)).collect()
    }
    fn default_release(&self) -> RStr<'_> {
        rstr(&self.default_release)
    }
    fn options(&self) -> RVec<OptionSpecAbi_TO<'_, RRef<'_, ()>>> {
        self.options.iter().map(|o| OptionSpecAbi_TO::from_ptr(o, TD_Opaque)).collect()
    }
    #[cfg(lxc_tmpl_api_preview)]
    fn preview(&self) -> ROption<RString> {
        // A plugin of this version always has the field, even when empty.
        ROption::RSome(self.preview.clone().unwrap_or_default().into())
    }
}

impl Manifest {
    /// Hands this manifest across the boundary (the plugin).
    pub fn into_abi(self) -> ManifestBox {
        ManifestAbi_TO::from_value(self, TD_Opaque)
    }

    /// Copies a manifest received across the boundary (the host).
    pub fn from_abi(manifest: &ManifestBox) -> Self {
        Self {
            name: owned(manifest.name()),
            version: owned(manifest.version()),
            summary: owned(manifest.summary()),
            arches: strings(manifest.arches()),
            releases: manifest.releases().iter().map(ReleaseInfo::from_abi).collect(),
            default_release: owned(manifest.default_release()),
            options: manifest.options().iter().map(OptionSpec::from_abi).collect(),
            #[cfg(lxc_tmpl_api_preview)]
            preview: manifest.preview().into_option().map(RString::into_string),
        }
    }
}

growable_abi! {
    /// [`ReleaseInfo`] at the boundary. Methods appended in a minor version
    /// go after `eol` and have a default body.
    pub trait ReleaseInfoAbi {
        /// [`ReleaseInfo::codename`].
        fn codename(&self) -> RStr<'_>;
        /// [`ReleaseInfo::version`].
        fn version(&self) -> RStr<'_>;
        /// [`ReleaseInfo::aliases`].
        fn aliases(&self) -> RVec<RString>;
        /// [`ReleaseInfo::lts`].
        fn lts(&self) -> bool;
        /// [`ReleaseInfo::eol`].
        #[sabi(last_prefix_field)]
        fn eol(&self) -> RStr<'_>;
    }
    preview {}
}

impl ReleaseInfoAbi for ReleaseInfo {
    fn codename(&self) -> RStr<'_> {
        rstr(&self.codename)
    }
    fn version(&self) -> RStr<'_> {
        rstr(&self.version)
    }
    fn aliases(&self) -> RVec<RString> {
        rstrings(&self.aliases)
    }
    fn lts(&self) -> bool {
        self.lts
    }
    fn eol(&self) -> RStr<'_> {
        rstr(&self.eol)
    }
}

impl ReleaseInfo {
    fn from_abi(release: &ReleaseInfoAbi_TO<'_, RRef<'_, ()>>) -> Self {
        Self {
            codename: owned(release.codename()),
            version: owned(release.version()),
            aliases: strings(release.aliases()),
            lts: release.lts(),
            eol: owned(release.eol()),
        }
    }
}

growable_abi! {
    /// [`OptionSpec`] at the boundary. Methods appended in a minor version go
    /// after `secret` and have a default body.
    pub trait OptionSpecAbi {
        /// [`OptionSpec::long`].
        fn long(&self) -> RStr<'_>;
        /// [`OptionSpec::short`], as an ASCII byte.
        fn short(&self) -> ROption<u8>;
        /// [`OptionSpec::value_name`].
        fn value_name(&self) -> ROption<RStr<'_>>;
        /// [`OptionSpec::help`].
        fn help(&self) -> RStr<'_>;
        /// [`OptionSpec::default`].
        fn default(&self) -> ROption<RStr<'_>>;
        /// [`OptionSpec::env`].
        fn env(&self) -> ROption<RStr<'_>>;
        /// [`OptionSpec::repeatable`].
        fn repeatable(&self) -> bool;
        /// [`OptionSpec::secret`].
        #[sabi(last_prefix_field)]
        fn secret(&self) -> bool;
    }
    preview {
        /// The preview build's appended field; `RNone` from an older plugin.
        fn preview(&self) -> ROption<RString> {
            ROption::RNone
        }
    }
}

impl OptionSpecAbi for OptionSpec {
    fn long(&self) -> RStr<'_> {
        rstr(&self.long)
    }
    fn short(&self) -> ROption<u8> {
        // `OptionSpec::short` accepts only ASCII letters and digits.
        self.short.and_then(|c| u8::try_from(c).ok()).into()
    }
    fn value_name(&self) -> ROption<RStr<'_>> {
        opt_rstr(&self.value_name)
    }
    fn help(&self) -> RStr<'_> {
        rstr(&self.help)
    }
    fn default(&self) -> ROption<RStr<'_>> {
        opt_rstr(&self.default)
    }
    fn env(&self) -> ROption<RStr<'_>> {
        opt_rstr(&self.env)
    }
    fn repeatable(&self) -> bool {
        self.repeatable
    }
    fn secret(&self) -> bool {
        self.secret
    }
    #[cfg(lxc_tmpl_api_preview)]
    fn preview(&self) -> ROption<RString> {
        ROption::RSome(self.preview.clone().unwrap_or_default().into())
    }
}

impl OptionSpec {
    fn from_abi(option: &OptionSpecAbi_TO<'_, RRef<'_, ()>>) -> Self {
        Self {
            long: owned(option.long()),
            short: option.short().into_option().map(char::from),
            value_name: owned_opt(option.value_name()),
            help: owned(option.help()),
            default: owned_opt(option.default()),
            env: owned_opt(option.env()),
            repeatable: option.repeatable(),
            secret: option.secret(),
            #[cfg(lxc_tmpl_api_preview)]
            preview: option.preview().into_option().map(RString::into_string),
        }
    }
}

// ---------------------------------------------------------------------------
// CommandSpec and ConfigEntry: plugin -> host; CommandOutput: host -> plugin

growable_abi! {
    /// [`CommandSpec`] at the boundary. Methods appended in a minor version
    /// go after `check` and have a default body.
    pub trait CommandSpecAbi {
        /// [`CommandSpec::argv`].
        fn argv(&self) -> RVec<RString>;
        /// [`CommandSpec::env`].
        fn env(&self) -> RVec<Tuple2<RString, RString>>;
        /// [`CommandSpec::stdin`].
        fn stdin(&self) -> RSlice<'_, u8>;
        /// [`CommandSpec::place`].
        fn place(&self) -> RunPlace_NE;
        /// [`CommandSpec::check`].
        #[sabi(last_prefix_field)]
        fn check(&self) -> bool;
    }
    preview {
        /// The preview build's appended field; `RNone` from an older plugin.
        fn preview(&self) -> ROption<RString> {
            ROption::RNone
        }
    }
}

/// A [`CommandSpec`] lent across the boundary for one [`HostApi::run`](crate::HostApi::run).
pub type CommandSpecRef<'a> = CommandSpecAbi_TO<'a, RRef<'a, ()>>;

impl CommandSpecAbi for CommandSpec {
    fn argv(&self) -> RVec<RString> {
        rstrings(&self.argv)
    }
    fn env(&self) -> RVec<Tuple2<RString, RString>> {
        self.env.iter().map(|(k, v)| Tuple2(RString::from(k.as_str()), RString::from(v.as_str()))).collect()
    }
    fn stdin(&self) -> RSlice<'_, u8> {
        self.stdin.as_slice().into()
    }
    fn place(&self) -> RunPlace_NE {
        RunPlace_NE::new(self.place)
    }
    fn check(&self) -> bool {
        self.check
    }
    #[cfg(lxc_tmpl_api_preview)]
    fn preview(&self) -> ROption<RString> {
        ROption::RSome(self.preview.clone().unwrap_or_default().into())
    }
}

impl CommandSpec {
    /// Copies a command received across the boundary (the host). `None` when
    /// it names a [`RunPlace`] this host does not know.
    pub fn from_abi(command: &CommandSpecRef<'_>) -> Option<Self> {
        Some(Self {
            argv: strings(command.argv()),
            env: command.env().into_iter().map(|Tuple2(k, v)| (k.into_string(), v.into_string())).collect(),
            stdin: command.stdin().to_vec(),
            place: RunPlace::from_abi(&command.place())?,
            check: command.check(),
            #[cfg(lxc_tmpl_api_preview)]
            preview: command.preview().into_option().map(RString::into_string),
        })
    }
}

growable_abi! {
    /// [`CommandOutput`] at the boundary. Methods appended in a minor version
    /// go after `stderr`.
    pub trait CommandOutputAbi {
        /// [`CommandOutput::status`].
        fn status(&self) -> i32;
        /// [`CommandOutput::stdout`].
        fn stdout(&self) -> RSlice<'_, u8>;
        /// [`CommandOutput::stderr`].
        #[sabi(last_prefix_field)]
        fn stderr(&self) -> RSlice<'_, u8>;
    }
    preview {}
}

/// A [`CommandOutput`] handed over by the host; the plugin drops it after copying.
pub type CommandOutputBox = CommandOutputAbi_TO<'static, RBox<()>>;

impl CommandOutputAbi for CommandOutput {
    fn status(&self) -> i32 {
        self.status
    }
    fn stdout(&self) -> RSlice<'_, u8> {
        self.stdout.as_slice().into()
    }
    fn stderr(&self) -> RSlice<'_, u8> {
        self.stderr.as_slice().into()
    }
}

impl CommandOutput {
    /// Hands this output across the boundary (the host).
    pub fn into_abi(self) -> CommandOutputBox {
        CommandOutputAbi_TO::from_value(self, TD_Opaque)
    }

    /// Copies an output received across the boundary (the plugin).
    pub fn from_abi(output: &CommandOutputBox) -> Self {
        Self { status: output.status(), stdout: output.stdout().to_vec(), stderr: output.stderr().to_vec() }
    }
}

growable_abi! {
    /// [`ConfigEntry`] at the boundary. Methods appended in a minor version
    /// go after `value` and have a default body.
    pub trait ConfigEntryAbi {
        /// [`ConfigEntry::key`].
        fn key(&self) -> RStr<'_>;
        /// [`ConfigEntry::value`].
        #[sabi(last_prefix_field)]
        fn value(&self) -> RStr<'_>;
    }
    preview {}
}

/// A [`ConfigEntry`] lent across the boundary for one [`HostApi::config`](crate::HostApi::config).
pub type ConfigEntryRef<'a> = ConfigEntryAbi_TO<'a, RRef<'a, ()>>;

impl ConfigEntryAbi for ConfigEntry {
    fn key(&self) -> RStr<'_> {
        rstr(&self.key)
    }
    fn value(&self) -> RStr<'_> {
        rstr(&self.value)
    }
}

impl ConfigEntry {
    /// Copies an entry received across the boundary (the host).
    pub fn from_abi(entry: &ConfigEntryRef<'_>) -> Self {
        Self { key: owned(entry.key()), value: owned(entry.value()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{FileKind, LogLevel};

    #[test]
    fn context_round_trips() {
        let mut ctx =
            HookContext { distro: "d".into(), name: "c1".into(), hostname: "c1".into(), ..Default::default() };
        ctx.options = vec![OptionValue { long: "package".into(), values: vec!["a".into(), "b".into()] }];
        ctx.facts.arch = "amd64".into();
        ctx.facts.mapped_uid = Some(65_536);
        ctx.create_id = 7;
        assert_eq!(HookContext::from_abi(&ctx.as_abi()), ctx);
    }

    #[test]
    fn manifest_round_trips() {
        let mut release = ReleaseInfo::new("bookworm", "12");
        release.aliases = vec!["stable".into()];
        release.lts = true;
        release.eol = "2028-06-30".into();
        let manifest = Manifest::new("d", "1.2.3", "a distro")
            .arches(&["amd64", "arm64"])
            .release(release)
            .default_release("the newest")
            .option(OptionSpec::value("mirror", "URL", "the mirror").short('m').env("MIRROR").default_value("x"))
            .option(OptionSpec::flag("quick", "go").repeatable().secret());
        assert_eq!(Manifest::from_abi(&manifest.clone().into_abi()), manifest);
    }

    #[test]
    fn command_and_entry_round_trip() {
        let command = CommandSpec::on_host(&["ls", "-l"]).env("A", "b").stdin(b"in").unchecked();
        let lent = CommandSpecAbi_TO::from_ptr(&command, TD_Opaque);
        assert_eq!(CommandSpec::from_abi(&lent), Some(command.clone()));
        let entry = ConfigEntry::new("lxc.uts.name", "c1");
        assert_eq!(ConfigEntry::from_abi(&ConfigEntryAbi_TO::from_ptr(&entry, TD_Opaque)), entry);
        let output = CommandOutput::new(3, b"out".to_vec(), b"err".to_vec());
        assert_eq!(CommandOutput::from_abi(&output.clone().into_abi()), output);
    }

    #[test]
    fn enums_round_trip() {
        for kind in [FileKind::File, FileKind::Dir, FileKind::Symlink, FileKind::Other] {
            assert_eq!(FileKind::from_abi(&kind.to_abi()), kind);
        }
        for level in [LogLevel::Debug, LogLevel::Info, LogLevel::Warn] {
            assert_eq!(LogLevel::from_abi(&crate::LogLevel_NE::new(level)), level);
        }
    }
}
