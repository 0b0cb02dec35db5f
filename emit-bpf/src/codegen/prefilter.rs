//! The prefilter of whole-payload scans: skip a 64-byte chunk, eight bytes
//! at a time, when the machine is in its initial state and no byte of the
//! chunk can leave it.
//!
//! It applies to a pass of one DFA whose initial state leaves only on one
//! byte value `c`, or on two that differ in one bit (`c` and `c | m`, as a
//! letter in either case): `hateless` waits for `h` or `H`. Where the DFA
//! allows (see [`plan`]) the test is on pairs, `h` or `H` followed by `a`
//! or `A`, which ordinary text holds far more rarely than one letter. Per
//! 8-byte word `x` of the chunk, lane by lane (no carry crosses a byte):
//!
//! ```text
//!   y = (x | broadcast(m)) ^ broadcast(c)        a lane is 0 iff its byte matches
//!   (pairs: y |= the same test of the next byte, from a load one byte on)
//!   t = ((y & 0x7f..) + 0x7f..) | y | 0x7f..     a lane is 0xff iff y's lane is not 0
//!   if t != all ones: the chunk is stepped byte by byte
//! ```
//!
//! and when all eight words pass, the chunk's steps are jumped over: the
//! state stays the initial one, which is what stepping those bytes would
//! leave. The test runs only from the initial state; any other state, and
//! any chunk the test flags, takes the ordinary steps.
//!
//! Registers: the state is in `r0` (the pass's only machine); the test
//! uses `r1`-`r5` and `r8` as scratch, which the chunk's code after the
//! steps never reads. The translation validator's `prefilter` module checks,
//! lane by lane and from the IR, that every chunk the code can skip is one
//! the DFA's transitions leave in its state.

use predicate_ir::{Machine, Program};

use super::asm::{Asm, Label};
use super::scan::PassGroup;
use super::MAX_FRAME;
use crate::insn::*;

/// Bytes the prefilter tests per chunk (the largest tier's chunk).
pub(crate) const SPAN: usize = 64;

/// Longest TCP payload of a frame the diode judges: [`MAX_FRAME`] less the
/// shortest headers (Ethernet, IPv4 and TCP without options).
const MAX_PAYLOAD: usize = MAX_FRAME as usize - (14 + 20 + 20);

const STATE: Register = R0;
const WORD: Register = R1;
const LANES: Register = R2;
const LOW7: Register = R4;
const VALUE: Register = R5;
const MASK: Register = R8;
const CHUNK_PTR: Register = R9;

/// A byte test: `b` matches iff `b | mask == value` (`mask` one bit or 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ByteTest {
    value: u8,
    mask: u8,
}

impl ByteTest {
    /// The test matching exactly `bytes`, if one does.
    fn of(bytes: &[u8]) -> Option<ByteTest> {
        match *bytes {
            [b] => Some(ByteTest { value: b, mask: 0 }),
            [a, b] if (a ^ b).count_ones() == 1 => Some(ByteTest {
                value: a | b,
                mask: a ^ b,
            }),
            _ => None,
        }
    }
}

/// The chunk test of a pass: no byte matching `first` (single), or no byte
/// matching `first` followed by one matching `second` and no `first` as
/// the chunk's last byte (pair).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prefilter {
    first: ByteTest,
    second: Option<ByteTest>,
}

/// Whether some frame holds a whole chunk of `group`'s window. A window
/// no frame reaches a whole chunk into never runs a chunk test: it gets
/// none, rather than code no packet can reach (the validator probes each
/// test with a packet that reaches it).
pub(crate) fn chunk_reachable(group: &PassGroup) -> bool {
    group.window.start as usize + SPAN <= MAX_PAYLOAD
}

/// The prefilter of `group`, if it has one: one DFA whose initial state 0
/// is left on the bytes `A` of one test, all to one state `q`. When `q`
/// goes on (to a state other than 0 and `q`) only on the bytes `B` of one
/// test, stays on `A` and falls back to 0 on the rest, the pair test
/// applies: a chunk without an `A` byte followed by a `B` byte, not ending
/// in an `A` byte, leaves the DFA in 0. Otherwise the single test: a chunk
/// without an `A` byte does.
pub(crate) fn plan(program: &Program, group: &PassGroup) -> Option<Prefilter> {
    let [only] = group.scans.as_slice() else {
        return None;
    };
    let Machine::Dfa(dfa) = &program.scans[*only].machine else {
        return None;
    };
    let start = Machine::INITIAL as usize;
    let row0 = &dfa.next[start];
    let leaving: Vec<u8> = (0..=255u8)
        .filter(|&b| row0[usize::from(b)] != start as u32)
        .collect();
    let first = ByteTest::of(&leaving)?;
    let q = row0[usize::from(leaving[0])];
    let pair = (|| {
        if leaving.iter().any(|&b| row0[usize::from(b)] != q) {
            return None;
        }
        let row_q = &dfa.next[q as usize];
        let going_on: Vec<u8> = (0..=255u8)
            .filter(|&b| !matches!(row_q[usize::from(b)], t if t == q || t == start as u32))
            .collect();
        let keeps_q = (0..=255u8)
            .filter(|&b| row_q[usize::from(b)] == q)
            .eq(leaving.iter().copied());
        let second = ByteTest::of(&going_on)?;
        // One register holds the case bit for both tests.
        let masks_fit = first.mask == 0 || second.mask == 0 || first.mask == second.mask;
        (keeps_q && masks_fit).then_some(second)
    })();
    Some(Prefilter {
        first,
        second: pair,
    })
}

