//! The Debian-family parts of the fake host for hook-level unit tests
//! (feature `test-support`), built on the plugin API's
//! [`testing::FakeHost`](lxc_tmpl_plugin_api::testing::FakeHost): a host that
//! has debootstrap and acts like it ([`FakeHost::debootstrap_host`],
//! [`debootstrap_responder`]: debootstrap, useradd, groupadd, locale-gen and
//! `ssh-keygen -A` change the in-memory rootfs as the real tools would, the
//! host's `ssh-keygen` writes a fresh key pair into a host dir), the
//! made-up "Testix" archive for tests of the shared steps, and checks of
//! refusals and option docs. The generic fake, [`with_host`], [`run_hooks`]
//! and [`context`] are re-exported from the API's `testing` module.
//!
//! ```
//! use lxc_tmpl_deb::fake::{FakeHost, with_host};
//! let mut fake = FakeHost::sealed();
//! fake.mkdir("etc");
//! with_host(&mut fake, |host| host.write_file("etc/hostname", b"c1\n", 0o644)).unwrap();
//! assert_eq!(fake.text("etc/hostname"), "c1\n");
//! ```

use std::{
    ops::{Deref, DerefMut},
    sync::atomic::{AtomicU64, Ordering},
};

pub use lxc_tmpl_plugin_api::testing::{
    Node, RecordedCommand, World, build_cache_entry, context, output, run_hooks, run_hooks_from_cache, with_host,
};
use lxc_tmpl_plugin_api::{CommandOutput, Distro, ErrorKind, HookContext, Manifest, PluginError, RunPlace, testing};

use crate::{
    debootstrap::Keyring,
    options::BootstrapOptions,
    plan::{Archive, DebPlan},
    release::ReleaseTable,
    sources::Mirrors,
    system::{LocaleGen, NetworkStyle},
};

/// The API's [`testing::FakeHost`] (everything is reached through `Deref`),
/// with the constructors and queries of a debootstrap host.
#[derive(Debug)]
pub struct FakeHost(pub testing::FakeHost);

