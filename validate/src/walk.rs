//! The walk check: for every payload length 0..=65,535, each pass's walk
//! visits each position of its window exactly once and in order, for every
//! machine, and the final states the formula reads are the ones the last
//! step left.
//!
//! The pass's setup is captured once, from a run of the whole program on
//! the longest payload an IPv4 frame can carry; every length then starts
//! from that capture with the payload length slot set to it. From there the
//! entry runs up to its `bpf_loop` call, and the callback runs once per
//! *interval* of loop indices instead of once per index: the index is a
//! symbol, every comparison involving it is decided for the whole interval
//! or splits the interval exactly where its outcome changes, so each
//! interval follows one path through the callback. A machine step range
//! is not executed: its first memory load is recorded (it must be a packet
//! byte; its address is affine in the index) and the machine's state
//! registers are set to a token (never a sink, never a state), which the
//! callback must store back into the context. Coverage is then checked by
//! arithmetic on the intervals: per machine, the positions of one index
//! are consecutive, start where the previous index stopped, and the
//! interval advances by its chunk length; at the end every machine has
//! read exactly the window. Then the entry runs on to the next pass or the
//! formula, and each scan's final-state slot must hold the token (or the
//! initial state, for an empty window). The step ranges' meaning is the
//! step check's.
//!
//! Lengths are covered in one of two ways ([`Mode`]):
//!
//! - **By classes** (the default, `walk/classes.rs`): the length is a symbol
//!   too. A class of lengths `n0 + stride * k` is proven by one symbolic
//!   run, with the argument written in that module; the emitted tiers cost
//!   about 64 to 130 classes per pass instead of 65,536 runs. A class the
//!   symbolic run cannot model (a code shape it does not know) falls back
//!   to one run per length, so a class is never accepted on weaker grounds
//!   than its lengths would be; with `LAGIC_DEBUG_WALK` set, each fallback
//!   prints why on standard error (for whoever adds a code shape).
//! - **One by one** ([`Mode::OneByOne`]): each length is run concretely,
//!   as above, with the callback's analysis reused while every word it
//!   read is unchanged. This is the reference the classes are tested
//!   against (`tests/walk_classes.rs`), and how the lengths no frame of at
//!   most 65,535 bytes carries (65,482 and up) are always run: for them a
//!   failing pass (a drop) is also accepted.

use emit_bpf::codemap::{CodeMap, PassMap, StateEncoding};
use predicate_ir::{Machine, Program};

use crate::frame;
use crate::isa::{self, Alu, Cond, Insn, Operand};
use crate::object::Object;
use crate::vm::{self, Func, Regs, Skb, Stop, Vm};
use crate::ValidationError;

pub(crate) mod classes;

/// Longest TCP payload of a frame of at most 65,535 bytes (IPv4, no options).
pub const MAX_PAYLOAD: u32 = 65_535 - frame::HEADERS as u32;
/// Highest payload length checked.
pub const MAX_LEN: u32 = 65_535;

/// An affine value `a * idx + b` (`a` = 0: a constant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sym {
    a: i64,
    b: u64,
}

impl Sym {
    fn konst(b: u64) -> Sym {
        Sym { a: 0, b }
    }
    fn at(self, idx: u64) -> i128 {
        i128::from(self.a) * i128::from(idx) + i128::from(self.b)
    }
}

#[derive(Debug, Clone)]
struct Path {
    lo: u64,
    hi: u64,
    pc: usize,
    regs: [Option<Sym>; 11],
    /// Where each register's value was loaded from (an entry-stack
    /// address), if it was loaded and not changed since.
    origin: [Option<u64>; 11],
    /// Machines stepped on this path so far (bit per machine index).
    seen: u64,
}

/// One machine step reached on an interval of indices.
#[derive(Debug, Clone, Copy)]
struct Visit {
    machine: usize,
    /// The step's first slot.
    start: usize,
    /// Frame offset (from `data`) of the byte read, affine in the index.
    addr: Sym,
}

#[derive(Debug, Clone)]
struct Leaf {
    lo: u64,
    hi: u64,
    r0: u64,
    visits: Vec<Visit>,
    /// Per machine's first step on this path: (machine, register, the
    /// entry-stack address the register was loaded from, if it was).
    firsts: Vec<(usize, u8, Option<u64>)>,
}

/// What one run of the callback read from and wrote to the entry's stack.
#[derive(Debug, Default)]
struct Effects {
    reads: Vec<(u64, usize, u64)>,
    writes: Vec<(u64, Vec<u8>)>,
}

/// A callback analysis kept for the next length.
struct Memo {
    nr: u64,
    ctx: u64,
    reads: Vec<(u64, usize, u64)>,
    writes: Vec<(u64, Vec<u8>)>,
    /// (machine, register, where the callback stores it back).
    homes: Vec<(usize, u8, Option<u64>)>,
    leaves: Vec<Leaf>,
}

