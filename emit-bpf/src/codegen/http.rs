//! The `http_response` view in a stream diode: the per-byte dispatch.
//!
//! A stream program with the view (`predicate_ir::StreamProgram::http`)
//! keeps, in the flow value after the stream fields ([`value`]): the
//! framing DFA's state (`predicate_ir::http_frame`), the phase (header
//! block or body), the length of the current part (header block or body
//! so far, 64 bits), the body bytes left (in a header block: the
//! Content-Length built so far, 64 bits), then the machine registers of
//! the header scans and of the body scans.
//!
//! Rules 1-8 of `stream.rs` run unchanged. Rule 9 becomes: one `bpf_loop`
//! callback steps the segment's new bytes one per iteration, working on
//! the flow value directly (its pointer is read from the entry's stack):
//!
//! - a header byte: refused if the block already holds
//!   `MAX_HEADER_BLOCK` bytes; the framing DFA steps (the dead state is a
//!   violation); a digit state multiplies the Content-Length by ten and
//!   adds the digit (an overflow is a violation); every header scan whose
//!   window holds the byte's offset in the block steps. At an end state
//!   the headers' exact formula must hold for the block; the header scans
//!   and the framing restart; after `end_body`, the body scans restart
//!   and the phase becomes body, or, for a Content-Length of 0, the body's
//!   exact formula must hold for the empty body;
//! - a body byte: every body scan whose window holds its offset steps;
//!   the byte that makes the bytes left 0 ends the body: the body's exact
//!   formula must hold, and the next header block starts. Once every body
//!   scan's window is behind the body (none runs to its end), its bytes
//!   only count: the callback counts them up to the body's last byte in
//!   one go and skips there, or, if the segment ends first, counts the
//!   segment's rest and stops the loop (`emit_body_skip`).
//!
//! A violation ends the loop and latches the flow (reason `predicate`),
//! its event naming what decided (`decision::stream_atoms`): the callback
//! records the atom (the framing's, or the exact meaning's atom that failed
//! where a part ended) before it stops, and the byte is the last iteration
//! `bpf_loop` ran; a stream formula failing after the loop names its atom
//! and the segment's bytes of the part (for a `len <`/`<=` bound the one
//! byte that broke it; for a scan whose window starts in the segment, a
//! span the reader replays from the initial state).
//! After the loop, the unfinished part's stream formula must hold (none
//! for a header block not started yet), and with FIN the stream must end
//! right after a complete response. Then the segment is committed as in
//! `stream.rs`.
//!
//! Invariants: the value's fields change only inside the loop of a
//! segment judged under the flow's flag, and every outcome of that
//! segment either commits it or latches the flow, so a half-judged state
//! is never judged from again. Windows and `len` count from the part's
//! first byte, as in `predicate_ir::http_view`.

use predicate_ir::http_frame::HttpFrame;
use predicate_ir::http_view::MAX_HEADER_BLOCK;
use predicate_ir::{Cmp, Formula, HttpProgram, Machine, Program, ScanId, StreamProgram};

use super::asm::{Asm, Label};
use super::formula::{AtomStub, StubOffset};
use super::scan::{self, ctx};
use super::stream::{self, sframe};
use super::verdict::{OFFSET, SPAN_STATE};
use super::{frame, CodegenError, Verdicts, MAX_FRAME};
use crate::codemap::{HttpMachine, HttpMap, HttpStep, StateEncoding};
use crate::decision::NONE;
use crate::insn::*;
use crate::module::Function;

/// The view's fields in the flow value, after the stream fields.
pub mod value {
    use super::super::stream::value::SLOTS;
    /// `u32`: the framing DFA's state.
    pub const FRAME_STATE: i16 = SLOTS as i16;
    /// `u32`: 0 in a header block, 1 in a body.
    pub const PHASE: i16 = FRAME_STATE + 4;
    /// `u64`: bytes of the current header block or body so far.
    pub const PART_LEN: i16 = PHASE + 4;
    /// `u64`: in a body, its bytes still to come; in a header block, the
    /// Content-Length built so far.
    pub const LEFT: i16 = PART_LEN + 8;
    /// The header scans' machine registers (`u32` each), then the body's.
    pub const SCAN_SLOTS: i16 = LEFT + 8;
    /// The fields above in `u32` slots of [`super::super::stream::value`].
    pub const FIELD_SLOTS: usize = 6;
}

/// Status word of the callback (beside `scan.rs`'s running and failed).
const STATUS_VIOLATION: i32 = 3;
/// Status word: the callback accounted for the rest of the segment (a
/// body's bytes past every body scan's window) and stopped the loop early.
const STATUS_ACCOUNTED: i32 = 4;
/// Index of the next byte the callback must step: the bytes before it
/// were accounted for in bulk ([`body_skip_from`]); 0 at each segment's
/// start. The lower half of a scan register cell of `scan.rs`'s context,
/// which no pass of the view uses.
const SKIP_TO: i16 = ctx::START[0];
/// With [`STATUS_VIOLATION`]: the atom that decided
/// (`decision::stream_atoms`). The stop word of `scan.rs`'s context, which
/// no pass of the view writes.
const ATOM: i16 = ctx::STOP;
const PHASE_BODY: i32 = 1;

