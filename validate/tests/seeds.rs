//! The validator passes on every seed example.

mod support;

#[test]
fn every_seed_validates() {
    let names = support::seed_names();
    assert_eq!(names.len(), 7, "the seven seed diodes");
    for name in names {
        let c = support::seed(&name);
        let report = lagic_validate::validate(&c.program, &c.object, &c.map)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // Every scan was stepped and every length walked.
        if !c.program.scans.is_empty() {
            assert!(report.step_insns > 0, "{name}: {report:?}");
            assert_eq!(
                report.walk_lengths,
                65_536 * (c.map.passes.len() + c.map.inline.len()) as u64,
                "{name}"
            );
        }
        assert!(report.formula_cases > 0, "{name}: {report:?}");
        eprintln!("{name}: {report:?}");
    }
}

/// A combined automaton (one DFA for many `contains` over one window):
/// a block list of 20 case-insensitive words in one `or`, negated.
#[test]
fn a_combined_block_list_validates() {
    use predicate_ir::{ByteClass, Mode, Policy, Pred, Spec, Window};
    let words = [
        "hate", "kill", "bomb", "attack", "weapon", "poison", "threat", "murder", "explode",
        "hostage", "ransom", "malware", "exploit", "phishing", "stolen", "forged", "smuggle",
        "launder", "extort", "sabotage",
    ];
    let ci = |b: u8| ByteClass::from_bytes([b, b.to_ascii_uppercase()]);
    let spec = Spec {
        name: "blocklist20".into(),
        description: String::new(),
        policy: Policy::default(),
        mode: Mode::Packet,
        predicate: Pred::Not(Box::new(Pred::Or(
            words
                .iter()
                .map(|w| Pred::Contains {
                    window: Window::ALL,
                    pattern: w.bytes().map(ci).collect(),
                })
                .collect(),
        ))),
    };
    let program = predicate_ir::lower(&spec).unwrap();
    assert_eq!(
        program.scans.len(),
        1,
        "one combined automaton: {program:?}"
    );
    let c = support::compile_program(program);
    let report = lagic_validate::validate(&c.program, &c.object, &c.map)
        .unwrap_or_else(|e| panic!("blocklist20: {e}"));
    assert!(
        report.step_insns > 0 && report.formula_cases > 0,
        "{report:?}"
    );
    // And it runs like the IR, the ring buffer free or full.
    let object = lagic_validate::Object::parse(&c.object).unwrap();
    for (payload, pass) in [
        (&b"a friendly request"[..], true),
        (b"please SaBoTaGe the build", false),
        (b"no ransomware here", false),
        (b"", true),
    ] {
        for ring_full in [false, true] {
            let mut vm = lagic_validate::vm::Vm::new(&object);
            lagic_validate::watch::install(&mut vm);
            vm.watch.ring_full = ring_full;
            vm.set_skb(lagic_validate::vm::Skb::linear(
                lagic_validate::frame::ipv4_tcp(payload),
            ));
            let got = vm.run_program().unwrap();
            assert_eq!(
                got,
                if pass { 0 } else { 2 },
                "{payload:?} ring full {ring_full}"
            );
            assert_eq!(c.program.verdict(payload), pass);
        }
    }
}

/// A prefilter no frame reaches (its window starts past every frame's
/// payload): nothing to check, and the object validates (a random spec
/// found this; the probes could not reach the prefilter and it failed).
#[test]
fn a_prefilter_no_frame_reaches_validates() {
    let text = r#"{"version": 1, "name": "far", "predicate": {"op": "or", "args": [{"op": "contains", "window": {"start": 65532, "end": null}, "pattern": [[[72, 72], [104, 104]]]}]}}"#;
    let spec = predicate_ir::parse(text).unwrap();
    let c = support::compile_program(predicate_ir::lower(&spec).unwrap());
    assert!(!c.map.prefilters.is_empty(), "a prefilter: {:?}", c.map);
    let report =
        lagic_validate::validate(&c.program, &c.object, &c.map).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.prefilter_paths, 0, "{report:?}");
}
