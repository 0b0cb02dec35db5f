//! BTF (BPF Type Format) encoding and decoding for the few kinds lagic needs.
//!
//! The kernel wants BTF `func_info` for every function of a program that
//! calls `bpf_loop` (without it: "missing btf func_info"), so every object
//! lagic writes carries a `.BTF` section (types and strings) and a
//! `.BTF.ext` section (per-ELF-section function and line records).
//!
//! The kinds encoded: `INT`, `PTR`, `FUNC_PROTO` and `FUNC` for functions;
//! `ARRAY`, `STRUCT`, `VAR` and `DATASEC` for BTF-defined maps (libbpf's
//! convention: each map is a global `VAR` of an anonymous struct in the
//! `DATASEC` `.maps`, whose members are pointers: `type` and `max_entries`
//! point to an array whose element count is the value (`int (*type)[N]`),
//! `key` and `value` point to the key and value types).
//! [`BtfBuilder`] assigns type ids in insertion order starting at 1 (id 0
//! is `void`); the string table starts with the empty string at offset 0
//! and deduplicates. [`BtfExtBuilder`] writes a version-1 header of 32
//! bytes with `func_info` (record size 8) and `line_info` (record size 16)
//! subsections and an empty CO-RE relocation subsection. Instruction
//! offsets in `.BTF.ext` records are byte offsets within the ELF section,
//! as clang writes them; loaders divide by 8.
//!
//! The reader that checks what the builders write lives apart from them,
//! in the crate's tests (`tests/btf_reader`): nothing in lagic reads BTF.

use std::collections::HashMap;

/// `.BTF` and `.BTF.ext` magic number.
pub const BTF_MAGIC: u16 = 0xeb9f;
/// The BTF format version written.
pub const BTF_VERSION: u8 = 1;
/// Size of the `.BTF` header (`struct btf_header`).
pub const BTF_HEADER_LEN: u32 = 24;
/// Size of the `.BTF.ext` header with CO-RE relocation fields.
pub const BTF_EXT_HEADER_LEN: u32 = 32;

/// Kind of an integer type.
pub const BTF_KIND_INT: u32 = 1;
/// Kind of a pointer type.
pub const BTF_KIND_PTR: u32 = 2;
/// Kind of an array type.
pub const BTF_KIND_ARRAY: u32 = 3;
/// Kind of a struct type.
pub const BTF_KIND_STRUCT: u32 = 4;
/// Kind of a function (name, prototype, linkage).
pub const BTF_KIND_FUNC: u32 = 12;
/// Kind of a variable.
pub const BTF_KIND_VAR: u32 = 14;
/// Kind of a data section (the variables it holds, at their offsets).
pub const BTF_KIND_DATASEC: u32 = 15;
/// `BTF_VAR_GLOBAL_ALLOCATED`: the linkage of a map variable.
pub const BTF_VAR_GLOBAL_ALLOCATED: u32 = 1;
/// Kind of a function prototype.
pub const BTF_KIND_FUNC_PROTO: u32 = 13;

/// `BTF_INT_SIGNED` in the INT encoding byte.
pub const BTF_INT_SIGNED: u8 = 1;

/// Size of `struct bpf_func_info`.
pub const FUNC_INFO_REC_SIZE: u32 = 8;
/// Size of `struct bpf_line_info`.
pub const LINE_INFO_REC_SIZE: u32 = 16;

/// Linkage of a `FUNC` (stored in its `vlen` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FuncLinkage {
    /// `BTF_FUNC_STATIC`: local to the object (callbacks).
    Static = 0,
    /// `BTF_FUNC_GLOBAL`: visible, verified on its own (the entry).
    Global = 1,
}

/// A type id; 0 is `void`.
pub type TypeId = u32;

