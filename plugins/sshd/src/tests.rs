//! Hook-level tests of the sshd plugin against the plugin API's fake host
//! ([`lxc_tmpl_plugin_api::testing`]), which renders templates as the host
//! does. The host side is either the real machine (real symlinks,
//! `ssh-keygen`, `/etc/passwd`; needs openssh-server, a CI dependency) or a
//! sealed set of files, dirs, top-level symlinks and scripted commands.

// A real key file for --auth-key is a fixture on the host's disk.
#![allow(clippy::disallowed_methods)]

use lxc_tmpl_plugin_api::{
    CommandOutput, Distro, ErrorKind, HookContext, LogLevel, PluginError,
    testing::{FakeHost, Node, RecordedCommand, World, output, run_hooks, run_on_machine, with_host},
};

use crate::{HostDir, Sshd, config_entries, layout::Layout, parse_openssh_version, parse_privsep_user};

/// A real ed25519 public key (its private half was thrown away).
const PUBKEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICup30W9BaE/v/BKcdPRaPCEZCTD0gzPVu8VRywBrtBq alice@example\n";

/// A sealed Debian-like host: merged /usr, sshd 9.2, init.lxc, ssh-keygen.
fn debian_host() -> FakeHost {
    let mut fake = FakeHost::sealed();
    for dir in ["/usr", "/etc/alternatives", "/tmp"] {
        fake.put_host_dir(dir);
    }
    for (link, target) in [("/bin", "usr/bin"), ("/sbin", "usr/sbin"), ("/lib", "usr/lib"), ("/lib64", "usr/lib64")] {
        fake.put_host_link(link, target);
        fake.put_host_dir(&format!("/{target}"));
    }
    for file in [
        "/usr/sbin/sshd",
        "/usr/sbin/init.lxc",
        "/usr/bin/ssh-keygen",
        "/usr/bin/bash",
        "/usr/sbin/ip",
        "/usr/lib/openssh/sftp-server",
        "/usr/lib/os-release",
        "/usr/share/lxc/config/common.conf",
        "/etc/ssh/moduli",
    ] {
        fake.put_host(file, &format!("contents of {file}"));
    }
    fake.put_host("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\nsshd:x:103:65534::/run/sshd:/usr/sbin/nologin\n");
    fake.put_host("/etc/group", "root:x:0:\nnogroup:x:65534:\n");
    fake.put_host("/home/alice/.ssh/id_ed25519.pub", PUBKEY);
    fake.set_responder(host_tools("OpenSSH_9.2p1 Debian-2, OpenSSL 3.0.11\n"));
    fake
}

