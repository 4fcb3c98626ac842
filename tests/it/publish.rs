//! `lxc-tmpl image publish DIR... --simplestreams ROOT [--prune N]`: the
//! simplestreams tree LXD and Incus read, checked file by file against
//! digests computed here with sha256sum, read back the way LXD's and
//! Incus's `shared/simplestreams` read it, and served over https.
//!
//! The image directories are made here as `image build --format incus`
//! writes them (GNU tar of metadata.yaml and templates/, a rootfs as
//! squashfs or tarball, or one unified tarball), so these tests do not
//! depend on a build. No LXD runs here (tests/it/lxd.rs does that).

use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::Duration,
};

use lxc_tmpl_tests::{
    TestCommand, TestDir, assert_mentions, error_line,
    https::{HttpsServer, curl, require_curl},
    require_root, require_tools,
    running::{Running, exit_status},
    snapshot,
};
use nix::sys::signal::Signal;
use serde::Deserialize;
use serde_json::Value;

/// How an image directory holds its rootfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// incus.tar.xz + rootfs.squashfs.
    Squashfs,
    /// incus.tar.xz + rootfs.tar.xz.
    Tar,
    /// incus.tar.xz + rootfs.squashfs + rootfs.tar.xz (`--format both` with squashfs).
    Both,
    /// incus.tar.zst + rootfs.tar.zst.
    Zstd,
    /// incus.tar.xz holding rootfs/ too.
    Unified,
}

/// What an image's metadata.yaml says.
#[derive(Debug, Clone)]
struct Spec {
    release: &'static str,
    variant: &'static str,
    serial: &'static str,
    layout: Layout,
    /// Changes the rootfs content (and so the digests) under one serial.
    salt: &'static str,
}

impl Spec {
    fn new(release: &'static str, serial: &'static str, layout: Layout) -> Spec {
        Spec { release, variant: "default", serial, layout, salt: "" }
    }

    fn product(&self) -> String {
        format!("debian:{}:amd64:{}", self.release, self.variant)
    }

    fn tree_dir(&self) -> String {
        format!("images/debian/{}/amd64/{}/{}", self.release, self.variant, self.serial)
    }

    fn metadata(&self) -> String {
        format!(
            "architecture: x86_64\ncreation_date: 1704067200\nexpiry_date: 1706659200\nproperties:\n  os: Debian\n  \
             release: {}\n  variant: {}\n  architecture: amd64\n  serial: \"{}\"\n  description: Debian {} amd64 ({})\n\
             templates:\n  /etc/hostname:\n    when: [create, copy]\n    template: hostname.tpl\n",
            self.release, self.variant, self.serial, self.release, self.serial
        )
    }
}

/// Fails the test unless `tool` can be run, naming its package.
fn require_tool(tool: &str, package: &str) {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "this test needs `{tool}`, which is not installed (apt-get install {package}; see .ci/run)");
}

fn run(cmd: &mut TestCommand) {
    cmd.run().assert_success();
}

/// Packs everything in `dir` as `archive` the way `image build` does (GNU
/// tar, sorted, members `./...`), compressed by the archive's suffix.
fn pack(dir: &Path, archive: &Path) {
    let compressor = if archive.extension().is_some_and(|e| e == "zst") { "zstd -q" } else { "xz" };
    run(TestCommand::new("tar")
        .args(["--sort=name", "--numeric-owner", "-I", compressor, "-C"])
        .arg(dir)
        .arg("-cf")
        .arg(archive)
        .arg("."));
}

