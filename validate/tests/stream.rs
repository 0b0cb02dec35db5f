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
