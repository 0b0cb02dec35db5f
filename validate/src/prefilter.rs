//! The prefilter check: code in a callback that may jump over a chunk's
//! steps (emit-bpf's `codegen/prefilter.rs`) skips only chunks the DFA's
//! transitions leave in the state they started in.
//!
//! The step and walk checks run on [`bypassed`]: the object with each
//! prefilter's first instruction replaced by a jump to its slow path, so
//! they check the chunk's steps as if every chunk were stepped byte by
//! byte. This module checks that the real prefilter is equivalent:
//!
//! - **Shape.** From `slow`, the pass's one machine has one step range per
//!   chunk byte `0..span`, in order, back to back, the last ending at `skip`.
//! - **Lanes.** From `start`, captured on a probe packet, the prefilter is
//!   run for every reachable state with the chunk's bytes symbolic: each
//!   register holds a number or eight byte lanes, each lane a constant or a
//!   table (all 256 values) of one chunk byte. Only lane-wise operations are
//!   accepted (and, or, xor, and add or subtract where no lane can carry or
//!   borrow for any byte), so a 64-bit comparison of lanes with a constant
//!   is one comparison per lane. A path that goes on where lanes equal the
//!   constant narrows each chunk byte to the values whose lane matches; the
//!   other outcome narrows nothing (it over-approximates). Every path must
//!   end at `slow` or `skip`, without stores or calls. At `skip` every
//!   chunk byte must be narrowed to bytes on which the DFA stays in the
//!   state (exhaustively from the IR's transitions).
//! - **Registers.** At `slow` and at `skip`, every register the code after
//!   it may read before writing (a conservative liveness walk) holds what
//!   it held at `start` (the state included): the real code then continues
//!   exactly as the bypassed one.

use emit_bpf::codemap::{CodeMap, PrefilterMap, StateEncoding};
use predicate_ir::{Machine, Program};

use crate::frame;
use crate::isa::{self, Alu, Cond, Insn, Operand};
use crate::object::{Function, Object};
use crate::step::reachable;
use crate::vm::{Probe, Skb, Vm};
use crate::ValidationError;
use std::collections::HashMap;
use std::rc::Rc;

/// The object with every prefilter jumping straight to its slow path.
pub fn bypassed(object: &Object, map: &CodeMap) -> Result<Object, ValidationError> {
    let paths = map.prefilters.iter().map(|p| (p.pass, p.start, p.slow));
    object
        .callback_paths_bypassed("prefilter", paths)
        .map_err(ValidationError::Map)
}

/// Runs the prefilter check; returns how many paths it followed.
/// `walked_steps` are the step check's (per pass, the step starts it
/// checked) when the walk check passed on the bypassed object, which then
/// vouches that no payload reaches a step the step check could not set
/// up; `None` where no walk check ran (a stream diode): every prefilter
/// must then be reached by a probe.
pub fn check(
    program: &Program,
    object: &Object,
    map: &CodeMap,
    walked_steps: Option<&[Vec<usize>]>,
) -> Result<u64, ValidationError> {
    let mut paths = 0;
    for (i, pf) in map.prefilters.iter().enumerate() {
        let walked = walked_steps.map(|w| w.get(pf.pass).map_or(&[][..], Vec::as_slice));
        paths += check_one(program, object, map, i, pf, walked)?;
    }
    Ok(paths)
}

fn err(i: usize, pf: &PrefilterMap, what: String) -> ValidationError {
    ValidationError::Prefilter {
        index: i,
        pass: pf.pass,
        what,
    }
}

