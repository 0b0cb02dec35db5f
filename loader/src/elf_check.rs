//! Checks an eBPF ELF object before Aya parses it.
//!
//! Aya's object parser trusts the file: a section, symbol or BTF record that points outside
//! the file makes it index out of bounds and panic. lagic loads objects an operator hands it,
//! so every offset, size and index Aya follows is checked here first, and a malformed object
//! is a [`Malformed`] error naming what is wrong and where. (The load path also catches any
//! panic left at the Aya boundary, see [`crate::program`]; this check is the first line.)
//!
//! [`check`] also tells objects lagic wrote from others ([`Provenance`]): lagic's ELF writer
//! names the pseudo source file of every BTF `line_info` record `lagic` (emit-bpf's
//! `LINE_INFO_FILE`), and gives the program in section `classifier` at least one such record. An object whose `classifier`
//! line info all names that file is "written by lagic"; anything else is foreign. This is a mark
//! of origin, not a signature: it keeps objects from other toolchains out by default, not a
//! forger.
//!
//! Invariant: [`check`] accepts only little-endian 64-bit relocatable eBPF objects in which
//! every section lies inside the file, every symbol and relocation points into existing
//! sections and symbols, and `.BTF`/`.BTF.ext` records lie inside their sections.

use std::ops::Range;

/// What is wrong with an object, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed eBPF object: {0}")]
pub struct Malformed(pub String);

/// Who wrote an object that passed [`check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// lagic's ELF writer (see the module docs for how that is told).
    Lagic,
    /// Anything else.
    Foreign,
}

/// The pseudo source file name lagic's writer puts in line info records.
const LAGIC_LINE_INFO_FILE: &[u8] = b"lagic";
/// The section of a lagic diode's entry program.
const PROG_SECTION: &[u8] = b"classifier";

const EM_BPF: u16 = 247;
const ET_REL: u16 = 1;
const SHT_SYMTAB: u32 = 2;
const SHT_STRTAB: u32 = 3;
const SHT_RELA: u32 = 4;
const SHT_NOBITS: u32 = 8;
const SHT_REL: u32 = 9;
const SHN_LORESERVE: u16 = 0xff00;
const STT_FUNC: u8 = 2;
const STT_SECTION: u8 = 3;
const SHF_EXECINSTR: u64 = 4;
/// `R_BPF_64_64` (ld_imm64) and `R_BPF_64_32` (call): the relocations loaders apply to code.
const CODE_RELOCATIONS: [u32; 2] = [1, 10];
const BTF_MAGIC: u16 = 0xeb9f;

