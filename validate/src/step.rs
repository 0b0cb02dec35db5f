//! The step check: every machine's step code, in every copy the callback
//! holds (one per chunk byte per tier), run on every reachable state and
//! every byte value, against the IR's transition.
//!
//! How a step range is set up: the whole program runs on probe packets
//! (payload lengths 1 up to 79 past the window's start, so that every tier
//! comes first in some run) until each range has been reached once; the
//! registers and memory at its first arrival are captured. Each (state,
//! byte) pair then replays the range from that capture with the machine's
//! state registers set, the other machines' registers made undefined (a
//! step that reads them fails), the byte it reads set in the packet, and
//! stores forbidden. The range must end at its end slot without leaving
//! its code (a table step's bound check jumps out only for a state no
//! table holds), read exactly one packet byte (the same for every state
//! and byte), change no register but its own state registers and r8, and
//! leave the IR's next state there. A table step reads its tables from the
//! object's `.rodata` ([`crate::rodata`]), so the tables are checked too.
//!
//! Byte values a step cannot tell apart (the same outcome in every
//! comparison of its byte with an immediate, when it uses the byte in no
//! other way) share one run, whose result is compared with the IR for each
//! of them: see `byte_cells`. [`check_with`] with [`Bytes::Every`] runs
//! all 256 values instead, the reference the cells are tested against.

use emit_bpf::codemap::{CodeMap, PassMap, StateEncoding};
use predicate_ir::{Machine, Program, StateId};

use crate::frame;
use crate::isa::{Cond, Insn, Operand};
use crate::object::Object;
use crate::vm::{Func, Probe, Regs, Skb, Stop, Vm};
use crate::ValidationError;

/// Longest window prefix the probe packets cover: a 64-byte chunk, an
/// 8-byte chunk and 7 single bytes.
const PROBE_LEN: u32 = 79;

/// States reachable from the initial state, each with the IR's machine.
pub fn reachable(machine: &Machine) -> Vec<StateId> {
    let mut seen = vec![false; machine.state_count()];
    let mut order = vec![Machine::INITIAL];
    seen[Machine::INITIAL as usize] = true;
    let mut i = 0;
    while i < order.len() {
        let s = order[i];
        for b in 0..=255u8 {
            let t = machine.step(s, b);
            if !seen[t as usize] {
                seen[t as usize] = true;
                order.push(t);
            }
        }
        i += 1;
    }
    order.sort_unstable();
    order
}

/// The registers a machine's state occupies.
pub fn state_regs(enc: &StateEncoding) -> Vec<u8> {
    match enc {
        StateEncoding::Dfa { reg, .. } => vec![*reg],
        StateEncoding::Depth {
            depth_reg,
            mode_reg,
            ..
        } => vec![*depth_reg, *mode_reg],
    }
}

/// Sets `state` of `machine` into registers.
pub fn encode(machine: &Machine, enc: &StateEncoding, state: StateId, regs: &mut Regs) {
    match (machine, enc) {
        (
            Machine::Depth(c),
            StateEncoding::Depth {
                depth_reg,
                mode_reg,
                modes,
            },
        ) => match c.decode(state) {
            Some((depth, mode)) => {
                regs.set(*depth_reg, u64::from(depth));
                regs.set(*mode_reg, modes[mode as usize] as u64);
            }
            None => {
                regs.set(*depth_reg, u64::from(c.max + 1));
                regs.set(*mode_reg, modes[3] as u64);
            }
        },
        (_, StateEncoding::Dfa { reg, scale }) => {
            regs.set(*reg, u64::from(state) * u64::from(*scale))
        }
        (
            _,
            StateEncoding::Depth {
                depth_reg,
                mode_reg,
                ..
            },
        ) => {
            // A DFA under a depth encoding: the map is wrong; the decode fails.
            regs.set(*depth_reg, u64::MAX);
            regs.set(*mode_reg, u64::MAX);
        }
    }
}

