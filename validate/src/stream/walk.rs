//! The stream walk check: for every pass, every stream offset class and
//! every segment length 0..=65,481, the pass steps each machine on exactly
//! the stream bytes of its window that the segment carries, each once and
//! in order, starting from the state the flow carried, and hands the
//! formula the state its last step left (or the carried one).
//!
//! A segment is judged with `S` (the flow's stream length: the stream
//! offset of its first new byte, 64 bits, read by the emitted code from
//! the flow value) and `n` (its new bytes). A pass with window
//! `[ws, we)` (stream offsets; `we` may be unbounded) must read stream
//! offsets `[max(ws, S), min(we, S + n))`, i.e. payload offsets
//! `[max(ws, S) - S, min(we, S + n) - S)`: for a fixed `S`, a per-packet
//! window `W(S)` of the payload:
//!
//! - `S < ws`: `W(S) = [ws - S, we - S)`;
//! - `ws <= S < we`: `W(S) = [0, we - S)` (unbounded: `[0, n)`);
//! - `S >= we` (bounded): empty; the carried state is the result.
//!
//! **The stream offset classes.** Let `T` be the largest, over the
//! program's passes, of the window's end (bounded) or its start plus one
//! (unbounded). For `S < T` the windows `W(S)` differ from offset to
//! offset (a window starting later in the segment, or ending sooner), so
//! every such `S` is run. From `T` on every pass's `W(S)` is the same
//! (empty, or the whole segment), and [`super::tail`] proves that nothing
//! the entry computes up to the formula depends on `S` there (every branch
//! on it has one outcome on `[T, 2^64)`, and no value derived from it
//! reaches a pass's registers, context or path); so the run at `T` stands
//! for every `S >= T`. Two more offsets past `T` are run as samples
//! ([`tail_offsets`]): the tail check follows the entry, and a callback
//! that found the stream offset in the entry's frame by its own means
//! would show there. With the tier chunks (64, 8, 1 bytes) the lengths
//! cost tens to about 130 classes per offset.
//!
//! For one `S`, the payload lengths are proven exactly as for a per-packet
//! pass (`crate::walk::classes`: classes of lengths, each proven by one
//! symbolic run) against the window `W(S)`: the run starts at the pass's
//! setup captured from a run of the whole entry on the longest payload with
//! the flow's stream length set to `S`, through the emitted segment rules
//! (so `S` reaches the pass the way the kernel's does), and the walk's
//! coverage, the machines' states travelling between iterations from the
//! values loaded from the flow, and the final-state slots are checked as
//! there. A class the symbolic run does not model is an error here (no
//! one-by-one fallback for stream passes): the check fails closed.

use emit_bpf::codemap::{CodeMap, PassMap};
use predicate_ir::{StreamProgram, Window};

use super::probe;
use crate::object::Object;
use crate::vm::{self, Func, Stop};
use crate::walk::classes::{self, Class, Fail};
use crate::walk::{run_to, step_tables, Reached, Stats, MAX_PAYLOAD};
use crate::ValidationError;

/// Largest tail start ([`program_tail_start`]) checked exhaustively: every
/// offset below it is run, each costing a few to about 130 classes of
/// lengths. Beyond it the check runs every offset below this bound, the
/// offsets around each window's start and end, and the tail
/// ([`sampled_offsets`]), and reports the offsets it left out
/// ([`Stats::offsets_unchecked`]): running all of them would take seconds
/// to minutes per compile, and refusing would refuse every stream spec
/// with a window past this offset.
pub const MAX_TAIL_START: u64 = 1024;

/// Offsets run on each side of a window's start and end when the walk is
/// sampled: more than a 64-byte chunk, so every tier boundary near the
/// window's edges is crossed.
pub const EDGE_MARGIN: u64 = 72;

/// Most classes of lengths for one pass and stream offset before the check
/// gives up (fails closed).
const CLASS_LIMIT: u64 = 8192;

/// Stream offsets from `t` on at which the walk is run: `t` itself (which
/// stands for the whole tail, [`super::tail`]), and two samples that would
/// show a callback reading the stream offset by its own means (the tail
/// check follows the entry only): past 2^32 and the largest offset.
pub fn tail_offsets(t: u64) -> Vec<u64> {
    let mut v = vec![t, (1 << 32) + t, u64::MAX];
    v.sort_unstable();
    v.dedup();
    v
}

