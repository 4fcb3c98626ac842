//! `lxc-tmpl image build --format incus|both`: the files of an Incus/LXD
//! image (split with a squashfs or tar rootfs, unified), its metadata.yaml and
//! templates, one rootfs tarball shared with the LXC files, reproducible
//! builds, and bad input. Importing and launching the images with a real LXD
//! is tests/it/lxd.rs's part.

use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    time::Duration,
};

use lxc_tmpl_host::{
    image::{Compression, squashfs},
    runner::Runner,
};
use lxc_tmpl_tests::{
    TestCommand, TestDir, assert_mentions, error_line, paths, procs, require_root, require_tools,
    running::{Running, exit_status},
    slowtool::SlowTool,
    snapshot::listing,
};
use nix::sys::signal::Signal;
use serde::Deserialize;

/// A fixed `SOURCE_DATE_EPOCH` (2024-01-01 00:00 UTC), earlier than any build.
const EPOCH: &str = "1704067200";

/// `lxc-tmpl image build --distro busybox --format FORMAT -o <out>` with the
/// test's cache dir.
fn image_build(dir: &TestDir, format: &str, out: &Path) -> TestCommand {
    let mut cmd = dir.command();
    cmd.args(["image", "build", "--distro", "busybox", "--format", format, "-o"]).arg(out);
    cmd.arg("--cache-dir").arg(dir.cache());
    cmd
}

/// The names in a tarball, as `tar -t` lists them, sorted.
fn members(archive: &Path) -> Vec<String> {
    let listed = TestCommand::new("tar").arg("-tf").arg(archive).stdout();
    let mut names: Vec<String> = listed.lines().map(str::to_owned).collect();
    names.sort();
    names
}

/// One member's content.
fn member(archive: &Path, name: &str) -> String {
    TestCommand::new("tar").arg("-xOf").arg(archive).arg(name).stdout()
}

fn sha256(path: &Path) -> String {
    let out = TestCommand::new("sha256sum").arg(path).stdout();
    out.split_whitespace().next().unwrap_or_default().to_owned()
}

/// A template rule of metadata.yaml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Template {
    when: Vec<String>,
    create_only: bool,
    template: String,
}

/// metadata.yaml as LXD's `api.ImageMetadata` reads it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    architecture: String,
    creation_date: i64,
    expiry_date: i64,
    properties: BTreeMap<String, String>,
    templates: BTreeMap<String, Template>,
}

/// The metadata.yaml in `archive`, parsed.
fn metadata(archive: &Path) -> Metadata {
    let text = member(archive, "metadata.yaml");
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("metadata.yaml does not parse: {e}\n{text}"))
}

/// A directory of links to every program in /usr/bin and /usr/sbin but
/// `missing`, for a `PATH` that lacks it.
fn path_without(dir: &TestDir, missing: &str) -> PathBuf {
    let bin = dir.mkdir("path-without");
    for from in ["/usr/sbin", "/usr/bin"] {
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            if name != missing && !bin.join(&name).exists() {
                symlink(entry.path(), bin.join(&name)).unwrap();
            }
        }
    }
    bin
}

