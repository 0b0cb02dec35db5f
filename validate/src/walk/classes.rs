//! The walk check over *classes* of payload lengths: one symbolic run
//! stands for every length of a class.
//!
//! A class is an arithmetic progression of lengths `n = n0 + stride * k`,
//! `k` in `0..count`. The run treats `k` as a symbol next to the loop
//! index `i`: every value is exact and affine, `ci * i + ck * k + c`
//! ([`Lin`]); a value is only used where that is sound (a comparison, a
//! shift right, a store narrower than 8 bytes, a loop count) after checking
//! that it takes no wrapped value anywhere in the class, which for an affine
//! function means at the corners of the set of `(i, k)` the run stands for.
//!
//! Why one run proves every length of the class:
//!
//! - **The entry follows one path for the whole class.** A comparison in
//!   the entry is affine in `k` (no loop index exists there); when it does
//!   not have one outcome for every `k` of the class, the run stops and the
//!   class is split where the outcome changes ([`Fail::Split`]), and both
//!   halves are run again. A shift right `x >> s` is affine in `k` only if
//!   `2^s` divides the slopes of `x`; otherwise the class is split into
//!   `g` residue classes of `g` times the stride ([`Fail::Stride`]), on
//!   which it is (`floor((a*g*k' + c) / 2^s) = (a*g/2^s)*k' + floor(c/2^s)`).
//!   The emitted tiers (chunks of 64, 8 and 1 bytes) so cost 64 residue
//!   classes per window piece, not 65,536 lengths.
//! - **The callback is run per region of `(i, k)`.** A region is every `k`
//!   of the class and, for each, `i` in `lo(k)..hi(k)` (both affine in `k`,
//!   never empty). A comparison whose outcome is not the same at the four
//!   corners of the region splits it at the index where the outcome
//!   changes, `i = z(k)`, when the comparison's slope in `i` is 1 or -1 (so
//!   `z` is affine in `k` too); where `z` crosses `lo` or `hi` inside the
//!   class, the class is split instead. Every region so follows one path
//!   and is a trapezoid in the `(i, k)` plane on which every value is
//!   affine; what holds at its corners for an affine comparison holds on all
//!   of it.
//! - **Coverage is affine equalities.** The checks of the walk (each region
//!   starts where the one before ends, each machine's step `j` reads window
//!   position `previous + j`, a region with more than one index advances
//!   by the chunk it steps, each machine reads as many bytes as the window
//!   holds) compare affine functions of `k` once the regions' order is the
//!   same at both ends of the class; two affine functions equal at the
//!   class's first and last length are equal on every length between. So
//!   [`super::cover`] runs at those two lengths.
//! - **The rest is constant.** The machine tokens, the loop's arguments
//!   other than its count, the registers a step reads its state from, the
//!   final states the formula reads: all must be constants, the same for
//!   every length of the class, and are compared once.
//!
//! Anything the symbolic run does not model (another helper, a signed
//! comparison on a symbol, a slope other than 1 in a split, an overlapping
//! partial store) gives [`Fail::Unsupported`]; the caller then runs the
//! class's lengths one by one as before, so the check never accepts less
//! for being symbolic, and the error it reports (a wrong walk, say) is the
//! concrete one, naming the payload length.

use emit_bpf::codemap::{MachineMap, PassMap, StateEncoding};
use predicate_ir::{Machine, Program};

use super::{cover, final_value, in_entry_stack, machine_regs, token, Leaf, Sym, Visit};
use crate::isa::{self, Alu, Cond, Insn, Operand};
use crate::object::{Function, Object, PSEUDO_FUNC};
use crate::vm::{self, Regs, Snapshot, Vm};

/// An exact affine value `i * loop index + k * class parameter + c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lin {
    pub(crate) i: i64,
    pub(crate) k: i64,
    pub(crate) c: i128,
}

const TWO64: i128 = 1 << 64;

impl Lin {
    pub(crate) fn konst(v: u64) -> Lin {
        Lin {
            i: 0,
            k: 0,
            c: i128::from(v),
        }
    }
    fn is_const(self) -> bool {
        self.i == 0 && self.k == 0
    }
    /// The value as the machine holds it (constants only).
    pub(crate) fn value(self) -> Option<u64> {
        self.is_const().then_some(self.c.rem_euclid(TWO64) as u64)
    }
    fn at(self, i: i128, k: i128) -> i128 {
        i128::from(self.i) * i + i128::from(self.k) * k + self.c
    }
    pub(crate) fn plus(self, o: Lin) -> Result<Lin, Fail> {
        self.combine(o, 1)
    }
    fn minus(self, o: Lin) -> Result<Lin, Fail> {
        self.combine(o, -1)
    }
    fn combine(self, o: Lin, sign: i64) -> Result<Lin, Fail> {
        let term = |a: i64, b: i64| {
            b.checked_mul(sign)
                .and_then(|b| a.checked_add(b))
                .ok_or_else(big)
        };
        Ok(Lin {
            i: term(self.i, o.i)?,
            k: term(self.k, o.k)?,
            c: self.c + i128::from(sign) * o.c,
        }
        .tidy())
    }
    fn scale(self, m: i64) -> Result<Lin, Fail> {
        Ok(Lin {
            i: self.i.checked_mul(m).ok_or_else(big)?,
            k: self.k.checked_mul(m).ok_or_else(big)?,
            c: self.c.checked_mul(i128::from(m)).ok_or_else(big)?,
        }
        .tidy())
    }
    /// Constants are kept as the machine's u64.
    fn tidy(self) -> Lin {
        if self.is_const() {
            Lin {
                c: self.c.rem_euclid(TWO64),
                ..self
            }
        } else {
            self
        }
    }
}

