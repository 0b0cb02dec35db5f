//! Table-driven DFA steps, for automata too large for branchy code.
//!
//! Branchy step code (see `scan.rs`) dispatches on the state with one
//! compare per state and tests the byte against every target's ranges: its
//! size, and the time of one step, grow with the number of states, and past
//! a few hundred states its jumps no longer fit 16-bit offsets. A DFA with
//! more than [`MAX_BRANCHY_STATES`] states instead runs from tables in
//! read-only global data (the object's `.rodata`, which Aya, libbpf and tc
//! load into a frozen array map):
//!
//! - a **class map**: 256 u16s, `class_map[b]` = the byte offset of byte
//!   `b`'s class inside a table row (`class * entry size`), where two bytes
//!   share a class when every state moves alike on them;
//! - a **transition table**: one row per state, `2^k` entries per row (the
//!   class count rounded up to a power of two, so a class offset is bounded
//!   by one mask), each entry the next state *premultiplied*: its row's
//!   byte offset, as a u16 while every row offset fits 16 bits, else as a
//!   u32. Where u32 entries would not fit the read-only data limit, the
//!   entries are u16 state numbers instead (u32 past 65,536 states), and
//!   each step shifts the state into a row offset.
//!
//! A premultiplied state sits premultiplied everywhere: in its register,
//! the scan context's slots and the final state (the code map's
//! `StateEncoding::Dfa` scale is the row size). Then only an add lies
//! between one step's table load and the next one's, the chain of
//! dependent loads that sets the speed of a table walk; the state's bound
//! check reads the register but does not feed the load, so it stays off
//! that chain.
//!
//! One step on the byte in `r8`, the state in its register `rS`, `r7` the
//! address of the machine's block (class map, then table), set once per
//! chunk from the scan context:
//!
//! ```text
//! r8 = *(u8 *)(r9 + j)        the byte
//! r8 <<= 1; r8 += r7
//! r8 = *(u16 *)(r8 + 0)       its class's offset in a row
//! r8 &= ROW_BYTES - ENTRY     (a no-op that bounds it for the verifier)
//! r8 += r7
//! if rS > LAST_ROW goto fail  (never taken; bounds the row for the verifier)
//! rS += r8                    (numbered states: rS <<= log2(ROW_BYTES) first)
//! rS = *(u16 *)(rS + 512)     the next state's row offset
//! ```
//!
//! Each step waits for the one before (an add and a load, about six
//! cycles), whatever the instruction count. So a 64-byte chunk of a pass
//! whose DFA resynchronizes (see [`resync_len`]: after `k` bytes, from any
//! state, a sink or the state the same bytes give from the initial state;
//! `k` is at most one less than the longest word of a block list) runs as
//! [`CHAINS`] chains whose loads overlap ([`emit_chains`]): chain 0 goes on
//! from the pass's state, each later chain starts from the initial state
//! `k` bytes before its predecessor stops, and the chunk's state is the
//! first chain's that sank, else the last chain's. The chunk's ordinary
//! steps follow, behind a guard never taken at run time, and translation
//! validation proves the chains against them (lagic-validate's `chains`).
//!
//! Invariants: the verifier sees every table access in bounds, whatever
//! the register values: the byte is at most 255, the class offset is masked
//! below the row size, the state is checked to be at most the last state
//! (times the scale), and the block holds `STATES` whole rows after the
//! class map. Every table entry is a state times the scale.
//! The step changes only `r8` and its state register; `r7` is not blurred
//! nor written (no branchy machine shares a table pass). A state out of
//! range (impossible: every table entry is a state's row) fails the pass,
//! and the packet drops.

use predicate_ir::{Dfa, Machine};

use super::asm::{Asm, Label};
use super::CodegenError;
use crate::insn::*;

/// Largest DFA stepped by branchy code; larger ones run from tables.
/// Above this, the linear dispatch on the state costs more than the two
/// dependent loads of a table step: on block lists of random
/// case-insensitive words (1,400 bytes, alternated runs on one machine),
/// branchy code took 0.57x the table's time at 15 states, 0.78x at 20,
/// 1.07x at 30 and 1.87x at 37.
pub(crate) const MAX_BRANCHY_STATES: usize = 24;

