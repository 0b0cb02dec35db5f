//! The word-test check: an inline pass may test eight window bytes with
//! one 64-bit load and jump over their steps (emit-bpf's `codegen/swar.rs`).
//! It must jump only over words every state of the pass's machine stays on.
//!
//! The inline check runs on [`bypassed`]: the object with each word test's
//! first instruction replaced by a jump to its slow path (the word's eight
//! byte steps), so it checks the steps and the walk as if every word were
//! stepped byte by byte. This module checks that the real test is
//! equivalent, for every word test of the code map:
//!
//! - **Template.** The test is exactly the emitter's fixed sequence (word
//!   load through `r9`, `r1 = (x & L) `, `r2 = C - r1`, `r1 += D`,
//!   `r2 |= r1 | x | L`, `if r2 != L goto slow`) with `L = 0x7f` in every
//!   lane, every lane of `C` at least 0x7f and every lane of `D` at most
//!   0x80. Then every operation is lane-local (docs/validation.md): the
//!   word passes iff each lane passes a test of its own byte alone.
//! - **Shape.** From `slow`, the pass's one machine has the steps of block
//!   bytes `off .. off + 8` (`off` = the word load's offset), back to back,
//!   each loading its byte through `r9` at its offset, the last followed by
//!   a jump to `skip` (or ending there); `skip` follows the test.
//! - **Lanes.** From `start`, captured on a probe packet, the real
//!   instructions run on the VM: first with all eight bytes equal, for each
//!   byte value, to find one that passes in every lane; then, for each
//!   lane, each of the 256 byte values with the other lanes held at the
//!   first and the last such value, and once more at a failing one. A
//!   value the lane passes must be one on which every reachable state of
//!   the machine stays (from the IR's transitions), and a run with a
//!   failing lane must never pass. Each run must read the word once, store
//!   nothing and stop at `slow` or `skip`.
//! - **Registers.** The test writes `r1`-`r4` and `r8` only; none of them
//!   may be read before written after `skip` or after `slow` (a
//!   conservative walk over every path of the entry, helpers reading their
//!   documented arguments), so both continue exactly as the bypassed code
//!   does.

use emit_bpf::codemap::{CodeMap, InlineMap, StateEncoding, WordTestMap};
use predicate_ir::Program;

use crate::isa::{Alu, Cond, Insn, Operand};
use crate::object::Object;
use crate::step::reachable;
use crate::vm::{self, Func, Stop, Vm};
use crate::ValidationError;

/// Registers the template writes.
const WRITTEN: [u8; 5] = [1, 2, 3, 4, 8];
/// Slots of the template.
pub const TEMPLATE_SLOTS: usize = 15;

/// The object with every word test jumping straight to its slow path.
pub fn bypassed(object: &Object, map: &CodeMap) -> Result<Object, ValidationError> {
    let mut out = object.clone();
    for w in map.inline.iter().flat_map(|p| &p.words) {
        out.entry
            .jump_over(w.start, w.slow)
            .map_err(|e| ValidationError::Map(format!("word test {e}")))?;
    }
    Ok(out)
}

/// Checks every word test; returns the runs it made.
pub fn check(program: &Program, object: &Object, map: &CodeMap) -> Result<u64, ValidationError> {
    let mut runs = 0;
    let mut proven = std::collections::HashSet::new();
    for (p, pass) in map.inline.iter().enumerate() {
        if pass.words.is_empty() {
            continue;
        }
        let snaps = capture(object, pass, p)?;
        for (i, w) in pass.words.iter().enumerate() {
            let e = |what: String| error(p, pass, i, what);
            let t = template(object, w).map_err(&e)?;
            shape(object, pass, w, t.off).map_err(&e)?;
            registers(object, w).map_err(&e)?;
            let snap = snaps
                .get(&w.start)
                .ok_or_else(|| e("no probe packet reaches it".into()))?;
            // The template fixes every instruction but the word's offset
            // and the two bounds: a test with the bounds of one already
            // run lane by lane for the same machine passes the same words.
            if proven.insert((pass.machines[0].scan, t.below, t.above)) {
                runs += lanes(program, object, pass, w, t.off, snap).map_err(&e)?;
            }
        }
    }
    Ok(runs)
}

fn error(pass: usize, map: &InlineMap, word: usize, what: String) -> ValidationError {
    ValidationError::Inline {
        pass,
        scans: map.machines.iter().map(|m| m.scan).collect(),
        at: format!(", word test {word}"),
        what,
    }
}