fn big() -> Fail {
    Fail::Unsupported("a coefficient overflows".into())
}

/// Why a class was not proven by one run.
#[derive(Debug)]
pub(crate) enum Fail {
    /// Split the class before this `k` and run both halves.
    Split(u32),
    /// Split the class into this many residue classes.
    Stride(u32),
    /// Not modelled: run the class's lengths one by one.
    Unsupported(String),
}

/// The lengths `n0 + stride * k`, `k` in `0..count`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Class {
    pub n0: u32,
    pub stride: u32,
    pub count: u32,
}

impl Class {
    pub fn length(&self, k: u32) -> u32 {
        self.n0 + self.stride * k
    }
    pub fn lengths(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.count).map(|k| self.length(k))
    }
    pub(crate) fn last(&self) -> i128 {
        i128::from(self.count - 1)
    }
    /// The class split before `k`.
    pub fn split(&self, k: u32) -> [Class; 2] {
        [
            Class { count: k, ..*self },
            Class {
                n0: self.length(k),
                count: self.count - k,
                ..*self
            },
        ]
    }
    /// The class split into `g` residue classes.
    pub fn residues(&self, g: u32) -> Vec<Class> {
        (0..g.min(self.count))
            .map(|j| Class {
                n0: self.length(j),
                // Past the class's end a residue class has one length.
                stride: self.stride.saturating_mul(g),
                count: (self.count - j).div_ceil(g),
            })
            .collect()
    }
}

/// For every `k` of the class, loop indices `lo(k)..hi(k)` (never empty).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Region {
    lo: Lin,
    hi: Lin,
    last: i128,
}

impl Region {
    /// The region of a run without a loop index.
    pub(crate) fn point(last: i128) -> Region {
        Region {
            lo: Lin::konst(0),
            hi: Lin::konst(1),
            last,
        }
    }
    fn corners(&self) -> [(i128, i128); 4] {
        let l = self.last;
        [
            (self.lo.at(0, 0), 0),
            (self.hi.at(0, 0) - 1, 0),
            (self.lo.at(0, l), l),
            (self.hi.at(0, l) - 1, l),
        ]
    }
    /// Smallest and largest value of `v` on the region.
    fn bounds(&self, v: Lin) -> (i128, i128) {
        let vals = self.corners().map(|(i, k)| v.at(i, k));
        (
            *vals.iter().min().expect("4"),
            *vals.iter().max().expect("4"),
        )
    }
    /// `v` as the unsigned `bits`-bit value the machine sees, exactly: the
    /// representative in `0..2^bits` on the whole region, if there is one.
    pub(crate) fn exact(&self, v: Lin, bits: u32) -> Result<Lin, Fail> {
        if v.is_const() {
            let m = if bits == 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            };
            return Ok(Lin::konst(v.value().expect("const") & m));
        }
        let modulus = 1i128 << bits;
        let (lo, hi) = self.bounds(v);
        let shift = lo.div_euclid(modulus) * modulus;
        if hi - shift >= modulus {
            return Err(Fail::Unsupported(format!(
                "a value wraps around {bits} bits within a class"
            )));
        }
        Ok(Lin {
            c: v.c - shift,
            ..v
        })
    }
}

/// Whether `f` (affine in `k` only) is positive, the same for every `k`
/// of `0..=last`; else where to split.
fn positive(f: Lin, last: i128) -> Result<bool, Fail> {
    debug_assert_eq!(f.i, 0);
    let p = |k: i128| f.at(0, k) > 0;
    let first = p(0);
    if p(last) == first {
        return Ok(first);
    }
    Err(Fail::Split(first_change(last, |k| p(k) != first)))
}

/// The smallest `k` in `1..=last` where the monotone `changed` holds.
fn first_change(last: i128, changed: impl Fn(i128) -> bool) -> u32 {
    let (mut a, mut b) = (1i128, last);
    while a < b {
        let mid = a + (b - a) / 2;
        if changed(mid) {
            b = mid;
        } else {
            a = mid + 1;
        }
    }
    a as u32
}

/// The region's indices below `t` and at or above it.
fn cut(r: Region, t: Lin) -> Result<(Option<Region>, Option<Region>), Fail> {
    let t_above_lo = positive(t.minus(r.lo)?, r.last)?;
    let hi_above_t = positive(r.hi.minus(t)?, r.last)?;
    let below = t_above_lo.then_some(Region {
        hi: if hi_above_t { t } else { r.hi },
        ..r
    });
    let above = hi_above_t.then_some(Region {
        lo: if t_above_lo { t } else { r.lo },
        ..r
    });
    Ok((below, above))
}

