//! Architectures: dpkg names, what a host runs natively, and foreign
//! architectures through qemu-user-static and binfmt_misc.

use lxc_tmpl_plugin_api::{FileKind, Host, PluginError};

/// The dpkg architectures debootstrap-based plugins know about.
pub const KNOWN_ARCHES: &[&str] =
    &["amd64", "i386", "arm64", "armhf", "armel", "ppc64el", "s390x", "riscv64", "mips64el", "mipsel", "powerpc"];

/// Where the kernel lists binfmt_misc handlers.
pub const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// Maps kernel machine names and common aliases to dpkg names (`x86_64` is
/// `amd64`, `i686` is `i386`, `aarch64` is `arm64`); dpkg names pass through.
pub fn normalize_arch(arch: &str) -> String {
    let arch = arch.trim();
    match arch {
        "x86_64" => "amd64",
        "i486" | "i586" | "i686" | "x86" => "i386",
        "aarch64" => "arm64",
        "armv7l" | "armv8l" | "arm" => "armhf",
        "armv5tel" | "armv6l" => "armel",
        "ppc64le" => "ppc64el",
        "ppc" => "powerpc",
        other => other,
    }
    .to_owned()
}

/// Whether a `host` machine runs `target` binaries without emulation: the
/// same architecture, i386 on amd64, 32-bit ARM on arm64 (the old
/// templates' rules).
pub fn runs_natively(host: &str, target: &str) -> bool {
    host == target || matches!((host, target), ("amd64", "i386") | ("arm64", "armhf" | "armel"))
}

/// The qemu CPU name of a dpkg architecture, as in `qemu-<cpu>-static` and
/// the binfmt_misc handler `qemu-<cpu>`.
pub fn qemu_cpu(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "amd64" => "x86_64",
        "i386" => "i386",
        "arm64" => "aarch64",
        "armhf" | "armel" => "arm",
        "ppc64el" => "ppc64le",
        "powerpc" => "ppc",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "mips64el" => "mips64el",
        "mipsel" => "mipsel",
        _ => return None,
    })
}

/// The value of `lxc.arch` for a dpkg architecture, `None` when LXC has no
/// personality name for it (the key is then left out). i386 is written as
/// `i686`, as lxc-ubuntu did.
pub fn lxc_arch(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "amd64" => "amd64",
        "i386" => "i686",
        "arm64" => "arm64",
        "armhf" => "armhf",
        "armel" => "armel",
        "ppc64el" => "ppc64el",
        "powerpc" => "powerpc",
        "s390x" => "s390x",
        "mips64el" => "mips64el",
        "mipsel" => "mipsel",
        _ => return None,
    })
}

/// How the host runs the container's binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchSupport {
    /// Natively.
    Native,
    /// Through a binfmt_misc handler (qemu-user-static) registered with the
    /// `F` flag, so it works inside a chroot without copying qemu in.
    Emulated {
        /// The handler's file (`/proc/sys/fs/binfmt_misc/qemu-aarch64`).
        handler: String,
        /// Its interpreter (`/usr/bin/qemu-aarch64-static`).
        interpreter: String,
    },
}

/// What a binfmt_misc handler file says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BinfmtHandler {
    /// The `enabled` line is there.
    pub enabled: bool,
    /// The `interpreter` path.
    pub interpreter: String,
    /// The `flags:` letters.
    pub flags: String,
}

/// Parses `/proc/sys/fs/binfmt_misc/<name>`.
pub fn parse_binfmt_handler(text: &str) -> BinfmtHandler {
    let mut handler = BinfmtHandler::default();
    for line in text.lines().map(str::trim) {
        if line == "enabled" {
            handler.enabled = true;
        } else if let Some(path) = line.strip_prefix("interpreter ") {
            handler.interpreter = path.trim().to_owned();
        } else if let Some(flags) = line.strip_prefix("flags:") {
            handler.flags = flags.trim().to_owned();
        }
    }
    handler
}

/// Checks that `arch` is one of the `supported` dpkg names; the error lists them.
pub fn validate_arch(arch: &str, supported: &[&str]) -> Result<(), PluginError> {
    if supported.contains(&arch) {
        return Ok(());
    }
    Err(PluginError::invalid_input(format!(
        "unknown architecture '{arch}': choose one of {} (dpkg names; x86_64 and aarch64 are accepted too)",
        supported.join(", ")
    )))
}

