//! Shared helpers of the cross-crate tests: the seed examples, compiling
//! them, and loading them into the kernel.

use std::path::PathBuf;

use lagic_loader::LoadedProgram;
use predicate_ir::{Program, Spec};

/// The seven seed diodes, in the order of DESIGN.md.
pub const SEED_DIODES: [&str; 7] = [
    "minimal",
    "printable16",
    "printable64",
    "json_start",
    "json_prefix",
    "json_depth",
    "hateless",
];

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository root")
        .to_path_buf()
}

/// Reads and parses `examples/<name>.json`.
pub fn example_spec(name: &str) -> Spec {
    let path = repo_root().join("examples").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    predicate_ir::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A spec lowered and compiled: the program and its object bytes.
pub struct Compiled {
    pub spec: Spec,
    pub program: Program,
    pub object: Vec<u8>,
}

pub fn compile(spec: &Spec) -> Compiled {
    let program =
        predicate_ir::lower(spec).unwrap_or_else(|e| panic!("lowering {}: {e}", spec.name));
    let object = emit_bpf::compile_object(&program)
        .unwrap_or_else(|e| panic!("compiling {}: {e}", spec.name));
    Compiled {
        spec: spec.clone(),
        program,
        object,
    }
}

pub fn compile_example(name: &str) -> Compiled {
    compile(&example_spec(name))
}

/// Loads a compiled diode into the kernel (the verifier runs here).
pub fn load(compiled: &Compiled) -> LoadedProgram {
    LoadedProgram::from_object(&compiled.object)
        .unwrap_or_else(|e| panic!("the kernel refused {}: {e}", compiled.spec.name))
}
