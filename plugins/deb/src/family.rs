//! The hooks of a debootstrap-based plugin, written once.
//!
//! A plugin implements [`DebFamily`]: its manifest, how it resolves a
//! [`DebPlan`] (release table, mirrors, package lists) and the few steps
//! only it takes. [`debootstrap_plugin!`](crate::debootstrap_plugin) then
//! implements the plugin API's `Distro` for it with the functions of this
//! module and exports it, so that the ubuntu and debian plugins share every
//! hook's common part and never repeat it:
//!
//! | hook | shared part (this module) | distro part ([`DebFamily`]) |
//! |---|---|---|
//! | `validate` | refusal to bootstrap inside a user namespace, options, architecture support, debootstrap and its script, keyring, LXC's config, risky-choice warnings | [`check`](DebFamily::check) |
//! | `cache_key` | [`DebPlan::cache_key`], or none when the plan is not cached | |
//! | `download` | [`build_cached_rootfs`] (one or two stages) | |
//! | `sources_list` | write sources.list, `70proxy` | [`package_sources`](DebFamily::package_sources) |
//! | `configure` | [`configure_system`], [`container_gettys`] | [`configure_distro`](DebFamily::configure_distro) |
//! | `config` | [`emit_lxc_config`] (`lxc.uts.name` is the short host name) | [`config_entries`](DebFamily::config_entries) |
//! | `trim` | | [`trim_rootfs`](DebFamily::trim_rootfs) |
//! | `post_process` | multiarch and `--packages` | [`post_process_distro`](DebFamily::post_process_distro) |
//! | `finalize` | | [`finalize_access`](DebFamily::finalize_access) |
//! | `message` | [`attach_hint`] | [`ready_message`](DebFamily::ready_message) |

use std::sync::Arc;

use lxc_tmpl_plugin_api::{HookContext, Host, Manifest, PerCreate, PluginError};

use crate::{
    apt::{Apt, write_apt_proxy},
    arch::ArchSupport,
    debootstrap::{find_debootstrap, script_for},
    flow::{
        BuildSpec, SecondStage, SystemSpec, attach_hint, build_cached_rootfs, check_lxc_config, configure_system,
        emit_lxc_config, install_packages, warn_about_choices,
    },
    options::{PASSWORD, UserOptions},
    plan::DebPlan,
    sources::{SourcesPlan, render_sources_list, write_sources_list},
    systemd::{container_gettys, tty_count},
};

/// The container's first network interface.
pub const INTERFACE: &str = "eth0";

/// What a hook returns.
pub type HookResult<T> = Result<T, PluginError>;