/// The registers of a machine's state (no allocation: this runs per step).
fn machine_regs(enc: &StateEncoding) -> impl Iterator<Item = u8> {
    let (regs, n) = match *enc {
        StateEncoding::Dfa { reg, .. } => ([reg, 0], 1),
        StateEncoding::Depth {
            depth_reg,
            mode_reg,
            ..
        } => ([depth_reg, mode_reg], 2),
    };
    regs.into_iter().take(n)
}

/// Whether `addr` lies in the entry's stack frame (depth 0).
fn in_entry_stack(addr: u64) -> bool {
    (vm::STACK_BASE..vm::STACK_BASE + vm::STACK_SIZE as u64).contains(&addr)
}

fn token(machine: usize, reg: u8) -> u64 {
    0x5a5a_0000 | ((machine as u64) << 4) | u64::from(reg)
}

/// The value a scan's final-state spill holds for IR state `s`.
pub fn final_value(machine: &Machine, enc: &StateEncoding, s: u32) -> u64 {
    match (machine, enc) {
        (Machine::Depth(c), StateEncoding::Depth { modes, .. }) => {
            let m = c.decode(s).map_or(3, |(_, m)| m as usize);
            modes[m] as u64
        }
        (_, StateEncoding::Dfa { scale, .. }) => u64::from(s) * u64::from(*scale),
        _ => u64::from(s),
    }
}

/// How the walk check covers the payload lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Classes of lengths, one symbolic run each (`walk/classes.rs`), falling
    /// back to one run per length where the symbolic run does not apply.
    Classes,
    /// One run per length (the reference the classes are tested against).
    OneByOne,
}

/// What the walk check did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Payload lengths covered, summed over passes.
    pub lengths: u64,
    /// Classes proven by one symbolic run each.
    pub classes: u64,
    /// Lengths run one by one (no frame carries them, or no class run applied).
    pub one_by_one: u64,
    /// Stream diodes: stream offsets below the tail that the walk check
    /// did not run (windows ending past `stream::walk::MAX_TAIL_START`);
    /// 0 when every offset was run.
    pub offsets_unchecked: u64,
}

/// Runs the walk check on every pass, for payload lengths `lengths`, by
/// classes of lengths.
pub fn check(
    program: &Program,
    object: &Object,
    map: &CodeMap,
    lengths: std::ops::RangeInclusive<u32>,
    checked_steps: &[Vec<usize>],
) -> Result<Stats, ValidationError> {
    check_with(program, object, map, lengths, checked_steps, Mode::Classes)
}

/// [`check`] in the given mode.
pub fn check_with(
    program: &Program,
    object: &Object,
    map: &CodeMap,
    lengths: std::ops::RangeInclusive<u32>,
    checked_steps: &[Vec<usize>],
    mode: Mode,
) -> Result<Stats, ValidationError> {
    let mut stats = Stats::default();
    for (p, pass) in map.passes.iter().enumerate() {
        let checked = checked_steps.get(p).map_or(&[][..], Vec::as_slice);
        let s = check_pass(
            program,
            object,
            map,
            p,
            pass,
            lengths.clone(),
            checked,
            mode,
        )?;
        stats.lengths += s.lengths;
        stats.classes += s.classes;
        stats.one_by_one += s.one_by_one;
    }
    Ok(stats)
}

/// More classes than this for one pass: the rest runs length by length
/// (each class costs about as much as a few lengths).
const CLASS_LIMIT: u64 = 8192;

/// Where a run of the entry up to a slot ([`run_to`]) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reached {
    /// At the slot.
    Slot,
    /// The entry returned this value before reaching it.
    Exit(u64),
}

/// Runs the entry from `pc` to slot `until`, each helper call `vm`
/// intercepts (an earlier pass's `bpf_loop`) treated as a loop run to
/// the end: it returns its iteration count. The walk and formula checks
/// start from there, so a pass's or the formula's inputs are the ones the
/// emitted code computed. An interpreter error is reported as happening
/// `during` what it says.
pub(crate) fn run_to(
    vm: &mut Vm<'_>,
    mut pc: usize,
    regs: &mut Regs,
    until: usize,
    during: impl Fn() -> String,
) -> Result<Reached, ValidationError> {
    loop {
        let stop =
            vm.exec(Func::Entry, pc, regs, &[until])
                .map_err(|error| ValidationError::Exec {
                    during: during(),
                    error,
                })?;
        match stop {
            Stop::At(_) => return Ok(Reached::Slot),
            Stop::Helper { slot, args, .. } => {
                regs.helper_returned(args[0] as u32 as u64);
                pc = slot + 1;
            }
            Stop::Exit(r0) => return Ok(Reached::Exit(r0)),
        }
    }
}

