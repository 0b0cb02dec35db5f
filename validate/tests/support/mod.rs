//! Compiling specs for the validator's tests, and finding and patching
//! the slots of the objects.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use emit_bpf::codemap::CodeMap;
use lagic_validate::walk::{Mode, Stats};
use lagic_validate::{isa, patch, ValidationError};
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

/// The example stream spec `name` (`examples/stream/<name>.json`).
pub fn stream_seed_spec(name: &str) -> predicate_ir::Spec {
    let path = examples_dir().join("stream").join(format!("{name}.json"));
    predicate_ir::parse(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The example stream spec `name`, lowered and compiled with the default
/// options: its program, object and code map.
pub fn stream_seed(name: &str) -> (predicate_ir::StreamProgram, Vec<u8>, CodeMap) {
    let program = predicate_ir::lower_stream(&stream_seed_spec(name)).unwrap();
    let (module, map) =
        emit_bpf::compile_stream_mapped_with(&program, &emit_bpf::Options::default()).unwrap();
    (program, module.write_elf().unwrap(), map)
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

/// One section of an object (the entry's, `classifier`, or the
/// callbacks', `.text`), for finding and patching its slots.
#[derive(Clone, Copy)]
pub struct Section<'o> {
    pub object: &'o [u8],
    pub name: &'static str,
}

impl<'o> Section<'o> {
    pub fn entry(object: &'o [u8]) -> Self {
        Section {
            object,
            name: "classifier",
        }
    }
    pub fn text(object: &'o [u8]) -> Self {
        Section {
            object,
            name: ".text",
        }
    }
    /// How many slots it has.
    pub fn len(self) -> usize {
        (0..)
            .take_while(|&s| patch::slot_bytes(self.object, self.name, s).is_ok())
            .count()
    }
    /// The first slot in `range` with opcode `op` (and immediate `imm`,
    /// if given).
    pub fn find(self, range: std::ops::Range<usize>, op: u8, imm: Option<i32>) -> Option<usize> {
        patch::find(self.object, self.name, range, op, imm)
    }
    /// The raw bytes of `slot`.
    pub fn slot(self, slot: usize) -> [u8; 8] {
        patch::slot_bytes(self.object, self.name, slot).unwrap()
    }
    /// The immediate of `slot`.
    pub fn imm(self, slot: usize) -> i32 {
        patch::imm(self.object, self.name, slot).unwrap()
    }
    /// The object with the immediate of `slot` set to `imm`.
    pub fn with_imm(self, slot: usize, imm: i32) -> Vec<u8> {
        let mut bad = self.object.to_vec();
        patch::set_imm(&mut bad, self.name, slot, imm).unwrap();
        bad
    }
}

/// `object` changed by one at each of `slots` of `section` worth changing:
/// an immediate of an ALU operation, a conditional jump's immediate or
/// offset (one mutant per change).
pub fn mutations(
    object: &[u8],
    section: &str,
    slots: impl IntoIterator<Item = usize>,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for slot in slots {
        let Ok(bytes) = patch::slot_bytes(object, section, slot) else {
            continue;
        };
        let code = bytes[0];
        let class = code & 7;
        let uses_imm = code & 0x08 == 0; // BPF_K
        let is_alu = class == isa::class::ALU || class == isa::class::ALU64;
        let is_jmp = (class == isa::class::JMP || class == isa::class::JMP32)
            && !matches!(code >> 4, 0x0 | 0x8 | 0x9); // not ja, call, exit
        if !(is_alu || is_jmp) {
            continue;
        }
        let imm = patch::imm(object, section, slot).unwrap();
        if uses_imm {
            for d in [-1, 1] {
                let mut m = object.to_vec();
                patch::set_imm(&mut m, section, slot, imm.wrapping_add(d)).unwrap();
                out.push(m);
            }
        }
        if is_jmp {
            let off = patch::off(object, section, slot).unwrap();
            let mut m = object.to_vec();
            patch::set_off(&mut m, section, slot, off.wrapping_add(1)).unwrap();
            out.push(m);
        }
    }
    out
}

/// Walks each of `mutants` by classes and one by one (`walks`): both must
/// accept it or both refuse it (`name` labels a disagreement). Returns how
/// many both refused and how many both accepted.
pub fn classes_agree_on(
    name: &str,
    mutants: &[Vec<u8>],
    mut walks: impl FnMut(&[u8], Mode) -> Result<Stats, ValidationError>,
) -> (usize, usize) {
    let (mut rejected, mut accepted) = (0, 0);
    for m in mutants {
        let fast = walks(m, Mode::Classes);
        let slow = walks(m, Mode::OneByOne);
        assert_eq!(
            fast.is_ok(),
            slow.is_ok(),
            "{name}: by classes {fast:?}, one by one {slow:?}"
        );
        if fast.is_ok() {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    eprintln!("{name}: {rejected} mutants rejected, {accepted} accepted by both");
    (rejected, accepted)
}
