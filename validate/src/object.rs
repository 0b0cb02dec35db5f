//! Reads a lagic object with `goblin`, independently of emit-bpf's writer:
//! the entry function (the one global function in section `classifier`),
//! the callbacks (functions in `.text`, in address order) and the
//! callback references of the entry (`ld_imm64` with `src` = 4, each
//! backed by a relocation against `.text`), its map references, and its
//! read-only data (`.rodata`) with the entry's references to it.

use goblin::elf::{section_header::SHT_REL, sym::STT_FUNC, Elf};

use crate::isa::{self, Insn};

/// `src` of an `ld_imm64` whose constant is a function's address.
pub const PSEUDO_FUNC: u8 = 4;
/// `e_machine` of eBPF.
const EM_BPF: u16 = 247;

/// One function of the object.
#[derive(Debug, Clone)]
pub struct Function {
    /// Its symbol.
    pub name: String,
    /// Its code, one entry per slot.
    pub insns: Vec<Insn>,
}

/// The functions of a diode object.
#[derive(Debug, Clone)]
pub struct Object {
    /// The TC program.
    pub entry: Function,
    /// The `.text` functions in address order; `text_offsets[i]` is the
    /// byte offset of `callbacks[i]` in `.text`.
    pub callbacks: Vec<Function>,
    /// Byte offset in `.text` of each of `callbacks`.
    pub text_offsets: Vec<usize>,
    /// Entry slot of each map reference (`ld_imm64` with a pseudo map
    /// source) to the name of the `.maps` symbol its relocation names.
    pub map_refs: std::collections::BTreeMap<usize, String>,
    /// The `.rodata` section's bytes (empty without one).
    pub rodata: Vec<u8>,
    /// Entry slot of each read-only data reference (an `ld_imm64`
    /// relocated against a `.rodata` symbol) to the symbol's offset there.
    pub rodata_refs: std::collections::BTreeMap<usize, u64>,
}

/// Why an object cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("not an ELF object: {0}")]
    /// `goblin` cannot read the ELF.
    Elf(String),
    #[error("not a little-endian 64-bit eBPF object")]
    /// Not a little-endian 64-bit eBPF object.
    NotBpf,
    #[error("no function in section classifier")]
    /// No function in section `classifier`.
    NoEntry,
    #[error("{function}: {source}")]
    /// A function's code does not decode.
    Decode {
        /// The function.
        function: String,
        /// Why.
        source: isa::DecodeError,
    },
    #[error("{0}")]
    /// Any other structural fault (symbols, relocations, callback addresses).
    Malformed(String),
}

impl Function {
    /// Makes slot `start` jump straight to slot `slow`: a fast path
    /// bypassed, so the checks that judge its slow path run on code
    /// without it. Refused (saying `slots start..slow outside` the
    /// function) unless `start < slow <= ` the function's length.
    pub fn jump_over(&mut self, start: usize, slow: usize) -> Result<(), String> {
        if start >= self.insns.len() || slow <= start || slow > self.insns.len() {
            return Err(format!("slots {start}..{slow} outside {}", self.name));
        }
        self.insns[start] = Insn::Jump {
            wide: true,
            cond: None,
            dst: 0,
            src: isa::Operand::Imm(0),
            off: (slow - start - 1) as i32,
        };
        Ok(())
    }
}

impl Object {
    /// A copy with each fast path `(callback, start, slow)` of `paths`
    /// jumped over ([`Function::jump_over`]); `what` names one path in
    /// errors.
    pub fn callback_paths_bypassed(
        &self,
        what: &str,
        paths: impl IntoIterator<Item = (usize, usize, usize)>,
    ) -> Result<Object, String> {
        let mut out = self.clone();
        for (callback, start, slow) in paths {
            out.callbacks
                .get_mut(callback)
                .ok_or_else(|| format!("{what} in no callback {callback}"))?
                .jump_over(start, slow)
                .map_err(|e| format!("{what} {e}"))?;
        }
        Ok(out)
    }

