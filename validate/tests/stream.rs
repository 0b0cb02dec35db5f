//! Stream diodes: the step check runs on their callbacks (reached through
//! the emulated flow map) and catches a changed transition; the stream walk
//! and the two formulas are checked and catch a window end off by one, a
//! swapped comparison operand and a wrong `len` constant.

mod support;

use lagic_validate::{patch, validate_stream, ValidationError};
use support::{stream_seed, Section};

#[test]
fn stream_objects_validate_and_a_broken_step_is_caught() {
    for name in [
        "hateless",
        "printable16",
        "json_prefix",
        "json_start",
        "json_depth",
    ] {
        let (program, object, map) = stream_seed(name);
        let report =
            validate_stream(&program, &object, &map).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(report.step_insns > 0, "{name}: no step was run");

        // Change the target of the first state assignment of the first step.
        let text = Section::text(&object);
        let step = &map.passes[0].steps[0];
        let slot = (0..map.passes[0].steps.len())
            .find_map(|i| {
                let s = &map.passes[0].steps[i];
                text.find(s.start..s.end, patch::code::MOV64_IMM, None)
            })
            .unwrap_or_else(|| panic!("{name}: no state assignment near {step:?}"));
        let broken = text.with_imm(slot, text.imm(slot) ^ 1);
        assert!(
            validate_stream(&program, &broken, &map).is_err(),
            "{name}: a changed transition validated"
        );
    }
}

/// In the interpreter, against the emitted stream code: a segment of a
/// flow whose judging flag another CPU holds is dropped as out of order
/// and leaves the flow as it was; with the flag free the same segment is
/// judged, passes, advances the flow and releases the flag.
#[test]
fn a_flow_being_judged_elsewhere_drops_the_segment() {
    use emit_bpf::decision::Reason;
    use lagic_validate::stream::FLOW_VALUE_BASE;
    use lagic_validate::vm::{helper, Skb, Vm};
    use lagic_validate::{frame, watch, Object};

    let (_, bytes, _) = stream_seed("hateless");
    let object = Object::parse(&bytes).unwrap();
    const BUSY: u64 = 20;
    const NEXT: u64 = 8;
    const STREAM_LEN: u64 = 24;
    for busy in [1u32, 0] {
        let mut vm = Vm::new(&object);
        watch::install(&mut vm);
        // The emulated lookup opens the flow at the probe's sequence
        // number; this one also sets the flag as another CPU would.
        vm.register_helper(helper::MAP_LOOKUP_ELEM, |vm, args| {
            let at = lagic_validate::stream::lookup_flow_for_tests(vm, args)?;
            if at == FLOW_VALUE_BASE {
                let busy = vm.peek_u64(0x5400_0000, 4).unwrap_or(0) as u32;
                vm.poke(at + BUSY, &busy.to_le_bytes())?;
            }
            Ok(at)
        });
        vm.map_region(0x5400_0000, 8, true);
        vm.poke(0x5400_0000, &busy.to_le_bytes()).unwrap();
        let frame = frame::ipv4_tcp(b"hello");
        let seq = u32::from_be_bytes([frame[38], frame[39], frame[40], frame[41]]);
        vm.set_skb(Skb::linear(frame));
        let r0 = vm.run_program().unwrap();
        let next = vm.peek_u64(FLOW_VALUE_BASE + NEXT, 4).unwrap() as u32;
        let len = vm.peek_u64(FLOW_VALUE_BASE + STREAM_LEN, 8).unwrap();
        let flag = vm.peek_u64(FLOW_VALUE_BASE + BUSY, 4).unwrap();
        if busy == 1 {
            assert_eq!(r0, 2, "dropped");
            assert_eq!(watch::counter(&vm, Reason::OutOfOrder as u32).unwrap(), 1);
            assert_eq!((next, len, flag), (seq, 0, 1), "the flow untouched");
        } else {
            assert_eq!(r0, 0, "passed");
            assert_eq!(watch::counter(&vm, Reason::Pass as u32).unwrap(), 1);
            assert_eq!((next, len, flag), (seq.wrapping_add(5), 5, 0));
        }
    }
}

