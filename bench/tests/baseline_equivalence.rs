//! One baseline through clang and the kernel, checked against the reference
//! diode on generated frames. Skips loudly without clang or BPF.

use lagic_bench::{equivalence, load_object, tools};

#[test]
fn hateless_baseline_agrees_with_the_reference_diode() {
    let Some(clang) = tools::find_on_path("clang") else {
        eprintln!("SKIPPED: clang is not installed (scripts/bench installs it); the baseline was not checked");
        return;
    };
    if let Err(why) = lagic_loader::bpf_available() {
        if std::env::var_os("CI").is_some() {
            panic!("BPF unavailable under CI: {why}");
        }
        eprintln!("SKIPPED: BPF unavailable: {why}");
        return;
    }
    let dir = std::env::temp_dir().join(format!("lagic-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let object = dir.join("hateless.o");
    tools::compile_c(&clang, &tools::baseline_dir().join("hateless.c"), &object).unwrap();
    let program = load_object(&object).unwrap();
    let cases = equivalence::cases(reference_diodes::hateless, 1500, 7);
    let checked = equivalence::check("hateless", &[("clang", &program)], &cases).unwrap();
    assert!(checked > 1000);
    std::fs::remove_dir_all(&dir).ok();
}