impl Deref for FakeHost {
    type Target = testing::FakeHost;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for FakeHost {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// An ssh public key, as `--auth-key` files hold them.
pub const PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host\n";

impl FakeHost {
    /// An empty rootfs and an empty host; see [`testing::FakeHost::sealed`].
    pub fn sealed() -> Self {
        Self(testing::FakeHost::sealed())
    }

    /// A host that can build a debootstrap rootfs: debootstrap, the
    /// debootstrap scripts named in `scripts`, LXC's `common.conf` and
    /// `<lxc_name>.common.conf`, the distro's `keyring` (text `archive
    /// keys`), a fixture keyring `/fixture.gpg` (`fixture keys`), an
    /// `--auth-key` file `/key.pub` ([`PUBLIC_KEY`]), the time zone
    /// `Etc/UTC`, `ssh-keygen`, apt 2.6 in the rootfs, and
    /// [`debootstrap_responder`].
    pub fn debootstrap_host(scripts: &[&str], lxc_name: &str, keyring: &Keyring) -> Self {
        let mut fake = Self::sealed();
        for file in ["/usr/sbin/debootstrap", "/usr/share/lxc/config/common.conf"] {
            fake.put_host(file, "");
        }
        fake.put_host(&format!("/usr/share/lxc/config/{lxc_name}.common.conf"), "");
        for script in scripts {
            fake.put_host(&format!("/usr/share/debootstrap/scripts/{script}"), "");
        }
        fake.put_host(keyring.path, "archive keys");
        fake.put_host("/fixture.gpg", "fixture keys");
        fake.put_host("/key.pub", PUBLIC_KEY);
        fake.put_host("/etc/timezone", "Etc/UTC\n");
        fake.put_host("/usr/bin/ssh-keygen", "");
        fake.on("apt-get --version", output(0, "apt 2.6.1 (amd64)\n", ""));
        fake.set_responder(debootstrap_responder);
        fake
    }

    /// The debootstrap run: its place and its argv. Panics when debootstrap
    /// did not run.
    pub fn debootstrap_run(&self) -> (RunPlace, Vec<String>) {
        let run = self
            .commands
            .iter()
            .find(|c| c.argv[0].ends_with("/debootstrap"))
            .unwrap_or_else(|| panic!("debootstrap did not run: {:?}", self.lines()));
        (run.place, run.argv.clone())
    }
}

/// A responder that acts like the tools a debootstrap plugin runs:
/// debootstrap "installs" a small rootfs (apt-get, ssh-keygen, ifup, bash,
/// systemd, passwd/group/shadow with a locked root, the host's resolv.conf
/// and hostname, an ssh host key, tzdata as bookworm's leaves it: a zone
/// file, `/etc/timezone` and the `/etc/localtime` link; root's home);
/// useradd, groupadd, locale-gen (a `locale-archive`) and `ssh-keygen -A`
/// change it as the real tools would. The host's `ssh-keygen -t TYPE ... -C
/// COMMENT -f FILE` writes `FILE` and `FILE.pub`, a key pair never made
/// before (`ssh-TYPE KEY<n> COMMENT`).
pub fn debootstrap_responder(cmd: &RecordedCommand, world: &mut World<'_>) -> Option<CommandOutput> {
    match cmd.argv[0].rsplit('/').next().unwrap_or_default() {
        "debootstrap" if !cmd.argv.contains(&"--second-stage".to_owned()) => {
            for program in ["usr/bin/apt-get", "usr/bin/ssh-keygen", "sbin/ifup", "bin/bash", "usr/lib/systemd/systemd"]
            {
                world.put(program, b"", 0o755);
            }
            world.put("etc/passwd", b"root:x:0:0:root:/root:/bin/bash\n", 0o644);
            world.put("etc/group", b"root:x:0:\n", 0o644);
            world.put("etc/shadow", b"root:*:19000:0:99999:7:::\n", 0o640);
            world.put("etc/resolv.conf", b"nameserver 10.1.1.1\n", 0o644);
            world.put("etc/hostname", b"buildhost\n", 0o644);
            world.put("etc/ssh/ssh_host_ed25519_key", b"SECRET", 0o600);
            world.put("etc/ssh/ssh_host_ed25519_key.pub", b"ssh-ed25519 AAAA root@buildhost\n", 0o644);
            world.put("etc/apt/sources.list", b"deb http://mirror suite main\n", 0o644);
            world.put("usr/share/zoneinfo/Etc/UTC", b"TZif", 0o644);
            world.put("etc/timezone", b"Etc/UTC\n", 0o644);
            world.put("var/lib/dpkg/info/tzdata.list", b"/usr/share/zoneinfo\n", 0o644);
            world.insert("etc/localtime".into(), Node::Symlink { target: "/usr/share/zoneinfo/Etc/UTC".into() });
            world.insert("root".into(), Node::Dir { mode: 0o700 });
            Some(output(0, "I: Base system installed successfully.\n", ""))
        }
        "useradd" => {
            let name = cmd.argv.last()?;
            world.append("etc/passwd", format!("{name}:x:1000:1000::/home/{name}:/bin/bash\n").as_bytes());
            world.append("etc/shadow", format!("{name}:!:19000:0:99999:7:::\n").as_bytes());
            world.append("etc/group", format!("{name}:x:1000:\n").as_bytes());
            world.insert("home".into(), Node::Dir { mode: 0o755 });
            world.insert(format!("home/{name}"), Node::Dir { mode: 0o750 });
            Some(output(0, "", ""))
        }
        "groupadd" => {
            world.append("etc/group", format!("{}:x:27:\n", cmd.argv.last()?).as_bytes());
            Some(output(0, "", ""))
        }
        "ssh-keygen" if cmd.place == RunPlace::Host => {
            static MADE: AtomicU64 = AtomicU64::new(0);
            let n = MADE.fetch_add(1, Ordering::Relaxed);
            let arg = |flag: &str| cmd.argv.iter().position(|a| a == flag).and_then(|i| cmd.argv.get(i + 1));
            let (kind, comment, file) = (arg("-t")?, arg("-C")?, arg("-f")?);
            world.host_files.insert(file.clone(), format!("PRIVATE {kind} {n}\n").into_bytes());
            world.host_files.insert(format!("{file}.pub"), format!("ssh-{kind} KEY{n} {comment}\n").into_bytes());
            Some(output(0, "", ""))
        }
        "locale-gen" => {
            world.put("usr/lib/locale/locale-archive", b"archive", 0o644);
            Some(output(0, "", ""))
        }
        "ssh-keygen" => {
            world.put("etc/ssh/ssh_host_ed25519_key", b"NEW", 0o600);
            world.put("etc/ssh/ssh_host_ed25519_key.pub", b"ssh-ed25519 NEWKEY root@buildhost\n", 0o644);
            Some(output(0, "", ""))
        }
        _ => None,
    }
}

/// A minimal ELF header and program header table (a `PT_LOAD`, then a
/// `PT_INTERP` with `interp`, else a `PT_PHDR`), 64- or 32-bit, either byte
/// order: a stand-in for a static or dynamic program.
pub fn elf(wide: bool, big_endian: bool, interp: bool) -> Vec<u8> {
    let put = |data: &mut Vec<u8>, at: usize, len: usize, value: u64| {
        for i in 0..len {
            let shift = if big_endian { 8 * (len - 1 - i) } else { 8 * i };
            data[at + i] = (value >> shift) as u8;
        }
    };
    let (phoff, entsize) = if wide { (64, 56) } else { (52, 32) };
    let mut data = vec![0u8; phoff + 2 * entsize];
    data[..4].copy_from_slice(b"\x7fELF");
    data[4] = if wide { 2 } else { 1 };
    data[5] = if big_endian { 2 } else { 1 };
    let (off_at, off_len, ent_at, num_at) = if wide { (0x20, 8, 0x36, 0x38) } else { (0x1c, 4, 0x2a, 0x2c) };
    put(&mut data, off_at, off_len, phoff as u64);
    put(&mut data, ent_at, 2, entsize as u64);
    put(&mut data, num_at, 2, 2);
    put(&mut data, phoff, 4, 1);
    put(&mut data, phoff + entsize, 4, if interp { 3 } else { 6 });
    data
}

/// The archive of "Testix", a made-up debootstrap distro for tests of the
/// shared steps: keyring `/usr/share/keyrings/testix.gpg`, minbase, `main`
/// (sources: `main extra`), include `ssh`, a security suite and `-updates`.
pub fn testix_archive() -> Archive {
    Archive {
        distro: "Testix",
        lxc_config_name: "testix",
        cache_format: "testix-v1",
        keyring: Keyring { path: "/usr/share/keyrings/testix.gpg", package: "testix-keyring" },
        fallback_script: "sid",
        variant: Some("minbase".into()),
        components: vec!["main".into()],
        include: vec!["ssh".into()],
        sources_components: vec!["main".into(), "extra".into()],
        security_suite: Some("one-security".into()),
        updates: true,
        network: NetworkStyle::Ifupdown,
        locale_gen: LocaleGen::LocaleGenFile,
        multiarch: false,
    }
}

/// The plan of a Testix create: release `one` (version 1), amd64 or
/// arm64, default mirrors `http://a/testix` and `http://s/testix`.
pub fn testix_plan(ctx: &HookContext) -> Result<DebPlan, PluginError> {
    let table = ReleaseTable::parse_csv("version,codename,series,release\n1,One,one,2020-01-01\n", "testix")
        .map_err(PluginError::failed)?;
    let boot = BootstrapOptions::from_context(ctx, &["amd64", "arm64"])?;
    let defaults = Mirrors::new("http://a/testix", "http://s/testix");
    DebPlan::new(ctx, testix_archive(), table.releases()[0].clone(), boot, defaults, "2026-01-01".into())
}

/// A bad-input case for [`assert_refused`]: the options, the error kind and
/// a text the message must contain.
pub type Refused<'a> = (&'a [(&'a str, &'a [&'a str])], ErrorKind, &'a str);

/// Asserts that `validate` of `plugin` refuses each case (options of a
/// `distro` context) with the error kind and a message containing the text,
/// and that it ran nothing but host user lookups (`getent`).
#[track_caller]
pub fn assert_refused<D: Distro>(plugin: &D, fake: &mut FakeHost, distro: &str, cases: &[Refused<'_>]) {
    for (options, kind, expected) in cases {
        let ctx = context(distro, "x", options);
        let err = with_host(fake, |h| plugin.validate(&ctx, h)).expect_err("validate accepted bad input");
        assert_eq!(err.kind, *kind, "{options:?}: {}", err.message);
        assert!(err.message.contains(expected), "{options:?}: {}", err.message);
    }
    assert!(fake.commands.iter().all(|c| c.argv[0] == "getent"), "validate ran more: {:?}", fake.lines());
}

/// Asserts that a manifest offers every option of `longs`, that every
/// option says its default (in its help or as a default value) and that none
/// takes a long name of the host's (`flush-cache`, `debug`).
#[track_caller]
pub fn assert_options_documented(manifest: &Manifest, longs: &[&str]) {
    let offered: Vec<&str> = manifest.options.iter().map(|o| o.long.as_str()).collect();
    for long in longs {
        assert!(offered.contains(long), "--{long} missing: {offered:?}");
    }
    for option in manifest.options.iter() {
        let says = option.help.contains("default") || option.default.is_some();
        assert!(says, "--{} does not say its default", option.long);
        assert!(!["flush-cache", "debug"].contains(&option.long.as_str()), "--{} is a host option", option.long);
    }
}
