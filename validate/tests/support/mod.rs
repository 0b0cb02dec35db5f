//! Compiling specs for the validator's tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use emit_bpf::codemap::CodeMap;
use predicate_ir::Program;

pub struct Compiled {
    pub program: Program,
    pub object: Vec<u8>,
    pub map: CodeMap,
}

pub fn compile_program(program: Program) -> Compiled {
    let (module, map) = emit_bpf::compile_mapped(&program).expect("emits");
    Compiled {
        object: module.write_elf().expect("writes"),
        program,
        map,
    }
}

pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

pub fn seed(name: &str) -> Compiled {
    let text = std::fs::read_to_string(examples_dir().join(format!("{name}.json"))).unwrap();
    let spec = predicate_ir::parse(&text).unwrap();
    compile_program(predicate_ir::lower(&spec).unwrap())
}

pub fn seed_names() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json") && !p.ends_with("cases.json"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