fn broadcast(b: u8) -> u64 {
    u64::from(b) * 0x0101_0101_0101_0101
}

/// What decides a word test's outcome once its template is recognized:
/// the word (read at `off`) and the two bound constants.
struct Template {
    off: i16,
    below: u64,
    above: u64,
}

/// Recognizes the template at `w.start`.
fn template(object: &Object, w: &WordTestMap) -> Result<Template, String> {
    let code = object
        .entry
        .insns
        .get(w.start..w.start + TEMPLATE_SLOTS)
        .ok_or("the test runs past the entry")?;
    let alu = |op, dst, src| Insn::Alu {
        wide: true,
        op,
        dst,
        src: Operand::Reg(src),
        off: 0,
        to_be: false,
    };
    let imm64 = |at: usize, dst: u8| -> Result<u64, String> {
        match (code[at], code[at + 1]) {
            (
                Insn::LoadImm64 {
                    dst: d,
                    src: 0,
                    value,
                    ..
                },
                Insn::Wide,
            ) if d == dst => Ok(value),
            other => Err(format!(
                "slot {}: {other:?} where the template loads a constant into r{dst}",
                w.start + at
            )),
        }
    };
    let off = match code[0] {
        Insn::Load {
            width: 8,
            dst: 8,
            src: 9,
            off,
            signed: false,
        } => off,
        other => return Err(format!("{other:?} where the template loads its word")),
    };
    let low7 = imm64(1, 3)?;
    let below = imm64(5, 2)?;
    let above = imm64(8, 4)?;
    let want: [(usize, Insn); 8] = [
        (3, alu(Alu::Mov, 1, 8)),
        (4, alu(Alu::And, 1, 3)),
        (7, alu(Alu::Sub, 2, 1)),
        (10, alu(Alu::Add, 1, 4)),
        (11, alu(Alu::Or, 2, 1)),
        (12, alu(Alu::Or, 2, 8)),
        (13, alu(Alu::Or, 2, 3)),
        (
            14,
            Insn::Jump {
                wide: true,
                cond: Some(Cond::Ne),
                dst: 2,
                src: Operand::Reg(3),
                off: (w.slow as i64 - (w.start + 15) as i64) as i32,
            },
        ),
    ];
    for (at, insn) in want {
        if code[at] != insn {
            return Err(format!(
                "slot {}: {:?} where the template has {insn:?} (or the jump misses the slow path)",
                w.start + at,
                code[at]
            ));
        }
    }
    if w.skip != w.start + TEMPLATE_SLOTS {
        return Err(format!(
            "the skip target {} does not follow the test",
            w.skip
        ));
    }
    // The lane argument's premises (docs/validation.md).
    if low7 != broadcast(0x7f) {
        return Err(format!(
            "the lane mask is {low7:#x}, not 0x7f in every lane"
        ));
    }
    let lanes = |v: u64| (0..8).map(move |i| (v >> (8 * i)) as u8);
    if let Some(l) = lanes(below).find(|&l| l < 0x7f) {
        return Err(format!(
            "a lane of the lower bound's constant {below:#x} is {l:#x}: its subtraction may borrow across lanes"
        ));
    }
    if let Some(l) = lanes(above).find(|&l| l > 0x80) {
        return Err(format!(
            "a lane of the upper bound's constant {above:#x} is {l:#x}: its addition may carry across lanes"
        ));
    }
    Ok(Template { off, below, above })
}

/// The slow path: the word's eight byte steps, back to back, to `skip`.
fn shape(object: &Object, pass: &InlineMap, w: &WordTestMap, off: i16) -> Result<(), String> {
    let [_] = pass.machines.as_slice() else {
        return Err("its pass has more than one machine".into());
    };
    if !matches!(pass.machines[0].encoding, StateEncoding::Dfa { .. }) {
        return Err("its machine is not a DFA".into());
    }
    let mut at = w.slow;
    for k in 0..8i16 {
        let offset = u16::try_from(off + k).map_err(|_| "a negative word offset".to_string())?;
        let step = pass
            .steps
            .iter()
            .find(|s| s.start == at && s.machine == 0 && s.offset == offset)
            .ok_or_else(|| format!("no step of block byte {offset} at slot {at}"))?;
        match object.entry.insns.get(step.start) {
            Some(Insn::Load {
                width: 1,
                dst: 8,
                src: 9,
                off: o,
                signed: false,
            }) if *o == off + k => {}
            other => {
                return Err(format!(
                    "the step of block byte {offset} begins with {other:?}, not its byte's load through r9"
                ))
            }
        }
        at = step.end;
    }
    let ends = at == w.skip
        || matches!(object.entry.insns.get(at), Some(Insn::Jump { cond: None, off, .. })
            if (at as i64 + 1 + i64::from(*off)) == w.skip as i64);
    if !ends {
        return Err(format!(
            "the word's steps end at slot {at}, which does not go on at the skip target {}",
            w.skip
        ));
    }
    Ok(())
}