/// The Unix time now.
fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[test]
fn split_squashfs_image_has_metadata_templates_and_the_rootfs() {
    require_root();
    require_tools(&["mksquashfs", "unsquashfs", "dpkg", "uname"]);
    let dir = TestDir::new("incus-squashfs");
    let out = dir.path().join("img");
    let printed = image_build(&dir, "incus", &out).args(["--incus-rootfs", "squashfs"]).stdout();
    assert_eq!(listing(&out), ["incus.tar.xz", "rootfs.squashfs"], "stdout:\n{printed}");
    let meta = out.join("incus.tar.xz");
    assert_eq!(members(&meta), ["metadata.yaml", "templates/", "templates/hostname.tpl", "templates/hosts.tpl"]);

    let parsed = metadata(&meta);
    let machine = TestCommand::new("uname").arg("-m").stdout().trim().to_owned();
    let dpkg_arch = TestCommand::new("dpkg").arg("--print-architecture").stdout().trim().to_owned();
    assert_eq!(parsed.architecture, machine, "architecture is the kernel's name");
    assert!((parsed.creation_date - now()).abs() < 3600, "creation_date {} is not now", parsed.creation_date);
    assert_eq!(parsed.expiry_date, parsed.creation_date + 30 * 86_400);
    let mut date = TestCommand::new("date");
    date.args(["-u", "+%Y%m%d_%H%M", "-d"]).arg(format!("@{}", parsed.creation_date));
    let serial = date.stdout().trim().to_owned();
    let props = &parsed.properties;
    assert_eq!(props["os"], "Busybox");
    assert_eq!(props["architecture"], dpkg_arch);
    assert_eq!(props["variant"], "default");
    assert_eq!(props["serial"], serial);
    assert_eq!(props["description"], format!("Busybox current {dpkg_arch} (default) ({serial})"));
    assert_eq!(props["release"], "current", "busybox, without releases, is current: {props:?}");
    for path in ["/etc/hostname", "/etc/hosts"] {
        let rule = parsed.templates.get(path).unwrap_or_else(|| panic!("no template for {path}: {parsed:?}"));
        assert_eq!(rule.when, ["create", "copy"], "{path}");
        assert!(!rule.create_only, "{path}");
    }
    assert_eq!(parsed.templates.len(), 2);
    let hostname = &parsed.templates["/etc/hostname"].template;
    assert_eq!(member(&meta, &format!("templates/{hostname}")), "{{ container.name }}\n");
    let hosts = member(&meta, &format!("templates/{}", parsed.templates["/etc/hosts"].template));
    assert!(hosts.contains("127.0.1.1\t{{ container.name }}\n"), "hosts.tpl:\n{hosts}");
    assert!(hosts.contains("localhost") && !hosts.contains("LXC_NAME"), "hosts.tpl:\n{hosts}");

    // The rootfs: numeric owners, the busybox tree, no instance state.
    let squashfs = out.join("rootfs.squashfs");
    let listed = TestCommand::new("unsquashfs").arg("-lln").arg(&squashfs).stdout();
    let busybox = listed.lines().find(|l| l.ends_with(" squashfs-root/bin/busybox"));
    let busybox = busybox.unwrap_or_else(|| panic!("no /bin/busybox in the squashfs:\n{listed}"));
    assert!(busybox.starts_with("-rwxr-xr-x 0/0 "), "busybox's mode and owner: {busybox}");
    assert!(!listed.contains("squashfs-root/etc/ssh/ssh_host_"), "ssh host keys in the image");
    let unpacked = dir.path().join("unpacked");
    TestCommand::new("unsquashfs").arg("-d").arg(&unpacked).arg(&squashfs).args(["etc/hostname", "etc/hosts"]).stdout();
    // The placeholders of the LXC format: LXD and Incus write both files from the templates.
    assert_eq!(fs::read_to_string(unpacked.join("etc/hostname")).unwrap(), "LXC_NAME\n");
}

#[test]
fn split_tar_unified_and_auto_layouts() {
    require_root();
    let dir = TestDir::new("incus-layouts");

    let split = dir.path().join("split");
    image_build(&dir, "incus", &split).args(["--incus-rootfs", "tar"]).stdout();
    assert_eq!(listing(&split), ["incus.tar.xz", "rootfs.tar.xz"]);
    let files = members(&split.join("rootfs.tar.xz"));
    assert!(files.iter().all(|f| f.starts_with("./")), "rootfs members not under ./: {files:?}");
    assert!(files.contains(&"./bin/busybox".to_owned()), "no busybox in {files:?}");

    let unified = dir.path().join("unified");
    image_build(&dir, "incus", &unified).args(["--incus-type", "unified"]).stdout();
    assert_eq!(listing(&unified), ["incus.tar.xz"]);
    let tarball = unified.join("incus.tar.xz");
    let files = members(&tarball);
    assert_eq!(files[..5], ["metadata.yaml", "rootfs/", "rootfs/bin/", "rootfs/bin/arch", "rootfs/bin/ash"]);
    assert!(files.contains(&"rootfs/bin/busybox".to_owned()) && files.contains(&"templates/hosts.tpl".to_owned()));
    let stray: Vec<&String> = files
        .iter()
        .filter(|f| *f != "metadata.yaml" && !f.starts_with("rootfs/") && !f.starts_with("templates/"))
        .collect();
    assert!(stray.is_empty(), "members outside metadata.yaml, rootfs/ and templates/: {stray:?}");
    assert_eq!(member(&tarball, "rootfs/etc/hostname"), "LXC_NAME\n");
    assert_eq!(metadata(&tarball).properties["os"], "Busybox");

    // auto without mksquashfs: a tar rootfs.
    let auto = dir.path().join("auto");
    let path = path_without(&dir, "mksquashfs");
    image_build(&dir, "incus", &auto).env("PATH", &path).stdout();
    assert_eq!(listing(&auto), ["incus.tar.xz", "rootfs.tar.xz"], "auto without mksquashfs");
}

