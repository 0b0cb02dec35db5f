//! Table-driven automata (a block list too large for branchy code): the
//! validator runs the table step on every reachable state and byte,
//! reading the object's own `.rodata`, so a wrong table entry, a wrong
//! class or a table step that leaves its code fails validation and names
//! the state and the byte.

mod support;

use lagic_validate::patch;
use lagic_validate::ValidationError;
use predicate_ir::{ByteClass, Machine, Pred, Spec, Window};

/// `not (or of contains)` over `words`, each case-insensitive.
fn block_list(words: &[&str]) -> support::Compiled {
    let args = words
        .iter()
        .map(|w| Pred::Contains {
            window: Window::ALL,
            pattern: w
                .bytes()
                .map(|b| ByteClass::from_bytes([b, b.to_ascii_uppercase()]))
                .collect(),
        })
        .collect();
    let spec = Spec {
        name: "tables".into(),
        description: String::new(),
        policy: Default::default(),
        mode: predicate_ir::Mode::Packet,
        predicate: Pred::Not(Box::new(Pred::Or(args))),
    };
    support::compile_program(predicate_ir::lower(&spec).expect("lowers"))
}

const WORDS: [&str; 12] = [
    "hate", "hat", "hatred", "she", "hers", "his", "ersatz", "tzar", "zebra", "brave", "ravel",
    "velvet",
];

/// Offset in the file of `.rodata` (the one table's class map, then its
/// rows, see emit-bpf's `codegen/table.rs`).
fn rodata(c: &support::Compiled) -> usize {
    patch::slot_offset(&c.object, ".rodata", 0).expect(".rodata")
}

#[test]
fn a_block_list_runs_from_tables_and_validates() {
    let c = block_list(&WORDS);
    let Machine::Dfa(dfa) = &c.program.scans[0].machine else {
        panic!("a DFA");
    };
    assert!(
        dfa.next.len() > 24,
        "{} states: not table-driven",
        dfa.next.len()
    );
    let object = lagic_validate::Object::parse(&c.object).unwrap();
    assert!(!object.rodata.is_empty(), "no .rodata");
    assert_eq!(object.rodata_refs.len(), 1, "one reference from the entry");
    let report = lagic_validate::validate(&c.program, &c.object, &c.map).unwrap();
    // Every reachable state, on one byte of each class at least.
    assert!(report.step_insns >= dfa.next.len() as u64, "{report:?}");
    // The walk by classes: only the lengths no frame carries run one by
    // one (the table's address is a constant to the symbolic run).
    let passes = (c.map.passes.len() + c.map.inline.len()) as u64;
    assert_eq!(
        report.walk_one_by_one,
        u64::from(lagic_validate::walk::MAX_LEN - lagic_validate::walk::MAX_PAYLOAD) * passes,
        "{report:?}"
    );
}

/// The object with the table entry of state 0 on `h` (the entries follow
/// the 256 two-byte byte classes) set to `value`.
fn with_entry_of_0_on_h(c: &support::Compiled, value: u16) -> Vec<u8> {
    let at = rodata(c);
    let class = u16::from_le_bytes([c.object[at + 2 * 0x68], c.object[at + 2 * 0x68 + 1]]);
    let entry = at + 512 + usize::from(class);
    let mut bad = c.object.clone();
    bad[entry..entry + 2].copy_from_slice(&value.to_le_bytes());
    bad
}

/// `e` is the step check's, for state 0 on `h` or `H`.
fn assert_step_error_of_0_on_h(e: &ValidationError) {
    match e {
        ValidationError::Step { state, byte, .. } => {
            assert_eq!(state, "0", "{e}");
            assert!(*byte == b'h' || *byte == b'H', "{e}");
        }
        other => panic!("not a step error: {other}"),
    }
}

#[test]
fn a_wrong_table_entry_is_caught() {
    let c = block_list(&WORDS);
    let Machine::Dfa(dfa) = &c.program.scans[0].machine else {
        panic!("a DFA");
    };
    // State 0 on 'h' goes somewhere else than state 0: point it back to 0.
    assert_ne!(dfa.next[0][usize::from(b'h')], 0);
    let bad = with_entry_of_0_on_h(&c, 0);
    let e = lagic_validate::validate(&c.program, &bad, &c.map).unwrap_err();
    assert_step_error_of_0_on_h(&e);
}

#[test]
fn a_wrong_byte_class_is_caught() {
    let c = block_list(&WORDS);
    let at = rodata(&c);
    // Give 'q' (in no word) the class of 'h'.
    let mut bad = c.object.clone();
    let h = at + 2 * usize::from(b'h');
    let q = at + 2 * usize::from(b'q');
    bad[q] = c.object[h];
    bad[q + 1] = c.object[h + 1];
    let e = lagic_validate::validate(&c.program, &bad, &c.map).unwrap_err();
    match &e {
        ValidationError::Step { byte, .. } => assert_eq!(*byte, b'q', "{e}"),
        other => panic!("not a step error: {other}"),
    }
}