/// Makes the image directory `name` in `test` from `spec`; returns its path.
fn image_dir(test: &TestDir, name: &str, spec: &Spec) -> PathBuf {
    let out = test.mkdir(&format!("{name}/out"));
    let meta = test.mkdir(&format!("{name}/meta"));
    fs::write(meta.join("metadata.yaml"), spec.metadata()).unwrap();
    fs::create_dir(meta.join("templates")).unwrap();
    fs::write(meta.join("templates/hostname.tpl"), "{{ container.name }}\n").unwrap();
    let rootfs = test.mkdir(&format!("{name}/rootfs"));
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::write(rootfs.join("etc/os-release"), format!("NAME=Debian\nVERSION_CODENAME={}\n", spec.release)).unwrap();
    fs::write(rootfs.join("etc/lxc-tmpl-serial"), format!("{}{}\n", spec.serial, spec.salt)).unwrap();
    // Some bulk, so the copies take more than one read.
    fs::write(rootfs.join("etc/bulk"), format!("{}{}", spec.serial, spec.salt).repeat(300_000)).unwrap();
    let squashfs = |to: &Path| {
        run(TestCommand::new("mksquashfs").arg(&rootfs).arg(to).args(["-noappend", "-quiet", "-no-progress"]))
    };
    match spec.layout {
        Layout::Squashfs => {
            pack(&meta, &out.join("incus.tar.xz"));
            squashfs(&out.join("rootfs.squashfs"));
        }
        Layout::Tar => {
            pack(&meta, &out.join("incus.tar.xz"));
            pack(&rootfs, &out.join("rootfs.tar.xz"));
        }
        Layout::Both => {
            pack(&meta, &out.join("incus.tar.xz"));
            squashfs(&out.join("rootfs.squashfs"));
            pack(&rootfs, &out.join("rootfs.tar.xz"));
            // The LXC format's metadata of `--format both`: not published.
            pack(&meta, &out.join("meta.tar.xz"));
        }
        Layout::Zstd => {
            pack(&meta, &out.join("incus.tar.zst"));
            pack(&rootfs, &out.join("rootfs.tar.zst"));
        }
        Layout::Unified => {
            run(TestCommand::new("cp").args(["-a"]).arg(&rootfs).arg(meta.join("rootfs")));
            pack(&meta, &out.join("incus.tar.xz"));
        }
    }
    out
}

/// `lxc-tmpl image publish DIRS --simplestreams ROOT`.
fn publish(test: &TestDir, root: &Path, dirs: &[&Path]) -> TestCommand {
    let mut cmd = test.command();
    cmd.args(["image", "publish"]).args(dirs).arg("--simplestreams").arg(root);
    cmd
}

fn sha256sum(path: &Path) -> String {
    let out = TestCommand::new("sha256sum").arg(path).stdout();
    out.split_whitespace().next().unwrap_or_default().to_owned()
}

/// sha256 of the bytes of `first` followed by those of `second`, by `cat | sha256sum`.
fn sha256_of_both(first: &Path, second: &Path) -> String {
    let out =
        TestCommand::new("sh").args(["-c", "cat \"$1\" \"$2\" | sha256sum", "sh"]).arg(first).arg(second).stdout();
    out.split_whitespace().next().unwrap_or_default().to_owned()
}

fn json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}\n{text}", path.display()))
}

// The shapes LXD 5.0 and Incus decode (shared/simplestreams/{index,products}.go,
// with their JSON tags); Go ignores fields it does not know, so do these.

#[derive(Debug, Deserialize)]
struct Stream {
    index: BTreeMap<String, StreamIndex>,
    format: String,
}

#[derive(Debug, Deserialize)]
struct StreamIndex {
    datatype: String,
    path: String,
    products: Vec<String>,
    format: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Products {
    content_id: String,
    datatype: String,
    format: String,
    products: BTreeMap<String, Product>,
}

#[derive(Debug, Deserialize)]
struct Product {
    aliases: String,
    arch: String,
    os: String,
    release: String,
    release_title: String,
    variant: Option<String>,
    versions: BTreeMap<String, ProductVersion>,
}

#[derive(Debug, Deserialize)]
struct ProductVersion {
    items: BTreeMap<String, Item>,
}

#[derive(Debug, Clone, Deserialize)]
struct Item {
    ftype: String,
    path: String,
    sha256: Option<String>,
    size: i64,
    combined_sha256: Option<String>,
    combined_rootxz_sha256: Option<String>,
    combined_squashfs_sha256: Option<String>,
}

/// An image as a reader lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Listed {
    fingerprint: String,
    product: String,
    serial: String,
    /// The root item's ftype, or `unified`.
    kind: String,
    /// (path, sha256, size) of each file the reader downloads.
    files: Vec<(String, String, i64)>,
}

/// The images a reader finds in `products`, by `Products.ToLXD`/`ToAPI`'s
/// rules, with `prefix` `lxd` (LXD) or `incus` (Incus): metadata items of
/// ftype `PREFIX.tar.xz` with each root item of the version, and
/// `PREFIX_combined.tar.gz` alone; versions whose name does not start with a
/// date are skipped.
fn list_as(prefix: &str, products: &Products) -> Vec<Listed> {
    let mut listed = Vec::new();
    for (key, product) in &products.products {
        for (serial, version) in &product.versions {
            let dated = serial.len() >= 8 && serial[..8].bytes().all(|b| b.is_ascii_digit());
            if !dated {
                continue;
            }
            let file = |item: &Item| (item.path.clone(), item.sha256.clone().unwrap_or_default(), item.size);
            for item in version.items.values() {
                if item.ftype == format!("{prefix}_combined.tar.gz") {
                    listed.push(Listed {
                        fingerprint: item.sha256.clone().unwrap_or_default(),
                        product: key.clone(),
                        serial: serial.clone(),
                        kind: "unified".into(),
                        files: vec![file(item)],
                    });
                }
                if item.ftype != format!("{prefix}.tar.xz") {
                    continue;
                }
                for root in version.items.values() {
                    let fingerprint = match root.ftype.as_str() {
                        "root.tar.xz" => item.combined_rootxz_sha256.clone().or(item.combined_sha256.clone()),
                        "squashfs" => item.combined_squashfs_sha256.clone(),
                        _ => continue,
                    };
                    listed.push(Listed {
                        fingerprint: fingerprint.unwrap_or_default(),
                        product: key.clone(),
                        serial: serial.clone(),
                        kind: root.ftype.clone(),
                        files: vec![file(item), file(root)],
                    });
                }
            }
        }
    }
    listed.sort();
    listed
}

