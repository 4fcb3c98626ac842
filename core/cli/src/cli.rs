//! The command line: clap definitions for the fixed part, plus the options
//! each distro plugin declares as data, added at run time once `--distro` is
//! known.

use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Args, Command, Parser, Subcommand, ValueEnum, parser::ValueSource};
use lxc_tmpl_host::{
    backing::Backing,
    image::{
        Compression, ImageFormat,
        incus::{IncusType, RootfsChoice},
    },
};
use lxc_tmpl_plugin_api::{Manifest, OptionSpec, OptionValue};

/// Create LXC containers from distro plugins.
#[derive(Debug, Parser)]
#[command(name = "lxc-tmpl", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Commands,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Create a container (distro options: `lxc-tmpl create --distro D --help`).
    Create(CreateArgs),
    /// Build images with the same plugins and cache as `create`.
    #[command(subcommand)]
    Image(ImageCommand),
    /// List the distro plugins found.
    List(ListArgs),
    /// Show a distro plugin's options, releases and architectures.
    Info(InfoArgs),
    /// Run as an LXC template for DISTRO (what `lxc-create -t` calls).
    Template(TemplateArgs),
    /// Install lxc-tmpl as LXC templates (lxc-tmpl-<distro>) for every plugin.
    InstallTemplates(InstallArgs),
    /// Write a new distro plugin crate that builds against the plugin API alone.
    NewPlugin(NewPluginArgs),
    /// Manage the rootfs cache.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Remove what an interrupted create left of container NAME (a complete
    /// container is handed to lxc-destroy).
    Destroy(DestroyArgs),
    /// Print the completion script for SHELL on stdout.
    Completions(CompletionsArgs),
    /// Write the man pages (lxc-tmpl.1, lxc-tmpl-create.1, ...) into a directory.
    Man(ManArgs),
    /// Check that this host is ready for lxc-tmpl: one line per check, ok,
    /// warn or fail with the fix; exit status 1 when a check fails.
    Doctor(DoctorArgs),
}

/// `lxc-tmpl completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell the script is for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `lxc-tmpl man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory the pages are written to (created if missing).
    #[arg(long, short, value_name = "DIR")]
    pub output: PathBuf,
}

/// `lxc-tmpl doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Rootfs cache directory to check, as create's.
    #[arg(long, value_name = "DIR", env = "LXC_CACHE_PATH", default_value = "/var/cache/lxc-tmpl")]
    pub cache_dir: PathBuf,
    /// Directory holding containers to check [default: lxc.lxcpath, usually /var/lib/lxc].
    #[arg(short = 'P', long, value_name = "LXCPATH")]
    pub lxcpath: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `lxc-tmpl destroy`.
#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// Container name.
    pub name: String,
    /// Directory holding containers [default: lxc.lxcpath, usually /var/lib/lxc].
    #[arg(short = 'P', long, value_name = "LXCPATH")]
    pub lxcpath: Option<PathBuf>,
}

/// `lxc-tmpl image`.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build an image (distro options: `lxc-tmpl image build --distro D --help`).
    Build(ImageBuildArgs),
    /// Add LXD/Incus images to a simplestreams tree that `lxc remote add NAME https://HOST
    /// --protocol simplestreams` can use once a web server serves it over https.
    Publish(ImagePublishArgs),
}

/// `lxc-tmpl image publish`.
#[derive(Debug, Args)]
pub struct ImagePublishArgs {
    /// Image directories, as `image build --format incus` writes them.
    #[arg(value_name = "DIR", required_unless_present = "prune")]
    pub dirs: Vec<PathBuf>,
    /// Root of the simplestreams tree (made if missing): streams/v1/index.json, images.json, images/.
    #[arg(long, value_name = "ROOT")]
    pub simplestreams: PathBuf,
    /// Keep only the newest N versions of each product, deleting the others' files.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub prune: Option<u64>,
    /// Print only errors and warnings.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print every command run.
    #[arg(short, long)]
    pub verbose: bool,
}

