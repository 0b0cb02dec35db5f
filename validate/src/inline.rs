//! The inline check: passes walked by straight-line code in the entry
//! function (no `bpf_loop`; see emit-bpf's `codegen/inline.rs`).
//!
//! Two parts, like a callback pass's step and walk checks:
//!
//! - **Steps.** Every step range the map names is reached by probe packets
//!   (every payload length up to the window's end, so every block of the
//!   partial path is entered) and its registers and memory captured. One
//!   copy per machine and code shape then runs on every reachable state and
//!   every byte value, with stores forbidden and the other machines'
//!   registers undefined: it must read exactly one packet byte, change no
//!   register but its state and `r8`, and leave the IR's next state.
//! - **Walk.** For every payload length 0..=65,535 the entry runs from
//!   the pass's first instruction (captured once on the longest payload,
//!   the length slot then set to `n`) to its end, step ranges not
//!   executed: at each, the byte it loads must be the next window position
//!   of its machine, its state registers must hold what the machine's
//!   previous step left (a fresh token per step, or the initial state),
//!   and they are set to a new token. At the end each machine has read
//!   exactly the window, each scan's final-state slot holds its last token,
//!   nothing else on the stack changed, and `r6` (the skb) is intact.
//!   Lengths are covered by classes, one symbolic run each
//!   (`inline/classes.rs`: about `end - start + 2` runs of the code outside
//!   the steps), falling back to one concrete run per length where the
//!   symbolic run does not apply; the concrete run ([`Mode::OneByOne`]) is
//!   the reference the classes are tested against, and always runs the
//!   lengths no frame carries (65,482 and up; a drop is accepted there).
//!
//! Together: the pass computes, for every length, each machine's IR state
//! after the window, which the formula check takes from there.

use emit_bpf::codemap::{CodeMap, InlineMap, StateEncoding, StepRange};
use predicate_ir::{Machine, Program};

use crate::frame;
use crate::isa::Insn;
use crate::object::Object;
use crate::step::{compare, encode, reachable, show_state, state_regs};
use crate::vm::{self, Func, Regs, Skb, Stop, Vm};
use crate::walk::classes::{Class, Fail};
pub use crate::walk::Mode;
use crate::walk::{Stats, MAX_LEN, MAX_PAYLOAD};
use crate::ValidationError;

mod classes;

/// Runs the inline check on every inline pass, the walk by classes of
/// lengths; returns the instructions the step check executed and what the
/// walk check covered.
pub fn check(
    program: &Program,
    object: &Object,
    map: &CodeMap,
) -> Result<(u64, Stats), ValidationError> {
    check_with(program, object, map, Mode::Classes)
}

/// [`check`], the walk in the given mode.
pub fn check_with(
    program: &Program,
    object: &Object,
    map: &CodeMap,
    mode: Mode,
) -> Result<(u64, Stats), ValidationError> {
    // Every scan in exactly one pass, callback or inline.
    for scan in 0..program.scans.len() {
        let homes = map
            .passes
            .iter()
            .flat_map(|p| &p.machines)
            .chain(map.inline.iter().flat_map(|p| &p.machines))
            .filter(|m| m.scan == scan)
            .count();
        if homes != 1 {
            return Err(ValidationError::Map(format!(
                "scan {scan} is in {homes} passes, not one"
            )));
        }
    }
    let mut insns = 0;
    for (i, pass) in map.inline.iter().enumerate() {
        insns += check_steps(program, object, i, pass)?;
    }
    Ok((insns, check_walks(program, object, map, mode)?))
}

/// The walk check alone, on every inline pass, in the given mode (the
/// tests compare the modes on mutants whose steps are unchanged).
pub fn check_walks(
    program: &Program,
    object: &Object,
    map: &CodeMap,
    mode: Mode,
) -> Result<Stats, ValidationError> {
    let mut stats = Stats::default();
    for (i, pass) in map.inline.iter().enumerate() {
        let s = check_walk(program, object, map, i, pass, mode)?;
        stats.lengths += s.lengths;
        stats.classes += s.classes;
        stats.one_by_one += s.one_by_one;
    }
    Ok(stats)
}