#[test]
fn both_formats_come_from_one_rootfs() {
    require_root();
    require_tools(&["mksquashfs", "unsquashfs"]);
    let dir = TestDir::new("incus-both");

    // A tar rootfs: one rootfs.tar.xz for lxc-local and incus image import.
    let shared = dir.path().join("shared");
    image_build(&dir, "both", &shared).args(["--incus-rootfs", "tar"]).stdout();
    assert_eq!(listing(&shared), ["incus.tar.xz", "meta.tar.xz", "rootfs.tar.xz"]);
    assert_eq!(member(&shared.join("meta.tar.xz"), "./templates"), "/etc/hostname\n/etc/hosts\n");
    assert_eq!(member(&shared.join("rootfs.tar.xz"), "./etc/hostname"), "LXC_NAME\n");
    assert_eq!(members(&shared.join("incus.tar.xz"))[0], "metadata.yaml");

    // The default (auto, mksquashfs installed): a squashfs next to the LXC files.
    let squashed = dir.path().join("squashed");
    image_build(&dir, "both", &squashed).stdout();
    assert_eq!(listing(&squashed), ["incus.tar.xz", "meta.tar.xz", "rootfs.squashfs", "rootfs.tar.xz"]);
    // The same tree in both rootfs files.
    let mut in_tar: Vec<String> = members(&squashed.join("rootfs.tar.xz"))
        .into_iter()
        .map(|f| f.trim_start_matches("./").trim_end_matches('/').to_owned())
        .filter(|f| !f.is_empty())
        .collect();
    in_tar.sort();
    let listed = TestCommand::new("unsquashfs").arg("-l").arg(squashed.join("rootfs.squashfs")).stdout();
    let mut in_squashfs: Vec<String> =
        listed.lines().filter_map(|l| l.strip_prefix("squashfs-root/")).map(str::to_owned).collect();
    in_squashfs.sort();
    assert_eq!(in_tar, in_squashfs, "rootfs.tar.xz and rootfs.squashfs hold different trees");
}

/// Builds `--format FORMAT` into a new dir `name` with `SOURCE_DATE_EPOCH=epoch` and `extra` options.
fn epoch_build(dir: &TestDir, name: &str, format: &str, epoch: &str, extra: &[&str]) -> PathBuf {
    let out = dir.path().join(name);
    image_build(dir, format, &out).args(extra).env("SOURCE_DATE_EPOCH", epoch).stdout();
    out
}

/// Every file of two image dirs, with its checksum in each, where they differ.
fn differing(a: &Path, b: &Path) -> Vec<String> {
    assert_eq!(listing(a), listing(b));
    listing(a).into_iter().filter(|file| sha256(&a.join(file)) != sha256(&b.join(file))).collect()
}

