//! The formula check: the entry's formula code, run from where it starts
//! with the final states, the payload length and the tested bytes set, for
//! every combination of scan results (each scan accepting or rejecting,
//! up to 2^10 combinations; beyond, every single scan flipped from both
//! all-accepting and all-rejecting), every length class (each threshold
//! of a length or byte test, and one either side) and, per scan, every
//! reachable final state. Byte tests get, per tested index, every boundary
//! value of their classes. Each verdict is compared with the IR's
//! [`predicate_ir::Formula::evaluate`].

use std::collections::BTreeSet;

use emit_bpf::codemap::{CodeMap, MachineMap, StateEncoding};
use predicate_ir::{Formula, Machine, Program, Scan};

use crate::object::Object;
use crate::step::reachable;
use crate::vm::{self, Func, Stop, Vm};
use crate::walk::{final_value, packet_vm, payload_start, run_to, Reached};
use crate::watch::WatchState;
use crate::ValidationError;

/// `TC_ACT_OK` and `TC_ACT_SHOT`.
const PASS: u64 = 0;
const DROP: u64 = 2;
const MAX_EXHAUSTIVE_SCANS: usize = 10;

/// One scan as the formula checks set its result: its machine, how the
/// emitted code holds its state, its reachable states, and one rejecting
/// and one accepting state among them (if it has one).
pub(crate) struct ScanCase<'p> {
    pub machine: &'p Machine,
    pub encoding: StateEncoding,
    pub states: Vec<u32>,
    pub reject_accept: [Option<u32>; 2],
}

/// The [`ScanCase`] of each of `scans`, its encoding found among
/// `placed` (the machines of the emitted passes).
pub(crate) fn scan_cases<'p, 'm>(
    scans: &'p [Scan],
    placed: impl Iterator<Item = &'m MachineMap> + Clone,
) -> Result<Vec<ScanCase<'p>>, ValidationError> {
    let mut out = Vec::new();
    for (k, scan) in scans.iter().enumerate() {
        let encoding = placed
            .clone()
            .find(|m| m.scan == k)
            .map(|m| m.encoding.clone())
            .ok_or_else(|| ValidationError::Map(format!("scan {k} is in no pass")))?;
        let states = reachable(&scan.machine);
        let acc = states.iter().copied().find(|&s| scan.machine.accepts(s));
        let rej = states.iter().copied().find(|&s| !scan.machine.accepts(s));
        out.push(ScanCase {
            machine: &scan.machine,
            encoding,
            states,
            reject_accept: [rej, acc],
        });
    }
    Ok(out)
}

