//! Scan passes: one `bpf_loop` call per pass, one callback per pass.
//!
//! A pass walks its window of the payload once and steps every machine of
//! the pass on each byte. The walk runs inside a `bpf_loop` callback, which
//! the verifier checks once whatever the iteration count, so a window may
//! span the whole 64 KiB payload. Each callback iteration steps a chunk of
//! `K` bytes (a power of two, chosen so the unrolled chunk stays small) or,
//! near the window's end, a single byte.
//!
//! The scan context lives on the entry function's stack at [`frame::CTX`]:
//! the spilled packet pointers, the position and end of the walk (frame
//! offsets), a status word, and one 8-byte slot per machine register. The
//! machine state is explicit there between iterations: this is the state a
//! stream mode would carry across segments.
//!
//! A pass of one DFA may begin its 64-byte chunks with a prefilter that
//! jumps over the chunk's steps (see `prefilter.rs`), or, for an `all` of
//! a class, with eight word tests (see `swar.rs`); a pass of one depth
//! counter skips the words of its largest chunks that hold no byte it
//! reacts to (`swar::DepthWords`). Passes whose window
//! ends early are emitted by `inline.rs` instead, without a callback.
//!
//! Machine registers inside the callback: DFA state in one register; the
//! depth counter in two (depth, mode), with mode [`DEPTH_FAILED`] as its sink.
//! A pass holds at most [`MACHINE_REGS`] registers' worth of machines; larger
//! IR passes are split into several emitted passes over the same window.

use predicate_ir::{
    program::{DepthCounter, BACKSLASH, QUOTE},
    ByteClass, Machine, Program, ScanId, Window,
};

use super::asm::{Asm, Label};
use super::{frame, CodegenError, Verdicts, MAX_FRAME};
use crate::codemap::{MachineMap, StateEncoding, StepRange};
use crate::insn::*;

/// Offsets inside the scan context.
///
/// Everything a callback writes (status, machine registers) is stored as a
/// u32 at an offset that is not 8-byte aligned. The verifier does not track
/// the value of such a stack write (it marks the bytes "misc"), so when it
/// re-checks the callback for the next `bpf_loop` iteration the machine
/// states are unknown scalars and the check converges after two rounds,
/// whatever the number of states. Stored aligned, every distinct state
/// constant would cost one more round, and big automata would exhaust the
/// verifier's budget.
pub(crate) mod ctx {
    /// Spilled packet pointers (after the full pull).
    pub const DATA: i16 = 0;
    pub const DATA_END: i16 = 8;
    /// Per tier `t` of the walk (see [`super::tiers`]): the first
    /// iteration index past the tier, and the frame offset where it starts.
    /// u32s in the upper halves of 8-byte slots, like everything below: the
    /// verifier does not track them, so the callback's position arithmetic
    /// never makes the entry function's payload length precise (which
    /// would keep apart, pass after pass, every path that compared it with
    /// a different window bound).
    pub const TIER_END: [i16; 3] = [20, 28, 36];
    /// The payload's start offset and length `n`, as u16s at offsets the
    /// verifier does not track (see [`super::super::frame`]): every pass and
    /// the formula reload them, so no register carries their value ranges
    /// across a `bpf_loop` call, where states with different ranges could
    /// not be merged.
    pub const PAYLOAD_START: i16 = 18;
    pub const PAYLOAD_LEN: i16 = 26;
    pub const TIER_BASE: [i16; 3] = [44, 52, 60];
    /// Where the last pass that stopped early stopped, for decision
    /// events: `(pass index + 1) << 24 | chunk size << 16 | frame offset
    /// of the chunk` in which every machine of the pass had reached a
    /// sink; 0 until a pass stops early. Written once per pass at most,
    /// never read by the scan.
    pub const STOP: i16 = 64;
    /// The machine registers of that pass as they were when that chunk
    /// began (written with [`STOP`]): register slot `s` at `START[s]`.
    /// From them and the chunk's bytes a reader finds the exact byte on
    /// which each machine sank (docs/watch.md). The lower halves of the
    /// slots' cells and of a tier cell: nothing else writes them, and
    /// they avoid `table::CTX_TABLE`, which a later table pass spills.
    pub const START: [i16; 6] = [72, 80, 96, 104, 112, 32];
    /// The status word: a u32 in the upper half of its 8-byte slot.
    pub const STATUS: i16 = 68;
    /// Machine registers: u32s in the upper halves of 8-byte slots.
    pub const SLOTS: i16 = 76;
    /// Size of the context.
    pub const SIZE: i16 = SLOTS - 4 + 8 * super::MACHINE_REGS as i16;
}

/// Status word values.
const STATUS_RUNNING: i32 = 0;
/// A byte could not be read: the packet is not fully inspectable.
pub(crate) const STATUS_FAILED: i32 = 1;
/// Every machine reached a sink: the rest of the window cannot matter.
const STATUS_DECIDED: i32 = 2;

/// Registers free for machine state inside a callback: r0-r5 (no helper is
/// called while stepping). r6 = context, r7 = position, r8 = current byte,
/// r9 = pointer to the current chunk.
pub(crate) const MACHINE_REG_FILE: [Register; 6] = [R0, R1, R2, R3, R4, R5];
pub(crate) const MACHINE_REGS: usize = MACHINE_REG_FILE.len();

/// Depth-counter mode values (registers, not IR state numbers).
const DEPTH_CODE: i32 = 0;
const DEPTH_STR: i32 = 1;
const DEPTH_STR_ESCAPE: i32 = 2;
const DEPTH_FAILED: i32 = 3;

/// The IR state of `machine` whose registers hold `regs` (a DFA: its
/// state; a depth counter: depth, mode), or `None` for values the step
/// code never produces.
pub(crate) fn machine_state(machine: &Machine, regs: [u32; 2]) -> Option<predicate_ir::StateId> {
    match machine {
        Machine::Dfa(dfa) => ((regs[0] as usize) < dfa.next.len()).then_some(regs[0]),
        Machine::Depth(c) => {
            let mode = match regs[1] as i32 {
                DEPTH_FAILED => return Some(c.failed_state()),
                DEPTH_CODE => predicate_ir::program::StringMode::Code,
                DEPTH_STR => predicate_ir::program::StringMode::Str,
                DEPTH_STR_ESCAPE => predicate_ir::program::StringMode::StrEscape,
                _ => return None,
            };
            (regs[0] <= c.max).then(|| DepthCounter::state(regs[0], mode))
        }
    }
}

