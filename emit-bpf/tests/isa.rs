//! The encoder ([`Insn::encode`]) and the decoder ([`emit_bpf::decode`])
//! test each other: every typed instruction survives encode-then-decode,
//! every slot the decoder accepts re-encodes to its own bytes, and the
//! code of every seed example decodes and re-encodes byte for byte.

mod isa_strategy;

use emit_bpf::decode::{decode, decode_all};
use emit_bpf::disasm::disassemble;
use emit_bpf::insn::*;
use goblin::elf::Elf;
use isa_strategy::any_insn;
use proptest::prelude::*;

fn slots_of(bytes: &[u8]) -> Vec<RawInsn> {
    bytes
        .chunks_exact(8)
        .map(|c| RawInsn::from_bytes(c.try_into().unwrap()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn encode_then_decode_is_the_identity(insn in any_insn()) {
        let encoded = insn.encode();
        prop_assert_eq!(encoded.len(), insn.slots());
        prop_assert_eq!(decode(&encoded), Some(insn));
        let bytes = encode_all(&[insn]);
        prop_assert_eq!(bytes.len(), 8 * insn.slots());
        prop_assert_eq!(decode_all(&bytes), Ok(vec![insn]));
    }

    #[test]
    fn sequences_round_trip(insns in prop::collection::vec(any_insn(), 0..32)) {
        prop_assert_eq!(decode_all(&encode_all(&insns)), Ok(insns));
    }

    /// Whatever the decoder accepts is exactly an encoding: decoding then
    /// encoding gives back the same bytes.
    #[test]
    fn decode_then_encode_is_the_identity(bytes in any::<[u8; 16]>()) {
        let slots = slots_of(&bytes);
        if let Some(insn) = decode(&slots) {
            let again = encode_all(&[insn]);
            prop_assert_eq!(&again[..], &bytes[..again.len()]);
        }
    }

    /// Every typed instruction prints: one line, or one raw line per slot
    /// when the kernel would refuse it (an ld_imm64 of a kind whose second
    /// half must be zero, say).
    #[test]
    fn typed_instructions_print(insn in any_insn()) {
        let text = disassemble(&[insn]);
        let lines: Vec<&str> = text.lines().collect();
        prop_assert!(lines[0].starts_with("   0: "), "{}", text);
        prop_assert!(
            lines.len() == 1 || lines.iter().all(|l| l.contains(": .insn 0x")),
            "{}",
            text
        );
        prop_assert!(lines.len() <= insn.slots());
    }
}

/// The seed diodes (examples/*.json other than cases.json).
const SEED_DIODES: [&str; 7] = [
    "minimal",
    "printable16",
    "printable64",
    "json_start",
    "json_prefix",
    "json_depth",
    "hateless",
];

fn compile_seed(name: &str) -> (emit_bpf::Module, Vec<u8>) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let spec = predicate_ir::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let program = predicate_ir::lower(&spec).unwrap_or_else(|e| panic!("{name}: {e}"));
    let module = emit_bpf::compile(&program).unwrap_or_else(|e| panic!("{name}: {e}"));
    let object = module.write_elf().unwrap_or_else(|e| panic!("{name}: {e}"));
    (module, object)
}

#[test]
fn emitted_code_of_every_seed_example_decodes_and_reencodes() {
    for name in SEED_DIODES {
        let (module, object) = compile_seed(name);
        // The module's typed code round-trips through bytes.
        for f in std::iter::once(&module.entry).chain(&module.callbacks) {
            let bytes = encode_all(&f.insns);
            assert_eq!(bytes.len(), f.code_len(), "{name}/{}", f.name);
            assert_eq!(
                decode_all(&bytes).as_ref(),
                Ok(&f.insns),
                "{name}/{}",
                f.name
            );
            // Nothing lagic emits is something the kernel refuses to print.
            let text = disassemble(&f.insns);
            assert!(!text.contains(".insn"), "{name}/{}:\n{text}", f.name);
        }
        // The object's code sections decode, and re-encode byte for byte.
        let elf = Elf::parse(&object).unwrap();
        let mut sections = 0;
        for sh in &elf.section_headers {
            let section = elf.shdr_strtab.get_at(sh.sh_name).unwrap();
            if section != "classifier" && section != ".text" {
                continue;
            }
            sections += 1;
            let code = &object[sh.sh_offset as usize..][..sh.sh_size as usize];
            let insns = decode_all(code).unwrap_or_else(|e| panic!("{name} {section}: {e}"));
            assert_eq!(encode_all(&insns), code, "{name} {section}");
        }
        assert_eq!(
            sections,
            1 + usize::from(!module.callbacks.is_empty()),
            "{name}"
        );
    }
}
