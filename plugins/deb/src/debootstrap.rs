//! Running debootstrap: the argument vector, the suite script, signature
//! checking and the keyring.
//!
//! Why debootstrap and not mmdebstrap (issue 11 asked to choose by the
//! numbers): the same minbase + lxc-debian include set of bookworm from the
//! local fixture mirror, on this project's 2-core machines, took 42.6 s with
//! mmdebstrap against 50.2 s with debootstrap on an idle machine, and 125.7
//! s against 128.5 s under a load of 6 (mmdebstrap with
//! `--dpkgopt=force-unsafe-io` took 149.1 s in that loaded run; later,
//! paired runs against a steady fsync load showed dpkg's unsafe-io saving
//! 10-28 %, which is why the build now runs with it: see
//! [`crate::apt::with_unsafe_io`]). 2-15 % does not pay for
//! a second bootstrap path with its own options, keyring handling and test
//! matrix; the rebuild cost is cut instead by keeping the downloaded
//! packages (`--cache-dir`, [`DebootstrapPlan::cache_dir`]). mmdebstrap
//! stays the candidate for rootless builds (its unshare mode) and for
//! slower disks. Measured again on an idle machine with the packages kept:
//! debootstrap 34.9 s on the root fs and 28.0 s on a tmpfs, mmdebstrap 39.1
//! s and 24.8 s; copying the 250 MB tmpfs result onto the root fs took 9.3
//! s, so building on a tmpfs gains nothing here either. Of debootstrap's
//! 34.9 s, 27 s are dpkg unpacking and configuring, which no package cache
//! can skip.

use lxc_tmpl_plugin_api::{CommandSpec, FileKind, Host, PluginError};

/// Where debootstrap keeps its suite scripts.
pub const SCRIPTS_DIR: &str = "/usr/share/debootstrap/scripts";

/// Where debootstrap is looked for on the host (a fixed list, not `PATH`).
pub const DEBOOTSTRAP_PATHS: &[&str] = &["/usr/sbin/debootstrap", "/usr/bin/debootstrap", "/sbin/debootstrap"];

/// How the downloaded archive is authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureCheck {
    /// Check the Release signature against this keyring (host path) and fail
    /// when it cannot be checked (`--keyring=K --force-check-gpg`).
    Keyring(String),
    /// Do not check (`--no-check-gpg`): only on explicit request.
    Skip,
}

/// A distro's archive keyring: the file debootstrap checks Release files
/// against unless `--keyring` names another, and the package that ships it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyring {
    /// The keyring file (`/usr/share/keyrings/debian-archive-keyring.gpg`).
    pub path: &'static str,
    /// Its package (`debian-archive-keyring`).
    pub package: &'static str,
}

/// The debootstrap variants a plugin accepts (`fakechroot` needs a
/// fakechroot environment, which a root create never has).
pub const VARIANTS: &[&str] = &["minbase", "buildd"];

/// One debootstrap run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebootstrapPlan {
    /// The suite (codename) to install.
    pub suite: String,
    /// Host path of the target directory.
    pub target: String,
    /// The archive mirror URL.
    pub mirror: String,
    /// The dpkg architecture.
    pub arch: String,
    /// `--variant`, `None` for debootstrap's default.
    pub variant: Option<String>,
    /// `--components`.
    pub components: Vec<String>,
    /// `--include`.
    pub include: Vec<String>,
    /// `--exclude`.
    pub exclude: Vec<String>,
    /// Signature checking.
    pub signature: SignatureCheck,
    /// The suite script, when debootstrap has none named after the suite
    /// (the 4th positional argument, `gutsy` for a new Ubuntu release).
    pub script: Option<String>,
    /// `--foreign`: only unpack; the second stage runs inside the rootfs
    /// (through an emulator, for a foreign architecture).
    pub foreign: bool,
    /// `--cache-dir`: a host directory where debootstrap keeps the `.deb`
    /// files it downloads and reuses those whose checksum the Release file
    /// still lists (debootstrap(8)); `None` to download everything.
    pub cache_dir: Option<String>,
}

impl DebootstrapPlan {
    /// What decides which package files a run may download, and so which
    /// package cache it shares ([`Host::package_cache_dir`]): the suite,
    /// the architecture and the mirror. The variant, components and include
    /// list only choose among those files.
    pub fn package_cache_key(&self) -> String {
        format!("debootstrap-packages suite={} arch={} mirror={}", self.suite, self.arch, self.mirror)
    }
}