/// Reads the tree at `root` and checks everything a reader relies on:
/// the index names the products file and every product; each item's file
/// exists with its size and sha256 (sha256sum); each fingerprint is the
/// sha256 of the metadata file then the rootfs file (or of the unified
/// tarball); LXD and Incus list the same images. Returns what LXD lists.
fn check_tree(root: &Path) -> Vec<Listed> {
    let stream: Stream =
        serde_json::from_value(json(&root.join("streams/v1/index.json"))).expect("index.json as LXD reads it");
    assert_eq!(stream.format, "index:1.0");
    let entry = &stream.index["images"];
    assert_eq!((entry.datatype.as_str(), entry.path.as_str()), ("image-downloads", "streams/v1/images.json"));
    assert_eq!(entry.format.as_deref(), Some("products:1.0"));
    let products: Products =
        serde_json::from_value(json(&root.join(&entry.path))).expect("images.json as LXD reads it");
    assert_eq!(
        (products.content_id.as_str(), products.datatype.as_str(), products.format.as_str()),
        ("images", "image-downloads", "products:1.0")
    );
    let keys: Vec<String> = products.products.keys().cloned().collect();
    assert_eq!(entry.products, keys, "the index names every product");
    for (key, product) in &products.products {
        let variant = product.variant.clone().unwrap_or_default();
        assert_eq!(key, &format!("{}:{}:{}:{variant}", product.os.to_lowercase(), product.release, product.arch));
        assert_eq!(product.release_title, product.release);
        let os = product.os.to_lowercase();
        let mut aliases = vec![format!("{os}/{}/{variant}", product.release)];
        if variant == "default" {
            aliases.push(format!("{os}/{}", product.release));
        }
        assert_eq!(product.aliases, aliases.join(","), "{key}");
        assert!(!product.versions.is_empty(), "{key} has no versions");
        for (serial, version) in &product.versions {
            for (name, item) in &version.items {
                let file = root.join(&item.path);
                let meta = fs::metadata(&file).unwrap_or_else(|e| panic!("{key} {serial} {name}: {}: {e}", item.path));
                assert!(
                    item.path
                        .starts_with(&format!("images/{os}/{}/{}/{variant}/{serial}/", product.release, product.arch)),
                    "{}",
                    item.path
                );
                assert_eq!(meta.len(), u64::try_from(item.size).unwrap(), "size of {}", item.path);
                assert_eq!(item.sha256.as_deref(), Some(sha256sum(&file).as_str()), "sha256 of {}", item.path);
                assert_eq!(meta.permissions().mode() & 0o777, 0o644, "{} must be readable by a web server", item.path);
            }
        }
    }
    let lxd = list_as("lxd", &products);
    let incus = list_as("incus", &products);
    assert_eq!(lxd, incus, "LXD and Incus must find the same images");
    for image in &lxd {
        let expected = match image.files.as_slice() {
            [(unified, ..)] => sha256sum(&root.join(unified)),
            [(meta, ..), (rootfs, ..)] => sha256_of_both(&root.join(meta), &root.join(rootfs)),
            other => panic!("{other:?}"),
        };
        assert_eq!(image.fingerprint, expected, "fingerprint of {image:?}");
    }
    lxd
}

/// Every file and directory name under `root` (relative), sorted.
fn names(root: &Path) -> Vec<String> {
    let out = TestCommand::new("find").arg(root).args(["-mindepth", "1", "-printf", "%P\n"]).stdout();
    let mut names: Vec<String> = out.lines().map(str::to_owned).collect();
    names.sort();
    names
}