/// An interpreter with the watch emulations ([`crate::watch`]) and an
/// IPv4/TCP frame carrying `payload`.
pub(crate) fn packet_vm<'o>(object: &'o Object, payload: &[u8]) -> Vm<'o> {
    let mut vm = Vm::new(object);
    crate::watch::install(&mut vm);
    vm.set_skb(Skb::linear(frame::ipv4_tcp(payload)));
    vm
}

/// The payload's start (its frame offset) the entry stored in its stack
/// slot (`map.payload_start` from `r10`).
pub(crate) fn payload_start(vm: &Vm<'_>, r10: u64, map: &CodeMap) -> Result<u64, ValidationError> {
    vm.peek_u64(r10.wrapping_add(map.payload_start as i64 as u64), 2)
        .map_err(|e| ValidationError::Map(format!("payload start slot: {e}")))
}

/// A callback's step table for the class runs: per slot, the step range
/// starting there (its end and machine), and whether the step check set
/// the step at that slot up (`checked`, the slots it checked).
pub(crate) type StepTables = (Vec<Option<(usize, usize)>>, Vec<bool>);

/// The [`StepTables`] of `pass`, whose callback has `len` instructions.
pub(crate) fn step_tables(pass: &PassMap, len: usize, checked: &[usize]) -> StepTables {
    let mut ranges = vec![None; len];
    let mut step_checked = vec![false; len];
    for r in &pass.steps {
        if let Some(slot) = ranges.get_mut(r.start) {
            *slot = Some((r.end, r.machine));
        }
    }
    for &c in checked {
        if let Some(x) = step_checked.get_mut(c) {
            *x = true;
        }
    }
    (ranges, step_checked)
}

