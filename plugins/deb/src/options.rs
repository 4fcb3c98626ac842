//! The options debootstrap-based plugins share, described once (names,
//! short flags of the old templates, environment variables, help with
//! defaults) and parsed once.
//!
//! A plugin picks the specs it offers ([`bootstrap_options`],
//! [`user_options`], [`locale_option`], ...) and parses the values into
//! [`BootstrapOptions`] and [`UserOptions`]. Distro-specific wording (the
//! default mirror, the keyring package) comes in through [`DistroTexts`].

use lxc_tmpl_plugin_api::{HookContext, Host, OptionSpec, PluginError};

use crate::{
    apt::{ProxySetting, split_package_list, validate_package_names},
    arch::{normalize_arch, validate_arch},
    debootstrap::VARIANTS,
    sources::validate_mirror,
    users::{HostUser, Password, choose_password, host_user, read_auth_key, validate_user_name},
};

/// `-r/--release`.
pub const RELEASE: &str = "release";
/// `-a/--arch`.
pub const ARCH: &str = "arch";
/// `-v/--variant`.
pub const VARIANT: &str = "variant";
/// `--packages`.
pub const PACKAGES: &str = "packages";
/// `--mirror` (`$MIRROR`).
pub const MIRROR: &str = "mirror";
/// `--security-mirror` (`$SECURITY_MIRROR`).
pub const SECURITY_MIRROR: &str = "security-mirror";
/// `--keyring`.
pub const KEYRING: &str = "keyring";
/// `--no-check-gpg`.
pub const NO_CHECK_GPG: &str = "no-check-gpg";
/// `--http-proxy` (`$HTTP_PROXY`).
pub const HTTP_PROXY: &str = "http-proxy";
/// `-u/--user`.
pub const USER: &str = "user";
/// `--password`.
pub const PASSWORD: &str = "password";
/// `--password-file`.
pub const PASSWORD_FILE: &str = "password-file";
/// `-b/--bindhome`.
pub const BINDHOME: &str = "bindhome";
/// `-S/--auth-key`.
pub const AUTH_KEY: &str = "auth-key";
/// `--locale` (`$LANG`).
pub const LOCALE: &str = "locale";
/// `-x/--trim`.
pub const TRIM: &str = "trim";
/// `-I/--interpreter-path`.
pub const INTERPRETER_PATH: &str = "interpreter-path";

/// The distro-specific words in the shared options' help.
#[derive(Debug, Clone, Copy)]
pub struct DistroTexts<'a> {
    /// `Ubuntu`.
    pub distro: &'a str,
    /// How the default release is chosen (`the host's release on Ubuntu, else the latest LTS`).
    pub default_release: &'a str,
    /// Example release names (`jammy or 22.04`).
    pub release_example: &'a str,
    /// The default archive mirror, in words.
    pub default_mirror: &'a str,
    /// The default security mirror, in words.
    pub default_security_mirror: &'a str,
    /// The default keyring file.
    pub default_keyring: &'a str,
    /// The package that ships it.
    pub keyring_package: &'a str,
    /// The default user, `None` when the distro creates no user by default.
    pub default_user: Option<&'a str>,
}

/// Release, architecture, variant, packages, mirrors, keyring, signature
/// opt-out and proxy.
pub fn bootstrap_options(texts: &DistroTexts<'_>) -> Vec<OptionSpec> {
    vec![
        OptionSpec::value(
            RELEASE,
            "RELEASE",
            &format!(
                "{} release by codename or version, e.g. {} (default: {})",
                texts.distro, texts.release_example, texts.default_release
            ),
        )
        .short('r'),
        OptionSpec::value(
            ARCH,
            "ARCH",
            "container architecture, dpkg name (default: the host's; others need qemu-user-static)",
        )
        .short('a'),
        OptionSpec::value(
            VARIANT,
            "VARIANT",
            &format!(
                "debootstrap variant: {} (default: debootstrap's own, with Priority: important packages)",
                VARIANTS.join(" or ")
            ),
        )
        .short('v'),
        OptionSpec::value(
            PACKAGES,
            "PKG,...",
            "extra packages installed into this container (comma-separated, repeatable; not cached) (default: none)",
        )
        .repeatable(),
        OptionSpec::value(
            MIRROR,
            "URL",
            &format!(
                "archive mirror for the download and sources.list (default: $MIRROR, else {})",
                texts.default_mirror
            ),
        )
        .env("MIRROR"),
        OptionSpec::value(
            SECURITY_MIRROR,
            "URL",
            &format!(
                "security mirror for sources.list (default: $SECURITY_MIRROR, else {})",
                texts.default_security_mirror
            ),
        )
        .env("SECURITY_MIRROR"),
        OptionSpec::value(
            KEYRING,
            "FILE",
            &format!(
                "keyring that must have signed the mirror's Release file; installed into the container's \
                 /etc/apt/trusted.gpg.d (default: {}, from {}; signatures are always checked)",
                texts.default_keyring, texts.keyring_package
            ),
        ),
        OptionSpec::flag(
            NO_CHECK_GPG,
            "download without checking the archive signature (explicit opt-out, warns; default: checked)",
        ),
        OptionSpec::value(
            HTTP_PROXY,
            "none|apt|URL",
            "proxy for the download and the container's apt (70proxy): none, apt (the host's apt proxy) or a URL; \
             no LAN autodetection (default: $HTTP_PROXY, else none)",
        )
        .env("HTTP_PROXY")
        // A proxy URL can carry a user and password (`http://user:pw@host:3128`).
        .secret(),
    ]
}