fn check_one(
    program: &Program,
    object: &Object,
    map: &CodeMap,
    i: usize,
    pf: &PrefilterMap,
    walked: Option<&[usize]>,
) -> Result<u64, ValidationError> {
    let e = |what: String| err(i, pf, what);
    let pass = map
        .passes
        .get(pf.pass)
        .ok_or_else(|| e("names no pass".into()))?;
    let callback = object
        .callbacks
        .get(pf.pass)
        .ok_or_else(|| e("names no callback".into()))?;
    let [mm] = pass.machines.as_slice() else {
        return Err(e("its pass has more than one machine".into()));
    };
    let machine = &program.scans[mm.scan].machine;
    match (&mm.encoding, machine) {
        (StateEncoding::Dfa { scale: 1, .. }, Machine::Dfa(_))
        | (StateEncoding::Depth { .. }, Machine::Depth(_)) => {}
        _ => {
            return Err(e(
                "its machine is not a DFA or depth counter stepped by branchy code".into(),
            ))
        }
    }
    let state_regs = crate::step::state_regs(&mm.encoding);
    // Shape: the skipped bytes' steps run back to back from `slow`; the
    // first is the one at `slow` (chunk byte 0 for a chunk's prefilter,
    // the word's first byte for a depth word test).
    let first = pass
        .steps
        .iter()
        .find(|s| s.start == pf.slow && s.machine == 0)
        .map(|s| s.offset)
        .ok_or_else(|| e(format!("no step at the slow path's slot {}", pf.slow)))?;
    let mut at = pf.slow;
    for offset in first..first + pf.span {
        let step = pass
            .steps
            .iter()
            .find(|s| s.start == at && s.machine == 0 && s.offset == offset)
            .ok_or_else(|| e(format!("no step of chunk byte {offset} at slot {at}")))?;
        at = step.end;
    }
    // The skip target is where those steps end, or another prefilter of
    // the pass whose slow path starts there: in the bypassed object (which
    // the step and walk checks ran on) that prefilter's first slot jumps
    // there, and its own check makes the real one equivalent.
    let chained = map
        .prefilters
        .iter()
        .any(|q| q.pass == pf.pass && q.start == pf.skip && q.slow == at);
    if at != pf.skip && !chained {
        return Err(e(format!(
            "the skipped steps end at slot {at}, not at the skip target {} (nor at a prefilter starting there)",
            pf.skip
        )));
    }
    // The registers at `start`, on a probe packet.
    let mut vm = Vm::new(object);
    crate::watch::install(&mut vm);
    let mut marked = vec![false; callback.insns.len()];
    *marked
        .get_mut(pf.start)
        .ok_or_else(|| e("start outside the callback".into()))? = true;
    vm.probe = Some(Probe {
        callback: pf.pass,
        marked,
        captured: Default::default(),
    });
    let window_start = pass.window.start as usize;
    // A word test past a chunk's first word is reached only through the
    // tests before it, so the fill must pass them: ordinary text first,
    // then every byte value.
    let fills = [b'a', 0, 0xff, b' '].into_iter().chain(0..=255u8);
    let lens = [usize::from(pf.span), 2 * usize::from(pf.span), 200];
    for (fill, len) in fills.flat_map(|f| lens.map(|len| (f, len))) {
        let payload = vec![fill; window_start + len];
        if payload.len() > crate::walk::MAX_PAYLOAD as usize {
            continue;
        }
        vm.set_skb(Skb::linear(frame::ipv4_tcp(&payload)));
        vm.run_program().map_err(|error| ValidationError::Exec {
            during: format!("a prefilter probe with a {}-byte payload", payload.len()),
            error,
        })?;
        if !vm.probe.as_ref().expect("set").captured.is_empty() {
            break;
        }
    }
    let captured = vm.probe.take().expect("set").captured;
    let Some(snap) = captured.get(&pf.start) else {
        // In the bypassed object the prefilter's first slot jumps to the
        // step at `slow`. The step check could not set that step up (no
        // frame reached it), and the walk check, which passed, fails when
        // any payload length reaches a step not set up: so no frame
        // reaches the prefilter either (a window starting past every
        // frame's payload, say).
        if walked.is_some_and(|steps| !steps.contains(&pf.slow)) {
            return Ok(0);
        }
        return Err(e("no probe packet reaches the prefilter".into()));
    };
    let at_start = snap.regs;
    // Loads are placed relative to the first skipped byte.
    let chunk = at_start
        .get(9)
        .ok_or_else(|| e("r9 (the chunk pointer) is undefined at the start".into()))?
        .wrapping_add(u64::from(first));
    let live_slow = live_in(callback, pf.slow).map_err(&e)?;
    let live_skip = live_in(callback, pf.skip).map_err(&e)?;

    let mut paths = 0;
    let mut cache = Cache::default();
    for state in checked_states(callback, pf, machine, &mm.encoding).map_err(&e)? {
        let mut initial = at_start;
        crate::step::encode(machine, &mm.encoding, state, &mut initial);
        let mut regs: [Option<Val>; 11] =
            std::array::from_fn(|r| at_start.get(r as u8).map(Val::Known));
        for &r in &state_regs {
            regs[usize::from(r)] = initial.get(r).map(Val::Known);
        }
        let begin = Path {
            pc: pf.start,
            regs,
            allowed: vec![[true; 256]; usize::from(pf.span)],
            pairs: Default::default(),
        };
        let mut work = vec![begin];
        while let Some(path) = work.pop() {
            paths += 1;
            if paths > 100_000 {
                return Err(e("too many paths".into()));
            }
            let (end, path) = run_path(callback, path, chunk, pf, &mut work, &mut cache)
                .map_err(|w| e(format!("from state {state}: {w}")))?;
            let live = if end == pf.slow { live_slow } else { live_skip };
            for r in 0..=9u8 {
                if live & (1 << r) == 0 {
                    continue;
                }
                let want = initial.get(r);
                let got = match &path.regs[usize::from(r)] {
                    Some(Val::Known(v)) => Some(*v),
                    Some(Val::Lanes(_)) => None,
                    None => None,
                };
                if got != want || (want.is_none() && path.regs[usize::from(r)].is_some()) {
                    return Err(e(format!(
                        "from state {state}, at slot {end}: r{r}, read later, holds {got:?}, not its value at the start ({want:?})"
                    )));
                }
            }
            if end == pf.skip {
                leaves_in(machine, state, &path, &mut cache)
                    .map_err(|w| e(format!("from state {state}: {w}")))?;
            }
        }
    }
    Ok(paths)
}

/// Depth counters with more reachable states than this are checked from
/// representative depths only ([`checked_states`]).
const DEPTH_STATES_IN_FULL: usize = 4096;

