//! The carried state: each pass starts every machine from the state the
//! flow's value holds, and a segment that walks nothing leaves it there.
//!
//! The walk check ([`super::walk`]) runs with a fresh flow, whose value
//! holds the initial states; it shows that each machine's registers travel
//! from where the pass's setup put them, but not that the setup put the
//! carried state there. This check runs whole segments concretely (the
//! callbacks included) with chosen states in the flow value:
//!
//! 1. Which value word holds each scan's state: with a distinct marker in
//!    every word and a bare FIN (a judged segment without new bytes, so no
//!    pass walks), the scan's final state must be one word's marker, and
//!    every word must still hold its own (nothing is stored elsewhere).
//!    A depth counter's depth word is the one that counts an opening byte
//!    at the window's start.
//! 2. For every reachable state `s` of every scan: with `s` in its words,
//!    a bare FIN must leave the final state `s` and the words unchanged; a one-byte segment at the window's start must end in
//!    `step(s, b)`, for a byte `b` on which `s` and the initial state step
//!    apart (so a walk from the initial state would show) and for `a`, and
//!    the same words must then hold `step(s, b)` (the state is stored back
//!    where the next segment reads it).

use emit_bpf::codemap::{CodeMap, PassMap, StateEncoding};
use predicate_ir::program::QUOTE;
use predicate_ir::{Machine, StreamProgram};

use super::{probe, FLOW_VALUE_BASE};
use crate::object::Object;
use crate::step::{encode, reachable};
use crate::vm::{Func, Regs, Stop};
use crate::walk::final_value;
use crate::ValidationError;

/// Offset of the machine registers in a flow value (docs/stream.md).
const VALUE_SLOTS: u64 = 40;
/// Value words given markers (every word the flow value region holds).
const WORDS: u64 = (512 - VALUE_SLOTS) / 4;
const MARKER: u32 = 0x7a3c_0000;

/// A segment's run through the entry from the start to `after`, with
/// `words` (word index, value) written into the flow value before the
/// pass's setup; returns the final-state slots' values and the words.
struct Segment<'a> {
    object: &'a Object,
    map: &'a CodeMap,
    pass: &'a PassMap,
    after: usize,
}

