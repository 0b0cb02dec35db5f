//! The central property: the reference meaning, the normalized predicate
//! and the lowered program agree on every payload, for random specs.
//! Also: normalization is idempotent, and the canonical writer and the
//! reader are each other's inverse on random specs.

use predicate_ir::arbitrary::{arb_payload, arb_pred, arb_spec, arb_window};
use predicate_ir::spec::MAX_OFFSET;
use predicate_ir::{eval, lower, normalize, parse, Pred, Spec};
use proptest::collection::vec;
use proptest::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};

mod common;
use common::runner;

#[test]
fn eval_normalize_and_lowered_program_agree() {
    let mut runner = runner("eval-normalize-lowered", 2500);
    let cases = runner.config().cases;
    let lowered = AtomicUsize::new(0);
    let payloads_checked = AtomicUsize::new(0);
    let result = runner.run(
        &(arb_spec(), vec(arb_payload(), 1..10)),
        |(spec, payloads)| {
            let normalized = normalize(&spec.predicate);
            prop_assert_eq!(
                &normalize(&normalized),
                &normalized,
                "normalize is not idempotent"
            );
            let program = lower(&spec).ok();
            if program.is_some() {
                lowered.fetch_add(1, Ordering::Relaxed);
            }
            // Every short prefix of each payload too: payload lengths then
            // sweep across window starts, ends and `len` constants.
            let cases = payloads.iter().flat_map(|p| {
                let short = p.len().min(40);
                (0..=short)
                    .map(move |k| &p[..k])
                    .chain((p.len() > short).then_some(&p[..]))
            });
            for payload in cases {
                let expected = eval(&spec.predicate, payload);
                prop_assert_eq!(
                    eval(&normalized, payload),
                    expected,
                    "normalized {} disagrees on {:?}",
                    normalized,
                    String::from_utf8_lossy(payload)
                );
                if let Some(program) = &program {
                    prop_assert_eq!(
                        program.evaluate(payload),
                        expected,
                        "program\n{}disagrees on {:?}",
                        program,
                        String::from_utf8_lossy(payload)
                    );
                }
                payloads_checked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        },
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    let lowered = lowered.into_inner();
    eprintln!(
        "{lowered} of {cases} random specs lowered within the default limits; {} payloads checked",
        payloads_checked.into_inner()
    );
    // Only pathological random patterns may exceed the limits.
    assert!(
        lowered * 100 >= cases as usize * 95,
        "only {lowered} of {cases} lowered"
    );
}

/// Payloads at the top of the length range exercise the folds that rely on
/// `n <= MAX_OFFSET` and the windows near the end of the offset range.
#[test]
fn agree_on_maximal_payloads() {
    let big = (any::<u8>(), 0usize..4).prop_map(|(fill, cut)| {
        let mut p = vec![fill; MAX_OFFSET as usize - cut];
        let len = p.len();
        p[len - 1] = b'x';
        p
    });
    let leaf_at_the_top = (arb_window(), arb_pred(1));
    let result = runner("maximal-payloads", 1000).run(
        &(leaf_at_the_top, big),
        |((window, pred), payload)| {
            let preds = [
                pred,
                Pred::Any {
                    window,
                    class: predicate_ir::ByteClass::from_bytes(*b"x"),
                },
                Pred::All {
                    window,
                    class: predicate_ir::ByteClass::empty(),
                },
            ];
            for pred in preds {
                let spec = Spec {
                    name: "top".into(),
                    description: String::new(),
                    policy: Default::default(),
                    predicate: pred.clone(),
                    mode: predicate_ir::Mode::Packet,
                };
                let expected = eval(&pred, &payload);
                prop_assert_eq!(eval(&normalize(&pred), &payload), expected, "{}", pred);
                if let Ok(program) = lower(&spec) {
                    prop_assert_eq!(program.evaluate(&payload), expected, "{}", pred);
                }
            }
            Ok(())
        },
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn canonical_writer_and_reader_are_inverse() {
    let result = runner("writer-reader-inverse", 1000).run(&arb_spec(), |spec| {
        let text = spec.to_json_string();
        let back = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(&back, &spec);
        prop_assert_eq!(back.to_json(), spec.to_json());
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