fn bad(what: impl Into<String>) -> Malformed {
    Malformed(what.into())
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// `start..start+len` if it lies within `0..limit`.
fn span(start: u64, len: u64, limit: usize) -> Option<Range<usize>> {
    let end = start.checked_add(len)?;
    (end <= limit as u64).then_some(start as usize..end as usize)
}

/// The NUL-terminated string at `off` in a string table.
fn c_str(table: &[u8], off: usize) -> Option<&[u8]> {
    let rest = table.get(off..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    Some(&rest[..end])
}

struct Section<'a> {
    name: &'a [u8],
    kind: u32,
    flags: u64,
    link: u32,
    info: u32,
    entsize: u64,
    /// The bytes in the file (empty for NOBITS).
    data: &'a [u8],
    size: u64,
}

/// Checks `elf` (see the module docs); returns who wrote it.
pub fn check(elf: &[u8]) -> Result<Provenance, Malformed> {
    let sections = sections(elf)?;
    check_symbols_and_relocations(&sections)?;
    let btf = sections.iter().find(|s| s.name == b".BTF");
    let strings = match btf {
        Some(s) => Some(check_btf(s.data)?),
        None => None,
    };
    let mut lagic = false;
    if let Some(ext) = sections.iter().find(|s| s.name == b".BTF.ext") {
        let strings =
            strings.ok_or_else(|| bad("section .BTF.ext without a .BTF section for its names"))?;
        lagic = check_btf_ext(ext.data, strings, &sections)?;
    }
    Ok(if lagic {
        Provenance::Lagic
    } else {
        Provenance::Foreign
    })
}

fn sections(elf: &[u8]) -> Result<Vec<Section<'_>>, Malformed> {
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" {
        return Err(bad("not an ELF file (no ELF header)"));
    }
    if elf[4] != 2 {
        return Err(bad("not a 64-bit ELF file (eBPF objects are ELF64)"));
    }
    if elf[5] != 1 {
        return Err(bad(
            "not a little-endian ELF file (this host loads little-endian eBPF)",
        ));
    }
    let e_type = u16_at(elf, 16).unwrap_or(0);
    let e_machine = u16_at(elf, 18).unwrap_or(0);
    if e_type != ET_REL {
        return Err(bad(format!(
            "ELF type {e_type}, not a relocatable object (1)"
        )));
    }
    if e_machine != EM_BPF {
        return Err(bad(format!("ELF machine {e_machine}, not eBPF ({EM_BPF})")));
    }
    let shoff = u64_at(elf, 40).unwrap_or(0);
    let shentsize = u16_at(elf, 58).unwrap_or(0);
    let shnum = u16_at(elf, 60).unwrap_or(0);
    let shstrndx = u16_at(elf, 62).unwrap_or(0);
    if shentsize != 64 {
        return Err(bad(format!("section header size {shentsize}, not 64")));
    }
    if shnum == 0 || shnum >= SHN_LORESERVE {
        return Err(bad(format!("{shnum} section headers (want 1 to 65279)")));
    }
    let table = span(shoff, u64::from(shnum) * 64, elf.len()).ok_or_else(|| {
        bad(format!(
            "the section header table ({shnum} entries at byte {shoff}) runs past the end of the \
             {}-byte file",
            elf.len()
        ))
    })?;
    let headers = &elf[table];
    if shstrndx >= shnum {
        return Err(bad(format!(
            "section name table index {shstrndx} is past the {shnum} sections"
        )));
    }
    let mut raw = Vec::with_capacity(shnum as usize);
    for i in 0..shnum as usize {
        let h = &headers[i * 64..i * 64 + 64];
        let field32 = |o| u32_at(h, o).unwrap_or(0);
        let field64 = |o| u64_at(h, o).unwrap_or(0);
        let (name, kind, flags, addr, offset, size, link, info, entsize) = (
            field32(0),
            field32(4),
            field64(8),
            field64(16),
            field64(24),
            field64(32),
            field32(40),
            field32(44),
            field64(56),
        );
        // Sections of a relocatable object have no address; loaders subtract it from symbol
        // values.
        if addr != 0 {
            return Err(bad(format!(
                "section {i} has address {addr:#x}; sections of a relocatable object have none"
            )));
        }
        let data = if kind == SHT_NOBITS || i == 0 {
            &elf[0..0]
        } else {
            let r = span(offset, size, elf.len()).ok_or_else(|| {
                bad(format!(
                    "section {i} ({size} bytes at byte {offset}) runs past the end of the {}-byte \
                     file",
                    elf.len()
                ))
            })?;
            &elf[r]
        };
        raw.push((name, kind, flags, link, info, entsize, data, size));
    }
    let shstrtab = raw[shstrndx as usize].6;
    if raw[shstrndx as usize].1 != SHT_STRTAB {
        return Err(bad(format!(
            "section {shstrndx} holds the section names but is not a string table"
        )));
    }
    raw.into_iter()
        .enumerate()
        .map(
            |(i, (name, kind, flags, link, info, entsize, data, size))| {
                let name = if i == 0 {
                    &b""[..]
                } else {
                    c_str(shstrtab, name as usize).ok_or_else(|| {
                        bad(format!(
                            "section {i}'s name (offset {name}) is outside the section name table"
                        ))
                    })?
                };
                Ok(Section {
                    name,
                    kind,
                    flags,
                    link,
                    info,
                    entsize,
                    data,
                    size,
                })
            },
        )
        .collect()
}