/// The stream `hateless` starts its chunks with the prefilter (as the
/// per-packet one does): the stream validation checks it, and a prefilter
/// that would skip a chunk the DFA does not stay on is refused.
#[test]
fn a_stream_prefilter_is_checked_and_a_wrong_one_is_caught() {
    let (program, object, map) = stream_seed("hateless");
    let pf = map
        .prefilters
        .first()
        .expect("the stream hateless has a prefilter");
    let report = validate_stream(&program, &object, &map).unwrap();
    assert!(report.prefilter_paths > 0, "no prefilter path was checked");

    // The second byte's constant: `b` instead of `a` in four lanes.
    let text = Section::text(&object);
    let second = text
        .find(pf.start..pf.slow, patch::code::LD_IMM64, Some(0x6161_6161))
        .expect("the broadcast of 'a'");
    match validate_stream(&program, &text.with_imm(second, 0x6262_6262), &map) {
        Err(lagic_validate::ValidationError::Prefilter { what, .. }) => {
            assert!(what.contains("can leave the DFA in state"), "{what}")
        }
        other => panic!("expected a prefilter error, got {other:?}"),
    }
}

/// A whole-stream spec of `predicate` (JSON text) named `name`, lowered
/// and compiled; panics naming the spec where any stage refuses it.
fn compiled_predicate(
    name: &str,
    predicate: &str,
) -> (
    predicate_ir::StreamProgram,
    Vec<u8>,
    emit_bpf::codemap::CodeMap,
) {
    let text = format!(
        r#"{{"version": 2, "name": "{name}", "mode": "stream", "policy": {{"arp": "pass", "ipv6_nd": "pass", "other_ip": "drop", "non_ip": "drop"}}, "predicate": {predicate}}}"#
    );
    let spec = predicate_ir::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let program = predicate_ir::lower_stream(&spec).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (module, map) =
        emit_bpf::compile_stream_mapped_with(&program, &emit_bpf::Options::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    (program, module.write_elf().unwrap(), map)
}

/// Every example stream spec validates; the whole-stream ones run the walk
/// on every stream offset class and segment length, and the formulas.
#[test]
fn every_stream_example_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/stream");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 10, "the stream examples: {names:?}");
    for name in &names {
        let (program, object, map) = stream_seed(name);
        let report =
            validate_stream(&program, &object, &map).unwrap_or_else(|e| panic!("{name}: {e}"));
        println!(
            "{name}: {} step insns, {} walk classes for {} (offset, length) pairs, {} formula cases, times {:?}",
            report.step_insns, report.walk_classes, report.walk_lengths, report.formula_cases, report.times
        );
        assert!(report.step_insns > 0, "{name}: no step was run");
        if program.http.is_some() {
            continue;
        }
        // Every pass: every stream offset of its list, every segment length.
        let t = lagic_validate::stream::walk::program_tail_start(&map);
        let want: u64 = map.passes.len() as u64
            * lagic_validate::stream::walk::offsets(t).len() as u64
            * u64::from(lagic_validate::walk::MAX_PAYLOAD + 1);
        assert_eq!(report.walk_lengths, want, "{name}: lengths covered");
        assert!(report.walk_classes > 0, "{name}: no walk class");
        assert!(report.formula_cases > 0, "{name}: no formula case");
    }
}

/// The segment's part of a stream window, per stream offset.
#[test]
fn the_payload_window_follows_the_stream_offset() {
    use lagic_validate::stream::walk::{offsets, payload_window, tail_start};
    use predicate_ir::Window;
    let w = Window {
        start: 4,
        end: Some(16),
    };
    let seg = |s| {
        let p = payload_window(w, s);
        (p.start, p.end)
    };
    assert_eq!(seg(0), (4, Some(16)));
    assert_eq!(seg(3), (1, Some(13)));
    assert_eq!(seg(4), (0, Some(12)));
    assert_eq!(seg(15), (0, Some(1)));
    assert_eq!(seg(16), (0, Some(0)));
    assert_eq!(seg(u64::MAX), (0, Some(0)));
    let all = Window {
        start: 2,
        end: None,
    };
    assert_eq!(payload_window(all, 1).start, 1);
    assert_eq!(payload_window(all, 1 << 40).start, 0);
    // Below the tail every offset, then the tail's representatives.
    assert_eq!((tail_start(w), tail_start(all)), (16, 3));
    let o = offsets(tail_start(w));
    assert!((0..16).all(|s| o.contains(&s)));
    assert!(o.contains(&((1 << 32) + 16)) && o.contains(&u64::MAX));
    assert_eq!(o.len(), 16 + 3, "{o:?}");
    let o = offsets(tail_start(all));
    assert_eq!(o, vec![0, 1, 2, 3, (1 << 32) + 3, u64::MAX]);
}

