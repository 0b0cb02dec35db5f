//! Inline passes: a window that ends early is walked by straight-line code
//! in the entry function, without `bpf_loop`.
//!
//! A call to `bpf_loop` costs an indirect call per iteration and a context
//! on the stack; for a window of a few dozen bytes that is most of the
//! pass. A pass whose window ends at most [`MAX_INLINE_END`] bytes into the
//! payload, and whose unrolled code fits [`INLINE_BUDGET_INSNS`], is
//! emitted here instead of in [`super::scan`]:
//!
//! ```text
//!   machine registers = initial states
//!   if n <= start: goto results                  (empty window)
//!   if n >= end: r9 = data + payload start + start,
//!                one bounds check, then L unrolled steps, goto results
//!   else, for each power of two p < L, largest first, if m & p:
//!                r9 = data + payload start + start + (m's bits above p),
//!                one bounds check, then p unrolled steps
//!   results: store each scan's final state (blurred for the verifier)
//! ```
//!
//! where `L = end - start` and `m = n - start` (< L on the partial path).
//! The bits of `m` pick blocks that together step exactly `m` bytes, in
//! order, each block checked once against `data_end`.
//!
//! Invariants: every machine steps each window byte exactly once, in order;
//! the machine registers are those of [`super::scan::machine_maps`]; the
//! code stores nothing but the final states; `r6` (the skb) is preserved.
//! A bounds check that fails drops as malformed (it cannot fail on a frame
//! the prologue accepted: the payload lies inside the linear data). The
//! translation validator's `inline` module checks all of this on the
//! emitted instructions (docs/validation.md).

use predicate_ir::{ByteClass, Machine, Program};

use super::asm::{Asm, Label};
use super::scan::{
    emit_blur, emit_class_test, emit_depth_step, final_state_offset, needs_blur, regs_needed,
    slot_layout, PassGroup, StepMark, MACHINE_REG_FILE,
};
use super::{frame, CodegenError, Verdicts, MAX_FRAME};
use crate::insn::*;

/// Highest window end (payload offset) walked inline. With the largest
/// payload start (134 bytes) the whole window stays far below
/// [`MAX_FRAME`], so the position bound below never drops a real frame.
pub(crate) const MAX_INLINE_END: u32 = 512;

/// Most instructions the unrolled steps of one inline pass may take (the
/// full block plus the partial blocks, under three times the window).
const INLINE_BUDGET_INSNS: usize = 8192;

/// Most instructions all inline passes of a program may take together: the
/// entry function's jumps (prologue to verdicts) must stay within 16 bits.
pub(crate) const ENTRY_INLINE_BUDGET: usize = 12_288;

const PAYLOAD_LEN: i16 = frame::CTX + super::scan::ctx::PAYLOAD_LEN;
const PAYLOAD_START: i16 = frame::CTX + super::scan::ctx::PAYLOAD_START;
const DATA: i16 = frame::CTX + super::scan::ctx::DATA;

const BYTE: Register = R8;
const WINDOW_PTR: Register = R9;
/// The opaque zero the steps blur machine states with (see
/// `scan::OPAQUE`); here read from the entry's [`frame::OPAQUE_ZERO`].
const OPAQUE: Register = R7;

/// Labels of one emitted inline pass, resolved by the caller.
pub(crate) struct InlineMarks {
    pub start: Label,
    pub end: Label,
    pub steps: Vec<StepMark>,
    /// Word tests (see `swar.rs`): start, slow path, skip target.
    pub words: Vec<[Label; 3]>,
}

/// Instructions the inline walk of `group` would take (about), or `None`
/// when it cannot be walked inline: its window does not end early, or its
/// unrolled steps exceed [`INLINE_BUDGET_INSNS`].
pub(crate) fn cost(program: &Program, group: &PassGroup) -> Option<usize> {
    let end = group.window.end?;
    if end > MAX_INLINE_END || end <= group.window.start {
        return None;
    }
    let len = (end - group.window.start) as usize;
    let mut a = Asm::new();
    let mut cold = Vec::new();
    emit_byte(&mut a, program, group, 0, &mut Vec::new(), &mut cold);
    let then = a.label();
    emit_cold(&mut a, cold, then);
    a.bind(then);
    // The whole block plus the partial blocks (under 2 * len bytes), and
    // a word test per 8 bytes where the pass has one.
    let per_byte = a.len().max(1)
        + super::swar::plan(program, group).map_or(0, |_| super::swar::TEMPLATE_SLOTS.div_ceil(8));
    let insns = per_byte * (3 * len);
    (insns <= INLINE_BUDGET_INSNS).then_some(insns)
}