/// Where the callback finds the flow value's pointer, from the context.
const VALUE_PTR_FROM_CTX: i16 = sframe::VALUE_PTR - frame::CTX;

/// Registers of the callback: context, flow value, byte, part length.
const CTX: Register = R6;
const VALUE: Register = R7;
const BYTE: Register = R8;
const LEN: Register = R9;
/// The byte's index in the payload, until a machine steps.
const INDEX: Register = R5;

/// The first value slot (index in `u32`s from [`value::SCAN_SLOTS`]) of
/// every scan of `program`, starting at `first`.
fn scan_slots(program: &Program, first: usize) -> (Vec<usize>, usize) {
    let mut next = first;
    let slots = program
        .scans
        .iter()
        .map(|s| {
            let at = next;
            next += scan::regs_needed(&s.machine);
            at
        })
        .collect();
    (slots, next)
}

/// The two parts' programs and where their scans live.
struct Parts<'p> {
    headers: &'p Program,
    headers_complete: &'p Formula,
    head_slots: Vec<usize>,
    body: &'p Program,
    body_complete: &'p Formula,
    body_slots: Vec<usize>,
    /// Every scan slot.
    slots: usize,
    /// The first atom number of the header predicate's stream meaning, its
    /// exact meaning, the body's two, and the framing's atom, in
    /// `decision::stream_atoms`'s order.
    atoms: [u32; 5],
}

impl<'p> Parts<'p> {
    fn new(program: &'p StreamProgram, http: &'p HttpProgram) -> Self {
        let (head_slots, after_head) = scan_slots(&program.program, 0);
        let (body_slots, slots) = scan_slots(&http.body.program, after_head);
        let mut atoms = [0; 5];
        let formulas = [
            &program.program.formula,
            &program.complete,
            &http.body.program.formula,
            &http.body.complete,
        ];
        for (k, f) in formulas.into_iter().enumerate() {
            atoms[k + 1] = atoms[k] + atom_count(f);
        }
        Parts {
            headers: &program.program,
            headers_complete: &program.complete,
            head_slots,
            body: &http.body.program,
            body_complete: &http.body.complete,
            body_slots,
            slots,
            atoms,
        }
    }
}

fn slot_off(slot: usize) -> i16 {
    value::SCAN_SLOTS + 4 * slot as i16
}

/// The body length from which no body scan steps any more (every body
/// scan's window ends by it), `None` when a window runs to the body's end.
/// From there a body byte only counts: the callback accounts for a run of
/// them at once.
fn body_skip_from(body: &Program) -> Option<u64> {
    body.scans
        .iter()
        .try_fold(0, |most, s| Some(most.max(u64::from(s.window.end?))))
}

/// Value slots (`u32`s after the stream fields) a program with the view
/// needs.
fn value_slots(parts: &Parts<'_>) -> usize {
    value::FIELD_SLOTS + parts.slots
}

/// Compiles a stream program with the `http_response` view.
pub(crate) fn compile(
    program: &StreamProgram,
    http: &HttpProgram,
    options: &crate::Options,
) -> Result<(crate::module::Module, crate::codemap::CodeMap), CodegenError> {
    let parts = Parts::new(program, http);
    let slots = value_slots(&parts);
    for p in [program, &http.body] {
        stream::check_fits(p, 0)?;
    }
    // Header scans first, then the body's, as the view walks them.
    let all_scans: Vec<_> = program
        .program
        .scans
        .iter()
        .chain(&http.body.program.scans)
        .collect();
    if all_scans.len() > stream::MAX_STREAM_SCANS {
        return Err(CodegenError::TooManyScans {
            path: all_scans[stream::MAX_STREAM_SCANS].path.clone(),
            scans: all_scans.len(),
            max: stream::MAX_STREAM_SCANS,
            kind: "stream",
            why: "the stream frame holds the flow key and stream scalars below the final states",
        });
    }
    if slots > stream::MAX_STREAM_SLOTS {
        return Err(CodegenError::TooManyStreamSlots {
            path: "$.view.http_response".to_string(),
            slots,
            max: stream::MAX_STREAM_SLOTS,
        });
    }
    let mut entry = Asm::new();
    let v = Verdicts::new(&mut entry);
    super::packet::emit_prologue(&mut entry, &program.program.policy, &v, true);
    stream::emit_segment(&mut entry, &v, stream::value::size(slots));

    let (insns, steps, loop_atoms) = emit_callback(&parts, &http.frame)?;
    let mut passes = super::Passes::with_capacity(1);
    let walk_failed = entry.label();
    let violated = entry.label();
    emit_walk(&mut entry, 0, walk_failed, violated);
    let partial = entry.label();
    entry.bind(partial);
    passes.entry_marks.push(partial);
    let mut stubs = Vec::new();
    emit_after_walk(&mut entry, &parts, &v, &mut stubs);
    entry.bind(violated);
    emit_loop_violation(&mut entry, &loop_atoms, &v, &mut stubs);
    entry.bind(walk_failed);
    stream::emit_latch_judged(&mut entry);
    entry.ja(v.latched);
    super::verdict::emit(&mut entry, &v, &stubs, options, true);

    passes.callbacks.push(Function {
        name: "http_bytes_0".to_string(),
        insns,
    });
    let (module, mut map) = super::finish(
        &program.program,
        entry,
        passes,
        stream::maps(slots, options.flows),
        Vec::new(),
    )?;
    map.http = Some(HttpMap { callback: 0, steps });
    Ok((module, map))
}

