//! The eBPF instruction set as Rust types, and its encoding.
//!
//! An [`Insn`] is one typed instruction: its class, operation, size, mode
//! and source are enums ([`AluOp`], [`JmpCond`], [`Size`], [`Operand`], ...)
//! named after the kernel's constants in `linux/bpf.h` and
//! `linux/bpf_common.h`, so an ALU operation cannot stand where a jump
//! condition is expected, and a register is a [`Register`], never a number
//! past `r10`. [`Insn::encode`] is the one place that turns a typed
//! instruction into kernel fields ([`RawInsn`], `struct bpf_insn`), and
//! [`RawInsn::to_bytes`] the one place that lays those out in bytes.
//! Reading goes the other way in [`crate::decode`], written independently
//! so that the two test each other.
//!
//! Invariants:
//! - every `Insn` encodes to the slots of exactly one instruction; fields
//!   the variant does not name are zero, and `decode(encode(i)) == i`;
//! - an `ld_imm64` ([`Insn::LdImm64`]) is one `Insn` and two slots; every
//!   other instruction is one slot. Jump offsets count slots, relative to
//!   the slot after the jump (the kernel's convention);
//! - only little-endian encoding exists (the only byte order lagic targets).

// Instruction classes (`BPF_CLASS`).
pub(crate) const BPF_LD: u8 = 0x00;
pub(crate) const BPF_LDX: u8 = 0x01;
pub(crate) const BPF_ST: u8 = 0x02;
pub(crate) const BPF_STX: u8 = 0x03;
pub(crate) const BPF_ALU: u8 = 0x04;
pub(crate) const BPF_JMP: u8 = 0x05;
pub(crate) const BPF_JMP32: u8 = 0x06;
pub(crate) const BPF_ALU64: u8 = 0x07;

// Sizes of loads and stores (`BPF_SIZE`).
pub(crate) const BPF_W: u8 = 0x00;
pub(crate) const BPF_H: u8 = 0x08;
pub(crate) const BPF_B: u8 = 0x10;
pub(crate) const BPF_DW: u8 = 0x18;

// Modes of loads and stores (`BPF_MODE`).
pub(crate) const BPF_IMM: u8 = 0x00;
pub(crate) const BPF_ABS: u8 = 0x20;
pub(crate) const BPF_IND: u8 = 0x40;
pub(crate) const BPF_MEM: u8 = 0x60;
pub(crate) const BPF_MEMSX: u8 = 0x80;
pub(crate) const BPF_ATOMIC: u8 = 0xc0;

// Source operand (`BPF_SRC`).
pub(crate) const BPF_K: u8 = 0x00;
pub(crate) const BPF_X: u8 = 0x08;

// ALU operations (`BPF_OP` of BPF_ALU / BPF_ALU64).
pub(crate) const BPF_ADD: u8 = 0x00;
pub(crate) const BPF_SUB: u8 = 0x10;
pub(crate) const BPF_MUL: u8 = 0x20;
pub(crate) const BPF_DIV: u8 = 0x30;
pub(crate) const BPF_OR: u8 = 0x40;
pub(crate) const BPF_AND: u8 = 0x50;
pub(crate) const BPF_LSH: u8 = 0x60;
pub(crate) const BPF_RSH: u8 = 0x70;
pub(crate) const BPF_NEG: u8 = 0x80;
pub(crate) const BPF_MOD: u8 = 0x90;
pub(crate) const BPF_XOR: u8 = 0xa0;
pub(crate) const BPF_MOV: u8 = 0xb0;
pub(crate) const BPF_ARSH: u8 = 0xc0;
pub(crate) const BPF_END: u8 = 0xd0;

// Jump operations (`BPF_OP` of BPF_JMP / BPF_JMP32).
pub(crate) const BPF_JA: u8 = 0x00;
pub(crate) const BPF_JEQ: u8 = 0x10;
pub(crate) const BPF_JGT: u8 = 0x20;
pub(crate) const BPF_JGE: u8 = 0x30;
pub(crate) const BPF_JSET: u8 = 0x40;
pub(crate) const BPF_JNE: u8 = 0x50;
pub(crate) const BPF_JSGT: u8 = 0x60;
pub(crate) const BPF_JSGE: u8 = 0x70;
pub(crate) const BPF_CALL: u8 = 0x80;
pub(crate) const BPF_EXIT: u8 = 0x90;
pub(crate) const BPF_JLT: u8 = 0xa0;
pub(crate) const BPF_JLE: u8 = 0xb0;
pub(crate) const BPF_JSLT: u8 = 0xc0;
pub(crate) const BPF_JSLE: u8 = 0xd0;
pub(crate) const BPF_JCOND: u8 = 0xe0;

// BPF_END source: the byte order to convert to.
pub(crate) const BPF_TO_LE: u8 = 0x00;
pub(crate) const BPF_TO_BE: u8 = 0x08;

// BPF_ATOMIC operations (in `imm`).
pub(crate) const BPF_FETCH: i32 = 0x01;
pub(crate) const BPF_XCHG: i32 = 0xe0 | BPF_FETCH;
pub(crate) const BPF_CMPXCHG: i32 = 0xf0 | BPF_FETCH;
pub(crate) const BPF_LOAD_ACQ: i32 = 0x100;
pub(crate) const BPF_STORE_REL: i32 = 0x110;

// `src_reg` of an `ld_imm64` (what its immediate means).
pub(crate) const BPF_PSEUDO_MAP_FD: u8 = 1;
pub(crate) const BPF_PSEUDO_MAP_VALUE: u8 = 2;
pub(crate) const BPF_PSEUDO_BTF_ID: u8 = 3;
pub(crate) const BPF_PSEUDO_FUNC: u8 = 4;
pub(crate) const BPF_PSEUDO_MAP_IDX: u8 = 5;
pub(crate) const BPF_PSEUDO_MAP_IDX_VALUE: u8 = 6;

