//! The simplestreams index that LXD and Incus read from an image server
//! (`lxc remote add NAME https://HOST --protocol simplestreams`):
//! `streams/v1/index.json` names the products file, `streams/v1/images.json`
//! lists products, their versions and the files of each version.
//!
//! The shapes follow the readers, `shared/simplestreams/{index,products}.go`
//! of LXD (5.0, Debian 12's) and Incus, and what `incus-simplestreams add`
//! writes:
//!
//! - a product is keyed `os:release:arch:variant` (lowercase os) and carries
//!   `aliases` (comma-separated; each reader adds `ALIAS/ARCH` itself, and the
//!   bare alias for the host's own architecture), `arch`, `os`, `release`,
//!   `release_title`, `variant` and `versions`;
//! - a version is named by the image's serial, whose first 8 characters must
//!   be a date `YYYYMMDD` (its creation date for the readers); the newest
//!   serial in string order gets the aliases;
//! - items have `ftype`, `path` (relative to the tree's root), `sha256` and
//!   `size`. LXD takes metadata items of ftype `lxd.tar.xz` (split image) and
//!   `lxd_combined.tar.gz` (unified); Incus takes only `incus.tar.xz` and
//!   `incus_combined.tar.gz`. So each image gets one item of each name,
//!   pointing at the same file. Rootfs items are `squashfs` or `root.tar.xz`.
//!   Both readers unpack by content (magic bytes), not by ftype: a zstd
//!   tarball under `root.tar.xz` unpacks as zstd;
//! - a split image's fingerprint is the sha256 of the metadata file's bytes
//!   followed by the rootfs file's, given on the metadata item as
//!   `combined_squashfs_sha256` or `combined_rootxz_sha256` (and
//!   `combined_sha256`, LXD's older name for the latter); a unified image's is
//!   its own `sha256`.
//!
//! Fields this module does not know are kept as they were read, so a tree
//! another tool wrote keeps what it had.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

/// Where the index is, relative to the tree's root.
pub const INDEX_PATH: &str = "streams/v1/index.json";

/// Where the products are, relative to the tree's root.
pub const PRODUCTS_PATH: &str = "streams/v1/images.json";

/// The metadata item names (and ftypes) of a split image: LXD's, Incus's.
pub const SPLIT_META_FTYPES: [&str; 2] = ["lxd.tar.xz", "incus.tar.xz"];

/// The item names (and ftypes) of a unified image: LXD's, Incus's.
pub const UNIFIED_FTYPES: [&str; 2] = ["lxd_combined.tar.gz", "incus_combined.tar.gz"];

/// `streams/v1/index.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    /// `index:1.0`.
    pub format: String,
    /// One entry, `images`.
    pub index: BTreeMap<String, IndexEntry>,
    /// Fields kept as read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// An entry of [`Index`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// `image-downloads`: the only kind the readers look at.
    pub datatype: String,
    /// [`PRODUCTS_PATH`].
    pub path: String,
    /// `products:1.0`.
    pub format: String,
    /// The product keys. The readers skip an entry whose list is empty.
    pub products: Vec<String>,
    /// Fields kept as read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `streams/v1/images.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Products {
    /// `images`.
    pub content_id: String,
    /// `image-downloads`.
    pub datatype: String,
    /// `products:1.0`.
    pub format: String,
    /// Products by key `os:release:arch:variant`.
    pub products: BTreeMap<String, Product>,
    /// Fields kept as read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One product: an os, release, architecture and variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// Comma-separated aliases (`debian/bookworm/default,debian/bookworm`).
    pub aliases: String,
    /// The architecture (`amd64`).
    pub arch: String,
    /// The operating system as the image names it (`Debian`).
    pub os: String,
    /// The release (`bookworm`).
    pub release: String,
    /// The release for people.
    pub release_title: String,
    /// The variant (`default`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
    /// Versions by serial.
    pub versions: BTreeMap<String, Version>,
    /// Fields kept as read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One version of a product: the files of one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    /// Files by item name.
    pub items: BTreeMap<String, Item>,
    /// Fields kept as read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One file of a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// What the file is (`incus.tar.xz`, `squashfs`, ...).
    pub ftype: String,
    /// Relative to the tree's root.
    pub path: String,
    /// Of the file, hex.
    pub sha256: String,
    /// Of the file, bytes.
    pub size: u64,
    /// On a split image's metadata item: the fingerprint with a tar rootfs (LXD's older name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combined_sha256: Option<String>,
    /// On a split image's metadata item: the fingerprint with a tar rootfs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combined_rootxz_sha256: Option<String>,
    /// On a split image's metadata item: the fingerprint with a squashfs rootfs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combined_squashfs_sha256: Option<String>,
    /// Fields kept as read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The rootfs of a split image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKind {
    /// A squashfs image (`rootfs.squashfs`).
    Squashfs,
    /// A compressed tarball (`rootfs.tar.xz`, `rootfs.tar.zst`).
    Tar,
}