#[test]
fn a_state_beyond_the_table_is_caught() {
    // An entry naming a state the table does not hold: the step leaves a
    // value in the state register that is no state, named as such.
    let c = block_list(&WORDS);
    let Machine::Dfa(dfa) = &c.program.scans[0].machine else {
        panic!("a DFA");
    };
    let bad = with_entry_of_0_on_h(&c, dfa.next.len() as u16 + 3);
    let e = lagic_validate::validate(&c.program, &bad, &c.map).unwrap_err();
    assert!(matches!(e, ValidationError::Step { .. }), "{e}");
}

#[test]
fn an_entry_inside_a_row_is_caught() {
    // Entries are premultiplied: the byte offset of the next state's row.
    // An offset into the middle of a row reads a valid table entry on the
    // next step, but is no state: the step check names it.
    let c = block_list(&WORDS);
    let Some(emit_bpf::codemap::StateEncoding::Dfa { scale, .. }) =
        c.map.passes.first().map(|p| p.machines[0].encoding.clone())
    else {
        panic!("a table pass with a DFA encoding");
    };
    assert!(scale > 2, "premultiplied states, scale {scale}");
    let bad = with_entry_of_0_on_h(&c, scale as u16 + 2);
    let e = lagic_validate::validate(&c.program, &bad, &c.map).unwrap_err();
    assert_step_error_of_0_on_h(&e);
}

#[test]
fn a_code_map_with_the_wrong_scale_is_caught() {
    // The code map says how the registers hold states; with the scale of
    // state numbers, the premultiplied table's results are no states.
    let c = block_list(&WORDS);
    let mut map = c.map.clone();
    for m in &mut map.passes[0].machines {
        if let emit_bpf::codemap::StateEncoding::Dfa { scale, .. } = &mut m.encoding {
            *scale = 1;
        }
    }
    assert_ne!(map, c.map, "the map changed");
    let e = lagic_validate::validate(&c.program, &c.object, &map).unwrap_err();
    assert!(matches!(e, ValidationError::Step { .. }), "{e}");
}

/// The table step's byte cells (bytes whose class-map entry is equal run
/// once per state) against every byte value: both accept the block list,
/// and both reject every change of one class-map entry to another class
/// that the DFA tells apart.
#[test]
fn table_cells_and_every_byte_agree() {
    use lagic_validate::step::{self, Bytes};
    let c = block_list(&WORDS);
    let run = |object: &[u8], bytes| {
        let parsed = lagic_validate::Object::parse(object).unwrap();
        step::check_with(&c.program, &parsed, &c.map, bytes).map(|(insns, _)| insns)
    };
    let cells = run(&c.object, Bytes::Cells).unwrap();
    let every = run(&c.object, Bytes::Every).unwrap();
    assert!(cells * 4 < every, "cells {cells}, every byte {every}");
    let at = rodata(&c);
    let entry =
        |object: &[u8], b: usize| u16::from_le_bytes([object[at + 2 * b], object[at + 2 * b + 1]]);
    let (mut rejected, mut accepted) = (0, 0);
    for b in [b'a', b'h', b'z', b'A', b' ', 0u8, 0xff].map(usize::from) {
        for other in [b'e', b'q', b'0'].map(usize::from) {
            let (mine, theirs) = (entry(&c.object, b), entry(&c.object, other));
            if mine == theirs {
                continue;
            }
            let mut bad = c.object.clone();
            bad[at + 2 * b..at + 2 * b + 2].copy_from_slice(&theirs.to_le_bytes());
            let (fast, slow) = (run(&bad, Bytes::Cells), run(&bad, Bytes::Every));
            assert_eq!(
                fast.is_ok(),
                slow.is_ok(),
                "byte {b:#04x} as {other:#04x}: {fast:?} / {slow:?}"
            );
            if fast.is_ok() {
                accepted += 1;
            } else {
                rejected += 1;
            }
        }
    }
    assert!(rejected > 5, "{rejected} rejected, {accepted} accepted");
}

/// A table pass's 64-byte chunks run as interleaved chains (emit-bpf's
/// `codegen/table.rs`), checked against the chunk's ordinary steps.
fn chained(c: &support::Compiled) -> &emit_bpf::codemap::ChainMap {
    assert_eq!(c.map.chains.len(), 1, "one chained chunk");
    &c.map.chains[0]
}

fn expect_chains_error(c: &support::Compiled, bad: &[u8], what_has: &str) {
    match lagic_validate::validate(&c.program, bad, &c.map) {
        Err(ValidationError::Chains { what, .. }) => {
            assert!(what.contains(what_has), "{what}")
        }
        other => panic!("expected a chains error ({what_has}), got {other:?}"),
    }
}

#[test]
fn a_block_list_steps_its_chunks_as_chains_and_validates() {
    let c = block_list(&WORDS);
    let cm = chained(&c);
    // Words of at most 6 letters: the state depends on the last 5 bytes.
    assert!((1..=5).contains(&cm.resync), "{cm:?}");
    assert!(cm.chains.len() > 1, "{cm:?}");
    let stepped: usize = cm.chains.iter().map(|s| usize::from(s.to - s.from)).sum();
    assert_eq!(stepped, cm.steps.len());
    assert_eq!(
        stepped,
        64 + (cm.chains.len() - 1) * usize::from(cm.resync),
        "{cm:?}"
    );
    lagic_validate::validate(&c.program, &c.object, &c.map).unwrap();
}