/// In the entry: the loop over the segment's new bytes (all of its
/// payload: rule 7 passed). A violation goes to `violated` (r0: the
/// iterations run, the violating byte's among them), a byte not read or a
/// loop cut short to `failed`.
fn emit_walk(a: &mut Asm, callback: i32, failed: Label, violated: Label) {
    let done = a.label();
    a.emit(Insn::load(Size::H, R1, R10, frame::CTX + ctx::PAYLOAD_LEN));
    a.jmp_imm(JmpCond::Jeq, R1, 0, done);
    a.emit(Insn::load(Size::DW, R2, R10, frame::OPAQUE_ZERO));
    a.emit(Insn::store_reg(Size::W, R10, frame::CTX + ctx::STATUS, R2));
    a.emit(Insn::store_reg(Size::W, R10, frame::CTX + SKIP_TO, R2));
    a.emit(Insn::ld_func(R2, callback));
    a.emit(Insn::mov64_reg(R3, R10));
    a.emit(Insn::alu64_imm(AluOp::Add, R3, frame::CTX as i32));
    a.emit(Insn::mov64_imm(R4, 0));
    a.emit(Insn::call_helper(helper::BPF_FUNC_LOOP));
    a.emit(Insn::load(Size::W, R1, R10, frame::CTX + ctx::STATUS));
    a.jmp_imm(JmpCond::Jeq, R1, scan::STATUS_FAILED, failed);
    a.jmp_imm(JmpCond::Jeq, R1, STATUS_VIOLATION, violated);
    a.jmp_imm(JmpCond::Jeq, R1, STATUS_ACCOUNTED, done);
    // Every iteration ran (a negative r0 is an error of bpf_loop).
    a.emit(Insn::load(Size::H, R2, R10, frame::CTX + ctx::PAYLOAD_LEN));
    a.jmp_reg(JmpCond::Jne, R0, R2, failed);
    a.bind(done);
}

/// In the entry, after a violation in the loop (`emit_walk`'s `violated`):
/// the predicate's drop, naming the atom the callback recorded
/// (`loop_atoms`: every atom it may record) and the byte it stopped on.
fn emit_loop_violation(a: &mut Asm, loop_atoms: &[u32], v: &Verdicts, stubs: &mut Vec<AtomStub>) {
    // bpf_loop returned the iterations run: the last one's index is the
    // violating byte's offset in the payload.
    let none = a.label();
    let known = a.label();
    a.jmp_imm(JmpCond::Jslt, R0, 1, none);
    a.emit(Insn::alu64_imm(AluOp::Sub, R0, 1));
    a.jmp_imm(JmpCond::Jgt, R0, 0xFFFE, none);
    a.emit(Insn::alu64_imm(AluOp::Or, R0, 1 << 16));
    a.emit(Insn::store_reg(Size::W, R10, OFFSET, R0));
    a.ja(known);
    a.bind(none);
    a.emit(Insn::store_imm(Size::W, R10, OFFSET, NONE as i32));
    a.bind(known);
    // The atom before the span state: they share a stack word.
    a.emit(Insn::load(Size::W, R2, R10, frame::CTX + ATOM));
    for word in SPAN_STATE {
        a.emit(Insn::store_imm(Size::W, R10, word, NONE as i32));
    }
    for &atom in loop_atoms {
        let label = a.label();
        a.jmp_imm(JmpCond::Jeq, R2, atom as i32, label);
        stubs.push(AtomStub {
            label,
            atom,
            offset: StubOffset::Recorded,
        });
    }
    a.ja(v.predicate);
}

