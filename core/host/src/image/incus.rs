//! The Incus and LXD image format (LXD's `doc/reference/image_format.md`,
//! the same in Incus): a `metadata.yaml`, template files for LXD's and
//! Incus's pongo2 template engine, and the rootfs.
//!
//! ```text
//! split, squashfs rootfs:  incus.tar.xz     metadata.yaml, templates/
//!                          rootfs.squashfs  the rootfs (its root is the container's /)
//! split, tar rootfs:       incus.tar.xz     metadata.yaml, templates/
//!                          rootfs.tar.xz    the rootfs, members ./... (the LXC format's own file)
//! unified:                 incus.tar.xz     metadata.yaml, templates/, rootfs/...
//! ```
//!
//! `lxc image import incus.tar.xz rootfs.squashfs` (or `incus image import`)
//! takes a split image, `... import incus.tar.xz` a unified one. The names
//! are fixed (`image publish` and the tests rely on them); `.xz` is `.zst`
//! with `--compression zstd`, which LXD and Incus unpack too.
//!
//! The templates are distrobuilder's (its `hostname` and `hosts`
//! generators): `/etc/hostname` becomes `{{ container.name }}` and the
//! rootfs's `/etc/hosts` gets the name where the LXC format has its
//! `LXC_NAME`, both applied `when: [create, copy]`. LXD and Incus both name
//! the instance `container` and `instance` in a template's context (their
//! `driver_lxc.go`, `templateApplyNow`; `container` since LXD's first
//! releases), so one template serves both.
//! The rootfs keeps the LXC format's placeholders, so `--format both` packs
//! one rootfs for both formats: LXD and Incus overwrite both files from the
//! templates when an instance is created, before its first start.

#![allow(clippy::disallowed_methods)] // Writes go into the image's own scratch dir, made by this build, never a rootfs.

use std::{
    fs,
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
};

use super::instance::NAME_PLACEHOLDER;

/// The metadata archive's name before `.<ext>`: `incus.tar.xz`, `incus.tar.zst`.
pub const METADATA_TARBALL: &str = "incus.tar";

/// The SquashFS rootfs of a split image.
pub const SQUASHFS_ROOTFS: &str = "rootfs.squashfs";

/// The file inside the metadata archive.
pub const METADATA_FILE: &str = "metadata.yaml";

/// The template directory inside the metadata archive.
pub const TEMPLATES_DIR: &str = "templates";

/// The name of the instance in a template: distrobuilder's spelling, which
/// LXD (as an alias of `instance.name`) and Incus both render.
pub const TEMPLATE_NAME: &str = "{{ container.name }}";

/// The image variant: the one kind an image build makes (distrobuilder's
/// default variant name).
pub const VARIANT: &str = "default";

/// `--incus-type`: one archive or two (distrobuilder's `--type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncusType {
    /// `incus.tar.*` with the metadata, and the rootfs apart.
    Split,
    /// `incus.tar.*` with the metadata and the rootfs.
    Unified,
}

impl IncusType {
    /// Parses `split` or `unified`.
    ///
    /// # Errors
    /// A message naming the accepted values.
    pub fn parse(value: &str) -> Result<IncusType, String> {
        match value {
            "split" => Ok(IncusType::Split),
            "unified" => Ok(IncusType::Unified),
            other => Err(format!("unknown Incus image type '{other}': use split or unified")),
        }
    }
}

/// `--incus-rootfs`: how a split image's rootfs is packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootfsChoice {
    /// SquashFS when `mksquashfs` is installed, else a tarball.
    Auto,
    /// `rootfs.squashfs`.
    Squashfs,
    /// `rootfs.tar.*`.
    Tar,
}

impl RootfsChoice {
    /// Parses `auto`, `squashfs` or `tar`.
    ///
    /// # Errors
    /// A message naming the accepted values.
    pub fn parse(value: &str) -> Result<RootfsChoice, String> {
        match value {
            "auto" => Ok(RootfsChoice::Auto),
            "squashfs" => Ok(RootfsChoice::Squashfs),
            "tar" => Ok(RootfsChoice::Tar),
            other => Err(format!("unknown Incus rootfs kind '{other}': use auto, squashfs or tar")),
        }
    }
}

