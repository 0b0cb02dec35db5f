//! eBPF instructions: encodings named as in the kernel's `linux/bpf.h` and
//! `linux/bpf_common.h`, and small constructors for the forms lagic emits.
//!
//! An [`Insn`] is one 8-byte slot. `ld_imm64` takes two slots; its
//! constructor returns both. Jump offsets count slots, relative to the slot
//! after the jump (the kernel's convention).

// Instruction classes.
pub const BPF_LD: u8 = 0x00;
pub const BPF_LDX: u8 = 0x01;
pub const BPF_ST: u8 = 0x02;
pub const BPF_STX: u8 = 0x03;
pub const BPF_ALU: u8 = 0x04;
pub const BPF_JMP: u8 = 0x05;
pub const BPF_JMP32: u8 = 0x06;
pub const BPF_ALU64: u8 = 0x07;

// Sizes (load/store).
pub const BPF_W: u8 = 0x00;
pub const BPF_H: u8 = 0x08;
pub const BPF_B: u8 = 0x10;
pub const BPF_DW: u8 = 0x18;

// Modes (load/store).
pub const BPF_IMM: u8 = 0x00;
pub const BPF_MEM: u8 = 0x60;

// Source operand.
pub const BPF_K: u8 = 0x00;
pub const BPF_X: u8 = 0x08;

// ALU operations.
pub const BPF_ADD: u8 = 0x00;
pub const BPF_SUB: u8 = 0x10;
pub const BPF_MUL: u8 = 0x20;
pub const BPF_DIV: u8 = 0x30;
pub const BPF_OR: u8 = 0x40;
pub const BPF_AND: u8 = 0x50;
pub const BPF_LSH: u8 = 0x60;
pub const BPF_RSH: u8 = 0x70;
pub const BPF_NEG: u8 = 0x80;
pub const BPF_MOD: u8 = 0x90;
pub const BPF_XOR: u8 = 0xa0;
pub const BPF_MOV: u8 = 0xb0;
pub const BPF_ARSH: u8 = 0xc0;
pub const BPF_END: u8 = 0xd0;

// Jump operations.
pub const BPF_JA: u8 = 0x00;
pub const BPF_JEQ: u8 = 0x10;
pub const BPF_JGT: u8 = 0x20;
pub const BPF_JGE: u8 = 0x30;
pub const BPF_JSET: u8 = 0x40;
pub const BPF_JNE: u8 = 0x50;
pub const BPF_JSGT: u8 = 0x60;
pub const BPF_JSGE: u8 = 0x70;
pub const BPF_CALL: u8 = 0x80;
pub const BPF_EXIT: u8 = 0x90;
pub const BPF_JLT: u8 = 0xa0;
pub const BPF_JLE: u8 = 0xb0;
pub const BPF_JSLT: u8 = 0xc0;
pub const BPF_JSLE: u8 = 0xd0;

// BPF_END source: byte order to convert to.
pub const BPF_TO_LE: u8 = 0x00;
pub const BPF_TO_BE: u8 = 0x08;

/// `src_reg` of `ld_imm64` whose immediate is a subprogram (a callback).
pub const BPF_PSEUDO_FUNC: u8 = 4;
/// `src_reg` of a call to a BPF-to-BPF subprogram.
pub const BPF_PSEUDO_CALL: u8 = 1;

/// A register, `r0` .. `r10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reg(pub u8);

pub const R0: Reg = Reg(0);
pub const R1: Reg = Reg(1);
pub const R2: Reg = Reg(2);
pub const R3: Reg = Reg(3);
pub const R4: Reg = Reg(4);
pub const R5: Reg = Reg(5);
pub const R6: Reg = Reg(6);
pub const R7: Reg = Reg(7);
pub const R8: Reg = Reg(8);
pub const R9: Reg = Reg(9);
/// The read-only frame pointer.
pub const R10: Reg = Reg(10);

/// Kernel helper function ids (`enum bpf_func_id`).
pub mod helper {
    pub const BPF_FUNC_SKB_LOAD_BYTES: i32 = 26;
    pub const BPF_FUNC_SKB_PULL_DATA: i32 = 39;
    pub const BPF_FUNC_LOOP: i32 = 181;
}

/// TC verdicts (`linux/pkt_cls.h`).
pub const TC_ACT_OK: i32 = 0;
pub const TC_ACT_SHOT: i32 = 2;

/// Field offsets in `struct __sk_buff` (`linux/bpf.h`).
pub mod skb {
    pub const LEN: i16 = 0;
    pub const PROTOCOL: i16 = 16;
    pub const VLAN_PRESENT: i16 = 20;
    pub const DATA: i16 = 76;
    pub const DATA_END: i16 = 80;
}

