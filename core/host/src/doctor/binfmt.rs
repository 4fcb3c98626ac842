//! Foreign architectures: a container of another architecture (`--arch
//! arm64` on amd64) runs its binaries through qemu-user-static, which the
//! kernel starts through a binfmt_misc handler (`binfmt_misc` in the
//! kernel's admin guide). Registered handlers are files in
//! `/proc/sys/fs/binfmt_misc/`, next to `status` and `register`; a handler
//! with the `F` flag works inside a chroot as it is, one without needs the
//! interpreter given with `-I` (the Debian-family plugins' option).
//! Missing support is a warning: native containers do not need it.

use super::{Check, Probe};

const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";
const FIX: &str = "apt-get install qemu-user-static binfmt-support";

/// The check named `binfmt`.
pub fn check(probe: &Probe) -> Check {
    let dir = probe.file(BINFMT_DIR);
    if !dir.join("status").exists() {
        return Check::warn(
            "binfmt",
            format!("binfmt_misc is not mounted on {BINFMT_DIR}: containers of foreign architectures cannot run"),
            format!("mount -t binfmt_misc binfmt_misc {BINFMT_DIR}; {FIX}"),
        );
    }
    let mut handlers: Vec<(String, bool)> = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(Result::ok).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let cpu = name.strip_prefix("qemu-")?.to_owned();
            let text = std::fs::read_to_string(e.path()).ok()?;
            let enabled = text.lines().any(|l| l.trim() == "enabled");
            let fixed = text.lines().any(|l| l.trim().strip_prefix("flags:").is_some_and(|f| f.contains('F')));
            enabled.then_some((cpu, fixed))
        })
        .collect();
    handlers.sort();
    if handlers.is_empty() {
        return Check::warn(
            "binfmt",
            "no qemu handler registered in binfmt_misc: containers of foreign architectures cannot run",
            FIX,
        );
    }
    let listed: Vec<String> =
        handlers.iter().map(|(cpu, fixed)| if *fixed { cpu.clone() } else { format!("{cpu} (needs -I)") }).collect();
    Check::ok("binfmt", format!("qemu handlers for {}", listed.join(", ")))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures are built with std::fs on purpose
mod tests {
    use super::*;
    use crate::doctor::{Status, testing::FakeRoot};

    #[test]
    fn doctor_binfmt_unmounted_or_empty_warns() {
        let fake = FakeRoot::new();
        let unmounted = check(&fake.probe);
        assert_eq!(unmounted.status, Status::Warn);
        assert!(unmounted.fix.unwrap().contains("mount -t binfmt_misc"));
        fake.write("/proc/sys/fs/binfmt_misc/status", "enabled\n");
        let empty = check(&fake.probe);
        assert_eq!((empty.status, empty.fix.as_deref()), (Status::Warn, Some(FIX)));
    }

    #[test]
    fn doctor_binfmt_lists_qemu_handlers() {
        let fake = FakeRoot::new();
        fake.write("/proc/sys/fs/binfmt_misc/status", "enabled\n")
            .write(
                "/proc/sys/fs/binfmt_misc/qemu-aarch64",
                "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\n",
            )
            .write("/proc/sys/fs/binfmt_misc/qemu-arm", "enabled\ninterpreter /usr/bin/qemu-arm-static\nflags: \n")
            .write("/proc/sys/fs/binfmt_misc/qemu-mips", "disabled\nflags: F\n");
        let check = check(&fake.probe);
        assert_eq!(check.status, Status::Ok);
        assert_eq!(check.detail, "qemu handlers for aarch64, arm (needs -I)");
    }
}