/// The files of an Incus image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncusLayout {
    /// `incus.tar.*` and `rootfs.squashfs`.
    SplitSquashfs,
    /// `incus.tar.*` and `rootfs.tar.*`.
    SplitTar,
    /// `incus.tar.*` alone.
    Unified,
}

/// Why the options name no layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// A unified image holds its rootfs as a directory of the tarball.
    #[error(
        "--incus-type unified puts the rootfs inside incus.tar, which cannot hold a squashfs: use --incus-type split with --incus-rootfs squashfs, or drop --incus-rootfs"
    )]
    UnifiedSquashfs,
    /// `--incus-rootfs squashfs` without `mksquashfs`.
    #[error("mksquashfs is not installed (not in PATH): apt-get install squashfs-tools, or use --incus-rootfs tar")]
    NoMksquashfs,
}

impl IncusLayout {
    /// The layout of `kind` with `rootfs`, `has_mksquashfs` telling whether
    /// `mksquashfs` can be run.
    ///
    /// # Errors
    /// [`LayoutError`]: a unified image with a squashfs rootfs, or a squashfs
    /// rootfs without `mksquashfs`.
    pub fn choose(kind: IncusType, rootfs: RootfsChoice, has_mksquashfs: bool) -> Result<IncusLayout, LayoutError> {
        match (kind, rootfs) {
            (IncusType::Unified, RootfsChoice::Squashfs) => Err(LayoutError::UnifiedSquashfs),
            (IncusType::Unified, _) => Ok(IncusLayout::Unified),
            (IncusType::Split, RootfsChoice::Tar) => Ok(IncusLayout::SplitTar),
            (IncusType::Split, RootfsChoice::Squashfs) if !has_mksquashfs => Err(LayoutError::NoMksquashfs),
            (IncusType::Split, RootfsChoice::Squashfs) => Ok(IncusLayout::SplitSquashfs),
            (IncusType::Split, RootfsChoice::Auto) if has_mksquashfs => Ok(IncusLayout::SplitSquashfs),
            (IncusType::Split, RootfsChoice::Auto) => Ok(IncusLayout::SplitTar),
        }
    }
}

/// The architecture name of LXD and Incus (their `osarch` package: the
/// kernel's machine names) for a dpkg architecture, `None` for one they do
/// not run. The aliases they accept are dpkg's names; `metadata.yaml`
/// carries the canonical name, as distrobuilder's images do.
pub fn kernel_arch(dpkg: &str) -> Option<&'static str> {
    Some(match dpkg {
        "amd64" => "x86_64",
        "i386" => "i686",
        "arm64" => "aarch64",
        "armhf" => "armv7l",
        "armel" => "armv6l",
        "powerpc" => "ppc",
        "ppc64" => "ppc64",
        "ppc64el" => "ppc64le",
        "s390x" => "s390x",
        "mipsel" => "mips",
        "mips64el" => "mips64",
        "riscv64" => "riscv64",
        "loong64" => "loongarch64",
        _ => return None,
    })
}

/// The distro as the images of images.linuxcontainers.org spell it in `os`
/// (`Debian`, `Ubuntu`, `Busybox`): the plugin's name with a capital.
pub fn os_name(distro: &str) -> String {
    let mut chars = distro.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// An image's serial: the UTC minute of `unix` as `YYYYMMDD_HHMM`, the form
/// of images.linuxcontainers.org's serials. A time `time` cannot represent
/// (beyond year 9999) gives the serial of 1970, which no build has.
pub fn serial(unix: i64) -> String {
    let format = time::macros::format_description!("[year][month][day]_[hour][minute]");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(format)
        .unwrap_or_default()
}

/// `text` as a YAML scalar that no character can break: a double-quoted
/// string, escaped as JSON escapes it (JSON is YAML: YAML 1.2's double-quoted
/// scalars take JSON's escapes), and with the characters YAML does not allow
/// raw (YAML 1.1 and 1.2's `c-printable`: DEL, the C1 controls, the byte
/// order mark) and the ones YAML 1.1 reads as line breaks (NEL, U+2028,
/// U+2029) escaped too, as `\uXXXX`, which JSON reads the same.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20
                || (0x7f..=0x9f).contains(&(c as u32))
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}') =>
            {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `text` as pongo2 template text that renders as itself: each opening
/// delimiter (`{{`, `{%`, `{#`) becomes an expression printing it.
pub fn pongo2_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('{', Some(&next @ ('{' | '%' | '#'))) => {
                chars.next();
                out.push_str(&format!("{{{{ \"{{{next}\" }}}}"));
            }
            _ => out.push(c),
        }
    }
    out
}

