//! The chain check: a table pass's chunk stepped as interleaved chains of
//! table steps (emit-bpf's `codegen/table.rs`) must leave the state the
//! chunk's ordinary steps leave.
//!
//! The ordinary steps follow the chains' code, and the step and walk
//! checks run on the object with the chains bypassed ([`bypassed`]: their
//! first slot made a jump to the ordinary steps), so what those steps do
//! on every length is proven there. Here, per chained chunk ([`check`]):
//!
//! - **the IR:** from every reachable state, every string of `resync`
//!   bytes leads the DFA to a sink or to the state it leads to from the
//!   initial state (computed here over all 256 byte values, sharing no
//!   code with the emitter);
//! - **the chains:** chain 0 runs in the pass's state register from chunk
//!   byte 0; each later chain starts at least `resync` bytes before its
//!   predecessor stops and goes on to the end of its share or further; the
//!   last stops at the chunk's end. With the IR property, the chunk's state
//!   is then the first chain's state that is a sink, else the last chain's;
//! - **the code, by shape:** the first slot jumps to the ordinary steps or
//!   falls through (either way is sound: those steps are proven); then
//!   `mov r(i), 0` (the initial state) for each later chain; then the chain
//!   steps back to back, each loading its chunk byte from `r9 + offset`
//!   first, in order along each chain; then the merge, which only compares
//!   chain registers with immediates, copies one into `r0` and jumps within
//!   itself or to the chunk's end;
//! - **the steps:** a chain step that is an ordinary step of the same
//!   chunk byte (which the step check ran on every reachable state and
//!   byte) with the state register renamed to the chain's, where that
//!   step mentions no later chain's register and writes `r8` first, does
//!   what that step does on its own register (see `renamed`); any other
//!   chain step is run on every reachable state and byte by the step
//!   check, with the chain's register as the state register (it must
//!   change no other register but `r8`, and never leave its code);
//! - **the merge, by running it:** on every combination of chain states it
//!   can tell apart (it compares only with immediates, so the states it
//!   compares with, and one state of each kind it does not, stand for all);
//! - **what follows:** from the chunk's end, no path of the callback reads
//!   a register the two ways into it may leave differently (the later
//!   chains' registers and `r8`) before writing it.

use std::collections::BTreeSet;

use emit_bpf::codemap::{ChainMap, CodeMap, MachineMap, StateEncoding, StepRange};
use predicate_ir::{Machine, Program};

use crate::isa::{Alu, Cond, Insn, Operand};
use crate::object::Object;
use crate::vm::{Func, Regs, Stop, Vm};
use crate::ValidationError;

/// `object` with every chained chunk bypassed: its first slot jumps to the
/// chunk's ordinary steps.
pub fn bypassed(object: &Object, map: &CodeMap) -> Result<Object, ValidationError> {
    object
        .callback_paths_bypassed(
            "chain",
            map.chains.iter().map(|c| (c.pass, c.start, c.slow)),
        )
        .map_err(ValidationError::Map)
}

/// Runs the chain check on every chained chunk; returns the instructions
/// the runs executed.
/// `checked_steps` are the step check's (per pass, the step starts it
/// checked, on the object with the chains bypassed).
pub fn check(
    program: &Program,
    object: &Object,
    map: &CodeMap,
    checked_steps: &[Vec<usize>],
) -> Result<u64, ValidationError> {
    let mut executed = 0;
    for (i, cm) in map.chains.iter().enumerate() {
        let checked = checked_steps.get(cm.pass).map_or(&[][..], Vec::as_slice);
        executed += check_one(program, object, map, cm, checked).map_err(|e| match e {
            Failure::Plain(what) => ValidationError::Chains {
                index: i,
                pass: cm.pass,
                what,
            },
            Failure::Validation(e) => e,
        })?;
    }
    Ok(executed)
}

enum Failure {
    Plain(String),
    Validation(ValidationError),
}

impl From<String> for Failure {
    fn from(s: String) -> Failure {
        Failure::Plain(s)
    }
}

