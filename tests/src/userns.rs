//! Idmapped (unprivileged) containers: the subordinate ids root maps them
//! to, and a base config with that map.

use std::{fs, path::PathBuf};

use crate::TestDir;

/// Host uid and gid of container root in [`idmapped_conf`].
pub const MAPPED_ROOT: u32 = 100_000;

/// Gives root the subordinate ids the containers map to (lxc-create checks
/// /etc/subuid and /etc/subgid through lxc-usernsexec). Idempotent.
pub fn ensure_subordinate_ids() {
    for file in ["/etc/subuid", "/etc/subgid"] {
        let text = fs::read_to_string(file).unwrap_or_default();
        let line = format!("root:{MAPPED_ROOT}:65536");
        if !text.lines().any(|l| l == line) {
            fs::write(file, format!("{text}{line}\n")).unwrap_or_else(|e| panic!("cannot add {line} to {file}: {e}"));
        }
    }
}

/// The safe base config plus `lxc.idmap` for 65536 ids from
/// [`MAPPED_ROOT`], written as `idmapped.conf` in the test dir.
pub fn idmapped_conf(dir: &TestDir) -> PathBuf {
    let safe = fs::read_to_string(dir.safe_conf()).unwrap();
    dir.write(
        "idmapped.conf",
        format!("{safe}lxc.idmap = u 0 {MAPPED_ROOT} 65536\nlxc.idmap = g 0 {MAPPED_ROOT} 65536\n"),
    )
}