/// The text of `templates/hosts.tpl`: the rootfs's `/etc/hosts` (which holds
/// [`NAME_PLACEHOLDER`]) with the placeholder made the instance's name.
pub fn hosts_template(hosts: &str) -> String {
    pongo2_literal(hosts).replace(NAME_PLACEHOLDER, TEMPLATE_NAME)
}

/// The `metadata.yaml` template. Every string goes through [`quote`] (the
/// `q` filter); the dates are integers.
const METADATA_YAML: &str = r#"architecture: {{ architecture|q }}
creation_date: {{ creation_date }}
expiry_date: {{ expiry_date }}
properties:
{%- for key, value in properties %}
  {{ key|q }}: {{ value|q }}
{%- endfor %}
templates:
{%- for path, file in templates %}
  {{ path|q }}:
    when:
      - "create"
      - "copy"
    create_only: false
    template: {{ file|q }}
{%- endfor %}
"#;

/// The files `templates/` holds, and the rootfs file each one makes.
pub const TEMPLATES: [(&str, &str); 2] = [("/etc/hostname", "hostname.tpl"), ("/etc/hosts", "hosts.tpl")];

/// The release of an image whose distro has none (busybox): the name
/// images.linuxcontainers.org gives rolling distributions
/// (`archlinux/current`). LXD and Incus need one to list the image in a
/// simplestreams tree (its product is `os:release:arch:variant`).
pub const NO_RELEASE: &str = "current";

/// What `metadata.yaml` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// The plugin's name (`debian`).
    pub distro: String,
    /// The release the plugin resolved (`bookworm`), if it has releases;
    /// [`NO_RELEASE`] is written otherwise.
    pub release: Option<String>,
    /// The dpkg architecture (`amd64`).
    pub arch: String,
    /// Unix seconds: the build time or `SOURCE_DATE_EPOCH`.
    pub creation_date: i64,
    /// Unix seconds after which the image is stale.
    pub expiry_date: i64,
}

impl Metadata {
    /// `properties:` in the order written: what distrobuilder's images set
    /// (`name` and `description` from its default templates), by key.
    pub fn properties(&self) -> Vec<(&'static str, String)> {
        let serial = serial(self.creation_date);
        let os = os_name(&self.distro);
        let release = self.release.as_deref().unwrap_or(NO_RELEASE);
        let words = |sep: &str, first: &str| [first, release, self.arch.as_str()].join(sep);
        vec![
            ("architecture", self.arch.clone()),
            ("description", format!("{} ({VARIANT}) ({serial})", words(" ", &os))),
            ("name", format!("{}-{VARIANT}-{serial}", words("-", &self.distro))),
            ("os", os.clone()),
            ("release", release.to_owned()),
            ("serial", serial.clone()),
            ("variant", VARIANT.to_owned()),
        ]
    }

    /// The text of `metadata.yaml`.
    ///
    /// # Errors
    /// [`MetadataError::Arch`]: no LXD/Incus name for the architecture.
    pub fn yaml(&self) -> Result<String, MetadataError> {
        let architecture = kernel_arch(&self.arch).ok_or_else(|| MetadataError::Arch(self.arch.clone()))?;
        let mut env = minijinja::Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        env.add_filter("q", |text: String| quote(&text));
        env.add_template("metadata.yaml", METADATA_YAML)?;
        let text = env.get_template("metadata.yaml")?.render(minijinja::context! {
            architecture,
            creation_date => self.creation_date,
            expiry_date => self.expiry_date,
            properties => self.properties(),
            templates => TEMPLATES.to_vec(),
        })?;
        Ok(text)
    }