fn broadcast(b: u8) -> u64 {
    u64::from(b) * 0x0101_0101_0101_0101
}

const SECOND: Register = R3;

/// Emits the test at the start of a `SPAN`-byte chunk (the chunk's bounds
/// already checked, `r0` holding the state): jumps to `skip` when the
/// chunk can be skipped, falls through to `slow` otherwise.
pub(crate) fn emit(a: &mut Asm, pf: Prefilter, slow: Label, skip: Label) {
    let mask = pf.first.mask | pf.second.map_or(0, |t| t.mask);
    // The state is tested through a copy blurred with the callback's
    // opaque zero (`scan::OPAQUE`, r7): the verifier then learns nothing
    // about r0 itself, so the slow path is entered with the same r0 from
    // here and from the word tests, and is checked once, not per value.
    a.emit(Insn::mov64_reg(WORD, STATE));
    a.emit(Insn::alu64_reg(AluOp::Xor, WORD, R7));
    a.jmp_imm(JmpCond::Jne, WORD, Machine::INITIAL as i32, slow);
    a.emit(Insn::ld_imm64(LOW7, broadcast(0x7f)));
    a.emit(Insn::ld_imm64(VALUE, broadcast(pf.first.value)));
    if mask != 0 {
        a.emit(Insn::ld_imm64(MASK, broadcast(mask)));
    }
    if let Some(second) = pf.second {
        a.emit(Insn::ld_imm64(SECOND, broadcast(second.value)));
    }
    for word in 0..SPAN / 8 {
        let at = (8 * word) as i16;
        a.emit(Insn::load(Size::DW, WORD, CHUNK_PTR, at));
        if let Some(second) = pf.second {
            // LANES = the next byte of each lane's byte: an unaligned load,
            // or, in the last word (whose last next byte is not in the
            // chunk), the word shifted down a lane.
            if word + 1 < SPAN / 8 {
                a.emit(Insn::load(Size::DW, LANES, CHUNK_PTR, at + 1));
            } else {
                a.emit(Insn::mov64_reg(LANES, WORD));
                a.emit(Insn::alu64_imm(AluOp::Rsh, LANES, 8));
            }
            if second.mask != 0 {
                a.emit(Insn::alu64_reg(AluOp::Or, LANES, MASK));
            }
            a.emit(Insn::alu64_reg(AluOp::Xor, LANES, SECOND));
        }
        if pf.first.mask != 0 {
            a.emit(Insn::alu64_reg(AluOp::Or, WORD, MASK));
        }
        a.emit(Insn::alu64_reg(AluOp::Xor, WORD, VALUE));
        if pf.second.is_some() {
            // A lane is 0 iff both its byte and the next match.
            a.emit(Insn::alu64_reg(AluOp::Or, WORD, LANES));
        }
        a.emit(Insn::mov64_reg(LANES, WORD));
        a.emit(Insn::alu64_reg(AluOp::And, LANES, LOW7));
        a.emit(Insn::alu64_reg(AluOp::Add, LANES, LOW7));
        a.emit(Insn::alu64_reg(AluOp::Or, LANES, WORD));
        a.emit(Insn::alu64_reg(AluOp::Or, LANES, LOW7));
        a.jmp_imm(JmpCond::Jne, LANES, -1, slow);
    }
    if pf.second.is_some() {
        // The chunk's last byte must not begin a pair with the next chunk.
        a.emit(Insn::load(Size::B, WORD, CHUNK_PTR, (SPAN - 1) as i16));
        if pf.first.mask != 0 {
            a.emit(Insn::alu64_imm(AluOp::Or, WORD, i32::from(pf.first.mask)));
        }
        a.jmp_imm(JmpCond::Jeq, WORD, i32::from(pf.first.value), slow);
    }
    a.ja(skip);
}