/// Unrolled bytes per callback iteration are capped by this many slots.
const CHUNK_BUDGET_INSNS: usize = 4096;
const MAX_CHUNK: usize = 64;
const MID_CHUNK: usize = 8;
/// The largest chunk of a depth counter alone in its pass: on the bench's
/// JSON, 32-byte chunks ran at 0.88-0.94x the time of 64-byte ones at
/// 1,400 and 3,000 bytes (alternated rounds; docs/benchmarks.md), with the
/// same word skip (four words per chunk).
const DEPTH_CHUNK: usize = 32;

const BYTE: Register = R8;
pub(crate) const CHUNK_PTR: Register = R9;
const POS: Register = R7;
const CTX: Register = R6;
/// While stepping, `r7` (the position is no longer needed) holds a zero the
/// verifier sees as an unknown u32: the status word, which is always 0 when
/// an iteration starts (any other status ends the loop), read from its
/// unaligned slot. XOR-ing a machine register with it (as a 32-bit operation,
/// so the result's range is exactly the u32 range whatever the path did to
/// it; states never exceed 32 bits) changes nothing at run time but makes the
/// verifier forget which state a path produced.
/// Inside a `bpf_loop` callback the verifier compares states by value
/// ranges, so without this every combination of machine states along the
/// unrolled chunk would be a separate path to check.
const OPAQUE: Register = R7;

/// One emitted pass: machines sharing a window, fitting the register file.
#[derive(Debug, Clone)]
pub(crate) struct PassGroup {
    pub window: Window,
    pub scans: Vec<ScanId>,
    /// Set for a pass of one table-driven DFA (see `table.rs`).
    pub table: Option<super::table::Layout>,
}

pub(crate) fn regs_needed(m: &Machine) -> usize {
    match m {
        Machine::Dfa(_) => 1,
        Machine::Depth(_) => 2,
    }
}

/// Splits the IR's passes into groups that fit [`MACHINE_REGS`]; a
/// table-driven DFA gets a group of its own, after the others of its pass.
pub(crate) fn plan(program: &Program) -> Vec<PassGroup> {
    let mut groups = Vec::new();
    for pass in &program.passes {
        let mut current = PassGroup {
            window: pass.window,
            scans: Vec::new(),
            table: None,
        };
        let mut used = 0;
        let (tables, branchy): (Vec<ScanId>, Vec<ScanId>) = pass
            .scans
            .iter()
            .partition(|&&id| super::table::is_table_machine(&program.scans[id].machine));
        for &id in &branchy {
            let need = regs_needed(&program.scans[id].machine);
            if used + need > MACHINE_REGS {
                groups.push(std::mem::replace(
                    &mut current,
                    PassGroup {
                        window: pass.window,
                        scans: Vec::new(),
                        table: None,
                    },
                ));
                used = 0;
            }
            current.scans.push(id);
            used += need;
        }
        if !current.scans.is_empty() {
            groups.push(current);
        }
        for id in tables {
            groups.push(PassGroup {
                window: pass.window,
                scans: vec![id],
                table: None, // the layout is set with the tables
            });
        }
    }
    groups
}

/// Where each scan of a group keeps its state: first register slot index.
pub(crate) fn slot_layout(program: &Program, group: &PassGroup) -> Vec<usize> {
    let mut next = 0;
    group
        .scans
        .iter()
        .map(|&id| {
            let first = next;
            next += regs_needed(&program.scans[id].machine);
            first
        })
        .collect()
}

pub(crate) fn final_state_offset(scan: ScanId) -> i16 {
    frame::FINAL_STATES - 8 * scan as i16
}

/// What each scan's state registers, slots and final state hold per DFA
/// state: the row size for a table-driven DFA (see `table.rs`), else 1.
pub(crate) fn state_scales(program: &Program, groups: &[PassGroup]) -> Vec<u32> {
    let mut scales = vec![1; program.scans.len()];
    for group in groups {
        if let Some(layout) = &group.table {
            for &id in &group.scans {
                scales[id] = layout.scale();
            }
        }
    }
    scales
}

/// In the formula: jump to `then` when scan `id` (final state in `reg`,
/// times `scale`: see [`state_scales`]) accepted, else to `other`.
pub(crate) fn emit_accept_test(
    a: &mut Asm,
    machine: &Machine,
    scale: u32,
    reg: Register,
    then: Label,
    other: Label,
) {
    match machine {
        Machine::Dfa(dfa) => {
            let (accepting, rejecting): (Vec<u32>, Vec<u32>) =
                (0..dfa.accepting.len() as u32).partition(|&s| dfa.accepting[s as usize]);
            // Test the smaller set; falling through means the other answer.
            let (listed, hit, miss) = if accepting.len() <= rejecting.len() {
                (accepting, then, other)
            } else {
                (rejecting, other, then)
            };
            for s in listed {
                a.jmp_imm(JmpCond::Jeq, reg, (s * scale) as i32, hit);
            }
            a.ja(miss);
        }
        Machine::Depth(_) => {
            a.jmp_imm(JmpCond::Jne, reg, DEPTH_FAILED, then);
            a.ja(other);
        }
    }
}

/// Machine registers (context slots) the group's scans use.
fn slot_count(program: &Program, group: &PassGroup) -> usize {
    group
        .scans
        .iter()
        .map(|&id| regs_needed(&program.scans[id].machine))
        .sum()
}

fn slot_offset(slot: usize) -> i16 {
    frame::CTX + ctx::SLOTS + 8 * slot as i16
}

/// In the entry function: run the pass, then store one accept byte per scan.
pub(crate) fn emit_pass_call(
    a: &mut Asm,
    program: &Program,
    group: &PassGroup,
    callback_index: i32,
    v: &Verdicts,
) -> Result<(), CodegenError> {
    let layout = slot_layout(program, group);
    let slots = slot_count(program, group);
    // Initial states (all 0) and STATUS_RUNNING (0), from the opaque zero.
    const _: () = assert!(STATUS_RUNNING == 0 && Machine::INITIAL == 0);
    a.emit(Insn::load(Size::DW, R1, R10, frame::OPAQUE_ZERO));
    for slot in 0..slots {
        a.emit(Insn::store_reg(Size::W, R10, slot_offset(slot), R1));
    }
    a.emit(Insn::store_reg(Size::W, R10, frame::CTX + ctx::STATUS, R1));

    emit_load_payload_bounds(a);
    let results = a.label();
    let window = group.window;
    // An empty window (start >= n) leaves every machine in its initial state.
    a.jmp_imm(JmpCond::Jle, R9, window.start as i32, results);
    // r3 = frame offset of the window's first byte, r2 = the window's length.
    a.emit(Insn::mov64_reg(R3, R7));
    a.emit(Insn::alu64_imm(AluOp::Add, R3, window.start as i32));
    a.emit(Insn::mov64_reg(R2, R9));
    if let Some(end) = window.end {
        let clamped = a.label();
        a.jmp_imm(JmpCond::Jle, R2, end as i32, clamped);
        a.emit(Insn::mov64_imm(R2, end as i32));
        a.bind(clamped);
    }
    a.emit(Insn::alu64_imm(AluOp::Sub, R2, window.start as i32));

    emit_walk(a, program, group, callback_index, results, v.drop)?;

    // Copy each scan's final state (no branching: see `frame::FINAL_STATES`).
    a.bind(results);
    for (&id, &slot) in group.scans.iter().zip(&layout) {
        let state_slot = match &program.scans[id].machine {
            Machine::Dfa(_) => slot,
            Machine::Depth(_) => slot + 1, // the mode decides acceptance
        };
        a.emit(Insn::load(Size::W, R1, R10, slot_offset(state_slot)));
        a.emit(Insn::store_reg(Size::DW, R10, final_state_offset(id), R1));
    }
    Ok(())
}

