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
//! prefilter to the code map and the validator. A pass of one depth
//! counter tests its largest chunks word by word for the bytes that would
//! change the counter ([`DepthWords`]), each word test a prefilter of one
//! word whose skip target is the next word's test.
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

/// The word skip of a depth counter alone in its pass: the byte set
/// `U` that changes the counter in code mode or (with `strings`) in a
/// string, all below 0x80, covered by at most [`MAX_DEPTH_RANGES`]
/// ranges of `y = (x | fold) & 0x7f` per lane, `fold` either 0 or 0x20
/// (which maps `[ \ ]` onto `{ | }`: JSON's specials then need two
/// ranges, not four). A word none of whose lanes lands in a range holds
/// no byte of `U`, so the counter stays where it is on all eight bytes,
/// in code and string mode alike; after a backslash it would not, and
/// the skip is not taken there. Per word `x` and range `[lo, hi]`
/// (`hi <= 0x7f`), lane by lane:
///
/// ```text
///   y   = (x | fold..) & 0x7f..          each lane 0..=0x7f
///   in  = (y + (0x80 - lo)..) & ((0x80 + hi).. - y)
///                                        high bit set iff lo <= y <= hi
///   hit = (in_1 | in_2 | ...) & 0x80..
///   if hit != 0: step the word's bytes (and the rest of the chunk)
/// ```
///
/// `y + (0x80 - lo)` stays within `0x80 - lo ..= 0xff - lo` and
/// `(0x80 + hi) - y` within `hi + 1 ..= 0x80 + hi`: no lane carries or
/// borrows. A byte at or above 0x80 may alarm (it is masked into
/// 0..=0x7f) but is never in `U`: a false alarm only costs the slow path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DepthWords {
    pub fold: u8,
    pub ranges: Vec<(u8, u8)>,
    /// Whether the counter has string modes (and so an escape mode in
    /// which no word may be skipped).
    pub strings: bool,
}

/// Most ranges a depth word test checks: more cost more than stepping.
const MAX_DEPTH_RANGES: usize = 3;
/// Most of the 128 values below 0x80 a depth word test may alarm on.
const MAX_DEPTH_ALARMS: usize = 32;

/// The word skip of `group`, if it is one depth counter whose changing
/// bytes fit [`DepthWords`].
pub(crate) fn depth_plan(program: &Program, group: &PassGroup) -> Option<DepthWords> {
    use predicate_ir::program::{DepthCounter, StringMode};
    let [only] = group.scans.as_slice() else {
        return None;
    };
    let Machine::Depth(c) = &program.scans[*only].machine else {
        return None;
    };
    let modes: &[StringMode] = if c.strings {
        &[StringMode::Code, StringMode::Str]
    } else {
        &[StringMode::Code]
    };
    // A byte's effect depends on the depth only at 0 (a close stays) and
    // at `max` (an open fails); every depth in between acts like 1.
    let depths = [0, 1.min(c.max), c.max];
    let changing: Vec<u8> = (0..=255u8)
        .filter(|&b| {
            modes.iter().any(|&m| {
                depths.iter().any(|&d| {
                    let s = DepthCounter::state(d, m);
                    c.step(s, b) != s
                })
            })
        })
        .collect();
    if changing.is_empty() || changing.iter().any(|&b| b >= 0x80) {
        return None;
    }
    let ranges_of = |fold: u8| {
        let mut bytes: Vec<u8> = changing.iter().map(|&b| b | fold).collect();
        bytes.sort_unstable();
        bytes.dedup();
        let mut ranges: Vec<(u8, u8)> = Vec::new();
        for b in bytes {
            match ranges.last_mut() {
                // A gap of one or two bytes: one range, a rare false alarm.
                Some((_, hi)) if b - *hi <= 3 => *hi = b,
                _ => ranges.push((b, b)),
            }
        }
        ranges
    };
    let (plain, folded) = (ranges_of(0), ranges_of(0x20));
    let (fold, ranges) = if folded.len() < plain.len() {
        (0x20, folded)
    } else {
        (0, plain)
    };
    // Bytes below 0x80 that alarm: where they are common, words rarely
    // pass and the test costs more than it saves.
    let alarms = (0..0x80u8)
        .filter(|&b| {
            let y = b | fold;
            ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&y))
        })
        .count();
    (ranges.len() <= MAX_DEPTH_RANGES && alarms <= MAX_DEPTH_ALARMS).then_some(DepthWords {
        fold,
        ranges,
        strings: c.strings,
    })
}

