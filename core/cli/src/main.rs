//! `lxc-tmpl`: create LXC containers from distro plugins.
//!
//! The binary parses the command line, loads the plugins and hands the work
//! to the `lxc-tmpl-host` library. It alone uses `anyhow`; errors are printed
//! as `error: ...` on one line (a failed command adds the tail of its
//! output), with exit status 1 for failures and 2 for usage errors.
//!
//! Called as `lxc-tmpl-<distro>` or `lxc-<distro>` (or `lxc-tmpl template
//! <distro>`) it is an LXC template for `lxc-create -t` (see
//! `commands::template`). It is also its own namespace helper: the runner
//! re-executes this binary as `lxc-tmpl __run-in-rootfs ...` to run a command
//! inside a rootfs.

mod argv;
mod cli;
mod commands;
mod log;
mod progress;
mod report;
mod stdout;

use std::{ffi::OsString, process::ExitCode};

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches};
use lxc_tmpl_host::{
    container::{self, Destroyed},
    facts, interrupt,
    names::validate_container_name,
    plugin::{PluginSet, default_plugin_dirs},
};

use crate::cli::{Cli, Commands};

/// A usage error: exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// An error of a create that kept a log: printed as the error and its causes
/// on one line, then `(log: PATH)` (before the tail of a failed command's
/// output, if any), so that every error names where the full story is.
#[derive(Debug)]
pub struct Logged {
    /// What failed.
    pub error: anyhow::Error,
    /// The create's log file.
    pub log: std::path::PathBuf,
}

impl std::fmt::Display for Logged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // On the first line: a failed command's output tail may follow on the next ones.
        let text = error_text(&self.error);
        let (first, rest) = text.split_once('\n').map_or((text.as_str(), None), |(a, b)| (a, Some(b)));
        write!(f, "{first} (log: {})", self.log.display())?;
        rest.map_or(Ok(()), |rest| write!(f, "\n{rest}"))
    }
}

// No `source()`: the message already holds the causes (see lxc_tmpl_host::report).
impl std::error::Error for Logged {}

/// Whether `err` is a usage error (exit status 2), also inside a [`Logged`].
fn is_usage_error(err: &anyhow::Error) -> bool {
    err.downcast_ref::<UsageError>().is_some()
        || err.downcast_ref::<Logged>().is_some_and(|l| l.error.downcast_ref::<UsageError>().is_some())
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == lxc_tmpl_host::runner::HELPER_SUBCOMMAND) {
        let status = lxc_tmpl_host::runner::helper_main();
        return ExitCode::from(u8::try_from(status).unwrap_or(1));
    }
    // Before any thread exists (unshare(2) refuses a new mount namespace to a threaded
    // process): a create gets a mount namespace of its own, so that the overlay it may mount
    // on the rootfs is never seen on the host and dies with this process, however it ends.
    if args.get(1).is_some_and(|a| a == "create") {
        lxc_tmpl_host::backing::overlay::enter_private_mount_namespace();
    }
    // Before any thread exists: signals must be blocked in every thread but the one that
    // handles them (see lxc_tmpl_host::interrupt).
    if handles_signals(&args)
        && let Err(e) = interrupt::install()
    {
        eprintln!("error: cannot set up signal handling: {e}");
        return ExitCode::from(1);
    }
    let json = wants_json(&args);
    let result = run(args);
    let signal = interrupt::interrupted();
    match (result, signal) {
        // Every step checks for a signal, so one that arrives after the last check comes too
        // late to stop anything: the work is complete and stays, and saying so is the truth.
        (Ok(code), Some(signal)) => {
            eprintln!("warning: {signal} after the work was complete: nothing was rolled back");
            code
        }
        (Ok(code), None) => code,
        (Err(err), signal) => {
            let text = error_text(&err);
            // A program reading stdout gets the failure as the one object it expects.
            if json {
                println!("{}", serde_json::json!({ "error": text }));
            }
            eprintln!("error: {text}");
            match signal {
                Some(signal) => ExitCode::from(signal.exit_status()),
                None if is_usage_error(&err) => ExitCode::from(2),
                None => ExitCode::from(1),
            }
        }
    }
}