/// In the entry, where the stream formula of the unfinished part failed on
/// `leaf` (`LEN`: the part's length with the segment): the deciding
/// byte's span, into the stack words the drop reads. The segment's bytes
/// of the part after the last judged segment hold it (that one passed);
/// for a scan, those of its window, replayable from its initial state
/// where the window starts inside the segment. A `len <` or `len <=`
/// bound fails on one byte: exact.
fn emit_part_span(a: &mut Asm, program: &Program, leaf: &Formula) {
    let none = a.label();
    let done = a.label();
    // r2 = the part's length at the segment's start (negative: the part
    // began inside it); r3 = the first part offset here, r4 = past the last.
    a.emit(Insn::load(Size::H, R1, R10, frame::CTX + ctx::PAYLOAD_LEN));
    a.emit(Insn::mov64_reg(R2, LEN));
    a.emit(Insn::alu64_reg(AluOp::Sub, R2, R1));
    a.emit(Insn::mov64_imm(R3, 0));
    let started = a.label();
    a.jmp_imm(JmpCond::Jsle, R2, 0, started);
    a.emit(Insn::mov64_reg(R3, R2));
    a.bind(started);
    a.emit(Insn::mov64_reg(R4, LEN));
    for word in SPAN_STATE {
        a.emit(Insn::store_imm(Size::W, R10, word, NONE as i32));
    }
    match leaf {
        Formula::Scan(id) => {
            let window = program.scans[*id].window;
            let from = a.label();
            a.emit(Insn::ld_imm64(R5, u64::from(window.start)));
            a.jmp_reg(JmpCond::Jgt, R3, R5, from);
            // The window starts here: the scan's registers are 0 there.
            a.emit(Insn::mov64_reg(R3, R5));
            for word in SPAN_STATE {
                a.emit(Insn::store_imm(Size::W, R10, word, 0));
            }
            a.bind(from);
            if let Some(end) = window.end {
                let to = a.label();
                a.emit(Insn::ld_imm64(R5, u64::from(end)));
                a.jmp_reg(JmpCond::Jge, R5, R4, to);
                a.emit(Insn::mov64_reg(R4, R5));
                a.bind(to);
            }
        }
        Formula::Len { cmp, value } => {
            // The first failing length: its last byte decided.
            let byte = match cmp {
                Cmp::Lt => value.checked_sub(1),
                Cmp::Le => Some(*value),
                _ => None,
            };
            if let Some(byte) = byte {
                let span = a.label();
                a.emit(Insn::ld_imm64(R5, u64::from(byte)));
                a.jmp_reg(JmpCond::Jlt, R5, R3, span);
                a.jmp_reg(JmpCond::Jge, R5, R4, span);
                a.emit(Insn::mov64_reg(R3, R5));
                a.emit(Insn::mov64_reg(R4, R5));
                a.emit(Insn::alu64_imm(AluOp::Add, R4, 1));
                a.bind(span);
            }
        }
        _ => {}
    }
    a.jmp_reg(JmpCond::Jle, R4, R3, none);
    a.emit(Insn::alu64_reg(AluOp::Sub, R4, R3));
    a.jmp_imm(JmpCond::Jgt, R4, 0xFFFE, none);
    a.emit(Insn::alu64_reg(AluOp::Sub, R3, R2));
    a.emit(Insn::alu64_imm(AluOp::Lsh, R4, 16));
    a.emit(Insn::alu64_reg(AluOp::Or, R4, R3));
    a.emit(Insn::store_reg(Size::W, R10, OFFSET, R4));
    a.ja(done);
    a.bind(none);
    a.emit(Insn::store_imm(Size::W, R10, OFFSET, NONE as i32));
    a.bind(done);
}

/// In the entry, after the loop: the unfinished part's stream formula,
/// the FIN's completeness, the commit.
fn emit_after_walk(a: &mut Asm, parts: &Parts<'_>, v: &Verdicts, stubs: &mut Vec<AtomStub>) {
    let ok = a.label();
    let body = a.label();
    a.emit(Insn::load(Size::DW, VALUE, R10, sframe::VALUE_PTR));
    a.emit(Insn::load(Size::DW, LEN, VALUE, value::PART_LEN));
    a.emit(Insn::load(Size::W, R1, VALUE, value::PHASE));
    a.jmp_imm(JmpCond::Jne, R1, 0, body);
    // A header block not started yet is not judged (the reference view
    // judges nothing after a complete response).
    a.jmp_imm(JmpCond::Jeq, LEN, 0, ok);
    let mut head_atoms = Numbering::new(parts.atoms[0], v.predicate);
    cond(
        a,
        parts.headers,
        &parts.head_slots,
        &parts.headers.formula,
        ok,
        v.predicate,
        &mut head_atoms,
    );
    a.bind(body);
    let mut body_atoms = Numbering::new(parts.atoms[2], v.predicate);
    cond(
        a,
        parts.body,
        &parts.body_slots,
        &parts.body.formula,
        ok,
        v.predicate,
        &mut body_atoms,
    );
    // A drop through an atom: where it decided, then the atom's stub.
    for (program, atoms) in [(parts.headers, head_atoms), (parts.body, body_atoms)] {
        for (label, atom, leaf) in atoms.hits {
            a.bind(label);
            emit_part_span(a, program, leaf);
            let stub = a.label();
            a.ja(stub);
            stubs.push(AtomStub {
                label: stub,
                atom,
                offset: StubOffset::Recorded,
            });
        }
    }
    a.bind(ok);
    // A FIN only right after a complete response.
    let commit = a.label();
    let refused = a.label();
    a.emit(Insn::load(Size::DW, R1, R10, sframe::FLAGS));
    a.emit(Insn::alu64_imm(AluOp::And, R1, stream::TCP_FIN));
    a.jmp_imm(JmpCond::Jeq, R1, 0, commit);
    a.emit(Insn::load(Size::DW, VALUE, R10, sframe::VALUE_PTR));
    a.emit(Insn::load(Size::W, R1, VALUE, value::PHASE));
    a.jmp_imm(JmpCond::Jne, R1, 0, refused);
    a.emit(Insn::load(Size::DW, R1, VALUE, value::PART_LEN));
    a.jmp_imm(JmpCond::Jne, R1, 0, refused);
    a.ja(commit);
    a.bind(refused);
    stream::emit_latch_judged(a);
    a.ja(v.latched);
    a.bind(commit);
    stream::emit_commit_tail(a, v);
}

/// Numbers the atoms a [`cond`] walks (as `decision::stream_atoms` lists
/// them) and diverts each jump to `drop` into a label of its atom, for
/// the caller to record which atom decided.
struct Numbering<'f> {
    next: u32,
    drop: Label,
    /// Per diverted jump: its label, its atom's number and the atom.
    hits: Vec<(Label, u32, &'f Formula)>,
}