/// `lxc-tmpl image build`.
#[derive(Debug, Args)]
pub struct ImageBuildArgs {
    /// Distro plugin to use (see `lxc-tmpl list`).
    #[arg(long, value_name = "DISTRO")]
    pub distro: String,
    /// Image format: lxc (meta.tar.xz and rootfs.tar.xz for lxc-create -t local or download), incus (incus.tar.xz and the rootfs, for incus and lxc image import), or both from one rootfs.
    #[arg(long, value_name = "FORMAT", value_parser = ImageFormat::parse)]
    pub format: ImageFormat,
    /// Incus image type: split (incus.tar.xz with metadata.yaml and templates, the rootfs apart) or unified (incus.tar.xz with the rootfs too).
    #[arg(long, value_name = "TYPE", default_value = "split", value_parser = IncusType::parse)]
    pub incus_type: IncusType,
    /// Rootfs of a split Incus image: squashfs (rootfs.squashfs), tar (rootfs.tar.xz), or auto (squashfs when mksquashfs is installed).
    #[arg(long, value_name = "KIND", default_value = "auto", value_parser = RootfsChoice::parse)]
    pub incus_rootfs: RootfsChoice,
    /// Output directory: absent (it is made) or empty.
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
    /// Compression of the tarballs and rootfs.squashfs, on every core: xz (what LXC's templates read) or zstd.
    #[arg(long, value_name = "COMPRESSION", default_value = "xz", value_parser = Compression::parse)]
    pub compression: Compression,
    /// Rootfs cache directory.
    #[arg(long, value_name = "DIR", env = "LXC_CACHE_PATH", default_value = "/var/cache/lxc-tmpl")]
    pub cache_dir: PathBuf,
    /// Rebuild the distro's cached rootfs before using it.
    #[arg(short = 'F', long)]
    pub flush_cache: bool,
    /// Print only errors and warnings.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print every command run.
    #[arg(short, long)]
    pub verbose: bool,
}

/// `lxc-tmpl cache`.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Remove every cached rootfs of one distro (what the old lxc-debian -c
    /// meant to do, without touching other distros' caches).
    Purge {
        /// The distro whose cache entries go.
        distro: String,
        /// Rootfs cache directory.
        #[arg(long, value_name = "DIR", env = "LXC_CACHE_PATH", default_value = "/var/cache/lxc-tmpl")]
        cache_dir: PathBuf,
    },
}

/// `lxc-tmpl new-plugin`.
#[derive(Debug, Args)]
pub struct NewPluginArgs {
    /// Distro name of the plugin (lowercase letters, digits, '-').
    pub name: String,
    /// Where to create the crate directory NAME.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Path of the lxc-tmpl-plugin-api crate [default: this lxc-tmpl's source tree if present, else the crates.io version].
    #[arg(long, value_name = "DIR")]
    pub api_path: Option<PathBuf>,
}

/// `lxc-tmpl template`: the arguments are parsed by the distro's template parser.
#[derive(Debug, Args)]
pub struct TemplateArgs {
    /// The distro.
    pub distro: String,
    /// What lxc-create passes: --path= --name= --rootfs=, the distro's options, --mapped-uid/--mapped-gid.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<std::ffi::OsString>,
}

/// `lxc-tmpl install-templates`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// LXC's template directory.
    #[arg(long, value_name = "DIR", default_value = "/usr/share/lxc/templates")]
    pub dir: PathBuf,
    /// Also install as lxc-<distro>, keeping any script there as lxc-<distro>.lxc-tmpl-orig.
    #[arg(long)]
    pub as_default: bool,
    /// Remove the links to this lxc-tmpl and restore the scripts they replaced.
    #[arg(long)]
    pub uninstall: bool,
}

