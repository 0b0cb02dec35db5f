//! The C baselines through clang and the kernel, checked against the
//! reference diodes on generated frames, and the scaling generators' C
//! against their plain definitions. Without clang or BPF each test prints a
//! `SKIPPED:` line to stderr; with `CI` set it fails instead
//! (`scripts/install-test-deps` installs clang and the BPF headers).

use lagic_bench::scaling::{self, Family};
use lagic_bench::{equivalence, load_object, measure, tools, DIODES};
use lagic_loader::Verdict;
use lagic_testkit::{require_bpf, require_tool};

/// clang, or `None` after a loud skip (a failure under CI) when clang or
/// BPF is missing.
fn clang_and_bpf() -> Option<std::path::PathBuf> {
    let clang = require_tool("clang", "scripts/install-test-deps")?;
    require_bpf().then_some(clang)
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lagic-bench-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_baseline_agrees_with_its_reference_diode() {
    let Some(clang) = clang_and_bpf() else { return };
    let dir = scratch("seeds");
    for diode in DIODES {
        let object = dir.join(format!("{diode}.o"));
        tools::compile_c(
            &clang,
            &tools::baseline_dir().join(format!("{diode}.c")),
            &object,
        )
        .unwrap();
        let program = load_object(&object).unwrap();
        let reference = reference_diodes::by_name(diode).unwrap();
        let cases = equivalence::cases(reference, 1500, 7);
        let checked = equivalence::check(diode, &[("clang", &program)], &cases).unwrap();
        assert!(checked > 1000, "{diode}: only {checked} frames");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A wrong baseline is caught: hateless's object judged as json_prefix.
#[test]
fn the_gate_rejects_a_baseline_for_the_wrong_predicate() {
    let Some(clang) = clang_and_bpf() else { return };
    let dir = scratch("wrong");
    let object = dir.join("hateless.o");
    tools::compile_c(&clang, &tools::baseline_dir().join("hateless.c"), &object).unwrap();
    let program = load_object(&object).unwrap();
    let cases = equivalence::cases(reference_diodes::json_prefix, 300, 1);
    let err = equivalence::check("json_prefix", &[("clang", &program)], &cases).unwrap_err();
    assert!(err.to_string().contains("MISMATCH"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn generated_scaling_c_matches_the_plain_definitions() {
    let Some(clang) = clang_and_bpf() else { return };
    let dir = scratch("scaling");
    for (family, k) in [
        (Family::Contains, 3),
        (Family::Windows, 5),
        (Family::Depth, 1),
    ] {
        let source = dir.join(format!("{}_{k}.c", family.name()));
        let object = dir.join(format!("{}_{k}.o", family.name()));
        std::fs::write(&source, scaling::c_source(family, k)).unwrap();
        tools::compile_c(&clang, &source, &object).unwrap();
        let program = load_object(&object).unwrap();
        let words = scaling::words(k);
        let mut rng = lagic_bench::rng::Rng::new(11);
        for i in 0..400 {
            let len = rng.below(200);
            let mut payload = equivalence::payload(&mut rng, len);
            if family == Family::Contains && len >= 4 && i % 2 == 0 {
                let w = rng.pick(&words);
                let at = rng.below(len - 3);
                payload[at..at + 4].copy_from_slice(&w.map(|c| {
                    if i % 4 == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                }));
            }
            if family == Family::Depth && i % 2 == 0 {
                payload
                    .iter_mut()
                    .for_each(|b| *b = b"{[\"\\ a]}"[*b as usize % 8]);
            }
            if family == Family::Windows && i % 2 == 0 {
                payload.iter_mut().for_each(|b| *b = b' ' + *b % 95);
            }
            let expected = Verdict::from_bool(scaling::reference(family, k, &payload));
            let got = program.run(&measure::frame(&payload)).unwrap().verdict;
            assert_eq!(
                got,
                expected,
                "{} k={k}, payload {:?}",
                family.name(),
                String::from_utf8_lossy(&payload)
            );
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn scaling_words_are_distinct_and_never_repeat_their_first_letter() {
    let words = scaling::words(256);
    for (i, w) in words.iter().enumerate() {
        assert!(!w[1..].contains(&w[0]), "{:?}", String::from_utf8_lossy(w));
        assert!(!words[..i].contains(w));
    }
}

#[test]
fn median_of_odd_and_even_counts() {
    assert_eq!(measure::median(vec![3.0, 1.0, 2.0]), 2.0);
    assert_eq!(measure::median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    assert_eq!(measure::median(vec![]), 0.0);
}

/// The block-list C baseline (an Aho-Corasick table in `.rodata`) loads
/// and agrees with the plain definition, for one word (a table of 9
/// states, where clang once proved the verifier's bound away) and 200.
#[test]
fn block_list_c_matches_the_plain_definition() {
    use lagic_bench::blocklist;
    let Some(clang) = clang_and_bpf() else { return };
    let dir = scratch("blocklist");
    for k in [1, 200] {
        let source = dir.join(format!("blocklist_{k}.c"));
        let object = dir.join(format!("blocklist_{k}.o"));
        std::fs::write(&source, blocklist::c_source(k)).unwrap();
        tools::compile_c(&clang, &source, &object).unwrap();
        let program = load_object(&object).unwrap();
        let (list, reference) = (blocklist::words(k), blocklist::Reference::new(k));
        let mut rng = lagic_bench::rng::Rng::new(13);
        let mut dropped = 0;
        for _ in 0..400 {
            let len = 1 + rng.below(300);
            let payload = blocklist::check_payload(&mut rng, &list, len);
            let expected = Verdict::from_bool(reference.passes(&payload));
            dropped += usize::from(expected == Verdict::from_bool(false));
            let got = program.run(&measure::frame(&payload)).unwrap().verdict;
            assert_eq!(
                got,
                expected,
                "k={k}, payload {:?}",
                String::from_utf8_lossy(&payload)
            );
        }
        // Both verdicts were exercised.
        assert!(
            (50..350).contains(&dropped),
            "k={k}: {dropped} of 400 dropped"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