/// The combinations of final states checked, a state per scan: every
/// combination of results (each scan accepting or rejecting, up to
/// 2^[`MAX_EXHAUSTIVE_SCANS`]; beyond, each scan flipped from all
/// accepting and all rejecting), then every reachable final state of each
/// scan with the others accepting. A result no reachable state gives
/// cannot occur: a combination needing one is left out.
pub(crate) fn combinations(scans: &[ScanCase<'_>]) -> Vec<Vec<u32>> {
    let m = scans.len();
    let rep = |k: usize, accept: bool| scans[k].reject_accept[usize::from(accept)];
    let mut combos: Vec<Vec<Option<u32>>> = Vec::new();
    if m <= MAX_EXHAUSTIVE_SCANS {
        for bits in 0u32..(1 << m) {
            combos.push((0..m).map(|k| rep(k, bits >> k & 1 == 1)).collect());
        }
    } else {
        for base in [false, true] {
            combos.push((0..m).map(|k| rep(k, base)).collect());
            for flip in 0..m {
                combos.push((0..m).map(|k| rep(k, base != (k == flip))).collect());
            }
        }
    }
    for k in 0..m {
        for &s in &scans[k].states {
            let mut c: Vec<Option<u32>> = (0..m).map(|j| rep(j, true).or(rep(j, false))).collect();
            c[k] = Some(s);
            combos.push(c);
        }
    }
    combos
        .into_iter()
        .filter_map(|c| c.into_iter().collect())
        .collect()
}

/// Writes each scan's state in `combo` to its final-state slot (offsets
/// from `r10` in `final_states`), where the formula reads it.
pub(crate) fn poke_final_states(
    vm: &mut Vm<'_>,
    r10: u64,
    final_states: &[i16],
    scans: &[ScanCase<'_>],
    combo: &[u32],
) -> Result<(), ValidationError> {
    for (k, (scan, &s)) in scans.iter().zip(combo).enumerate() {
        let v = final_value(scan.machine, &scan.encoding, s);
        vm.poke(
            r10.wrapping_add(final_states[k] as i64 as u64),
            &v.to_le_bytes(),
        )
        .map_err(ValidationError::Map)?;
    }
    Ok(())
}

fn atoms<'f>(f: &'f Formula, out: &mut Vec<&'f Formula>) {
    match f {
        Formula::Not(g) => atoms(g, out),
        Formula::And(gs) | Formula::Or(gs) => gs.iter().for_each(|g| atoms(g, out)),
        other => out.push(other),
    }
}

/// Runs the formula check; returns how many combinations ran.
pub fn check(program: &Program, object: &Object, map: &CodeMap) -> Result<u64, ValidationError> {
    let mut leaves = Vec::new();
    atoms(&program.formula, &mut leaves);
    // Length classes.
    let mut lengths = BTreeSet::from([1u32, crate::walk::MAX_PAYLOAD]);
    let mut byte_values: std::collections::BTreeMap<u32, BTreeSet<u8>> = Default::default();
    for a in &leaves {
        match a {
            Formula::Len { value, .. } => {
                for v in [value.saturating_sub(1), *value, value.saturating_add(1)] {
                    lengths.insert(v);
                }
            }
            Formula::Byte { index, class } => {
                for v in [*index, index + 1, index + 2] {
                    lengths.insert(v);
                }
                let set = byte_values.entry(*index).or_default();
                for &(lo, hi) in class.ranges() {
                    for v in [lo.checked_sub(1), Some(lo), Some(hi), hi.checked_add(1)]
                        .into_iter()
                        .flatten()
                    {
                        set.insert(v);
                    }
                }
                set.insert(0);
            }
            _ => {}
        }
    }
    lengths.retain(|&n| (1..=crate::walk::MAX_PAYLOAD).contains(&n));
    let frame_payload = *lengths.iter().max().expect("nonempty") as usize;

    // The entry at the formula, every loop treated as run to the end.
    let mut payload = vec![b'a'; frame_payload];
    let mut vm = packet_vm(object, &payload);
    vm.intercept(vm::helper::LOOP);
    let (mut regs, r10) = vm.entry_start();
    let during = || "the run to the formula".to_string();
    if let Reached::Exit(r0) = run_to(&mut vm, 0, &mut regs, map.formula_start, during)? {
        return Err(ValidationError::Map(format!(
            "the entry returns {r0} before the formula on a {frame_payload}-byte payload"
        )));
    }
    let at_formula = vm.snapshot(regs);
    let payload_start = payload_start(&vm, r10, map)? as usize;

    let scans = scan_cases(
        &program.scans,
        map.passes
            .iter()
            .flat_map(|p| &p.machines)
            .chain(map.inline.iter().flat_map(|p| &p.machines)),
    )?;
    let combos = combinations(&scans);
    let rounds = byte_values.values().map(BTreeSet::len).max().unwrap_or(1);

    let mut ran = 0u64;
    for &n in &lengths {
        // The formula's inputs on the stack: the payload length and the
        // scans' final states.
        let set_inputs = |vm: &mut Vm<'_>, combo: &[u32]| {
            vm.poke(
                r10.wrapping_add(map.payload_len as i64 as u64),
                &(n as u16).to_le_bytes(),
            )
            .map_err(ValidationError::Map)?;
            poke_final_states(vm, r10, &map.final_states, &scans, combo)
        };
        for combo in &combos {
            for round in 0..rounds {
                let regs = vm.restore_stacks(&at_formula);
                set_inputs(&mut vm, combo)?;
                let mut shown = String::new();
                for (&index, values) in &byte_values {
                    let v = *values.iter().nth(round % values.len()).expect("nonempty");
                    if (index as usize) < payload.len() {
                        payload[index as usize] = v;
                        vm.poke_packet(payload_start + index as usize, &[v])
                            .map_err(ValidationError::Map)?;
                        shown.push_str(&format!(", P[{index}] = {v:#04x}"));
                    }
                }
                ran += 1;
                let accepted: Vec<bool> = combo
                    .iter()
                    .enumerate()
                    .map(|(k, &s)| scans[k].machine.accepts(s))
                    .collect();
                let want = program.formula.evaluate(&payload[..n as usize], &accepted);
                // The verdict exits record drops in the ring buffer: the
                // verdict must be the same whether the ring is free or full.
                let mut got = Ok(Stop::Exit(u64::MAX));
                for ring_full in [false, true] {
                    let mut run_regs = regs;
                    if ring_full {
                        run_regs = vm.restore_stacks(&at_formula);
                        set_inputs(&mut vm, combo)?;
                    }
                    vm.watch = WatchState {
                        ring_full,
                        ..WatchState::default()
                    };
                    got = vm
                        .exec(Func::Entry, map.formula_start, &mut run_regs, &[])
                        .and_then(|stop| {
                            if vm.watch.reserved.is_some() {
                                return Err(vm::VmError {
                                    function: object.entry.name.clone(),
                                    slot: map.formula_start,
                                    what: "exits with a ring buffer record outstanding".into(),
                                });
                            }
                            Ok(stop)
                        })
                        .map_err(|mut e| {
                            e.what = format!(
                                "(ring buffer {}) {}",
                                if ring_full { "full" } else { "free" },
                                e.what
                            );
                            e
                        });
                    let expected = if want { PASS } else { DROP };
                    if got != Ok(Stop::Exit(expected)) {
                        if let Ok(Stop::Exit(r)) = &got {
                            if ring_full {
                                got = Err(vm::VmError {
                                    function: object.entry.name.clone(),
                                    slot: map.formula_start,
                                    what: format!("with the ring buffer full, returns {r}"),
                                });
                            }
                        }
                        break;
                    }
                }
                let verdict = |r: u64| match r {
                    PASS => "PASS".to_string(),
                    DROP => "DROP".to_string(),
                    other => format!("return value {other}"),
                };
                let fail = |got: String| ValidationError::Formula {
                    len: n,
                    accepted: accepted.clone(),
                    bytes: format!("{shown}{}", describe_states(combo)),
                    got,
                    want: verdict(if want { PASS } else { DROP }),
                };
                match got {
                    Ok(Stop::Exit(r)) if r == (if want { PASS } else { DROP }) => {}
                    Ok(Stop::Exit(r)) => return Err(fail(verdict(r))),
                    Ok(other) => return Err(fail(format!("{other:?}"))),
                    Err(e) => return Err(fail(e.to_string())),
                }
            }
        }
    }
    Ok(ran)
}