#[test]
fn builds_with_one_source_date_epoch_are_byte_identical() {
    require_root();
    require_tools(&["sha256sum", "mksquashfs", "zstd"]);
    let dir = TestDir::new("incus-repro");
    let squashfs = ["--incus-rootfs", "squashfs"];
    let a = epoch_build(&dir, "a", "both", EPOCH, &squashfs);
    // A second apart at least, so that any time of the build would differ.
    std::thread::sleep(Duration::from_millis(1100));
    let b = epoch_build(&dir, "b", "both", EPOCH, &squashfs);
    assert_eq!(listing(&a), ["incus.tar.xz", "meta.tar.xz", "rootfs.squashfs", "rootfs.tar.xz"]);
    let differ = differing(&a, &b);
    assert!(differ.is_empty(), "two builds with one SOURCE_DATE_EPOCH differ in {differ:?}");
    let parsed = metadata(&a.join("incus.tar.xz"));
    assert_eq!(parsed.creation_date, EPOCH.parse::<i64>().unwrap());
    assert_eq!(parsed.expiry_date, parsed.creation_date + 30 * 86_400);
    assert_eq!(parsed.properties["serial"], "20240101_0000");
    let listed = TestCommand::new("unsquashfs").arg("-lln").arg(a.join("rootfs.squashfs")).stdout();
    assert!(!listed.contains(" 2025-") && !listed.contains(" 2026-"), "mtimes after the epoch:\n{listed}");

    // The check can fail: another epoch gives other bytes (times, metadata).
    let c = epoch_build(&dir, "c", "both", "1704067260", &squashfs);
    let differ = differing(&a, &c);
    for file in ["incus.tar.xz", "rootfs.squashfs"] {
        assert!(differ.contains(&file.to_owned()), "{file} ignores SOURCE_DATE_EPOCH (differing: {differ:?})");
    }
    assert_eq!(metadata(&c.join("incus.tar.xz")).properties["serial"], "20240101_0001");

    // Unified and zstd: the same, with a .tar.zst zstd itself accepts.
    let unified = ["--incus-type", "unified", "--compression", "zstd"];
    let u1 = epoch_build(&dir, "u1", "incus", EPOCH, &unified);
    let u2 = epoch_build(&dir, "u2", "incus", EPOCH, &unified);
    assert_eq!(listing(&u1), ["incus.tar.zst"]);
    TestCommand::new("zstd").arg("-tq").arg(u1.join("incus.tar.zst")).stdout();
    let differ = differing(&u1, &u2);
    assert!(differ.is_empty(), "two unified zstd builds differ in {differ:?}");
    // A zstd squashfs, reproducible too.
    let z1 = epoch_build(&dir, "z1", "incus", EPOCH, &["--compression", "zstd", "--incus-rootfs", "squashfs"]);
    let z2 = epoch_build(&dir, "z2", "incus", EPOCH, &["--compression", "zstd", "--incus-rootfs", "squashfs"]);
    assert_eq!(listing(&z1), ["incus.tar.zst", "rootfs.squashfs"]);
    let info = TestCommand::new("unsquashfs").arg("-s").arg(z1.join("rootfs.squashfs")).stdout();
    assert!(info.contains("Compression zstd"), "the squashfs is not zstd:\n{info}");
    let differ = differing(&z1, &z2);
    assert!(differ.is_empty(), "two zstd squashfs builds differ in {differ:?}");
}

#[test]
fn bad_input_gets_one_line_and_leaves_nothing() {
    require_root();
    let dir = TestDir::new("incus-bad");
    let out = dir.path().join("img");

    let line = error_line(&image_build(&dir, "lxd", &out).assert_exit(2).stderr);
    assert_mentions(&line, &["'lxd'", "lxc, incus or both"]);
    assert!(!out.exists(), "a refused build made {}", out.display());

    let mut cmd = image_build(&dir, "incus", &out);
    let line = error_line(&cmd.args(["--incus-type", "unified", "--incus-rootfs", "squashfs"]).assert_exit(2).stderr);
    assert_mentions(&line, &["unified", "squashfs", "--incus-type split"]);
    assert!(!out.exists(), "a refused build made {}", out.display());

    let line = error_line(&image_build(&dir, "incus", &out).args(["--incus-type", "layered"]).assert_exit(2).stderr);
    assert_mentions(&line, &["'layered'", "split or unified"]);
    let line = error_line(&image_build(&dir, "incus", &out).args(["--incus-rootfs", "ext4"]).assert_exit(2).stderr);
    assert_mentions(&line, &["'ext4'", "auto, squashfs or tar"]);

    // Incus options with the LXC format alone would be ignored: refused.
    let line = error_line(&image_build(&dir, "lxc", &out).args(["--incus-type", "unified"]).assert_exit(2).stderr);
    assert_mentions(&line, &["--incus-type", "--format incus"]);
    assert!(!out.exists(), "a refused build made {}", out.display());

    // squashfs asked for, no mksquashfs: refused before any work.
    let path = path_without(&dir, "mksquashfs");
    let mut cmd = image_build(&dir, "incus", &out);
    let stderr = cmd.args(["--incus-rootfs", "squashfs"]).env("PATH", &path).assert_fail();
    let line = error_line(&stderr);
    assert_mentions(&line, &["mksquashfs", "apt-get install squashfs-tools"]);
    assert!(!out.exists(), "a refused build made {}", out.display());

    // Not empty: refused, and what is there stays as it was.
    dir.write("img/keep", "mine");
    let line = error_line(&image_build(&dir, "incus", &out).assert_fail());
    assert_mentions(&line, &["not empty", &out.display().to_string()]);
    assert_eq!(listing(&out), ["keep"]);

    // A failing plugin: the output dir the build made goes.
    let missing = dir.path().join("made");
    let mut cmd = image_build(&dir, "both", &missing);
    let line = error_line(&cmd.args(["--busybox-path", "/nonexistent/busybox"]).assert_fail());
    assert_mentions(&line, &["/nonexistent/busybox"]);
    assert!(!missing.exists(), "the failed build left {}", missing.display());
}