fn check_one(
    program: &Program,
    object: &Object,
    map: &CodeMap,
    cm: &ChainMap,
    checked_steps: &[usize],
) -> Result<u64, Failure> {
    let pass = map
        .passes
        .get(cm.pass)
        .ok_or_else(|| format!("no pass {}", cm.pass))?;
    let callback = object
        .callbacks
        .get(cm.pass)
        .ok_or_else(|| format!("no callback {}", cm.pass))?;
    let code = &callback.insns;
    let [MachineMap {
        scan,
        encoding: StateEncoding::Dfa {
            reg: state_reg,
            scale,
        },
    }] = pass.machines.as_slice()
    else {
        return Err("a chained pass must hold one DFA".to_string().into());
    };
    let (scan, state_reg, scale) = (*scan, *state_reg, u64::from(*scale));
    let machine = &program
        .scans
        .get(scan)
        .ok_or_else(|| format!("no scan {scan}"))?
        .machine;
    let Machine::Dfa(dfa) = machine else {
        return Err("a chained pass must hold one DFA".to_string().into());
    };
    if !(cm.start < cm.merge && cm.merge < cm.slow && cm.slow < cm.skip && cm.skip <= code.len()) {
        return Err(format!(
            "slots start {} merge {} slow {} skip {} out of order or outside {}",
            cm.start, cm.merge, cm.slow, cm.skip, callback.name
        )
        .into());
    }

    // The IR: every reachable state resynchronizes within `resync` bytes.
    let states = crate::step::reachable(machine);
    let sink: Vec<bool> = (0..dfa.next.len())
        .map(|s| dfa.next[s].iter().all(|&t| t as usize == s))
        .collect();
    resynchronizes(dfa, &states, &sink, usize::from(cm.resync))?;

    // The chains' spans.
    let chains = &cm.chains;
    let regs: Vec<u8> = chains.iter().map(|c| c.reg).collect();
    if chains.is_empty() || regs[0] != state_reg || chains[0].from != 0 {
        return Err("chain 0 must step the pass's state register from byte 0"
            .to_string()
            .into());
    }
    if chains.last().map(|c| c.to) != Some(cm.span) {
        return Err(format!("the last chain must stop at the chunk's end ({})", cm.span).into());
    }
    let distinct: BTreeSet<u8> = regs.iter().copied().collect();
    if distinct.len() != regs.len() || regs.iter().any(|&r| r > 5) {
        return Err(format!("chain registers {regs:?} must be distinct, in r0-r5").into());
    }
    for w in chains.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.from > a.to
            || u32::from(b.from) + u32::from(cm.resync) > u32::from(a.to)
            || b.to < a.to
        {
            return Err(format!(
                "chain {}..{} does not resynchronize with {}..{} ({} bytes needed)",
                b.from, b.to, a.from, a.to, cm.resync
            )
            .into());
        }
    }

    // The ordinary steps the chains stand for: chunk bytes 0..span, read
    // from the same chunk pointer.
    let ordinary: Vec<&StepRange> = pass
        .steps
        .iter()
        .filter(|r| r.start >= cm.slow && r.end <= cm.skip)
        .collect();
    let offsets: Vec<u16> = ordinary.iter().map(|r| r.offset).collect();
    if offsets != (0..cm.span).collect::<Vec<_>>()
        || ordinary
            .iter()
            .any(|r| !loads_chunk_byte(code.get(r.start), r.offset))
    {
        return Err(format!(
            "the ordinary steps between slots {} and {} do not read chunk bytes 0..{} from r9",
            cm.slow, cm.skip, cm.span
        )
        .into());
    }

    // The code by shape: the guard, the initial states, the steps.
    match code[cm.start] {
        Insn::Jump {
            cond: Some(_),
            src: Operand::Imm(_),
            off,
            ..
        } if (cm.start + 1) as i64 + i64::from(off) == cm.slow as i64 => {}
        _ => {
            return Err(
                "the first slot must be a test that jumps to the ordinary steps"
                    .to_string()
                    .into(),
            )
        }
    }
    let mut at = cm.start + 1;
    for &reg in &regs[1..] {
        let ok = matches!(
            code.get(at),
            Some(Insn::Alu { wide: true, op: Alu::Mov, dst, src: Operand::Imm(0), .. }) if *dst == reg
        );
        if !ok {
            return Err(format!("slot {at}: chain register r{reg} must start at 0").into());
        }
        at += 1;
    }
    let mut next_offset: Vec<u16> = chains.iter().map(|c| c.from).collect();
    for step in &cm.steps {
        let c = chains
            .get(step.chain)
            .ok_or_else(|| format!("a step of no chain {}", step.chain))?;
        if step.start != at || step.end <= step.start {
            return Err(format!("slot {at}: the chain steps must follow each other").into());
        }
        if step.offset != next_offset[step.chain] || step.offset >= c.to {
            return Err(format!(
                "slot {at}: chain {} steps byte {} where byte {} is next",
                step.chain, step.offset, next_offset[step.chain]
            )
            .into());
        }
        if !loads_chunk_byte(code.get(step.start), step.offset) {
            return Err(format!(
                "slot {at}: the step must first load chunk byte {} from r9",
                step.offset
            )
            .into());
        }
        next_offset[step.chain] += 1;
        at = step.end;
    }
    if at != cm.merge || next_offset.iter().zip(chains).any(|(&n, c)| n != c.to) {
        return Err(
            "the chain steps do not cover every chain's bytes up to the merge"
                .to_string()
                .into(),
        );
    }

    // The steps: a chain step that is an ordinary step of the same chunk
    // byte, checked by the step check, with the state register renamed to
    // one that step never mentions, behaves as that step on its register
    // (see `renamed`); any other chain step is run on every reachable
    // state and byte by the step check, with the chain's register as the
    // state register.
    let mut executed = 0;
    for (i, c) in chains.iter().enumerate() {
        let unproven: Vec<StepRange> = cm
            .steps
            .iter()
            .filter(|s| s.chain == i)
            .filter(|s| {
                !ordinary.iter().any(|o| {
                    o.offset == s.offset
                        && checked_steps.contains(&o.start)
                        && renamed(
                            code,
                            o.start..o.end,
                            s.start..s.end,
                            (state_reg, c.reg),
                            &regs[1..],
                        )
                })
            })
            .map(|s| StepRange {
                machine: 0,
                offset: s.offset,
                start: s.start,
                end: s.end,
            })
            .collect();
        if unproven.is_empty() {
            continue;
        }
        let mut one = pass.clone();
        one.machines = vec![MachineMap {
            scan,
            encoding: StateEncoding::Dfa {
                reg: c.reg,
                scale: scale as u32,
            },
        }];
        one.steps = unproven;
        let (e, checked) = crate::step::check_ranges(program, object, cm.pass, &one)
            .map_err(Failure::Validation)?;
        executed += e;
        if let Some(s) = one.steps.iter().find(|s| !checked.contains(&s.start)) {
            return Err(format!("chain {i}'s step at slot {} was not checked", s.start).into());
        }
    }

    // The merge by shape, then by running it.
    let mut tested: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); chains.len()];
    for (slot, insn) in code.iter().enumerate().take(cm.slow).skip(cm.merge) {
        let target = |off: i32| (slot + 1) as i64 + i64::from(off);
        let inside = |t: i64| (t >= cm.merge as i64 && t < cm.slow as i64) || t == cm.skip as i64;
        match *insn {
            Insn::Jump {
                cond: Some(Cond::Eq | Cond::Ne),
                dst,
                src: Operand::Imm(imm),
                off,
                ..
            } if inside(target(off)) => match regs.iter().position(|&r| r == dst) {
                Some(c) => {
                    tested[c].insert(u64::from(imm as u32));
                }
                None => return Err(format!("slot {slot}: the merge tests r{dst}").into()),
            },
            Insn::Jump {
                cond: None, off, ..
            } if inside(target(off)) => {}
            Insn::Alu {
                wide: true,
                op: Alu::Mov,
                dst,
                src: Operand::Reg(src),
                ..
            } if dst == state_reg && regs.contains(&src) => {}
            ref other => {
                return Err(format!("slot {slot}: {other:?} is not allowed in the merge").into())
            }
        }
    }
    // Per chain, the states it may end in that the merge can tell apart.
    let value = |s: u32| u64::from(s) * scale;
    let cells: Vec<Vec<u32>> = tested
        .iter()
        .map(|t| {
            let mut v: Vec<u32> = states
                .iter()
                .copied()
                .filter(|&s| t.contains(&value(s)))
                .collect();
            for kind in [true, false] {
                if let Some(&s) = states
                    .iter()
                    .find(|&&s| sink[s as usize] == kind && !t.contains(&value(s)))
                {
                    v.push(s);
                }
            }
            v
        })
        .collect();
    let total: usize = cells.iter().map(Vec::len).product();
    if total > 1 << 16 {
        return Err(format!("the merge has {total} cases, too many to run").into());
    }
    let mut vm = Vm::new(object);
    for case in 0..total {
        let mut rest = case;
        let mut regs_in = Regs::default();
        let mut ends = Vec::with_capacity(chains.len());
        for (c, cell) in cells.iter().enumerate() {
            let s = cell[rest % cell.len()];
            rest /= cell.len();
            regs_in.set(regs[c], value(s));
            ends.push(s);
        }
        let want = ends
            .iter()
            .copied()
            .find(|&s| sink[s as usize])
            .unwrap_or(ends[ends.len() - 1]);
        let mut r = regs_in;
        vm.budget = 10_000;
        let budget = vm.budget;
        let stop = vm.exec(Func::Callback(cm.pass), cm.merge, &mut r, &[cm.skip]);
        executed += budget - vm.budget;
        match stop {
            Ok(Stop::At(s)) if s == cm.skip && r.get(state_reg) == Some(value(want)) => {}
            other => {
                return Err(format!(
                    "the merge of chain states {ends:?} gives r{state_reg} = {:?} ({other:?}), not state {want}",
                    r.get(state_reg)
                )
                .into())
            }
        }
    }

    // What follows the chunk reads none of the registers the two ways
    // into it leave differently.
    let mut dirty: u16 = 1 << 8;
    for &r in &regs[1..] {
        dirty |= 1 << r;
    }
    dead_after(code, cm.skip, dirty)?;
    Ok(executed)
}