impl DebootstrapPlan {
    /// The full argument vector, starting with `debootstrap` (the program
    /// path the caller found replaces it).
    pub fn argv(&self, program: &str) -> Vec<String> {
        let mut argv = vec![program.to_owned()];
        if let Some(variant) = &self.variant {
            argv.push(format!("--variant={variant}"));
        }
        argv.push(format!("--arch={}", self.arch));
        if self.foreign {
            argv.push("--foreign".to_owned());
        }
        if let Some(dir) = &self.cache_dir {
            argv.push(format!("--cache-dir={dir}"));
        }
        if !self.components.is_empty() {
            argv.push(format!("--components={}", self.components.join(",")));
        }
        if !self.include.is_empty() {
            argv.push(format!("--include={}", self.include.join(",")));
        }
        if !self.exclude.is_empty() {
            argv.push(format!("--exclude={}", self.exclude.join(",")));
        }
        match &self.signature {
            SignatureCheck::Keyring(keyring) => {
                argv.push(format!("--keyring={keyring}"));
                argv.push("--force-check-gpg".to_owned());
            }
            SignatureCheck::Skip => argv.push("--no-check-gpg".to_owned()),
        }
        argv.extend([self.suite.clone(), self.target.clone(), self.mirror.clone()]);
        if let Some(script) = &self.script {
            argv.push(script.clone());
        }
        argv
    }
}

/// Finds debootstrap on the host, or says how to get it.
pub fn find_debootstrap(host: &mut Host<'_>) -> Result<String, PluginError> {
    for path in DEBOOTSTRAP_PATHS {
        if host.host_file_kind(path)? == Some(FileKind::File) {
            return Ok((*path).to_owned());
        }
    }
    Err(PluginError::unsupported(format!(
        "debootstrap is not installed (looked in {}): apt-get install debootstrap",
        DEBOOTSTRAP_PATHS.join(", ")
    )))
}

/// The script argument for `suite`: `None` when debootstrap has a script of
/// that name, else `fallback` (which must exist), so that a release newer
/// than the host's debootstrap still works.
pub fn script_for(host: &mut Host<'_>, suite: &str, fallback: &str) -> Result<Option<String>, PluginError> {
    if host.host_file_kind(&format!("{SCRIPTS_DIR}/{suite}"))?.is_some() {
        return Ok(None);
    }
    if host.host_file_kind(&format!("{SCRIPTS_DIR}/{fallback}"))?.is_none() {
        return Err(PluginError::unsupported(format!(
            "debootstrap has no script for {suite} nor the generic {fallback} script in {SCRIPTS_DIR}: \
             upgrade debootstrap"
        )));
    }
    host.debug(&format!("debootstrap has no {suite} script: using {fallback}"));
    Ok(Some(fallback.to_owned()))
}

/// Runs debootstrap on the host; `http_proxy` is exported to it when given.
pub fn run_debootstrap(
    host: &mut Host<'_>,
    program: &str,
    plan: &DebootstrapPlan,
    http_proxy: Option<&str>,
) -> Result<(), PluginError> {
    // debootstrap mounts `/proc` and `/sys` inside the target while it runs.
    // No `unshare --mount` wrapper is needed for that: the host runs every
    // host command in a private mount namespace of its own (slave
    // propagation, killed if lxc-tmpl dies), so those mounts never reach the
    // host's mount table and vanish with debootstrap even when it is killed.
    let argv = plan.argv(program);
    let mut command = CommandSpec::on_host(&argv).unchecked();
    if let Some(proxy) = http_proxy {
        command = command.env("http_proxy", proxy).env("https_proxy", proxy);
    }
    host.info(&format!("running {}", argv.join(" ")));
    let out = host.run(&command)?;
    if out.status == 0 {
        return Ok(());
    }
    let text = format!("{}\n{}", out.stdout_text(), String::from_utf8_lossy(&out.stderr));
    Err(PluginError::failed(explain_debootstrap_failure(&text, out.status, plan)))
}

/// A one-line reason for a failed debootstrap run, from its output: the
/// last `E:` line, with a hint for the usual causes.
pub fn explain_debootstrap_failure(output: &str, status: i32, plan: &DebootstrapPlan) -> String {
    let errors: Vec<&str> = output.lines().map(str::trim).filter(|l| l.starts_with("E: ")).collect();
    let last = errors.last().map(|l| l.trim_start_matches("E: ")).unwrap_or("no error message");
    let hint = if last.contains("Release signature") || last.contains("Invalid Release") || last.contains("keyring") {
        match &plan.signature {
            SignatureCheck::Keyring(k) => {
                format!(": the Release file is not signed by a key in {k} (pass the right --keyring)")
            }
            SignatureCheck::Skip => String::new(),
        }
    } else if last.contains("Failed getting release file") || last.contains("Couldn't download") {
        format!(": is the mirror {} reachable and does it have {}?", plan.mirror, plan.suite)
    } else if last.contains("Couldn't find these debs") {
        ": the mirror lacks packages of the include list (or --packages)".to_owned()
    } else {
        String::new()
    };
    let tail: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = tail[tail.len().saturating_sub(5)..].join("\n    ");
    format!(
        "debootstrap of {} from {} failed (exit status {status}): {last}{hint}\n    {tail}",
        plan.suite, plan.mirror
    )
}

