//! An independent reader for the `.BTF` and `.BTF.ext` sections lagic
//! writes (test support: lagic itself never reads BTF). It decodes the four
//! kinds the builders emit and rejects anything else, so writer and reader
//! test each other.
#![allow(dead_code)]

use emit_bpf::btf::{BtfType, FuncLinkage, LineInfo, SectionInfo, TypeId};
use thiserror::Error;

const BTF_MAGIC: u16 = 0xeb9f;
const BTF_VERSION: u8 = 1;
const BTF_HEADER_LEN: u32 = 24;
const BTF_KIND_INT: u32 = 1;
const BTF_KIND_PTR: u32 = 2;
const BTF_KIND_FUNC: u32 = 12;
const BTF_KIND_FUNC_PROTO: u32 = 13;
const BTF_KIND_ARRAY: u32 = 3;
const BTF_KIND_STRUCT: u32 = 4;
const BTF_KIND_VAR: u32 = 14;
const BTF_KIND_DATASEC: u32 = 15;
const FUNC_INFO_REC_SIZE: u32 = 8;
const LINE_INFO_REC_SIZE: u32 = 16;

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

pub fn read_u32_at(data: &[u8], pos: usize) -> Result<u32, BtfError> {
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
                BTF_KIND_ARRAY => {
                    let (elem, index, nelems) = (r.u32()?, r.u32()?, r.u32()?);
                    BtfType::Array {
                        elem,
                        index,
                        nelems,
                    }
                }
                BTF_KIND_STRUCT => {
                    let mut members = Vec::new();
                    for _ in 0..vlen {
                        members.push((r.u32()?, r.u32()?, r.u32()?));
                    }
                    BtfType::Struct {
                        name_off,
                        size: size_or_type,
                        members,
                    }
                }
                BTF_KIND_VAR => BtfType::Var {
                    name_off,
                    ty: size_or_type,
                    linkage: r.u32()?,
                },
                BTF_KIND_DATASEC => {
                    let mut vars = Vec::new();
                    for _ in 0..vlen {
                        vars.push((r.u32()?, r.u32()?, r.u32()?));
                    }
                    BtfType::Datasec {
                        name_off,
                        size: size_or_type,
                        vars,
                    }
                }
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
