//! Translation validation of stream diodes.
//!
//! A stream diode's callbacks are the per-packet diode's step code (the
//! same emitter function, the machine registers loaded from and stored to
//! the scan context), so [`crate::step`] checks every machine step on
//! every reachable state and byte exactly as for a per-packet diode, and a
//! prefilter is checked as for a per-packet diode ([`crate::prefilter`]).
//! The entry function's stream code is checked where it decides what the
//! scans see and what the verdict is:
//!
//! - [`walk`]: for every stream offset class and segment length, each pass
//!   steps each machine on exactly the stream bytes of its window that the
//!   segment carries, in order, from the state the flow carried; [`tail`]
//!   proves that offsets past the last window's end behave as that end;
//! - [`carry`]: each scan's state is read from the flow's value and stored
//!   back to the same words, for every reachable state;
//! - [`formula`]: the stream-meaning formula and, at FIN, the exact formula
//!   give the IR's verdict and reason at every stream length class.
//!
//! Probe segments run the whole entry with the flow map emulated (`stream/probe.rs`).
//! The flow key, the normalization rules (rules 1-8 of emit-bpf's
//! `codegen/stream.rs`), the latch, the commit of the next sequence number
//! and the RST rewrite are not validated here: docs/validation.md,
//! "Stream diodes", lists them, and the kernel tests
//! (tests/stream_kernel.rs) compare them with the reference stream diode.
//! The `http_response` view gets the step check only ([`crate::http`]).

use emit_bpf::codemap::CodeMap;
use predicate_ir::StreamProgram;

use crate::{step, Object, Report, ValidationError};

pub mod carry;
pub mod formula;
mod probe;
pub mod tail;
pub mod walk;

/// Validates the machine steps of the stream diode `object` compiled from
/// `program`, using `map` to find them.
pub fn validate_stream(
    program: &StreamProgram,
    object: &[u8],
    map: &CodeMap,
) -> Result<Report, ValidationError> {
    let object = Object::parse(object)?;
    if let Some(http) = &map.http {
        if object.callbacks.len() != 1 || !map.passes.is_empty() || program.http.is_none() {
            return Err(ValidationError::Map(format!(
                "{} callbacks and {} passes for an http view program",
                object.callbacks.len(),
                map.passes.len()
            )));
        }
        let t = std::time::Instant::now();
        let step_insns = crate::http::check_steps(program, &object, http)?;
        return Ok(Report {
            step_insns,
            times: [t.elapsed(), Default::default(), Default::default()],
            ..Report::default()
        });
    }
    if program.http.is_some() {
        return Err(ValidationError::Map(
            "an http view program without an http map".into(),
        ));
    }
    if object.callbacks.len() != map.passes.len() {
        return Err(ValidationError::Map(format!(
            "{} callbacks in the object, {} passes in the map",
            object.callbacks.len(),
            map.passes.len()
        )));
    }
    let t = std::time::Instant::now();
    // As for a per-packet diode: the steps on the object with every
    // prefilter bypassed, then each prefilter on its own.
    let stepped = crate::prefilter::bypassed(&object, map)?;
    let (mut step_insns, mut checked_steps) = step::check(&program.program, &stepped, map)?;
    // A window starting past what one segment from stream offset 0 reaches:
    // its steps are set up from a flow that has judged bytes up to the
    // window's start (the step check probes the payload offsets its map
    // names), so every step a stream can reach is checked.
    for (p, pass) in map.passes.iter().enumerate() {
        let unset = |checked: &[usize]| pass.steps.iter().any(|r| !checked.contains(&r.start));
        if pass.window.start == 0 || !unset(&checked_steps[p]) {
            continue;
        }
        let s0 = u64::from(pass.window.start);
        let mut shifted = map.clone();
        shifted.passes[p].window = walk::payload_window(pass.window, s0);
        let (insns, checked) =
            with_probe_stream_len(s0, || step::check(&program.program, &stepped, &shifted))?;
        step_insns += insns;
        checked_steps[p].extend(checked[p].iter().copied());
    }
    let step_time = t.elapsed();
    let t = std::time::Instant::now();
    let walk = walk::check(program, &stepped, map, &checked_steps)?;
    carry::check(program, &object, map)?;
    let prefilter_paths = crate::prefilter::check(&program.program, &object, map, None)?;
    let walk_time = t.elapsed();
    let t = std::time::Instant::now();
    let formula_cases = formula::check(program, &object, map)?;
    Ok(Report {
        step_insns,
        walk_lengths: walk.lengths,
        walk_classes: walk.classes,
        stream_offsets_unchecked: walk.offsets_unchecked,
        prefilter_paths,
        formula_cases,
        times: [step_time, walk_time, t.elapsed()],
        ..Report::default()
    })
}

