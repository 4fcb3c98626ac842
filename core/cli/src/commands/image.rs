//! `lxc-tmpl image build`: the distro's options and the image's choices
//! turned into a request for the host's [`image::build`]; `lxc-tmpl image
//! publish`: image directories added to a simplestreams tree by
//! [`image::publish::publish`].

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::ArgMatches;
use lxc_tmpl_host::{
    create::Creator,
    facts,
    image::{
        self, Compression, ImageRequest,
        incus::{IncusLayout, LayoutError},
        publish::{PublishRequest, publish as publish_images},
        simplestreams::Added,
    },
    lxcconf::{BaseConfig, Dialect},
    plugin::LoadedPlugin,
    request::{CreateSpec, MappedIds},
    runner::Runner,
};

use crate::{
    cli::{ImageBuildArgs, ImagePublishArgs, distro_values},
    report::{CliReporter, Display, Verbosity},
};

/// `SOURCE_DATE_EPOCH` (reproducible-builds.org: a decimal count of seconds
/// since 1970), if set.
fn source_date_epoch() -> Result<Option<i64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) => text.trim().parse::<i64>().map(Some).map_err(|_| {
            anyhow::Error::new(crate::UsageError(format!(
                "SOURCE_DATE_EPOCH='{text}' is not a number of seconds since 1970: set it to one (e.g. $(git log -1 --format=%ct)) or unset it"
            )))
        }),
        Err(_) => Ok(None),
    }
}

/// Whether `tool` is a file in `PATH`.
fn in_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// Whether the user gave `id` on the command line (not its default).
fn given(matches: &ArgMatches, id: &str) -> bool {
    matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
}

/// The Incus files the options ask for; checked before any work.
fn incus_layout(args: &ImageBuildArgs, matches: &ArgMatches) -> Result<IncusLayout> {
    let stray = ["incus_type", "incus_rootfs"].into_iter().find(|id| given(matches, id));
    if let (false, Some(option)) = (args.format.has_incus(), stray) {
        bail!(crate::UsageError(format!(
            "--{} applies to Incus images: add --format incus or --format both, or drop it",
            option.replace('_', "-")
        )));
    }
    IncusLayout::choose(args.incus_type, args.incus_rootfs, in_path(image::squashfs::TOOL)).map_err(|e| match e {
        LayoutError::UnifiedSquashfs => anyhow::Error::new(crate::UsageError(e.to_string())),
        LayoutError::NoMksquashfs => anyhow::Error::new(e),
    })
}

/// `lxc-tmpl image build`.
pub fn build(args: &ImageBuildArgs, matches: &ArgMatches, plugin: &LoadedPlugin) -> Result<()> {
    let epoch = source_date_epoch()?;
    let incus = incus_layout(args, matches)?;
    if !facts::running_as_root() {
        bail!("building an image needs root: run lxc-tmpl as root");
    }
    for tool in ["tar", args.compression.tool()] {
        if !in_path(tool) {
            bail!(
                "{tool} is not installed (not in PATH): install it to build images compressed with {}",
                args.compression
            );
        }
    }
    let verbosity = match (args.quiet, args.verbose) {
        (true, _) => Verbosity::Quiet,
        (_, true) => Verbosity::Verbose,
        _ => Verbosity::Normal,
    };
    // Progress as a create draws it; an image build keeps no log of its own (its output dir
    // holds only the image).
    let reporter = Arc::new(CliReporter::new(verbosity, Display::for_stderr(true), None));
    crate::argv::hide_secrets(&plugin.manifest, matches, reporter.as_ref());
    if args.compression == Compression::Zstd && args.format.has_lxc() {
        reporter.warn("zstd tarballs cannot be unpacked by LXC's local and download templates (they run tar -J): use --compression xz for lxc-create");
    }
    // The image's config is in LXC 2.1+ keys whatever LXC is installed here.
    let lxc_version = facts::installed_lxc_version()
        .filter(|v| !Dialect::for_version(v.clone()).is_legacy())
        .unwrap_or_else(|| semver::Version::new(5, 0, 0));
    let (options, parameters) = distro_values(&plugin.manifest, matches);
    // Name, places, base config and backing are the image build's own (see image::build).
    let spec = CreateSpec {
        name: String::new(),
        hostname: String::new(),
        lxcpath: Default::default(),
        container_dir: Default::default(),
        rootfs: None,
        base: BaseConfig::parse(""),
        cache_dir: args.cache_dir.clone(),
        flush_cache: args.flush_cache,
        backing: lxc_tmpl_host::backing::Backing::Dir,
        lxc_version,
        check_config: false,
        keep_on_failure: false,
        parameters,
        options,
        mapped: MappedIds::Given { uid: None, gid: None },
    };
    let runner = Runner::new(std::env::current_exe().context("cannot find the lxc-tmpl binary for the runner")?)
        .reporting_to(reporter.clone());
    let creator = Creator::new(plugin, &runner, reporter.as_ref());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let request = ImageRequest {
        format: args.format,
        incus,
        compression: args.compression,
        output: args.output.clone(),
        source_date_epoch: epoch,
        now,
    };
    let outcome = image::build(&creator, spec, &request);
    reporter.finish();
    let outcome = outcome?;
    if let Some(cache) = &outcome.cache {
        let how = if cache.built { "built" } else { "reused" };
        reporter.info(&format!("cache {how}: {}", cache.dir.display()));
    }
    if outcome.prepared.sshd_without_systemd {
        reporter.warn("the rootfs has sshd but no systemd to run the first-boot unit: instances start without ssh host keys until `ssh-keygen -A` runs in them");
    }
    if verbosity > Verbosity::Quiet {
        let listing: String = outcome.files.iter().map(|file| format!("{}\n", file.display())).collect();
        crate::stdout::print(&listing)?;
    }
    Ok(())
}

/// `lxc-tmpl image publish`.
pub fn publish(args: &ImagePublishArgs) -> Result<()> {
    // tar reads each image's metadata.yaml through the runner, whose namespaces need root.
    if !facts::running_as_root() {
        bail!("publishing images needs root (tar runs in the runner's namespaces): run lxc-tmpl as root");
    }
    let verbosity = match (args.quiet, args.verbose) {
        (true, _) => Verbosity::Quiet,
        (_, true) => Verbosity::Verbose,
        _ => Verbosity::Normal,
    };
    let reporter = Arc::new(CliReporter::new(verbosity, Display::for_stderr(true), None));
    let runner = Runner::new(std::env::current_exe().context("cannot find the lxc-tmpl binary for the runner")?)
        .reporting_to(reporter.clone());
    let request = PublishRequest {
        dirs: args.dirs.clone(),
        root: args.simplestreams.clone(),
        prune: args.prune.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
    };
    let outcome = publish_images(&runner, &request, |holder| {
        eprintln!("waiting for the lock of {}, held by {holder}", args.simplestreams.display());
    });
    reporter.finish();
    let outcome = outcome?;
    if verbosity > Verbosity::Quiet {
        let mut text = String::new();
        for image in &outcome.published {
            let what = match image.added {
                Added::New => "published",
                Added::Same => "already published (same files)",
            };
            text.push_str(&format!(
                "{what}: {} {} in {} (fingerprint {})\n",
                image.product,
                image.serial,
                image.dir.display(),
                image.fingerprints.join(", ")
            ));
        }
        for (product, serial) in &outcome.pruned {
            text.push_str(&format!("pruned: {product} {serial}\n"));
        }
        crate::stdout::print(&text)?;
    }
    Ok(())
}