/// User, password, password file, bindhome and auth key.
pub fn user_options(texts: &DistroTexts<'_>) -> Vec<OptionSpec> {
    // With a default value the CLI prints `[default: ...]` itself.
    let user = match texts.default_user {
        Some(default) => OptionSpec::value(USER, "USER", "user to create, in the sudo group").default_value(default),
        None => OptionSpec::value(USER, "USER", "user to create, in the sudo group (default: none)"),
    }
    .short('u');
    vec![
        user,
        OptionSpec::value(
            PASSWORD,
            "PASSWORD",
            "password of the user; visible in ps until lxc-tmpl starts (and in lxc-create's command line and config header), prefer \
             --password-file (default: none: the password is locked, get in with lxc-attach or --auth-key)",
        )
        .secret(),
        OptionSpec::value(
            PASSWORD_FILE,
            "FILE",
            "read the user's password from the first line of FILE (default: none: the password is locked)",
        ),
        OptionSpec::value(
            BINDHOME,
            "USER",
            "bind-mount host USER's home into the container and create USER there (same uid, locked password, \
             sudo) instead of --user; the host's password hash is not copied (default: none)",
        )
        .short('b'),
        auth_key_option("the user's ~/.ssh/authorized_keys"),
    ]
}

/// `-S/--auth-key`, installed as `where_to` (`root's /root/.ssh/authorized_keys`).
pub fn auth_key_option(where_to: &str) -> OptionSpec {
    OptionSpec::value(AUTH_KEY, "FILE", &format!("ssh public key file installed as {where_to} (default: none)"))
        .short('S')
}

/// `-I/--interpreter-path`: a static qemu interpreter for a foreign `--arch`.
pub fn interpreter_option() -> OptionSpec {
    OptionSpec::value(
        INTERPRETER_PATH,
        "FILE",
        "static qemu interpreter (qemu-<cpu>-static of qemu-user-static) registered in binfmt_misc, for a foreign \
         --arch: debootstrap --foreign, then the second stage runs through it inside the rootfs (copied in when \
         its binfmt_misc handler lacks the F flag) (default: none; a foreign --arch then needs a qemu handler \
         with the F flag)",
    )
    .short('I')
}

/// `--locale` from `$LANG`.
pub fn locale_option() -> OptionSpec {
    OptionSpec::value(
        LOCALE,
        "LOCALE",
        "locale generated and set as LANG in the container (default: $LANG, en_US.UTF-8 when unset, C or POSIX)",
    )
    .env("LANG")
}

/// `-x/--trim` with a distro-specific description.
pub fn trim_option(help: &str) -> OptionSpec {
    OptionSpec::flag(TRIM, help).short('x')
}

/// The bootstrap options of one create, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapOptions {
    /// The container architecture (dpkg name); the host's by default.
    pub arch: String,
    /// The debootstrap variant.
    pub variant: Option<String>,
    /// `--packages`, split and checked.
    pub packages: Vec<String>,
    /// `--mirror`/`$MIRROR`, checked; `None` for the distro default.
    pub mirror: Option<String>,
    /// `--security-mirror`/`$SECURITY_MIRROR`, checked.
    pub security_mirror: Option<String>,
    /// `--keyring` as given.
    pub keyring: Option<String>,
    /// `--no-check-gpg`.
    pub no_check_gpg: bool,
    /// `--http-proxy`/`$HTTP_PROXY`.
    pub proxy: ProxySetting,
    /// `-I/--interpreter-path` as given (checked with the architecture, see
    /// [`check_interpreter`](crate::arch::check_interpreter)).
    pub interpreter: Option<String>,
}