/// The IR state the registers hold, or what they hold when it is none.
pub fn decode(machine: &Machine, enc: &StateEncoding, regs: &Regs) -> Result<StateId, String> {
    let get = |r: u8| regs.get(r).ok_or_else(|| format!("r{r} holds no value"));
    match (machine, enc) {
        (Machine::Dfa(d), StateEncoding::Dfa { reg, scale }) => {
            // A table step's register holds the state's row offset: a
            // multiple of the row size, below the last row's end.
            let v = get(*reg)?;
            let scale = u64::from(*scale);
            if scale > 0 && v % scale == 0 && v / scale < d.next.len() as u64 {
                Ok((v / scale) as StateId)
            } else {
                Err(format!("r{reg} = {v:#x}, not a state (times {scale})"))
            }
        }
        (
            Machine::Depth(c),
            StateEncoding::Depth {
                depth_reg,
                mode_reg,
                modes,
            },
        ) => {
            let mode = get(*mode_reg)?;
            let Some(m) = modes.iter().position(|&x| x as u64 == mode) else {
                return Err(format!("mode register r{mode_reg} = {mode:#x}, not a mode"));
            };
            if m == 3 {
                return Ok(c.failed_state());
            }
            let depth = get(*depth_reg)?;
            if depth > u64::from(c.max) {
                return Err(format!(
                    "depth r{depth_reg} = {depth} beyond the maximum {} without failing",
                    c.max
                ));
            }
            Ok(depth as StateId * 3 + m as StateId)
        }
        _ => Err("the code map's state encoding does not fit the machine".into()),
    }
}

/// Renders a state for messages.
pub fn show_state(machine: &Machine, s: StateId) -> String {
    match machine {
        Machine::Dfa(_) => format!("{s}"),
        Machine::Depth(c) => match c.decode(s) {
            Some((d, m)) => format!("{s} (depth {d}, {m:?})"),
            None => format!("{s} (failed)"),
        },
    }
}

/// Runs the step check on every pass.
/// Returns the instructions executed and, per pass, the slots where a
/// checked step starts. A step no frame of at most 65,535 bytes reaches
/// (its window starts too far in) cannot be set up and is left unchecked;
/// the walk check fails if any valid payload length reaches it.
pub fn check(
    program: &Program,
    object: &Object,
    map: &CodeMap,
) -> Result<(u64, Vec<Vec<usize>>), ValidationError> {
    check_with(program, object, map, Bytes::Cells)
}

/// Which byte values the step check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bytes {
    /// One per cell of bytes the step cannot tell apart (see `byte_cells`).
    Cells,
    /// Every byte value (the reference the cells are tested against).
    Every,
}

/// [`check`], running the byte values `bytes` says.
pub fn check_with(
    program: &Program,
    object: &Object,
    map: &CodeMap,
    bytes: Bytes,
) -> Result<(u64, Vec<Vec<usize>>), ValidationError> {
    let mut executed = 0;
    let mut checked = Vec::new();
    for (p, pass) in map.passes.iter().enumerate() {
        let (e, c) = check_pass(program, object, p, pass, bytes, true)?;
        executed += e;
        checked.push(c);
    }
    Ok((executed, checked))
}

/// The step check of `pass`'s step ranges in callback `p` alone, without
/// the early-stop check at chunk ends: for step ranges that are not a
/// chunk's ordinary steps (a chained chunk's, see [`crate::chains`]).
/// Returns what [`check`] returns for one pass.
pub fn check_ranges(
    program: &Program,
    object: &Object,
    p: usize,
    pass: &PassMap,
) -> Result<(u64, Vec<usize>), ValidationError> {
    check_pass(program, object, p, pass, Bytes::Cells, false)
}