/// One BTF type of a kind lagic writes. Names are string-table offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BtfType {
    /// `BTF_KIND_INT`.
    Int {
        /// Name.
        name_off: u32,
        /// Size in bytes.
        size: u32,
        /// `BTF_INT_SIGNED` or 0.
        encoding: u8,
        /// Width in bits.
        bits: u8,
    },
    /// `BTF_KIND_PTR`.
    Ptr {
        /// The pointee.
        target: TypeId,
    },
    /// `BTF_KIND_FUNC_PROTO`.
    FuncProto {
        /// Return type.
        ret: TypeId,
        /// (name offset, type) per parameter.
        params: Vec<(u32, TypeId)>,
    },
    /// `BTF_KIND_ARRAY`.
    Array {
        /// Element type.
        elem: TypeId,
        /// Index type.
        index: TypeId,
        /// Number of elements.
        nelems: u32,
    },
    /// `BTF_KIND_STRUCT`: members as (name offset, type, bit offset).
    Struct {
        /// Name (0: anonymous).
        name_off: u32,
        /// Size in bytes.
        size: u32,
        /// Members.
        members: Vec<(u32, TypeId, u32)>,
    },
    /// `BTF_KIND_VAR`.
    Var {
        /// Name.
        name_off: u32,
        /// Its type.
        ty: TypeId,
        /// Linkage (`BTF_VAR_GLOBAL_ALLOCATED` for maps).
        linkage: u32,
    },
    /// `BTF_KIND_DATASEC`: variables as (VAR type, offset, size).
    Datasec {
        /// Name of the ELF section.
        name_off: u32,
        /// Size of the section.
        size: u32,
        /// Variables, by offset.
        vars: Vec<(TypeId, u32, u32)>,
    },
    /// `BTF_KIND_FUNC`.
    Func {
        /// Name.
        name_off: u32,
        /// Its `FUNC_PROTO`.
        proto: TypeId,
        /// Static or global.
        linkage: FuncLinkage,
    },
}