/// The states the prefilter is run from: every reachable state, except
/// for a depth counter of many levels (`max` up to 65,535: some 200,000
/// states, each at least one path), whose depths between the edges are
/// represented by a few.
///
/// Why that is complete: a depth counter's states differ by depth only in
/// its depth register. If no instruction the prefilter can run before
/// `slow` or `skip` reads or writes that register, every path from depth
/// `d` is the same path from any other depth in the same mode, and
/// leaves the register as it was. What does depend on the depth is which
/// bytes keep the counter in its state (the check at `skip`): for every
/// depth strictly between 0 and `max` the same bytes (an opening, a
/// closing and, with strings, the quote byte leave; in a string the quote
/// and backslash; after a backslash every byte), at 0 a closing byte
/// stays too, at `max` an opening byte fails. Depths 0 to 2 and `max - 2`
/// to `max` in every mode, and the failed sink, cover each case.
fn checked_states(
    callback: &Function,
    pf: &PrefilterMap,
    machine: &Machine,
    encoding: &StateEncoding,
) -> Result<Vec<predicate_ir::StateId>, String> {
    let all = reachable(machine);
    let (Machine::Depth(c), StateEncoding::Depth { depth_reg, .. }) = (machine, encoding) else {
        return Ok(all);
    };
    if all.len() <= DEPTH_STATES_IN_FULL || touches(callback, pf, *depth_reg)? {
        return Ok(all);
    }
    let failed = c.failed_state();
    Ok(all
        .into_iter()
        .filter(|&s| {
            let depth = s / 3;
            s == failed || depth <= 2 || depth + 2 >= c.max
        })
        .collect())
}

/// Whether any instruction the prefilter can run from `start` before it
/// reaches `slow` or `skip` reads or writes `reg` (a call or exit counts
/// as touching every register it reads or clobbers).
fn touches(f: &Function, pf: &PrefilterMap, reg: u8) -> Result<bool, String> {
    let mut seen = std::collections::HashSet::new();
    let mut work = vec![pf.start];
    while let Some(pc) = work.pop() {
        if pc == pf.slow || pc == pf.skip || !seen.insert(pc) {
            continue;
        }
        let insn = *f
            .insns
            .get(pc)
            .ok_or_else(|| format!("the prefilter runs off the callback at slot {pc}"))?;
        let is = |r: u8| r == reg;
        let is_op = |o: Operand| matches!(o, Operand::Reg(r) if r == reg);
        let (hit, next) = match insn {
            Insn::Alu { dst, src, .. } => (is(dst) || is_op(src), vec![pc + 1]),
            Insn::Load { dst, src, .. } => (is(dst) || is(src), vec![pc + 1]),
            Insn::Store { dst, src, .. } => (is(dst) || is_op(src), vec![pc + 1]),
            Insn::AtomicXchg { dst, src, .. } => (is(dst) || is(src) || reg == 0, vec![pc + 1]),
            Insn::LoadImm64 { dst, .. } => (is(dst), vec![pc + 2]),
            Insn::Wide => {
                return Err(format!(
                    "the prefilter reaches the middle of an ld_imm64 at {pc}"
                ))
            }
            Insn::Jump {
                cond,
                dst,
                src,
                off,
                ..
            } => {
                let target = (pc as i64 + 1 + i64::from(off)) as usize;
                match cond {
                    Some(_) => (is(dst) || is_op(src), vec![pc + 1, target]),
                    None => (false, vec![target]),
                }
            }
            Insn::Call { .. } | Insn::Exit => (reg <= 5, Vec::new()),
        };
        if hit {
            return Ok(true);
        }
        work.extend(next);
    }
    Ok(false)
}

/// A value: a number, or eight byte lanes (lane `i` = bits `8i..8i+8`).
#[derive(Clone)]
enum Val {
    Known(u64),
    Lanes(Box<[Lane; 8]>),
}

#[derive(Clone)]
enum Lane {
    Const(u8),
    /// `table[b]` when chunk byte `pos` is `b`.
    Of {
        pos: u16,
        table: Rc<[u8; 256]>,
    },
    /// `post[base.table[256 * a + b]]` when chunk bytes `pos` and `pos + 1`
    /// are `a`, `b`. Tables are shared, never changed: a path's copy costs
    /// no copy of them, and an operation with a constant, or between two
    /// lanes of one base, changes only the 256 entries of `post`.
    Pair {
        pos: u16,
        base: Rc<PairBase>,
        post: Rc<[u8; 256]>,
    },
}

/// [`neighbours`]'s arguments: the operation (by its name), the tables,
/// which comes first.
type NeighboursKey = (String, [u8; 256], [u8; 256], bool);

/// Allowed pairs, and whether any is.
type Narrowed = (Rc<Vec<bool>>, bool);

/// Results of pure functions of tables, shared by every lane, word and
/// path of one prefilter: its words run the same operations on tables of
/// the same contents, so each result is computed once. Keys that are
/// addresses hold their table alive here, so no address is reused.
#[derive(Default)]
struct Cache {
    /// [`neighbours`] by its arguments (the operation by its name).
    neighbours: HashMap<NeighboursKey, Rc<PairBase>>,
    /// A first pair constraint: by its base's address and the values kept.
    narrowed: HashMap<(usize, [bool; 256]), Narrowed>,
    /// [`leaves_in`]'s classes of a pair constraint, by its address.
    classes: HashMap<usize, Rc<PairClasses>>,
    alive: Vec<Rc<PairBase>>,
    alive_pairs: Vec<Rc<Vec<bool>>>,
}