fn check_pass(
    program: &Program,
    object: &Object,
    p: usize,
    pass: &PassMap,
    bytes: Bytes,
    early_stop: bool,
) -> Result<(u64, Vec<usize>), ValidationError> {
    let callback = &object.callbacks[p];
    let mut marked = vec![false; callback.insns.len()];
    for r in &pass.steps {
        if r.start >= r.end || r.end > callback.insns.len() {
            return Err(ValidationError::Map(format!(
                "pass {p}: step range {}..{} outside {}",
                r.start, r.end, callback.name
            )));
        }
        marked[r.start] = true;
    }
    // Where a chunk's steps end (an end no step starts at): the code that
    // stores the states and decides whether the loop goes on.
    let chunk_ends: Vec<usize> = {
        let mut v: Vec<usize> = pass
            .steps
            .iter()
            .map(|r| r.end)
            .filter(|&e| !pass.steps.iter().any(|r| r.start == e))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    for &e in &chunk_ends {
        if let Some(m) = marked.get_mut(e) {
            *m = true;
        }
    }
    // Capture every range's first arrival.
    let mut vm = Vm::new(object);
    crate::watch::install(&mut vm);
    vm.probe = Some(Probe {
        callback: p,
        marked,
        captured: Default::default(),
    });
    let start = pass.window.start;
    let window_len = pass
        .window
        .end
        .map_or(PROBE_LEN, |e| e.saturating_sub(start))
        .min(PROBE_LEN);
    'fill: for fill in [b'a', b' ', 0u8, 0xff, b'{', b'"'] {
        for len in 1..=window_len {
            if start + len > crate::walk::MAX_PAYLOAD {
                break; // no frame carries this payload
            }
            let payload = vec![fill; (start + len) as usize];
            vm.set_skb(Skb::linear(frame::ipv4_tcp(&payload)));
            vm.run_program().map_err(|e| ValidationError::Exec {
                during: format!("a probe run with a {}-byte payload", payload.len()),
                error: e,
            })?;
            let probe = vm.probe.as_ref().expect("set above");
            if pass
                .steps
                .iter()
                .all(|r| probe.captured.contains_key(&r.start))
            {
                break 'fill;
            }
        }
    }
    let captured = vm.probe.take().expect("set above").captured;
    let mut executed = 0u64;
    let mut checked = Vec::new();
    // Copies of one machine's step that are the same instructions, except
    // the offset of their first instruction (the byte load) and the targets
    // of jumps that leave the step (a table step's bound check), behave
    // alike but for the byte they read: one of them, reached by a probe, is
    // run exhaustively and stands for the others. The run fails if it ever
    // leaves the step's code (see `exits`), so the targets of those jumps,
    // never taken, do not matter. Which byte each copy reads is the walk
    // check's part.
    let normalized = |r: &emit_bpf::codemap::StepRange| -> Option<Vec<Insn>> {
        let mut code = callback.insns.get(r.start..r.end)?.to_vec();
        if let Some(Insn::Load { off, .. }) = code.first_mut() {
            *off = 0;
        }
        for (i, insn) in code.iter_mut().enumerate() {
            if let Insn::Jump { off, .. } = insn {
                let target = (r.start + i + 1) as i64 + i64::from(*off);
                if target < r.start as i64 || target > r.end as i64 {
                    *off = LEAVES_THE_STEP;
                }
            }
        }
        Some(code)
    };
    let mut representatives: Vec<(usize, Vec<Insn>, usize)> = Vec::new(); // (machine, code, start)
    for range in &pass.steps {
        if !captured.contains_key(&range.start) {
            continue;
        }
        let Some(code) = normalized(range) else {
            continue;
        };
        if !representatives
            .iter()
            .any(|(m, c, _)| *m == range.machine && *c == code)
        {
            representatives.push((range.machine, code, range.start));
        }
    }
    for range in &pass.steps {
        let Some(code) = normalized(range) else {
            continue;
        };
        let Some(&(_, _, rep)) = representatives
            .iter()
            .find(|(m, c, _)| *m == range.machine && *c == code)
        else {
            continue; // no copy like it is reachable: left to the walk check
        };
        if rep != range.start {
            checked.push(range.start);
        }
    }
    for range in &pass.steps {
        if !representatives
            .iter()
            .any(|&(_, _, start)| start == range.start)
        {
            continue;
        }
        let mm = pass.machines.get(range.machine).ok_or_else(|| {
            ValidationError::Map(format!("pass {p}: step names machine {}", range.machine))
        })?;
        let scan = mm.scan;
        let machine = &program
            .scans
            .get(scan)
            .ok_or_else(|| ValidationError::Map(format!("pass {p}: no scan {scan}")))?
            .machine;
        let Some(snap) = captured.get(&range.start) else {
            continue; // unreachable by any frame: see `check`
        };
        checked.push(range.start);
        let own = state_regs(&mm.encoding);
        let mut base_regs = vm.restore(snap);
        for other in pass.machines.iter().filter(|m| m.scan != scan) {
            for r in state_regs(&other.encoding) {
                base_regs.undefine(r);
            }
        }
        vm.forbid_stores = true;
        let mut byte_at: Option<u64> = None;
        let states = reachable(machine);
        let ranges = |cells: Vec<(u8, u8)>| -> Vec<Vec<u8>> {
            cells.into_iter().map(|(a, b)| (a..=b).collect()).collect()
        };
        let cells: Vec<Vec<u8>> = match bytes {
            Bytes::Cells => match table_prefix(&callback.insns, range.start, range.end, &own) {
                Some(class_load) => {
                    let snap_regs = base_regs;
                    let cells = table_cells(&mut vm, p, range.start, class_load, snap_regs)
                        .map_err(|what| ValidationError::Step {
                            scan,
                            pass: p,
                            offset: range.offset,
                            state: show_state(machine, Machine::INITIAL),
                            byte: 0,
                            what,
                        })?;
                    vm.budget = 100_000;
                    cells
                }
                None => ranges(byte_cells(&callback.insns, range.start, range.end)),
            },
            Bytes::Every => ranges((0..=255u8).map(|b| (b, b)).collect()),
        };
        // Where the step ends, then every slot outside it that a jump of
        // the step reaches: stopping at one of those is an error.
        let stops = exits(&callback.insns, range.start, range.end);
        for &state in &states {
            for cell in &cells {
                let byte = cell[0];
                let mut regs = base_regs;
                encode(machine, &mm.encoding, state, &mut regs);
                let before = regs;
                if let Some(at) = byte_at {
                    vm.poke_packet(at as usize, &[byte])
                        .map_err(|e| ValidationError::Map(e.to_string()))?;
                }
                vm.packet_loads = Some(Vec::new());
                // A step is straight-line code: a generous bound per run.
                vm.budget = 100_000;
                let budget = vm.budget;
                let stop = vm.exec(Func::Callback(p), range.start, &mut regs, &stops);
                executed += budget - vm.budget;
                let loads = vm.packet_loads.take().unwrap_or_default();
                let err = |byte: u8, what: String| ValidationError::Step {
                    scan,
                    pass: p,
                    offset: range.offset,
                    state: show_state(machine, state),
                    byte,
                    what,
                };
                match stop {
                    Ok(Stop::At(at)) if at == range.end => {}
                    Ok(other) => {
                        return Err(err(
                            byte,
                            format!("the step does not end at slot {} ({other:?})", range.end),
                        ))
                    }
                    Err(e) => return Err(err(byte, e.to_string())),
                }
                let after = match (loads.as_slice(), byte_at) {
                    ([(at, 1)], None) => {
                        // First run: learn which byte the step reads, then
                        // run this pair again with the byte in place.
                        byte_at = Some(*at);
                        vm.poke_packet(*at as usize, &[byte]).map_err(|e| ValidationError::Map(e.to_string()))?;
                        let mut regs = before;
                        vm.packet_loads = Some(Vec::new());
                        vm.budget = 100_000;
                        let again = vm.exec(Func::Callback(p), range.start, &mut regs, &stops);
                        vm.packet_loads = None;
                        if again != Ok(Stop::At(range.end)) {
                            return Err(err(byte, format!("the step does not end at slot {}", range.end)));
                        }
                        regs
                    }
                    ([(at, 1)], Some(want)) if *at == want => regs,
                    _ => {
                        return Err(err(byte, format!(
                            "the step reads packet bytes {loads:?} (offset, width); it must read one byte, the same every time"
                        )))
                    }
                };
                // Every byte of the cell takes this run's path (see
                // `byte_cells` and `table_cells`): its result is this run's.
                for &b in cell {
                    compare(machine, &mm.encoding, state, b, &before, &after, &own)
                        .map_err(|what| err(b, what))?;
                }
            }
        }
        vm.forbid_stores = false;
    }
    if early_stop {
        executed += check_early_stop(program, &mut vm, p, pass, &chunk_ends, &captured)?;
    }
    Ok((executed, checked))
}

/// Marks, in a normalized step, a jump whose target lies outside the step.
const LEAVES_THE_STEP: i32 = i32::MIN;

/// `end`, then the slots outside `start..=end` that jumps in `start..end`
/// reach: a run of the step stops at the first of them it arrives at.
pub(crate) fn exits(insns: &[Insn], start: usize, end: usize) -> Vec<usize> {
    let mut out = vec![end];
    for (slot, insn) in insns.iter().enumerate().take(end).skip(start) {
        if let Insn::Jump { off, .. } = insn {
            let target = (slot + 1) as i64 + i64::from(*off);
            if (target < start as i64 || target > end as i64) && target >= 0 {
                out.push(target as usize);
            }
        }
    }
    out
}

/// After a chunk the callback may stop the loop only when every machine of
/// the pass sits in a sink (its result can no longer change). Run from each
/// chunk's end with the machines in every combination of reachable states
/// (at most 4,096; beyond, each machine in each state with the others in a
/// sink where they have one): a stop with a machine outside a sink is an error.
fn check_early_stop(
    program: &Program,
    vm: &mut Vm<'_>,
    p: usize,
    pass: &PassMap,
    chunk_ends: &[usize],
    captured: &std::collections::BTreeMap<usize, crate::vm::Snapshot>,
) -> Result<u64, ValidationError> {
    let machines: Vec<(&Machine, &StateEncoding, Vec<StateId>)> = pass
        .machines
        .iter()
        .map(|mm| {
            let m = &program.scans[mm.scan].machine;
            (m, &mm.encoding, reachable(m))
        })
        .collect();
    let total: usize = machines.iter().map(|(_, _, s)| s.len()).product();
    let mut combos: Vec<Vec<StateId>> = Vec::new();
    if total <= 4096 {
        combos.push(Vec::new());
        for (_, _, states) in &machines {
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    states.iter().map(move |&s| {
                        let mut c = c.clone();
                        c.push(s);
                        c
                    })
                })
                .collect();
        }
    } else {
        let rest: Vec<StateId> = machines
            .iter()
            .map(|(m, _, states)| {
                states
                    .iter()
                    .copied()
                    .find(|&s| m.is_sink(s))
                    .unwrap_or(Machine::INITIAL)
            })
            .collect();
        for (i, (_, _, states)) in machines.iter().enumerate() {
            for &s in states {
                let mut c = rest.clone();
                c[i] = s;
                combos.push(c);
            }
        }
    }
    vm.forbid_stores = false;
    let mut executed = 0;
    for &end in chunk_ends {
        let Some(snap) = captured.get(&end) else {
            continue;
        };
        for combo in &combos {
            let mut regs = vm.restore_stacks(snap);
            for ((m, enc, _), &s) in machines.iter().zip(combo) {
                encode(m, enc, s, &mut regs);
            }
            vm.budget = 100_000;
            let stop = vm.exec(Func::Callback(p), end, &mut regs, &[]);
            executed += 100_000 - vm.budget;
            let all_sunk = machines
                .iter()
                .zip(combo)
                .all(|((m, _, _), &s)| m.is_sink(s));
            let states = || {
                machines
                    .iter()
                    .zip(combo)
                    .map(|((m, _, _), &s)| show_state(m, s))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            match stop {
                Ok(Stop::Exit(0)) => {}
                Ok(Stop::Exit(1)) if all_sunk => {}
                Ok(other) => {
                    return Err(ValidationError::EarlyStop {
                        pass: p,
                        states: states(),
                        what: format!("after a chunk the callback ends with {other:?} though a machine can still change"),
                    })
                }
                Err(e) => {
                    return Err(ValidationError::EarlyStop {
                        pass: p,
                        states: states(),
                        what: e.to_string(),
                    })
                }
            }
        }
    }
    Ok(executed)
}

