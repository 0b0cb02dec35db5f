//! Property tests: the writer never panics, and whatever it accepts reads
//! back (goblin, the BTF decoders, the object disassembler) with the same
//! code; the disassemblers never panic on arbitrary bytes.

mod btf_reader;
mod isa_strategy;

use btf_reader::{Btf, BtfExt};
use emit_bpf::decode::decode_all;
use emit_bpf::disasm::{disassemble_code, disassemble_object};
use emit_bpf::elf::write_object;
use emit_bpf::insn::*;
use emit_bpf::{Function, Module};
use goblin::elf::Elf;
use isa_strategy::{any_insn, register};
use proptest::prelude::*;

/// Mostly straight-line code with occasional ld_func and any instruction.
fn code(max_callbacks: i32) -> impl Strategy<Value = Vec<Insn>> {
    let piece = prop_oneof![
        4 => (register(), -100i32..100).prop_map(|(r, k)| Insn::mov64_imm(r, k)),
        2 => (register(), 0..max_callbacks.max(1)).prop_map(|(r, i)| Insn::ld_func(r, i)),
        // Sometimes out of range.
        1 => (register(), prop_oneof![Just(-1), Just(max_callbacks)])
            .prop_map(|(r, i)| Insn::ld_func(r, i)),
        1 => (register(), any::<u64>()).prop_map(|(r, v)| Insn::ld_imm64(r, v)),
        1 => any_insn(),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|mut out| {
        out.push(Insn::exit());
        out
    })
}

fn is_ld_func(insn: &Insn) -> bool {
    matches!(
        insn,
        Insn::LdImm64 {
            kind: Imm64Kind::Func,
            ..
        }
    )
}

/// Callbacks may not take function addresses (a unit test covers that).
fn without_ld_func(mut insns: Vec<Insn>) -> Vec<Insn> {
    for insn in &mut insns {
        if let Insn::LdImm64 { kind, .. } = insn {
            if *kind == Imm64Kind::Func {
                *kind = Imm64Kind::Value;
            }
        }
    }
    insns
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        20 => "[a-z_][a-z0-9_]{0,10}",
        1 => ".{0,4}",
    ]
}

fn module() -> impl Strategy<Value = Module> {
    (0usize..4).prop_flat_map(|n| {
        (
            name(),
            code(n as i32),
            prop::collection::vec((name(), code(0).prop_map(without_ld_func)), n..=n),
        )
            .prop_map(|(entry_name, entry, cbs)| Module {
                entry: Function {
                    name: entry_name,
                    insns: entry,
                },
                callbacks: cbs
                    .into_iter()
                    .map(|(name, insns)| Function { name, insns })
                    .collect(),
                license: "GPL".into(),
                maps: Vec::new(),
                rodata: Vec::new(),
            })
    })
}

fn decode(code: &[u8]) -> Vec<Insn> {
    decode_all(code).unwrap()
}

proptest! {
    #[test]
    fn accepted_modules_read_back(m in module()) {
        let Ok(bytes) = write_object(&m) else { return Ok(()) };
        let elf = Elf::parse(&bytes).unwrap();
        let data = |name: &str| {
            elf.section_headers
                .iter()
                .find(|sh| elf.shdr_strtab.get_at(sh.sh_name) == Some(name))
                .map(|sh| &bytes[sh.sh_offset as usize..(sh.sh_offset + sh.sh_size) as usize])
        };
        let text: Vec<Insn> = m.callbacks.iter().flat_map(|c| c.insns.clone()).collect();
        prop_assert_eq!(data(".text").map(decode).unwrap_or_default(), text);
        let prog = decode(data("classifier").unwrap());
        prop_assert_eq!(prog.len(), m.entry.insns.len());
        for (got, want) in prog.iter().zip(&m.entry.insns) {
            // Only ld_func immediates change.
            if !is_ld_func(want) {
                prop_assert_eq!(got, want);
            }
        }
        let btf = Btf::parse(data(".BTF").unwrap()).unwrap();
        prop_assert_eq!(btf.types.len(), 4 + if m.callbacks.is_empty() { 0 } else { 1 + m.callbacks.len() });
        let ext = BtfExt::parse(data(".BTF.ext").unwrap()).unwrap();
        let funcs: usize = ext.sections.iter().map(|s| s.funcs.len()).sum();
        prop_assert_eq!(funcs, 1 + m.callbacks.len());
        let listing = disassemble_object(&bytes).unwrap();
        let header = format!("{} (global", m.entry.name);
        prop_assert!(listing.contains(&header), "{}", listing);
    }

    #[test]
    fn disassemble_never_panics(code in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = disassemble_code(&code);
        prop_assert!(text.lines().count() <= code.len().div_ceil(8));
    }

    #[test]
    fn disassemble_object_never_panics_on_corruption(
        m in module(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let Ok(mut bytes) = write_object(&m) else { return Ok(()) };
        for (at, v) in flips {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        let _ = disassemble_object(&bytes);
    }
}
