//! The step check by cells of byte values (one run per cell of bytes a
//! step cannot tell apart) against the same check on every byte value: on
//! the seeds both accept, and on every change by one of an immediate in
//! the steps of two seeds (byte comparisons, state assignments) and of a
//! jump offset there, both accept or both reject.

mod support;

use lagic_validate::isa::class;
use lagic_validate::step::{self, Bytes};
use lagic_validate::{patch, prefilter, Object};

/// The step check as `validate` runs it: on the object with every chunk
/// stepped byte by byte (a prefilter could otherwise jump over the steps
/// the check captures its starting registers at).
fn run(c: &support::Compiled, object: &[u8], bytes: Bytes) -> Result<u64, String> {
    let parsed = Object::parse(object).map_err(|e| e.to_string())?;
    let stepped = prefilter::bypassed(&parsed, &c.map).map_err(|e| e.to_string())?;
    step::check_with(&c.program, &stepped, &c.map, bytes)
        .map(|(executed, _)| executed)
        .map_err(|e| e.to_string())
}

#[test]
fn seeds_pass_with_fewer_runs_by_cells() {
    for name in support::seed_names() {
        let c = support::seed(&name);
        let cells = run(&c, &c.object, Bytes::Cells).unwrap_or_else(|e| panic!("{name}: {e}"));
        let every = run(&c, &c.object, Bytes::Every).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(cells <= every, "{name}: {cells} > {every}");
        eprintln!("{name}: {cells} instructions by cells, {every} on every byte");
    }
}

fn differential(name: &str) {
    let c = support::seed(name);
    // Every step range of the first pass, once per distinct code.
    let mut mutants = Vec::new();
    for s in &c.map.passes[0].steps {
        for slot in s.start + 1..s.end {
            let Ok(b) = patch::slot_bytes(&c.object, ".text", slot) else {
                continue;
            };
            let code = b[0];
            let k = code & 7;
            let imm_form = code & 0x08 == 0;
            let alu = k == class::ALU || k == class::ALU64;
            let jmp =
                (k == class::JMP || k == class::JMP32) && !matches!(code >> 4, 0x0 | 0x8 | 0x9);
            if jmp {
                let off = patch::off(&c.object, ".text", slot).unwrap();
                let mut m = c.object.clone();
                patch::set_off(&mut m, ".text", slot, off.wrapping_add(1)).unwrap();
                mutants.push(m);
            }
            if !(imm_form && (alu || jmp)) {
                continue;
            }
            let imm = patch::imm(&c.object, ".text", slot).unwrap();
            for d in [-1, 1] {
                let mut m = c.object.clone();
                patch::set_imm(&mut m, ".text", slot, imm.wrapping_add(d)).unwrap();
                mutants.push(m);
            }
        }
        // The single-byte step (the last range) and one chunk copy suffice:
        // the other copies are the same code.
        if mutants.len() > 400 {
            break;
        }
    }
    assert!(mutants.len() > 20, "{name}: {} mutants", mutants.len());
    let (mut rejected, mut accepted) = (0, 0);
    for m in &mutants {
        let cells = run(&c, m, Bytes::Cells);
        let every = run(&c, m, Bytes::Every);
        assert_eq!(
            cells.is_ok(),
            every.is_ok(),
            "{name}: by cells {cells:?}, on every byte {every:?}"
        );
        if cells.is_ok() {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    eprintln!("{name}: {rejected} step mutants rejected, {accepted} accepted by both");
    assert!(rejected > 0);
}

#[test]
fn cells_and_every_byte_agree_on_mutants_of_a_dfa_step() {
    differential("hateless");
}

#[test]
fn cells_and_every_byte_agree_on_mutants_of_a_depth_counter_step() {
    differential("json_depth");
}
