//! Creating a container: the hooks of a plugin, run in order against the
//! right root, between claiming the container directory and committing it.
//!
//! The hooks run in [`Hook::ORDER`] (the plugin API defines it); the host's
//! own steps go between them:
//!
//! ```text
//! validate, cache_key
//!   claim <lxcpath>/<name> (locked partial file)
//! download (into the cache staging dir, or straight into the rootfs)
//!   copy the cached rootfs
//! Hook::ON_ROOTFS (sources_list ... finalize)
//!   shift ids (idmapped), check init, write config, LXC reload check
//! message
//!   give the directory to the container's root (idmapped), commit
//! ```
//!
//! Any failure drops the claim, which removes everything the create made. So
//! does a signal (SIGINT, SIGTERM, SIGHUP; see [`crate::interrupt`]): it kills
//! the running command, the step fails, and [`CreateError::Interrupted`] says
//! which step was cut short. Before it says ready, a create checks that the
//! container can boot: the init its config names exists in the rootfs.

use std::path::{Path, PathBuf};

use abi_stable::{sabi_trait::TD_Opaque, std_types::RResult};
use lxc_tmpl_plugin_api::{
    ConfigEntry, Hook, HookContext, HostApi_TO, HostApiMut, LogLevel, PluginError, abi::HookContextRef,
};
use thiserror::Error;

pub use crate::request::CreateRequest;

use crate::{
    backing::{
        Backing,
        btrfs::{self, BtrfsError},
        copy::{CopyError, CopyOptions, copy_tree_reporting},
        overlay::{MountedOverlay, OverlayError, OverlayLayout},
    },
    cache::{CacheEntry, CacheError, ReadyCache, unpack_rootfs},
    container::{ContainerDir, ContainerError, write_config},
    idmap::{IdMap, IdMapError},
    interrupt::{self, Interrupted},
    lxcconf::{BaseConfig, ConfigDocument, LxcConfError, random_hwaddr},
    plugin::{LoadedPlugin, bridge::Bridge, scratch::Scratch},
    report::Reporter,
    rootfs::{Rootfs, RootfsError},
    runner::{HostCommand, Runner},
};

