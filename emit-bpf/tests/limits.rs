//! Every limit of the emitter that a spec can reach is an error naming the
//! limit and the JSON path of the first construct past it.

use predicate_ir::{ByteClass, Limits, Mode, Pred, Spec, StreamView, Window};

/// `and` of `all` over `k` distinct one-byte windows: `k` scans that no
/// lowering combines (each has its own window).
fn many_windows(k: u32, mode: Mode) -> Spec {
    Spec {
        name: "limits".into(),
        description: String::new(),
        policy: Default::default(),
        mode,
        predicate: Pred::And(
            (0..k)
                .map(|i| Pred::All {
                    window: Window {
                        start: i,
                        end: Some(i + 1),
                    },
                    class: ByteClass::from_ranges([(b' ', b'~')]),
                })
                .collect(),
        ),
    }
}

/// Limits that let lowering pass what the emitter must refuse.
fn roomy() -> Limits {
    Limits {
        max_scans: 200,
        ..Limits::default()
    }
}

#[test]
fn too_many_scans_names_the_limit_and_the_path() {
    let program = predicate_ir::lower::lower_with(&many_windows(50, Mode::Packet), &roomy())
        .expect("lowers within the roomy limits");
    assert_eq!(program.scans.len(), 50);
    let e = emit_bpf::compile(&program).unwrap_err();
    let text = e.to_string();
    // The 49th scan (index 48) is the first past 48.
    assert!(
        text.starts_with(&format!("{}: ", program.scans[48].path)),
        "{text}"
    );
    assert!(
        program.scans[48].path.starts_with("$.predicate.args["),
        "{text}"
    );
    assert!(text.contains("needs 50 distinct scans"), "{text}");
    assert!(
        text.contains("limit of 48 scans per packet program"),
        "{text}"
    );
    assert!(text.contains("512-byte stack"), "{text}");
    // 48 compile.
    let program =
        predicate_ir::lower::lower_with(&many_windows(48, Mode::Packet), &roomy()).expect("lowers");
    emit_bpf::compile(&program).expect("48 scans compile");
}

#[test]
fn too_many_stream_scans_names_the_limit_and_the_path() {
    let spec = many_windows(30, Mode::Stream(StreamView::Whole));
    let program = predicate_ir::lower::lower_stream_with(&spec, &roomy()).expect("lowers");
    assert_eq!(program.program.scans.len(), 30);
    let e =
        emit_bpf::compile_stream_mapped_with(&program, &emit_bpf::Options::default()).unwrap_err();
    let text = e.to_string();
    let path = &program.program.scans[24].path;
    assert!(text.starts_with(&format!("{path}: ")), "{text}");
    assert!(
        text.contains("limit of 24 scans per stream program"),
        "{text}"
    );
}

#[test]
fn too_many_stream_registers_names_the_limit_and_the_path() {
    // 21 depth counters over distinct windows: 42 registers, past the 38 a
    // flow value holds beside the reuse range, in fewer than 24 scans.
    let spec = Spec {
        predicate: Pred::And(
            (0..21)
                .map(|i| Pred::DepthLe {
                    window: Window {
                        start: i,
                        end: Some(i + 10),
                    },
                    max: 3,
                    open: ByteClass::from_bytes([b'[']),
                    close: ByteClass::from_bytes([b']']),
                    strings: false,
                })
                .collect(),
        ),
        ..many_windows(0, Mode::Stream(StreamView::Whole))
    };
    let program = predicate_ir::lower::lower_stream_with(&spec, &roomy()).expect("lowers");
    assert_eq!(program.program.scans.len(), 21);
    let e =
        emit_bpf::compile_stream_mapped_with(&program, &emit_bpf::Options::default()).unwrap_err();
    let text = e.to_string();
    // Two registers each: the 20th counter (index 19) is the first past 38.
    let path = &program.program.scans[19].path;
    assert!(text.starts_with(&format!("{path}: ")), "{text}");
    assert!(text.contains("carry 42 machine registers"), "{text}");
    assert!(text.contains("limit of 38"), "{text}");
}