/// The tree's snapshot without the lock file, which a publish that waited
/// for the lock and then failed has rewritten with its purpose.
fn tree_without_lock(root: &Path) -> String {
    snapshot::tree(root)
        .lines()
        .filter(|l| !l.starts_with("./.lxc-tmpl-publish.lock "))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn split_images_make_a_tree_that_lxd_and_incus_read() {
    require_root();
    require_tools(&["tar", "xz", "sha256sum"]);
    require_tool("mksquashfs", "squashfs-tools");
    let test = TestDir::new("publish-split");
    let root = test.path().join("tree");
    let squashfs = Spec::new("bookworm", "20240101_0000", Layout::Squashfs);
    let tar = Spec::new("trixie", "20240102_0000", Layout::Tar);
    let both = Spec { variant: "cloud", ..Spec::new("bookworm", "20240103_0000", Layout::Both) };
    let dirs: Vec<PathBuf> =
        [(&squashfs, "a"), (&tar, "b"), (&both, "c")].iter().map(|(spec, name)| image_dir(&test, name, spec)).collect();
    let dir_refs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    let out = publish(&test, &root, &dir_refs).stdout();
    for spec in [&squashfs, &tar, &both] {
        assert!(out.contains(&format!("published: {} {}", spec.product(), spec.serial)), "{out}");
    }

    let expected: Vec<String> = [
        ".lxc-tmpl-publish.lock",
        "images",
        "images/debian",
        "images/debian/bookworm",
        "images/debian/bookworm/amd64",
        "images/debian/bookworm/amd64/cloud",
        "images/debian/bookworm/amd64/cloud/20240103_0000",
        "images/debian/bookworm/amd64/cloud/20240103_0000/incus.tar.xz",
        "images/debian/bookworm/amd64/cloud/20240103_0000/rootfs.squashfs",
        "images/debian/bookworm/amd64/cloud/20240103_0000/rootfs.tar.xz",
        "images/debian/bookworm/amd64/default",
        "images/debian/bookworm/amd64/default/20240101_0000",
        "images/debian/bookworm/amd64/default/20240101_0000/incus.tar.xz",
        "images/debian/bookworm/amd64/default/20240101_0000/rootfs.squashfs",
        "images/debian/trixie",
        "images/debian/trixie/amd64",
        "images/debian/trixie/amd64/default",
        "images/debian/trixie/amd64/default/20240102_0000",
        "images/debian/trixie/amd64/default/20240102_0000/incus.tar.xz",
        "images/debian/trixie/amd64/default/20240102_0000/rootfs.tar.xz",
        "streams",
        "streams/v1",
        "streams/v1/images.json",
        "streams/v1/index.json",
    ]
    .map(str::to_owned)
    .to_vec();
    assert_eq!(names(&root), expected, "no temporary file, no meta.tar.xz");

    let listed = check_tree(&root);
    let kinds: Vec<(&str, &str, &str)> =
        listed.iter().map(|l| (l.product.as_str(), l.serial.as_str(), l.kind.as_str())).collect();
    let mut want = vec![
        ("debian:bookworm:amd64:default", "20240101_0000", "squashfs"),
        ("debian:trixie:amd64:default", "20240102_0000", "root.tar.xz"),
        ("debian:bookworm:amd64:cloud", "20240103_0000", "squashfs"),
        ("debian:bookworm:amd64:cloud", "20240103_0000", "root.tar.xz"),
    ];
    want.sort();
    let mut kinds = kinds;
    kinds.sort();
    assert_eq!(kinds, want);
    // The files are the image directory's, byte for byte.
    for (spec, dir) in [(&squashfs, &dirs[0]), (&tar, &dirs[1]), (&both, &dirs[2])] {
        for name in ["incus.tar.xz", "rootfs.squashfs", "rootfs.tar.xz"] {
            if dir.join(name).exists() {
                let copy = root.join(spec.tree_dir()).join(name);
                assert_eq!(sha256sum(&copy), sha256sum(&dir.join(name)), "{}", copy.display());
            }
        }
    }
    // What the command printed is the fingerprint LXD lists.
    let printed = listed.iter().find(|l| l.serial == "20240101_0000").expect("listed");
    assert!(out.contains(&printed.fingerprint), "{out}");
}

#[test]
fn unified_and_zstd_images_are_published() {
    require_root();
    require_tools(&["tar", "xz", "sha256sum"]);
    require_tool("zstd", "zstd");
    let test = TestDir::new("publish-unified");
    let root = test.path().join("tree");
    let unified = Spec::new("bookworm", "20240101_0000", Layout::Unified);
    let zstd = Spec::new("trixie", "20240101_0000", Layout::Zstd);
    let (u, z) = (image_dir(&test, "u", &unified), image_dir(&test, "z", &zstd));
    publish(&test, &root, &[&u, &z]).run().assert_success();
    let listed = check_tree(&root);
    assert_eq!(listed.len(), 2, "{listed:?}");
    let one = listed.iter().find(|l| l.kind == "unified").expect("the unified image");
    assert_eq!(one.fingerprint, sha256sum(&u.join("incus.tar.xz")), "a unified image is its own digest");
    let items = &json(&root.join("streams/v1/images.json"))["products"]["debian:bookworm:amd64:default"]["versions"]["20240101_0000"]
        ["items"];
    let item_names: Vec<&String> = items.as_object().expect("items").keys().collect();
    assert_eq!(item_names, ["incus_combined.tar.gz", "lxd_combined.tar.gz"]);
    let z_listed = listed.iter().find(|l| l.product == zstd.product()).expect("the zstd image");
    assert_eq!(z_listed.kind, "root.tar.xz", "readers take the ftype, and unpack by content");
    assert!(z_listed.files[1].0.ends_with("/rootfs.tar.zst") && z_listed.files[0].0.ends_with("/incus.tar.zst"));
    assert_eq!(z_listed.fingerprint, sha256_of_both(&z.join("incus.tar.zst"), &z.join("rootfs.tar.zst")));
}

#[test]
fn versions_accumulate_and_prune_keeps_the_newest() {
    require_root();
    require_tools(&["tar", "xz", "sha256sum"]);
    let test = TestDir::new("publish-prune");
    let root = test.path().join("tree");
    let serials = ["20240101_0000", "20240102_0000", "20240103_0000"];
    // Published one run at a time, oldest last: the order of publishing does not matter.
    for serial in [serials[1], serials[2], serials[0]] {
        let dir = image_dir(&test, serial, &Spec::new("bookworm", serial, Layout::Tar));
        publish(&test, &root, &[&dir]).run().assert_success();
    }
    let other = image_dir(&test, "other", &Spec::new("trixie", "20240101_0000", Layout::Tar));
    publish(&test, &root, &[&other]).run().assert_success();
    let versions = |root: &Path| -> Vec<String> {
        let products = json(&root.join("streams/v1/images.json"));
        products["products"]["debian:bookworm:amd64:default"]["versions"]
            .as_object()
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(versions(&root), serials);
    assert_eq!(check_tree(&root).len(), 4);

    // --prune alone: the newest 2 of each product stay, the oldest's files and directory go.
    let out = test.command().args(["image", "publish", "--prune", "2", "--simplestreams"]).arg(&root).stdout();
    assert_eq!(out, "pruned: debian:bookworm:amd64:default 20240101_0000\n");
    assert_eq!(versions(&root), &serials[1..]);
    assert!(!root.join("images/debian/bookworm/amd64/default/20240101_0000").exists(), "its directory is gone");
    assert!(
        root.join("images/debian/trixie/amd64/default/20240101_0000/rootfs.tar.xz").is_file(),
        "other products keep theirs"
    );
    check_tree(&root);

    // With an image: published, then the prune keeps the newest one, the new one.
    let newer = image_dir(&test, "newer", &Spec::new("bookworm", "20240104_0000", Layout::Tar));
    let mut cmd = publish(&test, &root, &[&newer]);
    let out = cmd.args(["--prune", "1"]).stdout();
    assert_mentions(
        &out,
        &[
            "published: debian:bookworm:amd64:default 20240104_0000",
            "pruned: debian:bookworm:amd64:default 20240102_0000",
            "pruned: debian:bookworm:amd64:default 20240103_0000",
        ],
    );
    assert_eq!(versions(&root), ["20240104_0000"]);
    let left: Vec<String> = names(&root).into_iter().filter(|n| n.starts_with("images/debian/bookworm")).collect();
    assert_eq!(
        left,
        [
            "images/debian/bookworm",
            "images/debian/bookworm/amd64",
            "images/debian/bookworm/amd64/default",
            "images/debian/bookworm/amd64/default/20240104_0000",
            "images/debian/bookworm/amd64/default/20240104_0000/incus.tar.xz",
            "images/debian/bookworm/amd64/default/20240104_0000/rootfs.tar.xz",
        ]
    );
    check_tree(&root);

    // An older image than the one kept goes in and out at once: nothing is left of it.
    let before = tree_without_lock(&root);
    let old = image_dir(&test, "old", &Spec::new("bookworm", "20231201_0000", Layout::Tar));
    publish(&test, &root, &[&old]).args(["--prune", "1"]).run().assert_success();
    let after = tree_without_lock(&root);
    lxc_tmpl_tests::assert_same_text!(
        before.lines().filter(|l| !l.contains("streams/v1/")).collect::<Vec<_>>().join("\n"),
        after.lines().filter(|l| !l.contains("streams/v1/")).collect::<Vec<_>>().join("\n"),
        "an image pruned as it is published leaves no file"
    );
    assert_eq!(versions(&root), ["20240104_0000"]);
}

/// What `kill -9` during a publish leaves (temporary copies named
/// `.NAME.XXXXXX.tmp` next to their targets, a temporary index), planted
/// here because a kill at the right byte cannot be timed: the next publish
/// removes them under the lock and keeps every other file.
#[test]
fn the_next_publish_removes_what_a_killed_one_left() {
    require_root();
    require_tools(&["tar", "xz", "sha256sum"]);
    let test = TestDir::new("publish-stale");
    let root = test.path().join("tree");
    let first = image_dir(&test, "first", &Spec::new("bookworm", "20240101_0000", Layout::Tar));
    publish(&test, &root, &[&first]).run().assert_success();
    let version = root.join("images/debian/bookworm/amd64/default/20240101_0000");
    let dead_version = root.join("images/debian/bookworm/amd64/default/20240102_0000");
    fs::create_dir_all(&dead_version).unwrap();
    let stale = [
        version.join(".rootfs.tar.xz.Ab3dE9.tmp"),
        dead_version.join(".incus.tar.xz.Qw8rTy.tmp"),
        root.join("streams/v1/.images.json.Zx1cVb.tmp"),
    ];
    let kept = [version.join("notes.tmp"), version.join(".htaccess"), root.join("streams/v1/README")];
    for file in stale.iter().chain(&kept) {
        fs::write(file, "left behind\n").unwrap();
    }
    let second = image_dir(&test, "second", &Spec::new("trixie", "20240101_0000", Layout::Tar));
    publish(&test, &root, &[&second]).run().assert_success();
    for file in &stale {
        assert!(!file.exists(), "{} is a dead publish's temporary file: the next publish removes it", file.display());
    }
    for file in &kept {
        assert!(file.is_file(), "{} is not a temporary file of lxc-tmpl: it stays", file.display());
    }
    assert_eq!(check_tree(&root).len(), 2);
}

#[test]
fn a_serial_is_published_again_only_with_the_same_files() {
    require_root();
    require_tools(&["tar", "xz", "sha256sum"]);
    let test = TestDir::new("publish-again");
    let root = test.path().join("tree");
    let spec = Spec::new("bookworm", "20240101_0000", Layout::Tar);
    let dir = image_dir(&test, "a", &spec);
    publish(&test, &root, &[&dir]).run().assert_success();
    let before = tree_without_lock(&root);

    let out = publish(&test, &root, &[&dir]).stdout();
    assert!(out.starts_with("already published (same files): debian:bookworm:amd64:default 20240101_0000"), "{out}");
    lxc_tmpl_tests::assert_same_text!(before, tree_without_lock(&root), "the same files again change nothing");

    // Another build under the same serial.
    let rebuilt = image_dir(&test, "b", &Spec { salt: "rebuilt", ..spec.clone() });
    let failed = publish(&test, &root, &[&rebuilt]).run();
    failed.assert_exit(1);
    let line = error_line(&failed.stderr);
    assert_mentions(&line, &["debian:bookworm:amd64:default", "already has version 20240101_0000", "another serial"]);
    lxc_tmpl_tests::assert_same_text!(before, tree_without_lock(&root), "a refused publish changes nothing");

    // Both builds into a new tree at once: the copies of the first are made,
    // the second conflicts, and the tree it made is removed again.
    let fresh = test.path().join("fresh");
    let failed = publish(&test, &fresh, &[&dir, &rebuilt]).run();
    failed.assert_exit(1);
    assert_mentions(&error_line(&failed.stderr), &["already has version 20240101_0000"]);
    assert!(!fresh.exists(), "{} is left: {:?}", fresh.display(), names(&fresh));

    // Together with a good new image, the conflict refuses both.
    let good = image_dir(&test, "c", &Spec::new("trixie", "20240101_0000", Layout::Tar));
    publish(&test, &root, &[&good, &rebuilt]).run().assert_exit(1);
    lxc_tmpl_tests::assert_same_text!(before, tree_without_lock(&root), "nothing of the good image is left");
    check_tree(&root);
}

#[test]
fn bad_input_gets_one_line_and_changes_nothing() {
    require_root();
    require_tools(&["tar", "xz", "sha256sum"]);
    let test = TestDir::new("publish-bad");
    let root = test.path().join("tree");
    let good = image_dir(&test, "good", &Spec::new("bookworm", "20240101_0000", Layout::Tar));
    publish(&test, &root, &[&good]).run().assert_success();
    let before = snapshot::tree(&root);

    let with_metadata = |name: &str, edit: &dyn Fn(String) -> String| -> PathBuf {
        let spec = Spec::new("bookworm", "20240105_0000", Layout::Tar);
        let dir = image_dir(&test, name, &spec);
        let meta = test.path().join(name).join("meta");
        fs::write(meta.join("metadata.yaml"), edit(spec.metadata())).unwrap();
        pack(&meta, &dir.join("incus.tar.xz"));
        dir
    };
    let empty = test.mkdir("empty");
    let not_xz = image_dir(&test, "not-xz", &Spec::new("bookworm", "20240106_0000", Layout::Tar));
    fs::write(not_xz.join("rootfs.tar.xz"), "plain text, not xz\n").unwrap();
    let no_rootfs = image_dir(&test, "no-rootfs", &Spec::new("bookworm", "20240107_0000", Layout::Tar));
    fs::remove_file(no_rootfs.join("rootfs.tar.xz")).unwrap();
    let no_yaml = image_dir(&test, "no-yaml", &Spec::new("bookworm", "20240108_0000", Layout::Tar));
    let templates_only = test.mkdir("templates-only");
    fs::create_dir(templates_only.join("templates")).unwrap();
    pack(&templates_only, &no_yaml.join("incus.tar.xz"));
    let cases: Vec<(&str, PathBuf, Vec<&str>)> = vec![
        (
            "missing dir",
            test.path().join("nothing"),
            vec!["is not an image directory", "does not exist", "image build --format incus"],
        ),
        ("a file", good.join("incus.tar.xz"), vec!["not a directory", "image build --format incus"]),
        ("no tarball", empty, vec!["no incus.tar.xz", "image build --format incus"]),
        ("no metadata.yaml", no_yaml, vec!["has no metadata.yaml", "rebuild"]),
        ("no rootfs", no_rootfs, vec!["holds no rootfs/", "rootfs.squashfs", "image build --format incus"]),
        ("not xz", not_xz, vec!["rootfs.tar.xz is not an xz file", "rebuild"]),
        (
            "no serial",
            with_metadata("no-serial", &|m| {
                m.lines().filter(|l| !l.contains("serial:")).map(|l| format!("{l}\n")).collect()
            }),
            vec!["properties.serial", "add it"],
        ),
        (
            "undated serial",
            with_metadata("undated", &|m| m.replace("\"20240105_0000\"", "build-7")),
            vec!["properties.serial 'build-7'", "YYYYMMDD", "20240101_0000"],
        ),
        (
            "unknown arch",
            with_metadata("vax", &|m| m.replace("architecture: amd64", "architecture: vax")),
            vec!["'vax'", "amd64"],
        ),
        (
            "climbing release",
            with_metadata("climb", &|m| m.replace("release: bookworm", "release: ../../../etc")),
            vec!["properties.release '../../../etc'", "letters, digits"],
        ),
        ("not yaml", with_metadata("garbage", &|_| "{ not: [yaml\n".to_owned()), vec!["not YAML", "rebuild"]),
    ];
    // Each bad directory alone, and after a good image that must not be published either.
    let newer = image_dir(&test, "ok", &Spec::new("trixie", "20240101_0000", Layout::Tar));
    for (what, dir, needles) in cases {
        for dirs in [vec![dir.as_path()], vec![newer.as_path(), dir.as_path()]] {
            let failed = publish(&test, &root, &dirs).run();
            failed.assert_exit(1);
            let line = error_line(&failed.stderr);
            assert_mentions(&line, &needles);
            assert!(failed.stdout.is_empty(), "{what}: {failed}");
            lxc_tmpl_tests::assert_same_text!(before, snapshot::tree(&root), "{what}: the tree changed");
        }
        // Into a new tree: none is made.
        let fresh = test.path().join("fresh");
        publish(&test, &fresh, &[&dir]).run().assert_exit(1);
        assert!(!fresh.exists(), "{what}: {} was made", fresh.display());
    }

    // A products file that is not one is named, and left alone.
    fs::write(root.join("streams/v1/images.json"), "{\"products\": []}\n").unwrap();
    let broken = tree_without_lock(&root);
    let other = image_dir(&test, "other", &Spec::new("trixie", "20240102_0000", Layout::Tar));
    let failed = publish(&test, &root, &[&other]).run();
    assert_mentions(
        &error_line(&failed.stderr),
        &["streams/v1/images.json is not a simplestreams products file", "repair or remove it"],
    );
    lxc_tmpl_tests::assert_same_text!(broken, tree_without_lock(&root), "a broken tree is left as it is");

    // Usage errors: exit 2.
    for args in [vec!["--prune", "0"], vec![]] {
        let mut cmd = test.command();
        cmd.args(["image", "publish", "--simplestreams"]).arg(&root).args(args);
        cmd.run().assert_exit(2);
    }
}

#[test]
fn publishes_wait_for_the_lock_and_a_signal_rolls_back() {
    require_root();
    require_tools(&["tar", "xz", "sha256sum"]);
    let test = TestDir::new("publish-lock");
    let root = test.path().join("tree");
    let first = image_dir(&test, "a", &Spec::new("bookworm", "20240101_0000", Layout::Tar));
    publish(&test, &root, &[&first]).run().assert_success();
    let before = snapshot::tree(&root);

    // Someone holds the tree's lock: a publish waits and says so; SIGTERM ends the wait.
    let lock = fs::File::options().read(true).write(true).open(root.join(".lxc-tmpl-publish.lock")).unwrap();
    lock.lock().unwrap();
    let second = image_dir(&test, "b", &Spec::new("bookworm", "20240102_0000", Layout::Tar));
    let mut waiting = Running::spawn(&mut publish(&test, &root, &[&second]));
    waiting
        .wait_for_line("the wait for the lock", Duration::from_secs(60), |l| l.contains("waiting for the lock of"))
        .unwrap();
    waiting.signal(Signal::SIGTERM);
    let ended = waiting.wait(Duration::from_secs(30));
    ended.assert_exit(exit_status(Signal::SIGTERM));
    lxc_tmpl_tests::assert_same_text!(before, snapshot::tree(&root), "an interrupted publish changes nothing");

    // Two publishes started while it is held both go through once it is released.
    let third = image_dir(&test, "c", &Spec::new("trixie", "20240101_0000", Layout::Tar));
    let mut a = Running::spawn(&mut publish(&test, &root, &[&second]));
    let mut b = Running::spawn(&mut publish(&test, &root, &[&third]));
    for running in [&mut a, &mut b] {
        running
            .wait_for_line("the wait for the lock", Duration::from_secs(60), |l| l.contains("waiting for the lock of"))
            .unwrap();
    }
    drop(lock);
    a.wait(Duration::from_secs(60)).assert_success();
    b.wait(Duration::from_secs(60)).assert_success();
    let listed = check_tree(&root);
    let serials: Vec<(&str, &str)> = listed.iter().map(|l| (l.product.as_str(), l.serial.as_str())).collect();
    for want in [
        ("debian:bookworm:amd64:default", "20240101_0000"),
        ("debian:bookworm:amd64:default", "20240102_0000"),
        ("debian:trixie:amd64:default", "20240101_0000"),
    ] {
        assert!(serials.contains(&want), "{want:?} missing from {serials:?}");
    }
}

#[test]
fn the_tree_is_served_over_https_with_the_test_ca() {
    require_root();
    require_curl();
    require_tools(&["tar", "xz", "sha256sum"]);
    let test = TestDir::new("publish-https");
    let root = test.path().join("tree");
    let dir = image_dir(&test, "a", &Spec::new("bookworm", "20240101_0000", Layout::Tar));
    publish(&test, &root, &[&dir]).run().assert_success();
    let server = HttpsServer::serve(&root);
    let ca = server.ca_cert().to_owned();

    let index = curl(Some(&ca)).arg(server.url("streams/v1/index.json")).stdout();
    assert_eq!(index, fs::read_to_string(root.join("streams/v1/index.json")).unwrap());
    let products: Value = serde_json::from_str(&curl(Some(&ca)).arg(server.url("streams/v1/images.json")).stdout())
        .expect("images.json over https");
    let item =
        &products["products"]["debian:bookworm:amd64:default"]["versions"]["20240101_0000"]["items"]["root.tar.xz"];
    let fetched = test.path().join("fetched");
    curl(Some(&ca))
        .arg("--output")
        .arg(&fetched)
        .arg(server.url(item["path"].as_str().expect("a path")))
        .run()
        .assert_success();
    assert_eq!(Some(sha256sum(&fetched).as_str()), item["sha256"].as_str(), "the file served is the one indexed");
    assert_eq!(fs::metadata(&fetched).unwrap().len(), item["size"].as_u64().unwrap());

    // Without the CA, curl refuses the server.
    assert_eq!(curl(None).arg(server.url("streams/v1/index.json")).run().code(), Some(60));
}
