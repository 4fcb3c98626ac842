//! `metadata.yaml` of an LXD/Incus image, read for publishing: the fields
//! a simplestreams tree is built from, checked so that LXD and Incus will
//! list the image rather than skip it without a word.
//!
//! The format is LXD's image metadata (`api.ImageMetadata`; LXD's
//! documentation, "Image format"): `architecture`, `creation_date` (Unix
//! seconds), `expiry_date`, `properties` (strings) and `templates`. Publishing
//! needs the properties `os`, `release`, `variant`, `architecture`,
//! `description` (what `incus-simplestreams add` requires) and `serial`,
//! which names the version.

use std::collections::BTreeMap;

use serde::Deserialize;
use thiserror::Error;

/// The properties an image must have to be published.
pub const REQUIRED_PROPERTIES: [&str; 6] = ["os", "release", "variant", "architecture", "description", "serial"];

/// The architecture names LXD and Incus know, with their aliases
/// (`shared/osarch/architectures.go` in both). A product whose `arch` is not
/// one of these is skipped by both without a message.
const KNOWN_ARCHITECTURES: &[&str] = &[
    "i686",
    "i386",
    "i586",
    "386",
    "x86",
    "generic_32",
    "x86_64",
    "amd64",
    "generic_64",
    "armv6l",
    "armel",
    "arm",
    "armv7l",
    "armhf",
    "armhfp",
    "armv7a_hardfp",
    "armv7",
    "armv7a_vfpv3_hardfp",
    "armv8l",
    "aarch64",
    "arm64",
    "arm64_generic",
    "ppc",
    "powerpc",
    "ppc64",
    "powerpc64",
    "ppc64le",
    "ppc64el",
    "s390x",
    "mips",
    "mipsel",
    "mips64",
    "mips64el",
    "riscv32",
    "riscv64",
    "loongarch64",
];

/// Why a `metadata.yaml` cannot be published. Each message names the fix.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MetadataError {
    /// Not YAML at all.
    #[error("metadata.yaml is not YAML ({0}): rebuild the image with lxc-tmpl image build --format incus")]
    NotYaml(String),
    /// YAML, but not a mapping of fields.
    #[error("metadata.yaml is not a mapping of fields: rebuild the image with lxc-tmpl image build --format incus")]
    NotMapping,
    /// A top-level field is missing or has the wrong type.
    #[error(
        "metadata.yaml has no {field} ({wanted}): add it, or rebuild the image with lxc-tmpl image build --format incus"
    )]
    MissingField {
        /// The field.
        field: &'static str,
        /// What it must hold.
        wanted: &'static str,
    },
    /// A required property is missing, empty or not a scalar.
    #[error(
        "metadata.yaml has no properties.{0}: add it (LXD and Incus need os, release, variant, architecture, description and serial)"
    )]
    MissingProperty(&'static str),
    /// A property that becomes a directory name or a product key holds other characters.
    #[error(
        "properties.{name} '{value}' in metadata.yaml cannot name a directory or a product: use letters, digits, '.', '_' and '-' only, not starting with '.'"
    )]
    BadName {
        /// The property.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// An architecture LXD and Incus do not know.
    #[error(
        "{field} '{value}' in metadata.yaml is not an architecture LXD and Incus know: use a name such as amd64, arm64 or x86_64"
    )]
    UnknownArchitecture {
        /// `architecture` or `properties.architecture`.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// A serial LXD cannot date.
    #[error(
        "properties.serial '{0}' in metadata.yaml does not start with a date (YYYYMMDD), so LXD would skip the version: use a serial such as 20240101_0000"
    )]
    BadSerial(String),
}

/// What publishing reads from `metadata.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMetadata {
    /// `architecture`: the kernel's name (`x86_64`).
    pub architecture: String,
    /// `creation_date`: Unix seconds.
    pub creation_date: i64,
    /// `properties`, scalars as text.
    pub properties: BTreeMap<String, String>,
}