fn info(kind: u32, vlen: u32) -> u32 {
    (kind << 24) | (vlen & 0xffff)
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// A deduplicating BTF string table; offset 0 is the empty string.
#[derive(Debug, Clone)]
pub struct StringTable {
    bytes: Vec<u8>,
    index: HashMap<String, u32>,
}

impl Default for StringTable {
    fn default() -> Self {
        let mut index = HashMap::new();
        index.insert(String::new(), 0);
        StringTable {
            bytes: vec![0],
            index,
        }
    }
}

impl StringTable {
    /// Offset of `s`, adding it if new. `s` must not contain NUL (callers
    /// validate names before they get here; a NUL would only truncate).
    pub fn add(&mut self, s: &str) -> u32 {
        if let Some(&off) = self.index.get(s) {
            return off;
        }
        let off = self.bytes.len() as u32;
        self.bytes.extend_from_slice(s.as_bytes());
        self.bytes.push(0);
        self.index.insert(s.to_owned(), off);
        off
    }

    /// The table's bytes, as written into the section.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Builds a `.BTF` section.
#[derive(Debug, Clone, Default)]
pub struct BtfBuilder {
    /// The string table names point into.
    pub strings: StringTable,
    types: Vec<BtfType>,
}

impl BtfBuilder {
    /// An empty section (only `void`, id 0).
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, ty: BtfType) -> TypeId {
        self.types.push(ty);
        self.types.len() as TypeId
    }

    /// A signed or unsigned integer of `size` bytes.
    pub fn add_int(&mut self, name: &str, size: u32, signed: bool) -> TypeId {
        let name_off = self.strings.add(name);
        self.push(BtfType::Int {
            name_off,
            size,
            encoding: if signed { BTF_INT_SIGNED } else { 0 },
            bits: (size * 8) as u8,
        })
    }

    /// A pointer to `target`.
    pub fn add_ptr(&mut self, target: TypeId) -> TypeId {
        self.push(BtfType::Ptr { target })
    }

    /// An array of `nelems` elements of `elem`, indexed by `index`.
    pub fn add_array(&mut self, elem: TypeId, index: TypeId, nelems: u32) -> TypeId {
        self.push(BtfType::Array {
            elem,
            index,
            nelems,
        })
    }

    /// A struct of `size` bytes; members as (name, type, byte offset).
    pub fn add_struct(&mut self, name: &str, size: u32, members: &[(&str, TypeId, u32)]) -> TypeId {
        let name_off = self.strings.add(name);
        let members = members
            .iter()
            .map(|(n, ty, off)| (self.strings.add(n), *ty, off * 8))
            .collect();
        self.push(BtfType::Struct {
            name_off,
            size,
            members,
        })
    }

    /// A global variable `name` of type `ty`.
    pub fn add_var(&mut self, name: &str, ty: TypeId) -> TypeId {
        let name_off = self.strings.add(name);
        self.push(BtfType::Var {
            name_off,
            ty,
            linkage: BTF_VAR_GLOBAL_ALLOCATED,
        })
    }

    /// A data section `name` of `size` bytes holding `vars` as
    /// (VAR type, offset, size).
    pub fn add_datasec(&mut self, name: &str, size: u32, vars: &[(TypeId, u32, u32)]) -> TypeId {
        let name_off = self.strings.add(name);
        self.push(BtfType::Datasec {
            name_off,
            size,
            vars: vars.to_vec(),
        })
    }

    /// A prototype; every parameter is named (the kernel refuses unnamed
    /// parameters of a FUNC's prototype with "Invalid arg#N").
    pub fn add_func_proto(&mut self, ret: TypeId, params: &[(&str, TypeId)]) -> TypeId {
        let params = params
            .iter()
            .map(|(name, ty)| (self.strings.add(name), *ty))
            .collect();
        self.push(BtfType::FuncProto { ret, params })
    }

    /// A function `name` of prototype `proto`.
    pub fn add_func(&mut self, name: &str, proto: TypeId, linkage: FuncLinkage) -> TypeId {
        let name_off = self.strings.add(name);
        self.push(BtfType::Func {
            name_off,
            proto,
            linkage,
        })
    }

    /// Encodes header, type section and string section.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut types = Vec::new();
        for ty in &self.types {
            match ty {
                BtfType::Int {
                    name_off,
                    size,
                    encoding,
                    bits,
                } => {
                    put_u32(&mut types, *name_off);
                    put_u32(&mut types, info(BTF_KIND_INT, 0));
                    put_u32(&mut types, *size);
                    put_u32(&mut types, (u32::from(*encoding) << 24) | u32::from(*bits));
                }
                BtfType::Ptr { target } => {
                    put_u32(&mut types, 0);
                    put_u32(&mut types, info(BTF_KIND_PTR, 0));
                    put_u32(&mut types, *target);
                }
                BtfType::FuncProto { ret, params } => {
                    put_u32(&mut types, 0);
                    put_u32(&mut types, info(BTF_KIND_FUNC_PROTO, params.len() as u32));
                    put_u32(&mut types, *ret);
                    for (name_off, ty) in params {
                        put_u32(&mut types, *name_off);
                        put_u32(&mut types, *ty);
                    }
                }
                BtfType::Array {
                    elem,
                    index,
                    nelems,
                } => {
                    put_u32(&mut types, 0);
                    put_u32(&mut types, info(BTF_KIND_ARRAY, 0));
                    put_u32(&mut types, 0);
                    put_u32(&mut types, *elem);
                    put_u32(&mut types, *index);
                    put_u32(&mut types, *nelems);
                }
                BtfType::Struct {
                    name_off,
                    size,
                    members,
                } => {
                    put_u32(&mut types, *name_off);
                    put_u32(&mut types, info(BTF_KIND_STRUCT, members.len() as u32));
                    put_u32(&mut types, *size);
                    for (name, ty, bit_off) in members {
                        put_u32(&mut types, *name);
                        put_u32(&mut types, *ty);
                        put_u32(&mut types, *bit_off);
                    }
                }
                BtfType::Var {
                    name_off,
                    ty,
                    linkage,
                } => {
                    put_u32(&mut types, *name_off);
                    put_u32(&mut types, info(BTF_KIND_VAR, 0));
                    put_u32(&mut types, *ty);
                    put_u32(&mut types, *linkage);
                }
                BtfType::Datasec {
                    name_off,
                    size,
                    vars,
                } => {
                    put_u32(&mut types, *name_off);
                    put_u32(&mut types, info(BTF_KIND_DATASEC, vars.len() as u32));
                    put_u32(&mut types, *size);
                    for (ty, off, len) in vars {
                        put_u32(&mut types, *ty);
                        put_u32(&mut types, *off);
                        put_u32(&mut types, *len);
                    }
                }
                BtfType::Func {
                    name_off,
                    proto,
                    linkage,
                } => {
                    put_u32(&mut types, *name_off);
                    put_u32(&mut types, info(BTF_KIND_FUNC, *linkage as u32));
                    put_u32(&mut types, *proto);
                }
            }
        }
        let strings = self.strings.bytes();
        let mut out = Vec::with_capacity(24 + types.len() + strings.len());
        out.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        out.push(BTF_VERSION);
        out.push(0); // flags
        put_u32(&mut out, BTF_HEADER_LEN);
        put_u32(&mut out, 0); // type_off
        put_u32(&mut out, types.len() as u32);
        put_u32(&mut out, types.len() as u32); // str_off
        put_u32(&mut out, strings.len() as u32);
        out.extend_from_slice(&types);
        out.extend_from_slice(strings);
        out
    }
}