/// No register the test writes is read after `skip` or `slow` before it
/// is written again.
fn registers(object: &Object, w: &WordTestMap) -> Result<(), String> {
    for (name, from) in [("skip", w.skip), ("slow", w.slow)] {
        if let Some(r) = first_read(&object.entry.insns, from, &WRITTEN)? {
            return Err(format!(
                "r{r}, which the test overwrites, may be read after its {name} target"
            ));
        }
    }
    Ok(())
}

/// Arguments a helper reads (`r1` up to `r<n>`), from the kernel's helper
/// documentation; a helper not listed counts as reading all five.
fn helper_args(id: i32) -> u8 {
    match id {
        5 => 0,                      // ktime_get_ns()
        1 | 3 | 39 | 132 | 133 => 2, // map_lookup_elem, map_delete_elem, skb_pull_data, ringbuf_submit, ringbuf_discard
        38 | 131 => 3,               // skb_change_tail, ringbuf_reserve
        2 | 26 | 181 => 4,           // map_update_elem, skb_load_bytes, loop
        _ => 5,
    }
}

/// A register of `regs` that some path from `from` reads before writing
/// it, if any (a conservative walk over every path of the function; a
/// helper call reads its arguments and writes `r0`-`r5`).
fn first_read(insns: &[Insn], from: usize, regs: &[u8]) -> Result<Option<u8>, String> {
    let all: u16 = regs.iter().map(|&r| 1u16 << r).sum();
    let mut seen = std::collections::HashSet::new();
    let mut work = vec![(from, 0u16)];
    while let Some((pc, written)) = work.pop() {
        if written & all == all || !seen.insert((pc, written)) {
            continue;
        }
        if seen.len() > 1_000_000 {
            return Err("liveness: too many states".into());
        }
        let insn = *insns
            .get(pc)
            .ok_or_else(|| format!("liveness: runs off the entry at slot {pc}"))?;
        let mut reads: Vec<u8> = Vec::new();
        let mut w = written;
        let mut next = vec![pc + 1];
        match insn {
            Insn::Alu { op, dst, src, .. } => {
                if let Operand::Reg(r) = src {
                    reads.push(r);
                }
                if op != Alu::Mov {
                    reads.push(dst);
                }
                w |= 1 << dst;
            }
            Insn::Load { dst, src, .. } => {
                reads.push(src);
                w |= 1 << dst;
            }
            Insn::Store { dst, src, .. } => {
                reads.push(dst);
                if let Operand::Reg(r) = src {
                    reads.push(r);
                }
            }
            Insn::LoadImm64 { dst, .. } => {
                w |= 1 << dst;
                next = vec![pc + 2];
            }
            Insn::Wide => return Err(format!("liveness: the middle of an ld_imm64 at {pc}")),
            Insn::Jump {
                cond,
                dst,
                src,
                off,
                ..
            } => {
                let target = usize::try_from(pc as i64 + 1 + i64::from(off))
                    .map_err(|_| format!("liveness: a jump before the entry at {pc}"))?;
                if cond.is_some() {
                    reads.push(dst);
                    if let Operand::Reg(r) = src {
                        reads.push(r);
                    }
                    next = vec![pc + 1, target];
                } else {
                    next = vec![target];
                }
            }
            Insn::Call { src, imm } => {
                let n = if src == 0 { helper_args(imm) } else { 5 };
                reads.extend(1..=n);
                w |= 0b11_1111;
            }
            Insn::Exit => {
                reads.push(0);
                next = Vec::new();
            }
            Insn::AtomicXchg {
                dst, src, compare, ..
            } => {
                reads.extend([dst, src]);
                if compare {
                    reads.push(0);
                    w |= 1;
                } else {
                    w |= 1 << src;
                }
            }
        }
        if let Some(&r) = reads
            .iter()
            .find(|&&r| regs.contains(&r) && written & (1 << r) == 0)
        {
            return Ok(Some(r));
        }
        for n in next {
            work.push((n, w));
        }
    }
    Ok(None)
}

