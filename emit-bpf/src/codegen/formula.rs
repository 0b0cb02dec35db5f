//! The formula: jumping code over length tests, byte tests and scan results.
//!
//! `cond(f, t, e)` emits code that jumps to `t` when `f` holds and to `e`
//! otherwise, short-circuiting `and`/`or` the usual way. Runs after every
//! pass has stored its accept bytes; `r7`/`r8`/`r9` still hold the payload
//! start, end and length.
//!
//! Atoms are numbered in pre-order ([`crate::decision::atoms`]). An atom
//! whose outcome sends the packet to the predicate's drop jumps there
//! through a stub of its own ([`AtomStub`]), so the drop's event names the
//! atom that decided it.

use predicate_ir::{Cmp, Formula, Program};

use super::asm::{Asm, Label};
use super::scan::{
    ctx, emit_accept_test, emit_class_test, final_state_offset, regs_needed, slot_layout,
    state_scales, PassGroup,
};
use super::{frame, Verdicts, MAX_FRAME};
use crate::insn::*;

/// Where an atom's drop stub records the deciding byte.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StubOffset {
    /// No single byte (a length test).
    None,
    /// A fixed payload offset (a byte test).
    Fixed(u32),
    /// Where pass `pass` stopped early, if it was the last to (a scan
    /// walked by a callback), with the starting state of the scan's
    /// registers `slot..slot + regs` in that chunk.
    PassStop { pass: i32, slot: usize, regs: usize },
    /// The window `payload[start..start + len]` from the initial state (a
    /// scan walked inline, which never stops early).
    Window { start: u32, len: u32 },
    /// Already in [`super::verdict::OFFSET`] and
    /// [`super::verdict::SPAN_STATE`] (the `http_response` view).
    Recorded,
}

/// A drop through atom `atom`: bound to `label`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AtomStub {
    pub label: Label,
    pub atom: u32,
    pub offset: StubOffset,
}

struct Cond<'a> {
    program: &'a Program,
    /// Where each scan's drop stub finds its deciding byte.
    stop_of: Vec<StubOffset>,
    /// What every scan's final state holds per state (`scan::state_scales`).
    scales: Vec<u32>,
    v: &'a Verdicts,
    next_atom: u32,
    stubs: Vec<AtomStub>,
    /// Stream mode: `r9` holds the stream length so far (64 bits), and
    /// `len` bounds are compared as 64-bit constants.
    stream: bool,
}

impl Cond<'_> {
    /// `target`, or a new stub for this atom when `target` is the
    /// predicate's drop.
    fn via_stub(&mut self, a: &mut Asm, target: Label, atom: u32, offset: StubOffset) -> Label {
        if target != self.v.predicate {
            return target;
        }
        let label = a.label();
        self.stubs.push(AtomStub {
            label,
            atom,
            offset,
        });
        label
    }
}

/// Emits the formula; returns the drop stubs of its atoms, for
/// [`super::verdict::emit`] to bind.
pub(crate) fn emit(
    a: &mut Asm,
    program: &Program,
    groups: &[PassGroup],
    walked_inline: &[bool],
    v: &Verdicts,
) -> Vec<AtomStub> {
    a.emit(Insn::load(
        Size::H,
        R7,
        R10,
        frame::CTX + ctx::PAYLOAD_START,
    ));
    a.emit(Insn::load(Size::H, R9, R10, frame::CTX + ctx::PAYLOAD_LEN));
    let stop_of = stops(program, groups, walked_inline);
    let mut c = Cond {
        program,
        stop_of,
        scales: state_scales(program, groups),
        v,
        next_atom: 0,
        stubs: Vec::new(),
        stream: false,
    };
    cond(a, &mut c, &program.formula, v.pass, v.predicate);
    c.stubs
}

