//! The instruction decoder: kernel fields ([`RawInsn`]) back to typed
//! instructions ([`Insn`]).
//!
//! Written apart from the encoder ([`Insn::encode`]): it reads the opcode
//! byte with its own tables, so the two test each other (an
//! encode-then-decode property over every typed instruction, and a
//! decode-then-encode check on every emitted program).
//!
//! Decoding is exact: it succeeds only when the slot is the encoding of
//! some [`Insn`], every field the instruction does not use is zero, and
//! registers are `r0`..`r10`. Then `encode(decode(slots)) == slots`.
//! Anything else is a [`DecodeError`], which the disassembler prints as
//! raw bytes rather than guessing.

use thiserror::Error;

use crate::insn::*;

/// Why a slot is not one typed instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// No typed instruction encodes as this slot.
    #[error("slot {slot}: no eBPF instruction encodes as {raw:?}")]
    Unknown {
        /// Index of the slot.
        slot: usize,
        /// The slot's fields.
        raw: RawInsn,
    },
    /// An `ld_imm64` without its second slot.
    #[error("slot {slot}: ld_imm64 without a valid second slot")]
    TruncatedLdImm64 {
        /// Index of the first slot.
        slot: usize,
    },
    /// Code whose length is not a multiple of 8 bytes.
    #[error("{len} bytes of code is not a whole number of 8-byte slots")]
    PartialSlot {
        /// Length of the code in bytes.
        len: usize,
    },
}

/// The typed instruction at the start of `slots` (one or two slots of it).
/// `None` if the first slot is not a valid instruction, or is an
/// `ld_imm64` whose second slot is missing or not a valid second half.
pub fn decode(slots: &[RawInsn]) -> Option<Insn> {
    let first = *slots.first()?;
    if first.code == 0x18 {
        // BPF_LD | BPF_DW | BPF_IMM: the only two-slot instruction.
        let next = slots.get(1)?;
        let second_half_clean = next.code == 0 && next.dst == 0 && next.src == 0 && next.off == 0;
        if !second_half_clean || first.off != 0 {
            return None;
        }
        let kind = match first.src {
            0 => Imm64Kind::Value,
            1 => Imm64Kind::MapFd,
            2 => Imm64Kind::MapValue,
            3 => Imm64Kind::BtfId,
            4 => Imm64Kind::Func,
            5 => Imm64Kind::MapIdx,
            6 => Imm64Kind::MapIdxValue,
            _ => return None,
        };
        return Some(Insn::LdImm64 {
            dst: reg(first.dst)?,
            kind,
            imm: first.imm,
            next_imm: next.imm,
        });
    }
    decode_one(first)
}

/// Decodes every instruction of `code` (little-endian slots): the reader
/// for checks that emitted code decodes, and re-encodes to the same bytes.
pub fn decode_all(code: &[u8]) -> Result<Vec<Insn>, DecodeError> {
    if !code.len().is_multiple_of(RawInsn::SIZE) {
        return Err(DecodeError::PartialSlot { len: code.len() });
    }
    let slots: Vec<RawInsn> = code
        .chunks_exact(RawInsn::SIZE)
        .map(|c| RawInsn::from_bytes(c.try_into().expect("8-byte chunk")))
        .collect();
    let mut out = Vec::new();
    let mut at = 0;
    while at < slots.len() {
        let Some(insn) = decode(&slots[at..]) else {
            return Err(if slots[at].code == 0x18 {
                DecodeError::TruncatedLdImm64 { slot: at }
            } else {
                DecodeError::Unknown {
                    slot: at,
                    raw: slots[at],
                }
            });
        };
        at += insn.slots();
        out.push(insn);
    }
    Ok(out)
}

fn reg(n: u8) -> Option<Register> {
    Register::from_number(n)
}

/// Size bits (0x18) of a load/store opcode.
fn size(code: u8) -> Size {
    match code & 0x18 {
        0x00 => Size::W,
        0x08 => Size::H,
        0x10 => Size::B,
        _ => Size::DW,
    }
}

fn alu_class(code: u8) -> AluClass {
    if code & 0x07 == 0x07 {
        AluClass::Alu64
    } else {
        AluClass::Alu32
    }
}

fn alu_op(op: u8) -> Option<AluOp> {
    Some(match op {
        0x00 => AluOp::Add,
        0x10 => AluOp::Sub,
        0x20 => AluOp::Mul,
        0x30 => AluOp::Div,
        0x40 => AluOp::Or,
        0x50 => AluOp::And,
        0x60 => AluOp::Lsh,
        0x70 => AluOp::Rsh,
        0x80 => AluOp::Neg,
        0x90 => AluOp::Mod,
        0xa0 => AluOp::Xor,
        0xb0 => AluOp::Mov,
        0xc0 => AluOp::Arsh,
        _ => return None,
    })
}