/// Most bytes of read-only data one object may carry: an array map's value
/// is at most `KMALLOC_MAX_SIZE` (4 MiB with 4 KiB pages); larger values
/// are refused by the kernel with E2BIG.
pub(crate) const MAX_RODATA_BYTES: usize = 4 << 20;

/// Bytes of the class map at the start of a machine's block.
const CLASS_MAP_BYTES: usize = 512;

/// Offset in the scan context (8-byte aligned, so the verifier tracks the
/// spilled pointer) where the entry leaves the machine's block address for
/// the callback. A table pass has one machine, which uses only the first
/// register slot; this slot's bytes overlap the unused ones after it.
pub(crate) const CTX_TABLE: i16 = 88;
const _: () = assert!(CTX_TABLE % 8 == 0 && CTX_TABLE >= super::scan::ctx::SLOTS + 8);
const _: () = assert!(CTX_TABLE + 8 <= super::scan::ctx::SIZE);

/// The register holding the block address while a table pass steps.
pub(crate) const TABLE_PTR: Register = R7;

/// Where one machine's tables sit in `.rodata` and how to index them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Byte offset of the machine's block in `.rodata` (8-aligned).
    pub offset: u32,
    /// States of the DFA (rows of the table).
    pub states: u32,
    /// log2 of a row's size in bytes.
    pub row_shift: u32,
    /// Bytes per table entry: 2 or 4.
    pub entry_bytes: u32,
    /// Whether entries and state registers hold row offsets (premultiplied
    /// states); otherwise they hold state numbers, shifted by each step.
    pub premultiplied: bool,
    /// The DFA's [`resync_len`], when at most [`MAX_RESYNC`]: its 64-byte
    /// chunks are then stepped as chains ([`emit_chains`]).
    pub resync: Option<u32>,
}

impl Layout {
    /// What a state register holds per state: the row's size in bytes
    /// when premultiplied, else 1.
    pub(crate) fn scale(&self) -> u32 {
        if self.premultiplied {
            1 << self.row_shift
        } else {
            1
        }
    }

    /// The largest value a state register holds: the last state times
    /// the scale.
    fn last_state_value(&self) -> u32 {
        (self.states - 1) * self.scale()
    }
}

/// Whether `machine` runs from tables.
pub(crate) fn is_table_machine(machine: &Machine) -> bool {
    matches!(machine, Machine::Dfa(dfa) if dfa.next.len() > MAX_BRANCHY_STATES)
}

/// Appends `dfa`'s block to `rodata` and returns its layout.
pub(crate) fn build(dfa: &Dfa, rodata: &mut Vec<u8>, path: &str) -> Result<Layout, CodegenError> {
    let states = dfa.next.len();
    let class_of = byte_classes(dfa);
    let classes = class_of.iter().map(|&c| c as usize + 1).max().unwrap_or(1);
    while !rodata.len().is_multiple_of(8) {
        rodata.push(0);
    }
    let offset = rodata.len();
    let columns = classes.next_power_of_two();
    let block_of = |entry_bytes: usize| CLASS_MAP_BYTES + states * columns * entry_bytes;
    // Premultiplied entries (row offsets) save a shift per byte on the
    // chain of dependent loads; they are u16 while the last row's offset
    // fits, else u32, which doubles the table: when that does not fit the
    // read-only data, entries are u16 state numbers (a shift per step).
    let (entry_bytes, premultiplied) = if (states - 1) * columns * 2 <= usize::from(u16::MAX) {
        (2, true)
    } else if offset + block_of(4) <= MAX_RODATA_BYTES {
        (4, true)
    } else if states <= 1 << 16 {
        (2, false)
    } else {
        (4, false)
    };
    let row_bytes = columns * entry_bytes;
    let block = block_of(entry_bytes);
    if offset + block > MAX_RODATA_BYTES {
        return Err(CodegenError::TablesTooLarge {
            path: path.to_string(),
            states,
            classes,
            bytes: offset + block,
            max: MAX_RODATA_BYTES,
        });
    }
    rodata.reserve(block);
    for &c in &class_of {
        let at = u16::try_from(usize::from(c) * entry_bytes)
            .map_err(|_| CodegenError::Internal("class offset beyond u16"))?;
        rodata.extend_from_slice(&at.to_le_bytes());
    }
    // The representative byte of each class.
    let mut rep = vec![0usize; classes];
    for b in (0..256).rev() {
        rep[usize::from(class_of[b])] = b;
    }
    let per_row = row_bytes / entry_bytes;
    for row in &dfa.next {
        for c in 0..per_row {
            // Padding columns (no byte maps there) repeat class 0.
            let t = row[rep[if c < classes { c } else { 0 }]] as usize;
            let t = if premultiplied { t * row_bytes } else { t };
            if entry_bytes == 2 {
                let t = u16::try_from(t)
                    .map_err(|_| CodegenError::Internal("table entry beyond u16"))?;
                rodata.extend_from_slice(&t.to_le_bytes());
            } else {
                let t = u32::try_from(t)
                    .map_err(|_| CodegenError::Internal("table entry beyond u32"))?;
                rodata.extend_from_slice(&t.to_le_bytes());
            }
        }
    }
    Ok(Layout {
        offset: offset as u32,
        states: states as u32,
        row_shift: row_bytes.trailing_zeros(),
        entry_bytes: entry_bytes as u32,
        premultiplied,
        resync: resync_len(dfa, MAX_RESYNC, RESYNC_STEPS_PER_STATE * states).map(|k| k as u32),
    })
}