/// Whether the code at `chain` is the code at `ordinary` with register
/// `from` renamed `to`, jumps that stay inside going as far, jumps that
/// leave going to the same slot; where `ordinary` mentions none of
/// `chain_regs` (the later chains' registers, which hold other values in
/// the chains than before the ordinary steps) and begins by writing `r8`
/// (which the chains leave otherwise too). Only arithmetic, loads, jumps
/// and 64-bit constants are accepted (no store, call or exchange, whose
/// registers may be implicit). Renaming a register the code does not
/// otherwise use changes nothing but where the value lives: from `to`
/// holding a state and every register it reads but `to` and `r8` as
/// before the ordinary steps, the chain step does what the ordinary step
/// does from `from` holding it: it reads the same byte, leaves the next
/// state in `to` and writes no other register but `r8`, as the step check
/// found the ordinary step to do.
fn renamed(
    code: &[Insn],
    ordinary: std::ops::Range<usize>,
    chain: std::ops::Range<usize>,
    (from, to): (u8, u8),
    chain_regs: &[u8],
) -> bool {
    if ordinary.len() != chain.len() || ordinary.end > code.len() || chain.end > code.len() {
        return false;
    }
    if !matches!(code.get(ordinary.start), Some(Insn::Load { dst: 8, src, .. }) if *src != 8) {
        return false;
    }
    let regs = |insn: &Insn| -> Option<Vec<u8>> {
        let op = |o: &Operand| match o {
            Operand::Reg(r) => vec![*r],
            Operand::Imm(_) => vec![],
        };
        Some(match insn {
            Insn::Alu { dst, src, .. } => [vec![*dst], op(src)].concat(),
            Insn::Load { dst, src, .. } => vec![*dst, *src],
            Insn::Jump { dst, src, .. } => [vec![*dst], op(src)].concat(),
            Insn::LoadImm64 { dst, .. } => vec![*dst],
            Insn::Wide => vec![],
            _ => return None,
        })
    };
    let rename = |r: u8| if r == from { to } else { r };
    let rename_op = |o: Operand| match o {
        Operand::Reg(r) => Operand::Reg(rename(r)),
        imm => imm,
    };
    for (i, (o, c)) in code[ordinary.clone()]
        .iter()
        .zip(&code[chain.clone()])
        .enumerate()
    {
        match regs(o) {
            Some(rs) if !rs.iter().any(|r| chain_regs.contains(r)) => {}
            _ => return false,
        }
        let want = match *o {
            Insn::Alu {
                wide,
                op,
                dst,
                src,
                off,
                to_be,
            } => Insn::Alu {
                wide,
                op,
                dst: rename(dst),
                src: rename_op(src),
                off,
                to_be,
            },
            Insn::Load {
                width,
                dst,
                src,
                off,
                signed,
            } => Insn::Load {
                width,
                dst: rename(dst),
                src: rename(src),
                off,
                signed,
            },
            Insn::Jump {
                wide,
                cond,
                dst,
                src,
                off,
            } => {
                let target = (ordinary.start + i + 1) as i64 + i64::from(off);
                let inside = target >= ordinary.start as i64 && target <= ordinary.end as i64;
                let off = if inside {
                    off
                } else {
                    // The same slot, from the chain step's position.
                    match i32::try_from(target - (chain.start + i + 1) as i64) {
                        Ok(off) => off,
                        Err(_) => return false,
                    }
                };
                Insn::Jump {
                    wide,
                    cond,
                    dst: rename(dst),
                    src: rename_op(src),
                    off,
                }
            }
            Insn::LoadImm64 {
                dst,
                src,
                value,
                imm,
            } => Insn::LoadImm64 {
                dst: rename(dst),
                src,
                value,
                imm,
            },
            Insn::Wide => Insn::Wide,
            _ => return false,
        };
        if *c != want {
            return false;
        }
    }
    true
}