/// Off by one at a stream window's end: `printable16` judges stream
/// offsets 0..16; the pass clamps its walk at offset 16 (an `ld_imm64` in
/// its setup). With 15 or 17 the walk check fails and names the stream
/// offset and the segment length.
#[test]
fn an_off_by_one_stream_window_end_is_caught() {
    let (program, object, map) = stream_seed("printable16");
    let pass = &map.passes[0];
    assert_eq!(pass.window.end, Some(16));
    let entry = Section::entry(&object);
    let setup = pass.setup_start..map.formula_start;
    let slot = entry
        .find(setup, patch::code::LD_IMM64, Some(16))
        .expect("the window end");
    for wrong in [15, 17] {
        match validate_stream(&program, &entry.with_imm(slot, wrong), &map) {
            Err(e @ ValidationError::Walk { pass: 0, .. }) => {
                let shown = e.to_string();
                assert!(
                    shown.contains("stream offset ") && shown.contains("payload length "),
                    "{shown}"
                );
            }
            other => panic!("window end {wrong}: expected a walk error, got {other:?}"),
        }
    }
}

/// A window ending past stream offset `MAX_TAIL_START` (here 1,000..1,200)
/// validates with the walk sampled: every offset below the bound, the
/// offsets around the window's edges and the tail are run, the rest are
/// counted as left out; an off-by-one window end is still caught there.
#[test]
fn a_far_window_is_sampled_and_its_edges_checked() {
    let (program, object, map) = compiled_predicate(
        "far",
        r#"{"op": "all", "window": {"start": 1000, "end": 1200}, "class": [[32, 126]]}"#,
    );
    let t = lagic_validate::stream::walk::program_tail_start(&map);
    assert_eq!(t, 1200);
    let report = validate_stream(&program, &object, &map).unwrap();
    let run: Vec<u64> = lagic_validate::stream::walk::sampled_offsets(&map, t);
    assert!(
        run.contains(&1128) && run.contains(&1199) && !run.contains(&1127) && !run.contains(&1100)
    );
    let run_below = run.iter().filter(|&&s| s < t).count() as u64;
    assert_eq!(report.stream_offsets_unchecked, t - run_below);
    assert!(report.stream_offsets_unchecked > 0);

    let pass = &map.passes[0];
    let entry = Section::entry(&object);
    let setup = pass.setup_start..map.formula_start;
    let slot = entry
        .find(setup, patch::code::LD_IMM64, Some(1200))
        .expect("the window end");
    for wrong in [1199, 1201] {
        assert!(
            matches!(
                validate_stream(&program, &entry.with_imm(slot, wrong), &map),
                Err(ValidationError::Walk { pass: 0, .. })
            ),
            "window end {wrong} must be caught"
        );
    }
}

/// `json_start`'s formulas test `len < 1400` (the stream meaning, then the
/// exact meaning at FIN) as `r9 < r1` with `r1 = 1400`, and the exact
/// meaning then tests the prefix scan's final state. The stream meaning's
/// constant changed to 1401, its comparison's operands swapped, or the
/// exact meaning's state test changed, is caught by the formula check,
/// which names the stream length. (The exact meaning's own `len < 1400`
/// runs only where the stream meaning held, so there 1401 is equivalent.)
#[test]
fn a_wrong_len_constant_and_a_swapped_operand_are_caught() {
    let (program, object, map) = stream_seed("json_start");
    let entry = Section::entry(&object);
    let end = entry.len();
    let constants: Vec<usize> = (map.formula_start..end)
        .filter(|&s| entry.slot(s)[0] == patch::code::LD_IMM64 && entry.imm(s) == 1400)
        .collect();
    assert_eq!(constants.len(), 2, "both formulas test len < 1400");
    match validate_stream(&program, &entry.with_imm(constants[0], 1401), &map) {
        Err(e @ ValidationError::StreamFormula { len: 1400, .. }) => {
            assert!(e.to_string().contains("stream length 1400"), "{e}")
        }
        other => panic!("len constant: expected a formula error at 1400, got {other:?}"),
    }

    // The exact meaning's test of the scan's final state.
    let state_test = entry
        .find(constants[1]..end, patch::code::JEQ_IMM, None)
        .expect("the exact meaning's scan test");
    let bad = entry.with_imm(state_test, entry.imm(state_test) ^ 1);
    match validate_stream(&program, &bad, &map) {
        Err(ValidationError::StreamFormula { fin: true, .. }) => {}
        other => panic!("exact meaning: expected a formula error at FIN, got {other:?}"),
    }

    // `if r9 < r1` (JLT with registers) becomes `if r1 < r9`.
    const JLT_REG: u8 = 0xad;
    let jlt = (constants[0]..end)
        .find(|&s| entry.slot(s)[0] == JLT_REG)
        .expect("the comparison");
    let at = patch::slot_offset(&object, entry.name, jlt).unwrap();
    let mut bad = object.clone();
    let regs = bad[at + 1];
    bad[at + 1] = regs.rotate_left(4);
    assert_ne!(bad[at + 1], regs, "two different registers");
    match validate_stream(&program, &bad, &map) {
        Err(e @ ValidationError::StreamFormula { .. }) => {
            assert!(e.to_string().contains("stream length "), "{e}")
        }
        other => panic!("swapped operands: expected a formula error, got {other:?}"),
    }
}

