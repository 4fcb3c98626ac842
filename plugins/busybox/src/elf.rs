//! Just enough of an ELF reader to tell a static busybox from a dynamic one.
//!
//! A dynamically linked executable names its program interpreter (the
//! dynamic loader, `/lib64/ld-linux-x86-64.so.2`) in a `PT_INTERP` program
//! header; a static one, static-pie included, has none. That is the whole
//! question the plugin asks, so this reads the ELF header and the program
//! header table of ELF32/ELF64 files of either byte order, with every offset
//! bounds-checked, and nothing else. It is pure (bytes in, answer out) so
//! that it can be tested on hand-made headers and on the host's real busybox.

use std::fmt;

/// `p_type` of the program header naming the dynamic loader.
const PT_INTERP: u32 = 3;
/// `e_phnum` value meaning "the real count is in section header 0's `sh_info`".
const PN_XNUM: u16 = 0xffff;
/// `e_type` of a fixed-address executable.
const ET_EXEC: u16 = 2;
/// `e_type` of a position-independent executable (or shared object).
const ET_DYN: u16 = 3;

/// Word size of an ELF file (`EI_CLASS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// 32-bit (`ELFCLASS32`).
    Elf32,
    /// 64-bit (`ELFCLASS64`).
    Elf64,
}

/// Byte order of an ELF file (`EI_DATA`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endian {
    /// `ELFDATA2LSB`.
    Little,
    /// `ELFDATA2MSB`.
    Big,
}

/// What the plugin needs to know about an executable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfInfo {
    /// Word size.
    pub class: Class,
    /// Byte order.
    pub endian: Endian,
    /// The program interpreter named by `PT_INTERP`, `None` for a static
    /// executable.
    pub interpreter: Option<String>,
}

impl ElfInfo {
    /// Whether the executable runs without a dynamic loader and libraries.
    pub fn is_static(&self) -> bool {
        self.interpreter.is_none()
    }
}

/// Why bytes could not be read as an ELF executable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// No `\x7fELF` magic: a script, a text file, something else.
    NotElf,
    /// `EI_CLASS` is neither 32- nor 64-bit.
    BadClass(u8),
    /// `EI_DATA` is neither little- nor big-endian.
    BadByteOrder(u8),
    /// Not an executable (`ET_REL` object, core dump, ...).
    NotExecutable(u16),
    /// A header or table points past the end of the file.
    Truncated(&'static str),
    /// `e_phentsize` is smaller than a program header of this class.
    BadProgramHeaderSize(u16),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotElf => f.write_str("not an ELF file"),
            Self::BadClass(c) => write!(f, "unknown ELF class {c}"),
            Self::BadByteOrder(d) => write!(f, "unknown ELF byte order {d}"),
            Self::NotExecutable(t) => write!(f, "ELF type {t} is not an executable"),
            Self::Truncated(what) => write!(f, "truncated ELF file: {what} lies past its end"),
            Self::BadProgramHeaderSize(s) => {
                write!(f, "program header entry size {s} is too small")
            }
        }
    }
}

impl std::error::Error for ElfError {}

/// Reads fixed-size integers at offsets, in the file's byte order, failing
/// (instead of panicking) when the offset is out of range.
struct Reader<'a> {
    bytes: &'a [u8],
    endian: Endian,
}