// `src_reg` of a call.
pub(crate) const BPF_PSEUDO_CALL: u8 = 1;
pub(crate) const BPF_PSEUDO_KFUNC_CALL: u8 = 2;

/// A register, `r0` .. `r10` (`MAX_BPF_REG` is 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Register {
    /// Return value of functions and helpers; the program's verdict.
    R0 = 0,
    /// First argument.
    R1,
    /// Second argument.
    R2,
    /// Third argument.
    R3,
    /// Fourth argument.
    R4,
    /// Fifth argument.
    R5,
    /// Callee-saved.
    R6,
    /// Callee-saved.
    R7,
    /// Callee-saved.
    R8,
    /// Callee-saved.
    R9,
    /// The read-only frame pointer.
    R10,
}

pub use Register::{R0, R1, R10, R2, R3, R4, R5, R6, R7, R8, R9};

impl Register {
    /// All registers, by number.
    pub const ALL: [Register; 11] = [R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10];

    /// The register's number, as in the `dst_reg`/`src_reg` fields.
    pub const fn number(self) -> u8 {
        self as u8
    }

    /// The register numbered `n`, if there is one.
    pub fn from_number(n: u8) -> Option<Register> {
        Register::ALL.get(usize::from(n)).copied()
    }
}

/// Width of a memory access (`BPF_SIZE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    /// `BPF_B`: 8 bits.
    B,
    /// `BPF_H`: 16 bits.
    H,
    /// `BPF_W`: 32 bits.
    W,
    /// `BPF_DW`: 64 bits.
    DW,
}

impl Size {
    /// The access width in bits.
    pub const fn bits(self) -> u32 {
        match self {
            Size::B => 8,
            Size::H => 16,
            Size::W => 32,
            Size::DW => 64,
        }
    }

    pub(crate) const fn code(self) -> u8 {
        match self {
            Size::B => BPF_B,
            Size::H => BPF_H,
            Size::W => BPF_W,
            Size::DW => BPF_DW,
        }
    }
}

/// Where the second operand comes from (`BPF_SRC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// `BPF_K`: the 32-bit immediate.
    K,
    /// `BPF_X`: the source register.
    X,
}

/// The second operand of an ALU operation or conditional jump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operand {
    /// An immediate (`BPF_K`), sign-extended to 64 bits by 64-bit operations.
    Imm(i32),
    /// A register (`BPF_X`).
    Reg(Register),
}

impl Operand {
    /// The `BPF_SRC` bit this operand encodes as.
    pub const fn source(self) -> Source {
        match self {
            Operand::Imm(_) => Source::K,
            Operand::Reg(_) => Source::X,
        }
    }
}

/// Width of an ALU operation: the instruction class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AluClass {
    /// `BPF_ALU`: 32-bit operation, the result zero-extended (`wN` registers).
    Alu32,
    /// `BPF_ALU64`: 64-bit operation (`rN` registers).
    Alu64,
}

impl AluClass {
    pub(crate) const fn code(self) -> u8 {
        match self {
            AluClass::Alu32 => BPF_ALU,
            AluClass::Alu64 => BPF_ALU64,
        }
    }
}

/// Width of a comparison: the jump instruction class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JmpClass {
    /// `BPF_JMP`: compares 64-bit registers.
    Jmp,
    /// `BPF_JMP32`: compares the low 32 bits (`wN` registers).
    Jmp32,
}

impl JmpClass {
    pub(crate) const fn code(self) -> u8 {
        match self {
            JmpClass::Jmp => BPF_JMP,
            JmpClass::Jmp32 => BPF_JMP32,
        }
    }
}

/// An ALU operation (`BPF_OP` of `BPF_ALU`/`BPF_ALU64`). `BPF_END` (byte
/// swaps) is its own instruction, [`Insn::Endian`] / [`Insn::ByteSwap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AluOp {
    /// `BPF_ADD`: `dst += src`.
    Add,
    /// `BPF_SUB`: `dst -= src`.
    Sub,
    /// `BPF_MUL`: `dst *= src`.
    Mul,
    /// `BPF_DIV`: unsigned `dst /= src`.
    Div,
    /// `BPF_OR`: `dst |= src`.
    Or,
    /// `BPF_AND`: `dst &= src`.
    And,
    /// `BPF_LSH`: `dst <<= src`.
    Lsh,
    /// `BPF_RSH`: logical `dst >>= src`.
    Rsh,
    /// `BPF_NEG`: `dst = -dst` (the kernel wants source `K`, immediate 0).
    Neg,
    /// `BPF_MOD`: unsigned `dst %= src`.
    Mod,
    /// `BPF_XOR`: `dst ^= src`.
    Xor,
    /// `BPF_MOV`: `dst = src`.
    Mov,
    /// `BPF_ARSH`: arithmetic `dst >>= src`.
    Arsh,
}

impl AluOp {
    pub(crate) const fn code(self) -> u8 {
        match self {
            AluOp::Add => BPF_ADD,
            AluOp::Sub => BPF_SUB,
            AluOp::Mul => BPF_MUL,
            AluOp::Div => BPF_DIV,
            AluOp::Or => BPF_OR,
            AluOp::And => BPF_AND,
            AluOp::Lsh => BPF_LSH,
            AluOp::Rsh => BPF_RSH,
            AluOp::Neg => BPF_NEG,
            AluOp::Mod => BPF_MOD,
            AluOp::Xor => BPF_XOR,
            AluOp::Mov => BPF_MOV,
            AluOp::Arsh => BPF_ARSH,
        }
    }
}

