//! Random specs (`predicate_ir::arbitrary`): every object the emitter
//! writes validates, and the interpreter's whole-program verdict on random
//! payloads equals the IR's. Case counts honour `LAGIC_PROPTEST_CASES`;
//! failing seeds persist in `tests/proptest-regressions/<property>.txt`.

mod support;

use emit_bpf::decision::{COUNTER_SLOTS, LOST_EVENTS_SLOT};
use lagic_validate::vm::{Skb, Vm};
use lagic_validate::watch::counter;
use lagic_validate::Object;
use predicate_ir::arbitrary::{arb_payload, arb_spec};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};

fn runner(property: &str, default_cases: u32) -> TestRunner {
    let cases = match std::env::var("LAGIC_PROPTEST_CASES") {
        Ok(text) => text
            .trim()
            .parse()
            .expect("LAGIC_PROPTEST_CASES is a case count"),
        Err(_) => default_cases,
    };
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/proptest-regressions")
        .join(format!("{property}.txt"));
    let path: &'static str = Box::leak(path.to_string_lossy().into_owned().into_boxed_str());
    TestRunner::new(Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(path))),
        ..Config::default()
    })
}

#[test]
fn random_specs_validate_and_run_like_the_ir() {
    // Each validation covers 65,536 lengths per pass by classes of lengths,
    // which is cheap: many more cases than when every length ran alone.
    let mut runner = runner("random_specs_validate", 48);
    let strategy = (arb_spec(), proptest::collection::vec(arb_payload(), 1..6));
    runner
        .run(&strategy, |(spec, payloads)| {
            let Ok(program) = predicate_ir::lower(&spec) else {
                return Ok(()); // beyond the lowering's limits: nothing emitted
            };
            let Ok((module, map)) = emit_bpf::compile_mapped(&program) else {
                return Ok(()); // beyond the emitter's limits
            };
            let object = module
                .write_elf()
                .expect("the writer takes what codegen makes");
            if let Err(e) = lagic_validate::validate(&program, &object, &map) {
                return Err(TestCaseError::fail(format!("{}: {e}", spec.name)));
            }
            let parsed = Object::parse(&object).expect("parses");
            for payload in payloads {
                if payload.len() > 3000 {
                    continue;
                }
                let want = if program.verdict(&payload) { 0 } else { 2 };
                // The ring buffer free and full: same verdict; the counters
                // and events record it (docs/watch.md).
                for ring_full in [false, true] {
                    let mut vm = Vm::new(&parsed);
                    lagic_validate::watch::install(&mut vm);
                    vm.watch.ring_full = ring_full;
                    vm.set_skb(Skb::linear(lagic_validate::frame::ipv4_tcp(&payload)));
                    let got = vm
                        .run_program()
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(got, want, "payload {:?}, ring full {}", payload, ring_full);
                    prop_assert!(vm.watch.reserved.is_none(), "a record left outstanding");
                    let counters: Vec<u64> = (0..COUNTER_SLOTS)
                        .map(|slot| counter(&vm, slot).unwrap())
                        .collect();
                    let lost = counters[LOST_EVENTS_SLOT as usize];
                    let reasons: u64 = counters.iter().sum::<u64>() - lost;
                    prop_assert_eq!(reasons, 1, "one reason counted: {:?}", counters);
                    prop_assert_eq!(counters[0] == 1, want == 0, "pass counted iff passed");
                    let dropped = u64::from(want == 2);
                    prop_assert_eq!(vm.watch.submitted, if ring_full { 0 } else { dropped });
                    prop_assert_eq!(lost, if ring_full { dropped } else { 0 });
                }
            }
            Ok(())
        })
        .unwrap();
}