/// Handle of the flow map (`ld_imm64` result): not memory.
pub const FLOWS_HANDLE: u64 = 0x5000_0200;
/// Where the probe's flow value lives.
pub const FLOW_VALUE_BASE: u64 = 0x5300_0000;
/// Bytes mapped for a flow value: at least any value the emitter writes
/// (the verifier checks the real bounds).
const FLOW_VALUE_LEN: usize = 512;

/// The probe's flow value as it is now.
pub(crate) fn flow_value_bytes(vm: &crate::vm::Vm<'_>) -> Result<Vec<u8>, String> {
    (0..FLOW_VALUE_LEN as u64)
        .map(|i| vm.peek_u64(FLOW_VALUE_BASE + i, 1).map(|b| b as u8))
        .collect()
}

/// Whether `width` bytes at `addr` lie in the probe's flow value (where a
/// stream pass stores its machines' registers back).
pub(crate) fn in_flow_value(addr: u64, width: u8) -> bool {
    addr >= FLOW_VALUE_BASE && addr + u64::from(width) <= FLOW_VALUE_BASE + FLOW_VALUE_LEN as u64
}
/// `bpf_skb_change_tail`.
pub const SKB_CHANGE_TAIL: i32 = 38;
/// Offset of the next expected sequence number in a flow value
/// (emitter's layout, docs/stream.md).
const VALUE_NEXT: u64 = 8;
/// Offset of the `u64` stream length so far in a flow value.
const VALUE_STREAM_LEN: u64 = 24;
const ENOTSUPP: i64 = 524;

thread_local! {
    /// The stream length so far of the flows [`lookup_flow`] opens.
    static PROBE_STREAM_LEN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Runs `f` with the flows [`lookup_flow`] opens having judged `len` bytes.
fn with_probe_stream_len<T>(len: u64, f: impl FnOnce() -> T) -> T {
    let before = PROBE_STREAM_LEN.with(|c| c.replace(len));
    let out = f();
    PROBE_STREAM_LEN.with(|c| c.set(before));
    out
}

/// `bpf_map_lookup_elem` on the flow map: every probe packet belongs to a
/// flow that was opened by a SYN and judged nothing yet (or, while
/// [`with_probe_stream_len`] says so, that many bytes), expecting exactly
/// the probe's sequence number, so the probe reaches the scans. The value
/// is fresh on every lookup.
pub(crate) fn lookup_flow(vm: &mut crate::vm::Vm<'_>, _key: u64) -> Result<u64, String> {
    let frame = vm.frame().ok_or("no packet set up")?;
    let seq = frame
        .get(crate::frame::HEADERS - 16..crate::frame::HEADERS - 12)
        .ok_or("the probe frame is too short")?;
    let seq = u32::from_be_bytes([seq[0], seq[1], seq[2], seq[3]]);
    vm.map_region(FLOW_VALUE_BASE, FLOW_VALUE_LEN, true);
    vm.poke(FLOW_VALUE_BASE + VALUE_NEXT, &seq.to_le_bytes())?;
    let judged = PROBE_STREAM_LEN.with(std::cell::Cell::get);
    vm.poke(FLOW_VALUE_BASE + VALUE_STREAM_LEN, &judged.to_le_bytes())?;
    Ok(FLOW_VALUE_BASE)
}

/// The `bpf_map_lookup_elem` emulation [`crate::watch::install`] registers
/// (flow map or counters), for tests that wrap it.
pub fn lookup_flow_for_tests(vm: &mut crate::vm::Vm<'_>, args: [u64; 5]) -> Result<u64, String> {
    crate::watch::lookup_any(vm, args)
}

/// `bpf_skb_change_tail`: fails (`-ENOTSUPP`, as the kernel may), so a
/// RST rewrite ends in its drop; the rewrite is not validated.
pub(crate) fn skb_change_tail(_vm: &mut crate::vm::Vm<'_>, _args: [u64; 5]) -> Result<u64, String> {
    Ok((-ENOTSUPP) as u64)
}
