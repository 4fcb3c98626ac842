//! The LXC image format: what LXC's `local` and `download` templates
//! (`/usr/share/lxc/templates/lxc-local`, `lxc-download`) unpack.
//!
//! ```text
//! meta.tar.xz     config, config-user, excludes-user, templates, create-message, expiry
//! rootfs.tar.xz   the rootfs, members ./...
//! ```
//!
//! The templates pick `FILE-user` over `FILE` for an unprivileged container
//! and `FILE.N` over that where `N` is their compat level (5 for lxc-local,
//! 7 for lxc-download of LXC 5). `config` and `config-user` hold LXC 2.1+
//! keys; `config.N` and `config-user.N` repeat them in the pre-2.1 names for
//! the compat levels of LXC 1.0 to 2.0 ([`LEGACY_COMPAT_LEVELS`]), whose
//! lxc-download reads only those.
//! They append `config` after the container's own `lxc.*` lines are set
//! aside and add those back after it, so the base config (`-f`) wins; they
//! then add `lxc.uts.name` and replace `LXC_NAME` in the files `templates`
//! lists; they unpack the rootfs with `tar --anchored --exclude=LINE` for
//! every line of `excludes-user` when unprivileged.

#![allow(clippy::disallowed_methods)] // Writes go into the image's own scratch dir, made by this build, never a rootfs.

use std::{
    fs,
    os::unix::fs::FileTypeExt,
    path::{Path, PathBuf},
};

use lxc_tmpl_plugin_api::ConfigEntry;
use semver::Version;

use super::instance::NAME_TEMPLATES;
use crate::lxcconf::{Dialect, Translated};

/// The compat levels of lxc-download (`DOWNLOAD_COMPAT_LEVEL`) whose LXC
/// predates the 2.1 key names: 1 (LXC 1.0), 2 (LXC 1.1), 3 (LXC 2.0, bumped
/// just before its release, lxc/lxc#901). Level 4 (lxc/lxc#1438) came with
/// LXC 2.1, which reads the new names, as every later level does.
pub const LEGACY_COMPAT_LEVELS: [u32; 3] = [1, 2, 3];

/// The LXC whose key names the legacy variants use (any release before 2.1).
const LEGACY_LXC: Version = Version::new(2, 0, 0);

/// The LXC that introduced the key names `config` uses (every later one reads them).
const NEW_NAMES_LXC: Version = Version::new(2, 1, 0);

/// Days an image is fresh for: `expiry` is its build time (or
/// `SOURCE_DATE_EPOCH`) plus this. lxc-download downloads an image again
/// once its cached copy has expired; lxc-local ignores `expiry`. 30 days is
/// the expiry linuxcontainers.org's images carry.
pub const EXPIRY_DAYS: i64 = 30;

/// Config keys the image leaves to the container: its rootfs and name
/// (lxc-local adds `lxc.uts.name`), and its network, which comes from the
/// container's base config.
fn is_per_container(key: &str) -> bool {
    matches!(key, "lxc.rootfs.path" | "lxc.rootfs" | "lxc.uts.name" | "lxc.utsname")
        || key.starts_with("lxc.net.")
        || key.starts_with("lxc.network.")
}

/// The text of `config` (or `config-user`) in `dialect`'s key names: a
/// comment naming what made it, then the plugin's entries without the
/// per-container ones. An entry the dialect's LXC has no key for is kept as
/// a comment, so that the file says what it lacks.
pub fn config_text(made_by: &str, entries: &[ConfigEntry], dialect: &Dialect) -> String {
    let mut text = format!("# Distribution configuration of an image made by {made_by}\n");
    for entry in entries.iter().filter(|e| !is_per_container(&e.key)) {
        match dialect.translate(&entry.key, &entry.value) {
            Translated::Entry(key, value) => text.push_str(&format!("{key} = {value}\n")),
            Translated::Dropped => {
                text.push_str(&format!("# not in LXC {}: {} = {}\n", dialect.target(), entry.key, entry.value))
            }
        }
    }
    text
}

/// The entries of an unprivileged container: the plugin's, and LXC's
/// `userns.conf` if the plugin did not include it itself (what every
/// unprivileged container needs, as LXC's own images' `config-user` has it).
pub fn user_entries(entries: &[ConfigEntry]) -> Vec<ConfigEntry> {
    let mut entries = entries.to_vec();
    if !entries.iter().any(|e| e.key.as_str() == "lxc.include" && e.value.ends_with("/userns.conf")) {
        entries.push(ConfigEntry::new("lxc.include", "LXC_TEMPLATE_CONFIG/userns.conf"));
    }
    entries
}