/// `lxc-tmpl create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Distro plugin to use (see `lxc-tmpl list`).
    #[arg(long, value_name = "DISTRO")]
    pub distro: String,
    /// Container name; also its host name when it is a valid one (RFC 1123).
    #[arg(short = 'n', long, value_name = "NAME")]
    pub name: String,
    /// Host name for /etc/hostname, /etc/hosts and lxc.uts.name (RFC 1123; may be dotted)
    /// [default: NAME, or one derived from it].
    #[arg(long, value_name = "HOSTNAME")]
    pub hostname: Option<String>,
    /// Directory holding containers [default: lxc.lxcpath, usually /var/lib/lxc].
    #[arg(short = 'P', long, value_name = "LXCPATH")]
    pub lxcpath: Option<PathBuf>,
    /// Container directory [default: LXCPATH/NAME].
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
    /// Rootfs directory; must be empty or absent [default: container directory/rootfs].
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// Base config file [default: lxc.default_config, usually /etc/lxc/default.conf].
    #[arg(short = 'f', long = "config", value_name = "BASECONF")]
    pub config: Option<PathBuf>,
    /// Rootfs cache directory.
    #[arg(long, value_name = "DIR", env = "LXC_CACHE_PATH", default_value = "/var/cache/lxc-tmpl")]
    pub cache_dir: PathBuf,
    /// Rebuild the distro's cached rootfs before using it.
    #[arg(short = 'F', long)]
    pub flush_cache: bool,
    /// How the rootfs is made from the cache, as lxc-create's -B: dir (a copy, reflinked where
    /// the filesystem can), overlay (the cache as a read-only lower layer), btrfs (a snapshot),
    /// or auto (the fastest of these the filesystems allow).
    #[arg(short = 'B', long, value_name = "BACKING", default_value = "dir", value_parser = parse_backing)]
    pub backing: Backing,
    /// Print the steps and the config without touching the disk.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the config for this LXC version [default: the installed one].
    #[arg(long, value_name = "VERSION")]
    pub lxc_version: Option<String>,
    /// Keep what was made if the create fails (for debugging).
    #[arg(long)]
    pub keep_on_failure: bool,
    /// Print only errors and warnings.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print every command run (`-d/--debug` as in the old templates).
    #[arg(short, long, visible_alias = "debug", visible_short_alias = 'd')]
    pub verbose: bool,
    /// Log file of this create: every step, message and command with its output and exit status
    /// [default: $LXC_TMPL_LOG_DIR or /var/log/lxc-tmpl, as NAME-<UTC time>.log].
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Output format of the result: text, or one JSON object on stdout (also on failure).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Output format of `list`, `info` and `doctor`. Under `json` a failure is
/// one object `{"error": "..."}` on stdout too (schemas in docs/schema/).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// For programs.
    Json,
}

/// `lxc-tmpl list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `lxc-tmpl info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The distro.
    pub distro: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Short options the fixed part of `create` uses; a plugin's short option
/// with one of these letters is reachable by its long name only there.
const CORE_SHORTS: &[char] = &['n', 'P', 'f', 'F', 'B', 'q', 'v', 'd', 'h', 'V'];

fn parse_backing(value: &str) -> Result<Backing, String> {
    Backing::parse(value)
}

/// The clap id of a distro option.
fn arg_id(long: &str) -> String {
    format!("distro-option:{long}")
}

/// Turns a plugin's option description into a clap argument.
pub fn distro_arg(spec: &OptionSpec, reserved_shorts: &[char]) -> Arg {
    let mut arg = Arg::new(arg_id(&spec.long)).long(spec.long.to_string()).help(spec.help.to_string());
    if let Some(short) = spec.short
        && !reserved_shorts.contains(&short)
    {
        arg = arg.short(short);
    }
    arg = match spec.value_name.as_ref() {
        Some(value_name) => arg.value_name(value_name.to_string()).num_args(1).action(if spec.repeatable {
            ArgAction::Append
        } else {
            ArgAction::Set
        }),
        None => arg.action(if spec.repeatable { ArgAction::Count } else { ArgAction::SetTrue }),
    };
    if let Some(default) = spec.default.as_ref() {
        arg = arg.default_value(default.to_string());
    }
    if let Some(var) = spec.env.as_ref() {
        arg = arg.env(var.to_string());
    }
    arg
}

/// The heading a distro's options have in `create --help` and on create's man page.
fn distro_heading(manifest: &Manifest) -> String {
    format!("{} options", manifest.name)
}

/// The `create` subcommand with a distro's options added.
pub fn with_distro_options(cli: Command, manifest: &Manifest) -> Command {
    let heading = distro_heading(manifest);
    cli.mut_subcommand("create", |create| {
        manifest
            .options
            .iter()
            .fold(create, |create, spec| create.arg(distro_arg(spec, CORE_SHORTS).help_heading(heading.clone())))
    })
}

/// The `image build` subcommand with a distro's options added.
pub fn with_image_distro_options(cli: Command, manifest: &Manifest) -> Command {
    let heading = distro_heading(manifest);
    cli.mut_subcommand("image", |image| {
        image.mut_subcommand("build", |build| {
            manifest
                .options
                .iter()
                .fold(build, |build, spec| build.arg(distro_arg(spec, CORE_SHORTS).help_heading(heading.clone())))
        })
    })
}