fn jmp_cond(op: u8) -> Option<JmpCond> {
    Some(match op {
        0x10 => JmpCond::Jeq,
        0x20 => JmpCond::Jgt,
        0x30 => JmpCond::Jge,
        0x40 => JmpCond::Jset,
        0x50 => JmpCond::Jne,
        0x60 => JmpCond::Jsgt,
        0x70 => JmpCond::Jsge,
        0xa0 => JmpCond::Jlt,
        0xb0 => JmpCond::Jle,
        0xc0 => JmpCond::Jslt,
        0xd0 => JmpCond::Jsle,
        _ => return None,
    })
}

fn atomic_op(imm: i32) -> Option<AtomicOp> {
    Some(match imm {
        0x00 => AtomicOp::Add,
        0x40 => AtomicOp::Or,
        0x50 => AtomicOp::And,
        0xa0 => AtomicOp::Xor,
        0x01 => AtomicOp::FetchAdd,
        0x41 => AtomicOp::FetchOr,
        0x51 => AtomicOp::FetchAnd,
        0xa1 => AtomicOp::FetchXor,
        0xe1 => AtomicOp::Xchg,
        0xf1 => AtomicOp::Cmpxchg,
        0x100 => AtomicOp::LoadAcquire,
        0x110 => AtomicOp::StoreRelease,
        _ => return None,
    })
}

fn swap_width(imm: i32) -> Option<SwapWidth> {
    Some(match imm {
        16 => SwapWidth::B16,
        32 => SwapWidth::B32,
        64 => SwapWidth::B64,
        _ => return None,
    })
}

/// The second operand of an ALU or jump slot; the unused field must be 0.
fn operand(raw: RawInsn) -> Option<Operand> {
    if raw.code & 0x08 == 0 {
        (raw.src == 0).then_some(Operand::Imm(raw.imm))
    } else {
        (raw.imm == 0).then_some(Operand::Reg(reg(raw.src)?))
    }
}

/// A one-slot instruction.
fn decode_one(raw: RawInsn) -> Option<Insn> {
    let code = raw.code;
    match code & 0x07 {
        0x04 | 0x07 => decode_alu(raw),
        0x05 | 0x06 => decode_jmp(raw),
        // BPF_LD: only the legacy packet loads are one slot.
        0x00 => {
            if raw.dst != 0 || raw.off != 0 {
                return None;
            }
            match code & 0xe0 {
                0x20 if raw.src == 0 => Some(Insn::LoadAbs {
                    size: size(code),
                    imm: raw.imm,
                }),
                0x40 => Some(Insn::LoadInd {
                    size: size(code),
                    src: reg(raw.src)?,
                    imm: raw.imm,
                }),
                _ => None,
            }
        }
        // BPF_LDX
        0x01 => {
            if raw.imm != 0 {
                return None;
            }
            let (size, dst, src, off) = (size(code), reg(raw.dst)?, reg(raw.src)?, raw.off);
            match code & 0xe0 {
                0x60 => Some(Insn::Load {
                    size,
                    dst,
                    src,
                    off,
                }),
                0x80 => Some(Insn::LoadSx {
                    size,
                    dst,
                    src,
                    off,
                }),
                _ => None,
            }
        }
        // BPF_ST
        0x02 => (code & 0xe0 == 0x60 && raw.src == 0).then_some(Insn::StoreImm {
            size: size(code),
            dst: reg(raw.dst)?,
            off: raw.off,
            imm: raw.imm,
        }),
        // BPF_STX
        _ => {
            let (size, dst, src, off) = (size(code), reg(raw.dst)?, reg(raw.src)?, raw.off);
            match code & 0xe0 {
                0x60 if raw.imm == 0 => Some(Insn::Store {
                    size,
                    dst,
                    off,
                    src,
                }),
                0xc0 => Some(Insn::Atomic {
                    size,
                    op: atomic_op(raw.imm)?,
                    dst,
                    src,
                    off,
                }),
                _ => None,
            }
        }
    }
}

