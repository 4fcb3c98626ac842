//! `lxc-tmpl create`: turns the command line into a request ([`CreateSpec`]) and
//! hands it to the host's [`Creator`].

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
};

use std::{sync::Arc, time::Duration};

use anyhow::{Context, Result, bail};
use clap::ArgMatches;
use lxc_tmpl_host::{
    create::{CreateOutcome, CreateRequest, Creator},
    facts,
    lxcconf::{BaseConfig, Dialect},
    names::{hostname_for, validate_container_name},
    plugin::{LoadedPlugin, PluginSet},
    request::{CreateSpec, MappedIds},
    runner::Runner,
};
use lxc_tmpl_plugin_api::Hook;

use serde_json::{Value, json};

use crate::{
    cli::{CreateArgs, Format, all_secret_values, distro_values},
    report::{CliReporter, Display, StepTime, Verbosity},
    stdout::print,
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

/// `lxc-tmpl create`: the create itself ([`run_create`]), with its log,
/// its progress display and its result as text or JSON.
///
/// A create that gets as far as opening its log (everything after the checks
/// of the name and of root) names the log in its error; under `--format
/// json` it prints one object on stdout whether it succeeds or fails
/// (`docs/schema/create.json`).
pub fn create(args: &CreateArgs, matches: &ArgMatches, plugin: &LoadedPlugin) -> Result<()> {
    let mut answered = false;
    let result = create_reported(args, matches, plugin, &mut answered);
    // A create refused before it had a log (a bad name, not root, a bad --path) still answers
    // in JSON when asked to; clap's own usage errors come before the format is known.
    if let Err(error) = &result
        && args.format == Format::Json
        && !answered
    {
        let failure = json!({
            "ok": false,
            "name": args.name,
            "distro": plugin.manifest.name,
            "error": lxc_tmpl_host::report::error_chain(error.as_ref()),
            "steps": [],
            "total_ms": 0,
            "log": null,
        });
        print(&format!("{}\n", serde_json::to_string_pretty(&failure)?))?;
    }
    result
}

/// [`create`], with `answered` set once the JSON result has been printed.
fn create_reported(args: &CreateArgs, matches: &ArgMatches, plugin: &LoadedPlugin, answered: &mut bool) -> Result<()> {
    // A dry run's answer is the text of its steps and config; no JSON shape is promised for it.
    if args.dry_run && args.format == Format::Json {
        bail!(crate::UsageError(
            "--dry-run prints text only: leave out --format json, or leave out --dry-run to create".into()
        ));
    }
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
    // Usage errors are found before the log is opened: they leave no log behind.
    let location = container_location(args)?;
    let target = args
        .lxc_version
        .as_deref()
        .map(|text| {
            facts::parse_lenient_version(text)
                .with_context(|| format!("--lxc-version '{text}' is not a version: give one like 5.0 or 2.0"))
        })
        .transpose()?;
    // A dry run writes nothing, not even a log.
    let log = if args.dry_run {
        None
    } else {
        let mut secrets = all_secret_values(&plugin.manifest, matches);
        secrets.extend(crate::log::proxy_credentials());
        crate::log::open_or_warn(args.log.as_deref(), &args.name, secrets)?
    };
    let log_path = log.as_ref().map(|l| l.path().to_owned());
    let reporter = Arc::new(CliReporter::new(verbosity, Display::for_stderr(!args.dry_run), log));
    let command_line: Vec<String> = std::env::args().collect();
    reporter.log_only(&format!(
        "lxc-tmpl {} create {} (distro {} {} from {}, pid {}): {}",
        env!("CARGO_PKG_VERSION"),
        args.name,
        plugin.manifest.name,
        plugin.manifest.version,
        plugin.file.display(),
        std::process::id(),
        command_line.join(" ")
    ));
    crate::argv::hide_secrets(&plugin.manifest, matches, &reporter);
    if let Some(warning) = &hostname_warning {
        reporter.warn(warning);
    }
    let result = run_create(args, matches, plugin, hostname, location, target, &reporter);
    if args.dry_run {
        return result.map(drop);
    }
    if let Ok(done) = &result
        && let Some(cache) = &done.outcome.cache
    {
        let how = if cache.built { "built" } else { "reused" };
        reporter.info(&format!("cache {how}: {}", cache.dir.display()));
    }
    let (steps, total) = reporter.finish();
    match result {
        Ok(done) => {
            reporter.log_only(&format!(
                "created container '{}' in {}",
                args.name,
                done.request.spec.container_dir.display()
            ));
            match args.format {
                Format::Json => {
                    let result = success_json(&done, plugin, &steps, total, log_path.as_deref());
                    *answered = true;
                    print(&format!("{}\n", serde_json::to_string_pretty(&result)?))?;
                }
                Format::Text if verbosity > Verbosity::Quiet => {
                    let mut text =
                        format!("created container '{}' in {}\n", args.name, done.request.spec.container_dir.display());
                    if let Some(message) = &done.outcome.message {
                        text.push_str(&format!("{message}\n"));
                    }
                    print(&text)?;
                }
                Format::Text => {}
            }
            Ok(())
        }
        Err(error) => {
            let text = lxc_tmpl_host::report::error_chain(error.as_ref());
            reporter.log_only(&format!("error: {text}"));
            if args.format == Format::Json {
                let failure = json!({
                    "ok": false,
                    "name": args.name,
                    "distro": plugin.manifest.name,
                    "error": text,
                    "steps": steps_json(&steps),
                    "total_ms": millis(total),
                    "log": log_path,
                });
                *answered = true;
                print(&format!("{}\n", serde_json::to_string_pretty(&failure)?))?;
            }
            Err(match log_path {
                Some(log) => crate::Logged { error, log }.into(),
                None => error,
            })
        }
    }
}

/// What [`run_create`] made: the request and the host's outcome.
#[derive(Debug)]
struct Created {
    request: CreateRequest,
    outcome: CreateOutcome,
}

/// Whole milliseconds of `d`.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn steps_json(steps: &[StepTime]) -> Value {
    steps.iter().map(|s| json!({ "name": s.name, "ms": millis(s.elapsed) })).collect()
}