/// The parts of `r` where `x cond y` has one outcome each.
pub(crate) fn decide(
    cond: Cond,
    wide: bool,
    x: Lin,
    y: Lin,
    r: Region,
) -> Result<Vec<(Region, bool)>, Fail> {
    if let (Some(a), Some(b)) = (x.value(), y.value()) {
        return Ok(vec![(r, isa::holds(cond, wide, a, b))]);
    }
    let bits = if wide { 64 } else { 32 };
    let (x, y) = (r.exact(x, bits)?, r.exact(y, bits)?);
    let holds = |d: i128| match cond {
        Cond::Eq => Some(d == 0),
        Cond::Ne => Some(d != 0),
        Cond::Gt => Some(d > 0),
        Cond::Ge => Some(d >= 0),
        Cond::Lt => Some(d < 0),
        Cond::Le => Some(d <= 0),
        _ => None,
    };
    if holds(0).is_none() {
        return Err(Fail::Unsupported(format!(
            "{cond:?} comparison on a symbol"
        )));
    }
    let mut d = x.minus(y)?;
    let signs = r.corners().map(|(i, k)| d.at(i, k).signum());
    let truths = signs.map(|s| holds(s).expect("checked"));
    // `d` is affine and the region convex: the sets where `d > 0`, `d >= 0`
    // (and so on) are convex, so one outcome at every corner is one outcome
    // everywhere; `d != 0` is not convex, so (in)equality needs one sign.
    let uniform = if matches!(cond, Cond::Eq | Cond::Ne) {
        signs.iter().all(|&s| s == signs[0])
    } else {
        truths.iter().all(|&t| t == truths[0])
    };
    if uniform {
        return Ok(vec![(r, truths[0])]);
    }
    if d.i != 0 && r.hi.minus(r.lo)? == Lin::konst(1) {
        // One index per length: it is lo(k), and `d` affine in `k` alone.
        d = Lin { i: 0, ..d }.plus(r.lo.scale(d.i)?)?;
    }
    if d.i == 0 {
        let s0 = d.at(0, 0).signum();
        return Err(Fail::Split(first_change(r.last, |k| {
            d.at(0, k).signum() != s0
        })));
    }
    // d = sign * (i - z(k)): below z, at z, above z.
    let (sign, z) = match d.i {
        1 => (1, Lin { i: 0, ..d }.scale(-1)?),
        -1 => (-1, Lin { i: 0, ..d }),
        _ => {
            return Err(Fail::Unsupported(
                "a comparison with a slope other than 1 in the loop index".into(),
            ))
        }
    };
    let z1 = z.plus(Lin::konst(1))?;
    let (below, rest) = cut(r, z)?;
    let (at, above) = match rest {
        Some(rest) => cut(rest, z1)?,
        None => (None, None),
    };
    let mut parts: Vec<(Region, bool)> = Vec::new();
    for (part, s) in [(below, -sign), (at, 0), (above, sign)] {
        let Some(part) = part else { continue };
        let h = holds(s as i128).expect("checked");
        match parts.last_mut() {
            Some((prev, ph)) if *ph == h => prev.hi = part.hi,
            _ => parts.push((part, h)),
        }
    }
    Ok(parts)
}