/// The operation field of the jump classes (`BPF_OP` of `BPF_JMP`/`BPF_JMP32`),
/// as the kernel names it. Instructions take the narrower types: a
/// conditional jump a [`JmpCond`]; `Ja`, `Call`, `Exit` and `Jcond` are
/// instructions of their own ([`Insn::Ja`], [`Insn::Call`], [`Insn::Exit`],
/// [`Insn::MayGoto`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JmpOp {
    /// `BPF_JA`: unconditional jump.
    Ja,
    /// `BPF_JEQ`: `==`.
    Jeq,
    /// `BPF_JGT`: unsigned `>`.
    Jgt,
    /// `BPF_JGE`: unsigned `>=`.
    Jge,
    /// `BPF_JSET`: `dst & src != 0`.
    Jset,
    /// `BPF_JNE`: `!=`.
    Jne,
    /// `BPF_JSGT`: signed `>`.
    Jsgt,
    /// `BPF_JSGE`: signed `>=`.
    Jsge,
    /// `BPF_CALL`: call a helper, kfunc or subprogram.
    Call,
    /// `BPF_EXIT`: return `r0`.
    Exit,
    /// `BPF_JLT`: unsigned `<`.
    Jlt,
    /// `BPF_JLE`: unsigned `<=`.
    Jle,
    /// `BPF_JSLT`: signed `<`.
    Jslt,
    /// `BPF_JSLE`: signed `<=`.
    Jsle,
    /// `BPF_JCOND`: a condition the kernel decides (`may_goto`).
    Jcond,
}

impl JmpOp {
    pub(crate) const fn code(self) -> u8 {
        match self {
            JmpOp::Ja => BPF_JA,
            JmpOp::Jeq => BPF_JEQ,
            JmpOp::Jgt => BPF_JGT,
            JmpOp::Jge => BPF_JGE,
            JmpOp::Jset => BPF_JSET,
            JmpOp::Jne => BPF_JNE,
            JmpOp::Jsgt => BPF_JSGT,
            JmpOp::Jsge => BPF_JSGE,
            JmpOp::Call => BPF_CALL,
            JmpOp::Exit => BPF_EXIT,
            JmpOp::Jlt => BPF_JLT,
            JmpOp::Jle => BPF_JLE,
            JmpOp::Jslt => BPF_JSLT,
            JmpOp::Jsle => BPF_JSLE,
            JmpOp::Jcond => BPF_JCOND,
        }
    }
}

/// The comparison of a conditional jump: the [`JmpOp`]s that compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JmpCond {
    /// `BPF_JEQ`: `==`.
    Jeq,
    /// `BPF_JGT`: unsigned `>`.
    Jgt,
    /// `BPF_JGE`: unsigned `>=`.
    Jge,
    /// `BPF_JSET`: `dst & src != 0`.
    Jset,
    /// `BPF_JNE`: `!=`.
    Jne,
    /// `BPF_JSGT`: signed `>`.
    Jsgt,
    /// `BPF_JSGE`: signed `>=`.
    Jsge,
    /// `BPF_JLT`: unsigned `<`.
    Jlt,
    /// `BPF_JLE`: unsigned `<=`.
    Jle,
    /// `BPF_JSLT`: signed `<`.
    Jslt,
    /// `BPF_JSLE`: signed `<=`.
    Jsle,
}

impl JmpCond {
    /// The jump operation this comparison encodes as.
    pub const fn op(self) -> JmpOp {
        match self {
            JmpCond::Jeq => JmpOp::Jeq,
            JmpCond::Jgt => JmpOp::Jgt,
            JmpCond::Jge => JmpOp::Jge,
            JmpCond::Jset => JmpOp::Jset,
            JmpCond::Jne => JmpOp::Jne,
            JmpCond::Jsgt => JmpOp::Jsgt,
            JmpCond::Jsge => JmpOp::Jsge,
            JmpCond::Jlt => JmpOp::Jlt,
            JmpCond::Jle => JmpOp::Jle,
            JmpCond::Jslt => JmpOp::Jslt,
            JmpCond::Jsle => JmpOp::Jsle,
        }
    }
}

/// Load/store addressing mode (`BPF_MODE`); each is its own instruction
/// form here, the enum names them as the kernel does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `BPF_IMM`: the 64-bit immediate load ([`Insn::LdImm64`]).
    Imm,
    /// `BPF_ABS`: legacy packet load at a constant offset ([`Insn::LoadAbs`]).
    Abs,
    /// `BPF_IND`: legacy packet load at a register offset ([`Insn::LoadInd`]).
    Ind,
    /// `BPF_MEM`: memory load or store ([`Insn::Load`], [`Insn::Store`], [`Insn::StoreImm`]).
    Mem,
    /// `BPF_MEMSX`: sign-extending memory load ([`Insn::LoadSx`]).
    Memsx,
    /// `BPF_ATOMIC`: atomic memory operation ([`Insn::Atomic`]).
    Atomic,
}

impl Mode {
    pub(crate) const fn code(self) -> u8 {
        match self {
            Mode::Imm => BPF_IMM,
            Mode::Abs => BPF_ABS,
            Mode::Ind => BPF_IND,
            Mode::Mem => BPF_MEM,
            Mode::Memsx => BPF_MEMSX,
            Mode::Atomic => BPF_ATOMIC,
        }
    }
}

/// The byte order a `BPF_ALU | BPF_END` converts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// `BPF_TO_LE`: from host order to little endian.
    ToLe,
    /// `BPF_TO_BE`: from host order to big endian (its own inverse).
    ToBe,
}

/// How many low bits of the register a byte swap converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SwapWidth {
    /// 16 bits.
    B16,
    /// 32 bits.
    B32,
    /// 64 bits.
    B64,
}

impl SwapWidth {
    /// The width in bits (the instruction's immediate).
    pub const fn bits(self) -> i32 {
        match self {
            SwapWidth::B16 => 16,
            SwapWidth::B32 => 32,
            SwapWidth::B64 => 64,
        }
    }
}

