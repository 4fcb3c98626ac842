//! [`SlowTool`]: a host tool that lxc-tmpl runs by name, made slow, so that a
//! test can catch a create while that tool runs (for example the config
//! check's `lxc-info`, which otherwise takes milliseconds).
//!
//! The wrapper is a shell script in a private bin dir put first in `PATH`:
//! it starts `sleep` (a grandchild of lxc-tmpl, which the create must
//! kill along with the wrapper when interrupted), then runs the real tool.

use std::{
    env, fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

/// A wrapper dir holding slowed-down copies of some tools.
#[derive(Debug)]
pub struct SlowTool {
    bin: PathBuf,
}

impl SlowTool {
    /// Writes `<bin>/<tool>`, which sleeps `delay` and then runs the real
    /// `tool` (the one `PATH` finds now) with its arguments.
    pub fn install(bin: &Path, tool: &str, delay: Duration) -> SlowTool {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .unwrap_or_else(|e| panic!("cannot look for {tool}: {e}"));
        let real = String::from_utf8_lossy(&found.stdout).trim().to_owned();
        assert!(found.status.success() && real.starts_with('/'), "{tool} is not installed");
        fs::create_dir_all(bin).unwrap_or_else(|e| panic!("cannot create {}: {e}", bin.display()));
        let script = bin.join(tool);
        let text = format!(
            "#!/bin/sh\n# lxc-tmpl tests: {tool}, slowed down so that a test can signal a create while it runs\n\
             sleep {}\nexec {real} \"$@\"\n",
            delay.as_secs_f64()
        );
        fs::write(&script, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", script.display()));
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", script.display()));
        SlowTool { bin: bin.to_owned() }
    }

    /// The value for `PATH`: the wrapper dir, then this process's `PATH`.
    pub fn path_env(&self) -> String {
        let rest = env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".to_owned());
        format!("{}:{rest}", self.bin.display())
    }

    /// The wrapper of `tool`, as it shows in the command line of the shell running it.
    pub fn wrapper(&self, tool: &str) -> PathBuf {
        self.bin.join(tool)
    }
}