impl Reader<'_> {
    fn array<const N: usize>(&self, offset: u64, what: &'static str) -> Result<[u8; N], ElfError> {
        let start = usize::try_from(offset).map_err(|_| ElfError::Truncated(what))?;
        let end = start.checked_add(N).ok_or(ElfError::Truncated(what))?;
        let slice = self.bytes.get(start..end).ok_or(ElfError::Truncated(what))?;
        // The slice has exactly N bytes by construction.
        Ok(slice.try_into().expect("slice of length N"))
    }

    fn u16(&self, offset: u64, what: &'static str) -> Result<u16, ElfError> {
        let b = self.array::<2>(offset, what)?;
        Ok(match self.endian {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        })
    }

    fn u32(&self, offset: u64, what: &'static str) -> Result<u32, ElfError> {
        let b = self.array::<4>(offset, what)?;
        Ok(match self.endian {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        })
    }

    fn u64(&self, offset: u64, what: &'static str) -> Result<u64, ElfError> {
        let b = self.array::<8>(offset, what)?;
        Ok(match self.endian {
            Endian::Little => u64::from_le_bytes(b),
            Endian::Big => u64::from_be_bytes(b),
        })
    }

    /// A target-address-sized word: 4 bytes in ELF32, 8 in ELF64.
    fn word(&self, class: Class, offset: u64, what: &'static str) -> Result<u64, ElfError> {
        match class {
            Class::Elf32 => self.u32(offset, what).map(u64::from),
            Class::Elf64 => self.u64(offset, what),
        }
    }
}

/// Field offsets that differ between the two classes (System V gABI).
struct Layout {
    e_phoff: u64,
    e_shoff: u64,
    e_phentsize: u64,
    e_phnum: u64,
    /// Smallest valid `e_phentsize`.
    phdr_size: u16,
    p_offset: u64,
    p_filesz: u64,
    /// `sh_info` inside a section header.
    sh_info: u64,
}

const LAYOUT32: Layout = Layout {
    e_phoff: 28,
    e_shoff: 32,
    e_phentsize: 42,
    e_phnum: 44,
    phdr_size: 32,
    p_offset: 4,
    p_filesz: 16,
    sh_info: 28,
};

const LAYOUT64: Layout = Layout {
    e_phoff: 32,
    e_shoff: 40,
    e_phentsize: 54,
    e_phnum: 56,
    phdr_size: 56,
    p_offset: 8,
    p_filesz: 32,
    sh_info: 44,
};

/// Parses the ELF header and program headers of an executable.
///
/// `bytes` must hold at least the headers and the interpreter string; the
/// whole file is simplest.
pub fn parse(bytes: &[u8]) -> Result<ElfInfo, ElfError> {
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    let class = match bytes.get(4).copied() {
        Some(1) => Class::Elf32,
        Some(2) => Class::Elf64,
        Some(other) => return Err(ElfError::BadClass(other)),
        None => return Err(ElfError::Truncated("e_ident")),
    };
    let endian = match bytes.get(5).copied() {
        Some(1) => Endian::Little,
        Some(2) => Endian::Big,
        Some(other) => return Err(ElfError::BadByteOrder(other)),
        None => return Err(ElfError::Truncated("e_ident")),
    };
    let layout = match class {
        Class::Elf32 => &LAYOUT32,
        Class::Elf64 => &LAYOUT64,
    };
    let r = Reader { bytes, endian };

    let e_type = r.u16(16, "e_type")?;
    if e_type != ET_EXEC && e_type != ET_DYN {
        return Err(ElfError::NotExecutable(e_type));
    }
    let phoff = r.word(class, layout.e_phoff, "e_phoff")?;
    let phentsize = r.u16(layout.e_phentsize, "e_phentsize")?;
    let mut phnum = u64::from(r.u16(layout.e_phnum, "e_phnum")?);
    if phnum == u64::from(PN_XNUM) {
        // More than 0xfffe program headers: the count moved to section 0.
        let shoff = r.word(class, layout.e_shoff, "e_shoff")?;
        let at = shoff.checked_add(layout.sh_info).ok_or(ElfError::Truncated("section header 0"))?;
        phnum = u64::from(r.u32(at, "section header 0")?);
    }
    if phnum > 0 && phentsize < layout.phdr_size {
        return Err(ElfError::BadProgramHeaderSize(phentsize));
    }

    let mut interpreter = None;
    for i in 0..phnum {
        let at = i
            .checked_mul(u64::from(phentsize))
            .and_then(|o| o.checked_add(phoff))
            .ok_or(ElfError::Truncated("program header table"))?;
        if r.u32(at, "program header table")? != PT_INTERP {
            continue;
        }
        let offset = r.word(class, at + layout.p_offset, "program header table")?;
        let size = r.word(class, at + layout.p_filesz, "program header table")?;
        let start = usize::try_from(offset).map_err(|_| ElfError::Truncated("PT_INTERP string"))?;
        let len = usize::try_from(size).map_err(|_| ElfError::Truncated("PT_INTERP string"))?;
        let end = start.checked_add(len).ok_or(ElfError::Truncated("PT_INTERP string"))?;
        let raw = bytes.get(start..end).ok_or(ElfError::Truncated("PT_INTERP string"))?;
        // The string is NUL-terminated inside p_filesz.
        let text = raw.split(|&b| b == 0).next().unwrap_or_default();
        interpreter = Some(String::from_utf8_lossy(text).into_owned());
        break;
    }
    Ok(ElfInfo { class, endian, interpreter })
}

