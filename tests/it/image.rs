//! `lxc-tmpl image build --format lxc`: the image LXC's `local` template
//! unpacks into containers that start with their own name, privileged and
//! unprivileged; reproducible builds; bad input.

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use lxc_tmpl_tests::{
    LXC_TOOLS, TestCommand, TestDir, assert_mentions, error_line, procs, require_root, require_tools,
    running::{Running, exit_status},
    slowtool::SlowTool,
    snapshot::listing,
    userns::{MAPPED_ROOT, ensure_subordinate_ids, idmapped_conf},
};
use nix::sys::signal::Signal;

/// A fixed `SOURCE_DATE_EPOCH` (2024-01-01), earlier than any build.
const EPOCH: &str = "1704067200";

/// `lxc-tmpl image build --distro busybox --format lxc -o <out>` with the
/// test's cache dir.
fn image_build(dir: &TestDir, out: &Path) -> TestCommand {
    let mut cmd = dir.command();
    cmd.args(["image", "build", "--distro", "busybox", "--format", "lxc", "-o"]).arg(out);
    cmd.arg("--cache-dir").arg(dir.cache());
    cmd
}

/// The names in a tarball, as `tar -t` lists them.
fn members(archive: &Path) -> Vec<String> {
    let listed = TestCommand::new("tar").arg("-tf").arg(archive).stdout();
    listed.lines().map(str::to_owned).collect()
}

/// One member's content.
fn member(archive: &Path, name: &str) -> String {
    TestCommand::new("tar").arg("-xOf").arg(archive).arg(name).stdout()
}

fn sha256(path: &Path) -> String {
    let out = TestCommand::new("sha256sum").arg(path).stdout();
    out.split_whitespace().next().unwrap_or_default().to_owned()
}

/// Where two tarballs differ: their listings (`tar -tv --full-time`) and
/// the content of their members (`diff -r` of both unpacked), for the
/// message of a failed reproducibility check.
fn difference(a: &Path, b: &Path, scratch: &Path) -> String {
    let listing =
        |archive: &Path| TestCommand::new("tar").args(["--full-time", "--numeric-owner", "-tvf"]).arg(archive).stdout();
    let (la, lb) = (listing(a), listing(b));
    let only_a: Vec<&str> = la.lines().filter(|l| !lb.lines().any(|m| m == *l)).take(20).collect();
    let only_b: Vec<&str> = lb.lines().filter(|l| !la.lines().any(|m| m == *l)).take(20).collect();
    let unpack = |archive: &Path, to: &Path| {
        fs::create_dir_all(to).unwrap();
        TestCommand::new("tar").arg("-xf").arg(archive).arg("-C").arg(to).args(["--exclude=./dev/*"]).run();
    };
    let (ua, ub) = (scratch.join("diff-a"), scratch.join("diff-b"));
    unpack(a, &ua);
    unpack(b, &ub);
    let diff = TestCommand::new("diff").args(["-r", "--no-dereference"]).arg(&ua).arg(&ub).run();
    let _ = fs::remove_dir_all(&ua);
    let _ = fs::remove_dir_all(&ub);
    let diff: String = diff.stdout.lines().take(60).collect::<Vec<_>>().join("\n");
    format!("listing only in a:\n{}\nlisting only in b:\n{}\ncontent:\n{diff}", only_a.join("\n"), only_b.join("\n"))
}

/// Asserts that both tarballs are byte-identical in the image dirs `a` and `b`.
fn assert_same_images(a: &Path, b: &Path, ext: &str, scratch: &Path) {
    let mut differ = Vec::new();
    for file in [format!("meta.tar.{ext}"), format!("rootfs.tar.{ext}")] {
        let (fa, fb) = (a.join(&file), b.join(&file));
        if sha256(&fa) != sha256(&fb) {
            differ.push(format!("{file}:\n{}", difference(&fa, &fb, scratch)));
        }
    }
    assert!(differ.is_empty(), "two builds with one SOURCE_DATE_EPOCH differ:\n{}", differ.join("\n"));
}