fn error(pass: usize, map: &InlineMap, at: String, what: String) -> ValidationError {
    ValidationError::Inline {
        pass,
        scans: map.machines.iter().map(|m| m.scan).collect(),
        at,
        what,
    }
}

fn exec_error(during: String) -> impl Fn(vm::VmError) -> ValidationError {
    move |error| ValidationError::Exec {
        during: during.clone(),
        error,
    }
}

/// Runs the whole program on `payload`, capturing the state at the first
/// arrival at each slot of `pending` (removed from it once captured); an
/// interpreter error is reported as happening `during` what it says.
pub(crate) fn capture(
    vm: &mut Vm<'_>,
    payload: &[u8],
    pending: &mut Vec<usize>,
    captured: &mut std::collections::BTreeMap<usize, vm::Snapshot>,
    during: impl Fn() -> String,
) -> Result<(), ValidationError> {
    vm.set_skb(Skb::linear(frame::ipv4_tcp(payload)));
    let (mut regs, _) = vm.entry_start();
    let mut pc = 0;
    loop {
        let stop = vm
            .exec(Func::Entry, pc, &mut regs, pending)
            .map_err(|error| ValidationError::Exec {
                during: during(),
                error,
            })?;
        match stop {
            Stop::At(slot) => {
                captured.insert(slot, vm.snapshot(regs));
                pending.retain(|&s| s != slot);
                pc = slot;
            }
            Stop::Exit(_) => return Ok(()),
            Stop::Helper { .. } => {
                return Err(ValidationError::Map(
                    "a probe run stops at an intercepted helper".into(),
                ))
            }
        }
    }
}

fn check_steps(
    program: &Program,
    object: &Object,
    p: usize,
    pass: &InlineMap,
) -> Result<u64, ValidationError> {
    let entry = &object.entry;
    for r in &pass.steps {
        if r.start >= r.end || r.end > entry.insns.len() || r.machine >= pass.machines.len() {
            return Err(ValidationError::Map(format!(
                "inline pass {p}: step range {}..{} of machine {} outside the entry or its machines",
                r.start, r.end, r.machine
            )));
        }
    }
    let mut vm = Vm::new(object);
    crate::watch::install(&mut vm);
    let mut pending: Vec<usize> = pass.steps.iter().map(|r| r.start).collect();
    pending.sort_unstable();
    pending.dedup();
    let mut captured = Default::default();
    let start = pass.window.start;
    let end = pass.window.end.unwrap_or(start).max(start);
    'fill: for fill in [b'a', b' ', 0u8, 0xff, b'{', b'"'] {
        for len in start + 1..=end {
            if len > MAX_PAYLOAD {
                break;
            }
            let during = || format!("a probe run with a {len}-byte payload");
            capture(
                &mut vm,
                &vec![fill; len as usize],
                &mut pending,
                &mut captured,
                during,
            )?;
            if pending.is_empty() {
                break 'fill;
            }
        }
    }
    // Copies of a machine's step of one shape behave alike but for the
    // byte they read (the walk's part): one reached copy of each shape
    // runs exhaustively.
    let shape = |r: &StepRange| shape(&entry.insns, r.start, r.end);
    let mut representatives: Vec<(usize, Shape, usize)> = Vec::new();
    for r in &pass.steps {
        if !captured.contains_key(&r.start) {
            // No frame of at most 65,535 bytes reaches it; the walk fails
            // if any payload length does.
            continue;
        }
        let code = shape(r);
        if !representatives
            .iter()
            .any(|(m, c, _)| *m == r.machine && *c == code)
        {
            representatives.push((r.machine, code, r.start));
        }
    }
    for r in &pass.steps {
        let code = shape(r);
        if captured.contains_key(&r.start)
            && !representatives
                .iter()
                .any(|(m, c, _)| *m == r.machine && *c == code)
        {
            return Err(ValidationError::Map(format!(
                "inline pass {p}: step at slot {} has no checked copy",
                r.start
            )));
        }
    }
    let mut executed = 0u64;
    for &(machine_index, _, slot) in &representatives {
        let r = pass
            .steps
            .iter()
            .find(|r| r.start == slot)
            .expect("a representative is a step");
        let mm = &pass.machines[machine_index];
        let scan = mm.scan;
        let machine = &program
            .scans
            .get(scan)
            .ok_or_else(|| ValidationError::Map(format!("inline pass {p}: no scan {scan}")))?
            .machine;
        let own = state_regs(&mm.encoding);
        let mut base = vm.restore(&captured[&slot]);
        for other in pass.machines.iter().filter(|m| m.scan != scan) {
            for reg in state_regs(&other.encoding) {
                base.undefine(reg);
            }
        }
        vm.forbid_stores = true;
        let mut byte_at: Option<u64> = None;
        for state in reachable(machine) {
            for byte in 0..=255u8 {
                let err = |what: String| {
                    error(
                        p,
                        pass,
                        format!(
                            ", scan {scan}, block byte {}, state {}, byte {byte:#04x}",
                            r.offset,
                            show_state(machine, state)
                        ),
                        what,
                    )
                };
                let mut regs = base;
                encode(machine, &mm.encoding, state, &mut regs);
                let before = regs;
                let mut run = |vm: &mut Vm<'_>, regs: &mut Regs| {
                    vm.packet_loads = Some(Vec::new());
                    vm.budget = 100_000;
                    let stop = vm.exec(Func::Entry, r.start, regs, &[r.end]);
                    executed += 100_000 - vm.budget;
                    (stop, vm.packet_loads.take().unwrap_or_default())
                };
                if let Some(at) = byte_at {
                    vm.poke_packet(at as usize, &[byte])
                        .map_err(ValidationError::Map)?;
                }
                let (mut stop, mut loads) = run(&mut vm, &mut regs);
                if byte_at.is_none() {
                    // First run: learn which byte the step reads, then run
                    // again with the byte in place.
                    if let [(at, 1)] = loads.as_slice() {
                        byte_at = Some(*at);
                        vm.poke_packet(*at as usize, &[byte])
                            .map_err(ValidationError::Map)?;
                        regs = before;
                        (stop, loads) = run(&mut vm, &mut regs);
                    }
                }
                match stop {
                    Ok(Stop::At(_)) => {}
                    Ok(other) => {
                        return Err(err(format!(
                            "the step does not end at slot {} ({other:?})",
                            r.end
                        )))
                    }
                    Err(e) => return Err(err(e.to_string())),
                }
                if !matches!((loads.as_slice(), byte_at), ([(at, 1)], Some(want)) if *at == want) {
                    return Err(err(format!(
                        "the step reads packet bytes {loads:?} (offset, width); it must read one byte, the same every time"
                    )));
                }
                compare(machine, &mm.encoding, state, byte, &before, &regs, &own).map_err(err)?;
            }
        }
        vm.forbid_stores = false;
    }
    Ok(executed)
}