/// The result object of a successful create (`docs/schema/create.json`).
fn success_json(
    done: &Created,
    plugin: &LoadedPlugin,
    steps: &[StepTime],
    total: Duration,
    log: Option<&Path>,
) -> Value {
    let (request, outcome) = (&done.request, &done.outcome);
    let (release, arch) = lxc_tmpl_host::create::release_and_arch(request, outcome.cache.as_ref());
    let rootfs = request.spec.rootfs.clone().unwrap_or_else(|| request.spec.container_dir.join("rootfs"));
    json!({
        "ok": true,
        "name": request.spec.name,
        "distro": plugin.manifest.name,
        "container_path": request.spec.container_dir,
        "config_path": outcome.config_path,
        "rootfs_path": rootfs,
        "release": release,
        "arch": arch,
        "backing": outcome.backing.to_string(),
        "cache": outcome.cache.as_ref().map(|c| json!({
            "path": c.dir,
            "built": c.built,
            "key": lxc_tmpl_host::report::redact_url_credentials(&c.key),
        })),
        "steps": steps_json(steps),
        "total_ms": millis(total),
        "message": outcome.message,
        "log": log,
    })
}

/// The create (or dry run) proper, reporting to `reporter`.
fn run_create(
    args: &CreateArgs,
    matches: &ArgMatches,
    plugin: &LoadedPlugin,
    hostname: String,
    (lxcpath, container_dir): (PathBuf, PathBuf),
    target: Option<semver::Version>,
    reporter: &Arc<CliReporter>,
) -> Result<Created> {
    let installed = facts::installed_lxc_version();
    let target = target.unwrap_or_else(|| installed.clone().unwrap_or_else(|| semver::Version::new(5, 0, 0)));
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
    let runner = Runner::new(std::env::current_exe().context("cannot find the lxc-tmpl binary for the runner")?)
        .reporting_to(reporter.clone());
    let creator = Creator::new(plugin, &runner, reporter.as_ref());

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
        return Ok(Created { request, outcome });
    }

    let outcome = creator.create(&request)?;
    Ok(Created { request, outcome })
}