impl<'f> Numbering<'f> {
    fn new(first: u32, drop: Label) -> Self {
        Numbering {
            next: first,
            drop,
            hits: Vec::new(),
        }
    }

    fn divert(&mut self, a: &mut Asm, target: Label, atom: u32, leaf: &'f Formula) -> Label {
        if target != self.drop {
            return target;
        }
        let label = a.label();
        self.hits.push((label, atom, leaf));
        label
    }
}

/// Atoms (leaves) of `f`, as `decision::stream_atoms` counts them.
fn atom_count(f: &Formula) -> u32 {
    match f {
        Formula::Const(_) => 0,
        Formula::Not(g) => atom_count(g),
        Formula::And(gs) | Formula::Or(gs) => gs.iter().map(atom_count).sum(),
        Formula::Len { .. } | Formula::Byte { .. } | Formula::Scan(_) => 1,
    }
}

/// Jumping code for `f` over `program`'s scans, their states in the flow
/// value at [`VALUE`] (slots `slots`), `len` tests against [`LEN`]
/// (64-bit); jumps to `atoms.drop` go through `atoms`. Clobbers r1.
fn cond<'f>(
    a: &mut Asm,
    program: &Program,
    slots: &[usize],
    f: &'f Formula,
    then: Label,
    other: Label,
    atoms: &mut Numbering<'f>,
) {
    let atom = atoms.next;
    if matches!(
        f,
        Formula::Len { .. } | Formula::Byte { .. } | Formula::Scan(_)
    ) {
        atoms.next += 1;
    }
    match f {
        Formula::Const(true) => a.ja(then),
        Formula::Const(false) => a.ja(other),
        Formula::Not(g) => cond(a, program, slots, g, other, then, atoms),
        Formula::And(gs) => {
            for g in gs {
                let next = a.label();
                cond(a, program, slots, g, next, other, atoms);
                a.bind(next);
            }
            a.ja(then);
        }
        Formula::Or(gs) => {
            for g in gs {
                let next = a.label();
                cond(a, program, slots, g, then, next, atoms);
                a.bind(next);
            }
            a.ja(other);
        }
        Formula::Len { cmp, value } => {
            let then = atoms.divert(a, then, atom, f);
            let other = atoms.divert(a, other, atom, f);
            let op = match cmp {
                Cmp::Lt => JmpCond::Jlt,
                Cmp::Le => JmpCond::Jle,
                Cmp::Eq => JmpCond::Jeq,
                Cmp::Ne => JmpCond::Jne,
                Cmp::Ge => JmpCond::Jge,
                Cmp::Gt => JmpCond::Jgt,
            };
            a.emit(Insn::ld_imm64(R1, u64::from(*value)));
            a.jmp_reg(op, LEN, R1, then);
            a.ja(other);
        }
        Formula::Scan(id) => {
            let then = atoms.divert(a, then, atom, f);
            let other = atoms.divert(a, other, atom, f);
            let machine = &program.scans[*id].machine;
            let slot = match machine {
                Machine::Dfa(_) => slots[*id],
                Machine::Depth(_) => slots[*id] + 1, // the mode decides
            };
            a.emit(Insn::load(Size::W, R1, VALUE, slot_off(slot)));
            scan::emit_accept_test(a, machine, 1, R1, then, other);
        }
        // `lower_stream` turns byte tests into scans (`check_fits`).
        Formula::Byte { .. } => a.ja(other),
    }
}

/// Steps every scan of `program` whose window holds offset [`LEN`] of the
/// part on the byte in [`BYTE`]; records each step's labels in `marks`
/// (`part` names the program). Clobbers r0-r2.
fn step_scans(
    a: &mut Asm,
    program: &Program,
    slots: &[usize],
    part: fn(ScanId) -> HttpMachine,
    marks: &mut Vec<(HttpMachine, StateEncoding, Label, Label)>,
) {
    for (id, scan) in program.scans.iter().enumerate() {
        let skip = a.label();
        if scan.window.start > 0 {
            a.emit(Insn::ld_imm64(R1, u64::from(scan.window.start)));
            a.jmp_reg(JmpCond::Jlt, LEN, R1, skip);
        }
        if let Some(end) = scan.window.end {
            a.emit(Insn::ld_imm64(R1, u64::from(end)));
            a.jmp_reg(JmpCond::Jge, LEN, R1, skip);
        }
        let off = slot_off(slots[id]);
        match &scan.machine {
            Machine::Dfa(dfa) => {
                a.emit(Insn::load(Size::W, R0, VALUE, off));
                let (start, end) = (a.label(), a.label());
                a.bind(start);
                scan::emit_dfa_step(a, &dfa.next, R0);
                a.bind(end);
                marks.push((
                    part(id),
                    StateEncoding::Dfa { reg: 0, scale: 1 },
                    start,
                    end,
                ));
                a.emit(Insn::store_reg(Size::W, VALUE, off, R0));
            }
            Machine::Depth(c) => {
                a.emit(Insn::load(Size::W, R0, VALUE, off));
                a.emit(Insn::load(Size::W, R2, VALUE, off + 4));
                let (start, end) = (a.label(), a.label());
                a.bind(start);
                scan::emit_depth_step(a, c, R0, R2);
                a.bind(end);
                let encoding = match scan::machine_maps(program, &one_scan(program, id))[0]
                    .encoding
                    .clone()
                {
                    StateEncoding::Depth { modes, .. } => StateEncoding::Depth {
                        depth_reg: 0,
                        mode_reg: 2,
                        modes,
                    },
                    other => other,
                };
                marks.push((part(id), encoding, start, end));
                a.emit(Insn::store_reg(Size::W, VALUE, off, R0));
                a.emit(Insn::store_reg(Size::W, VALUE, off + 4, R2));
            }
        }
        a.bind(skip);
    }
}