    /// Writes `metadata.yaml` and `templates/` into the empty directory
    /// `dir` (files 0644, directory 0755, so the umask cannot change the
    /// archive), the hosts template made of `hosts`, the rootfs's
    /// `/etc/hosts`. Returns the names to pack, in `dir`.
    ///
    /// # Errors
    /// [`MetadataError`]: no name for the architecture, or a write error.
    pub fn write(&self, dir: &Path, hosts: &str) -> Result<[&'static str; 2], MetadataError> {
        let io = |path: PathBuf| move |source| MetadataError::Write { path, source };
        let templates = dir.join(TEMPLATES_DIR);
        fs::DirBuilder::new().mode(0o755).create(&templates).map_err(io(templates.clone()))?;
        fs::set_permissions(&templates, fs::Permissions::from_mode(0o755)).map_err(io(templates.clone()))?;
        let files = [
            (dir.join(METADATA_FILE), self.yaml()?),
            (templates.join(TEMPLATES[0].1), format!("{TEMPLATE_NAME}\n")),
            (templates.join(TEMPLATES[1].1), hosts_template(hosts)),
        ];
        for (path, text) in files {
            fs::write(&path, text).map_err(io(path.clone()))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).map_err(io(path.clone()))?;
        }
        Ok([METADATA_FILE, TEMPLATES_DIR])
    }
}