/// Where a table step's prefix ends: the slot of its class load, when the
/// step begins by loading its byte into `r8`, then only changes `r8` by
/// 64-bit arithmetic with immediates or registers other than its state
/// registers `state` (which the check varies), then loads `r8`
/// from an address in `r8` (emit-bpf's `codegen/table.rs`: the byte's
/// class offset from the class map). None for any other step.
fn table_prefix(code: &[Insn], start: usize, end: usize, state: &[u8]) -> Option<usize> {
    const BYTE: u8 = 8;
    if !matches!(
        code.get(start),
        Some(Insn::Load {
            width: 1,
            dst: BYTE,
            signed: false,
            ..
        })
    ) {
        return None;
    }
    for (pc, insn) in code.iter().enumerate().take(end).skip(start + 1) {
        match *insn {
            Insn::Alu {
                wide: true,
                op,
                dst: BYTE,
                src,
                ..
            } if op != crate::isa::Alu::Mov
                && !matches!(src, Operand::Reg(r) if r == BYTE || state.contains(&r)) => {}
            Insn::Load {
                dst: BYTE,
                src: BYTE,
                signed: false,
                ..
            } => return Some(pc),
            _ => return None,
        }
    }
    None
}

/// The byte values a table step cannot tell apart: those whose prefix
/// (up to and including the class load at `class_load`, see
/// [`table_prefix`]) leaves the same value in `r8`. Up to the class load
/// only `r8` changes, and it is then overwritten by what the load reads:
/// memory is the same in every run (stores are forbidden) and no other
/// register was derived from the byte, so two bytes with the same loaded
/// value leave the same registers and memory there, and run the rest of
/// the step alike. Each byte's prefix runs once, and must read no packet
/// byte but its own.
fn table_cells(
    vm: &mut Vm<'_>,
    p: usize,
    start: usize,
    class_load: usize,
    regs: Regs,
) -> Result<Vec<Vec<u8>>, String> {
    let mut at: Option<u64> = None;
    let mut by_value: Vec<(u64, Vec<u8>)> = Vec::new();
    for byte in 0..=255u8 {
        if let Some(at) = at {
            vm.poke_packet(at as usize, &[byte])?;
        }
        let mut run = regs;
        vm.packet_loads = Some(Vec::new());
        vm.budget = 1_000;
        let stop = vm.exec(Func::Callback(p), start, &mut run, &[class_load + 1]);
        let loads = vm.packet_loads.take().unwrap_or_default();
        if stop.map_err(|e| e.to_string())? != Stop::At(class_load + 1) {
            return Err("the table step's prefix does not reach its class load".into());
        }
        let [(addr, 1)] = loads.as_slice() else {
            return Err(format!(
                "the table step's prefix reads packet bytes {loads:?} (offset, width)"
            ));
        };
        match at {
            None if byte == 0 => {
                // First run: learn where the byte is, then run it again in place.
                at = Some(*addr);
                vm.poke_packet(*addr as usize, &[0])?;
                let mut again = regs;
                vm.budget = 1_000;
                let stop = vm.exec(Func::Callback(p), start, &mut again, &[class_load + 1]);
                if stop.map_err(|e| e.to_string())? != Stop::At(class_load + 1) {
                    return Err("the table step's prefix does not reach its class load".into());
                }
                run = again;
            }
            Some(want) if want == *addr => {}
            _ => return Err("the table step's prefix reads another byte".into()),
        }
        let value = run
            .get(8)
            .ok_or("the table step's class load leaves no value")?;
        match by_value.iter_mut().find(|(v, _)| *v == value) {
            Some((_, members)) => members.push(byte),
            None => by_value.push((value, vec![byte])),
        }
    }
    Ok(by_value.into_iter().map(|(_, members)| members).collect())
}