/// The bytes `a` whose rows of a pair constraint (the next bytes it
/// allows after `a`) are equal: the class of each byte, and one byte of
/// each class.
struct PairClasses {
    class_of: [usize; 256],
    representatives: Vec<usize>,
}

/// A table over byte pairs, and which of its 256 values it holds.
struct PairBase {
    table: Vec<u8>,
    present: [bool; 256],
}

impl PairBase {
    fn new(table: Vec<u8>) -> PairBase {
        let mut present = [false; 256];
        for &v in &table {
            present[usize::from(v)] = true;
        }
        PairBase { table, present }
    }
}

/// `f` on the values a pair lane's base holds, through `post` (or `other`
/// for a second lane of the same base): the new `post`. Values the base
/// does not hold are left 0 and never run through `f`, so a carry there
/// refuses nothing.
fn pair_post(
    base: &PairBase,
    f: impl Fn(u8) -> Result<u8, String>,
) -> Result<Rc<[u8; 256]>, String> {
    let mut post = [0u8; 256];
    for (v, out) in post.iter_mut().enumerate() {
        if base.present[v] {
            *out = f(v as u8)?;
        }
    }
    Ok(Rc::new(post))
}

impl Lane {
    /// The lane as a table over the byte pair at (`pos`, `pos + 1`).
    fn as_pair(&self, pos: u16) -> Option<Vec<u8>> {
        let mut t = vec![0u8; 65_536];
        match self {
            Lane::Const(c) => t.fill(*c),
            Lane::Of { pos: p, table } if *p == pos => {
                for (i, v) in t.iter_mut().enumerate() {
                    *v = table[i >> 8];
                }
            }
            Lane::Of { pos: p, table } if *p == pos + 1 => {
                for (i, v) in t.iter_mut().enumerate() {
                    *v = table[i & 0xff];
                }
            }
            Lane::Pair { pos: p, base, post } if *p == pos => {
                for (v, &b) in t.iter_mut().zip(&base.table) {
                    *v = post[usize::from(b)];
                }
            }
            _ => return None,
        }
        Some(t)
    }

    /// The first chunk byte the lane depends on, if any.
    fn first_pos(&self) -> Option<u16> {
        match self {
            Lane::Const(_) => None,
            Lane::Of { pos, .. } | Lane::Pair { pos, .. } => Some(*pos),
        }
    }

    fn is_pair(&self) -> bool {
        matches!(self, Lane::Pair { .. })
    }
}

#[derive(Clone)]
struct Path {
    pc: usize,
    regs: [Option<Val>; 11],
    /// Per chunk byte, the values a path here allows.
    allowed: Vec<[bool; 256]>,
    /// Per chunk byte `p` constrained with the next: the pairs allowed.
    pairs: std::collections::BTreeMap<u16, Rc<Vec<bool>>>,
}

fn lanes(v: &Val) -> [Lane; 8] {
    match v {
        Val::Known(x) => std::array::from_fn(|i| Lane::Const((x >> (8 * i)) as u8)),
        Val::Lanes(l) => (**l).clone(),
    }
}

fn collapse(l: [Lane; 8]) -> Val {
    let mut x = 0u64;
    for (i, lane) in l.iter().enumerate() {
        match lane {
            Lane::Const(c) => x |= u64::from(*c) << (8 * i),
            Lane::Of { .. } | Lane::Pair { .. } => return Val::Lanes(Box::new(l)),
        }
    }
    Val::Known(x)
}