impl ImageMetadata {
    /// Parses and checks `text`: the fields and properties publishing needs
    /// are there, names that become directories are safe, the architectures
    /// are known and the serial starts with a date.
    ///
    /// # Errors
    /// [`MetadataError`], naming the first problem found.
    pub fn parse(text: &str) -> Result<ImageMetadata, MetadataError> {
        let doc: Option<Raw> = serde_saphyr::from_str(text).map_err(|e| {
            // A document that is not a mapping is told apart from one that is not YAML.
            match serde_saphyr::from_str::<Option<serde::de::IgnoredAny>>(text) {
                Ok(_) => MetadataError::NotMapping,
                Err(_) => MetadataError::NotYaml(e.to_string().lines().next().unwrap_or_default().to_owned()),
            }
        })?;
        let doc = doc.ok_or(MetadataError::NotMapping)?;
        let architecture =
            doc.architecture.and_then(Scalar::into_text).filter(|a| !a.is_empty()).ok_or(
                MetadataError::MissingField { field: "architecture", wanted: "the kernel's architecture name" },
            )?;
        let creation_date =
            doc.creation_date.and_then(Scalar::into_seconds).filter(|d| *d > 0).ok_or(MetadataError::MissingField {
                field: "creation_date",
                wanted: "the build time in seconds since 1970",
            })?;
        let Some(Properties::Mapping(raw)) = doc.properties else {
            return Err(MetadataError::MissingField { field: "properties", wanted: "a mapping of os, release, ..." });
        };
        let properties: BTreeMap<String, String> =
            raw.into_iter().filter_map(|(k, v)| Some((k, v?.into_text()?))).collect();
        for name in REQUIRED_PROPERTIES {
            if properties.get(name).is_none_or(|v| v.trim().is_empty()) {
                return Err(MetadataError::MissingProperty(name));
            }
        }
        let metadata = ImageMetadata { architecture, creation_date, properties };
        for name in ["os", "release", "variant", "architecture", "serial"] {
            let value = metadata.property(name);
            if !is_safe_name(value) {
                return Err(MetadataError::BadName { name, value: value.to_owned() });
            }
        }
        for (field, value) in [
            ("architecture", metadata.architecture.as_str()),
            ("properties.architecture", metadata.property("architecture")),
        ] {
            if !KNOWN_ARCHITECTURES.contains(&value) {
                return Err(MetadataError::UnknownArchitecture { field, value: value.to_owned() });
            }
        }
        let serial = metadata.property("serial");
        if !starts_with_date(serial) {
            return Err(MetadataError::BadSerial(serial.to_owned()));
        }
        Ok(metadata)
    }

    /// A property [`parse`](Self::parse) checked is there (one of
    /// [`REQUIRED_PROPERTIES`]); "" for any other that is missing.
    pub fn property(&self, name: &str) -> &str {
        self.properties.get(name).map_or("", String::as_str)
    }
}

/// The top level of `metadata.yaml`, as far as publishing reads it; any
/// other field (`expiry_date`, `templates`) is ignored.
#[derive(Debug, Deserialize)]
struct Raw {
    architecture: Option<Scalar>,
    creation_date: Option<Scalar>,
    properties: Option<Properties>,
}

/// `properties`: a mapping (a value that is not a scalar is dropped, and a
/// required property so dropped is reported missing), or anything else.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Properties {
    Mapping(BTreeMap<String, Option<Scalar>>),
    Other(serde::de::IgnoredAny),
}

/// A YAML value: a scalar of any type (`release: 12` is the text "12"), or
/// something else (a sequence, a mapping), which no field here takes.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Integer(i64),
    Boolean(bool),
    Real(f64),
    Text(String),
    Other(serde::de::IgnoredAny),
}

impl Scalar {
    /// The scalar as text, or `None` for a sequence or mapping.
    fn into_text(self) -> Option<String> {
        match self {
            Scalar::Integer(i) => Some(i.to_string()),
            Scalar::Boolean(b) => Some(b.to_string()),
            Scalar::Real(r) => Some(r.to_string()),
            Scalar::Text(s) => Some(s),
            Scalar::Other(_) => None,
        }
    }

    /// An integer, or `None`.
    fn into_seconds(self) -> Option<i64> {
        match self {
            Scalar::Integer(i) => Some(i),
            _ => None,
        }
    }
}