/// One `bpf_line_info` record. `line_col` is `line << 10 | column`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineInfo {
    /// Byte offset of the instruction in its ELF section.
    pub insn_byte_off: u32,
    /// Source file name (string offset).
    pub file_name_off: u32,
    /// Source line text (string offset).
    pub line_off: u32,
    /// `line << 10 | column`.
    pub line_col: u32,
}

/// Records of one ELF section in `.BTF.ext`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SectionInfo {
    /// Name of the ELF section (string offset).
    pub sec_name_off: u32,
    /// (instruction byte offset, FUNC type id).
    pub funcs: Vec<(u32, TypeId)>,
    /// Line records.
    pub lines: Vec<LineInfo>,
}

/// Builds a `.BTF.ext` section. Section order is insertion order.
#[derive(Debug, Clone, Default)]
pub struct BtfExtBuilder {
    sections: Vec<SectionInfo>,
}

impl BtfExtBuilder {
    /// An empty section.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or returns) the record block for the ELF section whose name is
    /// at `sec_name_off` in the `.BTF` string table.
    pub fn section(&mut self, sec_name_off: u32) -> &mut SectionInfo {
        let pos = match self
            .sections
            .iter()
            .position(|s| s.sec_name_off == sec_name_off)
        {
            Some(pos) => pos,
            None => {
                self.sections.push(SectionInfo {
                    sec_name_off,
                    ..SectionInfo::default()
                });
                self.sections.len() - 1
            }
        };
        &mut self.sections[pos]
    }

    /// Encodes the section. A subsection with no records at all is written
    /// with length 0 (no record-size word): libbpf rejects a subsection
    /// that has a record size but no records.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut func_info = Vec::new();
        if self.sections.iter().any(|s| !s.funcs.is_empty()) {
            put_u32(&mut func_info, FUNC_INFO_REC_SIZE);
            for s in self.sections.iter().filter(|s| !s.funcs.is_empty()) {
                put_u32(&mut func_info, s.sec_name_off);
                put_u32(&mut func_info, s.funcs.len() as u32);
                for (off, ty) in &s.funcs {
                    put_u32(&mut func_info, *off);
                    put_u32(&mut func_info, *ty);
                }
            }
        }
        let mut line_info = Vec::new();
        if self.sections.iter().any(|s| !s.lines.is_empty()) {
            put_u32(&mut line_info, LINE_INFO_REC_SIZE);
            for s in self.sections.iter().filter(|s| !s.lines.is_empty()) {
                put_u32(&mut line_info, s.sec_name_off);
                put_u32(&mut line_info, s.lines.len() as u32);
                for l in &s.lines {
                    put_u32(&mut line_info, l.insn_byte_off);
                    put_u32(&mut line_info, l.file_name_off);
                    put_u32(&mut line_info, l.line_off);
                    put_u32(&mut line_info, l.line_col);
                }
            }
        }
        let mut out = Vec::new();
        out.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        out.push(BTF_VERSION);
        out.push(0); // flags
        put_u32(&mut out, BTF_EXT_HEADER_LEN);
        let func_len = func_info.len() as u32;
        let line_len = line_info.len() as u32;
        put_u32(&mut out, 0); // func_info_off
        put_u32(&mut out, func_len);
        put_u32(&mut out, func_len); // line_info_off
        put_u32(&mut out, line_len);
        put_u32(&mut out, func_len + line_len); // core_relo_off
        put_u32(&mut out, 0); // core_relo_len
        out.extend_from_slice(&func_info);
        out.extend_from_slice(&line_info);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_deduplicate() {
        let mut s = StringTable::default();
        assert_eq!(s.add(""), 0);
        let a = s.add("ctx");
        assert_eq!(s.add("ctx"), a);
        assert_eq!(s.bytes(), b"\0ctx\0");
    }
}