/// Symbolic arithmetic; `d` is `None` for a move.
fn alu(op: Alu, wide: bool, d: Option<Lin>, s: Lin, off: i16, r: &Region) -> Result<Lin, Fail> {
    if op == Alu::Mov && off == 0 {
        return if wide { Ok(s) } else { r.exact(s, 32) };
    }
    let d = d.unwrap_or(Lin::konst(0));
    if let (Some(a), Some(b)) = (d.value(), s.value()) {
        return Ok(Lin::konst(isa::alu(op, wide, a, b, off, false)));
    }
    let unsupported = || Fail::Unsupported(format!("{op:?} on a symbol"));
    if !wide {
        return Err(unsupported());
    }
    let amount = s.value().filter(|&v| v < 64);
    match op {
        Alu::Add => d.plus(s),
        Alu::Sub => d.minus(s),
        Alu::Lsh => d.scale(1i64 << amount.ok_or_else(unsupported)?),
        Alu::Mul => d.scale(s.value().filter(|&v| v < 1 << 31).ok_or_else(unsupported)? as i64),
        Alu::Rsh => {
            // Shifts by 32 or more are not needed by any walk (and keep the
            // divisor below positive in an i64).
            let sh = amount.filter(|&v| v < 32).ok_or_else(unsupported)?;
            let d = r.exact(d, 64)?;
            let div = 1i64 << sh;
            if d.i % div == 0 && d.k % div == 0 {
                Ok(Lin {
                    i: d.i / div,
                    k: d.k / div,
                    c: d.c.div_euclid(i128::from(div)),
                }
                .tidy())
            } else if d.i == 0 {
                // Residue classes of a stride making the slope a multiple.
                let g = div / gcd(d.k.unsigned_abs(), div as u64) as i64;
                Err(Fail::Stride(u32::try_from(g).unwrap_or(u32::MAX)))
            } else {
                Err(unsupported())
            }
        }
        Alu::And => {
            // `x & mask` with `mask < 2^t` depends only on `x mod 2^t`,
            // the same for every `k` when `2^t` divides the slope of `x`;
            // otherwise residue classes of a stride on which it does.
            let mask = s.value().filter(|&m| m < 1 << 30).ok_or_else(unsupported)?;
            let d = r.exact(d, 64)?;
            if d.i != 0 {
                return Err(unsupported());
            }
            let modulus = 1i64 << (64 - mask.leading_zeros());
            if d.k % modulus == 0 {
                Ok(Lin::konst(
                    d.c.rem_euclid(i128::from(modulus)) as u64 & mask,
                ))
            } else {
                let g = modulus / gcd(d.k.unsigned_abs(), modulus as u64) as i64;
                Err(Fail::Stride(u32::try_from(g).unwrap_or(u32::MAX)))
            }
        }
        _ => Err(unsupported()),
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Memory as the symbolic run sees it: the interpreter's bytes, under
/// exact symbolic words.
pub(crate) struct Mem<'v, 'o> {
    pub(crate) vm: &'v mut Vm<'o>,
    /// (address, width, value): a symbolic word stored there.
    pub(crate) words: Vec<(u64, u8, Lin)>,
}

impl Mem<'_, '_> {
    pub(crate) fn load(&self, addr: u64, width: u8) -> Result<Lin, Fail> {
        let end = addr + u64::from(width);
        for &(a, w, v) in &self.words {
            if a < end && addr < a + u64::from(w) {
                return if a == addr && w == width {
                    Ok(v)
                } else {
                    Err(Fail::Unsupported(
                        "a load overlapping a symbolic word".into(),
                    ))
                };
            }
        }
        self.vm
            .peek_u64(addr, width as usize)
            .map(Lin::konst)
            .map_err(Fail::Unsupported)
    }
    fn store(&mut self, addr: u64, width: u8, v: Lin, r: &Region) -> Result<(), Fail> {
        if crate::stream::in_flow_value(addr, width) {
            // A stream pass stores its machines' registers back into the
            // flow's value: constants (tokens, initial states) only.
            let c = v
                .value()
                .ok_or_else(|| Fail::Unsupported("a symbolic store into the flow value".into()))?;
            return self
                .vm
                .poke(addr, &c.to_le_bytes()[..width as usize])
                .map_err(Fail::Unsupported);
        }
        if !(vm::STACK_BASE..vm::SCRATCH_BASE).contains(&addr) {
            return Err(Fail::Unsupported(format!("a store at {addr:#x}")));
        }
        let end = addr + u64::from(width);
        if self
            .words
            .iter()
            .any(|&(a, w, _)| a < end && addr < a + u64::from(w) && (a, w) != (addr, width))
        {
            return Err(Fail::Unsupported(
                "a store overlapping a symbolic word".into(),
            ));
        }
        self.words.retain(|&(a, _, _)| a != addr);
        let v = r.exact(v, 8 * u32::from(width))?;
        match v.value() {
            Some(c) => self
                .vm
                .poke(addr, &c.to_le_bytes()[..width as usize])
                .map_err(Fail::Unsupported),
            None => {
                self.words.push((addr, width, v));
                Ok(())
            }
        }
    }
}

/// Where the entry's symbolic run stopped.
enum EntryStop {
    Loop { slot: usize, args: [Lin; 5] },
    At(usize),
}

pub(crate) const BUDGET: u64 = 5_000_000;

/// Runs the entry from `pc` until a `bpf_loop` call or one of `stops`.
fn run_entry(
    mem: &mut Mem<'_, '_>,
    object: &Object,
    mut pc: usize,
    regs: &mut [Option<Lin>; 11],
    stops: &[usize],
    last: i128,
) -> Result<EntryStop, Fail> {
    let r = Region::point(last);
    let insns = &object.entry.insns;
    for _ in 0..BUDGET {
        if stops.contains(&pc) {
            return Ok(EntryStop::At(pc));
        }
        let insn = *insns
            .get(pc)
            .ok_or_else(|| Fail::Unsupported("runs off the entry".into()))?;
        match insn {
            Insn::Call { src: 0, imm } if imm == vm::helper::LOOP => {
                // bpf_loop takes four arguments; r5 may hold anything.
                let mut args = [Lin::konst(0); 5];
                for (a, reg) in args.iter_mut().zip(1..=4) {
                    *a = get(regs, reg)?;
                }
                return Ok(EntryStop::Loop { slot: pc, args });
            }
            Insn::Jump {
                wide,
                cond: Some(cond),
                dst,
                src,
                off,
            } => {
                let parts = decide(cond, wide, get(regs, dst)?, operand(regs, src)?, r)?;
                let taken = parts.first().is_some_and(|p| p.1);
                pc = if taken {
                    (pc as i64 + 1 + i64::from(off)) as usize
                } else {
                    pc + 1
                };
                continue;
            }
            Insn::Exit => return Err(Fail::Unsupported("the entry exits".into())),
            other => {
                if let Some(next) = straight(mem, other, pc, regs, None, &r, object)? {
                    pc = next;
                    continue;
                }
            }
        }
        pc += 1;
    }
    Err(Fail::Unsupported("the entry runs past its budget".into()))
}

pub(crate) fn get(regs: &[Option<Lin>; 11], r: u8) -> Result<Lin, Fail> {
    regs[r as usize].ok_or_else(|| Fail::Unsupported(format!("r{r} holds no value")))
}

pub(crate) fn operand(regs: &[Option<Lin>; 11], o: Operand) -> Result<Lin, Fail> {
    match o {
        Operand::Reg(r) => get(regs, r),
        Operand::Imm(i) => Ok(Lin::konst(i as i64 as u64)),
    }
}

/// One non-branching instruction; `Some(pc)` for an unconditional jump.
/// `origin` tracks where registers were loaded from in the callback: it
/// is `Some` in a callback and `None` in the entry.
pub(crate) fn straight(
    mem: &mut Mem<'_, '_>,
    insn: Insn,
    pc: usize,
    regs: &mut [Option<Lin>; 11],
    origin: Option<&mut [Option<u64>; 11]>,
    r: &Region,
    object: &Object,
) -> Result<Option<usize>, Fail> {
    // Origins are tracked in callbacks only.
    let in_entry = origin.is_none();
    match insn {
        Insn::Alu {
            wide,
            op,
            dst,
            src,
            off,
            to_be,
        } => {
            let s = operand(regs, src)?;
            let d = if op == Alu::Mov {
                None
            } else {
                Some(get(regs, dst)?)
            };
            let v = if to_be || op == Alu::End {
                match (d.and_then(Lin::value), s.value()) {
                    (Some(a), Some(b)) => Lin::konst(isa::alu(op, wide, a, b, off, to_be)),
                    _ => return Err(Fail::Unsupported("a byte swap of a symbol".into())),
                }
            } else {
                alu(op, wide, d, s, off, r)?
            };
            regs[dst as usize] = Some(v);
            if let Some(origin) = origin {
                origin[dst as usize] = match (op, src) {
                    (Alu::Mov, Operand::Reg(s)) if off == 0 => origin[s as usize],
                    _ => None,
                };
            }
        }
        Insn::Load {
            width,
            dst,
            src,
            off,
            signed,
        } => {
            let base = get(regs, src)?
                .value()
                .ok_or_else(|| Fail::Unsupported("a load at a symbolic address".into()))?;
            if signed {
                return Err(Fail::Unsupported("a sign-extending load".into()));
            }
            let addr = base.wrapping_add(off as i64 as u64);
            regs[dst as usize] = Some(mem.load(addr, width)?);
            if let Some(origin) = origin {
                origin[dst as usize] = (in_entry_stack(addr) && width == 4).then_some(addr);
            }
        }
        Insn::Store {
            width,
            dst,
            off,
            src,
        } => {
            let base = get(regs, dst)?
                .value()
                .ok_or_else(|| Fail::Unsupported("a store at a symbolic address".into()))?;
            let v = operand(regs, src)?;
            mem.store(base.wrapping_add(off as i64 as u64), width, v, r)?;
        }
        Insn::Jump {
            cond: None, off, ..
        } => return Ok(Some((pc as i64 + 1 + i64::from(off)) as usize)),
        Insn::LoadImm64 {
            dst,
            src,
            value,
            imm,
            ..
        } => {
            let v = match src {
                0 => value,
                PSEUDO_FUNC => {
                    let index = object
                        .text_offsets
                        .iter()
                        .position(|&o| o as i64 == i64::from(imm))
                        .ok_or_else(|| Fail::Unsupported("ld_func to no function".into()))?;
                    vm::FUNC_BASE + index as u64
                }
                // The address of a table in `.rodata` (a table-driven
                // pass's setup): a constant, resolved as the interpreter
                // does; only the entry's relocated loads have one.
                crate::rodata::PSEUDO_MAP_VALUE if in_entry => {
                    crate::rodata::address(object, vm::Func::Entry, pc, imm)
                        .map_err(Fail::Unsupported)?
                }
                _ => return Err(Fail::Unsupported("a map reference".into())),
            };
            regs[dst as usize] = Some(Lin::konst(v));
            if let Some(origin) = origin {
                origin[dst as usize] = None;
            }
            return Ok(Some(pc + 2)); // the second slot holds the upper half
        }
        other => return Err(Fail::Unsupported(format!("{other:?}"))),
    }
    Ok(None)
}

/// A path of the callback over a region.
struct SymLeaf {
    region: Region,
    r0: u64,
    /// (machine, first slot, frame offset of the byte read).
    visits: Vec<(usize, usize, Lin)>,
    firsts: Vec<(usize, u8, Option<u64>)>,
}

/// What a pass's class run needs.
pub(crate) struct PassInputs<'a> {
    pub program: &'a Program,
    pub object: &'a Object,
    pub p: usize,
    pub pass: &'a PassMap,
    pub setup: &'a Snapshot,
    pub r10: u64,
    pub payload_len: i16,
    pub payload_start: u64,
    pub after: usize,
    pub final_states: &'a [i16],
    pub ranges: &'a [Option<(usize, usize)>],
    pub step_checked: &'a [bool],
}

/// The window's length on the class, affine in `k` (split at the window's
/// start and end, where it is not).
fn window_len(inp: &PassInputs<'_>, class: &Class) -> Result<Lin, Fail> {
    let w = inp.pass.window;
    let piece = |n: u32| {
        if n <= w.start {
            0
        } else if w.end.is_none_or(|e| n <= e) {
            1
        } else {
            2
        }
    };
    let first = piece(class.n0);
    if piece(class.length(class.count - 1)) != first {
        return Err(Fail::Split(first_change(class.last(), |k| {
            piece(class.length(k as u32)) != first
        })));
    }
    Ok(match first {
        0 => Lin::konst(0),
        1 => Lin {
            i: 0,
            k: i64::from(class.stride),
            c: i128::from(class.n0) - i128::from(w.start),
        },
        _ => Lin::konst(u64::from(w.end.expect("piece 2 is bounded") - w.start)),
    })
}

/// Proves the walk for every length of `class`, or says why not.
pub(crate) fn check_class(inp: &PassInputs<'_>, vm: &mut Vm<'_>, class: Class) -> Result<(), Fail> {
    let last = class.last();
    let wl = window_len(inp, &class)?;
    let regs_now = vm.restore_stacks(inp.setup);
    let mut regs: [Option<Lin>; 11] = [None; 11];
    for (r, slot) in regs.iter_mut().enumerate() {
        *slot = regs_now.get(r as u8).map(Lin::konst);
    }
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
    let stop = run_entry(
        &mut mem,
        inp.object,
        inp.pass.setup_start,
        &mut regs,
        &[inp.after],
        last,
    )?;
    let unsupported = |what: &str| Fail::Unsupported(what.into());
    let ended_at = match stop {
        EntryStop::At(at) => {
            if wl != Lin::konst(0) {
                return Err(unsupported("the window is not empty but no loop runs"));
            }
            at
        }
        EntryStop::Loop { slot, args } => {
            let [nr, cb, ctx, flags, _] = args;
            let (Some(cb), Some(ctx), Some(0)) = (cb.value(), ctx.value(), flags.value()) else {
                return Err(unsupported("bpf_loop's arguments"));
            };
            if mem.vm.callback_of(cb) != Some(inp.p) {
                return Err(unsupported("bpf_loop's callback"));
            }
            let nr = point.exact(nr, 32)?;
            let runs = positive(nr, last)?;
            if wl == Lin::konst(0) && runs {
                return Err(unsupported("the window is empty but the loop runs"));
            }
            let pre_words = mem.words.clone();
            let pre_bytes = mem.vm.clone_stack_bytes(0);
            let mut writes = Vec::new();
            let mut leaves = if runs {
                let region = Region {
                    lo: Lin::konst(0),
                    hi: nr,
                    last,
                };
                run_callback(&mut mem, inp, ctx, region, &mut writes)?
            } else {
                Vec::new()
            };
            if wl != Lin::konst(0) {
                check_homes(inp, &leaves, &writes, &pre_words, &pre_bytes)?;
            }
            for leaf in &leaves {
                if let Some(v) = leaf.visits.iter().find(|v| !inp.step_checked[v.1]) {
                    return Err(Fail::Unsupported(format!(
                        "the step at slot {} was not set up",
                        v.1
                    )));
                }
            }
            // The regions' order must be the same at both ends of the class.
            leaves.sort_by_key(|l| l.region.lo.at(0, 0));
            if !leaves
                .windows(2)
                .all(|w| w[0].region.lo.at(0, last) < w[1].region.lo.at(0, last))
            {
                return Err(unsupported("the regions' order changes within the class"));
            }
            let data = mem
                .vm
                .packet_data()
                .ok_or_else(|| unsupported("no packet"))?;
            let first = inp.payload_start + u64::from(inp.pass.window.start);
            for k in [0, last] {
                let concrete = leaves
                    .iter()
                    .map(|l| concrete_leaf(l, k, data))
                    .collect::<Result<Vec<_>, _>>()?;
                let len = wl.at(0, k);
                cover(&concrete, inp.pass, first, len as u64).map_err(Fail::Unsupported)?;
            }
            regs[1..=5].fill(None);
            regs[0] = Some(nr);
            match run_entry(
                &mut mem,
                inp.object,
                slot + 1,
                &mut regs,
                &[inp.after],
                last,
            )? {
                EntryStop::At(at) => at,
                EntryStop::Loop { .. } => return Err(unsupported("a second loop")),
            }
        }
    };
    if ended_at != inp.after {
        return Err(unsupported("the entry continues elsewhere"));
    }
    for (m, mm) in inp.pass.machines.iter().enumerate() {
        let machine = &inp.program.scans[mm.scan].machine;
        let want = if wl == Lin::konst(0) {
            final_value(machine, &mm.encoding, Machine::INITIAL)
        } else {
            let reg = match mm.encoding {
                StateEncoding::Dfa { reg, .. } => reg,
                StateEncoding::Depth { mode_reg, .. } => mode_reg,
            };
            token(m, reg)
        };
        let off = *inp
            .final_states
            .get(mm.scan)
            .ok_or_else(|| unsupported("no final state slot"))?;
        let got = mem.load(inp.r10.wrapping_add(off as i64 as u64), 8)?;
        if got.value() != Some(want) {
            return Err(unsupported("a final state differs"));
        }
    }
    Ok(())
}

fn concrete_leaf(l: &SymLeaf, k: i128, data: u64) -> Result<Leaf, Fail> {
    let lo = l.region.lo.at(0, k);
    let hi = l.region.hi.at(0, k);
    let visits = l
        .visits
        .iter()
        .map(|&(machine, start, addr)| {
            let b = addr.at(0, k) - i128::from(data);
            u64::try_from(b)
                .map(|b| Visit {
                    machine,
                    start,
                    addr: Sym { a: addr.i, b },
                })
                .map_err(|_| Fail::Unsupported("a byte before the packet".into()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Leaf {
        lo: lo as u64,
        hi: hi as u64,
        r0: l.r0,
        visits,
        firsts: l.firsts.clone(),
    })
}

/// Each machine register travels between iterations through one stack
/// word, which holds the initial state before the loop (as
/// `super::check_pass` checks per length).
fn check_homes(
    inp: &PassInputs<'_>,
    leaves: &[SymLeaf],
    writes: &[(u64, u8, Lin)],
    pre_words: &[(u64, u8, Lin)],
    pre_bytes: &[u8],
) -> Result<(), Fail> {
    for (machine, mm) in inp.pass.machines.iter().enumerate() {
        if !leaves
            .iter()
            .any(|l| l.visits.iter().any(|v| v.0 == machine))
        {
            continue;
        }
        for reg in machine_regs(&mm.encoding) {
            let want_token = Lin::konst(u64::from(token(machine, reg) as u32));
            let home = writes
                .iter()
                .rev()
                .find(|w| w.1 == 4 && w.2 == want_token)
                .map(|w| w.0)
                .ok_or_else(|| Fail::Unsupported("a register never stored back".into()))?;
            for l in leaves {
                if let Some(&(_, _, origin)) =
                    l.firsts.iter().find(|f| f.0 == machine && f.1 == reg)
                {
                    if origin != Some(home) {
                        return Err(Fail::Unsupported("a state register from elsewhere".into()));
                    }
                }
            }
            let before = if let Some(w) = pre_words.iter().find(|w| w.0 == home) {
                w.2.value()
            } else {
                let at = (home - vm::STACK_BASE) as usize;
                pre_bytes
                    .get(at..at + 4)
                    .map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            };
            let mut init = Regs::default();
            crate::step::encode(
                &inp.program.scans[mm.scan].machine,
                &mm.encoding,
                Machine::INITIAL,
                &mut init,
            );
            if before != init.get(reg).map(|v| v & 0xffff_ffff) {
                return Err(Fail::Unsupported(
                    "a machine does not start in its initial state".into(),
                ));
            }
        }
    }
    Ok(())
}

/// The callback over `region`, path by path.
fn run_callback(
    mem: &mut Mem<'_, '_>,
    inp: &PassInputs<'_>,
    ctx: u64,
    region: Region,
    writes: &mut Vec<(u64, u8, Lin)>,
) -> Result<Vec<SymLeaf>, Fail> {
    struct Path {
        region: Region,
        pc: usize,
        regs: [Option<Lin>; 11],
        origin: [Option<u64>; 11],
        seen: u64,
        visits: Vec<(usize, usize, Lin)>,
        firsts: Vec<(usize, u8, Option<u64>)>,
    }
    let callback: &Function = &inp.object.callbacks[inp.p];
    let machines: &[MachineMap] = &inp.pass.machines;
    let r10 = mem.vm.reset_stack(1);
    let mut regs: [Option<Lin>; 11] = [None; 11];
    regs[1] = Some(Lin { i: 1, k: 0, c: 0 });
    regs[2] = Some(Lin::konst(ctx));
    regs[3] = Some(Lin::konst(0));
    regs[4] = Some(Lin::konst(0));
    regs[5] = Some(Lin::konst(0));
    regs[10] = Some(Lin::konst(r10));
    let mut work = vec![Path {
        region,
        pc: 0,
        regs,
        origin: [None; 11],
        seen: 0,
        visits: Vec::new(),
        firsts: Vec::new(),
    }];
    let mut leaves = Vec::new();
    let mut steps = 0u64;
    while let Some(mut path) = work.pop() {
        loop {
            steps += 1;
            if steps > BUDGET {
                return Err(Fail::Unsupported(
                    "the callback runs past its budget".into(),
                ));
            }
            let pc = path.pc;
            if let Some(&Some((end, machine))) = inp.ranges.get(pc) {
                // A step: record the byte it reads; its meaning is the step check's.
                let Some(&Insn::Load {
                    width: 1, src, off, ..
                }) = callback.insns.get(pc)
                else {
                    return Err(Fail::Unsupported("a step not loading its byte".into()));
                };
                let base = get(&path.regs, src)?;
                let addr = path
                    .region
                    .exact(base.plus(Lin::konst(off as i64 as u64))?, 64)?;
                let first = if machine < 64 {
                    path.seen & (1 << machine) == 0
                } else {
                    !path.visits.iter().any(|v| v.0 == machine)
                };
                if machine < 64 {
                    path.seen |= 1 << machine;
                }
                for reg in machine_regs(&machines[machine].encoding) {
                    if first {
                        path.firsts.push((machine, reg, path.origin[reg as usize]));
                    }
                    path.origin[reg as usize] = None;
                    path.regs[reg as usize] = Some(Lin::konst(token(machine, reg)));
                }
                path.origin[8] = None;
                path.regs[8] = None;
                path.visits.push((machine, pc, addr));
                path.pc = end;
                continue;
            }
            let insn = *callback
                .insns
                .get(pc)
                .ok_or_else(|| Fail::Unsupported("runs off the callback".into()))?;
            match insn {
                Insn::Jump {
                    wide,
                    cond: Some(cond),
                    dst,
                    src,
                    off,
                } => {
                    let x = get(&path.regs, dst)?;
                    let y = operand(&path.regs, src)?;
                    let target = (pc as i64 + 1 + i64::from(off)) as usize;
                    let mut parts = decide(cond, wide, x, y, path.region)?.into_iter();
                    let (first, taken) = parts.next().expect("a region is never empty");
                    for (part, t) in parts {
                        work.push(Path {
                            region: part,
                            pc: if t { target } else { pc + 1 },
                            regs: path.regs,
                            origin: path.origin,
                            seen: path.seen,
                            visits: path.visits.clone(),
                            firsts: path.firsts.clone(),
                        });
                    }
                    path.region = first;
                    path.pc = if taken { target } else { pc + 1 };
                    continue;
                }
                Insn::Exit => {
                    let r0 = get(&path.regs, 0)?
                        .value()
                        .ok_or_else(|| Fail::Unsupported("a symbolic return".into()))?;
                    leaves.push(SymLeaf {
                        region: path.region,
                        r0,
                        visits: std::mem::take(&mut path.visits),
                        firsts: std::mem::take(&mut path.firsts),
                    });
                    break;
                }
                Insn::Call { .. } => {
                    return Err(Fail::Unsupported("a helper call in the callback".into()))
                }
                Insn::Store {
                    width,
                    dst,
                    off,
                    src,
                } => {
                    let base = get(&path.regs, dst)?
                        .value()
                        .ok_or_else(|| Fail::Unsupported("a symbolic store address".into()))?;
                    let addr = base.wrapping_add(off as i64 as u64);
                    let v = operand(&path.regs, src)?;
                    mem.store(addr, width, v, &path.region)?;
                    if in_entry_stack(addr) {
                        writes.push((addr, width, path.region.exact(v, 8 * u32::from(width))?));
                    }
                }
                other => {
                    if let Some(next) = straight(
                        mem,
                        other,
                        pc,
                        &mut path.regs,
                        Some(&mut path.origin),
                        &path.region,
                        inp.object,
                    )? {
                        path.pc = next;
                        continue;
                    }
                }
            }
            path.pc += 1;
        }
    }
    Ok(leaves)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lin(i: i64, k: i64, c: i128) -> Lin {
        Lin { i, k, c }.tidy()
    }

    /// Every split `decide` makes, checked point by point on small regions:
    /// the parts cover the region exactly once, each with the comparison's
    /// outcome at every point.
    #[test]
    fn decide_splits_exactly_where_the_outcome_changes() {
        let conds = [Cond::Eq, Cond::Ne, Cond::Gt, Cond::Ge, Cond::Lt, Cond::Le];
        let mut checked = 0;
        for last in [0i128, 1, 4] {
            for (lo, hi) in [
                (lin(0, 0, 0), lin(0, 0, 6)),
                (lin(0, 1, 0), lin(0, 2, 3)),
                (lin(0, 0, 2), lin(0, 1, 3)),
            ] {
                let r = Region { lo, hi, last };
                for xi in [-1i64, 0, 1] {
                    for yk in [-1i64, 0, 1, 2] {
                        for c in [0i128, 1, 3, 5] {
                            let x = lin(xi, 0, 10 + c);
                            let y = lin(0, yk, 10);
                            for cond in conds {
                                match decide(cond, true, x, y, r) {
                                    Ok(parts) => {
                                        for k in 0..=last {
                                            for i in lo.at(0, k)..hi.at(0, k) {
                                                let inside: Vec<bool> = parts
                                                    .iter()
                                                    .filter(|(p, _)| {
                                                        (p.lo.at(0, k)..p.hi.at(0, k)).contains(&i)
                                                    })
                                                    .map(|p| p.1)
                                                    .collect();
                                                let (a, b) = (x.at(i, k), y.at(i, k));
                                                let want =
                                                    isa::holds(cond, true, a as u64, b as u64);
                                                assert_eq!(
                                                    inside,
                                                    vec![want],
                                                    "{cond:?} {x:?} {y:?} at ({i}, {k})"
                                                );
                                                checked += 1;
                                            }
                                        }
                                    }
                                    Err(Fail::Split(k)) => {
                                        assert!(k >= 1 && i128::from(k) <= last, "{k}");
                                    }
                                    Err(other) => panic!("{other:?}"),
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 1000, "{checked}");
    }

    /// A shift right is exact on a class whose slope it divides, and asks
    /// for residue classes otherwise.
    #[test]
    fn shifts_right_are_exact_or_ask_for_residues() {
        let r = Region::point(100);
        let v = lin(0, 64, 5);
        let q = alu(Alu::Rsh, true, Some(v), Lin::konst(6), 0, &r).unwrap();
        for k in 0..=100 {
            assert_eq!(q.at(0, k), v.at(0, k) >> 6);
        }
        match alu(Alu::Rsh, true, Some(lin(0, 1, 0)), Lin::konst(3), 0, &r) {
            Err(Fail::Stride(8)) => {}
            other => panic!("{other:?}"),
        }
        let c = Class {
            n0: 3,
            stride: 1,
            count: 20,
        };
        let mut all: Vec<u32> = c
            .residues(8)
            .iter()
            .flat_map(|r| r.lengths().collect::<Vec<_>>())
            .collect();
        all.sort_unstable();
        assert_eq!(all, c.lengths().collect::<Vec<_>>());
        let [a, b] = c.split(7);
        let joined: Vec<u32> = a.lengths().chain(b.lengths()).collect();
        assert_eq!(joined, c.lengths().collect::<Vec<_>>());
    }
}