/// Where the tail starts for a pass with `window`: its end, or one past
/// the start of an unbounded window.
pub fn tail_start(window: Window) -> u64 {
    match window.end {
        Some(end) => u64::from(end.max(window.start)),
        None => u64::from(window.start) + 1,
    }
}

/// Where the tail starts for the whole program: the last pass's
/// [`tail_start`] (the tail check follows every pass up to the formula).
pub fn program_tail_start(map: &CodeMap) -> u64 {
    map.passes
        .iter()
        .map(|p| tail_start(p.window))
        .max()
        .unwrap_or(0)
}

/// Every stream offset checked, for a program whose tail starts at `t`:
/// each below it, and the tail's samples.
pub fn offsets(t: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..t).collect();
    v.extend(tail_offsets(t));
    v.dedup();
    v
}

/// The offsets run when the tail starts past [`MAX_TAIL_START`]: every
/// offset below that bound, [`EDGE_MARGIN`] on each side of every
/// window's start and end (below `t`), and the tail's samples.
pub fn sampled_offsets(map: &CodeMap, t: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..MAX_TAIL_START).collect();
    for pass in &map.passes {
        let mut edges = vec![u64::from(pass.window.start)];
        edges.extend(pass.window.end.map(u64::from));
        for edge in edges {
            let from = edge.saturating_sub(EDGE_MARGIN);
            v.extend((from..=edge.saturating_add(EDGE_MARGIN)).filter(|&s| s < t));
        }
    }
    v.extend(tail_offsets(t));
    v.sort_unstable();
    v.dedup();
    v
}

/// The payload window a pass with stream window `w` must walk in a segment
/// starting at stream offset `s`.
pub fn payload_window(w: Window, s: u64) -> Window {
    let empty = Window {
        start: 0,
        end: Some(0),
    };
    match w.end {
        Some(end) if s >= u64::from(end) => empty,
        _ => {
            let start = u64::from(w.start).saturating_sub(s) as u32;
            let end = w.end.map(|e| (u64::from(e) - s) as u32);
            Window { start, end }
        }
    }
}

/// Runs the stream walk check on every pass of `object`.
pub fn check(
    program: &StreamProgram,
    object: &Object,
    map: &CodeMap,
    checked_steps: &[Vec<usize>],
) -> Result<Stats, ValidationError> {
    let mut stats = Stats::default();
    let t = program_tail_start(map);
    let run = if t > MAX_TAIL_START {
        sampled_offsets(map, t)
    } else {
        offsets(t)
    };
    // Offsets below the tail that were not run (the tail's samples are
    // extra runs, not part of the count below `t`).
    let run_below_t = run.iter().filter(|&&s| s < t).count() as u64;
    stats.offsets_unchecked = t - run_below_t;
    if !map.passes.is_empty() {
        super::tail::check(object, map, t).map_err(|what| ValidationError::Walk {
            pass: 0,
            scans: map
                .passes
                .iter()
                .flat_map(|p| p.machines.iter().map(|m| m.scan))
                .collect(),
            len: 0,
            what: format!("the passes depend on stream offsets from {t} on: {what}"),
        })?;
    }
    for (p, pass) in map.passes.iter().enumerate() {
        let checked = checked_steps.get(p).map_or(&[][..], Vec::as_slice);
        // The probe segment run to the flow lookup once; each offset
        // continues from there with its own stream length.
        let payload = vec![b'a'; MAX_PAYLOAD as usize];
        let mut vm = probe::vm(object, 0, &payload, false);
        vm.intercept(vm::helper::LOOP);
        vm.intercept(vm::helper::MAP_LOOKUP_ELEM);
        let (mut regs, r10) = vm.entry_start();
        let (slot, args) = match vm.exec(Func::Entry, 0, &mut regs, &[]) {
            Ok(Stop::Helper { slot, id, args }) if id == vm::helper::MAP_LOOKUP_ELEM => {
                (slot, args)
            }
            other => {
                return Err(ValidationError::Map(format!(
                    "the probe segment does not reach the flow lookup: {other:?}"
                )))
            }
        };
        let at_lookup = vm.snapshot(regs);
        let lookup = Lookup {
            snapshot: &at_lookup,
            slot,
            args,
            r10,
        };
        for &s in &run {
            let got = check_offset(program, object, map, p, pass, s, checked, &mut vm, &lookup)?;
            stats.lengths += got.lengths;
            stats.classes += got.classes;
        }
    }
    Ok(stats)
}

