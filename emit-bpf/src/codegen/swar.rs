//! Word-at-a-time class tests: eight window bytes tested against one byte
//! range with one 64-bit load, where every state of a machine stays on
//! every byte of that range (an `all` of a class: the live state stays on
//! the class, the sink on everything).
//!
//! The test of one 8-byte word `x` at `r9 + off`, for the range
//! `[lo, hi]` (`hi <= 0x7f`), lane by lane:
//!
//! ```text
//!   y   = x & 0x7f..7f                 each lane 0..=0x7f: the high bit set aside
//!   lt  = (0x7f + lo)..  - y           high bit set iff y < lo   (no lane borrows)
//!   gt  = y + (0x7f - hi)..            high bit set iff y > hi   (no lane carries)
//!   out = lt | gt | x | 0x7f..7f       a lane is 0x7f iff its byte is in [lo, hi]
//!   if out != 0x7f..7f: step the word's eight bytes (the slow path)
//! ```
//!
//! Because `y`'s lanes are at most 0x7f, `(0x7f + lo) - y` stays in
//! `lo ..= 0x7f + lo` (no borrow for `lo <= 0x80`) and `y + (0x7f - hi)` in
//! `0x7f - hi ..= 0xfe - hi` (no carry): every operation is lane-local, and
//! the word passes iff every lane does. A byte with its high bit set fails
//! through `x`. A word that passes leaves every machine state as it was,
//! so its steps are jumped over; one that fails is stepped byte by byte by
//! the ordinary steps, which also find the deciding byte.
//!
//! Inline passes test each whole word of a block this way (`inline.rs`);
//! a whole-payload pass without a prefilter tests the eight words of each
//! 64-byte chunk and jumps over the chunk when all pass (`scan.rs`), a
//! prefilter to the code map and the validator.
//!
//! Registers: the word in `r8` (the byte register, dead between steps),
//! scratch `r1`-`r4`, which a pass of one DFA (state in `r0`) never holds
//! anything in. The block is the fixed [`template`]; the translation
//! validator's `swar` module recognizes it, checks its lane constants and
//! runs it lane by lane on every byte value (docs/validation.md).

use predicate_ir::{ByteClass, Machine, Program};

use super::asm::{Asm, Label};
use super::scan::PassGroup;
use crate::insn::*;

/// The registers of the template.
const WORD: Register = R8;
const LOW: Register = R1;
const OUT: Register = R2;
const LOW7: Register = R3;
const ABOVE: Register = R4;
const PTR: Register = R9;

/// Narrowest range worth a word test: below it, a word of ordinary text
/// fails the test too often to repay it.
const MIN_RANGE: u8 = 16;

/// The range a group's words are tested against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    pub lo: u8,
    pub hi: u8,
}

fn broadcast(b: u8) -> u64 {
    u64::from(b) * 0x0101_0101_0101_0101
}

/// The word test of `group`, if it has one: one DFA whose every reachable
/// state stays on every byte of a range of at least [`MIN_RANGE`] bytes
/// below 0x80 (the widest such range).
pub(crate) fn plan(program: &Program, group: &PassGroup) -> Option<Range> {
    let [only] = group.scans.as_slice() else {
        return None;
    };
    let machine = &program.scans[*only].machine;
    let Machine::Dfa(dfa) = machine else {
        return None;
    };
    let mut seen = vec![false; dfa.next.len()];
    let mut todo = vec![Machine::INITIAL as usize];
    seen[Machine::INITIAL as usize] = true;
    while let Some(s) = todo.pop() {
        for &t in &dfa.next[s] {
            if !seen[t as usize] {
                seen[t as usize] = true;
                todo.push(t as usize);
            }
        }
    }
    let stay = ByteClass::from_bytes((0..0x80u8).filter(|&b| {
        (0..dfa.next.len())
            .filter(|&s| seen[s])
            .all(|s| dfa.next[s][usize::from(b)] == s as u32)
    }));
    let &(lo, hi) = stay
        .ranges()
        .iter()
        .max_by_key(|&&(lo, hi)| u16::from(hi) - u16::from(lo))?;
    (hi - lo >= MIN_RANGE - 1).then_some(Range { lo, hi })
}

/// The test of the word at `r9 + off`, jumping to `slow` when it fails.
pub(crate) fn template(range: Range, off: i16, slow: Label, a: &mut Asm) {
    a.emit(Insn::load(Size::DW, WORD, PTR, off));
    a.emit(Insn::ld_imm64(LOW7, broadcast(0x7f)));
    a.emit(Insn::mov64_reg(LOW, WORD));
    a.emit(Insn::alu64_reg(AluOp::And, LOW, LOW7));
    a.emit(Insn::ld_imm64(OUT, broadcast(0x7f + range.lo)));
    a.emit(Insn::alu64_reg(AluOp::Sub, OUT, LOW));
    a.emit(Insn::ld_imm64(ABOVE, broadcast(0x7f - range.hi)));
    a.emit(Insn::alu64_reg(AluOp::Add, LOW, ABOVE));
    a.emit(Insn::alu64_reg(AluOp::Or, OUT, LOW));
    a.emit(Insn::alu64_reg(AluOp::Or, OUT, WORD));
    a.emit(Insn::alu64_reg(AluOp::Or, OUT, LOW7));
    a.jmp_reg(JmpCond::Jne, OUT, LOW7, slow);
}

/// Slots the template takes (for size estimates).
pub(crate) const TEMPLATE_SLOTS: usize = 15;

#[cfg(test)]
mod tests {
    use super::*;

    /// The template's arithmetic, on the host, against the range's plain
    /// definition: every lane, every byte, other lanes passing or failing.
    #[test]
    fn lane_arithmetic_matches_the_range() {
        for (lo, hi) in [(32u8, 126u8), (0, 0x7f), (0x30, 0x39), (0x61, 0x7a)] {
            let r = Range { lo, hi };
            let test = |x: u64| {
                let low7 = broadcast(0x7f);
                let y = x & low7;
                let lt = broadcast(0x7f + r.lo).wrapping_sub(y);
                let gt = y.wrapping_add(broadcast(0x7f - r.hi));
                (lt | gt | x | low7) == low7
            };
            for lane in 0..8 {
                for others in [lo, hi] {
                    for b in 0..=255u8 {
                        let mut bytes = [others; 8];
                        bytes[lane] = b;
                        let want = (lo..=hi).contains(&b);
                        assert_eq!(test(u64::from_le_bytes(bytes)), want, "{lo}..{hi} {b}");
                    }
                }
            }
        }
    }
}