/// The walk itself, with `r3` = frame offset of the first byte and `r2` =
/// bytes to walk (> 0): the tiers, the `bpf_loop` call and its checks.
/// Ends at `decided` when the pass stopped early, at `fail` when a byte
/// could not be read or the loop did not run every iteration, else falls
/// through.
fn emit_walk(
    a: &mut Asm,
    program: &Program,
    group: &PassGroup,
    callback_index: i32,
    decided: Label,
    fail: Label,
) -> Result<(), CodegenError> {
    // Split the window into tiers: whole chunks of the largest size, then
    // of the next size, ..., then single bytes. Each iteration derives its
    // position from the loop index alone, so the verifier sees one unknown
    // position per tier and checks the callback once.
    // r1 = iterations so far, r3 = where the current tier starts, r2 = bytes left.
    let sizes = tiers(program, group)?;
    a.emit(Insn::mov64_imm(R1, 0));
    for (t, &size) in sizes.iter().enumerate() {
        let shift = size.trailing_zeros() as i32;
        a.emit(Insn::store_reg(
            Size::W,
            R10,
            frame::CTX + ctx::TIER_BASE[t],
            R3,
        ));
        a.emit(Insn::mov64_reg(R4, R2));
        a.emit(Insn::alu64_imm(AluOp::Rsh, R4, shift)); // chunks of this size
        a.emit(Insn::alu64_reg(AluOp::Add, R1, R4));
        a.emit(Insn::store_reg(
            Size::W,
            R10,
            frame::CTX + ctx::TIER_END[t],
            R1,
        ));
        a.emit(Insn::alu64_imm(AluOp::Lsh, R4, shift)); // bytes they cover
        a.emit(Insn::alu64_reg(AluOp::Add, R3, R4));
        a.emit(Insn::alu64_reg(AluOp::Sub, R2, R4));
    }
    // r1 = nr_loops.
    a.emit(Insn::ld_func(R2, callback_index));
    a.emit(Insn::mov64_reg(R3, R10));
    a.emit(Insn::alu64_imm(AluOp::Add, R3, frame::CTX as i32));
    a.emit(Insn::mov64_imm(R4, 0));
    a.emit(Insn::call_helper(helper::BPF_FUNC_LOOP));
    a.emit(Insn::load(Size::W, R1, R10, frame::CTX + ctx::STATUS));
    a.jmp_imm(JmpCond::Jeq, R1, STATUS_FAILED, fail);
    a.jmp_imm(JmpCond::Jeq, R1, STATUS_DECIDED, decided);
    // Not decided early: every iteration must have run (a negative r0 is an
    // error from bpf_loop and never equals the count).
    a.emit(Insn::load(
        Size::W,
        R2,
        R10,
        frame::CTX + ctx::TIER_END[sizes.len() - 1],
    ));
    a.jmp_reg(JmpCond::Jne, R0, R2, fail);
    Ok(())
}

/// Bytes per callback iteration, tier by tier: the largest power of two up
/// to [`MAX_CHUNK`] whose unrolled step code fits [`CHUNK_BUDGET_INSNS`],
/// then 8 (if smaller), then 1. Every size divides the one before, so the
/// tail after each tier is shorter than the next tier's chunk times the
/// ratio, and a window needs few iterations at every length.
fn tiers(program: &Program, group: &PassGroup) -> Result<Vec<usize>, CodegenError> {
    let per_byte = byte_code_len(program, group)?.max(1);
    let mut k = MAX_CHUNK;
    if let [only] = group.scans.as_slice() {
        if let Machine::Depth(_) = program.scans[*only].machine {
            k = DEPTH_CHUNK;
        }
    }
    // A bounded window needs no chunk larger than itself: a 16-byte window
    // then takes one iteration, not two of a smaller tier.
    if let Some(end) = group.window.end {
        let len = (end - group.window.start).max(1) as usize;
        while k > 1 && k > len {
            k /= 2;
        }
    }
    while k > 1 && k * per_byte > CHUNK_BUDGET_INSNS {
        k /= 2;
    }
    let mut sizes = vec![k];
    if k > MID_CHUNK {
        sizes.push(MID_CHUNK);
    }
    if k > 1 {
        sizes.push(1);
    }
    Ok(sizes)
}

