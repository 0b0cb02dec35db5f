//! The stream offset's tail: from an offset `T` on (past every pass's
//! window end, or start for an unbounded window), the passes must not
//! depend on the stream offset `S` at all, so the walks checked at `T`
//! hold for every `S` in `[T, 2^64)`.
//!
//! The check follows the entry from the flow lookup (where `S` enters, as
//! the flow value's stream length) to the formula, tracking which values
//! derive from `S` (a taint: `S` itself, or anything computed from it).
//! Everything else is the probe segment's concrete state, except the
//! segment length, which is unknown (every branch on it is followed both
//! ways), and whatever a `bpf_loop` callback may have written (its context,
//! from the pointer the entry passes to the top of the entry's frame; it is
//! handed only that pointer). The run fails unless:
//!
//! - every branch on `S` is a 64-bit unsigned comparison of `S` itself
//!   with a constant whose outcome is the same at `S = T` and
//!   `S = 2^64 - 1` (so, being monotone in `S`, for every `S` between;
//!   `==` and `!=` only with a constant below `T`): it is followed that
//!   way only, so no path differs with `S` (no flow through control);
//! - no value derived from `S` is used as an address, passed to a helper,
//!   or lies in the callback's context when a loop is called.
//!
//! Then each pass's registers, context and path, up to the formula, are
//! the same for every `S >= T` (its `len` tests read the stream length,
//! which the formula check covers). A load through an address that is not
//! a known constant is refused, so a value read from memory is either the
//! probe's, written on the path (tracked), or unknown.

use std::collections::{BTreeMap, HashSet};

use emit_bpf::codemap::CodeMap;

use super::probe;
use crate::isa::{self, Alu, Cond, Insn, Operand};
use crate::object::{Object, PSEUDO_FUNC};
use crate::vm::{self, helper, Func, Stop};

/// Offset of the `u64` stream length in a flow value (docs/stream.md).
const VALUE_STREAM_LEN: u64 = 24;
/// Most instructions followed over all paths.
const BUDGET: usize = 1_000_000;

/// What a register or byte holds, abstractly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum V {
    Undef,
    Const(u64),
    /// Independent of `S`, not known.
    Unknown,
    /// The stream offset itself (64 bits).
    S,
    /// Computed from `S`.
    Tainted,
}

impl V {
    fn tainted(self) -> bool {
        matches!(self, V::S | V::Tainted)
    }
}

/// A byte of memory written on the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum B {
    Const(u8),
    Unknown,
    /// Byte `i` of `S` (little-endian).
    S(u8),
    Tainted,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct State {
    pc: usize,
    regs: [V; 11],
    mem: BTreeMap<u64, B>,
}