/// Whether `value` can be one path component and a part of a `:`-separated
/// product key: ASCII letters, digits, `.`, `_`, `-`, not starting with `.`
/// (no `..`, no hidden names).
pub fn is_safe_name(value: &str) -> bool {
    !value.is_empty()
        && !value.starts_with('.')
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether `serial` starts with a date `YYYYMMDD`, the one thing LXD and
/// Incus read from a version's name (`time.Parse("20060102", name[0:8])`
/// in `shared/simplestreams/products.go`; a version that fails it is skipped).
pub fn starts_with_date(serial: &str) -> bool {
    let Some(date) = serial.get(..8) else { return false };
    if !date.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let (month, day): (u32, u32) = (date[4..6].parse().unwrap_or(0), date[6..8].parse().unwrap_or(0));
    (1..=12).contains(&month) && (1..=31).contains(&day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "architecture: x86_64\ncreation_date: 1704067200\nexpiry_date: 1706659200\nproperties:\n  os: Debian\n  release: bookworm\n  variant: default\n  architecture: amd64\n  serial: \"20240101_0000\"\n  description: Debian bookworm amd64 (20240101_0000)\ntemplates:\n  /etc/hostname:\n    when: [create, copy]\n    template: hostname.tpl\n";

    #[test]
    fn reads_the_fields_publishing_needs() {
        let meta = ImageMetadata::parse(GOOD).unwrap();
        assert_eq!(meta.architecture, "x86_64");
        assert_eq!(meta.creation_date, 1_704_067_200);
        assert_eq!(meta.property("os"), "Debian");
        assert_eq!(meta.property("serial"), "20240101_0000");
        assert_eq!(meta.property("nothing"), "");
    }

    #[test]
    fn scalars_of_other_types_are_text() {
        let text = GOOD.replace("release: bookworm", "release: 12");
        assert_eq!(ImageMetadata::parse(&text).unwrap().property("release"), "12");
    }

    #[test]
    fn each_problem_gets_its_error() {
        let err = |text: &str| ImageMetadata::parse(text).unwrap_err();
        assert!(matches!(err("a: [unclosed"), MetadataError::NotYaml(_)));
        assert_eq!(err("- a\n- b\n"), MetadataError::NotMapping);
        assert_eq!(err(""), MetadataError::NotMapping);
        assert!(matches!(
            err(&GOOD.replace("architecture: x86_64\n", "")),
            MetadataError::MissingField { field: "architecture", .. }
        ));
        assert!(matches!(
            err(&GOOD.replace("creation_date: 1704067200", "creation_date: soon")),
            MetadataError::MissingField { field: "creation_date", .. }
        ));
        for name in REQUIRED_PROPERTIES {
            let without: String =
                GOOD.lines().filter(|l| !l.starts_with(&format!("  {name}:"))).map(|l| format!("{l}\n")).collect();
            assert_eq!(err(&without), MetadataError::MissingProperty(name), "{name}");
        }
        assert_eq!(
            err(&GOOD.replace("release: bookworm", "release: ../../etc")),
            MetadataError::BadName { name: "release", value: "../../etc".into() }
        );
        assert!(matches!(err(&GOOD.replace("variant: default", "variant: a:b")), MetadataError::BadName { .. }));
        assert!(matches!(
            err(&GOOD.replace("architecture: amd64", "architecture: vax")),
            MetadataError::UnknownArchitecture { field: "properties.architecture", .. }
        ));
        assert_eq!(err(&GOOD.replace("\"20240101_0000\"", "build-7")), MetadataError::BadSerial("build-7".into()));
        let message = err(&GOOD.replace("  serial: \"20240101_0000\"\n", "")).to_string();
        assert!(!message.contains('\n') && message.contains("properties.serial"), "{message}");
    }

    #[test]
    fn serials_must_start_with_a_real_date() {
        assert!(starts_with_date("20240101_0000"));
        assert!(starts_with_date("20241231"));
        assert!(!starts_with_date("2024010"));
        assert!(!starts_with_date("20241301_0000"));
        assert!(!starts_with_date("v20240101"));
    }
}