/// A lane-wise 64-bit operation, refused where a lane could carry.
fn lane_op(op: Alu, a: &Val, b: &Val, cache: &mut Cache) -> Result<Val, String> {
    let f = |x: u8, y: u8| -> Result<u8, String> {
        match op {
            Alu::And => Ok(x & y),
            Alu::Or => Ok(x | y),
            Alu::Xor => Ok(x ^ y),
            Alu::Add => x
                .checked_add(y)
                .ok_or_else(|| "an addition carries across byte lanes".to_string()),
            Alu::Sub => x
                .checked_sub(y)
                .ok_or_else(|| "a subtraction borrows across byte lanes".to_string()),
            other => Err(format!("{other:?} on byte lanes is not lane-wise")),
        }
    };
    let (la, lb) = (lanes(a), lanes(b));
    let mut out: Vec<Lane> = Vec::with_capacity(8);
    for (x, y) in la.into_iter().zip(lb) {
        out.push(match (x, y) {
            (Lane::Const(x), Lane::Const(y)) => Lane::Const(f(x, y)?),
            (Lane::Of { pos, table }, Lane::Const(y)) => {
                let mut t = [0u8; 256];
                for b in 0..256 {
                    t[b] = f(table[b], y)?;
                }
                Lane::Of {
                    pos,
                    table: Rc::new(t),
                }
            }
            (Lane::Const(x), Lane::Of { pos, table }) => {
                let mut t = [0u8; 256];
                for b in 0..256 {
                    t[b] = f(x, table[b])?;
                }
                Lane::Of {
                    pos,
                    table: Rc::new(t),
                }
            }
            (Lane::Of { pos, table }, Lane::Of { pos: q, table: u }) if pos == q => {
                let mut t = [0u8; 256];
                for b in 0..256 {
                    t[b] = f(table[b], u[b])?;
                }
                Lane::Of {
                    pos,
                    table: Rc::new(t),
                }
            }
            (Lane::Pair { pos, base, post }, Lane::Const(y)) => {
                let post = pair_post(&base, |v| f(post[usize::from(v)], y))?;
                Lane::Pair { pos, base, post }
            }
            (Lane::Const(x), Lane::Pair { pos, base, post }) => {
                let post = pair_post(&base, |v| f(x, post[usize::from(v)]))?;
                Lane::Pair { pos, base, post }
            }
            (
                Lane::Pair { pos, base, post },
                Lane::Pair {
                    pos: q,
                    base: other,
                    post: post2,
                },
            ) if pos == q && Rc::ptr_eq(&base, &other) => {
                let post = pair_post(&base, |v| f(post[usize::from(v)], post2[usize::from(v)]))?;
                Lane::Pair { pos, base, post }
            }
            (Lane::Of { pos: p, table: ta }, Lane::Of { pos: q, table: tb })
                if p + 1 == q || q + 1 == p =>
            {
                // Two neighbouring bytes: the pair table in one pass.
                let (pos, first_is_a) = (p.min(q), p < q);
                let key = (format!("{op:?}"), *ta, *tb, first_is_a);
                let base = match cache.neighbours.get(&key) {
                    Some(base) => base.clone(),
                    None => {
                        let base = Rc::new(neighbours(op, &ta, &tb, first_is_a)?);
                        cache.neighbours.insert(key, base.clone());
                        base
                    }
                };
                Lane::Pair {
                    pos,
                    base,
                    post: Rc::new(std::array::from_fn(|v| v as u8)),
                }
            }
            (x, y) => {
                // Lanes of one byte and the next, or of a pair: as pairs.
                let pos = match (x.first_pos(), y.first_pos()) {
                    (Some(p), Some(q)) if x.is_pair() || y.is_pair() => {
                        if x.is_pair() {
                            p
                        } else {
                            q
                        }
                    }
                    (Some(p), Some(q)) => p.min(q),
                    (Some(p), None) | (None, Some(p)) => p,
                    (None, None) => unreachable!("constants are handled above"),
                };
                let (Some(tx), Some(ty)) = (x.as_pair(pos), y.as_pair(pos)) else {
                    return Err(
                        "an operation mixes lanes of chunk bytes that are not neighbours".into(),
                    );
                };
                Lane::Pair {
                    pos,
                    base: Rc::new(PairBase::new(pair_op(op, &tx, &ty)?)),
                    post: Rc::new(std::array::from_fn(|v| v as u8)),
                }
            }
        });
    }
    let arr: [Lane; 8] = out.try_into().map_err(|_| "eight lanes".to_string())?;
    Ok(collapse(arr))
}

/// `op` on a lane of one chunk byte and a lane of the next, as a pair
/// table: entry `256 * a + b` is `op(ta[a], tb[b])` when `first_is_a` (the
/// first lane is of the earlier byte), else `op(ta[b], tb[a])`. Refused
/// where an entry carries or borrows, as [`pair_op`] refuses it.
fn neighbours(
    op: Alu,
    ta: &[u8; 256],
    tb: &[u8; 256],
    first_is_a: bool,
) -> Result<PairBase, String> {
    fn fill(
        ta: &[u8; 256],
        tb: &[u8; 256],
        first_is_a: bool,
        f: impl Fn(u8, u8) -> (u8, bool),
    ) -> (Vec<u8>, bool) {
        let mut t = vec![0u8; 65_536];
        let mut overflow = false;
        for (a, row) in t.chunks_exact_mut(256).enumerate() {
            for (b, out) in row.iter_mut().enumerate() {
                let (x, y) = if first_is_a {
                    (ta[a], tb[b])
                } else {
                    (ta[b], tb[a])
                };
                let (v, o) = f(x, y);
                *out = v;
                overflow |= o;
            }
        }
        (t, overflow)
    }
    let (t, overflow) = match op {
        Alu::And => fill(ta, tb, first_is_a, |x, y| (x & y, false)),
        Alu::Or => fill(ta, tb, first_is_a, |x, y| (x | y, false)),
        Alu::Xor => fill(ta, tb, first_is_a, |x, y| (x ^ y, false)),
        Alu::Add => fill(ta, tb, first_is_a, u8::overflowing_add),
        Alu::Sub => fill(ta, tb, first_is_a, u8::overflowing_sub),
        other => return Err(format!("{other:?} on byte lanes is not lane-wise")),
    };
    if overflow {
        return Err(match op {
            Alu::Add => "an addition carries across byte lanes",
            _ => "a subtraction borrows across byte lanes",
        }
        .into());
    }
    Ok(PairBase::new(t))
}

