//! The `http_response` view's byte callback: every machine step validates
//! on the example views, and a changed transition of the framing DFA or of
//! a header or body scan is caught.

mod support;

use emit_bpf::codemap::HttpMachine;
use lagic_validate::{patch, validate_stream};

#[test]
fn http_view_steps_validate_and_a_broken_step_is_caught() {
    for name in ["http_json_start", "http_json_prefix", "http_json_depth"] {
        let (program, object, map) = support::stream_seed(name);
        let report =
            validate_stream(&program, &object, &map).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(report.step_insns > 0, "{name}: no step was run");
        let http = map.http.as_ref().expect("an http map");
        let kinds = [
            |m: HttpMachine| m == HttpMachine::Frame,
            |m: HttpMachine| matches!(m, HttpMachine::Headers(_)),
            |m: HttpMachine| matches!(m, HttpMachine::Body(_)),
        ];
        for (k, kind) in kinds.iter().enumerate() {
            // A state assignment inside a step of this kind, changed.
            let Some(slot) = http.steps.iter().filter(|s| kind(s.machine)).find_map(|s| {
                patch::find(
                    &object,
                    ".text",
                    s.start..s.end,
                    patch::code::MOV64_IMM,
                    None,
                )
            }) else {
                // json_depth's body is a depth counter: its steps have
                // no state assignment by constant in every build.
                assert_eq!(k, 2, "{name}: no state assignment in kind {k}");
                continue;
            };
            let mut broken = object.clone();
            let imm = patch::imm(&broken, ".text", slot).unwrap();
            patch::set_imm(&mut broken, ".text", slot, imm ^ 1).unwrap();
            assert!(
                validate_stream(&program, &broken, &map).is_err(),
                "{name}: a changed transition of kind {k} validated"
            );
        }
        // A map missing a step is refused.
        let mut short = map.clone();
        short.http.as_mut().unwrap().steps.pop();
        assert!(
            validate_stream(&program, &object, &short).is_err(),
            "{name}"
        );
    }
}

/// A one-byte header scan of an empty class never leaves its state: the
/// emitter writes no code for its step, and that empty step validates
/// (the regression spec of tests/regression-specs/stream/). An empty
/// range claimed for a machine that does move is still refused.
#[test]
fn an_empty_step_validates_only_for_a_machine_that_never_moves() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/regression-specs/stream/http-empty-step-never-moving-header-scan.json");
    let spec = predicate_ir::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
    let program = predicate_ir::lower_stream(&spec).unwrap();
    let (module, map) =
        emit_bpf::compile_stream_mapped_with(&program, &emit_bpf::Options::default()).unwrap();
    let object = module.write_elf().unwrap();
    validate_stream(&program, &object, &map).unwrap();
    let http = map.http.as_ref().expect("an http map");
    assert!(
        http.steps.iter().any(|s| s.start == s.end),
        "no empty step: {:?}",
        http.steps
    );
    let mut emptied = map.clone();
    let frame = emptied
        .http
        .as_mut()
        .unwrap()
        .steps
        .iter_mut()
        .find(|s| s.machine == HttpMachine::Frame)
        .expect("a framing step");
    frame.end = frame.start;
    let err = validate_stream(&program, &object, &emptied)
        .expect_err("an empty step for the framing DFA validated");
    assert!(err.to_string().contains("Frame"), "{err}");
}
