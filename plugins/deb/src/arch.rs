//! Architectures: dpkg names, what a host runs natively, and foreign
//! architectures through qemu-user-static and binfmt_misc, either through a
//! handler with the `F` flag or through a static interpreter the user names
//! (`-I/--interpreter-path`, lxc-debian's option).

use lxc_tmpl_plugin_api::{FileKind, Host, PluginError};

use crate::debootstrap::absolute;

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
        "mips" => "mips",
        "ppc64" => "ppc64",
        "sparc64" => "sparc64",
        "m68k" => "m68k",
        "alpha" => "alpha",
        "hppa" => "hppa",
        "sh4" => "sh4",
        "loong64" => "loongarch64",
        "x32" => "x86_64",
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
        "mips" => "mips",
        "ppc64" => "ppc64",
        _ => return None,
    })
}

/// How the host runs the container's binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchSupport {
    /// Natively.
    Native,
    /// Through a binfmt_misc handler (qemu-user-static): one with the `F`
    /// flag works inside a chroot as it is; without it, the kernel looks the
    /// interpreter up inside the chroot, so the `-I` interpreter is copied
    /// there first (`copy_from`).
    Emulated {
        /// The handler's file (`/proc/sys/fs/binfmt_misc/qemu-aarch64`).
        handler: String,
        /// Its interpreter (`/usr/bin/qemu-aarch64-static`).
        interpreter: String,
        /// The host file to copy into the rootfs as `interpreter` before
        /// anything runs there; `None` with the `F` flag.
        copy_from: Option<String>,
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
    Ok(ArchSupport::Emulated { handler: handler_path, interpreter: handler.interpreter, copy_from: None })
}

/// `p_type` of the program header that names a dynamic loader.
const PT_INTERP: u32 = 3;

/// Whether `data` is an ELF executable without a program interpreter: a
/// static binary (static-pie included), which runs in any rootfs.
/// `None` when it is no ELF file or its program headers are cut off.
pub fn is_static_elf(data: &[u8]) -> Option<bool> {
    if data.get(..4)? != b"\x7fELF" {
        return None;
    }
    let wide = match data.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let big_endian = *data.get(5)? == 2;
    let number = |at: usize, len: usize| -> Option<u64> {
        let bytes = data.get(at..at.checked_add(len)?)?;
        let fold = |acc: u64, b: &u8| (acc << 8) | u64::from(*b);
        Some(if big_endian { bytes.iter().fold(0, fold) } else { bytes.iter().rev().fold(0, fold) })
    };
    // (e_phoff, its width, e_phentsize, e_phnum) of ELF64 and ELF32.
    let (table, entry_size, count) = if wide {
        (number(0x20, 8)?, number(0x36, 2)?, number(0x38, 2)?)
    } else {
        (number(0x1c, 4)?, number(0x2a, 2)?, number(0x2c, 2)?)
    };
    for index in 0..count {
        let at = usize::try_from(table.checked_add(index.checked_mul(entry_size)?)?).ok()?;
        if number(at, 4)? == u64::from(PT_INTERP) {
            return Some(false);
        }
    }
    Some(true)
}