/// The probe segment stopped at its flow lookup.
struct Lookup<'a> {
    snapshot: &'a vm::Snapshot,
    slot: usize,
    args: [u64; 5],
    r10: u64,
}

#[allow(clippy::too_many_arguments)] // one call site; the arguments are the check's inputs
fn check_offset(
    program: &StreamProgram,
    object: &Object,
    map: &CodeMap,
    p: usize,
    pass: &PassMap,
    s: u64,
    checked: &[usize],
    vm: &mut vm::Vm<'_>,
    lookup: &Lookup<'_>,
) -> Result<Stats, ValidationError> {
    let scans: Vec<usize> = pass.machines.iter().map(|m| m.scan).collect();
    let window = pass.window;
    let shown = |w: Window| match w.end {
        Some(e) => format!("[{}, {e})", w.start),
        None => format!("[{}, end)", w.start),
    };
    let werr = |len: u32, what: String| ValidationError::Walk {
        pass: p,
        scans: scans.clone(),
        len,
        what: format!(
            "stream offset {s} (window {} of the stream, {} of the segment): {what}",
            shown(window),
            shown(payload_window(window, s))
        ),
    };
    let mut boundaries: Vec<usize> = map.passes.iter().map(|q| q.setup_start).collect();
    boundaries.push(map.formula_start);
    boundaries.retain(|&b| b > pass.setup_start);
    let after = boundaries
        .iter()
        .copied()
        .min()
        .unwrap_or(map.formula_start);

    let mut regs = vm.restore(lookup.snapshot);
    let r10 = lookup.r10;
    probe::set_stream_len(vm, s).map_err(ValidationError::Map)?;
    let found = probe::lookup(vm, lookup.args).map_err(ValidationError::Map)?;
    regs.helper_returned(found);
    let during = || format!("the run to pass {p}'s setup at stream offset {s}");
    if let Reached::Exit(r0) = run_to(vm, lookup.slot + 1, &mut regs, pass.setup_start, during)? {
        return Err(werr(
            MAX_PAYLOAD,
            format!("the entry returns {r0} before the pass's setup"),
        ));
    }
    let setup = vm.snapshot(regs);
    let flow_value = super::flow_value_bytes(vm).map_err(ValidationError::Map)?;
    let payload_start = crate::walk::payload_start(vm, r10, map)?;

    let (ranges, step_checked) = step_tables(pass, object.callbacks[p].insns.len(), checked);
    // The pass as a per-packet pass over the segment's part of the window.
    let mut shifted = pass.clone();
    shifted.window = payload_window(window, s);
    let inputs = classes::PassInputs {
        program: &program.program,
        object,
        p,
        pass: &shifted,
        setup: &setup,
        r10,
        payload_len: map.payload_len,
        payload_start,
        after,
        final_states: &map.final_states,
        ranges: &ranges,
        step_checked: &step_checked,
    };
    let mut stats = Stats::default();
    let mut work = vec![Class {
        n0: 0,
        stride: 1,
        count: MAX_PAYLOAD + 1,
    }];
    while let Some(class) = work.pop() {
        if stats.classes >= CLASS_LIMIT {
            return Err(werr(
                class.n0,
                format!("more than {CLASS_LIMIT} classes of segment lengths"),
            ));
        }
        // A class run writes the flow value's machine registers (the stacks
        // it restores itself); the packet is never written.
        vm.poke(super::FLOW_VALUE_BASE, &flow_value)
            .map_err(ValidationError::Map)?;
        match classes::check_class(&inputs, vm, class) {
            Ok(()) => {
                stats.classes += 1;
                stats.lengths += u64::from(class.count);
            }
            Err(Fail::Split(k)) => work.extend(class.split(k).into_iter().rev()),
            Err(Fail::Stride(g)) => work.extend(class.residues(g).into_iter().rev()),
            Err(Fail::Unsupported(why)) => {
                return Err(werr(
                    class.n0,
                    format!(
                        "segment lengths {}..={} (step {}) not proven: {why}",
                        class.n0,
                        class.length(class.count - 1),
                        class.stride
                    ),
                ))
            }
        }
    }
    Ok(stats)
}