/// Emits the inline pass of `group` into the entry function (the caller
/// binds nothing: `start` is the first instruction, `end` follows the last).
pub(crate) fn emit(
    a: &mut Asm,
    program: &Program,
    group: &PassGroup,
    v: &Verdicts,
) -> Result<InlineMarks, CodegenError> {
    let (start, end) = group
        .window
        .end
        .map(|end| (group.window.start, end))
        .filter(|&(s, e)| e > s && e <= MAX_INLINE_END)
        .ok_or(CodegenError::Internal("inline pass without a short window"))?;
    let len = (end - start) as i32;
    let layout = slot_layout(program, group);
    let mut steps = Vec::new();
    let mut words = Vec::new();
    let (first, last, results) = (a.label(), a.label(), a.label());

    a.bind(first);
    for (&id, &slot) in group.scans.iter().zip(&layout) {
        for reg in &MACHINE_REG_FILE[slot..slot + regs_needed(&program.scans[id].machine)] {
            a.emit(Insn::mov64_imm(*reg, Machine::INITIAL as i32));
        }
    }
    if start > 0 {
        // With start 0 the partial path steps nothing for n = 0 anyway.
        a.emit(Insn::load(Size::H, BYTE, R10, PAYLOAD_LEN));
        a.jmp_imm(JmpCond::Jle, BYTE, start as i32, results);
    }

    // The whole window: n >= end.
    let partial = a.label();
    a.emit(Insn::load(Size::H, BYTE, R10, PAYLOAD_LEN));
    a.jmp_imm(JmpCond::Jlt, BYTE, end as i32, partial);
    emit_window_ptr(a, start, None, len, v);
    emit_block(a, program, group, len, v, &mut steps, &mut words, results);

    // Part of it: m = n - start < len bytes, stepped in blocks by the bits
    // of m, largest first; the block of bit p starts at m's higher bits.
    a.bind(partial);
    let mut size = 1i32;
    while size * 2 < len {
        size *= 2;
    }
    // Every bit of m lies below 2 * size (m < len <= 2 * size).
    let bits = 2 * size - 1;
    while size >= 1 && size < len {
        let skip = a.label();
        a.emit(Insn::load(Size::H, BYTE, R10, PAYLOAD_LEN));
        if start > 0 {
            a.emit(Insn::alu64_imm(AluOp::Sub, BYTE, start as i32));
        }
        a.emit(Insn::alu64_imm(AluOp::And, BYTE, size));
        a.jmp_imm(JmpCond::Jeq, BYTE, 0, skip);
        let higher = bits & !(2 * size - 1);
        emit_window_ptr(a, start, (higher != 0).then_some(higher), size, v);
        emit_block(a, program, group, size, v, &mut steps, &mut words, skip);
        a.bind(skip);
        size /= 2;
    }
    a.bind(results);
    // Blur the final states before they are stored (see `frame::FINAL_STATES`):
    // the verifier must not keep paths apart by the state a scan ended in,
    // or every pass would double the paths the next one is checked on.
    a.emit(Insn::load(Size::W, OPAQUE, R10, frame::OPAQUE_ZERO));
    for (&id, &slot) in group.scans.iter().zip(&layout) {
        let state_slot = match &program.scans[id].machine {
            Machine::Dfa(_) => slot,
            Machine::Depth(_) => slot + 1, // the mode decides acceptance
        };
        let reg = MACHINE_REG_FILE[state_slot];
        a.emit(Insn::alu32_reg(AluOp::Xor, reg, OPAQUE));
        a.emit(Insn::store_reg(Size::DW, R10, final_state_offset(id), reg));
    }
    a.bind(last);
    Ok(InlineMarks {
        start: first,
        end: last,
        steps,
        words,
    })
}

/// `r9` = the frame pointer of a block of `size` bytes: the window's start
/// plus, on the partial path, the bits `higher` of `m` (the blocks before
/// it). Derived afresh for every block, so every path into a block holds
/// the same pointer for the verifier and the paths prune into one another.
/// The bound keeps the block below MAX_PACKET_OFF for the verifier; no
/// accepted frame fails it (window end + payload start < 512 + 134).
fn emit_window_ptr(a: &mut Asm, start: u32, higher: Option<i32>, size: i32, v: &Verdicts) {
    match higher {
        Some(mask) => {
            a.emit(Insn::load(Size::H, WINDOW_PTR, R10, PAYLOAD_LEN));
            if start > 0 {
                a.emit(Insn::alu64_imm(AluOp::Sub, WINDOW_PTR, start as i32));
            }
            a.emit(Insn::alu64_imm(AluOp::And, WINDOW_PTR, mask));
            a.emit(Insn::load(Size::H, BYTE, R10, PAYLOAD_START));
            a.emit(Insn::alu64_reg(AluOp::Add, WINDOW_PTR, BYTE));
        }
        None => a.emit(Insn::load(Size::H, WINDOW_PTR, R10, PAYLOAD_START)),
    }
    if start > 0 {
        a.emit(Insn::alu64_imm(AluOp::Add, WINDOW_PTR, start as i32));
    }
    a.jmp_imm(JmpCond::Jgt, WINDOW_PTR, MAX_FRAME - size, v.drop);
    a.emit(Insn::load(Size::DW, BYTE, R10, DATA));
    a.emit(Insn::alu64_reg(AluOp::Add, WINDOW_PTR, BYTE));
}

