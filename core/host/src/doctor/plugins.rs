//! The plugin directories and files, judged by the loader's own rules
//! ([`trust`]): a directory that fails them would
//! have every plugin in it refused, and a refused or broken plugin file is
//! a distro that is not there. No plugin at all is a failure.

use crate::plugin::{LoadError, PluginDir, PluginSet, trust};

use super::Check;

/// The check named `plugins`, then one `plugin-dir:<dir>` per untrusted
/// directory and one `plugin:<file>` per file skipped.
pub fn check(dirs: &[PluginDir], plugins: &PluginSet) -> Vec<Check> {
    let mut checks = Vec::new();
    let existing: Vec<&PluginDir> = dirs.iter().filter(|d| d.path.is_dir()).collect();
    if plugins.plugins.is_empty() {
        let searched: Vec<String> = dirs.iter().map(|d| d.path.display().to_string()).collect();
        checks.push(Check::fail(
            "plugins",
            format!("no distro plugins found in {}", searched.join(", ")),
            "install plugins into /usr/lib/lxc-tmpl/plugins, or set LXC_TMPL_PLUGIN_PATH",
        ));
    } else {
        let names: Vec<&str> = plugins.plugins.iter().map(|p| p.manifest.name.as_str()).collect();
        checks.push(Check::ok("plugins", format!("{} loaded: {}", names.len(), names.join(", "))));
    }
    for dir in existing {
        if let Err(error) = trust::check_dir(&dir.path) {
            let name = format!("plugin-dir:{}", dir.path.display());
            checks.push(match error {
                LoadError::Untrusted(refusal) => {
                    let fix = refusal.problem.fix(&refusal.path);
                    Check::fail(name, format!("{refusal}"), fix)
                }
                other => Check::warn(name, other.to_string(), "check the directory"),
            });
        }
    }
    for skipped in &plugins.skipped {
        let name = format!("plugin:{}", skipped.file.display());
        checks.push(match &skipped.error {
            LoadError::Untrusted(refusal) => Check::fail(name, refusal.to_string(), refusal.problem.fix(&refusal.path)),
            other => Check::warn(
                name,
                other.to_string(),
                "rebuild it against this lxc-tmpl's plugin API, or remove it from the plugin directory",
            ),
        });
    }
    checks
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures are built with std::fs on purpose
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::doctor::Status;

    #[test]
    fn doctor_plugins_none_found_fails() {
        let checks = check(&[], &PluginSet::default());
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].status, Status::Fail);
    }

    #[test]
    fn doctor_plugins_writable_dir_fails_with_chmod() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = tmp.path().join("plugins");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let checks = check(&[PluginDir { path: dir.clone(), named_only: false }], &PluginSet::default());
        let dir_check = checks.iter().find(|c| c.name.starts_with("plugin-dir:")).expect("a plugin-dir line");
        assert_eq!(dir_check.status, Status::Fail, "{checks:?}");
        assert_eq!(dir_check.fix.as_deref(), Some(format!("chmod go-w {}", dir.display()).as_str()));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let checks = check(&[PluginDir { path: dir, named_only: false }], &PluginSet::default());
        assert!(!checks.iter().any(|c| c.name.starts_with("plugin-dir:")), "{checks:?}");
    }
}