/// Checks that nothing up to the formula depends on the stream offset for
/// offsets from `t` on (module docs).
pub fn check(object: &Object, map: &CodeMap, t: u64) -> Result<(), String> {
    let payload = vec![b'a'; 64];
    let mut vm = probe::vm(object, t, &payload, false);
    vm.intercept(helper::MAP_LOOKUP_ELEM);
    vm.intercept(helper::LOOP);
    let (mut regs, r10) = vm.entry_start();
    // Run concretely to the flow lookup (the prologue calls no loop).
    let after_lookup = match vm
        .exec(Func::Entry, 0, &mut regs, &[])
        .map_err(|e| format!("the run to the flow lookup: {e}"))?
    {
        Stop::Helper { slot, id, args } if id == helper::MAP_LOOKUP_ELEM => {
            if args[0] != super::FLOWS_HANDLE {
                return Err("the first map lookup is not the flow map's".into());
            }
            let at = super::lookup_flow(&mut vm, args[1])?;
            regs.helper_returned(at);
            slot + 1
        }
        other => return Err(format!("the entry stops before the flow lookup: {other:?}")),
    };
    let mut start = State {
        pc: after_lookup,
        regs: [V::Undef; 11],
        mem: BTreeMap::new(),
    };
    for r in 0..11u8 {
        if let Some(v) = regs.get(r) {
            start.regs[r as usize] = V::Const(v);
        }
    }
    for i in 0..8 {
        start
            .mem
            .insert(super::FLOW_VALUE_BASE + VALUE_STREAM_LEN + i, B::S(i as u8));
    }
    // The segment's length: any.
    let len_at = r10.wrapping_add(map.payload_len as i64 as u64);
    for i in 0..2 {
        start.mem.insert(len_at + i, B::Unknown);
    }
    let frame_top = vm::STACK_BASE + vm::STACK_SIZE as u64;
    let insns = &object.entry.insns;
    let mut work = vec![start];
    let mut seen: HashSet<State> = HashSet::new();
    let mut steps = 0usize;
    while let Some(mut st) = work.pop() {
        loop {
            if st.pc >= map.formula_start {
                break;
            }
            steps += 1;
            if steps > BUDGET {
                return Err(format!("more than {BUDGET} instructions on its paths"));
            }
            let pc = st.pc;
            let fail = |what: String| format!("slot {pc}: {what}");
            let insn = *insns.get(pc).ok_or_else(|| fail("no instruction".into()))?;
            let read = |st: &State, r: u8| -> Result<V, String> {
                match st.regs[r as usize] {
                    V::Undef => Err(format!("slot {pc}: reads r{r}, which holds no value")),
                    v => Ok(v),
                }
            };
            let operand = |st: &State, o: Operand, wide: bool| -> Result<V, String> {
                match o {
                    Operand::Reg(r) => read(st, r),
                    Operand::Imm(i) => Ok(V::Const(if wide {
                        i as i64 as u64
                    } else {
                        u64::from(i as u32)
                    })),
                }
            };
            st.pc += 1;
            match insn {
                Insn::Alu {
                    wide,
                    op,
                    dst,
                    src,
                    off,
                    to_be,
                } => {
                    let s = operand(&st, src, wide)?;
                    let d = if matches!(op, Alu::Mov) {
                        V::Const(0)
                    } else {
                        read(&st, dst)?
                    };
                    st.regs[dst as usize] = match (op, d, s) {
                        (Alu::Mov, _, V::S) if wide && off == 0 => V::S,
                        (Alu::End | Alu::Neg, d, _) if d.tainted() => V::Tainted,
                        (Alu::End | Alu::Neg, V::Const(d), _) => {
                            V::Const(isa::alu(op, wide, d, 0, off, to_be))
                        }
                        (Alu::End | Alu::Neg, _, _) => V::Unknown,
                        (_, d, s) if d.tainted() || s.tainted() => V::Tainted,
                        (_, V::Const(d), V::Const(s)) => {
                            V::Const(isa::alu(op, wide, d, s, off, to_be))
                        }
                        _ => V::Unknown,
                    };
                }
                Insn::LoadImm64 {
                    dst, src, value, ..
                } => {
                    st.pc += 1; // over its second slot
                    st.regs[dst as usize] = if src == 0 {
                        V::Const(value)
                    } else if src == PSEUDO_FUNC {
                        V::Unknown
                    } else {
                        // A map handle or value address: not S.
                        V::Unknown
                    };
                }
                Insn::Wide => return Err(fail("runs the second slot of an ld_imm64".into())),
                Insn::Load {
                    width,
                    dst,
                    src,
                    off,
                    ..
                } => {
                    let V::Const(base) = read(&st, src)? else {
                        return Err(fail(format!(
                            "loads through r{src}, which is not a known address"
                        )));
                    };
                    let at = base.wrapping_add(off as i64 as u64);
                    st.regs[dst as usize] = load(&vm, &st.mem, at, width)
                        .map_err(|e| fail(format!("a load at {at:#x}: {e}")))?;
                }
                Insn::Store {
                    width,
                    dst,
                    off,
                    src,
                } => {
                    let V::Const(base) = read(&st, dst)? else {
                        return Err(fail(format!(
                            "stores through r{dst}, which is not a known address"
                        )));
                    };
                    let v = operand(&st, src, true)?;
                    store(&mut st.mem, base.wrapping_add(off as i64 as u64), width, v);
                }
                Insn::AtomicXchg {
                    width,
                    dst,
                    src,
                    off,
                    compare,
                } => {
                    let V::Const(base) = read(&st, dst)? else {
                        return Err(fail("an atomic operation on an unknown address".into()));
                    };
                    let at = base.wrapping_add(off as i64 as u64);
                    let old = load(&vm, &st.mem, at, width).map_err(fail)?;
                    let new = read(&st, src)?;
                    if old.tainted() || new.tainted() || read(&st, 0)?.tainted() {
                        return Err(fail("an atomic operation on the stream offset".into()));
                    }
                    if compare {
                        let r0 = read(&st, 0)?;
                        match (old, r0) {
                            (V::Const(o), V::Const(e)) => {
                                if o == e {
                                    store(&mut st.mem, at, width, new);
                                }
                            }
                            _ => store(&mut st.mem, at, width, V::Unknown),
                        }
                        st.regs[0] = old;
                    } else {
                        store(&mut st.mem, at, width, new);
                        st.regs[src as usize] = old;
                    }
                }
                Insn::Jump {
                    wide,
                    cond,
                    dst,
                    src,
                    off,
                } => {
                    let target = (st.pc as i64 + i64::from(off)) as usize;
                    let Some(cond) = cond else {
                        st.pc = target;
                        continue;
                    };
                    let a = read(&st, dst)?;
                    let b = operand(&st, src, wide)?;
                    match decide(cond, wide, a, b, t) {
                        Ok(Some(true)) => st.pc = target,
                        Ok(Some(false)) => {}
                        Ok(None) => {
                            let mut other = st.clone();
                            other.pc = target;
                            if seen.insert(other.clone()) {
                                work.push(other);
                            }
                        }
                        Err(e) => return Err(fail(e)),
                    }
                }
                Insn::Call { src: 0, imm } => {
                    for r in 1..=5u8 {
                        if st.regs[r as usize].tainted() {
                            return Err(fail(format!(
                                "helper {imm} gets r{r}, derived from the stream offset"
                            )));
                        }
                    }
                    if imm == helper::LOOP {
                        let V::Const(ctx) = read(&st, 3)? else {
                            return Err(fail("bpf_loop's context is not a known address".into()));
                        };
                        // The callback sees its context: nothing there may
                        // derive from S; afterwards it holds what it wrote.
                        if let Some((at, _)) = st
                            .mem
                            .range(ctx..frame_top)
                            .find(|(_, b)| matches!(b, B::S(_) | B::Tainted))
                        {
                            return Err(fail(format!(
                                "the callback's context holds a value derived from the stream offset at {at:#x}"
                            )));
                        }
                        for at in ctx..frame_top {
                            st.mem.insert(at, B::Unknown);
                        }
                    }
                    st.regs[0] = V::Unknown;
                    for r in 1..=5 {
                        st.regs[r] = V::Undef;
                    }
                }
                Insn::Call { .. } => return Err(fail("calls a local function".into())),
                Insn::Exit => break,
            }
        }
    }
    Ok(())
}