/// Stream mode: emits `formula` (over `program`'s scans, whose final states
/// are stored) jumping to `then` or `other`; `len` tests read the stream
/// length so far from [`super::stream::sframe::NEW_LEN`]. Returns the drop
/// stubs of atoms whose outcome leads to `v.predicate`.
pub(crate) fn emit_stream(
    a: &mut Asm,
    program: &Program,
    formula: &Formula,
    groups: &[PassGroup],
    v: &Verdicts,
    then: Label,
    other: Label,
) -> Vec<AtomStub> {
    a.emit(Insn::load(
        Size::DW,
        R9,
        R10,
        super::stream::sframe::NEW_LEN,
    ));
    let stop_of = stops(program, groups, &vec![false; groups.len()]);
    let mut c = Cond {
        program,
        stop_of,
        scales: state_scales(program, groups),
        v,
        next_atom: 0,
        stubs: Vec::new(),
        stream: true,
    };
    cond(a, &mut c, formula, then, other);
    c.stubs
}

/// Where each scan's drop stub finds its deciding byte: the scan's pass
/// and register slots, or (walked inline) its window.
fn stops(program: &Program, groups: &[PassGroup], walked_inline: &[bool]) -> Vec<StubOffset> {
    let mut out = vec![StubOffset::None; program.scans.len()];
    for (index, group) in groups.iter().enumerate() {
        let layout = slot_layout(program, group);
        for (&id, &slot) in group.scans.iter().zip(&layout) {
            out[id] = if walked_inline[index] {
                let w = group.window;
                StubOffset::Window {
                    start: w.start,
                    len: w.end.map_or(0, |e| e.saturating_sub(w.start)),
                }
            } else {
                StubOffset::PassStop {
                    pass: index as i32,
                    slot,
                    regs: regs_needed(&program.scans[id].machine),
                }
            };
        }
    }
    out
}

fn cond(a: &mut Asm, c: &mut Cond<'_>, f: &Formula, then: Label, other: Label) {
    let program = c.program;
    let v = c.v;
    let atom = c.next_atom;
    if matches!(
        f,
        Formula::Len { .. } | Formula::Byte { .. } | Formula::Scan(_)
    ) {
        c.next_atom += 1;
    }
    match f {
        Formula::Const(true) => a.ja(then),
        Formula::Const(false) => a.ja(other),
        Formula::Not(inner) => cond(a, c, inner, other, then),
        Formula::And(parts) => {
            let Some((last, init)) = parts.split_last() else {
                return a.ja(then);
            };
            for part in init {
                let next = a.label();
                cond(a, c, part, next, other);
                a.bind(next);
            }
            cond(a, c, last, then, other);
        }
        Formula::Or(parts) => {
            let Some((last, init)) = parts.split_last() else {
                return a.ja(other);
            };
            for part in init {
                let next = a.label();
                cond(a, c, part, then, next);
                a.bind(next);
            }
            cond(a, c, last, then, other);
        }
        Formula::Len { cmp, value } => {
            let then = c.via_stub(a, then, atom, StubOffset::None);
            let other = c.via_stub(a, other, atom, StubOffset::None);
            let op = match cmp {
                Cmp::Lt => JmpCond::Jlt,
                Cmp::Le => JmpCond::Jle,
                Cmp::Eq => JmpCond::Jeq,
                Cmp::Ne => JmpCond::Jne,
                Cmp::Ge => JmpCond::Jge,
                Cmp::Gt => JmpCond::Jgt,
            };
            if c.stream {
                a.emit(Insn::ld_imm64(R1, u64::from(*value)));
                a.jmp_reg(op, R9, R1, then);
            } else {
                a.jmp_imm(op, R9, *value as i32, then);
            }
            a.ja(other);
        }
        Formula::Byte { index, class } => {
            // index >= n: false. Otherwise read P[index] at frame offset
            // r7 + index (< r8 <= MAX_FRAME, which the verifier is told).
            let then = c.via_stub(a, then, atom, StubOffset::Fixed(*index));
            let other = c.via_stub(a, other, atom, StubOffset::Fixed(*index));
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
            let stop = c.stop_of[*id];
            let then = c.via_stub(a, then, atom, stop);
            let other = c.via_stub(a, other, atom, stop);
            a.emit(Insn::load(Size::DW, R1, R10, final_state_offset(*id)));
            emit_accept_test(
                a,
                &program.scans[*id].machine,
                c.scales[*id],
                R1,
                then,
                other,
            );
        }
    }
}