/// Why a create failed.
#[derive(Debug, Error)]
pub enum CreateError {
    /// A hook returned an error or panicked.
    #[error("{distro}: {}", error.message)]
    Hook {
        /// The distro.
        distro: String,
        /// The hook.
        hook: &'static str,
        /// What the plugin (or the host on its behalf) said.
        error: PluginError,
    },
    /// The container directory could not be claimed.
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// The cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The config could not be built.
    #[error(transparent)]
    Config(#[from] LxcConfError),
    /// The rootfs could not be opened.
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    /// The rootfs could not be shifted into the container's id ranges.
    #[error(transparent)]
    IdMap(#[from] IdMapError),
    /// Writing the config failed.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A signal interrupted the create; everything it made has been removed.
    #[error("{signal} during {step}: the create was rolled back")]
    Interrupted {
        /// The signal.
        signal: Interrupted,
        /// The step that was running.
        step: &'static str,
    },
    /// The container's init is missing from the rootfs, so `lxc-start` would fail.
    #[error(
        "the container cannot boot: its init {init} is missing from {rootfs} or not executable; \
         the {distro} plugin made a rootfs without one (choose another variant, or set lxc.init.cmd)"
    )]
    NoInit {
        /// The init command's path (`lxc.init.cmd`, or `/sbin/init`).
        init: String,
        /// The rootfs.
        rootfs: PathBuf,
        /// The distro.
        distro: String,
    },
    /// The backing store asked for cannot hold this container.
    #[error("--backing {backing} cannot be used here: {why}")]
    BackingUnusable {
        /// The backing store.
        backing: Backing,
        /// Why not, and what to use instead.
        why: String,
    },
    /// The overlay rootfs could not be set up.
    #[error(transparent)]
    Overlay(#[from] OverlayError),
    /// The btrfs snapshot could not be made.
    #[error(transparent)]
    Btrfs(#[from] BtrfsError),
    /// Copying the cached rootfs failed.
    #[error("cannot copy the cached rootfs")]
    Copy(#[source] CopyError),
    /// LXC refused the config that was written.
    #[error("LXC {version} cannot load the generated config {path}: {detail}")]
    ConfigRejected {
        /// The config file.
        path: PathBuf,
        /// Installed LXC version.
        version: String,
        /// What lxc-info said.
        detail: String,
    },
}

/// What a successful create (or dry run) produced.
#[derive(Debug)]
pub struct CreateOutcome {
    /// The container config text.
    pub config: String,
    /// Where it was (or would be) written.
    pub config_path: PathBuf,
    /// The plugin's closing message.
    pub message: Option<String>,
    /// The cache entry used, if any.
    pub cache: Option<CacheUse>,
    /// How the rootfs was made: `dir`, `overlay` or `btrfs` (`auto` only in a
    /// dry run, which makes nothing).
    pub backing: Backing,
}

/// What [`Creator::fill_rootfs`] made besides the rootfs.
#[derive(Debug)]
pub struct Filled {
    /// The plugin's config entries for the request's facts.
    pub entries: Vec<ConfigEntry>,
    /// The config entries it gives for an unprivileged container.
    pub user_entries: Vec<ConfigEntry>,
    /// The plugin's closing message.
    pub message: Option<String>,
    /// The cache entry used, if any.
    pub cache: Option<CacheUse>,
}

/// What [`Creator::populate`] made: the rootfs, filled by the hooks.
struct Populated {
    /// The plugin's config entries.
    entries: Vec<ConfigEntry>,
    /// The cache entry used, if any.
    cache: Option<CacheUse>,
    /// The backing store used.
    backing: Backing,
    /// The `lxc.rootfs.path` value for it.
    rootfs_value: String,
    /// The overlay mounted on the rootfs for the rest of the create.
    mount: Option<MountedOverlay>,
}

/// The cache entry a create used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheUse {
    /// The entry's directory.
    pub dir: PathBuf,
    /// Whether this create built it (false: it was already there).
    pub built: bool,
    /// The plugin's cache key, which names what the entry holds
    /// (`... release=bookworm arch=amd64 ...` for the Debian family).
    pub key: String,
}

impl CacheUse {
    /// The value of `NAME=` in the key (`... release=bookworm arch=amd64 ...`).
    pub fn key_field(&self, name: &str) -> Option<&str> {
        self.key.split_whitespace().find_map(|field| field.strip_prefix(name)?.strip_prefix('='))
    }
}

/// The release and the dpkg architecture a create or image build made, as
/// far as the host can tell: the plugin resolves both (a default release, a
/// codename for `stable`), and the Debian family's cache key names them;
/// otherwise the `--release` and `--arch` options as given, and the host's
/// architecture. `create --format json` and Incus images report these.
pub fn release_and_arch<'a>(req: &'a CreateRequest, cache: Option<&'a CacheUse>) -> (Option<&'a str>, &'a str) {
    let option = |long: &str| {
        req.spec.options.iter().find(|o| o.long == long).and_then(|o| o.values.first()).map(String::as_str)
    };
    let release = cache.and_then(|c| c.key_field("release")).or_else(|| option("release"));
    let arch = cache.and_then(|c| c.key_field("arch")).or_else(|| option("arch")).unwrap_or(req.facts.arch.as_str());
    (release, arch)
}

/// The plugin's function for a hook that returns nothing ([`Hook::returns_unit`]).
fn unit_hook(
    module: &lxc_tmpl_plugin_api::PluginModule_Ref,
    hook: Hook,
) -> extern "C" fn(HookContextRef<'_>, HostApiMut<'_>) -> RResult<(), PluginError> {
    match hook {
        Hook::Validate => module.validate(),
        Hook::Download => module.download(),
        Hook::SourcesList => module.sources_list(),
        Hook::Configure => module.configure(),
        Hook::Config => module.config(),
        Hook::Trim => module.trim(),
        Hook::PostProcess => module.post_process(),
        Hook::Finalize => module.finalize(),
        other => unreachable!("hook {other} returns a value"),
    }
}

/// Whether commands a hook runs in the rootfs get the host's resolv.conf:
/// the hooks that download packages.
fn needs_dns(hook: Hook) -> bool {
    matches!(hook, Hook::Download | Hook::PostProcess)
}

/// One create, with the plugin and the services it uses.
pub struct Creator<'a> {
    /// The plugin.
    pub plugin: &'a LoadedPlugin,
    /// The namespaced runner.
    pub runner: &'a Runner,
    /// Progress and logs.
    pub reporter: &'a dyn Reporter,
    /// The step running now, for the message of an interrupted create.
    step: std::cell::Cell<&'static str>,
    /// Host scratch dirs the hooks asked for; removed when the create ends.
    scratch: Scratch,
}

impl std::fmt::Debug for Creator<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Creator").field("plugin", &self.plugin).finish()
    }
}

