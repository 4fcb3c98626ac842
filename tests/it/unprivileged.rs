//! Unprivileged (idmapped) containers: made through lxc-create (the template
//! runs in a user namespace) and through `lxc-tmpl create` (built as root,
//! then shifted into the id range); both start, root inside is uid 0, and
//! the files belong to the mapped range on the host.

use std::{fs, os::unix::fs::MetadataExt, path::PathBuf};

use lxc_tmpl_tests::{LXC_TOOLS, TestCommand, TestDir, require_root, require_tools};

/// Host ids of container root.
const MAPPED_ROOT: u32 = 100_000;

/// Gives root the subordinate ids the containers map to (lxc-create checks
/// /etc/subuid and /etc/subgid through lxc-usernsexec). Idempotent.
fn ensure_subordinate_ids() {
    for file in ["/etc/subuid", "/etc/subgid"] {
        let text = fs::read_to_string(file).unwrap_or_default();
        let line = format!("root:{MAPPED_ROOT}:65536");
        if !text.lines().any(|l| l == line) {
            fs::write(file, format!("{text}{line}\n")).unwrap_or_else(|e| panic!("cannot add {line} to {file}: {e}"));
        }
    }
}

/// The safe base config plus the id map.
fn unprivileged_conf(dir: &TestDir) -> PathBuf {
    let safe = fs::read_to_string(dir.safe_conf()).unwrap();
    dir.write(
        "unprivileged.conf",
        format!("{safe}lxc.idmap = u 0 {MAPPED_ROOT} 65536\nlxc.idmap = g 0 {MAPPED_ROOT} 65536\n"),
    )
}

/// Checks ownership on the host and identity inside, then stops.
fn assert_runs_unprivileged(dir: &TestDir, name: &str) {
    let mut ct = dir.container(name);
    for path in ["", "bin/busybox", "etc/passwd", "etc/shadow"] {
        let meta = fs::symlink_metadata(ct.rootfs().join(path)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (MAPPED_ROOT, MAPPED_ROOT), "owner of rootfs/{path} on the host");
    }
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
    let conf = unprivileged_conf(&dir);
    let mut cmd = dir.command();
    cmd.args(["create", "--distro", "busybox", "--name", "unp1"]).arg("-P").arg(dir.lxcpath()).arg("-f").arg(&conf);
    cmd.stdout();
    let config = fs::read_to_string(dir.lxcpath().join("unp1/config")).unwrap();
    assert!(config.contains("lxc.include = /usr/share/lxc/config/userns.conf"), "{config}");
    assert_runs_unprivileged(&dir, "unp1");
}

#[test]
fn lxc_create_makes_an_unprivileged_busybox_through_the_template() {
    require_root();
    require_tools(LXC_TOOLS);
    ensure_subordinate_ids();
    let dir = TestDir::new("unpriv-lxc-create");
    let conf = unprivileged_conf(&dir);
    let templates = dir.mkdir("templates");
    dir.command().arg("install-templates").arg("--dir").arg(&templates).stdout();
    let mut cmd = TestCommand::new("lxc-create");
    cmd.arg("-P").arg(dir.lxcpath()).arg("-f").arg(&conf).args(["-n", "unp2"]).arg("-t");
    cmd.arg(templates.join("lxc-tmpl-busybox")).env("LXC_TMPL_PLUGIN_PATH", dir.plugins());
    cmd.stdout();
    assert_runs_unprivileged(&dir, "unp2");
}