impl RootKind {
    /// The item name and ftype.
    fn item(self) -> (&'static str, &'static str) {
        match self {
            RootKind::Squashfs => ("root.squashfs", "squashfs"),
            RootKind::Tar => ("root.tar.xz", "root.tar.xz"),
        }
    }
}

/// A file of an image as published: where it is in the tree, its digest and size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileDigest {
    /// Relative to the tree's root.
    pub path: String,
    /// sha256, hex.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

/// The rootfs file of a split image, with the image's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootFile {
    /// Squashfs or tarball.
    pub kind: RootKind,
    /// The file.
    pub file: FileDigest,
    /// sha256 of the metadata file's bytes then this file's, hex.
    pub combined_sha256: String,
}

/// The files of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageFiles {
    /// Metadata tarball and one or more rootfs files (a squashfs and a
    /// tarball make two images of one version, as on the public image servers).
    Split {
        /// The metadata tarball (`incus.tar.xz`).
        meta: FileDigest,
        /// The rootfs files.
        roots: Vec<RootFile>,
    },
    /// One tarball holding metadata and rootfs.
    Unified(FileDigest),
}

/// What one image adds to the tree: a version of a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    /// `os` as the image names it (`Debian`).
    pub os: String,
    /// `release`.
    pub release: String,
    /// `architecture` property (`amd64`).
    pub arch: String,
    /// `variant`.
    pub variant: String,
    /// `serial`: the version's name.
    pub serial: String,
    /// The files.
    pub files: ImageFiles,
}

impl ImageEntry {
    /// The product key: `debian:bookworm:amd64:default`.
    pub fn product_key(&self) -> String {
        format!("{}:{}:{}:{}", self.os.to_lowercase(), self.release, self.arch, self.variant)
    }

    /// The aliases: `os/release/variant`, and `os/release` for the
    /// `default` variant (as on the public image servers). LXD and Incus add
    /// `ALIAS/ARCH` to each, and the bare one for the host's architecture.
    pub fn aliases(&self) -> String {
        let os = self.os.to_lowercase();
        let mut aliases = vec![format!("{os}/{}/{}", self.release, self.variant)];
        if self.variant == "default" {
            aliases.push(format!("{os}/{}", self.release));
        }
        aliases.join(",")
    }

    /// The directory of this version in the tree, relative to its root:
    /// `images/debian/bookworm/amd64/default/20240101_0000`.
    pub fn dir(&self) -> String {
        format!("images/{}/{}/{}/{}/{}", self.os.to_lowercase(), self.release, self.arch, self.variant, self.serial)
    }

    /// The version's items, each metadata file under both LXD's and Incus's ftype.
    pub fn items(&self) -> BTreeMap<String, Item> {
        let item = |ftype: &str, file: &FileDigest| Item {
            ftype: ftype.to_owned(),
            path: file.path.clone(),
            sha256: file.sha256.clone(),
            size: file.size,
            combined_sha256: None,
            combined_rootxz_sha256: None,
            combined_squashfs_sha256: None,
            extra: BTreeMap::new(),
        };
        let mut items = BTreeMap::new();
        match &self.files {
            ImageFiles::Unified(file) => {
                for ftype in UNIFIED_FTYPES {
                    items.insert(ftype.to_owned(), item(ftype, file));
                }
            }
            ImageFiles::Split { meta, roots } => {
                let mut meta_item = item("", meta);
                for root in roots {
                    let (name, ftype) = root.kind.item();
                    items.insert(name.to_owned(), item(ftype, &root.file));
                    match root.kind {
                        RootKind::Squashfs => meta_item.combined_squashfs_sha256 = Some(root.combined_sha256.clone()),
                        RootKind::Tar => {
                            meta_item.combined_rootxz_sha256 = Some(root.combined_sha256.clone());
                            meta_item.combined_sha256 = Some(root.combined_sha256.clone());
                        }
                    }
                }
                for ftype in SPLIT_META_FTYPES {
                    items.insert(ftype.to_owned(), Item { ftype: ftype.to_owned(), ..meta_item.clone() });
                }
            }
        }
        items
    }
}

