//! `lxc-tmpl create`: turns the command line into a request ([`CreateSpec`]) and
//! hands it to the host's [`Creator`].

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use clap::ArgMatches;
use lxc_tmpl_host::{
    create::Creator,
    facts,
    lxcconf::{BaseConfig, Dialect},
    names::{hostname_for, validate_container_name},
    plugin::{LoadedPlugin, PluginSet},
    request::{CreateSpec, MappedIds},
    runner::Runner,
};
use lxc_tmpl_plugin_api::Hook;

use crate::{
    cli::{CreateArgs, distro_values},
    report::{StderrReporter, Verbosity},
};

/// The message for a distro no plugin provides, naming a plugin file that
/// failed to load for it if there is one.
pub fn unknown_distro(distro: &str, plugins: &PluginSet) -> String {
    if let Some(skipped) = plugins.skipped_for(distro) {
        return format!("distro '{distro}' cannot be used: {}", skipped.error);
    }
    let known: Vec<&str> = plugins.plugins.iter().map(|p| p.manifest.name.as_str()).collect();
    if known.is_empty() {
        format!("unknown distro '{distro}': no distro plugins were found (set LXC_TMPL_PLUGIN_PATH)")
    } else {
        format!("unknown distro '{distro}': choose one of {} (see lxc-tmpl list)", known.join(", "))
    }
}

/// The lxcpath and container directory. LXC finds a container only at
/// `LXCPATH/NAME`, so `--path DIR` must end in the name, and its parent is the
/// lxcpath (which `-P`, if also given, must agree with). Checked before
/// anything is built, so a mismatch costs nothing.
fn container_location(args: &CreateArgs) -> Result<(PathBuf, PathBuf)> {
    let Some(path) = &args.path else {
        let lxcpath = args.lxcpath.clone().unwrap_or_else(facts::default_lxcpath);
        let dir = lxcpath.join(&args.name);
        return Ok((lxcpath, dir));
    };
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if path.file_name() != Some(OsStr::new(&args.name)) {
        bail!(crate::UsageError(format!(
            "--path {} does not end in the container name '{}': LXC looks for a container at LXCPATH/NAME, so use --path {} (or -P {})",
            path.display(),
            args.name,
            parent.join(&args.name).display(),
            parent.display()
        )));
    }
    let normal = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    if let Some(lxcpath) = &args.lxcpath
        && normal(lxcpath) != normal(parent)
    {
        bail!(crate::UsageError(format!(
            "--path {} is not inside -P {}: LXC looks for a container at LXCPATH/NAME; give one of the two",
            path.display(),
            lxcpath.display()
        )));
    }
    Ok((args.lxcpath.clone().unwrap_or_else(|| parent.to_owned()), path.clone()))
}

/// `lxc-tmpl create`.
pub fn create(args: &CreateArgs, matches: &ArgMatches, plugin: &LoadedPlugin) -> Result<()> {
    validate_container_name(&args.name)?;
    let (hostname, hostname_warning) = hostname_for(&args.name, args.hostname.as_deref())?;
    if !args.dry_run && !facts::running_as_root() {
        bail!("creating a container needs root: run lxc-tmpl as root (or use --dry-run to see what it would do)");
    }
    let verbosity = match (args.quiet, args.verbose) {
        (true, _) => Verbosity::Quiet,
        (_, true) => Verbosity::Verbose,
        _ => Verbosity::Normal,
    };
    let reporter = StderrReporter { verbosity };
    crate::argv::hide_secrets(&plugin.manifest, matches, &reporter);
    if let Some(warning) = &hostname_warning {
        reporter.warn(warning);
    }

    let installed = facts::installed_lxc_version();
    let target = match &args.lxc_version {
        Some(text) => facts::parse_lenient_version(text)
            .with_context(|| format!("--lxc-version '{text}' is not a version: give one like 5.0 or 2.0"))?,
        None => installed.clone().unwrap_or_else(|| semver::Version::new(5, 0, 0)),
    };
    let dialect = Dialect::for_version(target.clone());
    // The reload check needs an installed LXC that reads the same dialect.
    let check_config = match &installed {
        Some(installed) => Dialect::for_version(installed.clone()).is_legacy() == dialect.is_legacy(),
        None => false,
    };
    if !args.dry_run && installed.is_none() {
        bail!("LXC is not installed (no lxc-create in PATH): install the lxc package");
    }
    if !args.dry_run && !check_config {
        reporter.warn(&format!(
            "the config is written for LXC {target} but LXC {} is installed: it cannot be checked here",
            installed.as_ref().map(ToString::to_string).unwrap_or_default()
        ));
    }

    let (lxcpath, container_dir) = container_location(args)?;
    let base = match &args.config {
        Some(path) => BaseConfig::load(path)?,
        None => BaseConfig::host_default()?,
    };
    let (options, parameters) = distro_values(&plugin.manifest, matches);
    let request = CreateSpec {
        name: args.name.clone(),
        hostname,
        lxcpath,
        container_dir,
        rootfs: args.rootfs.clone(),
        base,
        cache_dir: args.cache_dir.clone(),
        flush_cache: args.flush_cache,
        backing: args.backing,
        lxc_version: target,
        check_config,
        keep_on_failure: args.keep_on_failure,
        parameters,
        options,
        // Unprivileged: tell the plugin as lxc-create would (--mapped-uid/gid).
        mapped: MappedIds::FromBaseConfig,
    }
    .build()?;
    let runner = Runner::new(std::env::current_exe().context("cannot find the lxc-tmpl binary for the runner")?);
    let creator = Creator::new(plugin, &runner, &reporter);

    if args.dry_run {
        let outcome = creator.dry_run(&request)?;
        let rootfs = request.spec.rootfs.clone().unwrap_or_else(|| request.spec.container_dir.join("rootfs"));
        println!("# dry run: nothing was written");
        println!(
            "# would create container '{}' in {} (rootfs {})",
            request.spec.name,
            request.spec.container_dir.display(),
            rootfs.display()
        );
        match &outcome.cache {
            Some(cache) => println!("# would build or reuse the cached rootfs {} and copy it", cache.dir.display()),
            None => println!("# would build the rootfs in place ({} keeps no cache)", plugin.manifest.name),
        }
        let hooks: Vec<&str> = Hook::after_claim().map(Hook::name).collect();
        println!("# would run hooks: {}", hooks.join(", "));
        println!("# would write {}:", outcome.config_path.display());
        print!("{}", outcome.config);
        return Ok(());
    }

    let outcome = creator.create(&request)?;
    if let Some(cache) = &outcome.cache {
        let how = if cache.built { "built" } else { "reused" };
        reporter.info(&format!("cache {how}: {}", cache.dir.display()));
    }
    if verbosity > Verbosity::Quiet {
        println!("created container '{}' in {}", request.spec.name, request.spec.container_dir.display());
        if let Some(message) = outcome.message {
            println!("{message}");
        }
    }
    Ok(())
}