/// `op` on two pair tables, element by element, refused where an
/// element carries or borrows (as [`lane_op`] refuses it on one lane).
fn pair_op(op: Alu, x: &[u8], y: &[u8]) -> Result<Vec<u8>, String> {
    let mut t = vec![0u8; x.len()];
    let (xs, ys) = (x.iter(), y.iter());
    let mut overflow = false;
    // One loop per operation, so each is a plain loop over the tables.
    match op {
        Alu::And => t
            .iter_mut()
            .zip(xs.zip(ys))
            .for_each(|(t, (a, b))| *t = a & b),
        Alu::Or => t
            .iter_mut()
            .zip(xs.zip(ys))
            .for_each(|(t, (a, b))| *t = a | b),
        Alu::Xor => t
            .iter_mut()
            .zip(xs.zip(ys))
            .for_each(|(t, (a, b))| *t = a ^ b),
        Alu::Add => t.iter_mut().zip(xs.zip(ys)).for_each(|(t, (a, b))| {
            let (v, o) = a.overflowing_add(*b);
            *t = v;
            overflow |= o;
        }),
        Alu::Sub => t.iter_mut().zip(xs.zip(ys)).for_each(|(t, (a, b))| {
            let (v, o) = a.overflowing_sub(*b);
            *t = v;
            overflow |= o;
        }),
        other => return Err(format!("{other:?} on byte lanes is not lane-wise")),
    }
    if overflow {
        return Err(match op {
            Alu::Add => "an addition carries across byte lanes",
            _ => "a subtraction borrows across byte lanes",
        }
        .into());
    }
    Ok(t)
}

/// Narrows the chunk bytes `lane` depends on to those where `keep` holds
/// of the lane's value; false when nothing is left (no chunk goes there).
fn narrow(p: &mut Path, lane: &Lane, keep: impl Fn(u8) -> bool, cache: &mut Cache) -> bool {
    match lane {
        Lane::Const(c) => keep(*c),
        Lane::Of { pos, table } => {
            let allowed = &mut p.allowed[usize::from(*pos)];
            for b in 0..256 {
                allowed[b] &= keep(table[b]);
            }
            allowed.iter().any(|&a| a)
        }
        Lane::Pair { pos, base, post } => {
            // The lane takes at most 256 values: decide `keep` once each.
            let mut kept = [false; 256];
            for (v, k) in kept.iter_mut().enumerate() {
                *k = keep(post[v]);
            }
            if !p.pairs.contains_key(pos) {
                // The first constraint on these pairs: the same for every
                // lane of this base and these kept values.
                let key = (Rc::as_ptr(base) as usize, kept);
                let (pairs, any) = match cache.narrowed.get(&key) {
                    Some(hit) => hit.clone(),
                    None => {
                        let pairs: Vec<bool> =
                            base.table.iter().map(|&v| kept[usize::from(v)]).collect();
                        let any = pairs.iter().any(|&a| a);
                        let hit = (Rc::new(pairs), any);
                        cache.alive.push(base.clone());
                        cache.narrowed.insert(key, hit.clone());
                        hit
                    }
                };
                p.pairs.insert(*pos, pairs);
                return any;
            }
            let pairs = Rc::make_mut(p.pairs.get_mut(pos).expect("checked"));
            let mut any = false;
            for (a, &v) in pairs.iter_mut().zip(base.table.iter()) {
                *a &= kept[usize::from(v)];
                any |= *a;
            }
            any
        }
    }
}

/// Whether every chunk the path allows (each byte in its set, each
/// constrained pair in its set) leaves the DFA in `state`: a walk over the
/// chunk holding the reachable pairs of DFA state and class of the last
/// byte, where two bytes are in one class when the pair constraint after
/// them allows the same next bytes (one class where there is none), so
/// every chunk continues from them alike. An example byte of each class is
/// kept for the message.
fn leaves_in(machine: &Machine, state: u32, p: &Path, cache: &mut Cache) -> Result<(), String> {
    let mut now: Vec<(u32, usize, Option<u8>)> = vec![(state, 0, None)];
    // The constraint from the previous byte: one row of allowed next bytes per class.
    let mut prev_rows: Vec<&[bool]> = Vec::new();
    for (pos, allowed) in p.allowed.iter().enumerate() {
        let mut class_of = [0usize; 256];
        let mut rows: Vec<&[bool]> = Vec::new();
        if let Some(pairs) = p.pairs.get(&(pos as u16)) {
            let classes = cache
                .classes
                .entry(Rc::as_ptr(pairs) as *const bool as usize)
                .or_insert_with(|| {
                    cache.alive_pairs.push(pairs.clone());
                    let mut class_of = [0usize; 256];
                    let mut representatives: Vec<usize> = Vec::new();
                    for (b, class) in class_of.iter_mut().enumerate() {
                        let row = &pairs[256 * b..256 * b + 256];
                        *class = match representatives
                            .iter()
                            .position(|&r| pairs[256 * r..256 * r + 256] == *row)
                        {
                            Some(c) => c,
                            None => {
                                representatives.push(b);
                                representatives.len() - 1
                            }
                        };
                    }
                    Rc::new(PairClasses {
                        class_of,
                        representatives,
                    })
                })
                .clone();
            class_of = classes.class_of;
            rows = classes
                .representatives
                .iter()
                .map(|&r| &pairs[256 * r..256 * r + 256])
                .collect();
        }
        let classes = rows.len().max(1);
        let mut seen = vec![false; machine.state_count() * classes];
        let mut next = Vec::new();
        for &(q, c, _) in &now {
            let row = prev_rows.get(c);
            for b in 0..=255u8 {
                if !allowed[usize::from(b)] || row.is_some_and(|r| !r[usize::from(b)]) {
                    continue;
                }
                let t = machine.step(q, b);
                let class = class_of[usize::from(b)];
                let k = t as usize * classes + class;
                if !seen[k] {
                    seen[k] = true;
                    next.push((t, class, Some(b)));
                }
            }
        }
        now = next;
        prev_rows = rows;
    }
    match now.iter().find(|&&(q, _, _)| q != state) {
        Some(&(q, _, last)) => Err(format!(
            "a chunk the code skips can leave the {} in state {q} (last byte {:#04x})",
            match machine {
                Machine::Dfa(_) => "DFA",
                Machine::Depth(_) => "depth counter",
            },
            last.unwrap_or(0)
        )),
        None => Ok(()),
    }
}