fn display(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

fn check_symbols_and_relocations(sections: &[Section<'_>]) -> Result<(), Malformed> {
    let n = sections.len();
    // Per symbol table: each symbol's (type, section index).
    let mut symbol_tables: Vec<Vec<(u8, u16)>> = vec![Vec::new(); n];
    for (i, s) in sections.iter().enumerate() {
        if s.kind != SHT_SYMTAB {
            continue;
        }
        let sname = display(s.name);
        if s.entsize != 24 || s.data.len() % 24 != 0 {
            return Err(bad(format!(
                "symbol table {sname}: entry size {} and size {} (want 24 and a multiple of 24)",
                s.entsize,
                s.data.len()
            )));
        }
        let strtab = sections
            .get(s.link as usize)
            .filter(|t| t.kind == SHT_STRTAB)
            .ok_or_else(|| {
                bad(format!(
                    "symbol table {sname} links to section {}, not a string table",
                    s.link
                ))
            })?;
        let count = s.data.len() / 24;
        for k in 0..count {
            let e = &s.data[k * 24..k * 24 + 24];
            let st_name = u32_at(e, 0).unwrap_or(0) as usize;
            let st_info = e[4];
            let st_shndx = u16_at(e, 6).unwrap_or(0);
            let value = u64_at(e, 8).unwrap_or(0);
            let size = u64_at(e, 16).unwrap_or(0);
            symbol_tables[i].push((st_info & 0xf, st_shndx));
            if c_str(strtab.data, st_name).is_none() {
                return Err(bad(format!(
                    "symbol {k}'s name (offset {st_name}) is outside the string table"
                )));
            }
            if st_shndx != 0 && st_shndx < SHN_LORESERVE {
                let target = sections.get(st_shndx as usize).ok_or_else(|| {
                    bad(format!(
                        "symbol {k} is in section {st_shndx}, past the {n} sections"
                    ))
                })?;
                if st_info & 0xf == STT_FUNC && span(value, size, target.size as usize).is_none() {
                    return Err(bad(format!(
                        "function symbol {k} ({size} bytes at {value}) runs past the end of \
                         section {} ({} bytes)",
                        display(target.name),
                        target.size
                    )));
                }
                if value > target.size {
                    return Err(bad(format!(
                        "symbol {k} (at {value}) lies past the end of section {} ({} bytes)",
                        display(target.name),
                        target.size
                    )));
                }
            }
        }
    }
    for s in sections {
        let entry = match s.kind {
            SHT_REL => 16,
            SHT_RELA => 24,
            _ => continue,
        };
        let sname = display(s.name);
        if s.data.len() % entry != 0 {
            return Err(bad(format!(
                "relocation section {sname}: size {} is not a multiple of {entry}",
                s.data.len()
            )));
        }
        let symbols = symbol_tables
            .get(s.link as usize)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                bad(format!(
                    "relocation section {sname} links to section {}, not a symbol table",
                    s.link
                ))
            })?;
        let target = sections.get(s.info as usize).ok_or_else(|| {
            bad(format!(
                "relocation section {sname} applies to section {}, past the {n} sections",
                s.info
            ))
        })?;
        for k in 0..s.data.len() / entry {
            let r = &s.data[k * entry..(k + 1) * entry];
            let offset = u64_at(r, 0).unwrap_or(0);
            let r_info = u64_at(r, 8).unwrap_or(0);
            let sym = (r_info >> 32) as usize;
            let Some(&(sym_type, sym_section)) = symbols.get(sym) else {
                return Err(bad(format!(
                    "relocation {k} in {sname} names symbol {sym}, past the {} symbols",
                    symbols.len()
                )));
            };
            let defined_in = (sym_section != 0 && sym_section < SHN_LORESERVE)
                .then(|| &sections[sym_section as usize]);
            if target.flags & SHF_EXECINSTR != 0 {
                // What loaders resolve in code: a call or ld_imm64 of a function or a section.
                if !CODE_RELOCATIONS.contains(&(r_info as u32)) {
                    return Err(bad(format!(
                        "relocation {k} in {sname} has type {}, not one applied to code (1 or 10)",
                        r_info as u32
                    )));
                }
                let into_code = defined_in.is_some_and(|d| d.flags & SHF_EXECINSTR != 0);
                if (sym_type == STT_FUNC && defined_in.is_none())
                    || (into_code && sym_type != STT_FUNC && sym_type != STT_SECTION)
                {
                    return Err(bad(format!(
                        "relocation {k} in {sname} names symbol {sym} (type {sym_type}), which is \
                         not a defined function or section"
                    )));
                }
            }
            // The bytes a relocation patches: an instruction's in code (8; the loaders read an
            // ld_imm64's second slot themselves), 8 for R_BPF_64_ABS64, 4 for R_BPF_64_ABS32
            // and R_BPF_64_NODYLD32 (debug sections written by clang), at least one otherwise.
            let width = match r_info as u32 {
                1 | 2 | 10 => 8,
                3 | 4 => 4,
                _ => 1,
            };
            if span(offset, width, target.size as usize).is_none() {
                return Err(bad(format!(
                    "relocation {k} in {sname} patches byte {offset}, past the end of section {} \
                     ({} bytes)",
                    display(target.name),
                    target.size
                )));
            }
        }
    }
    Ok(())
}