/// What [`Products::add`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// A new version.
    New,
    /// The version was there with the same files (names, digests, sizes).
    Same,
}

/// Why the tree cannot take an image, or cannot be read.
#[derive(Debug, Error)]
pub enum StreamsError {
    /// The version is there with other files.
    #[error(
        "{product} already has version {serial} with other files: give the new image another serial (rebuild it), or publish it to another tree"
    )]
    Conflict {
        /// The product key.
        product: String,
        /// The serial.
        serial: String,
    },
    /// A JSON file of the tree is not what the readers read.
    // The parse error is in the message, before the fix, rather than a source after it.
    #[error("{path} is not a simplestreams {what} file ({detail}): repair or remove it, then publish again")]
    Unreadable {
        /// The file, relative to the root.
        path: &'static str,
        /// `index` or `products`.
        what: &'static str,
        /// What the parser said.
        detail: String,
    },
}

impl Default for Products {
    fn default() -> Self {
        Products {
            content_id: "images".to_owned(),
            datatype: "image-downloads".to_owned(),
            format: "products:1.0".to_owned(),
            products: BTreeMap::new(),
            extra: BTreeMap::new(),
        }
    }
}

impl Products {
    /// Parses `images.json`.
    ///
    /// # Errors
    /// [`StreamsError::Unreadable`].
    pub fn parse(text: &[u8]) -> Result<Products, StreamsError> {
        serde_json::from_slice(text).map_err(|e| StreamsError::Unreadable {
            path: PRODUCTS_PATH,
            what: "products",
            detail: e.to_string(),
        })
    }

    /// `images.json`, pretty-printed with a final newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("products serialize");
        text.push('\n');
        text
    }

    /// Adds `image` as a version of its product (made if missing). A version
    /// of that serial already there is replaced only by the same files.
    ///
    /// # Errors
    /// [`StreamsError::Conflict`]; nothing is changed then.
    pub fn add(&mut self, image: &ImageEntry) -> Result<Added, StreamsError> {
        let key = image.product_key();
        let items = image.items();
        if let Some(version) = self.products.get(&key).and_then(|p| p.versions.get(&image.serial)) {
            return if version.items == items {
                Ok(Added::Same)
            } else {
                Err(StreamsError::Conflict { product: key, serial: image.serial.clone() })
            };
        }
        let product = self.products.entry(key).or_insert_with(|| Product {
            aliases: image.aliases(),
            arch: image.arch.clone(),
            os: image.os.clone(),
            release: image.release.clone(),
            release_title: image.release.clone(),
            variant: image.variant.clone(),
            versions: BTreeMap::new(),
            extra: BTreeMap::new(),
        });
        product.versions.insert(image.serial.clone(), Version { items, extra: BTreeMap::new() });
        Ok(Added::New)
    }

    /// Keeps the newest `keep` versions of each product (serials in string
    /// order, as the readers sort them) and drops the others. Returns the
    /// dropped versions (product key, serial) and the paths no remaining item
    /// names, which are then to be deleted.
    pub fn prune(&mut self, keep: usize) -> (Vec<(String, String)>, BTreeSet<String>) {
        let mut dropped = Vec::new();
        let mut paths = BTreeSet::new();
        for (key, product) in &mut self.products {
            let old: Vec<String> = product.versions.keys().rev().skip(keep).cloned().collect();
            for serial in old {
                if let Some(version) = product.versions.remove(&serial) {
                    paths.extend(version.items.into_values().map(|item| item.path));
                    dropped.push((key.clone(), serial));
                }
            }
        }
        for item in self.products.values().flat_map(|p| p.versions.values()).flat_map(|v| v.items.values()) {
            paths.remove(&item.path);
        }
        (dropped, paths)
    }

    /// The index naming these products.
    pub fn index(&self) -> Index {
        let entry = IndexEntry {
            datatype: self.datatype.clone(),
            path: PRODUCTS_PATH.to_owned(),
            format: self.format.clone(),
            products: self.products.keys().cloned().collect(),
            extra: BTreeMap::new(),
        };
        Index {
            format: "index:1.0".to_owned(),
            index: BTreeMap::from([("images".to_owned(), entry)]),
            extra: BTreeMap::new(),
        }
    }
}