/// Follows one path to `slow` or `skip`; branches that split on lanes push
/// their other outcome onto `work`.
fn run_path(
    f: &Function,
    mut p: Path,
    chunk: u64,
    pf: &PrefilterMap,
    work: &mut Vec<Path>,
    cache: &mut Cache,
) -> Result<(usize, Path), String> {
    for _ in 0..10_000 {
        if p.pc == pf.slow || p.pc == pf.skip {
            return Ok((p.pc, p));
        }
        let insn = *f
            .insns
            .get(p.pc)
            .ok_or_else(|| format!("runs off the callback at slot {}", p.pc))?;
        let get = |regs: &[Option<Val>; 11], r: u8| {
            regs[usize::from(r)]
                .clone()
                .ok_or_else(|| format!("slot {}: reads r{r}, which holds no value", p.pc))
        };
        match insn {
            Insn::Alu {
                wide,
                op,
                dst,
                src,
                off,
                to_be,
            } => {
                let s = match src {
                    Operand::Reg(r) => get(&p.regs, r)?,
                    Operand::Imm(i) => Val::Known(i as i64 as u64),
                };
                let v = if op == Alu::Mov && off == 0 {
                    match s {
                        Val::Known(x) if !wide => Val::Known(x & 0xffff_ffff),
                        Val::Lanes(_) if !wide => {
                            return Err(format!("slot {}: 32-bit move of byte lanes", p.pc))
                        }
                        other => other,
                    }
                } else {
                    let d = get(&p.regs, dst)?;
                    match (&d, &s) {
                        (Val::Known(x), Val::Known(y)) => {
                            Val::Known(isa::alu(op, wide, *x, *y, off, to_be))
                        }
                        (Val::Lanes(l), Val::Known(k))
                            if wide && op == Alu::Rsh && k % 8 == 0 && *k < 64 =>
                        {
                            // A shift by whole bytes moves lanes down.
                            let k = (*k / 8) as usize;
                            let moved: [Lane; 8] = std::array::from_fn(|i| {
                                if i + k < 8 {
                                    l[i + k].clone()
                                } else {
                                    Lane::Const(0)
                                }
                            });
                            collapse(moved)
                        }
                        _ if wide && off == 0 => {
                            lane_op(op, &d, &s, cache).map_err(|w| format!("slot {}: {w}", p.pc))?
                        }
                        _ => return Err(format!("slot {}: {op:?} on byte lanes", p.pc)),
                    }
                };
                p.regs[usize::from(dst)] = Some(v);
            }
            Insn::Load {
                width,
                dst,
                src,
                off,
                signed,
            } => {
                let Val::Known(base) = get(&p.regs, src)? else {
                    return Err(format!("slot {}: a load through byte lanes", p.pc));
                };
                let addr = base.wrapping_add(off as i64 as u64);
                let pos = addr.wrapping_sub(chunk);
                if !(width == 8 || width == 1)
                    || signed
                    || pos + u64::from(width) > u64::from(pf.span)
                {
                    return Err(format!(
                        "slot {}: reads {width} bytes at chunk offset {}; only bytes and 8-byte words of the chunk may be read",
                        p.pc, pos as i64
                    ));
                }
                let l: [Lane; 8] = std::array::from_fn(|i| {
                    if i < usize::from(width) {
                        Lane::Of {
                            pos: pos as u16 + i as u16,
                            table: Rc::new(std::array::from_fn(|b| b as u8)),
                        }
                    } else {
                        Lane::Const(0)
                    }
                });
                p.regs[usize::from(dst)] = Some(Val::Lanes(Box::new(l)));
            }
            Insn::LoadImm64 {
                dst, src: 0, value, ..
            } => {
                p.regs[usize::from(dst)] = Some(Val::Known(value));
                p.pc += 2;
                continue;
            }
            Insn::Jump {
                wide,
                cond,
                dst,
                src,
                off,
            } => {
                let target = (p.pc as i64 + 1 + i64::from(off)) as usize;
                let Some(cond) = cond else {
                    p.pc = target;
                    continue;
                };
                let x = get(&p.regs, dst)?;
                let y = match src {
                    Operand::Reg(r) => get(&p.regs, r)?,
                    Operand::Imm(i) => Val::Known(i as i64 as u64),
                };
                match (&x, &y) {
                    (Val::Known(a), Val::Known(b)) => {
                        p.pc = if isa::holds(cond, wide, *a, *b) {
                            target
                        } else {
                            p.pc + 1
                        };
                        continue;
                    }
                    (Val::Lanes(l), Val::Known(v))
                        if wide && matches!(cond, Cond::Eq | Cond::Ne) =>
                    {
                        let (eq_pc, ne_pc) = if cond == Cond::Eq {
                            (target, p.pc + 1)
                        } else {
                            (p.pc + 1, target)
                        };
                        // Lanes unequal: nothing is learned, unless one
                        // lane alone can differ (the others equal).
                        let mut other = p.clone();
                        other.pc = ne_pc;
                        let open: Vec<usize> = (0..8)
                            .filter(
                                |&i| !matches!(l[i], Lane::Const(c) if c == (v >> (8 * i)) as u8),
                            )
                            .collect();
                        let mut other_feasible = true;
                        if let [i] = open.as_slice() {
                            let want = (v >> (8 * i)) as u8;
                            match &l[*i] {
                                Lane::Const(_) => {}
                                lane => {
                                    other_feasible &= narrow(&mut other, lane, |x| x != want, cache)
                                }
                            }
                        }
                        if open.is_empty() {
                            other_feasible = false;
                        }
                        // Lanes equal: each chunk byte narrows to matching values.
                        let mut feasible = true;
                        for (i, lane) in l.iter().enumerate() {
                            let want = (v >> (8 * i)) as u8;
                            match lane {
                                Lane::Const(c) => feasible &= *c == want,
                                lane => feasible &= narrow(&mut p, lane, |x| x == want, cache),
                            }
                        }
                        match (feasible, other_feasible) {
                            (true, true) => work.push(other),
                            (false, true) => {
                                p = other;
                                continue;
                            }
                            (true, false) => {}
                            (false, false) => return Err("a comparison no chunk can reach".into()),
                        }
                        p.pc = eq_pc;
                        continue;
                    }
                    _ => {
                        return Err(format!(
                            "slot {}: a {cond:?} comparison of byte lanes is not analyzed",
                            p.pc
                        ))
                    }
                }
            }
            other => return Err(format!("slot {}: {other:?} in a prefilter", p.pc)),
        }
        p.pc += 1;
    }
    Err("runs too long".into())
}

