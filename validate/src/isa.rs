//! eBPF instructions decoded from their raw 8-byte form, written from the
//! kernel's instruction-set documentation
//! (Documentation/bpf/standardization/instruction-set.rst), sharing no code
//! with the emitter. Only little-endian objects are read.
//!
//! An instruction is `opcode:8 dst:4 src:4 offset:16 imm:32` (low nibble
//! of the register byte is dst); the wide `ld_imm64` spans two slots, the
//! second holding the upper 32 bits of the constant in its `imm`.

/// Instruction classes (the low three bits of the opcode).
pub mod class {
    pub const LD: u8 = 0;
    pub const LDX: u8 = 1;
    pub const ST: u8 = 2;
    pub const STX: u8 = 3;
    pub const ALU: u8 = 4;
    pub const JMP: u8 = 5;
    pub const JMP32: u8 = 6;
    pub const ALU64: u8 = 7;
}

/// One decoded slot. `wide` is the upper half of an `ld_imm64` (from the
/// next slot); `None` for every other instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raw {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Raw {
    pub fn from_bytes(b: &[u8]) -> Raw {
        Raw {
            code: b[0],
            dst: b[1] & 0x0f,
            src: b[1] >> 4,
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
    pub fn class(self) -> u8 {
        self.code & 0x07
    }
}

/// Arithmetic operations (opcode bits 4-7 of ALU/ALU64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alu {
    Add,
    Sub,
    Mul,
    Div,
    Or,
    And,
    Lsh,
    Rsh,
    Neg,
    Mod,
    Xor,
    Mov,
    Arsh,
    /// Byte swap / endianness conversion.
    End,
}

impl Alu {
    fn from_bits(op: u8) -> Option<Alu> {
        Some(match op {
            0x00 => Alu::Add,
            0x10 => Alu::Sub,
            0x20 => Alu::Mul,
            0x30 => Alu::Div,
            0x40 => Alu::Or,
            0x50 => Alu::And,
            0x60 => Alu::Lsh,
            0x70 => Alu::Rsh,
            0x80 => Alu::Neg,
            0x90 => Alu::Mod,
            0xa0 => Alu::Xor,
            0xb0 => Alu::Mov,
            0xc0 => Alu::Arsh,
            0xd0 => Alu::End,
            _ => return None,
        })
    }
}

/// Jump conditions (opcode bits 4-7 of JMP/JMP32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    Eq,
    Gt,
    Ge,
    Set,
    Ne,
    Sgt,
    Sge,
    Lt,
    Le,
    Slt,
    Sle,
}

/// Operand: a register or the immediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    Reg(u8),
    Imm(i32),
}

/// Memory access width in bytes (1, 2, 4, 8).
pub type Width = u8;

/// A decoded instruction, one per slot (the second slot of an `ld_imm64`
/// decodes as [`Insn::Wide`], which is never executed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insn {
    /// `dst = dst op src` (64 bits, or 32 bits zero-extended); for `End`,
    /// `imm` is the width and `to_be` the direction; `signed` is the v4
    /// signed division/modulo or sign-extending move width in `off`.
    Alu {
        wide: bool,
        op: Alu,
        dst: u8,
        src: Operand,
        off: i16,
        to_be: bool,
    },
    /// `dst = *(width *)(src + off)`, zero-extended (or sign-extended).
    Load {
        width: Width,
        dst: u8,
        src: u8,
        off: i16,
        signed: bool,
    },
    /// An atomic exchange on `*(width *)(dst + off)` (4 or 8 bytes):
    /// `cmpxchg` stores `src` if the memory equals `r0` and sets `r0` to
    /// the old value; otherwise (`xchg`) it stores `src` and sets `src` to
    /// the old value. Other atomic operations are not decoded.
    AtomicXchg {
        width: Width,
        dst: u8,
        src: u8,
        off: i16,
        compare: bool,
    },
    /// `*(width *)(dst + off) = src`.
    Store {
        width: Width,
        dst: u8,
        off: i16,
        src: Operand,
    },
    /// `dst = imm64` (`src` = 0) or a pseudo constant (`src` != 0: 4 is a
    /// function address, `imm` its byte offset in `.text`).
    LoadImm64 {
        dst: u8,
        src: u8,
        value: u64,
        imm: i32,
    },
    /// The second slot of an `ld_imm64`.
    Wide,
    /// `goto +off` (`ja`), or `if dst cond src goto +off`.
    Jump {
        wide: bool,
        cond: Option<Cond>,
        dst: u8,
        src: Operand,
        off: i32,
    },
    /// Call: a helper (`src` = 0, `imm` its id), a local function (`src` = 1).
    Call {
        src: u8,
        imm: i32,
    },
    Exit,
}

