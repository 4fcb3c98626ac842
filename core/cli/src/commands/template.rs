//! Template mode: lxc-tmpl as a drop-in for LXC's template scripts.
//!
//! `lxc-create -t NAME` executes `/usr/share/lxc/templates/lxc-NAME` (or an
//! absolute path) as
//!
//! ```text
//! lxc-NAME --path=<lxcpath>/<name> --name=<name> --rootfs=<dir> [user options] [--mapped-uid U --mapped-gid G]
//! ```
//!
//! and `lxc-create -t NAME -h` runs it with `-h` alone. This binary answers
//! that when it is called as `lxc-tmpl-<distro>` or `lxc-<distro>` (a symlink
//! made by `lxc-tmpl install-templates`) or as `lxc-tmpl template <distro> ...`.
//! lxc-create owns the container directory, the `partial` lock and the config
//! header; on a non-zero exit it destroys the container.

use std::{ffi::OsString, path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::{Context, Result, bail};
use clap::{Arg, ArgAction, ArgMatches, Command, value_parser};
use lxc_tmpl_host::{
    create::{CreateRequest, Creator},
    facts,
    lxcconf::BaseConfig,
    names::{hostname_for, validate_container_name},
    plugin::LoadedPlugin,
    request::{CreateSpec, MappedIds},
    runner::Runner,
};

use crate::{
    cli::{all_secret_values, distro_arg, distro_values},
    report::{CliReporter, Display, Verbosity},
};

/// Short options template mode itself uses: the old scripts' `-p/--path`,
/// `-n/--name`, `-h`, `-F/--flush-cache` and `-d/--debug`.
const TEMPLATE_SHORTS: &[char] = &['p', 'n', 'h', 'F', 'd'];

/// The distro named by how we were called: `lxc-tmpl-ubuntu` or `lxc-ubuntu`
/// (basename or full path), but not `lxc-tmpl` itself.
pub fn distro_from_argv0(argv0: &std::ffi::OsStr) -> Option<String> {
    let name = std::path::Path::new(argv0).file_name()?.to_str()?;
    let distro = name.strip_prefix("lxc-tmpl-").or_else(|| name.strip_prefix("lxc-").filter(|_| name != "lxc-tmpl"))?;
    (!distro.is_empty()).then(|| distro.to_owned())
}

/// The parser of template mode for `plugin`, named as we were called.
pub fn command(program: &str, plugin: &LoadedPlugin) -> Command {
    let manifest = &plugin.manifest;
    let heading = format!("{} options", manifest.name);
    let internal = "LXC internal arguments (passed by lxc-create)";
    let base = Command::new(program.to_owned())
        .about(format!("{} container template for lxc-create (lxc-tmpl {})", manifest.name, env!("CARGO_PKG_VERSION")))
        .after_help(format!("Use it as: lxc-create -n NAME -t {} [-- {} options]", program, manifest.name))
        .arg(
            Arg::new("path")
                .short('p')
                .long("path")
                .value_name("DIR")
                .help("container directory")
                .help_heading(internal),
        )
        .arg(Arg::new("name").short('n').long("name").value_name("NAME").help("container name").help_heading(internal))
        .arg(Arg::new("rootfs").long("rootfs").value_name("DIR").help("rootfs directory").help_heading(internal))
        .arg(
            Arg::new("mapped-uid")
                .long("mapped-uid")
                .value_name("UID")
                .allow_negative_numbers(true)
                .value_parser(value_parser!(i64))
                .help("container uid the caller is mapped to (unprivileged)")
                .help_heading(internal),
        )
        .arg(
            Arg::new("mapped-gid")
                .long("mapped-gid")
                .value_name("GID")
                .allow_negative_numbers(true)
                .value_parser(value_parser!(i64))
                .help("container gid the caller is mapped to (unprivileged)")
                .help_heading(internal),
        )
        .arg(
            Arg::new("flush-cache")
                .short('F')
                .long("flush-cache")
                .action(ArgAction::SetTrue)
                .help("rebuild the distro's cached rootfs first"),
        )
        .arg(
            Arg::new("hostname")
                .long("hostname")
                .value_name("HOSTNAME")
                .help("host name (RFC 1123) [default: the name, or one derived from it]"),
        )
        .arg(Arg::new("debug").short('d').long("debug").action(ArgAction::SetTrue).help("print every command run"))
        .arg(
            Arg::new("log").long("log").value_name("FILE").value_parser(value_parser!(PathBuf)).help(
                "log file of this create [default: $LXC_TMPL_LOG_DIR or /var/log/lxc-tmpl, as NAME-<UTC time>.log]",
            ),
        )
        .arg(
            Arg::new("cache-dir")
                .long("cache-dir")
                .value_name("DIR")
                .env("LXC_CACHE_PATH")
                .default_value("/var/cache/lxc-tmpl")
                .value_parser(value_parser!(PathBuf))
                .help("rootfs cache directory"),
        );
    manifest
        .options
        .iter()
        .fold(base, |cmd, spec| cmd.arg(distro_arg(spec, TEMPLATE_SHORTS).help_heading(heading.clone())))
}

/// Runs template mode with `args` (argv[0] first).
///
/// `-h`/`--help` prints the help and exits 1, as lxc-debian's `usage; exit 1`
/// does: lxc-create treats a template's non-zero exit as failure and removes
/// the container directory it made, so `lxc-create -t X -- -h` leaves no
/// empty container behind that would take the name.
pub fn run(program: &str, args: Vec<OsString>, plugin: &LoadedPlugin) -> Result<ExitCode> {
    let matches = match command(program, plugin).try_get_matches_from(&args) {
        Ok(matches) => matches,
        Err(err) if err.kind() == clap::error::ErrorKind::DisplayHelp => {
            err.print()?;
            return Ok(ExitCode::FAILURE);
        }
        Err(err) => return Err(crate::UsageError(crate::one_line(&err)).into()),
    };
    // lxc-create does not pass on a SIGTERM it gets; its death must still roll us back.
    lxc_tmpl_host::interrupt::follow_parent().context("cannot follow lxc-create's lifetime")?;
    let required = |id: &str| {
        matches.get_one::<String>(id).cloned().with_context(|| {
            format!("--{id} is missing: {program} is a template for lxc-create (lxc-create -n NAME -t {program})")
        })
    };
    let name = required("name")?;
    let path = PathBuf::from(required("path")?);
    validate_container_name(&name)?;
    let (hostname, hostname_warning) = hostname_for(&name, matches.get_one::<String>("hostname").map(String::as_str))?;
    let rootfs = matches.get_one::<String>("rootfs").map(PathBuf::from).unwrap_or_else(|| path.join("rootfs"));
    if !facts::running_as_root() {
        bail!("{program} must run as root (or as root of a user namespace, through lxc-create)");
    }
    let config_path = path.join("config");
    let text = std::fs::read_to_string(&config_path).with_context(|| {
        format!("cannot read {}: lxc-create writes it before running the template", config_path.display())
    })?;
    let mut request = request(&matches, plugin, name, path, rootfs, BaseConfig::parse(&text))?;
    request.spec.hostname = hostname;
    let verbosity = if matches.get_flag("debug") { Verbosity::Verbose } else { Verbosity::Normal };
    let mut secrets = all_secret_values(&plugin.manifest, &matches);
    secrets.extend(crate::log::proxy_credentials());
    let log =
        crate::log::open_or_warn(matches.get_one::<PathBuf>("log").map(PathBuf::as_path), &request.spec.name, secrets)?;
    let log_path = log.as_ref().map(|l| l.path().to_owned());
    // Under lxc-create: lines only, whatever stderr is (lxc-create may log it).
    let reporter = Arc::new(CliReporter::new(verbosity, Display::Plain, log));
    let command_line: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    reporter.log_only(&format!(
        "lxc-tmpl {} template {} for lxc-create (distro {} {} from {}, pid {}): {}",
        env!("CARGO_PKG_VERSION"),
        request.spec.name,
        plugin.manifest.name,
        plugin.manifest.version,
        plugin.file.display(),
        std::process::id(),
        command_line.join(" ")
    ));
    crate::argv::hide_secrets(&plugin.manifest, &matches, &reporter);
    if let Some(warning) = &hostname_warning {
        reporter.warn(warning);
    }
    let filled = (|| -> Result<_> {
        let runner = Runner::new(std::env::current_exe().context("cannot find the lxc-tmpl binary for the runner")?)
            .reporting_to(reporter.clone());
        Ok(Creator::new(plugin, &runner, reporter.as_ref()).fill_template(&request)?)
    })();
    reporter.finish();
    match filled {
        Ok(outcome) => {
            reporter.log_only("the template is done; lxc-create finishes the container");
            if let Some(message) = outcome.message {
                println!("{message}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            reporter.log_only(&format!("error: {}", lxc_tmpl_host::report::error_chain(error.as_ref())));
            Err(match log_path {
                Some(log) => crate::Logged { error, log }.into(),
                None => error,
            })
        }
    }
}

fn request(
    matches: &ArgMatches,
    plugin: &LoadedPlugin,
    name: String,
    path: PathBuf,
    rootfs: PathBuf,
    base: BaseConfig,
) -> Result<CreateRequest> {
    // lxc-create passes -1 for "not mapped"; only real ids count.
    let mapped = |id: &str| matches.get_one::<i64>(id).and_then(|v| u32::try_from(*v).ok());
    let (options, parameters) = distro_values(&plugin.manifest, matches);
    Ok(CreateSpec {
        hostname: name.clone(),
        lxcpath: path.parent().map(PathBuf::from).unwrap_or_default(),
        container_dir: path,
        rootfs: Some(rootfs),
        name,
        base,
        cache_dir: matches.get_one::<PathBuf>("cache-dir").cloned().unwrap_or_default(),
        flush_cache: matches.get_flag("flush-cache"),
        // lxc-create has chosen the storage and mounted it for us.
        backing: lxc_tmpl_host::backing::Backing::Dir,
        lxc_version: facts::installed_lxc_version().unwrap_or_else(|| semver::Version::new(5, 0, 0)),
        // lxc-create reloads the config itself after we exit.
        check_config: false,
        keep_on_failure: false,
        parameters,
        options,
        mapped: MappedIds::Given { uid: mapped("mapped-uid"), gid: mapped("mapped-gid") },
    }
    .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn distro_from_program_name() {
        assert_eq!(distro_from_argv0(OsStr::new("lxc-tmpl-ubuntu")).as_deref(), Some("ubuntu"));
        assert_eq!(distro_from_argv0(OsStr::new("/usr/share/lxc/templates/lxc-busybox")).as_deref(), Some("busybox"));
        assert_eq!(distro_from_argv0(OsStr::new("lxc-tmpl")), None);
        assert_eq!(distro_from_argv0(OsStr::new("/usr/bin/lxc-tmpl")), None);
        assert_eq!(distro_from_argv0(OsStr::new("lxc-")), None);
        assert_eq!(distro_from_argv0(OsStr::new("other")), None);
    }
}