/// The tail check: a pass whose "past the window's end" test compares the
/// stream offset as a signed number (so offsets from 2^63 on would walk
/// again) depends on the offset in the tail, and is refused with the
/// branch named.
#[test]
fn a_signed_stream_offset_test_is_caught_in_the_tail() {
    let (program, object, map) = stream_seed("printable16");
    let pass = &map.passes[0];
    let entry = Section::entry(&object);
    let end = entry
        .find(
            pass.setup_start..map.formula_start,
            patch::code::LD_IMM64,
            Some(16),
        )
        .expect("the window end");
    // The comparison after it: `if r1 >= r4` (JGE with registers).
    const JGE_REG: u8 = 0x3d;
    const JSGE_REG: u8 = 0x7d;
    let jge = (end..map.formula_start)
        .find(|&s| entry.slot(s)[0] == JGE_REG)
        .expect("the comparison with the window end");
    let at = patch::slot_offset(&object, entry.name, jge).unwrap();
    let mut bad = object.clone();
    bad[at] = JSGE_REG;
    let parsed = lagic_validate::Object::parse(&bad).unwrap();
    let t = lagic_validate::stream::walk::program_tail_start(&map);
    assert_eq!(t, 16);
    let err = lagic_validate::stream::tail::check(&parsed, &map, t).expect_err("signed");
    assert!(err.contains("branch on the stream offset"), "{err}");
    assert!(validate_stream(&program, &bad, &map).is_err());
    // The shipped object passes the same check.
    let good = lagic_validate::Object::parse(&object).unwrap();
    lagic_validate::stream::tail::check(&good, &map, t).unwrap();
}

/// The carried state: `printable16`'s pass loads its DFA's state from the
/// flow value's first machine word (offset 40). Loading the next word
/// instead (zero, the initial state, in a fresh flow, so the walk check
/// cannot see it) starts every segment from the initial state; the carry
/// check names the scan and the state.
#[test]
fn a_pass_that_ignores_the_carried_state_is_caught() {
    let (program, object, map) = stream_seed("printable16");
    let pass = &map.passes[0];
    let entry = Section::entry(&object);
    let load = (pass.setup_start..map.formula_start)
        .find(|&s| {
            entry.slot(s)[0] == patch::code::LDXW && patch::off(&object, entry.name, s) == Ok(40)
        })
        .expect("the load of the carried state");
    let mut bad = object.clone();
    patch::set_off(&mut bad, entry.name, load, 44).unwrap();
    match validate_stream(&program, &bad, &map) {
        Err(e @ ValidationError::Walk { .. }) => {
            let shown = e.to_string();
            assert!(
                shown.contains("the carried state") && shown.contains("scans [0]"),
                "{shown}"
            );
        }
        other => panic!("expected a carried-state error, got {other:?}"),
    }
}

