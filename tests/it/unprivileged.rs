//! Unprivileged (idmapped) containers: made through lxc-create (the template
//! runs in a user namespace) and through `lxc-tmpl create` (built as root,
//! then shifted into the id range); both start, root inside is uid 0, and
//! the files belong to the mapped range on the host.

use std::{fs, os::unix::fs::MetadataExt};

use lxc_tmpl_tests::{
    LXC_TOOLS, MirrorServer, TestCommand, TestDir, apt_fixture, require_root, require_tools,
    userns::{MAPPED_ROOT, ensure_subordinate_ids, idmapped_conf},
};

/// Checks ownership on the host (root's files belong to the mapped root)
/// and identity inside, then stops.
fn assert_runs_unprivileged(dir: &TestDir, name: &str) {
    let mut ct = dir.container(name);
    for path in ["", "etc", "etc/passwd", "etc/hostname"] {
        let meta = fs::symlink_metadata(ct.rootfs().join(path)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (MAPPED_ROOT, MAPPED_ROOT), "owner of rootfs/{path} on the host");
    }
    let shadow = fs::symlink_metadata(ct.rootfs().join("etc/shadow")).unwrap();
    assert_eq!(shadow.uid(), MAPPED_ROOT, "owner of rootfs/etc/shadow on the host");
    ct.start();
    assert_eq!(ct.attach(&["id", "-u"]).trim(), "0", "root inside the container");
    let status = fs::read_to_string(format!("/proc/{}/status", ct.init_pid())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.split_whitespace().nth(1) == Some(&MAPPED_ROOT.to_string()),
        "init runs as {uid_line} on the host"
    );
}

#[test]
fn lxc_tmpl_create_makes_an_unprivileged_busybox() {
    require_root();
    require_tools(LXC_TOOLS);
    ensure_subordinate_ids();
    let dir = TestDir::new("unpriv-create");
    let conf = idmapped_conf(&dir);
    let mut cmd = dir.command();
    cmd.args(["create", "--distro", "busybox", "--name", "unp1"]).arg("-P").arg(dir.lxcpath()).arg("-f").arg(&conf);
    cmd.stdout();
    let config = fs::read_to_string(dir.lxcpath().join("unp1/config")).unwrap();
    assert!(config.contains("lxc.include = /usr/share/lxc/config/userns.conf"), "{config}");
    assert_runs_unprivileged(&dir, "unp1");
}

/// The options that select one cache entry of `distro` from the local mirror.
fn mirror_options(distro: &str, suite: &str, server: &MirrorServer, keyring: &std::path::Path) -> Vec<String> {
    let mirror = server.url(distro);
    vec![
        "--release".into(),
        suite.into(),
        "--mirror".into(),
        mirror.clone(),
        "--security-mirror".into(),
        mirror,
        "--keyring".into(),
        keyring.display().to_string(),
    ]
}

/// `lxc-tmpl create --distro <distro>` from the local mirror with the id map.
fn create_debootstrapped(distro: &str, suite: &str, name: &str) {
    require_root();
    require_tools(LXC_TOOLS);
    require_tools(&["debootstrap"]);
    ensure_subordinate_ids();
    let fixture = apt_fixture();
    let server = MirrorServer::start();
    let mirror = server.url(distro);
    let dir = TestDir::new(&format!("unpriv-{distro}"));
    let conf = idmapped_conf(&dir);
    let mut cmd = dir.command();
    cmd.args(["create", "--distro", distro, "--name", name, "--release", suite]).arg("-P").arg(dir.lxcpath());
    cmd.arg("-f").arg(&conf).arg("--cache-dir").arg(dir.cache());
    cmd.args(["--mirror", &mirror, "--security-mirror", &mirror]).arg("--keyring").arg(&fixture.keyring);
    cmd.env("HTTP_PROXY", "none").stdout();
    let config = fs::read_to_string(dir.lxcpath().join(name).join("config")).unwrap();
    let userns = format!("lxc.include = /usr/share/lxc/config/{distro}.userns.conf");
    assert!(config.contains(&userns), "no {userns}:\n{config}");
    // A file of a system user other than root is shifted by the same offset.
    let apt_lists = fs::symlink_metadata(dir.lxcpath().join(name).join("rootfs/var/lib/apt/lists/partial")).unwrap();
    assert!(apt_lists.uid() > MAPPED_ROOT, "apt's partial dir (owned by _apt) was not shifted: {}", apt_lists.uid());
    assert_runs_unprivileged(&dir, name);
}