/// The `create` subcommand with the options of every distro in `manifests` at once, and
/// `--distro` offering their names, for completion scripts (which cannot make an option depend
/// on another's value).
///
/// An option several distros declare (`--release`) appears once, with the first one's help; a
/// short letter is kept only for the first option that claims it, as clap refuses two options
/// with one short.
pub fn with_every_distro_option<'a>(cli: Command, manifests: impl IntoIterator<Item = &'a Manifest>) -> Command {
    let manifests: Vec<&Manifest> = manifests.into_iter().collect();
    let names: Vec<String> = manifests.iter().map(|m| m.name.to_string()).collect();
    cli.mut_subcommand("create", |create| {
        let mut shorts = CORE_SHORTS.to_vec();
        let mut longs: Vec<&str> = Vec::new();
        let mut create = if names.is_empty() {
            create
        } else {
            create.mut_arg("distro", |distro| distro.value_parser(clap::builder::PossibleValuesParser::new(names)))
        };
        for spec in manifests.iter().flat_map(|m| m.options.iter()) {
            if longs.contains(&spec.long.as_str()) {
                continue;
            }
            longs.push(spec.long.as_str());
            let arg = distro_arg(spec, &shorts).help_heading("distro options");
            shorts.extend(arg.get_short());
            create = create.arg(arg);
        }
        create
    })
}

/// A command holding only `manifest`'s options, under the heading they have in
/// `create --distro D --help`, for that distro's section of create's man page.
pub fn distro_options_command(manifest: &Manifest) -> Command {
    let heading = distro_heading(manifest);
    Command::new("create")
        .disable_help_flag(true)
        .disable_version_flag(true)
        .args(manifest.options.iter().map(|spec| distro_arg(spec, CORE_SHORTS).help_heading(heading.clone())))
}

/// The distro options from parsed matches: values for options that have
/// one (given, from the environment or defaulted), presence for flags given.
/// Also returns the options as typed on the command line, for the config header.
pub fn distro_values(manifest: &Manifest, matches: &ArgMatches) -> (Vec<OptionValue>, Vec<String>) {
    let mut values = Vec::new();
    let mut typed = Vec::new();
    for spec in manifest.options.iter() {
        let id = arg_id(&spec.long);
        let from_command_line = matches.value_source(&id) == Some(ValueSource::CommandLine);
        if spec.takes_value() {
            let given: Vec<String> = matches.get_many::<String>(&id).map(|v| v.cloned().collect()).unwrap_or_default();
            if given.is_empty() {
                continue;
            }
            if from_command_line {
                for value in &given {
                    typed.push(format!("--{}", spec.long));
                    typed.push(if spec.secret { "<redacted>".to_owned() } else { value.clone() });
                }
            }
            values.push(OptionValue { long: spec.long.clone(), values: given });
        } else {
            let count =
                if spec.repeatable { usize::from(matches.get_count(&id)) } else { usize::from(matches.get_flag(&id)) };
            if count > 0 {
                typed.extend(std::iter::repeat_n(format!("--{}", spec.long), count));
                values.push(OptionValue { long: spec.long.clone(), values: Default::default() });
            }
        }
    }
    (values, typed)
}

/// The values of the options the plugin marks secret that were given on the
/// command line, for [`crate::argv::hide`].
pub fn secret_values(manifest: &Manifest, matches: &ArgMatches) -> Vec<String> {
    manifest
        .options
        .iter()
        .filter(|spec| spec.secret && spec.takes_value())
        .map(|spec| arg_id(&spec.long))
        .filter(|id| matches.value_source(id) == Some(ValueSource::CommandLine))
        .flat_map(|id| matches.get_many::<String>(&id).map(|v| v.cloned().collect::<Vec<_>>()).unwrap_or_default())
        .collect()
}

/// The values of every secret option, however given (command line, environment), for the
/// log to redact.
pub fn all_secret_values(manifest: &Manifest, matches: &ArgMatches) -> Vec<String> {
    manifest
        .options
        .iter()
        .filter(|spec| spec.secret && spec.takes_value())
        .flat_map(|spec| {
            matches.get_many::<String>(&arg_id(&spec.long)).map(|v| v.cloned().collect::<Vec<_>>()).unwrap_or_default()
        })
        .collect()
}