/// Why `metadata.yaml` could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The architecture has no name in LXD and Incus.
    #[error(
        "LXD and Incus run no '{0}' images: build --format lxc for it, or choose an --arch they run (amd64, arm64, armhf, i386, ppc64el, riscv64, s390x, ...)"
    )]
    Arch(String),
    /// The template did not render (a bug: it is fixed text).
    #[error("cannot render metadata.yaml")]
    Render(#[from] minijinja::Error),
    /// A file could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Template {
        when: Vec<String>,
        create_only: bool,
        template: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Parsed {
        architecture: String,
        creation_date: i64,
        expiry_date: i64,
        properties: BTreeMap<String, String>,
        templates: BTreeMap<String, Template>,
    }

    fn debian() -> Metadata {
        Metadata {
            distro: "debian".into(),
            release: Some("bookworm".into()),
            arch: "amd64".into(),
            creation_date: 1_704_067_200,
            expiry_date: 1_704_067_200 + 30 * 86_400,
        }
    }

    #[test]
    fn metadata_yaml_has_what_lxd_reads() {
        let text = debian().yaml().unwrap();
        let parsed: Parsed = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(parsed.architecture, "x86_64");
        assert_eq!((parsed.creation_date, parsed.expiry_date), (1_704_067_200, 1_706_659_200));
        let props: Vec<(&str, &str)> = parsed.properties.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            props,
            [
                ("architecture", "amd64"),
                ("description", "Debian bookworm amd64 (default) (20240101_0000)"),
                ("name", "debian-bookworm-amd64-default-20240101_0000"),
                ("os", "Debian"),
                ("release", "bookworm"),
                ("serial", "20240101_0000"),
                ("variant", "default"),
            ]
        );
        let hostname = &parsed.templates["/etc/hostname"];
        assert_eq!(
            (hostname.when.as_slice(), hostname.create_only),
            (&["create".to_owned(), "copy".to_owned()][..], false)
        );
        assert_eq!(hostname.template, "hostname.tpl");
        assert_eq!(parsed.templates["/etc/hosts"].template, "hosts.tpl");
    }

    #[test]
    fn no_value_can_break_the_yaml() {
        let nasty = "x\": y\n- z # c\\ {{ a }} \u{7f}\u{85}\u{2028}\u{feff}\t'é";
        let mut meta = debian();
        meta.release = Some(nasty.to_owned());
        meta.distro = "my: distro\n".to_owned();
        let text = meta.yaml().unwrap();
        let parsed: Parsed = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(parsed.properties["release"], nasty);
        assert_eq!(parsed.properties["os"], "My: distro\n");
        assert_eq!(parsed.properties.len(), 7, "{text}");
        // Each quoted scalar is JSON too.
        let json: String = serde_json::from_str(&quote(nasty)).unwrap();
        assert_eq!(json, nasty);
        assert!(!quote(nasty).contains('\u{2028}') && !quote(nasty).contains('\u{85}'));
    }

    #[test]
    fn a_distro_without_releases_is_current() {
        let meta = Metadata { distro: "busybox".into(), release: None, ..debian() };
        let props = meta.properties();
        let release = &props.iter().find(|(k, _)| *k == "release").unwrap().1;
        assert_eq!(release, NO_RELEASE);
        let description = &props.iter().find(|(k, _)| *k == "description").unwrap().1;
        assert_eq!(description, "Busybox current amd64 (default) (20240101_0000)");
    }

    #[test]
    fn serials_are_the_utc_minute() {
        assert_eq!(serial(0), "19700101_0000");
        assert_eq!(serial(1_704_067_200), "20240101_0000");
        // 2024-02-29 23:59:59 UTC: a leap day, the last second of a minute.
        assert_eq!(serial(1_709_251_199), "20240229_2359");
        assert_eq!(serial(1_764_510_300), "20251130_1345");
    }

    #[test]
    fn dpkg_architectures_map_to_kernel_names() {
        for (dpkg, kernel) in [("amd64", "x86_64"), ("arm64", "aarch64"), ("armhf", "armv7l"), ("i386", "i686")] {
            assert_eq!(kernel_arch(dpkg), Some(kernel));
        }
        assert_eq!(kernel_arch("ppc64el"), Some("ppc64le"));
        assert_eq!(kernel_arch("hppa"), None);
        let err = Metadata { arch: "hppa".into(), ..debian() }.yaml().unwrap_err();
        assert!(err.to_string().contains("'hppa'"), "{err}");
    }

    #[test]
    fn os_names_are_capitalised() {
        assert_eq!(os_name("debian"), "Debian");
        assert_eq!(os_name("busybox"), "Busybox");
        assert_eq!(os_name(""), "");
    }

    #[test]
    fn hosts_template_names_the_instance_and_keeps_other_braces() {
        let text = hosts_template("127.0.0.1\tlocalhost\n127.0.1.1\tLXC_NAME\n# {{ x }} {% y %} {# z #}\n");
        assert_eq!(
            text,
            "127.0.0.1\tlocalhost\n127.0.1.1\t{{ container.name }}\n\
             # {{ \"{{\" }} x }} {{ \"{%\" }} y %} {{ \"{#\" }} z #}\n"
        );
    }

    #[test]
    fn layouts_follow_the_options() {
        use IncusLayout as L;
        use RootfsChoice as R;
        assert_eq!(IncusLayout::choose(IncusType::Split, R::Auto, true), Ok(L::SplitSquashfs));
        assert_eq!(IncusLayout::choose(IncusType::Split, R::Auto, false), Ok(L::SplitTar));
        assert_eq!(IncusLayout::choose(IncusType::Split, R::Tar, true), Ok(L::SplitTar));
        assert_eq!(IncusLayout::choose(IncusType::Split, R::Squashfs, false), Err(LayoutError::NoMksquashfs));
        assert_eq!(IncusLayout::choose(IncusType::Unified, R::Auto, true), Ok(L::Unified));
        assert_eq!(IncusLayout::choose(IncusType::Unified, R::Squashfs, true), Err(LayoutError::UnifiedSquashfs));
        assert!(LayoutError::NoMksquashfs.to_string().contains("apt-get install squashfs-tools"));
        assert!(IncusType::parse("both").unwrap_err().contains("split or unified"));
        assert!(RootfsChoice::parse("ext4").unwrap_err().contains("auto, squashfs or tar"));
    }
}