/// A `BPF_ATOMIC` operation (the instruction's immediate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AtomicOp {
    /// `BPF_ADD`: `lock *addr += src`.
    Add,
    /// `BPF_OR`: `lock *addr |= src`.
    Or,
    /// `BPF_AND`: `lock *addr &= src`.
    And,
    /// `BPF_XOR`: `lock *addr ^= src`.
    Xor,
    /// `BPF_ADD | BPF_FETCH`: add, old value into `src`.
    FetchAdd,
    /// `BPF_OR | BPF_FETCH`: or, old value into `src`.
    FetchOr,
    /// `BPF_AND | BPF_FETCH`: and, old value into `src`.
    FetchAnd,
    /// `BPF_XOR | BPF_FETCH`: xor, old value into `src`.
    FetchXor,
    /// `BPF_XCHG`: exchange `*addr` and `src`.
    Xchg,
    /// `BPF_CMPXCHG`: compare `*addr` with `r0`, store `src` if equal.
    Cmpxchg,
    /// `BPF_LOAD_ACQ`: `dst = load_acquire(src + off)`.
    LoadAcquire,
    /// `BPF_STORE_REL`: `store_release(dst + off, src)`.
    StoreRelease,
}

impl AtomicOp {
    pub(crate) const fn imm(self) -> i32 {
        match self {
            AtomicOp::Add => BPF_ADD as i32,
            AtomicOp::Or => BPF_OR as i32,
            AtomicOp::And => BPF_AND as i32,
            AtomicOp::Xor => BPF_XOR as i32,
            AtomicOp::FetchAdd => BPF_ADD as i32 | BPF_FETCH,
            AtomicOp::FetchOr => BPF_OR as i32 | BPF_FETCH,
            AtomicOp::FetchAnd => BPF_AND as i32 | BPF_FETCH,
            AtomicOp::FetchXor => BPF_XOR as i32 | BPF_FETCH,
            AtomicOp::Xchg => BPF_XCHG,
            AtomicOp::Cmpxchg => BPF_CMPXCHG,
            AtomicOp::LoadAcquire => BPF_LOAD_ACQ,
            AtomicOp::StoreRelease => BPF_STORE_REL,
        }
    }
}

/// What the immediate of an `ld_imm64` means (its `src_reg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Imm64Kind {
    /// 0: a plain 64-bit value.
    Value,
    /// `BPF_PSEUDO_MAP_FD`: a map file descriptor.
    MapFd,
    /// `BPF_PSEUDO_MAP_VALUE`: address of a map's value, plus an offset.
    MapValue,
    /// `BPF_PSEUDO_BTF_ID`: a kernel variable by BTF id.
    BtfId,
    /// `BPF_PSEUDO_FUNC`: address of a subprogram (a callback).
    Func,
    /// `BPF_PSEUDO_MAP_IDX`: a map by index into `fd_array`.
    MapIdx,
    /// `BPF_PSEUDO_MAP_IDX_VALUE`: a map value by index into `fd_array`.
    MapIdxValue,
}

impl Imm64Kind {
    pub(crate) const fn src(self) -> u8 {
        match self {
            Imm64Kind::Value => 0,
            Imm64Kind::MapFd => BPF_PSEUDO_MAP_FD,
            Imm64Kind::MapValue => BPF_PSEUDO_MAP_VALUE,
            Imm64Kind::BtfId => BPF_PSEUDO_BTF_ID,
            Imm64Kind::Func => BPF_PSEUDO_FUNC,
            Imm64Kind::MapIdx => BPF_PSEUDO_MAP_IDX,
            Imm64Kind::MapIdxValue => BPF_PSEUDO_MAP_IDX_VALUE,
        }
    }
}

/// What a `BPF_CALL` calls (its `src_reg`) and the immediate that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallTarget {
    /// A kernel helper by id (`enum bpf_func_id`, see [`helper`]).
    Helper(i32),
    /// `BPF_PSEUDO_CALL`: a BPF subprogram, by slot offset from the next slot.
    Local(i32),
    /// `BPF_PSEUDO_KFUNC_CALL`: a kernel function by BTF id (in vmlinux BTF).
    Kfunc(i32),
}