/// Finds the value of `--distro` in raw arguments before clap runs, so the
/// distro's options can be added to the parser.
pub fn distro_in_args(args: &[std::ffi::OsString]) -> Option<String> {
    let mut iter = args.iter().map(|a| a.to_string_lossy());
    while let Some(arg) = iter.next() {
        if arg == "--" {
            break;
        }
        if arg == "--distro" {
            return iter.next().map(|v| v.into_owned());
        }
        if let Some(value) = arg.strip_prefix("--distro=") {
            return Some(value.to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn manifest() -> Manifest {
        Manifest::new("demo", "1.0.0", "demo")
            .option(OptionSpec::value("release", "CODENAME", "release").short('r').default_value("jammy"))
            .option(OptionSpec::value("variant", "V", "variant").short('v'))
            .option(OptionSpec::value("packages", "LIST", "extra").repeatable())
            .option(OptionSpec::flag("trim", "trim").short('x'))
            .option(OptionSpec::value("password", "PW", "password").secret())
    }

    fn parse(args: &[&str]) -> Result<ArgMatches, clap::Error> {
        with_distro_options(Cli::command(), &manifest()).try_get_matches_from(args)
    }

    #[test]
    fn distro_options_parse_with_defaults_and_repeats() {
        let m = parse(&["lxc-tmpl", "create", "--distro", "demo", "-n", "c1", "--packages", "a", "--packages=b", "-x"])
            .unwrap();
        let (_, sub) = m.subcommand().unwrap();
        let (values, typed) = distro_values(&manifest(), sub);
        let get = |l: &str| {
            values.iter().find(|v| v.long == l).map(|v| v.values.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(get("release"), Some(vec!["jammy".to_owned()]), "default applied");
        assert_eq!(get("packages"), Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(get("trim"), Some(vec![]));
        assert_eq!(get("variant"), None);
        assert_eq!(typed, ["--packages", "a", "--packages", "b", "--trim"], "defaults are not 'typed'");
    }

    #[test]
    fn secret_values_are_redacted_in_the_typed_parameters() {
        let m = parse(&["lxc-tmpl", "create", "--distro", "demo", "-n", "c1", "--password", "hunter2"]).unwrap();
        let (_, sub) = m.subcommand().unwrap();
        let (values, typed) = distro_values(&manifest(), sub);
        assert_eq!(typed, ["--password", "<redacted>"]);
        let password = values.iter().find(|v| v.long == "password").unwrap();
        assert_eq!(password.values[0], "hunter2", "the plugin still gets the value");
    }

    #[test]
    fn core_short_wins_over_plugin_short() {
        let m = parse(&["lxc-tmpl", "create", "--distro", "demo", "-n", "c1", "-v", "--variant", "minbase"]).unwrap();
        let (_, sub) = m.subcommand().unwrap();
        assert!(sub.get_flag("verbose"));
        assert_eq!(sub.get_one::<String>(&arg_id("variant")).unwrap(), "minbase");
    }

    #[test]
    fn every_distro_option_appears_once_for_completions() {
        let other = Manifest::new("other", "1.0.0", "other")
            .option(OptionSpec::value("release", "R", "release").short('r'))
            .option(OptionSpec::flag("extra", "extra").short('x'));
        // Building checks what clap refuses: one long or short twice.
        let mut cli = with_every_distro_option(Cli::command(), [&manifest(), &other]);
        cli.build();
        let create = cli.find_subcommand("create").unwrap();
        let longs: Vec<&str> = create.get_arguments().filter_map(|a| a.get_long()).collect();
        assert_eq!(longs.iter().filter(|l| **l == "release").count(), 1);
        let extra = create.get_arguments().find(|a| a.get_long() == Some("extra")).unwrap();
        assert_eq!(extra.get_short(), None, "-x is demo's --trim");
        let distro = create.get_arguments().find(|a| a.get_long() == Some("distro")).unwrap();
        let names: Vec<String> = distro.get_possible_values().iter().map(|v| v.get_name().to_owned()).collect();
        assert_eq!(names, ["demo", "other"]);
    }

    #[test]
    fn unknown_distro_option_is_an_error() {
        assert!(parse(&["lxc-tmpl", "create", "--distro", "demo", "-n", "c1", "--nope"]).is_err());
    }

    #[test]
    fn finds_distro_before_parsing() {
        let args: Vec<std::ffi::OsString> = ["create", "-n", "x", "--distro=busybox"].iter().map(Into::into).collect();
        assert_eq!(distro_in_args(&args).as_deref(), Some("busybox"));
        let args: Vec<std::ffi::OsString> = ["create", "--distro", "ubuntu"].iter().map(Into::into).collect();
        assert_eq!(distro_in_args(&args).as_deref(), Some("ubuntu"));
        let args: Vec<std::ffi::OsString> = ["create", "--", "--distro", "x"].iter().map(Into::into).collect();
        assert_eq!(distro_in_args(&args), None);
    }
}