/// A step's code as a graph: the instructions reachable from its first
/// slot before its end, numbered in the order they are found, each with
/// the numbers of its successors (`usize::MAX` for the end, `MAX - 1` for
/// none) in place of
/// its jump offset, and the first load's offset set to 0.
type Shape = Vec<(Insn, [usize; 2])>;

/// The [`Shape`] of the step at `start..end` of `insns`. Two steps of one
/// shape run the same instructions, in the same order, on the same values,
/// but for the byte the first one loads: an inline step's rare bytes jump
/// to code after its block (emit-bpf's `codegen/inline.rs`), at another
/// offset in every copy, which a slot-by-slot comparison would tell apart.
fn shape(insns: &[Insn], start: usize, end: usize) -> Shape {
    const END: usize = usize::MAX;
    const NONE: usize = usize::MAX - 1;
    // Past this many instructions the copy is its own shape (found by slot).
    const LIMIT: usize = 4096;
    let mut number = std::collections::HashMap::from([(start, 0usize)]);
    let mut order = vec![start];
    let mut out: Shape = Vec::new();
    let mut i = 0;
    while let Some(&pc) = order.get(i) {
        i += 1;
        let Some(&insn) = insns.get(pc).filter(|_| order.len() < LIMIT) else {
            // Off the function, or too long: compared by its slots.
            return vec![(Insn::Wide, [start, end])];
        };
        let target = |off: i32| (pc as i64 + 1 + i64::from(off)) as usize;
        let (insn, succ) = match insn {
            Insn::Jump {
                wide,
                cond,
                dst,
                src,
                off,
            } => {
                let taken = target(off);
                let jump = Insn::Jump {
                    wide,
                    cond,
                    dst,
                    src,
                    off: 0,
                };
                match cond {
                    None => (jump, [Some(taken), None]),
                    Some(_) => (jump, [Some(pc + 1), Some(taken)]),
                }
            }
            Insn::Exit => (insn, [None, None]),
            Insn::LoadImm64 { .. } => (insn, [Some(pc + 2), None]),
            Insn::Load {
                width,
                dst,
                src,
                signed,
                ..
            } if pc == start => (
                Insn::Load {
                    width,
                    dst,
                    src,
                    off: 0,
                    signed,
                },
                [Some(pc + 1), None],
            ),
            other => (other, [Some(pc + 1), None]),
        };
        let ids = succ.map(|s| match s {
            None => NONE,
            Some(s) if s == end => END,
            Some(s) => *number.entry(s).or_insert_with(|| {
                order.push(s);
                order.len() - 1
            }),
        });
        out.push((insn, ids));
    }
    out
}