    /// Reads `bytes` as a lagic diode object.
    pub fn parse(bytes: &[u8]) -> Result<Object, ObjectError> {
        let elf = Elf::parse(bytes).map_err(|e| ObjectError::Elf(e.to_string()))?;
        if !elf.is_64 || !elf.little_endian || elf.header.e_machine != EM_BPF {
            return Err(ObjectError::NotBpf);
        }
        let section = |name: &str| {
            elf.section_headers
                .iter()
                .enumerate()
                .find(|(_, s)| elf.shdr_strtab.get_at(s.sh_name) == Some(name))
        };
        let data = |index: usize| -> Result<&[u8], ObjectError> {
            let s = &elf.section_headers[index];
            let (start, len) = (s.sh_offset as usize, s.sh_size as usize);
            bytes.get(start..start.saturating_add(len)).ok_or_else(|| {
                ObjectError::Malformed(format!("section {index} lies outside the file"))
            })
        };
        let (entry_index, _) = section(emit_bpf::elf::PROG_SECTION).ok_or(ObjectError::NoEntry)?;
        let text_index = section(".text").map(|(i, _)| i);

        let mut entry_name = None;
        let mut text_funcs = Vec::new();
        for sym in elf.syms.iter() {
            if sym.st_type() != STT_FUNC {
                continue;
            }
            let name = elf.strtab.get_at(sym.st_name).unwrap_or("").to_string();
            if sym.st_shndx == entry_index {
                if sym.st_value != 0 || entry_name.is_some() {
                    return Err(ObjectError::Malformed(
                        "section classifier must hold exactly one function at offset 0".into(),
                    ));
                }
                entry_name = Some(name);
            } else if Some(sym.st_shndx) == text_index {
                text_funcs.push((sym.st_value as usize, sym.st_size as usize, name));
            }
        }
        let entry_name = entry_name.ok_or(ObjectError::NoEntry)?;
        let decode = |name: &str, code: &[u8]| {
            if !code.len().is_multiple_of(8) {
                return Err(ObjectError::Malformed(format!(
                    "{name}: code is not whole slots"
                )));
            }
            isa::decode(code).map_err(|source| ObjectError::Decode {
                function: name.to_string(),
                source,
            })
        };
        let entry = Function {
            insns: decode(&entry_name, data(entry_index)?)?,
            name: entry_name,
        };
        text_funcs.sort();
        let mut callbacks = Vec::new();
        let mut text_offsets = Vec::new();
        if let Some(ti) = text_index {
            let text = data(ti)?;
            for (offset, size, name) in text_funcs {
                let code = text
                    .get(offset..offset.saturating_add(size))
                    .ok_or_else(|| ObjectError::Malformed(format!("{name} lies outside .text")))?;
                callbacks.push(Function {
                    insns: decode(&name, code)?,
                    name,
                });
                text_offsets.push(offset);
            }
        }

        // Every function address the entry loads must have its relocation
        // against .text: that is what the loaders resolve.
        let relocated: Vec<u64> = elf
            .shdr_relocs
            .iter()
            .filter(|(i, _)| {
                let s = &elf.section_headers[*i];
                s.sh_type == SHT_REL && s.sh_info as usize == entry_index
            })
            .flat_map(|(_, rs)| rs.iter().map(|r| r.r_offset).collect::<Vec<_>>())
            .collect();
        for (slot, insn) in entry.insns.iter().enumerate() {
            if let Insn::LoadImm64 { src, imm, .. } = insn {
                if *src == PSEUDO_FUNC {
                    if !relocated.contains(&(slot as u64 * 8)) {
                        return Err(ObjectError::Malformed(format!(
                            "{}: function address at slot {slot} has no relocation",
                            entry.name
                        )));
                    }
                    if !text_offsets.contains(&(*imm as usize)) {
                        return Err(ObjectError::Malformed(format!(
                            "{}: slot {slot} loads .text offset {imm}, where no function starts",
                            entry.name
                        )));
                    }
                }
            }
        }
        // Map references: relocations of the entry against `.maps` symbols.
        let mut map_refs = std::collections::BTreeMap::new();
        if let Some((maps_index, _)) = section(".maps") {
            for (i, rs) in &elf.shdr_relocs {
                let s = &elf.section_headers[*i];
                if s.sh_type != SHT_REL || s.sh_info as usize != entry_index {
                    continue;
                }
                for r in rs.iter() {
                    let Some(sym) = elf.syms.get(r.r_sym) else {
                        continue;
                    };
                    if sym.st_shndx != maps_index {
                        continue;
                    }
                    let name = elf.strtab.get_at(sym.st_name).unwrap_or("").to_string();
                    if r.r_offset % 8 != 0 {
                        return Err(ObjectError::Malformed(format!(
                            "map relocation at byte {} is not on a slot",
                            r.r_offset
                        )));
                    }
                    map_refs.insert(r.r_offset as usize / 8, name);
                }
            }
        }
        // Read-only data references: relocations of the entry against
        // `.rodata` symbols (see `crate::rodata`).
        let mut rodata = Vec::new();
        let mut rodata_refs = std::collections::BTreeMap::new();
        if let Some((rodata_index, _)) = section(".rodata") {
            rodata = data(rodata_index)?.to_vec();
            for (i, rs) in &elf.shdr_relocs {
                let s = &elf.section_headers[*i];
                if s.sh_type != SHT_REL || s.sh_info as usize != entry_index {
                    continue;
                }
                for r in rs.iter() {
                    let Some(sym) = elf.syms.get(r.r_sym) else {
                        continue;
                    };
                    if sym.st_shndx != rodata_index {
                        continue;
                    }
                    if r.r_offset % 8 != 0 {
                        return Err(ObjectError::Malformed(format!(
                            ".rodata relocation at byte {} is not on a slot",
                            r.r_offset
                        )));
                    }
                    rodata_refs.insert(r.r_offset as usize / 8, sym.st_value);
                }
            }
        }
        Ok(Object {
            entry,
            callbacks,
            text_offsets,
            map_refs,
            rodata,
            rodata_refs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exits(n: usize) -> Function {
        Function {
            name: "f".into(),
            insns: vec![Insn::Exit; n],
        }
    }

    #[test]
    fn a_jump_over_lands_on_the_slow_slot_and_ranges_outside_are_refused() {
        let mut f = exits(4);
        f.jump_over(1, 3).expect("inside");
        let Insn::Jump { cond, off, .. } = f.insns[1] else {
            panic!("slot 1 is {:?}", f.insns[1]);
        };
        // A jump's target is the next slot plus its offset.
        assert_eq!((cond, 1 + 1 + off), (None, 3));
        assert_eq!(f.insns[0], Insn::Exit);
        assert_eq!(f.insns[2], Insn::Exit);
        for (start, slow) in [(2, 2), (3, 1), (1, 5), (4, 4)] {
            let err = exits(4).jump_over(start, slow).expect_err("outside");
            assert_eq!(err, format!("slots {start}..{slow} outside f"));
        }
    }
}