/// A debootstrap-based distro: what differs between Ubuntu and Debian.
/// Every hook gets the plan resolved by [`plan`](Self::plan).
pub trait DebFamily: Send + Sync + 'static {
    /// One create, resolved; holds the shared [`DebPlan`].
    type Plan: AsRef<DebPlan> + Send + Sync;

    /// The plugin's manifest (`Distro::manifest`).
    fn describe(&self) -> Manifest;

    /// Resolves the options of `ctx`, reading release tables through `host`.
    /// Called once per create ([`planned`]): every hook gets that plan.
    fn plan(&self, ctx: &HookContext, host: &mut Host<'_>) -> HookResult<Self::Plan>;

    /// `validate`, after the shared checks: the distro's own checks and
    /// warnings (end of life, development release).
    fn check(&self, _plan: &Self::Plan, _ctx: &HookContext, _host: &mut Host<'_>) -> HookResult<()> {
        Ok(())
    }

    /// The sources.list of the container: each plan with its `[arch=]`
    /// restriction; by default the native form of [`DebPlan::sources`].
    fn package_sources(&self, plan: &Self::Plan) -> Vec<(SourcesPlan, Option<String>)> {
        vec![(plan.as_ref().sources(), None)]
    }

    /// `configure`, after hostname, hosts, network, locale, time zone, ssh
    /// host keys and the tty gettys.
    fn configure_distro(&self, _plan: &Self::Plan, _ctx: &HookContext, _host: &mut Host<'_>) -> HookResult<()> {
        Ok(())
    }

    /// `config`, after the includes, `lxc.uts.name` and `lxc.arch`.
    fn config_entries(&self, _plan: &Self::Plan, _ctx: &HookContext, _host: &mut Host<'_>) -> HookResult<()> {
        Ok(())
    }

    /// `trim`: what makes no sense in a container.
    fn trim_rootfs(&self, _plan: &Self::Plan, _ctx: &HookContext, _host: &mut Host<'_>) -> HookResult<()> {
        Ok(())
    }

    /// `post_process`, after multiarch and `--packages`.
    fn post_process_distro(&self, _plan: &Self::Plan, _ctx: &HookContext, _host: &mut Host<'_>) -> HookResult<()> {
        Ok(())
    }

    /// `finalize`: users, passwords, keys.
    fn finalize_access(&self, plan: &Self::Plan, ctx: &HookContext, host: &mut Host<'_>) -> HookResult<()>;

    /// `message`: the lines before the shared "Get in with" line.
    fn ready_message(&self, plan: &Self::Plan, ctx: &HookContext, host: &mut Host<'_>) -> HookResult<String>;
}

/// Where a [`debootstrap_plugin!`](crate::debootstrap_plugin) keeps its
/// plan for the create under way; the macro implements it.
pub trait PlanOnce: DebFamily {
    /// The plugin's per-create plan.
    fn plans(&self) -> &'static PerCreate<Self::Plan>;
}

/// The plan of the create of `ctx`: resolved by [`DebFamily::plan`] in the
/// first hook that asks (`validate`), and handed back to every later hook of
/// that create instead of being resolved again.
pub fn planned<F: PlanOnce>(family: &F, ctx: &HookContext, host: &mut Host<'_>) -> HookResult<Arc<F::Plan>> {
    family.plans().get_or_try_init(ctx, || family.plan(ctx, host))
}

/// `validate`: refuses to bootstrap inside a user namespace, resolves and checks every
/// option (users, architecture and its emulation, debootstrap and its
/// script, the keyring, LXC's config), logs what will be built and warns
/// about risky choices, then runs the distro's [`check`](DebFamily::check).
/// Runs nothing but host lookups.
pub fn validate<F: PlanOnce>(family: &F, ctx: &HookContext, host: &mut Host<'_>) -> HookResult<()> {
    let plan = &*planned(family, ctx, host)?;
    let deb = plan.as_ref();
    // Inside the user namespace of an unprivileged lxc-create nothing can be
    // bootstrapped: only a cache root built can be unpacked (the host says
    // so if it is missing). Outside one, mapped ids are fine: the rootfs is
    // built as root and the host shifts it into the container's range.
    if ctx.facts.in_user_namespace && !deb.cached {
        return Err(PluginError::unsupported(format!(
            "an unprivileged {0} container cannot be bootstrapped inside lxc-create's user namespace, and \
             this create does not use the cache: leave out --clean, or run `lxc-tmpl create --distro {0} -f \
             <config with lxc.idmap lines> ...` as root",
            ctx.distro
        )));
    }
    let users = UserOptions::from_context(ctx, host)?;
    let support = deb.arch_support(host)?;
    find_debootstrap(host)?;
    script_for(host, deb.suite(), deb.archive.fallback_script)?;
    let signature = deb.signature(host)?;
    check_lxc_config(host, deb.archive.lxc_config_name)?;
    host.info(&deb.describe());
    warn_about_choices(host, &signature, ctx.option(PASSWORD).is_some(), &users);
    if let ArchSupport::Emulated { interpreter, copy_from, .. } = &support {
        let how = if copy_from.is_some() { " (copied into the rootfs)" } else { "" };
        host.info(&format!("{} binaries will run through {interpreter}{how} (slow)", deb.arch()));
    }
    family.check(plan, ctx, host)
}

/// `cache_key`: [`DebPlan::cache_key`], `None` for a plan that is not cached.
pub fn cache_key<F: PlanOnce>(family: &F, ctx: &HookContext, host: &mut Host<'_>) -> HookResult<Option<String>> {
    let plan = &*planned(family, ctx, host)?;
    let deb = plan.as_ref();
    if deb.cached { deb.cache_key(host).map(Some) } else { Ok(None) }
}

/// `download`: [`build_cached_rootfs`] with the plan's debootstrap run, its
/// native sources, keyring and proxy, and the second stage when `-I` makes
/// the build two-staged.
pub fn download<F: PlanOnce>(family: &F, ctx: &HookContext, host: &mut Host<'_>) -> HookResult<()> {
    let plan = &*planned(family, ctx, host)?;
    let deb = plan.as_ref();
    let signature = deb.signature(host)?;
    let debootstrap = find_debootstrap(host)?;
    let second_stage = match deb.arch_support(host)? {
        ArchSupport::Emulated { interpreter, copy_from, .. } if deb.two_stage() => {
            Some(SecondStage { interpreter, copy_from })
        }
        _ => None,
    };
    let spec = BuildSpec {
        distro: deb.archive.distro,
        debootstrap: &debootstrap,
        plan: deb.debootstrap_plan(host, &signature)?,
        sources_list: render_sources_list(&[(&deb.sources(), None)]),
        install_keyring: deb.keyring_to_install(&signature),
        proxy: deb.boot.proxy.resolve(host)?,
        second_stage,
        locale: &deb.locale,
        locale_gen: deb.archive.locale_gen,
    };
    build_cached_rootfs(host, &spec)
}

/// `sources_list`: the distro's [`package_sources`](DebFamily::package_sources)
/// and, with a proxy, `70proxy`.
pub fn sources_list<F: PlanOnce>(family: &F, ctx: &HookContext, host: &mut Host<'_>) -> HookResult<()> {
    let plan = &*planned(family, ctx, host)?;
    let plans = family.package_sources(plan);
    let refs: Vec<(&SourcesPlan, Option<&str>)> = plans.iter().map(|(p, arch)| (p, arch.as_deref())).collect();
    write_sources_list(host, &render_sources_list(&refs))?;
    if let Some(proxy) = plan.as_ref().boot.proxy.resolve(host)? {
        write_apt_proxy(host, &proxy)?;
    }
    Ok(())
}

/// `configure`: [`configure_system`] on [`INTERFACE`] with the context's
/// host name, a getty on each tty LXC makes ([`container_gettys`]; Debian
/// and Ubuntu share `getty@.service` and its `/dev/tty0` condition), then
/// the distro's part.
pub fn configure<F: PlanOnce>(family: &F, ctx: &HookContext, host: &mut Host<'_>) -> HookResult<()> {
    let plan = &*planned(family, ctx, host)?;
    let deb = plan.as_ref();
    let spec =
        SystemSpec { hostname: &ctx.hostname, network: deb.archive.network, interface: INTERFACE, locale: &deb.locale };
    configure_system(host, &spec)?;
    let ttys = tty_count(host);
    container_gettys(host, ttys)?;
    family.configure_distro(plan, ctx, host)
}

/// `config`: [`emit_lxc_config`], then the distro's entries.
pub fn config<F: PlanOnce>(family: &F, ctx: &HookContext, host: &mut Host<'_>) -> HookResult<()> {
    let plan = &*planned(family, ctx, host)?;
    let deb = plan.as_ref();
    emit_lxc_config(host, ctx, deb.archive.lxc_config_name, deb.suite(), deb.arch())?;
    family.config_entries(plan, ctx, host)
}

/// `trim`: the distro's part only.
pub fn trim<F: PlanOnce>(family: &F, ctx: &HookContext, host: &mut Host<'_>) -> HookResult<()> {
    let plan = &*planned(family, ctx, host)?;
    family.trim_rootfs(plan, ctx, host)
}

/// `post_process`: multiarch for a foreign container of a distro that wants
/// it, `--packages`, then the distro's part.
pub fn post_process<F: PlanOnce>(family: &F, ctx: &HookContext, host: &mut Host<'_>) -> HookResult<()> {
    let plan = &*planned(family, ctx, host)?;
    let deb = plan.as_ref();
    let apt = Apt::new(deb.boot.proxy.resolve(host)?);
    let multiarch = (deb.archive.multiarch && deb.foreign()).then_some(deb.host_arch.as_str());
    install_packages(host, &apt, multiarch, &deb.boot.packages)?;
    family.post_process_distro(plan, ctx, host)
}

/// `finalize`: the distro's part only.
pub fn finalize<F: PlanOnce>(family: &F, ctx: &HookContext, host: &mut Host<'_>) -> HookResult<()> {
    let plan = &*planned(family, ctx, host)?;
    family.finalize_access(plan, ctx, host)
}

/// `message`: the distro's lines, then [`attach_hint`].
pub fn message<F: PlanOnce>(family: &F, ctx: &HookContext, host: &mut Host<'_>) -> HookResult<Option<String>> {
    let plan = &*planned(family, ctx, host)?;
    let text = family.ready_message(plan, ctx, host)?;
    Ok(Some(format!("{}\n{}", text.trim_end(), attach_hint(ctx))))
}

/// Declares a plugin type, implements the plugin API's `Distro` for it with
/// the hooks of [`family`](crate::family) (it must implement
/// [`DebFamily`](crate::family::DebFamily)), and exports it as the plugin of
/// the library (`export_plugin!`). Use it once, at the crate root:
///
/// ```ignore
/// lxc_tmpl_deb::debootstrap_plugin! {
///     /// The debian distro plugin.
///     pub struct Debian;
/// }
/// impl lxc_tmpl_deb::family::DebFamily for Debian { /* ... */ }
/// ```
///
/// The struct gets `#[derive(Debug, Default)]`.
#[macro_export]
macro_rules! debootstrap_plugin {
    ($(#[$meta:meta])* $vis:vis struct $name:ident;) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        $vis struct $name;

        impl $crate::family::PlanOnce for $name {
            fn plans(
                &self,
            ) -> &'static $crate::api::PerCreate<<$name as $crate::family::DebFamily>::Plan> {
                static PLANS: $crate::api::PerCreate<<$name as $crate::family::DebFamily>::Plan> =
                    $crate::api::PerCreate::new();
                &PLANS
            }
        }

        impl $crate::api::Distro for $name {
            fn manifest(&self) -> $crate::api::Manifest {
                <$name as $crate::family::DebFamily>::describe(self)
            }

            $crate::__family_hooks! {
                validate: (),
                cache_key: ::std::option::Option<::std::string::String>,
                download: (),
                sources_list: (),
                configure: (),
                config: (),
                trim: (),
                post_process: (),
                finalize: (),
                message: ::std::option::Option<::std::string::String>,
            }
        }

        $crate::api::export_plugin!($name);
    };
}

/// The hook methods of [`debootstrap_plugin!`](crate::debootstrap_plugin):
/// each calls the function of the same name in [`family`](crate::family).
#[doc(hidden)]
#[macro_export]
macro_rules! __family_hooks {
    ($($hook:ident: $output:ty,)*) => {
        $(
            fn $hook(
                &self,
                ctx: &$crate::api::HookContext,
                host: &mut $crate::api::Host<'_>,
            ) -> ::std::result::Result<$output, $crate::api::PluginError> {
                $crate::family::$hook(self, ctx, host)
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use lxc_tmpl_plugin_api::{Distro, ErrorKind};

    use super::*;
    use crate::{
        fake::{
            FakeHost, Node, Refused, assert_refused, build_cache_entry, context, output, run_hooks,
            run_hooks_from_cache, testix_archive, testix_plan, with_host,
        },
        flow::setup_root_access,
        system::LOCALE_MARKER,
    };

    crate::debootstrap_plugin! {
        /// A made-up distro with nothing of its own.
        struct Testix;
    }

    impl DebFamily for Testix {
        type Plan = DebPlan;

        fn describe(&self) -> Manifest {
            Manifest::new("testix", "0.1.0", "a test distro")
        }

        fn plan(&self, ctx: &HookContext, _host: &mut Host<'_>) -> Result<DebPlan, PluginError> {
            PLANS_RESOLVED.lock().unwrap().push(ctx.create_id);
            let mut plan = testix_plan(ctx)?;
            plan.cached = !ctx.flag("clean");
            Ok(plan)
        }

        fn finalize_access(&self, _plan: &DebPlan, _ctx: &HookContext, host: &mut Host<'_>) -> Result<(), PluginError> {
            setup_root_access(host, None)
        }

        fn ready_message(
            &self,
            _plan: &DebPlan,
            ctx: &HookContext,
            _host: &mut Host<'_>,
        ) -> Result<String, PluginError> {
            Ok(format!("Testix {} is ready.\n", ctx.name))
        }
    }

    /// The create of every call of `Testix::plan`.
    static PLANS_RESOLVED: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());

    #[test]
    fn the_plan_is_resolved_once_per_create() {
        let mut fake = testix_host();
        let ctx = context("testix", "t1", &[("mirror", &["http://127.0.0.1:1/testix"])]);
        run_hooks(&Testix, &mut fake, &ctx).unwrap();
        let resolved =
            |ctx: &HookContext| PLANS_RESOLVED.lock().unwrap().iter().filter(|id| **id == ctx.create_id).count();
        assert_eq!(resolved(&ctx), 1, "every hook resolved the plan again");
        assert_eq!(Testix.plans().times_computed(&ctx), 1);
        // The next create resolves its own.
        let next = context("testix", "t1", &[("mirror", &["http://127.0.0.1:1/testix"])]);
        run_hooks(&Testix, &mut testix_host(), &next).unwrap();
        assert_eq!(resolved(&next), 1);
    }

    fn testix_host() -> FakeHost {
        FakeHost::debootstrap_host(&["sid"], "testix", &testix_archive().keyring)
    }

    #[test]
    fn the_macro_makes_a_plugin_whose_hooks_run_the_shared_steps() {
        let mut fake = testix_host();
        let ctx = context("testix", "t1", &[("mirror", &["http://127.0.0.1:1/testix"])]);
        let (key, message) = run_hooks(&Testix, &mut fake, &ctx).unwrap();
        assert!(key.unwrap().starts_with("testix-v1 release=one arch=amd64 variant=minbase"));
        assert_eq!(Testix.manifest().name, "testix");
        let (_, argv) = fake.debootstrap_run();
        assert_eq!(&argv[argv.len() - 4..], ["one", "/fake-root", "http://127.0.0.1:1/testix", "sid"]);
        assert!(fake.text("etc/apt/sources.list").contains("deb http://s/testix one-security main extra\n"));
        assert_eq!(fake.text("etc/hostname"), "t1\n");
        assert!(fake.text("etc/network/interfaces").contains("iface eth0 inet dhcp"));
        assert_eq!(fake.config_values("lxc.include"), ["/usr/share/lxc/config/testix.common.conf"]);
        assert_eq!(message.unwrap(), "Testix t1 is ready.\nGet in with:  lxc-start -n t1 && lxc-attach -n t1");
        assert!(fake.logged("Testix one (1) amd64 from http://127.0.0.1:1/testix"));
    }

    /// A Testix host whose debootstrap also "installs" glibc's locales.
    fn testix_host_with_locales() -> FakeHost {
        let mut fake = testix_host();
        fake.put("usr/share/i18n/SUPPORTED", "de_DE.UTF-8 UTF-8\nen_US.UTF-8 UTF-8\n");
        fake.put("etc/locale.gen", "# de_DE.UTF-8 UTF-8\n# en_US.UTF-8 UTF-8\n");
        fake.put_program("usr/sbin/locale-gen");
        fake
    }

    const MIRROR: (&str, &[&str]) = ("mirror", &["http://127.0.0.1:1/testix"]);

    /// A cache entry built by a cold create of `t0` with `locale`.
    fn cache_entry(locale: &str) -> BTreeMap<String, Node> {
        let mut builder = testix_host_with_locales();
        let ctx = context("testix", "t0", &[MIRROR, ("locale", &[locale])]);
        build_cache_entry(&Testix, &mut builder, &ctx).unwrap()
    }

    /// A warm create of `name` from `cache`: its fake host after the hooks.
    fn warm_create(cache: &BTreeMap<String, Node>, name: &str, options: &[(&str, &[&str])]) -> FakeHost {
        let mut fake = testix_host();
        fake.rootfs = cache.clone();
        let ctx = context("testix", name, options);
        run_hooks_from_cache(&Testix, &mut fake, &ctx).unwrap();
        fake
    }

    #[test]
    fn the_cache_build_generates_the_locale_and_keeps_no_host_keys() {
        let mut builder = testix_host_with_locales();
        let ctx = context("testix", "t0", &[MIRROR, ("locale", &["de_DE.UTF-8"])]);
        let cache = build_cache_entry(&Testix, &mut builder, &ctx).unwrap();
        let locale_gen = builder.command("locale-gen").expect("the build ran locale-gen");
        assert_eq!(locale_gen.place, lxc_tmpl_plugin_api::RunPlace::Rootfs);
        assert_eq!(builder.text("etc/locale.gen"), "de_DE.UTF-8 UTF-8\n# en_US.UTF-8 UTF-8\n");
        assert_eq!(builder.text(LOCALE_MARKER), "de_DE.UTF-8 UTF-8\n");
        assert!(cache.contains_key("usr/lib/locale/locale-archive"));
        assert!(!cache.keys().any(|p| p.starts_with("etc/ssh/ssh_host_")), "host keys in the cache");
    }

    #[test]
    fn dpkg_skips_its_fsyncs_during_the_build_and_the_entry_keeps_no_trace() {
        use std::{cell::RefCell, rc::Rc};

        use crate::{apt::UNSAFE_IO_CONF, fake::debootstrap_responder};

        let mut builder = testix_host_with_locales();
        // Each command the build runs, with whether dpkg would have read the file then.
        let seen: Rc<RefCell<Vec<(String, bool)>>> = Rc::default();
        let log = Rc::clone(&seen);
        builder.set_responder(move |cmd, world| {
            log.borrow_mut().push((cmd.argv.join(" "), world.contains_key(UNSAFE_IO_CONF)));
            debootstrap_responder(cmd, world)
        });
        let ctx = context("testix", "t0", &[MIRROR]);
        let cache = build_cache_entry(&Testix, &mut builder, &ctx).unwrap();
        let seen = seen.borrow();
        for (program, word) in
            [("debootstrap", "--variant=minbase"), ("apt-get", "update"), ("apt-get", "dist-upgrade")]
        {
            let runs = |l: &String| {
                let mut words = l.split_whitespace();
                words.next().is_some_and(|p| p.ends_with(program)) && words.any(|w| w == word)
            };
            let (line, unsafe_io) = seen.iter().find(|(l, _)| runs(l)).unwrap_or_else(|| panic!("no {program} {word}"));
            assert!(*unsafe_io, "{line} ran without /{UNSAFE_IO_CONF}");
        }
        assert!(!builder.exists(UNSAFE_IO_CONF), "/{UNSAFE_IO_CONF} is still there after the build");
        assert!(!cache.contains_key(UNSAFE_IO_CONF), "the cache entry keeps /{UNSAFE_IO_CONF}");
    }

    #[test]
    fn a_warm_create_runs_no_generator_in_the_rootfs() {
        let cache = cache_entry("en_US.UTF-8");
        let fake = warm_create(&cache, "t1", &[MIRROR]);
        let in_rootfs: Vec<String> = fake
            .commands
            .iter()
            .filter(|c| c.place == lxc_tmpl_plugin_api::RunPlace::Rootfs)
            .map(|c| c.line())
            .collect();
        assert!(in_rootfs.is_empty(), "the warm create ran in the rootfs: {in_rootfs:?}");
        for heavy in ["locale-gen", "dpkg-reconfigure", "update-locale", "ssh-keygen -A", "debootstrap"] {
            assert!(fake.lines().iter().all(|l| !l.contains(heavy)), "{heavy}: {:?}", fake.lines());
        }
        // ...and still leaves everything configured.
        assert_eq!(fake.text("etc/default/locale"), "LANG=en_US.UTF-8\n");
        assert_eq!(fake.text("etc/timezone"), "Etc/UTC\n");
        assert_eq!(fake.rootfs["etc/localtime"], Node::Symlink { target: "/usr/share/zoneinfo/Etc/UTC".into() });
        assert!(fake.text("etc/ssh/ssh_host_ed25519_key.pub").ends_with(" root@t1\n"));
        assert_eq!(fake.text("etc/hostname"), "t1\n");

        // Packages asked for are the one exception.
        let with_packages = warm_create(&cache, "t2", &[MIRROR, ("packages", &["less"])]);
        assert!(with_packages.lines().iter().any(|l| l.ends_with("install less")), "{:?}", with_packages.lines());
    }

    #[test]
    fn two_containers_from_one_cache_get_their_own_host_keys() {
        let cache = cache_entry("en_US.UTF-8");
        let (a, b) = (warm_create(&cache, "t1", &[MIRROR]), warm_create(&cache, "t2", &[MIRROR]));
        for kind in ["ecdsa", "ed25519"] {
            let private = format!("etc/ssh/ssh_host_{kind}_key");
            assert_ne!(a.bytes(&private), b.bytes(&private), "{private} shared");
            assert_ne!(a.bytes(&format!("{private}.pub")), b.bytes(&format!("{private}.pub")));
            assert_eq!((a.mode(&private), a.mode(&format!("{private}.pub"))), (0o600, 0o644));
        }
        assert!(b.text("etc/ssh/ssh_host_ed25519_key.pub").ends_with(" root@t2\n"));
        assert!(!b.exists("etc/ssh/ssh_host_rsa_key"), "RSA keys cost more than the rest of a warm create");
    }

    #[test]
    fn the_cache_key_names_the_locale_the_entry_was_built_with() {
        let key = |locale: &str| {
            let ctx = context("testix", "t1", &[MIRROR, ("locale", &[locale])]);
            with_host(&mut testix_host(), |h| Testix.cache_key(&ctx, h)).unwrap().unwrap()
        };
        assert_ne!(key("en_US.UTF-8"), key("de_DE.UTF-8"));
        // An entry of another locale cannot serve this one (the host would
        // not pick it; if it did, the create says how to fix it).
        let mut fake = testix_host();
        fake.rootfs = cache_entry("de_DE.UTF-8");
        let ctx = context("testix", "t1", &[MIRROR, ("locale", &["en_US.UTF-8"])]);
        let err = run_hooks_from_cache(&Testix, &mut fake, &ctx).unwrap_err();
        assert!(err.message.contains("--flush-cache") && !err.message.contains('\n'), "{}", err.message);
    }

    #[test]
    fn an_uncached_plan_generates_its_locale_once() {
        let mut fake = testix_host_with_locales();
        let ctx = context("testix", "t1", &[MIRROR, ("clean", &[])]);
        run_hooks(&Testix, &mut fake, &ctx).unwrap();
        assert_eq!(fake.lines().iter().filter(|l| l.starts_with("locale-gen")).count(), 1, "{:?}", fake.lines());
        assert_eq!(fake.text("etc/default/locale"), "LANG=en_US.UTF-8\n");
    }

    #[test]
    fn an_uncached_plan_has_no_cache_key() {
        let mut fake = testix_host();
        let ctx = context("testix", "t1", &[("clean", &[])]);
        assert_eq!(with_host(&mut fake, |h| Testix.cache_key(&ctx, h)).unwrap(), None);
    }

    #[test]
    fn validate_refuses_a_user_namespace_and_warns_about_no_check_gpg() {
        let mut fake = testix_host();
        let mut ctx = context("testix", "t1", &[]);
        ctx.facts.mapped_uid = Some(65_536);
        ctx.facts.in_user_namespace = true;
        // In a user namespace only the cache can be used.
        with_host(&mut fake, |h| Testix.validate(&ctx, h)).unwrap();
        let mut clean = context("testix", "t1", &[("clean", &[])]);
        clean.facts = ctx.facts.clone();
        let err = with_host(&mut fake, |h| Testix.validate(&clean, h)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::UNSUPPORTED);
        assert!(err.message.contains("cannot be bootstrapped inside lxc-create's user namespace"), "{}", err.message);
        // Mapped ids without a user namespace: built as root, shifted by the host.
        ctx.facts.in_user_namespace = false;
        with_host(&mut fake, |h| Testix.validate(&ctx, h)).unwrap();

        let ctx = context("testix", "t1", &[("no-check-gpg", &[])]);
        with_host(&mut fake, |h| Testix.validate(&ctx, h)).unwrap();
        assert!(fake.warnings().iter().any(|w| w.contains("NOT authenticated")), "{:?}", fake.warnings());
        assert!(fake.commands.is_empty(), "validate ran {:?}", fake.lines());
    }

    /// The option checks every debootstrap plugin shares, in `validate`.
    #[test]
    fn validate_refuses_bad_shared_options_with_the_fix() {
        let mut fake = testix_host();
        fake.on("getent passwd ghost", output(2, "", ""));
        let cases: &[Refused] = &[
            (&[("arch", &["sparc64"])], ErrorKind::INVALID_INPUT, "unknown architecture 'sparc64'"),
            (&[("arch", &["arm64"])], ErrorKind::UNSUPPORTED, "install qemu-user-static"),
            (&[("interpreter-path", &["/no/qemu"]), ("arch", &["arm64"])], ErrorKind::INVALID_INPUT, "no such file"),
            (&[("auth-key", &["/missing.pub"])], ErrorKind::INVALID_INPUT, "--auth-key /missing.pub: no such file"),
            (&[("bindhome", &["ghost"])], ErrorKind::INVALID_INPUT, "the host has no user ghost"),
            (&[("mirror", &["deb.example.org"])], ErrorKind::INVALID_INPUT, "not a mirror URL"),
            (&[("keyring", &["/nope.gpg"])], ErrorKind::INVALID_INPUT, "--keyring /nope.gpg: no such file"),
            (&[("packages", &["a;b"])], ErrorKind::INVALID_INPUT, "not a package name"),
            (&[("locale", &["de;rm"])], ErrorKind::INVALID_INPUT, "is not a locale name"),
            (&[("http-proxy", &["socks://x"])], ErrorKind::INVALID_INPUT, "--http-proxy"),
        ];
        assert_refused(&Testix, &mut fake, "testix", cases);
        fake.host_files.remove(testix_archive().keyring.path);
        assert_refused(
            &Testix,
            &mut fake,
            "testix",
            &[(&[], ErrorKind::UNSUPPORTED, "apt-get install testix-keyring")],
        );
    }
}
