//! BTF (BPF Type Format) encoding and decoding for the few kinds lagic needs.
//!
//! The kernel wants BTF `func_info` for every function of a program that
//! calls `bpf_loop` (without it: "missing btf func_info"), so every object
//! lagic writes carries a `.BTF` section (types and strings) and a
//! `.BTF.ext` section (per-ELF-section function and line records).
//!
//! Only four kinds are encoded: `INT`, `PTR`, `FUNC_PROTO` and `FUNC`.
//! [`BtfBuilder`] assigns type ids in insertion order starting at 1 (id 0
//! is `void`); the string table starts with the empty string at offset 0
//! and deduplicates. [`BtfExtBuilder`] writes a version-1 header of 32
//! bytes with `func_info` (record size 8) and `line_info` (record size 16)
//! subsections and an empty CO-RE relocation subsection. Instruction
//! offsets in `.BTF.ext` records are byte offsets within the ELF section,
//! as clang writes them; loaders divide by 8.
//!
//! [`Btf::parse`] and [`BtfExt::parse`] read back what the builders write
//! (and reject other kinds); writer and reader test each other.

use std::collections::HashMap;

use thiserror::Error;

/// `.BTF` and `.BTF.ext` magic number.
pub const BTF_MAGIC: u16 = 0xeb9f;
pub const BTF_VERSION: u8 = 1;
/// Size of the `.BTF` header (`struct btf_header`).
pub const BTF_HEADER_LEN: u32 = 24;
/// Size of the `.BTF.ext` header with CO-RE relocation fields.
pub const BTF_EXT_HEADER_LEN: u32 = 32;

pub const BTF_KIND_INT: u32 = 1;
pub const BTF_KIND_PTR: u32 = 2;
pub const BTF_KIND_FUNC: u32 = 12;
pub const BTF_KIND_FUNC_PROTO: u32 = 13;

/// `BTF_INT_SIGNED` in the INT encoding byte.
pub const BTF_INT_SIGNED: u8 = 1;

/// Size of `struct bpf_func_info` and `struct bpf_line_info`.
pub const FUNC_INFO_REC_SIZE: u32 = 8;
pub const LINE_INFO_REC_SIZE: u32 = 16;

/// Errors from decoding BTF.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BtfError {
    #[error("BTF data truncated at byte {0}")]
    Truncated(usize),
    #[error("bad BTF magic {0:#06x}")]
    BadMagic(u16),
    #[error("unsupported BTF version {0}")]
    BadVersion(u8),
    #[error("BTF header length {0} unsupported")]
    BadHeaderLen(u32),
    #[error("BTF kind {kind} of type {id} is not one lagic writes")]
    UnsupportedKind { id: u32, kind: u32 },
    #[error("BTF string offset {0} out of range or unterminated")]
    BadString(u32),
    #[error("BTF.ext record size {got} for {what}, expected {want}")]
    BadRecordSize {
        what: &'static str,
        got: u32,
        want: u32,
    },
}

/// Linkage of a `FUNC` (stored in its `vlen` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FuncLinkage {
    Static = 0,
    Global = 1,
}

/// A type id; 0 is `void`.
pub type TypeId = u32;

