//! File capabilities survive every path into a container.
//!
//! The file: `/usr/bin/ping` of iputils-ping. Its postinst runs `setcap
//! cap_net_raw+ep` on it when the cache is built (libcap2-bin, which has
//! setcap, is one of its `Depends`, so dpkg configures it first), the way
//! every Debian and Ubuntu system gets it; so the capability is in the cached
//! rootfs and in the cache's `rootfs.tar` (packed by the first create of an
//! unprivileged container), with no step of the test faking either. The ubuntu plugin's default variant is
//! debootstrap's own, which installs the `important` packages, iputils-ping
//! among them (the debian plugin always bootstraps minbase, without it; the
//! fixture's "ubuntu" suites serve the same Debian 12 packages). From that
//! cache:
//!
//! - a privileged `lxc-tmpl create` copies it as it is (a revision-2
//!   capability, valid in the initial user namespace);
//! - `lxc-tmpl create` of an idmapped container shifts owners with chown(2),
//!   which clears the capability, and writes it back as a revision-3 one whose
//!   root id is the host uid of the container's root;
//! - an unprivileged `lxc-create` unpacks `rootfs.tar` in its user namespace,
//!   where the kernel turns the revision-2 capability tar sets into the same
//!   revision-3 one (capabilities(7), "Namespaced file capabilities").
//!
//! Both unprivileged containers are started, and `nobody` inside pings
//! 127.0.0.1 with ICMP datagram sockets disabled, which needs a raw socket:
//! CAP_NET_RAW, effective, from the file. A copy of ping without the
//! capability fails the same way, which shows that the check depends on it.

use std::{os::unix::fs::MetadataExt, path::Path};

use lxc_tmpl_tests::{
    Container, LXC_TOOLS, MirrorServer, TestCommand, TestDir, apt_fixture, require_root, require_tools,
    rootfs::cache_entries,
    userns::{MAPPED_ROOT, ensure_subordinate_ids, idmapped_conf},
};

/// The distro and release whose default package set has iputils-ping.
const DISTRO: &str = "ubuntu";
/// See [`DISTRO`].
const RELEASE: &str = "jammy";
/// The file with the capability, in the rootfs.
const PING: &str = "usr/bin/ping";

/// `getcap -n` of a file, as `<caps>` or `<caps> [rootid=N]` (without the path).
fn getcap(file: &Path) -> String {
    let out = TestCommand::new("getcap").arg("-n").arg(file).stdout();
    let text = out.trim();
    let caps = text.strip_prefix(&*file.to_string_lossy()).unwrap_or(text).trim();
    assert!(!caps.is_empty(), "{} has no file capabilities (getcap -n printed {out:?})", file.display());
    caps.to_owned()
}

/// In the started container `ct`: as root, brings up `lo` and keeps ICMP
/// datagram sockets disabled for everyone (`ping_group_range` "1 0", the
/// kernel's default, which systemd may widen; writing it may be refused, as
/// LXC mounts /proc/sys read-only), so ping needs a raw socket; then, as uid
/// 65534, pings 127.0.0.1 with the rootfs's ping and with a copy that lost
/// the capability. Returns the report lines.
fn ping_as_nobody(ct: &Container) -> String {
    let script = "export PATH=/usr/sbin:/usr/bin:/sbin:/bin
        ip link set lo up
        echo '1 0' 2>/dev/null > /proc/sys/net/ipv4/ping_group_range
        echo \"ping_group_range=$(tr '\\t' ' ' < /proc/sys/net/ipv4/ping_group_range)\"
        echo \"caps-as-root-sees-them=$(getcap /usr/bin/ping)\"
        cp /usr/bin/ping /tmp/ping-nocap
        for p in /usr/bin/ping /tmp/ping-nocap; do
            if setpriv --reuid=65534 --regid=65534 --clear-groups -- $p -c 1 -W 5 127.0.0.1 >/tmp/out 2>&1
            then echo \"$p=ok\"; else echo \"$p=failed: $(tr '\\n' ' ' < /tmp/out)\"; fi
        done";
    ct.attach(&["/bin/sh", "-c", script])
}