impl<'a> Creator<'a> {
    /// A creator for `plugin`.
    pub fn new(plugin: &'a LoadedPlugin, runner: &'a Runner, reporter: &'a dyn Reporter) -> Creator<'a> {
        let step = std::cell::Cell::new(Hook::Validate.name());
        Creator { plugin, runner, reporter, step, scratch: Scratch::new() }
    }

    /// Starts step `name`: says so, and stops here if a signal has arrived.
    fn step(&self, name: &'static str) -> Result<(), CreateError> {
        self.step.set(name);
        self.reporter.step(name);
        interrupt::check().map_err(|signal| CreateError::Interrupted { signal, step: name })
    }

    /// `err`, or [`CreateError::Interrupted`] when a signal is why the step failed (the
    /// command it ran was killed).
    fn interrupted_or(&self, err: CreateError) -> CreateError {
        match interrupt::interrupted() {
            Some(signal) if !matches!(err, CreateError::Interrupted { .. }) => {
                CreateError::Interrupted { signal, step: self.step.get() }
            }
            _ => err,
        }
    }

    fn distro(&self) -> &str {
        &self.plugin.manifest.name
    }

    fn context(&self, req: &CreateRequest, rootfs: &Path) -> HookContext {
        let mut ctx = HookContext::default();
        ctx.distro = self.plugin.manifest.name.clone();
        ctx.name = req.spec.name.as_str().into();
        ctx.hostname = req.spec.hostname.as_str().into();
        ctx.container_path = req.spec.container_dir.display().to_string();
        ctx.rootfs_path = rootfs.display().to_string();
        ctx.options = req.spec.options.clone();
        ctx.facts = req.facts.clone();
        // Called once per create (and dry run): every hook gets this one context.
        ctx.create_id = lxc_tmpl_plugin_api::new_create_id();
        #[cfg(lxc_tmpl_api_preview)]
        {
            ctx.preview = "preview".into();
        }
        ctx
    }

    fn bridge<'b>(&'b self, req: &'b CreateRequest, root: Option<Rootfs>, bind_resolv_conf: bool) -> Bridge<'b> {
        Bridge {
            root,
            runner: self.runner,
            hostname: lxc_tmpl_plugin_api::short_hostname(&req.spec.hostname),
            bind_resolv_conf,
            base: &req.spec.base,
            entries: Vec::new(),
            reporter: self.reporter,
            scratch: &self.scratch,
            cache_dir: &req.spec.cache_dir,
            distro: self.distro(),
            package_dirs: Vec::new(),
        }
    }

    /// Calls hook `name` with `bridge` as its host.
    fn call<T>(
        &self,
        name: &'static str,
        ctx: &HookContext,
        bridge: &mut Bridge<'_>,
        hook: extern "C" fn(HookContextRef<'_>, HostApiMut<'_>) -> RResult<T, PluginError>,
    ) -> Result<T, CreateError> {
        self.reporter.log(LogLevel::Debug, &format!("hook {name}"));
        interrupt::check().map_err(|signal| CreateError::Interrupted { signal, step: self.step.get() })?;
        let api: HostApiMut<'_> = HostApi_TO::from_ptr(bridge, TD_Opaque);
        hook(ctx.as_abi(), api).into_result().map_err(|error| CreateError::Hook {
            distro: self.distro().to_owned(),
            hook: name,
            error,
        })
    }

    /// Calls one of the hooks that return nothing.
    fn call_unit(&self, hook: Hook, ctx: &HookContext, bridge: &mut Bridge<'_>) -> Result<(), CreateError> {
        self.call(hook.name(), ctx, bridge, unit_hook(&self.plugin.module, hook))
    }

    fn cache_key(&self, req: &CreateRequest, ctx: &HookContext) -> Result<Option<String>, CreateError> {
        let mut bridge = self.bridge(req, None, false);
        let key = self.call(Hook::CacheKey.name(), ctx, &mut bridge, self.plugin.module.cache_key())?;
        Ok(key.into_option().map(|k| k.into_string()))
    }

    /// The config text: with lxc-create's header when `header`, and with
    /// `rootfs` as `lxc.rootfs.path` (`dir:<path>`, or the value lxc-create
    /// wrote, which may name another storage backend).
    fn render_config(
        &self,
        req: &CreateRequest,
        rootfs: String,
        entries: &[ConfigEntry],
        header: bool,
    ) -> Result<String, CreateError> {
        let manifest = &self.plugin.manifest;
        let mut base = req.spec.base.clone();
        if let Ok(mac) = random_hwaddr() {
            base.add_hwaddr_if_single_veth(&mac);
        }
        let template = format!("lxc-tmpl {} {} ({})", manifest.name, manifest.version, self.plugin.file.display());
        Ok(ConfigDocument {
            template: header.then_some(template),
            parameters: req.spec.parameters.clone(),
            base: &base,
            rootfs,
            entries,
            dialect: &req.dialect,
        }
        .render()?)
    }

    /// Builds the rootfs (from the cache, with the backing store asked for,
    /// or in place) and runs the hooks that act on it.
    fn populate(
        &self,
        req: &CreateRequest,
        ctx: &HookContext,
        key: Option<String>,
        rootfs: &Path,
    ) -> Result<Populated, CreateError> {
        let (cache, backing, mount) = match key {
            Some(key) => {
                let (cache, backing, mount) = self.download_via_cache(req, ctx, &key, rootfs)?;
                (Some(cache), backing, mount)
            }
            None => {
                self.step(Hook::Download.name())?;
                let mut bridge = self.bridge(req, Some(Rootfs::open(rootfs)?), needs_dns(Hook::Download));
                self.call_unit(Hook::Download, ctx, &mut bridge)?;
                (None, Backing::Dir, None)
            }
        };
        let rootfs_value = match (&mount, backing) {
            (Some(mount), _) => OverlayLayout::of(&req.spec.container_dir).rootfs_value(mount.lower())?,
            (None, Backing::Btrfs) => format!("btrfs:{}", rootfs.display()),
            (None, _) => dir_rootfs(rootfs),
        };
        let mut entries = Vec::new();
        for hook in Hook::ON_ROOTFS {
            self.step(hook.name())?;
            let mut bridge = self.bridge(req, Some(Rootfs::open(rootfs)?), needs_dns(hook));
            self.call_unit(hook, ctx, &mut bridge)?;
            entries.append(&mut bridge.entries);
        }
        #[cfg(lxc_tmpl_api_preview)]
        self.preview(req, ctx, rootfs)?;
        Ok(Populated { entries, cache, backing, rootfs_value, mount })
    }

    /// Refuses, before anything is made, a backing store that cannot hold
    /// this container: overlay or btrfs without a cache to build on, or for
    /// a rootfs of the user's choosing; overlay for an unprivileged
    /// container, whose root could not own the cache's files.
    fn check_backing(&self, req: &CreateRequest, cached: bool) -> Result<(), CreateError> {
        let backing = req.spec.backing;
        let unusable = |why: String| Err(CreateError::BackingUnusable { backing, why });
        if !matches!(backing, Backing::Overlay | Backing::Btrfs) {
            return Ok(());
        }
        if !cached {
            return unusable(format!(
                "{} keeps no rootfs cache to build on with these options; use --backing dir",
                self.distro()
            ));
        }
        if req.spec.rootfs.is_some() {
            return unusable("the rootfs is a directory of your choosing (--rootfs); use --backing dir".into());
        }
        if backing == Backing::Overlay && req.facts.is_unprivileged() {
            return unusable(
                "an unprivileged (idmapped) container cannot use the cache, owned by host root, as its lower \
                 layer; use --backing dir, or btrfs"
                    .into(),
            );
        }
        Ok(())
    }

    /// The hook a preview (1.1) host has and a 1.0 plugin lacks: how every
    /// hook a later minor version appends is called, with the default for
    /// plugins built before it existed.
    #[cfg(lxc_tmpl_api_preview)]
    fn preview(&self, req: &CreateRequest, ctx: &HookContext, rootfs: &Path) -> Result<(), CreateError> {
        let api = &self.plugin.api_version;
        // Fields appended to what the plugin sends read as absent from a plugin built before them.
        let manifest = &self.plugin.manifest;
        let with_field = manifest.options.iter().filter(|o| o.preview.is_some()).count();
        self.reporter.log(
            LogLevel::Info,
            &format!(
                "appended fields from the plugin (API {api}): Manifest.preview {}, OptionSpec.preview on {with_field} of {} options",
                if manifest.preview.is_some() { "present" } else { "absent" },
                manifest.options.len()
            ),
        );
        match self.plugin.module.preview() {
            Some(hook) => {
                let mut bridge = self.bridge(req, Some(Rootfs::open(rootfs)?), false);
                self.call("preview", ctx, &mut bridge, hook)
            }
            None => {
                self.reporter.log(
                    LogLevel::Info,
                    &format!("hook preview: the plugin (API {api}) predates it; using the default"),
                );
                Ok(())
            }
        }
    }

    fn message(&self, req: &CreateRequest, ctx: &HookContext, rootfs: &Path) -> Result<Option<String>, CreateError> {
        let mut bridge = self.bridge(req, Some(Rootfs::open(rootfs)?), false);
        let message = self.call(Hook::Message.name(), ctx, &mut bridge, self.plugin.module.message())?;
        Ok(message.into_option().map(|m| m.into_string()))
    }

    /// Runs validate, cache_key and config without touching the disk and
    /// returns the config the create would write.
    pub fn dry_run(&self, req: &CreateRequest) -> Result<CreateOutcome, CreateError> {
        let rootfs = req.spec.rootfs.clone().unwrap_or_else(|| req.spec.container_dir.join("rootfs"));
        let ctx = self.context(req, &rootfs);
        let mut bridge = self.bridge(req, None, false);
        self.call_unit(Hook::Validate, &ctx, &mut bridge)?;
        let key = self.cache_key(req, &ctx)?;
        let mut bridge = self.bridge(req, None, false);
        self.call_unit(Hook::Config, &ctx, &mut bridge)?;
        let config = self.render_config(req, dir_rootfs(&rootfs), &bridge.entries, true)?;
        Ok(CreateOutcome {
            config,
            config_path: req.spec.container_dir.join("config"),
            message: None,
            cache: key.map(|k| CacheUse {
                dir: CacheEntry::new(&req.spec.cache_dir, self.distro(), &k).dir().to_owned(),
                built: false,
                key: k,
            }),
            backing: req.spec.backing,
        })
    }

    /// Creates the container.
    ///
    /// # Errors
    /// [`CreateError`]; whatever the create made is removed first (unless
    /// `keep_on_failure`).
    pub fn create(&self, req: &CreateRequest) -> Result<CreateOutcome, CreateError> {
        self.end_scratch(self.create_claimed(req).map_err(|e| self.interrupted_or(e)))
    }

    /// Removes the scratch dirs of the create that ended with `result` (a
    /// signal ends it with an error too; a panic drops them with `self`).
    fn end_scratch<T>(&self, result: T) -> T {
        if let Err(e) = self.scratch.end() {
            self.reporter.log(LogLevel::Warn, &format!("cannot remove the scratch directory {e}"));
        }
        result
    }

    fn create_claimed(&self, req: &CreateRequest) -> Result<CreateOutcome, CreateError> {
        let planned_rootfs = req.spec.rootfs.clone().unwrap_or_else(|| req.spec.container_dir.join("rootfs"));
        let ctx = self.context(req, &planned_rootfs);
        self.step(Hook::Validate.name())?;
        self.call_unit(Hook::Validate, &ctx, &mut self.bridge(req, None, false))?;
        let key = self.cache_key(req, &ctx)?;
        self.check_backing(req, key.is_some())?;

        let mut claim = ContainerDir::claim(&req.spec.name, &req.spec.container_dir, req.spec.rootfs.as_deref())?;
        if let Some(recovered) = claim.recovered() {
            self.reporter.log(LogLevel::Warn, &recovered.to_string());
        }
        if req.spec.keep_on_failure {
            claim.keep_on_failure();
        }
        let Populated { entries, cache, backing, rootfs_value, mount } =
            self.populate(req, &ctx, key, claim.rootfs())?;
        // Built by real root; an unprivileged container owns it through its id map.
        let id_map = IdMap::from_config(&req.spec.base)?;
        if let Some(map) = &id_map {
            self.step("shift ids")?;
            map.shift_tree(claim.rootfs())?;
        }
        self.step("check init")?;
        check_init(claim.rootfs(), &entries, &req.spec.base, self.distro())?;
        let config = self.render_config(req, rootfs_value, &entries, true)?;
        let config_path = claim.config_path();
        write_config(&config_path, &config)
            .map_err(|source| CreateError::Write { path: config_path.clone(), source })?;
        if req.spec.check_config {
            self.step("check config")?;
            let check_lxcpath = claim.write_check_copy(&req.spec.name, &config)?;
            let checked = check_config_loads(self.runner, &config_path, &check_lxcpath, &req.spec.name);
            claim.remove_check_copy();
            checked?;
        }
        let message = self.message(req, &ctx, claim.rootfs())?;
        // The hooks are done with the merged tree; LXC mounts it anew at start.
        drop(mount);
        // As lxc-create: the container's root must reach its rootfs. Last, so
        // that nothing is written into the directory once it has changed hands.
        if let Some(map) = &id_map {
            map.give_to_container_root(claim.dir())?;
        }
        claim.commit()?;
        Ok(CreateOutcome { config, config_path, message, cache, backing })
    }

    /// Template mode: `lxc-create` made the container directory, its config
    /// (base config plus `lxc.rootfs.path`), an empty rootfs and the locked
    /// `partial` file, and runs us as its template. Fill the rootfs and
    /// rewrite the config with the distro's entries, keeping lxc-create's
    /// rootfs line; lxc-create adds the header, reloads the config and
    /// destroys the container if we fail.
    ///
    /// # Errors
    /// [`CreateError`]; lxc-create then destroys the container.
    pub fn fill_template(&self, req: &CreateRequest) -> Result<CreateOutcome, CreateError> {
        self.end_scratch(self.fill_template_inner(req).map_err(|e| self.interrupted_or(e)))
    }

    fn fill_template_inner(&self, req: &CreateRequest) -> Result<CreateOutcome, CreateError> {
        let rootfs = req.spec.rootfs.clone().unwrap_or_else(|| req.spec.container_dir.join("rootfs"));
        // As in a create, an overlay stays mounted until the hooks are done (the end of this call).
        let (ctx, Populated { entries, cache, backing, mount: _mount, .. }) = self.fill_and_check(req, &rootfs)?;
        let rootfs_value = req
            .spec
            .base
            .value("lxc.rootfs.path")
            .or_else(|| req.spec.base.value("lxc.rootfs"))
            .map(str::to_owned)
            .unwrap_or_else(|| dir_rootfs(&rootfs));
        let config = self.render_config(req, rootfs_value, &entries, false)?;
        let config_path = req.spec.container_dir.join("config");
        write_config(&config_path, &config)
            .map_err(|source| CreateError::Write { path: config_path.clone(), source })?;
        let message = self.message(req, &ctx, &rootfs)?;
        Ok(CreateOutcome { config, config_path, message, cache, backing })
    }

    /// Fills the empty directory `rootfs` as a create would (validate,
    /// cache_key, the cache or download, every hook on the rootfs, the init
    /// check), but writes no LXC container: no container directory, no
    /// config file. The seam an image build ([`crate::image`]) uses, so that
    /// images run exactly the hooks containers do.
    ///
    /// The rootfs is always a copy (`dir`), whatever `req` asks: an image
    /// must not hold the cache as a lower layer. Besides the entries the
    /// config hook gave for `req`'s facts, the config hook is called once
    /// more with the facts of an unprivileged container (mapped uid and gid
    /// 0), for the image's `config-user`.
    ///
    /// # Errors
    /// [`CreateError`]; the caller removes `rootfs` (the scratch dirs the
    /// hooks asked for are removed here).
    pub fn fill_rootfs(&self, req: &CreateRequest, rootfs: &Path) -> Result<Filled, CreateError> {
        self.end_scratch(self.fill_rootfs_inner(req, rootfs).map_err(|e| self.interrupted_or(e)))
    }

    fn fill_rootfs_inner(&self, req: &CreateRequest, rootfs: &Path) -> Result<Filled, CreateError> {
        let (ctx, Populated { entries, cache, .. }) = self.fill_and_check(req, rootfs)?;
        let mut user_ctx = ctx.clone();
        user_ctx.facts.mapped_uid = Some(0);
        user_ctx.facts.mapped_gid = Some(0);
        let mut bridge = self.bridge(req, None, false);
        self.call_unit(Hook::Config, &user_ctx, &mut bridge)?;
        let user_entries = std::mem::take(&mut bridge.entries);
        let message = self.message(req, &ctx, rootfs)?;
        Ok(Filled { entries, user_entries, message, cache })
    }

    /// The part of a create that template mode and image builds share:
    /// validate, cache_key, the cache or download and every rootfs hook into
    /// `rootfs`, then the init check. Returns the hooks' context and what
    /// they made (with the overlay, if any, still mounted).
    fn fill_and_check(&self, req: &CreateRequest, rootfs: &Path) -> Result<(HookContext, Populated), CreateError> {
        let ctx = self.context(req, rootfs);
        self.step(Hook::Validate.name())?;
        self.call_unit(Hook::Validate, &ctx, &mut self.bridge(req, None, false))?;
        let key = self.cache_key(req, &ctx)?;
        let populated = self.populate(req, &ctx, key, rootfs)?;
        self.step("check init")?;
        check_init(rootfs, &populated.entries, &req.spec.base, self.distro())?;
        Ok((ctx, populated))
    }

    fn download_via_cache(
        &self,
        req: &CreateRequest,
        ctx: &HookContext,
        key: &str,
        rootfs: &Path,
    ) -> Result<(CacheUse, Backing, Option<MountedOverlay>), CreateError> {
        let entry = CacheEntry::new(&req.spec.cache_dir, self.distro(), key);
        let reporter = self.reporter;
        // Inside an unprivileged lxc-create's user namespace nothing can be
        // bootstrapped: use the entry root built, or say how to build it.
        let in_user_namespace = req.facts.in_user_namespace;
        let ready = entry.ensure(
            self.runner,
            req.spec.flush_cache,
            !in_user_namespace,
            |holder| {
                reporter.log(LogLevel::Warn, &format!("waiting for the {} cache: {holder} holds it", entry.label()))
            },
            |staging| -> Result<(), CreateError> {
                self.step(Hook::Download.name())?;
                let mut bridge = self.bridge(req, Some(Rootfs::open(staging)?), needs_dns(Hook::Download));
                self.call_unit(Hook::Download, ctx, &mut bridge)
            },
        )?;
        if !ready.built {
            reporter.log(LogLevel::Info, &format!("using cached rootfs {}", ready.rootfs.display()));
        }
        self.step("copy rootfs")?;
        let used = if in_user_namespace {
            unpack_rootfs(self.runner, &ready, rootfs)?;
            (Backing::Dir, None)
        } else {
            // An unprivileged lxc-create will need the tar of this generation, and cannot make it.
            if req.facts.is_unprivileged() && ready.ensure_tar(self.runner)? {
                reporter.log(
                    LogLevel::Info,
                    &format!("packed {} for unprivileged lxc-create", ready.generation().join("rootfs.tar").display()),
                );
            }
            self.make_rootfs(req, &ready, rootfs)?
        };
        Ok((CacheUse { dir: entry.dir().to_owned(), built: ready.built, key: key.to_owned() }, used.0, used.1))
    }

    /// Makes the container's rootfs from a ready cache entry with the
    /// backing store asked for; `auto` tries btrfs, then overlay, then dir,
    /// and the create says which it used and why.
    fn make_rootfs(
        &self,
        req: &CreateRequest,
        ready: &ReadyCache,
        rootfs: &Path,
    ) -> Result<(Backing, Option<MountedOverlay>), CreateError> {
        let say = |backing: Backing, how: String| {
            self.reporter.log(LogLevel::Info, &format!("rootfs: {backing}, {how}"));
        };
        let auto = req.spec.backing == Backing::Auto;
        let lxcpath = &req.spec.lxcpath;
        let own_rootfs = req.spec.rootfs.is_none();
        if req.spec.backing == Backing::Btrfs
            || (auto && own_rootfs && btrfs::is_subvolume(&ready.rootfs) && btrfs::is_btrfs(lxcpath))
        {
            if !btrfs::is_subvolume(&ready.rootfs) {
                return Err(CreateError::BackingUnusable {
                    backing: Backing::Btrfs,
                    why: format!(
                        "the cached rootfs {} is not a btrfs subvolume (the cache dir is not on btrfs, or the entry \
                         was built before); put the cache dir on the lxcpath's btrfs filesystem and rebuild with \
                         --flush-cache, or use --backing dir",
                        ready.rootfs.display()
                    ),
                });
            }
            match btrfs::snapshot(self.runner, &ready.rootfs, rootfs) {
                Ok(()) => {
                    say(Backing::Btrfs, format!("a snapshot of {}", ready.rootfs.display()));
                    return Ok((Backing::Btrfs, None));
                }
                Err(e) if auto => self.reporter.log(LogLevel::Debug, &format!("auto: no btrfs snapshot: {e}")),
                Err(e) => return Err(e.into()),
            }
        }
        let privileged = !req.facts.is_unprivileged();
        if req.spec.backing == Backing::Overlay || (auto && own_rootfs && privileged) {
            // Recorded first: from here on the generation must outlive this container.
            ready.add_user(&req.spec.container_dir)?;
            match MountedOverlay::mount(&crate::sys::LinuxSyscall, &ready.rootfs, &req.spec.container_dir, rootfs) {
                Ok(mount) => {
                    say(Backing::Overlay, format!("over the cached {}", ready.rootfs.display()));
                    return Ok((Backing::Overlay, Some(mount)));
                }
                Err(e) if auto => self.reporter.log(LogLevel::Debug, &format!("auto: no overlay: {e}")),
                Err(e) => return Err(e.into()),
            }
        }
        // The copy runs in this process, which holds the entry's shared lock until it is done.
        let mut progress = |bytes| self.reporter.bytes_copied(bytes);
        let stats = copy_tree_reporting(&ready.rootfs, rootfs, &CopyOptions::default(), &mut progress).map_err(
            |e| match e {
                CopyError::Interrupted(signal) => CreateError::Interrupted { signal, step: self.step.get() },
                other => CreateError::Copy(other),
            },
        )?;
        let why = if auto { "; btrfs and overlay are not available here" } else { "" };
        say(
            Backing::Dir,
            format!(
                "a copy of {} ({} files reflinked, {} copied{why})",
                ready.rootfs.display(),
                stats.reflinked,
                stats.copied
            ),
        );
        Ok((Backing::Dir, None))
    }
}

/// Fails unless the init the container will run exists and is executable:
/// `lxc.init.cmd` (or the legacy `lxc.init_cmd`) from the plugin's entries or
/// the base config, else `/sbin/init`, LXC's default (lxc.container.conf(5)).
/// It is looked up in the rootfs, or on the host when a bind `lxc.mount.entry`
/// covers it (sshd's `/usr/sbin/init.lxc` comes from the host's `/usr`).
fn check_init(rootfs: &Path, entries: &[ConfigEntry], base: &BaseConfig, distro: &str) -> Result<(), CreateError> {
    let entry_values = |key: &str| -> Vec<String> {
        entries.iter().filter(|e| e.key.as_str() == key).map(|e| e.value.to_string()).collect()
    };
    let configured = entry_values("lxc.init.cmd")
        .into_iter()
        .chain(entry_values("lxc.init_cmd"))
        .next_back()
        .or_else(|| base.value("lxc.init.cmd").or_else(|| base.value("lxc.init_cmd")).map(str::to_owned));
    let init = configured.as_deref().and_then(|cmd| cmd.split_whitespace().next()).unwrap_or("/sbin/init").to_owned();
    let mounts: Vec<String> =
        base.values("lxc.mount.entry").into_iter().map(str::to_owned).chain(entry_values("lxc.mount.entry")).collect();
    let found = match host_path_of(&init, &mounts) {
        Some(host) => std::fs::metadata(&host)
            .is_ok_and(|m| m.is_file() && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0),
        None => Rootfs::open(rootfs)?.is_executable(&init)?,
    };
    if found { Ok(()) } else { Err(CreateError::NoInit { init, rootfs: rootfs.to_owned(), distro: distro.to_owned() }) }
}

/// Where `path` (absolute, inside the container) comes from when a bind mount
/// entry (`SRC DST none bind... 0 0`, DST relative to the rootfs) covers it:
/// `SRC` plus the rest of the path, for the longest such DST.
fn host_path_of(path: &str, mount_entries: &[String]) -> Option<PathBuf> {
    let inside = path.trim_start_matches('/');
    mount_entries
        .iter()
        .filter_map(|entry| {
            let fields: Vec<&str> = entry.split_whitespace().collect();
            let (source, target, options) = (fields.first()?, fields.get(1)?, fields.get(3)?);
            if !options.split(',').any(|o| o == "bind" || o == "rbind") || !source.starts_with('/') {
                return None;
            }
            let target = target.trim_start_matches('/').trim_end_matches('/');
            let rest = inside.strip_prefix(target)?;
            (rest.is_empty() || rest.starts_with('/'))
                .then(|| (target.len(), Path::new(source).join(rest.trim_start_matches('/'))))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, host)| host)
}

/// `lxc.rootfs.path` for a directory rootfs.
fn dir_rootfs(rootfs: &Path) -> String {
    format!("dir:{}", rootfs.display())
}

/// Asks the installed LXC to load the container's config, as lxc-create
/// reloads it after running a template: a key LXC rejects means the
/// container could not be started or managed.
///
/// LXC refuses to open a container whose `partial` file is locked, and the
/// claim keeps it locked until the create commits (so that a create killed
/// now is still recognised as unfinished). So LXC loads a copy of the config,
/// as container `name` of a scratch lxcpath `check_lxcpath` inside the
/// container directory ([`ContainerDir::write_check_copy`]); `lxc-info` runs
/// through the runner, so it dies with lxc-tmpl.
fn check_config_loads(
    runner: &Runner,
    config_path: &Path,
    check_lxcpath: &Path,
    name: &str,
) -> Result<(), CreateError> {
    let rejected = |detail: String| CreateError::ConfigRejected {
        path: config_path.to_owned(),
        version: crate::facts::installed_lxc_version().map(|v| v.to_string()).unwrap_or_else(|| "?".into()),
        detail,
    };
    let argv =
        ["lxc-info", "-P", &check_lxcpath.display().to_string(), "-n", name, "-c", "lxc.uts.name"].map(str::to_owned);
    let output = runner.run_on_host(&HostCommand { argv: &argv, env: &[], stdin: b"", hold: None });
    match output {
        Ok(o) if o.status == 0 => Ok(()),
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stderr);
            let detail = text.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("lxc-info failed").trim();
            Err(rejected(detail.to_owned()))
        }
        Err(e) => Err(rejected(format!("cannot run lxc-info ({}); install lxc", crate::report::error_chain(&e)))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cache_keys_name_their_fields() {
        let cache = super::CacheUse {
            dir: "/c".into(),
            built: false,
            key: "v=2 release=bookworm arch=arm64 variant=minbase".to_owned(),
        };
        assert_eq!(cache.key_field("release"), Some("bookworm"));
        assert_eq!(cache.key_field("arch"), Some("arm64"));
        assert_eq!(cache.key_field("rel"), None, "a prefix of a name is not the name");
        assert_eq!(cache.key_field("mirror"), None);
    }

    #[test]
    fn init_under_a_bind_mount_is_looked_up_on_the_host() {
        let mounts = vec![
            "/usr usr none ro,bind,create=dir 0 0".to_owned(),
            "/opt/x usr/sbin none bind 0 0".to_owned(),
            "tmpfs run tmpfs rw 0 0".to_owned(),
        ];
        assert_eq!(super::host_path_of("/usr/lib/x", &mounts), Some("/usr/lib/x".into()));
        assert_eq!(super::host_path_of("/usr/sbin/init.lxc", &mounts), Some("/opt/x/init.lxc".into()));
        assert_eq!(super::host_path_of("/sbin/init", &mounts), None);
        assert_eq!(super::host_path_of("/run/init", &mounts), None, "not a bind mount");
        assert_eq!(super::host_path_of("/usrx/init", &mounts), None, "a prefix is not a parent directory");
    }
}