/// The code of one byte at `CHUNK_PTR + offset` for every machine of the
/// group. Each machine loads the byte itself: the class tests narrow the
/// byte register's range differently on every path, and a register that is
/// dead after a machine's step (reloaded, not reused) cannot keep those
/// paths apart in the verifier.
fn emit_byte(
    a: &mut Asm,
    program: &Program,
    group: &PassGroup,
    offset: i16,
    marks: &mut Vec<StepMark>,
    fail: Label,
) -> Result<(), CodegenError> {
    let layout = slot_layout(program, group);
    let blur = needs_blur(program, group);
    let alone = group.scans.len() == 1;
    for (machine_index, (&id, &slot)) in group.scans.iter().zip(&layout).enumerate() {
        let end = StepMark::open(a, marks, machine_index, offset as u16);
        let machine = &program.scans[id].machine;
        if let Some(layout) = &group.table {
            let reg = MACHINE_REG_FILE[slot];
            super::table::emit_step(a, layout, CHUNK_PTR, offset, BYTE, reg, fail);
            a.bind(end);
            continue;
        }
        a.emit(Insn::load(Size::B, BYTE, CHUNK_PTR, offset));
        if let (Machine::Depth(counter), true) = (machine, alone) {
            // Blurs only the depth, on the paths that change it.
            emit_depth_step_alone(
                a,
                counter,
                MACHINE_REG_FILE[slot],
                MACHINE_REG_FILE[slot + 1],
            );
            a.bind(end);
            continue;
        }
        match machine {
            Machine::Dfa(dfa) => emit_dfa_step(a, &dfa.next, MACHINE_REG_FILE[slot]),
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
    Ok(())
}

/// Labels around one machine's step on one chunk byte, for the code map.
pub(crate) struct StepMark {
    pub machine: usize,
    pub offset: u16,
    pub start: Label,
    pub end: Label,
}

impl StepMark {
    /// Starts the step of machine `machine` on chunk byte `offset` here:
    /// records its labels in `marks` and returns the end label, which the
    /// caller binds after the step.
    pub(crate) fn open(
        a: &mut Asm,
        marks: &mut Vec<StepMark>,
        machine: usize,
        offset: u16,
    ) -> Label {
        let (start, end) = (a.label(), a.label());
        marks.push(StepMark {
            machine,
            offset,
            start,
            end,
        });
        a.bind(start);
        end
    }
}

/// Blurs the new state of `machine` (in the registers from `slot` on) for
/// the verifier (see [`OPAQUE`]): after this, every path through the step
/// looks alike and prunes into one.
pub(crate) fn emit_blur(a: &mut Asm, machine: &Machine, slot: usize) {
    for reg in &MACHINE_REG_FILE[slot..slot + regs_needed(machine)] {
        a.emit(Insn::alu32_reg(AluOp::Xor, *reg, OPAQUE));
    }
}

/// Instructions one byte costs (for choosing the chunk size).
fn byte_code_len(program: &Program, group: &PassGroup) -> Result<usize, CodegenError> {
    let mut a = Asm::new();
    let fail = a.label();
    emit_byte(&mut a, program, group, 0, &mut Vec::new(), fail)?;
    Ok(a.len())
}

/// Whether the step code must blur machine states. A pass with a single
/// small DFA does not need it: along the unrolled chunk the verifier sees at
/// most one path per state, and equal states prune. With several machine
/// registers the paths would multiply (one per combination of states), with
/// a large DFA one path per state costs too much, and a depth counter's
/// ranges keep changing; all of these get the XOR.
pub(crate) fn needs_blur(program: &Program, group: &PassGroup) -> bool {
    if group.table.is_some() {
        // One table load per step: no branches to multiply paths.
        return false;
    }
    match group.scans.as_slice() {
        [only] => match &program.scans[*only].machine {
            Machine::Dfa(dfa) => dfa.next.len() > MAX_UNBLURRED_STATES,
            // The counter's depth is arithmetic, not a constant per path: the
            // verifier would track ever new value ranges along the chunk.
            Machine::Depth(_) => true,
        },
        _ => true,
    }
}

/// Largest DFA stepped without blurring (see [`needs_blur`]).
const MAX_UNBLURRED_STATES: usize = 6;

/// A callback's instructions, step ranges, prefilter slots and chained
/// chunk (its `pass` left 0 for the caller to set).
pub(crate) type CallbackCode = (
    Vec<Insn>,
    Vec<StepRange>,
    Vec<PrefilterSlots>,
    Option<crate::codemap::ChainMap>,
);

/// A prefilter's slots (start, slow path, skip target) and the bytes it
/// may skip.
pub(crate) type PrefilterSlots = (usize, usize, usize, u16);

/// The callback of one pass: `int scan_pass_N(int idx, void *ctx)`.
/// Also returns the prefilters' slots (start, slow path, skip target): one
/// per chunk for a DFA's prefilter or word test, one per word for a depth
/// counter's word skip.
pub(crate) fn emit_callback(
    program: &Program,
    group: &PassGroup,
    pass_index: i32,
    allow_prefilter: bool,
) -> Result<CallbackCode, CodegenError> {
    let mut marks = Vec::new();
    let layout = slot_layout(program, group);
    let slots = slot_count(program, group);
    let sizes = tiers(program, group)?;
    // Table steps keep the table pointer where the prefilter has scratch
    // registers, and stream passes are validated without one.
    let chunk_test =
        allow_prefilter && group.table.is_none() && super::prefilter::chunk_reachable(group);
    let prefilter = if chunk_test {
        super::prefilter::plan(program, group)
    } else {
        None
    };
    // A pass of one `all`-like DFA (see `swar.rs`) without a prefilter
    // tests its 64-byte chunks eight bytes per word instead; the code map
    // and the validator treat the test as a prefilter.
    let word_test = if chunk_test && prefilter.is_none() {
        super::swar::plan(program, group)
    } else {
        None
    };
    // A pass of one depth counter skips words that cannot change it (see
    // `swar::DepthWords`), each word test a prefilter of its own.
    let depth_words = if chunk_test && prefilter.is_none() && word_test.is_none() {
        super::swar::depth_plan(program, group)
    } else {
        None
    };
    let mut prefilter_marks: Vec<([Label; 3], u16)> = Vec::new();
    let mut word_slow: Vec<Label> = Vec::new();
    let mut chain_marks = None;

    let mut a = Asm::new();
    let finished = a.label();
    let fail = a.label();
    let store = a.label();
    let go_on = a.label();

    a.emit(Insn::mov64_reg(CTX, R2));
    a.emit(Insn::mov64_reg(POS, R1)); // the loop index
    a.emit(Insn::load(Size::DW, CHUNK_PTR, CTX, ctx::DATA));
    a.emit(Insn::load(Size::DW, R1, CTX, ctx::DATA_END));
    let mut tier_start_index = None;
    for (t, &size) in sizes.iter().enumerate() {
        let next_tier = a.label();
        // Iterations [TIER_END[t-1], TIER_END[t]) step the chunks of tier t:
        // chunk i of the tier starts at TIER_BASE[t] + i * size.
        a.emit(Insn::load(Size::W, R3, CTX, ctx::TIER_END[t]));
        a.jmp_reg(JmpCond::Jge, POS, R3, next_tier);
        if let Some(prev_end) = tier_start_index {
            a.emit(Insn::load(Size::W, R3, CTX, prev_end));
            a.emit(Insn::alu64_reg(AluOp::Sub, POS, R3));
        }
        a.emit(Insn::alu64_imm(
            AluOp::Lsh,
            POS,
            size.trailing_zeros() as i32,
        ));
        a.emit(Insn::load(Size::W, R3, CTX, ctx::TIER_BASE[t]));
        a.emit(Insn::alu64_reg(AluOp::Add, POS, R3));
        // The verifier only trusts packet ranges whose last byte stays
        // within MAX_PACKET_OFF; the frame never exceeds MAX_FRAME anyway.
        a.jmp_imm(JmpCond::Jgt, POS, MAX_FRAME - size as i32, fail);
        a.emit(Insn::alu64_reg(AluOp::Add, CHUNK_PTR, POS));
        a.emit(Insn::mov64_reg(R3, CHUNK_PTR));
        a.emit(Insn::alu64_imm(AluOp::Add, R3, size as i32));
        a.jmp_reg(JmpCond::Jgt, R3, R1, fail);
        load_slots(&mut a, slots);
        if group.table.is_some() {
            super::table::emit_pointer_load(&mut a, CTX);
        } else {
            a.emit(Insn::load(Size::W, OPAQUE, CTX, ctx::STATUS));
        }
        // The prefilter (see `prefilter.rs`) may jump over the chunk's steps.
        let skip = a.label();
        if let (Some(pf), super::prefilter::SPAN) = (prefilter, size) {
            let (start, slow) = (a.label(), a.label());
            a.bind(start);
            super::prefilter::emit(&mut a, pf, slow, skip);
            a.bind(slow);
            prefilter_marks.push(([start, slow, skip], super::prefilter::SPAN as u16));
        } else if let (Some(range), super::prefilter::SPAN) = (word_test, size) {
            let (start, slow) = (a.label(), a.label());
            a.bind(start);
            for word in 0..super::prefilter::SPAN / 8 {
                super::swar::template(range, (8 * word) as i16, slow, &mut a);
            }
            a.ja(skip);
            a.bind(slow);
            prefilter_marks.push(([start, slow, skip], super::prefilter::SPAN as u16));
        } else if let (Some(words), 0, true) = (&depth_words, t, size >= 8) {
            // Word k's test falls through to word k+1's when the word may be
            // skipped; the first word that may not is stepped byte by byte,
            // and so is the rest of the chunk (dense JSON then pays one
            // test per chunk, not one per word).
            let count = size / 8;
            let starts: Vec<Label> = (0..count).map(|_| a.label()).collect();
            word_slow = (0..count).map(|_| a.label()).collect();
            for k in 0..count {
                a.bind(starts[k]);
                super::swar::depth_template(
                    words,
                    MACHINE_REG_FILE[1],
                    DEPTH_STR_ESCAPE,
                    (8 * k) as i16,
                    word_slow[k],
                    &mut a,
                );
                let next = starts.get(k + 1).copied().unwrap_or(skip);
                prefilter_marks.push(([starts[k], word_slow[k], next], 8));
            }
            a.ja(skip);
        }
        // A table pass's 64-byte chunks run as interleaved chains (see
        // `table.rs`), with the ordinary steps after them; not in stream
        // passes, which are validated without them.
        if let (Some(layout), Machine::Dfa(dfa), true) = (
            &group.table,
            &program.scans[group.scans[0]].machine,
            allow_prefilter && size == MAX_CHUNK,
        ) {
            if let Some(k) = layout.resync {
                let marks =
                    super::table::emit_chains(&mut a, layout, dfa, size, k as usize, skip, fail);
                chain_marks = Some(marks);
            }
        }
        for j in 0..size {
            if let (Some(&slow), 0) = (word_slow.get(j / 8), j % 8) {
                a.bind(slow);
            }
            emit_byte(&mut a, program, group, j as i16, &mut marks, fail)?;
        }
        word_slow.clear();
        a.bind(skip);
        // The byte register is dead now: it tells the decided path the
        // chunk's size.
        a.emit(Insn::mov64_imm(BYTE, size as i32));
        a.ja(store);
        a.bind(next_tier);
        tier_start_index = Some(ctx::TIER_END[t]);
    }
    // An index past the last tier cannot happen (nr_loops is the last
    // TIER_END); stop the loop if it does.
    a.ja(finished);

    // Stop early once every machine sits in a sink. The registers are
    // stored after the test, so the stop path still finds the chunk's
    // starting states in the slots. The last machine's test jumps to the
    // stop and falls through to going on, the common case.
    a.bind(store);
    let stop = a.label();
    let machines = group.scans.len();
    for (i, (&id, &slot)) in group.scans.iter().zip(&layout).enumerate() {
        let last = i + 1 == machines;
        match &program.scans[id].machine {
            Machine::Dfa(dfa) => {
                let machine = &program.scans[id].machine;
                let sinks: Vec<u32> = (0..dfa.next.len() as u32)
                    .filter(|&s| machine.is_sink(s))
                    .collect();
                if sinks.is_empty() {
                    // Never stops: the stop code below is never reached.
                    a.ja(go_on);
                    continue;
                }
                let sunk = if last { stop } else { a.label() };
                let scale = group.table.as_ref().map_or(1, |t| t.scale());
                for s in sinks {
                    a.jmp_imm(
                        JmpCond::Jeq,
                        MACHINE_REG_FILE[slot],
                        (s * scale) as i32,
                        sunk,
                    );
                }
                if !last {
                    a.ja(go_on);
                    a.bind(sunk);
                }
            }
            Machine::Depth(_) => {
                let (cond, target) = if last {
                    (JmpCond::Jeq, stop)
                } else {
                    (JmpCond::Jne, go_on)
                };
                a.jmp_imm(cond, MACHINE_REG_FILE[slot + 1], DEPTH_FAILED, target);
            }
        }
    }
    a.bind(go_on);
    store_slots(&mut a, slots);
    a.emit(Insn::mov64_imm(R0, 0));
    a.emit(Insn::exit());

    // Record where the pass stopped: the chunk's starting states (r7, the
    // position, opaque zero or table pointer, is dead here), then the
    // chunk. Once per pass at most; never on a chunk that goes on.
    a.bind(stop);
    for slot in 0..slots {
        a.emit(Insn::load(Size::W, R7, CTX, ctx::SLOTS + 8 * slot as i16));
        a.emit(Insn::store_reg(Size::W, CTX, ctx::START[slot], R7));
    }
    store_slots(&mut a, slots);
    a.emit(Insn::load(Size::DW, R1, CTX, ctx::DATA));
    a.emit(Insn::mov64_reg(R2, CHUNK_PTR));
    a.emit(Insn::alu64_reg(AluOp::Sub, R2, R1));
    a.emit(Insn::alu64_imm(AluOp::Lsh, BYTE, 16));
    a.emit(Insn::alu64_reg(AluOp::Or, R2, BYTE));
    a.emit(Insn::alu64_imm(AluOp::Or, R2, (pass_index + 1) << 24));
    a.emit(Insn::store_reg(Size::W, CTX, ctx::STOP, R2));
    a.emit(Insn::store_imm(Size::W, CTX, ctx::STATUS, STATUS_DECIDED));
    a.ja(finished);

    a.bind(fail);
    a.emit(Insn::store_imm(Size::W, CTX, ctx::STATUS, STATUS_FAILED));
    a.bind(finished);
    a.emit(Insn::mov64_imm(R0, 1));
    a.emit(Insn::exit());
    let mut labels: Vec<Label> = marks.iter().flat_map(|m| [m.start, m.end]).collect();
    labels.extend(prefilter_marks.iter().flat_map(|(m, _)| *m));
    let chain_at = labels.len();
    if let Some(c) = &chain_marks {
        labels.extend([c.start, c.slow, c.skip, c.merge]);
        labels.extend(c.steps.iter().flat_map(|&(_, _, s, e)| [s, e]));
    }
    let (insns, slots) = a.finish_marked(&labels)?;
    let prefilter = (0..prefilter_marks.len())
        .map(|i| {
            let at = 2 * marks.len() + 3 * i;
            (
                slots[at],
                slots[at + 1],
                slots[at + 2],
                prefilter_marks[i].1,
            )
        })
        .collect();
    let chains = chain_marks.map(|c| crate::codemap::ChainMap {
        pass: 0,
        start: slots[chain_at],
        slow: slots[chain_at + 1],
        skip: slots[chain_at + 2],
        merge: slots[chain_at + 3],
        span: MAX_CHUNK as u16,
        resync: c.resync as u16,
        chains: c
            .spans
            .iter()
            .map(|&(reg, from, to)| crate::codemap::ChainSpan {
                reg: reg.number(),
                from: from as u16,
                to: to as u16,
            })
            .collect(),
        steps: c
            .steps
            .iter()
            .enumerate()
            .map(|(i, &(chain, offset, _, _))| crate::codemap::ChainStep {
                chain,
                offset: offset as u16,
                start: slots[chain_at + 4 + 2 * i],
                end: slots[chain_at + 5 + 2 * i],
            })
            .collect(),
    });
    let steps = marks
        .iter()
        .zip(slots.chunks(2))
        .map(|(m, se)| StepRange {
            machine: m.machine,
            offset: m.offset,
            start: se[0],
            end: se[1],
        })
        .collect();
    Ok((insns, steps, prefilter, chains))
}

/// Where each machine of the group keeps its state, for the code map.
pub(crate) fn machine_maps(program: &Program, group: &PassGroup) -> Vec<MachineMap> {
    let layout = slot_layout(program, group);
    group
        .scans
        .iter()
        .zip(&layout)
        .map(|(&scan, &slot)| MachineMap {
            scan,
            encoding: match &program.scans[scan].machine {
                Machine::Dfa(_) => StateEncoding::Dfa {
                    reg: MACHINE_REG_FILE[slot].number(),
                    scale: group.table.as_ref().map_or(1, |t| t.scale()),
                },
                Machine::Depth(_) => StateEncoding::Depth {
                    depth_reg: MACHINE_REG_FILE[slot].number(),
                    mode_reg: MACHINE_REG_FILE[slot + 1].number(),
                    modes: [DEPTH_CODE, DEPTH_STR, DEPTH_STR_ESCAPE, DEPTH_FAILED],
                },
            },
        })
        .collect()
}

fn store_slots(a: &mut Asm, slots: usize) {
    for (slot, &reg) in MACHINE_REG_FILE.iter().enumerate().take(slots) {
        a.emit(Insn::store_reg(
            Size::W,
            CTX,
            ctx::SLOTS + 8 * slot as i16,
            reg,
        ));
    }
}

/// `r7` = the payload's start (a frame offset) and `r9` = its length, from
/// the context the entry keeps in its stack frame.
fn emit_load_payload_bounds(a: &mut Asm) {
    a.emit(Insn::load(
        Size::H,
        R7,
        R10,
        frame::CTX + ctx::PAYLOAD_START,
    ));
    a.emit(Insn::load(Size::H, R9, R10, frame::CTX + ctx::PAYLOAD_LEN));
}

fn load_slots(a: &mut Asm, slots: usize) {
    for (slot, &reg) in MACHINE_REG_FILE.iter().enumerate().take(slots) {
        a.emit(Insn::load(Size::W, reg, CTX, ctx::SLOTS + 8 * slot as i16));
    }
}

/// Jumps to `hit` when the byte register is in `class`.
///
/// The widest ranges are tested first: a printable byte against `text`
/// takes two compares instead of five.
pub(crate) fn emit_class_test(a: &mut Asm, byte: Register, class: &ByteClass, hit: Label) {
    let mut ranges = class.ranges().to_vec();
    ranges.sort_by_key(|&(lo, hi)| std::cmp::Reverse(u16::from(hi) - u16::from(lo)));
    for (lo, hi) in ranges {
        let (lo, hi) = (i32::from(lo), i32::from(hi));
        if lo == hi {
            a.jmp_imm(JmpCond::Jeq, byte, lo, hit);
        } else if lo == 0 {
            a.jmp_imm(JmpCond::Jle, byte, hi, hit);
        } else if hi == 255 {
            a.jmp_imm(JmpCond::Jge, byte, lo, hit);
        } else {
            let below = a.label();
            a.jmp_imm(JmpCond::Jlt, byte, lo, below);
            a.jmp_imm(JmpCond::Jle, byte, hi, hit);
            a.bind(below);
        }
    }
}

/// One DFA transition on the byte in r8, state in `reg`.
pub(crate) fn emit_dfa_step(a: &mut Asm, next: &[[u32; 256]], reg: Register) {
    let done = a.label();
    let live: Vec<u32> = (0..next.len() as u32)
        .filter(|&s| next[s as usize].iter().any(|&t| t != s))
        .collect();
    let state_labels: Vec<Label> = live.iter().map(|_| a.label()).collect();
    // Dispatch on the state; sinks fall through to `done`.
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
        emit_dfa_row(a, &next[s as usize], s, reg, done);
    }
    a.bind(done);
}

/// The code of one DFA state `s` (its `row` of targets) on the byte in
/// [`BYTE`], the state in `reg`: the bytes are grouped by target and the
/// commonest target (the state itself on a tie) is the fall-through; each
/// other target is set behind its byte-class test. Every path ends at
/// `done`.
pub(crate) fn emit_dfa_row(a: &mut Asm, row: &[u32; 256], s: u32, reg: Register, done: Label) {
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
        .max_by_key(|(t, bytes)| (bytes.len(), *t == s))
        .map_or(s, |(t, _)| *t);
    let mut set_labels = Vec::new();
    for (t, bytes) in &targets {
        if *t == default {
            continue;
        }
        let l = a.label();
        emit_class_test(a, BYTE, &ByteClass::from_bytes(bytes.iter().copied()), l);
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

/// One depth-counter step on the byte in r8 (the order of docs/spec-format.md:
/// strings first, then open, then close).
///
/// Laid out for ordinary text: in code mode a byte that is none of the
/// quote, `open` and `close` (below the lowest of them, or in the widest
/// gap between them) is recognized by at most three compares; in a
/// string, a byte that is neither backslash nor quote by three; neither
/// path runs a jump but the last.
pub(crate) fn emit_depth_step(a: &mut Asm, c: &DepthCounter, depth: Register, mode: Register) {
    let done = a.label();
    let not_code = a.label();
    let open = a.label();
    let close = a.label();
    let open_string = a.label();
    a.jmp_imm(JmpCond::Jne, mode, DEPTH_CODE, not_code);

    // Code mode: the bytes that do something, then the quick ways past them.
    let mut special: Vec<u8> = c
        .open
        .ranges()
        .iter()
        .chain(c.close.ranges())
        .flat_map(|&(lo, hi)| lo..=hi)
        .collect();
    if c.strings {
        special.push(QUOTE);
    }
    special.sort_unstable();
    special.dedup();
    emit_special_exits(a, &special, done);
    if c.strings {
        a.jmp_imm(JmpCond::Jeq, BYTE, i32::from(QUOTE), open_string);
    }
    emit_class_test(a, BYTE, &c.open, open);
    emit_class_test(a, BYTE, &c.close, close);
    a.ja(done);

    a.bind(not_code);
    emit_depth_not_code(a, c, mode, open_string, done);

    a.bind(open);
    a.emit(Insn::alu64_imm(AluOp::Add, depth, 1));
    a.jmp_imm(JmpCond::Jle, depth, c.max as i32, done);
    a.emit(Insn::mov64_imm(mode, DEPTH_FAILED));
    a.ja(done);
    a.bind(close);
    a.jmp_imm(JmpCond::Jeq, depth, 0, done);
    a.emit(Insn::alu64_imm(AluOp::Sub, depth, 1));
    a.bind(done);
}

/// One step of a depth counter that is its pass's only machine, on the
/// byte in r8.
///
/// Unlike [`emit_depth_step`] plus a blur of both registers, only the
/// paths that change the depth blur it (see [`OPAQUE`]); the mode is left
/// as the constant each path sets or tested it to be. At every step
/// boundary the verifier then sees the depth as an unknown u32 and the
/// mode as one of four constants: at most four states per boundary, each
/// following only its own mode's code, however long the chunk. Common
/// bytes cost no blur at all.
///
/// In code mode the quote (the commonest byte that does something in
/// JSON) is tested first; then the bytes below the lowest, in the widest
/// gap between and above the highest of `open` and `close` leave by at
/// most three compares.
fn emit_depth_step_alone(a: &mut Asm, c: &DepthCounter, depth: Register, mode: Register) {
    let done = a.label();
    let not_code = a.label();
    let open = a.label();
    let close = a.label();
    let open_string = a.label();
    a.jmp_imm(JmpCond::Jne, mode, DEPTH_CODE, not_code);

    if c.strings {
        a.jmp_imm(JmpCond::Jeq, BYTE, i32::from(QUOTE), open_string);
    }
    let mut special: Vec<u8> = c
        .open
        .ranges()
        .iter()
        .chain(c.close.ranges())
        .flat_map(|&(lo, hi)| lo..=hi)
        .filter(|&b| !(c.strings && b == QUOTE))
        .collect();
    special.sort_unstable();
    special.dedup();
    if let Some((base, mask)) = bit_cube(&special) {
        // r8 - base has no bit outside `mask` for exactly the cube's bytes
        // (below `base` it wraps to a 64-bit value with high bits set).
        a.emit(Insn::alu64_imm(AluOp::Add, BYTE, -i32::from(base)));
        a.jmp_imm(JmpCond::Jset, BYTE, !i32::from(mask), done);
        let shifted = |class: &ByteClass| {
            ByteClass::from_bytes(
                (0..=255u8)
                    .filter(|&b| class.contains(b) && !(c.strings && b == QUOTE))
                    .filter_map(|b| b.checked_sub(base)),
            )
        };
        emit_class_test(a, BYTE, &shifted(&c.open), open);
        emit_class_test(a, BYTE, &shifted(&c.close), close);
        a.ja(done);
    } else {
        emit_special_exits(a, &special, done);
        emit_class_test(a, BYTE, &c.open, open);
        emit_class_test(a, BYTE, &c.close, close);
        a.ja(done);
    }

    a.bind(not_code);
    emit_depth_not_code(a, c, mode, open_string, done);

    let blur_open = a.label();
    a.bind(open);
    a.emit(Insn::alu64_imm(AluOp::Add, depth, 1));
    a.jmp_imm(JmpCond::Jle, depth, c.max as i32, blur_open);
    a.emit(Insn::mov64_imm(mode, DEPTH_FAILED));
    a.bind(blur_open);
    a.emit(Insn::alu32_reg(AluOp::Xor, depth, OPAQUE));
    a.ja(done);
    // Last, so that it falls through to `done`.
    let blur_close = a.label();
    a.bind(close);
    a.jmp_imm(JmpCond::Jeq, depth, 0, blur_close);
    a.emit(Insn::alu64_imm(AluOp::Sub, depth, 1));
    a.bind(blur_close);
    a.emit(Insn::alu32_reg(AluOp::Xor, depth, OPAQUE));
    a.bind(done);
}

/// A depth step's way past the bytes that do nothing in code mode: jumps
/// to `done` for a byte below the lowest of `special` (sorted, no
/// repeats), above the highest, or inside the widest gap between two of
/// them when it is more than 8 wide; any other byte falls through.
fn emit_special_exits(a: &mut Asm, special: &[u8], done: Label) {
    let rest = a.label();
    if let (Some(&lowest), Some(&highest)) = (special.first(), special.last()) {
        if lowest > 0 {
            a.jmp_imm(JmpCond::Jlt, BYTE, i32::from(lowest), done);
        }
        if let Some((below, above)) = special
            .windows(2)
            .map(|w| (w[0], w[1]))
            .max_by_key(|&(x, y)| y - x)
            .filter(|&(x, y)| y - x > 8)
        {
            a.jmp_imm(JmpCond::Jle, BYTE, i32::from(below), rest);
            a.jmp_imm(JmpCond::Jlt, BYTE, i32::from(above), done);
        }
        if highest < 255 {
            a.jmp_imm(JmpCond::Jgt, BYTE, i32::from(highest), done);
        }
    }
    a.bind(rest);
}

/// A depth step's code for the modes other than code (where the mode
/// test jumps when not in code mode; the caller binds it): in a string, a backslash escapes the next byte and
/// a quote ends it; an escaped byte returns to the string; the failed sink
/// stays. `open_string` (a quote in code mode) enters the string. Every
/// path ends at `done`.
fn emit_depth_not_code(
    a: &mut Asm,
    c: &DepthCounter,
    mode: Register,
    open_string: Label,
    done: Label,
) {
    if c.strings {
        let not_str = a.label();
        let escape = a.label();
        a.jmp_imm(JmpCond::Jne, mode, DEPTH_STR, not_str);
        a.jmp_imm(JmpCond::Jeq, BYTE, i32::from(BACKSLASH), escape);
        a.jmp_imm(JmpCond::Jne, BYTE, i32::from(QUOTE), done);
        a.emit(Insn::mov64_imm(mode, DEPTH_CODE));
        a.ja(done);
        a.bind(escape);
        a.emit(Insn::mov64_imm(mode, DEPTH_STR_ESCAPE));
        a.ja(done);
        // After a backslash this byte is escaped, back to the string; the
        // failed sink stays.
        a.bind(not_str);
        a.jmp_imm(JmpCond::Jeq, mode, DEPTH_FAILED, done);
        a.emit(Insn::mov64_imm(mode, DEPTH_STR));
        a.ja(done);
        a.bind(open_string);
        a.emit(Insn::mov64_imm(mode, DEPTH_STR));
        a.ja(done);
    } else {
        a.ja(done); // the only other mode is the failed sink
    }
}

/// `(base, mask)` when `bytes` (sorted, at least two) are exactly
/// `base + x` for every `x` whose bits all lie in `mask` (JSON's
/// brackets: `[ ] { }` are 0x5b plus 0x00, 0x02, 0x20, 0x22): one
/// subtraction and one bit test then tell them from every other byte.
fn bit_cube(bytes: &[u8]) -> Option<(u8, u8)> {
    let (&base, rest) = bytes.split_first()?;
    if rest.is_empty() {
        return None;
    }
    let mask = bytes.iter().fold(0u8, |m, &b| m | (b - base));
    (1usize << mask.count_ones() == bytes.len()).then_some((base, mask))
}

/// Machine registers (flow-value slots) the group's scans use.
pub(crate) fn group_slots(program: &Program, group: &PassGroup) -> usize {
    slot_count(program, group)
}

/// In a stream diode's entry function: run the pass over the segment's new
/// bytes, starting from the states the flow carried, and store the states
/// back into the flow's value and one final state per scan for the formula.
///
/// `value_slot` is the index of the group's first slot in the flow value
/// ([`super::stream::value`]). The window counts stream offsets: with `S`
/// the stream offset of the segment's first (new) byte and `n` its length,
/// the pass walks stream offsets `[max(start, S), min(end, S + n))`, i.e.
/// payload offsets shifted by `S`. An empty intersection leaves the carried
/// states as they are. A failed walk goes to `fail` (the caller latches the
/// flow: states of earlier passes are already stored).
pub(crate) fn emit_stream_pass_call(
    a: &mut Asm,
    program: &Program,
    group: &PassGroup,
    callback_index: i32,
    value_slot: usize,
    fail: Label,
) -> Result<(), CodegenError> {
    use super::stream::{sframe, value};
    let layout = slot_layout(program, group);
    let slots = slot_count(program, group);
    let value_off = |slot: usize| (value::SLOTS + 4 * (value_slot + slot) as i32) as i16;
    a.emit(Insn::load(Size::DW, R1, R10, sframe::VALUE_PTR));
    for slot in 0..slots {
        a.emit(Insn::load(Size::W, R2, R1, value_off(slot)));
        a.emit(Insn::store_reg(Size::W, R10, slot_offset(slot), R2));
    }
    const _: () = assert!(STATUS_RUNNING == 0);
    a.emit(Insn::load(Size::DW, R2, R10, frame::OPAQUE_ZERO));
    a.emit(Insn::store_reg(Size::W, R10, frame::CTX + ctx::STATUS, R2));

    let results = a.label();
    emit_load_payload_bounds(a);
    a.emit(Insn::load(Size::DW, R1, R10, sframe::STREAM_OFFSET));
    let window = group.window;
    // r3 = payload offset of the first byte to walk.
    a.emit(Insn::mov64_imm(R3, 0));
    if window.start > 0 {
        let lo_done = a.label();
        a.emit(Insn::ld_imm64(R4, u64::from(window.start)));
        a.jmp_reg(JmpCond::Jge, R1, R4, lo_done);
        a.emit(Insn::mov64_reg(R3, R4));
        a.emit(Insn::alu64_reg(AluOp::Sub, R3, R1));
        a.bind(lo_done);
    }
    a.jmp_reg(JmpCond::Jge, R3, R9, results);
    // r2 = payload offset one past the last byte to walk.
    a.emit(Insn::mov64_reg(R2, R9));
    if let Some(end) = window.end {
        let hi_done = a.label();
        a.emit(Insn::ld_imm64(R4, u64::from(end)));
        a.jmp_reg(JmpCond::Jge, R1, R4, results);
        a.emit(Insn::alu64_reg(AluOp::Sub, R4, R1));
        a.jmp_reg(JmpCond::Jge, R4, R2, hi_done);
        a.emit(Insn::mov64_reg(R2, R4));
        a.bind(hi_done);
    }
    a.jmp_reg(JmpCond::Jle, R2, R3, results);
    // Both lie within the payload (< 64 KiB); told to the verifier.
    a.jmp_imm(JmpCond::Jgt, R2, MAX_FRAME, results);
    a.jmp_imm(JmpCond::Jgt, R3, MAX_FRAME, results);
    a.emit(Insn::alu64_reg(AluOp::Sub, R2, R3));
    a.emit(Insn::alu64_reg(AluOp::Add, R3, R7));
    emit_walk(a, program, group, callback_index, results, fail)?;

    a.bind(results);
    a.emit(Insn::load(Size::DW, R1, R10, sframe::VALUE_PTR));
    for slot in 0..slots {
        a.emit(Insn::load(Size::W, R2, R10, slot_offset(slot)));
        a.emit(Insn::store_reg(Size::W, R1, value_off(slot), R2));
    }
    for (&id, &slot) in group.scans.iter().zip(&layout) {
        let state_slot = match &program.scans[id].machine {
            Machine::Dfa(_) => slot,
            Machine::Depth(_) => slot + 1,
        };
        a.emit(Insn::load(Size::W, R2, R10, slot_offset(state_slot)));
        a.emit(Insn::store_reg(Size::DW, R10, final_state_offset(id), R2));
    }
    Ok(())
}