/// One typed eBPF instruction. Every field an encoding uses is named;
/// the others are zero in [`Insn::encode`]'s output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Insn {
    /// `dst op= src`, or `dst = -dst` for [`AluOp::Neg`] (offset 0).
    Alu {
        /// 32- or 64-bit operation.
        class: AluClass,
        /// The operation.
        op: AluOp,
        /// Destination (and first operand).
        dst: Register,
        /// Second operand.
        src: Operand,
    },
    /// Signed division `dst s/= src` (`BPF_DIV` with offset 1).
    SignedDiv {
        /// 32- or 64-bit operation.
        class: AluClass,
        /// Dividend and destination.
        dst: Register,
        /// Divisor.
        src: Operand,
    },
    /// Signed modulo `dst s%= src` (`BPF_MOD` with offset 1).
    SignedMod {
        /// 32- or 64-bit operation.
        class: AluClass,
        /// Dividend and destination.
        dst: Register,
        /// Divisor.
        src: Operand,
    },
    /// Sign-extending move `dst = (sN) src` (`BPF_MOV | BPF_X`, offset N).
    MovSx {
        /// 32- or 64-bit destination.
        class: AluClass,
        /// Destination.
        dst: Register,
        /// Source; its low `from` bits are sign-extended.
        src: Register,
        /// Width of the source value.
        from: Size,
    },
    /// `dst = addr_space_cast(src, imm >> 16, imm & 0xffff)`
    /// (`BPF_ALU64 | BPF_MOV | BPF_X`, offset 1).
    AddrSpaceCast {
        /// Destination.
        dst: Register,
        /// Source pointer.
        src: Register,
        /// Destination address space (high 16 bits) and source address space.
        imm: i32,
    },
    /// `BPF_ALU | BPF_END`: convert the low bits of `dst` to a byte order.
    Endian {
        /// Target byte order.
        order: ByteOrder,
        /// The register converted in place.
        dst: Register,
        /// How many low bits.
        width: SwapWidth,
    },
    /// `BPF_ALU64 | BPF_END`: unconditional byte swap of the low bits of `dst`.
    ByteSwap {
        /// The register swapped in place.
        dst: Register,
        /// How many low bits.
        width: SwapWidth,
    },
    /// `dst = *(size *)(src + off)` (`BPF_LDX | BPF_MEM`).
    Load {
        /// Access width; the value is zero-extended.
        size: Size,
        /// Destination.
        dst: Register,
        /// Base address.
        src: Register,
        /// Byte offset from the base.
        off: i16,
    },
    /// `dst = *(s size *)(src + off)`, sign-extended (`BPF_LDX | BPF_MEMSX`).
    LoadSx {
        /// Access width.
        size: Size,
        /// Destination.
        dst: Register,
        /// Base address.
        src: Register,
        /// Byte offset from the base.
        off: i16,
    },
    /// `*(size *)(dst + off) = src` (`BPF_STX | BPF_MEM`).
    Store {
        /// Access width.
        size: Size,
        /// Base address.
        dst: Register,
        /// Byte offset from the base.
        off: i16,
        /// The value stored.
        src: Register,
    },
    /// `*(size *)(dst + off) = imm` (`BPF_ST | BPF_MEM`).
    StoreImm {
        /// Access width.
        size: Size,
        /// Base address.
        dst: Register,
        /// Byte offset from the base.
        off: i16,
        /// The value stored.
        imm: i32,
    },
    /// An atomic operation on `*(size *)(dst + off)` (`BPF_STX | BPF_ATOMIC`);
    /// for [`AtomicOp::LoadAcquire`] `src` is the base and `dst` the result.
    Atomic {
        /// Access width.
        size: Size,
        /// The operation.
        op: AtomicOp,
        /// Base address (the destination for a load-acquire).
        dst: Register,
        /// Operand (the base for a load-acquire).
        src: Register,
        /// Byte offset from the base.
        off: i16,
    },
    /// Legacy packet load `r0 = *(size *)skb[imm]` (`BPF_LD | BPF_ABS`).
    LoadAbs {
        /// Access width.
        size: Size,
        /// Offset in the packet.
        imm: i32,
    },
    /// Legacy packet load `r0 = *(size *)skb[src + imm]` (`BPF_LD | BPF_IND`).
    LoadInd {
        /// Access width.
        size: Size,
        /// Offset register.
        src: Register,
        /// Constant part of the offset.
        imm: i32,
    },
    /// `dst = imm64` (`BPF_LD | BPF_DW | BPF_IMM`, two slots); `imm` is the
    /// first slot's immediate, `next_imm` the second's.
    LdImm64 {
        /// Destination.
        dst: Register,
        /// What the immediate means.
        kind: Imm64Kind,
        /// First slot's immediate (low half of a plain value).
        imm: i32,
        /// Second slot's immediate (high half of a plain value).
        next_imm: i32,
    },
    /// `if dst cond src goto +off`.
    Jump {
        /// 64- or 32-bit comparison.
        class: JmpClass,
        /// The comparison.
        cond: JmpCond,
        /// First operand.
        dst: Register,
        /// Second operand.
        src: Operand,
        /// Target, in slots from the next slot.
        off: i16,
    },
    /// `goto +off` (`BPF_JMP | BPF_JA`).
    Ja {
        /// Target, in slots from the next slot.
        off: i16,
    },
    /// `gotol +imm` (`BPF_JMP32 | BPF_JA`): a jump with a 32-bit offset.
    GotoLong {
        /// Target, in slots from the next slot.
        imm: i32,
    },
    /// `may_goto +off` (`BPF_JMP | BPF_JCOND`, `BPF_MAY_GOTO`).
    MayGoto {
        /// Target, in slots from the next slot.
        off: i16,
    },
    /// `call` (`BPF_JMP | BPF_CALL`).
    Call(CallTarget),
    /// `exit` (`BPF_JMP | BPF_EXIT`): return `r0`.
    Exit,
}

/// TC verdict: let the frame through (`TC_ACT_OK`, `linux/pkt_cls.h`).
pub const TC_ACT_OK: i32 = 0;
/// TC verdict: drop the frame (`TC_ACT_SHOT`, `linux/pkt_cls.h`).
pub const TC_ACT_SHOT: i32 = 2;

/// Kernel helper function ids (`enum bpf_func_id`).
pub mod helper {
    /// `void *bpf_map_lookup_elem(map, key)`.
    pub const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;
    /// `long bpf_map_update_elem(map, key, value, flags)`.
    pub const BPF_FUNC_MAP_UPDATE_ELEM: i32 = 2;
    /// `long bpf_skb_change_tail(skb, len, flags)`.
    pub const BPF_FUNC_SKB_CHANGE_TAIL: i32 = 38;
    /// `u64 bpf_ktime_get_ns(void)`.
    pub const BPF_FUNC_KTIME_GET_NS: i32 = 5;
    /// `void *bpf_ringbuf_reserve(ringbuf, size, flags)`.
    pub const BPF_FUNC_RINGBUF_RESERVE: i32 = 131;
    /// `void bpf_ringbuf_submit(data, flags)`.
    pub const BPF_FUNC_RINGBUF_SUBMIT: i32 = 132;
    /// `long bpf_skb_load_bytes(skb, offset, to, len)`.
    pub const BPF_FUNC_SKB_LOAD_BYTES: i32 = 26;
    /// `long bpf_skb_pull_data(skb, len)`.
    pub const BPF_FUNC_SKB_PULL_DATA: i32 = 39;
    /// `long bpf_l4_csum_replace(skb, offset, from, to, flags)`.
    pub const BPF_FUNC_L4_CSUM_REPLACE: i32 = 11;
    /// `bpf_l4_csum_replace` flag: the change is to the pseudo header.
    pub const BPF_F_PSEUDO_HDR: i32 = 0x10;
    /// `long bpf_loop(nr_loops, callback, ctx, flags)`.
    pub const BPF_FUNC_LOOP: i32 = 181;
}