#[allow(clippy::too_many_arguments)] // one call site; the arguments are the check's inputs
fn check_pass(
    program: &Program,
    object: &Object,
    map: &CodeMap,
    p: usize,
    pass: &PassMap,
    lengths: std::ops::RangeInclusive<u32>,
    checked: &[usize],
    mode: Mode,
) -> Result<Stats, ValidationError> {
    let scans: Vec<usize> = pass.machines.iter().map(|m| m.scan).collect();
    let werr = |len: u32, what: String| ValidationError::Walk {
        pass: p,
        scans: scans.clone(),
        len,
        what,
    };
    // Where the entry stops: this pass's loop call, the next pass, the formula.
    let mut boundaries: Vec<usize> = map.passes.iter().map(|q| q.setup_start).collect();
    boundaries.push(map.formula_start);
    boundaries.extend(map.inline.iter().map(|q| q.start));
    boundaries.retain(|&b| b > pass.setup_start);
    let after = boundaries
        .iter()
        .copied()
        .min()
        .unwrap_or(map.formula_start);

    // The entry at this pass's setup, on the longest payload.
    let mut vm = packet_vm(object, &vec![b'a'; MAX_PAYLOAD as usize]);
    vm.intercept(vm::helper::LOOP);
    let (mut regs, r10) = vm.entry_start();
    let during = || "the run to the pass's setup".to_string();
    if let Reached::Exit(r0) = run_to(&mut vm, 0, &mut regs, pass.setup_start, during)? {
        return Err(werr(
            MAX_PAYLOAD,
            format!("the entry returns {r0} before the pass's setup"),
        ));
    }
    let setup = vm.snapshot(regs);

    let payload_start = payload_start(&vm, r10, map)?;

    let callback = &object.callbacks[p];
    let (ranges, step_checked) = step_tables(pass, callback.insns.len(), checked);
    let mut stats = Stats::default();
    let (lo, hi) = (*lengths.start(), *lengths.end());
    let fits_hi = hi.min(MAX_PAYLOAD);
    let mut one_by_one: Vec<u32> = Vec::new();
    if mode == Mode::Classes && lo <= fits_hi {
        let inputs = classes::PassInputs {
            program,
            object,
            p,
            pass,
            setup: &setup,
            r10,
            payload_len: map.payload_len,
            payload_start,
            after,
            final_states: &map.final_states,
            ranges: &ranges,
            step_checked: &step_checked,
        };
        let mut work = vec![classes::Class {
            n0: lo,
            stride: 1,
            count: fits_hi - lo + 1,
        }];
        while let Some(class) = work.pop() {
            if stats.classes >= CLASS_LIMIT {
                one_by_one.extend(class.lengths());
                continue;
            }
            match classes::check_class(&inputs, &mut vm, class) {
                Ok(()) => {
                    stats.classes += 1;
                    stats.lengths += u64::from(class.count);
                }
                Err(classes::Fail::Split(k)) => work.extend(class.split(k).into_iter().rev()),
                Err(classes::Fail::Stride(g)) => work.extend(class.residues(g).into_iter().rev()),
                Err(classes::Fail::Unsupported(why)) => {
                    if std::env::var_os("LAGIC_DEBUG_WALK").is_some() {
                        eprintln!("walk class {class:?}: {why}");
                    }
                    one_by_one.extend(class.lengths())
                }
            }
        }
        one_by_one.sort_unstable();
        one_by_one.extend(fits_hi + 1..=hi);
    } else {
        one_by_one.extend(lengths);
    }
    stats.one_by_one = one_by_one.len() as u64;
    stats.lengths += stats.one_by_one;
    let window = pass.window;
    let run = |vm: &mut Vm<'_>, lengths: &[u32]| -> Result<(), ValidationError> {
        let mut memo: Option<Memo> = None;
        for &n in lengths {
            let mut regs = vm.restore_stacks(&setup);
            vm.poke(
                r10.wrapping_add(map.payload_len as i64 as u64),
                &(n as u16).to_le_bytes(),
            )
            .map_err(|e| ValidationError::Map(format!("payload length slot: {e}")))?;
            // For n beyond one u16 the slot cannot hold it: only 0..=65,535 exist.
            let frame_fits = n <= MAX_PAYLOAD;
            let window_len = window.bounds(n as usize).len() as u64;
            let during = || format!("the walk of pass {p} with payload length {n}");
            let stop = vm
                .exec(Func::Entry, pass.setup_start, &mut regs, &[after])
                .map_err(|error| ValidationError::Exec {
                    during: during(),
                    error,
                })?;
            let ended_at = match stop {
                Stop::Helper { slot, id: _, args } => {
                    let [nr, cb, ctx, flags, _] = args;
                    if vm.callback_of(cb) != Some(p) || flags != 0 {
                        return Err(werr(
                            n,
                            format!("bpf_loop is called with callback {cb:#x}, flags {flags}"),
                        ));
                    }
                    let nr = nr as u32 as u64;
                    if window_len == 0 && nr != 0 {
                        return Err(werr(
                            n,
                            format!("the window is empty but bpf_loop runs {nr} iterations"),
                        ));
                    }
                    // The callback's behaviour depends only on the memory it
                    // reads and its arguments: when every word it read for an
                    // earlier length still holds the same value (a bounded
                    // window past its end), its paths are the same; replay its
                    // writes instead of running it again.
                    let reuse = memo.as_ref().is_some_and(|m| {
                        m.nr == nr
                            && m.ctx == ctx
                            && m.reads.iter().all(|&(addr, width, value)| {
                                vm.peek_u64(addr, width).ok() == Some(value)
                            })
                    });
                    // The value at each machine register's home (where the
                    // callback stores it back) before the loop: the initial state.
                    let mut initial: Vec<(usize, u8, Option<u64>)> = Vec::new();
                    if reuse {
                        let m = memo.as_ref().expect("checked");
                        for &(machine, reg, home) in &m.homes {
                            initial.push((machine, reg, home.and_then(|a| vm.peek_u64(a, 4).ok())));
                        }
                        for (addr, bytes) in &m.writes {
                            vm.poke(*addr, bytes).map_err(ValidationError::Map)?;
                        }
                    } else {
                        let pre = vm.clone_stack_bytes(0);
                        let mut effects = Effects::default();
                        let leaves = run_callback(
                            vm,
                            callback,
                            p,
                            nr,
                            ctx,
                            &ranges,
                            &pass.machines,
                            &mut effects,
                        )
                        .map_err(|what| werr(n, what))?;
                        let mut homes = Vec::new();
                        for (machine, mm) in pass.machines.iter().enumerate() {
                            for reg in machine_regs(&mm.encoding) {
                                let want = (token(machine, reg) as u32).to_le_bytes();
                                let home = effects
                                    .writes
                                    .iter()
                                    .rev()
                                    .find(|(_, b)| b.as_slice() == want)
                                    .map(|(a, _)| *a);
                                homes.push((machine, reg, home));
                                let before = home.and_then(|a| {
                                    let at = (a - vm::STACK_BASE) as usize;
                                    pre.get(at..at + 4).map(|b| {
                                        u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                                    })
                                });
                                initial.push((machine, reg, before));
                            }
                        }
                        memo = Some(Memo {
                            nr,
                            ctx,
                            reads: effects.reads,
                            writes: effects.writes,
                            homes,
                            leaves,
                        });
                    }
                    let leaves = &memo.as_ref().expect("set above").leaves;
                    // Each iteration must continue each machine from the state
                    // the previous one stored, and the first from the initial state.
                    if frame_fits && window_len > 0 {
                        for &(machine, reg, home) in &memo.as_ref().expect("set above").homes {
                            let mm = &pass.machines[machine];
                            if !leaves
                                .iter()
                                .any(|l| l.visits.iter().any(|v| v.machine == machine))
                            {
                                continue;
                            }
                            let Some(home) = home else {
                                return Err(werr(
                                    n,
                                    format!(
                                        "the callback never stores r{reg} of scan {} back",
                                        mm.scan
                                    ),
                                ));
                            };
                            for l in leaves {
                                if let Some(&(_, _, origin)) =
                                    l.firsts.iter().find(|f| f.0 == machine && f.1 == reg)
                                {
                                    if origin != Some(home) {
                                        return Err(werr(n, format!(
                                        "at loop indices {}..{}, scan {}'s r{reg} does not come from where the previous iteration stored it",
                                        l.lo, l.hi, mm.scan
                                    )));
                                    }
                                }
                            }
                            let mut init = Regs::default();
                            crate::step::encode(
                                &program.scans[mm.scan].machine,
                                &mm.encoding,
                                Machine::INITIAL,
                                &mut init,
                            );
                            let want = init.get(reg).map(|v| v & 0xffff_ffff);
                            let got = initial
                                .iter()
                                .find(|i| i.0 == machine && i.1 == reg)
                                .and_then(|i| i.2);
                            if got != want {
                                return Err(werr(n, format!(
                                "scan {}'s r{reg} starts the walk as {got:?}, not the initial state's {want:?}",
                                mm.scan
                            )));
                            }
                        }
                    }
                    let status = cover(
                        leaves,
                        pass,
                        payload_start + u64::from(window.start),
                        window_len,
                    )
                    .map_err(|what| werr(n, what));
                    if frame_fits {
                        if let Some(v) = leaves
                            .iter()
                            .flat_map(|l| &l.visits)
                            .find(|v| !step_checked[v.start])
                        {
                            return Err(werr(
                            n,
                            format!("the step at slot {} is reached, but the step check could not set it up", v.start),
                        ));
                        }
                    }
                    let completed = match status {
                        Ok(()) => nr,
                        Err(e) if !frame_fits => {
                            let _ = e;
                            continue; // no such frame: failing closed is enough
                        }
                        Err(e) => return Err(e),
                    };
                    regs.helper_returned(completed);
                    match vm.exec(Func::Entry, slot + 1, &mut regs, &[after]).map_err(|error| ValidationError::Exec { during: during(), error })? {
                    Stop::At(at) => at,
                    other if !frame_fits => {
                        let _ = other;
                        continue;
                    }
                    other => {
                        return Err(werr(n, format!("after a complete walk the entry does not reach the next part ({other:?})")))
                    }
                }
                }
                Stop::At(at) => {
                    if window_len != 0 {
                        return Err(werr(
                            n,
                            format!("the window has {window_len} bytes but bpf_loop is not called"),
                        ));
                    }
                    at
                }
                Stop::Exit(r0) => {
                    if !frame_fits {
                        continue;
                    }
                    return Err(werr(
                        n,
                        format!("the entry returns {r0} instead of walking the window"),
                    ));
                }
            };
            if ended_at != after {
                return Err(werr(
                    n,
                    format!("the entry continues at slot {ended_at}, not {after}"),
                ));
            }
            // The final states the formula will read.
            for (m, mm) in pass.machines.iter().enumerate() {
                let machine = &program.scans[mm.scan].machine;
                let want = if window_len == 0 {
                    final_value(machine, &mm.encoding, Machine::INITIAL)
                } else {
                    let reg = match mm.encoding {
                        StateEncoding::Dfa { reg, .. } => reg,
                        StateEncoding::Depth { mode_reg, .. } => mode_reg,
                    };
                    token(m, reg)
                };
                let off = map.final_states.get(mm.scan).copied().ok_or_else(|| {
                    ValidationError::Map(format!("no final state for scan {}", mm.scan))
                })?;
                let got = vm
                    .peek_u64(r10.wrapping_add(off as i64 as u64), 8)
                    .map_err(|e| werr(n, format!("final state of scan {}: {e}", mm.scan)))?;
                if got != want {
                    return Err(werr(
                    n,
                    format!("the final state of scan {} is {got:#x}, not the state its last step left ({want:#x})", mm.scan),
                ));
                }
            }
        }
        Ok(())
    };
    // Many lengths one by one (a code shape the classes do not model):
    // split them over the cores, in contiguous runs, so the error reported
    // is still the one at the smallest failing length.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if one_by_one.len() < 4096 || threads < 2 {
        run(&mut vm, &one_by_one)?;
    } else {
        let chunk = one_by_one.len().div_ceil(threads);
        let results: Vec<Result<(), ValidationError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = one_by_one
                .chunks(chunk)
                .map(|part| {
                    let mut vm = vm.clone();
                    let run = &run;
                    scope.spawn(move || run(&mut vm, part))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(ValidationError::Map("a walk thread panicked".into()))
                    })
                })
                .collect()
        });
        for r in results {
            r?;
        }
    }
    Ok(stats)
}

