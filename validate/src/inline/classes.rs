//! The inline walk check over classes of payload lengths: one symbolic run
//! of the inline pass stands for every length of a class.
//!
//! The run is the walk check's (`walk/classes.rs`): the payload length
//! slot holds the exact affine value `n0 + stride * k`, every other value
//! is a constant or affine in `k`, and a comparison that does not have one
//! outcome for every `k` of the class stops the run and splits the class
//! where the outcome changes ([`Fail::Split`]). An `and` with a constant
//! below `2^t` is a constant on a class whose stride `2^t` divides, and
//! asks for such residue classes otherwise ([`Fail::Stride`]). So every
//! length of a class that completes follows the same instructions with
//! the same constants, and everything compared below is a constant:
//!
//! - each step's byte address (a step whose address depends on the length
//!   is not modelled), which must be its machine's next window byte;
//! - the state registers at each step, which must hold what the machine's
//!   previous step left (a token per step, or the initial state);
//! - at the pass's end: the bytes each machine read (the window's length,
//!   which the caller's pieces make constant on a class), the final-state
//!   slots (the last tokens), the rest of the stack (unchanged, the length
//!   slot still holding the length) and `r6`.
//!
//! These are the checks [`super::walk_one`] makes for one length. The
//! emitted code (`codegen/inline.rs`) compares the length with the
//! window's start and end and, on the partial path, tests bits of
//! `n - start`: one class for the lengths up to the start, one for those
//! from the end on, and one length per class in between. Anything the run
//! does not model gives [`Fail::Unsupported`]; the caller then runs the
//! class's lengths one by one, so a failure is reported with its length.

use emit_bpf::codemap::{InlineMap, StepRange};
use predicate_ir::Program;

use crate::isa::Insn;
use crate::object::Object;
use crate::vm::{Snapshot, Vm};
use crate::walk::classes::{self, Class, Fail, Lin, Mem, Region};

/// What a class run of one inline pass needs.
pub(super) struct Inputs<'a> {
    pub program: &'a Program,
    pub object: &'a Object,
    pub pass: &'a InlineMap,
    pub setup: &'a Snapshot,
    pub r10: u64,
    pub data: u64,
    pub payload_len: i16,
    pub payload_start: u64,
    pub final_states: &'a [i16],
    pub own_bytes: &'a [bool],
    pub step_at: &'a [Option<StepRange>],
}

fn unsupported(what: &str) -> Fail {
    Fail::Unsupported(what.into())
}

/// Proves the inline walk for every length of `class`, or says why not.
pub(super) fn check_class(inp: &Inputs<'_>, vm: &mut Vm<'_>, class: Class) -> Result<(), Fail> {
    let pass = inp.pass;
    let last = class.last();
    let window_len = pass.window.bounds(class.n0 as usize).len() as u64;
    if pass
        .window
        .bounds(class.length(class.count - 1) as usize)
        .len() as u64
        != window_len
    {
        return Err(unsupported("the window's length varies within the class"));
    }
    let regs_now = vm.restore_stacks(inp.setup);
    let mut regs: [Option<Lin>; 11] = [None; 11];
    for (r, slot) in regs.iter_mut().enumerate() {
        *slot = regs_now.get(r as u8).map(Lin::konst);
    }
    let stack_before = vm.clone_stack_bytes(0);
    let len_addr = inp.r10.wrapping_add(inp.payload_len as i64 as u64);
    let n = Lin {
        i: 0,
        k: i64::from(class.stride),
        c: i128::from(class.n0),
    };
    let mut mem = Mem {
        vm,
        words: vec![(len_addr, 2, n)],
    };
    let point = Region::point(last);
    let first = inp.payload_start + u64::from(pass.window.start);
    let mut read = vec![0u64; pass.machines.len()];
    // What each state register must hold when its machine's next step starts.
    let mut held = super::initial_held(inp.program, pass);
    let skb = regs[6];
    let insns = &inp.object.entry.insns;
    let mut pc = pass.start;
    let mut ended = false;
    for _ in 0..classes::BUDGET {
        let step = inp.step_at.get(pc).copied().flatten();
        if pc == pass.end && step.is_none() {
            ended = true;
            break;
        }
        if let Some(r) = step {
            let m = r.machine;
            let Some(&Insn::Load {
                width: 1, src, off, ..
            }) = insns.get(pc)
            else {
                return Err(unsupported("a step not loading its byte"));
            };
            let addr = classes::get(&regs, src)?.plus(Lin::konst(off as i64 as u64))?;
            let addr = point
                .exact(addr, 64)?
                .value()
                .ok_or_else(|| unsupported("a step address that depends on the length"))?;
            if read[m] >= window_len || addr.wrapping_sub(inp.data) != first + read[m] {
                return Err(unsupported("a step reads another byte than its next one"));
            }
            for &(reg, value) in &held[m] {
                if regs[reg as usize].and_then(Lin::value) != Some(value) {
                    return Err(unsupported("a step finds another state than its last"));
                }
            }
            read[m] += 1;
            for (reg, value) in held[m].iter_mut() {
                *value = super::token(m, read[m], *reg);
                regs[*reg as usize] = Some(Lin::konst(*value));
            }
            regs[8] = None;
            pc = r.end;
            continue;
        }
        let insn = *insns
            .get(pc)
            .ok_or_else(|| unsupported("runs off the entry"))?;
        match insn {
            Insn::Jump {
                wide,
                cond: Some(cond),
                dst,
                src,
                off,
            } => {
                let x = classes::get(&regs, dst)?;
                let y = classes::operand(&regs, src)?;
                // One outcome for the whole class, or a split.
                let taken = classes::decide(cond, wide, x, y, point)?
                    .first()
                    .is_some_and(|p| p.1);
                pc = if taken {
                    (pc as i64 + 1 + i64::from(off)) as usize
                } else {
                    pc + 1
                };
                continue;
            }
            Insn::Exit => return Err(unsupported("the pass exits")),
            Insn::Call { .. } => return Err(unsupported("a helper call in an inline pass")),
            other => {
                if let Some(next) =
                    classes::straight(&mut mem, other, pc, &mut regs, None, &point, inp.object)?
                {
                    pc = next;
                    continue;
                }
            }
        }
        pc += 1;
    }
    if !ended {
        return Err(unsupported("the pass runs past its budget"));
    }
    if read.iter().any(|&r| r != window_len) {
        return Err(unsupported("a machine does not read the whole window"));
    }
    for (m, mm) in pass.machines.iter().enumerate() {
        let reg = super::final_reg(&mm.encoding);
        let want = held[m].iter().find(|(r, _)| *r == reg).map(|&(_, v)| v);
        let off = *inp
            .final_states
            .get(mm.scan)
            .ok_or_else(|| unsupported("no final state slot"))?;
        let got = mem.load(inp.r10.wrapping_add(off as i64 as u64), 8)?;
        if got.value() != want {
            return Err(unsupported("a final state differs"));
        }
    }
    if mem.words != [(len_addr, 2, n)] {
        return Err(unsupported("a symbolic value stored on the stack"));
    }
    let after = mem.vm.clone_stack_bytes(0);
    if after.len() != stack_before.len()
        || (0..after.len()).any(|i| !inp.own_bytes[i] && after[i] != stack_before[i])
    {
        return Err(unsupported(
            "the pass writes the stack outside its final states",
        ));
    }
    if regs[6] != skb {
        return Err(unsupported("the pass changes r6"));
    }
    Ok(())
}