/// One DFA transition on the byte in [`BYTE`], the state in `reg`, as
/// `scan::emit_dfa_step` makes it (the same code per state), but finding
/// the state's code by binary search: the framing DFA has hundreds of
/// states, and a chain of compares costs one per state before the one it
/// looks for, on every header byte.
fn emit_dfa_step_bisected(a: &mut Asm, next: &[[u32; 256]], reg: Register) {
    /// Below this many states, a chain of compares.
    const CHAIN: usize = 4;
    fn dispatch(a: &mut Asm, reg: Register, states: &[(u32, Label)], done: Label) {
        if states.len() <= CHAIN {
            for &(s, label) in states {
                a.jmp_imm(JmpCond::Jeq, reg, s as i32, label);
            }
            a.ja(done);
            return;
        }
        let (low, high) = states.split_at(states.len() / 2);
        let upper = a.label();
        a.jmp_imm(JmpCond::Jge, reg, high[0].0 as i32, upper);
        dispatch(a, reg, low, done);
        a.bind(upper);
        dispatch(a, reg, high, done);
    }
    let done = a.label();
    // States that every byte keeps (sinks) have no code: they reach `done`.
    let live: Vec<(u32, Label)> = (0..next.len() as u32)
        .filter(|&s| next[s as usize].iter().any(|&t| t != s))
        .map(|s| (s, a.label()))
        .collect();
    dispatch(a, reg, &live, done);
    for &(s, label) in &live {
        a.bind(label);
        scan::emit_dfa_row(a, &next[s as usize], s, reg, done);
    }
    a.bind(done);
}

/// A pass group of scan `id` alone (for its machine map's mode values).
fn one_scan(program: &Program, id: ScanId) -> scan::PassGroup {
    scan::PassGroup {
        window: program.scans[id].window,
        scans: vec![id],
        table: None,
    }
}

/// Zeroes (restarts) the machine registers of `program`'s scans.
fn reset_scans(a: &mut Asm, program: &Program, slots: &[usize]) {
    for (id, scan) in program.scans.iter().enumerate() {
        for r in 0..scan::regs_needed(&scan.machine) {
            a.emit(Insn::store_imm(Size::W, VALUE, slot_off(slots[id] + r), 0));
        }
    }
}

/// In the callback, at a body byte (`LEN`: the body so far, [`INDEX`]:
/// the byte's index): once the body holds `from` bytes, no body scan
/// steps, so this byte and those after it only count, up to the body's
/// last byte, which is stepped as usual (it ends the body). If the
/// segment ends before that, its rest is counted and the loop stops
/// ([`STATUS_ACCOUNTED`]); otherwise the loop skips to the last byte
/// ([`SKIP_TO`]). Clobbers r1-r4.
fn emit_body_skip(a: &mut Asm, from: u64, cont: Label) {
    let stepped = a.label();
    let to_last = a.label();
    a.emit(Insn::ld_imm64(R1, from));
    a.jmp_reg(JmpCond::Jlt, LEN, R1, stepped);
    // r2 = bytes before the body's last (its bytes left are at least 1).
    a.emit(Insn::load(Size::DW, R2, VALUE, value::LEFT));
    a.emit(Insn::alu64_imm(AluOp::Sub, R2, 1));
    a.jmp_imm(JmpCond::Jeq, R2, 0, stepped);
    // r3 = the segment's bytes from this one on (at least 1).
    a.emit(Insn::load(Size::H, R3, CTX, ctx::PAYLOAD_LEN));
    a.emit(Insn::alu64_reg(AluOp::Sub, R3, INDEX));
    a.jmp_reg(JmpCond::Jgt, R3, R2, to_last);
    // The body goes on past the segment: count the rest, stop.
    a.emit(Insn::alu64_reg(AluOp::Add, LEN, R3));
    a.emit(Insn::store_reg(Size::DW, VALUE, value::PART_LEN, LEN));
    a.emit(Insn::load(Size::DW, R1, VALUE, value::LEFT));
    a.emit(Insn::alu64_reg(AluOp::Sub, R1, R3));
    a.emit(Insn::store_reg(Size::DW, VALUE, value::LEFT, R1));
    a.emit(Insn::store_imm(Size::W, CTX, ctx::STATUS, STATUS_ACCOUNTED));
    a.emit(Insn::mov64_imm(R0, 1));
    a.emit(Insn::exit());
    // The body's last byte is in the segment: count up to it, skip there.
    a.bind(to_last);
    a.emit(Insn::alu64_reg(AluOp::Add, LEN, R2));
    a.emit(Insn::store_reg(Size::DW, VALUE, value::PART_LEN, LEN));
    a.emit(Insn::store_imm(Size::DW, VALUE, value::LEFT, 1));
    a.emit(Insn::mov64_reg(R4, INDEX));
    a.emit(Insn::alu64_reg(AluOp::Add, R4, R2));
    a.emit(Insn::store_reg(Size::W, CTX, SKIP_TO, R4));
    a.ja(cont);
    a.bind(stepped);
}