/// A stable 64-bit FNV-1a hash as 16 hex digits, for cache keys (not for
/// security: it only tells one keyring file content from another).
pub fn content_hash(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
    format!("{hash:016x}")
}

/// Chooses the keyring: `--keyring` if given (it must exist), else the
/// distro's keyring `default`;
/// `--no-check-gpg` only when explicitly asked, and never together with
/// `--keyring`. Relative paths are made absolute against the current directory.
pub fn choose_signature_check(
    host: &mut Host<'_>,
    keyring: Option<&str>,
    no_check_gpg: bool,
    default: &Keyring,
) -> Result<SignatureCheck, PluginError> {
    match (keyring, no_check_gpg) {
        (Some(_), true) => Err(PluginError::invalid_input(
            "--keyring and --no-check-gpg contradict each other: give only one".to_owned(),
        )),
        (None, true) => Ok(SignatureCheck::Skip),
        (Some(given), false) => {
            let path = absolute(given);
            match host.host_file_kind(&path)? {
                Some(FileKind::File) => Ok(SignatureCheck::Keyring(path)),
                Some(_) => Err(PluginError::invalid_input(format!("--keyring {given} is not a regular file"))),
                None => Err(PluginError::invalid_input(format!("--keyring {given}: no such file"))),
            }
        }
        (None, false) => match host.host_file_kind(default.path)? {
            Some(FileKind::File) => Ok(SignatureCheck::Keyring(default.path.to_owned())),
            _ => Err(PluginError::unsupported(format!(
                "the archive keyring {} is missing, so the download cannot be verified: \
                 apt-get install {}, or pass --keyring FILE \
                 (--no-check-gpg skips the check, which is not recommended)",
                default.path, default.package
            ))),
        },
    }
}