#[test]
fn a_chain_step_reading_the_wrong_byte_is_caught() {
    let c = block_list(&WORDS);
    let cm = chained(&c);
    let step = cm.steps.iter().find(|s| s.chain == 1).unwrap();
    let mut bad = c.object.clone();
    patch::set_off(&mut bad, ".text", step.start, step.offset as i16 + 1).unwrap();
    expect_chains_error(&c, &bad, "must first load chunk byte");
}

#[test]
fn a_chain_step_reading_the_wrong_row_is_caught() {
    // The step's last load (the next state) two bytes into the row: the
    // step check, run on the chain's register, finds the wrong state.
    let c = block_list(&WORDS);
    let cm = chained(&c);
    let step = cm.steps.iter().find(|s| s.chain == 2).unwrap();
    let last = step.end - 1;
    let off = patch::off(&c.object, ".text", last).unwrap();
    let mut bad = c.object.clone();
    patch::set_off(&mut bad, ".text", last, off + 2).unwrap();
    match lagic_validate::validate(&c.program, &bad, &c.map) {
        Err(ValidationError::Step { what, .. }) => assert!(!what.is_empty()),
        other => panic!("expected a step error, got {other:?}"),
    }
}

#[test]
fn a_merge_that_misses_a_sink_is_caught() {
    // The merge's first test compares chain 0 with the sink; compare it
    // with another value, and a chain 0 that sank is overridden.
    let c = block_list(&WORDS);
    let cm = chained(&c);
    let first =
        patch::find(&c.object, ".text", cm.merge..cm.slow, 0x55, None).expect("a jne in the merge");
    let imm = patch::imm(&c.object, ".text", first).unwrap();
    let mut bad = c.object.clone();
    patch::set_imm(&mut bad, ".text", first, imm ^ 0x40).unwrap();
    expect_chains_error(&c, &bad, "the merge of chain states");
}

#[test]
fn chains_that_overlap_too_little_are_caught() {
    // The code as emitted, with a map claiming one byte less of overlap
    // suffices: the IR does not resynchronize that fast.
    let c = block_list(&WORDS);
    let mut map = c.map.clone();
    map.chains[0].resync -= 1;
    match lagic_validate::validate(&c.program, &c.object, &map) {
        Err(ValidationError::Chains { what, .. }) => {
            assert!(what.contains("do not resynchronize"), "{what}")
        }
        other => panic!("expected a chains error, got {other:?}"),
    }
}

#[test]
fn a_chain_starting_too_late_is_caught() {
    // Chain 1 told to start one byte later than its code does: its steps
    // no longer match their bytes.
    let c = block_list(&WORDS);
    let mut map = c.map.clone();
    map.chains[0].chains[1].from += 1;
    match lagic_validate::validate(&c.program, &c.object, &map) {
        Err(ValidationError::Chains { what, .. }) => {
            assert!(
                what.contains("resynchronize") || what.contains("steps byte"),
                "{what}"
            )
        }
        other => panic!("expected a chains error, got {other:?}"),
    }
}

#[test]
fn chain_steps_are_proven_by_renaming_checked_ordinary_steps() {
    let c = block_list(&WORDS);
    let object = lagic_validate::Object::parse(&c.object).unwrap();
    let prefiltered = lagic_validate::prefilter::bypassed(&object, &c.map).unwrap();
    let stepped = lagic_validate::chains::bypassed(&prefiltered, &c.map).unwrap();
    let (_, checked) = lagic_validate::step::check(&c.program, &stepped, &c.map).unwrap();
    let Machine::Dfa(dfa) = &c.program.scans[0].machine else {
        panic!("a DFA");
    };
    // With the ordinary steps checked, only the merge runs (a few cases
    // of a few instructions) ...
    let executed = lagic_validate::chains::check(&c.program, &object, &c.map, &checked).unwrap();
    assert!(executed < 1_000, "{executed}");
    // ... without them, every chain step runs on every state.
    let none = vec![Vec::new(); checked.len()];
    let executed = lagic_validate::chains::check(&c.program, &object, &c.map, &none).unwrap();
    assert!(executed > dfa.next.len() as u64 * 9, "{executed}");
}

#[test]
fn a_chain_step_writing_another_chains_register_is_caught() {
    // Chain 1's last load (the next state) written to r0, chain 0's
    // register: no longer a renamed ordinary step, and the step check
    // finds it changing a register not its own.
    let c = block_list(&WORDS);
    let cm = chained(&c);
    let step = cm.steps.iter().find(|s| s.chain == 1).unwrap();
    let last = step.end - 1;
    let at = patch::slot_offset(&c.object, ".text", last).unwrap();
    let mut bad = c.object.clone();
    bad[at + 1] &= 0xf0; // dst (low nibble) = r0
    match lagic_validate::validate(&c.program, &bad, &c.map) {
        Err(ValidationError::Step { what, .. }) => assert!(!what.is_empty()),
        other => panic!("expected a step error, got {other:?}"),
    }
}