/// A branch's outcome for every `S >= t`, `None` when both are followed
/// (neither side derives from `S`, and one is not known).
fn decide(cond: Cond, wide: bool, a: V, b: V, t: u64) -> Result<Option<bool>, String> {
    match (a, b) {
        (V::Const(a), V::Const(b)) => Ok(Some(isa::holds(cond, wide, a, b))),
        (V::S, V::Const(c)) | (V::Const(c), V::S) if wide => {
            let s_left = a == V::S;
            let at = |s: u64| {
                if s_left {
                    isa::holds(cond, true, s, c)
                } else {
                    isa::holds(cond, true, c, s)
                }
            };
            let monotone = match cond {
                Cond::Gt | Cond::Ge | Cond::Lt | Cond::Le => true,
                Cond::Eq | Cond::Ne => c < t,
                _ => false,
            };
            if monotone && at(t) == at(u64::MAX) {
                Ok(Some(at(t)))
            } else {
                Err(format!(
                    "a branch on the stream offset ({cond:?} {c}) whose outcome is not the same for every offset from {t} on"
                ))
            }
        }
        (a, b) if a.tainted() || b.tainted() => Err(format!(
            "a branch ({cond:?}) on a value computed from the stream offset"
        )),
        _ => Ok(None),
    }
}

fn load(vm: &vm::Vm<'_>, mem: &BTreeMap<u64, B>, at: u64, width: u8) -> Result<V, String> {
    let mut bytes = [0u8; 8];
    let mut unknown = false;
    let mut s_bytes = 0;
    let mut tainted = false;
    for i in 0..u64::from(width) {
        match mem.get(&(at + i)) {
            Some(B::Const(b)) => bytes[i as usize] = *b,
            Some(B::Unknown) => unknown = true,
            Some(B::S(j)) if u64::from(*j) == i => s_bytes += 1,
            Some(B::S(_) | B::Tainted) => tainted = true,
            None => bytes[i as usize] = vm.peek_u64(at + i, 1)? as u8,
        }
    }
    Ok(if s_bytes == 8 {
        V::S
    } else if tainted || s_bytes > 0 {
        V::Tainted
    } else if unknown {
        V::Unknown
    } else {
        V::Const(u64::from_le_bytes(bytes))
    })
}

fn store(mem: &mut BTreeMap<u64, B>, at: u64, width: u8, v: V) {
    for i in 0..u64::from(width) {
        let b = match v {
            V::Const(c) => B::Const((c >> (8 * i)) as u8),
            V::S if width == 8 => B::S(i as u8),
            V::S | V::Tainted => B::Tainted,
            V::Unknown | V::Undef => B::Unknown,
        };
        mem.insert(at + i, b);
    }
}