/// Every device node (character or block) below `rootfs`, as the
/// `./path` tar names its member, sorted: an unprivileged container's
/// root cannot make them, so its unpacking skips them.
///
/// # Errors
/// A directory that cannot be read.
pub fn device_nodes(rootfs: &Path) -> std::io::Result<Vec<String>> {
    fn walk(root: &Path, dir: &Path, found: &mut Vec<String>) -> std::io::Result<()> {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            // file_type() does not follow symlinks.
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() {
                walk(root, &path, found)?;
            } else if kind.is_char_device() || kind.is_block_device() {
                let relative = path.strip_prefix(root).unwrap_or(&path);
                found.push(format!("./{}", relative.display()));
            }
        }
        Ok(())
    }
    let mut found = Vec::new();
    walk(rootfs, rootfs, &mut found)?;
    found.sort();
    Ok(found)
}

/// What goes into `meta.tar.*`.
#[derive(Debug)]
pub struct Meta<'a> {
    /// `lxc-tmpl <distro> <version>`.
    pub made_by: String,
    /// The plugin's entries for a privileged container.
    pub entries: &'a [ConfigEntry],
    /// Its entries for an unprivileged one.
    pub user_entries: &'a [ConfigEntry],
    /// The device nodes of the rootfs ([`device_nodes`]).
    pub devices: &'a [String],
    /// What `lxc-create` prints at the end.
    pub message: String,
    /// Unix time after which lxc-download fetches the image again.
    pub expiry: i64,
}

impl Meta<'_> {
    /// Writes the metadata files into the empty directory `dir`; returns them.
    ///
    /// # Errors
    /// The write error, with the file.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, (PathBuf, std::io::Error)> {
        let mut devices = self.devices.join("\n");
        if !devices.is_empty() {
            devices.push('\n');
        }
        let mut message = self.message.trim_end().to_owned();
        message.push('\n');
        let templates: String = NAME_TEMPLATES.iter().map(|t| format!("{t}\n")).collect();
        let user = user_entries(self.user_entries);
        let current = Dialect::for_version(NEW_NAMES_LXC);
        let legacy = Dialect::for_version(LEGACY_LXC);
        let mut files = vec![
            ("config".to_owned(), config_text(&self.made_by, self.entries, &current)),
            ("config-user".to_owned(), config_text(&self.made_by, &user, &current)),
            ("excludes-user".to_owned(), devices),
            ("templates".to_owned(), templates),
            ("create-message".to_owned(), message),
            ("expiry".to_owned(), format!("{}\n", self.expiry)),
        ];
        // Every legacy level gets the same text.
        let (legacy_config, legacy_user) =
            (config_text(&self.made_by, self.entries, &legacy), config_text(&self.made_by, &user, &legacy));
        for level in LEGACY_COMPAT_LEVELS {
            files.push((format!("config.{level}"), legacy_config.clone()));
            files.push((format!("config-user.{level}"), legacy_user.clone()));
        }
        let mut written = Vec::new();
        for (name, text) in files {
            let path = dir.join(name);
            fs::write(&path, text).map_err(|e| (path.clone(), e))?;
            written.push(path);
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_leaves_out_what_each_container_sets() {
        let entries = [
            ConfigEntry::new("lxc.include", "/usr/share/lxc/config/common.conf"),
            ConfigEntry::new("lxc.uts.name", "LXC_NAME"),
            ConfigEntry::new("lxc.rootfs.path", "dir:/x"),
            ConfigEntry::new("lxc.net.0.type", "veth"),
            ConfigEntry::new("lxc.tty.max", "1"),
        ];
        let text = config_text("lxc-tmpl demo 1.0.0", &entries, &Dialect::for_version(Version::new(5, 0, 0)));
        assert_eq!(
            text,
            "# Distribution configuration of an image made by lxc-tmpl demo 1.0.0\n\
             lxc.include = /usr/share/lxc/config/common.conf\nlxc.tty.max = 1\n"
        );
    }

    #[test]
    fn legacy_variants_use_the_pre_2_1_names() {
        let entries = [
            ConfigEntry::new("lxc.include", "/usr/share/lxc/config/common.conf"),
            ConfigEntry::new("lxc.tty.max", "1"),
            ConfigEntry::new("lxc.apparmor.profile", "generated"),
            ConfigEntry::new("lxc.apparmor.allow_nesting", "1"),
        ];
        let text = config_text("lxc-tmpl demo 1.0.0", &entries, &Dialect::for_version(LEGACY_LXC));
        assert_eq!(
            text,
            "# Distribution configuration of an image made by lxc-tmpl demo 1.0.0\n\
             lxc.include = /usr/share/lxc/config/common.conf\nlxc.tty = 1\nlxc.aa_profile = generated\n\
             # not in LXC 2.0.0: lxc.apparmor.allow_nesting = 1\n"
        );
    }

    #[test]
    fn user_config_includes_userns_conf_once() {
        let added = user_entries(&[ConfigEntry::new("lxc.tty.max", "1")]);
        assert_eq!(added.last().map(|e| e.value.as_str()), Some("LXC_TEMPLATE_CONFIG/userns.conf"));
        let own = [ConfigEntry::new("lxc.include", "/usr/share/lxc/config/userns.conf")];
        assert_eq!(user_entries(&own).len(), 1, "the plugin's own include is enough");
    }
}