/// Stream specs beyond the examples: windows starting past the stream's
/// first byte (bounded and not), several passes, `len` tests and
/// negations. Each validates, and the tail starts where the windows say.
#[test]
fn more_stream_shapes_validate() {
    let specs = [
        (
            r#"{"op": "all", "window": {"start": 3, "end": 20}, "class": [[32, 126]]}"#,
            20,
        ),
        (
            r#"{"op": "not", "arg": {"op": "contains", "window": {"start": 5, "end": null}, "pattern": [[[120, 120]], [[121, 121]]]}}"#,
            6,
        ),
        (
            r#"{"op": "and", "args": [
                {"op": "len", "cmp": "<=", "value": 100},
                {"op": "all", "window": {"start": 0, "end": 8}, "class": [[48, 57]]},
                {"op": "not", "arg": {"op": "contains", "window": {"start": 2, "end": 40}, "pattern": [[[65, 65]], [[66, 66]]]}}
            ]}"#,
            40,
        ),
        (
            r#"{"op": "or", "args": [
                {"op": "all", "window": {"start": 0, "end": 4}, "class": [[97, 122]]},
                {"op": "prefix", "pattern": [[[123, 123]]]}
            ]}"#,
            4,
        ),
    ];
    for (i, (predicate, tail)) in specs.iter().enumerate() {
        let (program, object, map) = compiled_predicate(&format!("shape{i}"), predicate);
        assert_eq!(
            lagic_validate::stream::walk::program_tail_start(&map),
            *tail,
            "spec {i}: the tail's start"
        );
        let report =
            validate_stream(&program, &object, &map).unwrap_or_else(|e| panic!("spec {i}: {e}"));
        println!(
            "spec {i}: {} passes, {} walk classes, {} formula cases",
            map.passes.len(),
            report.walk_classes,
            report.formula_cases
        );
        assert!(
            report.walk_classes > 0 && report.formula_cases > 0,
            "spec {i}"
        );
    }
}

/// Random stream specs (`predicate_ir::arbitrary::arb_stream_spec`, the
/// whole-stream view): every object the emitter writes validates (walk, carried state, formulas), so
/// the checks accept what the emitter makes beyond the examples. Cases:
/// `LAGIC_PROPTEST_CASES` (default 8: a spec costs up to about a thousand
/// stream offsets' walks); failing seeds persist in
/// `tests/proptest-regressions/random_stream_specs_validate.txt`.
#[test]
fn random_stream_specs_validate() {
    use proptest::prop_assert_eq;
    use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
    let cases = std::env::var("LAGIC_PROPTEST_CASES")
        .map(|t| {
            t.trim()
                .parse()
                .expect("LAGIC_PROPTEST_CASES is a case count")
        })
        .unwrap_or(8);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/proptest-regressions/random_stream_specs_validate.txt");
    let path: &'static str = Box::leak(path.to_string_lossy().into_owned().into_boxed_str());
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(path))),
        ..Config::default()
    });
    runner
        .run(&predicate_ir::arbitrary::arb_stream_spec(), |spec| {
            let Ok(program) = predicate_ir::lower_stream(&spec) else {
                return Ok(()); // beyond the lowering's limits
            };
            if program.http.is_some() {
                return Ok(()); // the http view: its step check is tests/http.rs's
            }
            let Ok((module, map)) =
                emit_bpf::compile_stream_mapped_with(&program, &emit_bpf::Options::default())
            else {
                return Ok(()); // beyond the emitter's limits
            };
            let object = module
                .write_elf()
                .expect("the writer takes what codegen makes");
            let result = validate_stream(&program, &object, &map);
            let far = lagic_validate::stream::walk::program_tail_start(&map)
                > lagic_validate::stream::walk::MAX_TAIL_START;
            if let Ok(report) = &result {
                // Windows far into the stream: sampled, and said so.
                prop_assert_eq!(
                    report.stream_offsets_unchecked > 0,
                    far,
                    "{}: offsets left out only when a window ends past the bound",
                    spec.name
                );
            }
            result
                .map(|_| ())
                .map_err(|e| TestCaseError::fail(format!("{}: {e}", spec.name)))
        })
        .unwrap();
}

/// The stream specs that translation validation once refused wrongly,
/// kept in tests/regression-specs/stream/ (each file's description says
/// why): every one validates, whole-stream view and http view alike.
#[test]
fn stream_regression_specs_validate() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/regression-specs/stream");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no specs in {}", dir.display());
    for path in paths {
        let spec = predicate_ir::parse(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let program = predicate_ir::lower_stream(&spec).unwrap();
        let (module, map) =
            emit_bpf::compile_stream_mapped_with(&program, &emit_bpf::Options::default()).unwrap();
        let object = module.write_elf().unwrap();
        validate_stream(&program, &object, &map)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}
