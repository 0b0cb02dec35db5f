//! Proptest strategies over the typed instruction set: every variant of
//! [`Insn`] with every value of its fields, so encode/decode properties
//! cover the whole ISA, not only the forms lagic emits.
#![allow(dead_code)]

use emit_bpf::insn::*;
use proptest::prelude::*;

pub fn register() -> impl Strategy<Value = Register> {
    prop::sample::select(Register::ALL.to_vec())
}

pub fn size() -> impl Strategy<Value = Size> {
    prop::sample::select(vec![Size::B, Size::H, Size::W, Size::DW])
}

pub fn alu_class() -> impl Strategy<Value = AluClass> {
    prop::sample::select(vec![AluClass::Alu32, AluClass::Alu64])
}

pub fn jmp_class() -> impl Strategy<Value = JmpClass> {
    prop::sample::select(vec![JmpClass::Jmp, JmpClass::Jmp32])
}

pub fn operand() -> impl Strategy<Value = Operand> {
    prop_oneof![
        any::<i32>().prop_map(Operand::Imm),
        register().prop_map(Operand::Reg)
    ]
}

pub fn alu_op() -> impl Strategy<Value = AluOp> {
    use AluOp::*;
    prop::sample::select(vec![
        Add, Sub, Mul, Div, Or, And, Lsh, Rsh, Neg, Mod, Xor, Mov, Arsh,
    ])
}

pub fn jmp_cond() -> impl Strategy<Value = JmpCond> {
    use JmpCond::*;
    prop::sample::select(vec![
        Jeq, Jgt, Jge, Jset, Jne, Jsgt, Jsge, Jlt, Jle, Jslt, Jsle,
    ])
}

pub fn swap_width() -> impl Strategy<Value = SwapWidth> {
    prop::sample::select(vec![SwapWidth::B16, SwapWidth::B32, SwapWidth::B64])
}

pub fn atomic_op() -> impl Strategy<Value = AtomicOp> {
    use AtomicOp::*;
    prop::sample::select(vec![
        Add,
        Or,
        And,
        Xor,
        FetchAdd,
        FetchOr,
        FetchAnd,
        FetchXor,
        Xchg,
        Cmpxchg,
        LoadAcquire,
        StoreRelease,
    ])
}

pub fn imm64_kind() -> impl Strategy<Value = Imm64Kind> {
    use Imm64Kind::*;
    prop::sample::select(vec![
        Value,
        MapFd,
        MapValue,
        BtfId,
        Func,
        MapIdx,
        MapIdxValue,
    ])
}

/// Any typed instruction.
pub fn any_insn() -> impl Strategy<Value = Insn> {
    let r = register;
    prop_oneof![
        (alu_class(), alu_op(), r(), operand()).prop_map(|(class, op, dst, src)| Insn::Alu {
            class,
            op,
            dst,
            src
        }),
        (alu_class(), r(), operand()).prop_map(|(class, dst, src)| Insn::SignedDiv {
            class,
            dst,
            src
        }),
        (alu_class(), r(), operand()).prop_map(|(class, dst, src)| Insn::SignedMod {
            class,
            dst,
            src
        }),
        (alu_class(), r(), r(), size()).prop_map(|(class, dst, src, from)| Insn::MovSx {
            class,
            dst,
            src,
            from
        }),
        (r(), r(), any::<i32>()).prop_map(|(dst, src, imm)| Insn::AddrSpaceCast { dst, src, imm }),
        (
            prop::sample::select(vec![ByteOrder::ToLe, ByteOrder::ToBe]),
            r(),
            swap_width()
        )
            .prop_map(|(order, dst, width)| Insn::Endian { order, dst, width }),
        (r(), swap_width()).prop_map(|(dst, width)| Insn::ByteSwap { dst, width }),
        (size(), r(), r(), any::<i16>()).prop_map(|(size, dst, src, off)| Insn::Load {
            size,
            dst,
            src,
            off
        }),
        (size(), r(), r(), any::<i16>()).prop_map(|(size, dst, src, off)| Insn::LoadSx {
            size,
            dst,
            src,
            off
        }),
        (size(), r(), any::<i16>(), r()).prop_map(|(size, dst, off, src)| Insn::Store {
            size,
            dst,
            off,
            src
        }),
        (size(), r(), any::<i16>(), any::<i32>()).prop_map(|(size, dst, off, imm)| {
            Insn::StoreImm {
                size,
                dst,
                off,
                imm,
            }
        }),
        (size(), atomic_op(), r(), r(), any::<i16>()).prop_map(|(size, op, dst, src, off)| {
            Insn::Atomic {
                size,
                op,
                dst,
                src,
                off,
            }
        }),
        (size(), any::<i32>()).prop_map(|(size, imm)| Insn::LoadAbs { size, imm }),
        (size(), r(), any::<i32>()).prop_map(|(size, src, imm)| Insn::LoadInd { size, src, imm }),
        (r(), imm64_kind(), any::<i32>(), any::<i32>()).prop_map(|(dst, kind, imm, next_imm)| {
            Insn::LdImm64 {
                dst,
                kind,
                imm,
                next_imm,
            }
        }),
        (jmp_class(), jmp_cond(), r(), operand(), any::<i16>()).prop_map(
            |(class, cond, dst, src, off)| Insn::Jump {
                class,
                cond,
                dst,
                src,
                off
            }
        ),
        any::<i16>().prop_map(|off| Insn::Ja { off }),
        any::<i32>().prop_map(|imm| Insn::GotoLong { imm }),
        any::<i16>().prop_map(|off| Insn::MayGoto { off }),
        any::<i32>().prop_map(|id| Insn::Call(CallTarget::Helper(id))),
        any::<i32>().prop_map(|off| Insn::Call(CallTarget::Local(off))),
        any::<i32>().prop_map(|id| Insn::Call(CallTarget::Kfunc(id))),
        Just(Insn::Exit),
    ]
}