/// Decides how this host can run `target` binaries, or refuses with the
/// fix: install qemu-user-static (which registers its handlers with the `F`
/// flag), or pick an architecture the host runs.
pub fn check_arch_support(host: &mut Host<'_>, host_arch: &str, target: &str) -> Result<ArchSupport, PluginError> {
    if runs_natively(host_arch, target) {
        return Ok(ArchSupport::Native);
    }
    let cannot = |why: String| {
        PluginError::unsupported(format!(
            "cannot build a {target} container on this {host_arch} host: {why}; \
             install qemu-user-static (and binfmt-support) or choose --arch {host_arch}"
        ))
    };
    let Some(cpu) = qemu_cpu(target) else {
        return Err(cannot(format!("no emulator is known for {target}")));
    };
    let handler_path = format!("{BINFMT_DIR}/qemu-{cpu}");
    if host.host_file_kind(&format!("{BINFMT_DIR}/status"))?.is_none() {
        return Err(cannot(format!("binfmt_misc is not mounted at {BINFMT_DIR}")));
    }
    if host.host_file_kind(&handler_path)? != Some(FileKind::File) {
        return Err(cannot(format!("no binfmt_misc handler {handler_path}")));
    }
    let handler = parse_binfmt_handler(&String::from_utf8_lossy(&host.read_host_file(&handler_path)?));
    if !handler.enabled {
        return Err(cannot(format!("the binfmt_misc handler {handler_path} is disabled")));
    }
    if !handler.flags.contains('F') {
        return Err(cannot(format!(
            "the binfmt_misc handler {handler_path} lacks the F (fix binary) flag, so {} cannot run inside a chroot",
            handler.interpreter
        )));
    }
    Ok(ArchSupport::Emulated { handler: handler_path, interpreter: handler.interpreter })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeHost, with_host};

    #[test]
    fn names() {
        assert_eq!(normalize_arch("x86_64"), "amd64");
        assert_eq!(normalize_arch("i686"), "i386");
        assert_eq!(normalize_arch("aarch64"), "arm64");
        assert_eq!(normalize_arch("ppc64le"), "ppc64el");
        assert_eq!(normalize_arch("riscv64"), "riscv64");
        assert_eq!(lxc_arch("i386"), Some("i686"));
        assert_eq!(lxc_arch("riscv64"), None);
        assert_eq!(qemu_cpu("arm64"), Some("aarch64"));
        assert_eq!(qemu_cpu("sparc"), None);
    }

    #[test]
    fn native_rules() {
        assert!(runs_natively("amd64", "amd64"));
        assert!(runs_natively("amd64", "i386"));
        assert!(!runs_natively("i386", "amd64"));
        assert!(runs_natively("arm64", "armhf"));
        assert!(!runs_natively("armhf", "arm64"));
        assert!(!runs_natively("amd64", "arm64"));
    }

    #[test]
    fn validates_names() {
        assert!(validate_arch("amd64", KNOWN_ARCHES).is_ok());
        let err = validate_arch("x86", &["amd64", "i386"]).unwrap_err();
        assert!(err.message.contains("unknown architecture 'x86': choose one of amd64, i386"), "{}", err.message);
    }

    #[test]
    fn binfmt_handler_file() {
        let text =
            "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POCF\noffset 0\nmagic 7f45\n";
        let handler = parse_binfmt_handler(text);
        assert!(handler.enabled);
        assert_eq!(handler.interpreter, "/usr/libexec/qemu-binfmt/aarch64-binfmt-P");
        assert_eq!(handler.flags, "POCF");
    }

    #[test]
    fn foreign_arch_needs_an_f_flag_handler() {
        let mut fake = FakeHost::sealed();
        let err = with_host(&mut fake, |h| check_arch_support(h, "amd64", "arm64")).unwrap_err();
        assert!(err.message.contains("binfmt_misc is not mounted"), "{}", err.message);
        assert!(err.message.contains("install qemu-user-static"), "{}", err.message);

        fake.host_files.insert(format!("{BINFMT_DIR}/status"), b"enabled\n".to_vec());
        let err = with_host(&mut fake, |h| check_arch_support(h, "amd64", "arm64")).unwrap_err();
        assert!(
            err.message.contains("no binfmt_misc handler /proc/sys/fs/binfmt_misc/qemu-aarch64"),
            "{}",
            err.message
        );

        let handler = format!("{BINFMT_DIR}/qemu-aarch64");
        fake.host_files
            .insert(handler.clone(), b"enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: OC\n".to_vec());
        let err = with_host(&mut fake, |h| check_arch_support(h, "amd64", "arm64")).unwrap_err();
        assert!(err.message.contains("lacks the F (fix binary) flag"), "{}", err.message);

        fake.host_files
            .insert(handler.clone(), b"enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: OCF\n".to_vec());
        let support = with_host(&mut fake, |h| check_arch_support(h, "amd64", "arm64")).unwrap();
        assert_eq!(support, ArchSupport::Emulated { handler, interpreter: "/usr/bin/qemu-aarch64-static".into() });
        assert_eq!(with_host(&mut fake, |h| check_arch_support(h, "amd64", "i386")).unwrap(), ArchSupport::Native);
    }
}