/// The entry's registers and memory at each word test's start, from probe
/// runs with every payload length up to the window's end.
fn capture(
    object: &Object,
    pass: &InlineMap,
    p: usize,
) -> Result<std::collections::BTreeMap<usize, vm::Snapshot>, ValidationError> {
    let mut vm = Vm::new(object);
    crate::watch::install(&mut vm);
    let mut pending: Vec<usize> = pass.words.iter().map(|w| w.start).collect();
    let mut captured = std::collections::BTreeMap::new();
    let end = pass.window.end.unwrap_or(pass.window.start);
    for len in pass.window.start + 1..=end.min(crate::walk::MAX_PAYLOAD) {
        if pending.is_empty() {
            break;
        }
        // Text that passes every test: the probe goes on to the next word.
        let during = || format!("a word-test probe of inline pass {p}, payload length {len}");
        let payload = vec![b'a'; len as usize];
        crate::inline::capture(&mut vm, &payload, &mut pending, &mut captured, during)?;
    }
    Ok(captured)
}

/// Runs the test lane by lane; returns the runs made.
fn lanes(
    program: &Program,
    object: &Object,
    pass: &InlineMap,
    w: &WordTestMap,
    off: i16,
    snap: &vm::Snapshot,
) -> Result<u64, String> {
    let machine = &program
        .scans
        .get(pass.machines[0].scan)
        .ok_or("its scan is not in the program")?
        .machine;
    let states = reachable(machine);
    let stays = |b: u8| states.iter().all(|&s| machine.step(s, b) == s);
    let mut vm = Vm::new(object);
    let base = vm.restore(snap);
    let data = vm.packet_data().ok_or("no packet at the test")?;
    let at = base
        .get(9)
        .ok_or("r9 holds no value at the test")?
        .wrapping_add(off as i64 as u64)
        .wrapping_sub(data) as usize;
    vm.forbid_stores = true;
    let mut runs = 0u64;
    let mut run = |vm: &mut Vm<'_>, word: [u8; 8]| -> Result<bool, String> {
        vm.poke_packet(at, &word)?;
        let mut regs = base;
        vm.packet_loads = Some(Vec::new());
        vm.budget = 1_000;
        let stop = vm.exec(Func::Entry, w.start, &mut regs, &[w.slow, w.skip]);
        runs += 1;
        let loads = vm.packet_loads.take().unwrap_or_default();
        if loads.as_slice() != [(at as u64, 8)] {
            return Err(format!(
                "the test reads packet bytes {loads:?} (offset, width), not the word at {at}"
            ));
        }
        match stop {
            Ok(Stop::At(s)) if s == w.skip => Ok(true),
            Ok(Stop::At(s)) if s == w.slow => Ok(false),
            Ok(other) => Err(format!("the test ends with {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    };
    let mut uniform = Vec::new();
    for b in 0..=255u8 {
        if run(&mut vm, [b; 8])? {
            uniform.push(b);
        }
    }
    let (Some(&first), Some(&last)) = (uniform.first(), uniform.last()) else {
        return Err("no word of eight equal bytes passes it (left unjudged: refused)".into());
    };
    let failing = (0..=255u8)
        .find(|b| !uniform.contains(b))
        .ok_or("every word of eight equal bytes passes it")?;
    for lane in 0..8 {
        for others in [first, last, failing] {
            for b in 0..=255u8 {
                let mut word = [others; 8];
                word[lane] = b;
                let passed = run(&mut vm, word)?;
                if passed && others == failing {
                    return Err(format!(
                        "word {word:02x?} passes with a failing lane: the lanes are not independent"
                    ));
                }
                if passed && !stays(b) {
                    let s = states
                        .iter()
                        .find(|&&s| machine.step(s, b) != s)
                        .expect("some state moves");
                    return Err(format!(
                        "lane {lane} passes byte {b:#04x}, which moves the machine from state {s} to {}",
                        machine.step(*s, b)
                    ));
                }
            }
        }
    }
    Ok(runs)
}