/// `lxc-create -t local` of the image in `out`, from base config `conf`.
fn create_from_image(dir: &TestDir, conf: &Path, name: &str, out: &Path) {
    let mut cmd = TestCommand::new("lxc-create");
    cmd.arg("-P").arg(dir.lxcpath()).arg("-f").arg(conf).args(["-n", name, "-t", "local", "--"]);
    cmd.arg("--metadata").arg(out.join("meta.tar.xz")).arg("--fstree").arg(out.join("rootfs.tar.xz"));
    cmd.stdout();
}

#[test]
fn lxc_image_has_the_files_lxc_local_reads_and_no_instance_state() {
    require_root();
    let dir = TestDir::new("image-files");
    let out = dir.path().join("img");
    let printed = image_build(&dir, &out).stdout();
    assert_eq!(listing(&out), ["meta.tar.xz", "rootfs.tar.xz"], "stdout:\n{printed}");
    let meta = out.join("meta.tar.xz");
    let mut names = members(&meta);
    names.sort();
    assert_eq!(
        names,
        [
            "./",
            "./config",
            "./config-user",
            "./config-user.1",
            "./config-user.2",
            "./config-user.3",
            "./config.1",
            "./config.2",
            "./config.3",
            "./create-message",
            "./excludes-user",
            "./expiry",
            "./templates"
        ]
    );
    // The variants for LXC 1.0-2.0's lxc-download: the same entries in the pre-2.1 key names.
    for level in 1..=3 {
        let legacy = member(&meta, &format!("./config.{level}"));
        assert!(legacy.contains("lxc.include = /usr/share/lxc/config/common.conf"), "config.{level}:\n{legacy}");
        assert!(
            legacy.contains("lxc.tty = 1\n") && legacy.contains("lxc.haltsignal = SIGUSR1\n"),
            "config.{level}:\n{legacy}"
        );
        assert!(!legacy.contains("lxc.tty.max") && !legacy.contains("lxc.signal."), "config.{level}:\n{legacy}");
        assert!(member(&meta, &format!("./config-user.{level}")).contains("userns.conf"));
    }
    let config = member(&meta, "./config");
    assert!(config.contains("lxc.include = /usr/share/lxc/config/common.conf"), "config:\n{config}");
    for key in ["lxc.rootfs.path", "lxc.uts.name", "lxc.net."] {
        assert!(!config.contains(key), "{key} in the image config:\n{config}");
    }
    let user = member(&meta, "./config-user");
    assert!(user.contains("userns.conf"), "config-user without userns.conf:\n{user}");
    assert!(!user.contains("lxc.cap.drop"), "config-user has the privileged container's entries:\n{user}");
    assert_eq!(member(&meta, "./templates"), "/etc/hostname\n/etc/hosts\n");
    // lxc-download prints create-message as it is: no placeholder a user would type.
    let message = member(&meta, "./create-message");
    assert!(message.contains("lxc-start -n <name> && lxc-attach -n <name>"), "create-message:\n{message}");
    assert!(!message.contains("LXC_NAME"), "create-message:\n{message}");
    let expiry: i64 = member(&meta, "./expiry").trim().parse().expect("expiry is a number");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((expiry - now - 30 * 86_400).abs() < 3600, "expiry {expiry} is not 30 days from now ({now})");

    let rootfs = out.join("rootfs.tar.xz");
    let files = members(&rootfs);
    assert!(files.iter().all(|f| f == "./" || f.starts_with("./")), "members not under ./: {files:?}");
    assert!(files.contains(&"./bin/busybox".to_owned()), "no busybox in {files:?}");
    assert_eq!(member(&rootfs, "./etc/hostname"), "LXC_NAME\n");
    assert!(member(&rootfs, "./etc/hosts").contains("LXC_NAME"), "/etc/hosts has no placeholder");
    assert!(!files.iter().any(|f| f.starts_with("./etc/ssh/ssh_host_")), "ssh host keys in the image");
    // Every device node is in excludes-user, and nothing else.
    let verbose = TestCommand::new("tar").arg("-tvf").arg(&rootfs).stdout();
    let devices: Vec<&str> = verbose
        .lines()
        .filter(|l| l.starts_with('c') || l.starts_with('b'))
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    let excludes = member(&meta, "./excludes-user");
    assert_eq!(excludes.lines().collect::<Vec<_>>(), devices, "excludes-user against the rootfs's device nodes");
}