/// `class_of[b]`: bytes whose columns agree in every state share a class;
/// classes are numbered by their smallest byte.
fn byte_classes(dfa: &Dfa) -> [u8; 256] {
    // Hash each column, then confirm equality against the class's first
    // byte (a hash collision must not merge two classes).
    let hash = |b: usize| {
        dfa.next.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, row| {
            (h ^ u64::from(row[b])).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    let mut class_of = [0u8; 256];
    let mut firsts: Vec<(u64, usize)> = Vec::new();
    for b in 0..256 {
        let h = hash(b);
        let same = firsts
            .iter()
            .position(|&(hr, r)| hr == h && dfa.next.iter().all(|row| row[r] == row[b]));
        class_of[b] = match same {
            Some(c) => c as u8,
            None => {
                firsts.push((h, b));
                (firsts.len() - 1) as u8
            }
        };
    }
    class_of
}

/// In the entry, before the pass's setup: leave the block's address in the
/// scan context (`ctx` = the context's offset from `r10`).
pub(crate) fn emit_pointer_spill(a: &mut Asm, layout: &Layout, ctx: i16) {
    a.emit(Insn::ld_map_value(R1, layout.offset as i32));
    a.emit(Insn::store_reg(Size::DW, R10, ctx + CTX_TABLE, R1));
}

/// In the callback, once per chunk: the block's address into [`TABLE_PTR`].
pub(crate) fn emit_pointer_load(a: &mut Asm, ctx_reg: Register) {
    a.emit(Insn::load(Size::DW, TABLE_PTR, ctx_reg, CTX_TABLE));
}

/// One step on the byte at `chunk + offset` (see the module docs).
pub(crate) fn emit_step(
    a: &mut Asm,
    layout: &Layout,
    chunk: Register,
    offset: i16,
    byte: Register,
    state: Register,
    fail: Label,
) {
    let row_bytes = 1i32 << layout.row_shift;
    a.emit(Insn::load(Size::B, byte, chunk, offset));
    a.emit(Insn::alu64_imm(AluOp::Lsh, byte, 1));
    a.emit(Insn::alu64_reg(AluOp::Add, byte, TABLE_PTR));
    a.emit(Insn::load(Size::H, byte, byte, 0));
    // Entry-aligned and below the row's end, so the load's last byte too.
    a.emit(Insn::alu64_imm(
        AluOp::And,
        byte,
        row_bytes - layout.entry_bytes as i32,
    ));
    a.emit(Insn::alu64_reg(AluOp::Add, byte, TABLE_PTR));
    a.jmp_imm(JmpCond::Jgt, state, layout.last_state_value() as i32, fail);
    if !layout.premultiplied {
        a.emit(Insn::alu64_imm(AluOp::Lsh, state, layout.row_shift as i32));
    }
    a.emit(Insn::alu64_reg(AluOp::Add, state, byte));
    let size = if layout.entry_bytes == 2 {
        Size::H
    } else {
        Size::W
    };
    a.emit(Insn::load(size, state, state, CLASS_MAP_BYTES as i16));
}

/// Chains a 64-byte chunk of a table pass is stepped as (see
/// [`emit_chains`]): on block lists of random case-insensitive words
/// (1,000 words, 1,400 bytes, alternated runs on one machine), one chain
/// took 1.6 ns a byte, two 0.90, three 0.75, four 0.71 and six 0.77.
pub(crate) const CHAINS: usize = 4;

/// Longest resynchronization (see [`resync_len`]) worth chains: each chain
/// but the first steps this many bytes more.
pub(crate) const MAX_RESYNC: usize = 16;

/// State pair steps [`resync_len`] may take per DFA state before giving
/// up: a block list takes about its class count times its resync length
/// (27 x 8 for random words of at most 9 letters), a DFA that never
/// resynchronizes would go on to the budget.
const RESYNC_STEPS_PER_STATE: usize = 512;

/// The smallest `k <= max` such that, from every reachable state, every
/// string of `k` bytes leads to a sink or to the state it leads to from the
/// initial state; `None` when no such `k` exists or proving it would
/// step more than `budget` state pairs. A block list of words of at
/// most `L` letters has `k <= L - 1`: the state after a text depends only
/// on its longest suffix that begins some word.
pub(crate) fn resync_len(dfa: &Dfa, max: usize, budget: usize) -> Option<usize> {
    let sink = |s: u32| dfa.next[s as usize].iter().all(|&t| t == s);
    // One byte per class: bytes of a class move every state alike.
    let class_of = byte_classes(dfa);
    let mut reps: Vec<usize> = Vec::new();
    let mut seen_class = [false; 256];
    for (b, &class) in class_of.iter().enumerate() {
        let c = usize::from(class);
        if !seen_class[c] {
            seen_class[c] = true;
            reps.push(b);
        }
    }
    let mut reachable = vec![false; dfa.next.len()];
    let mut order = vec![0u32];
    reachable[0] = true;
    let mut i = 0;
    while i < order.len() {
        let s = order[i];
        for &b in &reps {
            let t = dfa.next[s as usize][b];
            if !reachable[t as usize] {
                reachable[t as usize] = true;
                order.push(t);
            }
        }
        i += 1;
    }
    // Pairs (state from some reachable state, state from the initial one)
    // after the same bytes, dropping pairs that met or sank: they stay so.
    let mut pairs: Vec<(u32, u32)> = order
        .iter()
        .filter(|&&s| s != 0 && !sink(s))
        .map(|&s| (s, 0))
        .collect();
    let mut looked = pairs.len();
    for k in 0..=max {
        if pairs.is_empty() {
            return Some(k);
        }
        let mut next = Vec::with_capacity(pairs.len() * 2);
        for &(s, t) in &pairs {
            for &b in &reps {
                let (s2, t2) = (dfa.next[s as usize][b], dfa.next[t as usize][b]);
                if s2 != t2 && !sink(s2) {
                    next.push((s2, t2));
                }
            }
            looked += reps.len();
            if looked > budget {
                return None;
            }
        }
        next.sort_unstable();
        next.dedup();
        pairs = next;
    }
    None
}

/// Labels of a chunk stepped as chains, for the code map.
pub(crate) struct ChainMarks {
    pub start: Label,
    pub slow: Label,
    pub skip: Label,
    pub merge: Label,
    pub resync: usize,
    /// Per chain: its state register and chunk bytes `from..to`.
    pub spans: Vec<(Register, usize, usize)>,
    /// Per step: chain, chunk byte, start and end labels.
    pub steps: Vec<(usize, usize, Label, Label)>,
}

/// The chunk of `size` bytes at `chunk` stepped as [`CHAINS`] interleaved
/// chains of table steps, so that the chains' dependent loads overlap.
/// Chain 0 continues the pass's state in `r0` from the chunk's first
/// byte; chain `i > 0`, in `r(i)`, starts from the initial state `resync`
/// bytes before the byte where chain `i - 1` stops. By [`resync_len`], the
/// state chain `i - 1` reaches there is then a sink or the one chain `i`
/// reaches: the chunk's state is the first chain's that ended in a sink,
/// else the last chain's. The code then jumps to `skip`.
///
/// It begins with a test that falls to `slow` (the chunk's ordinary steps,
/// which follow this code) when `r0` holds no state: never at run time,
/// but it keeps those steps reachable for the verifier, and translation
/// validation checks the pass with the chains bypassed (through them),
/// then the chains against them.
pub(crate) fn emit_chains(
    a: &mut Asm,
    layout: &Layout,
    dfa: &Dfa,
    size: usize,
    resync: usize,
    skip: Label,
    fail: Label,
) -> ChainMarks {
    const REGS: [Register; CHAINS] = [R0, R1, R2, R3];
    const _: () = assert!(CHAINS <= super::scan::MACHINE_REG_FILE.len());
    let (start, slow, merge) = (a.label(), a.label(), a.label());
    a.bind(start);
    a.jmp_imm(JmpCond::Jgt, R0, layout.last_state_value() as i32, slow);
    let per = (size + (CHAINS - 1) * resync).div_ceil(CHAINS);
    let mut spans = Vec::with_capacity(CHAINS);
    let mut end = 0;
    for (i, &reg) in REGS.iter().enumerate() {
        let from = if i == 0 { 0 } else { end - resync };
        let to = if i + 1 == CHAINS {
            size
        } else {
            (from + per).min(size)
        };
        spans.push((reg, from, to));
        end = to;
    }
    // The initial state is 0 whatever the scale.
    for &reg in &REGS[1..] {
        a.emit(Insn::mov64_imm(reg, 0));
    }
    let mut steps = Vec::new();
    let longest = spans.iter().map(|&(_, f, t)| t - f).max().unwrap_or(0);
    for j in 0..longest {
        for (i, &(reg, from, to)) in spans.iter().enumerate() {
            if from + j < to {
                let (s, e) = (a.label(), a.label());
                a.bind(s);
                emit_step(
                    a,
                    layout,
                    super::scan::CHUNK_PTR,
                    (from + j) as i16,
                    R8,
                    reg,
                    fail,
                );
                a.bind(e);
                steps.push((i, from + j, s, e));
            }
        }
    }
    a.bind(merge);
    let sinks: Vec<u32> = (0..dfa.next.len() as u32)
        .filter(|&s| dfa.next[s as usize].iter().all(|&t| t == s))
        .collect();
    for &reg in &REGS[..CHAINS - 1] {
        for &s in &sinks {
            let other = a.label();
            a.jmp_imm(JmpCond::Jne, reg, (s * layout.scale()) as i32, other);
            if reg != R0 {
                a.emit(Insn::mov64_reg(R0, reg));
            }
            a.ja(skip);
            a.bind(other);
        }
    }
    a.emit(Insn::mov64_reg(R0, REGS[CHAINS - 1]));
    a.ja(skip);
    a.bind(slow);
    ChainMarks {
        start,
        slow,
        skip,
        merge,
        resync,
        spans,
        steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use predicate_ir::ByteClass;

    fn case_insensitive(words: &[&str]) -> Dfa {
        let patterns: Vec<Vec<ByteClass>> = words
            .iter()
            .map(|w| {
                w.bytes()
                    .map(|b| ByteClass::from_bytes([b, b.to_ascii_uppercase()]))
                    .collect()
            })
            .collect();
        let slices: Vec<&[ByteClass]> = patterns.iter().map(Vec::as_slice).collect();
        predicate_ir::dfa::some_pattern_dfa(&slices, 100_000, 100_000).unwrap()
    }

    /// Steps the DFA through the bytes of the block as the emitted code
    /// indexes them (the state register holding `state * scale`), and
    /// compares with the IR on every state and byte.
    fn check_block(dfa: &Dfa, rodata: &[u8], l: &Layout) {
        assert_eq!(l.states as usize, dfa.next.len());
        let block = &rodata[l.offset as usize..];
        let row_bytes = 1usize << l.row_shift;
        let entry = l.entry_bytes as usize;
        assert_eq!(block.len(), CLASS_MAP_BYTES + dfa.next.len() * row_bytes);
        for (s, row) in dfa.next.iter().enumerate() {
            let register = s * l.scale() as usize;
            for b in 0..256usize {
                let class = u16::from_le_bytes([block[2 * b], block[2 * b + 1]]) as usize;
                assert!(class < row_bytes && class.is_multiple_of(entry));
                let row_at = if l.premultiplied {
                    register
                } else {
                    register << l.row_shift
                };
                let at = CLASS_MAP_BYTES + row_at + (class & (row_bytes - entry));
                let t = if entry == 2 {
                    u32::from(u16::from_le_bytes([block[at], block[at + 1]]))
                } else {
                    u32::from_le_bytes(block[at..at + 4].try_into().unwrap())
                };
                assert_eq!(t % l.scale(), 0, "state {s} byte {b}: {t} is not a row");
                assert_eq!(t / l.scale(), row[b], "state {s} byte {b}");
            }
        }
    }

    #[test]
    fn the_block_holds_every_transition() {
        let dfa = case_insensitive(&["hate", "hat", "she", "hers", "his", "ersatz", "tzar"]);
        let mut rodata = vec![1, 2, 3]; // an unaligned start is padded
        let l = build(&dfa, &mut rodata, "$.predicate").unwrap();
        assert_eq!(l.offset, 8);
        // Few states: u16 row offsets.
        assert!(l.premultiplied && l.entry_bytes == 2, "{l:?}");
        assert_eq!(l.scale(), 1 << l.row_shift);
        check_block(&dfa, &rodata, &l);
    }

    /// A DFA of `states` states over 32 byte classes (bytes `b` and
    /// `b + 32` agree), every state reachable.
    fn wide_dfa(states: u32) -> Dfa {
        let next = (0..states)
            .map(|s| std::array::from_fn(|b| (s * 7 + (b as u32 % 32) * 13 + 1) % states))
            .collect();
        Dfa {
            next,
            accepting: (0..states).map(|s| s % 5 == 0).collect(),
        }
    }

    #[test]
    fn row_offsets_past_u16_take_u32_entries() {
        // 3,000 states of 32 u16 columns: the last row's offset is past u16.
        let dfa = wide_dfa(3_000);
        let mut rodata = Vec::new();
        let l = build(&dfa, &mut rodata, "$.predicate").unwrap();
        assert!(l.premultiplied && l.entry_bytes == 4, "{l:?}");
        assert_eq!(l.row_shift, 7);
        check_block(&dfa, &rodata, &l);
    }

    #[test]
    fn near_the_limit_states_are_numbered() {
        // u32 row offsets would not fit the read-only data; u16 state
        // numbers do, and the step shifts them.
        let dfa = wide_dfa(3_000);
        let u16_block = CLASS_MAP_BYTES + 3_000 * 32 * 2;
        let mut rodata = vec![0; MAX_RODATA_BYTES - u16_block];
        let l = build(&dfa, &mut rodata, "$.predicate").unwrap();
        assert!(!l.premultiplied && l.entry_bytes == 2, "{l:?}");
        assert_eq!(l.scale(), 1);
        assert_eq!(rodata.len(), MAX_RODATA_BYTES);
        check_block(&dfa, &rodata, &l);
    }

    #[test]
    fn block_lists_resynchronize_and_a_counter_does_not() {
        // Words of at most 6 letters: the state depends on the last 5 bytes.
        let dfa = case_insensitive(&["hate", "hat", "she", "hers", "his", "ersatz", "tzar"]);
        let k = resync_len(&dfa, MAX_RESYNC, 1_000_000).expect("resynchronizes");
        assert!((1..=5).contains(&k), "{k}");
        // Shorter is refused: some state still differs after k - 1 bytes.
        assert_eq!(resync_len(&dfa, k - 1, 1_000_000), None);
        // The parity of the count of 'a' never forgets where it started.
        let parity = Dfa {
            next: (0..2u32)
                .map(|s| std::array::from_fn(|b| if b == usize::from(b'a') { s ^ 1 } else { s }))
                .collect(),
            accepting: vec![false, true],
        };
        assert_eq!(resync_len(&parity, MAX_RESYNC, 1_000_000), None);
        // A budget too small to finish gives up.
        assert_eq!(resync_len(&dfa, MAX_RESYNC, 10), None);
    }

    #[test]
    fn tables_past_the_map_value_limit_are_refused() {
        let dfa = case_insensitive(&["abcd"]);
        let mut rodata = vec![0; MAX_RODATA_BYTES - 100];
        let e = build(&dfa, &mut rodata, "$.predicate.arg").unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("$.predicate.arg: "), "{text}");
        assert!(text.contains(&MAX_RODATA_BYTES.to_string()), "{text}");
    }
}