impl BootstrapOptions {
    /// Reads and checks the options; `arches` are the supported ones.
    pub fn from_context(ctx: &HookContext, arches: &[&str]) -> Result<Self, PluginError> {
        let arch = normalize_arch(ctx.option(ARCH).unwrap_or(&ctx.facts.arch));
        validate_arch(&arch, arches)?;
        let variant = match ctx.option(VARIANT).map(str::trim) {
            None | Some("" | "default" | "-") => None,
            Some(v) if VARIANTS.contains(&v) => Some(v.to_owned()),
            Some(v) => {
                return Err(PluginError::invalid_input(format!(
                    "unknown --variant '{v}': choose {} (or leave it out for debootstrap's default)",
                    VARIANTS.join(" or ")
                )));
            }
        };
        let packages = validate_package_names(&split_package_list(&ctx.option_values(PACKAGES)))?;
        let mirror =
            ctx.option(MIRROR).filter(|m| !m.trim().is_empty()).map(|m| validate_mirror(MIRROR, m)).transpose()?;
        let security_mirror = ctx
            .option(SECURITY_MIRROR)
            .filter(|m| !m.trim().is_empty())
            .map(|m| validate_mirror(SECURITY_MIRROR, m))
            .transpose()?;
        Ok(Self {
            arch,
            variant,
            packages,
            mirror,
            security_mirror,
            keyring: ctx.option(KEYRING).map(str::to_owned),
            no_check_gpg: ctx.flag(NO_CHECK_GPG),
            proxy: ProxySetting::parse(ctx.option(HTTP_PROXY))?,
            interpreter: ctx.option(INTERPRETER_PATH).filter(|p| !p.trim().is_empty()).map(str::to_owned),
        })
    }

    /// The variant as written in cache keys and messages.
    pub fn variant_name(&self) -> &str {
        self.variant.as_deref().unwrap_or("default")
    }
}

/// An `--auth-key` file, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthKey {
    /// The host path.
    pub path: String,
    /// Its keys.
    pub keys: String,
}

/// The user options of one create, checked (files read, host user looked up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserOptions {
    /// The user to create; `None` with `--bindhome` or when the distro
    /// creates none.
    pub user: Option<String>,
    /// Its password.
    pub password: Password,
    /// The host user whose home is bind-mounted.
    pub bindhome: Option<HostUser>,
    /// The authorized keys.
    pub auth_key: Option<AuthKey>,
}

impl UserOptions {
    /// Reads and checks the options: the user name, the password file, the
    /// key file and (`getent` on the host) the bindhome user.
    pub fn from_context(ctx: &HookContext, host: &mut Host<'_>) -> Result<Self, PluginError> {
        let password = choose_password(host, ctx.option(PASSWORD), ctx.option(PASSWORD_FILE))?;
        let auth_key = match ctx.option(AUTH_KEY) {
            Some(path) => Some(AuthKey { path: path.to_owned(), keys: read_auth_key(host, path)? }),
            None => None,
        };
        let bindhome = match ctx.option(BINDHOME) {
            Some(name) => {
                validate_user_name(BINDHOME, name)?;
                let found = host_user(host, name)?.ok_or_else(|| {
                    PluginError::invalid_input(format!("--bindhome {name}: the host has no user {name}"))
                })?;
                crate::users::validate_bind_home(&found.entry.home, name)?;
                Some(found)
            }
            None => None,
        };
        let user = match (&bindhome, ctx.option(USER)) {
            (Some(_), _) => None,
            (None, Some(user)) => {
                validate_user_name(USER, user)?;
                Some(user.to_owned())
            }
            (None, None) => None,
        };
        Ok(Self { user, password, bindhome, auth_key })
    }

    /// The login name the container gets (the bindhome user or `--user`).
    pub fn login(&self) -> Option<&str> {
        self.bindhome.as_ref().map(|b| b.entry.name.as_str()).or(self.user.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeHost, context, output, with_host};

    const TEXTS: DistroTexts<'static> = DistroTexts {
        distro: "Ubuntu",
        default_release: "the host's on Ubuntu, else the latest LTS",
        release_example: "jammy or 22.04",
        default_mirror: "http://archive.ubuntu.com/ubuntu",
        default_security_mirror: "http://security.ubuntu.com/ubuntu",
        default_keyring: "/usr/share/keyrings/ubuntu-archive-keyring.gpg",
        keyring_package: "ubuntu-keyring",
        default_user: Some("ubuntu"),
    };