/// Why a slot does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("slot {slot}: {what} (opcode {code:#04x})")]
pub struct DecodeError {
    pub slot: usize,
    pub code: u8,
    pub what: &'static str,
}

/// Decodes a function's code (length a multiple of 8).
pub fn decode(code: &[u8]) -> Result<Vec<Insn>, DecodeError> {
    let raws: Vec<Raw> = code.chunks_exact(8).map(Raw::from_bytes).collect();
    let mut out = Vec::with_capacity(raws.len());
    let mut i = 0;
    while i < raws.len() {
        let r = raws[i];
        let err = |what| DecodeError {
            slot: i,
            code: r.code,
            what,
        };
        let src_operand = |r: Raw| {
            if r.code & 0x08 != 0 {
                Operand::Reg(r.src)
            } else {
                Operand::Imm(r.imm)
            }
        };
        let check_reg = |reg: u8| {
            if reg > 10 {
                Err(err("register above r10"))
            } else {
                Ok(reg)
            }
        };
        match r.class() {
            class::ALU | class::ALU64 => {
                let wide = r.class() == class::ALU64;
                let op =
                    Alu::from_bits(r.code & 0xf0).ok_or(err("unknown arithmetic operation"))?;
                check_reg(r.dst)?;
                let (src, to_be) = if op == Alu::End {
                    if !matches!(r.imm, 16 | 32 | 64) {
                        return Err(err("byte swap width not 16, 32 or 64"));
                    }
                    (Operand::Imm(r.imm), r.code & 0x08 != 0)
                } else {
                    let s = src_operand(r);
                    if let Operand::Reg(s) = s {
                        check_reg(s)?;
                    }
                    (s, false)
                };
                out.push(Insn::Alu {
                    wide,
                    op,
                    dst: r.dst,
                    src,
                    off: r.off,
                    to_be,
                });
            }
            class::LD => {
                // Only BPF_IMM | BPF_DW (the wide constant) is valid in eBPF
                // programs here; legacy packet access (ABS/IND) is refused.
                if r.code != 0x18 {
                    return Err(err("unsupported LD instruction"));
                }
                let Some(&hi) = raws.get(i + 1) else {
                    return Err(err("ld_imm64 without its second slot"));
                };
                if hi.code != 0 || hi.dst != 0 || hi.src != 0 || hi.off != 0 {
                    return Err(err("malformed second slot of ld_imm64"));
                }
                check_reg(r.dst)?;
                let value = u64::from(r.imm as u32) | (u64::from(hi.imm as u32) << 32);
                out.push(Insn::LoadImm64 {
                    dst: r.dst,
                    src: r.src,
                    value,
                    imm: r.imm,
                });
                out.push(Insn::Wide);
                i += 2;
                continue;
            }
            class::LDX | class::ST | class::STX => {
                let width = match r.code & 0x18 {
                    0x00 => 4,
                    0x08 => 2,
                    0x10 => 1,
                    _ => 8,
                };
                let mode = r.code & 0xe0;
                check_reg(r.dst)?;
                check_reg(r.src)?;
                match (r.class(), mode) {
                    (class::LDX, 0x60) | (class::LDX, 0x80) => out.push(Insn::Load {
                        width,
                        dst: r.dst,
                        src: r.src,
                        off: r.off,
                        signed: mode == 0x80,
                    }),
                    (class::ST, 0x60) => out.push(Insn::Store {
                        width,
                        dst: r.dst,
                        off: r.off,
                        src: Operand::Imm(r.imm),
                    }),
                    (class::STX, 0x60) => out.push(Insn::Store {
                        width,
                        dst: r.dst,
                        off: r.off,
                        src: Operand::Reg(r.src),
                    }),
                    // BPF_ATOMIC with BPF_CMPXCHG (0xf1) or BPF_XCHG (0xe1).
                    (class::STX, 0xc0)
                        if (width == 4 || width == 8) && (r.imm == 0xf1 || r.imm == 0xe1) =>
                    {
                        out.push(Insn::AtomicXchg {
                            width,
                            dst: r.dst,
                            src: r.src,
                            off: r.off,
                            compare: r.imm == 0xf1,
                        })
                    }
                    _ => {
                        return Err(err(
                            "unsupported memory mode (atomics, legacy packet access)",
                        ))
                    }
                }
            }
            _ => {
                let wide = r.class() == class::JMP;
                let op = r.code & 0xf0;
                match op {
                    0x80 => {
                        if !wide {
                            return Err(err("call in the JMP32 class"));
                        }
                        out.push(Insn::Call {
                            src: r.src,
                            imm: r.imm,
                        })
                    }
                    0x90 => {
                        if !wide {
                            return Err(err("exit in the JMP32 class"));
                        }
                        out.push(Insn::Exit)
                    }
                    0x00 => out.push(Insn::Jump {
                        wide,
                        cond: None,
                        dst: 0,
                        src: Operand::Imm(0),
                        // JMP32 | JA is `gotol`: the offset is in imm.
                        off: if wide { i32::from(r.off) } else { r.imm },
                    }),
                    _ => {
                        let cond = match op {
                            0x10 => Cond::Eq,
                            0x20 => Cond::Gt,
                            0x30 => Cond::Ge,
                            0x40 => Cond::Set,
                            0x50 => Cond::Ne,
                            0x60 => Cond::Sgt,
                            0x70 => Cond::Sge,
                            0xa0 => Cond::Lt,
                            0xb0 => Cond::Le,
                            0xc0 => Cond::Slt,
                            0xd0 => Cond::Sle,
                            _ => return Err(err("unknown jump operation")),
                        };
                        check_reg(r.dst)?;
                        let src = src_operand(r);
                        if let Operand::Reg(s) = src {
                            check_reg(s)?;
                        }
                        out.push(Insn::Jump {
                            wide,
                            cond: Some(cond),
                            dst: r.dst,
                            src,
                            off: i32::from(r.off),
                        });
                    }
                }
            }
        }
        i += 1;
    }
    Ok(out)
}