impl Index {
    /// `index.json`, pretty-printed with a final newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("index serializes");
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(path: &str, fill: char) -> FileDigest {
        FileDigest { path: path.to_owned(), sha256: fill.to_string().repeat(64), size: 10 }
    }

    fn split(serial: &str, kinds: &[RootKind]) -> ImageEntry {
        split_in("bookworm", serial, kinds)
    }

    fn split_in(release: &str, serial: &str, kinds: &[RootKind]) -> ImageEntry {
        let dir = format!("images/debian/{release}/amd64/default/{serial}");
        let roots = kinds
            .iter()
            .map(|&kind| {
                let name = if kind == RootKind::Squashfs { "rootfs.squashfs" } else { "rootfs.tar.xz" };
                RootFile { kind, file: digest(&format!("{dir}/{name}"), 'b'), combined_sha256: "c".repeat(64) }
            })
            .collect();
        ImageEntry {
            os: "Debian".into(),
            release: release.into(),
            arch: "amd64".into(),
            variant: "default".into(),
            serial: serial.into(),
            files: ImageFiles::Split { meta: digest(&format!("{dir}/incus.tar.xz"), 'a'), roots },
        }
    }

    #[test]
    fn names_keys_aliases_and_dirs_as_the_image_servers_do() {
        let image = split("20240101_0000", &[RootKind::Squashfs]);
        assert_eq!(image.product_key(), "debian:bookworm:amd64:default");
        assert_eq!(image.aliases(), "debian/bookworm/default,debian/bookworm");
        assert_eq!(image.dir(), "images/debian/bookworm/amd64/default/20240101_0000");
        let cloud = ImageEntry { variant: "cloud".into(), ..image };
        assert_eq!(cloud.aliases(), "debian/bookworm/cloud", "only the default variant gets the short alias");
    }

    #[test]
    fn split_items_serve_lxd_and_incus_with_combined_fingerprints() {
        let items = split("20240101_0000", &[RootKind::Squashfs, RootKind::Tar]).items();
        let names: Vec<&str> = items.keys().map(String::as_str).collect();
        assert_eq!(names, ["incus.tar.xz", "lxd.tar.xz", "root.squashfs", "root.tar.xz"]);
        for meta in SPLIT_META_FTYPES {
            let item = &items[meta];
            assert_eq!(item.ftype, meta);
            assert!(item.path.ends_with("/incus.tar.xz"));
            assert_eq!(item.combined_squashfs_sha256.as_deref(), Some("c".repeat(64).as_str()));
            assert_eq!(item.combined_rootxz_sha256, item.combined_sha256);
            assert!(item.combined_rootxz_sha256.is_some());
        }
        assert_eq!(items["root.squashfs"].ftype, "squashfs");
        assert_eq!(items["root.tar.xz"].ftype, "root.tar.xz");
        assert_eq!(items["root.squashfs"].combined_squashfs_sha256, None);

        let json = serde_json::to_value(&items["lxd.tar.xz"]).unwrap();
        for field in ["ftype", "path", "sha256", "size", "combined_squashfs_sha256", "combined_rootxz_sha256"] {
            assert!(json.get(field).is_some(), "{field} missing: {json}");
        }
        let root = serde_json::to_value(&items["root.squashfs"]).unwrap();
        assert!(root.get("combined_sha256").is_none(), "unset fields are left out: {root}");
    }

    #[test]
    fn unified_items_are_the_tarball_under_both_names() {
        let mut image = split("20240101_0000", &[]);
        image.files = ImageFiles::Unified(digest("images/x/incus.tar.xz", 'u'));
        let items = image.items();
        let names: Vec<&str> = items.keys().map(String::as_str).collect();
        assert_eq!(names, ["incus_combined.tar.gz", "lxd_combined.tar.gz"]);
        assert!(items.values().all(|i| i.sha256 == "u".repeat(64) && i.combined_sha256.is_none()));
    }