impl Segment<'_> {
    fn run(
        &self,
        stream_offset: u64,
        payload: &[u8],
        words: &[(u64, u32)],
    ) -> Result<(Vec<u64>, Vec<u32>), String> {
        // A segment without new bytes is judged only with its FIN.
        let mut vm = probe::vm(self.object, stream_offset, payload, payload.is_empty());
        let (mut regs, r10) = vm.entry_start();
        let stop = vm
            .exec(Func::Entry, 0, &mut regs, &[self.pass.setup_start])
            .map_err(|e| e.to_string())?;
        if stop != Stop::At(self.pass.setup_start) {
            return Err(format!("the entry stops before the pass: {stop:?}"));
        }
        for &(w, v) in words {
            vm.poke(FLOW_VALUE_BASE + VALUE_SLOTS + 4 * w, &v.to_le_bytes())?;
        }
        let stop = vm
            .exec(Func::Entry, self.pass.setup_start, &mut regs, &[self.after])
            .map_err(|e| e.to_string())?;
        if stop != Stop::At(self.after) {
            return Err(format!("the pass does not continue: {stop:?}"));
        }
        let finals = self
            .pass
            .machines
            .iter()
            .map(|m| {
                let off = self
                    .map
                    .final_states
                    .get(m.scan)
                    .ok_or("no final-state slot")?;
                vm.peek_u64(r10.wrapping_add(*off as i64 as u64), 8)
            })
            .collect::<Result<Vec<_>, String>>()?;
        let values = (0..WORDS)
            .map(|w| {
                vm.peek_u64(FLOW_VALUE_BASE + VALUE_SLOTS + 4 * w, 4)
                    .map(|v| v as u32)
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok((finals, values))
    }
}

/// Runs the check; returns how many segments ran.
pub fn check(
    program: &StreamProgram,
    object: &Object,
    map: &CodeMap,
) -> Result<u64, ValidationError> {
    let t = super::walk::program_tail_start(map);
    let mut runs = 0;
    for (p, pass) in map.passes.iter().enumerate() {
        let scans: Vec<usize> = pass.machines.iter().map(|m| m.scan).collect();
        let err = |what: String| ValidationError::Walk {
            pass: p,
            scans: scans.clone(),
            len: 1,
            what: format!("the carried state: {what}"),
        };
        let after = map
            .passes
            .get(p + 1)
            .map_or(map.formula_start, |q| q.setup_start);
        let seg = Segment {
            object,
            map,
            pass,
            after,
        };
        // 1. Where each scan's state is kept (`t`: any offset would do).
        let markers: Vec<(u64, u32)> = (0..WORDS).map(|w| (w, MARKER + w as u32)).collect();
        let (finals, values) = seg.run(t, &[], &markers).map_err(&err)?;
        runs += 1;
        // Walking nothing, the pass stores back what it read, where it read it.
        if let Some(w) = (0..WORDS).find(|&w| values[w as usize] != MARKER + w as u32) {
            return Err(err(format!(
                "a bare FIN changes word {w} of the flow value's machine registers to {:#x}",
                values[w as usize]
            )));
        }
        let start = u64::from(pass.window.start);
        if pass.window.end.is_some_and(|e| e <= pass.window.start) {
            continue; // a window that never holds a byte carries nothing
        }
        // The words holding the pass's machines' states (a depth counter's
        // mode): never another counter's depth word.
        let state_words: Vec<u64> = finals
            .iter()
            .filter_map(|f| f.checked_sub(u64::from(MARKER)).filter(|&w| w < WORDS))
            .collect();
        for (m, mm) in pass.machines.iter().enumerate() {
            let machine = &program.program.scans[mm.scan].machine;
            let state_word = finals[m]
                .checked_sub(u64::from(MARKER))
                .filter(|&w| w < WORDS)
                .ok_or_else(|| {
                    err(format!(
                        "scan {}'s final state after a bare FIN is {:#x}, no word of the flow value",
                        mm.scan, finals[m]
                    ))
                })?;
            let registers_of = |s: u32| -> Vec<u64> {
                let mut r = Regs::default();
                encode(machine, &mm.encoding, s, &mut r);
                crate::step::state_regs(&mm.encoding)
                    .iter()
                    .map(|&reg| r.get(reg).unwrap_or(0))
                    .collect()
            };
            let mut layout = vec![state_word];
            // Registers of a state not kept in `layout` (leading ones).
            let mut unkept = 0;
            if let (Machine::Depth(c), StateEncoding::Depth { .. }) = (machine, &mm.encoding) {
                // The depth word: the one an opening byte counts up from a
                // fresh counter and not from a failed one. Another scan's
                // state word may also read 1 afterwards (a DFA that left
                // its initial state on the same byte), and another
                // counter's depth word counts the byte either way. With
                // strings the quote opens a string, never a level.
                let counting =
                    (0..=255u8).find(|&b| c.open.contains(b) && !(c.strings && b == QUOTE));
                if let Some(open) = counting {
                    let init = registers_of(Machine::INITIAL);
                    let (_, after_open) = seg
                        .run(start, &[open], &[(state_word, init[1] as u32)])
                        .map_err(&err)?;
                    let failed = registers_of(c.failed_state());
                    let (_, after_open_failed) = seg
                        .run(start, &[open], &[(state_word, failed[1] as u32)])
                        .map_err(&err)?;
                    runs += 2;
                    let depth_word = (0..WORDS)
                        .find(|&w| {
                            !state_words.contains(&w)
                                && after_open[w as usize] == 1
                                && after_open_failed[w as usize] != 1
                        })
                        .ok_or_else(|| {
                            err(format!(
                                "scan {}: no flow value word counts an opening byte",
                                mm.scan
                            ))
                        })?;
                    layout.insert(0, depth_word);
                } else {
                    // No byte opens a level: every reachable state has
                    // depth 0, and only the mode is carried.
                    unkept = 1;
                }
            }
            let words_of = |s: u32| -> Vec<u64> { registers_of(s)[unkept..].to_vec() };
            // 2. Every reachable state is carried.
            for s in reachable(machine) {
                let words: Vec<(u64, u32)> = layout
                    .iter()
                    .zip(words_of(s))
                    .map(|(&w, v)| (w, v as u32))
                    .collect();
                let want = final_value(machine, &mm.encoding, s);
                let (finals, values) = seg.run(t, &[], &words).map_err(&err)?;
                runs += 1;
                if finals[m] != want || words.iter().any(|&(w, v)| values[w as usize] != v) {
                    return Err(err(format!(
                        "scan {} carried in state {s}: a bare FIN leaves final state {:#x}, not {want:#x}, or changes the flow's words",
                        mm.scan, finals[m]
                    )));
                }
                let apart =
                    (0..=255u8).find(|&b| machine.step(s, b) != machine.step(Machine::INITIAL, b));
                for b in apart.into_iter().chain([b'a']) {
                    let next = machine.step(s, b);
                    let want = final_value(machine, &mm.encoding, next);
                    let (finals, values) = seg.run(start, &[b], &words).map_err(&err)?;
                    runs += 1;
                    // Read from and written back to the same words (a failed
                    // depth counter is its mode alone: its depth word is not
                    // compared then).
                    let failed = matches!(machine, Machine::Depth(c) if next == c.failed_state());
                    let stored = layout
                        .iter()
                        .zip(words_of(next))
                        .skip(usize::from(failed && layout.len() == 2))
                        .all(|(&w, v)| u64::from(values[w as usize]) == v & 0xffff_ffff);
                    if !stored {
                        return Err(err(format!(
                            "scan {} carried in state {s}, byte {b:#04x} at stream offset {start}: the flow's words do not hold the next state {next} afterwards (read from one word, stored to another?)",
                            mm.scan
                        )));
                    }
                    if finals[m] != want {
                        return Err(err(format!(
                            "scan {} carried in state {s}, byte {b:#04x} at stream offset {start}: final state {:#x}, the IR's step gives state {next} ({want:#x})",
                            mm.scan, finals[m]
                        )));
                    }
                }
            }
        }
    }
    Ok(runs)
}