/// One block: a bounds check for `size` bytes at `r9`, then `size`
/// unrolled steps reading `r9 + 0 .. r9 + size - 1`. Where the pass has a
/// word test (`swar.rs`), each whole 8-byte word is tested first and its
/// steps, placed after the block, run only when the test fails.
#[allow(clippy::too_many_arguments)]
fn emit_block(
    a: &mut Asm,
    program: &Program,
    group: &PassGroup,
    size: i32,
    v: &Verdicts,
    steps: &mut Vec<StepMark>,
    words: &mut Vec<[Label; 3]>,
    then: Label,
) {
    let blur = needs_blur(program, group);
    a.emit(Insn::mov64_reg(BYTE, WINDOW_PTR));
    a.emit(Insn::alu64_imm(AluOp::Add, BYTE, size));
    a.emit(Insn::load(
        Size::DW,
        OPAQUE,
        R10,
        frame::CTX + super::scan::ctx::DATA_END,
    ));
    a.jmp_reg(JmpCond::Jgt, BYTE, OPAQUE, v.drop);
    if blur {
        a.emit(Insn::load(Size::W, OPAQUE, R10, frame::OPAQUE_ZERO));
    }
    let mut cold = Vec::new();
    let range = super::swar::plan(program, group);
    let word_bytes = if range.is_some() { size / 8 * 8 } else { 0 };
    let mut slow_paths = Vec::new();
    if let Some(range) = range {
        for word in 0..size / 8 {
            let (start, slow, skip) = (a.label(), a.label(), a.label());
            a.bind(start);
            super::swar::template(range, (8 * word) as i16, slow, a);
            a.bind(skip);
            words.push([start, slow, skip]);
            slow_paths.push((word, slow, skip));
        }
    }
    for j in word_bytes..size {
        emit_byte(a, program, group, j as i16, steps, &mut cold);
    }
    a.ja(then);
    // The words' byte steps, out of the way of the common case.
    for (word, slow, skip) in slow_paths {
        a.bind(slow);
        for j in 8 * word..8 * word + 8 {
            emit_byte(a, program, group, j as i16, steps, &mut cold);
        }
        a.ja(skip);
    }
    emit_cold(a, cold, then);
}

/// The steps of every machine of the group on the byte at `r9 + offset`.
/// Each machine loads the byte itself (see `scan::emit_byte`).
fn emit_byte(
    a: &mut Asm,
    program: &Program,
    group: &PassGroup,
    offset: i16,
    marks: &mut Vec<StepMark>,
    cold: &mut Vec<Cold>,
) {
    let layout = slot_layout(program, group);
    let blur = needs_blur(program, group);
    for (machine_index, (&id, &slot)) in group.scans.iter().zip(&layout).enumerate() {
        let end = StepMark::open(a, marks, machine_index, offset as u16);
        a.emit(Insn::load(Size::B, BYTE, WINDOW_PTR, offset));
        let machine = &program.scans[id].machine;
        match machine {
            Machine::Dfa(dfa) => emit_dfa_step(a, &dfa.next, MACHINE_REG_FILE[slot], cold),
            Machine::Depth(counter) => emit_depth_step(
                a,
                counter,
                MACHINE_REG_FILE[slot],
                MACHINE_REG_FILE[slot + 1],
            ),
        }
        if blur {
            emit_blur(a, machine, slot);
        }
        a.bind(end);
    }
}

/// A step's rarely taken code, placed after its block so that the common
/// case (the state stays) runs without a taken jump.
pub(crate) struct Cold {
    label: Label,
    done: Label,
    row: [u32; 256],
    state: u32,
    reg: Register,
    /// What the hot test subtracted from the byte (added back first).
    rebase: i32,
}

