//! The walk check by classes of payload lengths (one symbolic run per
//! class) against the same check run on every length one by one: they
//! must accept and reject the same objects, on the seeds, on random specs
//! and on every small change to the immediates and jumps of the code the
//! walk runs (the pass's setup in the entry and the callback outside its
//! steps).

mod support;

use lagic_validate::isa::Insn;
use lagic_validate::walk::{self, Mode, Stats};
use lagic_validate::{prefilter, Object, ValidationError};
use predicate_ir::arbitrary::arb_spec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// `object` parsed, with its prefilters bypassed as `validate` does before
/// the step and walk checks (a prefilter is checked on its own).
fn stepped(c: &support::Compiled, object: &[u8]) -> Result<Object, ValidationError> {
    prefilter::bypassed(&Object::parse(object)?, &c.map)
}

fn walk(c: &support::Compiled, object: &[u8], mode: Mode) -> Result<Stats, ValidationError> {
    let parsed = stepped(c, &c.object)?;
    let (_, checked) = lagic_validate::step::check(&c.program, &parsed, &c.map)?;
    walk_with(c, object, mode, &checked)
}

/// The walk check alone on `object`, with the steps of the unchanged
/// object as checked (a mutant's steps are the step check's business).
fn walk_with(
    c: &support::Compiled,
    object: &[u8],
    mode: Mode,
    checked: &[Vec<usize>],
) -> Result<Stats, ValidationError> {
    let parsed = stepped(c, object)?;
    walk::check_with(
        &c.program,
        &parsed,
        &c.map,
        0..=walk::MAX_LEN,
        checked,
        mode,
    )
}

/// Lengths no frame of at most 65,535 bytes carries, run one by one.
const FRAMELESS: u64 = (walk::MAX_LEN - walk::MAX_PAYLOAD) as u64;

#[test]
fn seeds_are_proven_by_classes() {
    for name in support::seed_names() {
        let c = support::seed(&name);
        let passes = c.map.passes.len() as u64;
        let stats = walk(&c, &c.object, Mode::Classes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(stats.lengths, 65_536 * passes, "{name}: {stats:?}");
        // Every length a frame can carry is in a class proven symbolically.
        assert_eq!(stats.one_by_one, FRAMELESS * passes, "{name}: {stats:?}");
        assert!(stats.classes <= 1_000 * passes, "{name}: {stats:?}");
        let reference =
            walk(&c, &c.object, Mode::OneByOne).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(reference.lengths, stats.lengths, "{name}");
        eprintln!("{name}: {stats:?}");
    }
}

#[test]
fn random_specs_are_proven_by_classes() {
    let cases = std::env::var("LAGIC_PROPTEST_CASES")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(10);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&arb_spec(), |spec| {
            let Ok(program) = predicate_ir::lower(&spec) else {
                return Ok(());
            };
            let Ok((module, map)) = emit_bpf::compile_mapped(&program) else {
                return Ok(());
            };
            let object = module.write_elf().expect("writes");
            let c = support::Compiled {
                program,
                object,
                map,
            };
            let stats = walk(&c, &c.object, Mode::Classes)
                .map_err(|e| TestCaseError::fail(format!("{}: {e}", spec.name)))?;
            let passes = c.map.passes.len() as u64;
            // Table-driven passes included: their setup's `.rodata` address
            // load is a constant to the classes.
            prop_assert_eq!(stats.one_by_one, FRAMELESS * passes, "{:?}", stats);
            prop_assert_eq!(stats.lengths, 65_536 * passes, "{:?}", stats);
            Ok(())
        })
        .unwrap();
}

fn differential(name: &str, c: support::Compiled) {
    let parsed = stepped(&c, &c.object).unwrap();
    let pass = &c.map.passes[0];
    // The callback outside its steps (the steps are the step check's).
    let mut in_step = vec![false; parsed.callbacks[0].insns.len()];
    for s in &pass.steps {
        in_step[s.start..s.end].iter_mut().for_each(|x| *x = true);
    }
    let mut mutants = support::mutations(
        &c.object,
        "classifier",
        pass.setup_start..c.map.formula_start,
    );
    let outside: Vec<usize> = (0..in_step.len()).filter(|&s| !in_step[s]).collect();
    for &slot in &outside {
        if matches!(parsed.callbacks[0].insns[slot], Insn::Wide) {
            continue;
        }
        mutants.extend(support::mutations(&c.object, ".text", slot..slot + 1));
    }
    assert!(mutants.len() > 20, "{name}: {} mutants", mutants.len());
    let (_, checked) = lagic_validate::step::check(&c.program, &parsed, &c.map).unwrap();
    let (rejected, _) =
        support::classes_agree_on(name, &mutants, |m, mode| walk_with(&c, m, mode, &checked));
    assert!(rejected > 0);
}

#[test]
fn classes_and_one_by_one_agree_on_mutants_of_an_unbounded_window() {
    differential("hateless", support::seed("hateless"));
}

/// A bounded window long enough to be walked by `bpf_loop`, not inline
/// (the seeds' bounded windows are all inline now): all bytes of
/// `[0, 1000)` are text.
#[test]
fn classes_and_one_by_one_agree_on_mutants_of_a_bounded_window() {
    let text = r#"{"version": 1, "name": "text1000", "predicate": {"op": "all", "window": {"start": 0, "end": 1000}, "class": [[9, 10], [13, 13], [32, 126]]}}"#;
    let c =
        support::compile_program(predicate_ir::lower(&predicate_ir::parse(text).unwrap()).unwrap());
    assert!(
        c.map.inline.is_empty() && !c.map.passes.is_empty(),
        "walked by bpf_loop"
    );
    differential("text1000", c);
}