/// The byte values a step cannot tell apart, as cells `(first, last)`.
///
/// The step's first instruction loads its byte into `r8`. When no other
/// instruction of the step writes `r8` or reads it except to compare it
/// with an immediate (no arithmetic, no register comparison, no address,
/// no bit test), every jump stays inside the step, and no helper is
/// called, two bytes with the same outcome in every such comparison run
/// the same instructions on the same values and end with the same
/// registers but `r8` (by induction over the instructions executed: `r8`
/// is the only value that differs, and it only decides comparisons that
/// agree). The cells are the ranges between the comparisons' thresholds;
/// one run per cell then stands for each byte in it. Any other step gets
/// 256 cells of one byte each.
fn byte_cells(code: &[Insn], start: usize, end: usize) -> Vec<(u8, u8)> {
    let every = || (0..=255u8).map(|b| (b, b)).collect();
    const BYTE: u8 = 8;
    if !matches!(
        code.get(start),
        Some(Insn::Load {
            width: 1,
            dst: BYTE,
            signed: false,
            ..
        })
    ) {
        return every();
    }
    byte_cells_after_load(code, start, start + 1, end)
}

/// [`byte_cells`] of the step `start..end` whose byte is already in `r8`
/// from slot `from` on (`from == start`: a step given its byte in `r8`,
/// as the `http_response` view's steps are).
pub(crate) fn byte_cells_after_load(
    code: &[Insn],
    start: usize,
    from: usize,
    end: usize,
) -> Vec<(u8, u8)> {
    let every = || (0..=255u8).map(|b| (b, b)).collect();
    const BYTE: u8 = 8;
    let mut cuts = std::collections::BTreeSet::from([0i64, 256]);
    for (pc, insn) in code.iter().enumerate().take(end).skip(from) {
        let byte_read = |o: Operand| o == Operand::Reg(BYTE);
        match *insn {
            Insn::Jump {
                wide,
                cond,
                dst,
                src,
                off,
            } => {
                let target = pc as i64 + 1 + i64::from(off);
                if target < start as i64 || target > end as i64 || byte_read(src) {
                    return every();
                }
                let Some(cond) = cond else { continue };
                if dst != BYTE {
                    continue;
                }
                let Operand::Imm(imm) = src else {
                    return every();
                };
                // The immediate as the comparison sees it, against a byte
                // value 0..=255 (zero-extended, so never negative).
                let t: i64 = match cond {
                    Cond::Set => return every(),
                    Cond::Sgt | Cond::Sge | Cond::Slt | Cond::Sle => i64::from(imm),
                    _ if wide => {
                        let u = imm as i64 as u64;
                        i64::try_from(u).unwrap_or(i64::MAX)
                    }
                    _ => i64::from(imm as u32),
                };
                for c in [t, t.saturating_add(1)] {
                    if (0..=256).contains(&c) {
                        cuts.insert(c);
                    }
                }
            }
            Insn::Alu { dst, src, .. } => {
                if dst == BYTE || byte_read(src) {
                    return every();
                }
            }
            Insn::Load { dst, src, .. } => {
                if dst == BYTE || src == BYTE {
                    return every();
                }
            }
            Insn::Store { dst, src, .. } => {
                if dst == BYTE || byte_read(src) {
                    return every();
                }
            }
            Insn::LoadImm64 { dst, .. } => {
                if dst == BYTE {
                    return every();
                }
            }
            Insn::Wide => {}
            // Helpers and atomics are outside what the cell argument covers.
            Insn::Call { .. } | Insn::Exit | Insn::AtomicXchg { .. } => return every(),
        }
    }
    let cuts: Vec<i64> = cuts.into_iter().collect();
    cuts.windows(2)
        .map(|w| (w[0] as u8, (w[1] - 1) as u8))
        .collect()
}

/// Whether a step from `state` on `byte` left the IR's next state in
/// `after` and changed no register but its own (`own`) and `r8`.
pub fn compare(
    machine: &Machine,
    enc: &StateEncoding,
    state: StateId,
    byte: u8,
    before: &Regs,
    after: &Regs,
    own: &[u8],
) -> Result<(), String> {
    let want = machine.step(state, byte);
    let got = decode(machine, enc, after)?;
    if got != want {
        return Err(format!(
            "the emitted code goes to state {}, the IR to {}",
            show_state(machine, got),
            show_state(machine, want)
        ));
    }
    for r in 0..=10u8 {
        if own.contains(&r) || r == 8 {
            continue;
        }
        if before.get(r) != after.get(r) {
            return Err(format!("the step changes r{r}, which it does not own"));
        }
    }
    Ok(())
}