    #[test]
    fn versions_accumulate_and_a_serial_is_replaced_only_by_the_same_files() {
        let mut products = Products::default();
        assert_eq!(products.add(&split("20240101_0000", &[RootKind::Squashfs])).unwrap(), Added::New);
        assert_eq!(products.add(&split("20240102_0000", &[RootKind::Squashfs])).unwrap(), Added::New);
        assert_eq!(products.add(&split("20240101_0000", &[RootKind::Squashfs])).unwrap(), Added::Same);
        let before = products.clone();
        let err = products.add(&split("20240101_0000", &[RootKind::Tar])).unwrap_err();
        assert!(matches!(err, StreamsError::Conflict { .. }), "{err}");
        assert!(err.to_string().contains("debian:bookworm:amd64:default already has version 20240101_0000"));
        assert_eq!(products, before, "a conflict changes nothing");
        let product = &products.products["debian:bookworm:amd64:default"];
        assert_eq!(product.versions.len(), 2);
        assert_eq!(
            (product.arch.as_str(), product.os.as_str(), product.release_title.as_str()),
            ("amd64", "Debian", "bookworm")
        );
    }

    #[test]
    fn prune_keeps_the_newest_of_each_product_and_frees_their_files() {
        let mut products = Products::default();
        for serial in ["20240103_0000", "20240101_0000", "20240102_0000"] {
            products.add(&split(serial, &[RootKind::Squashfs])).unwrap();
        }
        products.add(&split_in("trixie", "20240101_0000", &[RootKind::Tar])).unwrap();
        let (dropped, paths) = products.prune(2);
        assert_eq!(dropped, [("debian:bookworm:amd64:default".to_owned(), "20240101_0000".to_owned())]);
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        assert_eq!(
            paths,
            [
                "images/debian/bookworm/amd64/default/20240101_0000/incus.tar.xz",
                "images/debian/bookworm/amd64/default/20240101_0000/rootfs.squashfs"
            ]
        );
        let kept: Vec<&str> =
            products.products["debian:bookworm:amd64:default"].versions.keys().map(String::as_str).collect();
        assert_eq!(kept, ["20240102_0000", "20240103_0000"]);
        assert_eq!(products.products["debian:trixie:amd64:default"].versions.len(), 1);
        assert_eq!(products.prune(2), (vec![], BTreeSet::new()), "nothing more to drop");

        // A file two versions share (another tool's tree) goes only with the last of them.
        let mut shared = split("20240104_0000", &[RootKind::Squashfs]);
        if let ImageFiles::Split { meta, .. } = &mut shared.files {
            meta.path = "images/debian/bookworm/amd64/default/20240103_0000/incus.tar.xz".into();
        }
        products.add(&shared).unwrap();
        let (_, paths) = products.prune(1);
        assert!(!paths.contains("images/debian/bookworm/amd64/default/20240103_0000/incus.tar.xz"), "{paths:?}");
        assert!(paths.contains("images/debian/bookworm/amd64/default/20240103_0000/rootfs.squashfs"), "{paths:?}");
    }

    #[test]
    fn json_round_trips_and_keeps_unknown_fields() {
        let mut products = Products::default();
        products.add(&split("20240101_0000", &[RootKind::Squashfs])).unwrap();
        let mut value: Value = serde_json::from_str(&products.to_json()).unwrap();
        value["updated"] = "Mon, 01 Jan 2024 00:00:00 +0000".into();
        value["products"]["debian:bookworm:amd64:default"]["supported"] = true.into();
        let read = Products::parse(value.to_string().as_bytes()).unwrap();
        let again: Value = serde_json::from_str(&read.to_json()).unwrap();
        assert_eq!(again, value);
        assert!(matches!(Products::parse(b"{\"products\": 3}"), Err(StreamsError::Unreadable { .. })));
    }

    #[test]
    fn index_names_every_product() {
        let mut products = Products::default();
        products.add(&split("20240101_0000", &[RootKind::Squashfs])).unwrap();
        let index: Value = serde_json::from_str(&products.index().to_json()).unwrap();
        assert_eq!(index["format"], "index:1.0");
        assert_eq!(index["index"]["images"]["datatype"], "image-downloads");
        assert_eq!(index["index"]["images"]["path"], "streams/v1/images.json");
        assert_eq!(index["index"]["images"]["format"], "products:1.0");
        assert_eq!(index["index"]["images"]["products"], serde_json::json!(["debian:bookworm:amd64:default"]));
    }
}
