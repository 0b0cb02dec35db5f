//! Property tests: the writer never panics, and whatever it accepts reads
//! back (goblin, the BTF decoders, the object disassembler) with the same
//! code; the disassemblers never panic on arbitrary bytes.

use emit_bpf::btf::{Btf, BtfExt};
use emit_bpf::disasm::{disassemble, disassemble_object};
use emit_bpf::elf::{write_object, Function, Module};
use emit_bpf::insn::*;
use goblin::elf::Elf;
use proptest::prelude::*;

fn any_insn() -> impl Strategy<Value = Insn> {
    any::<[u8; 8]>().prop_map(Insn::from_bytes)
}

/// Mostly valid straight-line code with occasional ld_func and raw slots.
fn code(max_callbacks: i32) -> impl Strategy<Value = Vec<Insn>> {
    let piece = prop_oneof![
        4 => (0u8..10, -100i32..100).prop_map(|(r, k)| vec![Insn::mov64_imm(Reg(r), k)]),
        2 => (0u8..10, 0..max_callbacks.max(1)).prop_map(|(r, i)| Insn::ld_func(Reg(r), i).to_vec()),
        // Sometimes out of range.
        1 => (0u8..10, prop_oneof![Just(-1), Just(max_callbacks)])
            .prop_map(|(r, i)| Insn::ld_func(Reg(r), i).to_vec()),
        1 => (0u8..10, any::<u64>()).prop_map(|(r, v)| Insn::ld_imm64(Reg(r), v).to_vec()),
        1 => any_insn().prop_map(|i| vec![i]),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|v| {
        let mut out: Vec<Insn> = v.into_iter().flatten().collect();
        out.push(Insn::exit());
        out
    })
}

/// Callbacks may not take function addresses (a unit test covers that).
fn without_ld_func(mut insns: Vec<Insn>) -> Vec<Insn> {
    for insn in &mut insns {
        if insn.is_ld_imm64() && insn.src == BPF_PSEUDO_FUNC {
            insn.src = 0;
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
            })
    })
}

fn decode(code: &[u8]) -> Vec<Insn> {
    code.chunks(8)
        .map(|c| Insn::from_bytes(c.try_into().unwrap()))
        .collect()
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
            if !(want.is_ld_imm64() && want.src == BPF_PSEUDO_FUNC) {
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
    fn disassemble_never_panics(insns in prop::collection::vec(any_insn(), 0..64)) {
        let text = disassemble(&insns);
        prop_assert!(text.lines().count() <= insns.len());
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