/// The depth word test of the word at `r9 + off`, jumping to `slow` when
/// the word holds a byte of a range (or the mode, in `mode`, is the escape
/// mode `escape`); falls through when the word may be skipped. Scratch:
/// `r2`-`r5` and `r8` (a lone depth counter holds `r0` and `r1`).
pub(crate) fn depth_template(
    words: &DepthWords,
    mode: Register,
    escape: i32,
    off: i16,
    slow: Label,
    a: &mut Asm,
) {
    const HIT: Register = R2;
    const MASK: Register = R3;
    const IN: Register = R4;
    const BOUND: Register = R5;
    if words.strings {
        a.jmp_imm(JmpCond::Jeq, mode, escape, slow);
    }
    a.emit(Insn::load(Size::DW, WORD, PTR, off));
    if words.fold != 0 {
        a.emit(Insn::ld_imm64(MASK, broadcast(words.fold)));
        a.emit(Insn::alu64_reg(AluOp::Or, WORD, MASK));
    }
    a.emit(Insn::ld_imm64(MASK, broadcast(0x7f)));
    a.emit(Insn::alu64_reg(AluOp::And, WORD, MASK));
    for (i, &(lo, hi)) in words.ranges.iter().enumerate() {
        a.emit(Insn::mov64_reg(IN, WORD));
        a.emit(Insn::ld_imm64(BOUND, broadcast(0x80 - lo)));
        a.emit(Insn::alu64_reg(AluOp::Add, IN, BOUND));
        a.emit(Insn::ld_imm64(BOUND, broadcast(0x80 + hi)));
        a.emit(Insn::alu64_reg(AluOp::Sub, BOUND, WORD));
        a.emit(Insn::alu64_reg(AluOp::And, IN, BOUND));
        if i == 0 {
            a.emit(Insn::mov64_reg(HIT, IN));
        } else {
            a.emit(Insn::alu64_reg(AluOp::Or, HIT, IN));
        }
    }
    a.emit(Insn::ld_imm64(MASK, broadcast(0x80)));
    a.emit(Insn::alu64_reg(AluOp::And, HIT, MASK));
    a.jmp_imm(JmpCond::Jne, HIT, 0, slow);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The template's arithmetic, on the host, against the range's plain
    /// definition: every lane, every byte, other lanes passing or failing.
    /// The depth test's arithmetic, on the host: a lane alarms exactly
    /// for the bytes whose folded low seven bits land in a range.
    #[test]
    fn depth_lane_arithmetic_matches_the_ranges() {
        let words = DepthWords {
            fold: 0x20,
            ranges: vec![(0x22, 0x22), (0x7b, 0x7d)],
            strings: true,
        };
        let alarms = |x: u64| {
            let y = (x | broadcast(words.fold)) & broadcast(0x7f);
            let mut hit = 0u64;
            for &(lo, hi) in &words.ranges {
                let inside =
                    y.wrapping_add(broadcast(0x80 - lo)) & broadcast(0x80 + hi).wrapping_sub(y);
                hit |= inside;
            }
            hit & broadcast(0x80) != 0
        };
        for lane in 0..8 {
            for b in 0..=255u8 {
                let mut bytes = [b'a'; 8];
                bytes[lane] = b;
                let y = (b | words.fold) & 0x7f;
                let want = words.ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&y));
                assert_eq!(
                    alarms(u64::from_le_bytes(bytes)),
                    want,
                    "lane {lane} byte {b:#x}"
                );
            }
        }
        // Every JSON special alarms.
        for b in *b"\"[]{}\\" {
            assert!(alarms(u64::from(b)), "{b:#x}");
        }
    }

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