/// A value no state register holds: step `visit` of machine `machine`
/// left it in register `reg`.
fn token(machine: usize, visit: u64, reg: u8) -> u64 {
    0x4000_0000 | ((machine as u64) << 22) | (visit << 4) | u64::from(reg)
}

fn check_walk(
    program: &Program,
    object: &Object,
    map: &CodeMap,
    p: usize,
    pass: &InlineMap,
    mode: Mode,
) -> Result<Stats, ValidationError> {
    // The entry at the pass's first instruction, on the longest payload.
    let mut vm = crate::walk::packet_vm(object, &vec![b'a'; MAX_PAYLOAD as usize]);
    let (mut regs, r10) = vm.entry_start();
    match vm
        .exec(Func::Entry, 0, &mut regs, &[pass.start])
        .map_err(exec_error("the run to an inline pass".into()))?
    {
        Stop::At(_) => {}
        other => {
            return Err(error(
                p,
                pass,
                String::new(),
                format!("the longest payload does not reach the pass ({other:?})"),
            ))
        }
    }
    let setup = vm.snapshot(regs);
    let payload_start = crate::walk::payload_start(&vm, r10, map)?;
    let data = vm
        .packet_data()
        .ok_or_else(|| ValidationError::Map("no packet".into()))?;
    let stack_len = vm.clone_stack_bytes(0).len();
    // The stack bytes the pass may write: its scans' final states.
    let mut own_bytes = vec![false; stack_len];
    for mm in &pass.machines {
        let off =
            map.final_states.get(mm.scan).copied().ok_or_else(|| {
                ValidationError::Map(format!("no final state for scan {}", mm.scan))
            })?;
        let at = (r10 as i64 + i64::from(off) - vm::STACK_BASE as i64) as usize;
        for b in own_bytes.iter_mut().skip(at).take(8) {
            *b = true;
        }
    }
    let mut step_at = vec![None; object.entry.insns.len() + 1];
    for r in &pass.steps {
        if let Some(s) = step_at.get_mut(r.start) {
            *s = Some(*r);
        }
    }
    let mut stops = vec![false; object.entry.insns.len() + 1];
    for slot in pass.steps.iter().map(|r| r.start).chain([pass.end]) {
        if let Some(s) = stops.get_mut(slot) {
            *s = true;
        }
    }
    vm.entry_stops = Some(stops);

    let mut stats = Stats::default();
    let mut one_by_one: Vec<u32> = Vec::new();
    if mode == Mode::Classes {
        let inputs = classes::Inputs {
            program,
            object,
            pass,
            setup: &setup,
            r10,
            data,
            payload_len: map.payload_len,
            payload_start,
            final_states: &map.final_states,
            own_bytes: &own_bytes,
            step_at: &step_at,
        };
        // The pieces of the window (before its start, each length inside
        // it, past its end), on which its length is constant.
        let start = pass.window.start.min(MAX_PAYLOAD);
        let end = pass
            .window
            .end
            .unwrap_or(start)
            .clamp(start, MAX_PAYLOAD + 1);
        let mut pieces = vec![Class {
            n0: 0,
            stride: 1,
            count: start + 1,
        }];
        pieces.extend((start + 1..end).map(|n| Class {
            n0: n,
            stride: 1,
            count: 1,
        }));
        if end <= MAX_PAYLOAD {
            pieces.push(Class {
                n0: end,
                stride: 1,
                count: MAX_PAYLOAD - end + 1,
            });
        }
        let mut work: Vec<Class> = pieces.into_iter().rev().collect();
        while let Some(class) = work.pop() {
            match classes::check_class(&inputs, &mut vm, class) {
                Ok(()) => {
                    stats.classes += 1;
                    stats.lengths += u64::from(class.count);
                }
                Err(Fail::Split(k)) => work.extend(class.split(k).into_iter().rev()),
                Err(Fail::Stride(g)) => work.extend(class.residues(g).into_iter().rev()),
                Err(Fail::Unsupported(why)) => {
                    if std::env::var_os("LAGIC_DEBUG_WALK").is_some() {
                        eprintln!("inline walk class {class:?}: {why}");
                    }
                    one_by_one.extend(class.lengths());
                }
            }
        }
        one_by_one.sort_unstable();
        one_by_one.extend(MAX_PAYLOAD + 1..=MAX_LEN);
    } else {
        one_by_one.extend(0..=MAX_LEN);
    }
    stats.one_by_one = one_by_one.len() as u64;
    stats.lengths += stats.one_by_one;
    let ctx = WalkCtx {
        program,
        map,
        p,
        pass,
        setup: &setup,
        r10,
        data,
        payload_start,
        own_bytes: &own_bytes,
        step_at: &step_at,
    };
    // Many lengths one by one: split them over the cores, in contiguous
    // runs, so the error reported is still the one at the smallest length.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 8));
    let threads = if one_by_one.len() < 4096 { 1 } else { threads };
    let chunk = one_by_one.len().div_ceil(threads).max(1);
    let results: Vec<Result<(), ValidationError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = one_by_one
            .chunks(chunk)
            .map(|part| {
                let (ctx, mut vm) = (&ctx, vm.clone());
                scope.spawn(move || {
                    for &n in part {
                        walk_one(ctx, &mut vm, n)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(ValidationError::Map(
                        "an inline walk thread panicked".into(),
                    ))
                })
            })
            .collect()
    });
    // The error at the smallest length, whatever the split.
    for r in results {
        r?;
    }
    Ok(stats)
}