/// `path` made absolute against the current directory (unchanged when
/// already absolute or when the current directory is unknown).
pub fn absolute(path: &str) -> String {
    if path.starts_with('/') {
        return path.to_owned();
    }
    match std::env::current_dir() {
        Ok(dir) => dir.join(path).display().to_string(),
        Err(_) => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeHost, output, with_host};
    use lxc_tmpl_plugin_api::RunPlace;

    fn plan() -> DebootstrapPlan {
        DebootstrapPlan {
            suite: "jammy".into(),
            target: "/cache/staging.1".into(),
            mirror: "http://127.0.0.1:8080/ubuntu".into(),
            arch: "amd64".into(),
            variant: None,
            components: vec!["main".into(), "universe".into()],
            include: vec!["ssh".into(), "vim".into()],
            exclude: vec![],
            signature: SignatureCheck::Keyring("/k.gpg".into()),
            script: None,
            foreign: false,
            cache_dir: None,
        }
    }

    #[test]
    fn argv_with_a_package_cache() {
        let plan = DebootstrapPlan { cache_dir: Some("/c/ubuntu/packages/ab".into()), ..plan() };
        let argv = plan.argv("debootstrap");
        assert_eq!(argv[2], "--cache-dir=/c/ubuntu/packages/ab", "{argv:?}");
        // Options before the positional suite, target and mirror.
        assert_eq!(&argv[argv.len() - 3..], ["jammy", "/cache/staging.1", "http://127.0.0.1:8080/ubuntu"]);
        let other_variant = DebootstrapPlan { variant: Some("minbase".into()), include: vec![], ..plan.clone() };
        assert_eq!(plan.package_cache_key(), other_variant.package_cache_key(), "variants share the package files");
        let other_mirror = DebootstrapPlan { mirror: "http://m/ubuntu".into(), ..plan.clone() };
        assert_ne!(plan.package_cache_key(), other_mirror.package_cache_key());
    }

    #[test]
    fn argv_with_keyring() {
        assert_eq!(
            plan().argv("/usr/sbin/debootstrap"),
            [
                "/usr/sbin/debootstrap",
                "--arch=amd64",
                "--components=main,universe",
                "--include=ssh,vim",
                "--keyring=/k.gpg",
                "--force-check-gpg",
                "jammy",
                "/cache/staging.1",
                "http://127.0.0.1:8080/ubuntu",
            ]
        );
    }

    #[test]
    fn argv_with_variant_script_and_no_check() {
        let plan = DebootstrapPlan {
            variant: Some("minbase".into()),
            signature: SignatureCheck::Skip,
            script: Some("gutsy".into()),
            include: vec![],
            exclude: vec!["x".into()],
            suite: "noble".into(),
            foreign: true,
            ..plan()
        };
        let argv = plan.argv("debootstrap");
        assert_eq!(argv[1], "--variant=minbase");
        assert_eq!(argv[3], "--foreign");
        assert!(argv.contains(&"--no-check-gpg".to_owned()));
        assert!(argv.contains(&"--exclude=x".to_owned()));
        assert!(!argv.iter().any(|a| a.starts_with("--include") || a.starts_with("--keyring")));
        assert_eq!(&argv[argv.len() - 4..], ["noble", "/cache/staging.1", "http://127.0.0.1:8080/ubuntu", "gutsy"]);
    }

    #[test]
    fn script_fallback() {
        let mut fake = FakeHost::sealed();
        fake.put_host("/usr/share/debootstrap/scripts/jammy", "");
        fake.put_host("/usr/share/debootstrap/scripts/gutsy", "");
        assert_eq!(with_host(&mut fake, |h| script_for(h, "jammy", "gutsy")).unwrap(), None);
        assert_eq!(with_host(&mut fake, |h| script_for(h, "noble", "gutsy")).unwrap().as_deref(), Some("gutsy"));
        let err = with_host(&mut fake, |h| script_for(h, "noble", "sid")).unwrap_err();
        assert!(err.message.contains("upgrade debootstrap"), "{}", err.message);
    }

    #[test]
    fn keyring_choice() {
        let mut fake = FakeHost::sealed();
        let ubuntu = Keyring { path: "/usr/share/keyrings/ubuntu-archive-keyring.gpg", package: "ubuntu-keyring" };
        let default = ubuntu.path;
        let choose = |fake: &mut FakeHost, k: Option<&str>, skip| {
            with_host(fake, |h| choose_signature_check(h, k, skip, &ubuntu))
        };
        let err = choose(&mut fake, None, false).unwrap_err();
        assert!(err.message.contains("apt-get install ubuntu-keyring"), "{}", err.message);
        assert!(err.message.contains("--keyring"), "{}", err.message);
        fake.put_host(default, "k");
        assert_eq!(choose(&mut fake, None, false).unwrap(), SignatureCheck::Keyring(default.into()));
        assert_eq!(choose(&mut fake, None, true).unwrap(), SignatureCheck::Skip);
        assert!(choose(&mut fake, Some("/x.gpg"), false).unwrap_err().message.contains("no such file"));
        assert!(choose(&mut fake, Some("/x.gpg"), true).unwrap_err().message.contains("contradict"));
        fake.put_host("/x.gpg", "k");
        assert_eq!(choose(&mut fake, Some("/x.gpg"), false).unwrap(), SignatureCheck::Keyring("/x.gpg".into()));
    }

    #[test]
    fn failure_is_explained() {
        let mut fake = FakeHost::sealed();
        fake.on(
            "debootstrap",
            output(1, "I: Retrieving InRelease\n", "E: Failed getting release file http://x/dists/jammy/Release\n"),
        );
        fake.on("bad-sig", output(1, "", "E: Invalid Release signature\n"));
        let err = with_host(&mut fake, |h| run_debootstrap(h, "debootstrap", &plan(), Some("http://proxy:3128")))
            .unwrap_err();
        assert!(err.message.starts_with("debootstrap of jammy from http://127.0.0.1:8080/ubuntu failed (exit status 1): Failed getting release file"), "{}", err.message);
        assert!(err.message.contains("reachable"), "{}", err.message);
        assert_eq!(fake.commands[0].env_value("http_proxy"), Some("http://proxy:3128"));
        let err = with_host(&mut fake, |h| run_debootstrap(h, "bad-sig", &plan(), None)).unwrap_err();
        assert!(err.message.contains("not signed by a key in /k.gpg"), "{}", err.message);

        // Run as it is: the host isolates host commands itself.
        fake.on("good", output(0, "", ""));
        with_host(&mut fake, |h| run_debootstrap(h, "good", &plan(), None)).unwrap();
        let last = fake.commands.last().unwrap();
        assert_eq!((last.argv[0].as_str(), last.place), ("good", RunPlace::Host));
        assert!(fake.warnings().is_empty(), "{:?}", fake.warnings());
    }

    #[test]
    fn hashes_are_stable() {
        assert_eq!(content_hash(b""), "cbf29ce484222325");
        assert_ne!(content_hash(b"a"), content_hash(b"b"));
    }
}
