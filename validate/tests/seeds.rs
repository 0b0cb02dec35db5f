//! The validator passes on every seed example.

use std::path::Path;

fn compile(path: &Path) -> (predicate_ir::Program, Vec<u8>, emit_bpf::codemap::CodeMap) {
    let text = std::fs::read_to_string(path).unwrap();
    let spec = predicate_ir::parse(&text).unwrap();
    let program = predicate_ir::lower(&spec).unwrap();
    let (module, map) = emit_bpf::compile_mapped(&program).unwrap();
    (program, module.write_elf().unwrap(), map)
}

fn seeds() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json") && !p.ends_with("cases.json"))
        .collect();
    v.sort();
    assert_eq!(v.len(), 7, "the seven seed diodes");
    v
}

#[test]
fn every_seed_validates() {
    for path in seeds() {
        let (program, object, map) = compile(&path);
        let t = std::time::Instant::now();
        let report = lagic_validate::validate(&program, &object, &map)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("{}: {:?} in {:?}", path.display(), report, t.elapsed());
    }
}