/// Whether `cond` holds for `a` and `b` (64-bit, or the low 32 bits).
pub fn holds(cond: Cond, wide: bool, a: u64, b: u64) -> bool {
    let (a, b, sa, sb) = if wide {
        (a, b, a as i64, b as i64)
    } else {
        let (a, b) = (a as u32, b as u32);
        (
            u64::from(a),
            u64::from(b),
            i64::from(a as i32),
            i64::from(b as i32),
        )
    };
    match cond {
        Cond::Eq => a == b,
        Cond::Ne => a != b,
        Cond::Gt => a > b,
        Cond::Ge => a >= b,
        Cond::Lt => a < b,
        Cond::Le => a <= b,
        Cond::Set => a & b != 0,
        Cond::Sgt => sa > sb,
        Cond::Sge => sa >= sb,
        Cond::Slt => sa < sb,
        Cond::Sle => sa <= sb,
    }
}

/// `dst op src` as the instruction set defines it. 32-bit operations use
/// the low halves and zero-extend; shift amounts are masked to the width;
/// division by zero gives 0 and modulo by zero leaves `dst`. `off` = 1
/// selects signed division/modulo, and for `mov` 8/16/32 a sign-extending
/// move.
pub fn alu(op: Alu, wide: bool, dst: u64, src: u64, off: i16, to_be: bool) -> u64 {
    if op == Alu::End {
        // src is the width; to little endian on a little-endian machine is
        // a truncation, to big endian a swap; ALU64 | END swaps always.
        let swap = to_be || wide;
        return match (src, swap) {
            (16, false) => dst & 0xffff,
            (32, false) => dst & 0xffff_ffff,
            (16, true) => u64::from((dst as u16).swap_bytes()),
            (32, true) => u64::from((dst as u32).swap_bytes()),
            (_, false) => dst,
            (_, true) => dst.swap_bytes(),
        };
    }
    if wide {
        match op {
            Alu::Add => dst.wrapping_add(src),
            Alu::Sub => dst.wrapping_sub(src),
            Alu::Mul => dst.wrapping_mul(src),
            Alu::Div if off == 1 => {
                if src == 0 {
                    0
                } else {
                    (dst as i64).wrapping_div(src as i64) as u64
                }
            }
            Alu::Div => dst.checked_div(src).unwrap_or(0),
            Alu::Mod if off == 1 => {
                if src == 0 {
                    dst
                } else {
                    (dst as i64).wrapping_rem(src as i64) as u64
                }
            }
            Alu::Mod => dst.checked_rem(src).unwrap_or(dst),
            Alu::Or => dst | src,
            Alu::And => dst & src,
            Alu::Xor => dst ^ src,
            Alu::Lsh => dst << (src & 63),
            Alu::Rsh => dst >> (src & 63),
            Alu::Arsh => ((dst as i64) >> (src & 63)) as u64,
            Alu::Neg => (dst as i64).wrapping_neg() as u64,
            Alu::Mov => match off {
                8 => src as i8 as i64 as u64,
                16 => src as i16 as i64 as u64,
                32 => src as i32 as i64 as u64,
                _ => src,
            },
            Alu::End => unreachable!("handled above"),
        }
    } else {
        let (d, s) = (dst as u32, src as u32);
        let r: u32 = match op {
            Alu::Add => d.wrapping_add(s),
            Alu::Sub => d.wrapping_sub(s),
            Alu::Mul => d.wrapping_mul(s),
            Alu::Div if off == 1 => {
                if s == 0 {
                    0
                } else {
                    (d as i32).wrapping_div(s as i32) as u32
                }
            }
            Alu::Div => d.checked_div(s).unwrap_or(0),
            Alu::Mod if off == 1 => {
                if s == 0 {
                    d
                } else {
                    (d as i32).wrapping_rem(s as i32) as u32
                }
            }
            Alu::Mod => d.checked_rem(s).unwrap_or(d),
            Alu::Or => d | s,
            Alu::And => d & s,
            Alu::Xor => d ^ s,
            Alu::Lsh => d << (s & 31),
            Alu::Rsh => d >> (s & 31),
            Alu::Arsh => ((d as i32) >> (s & 31)) as u32,
            Alu::Neg => (d as i32).wrapping_neg() as u32,
            Alu::Mov => match off {
                8 => s as i8 as i32 as u32,
                16 => s as i16 as i32 as u32,
                _ => s,
            },
            Alu::End => unreachable!("handled above"),
        };
        u64::from(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_fields_in_documented_order() {
        // mov64 r3, r2 (0xbf, dst 3, src 2) then r0 = 0x1_0000_0002 as ld_imm64.
        let code = [
            0xbf, 0x23, 0, 0, 0, 0, 0, 0, //
            0x18, 0x00, 0, 0, 2, 0, 0, 0, //
            0x00, 0x00, 0, 0, 1, 0, 0, 0,
        ];
        let d = decode(&code).unwrap();
        assert_eq!(
            d[0],
            Insn::Alu {
                wide: true,
                op: Alu::Mov,
                dst: 3,
                src: Operand::Reg(2),
                off: 0,
                to_be: false
            }
        );
        assert_eq!(
            d[1],
            Insn::LoadImm64 {
                dst: 0,
                src: 0,
                value: 0x1_0000_0002,
                imm: 2
            }
        );
        assert_eq!(d[2], Insn::Wide);
    }

    #[test]
    fn arithmetic_edge_cases() {
        assert_eq!(alu(Alu::Div, true, 7, 0, 0, false), 0);
        assert_eq!(alu(Alu::Mod, true, 7, 0, 0, false), 7);
        assert_eq!(alu(Alu::Add, false, 0xffff_ffff, 1, 0, false), 0);
        assert_eq!(alu(Alu::Xor, false, 0xdead_0000_0000_0001, 1, 0, false), 0);
        assert_eq!(alu(Alu::End, false, 0x1234, 16, 0, true), 0x3412);
        assert_eq!(alu(Alu::Lsh, true, 1, 65, 0, false), 2);
        assert!(holds(Cond::Sgt, false, 1, 0xffff_ffff));
        assert!(!holds(Cond::Gt, false, 1, 0xffff_ffff));
    }

    #[test]
    fn refuses_legacy_packet_access_and_truncated_wide() {
        assert!(decode(&[0x20, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(decode(&[0x18, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }
}