/// The register whose value is a machine's final state.
/// Per machine of `pass`, each state register and the value it holds in
/// the initial state: what the machine's first step must find there.
pub(crate) fn initial_held(program: &Program, pass: &InlineMap) -> Vec<Vec<(u8, u64)>> {
    pass.machines
        .iter()
        .map(|mm| {
            let mut init = Regs::default();
            encode(
                &program.scans[mm.scan].machine,
                &mm.encoding,
                Machine::INITIAL,
                &mut init,
            );
            state_regs(&mm.encoding)
                .into_iter()
                .map(|r| (r, init.get(r).unwrap_or(u64::MAX)))
                .collect()
        })
        .collect()
}

fn final_reg(encoding: &StateEncoding) -> u8 {
    match *encoding {
        StateEncoding::Dfa { reg, .. } => reg,
        StateEncoding::Depth { mode_reg, .. } => mode_reg,
    }
}

struct WalkCtx<'a> {
    program: &'a Program,
    map: &'a CodeMap,
    p: usize,
    pass: &'a InlineMap,
    setup: &'a vm::Snapshot,
    r10: u64,
    data: u64,
    payload_start: u64,
    own_bytes: &'a [bool],
    step_at: &'a [Option<StepRange>],
}

fn walk_one(c: &WalkCtx<'_>, vm: &mut Vm<'_>, n: u32) -> Result<(), ValidationError> {
    let pass = c.pass;
    let werr = |what: String| error(c.p, pass, format!(", payload length {n}"), what);
    let mut regs = vm.restore_stacks(c.setup);
    vm.poke(
        c.r10.wrapping_add(c.map.payload_len as i64 as u64),
        &(n as u16).to_le_bytes(),
    )
    .map_err(|e| ValidationError::Map(format!("payload length slot: {e}")))?;
    let stack_before = vm.clone_stack_bytes(0);
    let frame_fits = n <= MAX_PAYLOAD;
    let window_len = pass.window.bounds(n as usize).len() as u64;
    let first = c.payload_start + u64::from(pass.window.start);
    // Per machine: window positions read, and what each state register
    // must hold when its next step starts.
    let mut read = vec![0u64; pass.machines.len()];
    let mut held = initial_held(c.program, pass);
    let skb = regs.get(6);
    let mut pc = pass.start;
    vm.budget = 1_000_000;
    loop {
        let stop =
            vm.exec(Func::Entry, pc, &mut regs, &[])
                .map_err(|error| ValidationError::Exec {
                    during: format!("the walk of inline pass {} with payload length {n}", c.p),
                    error,
                })?;
        let at = match stop {
            Stop::At(at) => at,
            other if !frame_fits => {
                let _ = other;
                return Ok(()); // no such frame: failing closed is enough
            }
            other => {
                return Err(werr(format!(
                    "the pass stops ({other:?}) instead of walking its window"
                )))
            }
        };
        if at == pass.end && c.step_at.get(at).copied().flatten().is_none() {
            break;
        }
        let r = c.step_at[at].expect("a stop is a step or the end");
        let m = r.machine;
        let addr = match object_insn(vm, at) {
            Some(Insn::Load {
                width: 1, src, off, ..
            }) => regs
                .get(src)
                .map(|b| b.wrapping_add(off as i64 as u64))
                .ok_or_else(|| {
                    werr(format!(
                        "the step at slot {at} loads through r{src}, which holds no value"
                    ))
                })?,
            other => {
                return Err(werr(format!(
                    "the step at slot {at} does not begin by loading its byte ({other:?})"
                )))
            }
        };
        let want = first + read[m];
        if read[m] >= window_len || addr.wrapping_sub(c.data) != want {
            return Err(werr(format!(
                "machine {m} (scan {})'s step at slot {at} reads frame offset {}, but its next window byte is {} of {window_len}",
                pass.machines[m].scan,
                addr.wrapping_sub(c.data) as i64,
                read[m]
            )));
        }
        for &(reg, value) in &held[m] {
            if regs.get(reg) != Some(value) {
                return Err(werr(format!(
                    "machine {m} (scan {})'s step at window byte {} finds r{reg} = {:?}, not the state its previous step left ({value:#x})",
                    pass.machines[m].scan,
                    read[m],
                    regs.get(reg)
                )));
            }
        }
        read[m] += 1;
        for (reg, value) in held[m].iter_mut() {
            *value = token(m, read[m], *reg);
            regs.set(*reg, *value);
        }
        regs.undefine(8);
        pc = r.end;
    }
    for (m, &got) in read.iter().enumerate() {
        if got != window_len {
            return Err(werr(format!(
                "machine {m} (scan {}) steps on {got} bytes of a {window_len}-byte window",
                pass.machines[m].scan
            )));
        }
    }
    for (m, mm) in pass.machines.iter().enumerate() {
        let state_reg = final_reg(&mm.encoding);
        let want = held[m]
            .iter()
            .find(|(r, _)| *r == state_reg)
            .map(|&(_, v)| v)
            .unwrap_or(u64::MAX);
        let off = c.map.final_states[mm.scan];
        let got = vm
            .peek_u64(c.r10.wrapping_add(off as i64 as u64), 8)
            .map_err(|e| werr(format!("final state of scan {}: {e}", mm.scan)))?;
        if got != want {
            return Err(werr(format!(
                "the final state of scan {} is {got:#x}, not the state its last step left ({want:#x})",
                mm.scan
            )));
        }
    }
    let after = vm.clone_stack_bytes(0);
    if let Some(i) = (0..after.len().min(stack_before.len()))
        .find(|&i| !c.own_bytes[i] && after[i] != stack_before[i])
    {
        return Err(werr(format!(
            "the pass writes the stack at r10{:+}, outside its scans' final states",
            (vm::STACK_BASE + i as u64) as i64 - c.r10 as i64
        )));
    }
    if regs.get(6) != skb {
        return Err(werr("the pass changes r6, the skb".into()));
    }
    Ok(())
}

fn object_insn(vm: &Vm<'_>, slot: usize) -> Option<Insn> {
    vm.object().entry.insns.get(slot).copied()
}