/// Whether `insn` loads chunk byte `offset` from `r9`.
fn loads_chunk_byte(insn: Option<&Insn>, offset: u16) -> bool {
    matches!(
        insn,
        Some(Insn::Load { width: 1, src: 9, off, signed: false, .. }) if i32::from(*off) == i32::from(offset)
    )
}

/// Fails unless, from every reachable state, every string of `k` bytes
/// leads `dfa` to a sink or to the state it leads to from state 0.
fn resynchronizes(
    dfa: &predicate_ir::Dfa,
    states: &[u32],
    sink: &[bool],
    k: usize,
) -> Result<(), String> {
    // Bytes whose columns agree move every pair alike: one stands for all.
    let mut by_column: Vec<u8> = (0..=255u8).collect();
    let column = |b: u8| dfa.next.iter().map(move |row| row[usize::from(b)]);
    by_column.sort_by(|&a, &b| column(a).cmp(column(b)));
    by_column.dedup_by(|a, b| column(*a).eq(column(*b)));
    let mut pairs: Vec<(u32, u32)> = states
        .iter()
        .filter(|&&s| s != 0 && !sink[s as usize])
        .map(|&s| (s, 0))
        .collect();
    for _ in 0..k {
        let mut next = Vec::new();
        for &(s, t) in &pairs {
            for &b in &by_column {
                let (s2, t2) = (
                    dfa.next[s as usize][usize::from(b)],
                    dfa.next[t as usize][usize::from(b)],
                );
                if s2 != t2 && !sink[s2 as usize] {
                    next.push((s2, t2));
                }
            }
            if next.len() > 50_000_000 {
                return Err("too many state pairs to check the resynchronization".into());
            }
        }
        next.sort_unstable();
        next.dedup();
        pairs = next;
    }
    match pairs.first() {
        None => Ok(()),
        Some(&(s, t)) => Err(format!(
            "after {k} bytes the DFA may sit in state {s} from some reachable state and in {t} from the initial one: the chains do not resynchronize"
        )),
    }
}