/// Starts the idmapped container `ct` and checks the capability works for
/// a non-root user inside.
fn assert_capability_effective_inside(ct: &mut Container) {
    let name = ct.name().to_owned();
    ct.start();
    let report = ping_as_nobody(ct);
    let line = |key: &str| report.lines().find_map(|l| l.strip_prefix(key)).unwrap_or("<missing>").to_owned();
    assert_eq!(line("/usr/bin/ping="), "ok", "nobody cannot ping with the file capability in {name}:\n{report}");
    // The control: without the capability, no raw socket and no datagram socket either.
    assert!(
        line("/tmp/ping-nocap=").starts_with("failed"),
        "a ping without the capability worked too (ICMP datagram sockets allowed?), so the check proves \
         nothing:\n{report}"
    );
    // Inside, the namespace's root reads its revision-3 capability as revision 2.
    assert!(line("caps-as-root-sees-them=").ends_with("cap_net_raw=ep"), "{report}");
}

/// The host's view of the shifted ping of container `name`: owned by the
/// mapped root, the capability a revision-3 one of that root.
fn assert_namespaced_capability(dir: &TestDir, name: &str) {
    let ping = dir.lxcpath().join(name).join("rootfs").join(PING);
    assert_eq!(
        getcap(&ping),
        format!("cap_net_raw=ep [rootid={MAPPED_ROOT}]"),
        "{name}: not a revision-3 capability of the container's root"
    );
    let meta = std::fs::metadata(&ping).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (MAPPED_ROOT, MAPPED_ROOT), "{name}: owner of {PING}");
    assert_eq!(meta.mode() & 0o7777, 0o755, "{name}: mode of {PING}");
}

#[test]
fn ping_keeps_cap_net_raw_through_every_create() {
    require_root();
    require_tools(LXC_TOOLS);
    require_tools(&["debootstrap", "getcap", "tar"]);
    ensure_subordinate_ids();
    let fixture = apt_fixture();
    let server = MirrorServer::start();
    let mirror = server.url(DISTRO);
    let dir = TestDir::new("file-caps");
    let conf = idmapped_conf(&dir);

    // (a) A privileged create builds the cache and copies it.
    let _a = dir.container("capa");
    let mut create = dir.create(DISTRO, "capa");
    fixture.from_mirror(&mut create, &mirror, RELEASE).stdout();
    let entries = cache_entries(&dir.cache(), DISTRO);
    let [cached] = &entries[..] else { panic!("expected one {DISTRO} cache entry, found {entries:?}") };
    assert_eq!(getcap(&cached.join(PING)), "cap_net_raw=ep", "the cache build (iputils-ping's postinst) set no cap");
    assert_eq!(getcap(&dir.lxcpath().join("capa/rootfs").join(PING)), "cap_net_raw=ep", "privileged create");

    // (b) lxc-tmpl create of an idmapped container: shifted, capability rewritten.
    let mut b = dir.container("capb");
    let mut create = dir.command();
    create.args(["create", "--distro", DISTRO, "--name", "capb"]).arg("-P").arg(dir.lxcpath());
    create.arg("-f").arg(&conf).arg("--cache-dir").arg(dir.cache());
    fixture.from_mirror(&mut create, &mirror, RELEASE).stdout();
    assert_namespaced_capability(&dir, "capb");
    assert_capability_effective_inside(&mut b);
    drop(b); // stopped and destroyed: one booted container at a time
    // That create packed the tar an unprivileged lxc-create unpacks, with the capability.
    let tar = cached.with_file_name("rootfs.tar");
    let listing = TestCommand::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "-tvvf"])
        .arg(&tar)
        .arg(format!("./{PING}"))
        .stdout();
    assert!(listing.contains("security.capability"), "rootfs.tar has no capability for {PING}:\n{listing}");

    // (c) An unprivileged lxc-create: the template unpacks rootfs.tar in its user namespace.
    let templates = dir.mkdir("templates");
    dir.command().arg("install-templates").arg("--dir").arg(&templates).stdout();
    let mut c = dir.container("capc");
    let mut lxc_create = TestCommand::new("lxc-create");
    lxc_create.arg("-P").arg(dir.lxcpath()).arg("-f").arg(&conf).args(["-n", "capc", "-t"]);
    lxc_create.arg(templates.join(format!("lxc-tmpl-{DISTRO}"))).arg("--");
    lxc_create.env("LXC_TMPL_PLUGIN_PATH", dir.plugins()).env("LXC_CACHE_PATH", dir.cache());
    fixture.from_mirror(&mut lxc_create, &mirror, RELEASE).stdout();
    assert_namespaced_capability(&dir, "capc");
    assert_capability_effective_inside(&mut c);
}