/// Field offsets in `struct __sk_buff` (`linux/bpf.h`).
pub mod skb {
    /// `len`: the frame's length.
    pub const LEN: i16 = 0;
    /// `protocol`.
    pub const PROTOCOL: i16 = 16;
    /// `vlan_present`.
    pub const VLAN_PRESENT: i16 = 20;
    /// `ingress_ifindex`: the interface the packet arrived on.
    pub const INGRESS_IFINDEX: i16 = 36;
    /// `ifindex`: the interface the packet is on now.
    pub const IFINDEX: i16 = 40;
    /// `data`: the packet pointer.
    pub const DATA: i16 = 76;
    /// `data_end`: one past the linear data.
    pub const DATA_END: i16 = 80;
}

/// One 8-byte instruction slot as the kernel lays it out
/// (`struct bpf_insn`): opcode, 4-bit registers, offset, immediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RawInsn {
    /// Class, operation/size/mode and source bits.
    pub code: u8,
    /// `dst_reg` (4 bits).
    pub dst: u8,
    /// `src_reg` (4 bits).
    pub src: u8,
    /// Signed 16-bit offset.
    pub off: i16,
    /// Signed 32-bit immediate.
    pub imm: i32,
}

impl RawInsn {
    /// Size of one slot in bytes.
    pub const SIZE: usize = 8;