/// Registers (bit mask over r0..r9) that code from `from` may read before
/// writing them, on some path (helpers read r1-r5, exits read r0).
fn live_in(f: &Function, from: usize) -> Result<u16, String> {
    let mut live = 0u16;
    let mut seen = std::collections::HashSet::new();
    let mut work = vec![(from, 0u16)];
    while let Some((pc, written)) = work.pop() {
        if !seen.insert((pc, written)) {
            continue;
        }
        if seen.len() > 1_000_000 {
            return Err("liveness: too many states".into());
        }
        let insn = *f
            .insns
            .get(pc)
            .ok_or_else(|| format!("liveness: runs off the callback at slot {pc}"))?;
        let mut read = |r: u8, written: u16| {
            if r < 10 && written & (1 << r) == 0 {
                live |= 1 << r;
            }
        };
        let mut w = written;
        let mut next = vec![pc + 1];
        match insn {
            Insn::Alu { op, dst, src, .. } => {
                if let Operand::Reg(r) = src {
                    read(r, written);
                }
                if op != Alu::Mov {
                    read(dst, written);
                }
                w |= 1 << dst;
            }
            Insn::Load { dst, src, .. } => {
                read(src, written);
                w |= 1 << dst;
            }
            Insn::Store { dst, src, .. } => {
                read(dst, written);
                if let Operand::Reg(r) = src {
                    read(r, written);
                }
            }
            Insn::LoadImm64 { dst, .. } => {
                w |= 1 << dst;
                next = vec![pc + 2];
            }
            Insn::Wide => {
                return Err(format!(
                    "liveness: reaches the middle of an ld_imm64 at {pc}"
                ))
            }
            Insn::Jump {
                cond,
                dst,
                src,
                off,
                ..
            } => {
                let target = (pc as i64 + 1 + i64::from(off)) as usize;
                if cond.is_some() {
                    read(dst, written);
                    if let Operand::Reg(r) = src {
                        read(r, written);
                    }
                    next = vec![pc + 1, target];
                } else {
                    next = vec![target];
                }
            }
            Insn::Call { .. } => {
                for r in 1..=5 {
                    read(r, written);
                }
                w |= 0b11_1111;
            }
            Insn::Exit => {
                read(0, written);
                next = Vec::new();
            }
            // Reads the address and the new value (and `r0` for cmpxchg);
            // writes the old value back into `src` (`r0` for cmpxchg).
            Insn::AtomicXchg {
                dst, src, compare, ..
            } => {
                read(dst, written);
                read(src, written);
                if compare {
                    read(0, written);
                    w |= 1;
                } else {
                    w |= 1 << src;
                }
            }
        }
        for n in next {
            work.push((n, w));
        }
    }
    Ok(live)
}