#[test]
fn interrupted_squashfs_build_leaves_nothing() {
    require_root();
    require_tools(&["mksquashfs"]);
    let dir = TestDir::new("incus-interrupt");
    let slow = SlowTool::install(&dir.path().join("slow-bin"), "mksquashfs", Duration::from_secs(60));
    let out = dir.path().join("made");
    let mut cmd = image_build(&dir, "both", &out);
    cmd.args(["--incus-rootfs", "squashfs"]).env("PATH", slow.path_env());
    let mut run = Running::spawn(&mut cmd);
    let wrapper = slow.wrapper("mksquashfs").display().to_string();
    run.wait_until("the slowed mksquashfs and its sleep", Duration::from_secs(120), |_| {
        let shell = procs::all().into_iter().find(|p| p.cmdline.contains(&wrapper))?;
        procs::descendants(shell.pid).iter().any(|p| p.comm == "sleep").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    run.signal_group(Signal::SIGTERM);
    let outcome = run.wait(Duration::from_secs(60));
    assert_eq!(outcome.code(), Some(exit_status(Signal::SIGTERM)), "{outcome}");
    let line = error_line(&outcome.stderr);
    assert_mentions(&line, &["interrupted", "SIGTERM", "squashfs", "rolled back"]);
    assert!(!out.exists(), "the interrupted build left {}", out.display());
    let left: Vec<_> = procs::all().into_iter().filter(|p| p.cmdline.contains(&wrapper)).collect();
    assert!(left.is_empty(), "processes left running: {left:?}");
}

/// The busybox rootfs has no file capabilities, so the squashfs step is run
/// directly (through the real runner, as a build runs it) over a tree that
/// has one: the capability, the numeric owner and the mode survive.
#[test]
fn squashfs_keeps_file_capabilities_and_numeric_owners() {
    require_root();
    require_tools(&["mksquashfs", "unsquashfs", "setcap", "getcap"]);
    let dir = TestDir::new("incus-caps");
    let tree = dir.mkdir("tree/usr/bin");
    let ping = tree.join("ping");
    fs::write(&ping, "#!/bin/sh\n").unwrap();
    TestCommand::new("chown").arg("1234:5678").arg(&ping).stdout();
    TestCommand::new("chmod").arg("0750").arg(&ping).stdout();
    TestCommand::new("setcap").arg("cap_net_raw+ep").arg(&ping).stdout();
    let image = dir.path().join("rootfs.squashfs");
    let runner = Runner::new(paths::binary());
    squashfs::make(&runner, &dir.path().join("tree"), &image, Compression::Xz, Some(1_704_067_200))
        .unwrap_or_else(|e| panic!("mksquashfs: {e}"));
    let listed = TestCommand::new("unsquashfs").arg("-lln").arg(&image).stdout();
    let line = listed.lines().find(|l| l.ends_with("squashfs-root/usr/bin/ping")).unwrap_or_else(|| panic!("{listed}"));
    assert!(line.starts_with("-rwxr-x--- 1234/5678 "), "mode and numeric owner: {line}");
    let unpacked = dir.path().join("unpacked");
    TestCommand::new("unsquashfs").arg("-d").arg(&unpacked).arg(&image).stdout();
    let caps = TestCommand::new("getcap").arg(unpacked.join("usr/bin/ping")).stdout();
    assert!(caps.contains("cap_net_raw=ep"), "the file capability is lost: {caps:?}");
}