    /// Little-endian layout. Register fields keep their low 4 bits.
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = ((self.src & 0x0f) << 4) | (self.dst & 0x0f);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }

    /// Reads a little-endian slot.
    pub fn from_bytes(b: [u8; 8]) -> RawInsn {
        RawInsn {
            code: b[0],
            dst: b[1] & 0x0f,
            src: b[1] >> 4,
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// The one or two slots of an encoded instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded {
    slots: [RawInsn; 2],
    len: usize,
}

impl std::ops::Deref for Encoded {
    type Target = [RawInsn];
    fn deref(&self) -> &[RawInsn] {
        &self.slots[..self.len]
    }
}

impl Insn {
    /// Size of one instruction slot in bytes.
    pub const SLOT_SIZE: usize = RawInsn::SIZE;

    /// How many 8-byte slots the instruction takes (2 for `ld_imm64`).
    pub const fn slots(&self) -> usize {
        match self {
            Insn::LdImm64 { .. } => 2,
            _ => 1,
        }
    }

    /// The instruction's kernel fields: the encoder.
    pub fn encode(&self) -> Encoded {
        let slot = |code: u8, dst: Register, src: u8, off: i16, imm: i32| RawInsn {
            code,
            dst: dst.number(),
            src,
            off,
            imm,
        };
        // (source bit, src_reg, imm) of an operand.
        let operand = |src: Operand| match src {
            Operand::Imm(k) => (BPF_K, 0, k),
            Operand::Reg(r) => (BPF_X, r.number(), 0),
        };
        let alu = |class: AluClass, op: u8, dst: Register, src: Operand, off: i16| {
            let (bit, src_reg, imm) = operand(src);
            slot(class.code() | op | bit, dst, src_reg, off, imm)
        };
        let jmp = |op: JmpOp, off: i16, imm: i32| slot(BPF_JMP | op.code(), R0, 0, off, imm);
        let first = match *self {
            Insn::Alu {
                class,
                op,
                dst,
                src,
            } => alu(class, op.code(), dst, src, 0),
            Insn::SignedDiv { class, dst, src } => alu(class, BPF_DIV, dst, src, 1),
            Insn::SignedMod { class, dst, src } => alu(class, BPF_MOD, dst, src, 1),
            Insn::MovSx {
                class,
                dst,
                src,
                from,
            } => alu(class, BPF_MOV, dst, Operand::Reg(src), from.bits() as i16),
            Insn::AddrSpaceCast { dst, src, imm } => {
                slot(BPF_ALU64 | BPF_MOV | BPF_X, dst, src.number(), 1, imm)
            }
            Insn::Endian { order, dst, width } => {
                let to = match order {
                    ByteOrder::ToLe => BPF_TO_LE,
                    ByteOrder::ToBe => BPF_TO_BE,
                };
                slot(BPF_ALU | BPF_END | to, dst, 0, 0, width.bits())
            }
            Insn::ByteSwap { dst, width } => {
                slot(BPF_ALU64 | BPF_END | BPF_K, dst, 0, 0, width.bits())
            }
            Insn::Load {
                size,
                dst,
                src,
                off,
            } => slot(
                BPF_LDX | size.code() | Mode::Mem.code(),
                dst,
                src.number(),
                off,
                0,
            ),
            Insn::LoadSx {
                size,
                dst,
                src,
                off,
            } => slot(
                BPF_LDX | size.code() | Mode::Memsx.code(),
                dst,
                src.number(),
                off,
                0,
            ),
            Insn::Store {
                size,
                dst,
                off,
                src,
            } => slot(
                BPF_STX | size.code() | Mode::Mem.code(),
                dst,
                src.number(),
                off,
                0,
            ),
            Insn::StoreImm {
                size,
                dst,
                off,
                imm,
            } => slot(BPF_ST | size.code() | Mode::Mem.code(), dst, 0, off, imm),
            Insn::Atomic {
                size,
                op,
                dst,
                src,
                off,
            } => slot(
                BPF_STX | size.code() | Mode::Atomic.code(),
                dst,
                src.number(),
                off,
                op.imm(),
            ),
            Insn::LoadAbs { size, imm } => {
                slot(BPF_LD | size.code() | Mode::Abs.code(), R0, 0, 0, imm)
            }
            Insn::LoadInd { size, src, imm } => slot(
                BPF_LD | size.code() | Mode::Ind.code(),
                R0,
                src.number(),
                0,
                imm,
            ),
            Insn::LdImm64 {
                dst,
                kind,
                imm,
                next_imm,
            } => {
                let first = slot(BPF_LD | BPF_DW | Mode::Imm.code(), dst, kind.src(), 0, imm);
                let second = RawInsn {
                    imm: next_imm,
                    ..RawInsn::default()
                };
                return Encoded {
                    slots: [first, second],
                    len: 2,
                };
            }
            Insn::Jump {
                class,
                cond,
                dst,
                src,
                off,
            } => {
                let (bit, src_reg, imm) = operand(src);
                slot(
                    class.code() | cond.op().code() | bit,
                    dst,
                    src_reg,
                    off,
                    imm,
                )
            }
            Insn::Ja { off } => jmp(JmpOp::Ja, off, 0),
            Insn::GotoLong { imm } => slot(BPF_JMP32 | JmpOp::Ja.code(), R0, 0, 0, imm),
            Insn::MayGoto { off } => jmp(JmpOp::Jcond, off, 0),
            Insn::Call(target) => {
                let (src, imm) = match target {
                    CallTarget::Helper(id) => (0, id),
                    CallTarget::Local(off) => (BPF_PSEUDO_CALL, off),
                    CallTarget::Kfunc(id) => (BPF_PSEUDO_KFUNC_CALL, id),
                };
                slot(BPF_JMP | JmpOp::Call.code(), R0, src, 0, imm)
            }
            Insn::Exit => jmp(JmpOp::Exit, 0, 0),
        };
        Encoded {
            slots: [first, RawInsn::default()],
            len: 1,
        }
    }

    // ---- constructors for the forms lagic emits ------------------------

    /// `dst op= imm`, 64-bit.
    pub const fn alu64_imm(op: AluOp, dst: Register, imm: i32) -> Insn {
        Insn::Alu {
            class: AluClass::Alu64,
            op,
            dst,
            src: Operand::Imm(imm),
        }
    }
    /// `dst op= src`, 64-bit.
    pub const fn alu64_reg(op: AluOp, dst: Register, src: Register) -> Insn {
        Insn::Alu {
            class: AluClass::Alu64,
            op,
            dst,
            src: Operand::Reg(src),
        }
    }
    /// `wdst op= imm`, 32-bit.
    pub const fn alu32_imm(op: AluOp, dst: Register, imm: i32) -> Insn {
        Insn::Alu {
            class: AluClass::Alu32,
            op,
            dst,
            src: Operand::Imm(imm),
        }
    }
    /// `wdst op= wsrc`, 32-bit.
    pub const fn alu32_reg(op: AluOp, dst: Register, src: Register) -> Insn {
        Insn::Alu {
            class: AluClass::Alu32,
            op,
            dst,
            src: Operand::Reg(src),
        }
    }
    /// `dst = imm` (sign-extended to 64 bits).
    pub const fn mov64_imm(dst: Register, imm: i32) -> Insn {
        Insn::alu64_imm(AluOp::Mov, dst, imm)
    }
    /// `dst = src`.
    pub const fn mov64_reg(dst: Register, src: Register) -> Insn {
        Insn::alu64_reg(AluOp::Mov, dst, src)
    }
    /// Convert the low `width` bits of `dst` from big-endian to host order.
    pub const fn be(dst: Register, width: SwapWidth) -> Insn {
        Insn::Endian {
            order: ByteOrder::ToBe,
            dst,
            width,
        }
    }
    /// `dst = *(size *)(src + off)`.
    pub const fn load(size: Size, dst: Register, src: Register, off: i16) -> Insn {
        Insn::Load {
            size,
            dst,
            src,
            off,
        }
    }
    /// `*(size *)(dst + off) = src`.
    pub const fn store_reg(size: Size, dst: Register, off: i16, src: Register) -> Insn {
        Insn::Store {
            size,
            dst,
            off,
            src,
        }
    }
    /// `*(size *)(dst + off) = imm`.
    pub const fn store_imm(size: Size, dst: Register, off: i16, imm: i32) -> Insn {
        Insn::StoreImm {
            size,
            dst,
            off,
            imm,
        }
    }
    /// `if dst cond imm goto +off` (64-bit compare).
    pub const fn jmp_imm(cond: JmpCond, dst: Register, imm: i32, off: i16) -> Insn {
        Insn::Jump {
            class: JmpClass::Jmp,
            cond,
            dst,
            src: Operand::Imm(imm),
            off,
        }
    }
    /// `if dst cond src goto +off` (64-bit compare).
    pub const fn jmp_reg(cond: JmpCond, dst: Register, src: Register, off: i16) -> Insn {
        Insn::Jump {
            class: JmpClass::Jmp,
            cond,
            dst,
            src: Operand::Reg(src),
            off,
        }
    }
    /// `goto +off`.
    pub const fn ja(off: i16) -> Insn {
        Insn::Ja { off }
    }
    /// Call a kernel helper by id.
    pub const fn call_helper(id: i32) -> Insn {
        Insn::Call(CallTarget::Helper(id))
    }
    /// `exit`.
    pub const fn exit() -> Insn {
        Insn::Exit
    }
    /// `dst = imm64` (two slots).
    pub const fn ld_imm64(dst: Register, imm: u64) -> Insn {
        Insn::LdImm64 {
            dst,
            kind: Imm64Kind::Value,
            imm: imm as u32 as i32,
            next_imm: (imm >> 32) as u32 as i32,
        }
    }
    /// `dst = map` (two slots, `BPF_PSEUDO_MAP_FD`). In a
    /// [`crate::Module`]'s entry, `imm` is the index of a map in
    /// [`crate::Module::maps`]; the ELF writer zeroes it and adds a
    /// relocation against the map's symbol, which loaders resolve to a fd.
    pub const fn ld_map(dst: Register, map: i32) -> Insn {
        Insn::LdImm64 {
            dst,
            kind: Imm64Kind::MapFd,
            imm: map,
            next_imm: 0,
        }
    }
    /// `dst = &rodata + offset` (two slots, `BPF_PSEUDO_MAP_VALUE`). In a
    /// [`crate::Module`]'s entry, `offset` is a byte offset into
    /// [`crate::Module::rodata`]; the ELF writer adds a relocation against
    /// the `.rodata` symbol, which loaders resolve to the frozen array map
    /// holding it (map fd in `imm`, the offset in the second slot's `imm`).
    pub const fn ld_map_value(dst: Register, offset: i32) -> Insn {
        Insn::LdImm64 {
            dst,
            kind: Imm64Kind::MapValue,
            imm: offset,
            next_imm: 0,
        }
    }
    /// `dst = &subprogram` (two slots). In a [`crate::Module`]'s entry,
    /// `imm` is the index of a callback; the ELF writer turns it into the
    /// callback's byte offset in `.text` plus a relocation.
    pub const fn ld_func(dst: Register, imm: i32) -> Insn {
        Insn::LdImm64 {
            dst,
            kind: Imm64Kind::Func,
            imm,
            next_imm: 0,
        }
    }

    /// The jump offset (in slots) of a jump with a target, `None` for
    /// anything else (calls and exit included).
    pub const fn jump_offset(&self) -> Option<i32> {
        match *self {
            Insn::Jump { off, .. } | Insn::Ja { off } | Insn::MayGoto { off } => Some(off as i32),
            Insn::GotoLong { imm } => Some(imm),
            _ => None,
        }
    }

    /// The same jump with offset `off`; `None` if this is not a jump with a
    /// target or `off` does not fit its offset field.
    pub fn with_jump_offset(self, off: i32) -> Option<Insn> {
        let short = i16::try_from(off).ok();
        Some(match self {
            Insn::Jump {
                class,
                cond,
                dst,
                src,
                ..
            } => Insn::Jump {
                class,
                cond,
                dst,
                src,
                off: short?,
            },
            Insn::Ja { .. } => Insn::Ja { off: short? },
            Insn::MayGoto { .. } => Insn::MayGoto { off: short? },
            Insn::GotoLong { .. } => Insn::GotoLong { imm: off },
            _ => return None,
        })
    }

    /// Whether execution may continue at the next instruction (false for
    /// `exit` and unconditional jumps).
    pub const fn falls_through(&self) -> bool {
        !matches!(self, Insn::Exit | Insn::Ja { .. } | Insn::GotoLong { .. })
    }
}

/// The code bytes of `insns`: each instruction's slots, in order.
pub fn encode_all(insns: &[Insn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(insns.len() * Insn::SLOT_SIZE);
    for insn in insns {
        for slot in insn.encode().iter() {
            out.extend_from_slice(&slot.to_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(insn: Insn) -> Vec<u8> {
        encode_all(&[insn])
    }

    /// Encodings pinned to the bytes of the kernel's documentation and
    /// llvm-objdump, so that a wrong constant cannot hide behind a decoder
    /// that shares it.
    #[test]
    fn encodings_match_known_bytes() {
        assert_eq!(bytes(Insn::mov64_imm(R0, 2)), [0xb7, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(bytes(Insn::exit()), [0x95, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            bytes(Insn::mov64_reg(R6, R1)),
            [0xbf, 0x16, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            bytes(Insn::load(Size::W, R2, R6, 80)),
            [0x61, 0x62, 80, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            bytes(Insn::store_reg(Size::DW, R10, -8, R1)),
            [0x7b, 0x1a, 0xf8, 0xff, 0, 0, 0, 0]
        );
        assert_eq!(
            bytes(Insn::jmp_reg(JmpCond::Jgt, R3, R2, 5)),
            [0x2d, 0x23, 5, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            bytes(Insn::be(R4, SwapWidth::B16)),
            [0xdc, 0x04, 0, 0, 16, 0, 0, 0]
        );
        assert_eq!(
            bytes(Insn::call_helper(helper::BPF_FUNC_LOOP)),
            [0x85, 0, 0, 0, 181, 0, 0, 0]
        );
        assert_eq!(
            bytes(Insn::ld_func(R2, 3)),
            [0x18, 0x42, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            bytes(Insn::alu32_reg(AluOp::Xor, R0, R7)),
            [0xac, 0x70, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn registers_by_number() {
        for (n, r) in Register::ALL.iter().enumerate() {
            assert_eq!(usize::from(r.number()), n);
            assert_eq!(Register::from_number(n as u8), Some(*r));
        }
        assert_eq!(Register::from_number(11), None);
    }

    #[test]
    fn jump_offsets_are_patched_only_where_they_fit() {
        let j = Insn::jmp_imm(JmpCond::Jeq, R1, 0, 0);
        assert_eq!(j.with_jump_offset(-3).unwrap().jump_offset(), Some(-3));
        assert_eq!(j.with_jump_offset(40_000), None);
        assert_eq!(
            Insn::GotoLong { imm: 0 }.with_jump_offset(40_000),
            Some(Insn::GotoLong { imm: 40_000 })
        );
        assert_eq!(Insn::exit().with_jump_offset(1), None);
        assert_eq!(Insn::call_helper(1).jump_offset(), None);
    }
}