/// Executes the callback over loop indices `0..nr`, as intervals.
#[allow(clippy::too_many_arguments)] // one call site; the arguments are the run's inputs
fn run_callback(
    vm: &mut Vm<'_>,
    callback: &crate::object::Function,
    p: usize,
    nr: u64,
    ctx: u64,
    ranges: &[Option<(usize, usize)>],
    machines: &[emit_bpf::codemap::MachineMap],
    effects: &mut Effects,
) -> Result<Vec<Leaf>, String> {
    let mut leaves = Vec::new();
    if nr == 0 {
        return Ok(leaves);
    }
    let r10 = vm.reset_stack(1);
    let mut regs: [Option<Sym>; 11] = [None; 11];
    regs[1] = Some(Sym { a: 1, b: 0 });
    regs[2] = Some(Sym::konst(ctx));
    regs[3] = Some(Sym::konst(0));
    regs[4] = Some(Sym::konst(0));
    regs[5] = Some(Sym::konst(0));
    regs[10] = Some(Sym::konst(r10));
    let mut work = vec![(
        Path {
            lo: 0,
            hi: nr,
            pc: 0,
            regs,
            origin: [None; 11],
            seen: 0,
        },
        Vec::new(),
        Vec::new(),
    )];
    let mut steps = 0u64;
    while let Some((mut path, mut visits, mut firsts)) = work.pop() {
        loop {
            steps += 1;
            if steps > 50_000_000 {
                return Err("the walk's analysis runs past its budget".into());
            }
            let pc = path.pc;
            let fail = |what: String| format!("{} slot {pc}: {what}", callback.name);
            if let Some(&Some((end, machine))) = ranges.get(pc) {
                // A step: record its first load, then skip it.
                let addr = first_load(callback, pc, end, &path.regs).map_err(fail)?;
                let data = vm.packet_data().unwrap_or(0);
                let rel = Sym {
                    a: addr.a,
                    b: addr.b.wrapping_sub(data),
                };
                // First step of this machine on the path (a bit per machine;
                // more than 64 machines fall back to a search).
                let first = if machine < 64 {
                    path.seen & (1 << machine) == 0
                } else {
                    !visits.iter().any(|v: &Visit| v.machine == machine)
                };
                if machine < 64 {
                    path.seen |= 1 << machine;
                }
                if first {
                    for r in machine_regs(&machines[machine].encoding) {
                        firsts.push((machine, r, path.origin[r as usize]));
                    }
                }
                for r in machine_regs(&machines[machine].encoding) {
                    path.origin[r as usize] = None;
                }
                path.origin[8] = None;
                visits.push(Visit {
                    machine,
                    start: pc,
                    addr: rel,
                });
                match machines[machine].encoding {
                    StateEncoding::Dfa { reg, .. } => {
                        path.regs[reg as usize] = Some(Sym::konst(token(machine, reg)));
                    }
                    StateEncoding::Depth {
                        depth_reg,
                        mode_reg,
                        ..
                    } => {
                        for r in [depth_reg, mode_reg] {
                            path.regs[r as usize] = Some(Sym::konst(token(machine, r)));
                        }
                    }
                }
                path.regs[8] = None;
                path.pc = end;
                continue;
            }
            let Some(&insn) = callback.insns.get(pc) else {
                return Err(fail("runs off the end".into()));
            };
            let get = |regs: &[Option<Sym>; 11], r: u8| {
                regs[r as usize].ok_or_else(|| fail(format!("reads r{r}, which holds no value")))
            };
            let operand = |regs: &[Option<Sym>; 11], o: Operand| match o {
                Operand::Reg(r) => get(regs, r),
                Operand::Imm(i) => Ok(Sym::konst(i as i64 as u64)),
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
                    let s = operand(&path.regs, src)?;
                    let d = if op == Alu::Mov {
                        Sym::konst(0)
                    } else {
                        get(&path.regs, dst)?
                    };
                    let v = if d.a == 0 && s.a == 0 {
                        Sym::konst(isa::alu(op, wide, d.b, s.b, off, to_be))
                    } else if !wide {
                        // 32-bit arithmetic on the index is not affine in
                        // general; the emitted walk never needs it.
                        if op == Alu::Mov && off == 0 && fits32(s, path.lo, path.hi) {
                            s
                        } else {
                            return Err(fail(format!("32-bit {op:?} on the loop index")));
                        }
                    } else {
                        match op {
                            Alu::Mov if off == 0 => s,
                            Alu::Add => Sym {
                                a: d.a.wrapping_add(s.a),
                                b: d.b.wrapping_add(s.b),
                            },
                            Alu::Sub => Sym {
                                a: d.a.wrapping_sub(s.a),
                                b: d.b.wrapping_sub(s.b),
                            },
                            Alu::Lsh if s.a == 0 && s.b < 32 => Sym {
                                a: d.a << s.b,
                                b: d.b << s.b,
                            },
                            Alu::Mul if s.a == 0 && s.b < 1 << 16 => Sym {
                                a: d.a.wrapping_mul(s.b as i64),
                                b: d.b.wrapping_mul(s.b),
                            },
                            _ => {
                                return Err(fail(format!(
                                    "{op:?} on the loop index is not analyzed"
                                )))
                            }
                        }
                    };
                    path.regs[dst as usize] = Some(v);
                    path.origin[dst as usize] = match (op, src) {
                        (Alu::Mov, Operand::Reg(r)) if off == 0 => path.origin[r as usize],
                        _ => None,
                    };
                }
                Insn::Load {
                    width,
                    dst,
                    src,
                    off,
                    signed,
                } => {
                    let base = get(&path.regs, src)?;
                    if base.a != 0 {
                        return Err(fail(
                            "a load at an address that depends on the loop index, outside a step"
                                .into(),
                        ));
                    }
                    let addr = base.b.wrapping_add(off as i64 as u64);
                    let v = vm.peek_u64(addr, width as usize).map_err(fail)?;
                    if in_entry_stack(addr) {
                        effects.reads.push((addr, width as usize, v));
                    }
                    path.origin[dst as usize] =
                        (in_entry_stack(addr) && width == 4).then_some(addr);
                    if signed {
                        return Err(fail("sign-extending load in the walk".into()));
                    }
                    path.regs[dst as usize] = Some(Sym::konst(v));
                }
                Insn::Store {
                    width,
                    dst,
                    off,
                    src,
                } => {
                    let base = get(&path.regs, dst)?;
                    let v = operand(&path.regs, src)?;
                    if base.a != 0 || v.a != 0 {
                        return Err(fail("a store that depends on the loop index".into()));
                    }
                    let addr = base.b.wrapping_add(off as i64 as u64);
                    if !(vm::STACK_BASE..vm::SCRATCH_BASE).contains(&addr) {
                        return Err(fail(format!("stores outside the stack at {addr:#x}")));
                    }
                    let bytes = &v.b.to_le_bytes()[..width as usize];
                    vm.poke(addr, bytes).map_err(fail)?;
                    if in_entry_stack(addr) {
                        effects.writes.push((addr, bytes.to_vec()));
                    }
                }
                Insn::Jump {
                    wide,
                    cond,
                    dst,
                    src,
                    off,
                } => {
                    let taken_target = (pc as i64 + 1 + i64::from(off)) as usize;
                    let Some(cond) = cond else {
                        path.pc = taken_target;
                        continue;
                    };
                    let x = get(&path.regs, dst)?;
                    let y = operand(&path.regs, src)?;
                    // Split the interval into maximal runs of one outcome.
                    let pieces = split(cond, wide, x, y, path.lo, path.hi).map_err(fail)?;
                    let mut first = true;
                    for (lo, hi, taken) in pieces {
                        let next = Path {
                            lo,
                            hi,
                            pc: if taken { taken_target } else { pc + 1 },
                            regs: path.regs,
                            origin: path.origin,
                            seen: path.seen,
                        };
                        if first {
                            first = false;
                            path = next;
                        } else {
                            work.push((next, visits.clone(), firsts.clone()));
                        }
                    }
                    continue;
                }
                Insn::Exit => {
                    let r0 = get(&path.regs, 0)?;
                    if r0.a != 0 {
                        return Err(fail(
                            "returns a value that depends on the loop index".into(),
                        ));
                    }
                    leaves.push(Leaf {
                        lo: path.lo,
                        hi: path.hi,
                        r0: r0.b,
                        visits,
                        firsts,
                    });
                    break;
                }
                Insn::Call { imm, .. } => {
                    return Err(fail(format!("calls helper {imm} during the walk")));
                }
                Insn::LoadImm64 { .. } | Insn::Wide => {
                    return Err(fail("ld_imm64 in a callback".into()));
                }
                Insn::AtomicXchg { .. } => {
                    return Err(fail("an atomic operation in a callback".into()));
                }
            }
            path.pc += 1;
        }
    }
    let _ = p;
    leaves.sort_by_key(|l| l.lo);
    Ok(leaves)
}