/// Fails if some path of `code` from `from` reads a register of `dirty`
/// (bit r: rN) before writing it.
fn dead_after(code: &[Insn], from: usize, dirty: u16) -> Result<(), String> {
    let mut seen: BTreeSet<(usize, u16)> = BTreeSet::new();
    let mut work = vec![(from, dirty)];
    while let Some((slot, mut d)) = work.pop() {
        if d == 0 || !seen.insert((slot, d)) {
            continue;
        }
        let insn = code
            .get(slot)
            .ok_or_else(|| format!("a path from slot {from} runs off the code at {slot}"))?;
        let bit = |r: u8| 1u16 << r;
        let (reads, writes): (u16, u16) = match *insn {
            Insn::Alu { op, dst, src, .. } => {
                let s = match src {
                    Operand::Reg(r) if op != Alu::End && op != Alu::Neg => bit(r),
                    _ => 0,
                };
                (if op == Alu::Mov { s } else { s | bit(dst) }, bit(dst))
            }
            Insn::Load { dst, src, .. } => (bit(src), bit(dst)),
            Insn::Store { dst, src, .. } => (
                bit(dst)
                    | match src {
                        Operand::Reg(r) => bit(r),
                        Operand::Imm(_) => 0,
                    },
                0,
            ),
            Insn::AtomicXchg {
                dst, src, compare, ..
            } => (
                bit(dst) | bit(src) | if compare { 1 } else { 0 },
                if compare { 1 } else { bit(src) },
            ),
            Insn::LoadImm64 { dst, .. } => (0, bit(dst)),
            Insn::Wide => (0, 0),
            Insn::Jump { dst, src, cond, .. } => (
                if cond.is_some() {
                    bit(dst)
                        | match src {
                            Operand::Reg(r) => bit(r),
                            Operand::Imm(_) => 0,
                        }
                } else {
                    0
                },
                0,
            ),
            Insn::Call { .. } => (0b11_1110, 0b11_1111),
            Insn::Exit => (1, 0),
        };
        if reads & d != 0 {
            return Err(format!(
                "slot {slot} reads a register the chains leave unlike the ordinary steps (mask {:#x})",
                reads & d
            ));
        }
        d &= !writes;
        match *insn {
            Insn::Exit => {}
            Insn::Jump { cond, off, .. } => {
                let t = (slot + 1) as i64 + i64::from(off);
                if t < 0 {
                    return Err(format!("slot {slot} jumps before the code"));
                }
                work.push((t as usize, d));
                if cond.is_some() {
                    work.push((slot + 1, d));
                }
            }
            Insn::LoadImm64 { .. } => work.push((slot + 2, d)),
            _ => work.push((slot + 1, d)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alu(op: Alu, dst: u8, src: Operand) -> Insn {
        Insn::Alu {
            wide: true,
            op,
            dst,
            src,
            off: 0,
            to_be: false,
        }
    }

    #[test]
    fn a_dirty_register_read_after_the_chunk_is_found() {
        // r1 read on the path that skips its rewrite.
        let code = [
            Insn::Jump {
                wide: true,
                cond: Some(Cond::Eq),
                dst: 0,
                src: Operand::Imm(0),
                off: 1,
            },
            alu(Alu::Mov, 1, Operand::Imm(0)),
            alu(Alu::Add, 0, Operand::Reg(1)),
            Insn::Exit,
        ];
        assert!(dead_after(&code, 0, 1 << 1).is_err());
        // Rewritten on every path: fine.
        let code = [
            alu(Alu::Mov, 1, Operand::Imm(0)),
            alu(Alu::Add, 0, Operand::Reg(1)),
            Insn::Exit,
        ];
        assert!(dead_after(&code, 0, 1 << 1).is_ok());
        // A helper call reads r1-r5.
        let code = [Insn::Call { src: 0, imm: 1 }, Insn::Exit];
        assert!(dead_after(&code, 0, 1 << 2).is_err());
    }
}