fn decode_alu(raw: RawInsn) -> Option<Insn> {
    let class = alu_class(raw.code);
    let dst = reg(raw.dst)?;
    let op = raw.code & 0xf0;
    let from_reg = raw.code & 0x08 != 0;
    if op == 0xd0 {
        // BPF_END: the source bit is the byte order (BPF_ALU) or must be
        // clear (BPF_ALU64, an unconditional swap).
        if raw.src != 0 || raw.off != 0 {
            return None;
        }
        let width = swap_width(raw.imm)?;
        return match (class, from_reg) {
            (AluClass::Alu32, false) => Some(Insn::Endian {
                order: ByteOrder::ToLe,
                dst,
                width,
            }),
            (AluClass::Alu32, true) => Some(Insn::Endian {
                order: ByteOrder::ToBe,
                dst,
                width,
            }),
            (AluClass::Alu64, false) => Some(Insn::ByteSwap { dst, width }),
            (AluClass::Alu64, true) => None,
        };
    }
    let op = alu_op(op)?;
    match (op, raw.off) {
        (_, 0) => Some(Insn::Alu {
            class,
            op,
            dst,
            src: operand(raw)?,
        }),
        (AluOp::Div, 1) => Some(Insn::SignedDiv {
            class,
            dst,
            src: operand(raw)?,
        }),
        (AluOp::Mod, 1) => Some(Insn::SignedMod {
            class,
            dst,
            src: operand(raw)?,
        }),
        (AluOp::Mov, 1) if from_reg && class == AluClass::Alu64 => Some(Insn::AddrSpaceCast {
            dst,
            src: reg(raw.src)?,
            imm: raw.imm,
        }),
        (AluOp::Mov, bits @ (8 | 16 | 32 | 64)) if from_reg && raw.imm == 0 => Some(Insn::MovSx {
            class,
            dst,
            src: reg(raw.src)?,
            from: match bits {
                8 => Size::B,
                16 => Size::H,
                32 => Size::W,
                _ => Size::DW,
            },
        }),
        _ => None,
    }
}

fn decode_jmp(raw: RawInsn) -> Option<Insn> {
    let is32 = raw.code & 0x07 == 0x06;
    let op = raw.code & 0xf0;
    let from_reg = raw.code & 0x08 != 0;
    if let Some(cond) = jmp_cond(op) {
        return Some(Insn::Jump {
            class: if is32 { JmpClass::Jmp32 } else { JmpClass::Jmp },
            cond,
            dst: reg(raw.dst)?,
            src: operand(raw)?,
            off: raw.off,
        });
    }
    // The rest use neither a source register bit nor dst_reg.
    if from_reg || raw.dst != 0 {
        return None;
    }
    match (op, is32) {
        (0x00, false) if raw.src == 0 && raw.imm == 0 => Some(Insn::Ja { off: raw.off }),
        (0x00, true) if raw.src == 0 && raw.off == 0 => Some(Insn::GotoLong { imm: raw.imm }),
        (0xe0, false) if raw.src == 0 && raw.imm == 0 => Some(Insn::MayGoto { off: raw.off }),
        (0x80, false) if raw.off == 0 => Some(Insn::Call(match raw.src {
            0 => CallTarget::Helper(raw.imm),
            1 => CallTarget::Local(raw.imm),
            2 => CallTarget::Kfunc(raw.imm),
            _ => return None,
        })),
        (0x90, false) if raw.src == 0 && raw.off == 0 && raw.imm == 0 => Some(Insn::Exit),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> RawInsn {
        RawInsn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    #[test]
    fn reserved_fields_must_be_zero() {
        // r1 += 5 with a source register set, an offset, or r11.
        assert!(decode(&[raw(0x07, 1, 0, 0, 5)]).is_some());
        assert!(decode(&[raw(0x07, 1, 2, 0, 5)]).is_none());
        assert!(decode(&[raw(0x07, 1, 0, 3, 5)]).is_none());
        assert!(decode(&[raw(0x07, 11, 0, 0, 5)]).is_none());
        // exit with anything set.
        assert_eq!(decode(&[raw(0x95, 0, 0, 0, 0)]), Some(Insn::Exit));
        assert!(decode(&[raw(0x95, 0, 0, 0, 1)]).is_none());
        // ld_imm64 whose second slot carries an opcode.
        let first = raw(0x18, 1, 0, 0, 7);
        assert!(decode(&[first, raw(0, 0, 0, 0, 0)]).is_some());
        assert!(decode(&[first, raw(0xb7, 0, 0, 0, 0)]).is_none());
        assert!(decode(&[first]).is_none());
    }

    #[test]
    fn decode_all_reports_where() {
        let mut code = encode_all(&[Insn::mov64_imm(R0, 1), Insn::exit()]);
        assert_eq!(
            decode_all(&code),
            Ok(vec![Insn::mov64_imm(R0, 1), Insn::exit()])
        );
        code.extend([0xff, 0, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(
            decode_all(&code),
            Err(DecodeError::Unknown { slot: 2, .. })
        ));
        code.truncate(12);
        assert_eq!(decode_all(&code), Err(DecodeError::PartialSlot { len: 12 }));
        let pair = encode_all(&[Insn::ld_imm64(R1, 1)]);
        assert_eq!(
            decode_all(&pair[..8]),
            Err(DecodeError::TruncatedLdImm64 { slot: 0 })
        );
    }
}