fn fits32(s: Sym, lo: u64, hi: u64) -> bool {
    let (a, b) = (s.at(lo), s.at(hi - 1));
    (0..=i128::from(u32::MAX)).contains(&a) && (0..=i128::from(u32::MAX)).contains(&b)
}

/// The byte address the step at `start..end` reads: its first
/// instruction must load one byte (the emitted steps load their byte
/// first; the step check verifies that this is the only packet byte read).
fn first_load(
    f: &crate::object::Function,
    start: usize,
    end: usize,
    regs: &[Option<Sym>; 11],
) -> Result<Sym, String> {
    match f.insns.get(start) {
        Some(&Insn::Load {
            width: 1, src, off, ..
        }) if start < end => {
            let base = regs[src as usize]
                .ok_or_else(|| format!("the step's load reads r{src}, which holds no value"))?;
            Ok(Sym {
                a: base.a,
                b: base.b.wrapping_add(off as i64 as u64),
            })
        }
        other => Err(format!(
            "the step at slot {start} does not begin by loading its byte ({other:?})"
        )),
    }
}

/// Splits `[lo, hi)` into runs where `x cond y` has one outcome.
fn split(
    cond: Cond,
    wide: bool,
    x: Sym,
    y: Sym,
    lo: u64,
    hi: u64,
) -> Result<Vec<(u64, u64, bool)>, String> {
    if x.a == 0 && y.a == 0 {
        return Ok(vec![(lo, hi, isa::holds(cond, wide, x.b, y.b))]);
    }
    // Exact integer values over the interval (no wrap-around allowed).
    let limit: i128 = if wide {
        i128::from(u64::MAX)
    } else {
        i128::from(u32::MAX)
    };
    for s in [x, y] {
        for idx in [lo, hi - 1] {
            let v = s.at(idx);
            if !(0..=limit).contains(&v) {
                return Err(format!(
                    "a comparison on the loop index wraps around (value {v} at index {idx})"
                ));
            }
        }
    }
    let d = |idx: u64| x.at(idx) - y.at(idx); // affine in idx, monotone
    let holds = |idx: u64| {
        let v = d(idx);
        match cond {
            Cond::Eq => v == 0,
            Cond::Ne => v != 0,
            Cond::Gt => v > 0,
            Cond::Ge => v >= 0,
            Cond::Lt => v < 0,
            Cond::Le => v <= 0,
            _ => false,
        }
    };
    if matches!(
        cond,
        Cond::Set | Cond::Sgt | Cond::Sge | Cond::Slt | Cond::Sle
    ) {
        return Err(format!(
            "{cond:?} comparison on the loop index is not analyzed"
        ));
    }
    // The difference is affine in the index: a monotone test changes its
    // outcome at most once, an equality at most twice (at its one root).
    let slope = (x.a as i128) - (y.a as i128);
    let mut cuts = vec![lo, hi];
    if slope != 0 {
        if matches!(cond, Cond::Eq | Cond::Ne) {
            let d0 = d(0);
            if d0 % slope == 0 {
                let root = -d0 / slope;
                if root >= i128::from(lo) && root < i128::from(hi) {
                    cuts.push(root as u64);
                    cuts.push(root as u64 + 1);
                }
            }
        } else {
            let first = holds(lo);
            if holds(hi - 1) != first {
                // Smallest index where the outcome differs from lo's.
                let (mut a, mut b) = (lo + 1, hi - 1);
                while a < b {
                    let mid = a + (b - a) / 2;
                    if holds(mid) != first {
                        b = mid;
                    } else {
                        a = mid + 1;
                    }
                }
                cuts.push(a);
            }
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    Ok(cuts
        .windows(2)
        .filter(|w| w[0] < w[1])
        .map(|w| (w[0], w[1], holds(w[0])))
        .collect())
}

/// Checks that the leaves cover `[0, nr)` and that every machine reads
/// `window_len` consecutive bytes starting at `first`, in order.
fn cover(leaves: &[Leaf], pass: &PassMap, first: u64, window_len: u64) -> Result<(), String> {
    let mut next = vec![0u64; pass.machines.len()];
    let mut expect_lo = 0;
    for leaf in leaves {
        if leaf.lo != expect_lo {
            return Err(format!(
                "loop indices {expect_lo}..{} follow no path",
                leaf.lo
            ));
        }
        expect_lo = leaf.hi;
        if leaf.r0 != 0 {
            return Err(format!(
                "the callback returns {} at loop indices {}..{} with every machine still running",
                leaf.r0, leaf.lo, leaf.hi
            ));
        }
        for (m, slot) in next.iter_mut().enumerate() {
            let k = leaf.visits.iter().filter(|v| v.machine == m).count() as u64;
            let count = leaf.hi - leaf.lo;
            for (j, v) in leaf.visits.iter().filter(|v| v.machine == m).enumerate() {
                let pos_at_lo = v.addr.at(leaf.lo) - i128::from(first);
                let want = i128::from(*slot) + j as i128;
                if pos_at_lo != want {
                    return Err(format!(
                        "at loop index {}, machine {m}'s step {j} reads window position {pos_at_lo}, not {want}",
                        leaf.lo
                    ));
                }
                if count > 1 && v.addr.a != k as i64 {
                    return Err(format!(
                        "at loop indices {}..{}, machine {m}'s step {j} advances {} bytes per iteration, but each iteration steps {k}",
                        leaf.lo, leaf.hi, v.addr.a
                    ));
                }
            }
            *slot += k * count;
        }
    }
    for (m, &got) in next.iter().enumerate() {
        if got != window_len {
            return Err(format!(
                "machine {m} (scan {}) steps on {got} bytes of a {window_len}-byte window",
                pass.machines[m].scan
            ));
        }
    }
    Ok(())
}
