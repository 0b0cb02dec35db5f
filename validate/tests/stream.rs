//! Stream diodes: the step check runs on their callbacks (reached through
//! the emulated flow map) and catches a changed transition.

use lagic_validate::{patch, validate_stream};

fn stream_spec(name: &str) -> predicate_ir::Spec {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/stream")
        .join(format!("{name}.json"));
    predicate_ir::parse(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn stream_objects_validate_and_a_broken_step_is_caught() {
    for name in [
        "hateless",
        "printable16",
        "json_prefix",
        "json_start",
        "json_depth",
    ] {
        let program = predicate_ir::lower_stream(&stream_spec(name)).unwrap();
        let (module, map) =
            emit_bpf::compile_stream_mapped_with(&program, &emit_bpf::Options::default()).unwrap();
        let object = module.write_elf().unwrap();
        let report =
            validate_stream(&program, &object, &map).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(report.step_insns > 0, "{name}: no step was run");

        // Change the target of the first state assignment of the first step.
        let step = &map.passes[0].steps[0];
        let mut broken = object.clone();
        let slot = (0..map.passes[0].steps.len())
            .find_map(|i| {
                let s = &map.passes[0].steps[i];
                patch::find(
                    &broken,
                    ".text",
                    s.start..s.end,
                    patch::code::MOV64_IMM,
                    None,
                )
            })
            .unwrap_or_else(|| panic!("{name}: no state assignment near {step:?}"));
        let imm = patch::imm(&broken, ".text", slot).unwrap();
        patch::set_imm(&mut broken, ".text", slot, imm ^ 1).unwrap();
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

    let program = predicate_ir::lower_stream(&stream_spec("hateless")).unwrap();
    let (module, _) =
        emit_bpf::compile_stream_mapped_with(&program, &emit_bpf::Options::default()).unwrap();
    let bytes = module.write_elf().unwrap();
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
    let program = predicate_ir::lower_stream(&stream_spec("hateless")).unwrap();
    let (module, map) =
        emit_bpf::compile_stream_mapped_with(&program, &emit_bpf::Options::default()).unwrap();
    let object = module.write_elf().unwrap();
    let pf = map
        .prefilters
        .first()
        .expect("the stream hateless has a prefilter");
    let report = validate_stream(&program, &object, &map).unwrap();
    assert!(report.prefilter_paths > 0, "no prefilter path was checked");

    // The second byte's constant: `b` instead of `a` in four lanes.
    let second = patch::find(
        &object,
        ".text",
        pf.start..pf.slow,
        patch::code::LD_IMM64,
        Some(0x6161_6161),
    )
    .expect("the broadcast of 'a'");
    let mut broken = object.clone();
    patch::set_imm(&mut broken, ".text", second, 0x6262_6262).unwrap();
    match validate_stream(&program, &broken, &map) {
        Err(lagic_validate::ValidationError::Prefilter { what, .. }) => {
            assert!(what.contains("can leave the DFA in state"), "{what}")
        }
        other => panic!("expected a prefilter error, got {other:?}"),
    }
}