/// The host tools the plugin runs, acting on the fake's host side:
/// `sshd -V` (printing `sshd_version` on stderr) and `ssh-keygen`; anything
/// else exits 127 (symlinks and scratch dirs are host calls, not commands).
fn host_tools(sshd_version: &str) -> impl FnMut(&RecordedCommand, &mut World<'_>) -> Option<CommandOutput> + 'static {
    let sshd_version = sshd_version.to_owned();
    let mut made = 0;
    move |cmd, world| {
        let args: Vec<&str> = cmd.argv.iter().map(String::as_str).collect();
        Some(match args.as_slice() {
            [sshd, "-V"] if world.host_files.contains_key(&world.resolve_host(sshd)) => output(0, "", &sshd_version),
            [keygen, "-l", "-f", "-"] if keygen.ends_with("ssh-keygen") => {
                let key = String::from_utf8_lossy(&cmd.stdin);
                output(0, &format!("256 SHA256:fingerprint-of-{} (FAKE)\n", key.trim()), "")
            }
            [keygen, "-q", "-t", kind, rest @ ..] if keygen.ends_with("ssh-keygen") => {
                let file = rest.last().unwrap().to_string();
                let dir = file.rsplit_once('/').unwrap().0;
                assert!(world.host_dirs.contains(dir), "keygen outside a scratch dir: {file}");
                made += 1;
                world.host_files.insert(file.clone(), format!("PRIVATE {kind} {made}\n").into_bytes());
                world
                    .host_files
                    .insert(format!("{file}.pub"), format!("ssh-{kind} PUBLIC{made} root@x\n").into_bytes());
                output(0, "", "")
            }
            _ => output(127, "", "not found"),
        })
    }
}

/// An sshd context; each `(long, value)` is one option value.
fn context(name: &str, options: &[(&str, &str)]) -> HookContext {
    let options: Vec<(&str, &[&str])> =
        options.iter().map(|(long, value)| (*long, std::slice::from_ref(value))).collect();
    lxc_tmpl_plugin_api::testing::context("sshd", name, &options)
}

/// Runs the hooks in the host's order, as a create does.
fn create(fake: &mut FakeHost, ctx: &HookContext) -> Result<Option<String>, PluginError> {
    let (cache_key, message) = run_hooks(&Sshd, fake, ctx)?;
    assert_eq!(super::SETUPS.times_computed(ctx), 1, "the host is probed once per create");
    assert_eq!(cache_key, None, "sshd is never cached");
    assert!(fake.owners.is_empty(), "root makes root's files: no chown");
    assert!(fake.hard_links.is_empty());
    Ok(message)
}

fn assert_no_network_or_apparmor(entries: &[(String, String)]) {
    for (key, value) in entries {
        assert!(!key.starts_with("lxc.net") && !key.starts_with("lxc.network"), "{key} = {value}");
        assert!(!key.starts_with("lxc.apparmor") && !key.starts_with("lxc.aa_"), "{key} = {value}");
    }
}

/// The settings every sshd_config must have, whatever the host.
fn assert_keys_only(config: &str) {
    for line in [
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "PermitEmptyPasswords no",
        "PubkeyAuthentication yes",
        "UsePAM no",
        "AuthorizedKeysFile .ssh/authorized_keys",
        "PidFile /run/sshd.pid",
        "HostKey /etc/ssh/ssh_host_ed25519_key",
        "HostKey /etc/ssh/ssh_host_rsa_key",
        "ListenAddress 0.0.0.0",
        "ListenAddress ::",
    ] {
        assert!(config.lines().any(|l| l == line), "no `{line}` in:\n{config}");
    }
    assert!(!config.to_ascii_lowercase().contains("dsa"), "{config}");
    assert!(!config.contains("PermitRootLogin yes") && !config.contains("PermitEmptyPasswords yes"), "{config}");
    assert!(!config.contains("\n\n\n"), "stray blank lines:\n{config}");
}

#[test]
fn manifest_describes_the_plugin_and_its_options() {
    let manifest = Sshd.manifest();
    assert_eq!(manifest.name, "sshd");
    assert_eq!(manifest.version, env!("CARGO_PKG_VERSION"));
    assert!(manifest.releases.is_empty());
    let auth = manifest.options.iter().find(|o| o.long == "auth-key").unwrap();
    assert_eq!(auth.short, Some('S'));
    assert!(auth.takes_value() && auth.repeatable && auth.default.is_none());
    let sshd = manifest.options.iter().find(|o| o.long == "sshd-path").unwrap();
    assert_eq!(sshd.default.as_deref(), Some("/usr/sbin/sshd"));
}

/// The whole create against this very machine: its layout, its sshd, its
/// ssh-keygen (openssh-server and lxc are CI dependencies: a missing one fails).
#[test]
fn creates_a_container_from_the_host_sshd() {
    let scratch = std::env::temp_dir().join(format!("lxc-tmpl-sshd-unit-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let key = scratch.join("id.pub");
    std::fs::write(&key, PUBKEY).unwrap();
    let key = key.display().to_string();

    let mut fake = FakeHost::new();
    fake.set_responder(run_on_machine);
    let ctx = context("ssh1", &[("auth-key", &key)]);
    let result = create(&mut fake, &ctx);
    std::fs::remove_dir_all(&scratch).unwrap();
    let message = result.expect("create (needs openssh-server and lxc on this machine)").unwrap();
    let fs = &fake.rootfs;

    // Tree and modes.
    assert_eq!(fake.mode("tmp"), 0o1777);
    assert_eq!(fake.mode("root"), 0o700);
    assert_eq!(fake.mode("root/.ssh"), 0o700);
    assert_eq!(fs["var/run"], Node::Symlink { target: "/run".into() });
    assert_eq!(fake.mode("usr"), 0o755);

    // The host's dirs: symlinks where the host has them, mount points and
    // read-only binds for its real dirs.
    let binds = fake.config_values("lxc.mount.entry");
    for dir in crate::HOST_DIRS {
        let host_path = std::path::Path::new("/").join(dir);
        let bind = format!("/{dir} {dir} none ro,bind,create=dir 0 0");
        match std::fs::symlink_metadata(&host_path) {
            Ok(meta) if meta.file_type().is_symlink() && host_path.is_dir() => {
                let target = std::fs::read_link(&host_path).unwrap().display().to_string();
                assert_eq!(fs[*dir], Node::Symlink { target }, "{dir}");
                assert!(!binds.contains(&bind.as_str()), "{dir} is a symlink on the host: {binds:?}");
            }
            Ok(meta) if meta.is_dir() => {
                assert_eq!(fs[*dir], Node::Dir { mode: 0o755 }, "{dir}");
                assert!(binds.contains(&bind.as_str()), "{bind} missing: {binds:?}");
            }
            _ => assert!(!fs.contains_key(*dir), "{dir} is not on the host"),
        }
    }

    // Keys: per container, private ones private, no DSA, temp dir gone.
    for kind in ["ed25519", "rsa"] {
        let private = format!("etc/ssh/ssh_host_{kind}_key");
        assert_eq!(fake.mode(&private), 0o600, "{private}");
        assert_eq!(fake.mode(&format!("{private}.pub")), 0o644);
        assert!(fake.text(&private).contains("PRIVATE KEY"), "{private}");
        assert!(fake.text(&format!("{private}.pub")).trim_end().ends_with(" root@ssh1"), "{private}.pub");
    }
    assert!(!fs.keys().any(|p| p.contains("dsa")), "{:?}", fs.keys().collect::<Vec<_>>());
    // ssh-keygen wrote into the one scratch dir the host made, which goes when the create ends.
    let [tmp] = fake.scratch_dirs.as_slice() else { panic!("one scratch dir: {:?}", fake.scratch_dirs) };
    let tmp = tmp.clone();
    assert!(fake.commands.iter().any(|c| c.argv.last() == Some(&format!("{tmp}/ssh_host_rsa_key"))));
    assert!(fake.commands.iter().all(|c| !["mktemp", "rm", "readlink"].contains(&c.argv[0].as_str())));
    fake.end_create();
    assert!(!std::path::Path::new(&tmp).exists(), "{tmp} left behind");

    // sshd_config, accounts, start script.
    let sshd_config = fake.text("etc/ssh/sshd_config");
    assert_keys_only(&sshd_config);
    assert!(sshd_config.contains("\nKbdInteractiveAuthentication no\n"), "{sshd_config}");
    let passwd = fake.text("etc/passwd");
    let host_sshd =
        std::fs::read_to_string("/etc/passwd").unwrap().lines().find(|l| l.starts_with("sshd:")).map(str::to_owned);
    let host_sshd = host_sshd.expect("the host has an sshd user (openssh-server)");
    let uid = host_sshd.split(':').nth(2).unwrap();
    assert!(passwd.starts_with("root:x:0:0:root:/root:/bin/"), "{passwd}");
    assert!(passwd.contains(&format!("\nsshd:x:{uid}:")), "{passwd}");
    assert!(fake.text("etc/shadow").starts_with("root:*:"), "root is locked");
    assert_eq!(fake.mode("etc/shadow"), 0o600);
    assert_eq!(fake.text("etc/hostname"), "ssh1\n");
    let start = fake.text("etc/start-sshd");
    assert_eq!(fake.mode("etc/start-sshd"), 0o755);
    assert!(start.starts_with("#!/bin/sh\n") && start.contains("\n    ip link set lo up\n"), "{start}");
    assert!(start.trim_end().ends_with("exec /usr/sbin/sshd -D -e"), "{start}");

    assert_eq!(fake.bytes("root/.ssh/authorized_keys"), PUBKEY.as_bytes());
    assert_eq!(fake.mode("root/.ssh/authorized_keys"), 0o600);

    // Config.
    assert_eq!(fake.config[0], ("lxc.include".to_owned(), "/usr/share/lxc/config/common.conf".to_owned()));
    assert_eq!(fake.config_values("lxc.uts.name"), ["ssh1"]);
    assert_eq!(fake.config_values("lxc.init.cmd"), ["/usr/sbin/init.lxc --name ssh1 -- /etc/start-sshd"]);
    assert_no_network_or_apparmor(&fake.config);
    assert!(fake.logs_at(LogLevel::Warn).is_empty(), "{:?}", fake.logs_at(LogLevel::Warn));

    assert!(message.contains("lxc-start -n ssh1") && message.contains("root@<container address>"), "{message}");
    assert!(message.contains("(ED25519)") && message.contains("(RSA)"), "{message}");
}

#[test]
fn merged_usr_host_gets_symlinks_and_one_bind() {
    let mut fake = debian_host();
    let ctx = context("web", &[("auth-key", "/home/alice/.ssh/id_ed25519.pub")]);
    let message = create(&mut fake, &ctx).unwrap().unwrap();

    for (link, target) in [("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")] {
        assert_eq!(fake.rootfs[link], Node::Symlink { target: target.into() }, "{link}");
    }
    let pairs: Vec<(&str, &str)> = fake.config.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        pairs,
        [
            ("lxc.include", "/usr/share/lxc/config/common.conf"),
            ("lxc.uts.name", "web"),
            ("lxc.autodev", "1"),
            ("lxc.tty.max", "0"),
            ("lxc.pty.max", "1024"),
            ("lxc.mount.auto", "cgroup:mixed proc:mixed sys:mixed"),
            ("lxc.mount.entry", "/usr usr none ro,bind,create=dir 0 0"),
            ("lxc.mount.entry", "/etc/alternatives etc/alternatives none ro,bind,optional,create=dir 0 0"),
            ("lxc.mount.entry", "tmpfs run tmpfs rw,nosuid,nodev,mode=0755,create=dir 0 0"),
            ("lxc.init.cmd", "/usr/sbin/init.lxc --name web -- /etc/start-sshd"),
        ]
    );

    // The keys made in the temp dir are the ones in the rootfs; the dir is gone.
    assert!(!fake.host_dirs.iter().any(|d| d.contains("lxc-tmpl-sshd")), "{:?}", fake.host_dirs);
    assert!(!fake.host_files.keys().any(|f| f.contains("lxc-tmpl-sshd")), "{:?}", fake.host_files.keys());
    assert!(fake.text("etc/ssh/ssh_host_ed25519_key").starts_with("PRIVATE ed25519 "));
    assert!(fake.text("etc/ssh/ssh_host_rsa_key.pub").starts_with("ssh-rsa PUBLIC"));
    let rsa = fake.commands.iter().find(|c| c.argv.get(3).is_some_and(|t| t == "rsa")).unwrap();
    assert_eq!(&rsa.argv[..6], ["/usr/bin/ssh-keygen", "-q", "-t", "rsa", "-b", "3072"]);
    assert!(rsa.argv.windows(2).any(|w| w == ["-N", ""]) && rsa.argv.windows(2).any(|w| w == ["-C", "root@web"]));

    let sshd_config = fake.text("etc/ssh/sshd_config");
    assert_keys_only(&sshd_config);
    assert!(sshd_config.contains("(OpenSSH_9.2p1)"), "{sshd_config}");
    assert!(sshd_config.contains("\nSubsystem sftp /usr/lib/openssh/sftp-server\n"), "{sshd_config}");
    assert_eq!(
        fake.text("etc/passwd"),
        "root:x:0:0:root:/root:/bin/bash\nsshd:x:103:65534::/run/sshd:/usr/sbin/nologin\n"
    );
    assert_eq!(fake.text("etc/group"), "root:x:0:\nnogroup:x:65534:\n");
    assert!(fake.text("etc/shadow").lines().all(|l| l.split(':').nth(1) == Some("*")));
    assert_eq!(fake.rootfs["etc/os-release"], Node::Symlink { target: "../usr/lib/os-release".into() });
    assert_eq!(fake.text("etc/ssh/moduli"), "contents of /etc/ssh/moduli");
    assert!(fake.text("etc/nsswitch.conf").contains("\npasswd: files\n"));
    // The privilege separation dir is on the /run tmpfs: made at start.
    assert!(!fake.rootfs.contains_key("run/sshd"));
    let start = fake.text("etc/start-sshd");
    assert!(start.contains("\nmkdir -p /run/sshd\nchmod 0755 /run/sshd\n"), "{start}");
    assert!(start.contains("under /usr/sbin/init.lxc"), "{start}");

    assert!(message.contains("SHA256:fingerprint-of-ssh-ed25519 PUBLIC"), "{message}");
    assert!(message.contains("ssh -i <private key of /home/alice/.ssh/id_ed25519.pub> root@"), "{message}");
    assert!(message.contains("lxc-attach -n web"), "{message}");
}

/// A host without merged /usr, without init.lxc, with an older sshd and an
/// sshd user whose privilege separation dir is not under /run.
fn classic_host() -> FakeHost {
    let mut fake = debian_host();
    fake.host_links.clear();
    fake.host_dirs.remove("/etc/alternatives");
    for dir in ["/bin", "/sbin", "/lib", "/lib64"] {
        fake.put_host_dir(dir);
    }
    fake.host_files.remove("/usr/sbin/init.lxc");
    fake.host_files.remove("/usr/bin/bash");
    fake.set_responder(host_tools(
        "unknown option -- V\nOpenSSH_8.2p1 Ubuntu-4, OpenSSL 1.1.1f\nusage: sshd [-46DdeiqTt]\n",
    ));
    fake.host_files.insert(
        "/etc/passwd".into(),
        b"root:x:0:0:root:/root:/bin/bash\nsshd:x:74:74:Privilege-separated SSH:/var/empty/sshd:/sbin/nologin\n"
            .to_vec(),
    );
    fake.host_files.insert("/etc/group".into(), b"root:x:0:\nsshd:x:74:\n".to_vec());
    fake
}

#[test]
fn classic_host_gets_binds_and_runs_sshd_as_init() {
    let mut fake = classic_host();
    let ctx = context("old", &[("auth-key", "/home/alice/.ssh/id_ed25519.pub")]);
    create(&mut fake, &ctx).unwrap();

    let binds: Vec<&str> =
        fake.config_values("lxc.mount.entry").into_iter().filter(|m| m.contains("ro,bind")).collect();
    assert_eq!(
        binds,
        [
            "/usr usr none ro,bind,create=dir 0 0",
            "/bin bin none ro,bind,create=dir 0 0",
            "/sbin sbin none ro,bind,create=dir 0 0",
            "/lib lib none ro,bind,create=dir 0 0",
            "/lib64 lib64 none ro,bind,create=dir 0 0",
        ]
    );
    for dir in ["usr", "bin", "sbin", "lib", "lib64"] {
        assert_eq!(fake.rootfs[dir], Node::Dir { mode: 0o755 }, "{dir}");
    }
    assert_eq!(fake.config_values("lxc.init.cmd"), ["/etc/start-sshd"]);
    assert_eq!(fake.config_values("lxc.signal.halt"), ["SIGTERM"]);
    assert!(fake.logs_at(LogLevel::Info).iter().any(|m| m.contains("init.lxc not found")));

    let sshd_config = fake.text("etc/ssh/sshd_config");
    assert!(sshd_config.contains("\nChallengeResponseAuthentication no\n"), "{sshd_config}");
    assert!(!sshd_config.contains("KbdInteractive"), "{sshd_config}");
    assert_eq!(fake.text("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nsshd:x:74:74::/var/empty/sshd:/sbin/nologin\n");
    assert_eq!(fake.text("etc/group"), "root:x:0:\nsshd:x:74:\n");
    assert_eq!(fake.rootfs["var/empty/sshd"], Node::Dir { mode: 0o755 });
    let start = fake.text("etc/start-sshd");
    assert!(start.contains("mkdir -p /var/empty/sshd\n") && !start.contains("init.lxc"), "{start}");
}

#[test]
fn missing_sshd_user_falls_back_with_a_warning() {
    let mut fake = debian_host();
    fake.host_files.insert("/etc/passwd".into(), b"root:x:0:0:root:/root:/bin/bash\n".to_vec());
    create(&mut fake, &context("nouser", &[("auth-key", "/home/alice/.ssh/id_ed25519.pub")])).unwrap();
    assert!(fake.text("etc/passwd").contains("\nsshd:x:74:65534::/run/sshd:/usr/sbin/nologin\n"));
    assert!(fake.logs_at(LogLevel::Warn).iter().any(|w| w.contains("no sshd user")));
}

#[test]
fn privsep_dir_is_made_only_where_the_rootfs_owns_it() {
    for (home, made) in [("/var/empty/sshd", true), ("/var/run/sshd", false), ("/usr/share/empty.sshd", false)] {
        let mut fake = debian_host();
        let passwd = format!("root:x:0:0:root:/root:/bin/bash\nsshd:x:103:65534::{home}:/usr/sbin/nologin\n");
        fake.host_files.insert("/etc/passwd".into(), passwd.into_bytes());
        create(&mut fake, &context("p", &[("auth-key", "/home/alice/.ssh/id_ed25519.pub")])).unwrap();
        let rootfs_path = home.trim_start_matches('/');
        assert_eq!(fake.rootfs.contains_key(rootfs_path), made, "{home}: {:?}", fake.rootfs.keys().collect::<Vec<_>>());
        assert!(!fake.rootfs.keys().any(|p| p.starts_with("usr/")), "{home}: wrote below the /usr mount point");
        assert!(fake.text("etc/start-sshd").contains(&format!("\nmkdir -p {home}\n")), "{home}");
    }
}

#[test]
fn several_key_files_are_concatenated() {
    let mut fake = debian_host();
    let second = PUBKEY.replace("alice@example", "bob@example");
    fake.host_files.insert("/keys/bob.pub".into(), second.trim_end().as_bytes().to_vec());
    let ctx = context("two", &[("auth-key", "/home/alice/.ssh/id_ed25519.pub"), ("auth-key", "/keys/bob.pub")]);
    create(&mut fake, &ctx).unwrap();
    assert_eq!(fake.text("root/.ssh/authorized_keys"), format!("{PUBKEY}{second}"));
}

/// Runs validate alone and returns its error.
fn refused(mut fake: FakeHost, ctx: &HookContext) -> PluginError {
    let error = with_host(&mut fake, |host| Sshd.validate(ctx, host)).unwrap_err();
    assert!(fake.rootfs.is_empty());
    error
}

#[test]
fn validate_names_the_option_and_the_fix() {
    let key = ("auth-key", "/home/alice/.ssh/id_ed25519.pub");
    // All bad input: INVALID_INPUT, one line naming the option or path and the fix.
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![], "--auth-key is required: pass -S/--auth-key FILE"),
        (vec![("auth-key", "/nope.pub")], "--auth-key /nope.pub: no such file"),
        (vec![("auth-key", "/usr")], "--auth-key /usr is a directory"),
        (vec![("auth-key", "/etc/group")], "holds no usable OpenSSH public key"),
        (vec![("auth-key", "/id")], "--auth-key /id is a private key: pass the public key (/id.pub)"),
        (vec![key, ("sshd-path", "sshd")], "--sshd-path sshd: give an absolute path"),
        (
            vec![key, ("sshd-path", "/usr/sbin/nosshd")],
            "sshd not found at /usr/sbin/nosshd: install the OpenSSH server on the host (apt-get install openssh-server)",
        ),
        (vec![key, ("sshd-path", "/opt/sshd")], "outside the host dirs the container sees (/usr)"),
        (vec![key, ("sshd-path", "/usr/sbin/ss hd")], "use a path of letters"),
    ];
    for (options, expected) in cases {
        let mut fake = debian_host();
        fake.host_files.insert(
            "/id".into(),
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n".to_vec(),
        );
        fake.host_files.insert("/opt/sshd".into(), Vec::new());
        let error = refused(fake, &context("x", &options));
        assert_eq!(error.kind, ErrorKind::INVALID_INPUT, "{options:?}: {}", error.message);
        assert!(error.message.contains(expected), "{options:?}: {}", error.message);
        assert!(!error.message.contains('\n'), "one line: {}", error.message);
    }
}

#[test]
fn validate_refuses_what_cannot_work() {
    // Each case is another create: a context of its own (the host is probed once per create).
    let ctx = || context("x", &[("auth-key", "/home/alice/.ssh/id_ed25519.pub")]);

    let mut unprivileged = ctx();
    unprivileged.facts.mapped_uid = Some(0);
    let error = refused(debian_host(), &unprivileged);
    assert_eq!(error.kind, ErrorKind::UNSUPPORTED);
    assert!(error.message.contains("unprivileged"), "{}", error.message);

    let mut no_keygen = debian_host();
    no_keygen.host_files.remove("/usr/bin/ssh-keygen");
    let error = refused(no_keygen, &ctx());
    assert!(error.message.contains("apt-get install openssh-client"), "{}", error.message);

    let mut no_lxc = debian_host();
    no_lxc.host_files.remove("/usr/share/lxc/config/common.conf");
    assert!(refused(no_lxc, &ctx()).message.contains("common.conf is missing"));

    let mut no_usr = debian_host();
    no_usr.host_dirs.remove("/usr");
    no_usr.host_links.clear();
    assert!(refused(no_usr, &ctx()).message.contains("no /usr directory"));
}

#[test]
fn key_file_oddities_are_warned_about() {
    let mut fake = debian_host();
    fake.host_files
        .insert("/k.pub".into(), format!("{PUBKEY}garbage\nssh-dss AAAAB3NzaC1kc3MAAACBAP8= old\n").into_bytes());
    with_host(&mut fake, |host| Sshd.validate(&context("x", &[("auth-key", "/k.pub")]), host)).unwrap();
    let warnings = fake.logs_at(LogLevel::Warn);
    assert!(warnings.iter().any(|w| w.contains("line(s) 2 hold no OpenSSH public key")), "{warnings:?}");
    assert!(warnings.iter().any(|w| w.contains("line(s) 3 hold DSA keys")), "{warnings:?}");
}

#[test]
fn network_is_left_to_the_base_config() {
    let ctx = context("net", &[("auth-key", "/home/alice/.ssh/id_ed25519.pub")]);
    for (key, value, level, expected) in [
        ("lxc.net.0.type", "none", LogLevel::Warn, "listen on the host's port 22"),
        ("lxc.net.2.type", "none", LogLevel::Warn, "listen on the host's port 22"),
        ("lxc.net.0.type", "veth", LogLevel::Info, "runs no DHCP client"),
    ] {
        let mut fake = debian_host();
        fake.base_config.insert(key.into(), value.into());
        create(&mut fake, &ctx).unwrap();
        assert!(fake.logs_at(level).iter().any(|m| m.contains(expected)), "{key}={value}: {:?}", fake.logs);
        assert_no_network_or_apparmor(&fake.config);
        assert!(!fake.text("etc/start-sshd").contains("dhc"), "never a DHCP client");
    }
    let mut fake = debian_host();
    fake.base_config.insert("lxc.net.0.type".into(), "veth".into());
    fake.base_config.insert("lxc.net.0.ipv4.address".into(), "10.0.3.5/24".into());
    create(&mut fake, &ctx).unwrap();
    assert!(!fake.logs.iter().any(|(_, m)| m.contains("DHCP")), "{:?}", fake.logs);
}

#[test]
fn config_hook_needs_no_rootfs() {
    // A dry run calls config before any rootfs exists: host facts only.
    let mut fake = debian_host();
    let ctx = context("dry", &[("auth-key", "/home/alice/.ssh/id_ed25519.pub")]);
    with_host(&mut fake, |host| Sshd.config(&ctx, host)).unwrap();
    assert!(fake.rootfs.is_empty());
    assert_eq!(fake.config_values("lxc.uts.name"), ["dry"]);
}

#[test]
fn config_entries_follow_the_layout() {
    let layout: Layout = vec![("usr", HostDir::Bind), ("bin", HostDir::Link("usr/bin".into())), ("lib", HostDir::Bind)];
    let entries = config_entries("c", "c", &layout, None, false);
    let pairs: Vec<(String, String)> = entries.iter().map(|e| (e.key.to_string(), e.value.to_string())).collect();
    let mounts: Vec<&str> = pairs.iter().filter(|(k, _)| k == "lxc.mount.entry").map(|(_, v)| v.as_str()).collect();
    assert_eq!(
        mounts,
        [
            "/usr usr none ro,bind,create=dir 0 0",
            "/lib lib none ro,bind,create=dir 0 0",
            "tmpfs run tmpfs rw,nosuid,nodev,mode=0755,create=dir 0 0"
        ]
    );
    assert_no_network_or_apparmor(&pairs);
}

#[test]
fn privsep_user_is_read_from_the_host() {
    let user = parse_privsep_user("sshd:x:103:65534::/run/sshd:/usr/sbin/nologin\n", "nogroup:x:65534:\n");
    assert_eq!(
        (user.uid, user.gid, user.dir.as_str(), user.group.as_deref()),
        (103, 65534, "/run/sshd", Some("nogroup"))
    );
    // Odd or missing fields fall back.
    let user = parse_privsep_user("sshd:x:abc:0::/:\n", "");
    assert_eq!((user.uid, user.gid, user.dir.as_str(), user.shell.as_str()), (74, 0, "/run/sshd", "/usr/sbin/nologin"));
    assert_eq!(user.group, None, "gid 0 is root's group, already written");
    let user = parse_privsep_user("sshd:x:5:6::/var/run/$(reboot):/bin/false\n", "");
    assert_eq!((user.dir.as_str(), user.group.as_deref()), ("/run/sshd", Some("sshd")));
}

#[test]
fn openssh_versions_are_parsed() {
    assert_eq!(parse_openssh_version("OpenSSH_9.2, OpenSSL 3.0.19"), Some((9, 2, "OpenSSH_9.2".into())));
    assert_eq!(parse_openssh_version("x\nOpenSSH_8.2p1 Ubuntu-4"), Some((8, 2, "OpenSSH_8.2p1".into())));
    assert_eq!(parse_openssh_version("OpenSSH_10.0p2"), Some((10, 0, "OpenSSH_10.0p2".into())));
    assert_eq!(parse_openssh_version("sshd: illegal option"), None);
}

/// The host name (RFC 1123, maybe dotted; `web_01` is a container name but
/// no host name) goes into `/etc/hostname`, `/etc/hosts`, `lxc.uts.name` and
/// the host key comments; init.lxc's `--name` and the message keep the
/// container name.
#[test]
fn hostname_is_the_host_name_not_the_container_name() {
    for (hostname, short, hosts_line) in
        [("web-01", "web-01", "127.0.1.1\tweb-01\n"), ("web.example.com", "web", "127.0.1.1\tweb.example.com web\n")]
    {
        let mut fake = debian_host();
        let mut ctx = context("web_01", &[("auth-key", "/home/alice/.ssh/id_ed25519.pub")]);
        ctx.hostname = hostname.into();
        let message = create(&mut fake, &ctx).unwrap().unwrap();
        assert_eq!(fake.text("etc/hostname"), format!("{short}\n"));
        let hosts = fake.text("etc/hosts");
        assert!(hosts.starts_with(&format!("127.0.0.1\tlocalhost\n{hosts_line}")), "{hosts}");
        assert_eq!(fake.config_values("lxc.uts.name"), [short]);
        assert_eq!(fake.config_values("lxc.init.cmd"), ["/usr/sbin/init.lxc --name web_01 -- /etc/start-sshd"]);
        let comment = format!("root@{short}");
        let keygens: Vec<_> = fake.commands.iter().filter(|c| c.argv.iter().any(|a| a == "-N")).collect();
        assert!(!keygens.is_empty());
        for keygen in keygens {
            assert!(keygen.argv.windows(2).any(|w| w[0] == "-C" && w[1] == comment), "{:?}", keygen.argv);
        }
        assert!(message.contains("lxc-start -n web_01"), "{message}");
    }
}
