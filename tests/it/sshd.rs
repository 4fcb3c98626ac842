//! The sshd plugin end to end: a container that runs nothing but the host's
//! sshd is created with a client key, started with the safe config (network
//! type `empty`), and logged into over ssh on its own loopback, from inside
//! its network namespace; password logins are refused, every container has
//! its own host keys, the host's /usr is read-only inside, and a create
//! without `--auth-key` is refused with nothing left behind.
//!
//! Needs the host's sshd (`apt-get install openssh-server openssh-client`;
//! .ci/run installs them): without it the tests fail and say so.

use std::{
    fs,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use lxc_tmpl_tests::{
    Container, LXC_TOOLS, Outcome, TestCommand, TestDir, assert_mentions, assert_same_text, config, error_line,
    require_root, require_tools,
};

/// The client side and the way into the container's network namespace.
const SSH_TOOLS: &[&str] = &["ssh", "ssh-keygen", "nsenter"];
/// The sshd the plugin runs by default.
const HOST_SSHD: &str = "/usr/sbin/sshd";
/// How long sshd may take to listen after the container runs.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(20);

fn require_ssh() {
    require_root();
    require_tools(LXC_TOOLS);
    require_tools(SSH_TOOLS);
    assert!(
        Path::new(HOST_SSHD).is_file(),
        "this test needs the host's sshd at {HOST_SSHD}: apt-get install openssh-server (.ci/run installs it)"
    );
}

/// Makes an ed25519 client key pair `<test dir>/<name>` (+ `.pub`) and
/// returns the private key's path.
fn client_key(dir: &TestDir, name: &str) -> PathBuf {
    let key = dir.path().join(name);
    TestCommand::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", &format!("{name}@lxc-tmpl-tests"), "-f"])
        .arg(&key)
        .stdout();
    key
}

fn public(key: &Path) -> PathBuf {
    PathBuf::from(format!("{}.pub", key.display()))
}

/// `ssh root@127.0.0.1 <remote>` run on the host inside the container's
/// network namespace (the container has only its own loopback). No user
/// config, no known_hosts, never a prompt.
fn ssh(ct: &Container, options: &[&str], remote: &str) -> TestCommand {
    let mut cmd = TestCommand::new("nsenter");
    cmd.arg(format!("--net=/proc/{}/ns/net", ct.init_pid()));
    cmd.args(["ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]);
    cmd.args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"]);
    cmd.args(options).args(["root@127.0.0.1", remote]);
    cmd
}

/// The methods a refusing server still offered: `publickey` from
/// `root@127.0.0.1: Permission denied (publickey).`
fn offered_methods(outcome: &Outcome) -> Vec<String> {
    let Some(start) = outcome.stderr.find("Permission denied (") else {
        panic!("ssh was not refused with `Permission denied (...)`:\n{outcome}");
    };
    let rest = &outcome.stderr[start + "Permission denied (".len()..];
    let end = rest.find(')').unwrap_or_else(|| panic!("unterminated method list:\n{outcome}"));
    rest[..end].split(',').map(|m| m.trim().to_owned()).collect()
}

/// Whether a `/proc/net/tcp{,6}` text has a socket listening on port 22.
fn listens_on_22(table: &str) -> bool {
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // local_address is ADDR:PORT in hex; state 0A is LISTEN.
        fields.len() > 3 && fields[1].ends_with(":0016") && fields[3] == "0A"
    })
}

/// Waits (bounded) until sshd listens in the container; returns how long it took.
fn wait_for_sshd(ct: &Container) -> Duration {
    let start = Instant::now();
    loop {
        // The container's own /proc: its network namespace's sockets.
        let tables = ct.lxc("lxc-attach").args(["--clear-env", "--", "cat", "/proc/net/tcp", "/proc/net/tcp6"]).run();
        if listens_on_22(&tables.stdout) {
            return start.elapsed();
        }
        if start.elapsed() > LISTEN_TIMEOUT {
            let processes = ct.lxc("lxc-attach").args(["--clear-env", "--", "ps", "-ef"]).run();
            panic!(
                "sshd did not listen on port 22 within {LISTEN_TIMEOUT:?} (state {}):\n{tables}\n\
                 --- processes in the container ---\n{processes}",
                ct.state()
            );
        }
        thread::sleep(Duration::from_millis(200));
    }
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap_or_else(|e| panic!("cannot stat {}: {e}", path.display())).permissions().mode()
        & 0o7777
}

#[test]
fn sshd_container_lets_the_key_in_and_refuses_passwords() {
    require_ssh();
    let dir = TestDir::new("sshd-login");
    let key = client_key(&dir, "client");
    let mut ct = dir.container("sshd1");

    let started = Instant::now();
    let stdout = dir.create("sshd", "sshd1").arg("--auth-key").arg(public(&key)).stdout();
    eprintln!("timing: create {:?}", started.elapsed());
    assert!(stdout.contains("root@<container address>") && stdout.contains("lxc-attach"), "{stdout}");

    let started = Instant::now();
    ct.start();
    eprintln!("timing: lxc-start to RUNNING {:?}", started.elapsed());
    let waited = wait_for_sshd(&ct);
    eprintln!("timing: RUNNING to sshd listening {waited:?}");

    // The key from --auth-key gets root in.
    let started = Instant::now();
    let key_path = key.display().to_string();
    let with_key = ["-i", key_path.as_str(), "-o", "IdentitiesOnly=yes"];
    let login = ssh(&ct, &with_key, "hostname").run();
    eprintln!("timing: ssh login with the key {:?}", started.elapsed());
    login.assert_success();
    assert_eq!(login.stdout.trim(), "sshd1", "hostname over ssh:\n{login}");

    // A password login is refused, and the server offers no password method.
    let password =
        ssh(&ct, &["-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no"], "true").run();
    password.assert_failed();
    assert_eq!(offered_methods(&password), ["publickey"], "the server offers more than public keys:\n{password}");
    let interactive = ssh(
        &ct,
        &["-o", "PreferredAuthentications=keyboard-interactive,password", "-o", "PubkeyAuthentication=no"],
        "true",
    )
    .run();
    interactive.assert_failed();
    assert_eq!(offered_methods(&interactive), ["publickey"], "{interactive}");

    // Another key is refused.
    let stranger = client_key(&dir, "stranger");
    let refused = ssh(&ct, &["-i", &stranger.display().to_string(), "-o", "IdentitiesOnly=yes"], "true").run();
    refused.assert_failed();
    assert_eq!(offered_methods(&refused), ["publickey"], "{refused}");

    // lxc-attach works too.
    assert_eq!(ct.attach(&["hostname"]).trim(), "sshd1");

    // The container's /usr is the host's /usr, read-only.
    let pid = ct.init_pid();
    let inside = fs::metadata(format!("/proc/{pid}/root{HOST_SSHD}")).expect("stat sshd inside the container");
    let outside = fs::metadata(HOST_SSHD).expect("stat the host's sshd");
    assert_eq!((inside.dev(), inside.ino()), (outside.dev(), outside.ino()), "the container's sshd is not the host's");
    let probe = format!("/usr/lxc-tmpl-sshd-write-test-{}", std::process::id());
    assert!(!Path::new(&probe).exists(), "{probe} exists before the test");
    let write = ct.lxc("lxc-attach").args(["--clear-env", "--", "touch", &probe]).run();
    let leaked = Path::new(&probe).exists();
    if leaked {
        let _ = fs::remove_file(&probe);
    }
    assert!(!leaked, "writing {probe} inside the container created it on the host:\n{write}");
    write.assert_failed();
    assert!(write.stderr.contains("Read-only file system"), "{write}");
    let over_ssh = ssh(&ct, &with_key, &format!("touch {probe}")).run();
    let leaked = Path::new(&probe).exists();
    if leaked {
        let _ = fs::remove_file(&probe);
    }
    assert!(!leaked && !over_ssh.status.success(), "root over ssh could write the host's /usr:\n{over_ssh}");

    // Stops with its halt signal, like a container made by lxc-create.
    let started = Instant::now();
    let stopped = ct.stop_clean(30);
    eprintln!("timing: clean stop {:?}", started.elapsed());
    assert!(stopped.status.success(), "the container did not stop cleanly:\n{stopped}");
    assert_eq!(ct.state(), "STOPPED");
}

#[test]
fn sshd_containers_get_their_own_host_keys() {
    require_ssh();
    let dir = TestDir::new("sshd-keys");
    let key = client_key(&dir, "client");
    let a = dir.container("keys-a");
    let b = dir.container("keys-b");
    // ssh-keygen writes the keys into a host scratch dir under $TMPDIR, which
    // the host removes when the create ends.
    let tmpdir = dir.mkdir("tmp");
    for ct in [&a, &b] {
        dir.create("sshd", ct.name()).env("TMPDIR", &tmpdir).args(["-S"]).arg(public(&key)).stdout();
    }
    let left: Vec<_> = fs::read_dir(&tmpdir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "the creates left scratch files (private host keys) in $TMPDIR: {left:?}");

    for kind in ["ed25519", "rsa"] {
        let private = format!("etc/ssh/ssh_host_{kind}_key");
        let key_a = fs::read(a.rootfs().join(&private)).unwrap_or_else(|e| panic!("{private} of keys-a: {e}"));
        let key_b = fs::read(b.rootfs().join(&private)).unwrap_or_else(|e| panic!("{private} of keys-b: {e}"));
        assert_ne!(key_a, key_b, "keys-a and keys-b share {private}");
        if let Ok(host_key) = fs::read(Path::new("/").join(&private)) {
            assert_ne!(key_a, host_key, "{private} is the host's own key");
        }
        for ct in [&a, &b] {
            assert_eq!(mode(&ct.rootfs().join(&private)), 0o600, "{private} of {}", ct.name());
            let public_key = ct.rootfs().join(format!("{private}.pub"));
            assert_eq!(mode(&public_key), 0o644);
            let text = fs::read_to_string(&public_key).unwrap();
            assert!(text.trim_end().ends_with(&format!(" root@{}", ct.name())), "{text}");
        }
    }

    let rootfs = a.rootfs();
    let ssh_files: Vec<String> = fs::read_dir(rootfs.join("etc/ssh"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!ssh_files.iter().any(|f| f.contains("dsa")), "DSA key files: {ssh_files:?}");
    let sshd_config = fs::read_to_string(rootfs.join("etc/ssh/sshd_config")).unwrap();
    for line in [
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitEmptyPasswords no",
        "UsePAM no",
        "HostKey /etc/ssh/ssh_host_ed25519_key",
        "HostKey /etc/ssh/ssh_host_rsa_key",
    ] {
        assert!(sshd_config.lines().any(|l| l == line), "no `{line}` in sshd_config:\n{sshd_config}");
    }
    assert!(!sshd_config.contains("dsa_key"), "{sshd_config}");

    // Root: locked password, the key, private modes.
    let shadow = rootfs.join("etc/shadow");
    assert_eq!(mode(&shadow), 0o600);
    let root_line = fs::read_to_string(&shadow).unwrap().lines().next().unwrap_or_default().to_owned();
    assert!(root_line.starts_with("root:*:"), "root's password is not locked: {root_line}");
    assert_eq!(mode(&rootfs.join("root/.ssh")), 0o700);
    let authorized = rootfs.join("root/.ssh/authorized_keys");
    assert_eq!(mode(&authorized), 0o600);
    assert_eq!(fs::read(&authorized).unwrap(), fs::read(public(&key)).unwrap());

    // The host's /usr is mounted, not copied; merged-/usr links mirror the host's.
    assert_eq!(fs::read_dir(rootfs.join("usr")).unwrap().count(), 0, "the rootfs's usr is not an empty mount point");
    for dir in ["bin", "sbin", "lib", "lib64"] {
        let host = Path::new("/").join(dir);
        if let Ok(target) = fs::read_link(&host) {
            assert_eq!(fs::read_link(rootfs.join(dir)).ok(), Some(target), "{dir} does not mirror the host's symlink");
        }
    }

    // The config: LXC loads it; common.conf; no network or AppArmor keys
    // besides the safe base config's; LXC's init runs the start script.
    let text = a.config();
    assert_eq!(a.lxc_config_item("lxc.uts.name"), "lxc.uts.name = keys-a", "{text}");
    assert!(config::values(&text, "lxc.include").iter().any(|i| i == "/usr/share/lxc/config/common.conf"), "{text}");
    let net: Vec<_> = config::entries(&text).into_iter().filter(|(k, _)| k.starts_with("lxc.net")).collect();
    assert_eq!(net, [("lxc.net.0.type".to_owned(), "empty".to_owned())], "{text}");
    assert_eq!(config::values(&text, "lxc.apparmor.profile"), ["unconfined"], "{text}");
    let init = config::value(&text, "lxc.init.cmd").unwrap_or_default();
    assert!(init.ends_with("/etc/start-sshd"), "lxc.init.cmd = {init:?}\n{text}");
    assert!(config::values(&text, "lxc.mount.entry").iter().any(|m| m == "/usr usr none ro,bind,create=dir 0 0"));
}

#[test]
fn sshd_without_auth_key_is_refused() {
    require_root();
    let dir = TestDir::new("sshd-no-key");
    let before = dir.snapshot();
    let outcome = dir.create("sshd", "nokey").run();
    outcome.assert_failed();
    let line = error_line(&outcome.stderr);
    assert_mentions(&line, &["--auth-key", "required", "public key"]);
    assert_same_text!(before, dir.snapshot(), "a refused create left something behind:\n{outcome}");
    assert_eq!(fs::read_dir(dir.lxcpath()).unwrap().count(), 0, "the lxcpath is not empty");

    // The private key instead of the public one.
    require_tools(&["ssh-keygen"]);
    let key = client_key(&dir, "client");
    let before = dir.snapshot();
    let outcome = dir.create("sshd", "privkey").arg("--auth-key").arg(&key).run();
    outcome.assert_failed();
    assert_mentions(&error_line(&outcome.stderr), &["--auth-key", "private key", ".pub"]);
    assert_same_text!(before, dir.snapshot(), "a refused create left something behind:\n{outcome}");
}
