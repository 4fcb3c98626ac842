//! The request of one create: what the front end chose (name, places,
//! options) plus what the host knows (facts, the config dialect, the ids
//! lxc-create maps), built in one place for `lxc-tmpl create` and for
//! template mode under lxc-create ([`CreateSpec::build`]).

use std::path::PathBuf;

use lxc_tmpl_plugin_api::{HostFacts, OptionValue};
use semver::Version;

use crate::{
    backing::Backing,
    facts,
    idmap::{IdMap, IdMapError},
    lxcconf::{BaseConfig, Dialect},
};

/// Everything a create needs besides the plugin: what the front end chose,
/// and what the host adds to it.
#[derive(Debug)]
pub struct CreateRequest {
    /// What the front end chose.
    pub spec: CreateSpec,
    /// The config dialect of [`CreateSpec::lxc_version`].
    pub dialect: Dialect,
    /// Facts about the host, as the plugin is told them.
    pub facts: HostFacts,
}

/// Where the plugin's mapped-id facts (`--mapped-uid`/`--mapped-gid`) come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MappedIds {
    /// `lxc-tmpl create`: from the base config's `lxc.idmap`, the first id no
    /// range covers, which is where lxc-create maps the calling host root.
    FromBaseConfig,
    /// Template mode: what lxc-create passed (`None` for its "-1", unmapped).
    Given {
        /// `--mapped-uid`.
        uid: Option<u32>,
        /// `--mapped-gid`.
        gid: Option<u32>,
    },
}

/// What a front end chose for a create; [`CreateSpec::build`] adds what the
/// host knows.
#[derive(Debug)]
pub struct CreateSpec {
    /// The container name.
    pub name: String,
    /// The container's host name (RFC 1123; see [`crate::names::hostname_for`]).
    pub hostname: String,
    /// The lxcpath the container lives in.
    pub lxcpath: PathBuf,
    /// The container directory (`<lxcpath>/<name>` unless `--path`).
    pub container_dir: PathBuf,
    /// A user-chosen rootfs directory (`--rootfs`).
    pub rootfs: Option<PathBuf>,
    /// The base config.
    pub base: BaseConfig,
    /// The cache directory.
    pub cache_dir: PathBuf,
    /// Rebuild the cache entry even if it exists.
    pub flush_cache: bool,
    /// How the rootfs is made from the cache entry (`-B`); template mode
    /// always copies, as lxc-create has chosen the storage.
    pub backing: Backing,
    /// The LXC version the config is written for (its dialect, and the
    /// version the plugin is told).
    pub lxc_version: Version,
    /// Check the written config with the installed LXC (needs LXC of the target dialect).
    pub check_config: bool,
    /// Keep what was made when the create fails.
    pub keep_on_failure: bool,
    /// The distro options as typed, for the config header (secrets redacted).
    pub parameters: Vec<String>,
    /// The distro options, parsed.
    pub options: Vec<OptionValue>,
    /// Where the mapped-id facts come from.
    pub mapped: MappedIds,
}

impl CreateSpec {
    /// The request: this spec, the host's facts with the mapped ids, and the
    /// dialect of [`CreateSpec::lxc_version`].
    ///
    /// # Errors
    /// A base config whose `lxc.idmap` cannot be parsed.
    pub fn build(self) -> Result<CreateRequest, IdMapError> {
        let (mapped_uid, mapped_gid) = match self.mapped {
            MappedIds::FromBaseConfig => {
                let map = IdMap::from_config(&self.base)?;
                (map.as_ref().map(|m| m.first_unmapped(true)), map.as_ref().map(|m| m.first_unmapped(false)))
            }
            MappedIds::Given { uid, gid } => (uid, gid),
        };
        Ok(CreateRequest {
            facts: facts::host_facts(&self.lxc_version, mapped_uid, mapped_gid),
            dialect: Dialect::for_version(self.lxc_version.clone()),
            spec: self,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(base: &str, mapped: MappedIds) -> CreateSpec {
        CreateSpec {
            name: "c1".into(),
            hostname: "c1".into(),
            lxcpath: "/l".into(),
            container_dir: "/l/c1".into(),
            rootfs: None,
            base: BaseConfig::parse(base),
            cache_dir: "/c".into(),
            flush_cache: false,
            backing: Backing::Dir,
            lxc_version: Version::new(2, 0, 9),
            check_config: true,
            keep_on_failure: false,
            parameters: Vec::new(),
            options: Vec::new(),
            mapped,
        }
    }

    #[test]
    fn mapped_ids_come_from_the_idmap_or_from_lxc_create() {
        let idmapped = "lxc.idmap = u 0 100000 65536\nlxc.idmap = g 0 100000 65536\n";
        let req = parts(idmapped, MappedIds::FromBaseConfig).build().unwrap();
        assert_eq!((req.facts.mapped_uid, req.facts.mapped_gid), (Some(65536), Some(65536)));
        let req = parts("", MappedIds::FromBaseConfig).build().unwrap();
        assert_eq!(req.facts.mapped_uid, None, "a privileged container maps nothing");
        let req = parts(idmapped, MappedIds::Given { uid: Some(7), gid: None }).build().unwrap();
        assert_eq!((req.facts.mapped_uid, req.facts.mapped_gid), (Some(7), None));
        assert_eq!(req.facts.lxc_version.as_str(), "2.0.9", "the plugin is told the target version");
        assert!(parts("lxc.idmap = x\n", MappedIds::FromBaseConfig).build().is_err());
    }
}