fn describe_states(combo: &[u32]) -> String {
    let states: Vec<String> = combo.iter().map(u32::to_string).collect();
    format!(", final states [{}]", states.join(", "))
}

/// A stream formula's value (`program.formula` or `complete` of a
/// [`predicate_ir::StreamProgram`]) at stream length `len` (64 bits), given
/// whether each scan accepted: what [`Formula::evaluate`] gives a payload
/// of `len` bytes. A byte test (lowering makes them scans in stream
/// programs) is refused.
pub fn evaluate_stream(f: &Formula, len: u64, accepted: &[bool]) -> Result<bool, ValidationError> {
    Ok(match f {
        Formula::Const(b) => *b,
        Formula::Not(g) => !evaluate_stream(g, len, accepted)?,
        Formula::And(gs) => {
            let mut all = true;
            for g in gs {
                all &= evaluate_stream(g, len, accepted)?;
            }
            all
        }
        Formula::Or(gs) => {
            let mut any = false;
            for g in gs {
                any |= evaluate_stream(g, len, accepted)?;
            }
            any
        }
        Formula::Len { cmp, value } => cmp.holds(len, u64::from(*value)),
        Formula::Scan(id) => *accepted.get(*id).ok_or_else(|| {
            ValidationError::Map(format!("the formula reads scan {id}, which does not exist"))
        })?,
        Formula::Byte { .. } => {
            return Err(ValidationError::Map(
                "a payload byte test in a stream formula".into(),
            ))
        }
    })
}