/// One DFA transition on the byte in r8, state in `reg`, laid out for
/// the common case of a window: the state stays, through not-taken jumps
/// only. A DFA of one live state whose every other byte leads to its one
/// sink (an `all` of a class) needs no dispatch on the state: stepping the
/// sink with the live state's code leaves it in the sink.
fn emit_dfa_step(a: &mut Asm, next: &[[u32; 256]], reg: Register, cold: &mut Vec<Cold>) {
    let done = a.label();
    let live: Vec<u32> = (0..next.len() as u32)
        .filter(|&s| next[s as usize].iter().any(|&t| t != s))
        .collect();
    if let [only] = live.as_slice() {
        let row = &next[*only as usize];
        let sink_only = next.len() == 2 && row.iter().all(|&t| t == *only || t == 1 - *only);
        if !sink_only {
            a.jmp_imm(JmpCond::Jne, reg, *only as i32, done);
        }
        emit_row_hot(a, row, *only, reg, done, cold);
        a.bind(done);
        return;
    }
    let state_labels: Vec<Label> = live.iter().map(|_| a.label()).collect();
    for (i, &s) in live.iter().enumerate() {
        if i + 1 == live.len() && live.len() == next.len() {
            a.ja(state_labels[i]);
        } else {
            a.jmp_imm(JmpCond::Jeq, reg, s as i32, state_labels[i]);
        }
    }
    a.ja(done);
    for (i, &s) in live.iter().enumerate() {
        a.bind(state_labels[i]);
        emit_row_hot(a, &next[s as usize], s, reg, done, cold);
        a.ja(done);
    }
    a.bind(done);
}

/// State `s`'s transitions: bytes in the widest range that keeps the state
/// fall through to `done`; the rest go to the row's cold code.
fn emit_row_hot(
    a: &mut Asm,
    row: &[u32; 256],
    s: u32,
    reg: Register,
    done: Label,
    cold: &mut Vec<Cold>,
) {
    let own = ByteClass::from_bytes((0..=255u8).filter(|&b| row[usize::from(b)] == s));
    let Some(&(lo, hi)) = own
        .ranges()
        .iter()
        .max_by_key(|&&(lo, hi)| u16::from(hi) - u16::from(lo))
    else {
        return emit_row(a, row, s, reg, done);
    };
    let label = a.label();
    let mut rebase = 0;
    if lo > 0 && hi < 255 {
        // One test for both ends: byte - lo wraps below lo (32-bit).
        a.emit(Insn::alu32_imm(AluOp::Sub, BYTE, i32::from(lo)));
        a.jmp_imm(JmpCond::Jgt, BYTE, i32::from(hi - lo), label);
        rebase = i32::from(lo);
    } else if hi < 255 {
        a.jmp_imm(JmpCond::Jgt, BYTE, i32::from(hi), label);
    } else if lo > 0 {
        a.jmp_imm(JmpCond::Jlt, BYTE, i32::from(lo), label);
    }
    a.ja(done);
    cold.push(Cold {
        label,
        done,
        row: *row,
        state: s,
        reg,
        rebase,
    });
}

/// Emits a jump to `then` and the cold code of a block's steps.
fn emit_cold(a: &mut Asm, cold: Vec<Cold>, then: Label) {
    a.ja(then);
    for c in cold {
        a.bind(c.label);
        if c.rebase != 0 {
            a.emit(Insn::alu32_imm(AluOp::Add, BYTE, c.rebase));
        }
        emit_row(a, &c.row, c.state, c.reg, c.done);
    }
}

/// State `s`'s whole row: bytes that keep the state jump to `done`, the
/// most common other target falls through to its assignment.
fn emit_row(a: &mut Asm, row: &[u32; 256], s: u32, reg: Register, done: Label) {
    let mut targets: Vec<(u32, Vec<u8>)> = Vec::new();
    for b in 0..=255u8 {
        let t = row[usize::from(b)];
        match targets.iter_mut().find(|(tt, _)| *tt == t) {
            Some((_, bytes)) => bytes.push(b),
            None => targets.push((t, vec![b])),
        }
    }
    let default = targets
        .iter()
        .filter(|(t, _)| *t != s)
        .max_by_key(|(_, bytes)| bytes.len())
        .map(|(t, _)| *t)
        .unwrap_or(s);
    let mut set_labels = Vec::new();
    for (t, bytes) in &targets {
        if *t == default {
            continue;
        }
        let class = ByteClass::from_bytes(bytes.iter().copied());
        if *t == s {
            emit_class_test(a, BYTE, &class, done);
            continue;
        }
        let l = a.label();
        emit_class_test(a, BYTE, &class, l);
        set_labels.push((*t, l));
    }
    if default != s {
        a.emit(Insn::mov64_imm(reg, default as i32));
    }
    a.ja(done);
    for (t, l) in set_labels {
        a.bind(l);
        a.emit(Insn::mov64_imm(reg, t as i32));
        a.ja(done);
    }
}