#[test]
fn lxc_image_starts_through_lxc_local_privileged() {
    require_root();
    require_tools(LXC_TOOLS);
    require_tools(&["lxc-create", "xz"]);
    let dir = TestDir::new("image-local");
    let out = dir.path().join("img");
    image_build(&dir, &out).stdout();
    let mut ct = dir.container("imgpriv");
    create_from_image(&dir, &dir.safe_conf(), "imgpriv", &out);
    // lxc-local appends the image's config and then the container's own
    // lxc.* lines: the safe base config must still rule (Container::start checks).
    let config = ct.config();
    assert!(config.contains("lxc.uts.name = imgpriv"), "config:\n{config}");
    ct.start();
    assert_eq!(ct.attach(&["hostname"]).trim(), "imgpriv", "hostname inside the container");
    assert_eq!(ct.attach(&["cat", "/etc/hostname"]).trim(), "imgpriv", "/etc/hostname");
    assert!(ct.attach(&["cat", "/etc/hosts"]).contains("imgpriv"), "/etc/hosts has no name");
}

#[test]
fn lxc_image_starts_through_lxc_local_unprivileged() {
    require_root();
    require_tools(LXC_TOOLS);
    require_tools(&["lxc-create", "lxc-usernsexec", "newuidmap", "xz"]);
    ensure_subordinate_ids();
    let dir = TestDir::new("image-local-unpriv");
    let out = dir.path().join("img");
    image_build(&dir, &out).stdout();
    let conf = idmapped_conf(&dir);
    let mut ct = dir.container("imgunp");
    create_from_image(&dir, &conf, "imgunp", &out);
    let config = ct.config();
    assert!(config.contains("userns.conf"), "lxc-local did not take config-user:\n{config}");
    ct.start();
    assert_eq!(ct.attach(&["hostname"]).trim(), "imgunp", "hostname inside the container");
    assert_eq!(ct.attach(&["id", "-u"]).trim(), "0", "root inside the container");
    let status = fs::read_to_string(format!("/proc/{}/status", ct.init_pid())).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap().split_whitespace().nth(1).unwrap().to_owned();
    assert_eq!(uid, MAPPED_ROOT.to_string(), "init's uid on the host");
}

/// Builds the busybox image into a new dir `name` with `SOURCE_DATE_EPOCH=epoch`.
fn epoch_build(dir: &TestDir, name: &str, epoch: &str, compression: &str) -> PathBuf {
    let out = dir.path().join(name);
    image_build(dir, &out).args(["--compression", compression]).env("SOURCE_DATE_EPOCH", epoch).stdout();
    out
}

#[test]
fn builds_with_one_source_date_epoch_are_byte_identical() {
    require_root();
    require_tools(&["sha256sum", "zstd"]);
    let dir = TestDir::new("image-repro");
    let a = epoch_build(&dir, "a", EPOCH, "xz");
    // A second apart at least, so that any time of the build would differ.
    std::thread::sleep(Duration::from_millis(1100));
    let b = epoch_build(&dir, "b", EPOCH, "xz");
    assert_same_images(&a, &b, "xz", dir.path());
    // The check can fail: another epoch gives other bytes (mtimes and expiry).
    let c = epoch_build(&dir, "c", "1704067201", "xz");
    for file in ["meta.tar.xz", "rootfs.tar.xz"] {
        assert_ne!(sha256(&a.join(file)), sha256(&c.join(file)), "{file} ignores SOURCE_DATE_EPOCH");
    }
    let expiry = member(&a.join("meta.tar.xz"), "./expiry");
    assert_eq!(expiry.trim().parse::<i64>().unwrap(), EPOCH.parse::<i64>().unwrap() + 30 * 86_400);
    let listed = TestCommand::new("tar").args(["--full-time", "-tvf"]).arg(a.join("rootfs.tar.xz")).stdout();
    assert!(!listed.contains(" 2025-") && !listed.contains(" 2026-"), "mtimes after the epoch:\n{listed}");

    // zstd: the same, with .tar.zst files zstd itself accepts.
    let z1 = epoch_build(&dir, "z1", EPOCH, "zstd");
    let z2 = epoch_build(&dir, "z2", EPOCH, "zstd");
    assert_eq!(listing(&z1), ["meta.tar.zst", "rootfs.tar.zst"]);
    for file in ["meta.tar.zst", "rootfs.tar.zst"] {
        TestCommand::new("zstd").arg("-tq").arg(z1.join(file)).stdout();
        assert_eq!(sha256(&z1.join(file)), sha256(&z2.join(file)), "{file} differs between two zstd builds");
    }
}