/// One BTF type of a kind lagic writes. Names are string-table offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BtfType {
    Int {
        name_off: u32,
        size: u32,
        encoding: u8,
        bits: u8,
    },
    Ptr {
        target: TypeId,
    },
    FuncProto {
        ret: TypeId,
        /// (name offset, type) per parameter.
        params: Vec<(u32, TypeId)>,
    },
    Func {
        name_off: u32,
        proto: TypeId,
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

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Builds a `.BTF` section.
#[derive(Debug, Clone, Default)]
pub struct BtfBuilder {
    pub strings: StringTable,
    types: Vec<BtfType>,
}

impl BtfBuilder {
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

    pub fn add_ptr(&mut self, target: TypeId) -> TypeId {
        self.push(BtfType::Ptr { target })
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
    pub insn_byte_off: u32,
    pub file_name_off: u32,
    pub line_off: u32,
    pub line_col: u32,
}

/// Records of one ELF section in `.BTF.ext`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SectionInfo {
    pub sec_name_off: u32,
    /// (instruction byte offset, FUNC type id).
    pub funcs: Vec<(u32, TypeId)>,
    pub lines: Vec<LineInfo>,
}

/// Builds a `.BTF.ext` section. Section order is insertion order.
#[derive(Debug, Clone, Default)]
pub struct BtfExtBuilder {
    sections: Vec<SectionInfo>,
}

impl BtfExtBuilder {
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

// ---- decoding -----------------------------------------------------------

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u32(&mut self) -> Result<u32, BtfError> {
        let b = self
            .data
            .get(self.pos..self.pos + 4)
            .ok_or(BtfError::Truncated(self.pos))?;
        self.pos += 4;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

fn read_u32_at(data: &[u8], pos: usize) -> Result<u32, BtfError> {
    Reader { data, pos }.u32()
}

fn check_magic(data: &[u8]) -> Result<(), BtfError> {
    if data.len() < 8 {
        return Err(BtfError::Truncated(data.len()));
    }
    let magic = u16::from_le_bytes([data[0], data[1]]);
    if magic != BTF_MAGIC {
        return Err(BtfError::BadMagic(magic));
    }
    if data[2] != BTF_VERSION {
        return Err(BtfError::BadVersion(data[2]));
    }
    Ok(())
}

/// A decoded `.BTF` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Btf {
    /// Types by id - 1.
    pub types: Vec<BtfType>,
    pub strings: Vec<u8>,
}

impl Btf {
    pub fn parse(data: &[u8]) -> Result<Btf, BtfError> {
        check_magic(data)?;
        let hdr_len = read_u32_at(data, 4)?;
        if hdr_len < BTF_HEADER_LEN {
            return Err(BtfError::BadHeaderLen(hdr_len));
        }
        let base = hdr_len as usize;
        let type_off = read_u32_at(data, 8)? as usize;
        let type_len = read_u32_at(data, 12)? as usize;
        let str_off = read_u32_at(data, 16)? as usize;
        let str_len = read_u32_at(data, 20)? as usize;
        let strings = data
            .get(base + str_off..base + str_off + str_len)
            .ok_or(BtfError::Truncated(base + str_off + str_len))?
            .to_vec();
        let type_end = base + type_off + type_len;
        let type_data = data.get(..type_end).ok_or(BtfError::Truncated(type_end))?;
        let mut r = Reader {
            data: type_data,
            pos: base + type_off,
        };
        let mut types = Vec::new();
        while r.pos < type_end {
            let id = types.len() as u32 + 1;
            let name_off = r.u32()?;
            let info = r.u32()?;
            let size_or_type = r.u32()?;
            let kind = (info >> 24) & 0x1f;
            let vlen = info & 0xffff;
            types.push(match kind {
                BTF_KIND_INT => {
                    let enc = r.u32()?;
                    BtfType::Int {
                        name_off,
                        size: size_or_type,
                        encoding: (enc >> 24) as u8,
                        bits: (enc & 0xff) as u8,
                    }
                }
                BTF_KIND_PTR => BtfType::Ptr {
                    target: size_or_type,
                },
                BTF_KIND_FUNC_PROTO => {
                    let mut params = Vec::new();
                    for _ in 0..vlen {
                        params.push((r.u32()?, r.u32()?));
                    }
                    BtfType::FuncProto {
                        ret: size_or_type,
                        params,
                    }
                }
                BTF_KIND_FUNC => BtfType::Func {
                    name_off,
                    proto: size_or_type,
                    linkage: match vlen {
                        0 => FuncLinkage::Static,
                        1 => FuncLinkage::Global,
                        _ => return Err(BtfError::UnsupportedKind { id, kind }),
                    },
                },
                _ => return Err(BtfError::UnsupportedKind { id, kind }),
            });
        }
        Ok(Btf { types, strings })
    }

    /// The string at `off` in the string table.
    pub fn string(&self, off: u32) -> Result<&str, BtfError> {
        let rest = self
            .strings
            .get(off as usize..)
            .ok_or(BtfError::BadString(off))?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(BtfError::BadString(off))?;
        std::str::from_utf8(&rest[..end]).map_err(|_| BtfError::BadString(off))
    }

    /// The type with id `id` (1-based).
    pub fn type_by_id(&self, id: TypeId) -> Option<&BtfType> {
        id.checked_sub(1).and_then(|i| self.types.get(i as usize))
    }
}

/// A decoded `.BTF.ext` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BtfExt {
    pub sections: Vec<SectionInfo>,
}

impl BtfExt {
    pub fn parse(data: &[u8]) -> Result<BtfExt, BtfError> {
        check_magic(data)?;
        let hdr_len = read_u32_at(data, 4)?;
        if hdr_len < 24 {
            return Err(BtfError::BadHeaderLen(hdr_len));
        }
        let base = hdr_len as usize;
        let mut sections: Vec<SectionInfo> = Vec::new();
        let find = |sections: &mut Vec<SectionInfo>, off: u32| -> usize {
            match sections.iter().position(|s| s.sec_name_off == off) {
                Some(p) => p,
                None => {
                    sections.push(SectionInfo {
                        sec_name_off: off,
                        ..SectionInfo::default()
                    });
                    sections.len() - 1
                }
            }
        };
        for (what, hdr_pos, want) in [
            ("func_info", 8usize, FUNC_INFO_REC_SIZE),
            ("line_info", 16usize, LINE_INFO_REC_SIZE),
        ] {
            let off = read_u32_at(data, hdr_pos)? as usize;
            let len = read_u32_at(data, hdr_pos + 4)? as usize;
            if len == 0 {
                continue;
            }
            let end = base + off + len;
            let sub = data.get(..end).ok_or(BtfError::Truncated(end))?;
            let mut r = Reader {
                data: sub,
                pos: base + off,
            };
            let rec_size = r.u32()?;
            if rec_size != want {
                return Err(BtfError::BadRecordSize {
                    what,
                    got: rec_size,
                    want,
                });
            }
            while r.pos < end {
                let sec = r.u32()?;
                let n = r.u32()?;
                let idx = find(&mut sections, sec);
                for _ in 0..n {
                    if want == FUNC_INFO_REC_SIZE {
                        let rec = (r.u32()?, r.u32()?);
                        sections[idx].funcs.push(rec);
                    } else {
                        let rec = LineInfo {
                            insn_byte_off: r.u32()?,
                            file_name_off: r.u32()?,
                            line_off: r.u32()?,
                            line_col: r.u32()?,
                        };
                        sections[idx].lines.push(rec);
                    }
                }
            }
        }
        Ok(BtfExt { sections })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn btf_round_trips() {
        let mut b = BtfBuilder::new();
        let int = b.add_int("int", 4, true);
        let ptr = b.add_ptr(0);
        let proto = b.add_func_proto(int, &[("ctx", ptr)]);
        let func = b.add_func("main", proto, FuncLinkage::Global);
        let bytes = b.to_bytes();
        assert_eq!(&bytes[..4], &[0x9f, 0xeb, 1, 0]);
        let btf = Btf::parse(&bytes).unwrap();
        assert_eq!(btf.types.len(), 4);
        assert_eq!(
            btf.type_by_id(int),
            Some(&BtfType::Int {
                name_off: 1,
                size: 4,
                encoding: BTF_INT_SIGNED,
                bits: 32
            })
        );
        match btf.type_by_id(func).unwrap() {
            BtfType::Func {
                name_off,
                proto: p,
                linkage,
            } => {
                assert_eq!(btf.string(*name_off).unwrap(), "main");
                assert_eq!(*p, proto);
                assert_eq!(*linkage, FuncLinkage::Global);
            }
            other => panic!("unexpected {other:?}"),
        }
        match btf.type_by_id(proto).unwrap() {
            BtfType::FuncProto { ret, params } => {
                assert_eq!(*ret, int);
                assert_eq!(btf.string(params[0].0).unwrap(), "ctx");
                assert_eq!(params[0].1, ptr);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn strings_deduplicate() {
        let mut s = StringTable::default();
        assert_eq!(s.add(""), 0);
        let a = s.add("ctx");
        assert_eq!(s.add("ctx"), a);
        assert_eq!(s.bytes(), b"\0ctx\0");
    }

    #[test]
    fn ext_round_trips_and_omits_empty_line_info() {
        let mut e = BtfExtBuilder::new();
        e.section(5).funcs.push((0, 4));
        let bytes = e.to_bytes();
        // header + rec_size + (sec, n) + one record; line_info absent.
        assert_eq!(bytes.len(), 32 + 4 + 8 + 8);
        assert_eq!(read_u32_at(&bytes, 20).unwrap(), 0, "line_info_len");
        let ext = BtfExt::parse(&bytes).unwrap();
        assert_eq!(ext.sections.len(), 1);
        assert_eq!(ext.sections[0].funcs, vec![(0, 4)]);

        e.section(9).funcs.push((16, 6));
        e.section(5).lines.push(LineInfo {
            insn_byte_off: 0,
            file_name_off: 1,
            line_off: 2,
            line_col: 1 << 10,
        });
        let ext = BtfExt::parse(&e.to_bytes()).unwrap();
        assert_eq!(ext.sections.len(), 2);
        assert_eq!(ext.sections[1].funcs, vec![(16, 6)]);
        assert_eq!(ext.sections[0].lines.len(), 1);
    }

    #[test]
    fn parse_rejects_garbage() {
        assert_eq!(Btf::parse(&[1, 2]), Err(BtfError::Truncated(2)));
        assert!(matches!(
            Btf::parse(&[0, 0, 1, 0, 24, 0, 0, 0]),
            Err(BtfError::BadMagic(0))
        ));
        let mut bytes = BtfBuilder::new().to_bytes();
        bytes[12] = 200; // type_len past the end
        assert!(Btf::parse(&bytes).is_err());
    }
}