/// One 8-byte instruction slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    pub const SIZE: usize = 8;

    pub const fn new(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            dst: dst.0,
            src: src.0,
            off,
            imm,
        }
    }

    /// Little-endian encoding (the only byte order lagic targets).
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = (self.src << 4) | (self.dst & 0x0f);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }

    pub fn from_bytes(b: [u8; 8]) -> Insn {
        Insn {
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

    /// First slot of a two-slot `ld_imm64`.
    pub fn is_ld_imm64(self) -> bool {
        self.code == BPF_LD | BPF_DW | BPF_IMM
    }

    // ---- constructors -------------------------------------------------

    pub const fn alu64_imm(op: u8, dst: Reg, imm: i32) -> Insn {
        Insn::new(BPF_ALU64 | op | BPF_K, dst, Reg(0), 0, imm)
    }
    pub const fn alu64_reg(op: u8, dst: Reg, src: Reg) -> Insn {
        Insn::new(BPF_ALU64 | op | BPF_X, dst, src, 0, 0)
    }
    pub const fn alu32_reg(op: u8, dst: Reg, src: Reg) -> Insn {
        Insn::new(BPF_ALU | op | BPF_X, dst, src, 0, 0)
    }
    pub const fn alu32_imm(op: u8, dst: Reg, imm: i32) -> Insn {
        Insn::new(BPF_ALU | op | BPF_K, dst, Reg(0), 0, imm)
    }
    pub const fn mov64_imm(dst: Reg, imm: i32) -> Insn {
        Insn::alu64_imm(BPF_MOV, dst, imm)
    }
    pub const fn mov64_reg(dst: Reg, src: Reg) -> Insn {
        Insn::alu64_reg(BPF_MOV, dst, src)
    }
    /// Byte-swap the low `bits` (16, 32, 64) of `dst` from big-endian to host.
    pub const fn be(dst: Reg, bits: i32) -> Insn {
        Insn::new(BPF_ALU | BPF_END | BPF_TO_BE, dst, Reg(0), 0, bits)
    }
    /// `dst = *(size *)(src + off)`.
    pub const fn load(size: u8, dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::new(BPF_LDX | size | BPF_MEM, dst, src, off, 0)
    }
    /// `*(size *)(dst + off) = src`.
    pub const fn store_reg(size: u8, dst: Reg, off: i16, src: Reg) -> Insn {
        Insn::new(BPF_STX | size | BPF_MEM, dst, src, off, 0)
    }
    /// `*(size *)(dst + off) = imm`.
    pub const fn store_imm(size: u8, dst: Reg, off: i16, imm: i32) -> Insn {
        Insn::new(BPF_ST | size | BPF_MEM, dst, Reg(0), off, imm)
    }
    pub const fn jmp_imm(op: u8, dst: Reg, imm: i32, off: i16) -> Insn {
        Insn::new(BPF_JMP | op | BPF_K, dst, Reg(0), off, imm)
    }
    pub const fn jmp_reg(op: u8, dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::new(BPF_JMP | op | BPF_X, dst, src, off, 0)
    }
    pub const fn ja(off: i16) -> Insn {
        Insn::new(BPF_JMP | BPF_JA, Reg(0), Reg(0), off, 0)
    }
    /// Call a kernel helper by id.
    pub const fn call_helper(id: i32) -> Insn {
        Insn::new(BPF_JMP | BPF_CALL, Reg(0), Reg(0), 0, id)
    }
    pub const fn exit() -> Insn {
        Insn::new(BPF_JMP | BPF_EXIT, Reg(0), Reg(0), 0, 0)
    }
    /// `dst = imm64` (two slots).
    pub const fn ld_imm64(dst: Reg, imm: u64) -> [Insn; 2] {
        [
            Insn::new(BPF_LD | BPF_DW | BPF_IMM, dst, Reg(0), 0, imm as u32 as i32),
            Insn::new(0, Reg(0), Reg(0), 0, (imm >> 32) as u32 as i32),
        ]
    }
    /// `dst = &subprogram` (two slots); `imm` is the slot offset of the
    /// subprogram relative to the next slot, filled in at link time.
    pub const fn ld_func(dst: Reg, imm: i32) -> [Insn; 2] {
        [
            Insn::new(BPF_LD | BPF_DW | BPF_IMM, dst, Reg(BPF_PSEUDO_FUNC), 0, imm),
            Insn::new(0, Reg(0), Reg(0), 0, 0),
        ]
    }
}