/// Whether the command asked for `--format json` (list, info, doctor): its
/// failures, usage errors too, are then also one JSON object on stdout.
fn wants_json(args: &[OsString]) -> bool {
    let args: Vec<&str> = args.iter().skip(1).map(|a| a.to_str().unwrap_or_default()).collect();
    matches!(args.first(), Some(&("list" | "info" | "doctor")))
        && (args.contains(&"--format=json") || args.windows(2).any(|w| w == ["--format", "json"]))
}

/// Whether this invocation rolls back on SIGINT, SIGTERM and SIGHUP: the commands that change
/// the disk for a while (create, image, template mode, cache purge, destroy). The others keep the
/// signals' default action, which ends them at once.
fn handles_signals(args: &[OsString]) -> bool {
    if args.first().is_some_and(|a| commands::template::distro_from_argv0(a).is_some()) {
        return true;
    }
    matches!(args.get(1).and_then(|a| a.to_str()), Some("create" | "image" | "template" | "cache" | "destroy"))
}

fn run(args: Vec<OsString>) -> Result<ExitCode> {
    let plugin_dirs = default_plugin_dirs();
    let plugins = PluginSet::load(&plugin_dirs);
    if let Some(distro) = args.first().and_then(|a| commands::template::distro_from_argv0(a)) {
        let program = std::path::Path::new(&args[0]).file_name().unwrap_or_default().to_string_lossy().into_owned();
        let plugin = plugins
            .find(&distro)
            .ok_or_else(|| anyhow::anyhow!(commands::create::unknown_distro(&distro, &plugins)))?;
        return commands::template::run(&program, args, plugin);
    }
    let subcommand = args.get(1).and_then(|a| a.to_str()).unwrap_or_default();
    // Commands that show plugins report every file they skipped; `create`
    // and template mode name a broken plugin only when it is the one asked
    // for (see `unknown_distro`).
    if matches!(subcommand, "list" | "info" | "install-templates" | "completions" | "man") {
        for skipped in &plugins.skipped {
            eprintln!("warning: {}", skipped.error);
        }
    }
    let is_create = subcommand == "create";
    let is_image_build = subcommand == "image" && args.get(2).is_some_and(|a| a == "build");

    let mut command = Cli::command();
    let mut plugin = None;
    if (is_create || is_image_build)
        && let Some(distro) = cli::distro_in_args(&args[1..])
    {
        let found = match plugins.find(&distro) {
            Some(found) => found,
            // A plugin file for the distro exists but could not be loaded:
            // a failure (exit 1), not a mistyped name.
            None if plugins.skipped_for(&distro).is_some() => {
                anyhow::bail!(commands::create::unknown_distro(&distro, &plugins))
            }
            None => return Err(UsageError(commands::create::unknown_distro(&distro, &plugins)).into()),
        };
        command = if is_create {
            cli::with_distro_options(command, &found.manifest)
        } else {
            cli::with_image_distro_options(command, &found.manifest)
        };
        plugin = Some(found);
    }
    let matches = match command.try_get_matches_from(&args) {
        Ok(matches) => matches,
        Err(err)
            if matches!(err.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) =>
        {
            err.print()?;
            return Ok(ExitCode::SUCCESS);
        }
        Err(err) => return Err(UsageError(one_line(&err)).into()),
    };
    let cli = Cli::from_arg_matches(&matches).map_err(|e| UsageError(one_line(&e)))?;
    match &cli.command {
        Commands::Create(create) => {
            let plugin = plugin.expect("clap requires --distro, which selected the plugin");
            let (_, sub) = matches.subcommand().expect("a subcommand was parsed");
            commands::create::create(create, sub, plugin)?;
        }
        Commands::Image(cli::ImageCommand::Build(build)) => {
            let plugin = plugin.expect("clap requires --distro, which selected the plugin");
            let (_, image) = matches.subcommand().expect("a subcommand was parsed");
            let (_, sub) = image.subcommand().expect("image has a subcommand");
            commands::image::build(build, sub, plugin)?;
        }
        Commands::Image(cli::ImageCommand::Publish(publish)) => commands::image::publish(publish)?,
        Commands::List(list) => commands::list::list(list, &plugins)?,
        Commands::Template(template) => {
            let distro = &template.distro;
            let plugin = plugins
                .find(distro)
                .ok_or_else(|| anyhow::anyhow!(commands::create::unknown_distro(distro, &plugins)))?;
            let program = format!("lxc-tmpl-{distro}");
            let args = std::iter::once(OsString::from(&program)).chain(template.args.iter().cloned()).collect();
            return commands::template::run(&program, args, plugin);
        }
        Commands::NewPlugin(new) => {
            let dir = commands::new_plugin::new_plugin(&new.name, &new.dir, new.api_path.as_deref())?;
            println!(
                "created {}: build it with cargo build --release --manifest-path {}/Cargo.toml",
                dir.display(),
                dir.display()
            );
        }
        Commands::Cache(cli::CacheCommand::Purge { distro, cache_dir }) => {
            let purged = lxc_tmpl_host::cache::purge_distro(cache_dir, distro, |holder| {
                eprintln!("waiting for a cache lock held by {holder}");
            })?;
            println!("removed {} cached {distro} rootfs(es) from {}", purged.removed.len(), cache_dir.display());
            for (generation, users) in &purged.kept {
                let users: Vec<String> = users.iter().map(|u| u.display().to_string()).collect();
                println!(
                    "kept {}: the lower layer of overlay container(s) {}; it goes at a later purge once they are destroyed",
                    generation.display(),
                    users.join(", ")
                );
            }
        }
        Commands::InstallTemplates(install) => commands::install::install_templates(
            &commands::install::InstallRequest {
                dir: install.dir.clone(),
                as_default: install.as_default,
                uninstall: install.uninstall,
            },
            &plugins,
        )?,
        Commands::Info(info) => commands::list::info(info, &plugins)?,
        Commands::Destroy(destroy) => return destroy_container(destroy),
        Commands::Completions(completions) => {
            commands::completions::write_completions(completions.shell, &plugins, &mut std::io::stdout().lock())?
        }
        Commands::Man(man) => {
            for page in commands::man::write_pages(&man.output, &plugins)? {
                println!("{}", page.display());
            }
        }
        Commands::Doctor(doctor) => return commands::doctor::doctor(doctor, &plugin_dirs, &plugins),
    }
    Ok(ExitCode::SUCCESS)
}