/// Decides how this host runs `target` binaries through the interpreter
/// the user gave with `-I/--interpreter-path` (as lxc-debian did): a static
/// program (qemu-user-static's `qemu-<cpu>-static`) whose binfmt_misc
/// handler `qemu-<cpu>` is registered and enabled. With the handler's `F`
/// flag nothing is copied; without it the handler must run a program of the
/// same name, and the given file is copied into the rootfs at the handler's
/// interpreter path (see [`ArchSupport::Emulated::copy_from`]).
pub fn check_interpreter(
    host: &mut Host<'_>,
    given: &str,
    host_arch: &str,
    target: &str,
) -> Result<ArchSupport, PluginError> {
    if runs_natively(host_arch, target) {
        host.info(&format!("--interpreter-path {given} is not needed: this {host_arch} host runs {target} natively"));
        return Ok(ArchSupport::Native);
    }
    let path = absolute(given);
    match host.host_file_kind(&path)? {
        Some(FileKind::File) => {}
        Some(_) => return Err(PluginError::invalid_input(format!("--interpreter-path {given} is not a regular file"))),
        None => return Err(PluginError::invalid_input(format!("--interpreter-path {given}: no such file"))),
    }
    if is_static_elf(&host.read_host_file(&path)?) != Some(true) {
        return Err(PluginError::invalid_input(format!(
            "--interpreter-path {given} is not a statically linked program; give a qemu-<cpu>-static binary \
             (package qemu-user-static)"
        )));
    }
    let refuse = |why: String| {
        PluginError::unsupported(format!(
            "--interpreter-path {given} cannot run {target} binaries: {why}; install qemu-user-static \
             (and binfmt-support), or register the interpreter with update-binfmts"
        ))
    };
    let cpu = qemu_cpu(target).ok_or_else(|| refuse(format!("no qemu emulator is known for {target}")))?;
    if host.host_file_kind(&format!("{BINFMT_DIR}/status"))?.is_none() {
        return Err(refuse(format!("binfmt_misc is not mounted at {BINFMT_DIR}")));
    }
    let handler_path = format!("{BINFMT_DIR}/qemu-{cpu}");
    if host.host_file_kind(&handler_path)? != Some(FileKind::File) {
        return Err(refuse(format!("no binfmt_misc handler {handler_path}")));
    }
    let handler = parse_binfmt_handler(&String::from_utf8_lossy(&host.read_host_file(&handler_path)?));
    if !handler.enabled {
        return Err(refuse(format!("the binfmt_misc handler {handler_path} is disabled")));
    }
    if handler.flags.contains('F') {
        return Ok(ArchSupport::Emulated { handler: handler_path, interpreter: handler.interpreter, copy_from: None });
    }
    let file_name = |p: &str| p.rsplit('/').next().unwrap_or_default().to_owned();
    if file_name(&handler.interpreter) != file_name(&path) {
        return Err(PluginError::invalid_input(format!(
            "--interpreter-path {given}: the binfmt_misc handler {handler_path} runs {}, not a program named {}",
            handler.interpreter,
            file_name(&path)
        )));
    }
    Ok(ArchSupport::Emulated { handler: handler_path, interpreter: handler.interpreter, copy_from: Some(path) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeHost, elf, with_host};

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
        let interpreter = "/usr/bin/qemu-aarch64-static".to_owned();
        assert_eq!(support, ArchSupport::Emulated { handler, interpreter, copy_from: None });
        assert_eq!(with_host(&mut fake, |h| check_arch_support(h, "amd64", "i386")).unwrap(), ArchSupport::Native);
    }

    #[test]
    fn static_elf_detection() {
        for (wide, big_endian) in [(true, false), (false, false), (true, true), (false, true)] {
            assert_eq!(is_static_elf(&elf(wide, big_endian, false)), Some(true), "{wide} {big_endian}");
            assert_eq!(is_static_elf(&elf(wide, big_endian, true)), Some(false), "{wide} {big_endian}");
        }
        assert_eq!(is_static_elf(b"#!/bin/sh\n"), None);
        assert_eq!(is_static_elf(&elf(true, false, false)[..70]), None, "cut-off program headers");
        if let Ok(sh) = std::fs::read("/bin/sh") {
            assert_eq!(is_static_elf(&sh), Some(false), "the host's /bin/sh is dynamic");
        }
    }

    #[test]
    fn interpreter_path_checks() {
        let mut fake = FakeHost::sealed();
        let check =
            |fake: &mut FakeHost, given: &str| with_host(fake, |h| check_interpreter(h, given, "amd64", "arm64"));
        assert_eq!(with_host(&mut fake, |h| check_interpreter(h, "/q", "amd64", "i386")).unwrap(), ArchSupport::Native);
        assert!(check(&mut fake, "/q").unwrap_err().message.contains("--interpreter-path /q: no such file"));
        fake.host_files.insert("/dyn".into(), elf(true, false, true));
        assert!(check(&mut fake, "/dyn").unwrap_err().message.contains("not a statically linked program"));
        let qemu = "/usr/bin/qemu-aarch64-static";
        fake.host_files.insert(qemu.into(), elf(true, false, false));
        let err = check(&mut fake, qemu).unwrap_err();
        assert_eq!(err.kind, lxc_tmpl_plugin_api::ErrorKind::UNSUPPORTED);
        assert!(err.message.contains("binfmt_misc is not mounted"), "{}", err.message);

        fake.host_files.insert(format!("{BINFMT_DIR}/status"), b"enabled\n".to_vec());
        let handler = format!("{BINFMT_DIR}/qemu-aarch64");
        fake.host_files.insert(handler.clone(), b"enabled\ninterpreter /usr/bin/qemu-aarch64\nflags: OC\n".to_vec());
        assert!(check(&mut fake, qemu).unwrap_err().message.contains("runs /usr/bin/qemu-aarch64, not a program"));
        fake.host_files.insert(handler.clone(), format!("enabled\ninterpreter {qemu}\nflags: OC\n").into_bytes());
        let copy_from = Some(qemu.to_owned());
        assert_eq!(
            check(&mut fake, qemu).unwrap(),
            ArchSupport::Emulated { handler: handler.clone(), interpreter: qemu.into(), copy_from }
        );
        let flagged = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POCF\n";
        fake.host_files.insert(handler.clone(), flagged.as_bytes().to_vec());
        let interpreter = "/usr/libexec/qemu-binfmt/aarch64-binfmt-P".to_owned();
        assert_eq!(
            check(&mut fake, qemu).unwrap(),
            ArchSupport::Emulated { handler, interpreter, copy_from: None },
            "with the F flag nothing is copied"
        );
    }
}
