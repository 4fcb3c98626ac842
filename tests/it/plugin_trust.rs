//! Plugin trust (issue 9): lxc-tmpl loads a plugin only when the file, after
//! symlinks, and every directory above it are owned by root (or the running
//! user) and writable by nobody else, as sshd's StrictModes and sudo judge
//! files. Every way of breaking the rule is refused with one line naming the
//! path, its owner and mode and the fix, and a correct plugin in the same run
//! still loads and works.

use std::{
    fs,
    os::unix::fs::{PermissionsExt, chown, symlink},
    path::{Path, PathBuf},
};

use lxc_tmpl_tests::{Fixture, Outcome, TestDir, assert_mentions, require_root};

/// Uids of ordinary users; they need not exist.
const OWNER_OF_PLUGIN: u32 = 1000;
const OWNER_OF_DIR: u32 = 1001;
const OWNER_OF_HOME: u32 = 1002;

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
}

fn set_owner(path: &Path, uid: u32) {
    chown(path, Some(uid), Some(uid)).unwrap_or_else(|e| panic!("cannot chown {}: {e}", path.display()));
}

/// A root-owned 0644 copy of the `faulty` fixture at `dest`: a good plugin
/// in itself, so only where it lies can get it refused.
fn copy_of_faulty(dest: &Path) -> PathBuf {
    fs::copy(Fixture::Faulty.path(), dest).unwrap_or_else(|e| panic!("cannot copy to {}: {e}", dest.display()));
    set_mode(dest, 0o644);
    dest.to_owned()
}

/// The one warning line of `outcome` that names `file`.
fn refusal<'a>(outcome: &'a Outcome, file: &Path) -> &'a str {
    let file = file.display().to_string();
    let lines: Vec<&str> = outcome.stderr.lines().filter(|l| l.contains(&file)).collect();
    match lines[..] {
        [line] => line,
        _ => panic!("expected one warning naming {file}, found {}:\n{outcome}", lines.len()),
    }
}

#[test]
fn untrusted_plugins_are_refused_while_a_trusted_one_loads() {
    require_root();
    let dir = TestDir::new("plugin-trust");
    // The trusted plugin: root-owned, 0644, in the root-owned 0755 plugin dir.
    let trusted = dir.add_plugin(Fixture::Faulty);

    // (a) A plugin owned by a user, in the root-owned plugin dir: that user
    // could rewrite it.
    let user_owned = copy_of_faulty(&dir.plugins().join("libtrust_user_owned.so"));
    set_owner(&user_owned, OWNER_OF_PLUGIN);

    // (b) A root-owned plugin in a directory a user owns: that user could
    // rename another file into its place.
    let user_dir = dir.mkdir("user-plugins");
    let in_user_dir = copy_of_faulty(&user_dir.join("libtrust_in_user_dir.so"));
    set_owner(&user_dir, OWNER_OF_DIR);

    // (c) A symlink from the plugin dir to a (root-owned) file in a user's
    // directory: the file loaded is the target, and its directory is the
    // user's.
    let home = dir.mkdir("home/user");
    let linked = copy_of_faulty(&home.join("libtrust_linked.so"));
    set_owner(&home, OWNER_OF_HOME);
    let link = dir.plugins().join("libtrust_link.so");
    symlink(&linked, &link).unwrap();

    // (d) A group-writable grandparent, no sticky bit: the group could swap
    // the whole plugin directory.
    let shared = dir.mkdir("shared");
    let shared_plugins = dir.mkdir("shared/plugins");
    let below_shared = copy_of_faulty(&shared_plugins.join("libtrust_below_shared.so"));
    set_mode(&shared, 0o775);

    let plugin_path = std::env::join_paths([dir.plugins(), user_dir.clone(), shared_plugins]).unwrap();
    let outcome = dir.command().env("LXC_TMPL_PLUGIN_PATH", &plugin_path).arg("list").assert_exit(0).clone();

    // The correct plugins of the same run load: faulty from the plugin dir,
    // busybox from the build dir.
    for distro in ["faulty", "busybox"] {
        assert!(
            outcome.stdout.lines().any(|l| l.split_whitespace().next() == Some(distro)),
            "{distro} is not listed:\n{outcome}"
        );
    }
    assert!(outcome.stdout.contains(&trusted.display().to_string()), "faulty is not the trusted copy:\n{outcome}");

    let line = refusal(&outcome, &user_owned);
    let path = user_owned.display();
    assert_mentions(line, &["refusing", &format!("uid {OWNER_OF_PLUGIN}"), "mode 0644"]);
    assert_mentions(line, &[&format!("{path} is not owned by root"), &format!("chown root:root {path}")]);

    let line = refusal(&outcome, &in_user_dir);
    let path = user_dir.display();
    assert_mentions(line, &["refusing", &format!("uid {OWNER_OF_DIR}"), "mode 0755"]);
    assert_mentions(line, &[&format!("{path} is not owned by root"), &format!("chown root:root {path}")]);

    let line = refusal(&outcome, &link);
    let path = home.display();
    assert_mentions(line, &[&format!("{} -> {}: refusing", link.display(), linked.display())]);
    assert_mentions(line, &[&format!("uid {OWNER_OF_HOME}"), "mode 0755"]);
    assert_mentions(line, &[&format!("{path} is not owned by root"), &format!("chown root:root {path}")]);

    let line = refusal(&outcome, &below_shared);
    let path = shared.display();
    assert_mentions(line, &["refusing", "uid 0 (root)", "mode 0775"]);
    assert_mentions(line, &[&format!("{path} is writable by group"), &format!("chmod go-w {path}")]);

    let refusals = outcome.stderr.lines().filter(|l| l.contains("refusing to load")).count();
    assert_eq!(refusals, 4, "expected exactly the four refusals:\n{outcome}");

    // The trusted plugin works, in the same setup: a container made with it
    // names the plugin file it came from.
    let container = dir.container("trusted1");
    dir.create("faulty", "trusted1").env("LXC_TMPL_PLUGIN_PATH", &plugin_path).stdout();
    let config = container.config();
    assert!(
        config.contains(&trusted.display().to_string()),
        "the config does not name {}:\n{config}",
        trusted.display()
    );
}