#[test]
fn lxc_tmpl_create_makes_an_unprivileged_debian() {
    create_debootstrapped("debian", "bookworm", "unpd1");
}

#[test]
fn lxc_tmpl_create_makes_an_unprivileged_ubuntu() {
    create_debootstrapped("ubuntu", "jammy", "unpu1");
}

#[test]
fn lxc_create_makes_an_unprivileged_busybox_through_the_template() {
    require_root();
    require_tools(LXC_TOOLS);
    ensure_subordinate_ids();
    let dir = TestDir::new("unpriv-lxc-create");
    let conf = idmapped_conf(&dir);
    let templates = dir.mkdir("templates");
    dir.command().arg("install-templates").arg("--dir").arg(&templates).stdout();
    let mut cmd = TestCommand::new("lxc-create");
    cmd.arg("-P").arg(dir.lxcpath()).arg("-f").arg(&conf).args(["-n", "unp2"]).arg("-t");
    cmd.arg(templates.join("lxc-tmpl-busybox")).env("LXC_TMPL_PLUGIN_PATH", dir.plugins());
    cmd.stdout();
    assert_runs_unprivileged(&dir, "unp2");
}

#[test]
fn lxc_create_makes_an_unprivileged_debian_from_a_cache_root_built() {
    require_root();
    require_tools(LXC_TOOLS);
    require_tools(&["debootstrap"]);
    ensure_subordinate_ids();
    let fixture = apt_fixture();
    let server = MirrorServer::start();
    let options = mirror_options("debian", "bookworm", &server, &fixture.keyring);
    let dir = TestDir::new("unpriv-lxc-create-debian");
    let conf = idmapped_conf(&dir);
    let templates = dir.mkdir("templates");
    dir.command().arg("install-templates").arg("--dir").arg(&templates).stdout();
    let lxc_create = |name: &str| {
        let mut cmd = TestCommand::new("lxc-create");
        cmd.arg("-P").arg(dir.lxcpath()).arg("-f").arg(&conf).args(["-n", name]).arg("-t");
        cmd.arg(templates.join("lxc-tmpl-debian")).arg("--").args(&options);
        cmd.env("LXC_TMPL_PLUGIN_PATH", dir.plugins()).env("LXC_CACHE_PATH", dir.cache()).env("HTTP_PROXY", "none");
        cmd
    };

    // Inside lxc-create's user namespace nothing can be bootstrapped: the
    // error says how to build the cache, and nothing is left behind.
    let _first = dir.container("unpd2");
    let refused = lxc_create("unpd2").run();
    assert_ne!(refused.code(), Some(0), "an unprivileged lxc-create bootstrapped without a cache:\n{refused}");
    assert!(refused.stderr.contains("build it once as root"), "the error does not say how:\n{refused}");
    assert!(!dir.lxcpath().join("unpd2").exists(), "the failed container is left");

    // A privileged create builds the cache but packs no tar (the entry stays
    // the size of its rootfs): the unprivileged lxc-create says what to run.
    let _plain = dir.container("plain");
    dir.create("debian", "plain").args(&options).env("HTTP_PROXY", "none").stdout();
    let refused = lxc_create("unpd4").run();
    assert_ne!(refused.code(), Some(0), "unpacked a tar nobody made:\n{refused}");
    assert!(refused.stderr.contains("has no rootfs.tar") && refused.stderr.contains("lxc.idmap"), "{refused}");
    assert!(!dir.lxcpath().join("unpd4").exists(), "the failed container is left");

    // Root's create of an unprivileged container packs it, then the
    // unprivileged lxc-create unpacks it inside its user namespace.
    let _seed = dir.container("seed");
    let mut seed = dir.command();
    seed.args(["create", "--distro", "debian", "--name", "seed"]).arg("-P").arg(dir.lxcpath());
    seed.arg("-f").arg(&conf).arg("--cache-dir").arg(dir.cache()).args(&options).env("HTTP_PROXY", "none");
    let seeded = seed.run();
    seeded.assert_success();
    assert!(seeded.stderr.contains("for unprivileged lxc-create"), "{seeded}");
    lxc_create("unpd3").stdout();
    let hostname = fs::read_to_string(dir.lxcpath().join("unpd3/rootfs/etc/hostname")).unwrap();
    assert_eq!(hostname.trim(), "unpd3", "configure ran inside the user namespace");
    assert_runs_unprivileged(&dir, "unpd3");
}
