//! The inline walk check by classes of payload lengths (one symbolic run
//! per class, `inline/classes.rs`) against the same check run on every
//! length one by one: they must accept and reject the same objects, on the
//! seeds, on random inline windows and on every small change to the
//! immediates and jumps of an inline pass.

mod support;

use lagic_validate::inline::{self, Mode};
use lagic_validate::walk::{Stats, MAX_LEN, MAX_PAYLOAD};
use lagic_validate::{isa, Object, ValidationError};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Lengths no frame of at most 65,535 bytes carries, run one by one.
const FRAMELESS: u64 = (MAX_LEN - MAX_PAYLOAD) as u64;

/// The inline walks of `object`, its word tests bypassed as `validate`
/// runs them (their byte steps are the walk; `swar` checks the tests).
fn walks(c: &support::Compiled, object: &[u8], mode: Mode) -> Result<Stats, ValidationError> {
    let bypassed = lagic_validate::swar::bypassed(&Object::parse(object)?, &c.map)?;
    inline::check_walks(&c.program, &bypassed, &c.map, mode)
}

fn compile(json: &str) -> support::Compiled {
    support::compile_program(predicate_ir::lower(&predicate_ir::parse(json).unwrap()).unwrap())
}

#[test]
fn inline_seeds_are_proven_by_classes() {
    let mut inline_seeds = 0;
    for name in support::seed_names() {
        let c = support::seed(&name);
        let passes = c.map.inline.len() as u64;
        if passes == 0 {
            continue;
        }
        inline_seeds += 1;
        let stats = walks(&c, &c.object, Mode::Classes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(stats.lengths, 65_536 * passes, "{name}: {stats:?}");
        assert_eq!(stats.one_by_one, FRAMELESS * passes, "{name}: {stats:?}");
        // The code's pieces: up to the start, each length inside, past the end.
        assert!(stats.classes <= 520 * passes, "{name}: {stats:?}");
        let reference =
            walks(&c, &c.object, Mode::OneByOne).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(reference.lengths, stats.lengths, "{name}");
        eprintln!("{name}: {stats:?}");
    }
    assert!(inline_seeds >= 3, "the seeds with inline windows");
}

/// A spec of one predicate over `[start, end)`: all bytes printable, or
/// the window contains `pattern`.
fn window_spec(start: u32, end: u32, contains: Option<&str>) -> String {
    let window = format!(r#""window": {{"start": {start}, "end": {end}}}"#);
    let predicate = match contains {
        None => format!(r#"{{"op": "all", {window}, "class": [[32, 126]]}}"#),
        Some(p) => {
            let classes: Vec<String> = p.bytes().map(|b| format!("[[{b}, {b}]]")).collect();
            format!(
                r#"{{"op": "contains", {window}, "pattern": [{}]}}"#,
                classes.join(", ")
            )
        }
    };
    format!(r#"{{"version": 1, "name": "w", "predicate": {predicate}}}"#)
}

#[test]
fn random_inline_windows_are_proven_by_classes() {
    let cases = std::env::var("LAGIC_PROPTEST_CASES")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(8);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let windows = (0u32..300, 1u32..200, any::<bool>());
    runner
        .run(&windows, |(start, len, contains)| {
            let end = (start + len).min(512);
            let c = compile(&window_spec(start, end, contains.then_some("ab")));
            let passes = c.map.inline.len() as u64;
            prop_assume!(passes > 0);
            let stats = walks(&c, &c.object, Mode::Classes)
                .map_err(|e| TestCaseError::fail(format!("[{start}, {end}): {e}")))?;
            prop_assert_eq!(stats.lengths, 65_536 * passes, "{:?}", stats);
            prop_assert_eq!(stats.one_by_one, FRAMELESS * passes, "{:?}", stats);
            let reference = walks(&c, &c.object, Mode::OneByOne)
                .map_err(|e| TestCaseError::fail(format!("[{start}, {end}): {e}")))?;
            prop_assert_eq!(reference.lengths, stats.lengths);
            Ok(())
        })
        .unwrap();
}

/// Every change by one of an immediate or a jump offset in an inline pass
/// outside its steps' code (the steps are the step check's; the walk skips
/// them): the classes and the one-by-one runs accept and reject alike.
#[test]
fn classes_and_one_by_one_agree_on_mutants_of_an_inline_pass() {
    let c = compile(&window_spec(3, 12, Some("ab")));
    let [pass] = c.map.inline.as_slice() else {
        panic!("one inline pass: {:?}", c.map.inline);
    };
    // The slots a step runs: its range and the code it jumps to after its block.
    let insns = Object::parse(&c.object).unwrap().entry.insns;
    let mut in_step = vec![false; insns.len()];
    for r in &pass.steps {
        let mut todo = vec![r.start];
        while let Some(pc) = todo.pop() {
            if pc == r.end || pc >= insns.len() || in_step[pc] {
                continue;
            }
            in_step[pc] = true;
            match insns[pc] {
                isa::Insn::Jump { cond, off, .. } => {
                    todo.push((pc as i64 + 1 + i64::from(off)) as usize);
                    if cond.is_some() {
                        todo.push(pc + 1);
                    }
                }
                isa::Insn::Exit => {}
                _ => todo.push(pc + 1),
            }
        }
    }
    let outside = (pass.start..pass.end).filter(|&s| !in_step[s]);
    let mutants = support::mutations(&c.object, "classifier", outside);
    assert!(mutants.len() > 20, "{} mutants", mutants.len());
    let (rejected, accepted) =
        support::classes_agree_on("inline pass", &mutants, |m, mode| walks(&c, m, mode));
    assert!(
        rejected > 0 && accepted > 0,
        "{rejected} rejected, {accepted} accepted"
    );
}
