//! The formula: jumping code over length tests, byte tests and scan results.
//!
//! `cond(f, t, e)` emits code that jumps to `t` when `f` holds and to `e`
//! otherwise, short-circuiting `and`/`or` the usual way. Runs after every
//! pass has stored its accept bytes; `r7`/`r8`/`r9` still hold the payload
//! start, end and length.

use predicate_ir::{Cmp, Formula, Program};

use super::asm::{Asm, Label};
use super::scan::{ctx, emit_accept_test, emit_class_test, final_state_offset};
use super::{frame, Verdicts, MAX_FRAME};
use crate::insn::*;

pub(crate) fn emit(a: &mut Asm, program: &Program, v: &Verdicts) {
    a.emit(Insn::load(
        Size::H,
        R7,
        R10,
        frame::CTX + ctx::PAYLOAD_START,
    ));
    a.emit(Insn::load(Size::H, R9, R10, frame::CTX + ctx::PAYLOAD_LEN));
    cond(a, program, &program.formula, v.pass, v.drop, v);
}

fn cond(a: &mut Asm, program: &Program, f: &Formula, then: Label, other: Label, v: &Verdicts) {
    match f {
        Formula::Const(true) => a.ja(then),
        Formula::Const(false) => a.ja(other),
        Formula::Not(inner) => cond(a, program, inner, other, then, v),
        Formula::And(parts) => {
            let Some((last, init)) = parts.split_last() else {
                return a.ja(then);
            };
            for part in init {
                let next = a.label();
                cond(a, program, part, next, other, v);
                a.bind(next);
            }
            cond(a, program, last, then, other, v);
        }
        Formula::Or(parts) => {
            let Some((last, init)) = parts.split_last() else {
                return a.ja(other);
            };
            for part in init {
                let next = a.label();
                cond(a, program, part, then, next, v);
                a.bind(next);
            }
            cond(a, program, last, then, other, v);
        }
        Formula::Len { cmp, value } => {
            let op = match cmp {
                Cmp::Lt => JmpCond::Jlt,
                Cmp::Le => JmpCond::Jle,
                Cmp::Eq => JmpCond::Jeq,
                Cmp::Ne => JmpCond::Jne,
                Cmp::Ge => JmpCond::Jge,
                Cmp::Gt => JmpCond::Jgt,
            };
            a.jmp_imm(op, R9, *value as i32, then);
            a.ja(other);
        }
        Formula::Byte { index, class } => {
            // index >= n: false. Otherwise read P[index] at frame offset
            // r7 + index (< r8 <= MAX_FRAME, which the verifier is told).
            a.jmp_imm(JmpCond::Jle, R9, *index as i32, other);
            a.emit(Insn::mov64_reg(R1, R7));
            a.emit(Insn::alu64_imm(AluOp::Add, R1, *index as i32));
            a.jmp_imm(JmpCond::Jge, R1, MAX_FRAME, v.drop);
            a.emit(Insn::load(Size::DW, R2, R10, frame::CTX + ctx::DATA));
            a.emit(Insn::load(Size::DW, R3, R10, frame::CTX + ctx::DATA_END));
            a.emit(Insn::alu64_reg(AluOp::Add, R2, R1));
            a.emit(Insn::mov64_reg(R4, R2));
            a.emit(Insn::alu64_imm(AluOp::Add, R4, 1));
            a.jmp_reg(JmpCond::Jgt, R4, R3, v.drop);
            a.emit(Insn::load(Size::B, R1, R2, 0));
            emit_class_test(a, R1, class, then);
            a.ja(other);
        }
        Formula::Scan(id) => {
            a.emit(Insn::load(Size::DW, R1, R10, final_state_offset(*id)));
            emit_accept_test(a, &program.scans[*id].machine, R1, then, other);
        }
    }
}
