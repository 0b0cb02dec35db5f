//! Translation validation of the `http_response` view's byte callback
//! (emit-bpf's `codegen/http.rs`): every machine step it holds, the
//! framing DFA's and each header and body scan's, run on every reachable
//! state and every byte (by [`crate::step`]'s byte cells), against the IR.
//!
//! A step is straight-line register code: the state in its registers, the
//! byte in `r8`. Each run starts with only those registers defined (a step
//! that reads any other register, or memory, fails), must end at the
//! step's end slot without leaving its code, must leave the IR's next
//! state there, and must change no other register.
//!
//! Not validated here (docs/validation.md, "Stream diodes"): the rest of
//! the callback (the byte read, the window tests, the counters, the
//! boundary formulas, the resets) and the entry's stream code; the kernel
//! tests (tests/stream_http.rs) compare those with the reference diode.

use emit_bpf::codemap::{HttpMachine, HttpMap};
use predicate_ir::{Machine, StreamProgram};

use crate::step::{
    byte_cells_after_load, compare, encode, exits, reachable, show_state, state_regs,
};
use crate::vm::{Func, Regs, Stop, Vm};
use crate::{Object, ValidationError};

/// Checks every step of the byte callback; returns the instructions
/// executed.
pub fn check_steps(
    program: &StreamProgram,
    object: &Object,
    map: &HttpMap,
) -> Result<u64, ValidationError> {
    let http = program
        .http
        .as_ref()
        .ok_or_else(|| ValidationError::Map("an http map for a program without the view".into()))?;
    let callback = object.callbacks.get(map.callback).ok_or_else(|| {
        ValidationError::Map(format!("no callback {} for the http view", map.callback))
    })?;
    let frame = http.frame.machine();
    let mut framed = false;
    let mut stepped = (
        vec![false; program.program.scans.len()],
        vec![false; http.body.program.scans.len()],
    );
    let mut vm = Vm::new(object);
    vm.forbid_stores = true;
    let mut executed = 0;
    for (index, step) in map.steps.iter().enumerate() {
        let (machine, scan): (&Machine, usize) = match step.machine {
            HttpMachine::Frame => {
                framed = true;
                (&frame, usize::MAX)
            }
            HttpMachine::Headers(id) => {
                let s = program.program.scans.get(id).ok_or_else(|| {
                    ValidationError::Map(format!("step {index}: no header scan {id}"))
                })?;
                stepped.0[id] = true;
                (&s.machine, id)
            }
            HttpMachine::Body(id) => {
                let s = http.body.program.scans.get(id).ok_or_else(|| {
                    ValidationError::Map(format!("step {index}: no body scan {id}"))
                })?;
                stepped.1[id] = true;
                (&s.machine, id)
            }
        };
        // An empty step is no code: the emitter writes none for a machine
        // whose every state is a sink (a one-byte scan of an empty class).
        // It is checked like any other: each reachable state must then be
        // its own next state on every byte.
        if step.start > step.end || step.end > callback.insns.len() {
            return Err(ValidationError::Map(format!(
                "step {index}: range {}..{} outside {}",
                step.start, step.end, callback.name
            )));
        }
        let own = state_regs(&step.encoding);
        let stops = exits(&callback.insns, step.start, step.end);
        let cells = byte_cells_after_load(&callback.insns, step.start, step.start, step.end);
        for state in reachable(machine) {
            for &(first, _) in &cells {
                let mut regs = Regs::default();
                encode(machine, &step.encoding, state, &mut regs);
                regs.set(8, u64::from(first));
                let before = regs;
                vm.budget = 100_000;
                let stop = vm.exec(Func::Callback(map.callback), step.start, &mut regs, &stops);
                executed += 100_000 - vm.budget;
                let err = |byte: u8, what: String| ValidationError::Step {
                    scan,
                    pass: map.callback,
                    offset: index as u16,
                    state: show_state(machine, state),
                    byte,
                    what: format!("http view, {:?}: {what}", step.machine),
                };
                match stop {
                    Ok(Stop::At(at)) if at == step.end => {}
                    Ok(other) => {
                        return Err(err(
                            first,
                            format!("the step does not end at slot {} ({other:?})", step.end),
                        ))
                    }
                    Err(e) => return Err(err(first, e.to_string())),
                }
                // Every byte of the cell takes this run's path.
                let (_, last) = cells
                    .iter()
                    .copied()
                    .find(|&(f, _)| f == first)
                    .expect("from cells");
                for b in first..=last {
                    let mut before_b = before;
                    before_b.set(8, u64::from(b));
                    let mut after_b = regs;
                    after_b.set(8, u64::from(b));
                    compare(machine, &step.encoding, state, b, &before_b, &after_b, &own)
                        .map_err(|what| err(b, what))?;
                }
            }
        }
    }
    if !framed {
        return Err(ValidationError::Map(
            "no framing step in the http map".into(),
        ));
    }
    // Every scan that can step must have a step (a scan without one would
    // never leave its initial state).
    if let Some(id) = stepped.0.iter().position(|s| !s) {
        return Err(ValidationError::Map(format!(
            "header scan {id} has no step"
        )));
    }
    if let Some(id) = stepped.1.iter().position(|s| !s) {
        return Err(ValidationError::Map(format!("body scan {id} has no step")));
    }
    Ok(executed)
}