#[cfg(test)]
/// Builds a minimal executable: ELF header, `phnum` program headers
/// right after it (the first one `PT_INTERP` when `interp` is given,
/// the others `PT_LOAD`), then the interpreter string.
pub(crate) fn make_elf(class: Class, endian: Endian, interp: Option<&str>, phnum: u16) -> Vec<u8> {
    let (layout, ehsize) = match class {
        Class::Elf32 => (&LAYOUT32, 52u64),
        Class::Elf64 => (&LAYOUT64, 64u64),
    };
    let phentsize = u64::from(layout.phdr_size);
    let table_end = ehsize + phentsize * u64::from(phnum);
    let mut out = vec![0u8; table_end as usize];
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = if class == Class::Elf32 { 1 } else { 2 };
    out[5] = if endian == Endian::Little { 1 } else { 2 };
    out[6] = 1; // EI_VERSION

    let put = |out: &mut Vec<u8>, at: u64, value: u64, width: usize| {
        let bytes = value.to_le_bytes();
        let mut field = bytes[..width].to_vec();
        if endian == Endian::Big {
            field.reverse();
        }
        out[at as usize..at as usize + width].copy_from_slice(&field);
    };
    let word = if class == Class::Elf32 { 4 } else { 8 };

    put(&mut out, 16, u64::from(ET_EXEC), 2);
    put(&mut out, layout.e_phoff, ehsize, word);
    put(&mut out, layout.e_phentsize, phentsize, 2);
    put(&mut out, layout.e_phnum, u64::from(phnum), 2);
    for i in 0..u64::from(phnum) {
        let at = ehsize + i * phentsize;
        let p_type = if i == 0 && interp.is_some() { u64::from(PT_INTERP) } else { 1 };
        put(&mut out, at, p_type, 4);
    }
    if let Some(path) = interp {
        let mut s = path.as_bytes().to_vec();
        s.push(0);
        put(&mut out, ehsize + layout.p_offset, table_end, word);
        put(&mut out, ehsize + layout.p_filesz, s.len() as u64, word);
        out.extend_from_slice(&s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_classes_and_byte_orders() {
        for class in [Class::Elf32, Class::Elf64] {
            for endian in [Endian::Little, Endian::Big] {
                let dynamic = parse(&make_elf(class, endian, Some("/lib/ld.so.1"), 3)).unwrap();
                assert_eq!(dynamic.class, class);
                assert_eq!(dynamic.endian, endian);
                assert_eq!(dynamic.interpreter.as_deref(), Some("/lib/ld.so.1"), "{class:?} {endian:?}");
                assert!(!dynamic.is_static());

                let fixed = parse(&make_elf(class, endian, None, 3)).unwrap();
                assert!(fixed.is_static(), "{class:?} {endian:?}");
            }
        }
    }

    #[test]
    fn no_program_headers_is_static() {
        assert!(parse(&make_elf(Class::Elf64, Endian::Little, None, 0)).unwrap().is_static());
    }

    #[test]
    fn rejects_what_is_not_an_executable() {
        assert_eq!(parse(b""), Err(ElfError::NotElf));
        assert_eq!(parse(b"#!/bin/sh\nexec busybox \"$@\"\n"), Err(ElfError::NotElf));
        assert_eq!(parse(b"\x7fELF"), Err(ElfError::Truncated("e_ident")));

        let mut bad_class = make_elf(Class::Elf64, Endian::Little, None, 1);
        bad_class[4] = 9;
        assert_eq!(parse(&bad_class), Err(ElfError::BadClass(9)));

        let mut bad_order = make_elf(Class::Elf64, Endian::Little, None, 1);
        bad_order[5] = 0;
        assert_eq!(parse(&bad_order), Err(ElfError::BadByteOrder(0)));

        let mut object = make_elf(Class::Elf64, Endian::Little, None, 1);
        object[16] = 1; // ET_REL
        assert_eq!(parse(&object), Err(ElfError::NotExecutable(1)));
    }

    #[test]
    fn out_of_range_offsets_are_errors_not_panics() {
        let full = make_elf(Class::Elf64, Endian::Big, Some("/lib64/ld64.so.1"), 2);
        // Every prefix of a valid file either parses or fails cleanly.
        for len in 0..full.len() {
            let _ = parse(&full[..len]);
        }
        // Cut inside the interpreter string.
        assert_eq!(parse(&full[..full.len() - 3]), Err(ElfError::Truncated("PT_INTERP string")));

        // A program header table offset near u64::MAX must not overflow.
        let mut wild = make_elf(Class::Elf64, Endian::Little, None, 2);
        wild[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(parse(&wild), Err(ElfError::Truncated("program header table")));
    }

    #[test]
    fn rejects_a_too_small_program_header_entry() {
        let mut elf = make_elf(Class::Elf32, Endian::Little, None, 1);
        elf[42..44].copy_from_slice(&8u16.to_le_bytes());
        assert_eq!(parse(&elf), Err(ElfError::BadProgramHeaderSize(8)));
    }

    #[test]
    fn program_header_count_in_section_zero() {
        // e_phnum = PN_XNUM: the count (2) is section header 0's sh_info.
        let mut elf = make_elf(Class::Elf64, Endian::Little, Some("/lib/ld.so"), 2);
        let shoff = elf.len() as u64;
        elf.extend_from_slice(&[0u8; 64]);
        elf[40..48].copy_from_slice(&shoff.to_le_bytes());
        elf[56..58].copy_from_slice(&PN_XNUM.to_le_bytes());
        elf[shoff as usize + 44..shoff as usize + 48].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(parse(&elf).unwrap().interpreter.as_deref(), Some("/lib/ld.so"));
    }

    /// The host's busybox-static: the package this plugin is meant for and a
    /// CI dependency (`.ci` installs busybox-static), so a missing file fails.
    #[test]
    fn host_busybox_is_a_static_executable() {
        let bytes = std::fs::read("/bin/busybox").expect("read /bin/busybox (install busybox-static)");
        let info = parse(&bytes).unwrap();
        assert!(info.is_static(), "/bin/busybox from busybox-static must be static, found {info:?}");
        let expected = if cfg!(target_pointer_width = "64") { Class::Elf64 } else { Class::Elf32 };
        assert_eq!(info.class, expected);
        let order = if cfg!(target_endian = "little") { Endian::Little } else { Endian::Big };
        assert_eq!(info.endian, order);
    }

    /// A dynamically linked host program names its loader.
    #[test]
    fn host_dynamic_executable_names_its_loader() {
        let bytes = std::fs::read("/usr/bin/env").expect("read /usr/bin/env");
        let interp = parse(&bytes).unwrap().interpreter.expect("/usr/bin/env is dynamically linked");
        assert!(interp.starts_with('/') && interp.contains("ld"), "odd interpreter {interp}");
    }
}