/// The callback's code, its machine steps, and the atoms its violations
/// record.
type Callback = (Vec<Insn>, Vec<HttpStep>, Vec<u32>);

/// The callback `int http_bytes(u32 index, void *ctx)`: one byte of the
/// segment's payload (module docs). Also returns where each machine step
/// lies (byte in r8), for the code map, and every atom a violation may
/// record in [`ATOM`].
fn emit_callback(parts: &Parts<'_>, frame: &HttpFrame) -> Result<Callback, CodegenError> {
    let mut a = Asm::new();
    let a = &mut a;
    let mut marks = Vec::new();
    let fail = a.label();
    let violation = a.label();
    // The framing's violations (the header block's limit, the DFA's dead
    // state, a Content-Length overflow).
    let framing = a.label();
    let mut head_atoms = Numbering::new(parts.atoms[1], violation);
    let mut body_atoms = [
        Numbering::new(parts.atoms[3], violation),
        Numbering::new(parts.atoms[3], violation),
    ];
    let cont = a.label();
    let body = a.label();

    a.emit(Insn::mov64_reg(CTX, R2));
    // A byte accounted for already.
    a.emit(Insn::load(Size::W, R0, CTX, SKIP_TO));
    a.jmp_reg(JmpCond::Jgt, R0, R1, cont);
    a.emit(Insn::mov64_reg(INDEX, R1));
    a.emit(Insn::mov64_reg(R7, R1));
    a.emit(Insn::load(Size::H, R1, CTX, ctx::PAYLOAD_START));
    a.emit(Insn::alu64_reg(AluOp::Add, R7, R1));
    a.jmp_imm(JmpCond::Jgt, R7, MAX_FRAME - 1, fail);
    a.emit(Insn::load(Size::DW, R9, CTX, ctx::DATA));
    a.emit(Insn::load(Size::DW, R1, CTX, ctx::DATA_END));
    a.emit(Insn::alu64_reg(AluOp::Add, R9, R7));
    a.emit(Insn::mov64_reg(R2, R9));
    a.emit(Insn::alu64_imm(AluOp::Add, R2, 1));
    a.jmp_reg(JmpCond::Jgt, R2, R1, fail);
    a.emit(Insn::load(Size::B, BYTE, R9, 0));
    a.emit(Insn::load(Size::DW, VALUE, CTX, VALUE_PTR_FROM_CTX));
    a.emit(Insn::load(Size::W, R1, VALUE, value::PHASE));
    a.jmp_imm(JmpCond::Jne, R1, 0, body);

    // A header byte.
    a.emit(Insn::load(Size::DW, LEN, VALUE, value::PART_LEN));
    a.jmp_imm(JmpCond::Jge, LEN, MAX_HEADER_BLOCK as i32, framing);
    a.emit(Insn::load(Size::W, R0, VALUE, value::FRAME_STATE));
    let (step_start, step_end) = (a.label(), a.label());
    a.bind(step_start);
    emit_dfa_step_bisected(a, &frame.dfa.next, R0);
    a.bind(step_end);
    marks.push((
        HttpMachine::Frame,
        StateEncoding::Dfa { reg: 0, scale: 1 },
        step_start,
        step_end,
    ));
    a.emit(Insn::store_reg(Size::W, VALUE, value::FRAME_STATE, R0));
    // Reloaded: the verifier then forgets which state each path produced.
    a.emit(Insn::load(Size::W, R0, VALUE, value::FRAME_STATE));
    a.jmp_imm(JmpCond::Jeq, R0, frame.dead as i32, framing);
    let not_digit = a.label();
    a.jmp_imm(JmpCond::Jlt, R0, frame.digits.start as i32, not_digit);
    a.jmp_imm(JmpCond::Jge, R0, frame.digits.end as i32, not_digit);
    a.emit(Insn::load(Size::DW, R1, VALUE, value::LEFT));
    // Refused before any `n * 10 + d` could overflow (stricter than
    // `Framer`'s exact check, and unreachable: 18 digits stay below it).
    a.emit(Insn::ld_imm64(R2, (u64::MAX - 9) / 10));
    a.jmp_reg(JmpCond::Jgt, R1, R2, framing);
    a.emit(Insn::alu64_imm(AluOp::Mul, R1, 10));
    a.emit(Insn::mov64_reg(R2, BYTE));
    a.emit(Insn::alu64_imm(AluOp::Sub, R2, i32::from(b'0')));
    a.emit(Insn::alu64_reg(AluOp::Add, R1, R2));
    a.emit(Insn::store_reg(Size::DW, VALUE, value::LEFT, R1));
    a.bind(not_digit);
    step_scans(
        a,
        parts.headers,
        &parts.head_slots,
        HttpMachine::Headers,
        &mut marks,
    );
    a.emit(Insn::alu64_imm(AluOp::Add, LEN, 1));
    a.emit(Insn::store_reg(Size::DW, VALUE, value::PART_LEN, LEN));
    let head_end = a.label();
    a.emit(Insn::load(Size::W, R0, VALUE, value::FRAME_STATE));
    a.jmp_imm(JmpCond::Jeq, R0, frame.end_interim as i32, head_end);
    a.jmp_imm(JmpCond::Jeq, R0, frame.end_body as i32, head_end);
    a.ja(cont);

    // The header block ended: its exact meaning, then the next part.
    a.bind(head_end);
    let head_ok = a.label();
    cond(
        a,
        parts.headers,
        &parts.head_slots,
        parts.headers_complete,
        head_ok,
        violation,
        &mut head_atoms,
    );
    a.bind(head_ok);
    reset_scans(a, parts.headers, &parts.head_slots);
    a.emit(Insn::store_imm(Size::DW, VALUE, value::PART_LEN, 0));
    a.emit(Insn::load(Size::W, R0, VALUE, value::FRAME_STATE));
    a.emit(Insn::store_imm(Size::W, VALUE, value::FRAME_STATE, 0));
    let with_body = a.label();
    a.jmp_imm(JmpCond::Jeq, R0, frame.end_body as i32, with_body);
    // Interim: the next header block follows.
    a.emit(Insn::store_imm(Size::DW, VALUE, value::LEFT, 0));
    a.ja(cont);
    a.bind(with_body);
    reset_scans(a, parts.body, &parts.body_slots);
    let nonempty = a.label();
    a.emit(Insn::load(Size::DW, R1, VALUE, value::LEFT));
    a.jmp_imm(JmpCond::Jne, R1, 0, nonempty);
    // Content-Length 0: the empty body is complete at once.
    a.emit(Insn::mov64_imm(LEN, 0));
    cond(
        a,
        parts.body,
        &parts.body_slots,
        parts.body_complete,
        cont,
        violation,
        &mut body_atoms[0],
    );
    a.bind(nonempty);
    a.emit(Insn::store_imm(Size::W, VALUE, value::PHASE, PHASE_BODY));
    a.ja(cont);

    // A body byte.
    a.bind(body);
    a.emit(Insn::load(Size::DW, LEN, VALUE, value::PART_LEN));
    if let Some(from) = body_skip_from(parts.body) {
        emit_body_skip(a, from, cont);
    }
    step_scans(
        a,
        parts.body,
        &parts.body_slots,
        HttpMachine::Body,
        &mut marks,
    );
    a.emit(Insn::alu64_imm(AluOp::Add, LEN, 1));
    a.emit(Insn::store_reg(Size::DW, VALUE, value::PART_LEN, LEN));
    a.emit(Insn::load(Size::DW, R1, VALUE, value::LEFT));
    a.emit(Insn::alu64_imm(AluOp::Sub, R1, 1));
    a.emit(Insn::store_reg(Size::DW, VALUE, value::LEFT, R1));
    a.jmp_imm(JmpCond::Jne, R1, 0, cont);
    let body_ok = a.label();
    cond(
        a,
        parts.body,
        &parts.body_slots,
        parts.body_complete,
        body_ok,
        violation,
        &mut body_atoms[1],
    );
    a.bind(body_ok);
    a.emit(Insn::store_imm(Size::W, VALUE, value::PHASE, 0));
    a.emit(Insn::store_imm(Size::DW, VALUE, value::PART_LEN, 0));
    a.emit(Insn::store_imm(Size::W, VALUE, value::FRAME_STATE, 0));
    reset_scans(a, parts.headers, &parts.head_slots);

    a.bind(cont);
    a.emit(Insn::mov64_imm(R0, 0));
    a.emit(Insn::exit());
    // A violation records its atom first.
    let mut atoms = vec![parts.atoms[4]];
    a.bind(framing);
    a.emit(Insn::store_imm(Size::W, CTX, ATOM, parts.atoms[4] as i32));
    a.ja(violation);
    let [empty_body, body_end] = body_atoms;
    for (label, atom, _) in head_atoms
        .hits
        .into_iter()
        .chain(empty_body.hits)
        .chain(body_end.hits)
    {
        a.bind(label);
        a.emit(Insn::store_imm(Size::W, CTX, ATOM, atom as i32));
        a.ja(violation);
        atoms.push(atom);
    }
    atoms.sort_unstable();
    atoms.dedup();
    a.bind(violation);
    a.emit(Insn::store_imm(Size::W, CTX, ctx::STATUS, STATUS_VIOLATION));
    a.emit(Insn::mov64_imm(R0, 1));
    a.emit(Insn::exit());
    a.bind(fail);
    a.emit(Insn::store_imm(
        Size::W,
        CTX,
        ctx::STATUS,
        scan::STATUS_FAILED,
    ));
    a.emit(Insn::mov64_imm(R0, 1));
    a.emit(Insn::exit());
    let labels: Vec<Label> = marks.iter().flat_map(|m| [m.2, m.3]).collect();
    let (insns, slots) = std::mem::replace(a, Asm::new()).finish_marked(&labels)?;
    let steps = marks
        .into_iter()
        .zip(slots.chunks(2))
        .map(|((machine, encoding, _, _), se)| HttpStep {
            machine,
            encoding,
            start: se[0],
            end: se[1],
        })
        .collect();
    Ok((insns, steps, atoms))
}
