//! Patching instructions inside an object's bytes, for fault injection:
//! the mutant tests and the debug-build fault switch of `lagic compile`
//! use it to show that validation catches wrong code. Never used on an
//! object that is written out for use.

use goblin::elf::Elf;

/// Byte offset in the file of slot `slot` of section `section`.
pub fn slot_offset(object: &[u8], section: &str, slot: usize) -> Result<usize, String> {
    let elf = Elf::parse(object).map_err(|e| e.to_string())?;
    let sh = elf
        .section_headers
        .iter()
        .find(|s| elf.shdr_strtab.get_at(s.sh_name) == Some(section))
        .ok_or_else(|| format!("no section {section}"))?;
    if (slot as u64 + 1) * 8 > sh.sh_size {
        return Err(format!("slot {slot} outside {section}"));
    }
    Ok(sh.sh_offset as usize + slot * 8)
}

/// The raw 8 bytes of a slot.
pub fn slot_bytes(object: &[u8], section: &str, slot: usize) -> Result<[u8; 8], String> {
    let at = slot_offset(object, section, slot)?;
    Ok(object[at..at + 8].try_into().expect("8 bytes"))
}

/// Sets the 32-bit immediate of a slot.
pub fn set_imm(object: &mut [u8], section: &str, slot: usize, imm: i32) -> Result<(), String> {
    let at = slot_offset(object, section, slot)?;
    object[at + 4..at + 8].copy_from_slice(&imm.to_le_bytes());
    Ok(())
}

/// Sets the 16-bit offset of a slot.
pub fn set_off(object: &mut [u8], section: &str, slot: usize, off: i16) -> Result<(), String> {
    let at = slot_offset(object, section, slot)?;
    object[at + 2..at + 4].copy_from_slice(&off.to_le_bytes());
    Ok(())
}

/// The offset of a slot.
pub fn off(object: &[u8], section: &str, slot: usize) -> Result<i16, String> {
    let b = slot_bytes(object, section, slot)?;
    Ok(i16::from_le_bytes([b[2], b[3]]))
}

/// The immediate of a slot.
pub fn imm(object: &[u8], section: &str, slot: usize) -> Result<i32, String> {
    let b = slot_bytes(object, section, slot)?;
    Ok(i32::from_le_bytes([b[4], b[5], b[6], b[7]]))
}

/// First slot in `range` of `section` whose opcode is `code` (and, if
/// given, whose immediate is `imm`).
pub fn find(
    object: &[u8],
    section: &str,
    range: std::ops::Range<usize>,
    code: u8,
    want_imm: Option<i32>,
) -> Option<usize> {
    range.into_iter().find(|&slot| {
        slot_bytes(object, section, slot).is_ok_and(|b| {
            b[0] == code
                && want_imm.is_none_or(|w| i32::from_le_bytes([b[4], b[5], b[6], b[7]]) == w)
        })
    })
}

/// Opcodes the mutants look for.
pub mod code {
    /// `mov64 dst, imm`.
    pub const MOV64_IMM: u8 = 0xb7;
    /// `lsh64 dst, imm`.
    pub const LSH64_IMM: u8 = 0x67;
    /// `rsh64 dst, imm`.
    pub const RSH64_IMM: u8 = 0x77;
    /// `jeq dst, imm`.
    pub const JEQ_IMM: u8 = 0x15;
    /// `jle dst, imm`.
    pub const JLE_IMM: u8 = 0xb5;
    /// `jgt dst, imm`.
    pub const JGT_IMM: u8 = 0x25;
    /// `jlt dst, imm`.
    pub const JLT_IMM: u8 = 0xa5;
    /// `and64 dst, imm`.
    pub const AND64_IMM: u8 = 0x57;
    /// `ld_imm64 dst, imm64` (first slot).
    pub const LD_IMM64: u8 = 0x18;
    /// `ldxdw dst, [src + off]`.
    pub const LDXDW: u8 = 0x79;
    /// `ldxw dst, [src + off]`.
    pub const LDXW: u8 = 0x61;
}