/// Checks `.BTF` and returns its string table.
fn check_btf(btf: &[u8]) -> Result<&[u8], Malformed> {
    let field = |o| u32_at(btf, o).ok_or_else(|| bad(".BTF is shorter than its header"));
    if u16_at(btf, 0) != Some(BTF_MAGIC) {
        return Err(bad(".BTF does not start with the BTF magic 0xeb9f"));
    }
    let hdr_len = field(4)? as u64;
    let (type_off, type_len, str_off, str_len) = (field(8)?, field(12)?, field(16)?, field(20)?);
    if hdr_len < 24 {
        return Err(bad(format!(".BTF header length {hdr_len} is below 24")));
    }
    let types = span(
        hdr_len + u64::from(type_off),
        u64::from(type_len),
        btf.len(),
    )
    .ok_or_else(|| bad(".BTF type section runs past the end of .BTF"))?;
    let strs = span(hdr_len + u64::from(str_off), u64::from(str_len), btf.len())
        .ok_or_else(|| bad(".BTF string section runs past the end of .BTF"))?;
    let strings = &btf[strs];
    let types = &btf[types];
    // The kernel quotes names in its BTF log, which loaders read as UTF-8.
    if let Err(e) = std::str::from_utf8(strings) {
        return Err(bad(format!(
            ".BTF string section is not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        )));
    }
    // First pass: type boundaries and names; second: references to type ids.
    let mut refs: Vec<(usize, u32)> = Vec::new();
    let mut off = 0;
    let mut id = 0usize;
    while off < types.len() {
        id += 1;
        let at = |o: usize| {
            u32_at(types, off + o).ok_or_else(|| bad(format!(".BTF type {id} is cut short")))
        };
        let name_off = at(0)?;
        let info = at(4)?;
        let kind = (info >> 24) & 0x1f;
        let vlen = (info & 0xffff) as usize;
        if c_str(strings, name_off as usize).is_none() {
            return Err(bad(format!(
                ".BTF type {id}'s name (offset {name_off}) is outside the string section"
            )));
        }
        // Size of the kind-specific data after the 12-byte common header, and where type ids sit.
        let (extra, member_size, member_type_at): (usize, usize, Option<usize>) = match kind {
            1 => (4, 0, None),                        // INT
            3 => (12, 0, None),                       // ARRAY
            4 | 5 => (0, 12, Some(4)),                // STRUCT, UNION
            6 => (0, 8, None),                        // ENUM
            7 | 16 | 18 => (0, 0, None),              // FWD, FLOAT, TYPE_TAG
            2 | 8 | 9 | 10 | 11 | 12 => (0, 0, None), // PTR, TYPEDEF, modifiers, FUNC
            13 => (0, 8, Some(4)),                    // FUNC_PROTO
            14 | 17 => (4, 0, None),                  // VAR, DECL_TAG
            15 => (0, 12, Some(0)),                   // DATASEC
            19 => (0, 12, None),                      // ENUM64
            other => {
                return Err(bad(format!(".BTF type {id} has unknown kind {other}")));
            }
        };
        if matches!(kind, 2 | 8 | 9 | 10 | 11 | 12 | 13 | 14 | 17 | 18) {
            refs.push((id, at(8)?));
        }
        if kind == 3 {
            refs.push((id, at(12)?));
            refs.push((id, at(16)?));
        }
        let len = 12 + extra + vlen * member_size;
        if off + len > types.len() {
            return Err(bad(format!(
                ".BTF type {id} ({len} bytes at {off}) runs past the type section"
            )));
        }
        // Members of structs, unions, enums and function prototypes are
        // named by their first u32; Aya reads those names too.
        if matches!(kind, 4 | 5 | 6 | 13 | 19) {
            for m in 0..vlen {
                let base = off + 12 + extra + m * member_size;
                let member_name = u32_at(types, base).unwrap_or(u32::MAX);
                if c_str(strings, member_name as usize).is_none() {
                    return Err(bad(format!(
                        ".BTF type {id}: member {m}'s name (offset {member_name}) is outside the \
                         string section"
                    )));
                }
            }
        }
        if let Some(t) = member_type_at {
            for m in 0..vlen {
                let base = off + 12 + extra + m * member_size;
                refs.push((id, u32_at(types, base + t).unwrap_or(u32::MAX)));
                // Aya turns a DATASEC (e.g. `.maps`) into a struct, multiplying each variable's
                // byte offset by 8 as a u32.
                if kind == 15 && u32_at(types, base + 4).unwrap_or(u32::MAX) > u32::MAX / 8 {
                    return Err(bad(format!(
                        ".BTF type {id}: variable {m}'s offset is beyond any section"
                    )));
                }
            }
        }
        off += len;
    }
    for (from, to) in refs {
        if to as usize > id {
            return Err(bad(format!(
                ".BTF type {from} refers to type {to}, past the {id} types"
            )));
        }
    }
    Ok(strings)
}

/// Checks `.BTF.ext`; returns whether its line info marks the object as written by lagic.
fn check_btf_ext(ext: &[u8], strings: &[u8], sections: &[Section<'_>]) -> Result<bool, Malformed> {
    let field = |o| u32_at(ext, o).ok_or_else(|| bad(".BTF.ext is shorter than its header"));
    if u16_at(ext, 0) != Some(BTF_MAGIC) {
        return Err(bad(".BTF.ext does not start with the BTF magic 0xeb9f"));
    }
    let hdr_len = u64::from(field(4)?);
    if hdr_len < 24 || hdr_len > ext.len() as u64 {
        return Err(bad(format!(
            ".BTF.ext header length {hdr_len} is out of range"
        )));
    }
    let mut blocks = vec![
        ("func_info", field(8)?, field(12)?, 8u32),
        ("line_info", field(16)?, field(20)?, 16),
    ];
    if hdr_len >= 32 {
        blocks.push(("core_relo", field(24)?, field(28)?, 16));
    }
    let mut lagic_lines = 0usize;
    let mut other_lines = 0usize;
    for (what, off, len, min_rec) in blocks {
        if len == 0 {
            continue;
        }
        let r = span(hdr_len + u64::from(off), u64::from(len), ext.len())
            .ok_or_else(|| bad(format!(".BTF.ext {what} runs past the end of .BTF.ext")))?;
        let block = &ext[r];
        let rec_size =
            u32_at(block, 0).ok_or_else(|| bad(format!(".BTF.ext {what} has no record size")))?;
        if rec_size < min_rec || rec_size > 1024 || rec_size % 4 != 0 {
            return Err(bad(format!(
                ".BTF.ext {what} record size {rec_size} is out of range"
            )));
        }
        let mut pos = 4usize;
        while pos < block.len() {
            let (sec_name, count) = match (u32_at(block, pos), u32_at(block, pos + 4)) {
                (Some(a), Some(b)) => (a, b),
                _ => return Err(bad(format!(".BTF.ext {what} ends inside a section header"))),
            };
            let name = c_str(strings, sec_name as usize).ok_or_else(|| {
                bad(format!(
                    ".BTF.ext {what} names a section at string offset {sec_name}, outside .BTF's \
                     strings"
                ))
            })?;
            if count == 0 {
                return Err(bad(format!(
                    ".BTF.ext {what} for section {} has no records",
                    display(name)
                )));
            }
            pos += 8;
            let bytes = u64::from(count) * u64::from(rec_size);
            let recs = span(pos as u64, bytes, block.len()).ok_or_else(|| {
                bad(format!(
                    ".BTF.ext {what} for section {}: {count} records of {rec_size} bytes run past \
                     the end of the block",
                    display(name)
                ))
            })?;
            let section = sections.iter().find(|s| s.name == name);
            for rec in block[recs.clone()].chunks_exact(rec_size as usize) {
                let insn_off = u32_at(rec, 0).unwrap_or(0);
                if let Some(s) = section {
                    if u64::from(insn_off) >= s.size.max(1) {
                        return Err(bad(format!(
                            ".BTF.ext {what} record at instruction byte {insn_off} lies past \
                             section {} ({} bytes)",
                            display(name),
                            s.size
                        )));
                    }
                }
                if what == "line_info" {
                    let file = u32_at(rec, 4).unwrap_or(u32::MAX) as usize;
                    let line = u32_at(rec, 8).unwrap_or(u32::MAX) as usize;
                    let file = c_str(strings, file).ok_or_else(|| {
                        bad(".BTF.ext line_info names a file outside .BTF's strings")
                    })?;
                    if c_str(strings, line).is_none() {
                        return Err(bad(
                            ".BTF.ext line_info names a line outside .BTF's strings",
                        ));
                    }
                    if file == LAGIC_LINE_INFO_FILE && name == PROG_SECTION {
                        lagic_lines += 1;
                    } else if file != LAGIC_LINE_INFO_FILE {
                        other_lines += 1;
                    }
                }
            }
            pos = recs.end;
        }
    }
    Ok(lagic_lines > 0 && other_lines == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_foreign_headers_are_named() {
        assert!(check(b"").unwrap_err().0.contains("not an ELF"));
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 1;
        assert!(check(&elf).unwrap_err().0.contains("64-bit"));
        elf[4] = 2;
        elf[5] = 1;
        elf[16] = 2; // ET_EXEC
        assert!(check(&elf).unwrap_err().0.contains("relocatable"));
        elf[16] = 1;
        elf[18] = 62; // x86-64
        assert!(check(&elf).unwrap_err().0.contains("not eBPF"));
    }

    #[test]
    fn spans_refuse_overflow() {
        assert_eq!(span(u64::MAX, 2, 10), None);
        assert_eq!(span(8, 2, 10), Some(8..10));
        assert_eq!(span(8, 3, 10), None);
    }
}