/// `lxc-tmpl destroy NAME`: the remains of an interrupted create go; a
/// complete container goes to `lxc-destroy`, which knows its storage.
fn destroy_container(args: &cli::DestroyArgs) -> Result<ExitCode> {
    validate_container_name(&args.name)?;
    let lxcpath = args.lxcpath.clone().unwrap_or_else(facts::default_lxcpath);
    match container::destroy(&args.name, &lxcpath.join(&args.name))? {
        Destroyed::Remains(recovered) => {
            println!("{recovered}");
            Ok(ExitCode::SUCCESS)
        }
        Destroyed::Complete => {
            let mut lxc_destroy = std::process::Command::new("lxc-destroy");
            lxc_destroy.arg("-P").arg(&lxcpath).args(["-n", &args.name]);
            // Registered, so that a signal to lxc-tmpl stops it too.
            let (mut child, _registered) = interrupt::spawn(&mut lxc_destroy)
                .map_err(|e| anyhow::anyhow!("cannot run lxc-destroy ({e}): install lxc"))?;
            let status = child.wait()?;
            Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}

/// The error and its causes on one line (`what: why: deeper why`), by the
/// host's one printer: anyhow's context layers return their cause like every
/// typed error of the host does.
fn error_text(err: &anyhow::Error) -> String {
    lxc_tmpl_host::report::error_chain(err.as_ref())
}

/// clap's message without usage and tips, on one line:
/// `the following required arguments were not provided: --name <NAME>`.
pub fn one_line(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    let text: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.starts_with("Usage:"))
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
        .collect();
    let text = text.join(" ");
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    format!("{text} (see lxc-tmpl --help)")
}