#[test]
fn bad_input_gets_one_line_and_leaves_nothing() {
    require_root();
    let dir = TestDir::new("image-bad");
    let out = dir.path().join("img");

    let mut cmd = dir.command();
    cmd.args(["image", "build", "--distro", "busybox", "--format", "qcow2", "-o"]).arg(&out);
    let line = error_line(&cmd.assert_exit(2).stderr);
    assert_mentions(&line, &["qcow2", "format", "lxc"]);
    assert!(!out.exists(), "a refused build made {}", out.display());

    let mut cmd = dir.command();
    cmd.args(["image", "build", "--distro", "busybox", "--format", "lxc", "--compression", "gzip", "-o"]).arg(&out);
    let line = error_line(&cmd.assert_exit(2).stderr);
    assert_mentions(&line, &["gzip", "compression", "xz or zstd"]);
    assert!(!out.exists(), "a refused build made {}", out.display());

    // Not empty: refused, and what is there stays as it was.
    dir.write("img/keep", "mine");
    let line = error_line(&image_build(&dir, &out).assert_fail());
    assert_mentions(&line, &["not empty", &out.display().to_string()]);
    assert_eq!(listing(&out), ["keep"]);
    assert_eq!(fs::read_to_string(out.join("keep")).unwrap(), "mine");

    // What a killed build leaves is named.
    let killed = dir.mkdir("killed/.lxc-tmpl-build");
    let line = error_line(&image_build(&dir, killed.parent().unwrap()).assert_fail());
    assert_mentions(&line, &[&killed.display().to_string(), "killed", "remove it"]);
    assert!(killed.is_dir(), "the build removed what it did not make");

    // A failing plugin (no such busybox): an output dir the build made goes, an empty one stays empty.
    let missing = dir.path().join("made");
    let line = error_line(&image_build(&dir, &missing).args(["--busybox-path", "/nonexistent/busybox"]).assert_fail());
    assert_mentions(&line, &["/nonexistent/busybox"]);
    assert!(!missing.exists(), "the failed build left {}", missing.display());
    let empty = dir.mkdir("empty");
    image_build(&dir, &empty).args(["--busybox-path", "/nonexistent/busybox"]).assert_fail();
    assert!(listing(&empty).is_empty(), "the failed build left {:?} in {}", listing(&empty), empty.display());
}

#[test]
fn interrupted_build_leaves_nothing() {
    require_root();
    let dir = TestDir::new("image-interrupt");
    let slow = SlowTool::install(&dir.path().join("slow-bin"), "xz", Duration::from_secs(60));
    for (signal, out) in [(Signal::SIGINT, dir.path().join("made")), (Signal::SIGTERM, dir.mkdir("empty"))] {
        let mut cmd = image_build(&dir, &out);
        cmd.env("PATH", slow.path_env());
        let mut run = Running::spawn(&mut cmd);
        let wrapper = slow.wrapper("xz").display().to_string();
        run.wait_until("the slowed xz and its sleep", Duration::from_secs(120), |_| {
            let shell = procs::all().into_iter().find(|p| p.cmdline.contains(&wrapper))?;
            procs::descendants(shell.pid).iter().any(|p| p.comm == "sleep").then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        run.signal_group(signal);
        let outcome = run.wait(Duration::from_secs(60));
        assert_eq!(outcome.code(), Some(exit_status(signal)), "{outcome}");
        let line = error_line(&outcome.stderr);
        assert_mentions(&line, &["interrupted", signal.as_str(), "rolled back"]);
        if out.ends_with("made") {
            assert!(!out.exists(), "the interrupted build left {}", out.display());
        } else {
            assert!(listing(&out).is_empty(), "the interrupted build left {:?}", listing(&out));
        }
        let left: Vec<_> = procs::all().into_iter().filter(|p| p.cmdline.contains(&wrapper)).collect();
        assert!(left.is_empty(), "processes left running: {left:?}");
    }
}