    #[test]
    fn specs_keep_the_old_short_flags_and_say_their_defaults() {
        let specs: Vec<OptionSpec> = bootstrap_options(&TEXTS).into_iter().chain(user_options(&TEXTS)).collect();
        let short = |long: &str| specs.iter().find(|s| s.long == long).and_then(|s| s.short);
        assert_eq!(short(RELEASE), Some('r'));
        assert_eq!(short(ARCH), Some('a'));
        assert_eq!(short(VARIANT), Some('v'));
        assert_eq!(short(USER), Some('u'));
        assert_eq!(short(BINDHOME), Some('b'));
        assert_eq!(short(AUTH_KEY), Some('S'));
        for spec in &specs {
            let says = spec.help.contains("default") || spec.default.is_some();
            assert!(says, "--{} does not say its default: {}", spec.long, spec.help);
        }
        let env = |long: &str| specs.iter().find(|s| s.long == long).and_then(|s| s.env.clone());
        assert_eq!(env(MIRROR).as_deref(), Some("MIRROR"));
        assert_eq!(env(HTTP_PROXY).as_deref(), Some("HTTP_PROXY"));
        assert!(specs.iter().find(|s| s.long == PACKAGES).unwrap().repeatable);
    }

    #[test]
    fn bootstrap_values() {
        let ctx = context(
            "ubuntu",
            "u1",
            &[
                (ARCH, &["x86_64"]),
                (VARIANT, &["minbase"]),
                (PACKAGES, &["vim,curl", "git"]),
                (MIRROR, &["http://127.0.0.1:1/ubuntu/"]),
                (NO_CHECK_GPG, &[]),
                (HTTP_PROXY, &["none"]),
            ],
        );
        let opts = BootstrapOptions::from_context(&ctx, &["amd64", "i386"]).unwrap();
        assert_eq!(opts.arch, "amd64");
        assert_eq!(opts.variant.as_deref(), Some("minbase"));
        assert_eq!(opts.packages, ["vim", "curl", "git"]);
        assert_eq!(opts.mirror.as_deref(), Some("http://127.0.0.1:1/ubuntu"));
        assert_eq!(opts.security_mirror, None);
        assert!(opts.no_check_gpg);
        assert_eq!(opts.proxy, ProxySetting::None);

        let defaults = BootstrapOptions::from_context(&context("ubuntu", "u1", &[]), &["amd64"]).unwrap();
        assert_eq!(defaults.arch, "amd64", "the host's");
        assert_eq!(defaults.variant_name(), "default");

        let bad = [
            (ARCH, "sparc", "unknown architecture"),
            (VARIANT, "fakechroot", "unknown --variant"),
            (MIRROR, "x", "not a mirror URL"),
            (PACKAGES, "a;b", "not a package name"),
        ];
        for (long, value, expected) in bad {
            let values = [value];
            let err =
                BootstrapOptions::from_context(&context("ubuntu", "u1", &[(long, &values)]), &["amd64"]).unwrap_err();
            assert!(err.message.contains(expected), "{long}={value}: {}", err.message);
        }
    }

    #[test]
    fn user_values() {
        let mut fake = FakeHost::sealed();
        let opts =
            with_host(&mut fake, |h| UserOptions::from_context(&context("ubuntu", "u1", &[(USER, &["ubuntu"])]), h))
                .unwrap();
        assert_eq!(opts.login(), Some("ubuntu"));
        assert_eq!(opts.password, Password::Locked);

        let err = with_host(&mut fake, |h| {
            UserOptions::from_context(&context("ubuntu", "u1", &[(AUTH_KEY, &["/nope.pub"])]), h)
        })
        .unwrap_err();
        assert!(err.message.contains("--auth-key /nope.pub: no such file"), "{}", err.message);

        fake.on("getent passwd ghost", output(2, "", ""));
        let err =
            with_host(&mut fake, |h| UserOptions::from_context(&context("ubuntu", "u1", &[(BINDHOME, &["ghost"])]), h))
                .unwrap_err();
        assert!(err.message.contains("--bindhome ghost: the host has no user ghost"), "{}", err.message);

        fake.on("getent passwd alice", output(0, "alice:x:1500:1500::/home/alice:/bin/bash\n", ""));
        fake.on("getent group 1500", output(0, "alice:x:1500:\n", ""));
        let opts = with_host(&mut fake, |h| {
            UserOptions::from_context(&context("ubuntu", "u1", &[(USER, &["ubuntu"]), (BINDHOME, &["alice"])]), h)
        })
        .unwrap();
        assert_eq!(opts.user, None, "bindhome replaces the created user");
        assert_eq!(opts.login(), Some("alice"));
    }
}
