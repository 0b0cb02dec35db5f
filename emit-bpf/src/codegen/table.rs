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
    fn tables_past_the_map_value_limit_are_refused() {
        let dfa = case_insensitive(&["abcd"]);
        let mut rodata = vec![0; MAX_RODATA_BYTES - 100];
        let e = build(&dfa, &mut rodata, "$.predicate.arg").unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("$.predicate.arg: "), "{text}");
        assert!(text.contains(&MAX_RODATA_BYTES.to_string()), "{text}");
    }
}
