//! The stream formula check: a stream diode's two formulas against the
//! IR's ([`predicate_ir::StreamProgram`]), run from where the emitted
//! formula starts to the segment's verdict.
//!
//! On each segment with new bytes (or a FIN) the emitted code decides with
//! the stream-meaning formula (`program.formula`; false: the flow latches,
//! reason `predicate`), then, with FIN, the exact formula (`complete`;
//! false: reason `latched`), then commits and passes. Both read the scans'
//! final states and the stream length with the segment (64 bits), which
//! the emitted segment rules compute from the flow's stream length and the
//! segment's length: each stream length `L` is set up by a probe segment
//! (one new byte at stream offset `L - 1`, or a bare FIN at `L = 0`) run
//! through the whole entry, so `L` reaches the formulas as the kernel's
//! does.
//!
//! Cases, as for a per-packet formula ([`crate::formula`]): every
//! combination of scan results (each scan accepting or rejecting, up to
//! 2^10; beyond, each scan flipped from all accepting and all rejecting)
//! and every reachable final state of each scan (the others accepting),
//! with and without FIN, at every length class: 0, 1, 2, each `len`
//! constant `v` of either formula with `v - 1`, `v + 1` and `v + 2^32`
//! (a comparison of the low 32 bits only), and the ends of the 32- and
//! 64-bit ranges (2^31, 2^32, 2^63, 2^64 - 1: truncated or signed
//! comparisons). A `len` test's outcome changes only at its constant, so
//! these lengths give every outcome of every test, together and apart.
//! Each case runs with the ring buffer of drop events free and full; the
//! verdict and the counted reason must be the IR's.

use std::collections::BTreeSet;

use emit_bpf::codemap::CodeMap;
use emit_bpf::decision::Reason;
use predicate_ir::{Formula, StreamProgram};

use super::probe;
use crate::formula::{combinations, evaluate_stream, poke_final_states, scan_cases};
use crate::object::Object;
use crate::vm::{self, Func, Stop};
use crate::walk::{run_to, Reached};
use crate::watch::{self, WatchState};
use crate::ValidationError;

/// The segment's fate the formulas decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Both hold (or no FIN): committed and passed.
    Pass,
    /// The stream meaning is false: latched, reason `predicate`.
    Predicate,
    /// At FIN the exact meaning is false: latched, reason `latched`.
    Incomplete,
}

impl Outcome {
    fn describe(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS (committed)",
            Outcome::Predicate => "DROP, reason predicate (the stream meaning is false)",
            Outcome::Incomplete => "DROP, reason latched (the exact meaning is false at FIN)",
        }
    }
}

fn len_constants(f: &Formula, out: &mut BTreeSet<u64>) {
    match f {
        Formula::Not(g) => len_constants(g, out),
        Formula::And(gs) | Formula::Or(gs) => gs.iter().for_each(|g| len_constants(g, out)),
        Formula::Len { value, .. } => {
            let v = u64::from(*value);
            for x in [v.saturating_sub(1), v, v + 1, v + (1 << 32)] {
                out.insert(x);
            }
        }
        _ => {}
    }
}

/// The stream lengths checked (module docs).
pub fn lengths(program: &StreamProgram) -> BTreeSet<u64> {
    let mut out = BTreeSet::from([
        0,
        1,
        2,
        (1 << 31) - 1,
        1 << 31,
        (1 << 32) - 1,
        1 << 32,
        (1 << 32) + 1,
        (1 << 63) - 1,
        1 << 63,
        u64::MAX - 1,
        u64::MAX,
    ]);
    len_constants(&program.program.formula, &mut out);
    len_constants(&program.complete, &mut out);
    out
}

/// Runs the check; returns how many cases ran.
pub fn check(
    program: &StreamProgram,
    object: &Object,
    map: &CodeMap,
) -> Result<u64, ValidationError> {
    let ir = &program.program;
    let scans = scan_cases(&ir.scans, map.passes.iter().flat_map(|p| &p.machines))?;
    let combos = combinations(&scans);

    let mut ran = 0;
    for len in lengths(program) {
        for fin in [false, true] {
            // A segment without new bytes is judged only with FIN.
            if len == 0 && !fin {
                continue;
            }
            let n = usize::from(len > 0);
            let mut vm = probe::vm(object, len - n as u64, &b"a"[..n], fin);
            vm.intercept(vm::helper::LOOP);
            let (mut regs, r10) = vm.entry_start();
            let fin_shown = if fin { " with FIN" } else { "" };
            let during = || format!("the run to the formula, stream length {len}{fin_shown}");
            if let Reached::Exit(r0) = run_to(&mut vm, 0, &mut regs, map.formula_start, during)? {
                return Err(ValidationError::Map(format!(
                    "the entry returns {r0} before the formula, stream length {len}{fin_shown}"
                )));
            }
            let at_formula = vm.snapshot(regs);
            for states in &combos {
                let accepted: Vec<bool> = states
                    .iter()
                    .enumerate()
                    .map(|(k, &s)| scans[k].machine.accepts(s))
                    .collect();
                let meaning = evaluate_stream(&ir.formula, len, &accepted)?;
                let complete = evaluate_stream(&program.complete, len, &accepted)?;
                let want = if !meaning {
                    Outcome::Predicate
                } else if fin && !complete {
                    Outcome::Incomplete
                } else {
                    Outcome::Pass
                };
                for ring_full in [false, true] {
                    ran += 1;
                    let mut regs = vm.restore(&at_formula);
                    vm.watch = WatchState {
                        ring_full,
                        ..WatchState::default()
                    };
                    poke_final_states(&mut vm, r10, &map.final_states, &scans, states)?;
                    let got = vm
                        .exec(Func::Entry, map.formula_start, &mut regs, &[])
                        .map_err(|e| e.to_string())
                        .and_then(|stop| observed(&vm, stop));
                    if got != Ok(want) {
                        return Err(ValidationError::StreamFormula {
                            len,
                            fin,
                            accepted,
                            states: format!(
                                "{states:?}, ring buffer {}",
                                if ring_full { "full" } else { "free" }
                            ),
                            got: got.map_or_else(|e| e, |o| o.describe().to_string()),
                            want: want.describe().into(),
                        });
                    }
                }
            }
        }
    }
    Ok(ran)
}

/// The outcome a run shows: its return value and the one reason counted.
fn observed(vm: &vm::Vm<'_>, stop: Stop) -> Result<Outcome, String> {
    if vm.watch.reserved.is_some() {
        return Err("exits with a ring buffer record outstanding".into());
    }
    let counted = |r: Reason| watch::counter(vm, r as u32).unwrap_or(0);
    let reasons = [
        (Reason::Pass, Outcome::Pass),
        (Reason::Predicate, Outcome::Predicate),
        (Reason::Latched, Outcome::Incomplete),
    ];
    let hits: Vec<Outcome> = reasons
        .iter()
        .filter(|(r, _)| counted(*r) > 0)
        .map(|&(_, o)| o)
        .collect();
    let r0 = match stop {
        Stop::Exit(r0) => r0,
        other => return Err(format!("stops at {other:?}")),
    };
    match (hits.as_slice(), r0) {
        ([Outcome::Pass], 0) => Ok(Outcome::Pass),
        // A RST whose rewrite fails (as the emulation makes it) drops.
        ([o @ (Outcome::Predicate | Outcome::Incomplete)], 2) => Ok(*o),
        _ => Err(format!(
            "returns {r0} with reasons {hits:?} counted (expected exactly one)"
        )),
    }
}
