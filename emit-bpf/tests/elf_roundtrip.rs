//! The ELF writer and independent readers test each other: goblin reads
//! back sections, flags, symbols and relocations; the instruction bytes,
//! BTF and BTF.ext decode to what was written; bad input gives typed errors.

mod btf_reader;
mod elf_support;

use btf_reader::{Btf, BtfExt};
use emit_bpf::btf::{BtfType, FuncLinkage};
use emit_bpf::decode::decode_all;
use emit_bpf::disasm::disassemble_object;
use emit_bpf::elf::{write_object, ElfError, R_BPF_64_64};
use emit_bpf::insn::*;
use emit_bpf::{Function, Module};
use goblin::elf::header::{EM_BPF, ET_REL};
use goblin::elf::section_header::{SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, SHT_REL};
use goblin::elf::sym::{STB_GLOBAL, STB_LOCAL, STT_FUNC, STT_OBJECT, STT_SECTION};
use goblin::elf::Elf;

fn section<'a>(elf: &Elf, bytes: &'a [u8], name: &str) -> (usize, &'a [u8]) {
    let (idx, sh) = elf
        .section_headers
        .iter()
        .enumerate()
        .find(|(_, sh)| elf.shdr_strtab.get_at(sh.sh_name) == Some(name))
        .unwrap_or_else(|| panic!("no section {name}"));
    let start = sh.sh_offset as usize;
    (idx, &bytes[start..start + sh.sh_size as usize])
}

fn section_names(elf: &Elf) -> Vec<String> {
    elf.section_headers
        .iter()
        .map(|sh| elf.shdr_strtab.get_at(sh.sh_name).unwrap().to_owned())
        .collect()
}

fn decode(code: &[u8]) -> Vec<Insn> {
    decode_all(code).unwrap()
}

/// (name, bind, type, section index, value, size) of every named or
/// section symbol.
fn symbols(elf: &Elf) -> Vec<(String, u8, u8, usize, u64, u64)> {
    elf.syms
        .iter()
        .skip(1)
        .map(|s| {
            (
                elf.strtab.get_at(s.st_name).unwrap_or("").to_owned(),
                s.st_bind(),
                s.st_type(),
                s.st_shndx,
                s.st_value,
                s.st_size,
            )
        })
        .collect()
}

#[test]
fn header_sections_and_flags() {
    let m = elf_support::two_callbacks();
    let bytes = write_object(&m).unwrap();
    let elf = Elf::parse(&bytes).unwrap();
    assert!(elf.is_64 && elf.little_endian);
    assert_eq!(elf.header.e_machine, EM_BPF);
    assert_eq!(elf.header.e_type, ET_REL);

    let mut names = section_names(&elf);
    names.sort();
    assert_eq!(
        names,
        [
            "",
            ".BTF",
            ".BTF.ext",
            ".relclassifier",
            ".shstrtab",
            ".strtab",
            ".symtab",
            ".text",
            "classifier",
            "license"
        ]
    );
    for sh in &elf.section_headers {
        let name = elf.shdr_strtab.get_at(sh.sh_name).unwrap();
        let flags = sh.sh_flags as u32;
        match name {
            "classifier" | ".text" => {
                assert_eq!(flags, SHF_ALLOC | SHF_EXECINSTR, "{name}");
                assert_eq!(sh.sh_addralign, 8, "{name}");
            }
            "license" => assert_eq!(flags, SHF_ALLOC | SHF_WRITE),
            ".BTF" | ".BTF.ext" => assert_eq!(flags, 0, "{name}"),
            _ => {}
        }
    }
    let (_, license) = section(&elf, &bytes, "license");
    assert_eq!(license, b"GPL\0");
}

#[test]
fn symbols_have_bindings_types_and_sizes() {
    let m = elf_support::two_callbacks();
    let bytes = write_object(&m).unwrap();
    let elf = Elf::parse(&bytes).unwrap();
    let (prog_idx, _) = section(&elf, &bytes, "classifier");
    let (text_idx, _) = section(&elf, &bytes, ".text");
    let (license_idx, _) = section(&elf, &bytes, "license");
    let entry_size = m.entry.code_len() as u64;
    let cb0 = m.callbacks[0].code_len() as u64;
    let cb1 = m.callbacks[1].code_len() as u64;
    let mut syms = symbols(&elf);
    syms.sort();
    let mut want = vec![
        ("".to_owned(), STB_LOCAL, STT_SECTION, prog_idx, 0, 0),
        ("".to_owned(), STB_LOCAL, STT_SECTION, text_idx, 0, 0),
        ("_license".into(), STB_GLOBAL, STT_OBJECT, license_idx, 0, 4),
        ("add_one".into(), STB_LOCAL, STT_FUNC, text_idx, 0, cb0),
        ("add_three".into(), STB_LOCAL, STT_FUNC, text_idx, cb0, cb1),
        (
            "count_two".into(),
            STB_GLOBAL,
            STT_FUNC,
            prog_idx,
            0,
            entry_size,
        ),
    ];
    want.sort();
    assert_eq!(syms, want);
}

/// (instruction index, slot) of every `ld_func` of `f`.
fn ld_funcs(f: &Function) -> Vec<(usize, usize)> {
    let mut slot = 0;
    let mut found = Vec::new();
    for (index, insn) in f.insns.iter().enumerate() {
        if let Insn::LdImm64 {
            kind: Imm64Kind::Func,
            ..
        } = insn
        {
            found.push((index, slot));
        }
        slot += insn.slots();
    }
    found
}

#[test]
fn code_and_relocations_round_trip() {
    let m = elf_support::two_callbacks();
    let bytes = write_object(&m).unwrap();
    let elf = Elf::parse(&bytes).unwrap();
    let (prog_idx, prog) = section(&elf, &bytes, "classifier");
    let (text_idx, text) = section(&elf, &bytes, ".text");

    // Callbacks: back to back, byte for byte.
    let mut want_text = m.callbacks[0].insns.clone();
    want_text.extend(&m.callbacks[1].insns);
    assert_eq!(decode(text), want_text);

    // Entry: identical except that ld_func immediates became .text offsets.
    let refs = ld_funcs(&m.entry);
    assert_eq!(refs.len(), 2);
    let got = decode(prog);
    let mut want = m.entry.insns.clone();
    let offsets = [0, m.callbacks[0].code_len() as i32];
    for (&(index, _), &off) in refs.iter().zip(&offsets) {
        if let Insn::LdImm64 { imm, .. } = &mut want[index] {
            *imm = off;
        }
    }
    assert_eq!(got, want);

    // One R_BPF_64_64 per reference, against the .text section symbol.
    let (_, relocs) = elf
        .shdr_relocs
        .iter()
        .find(|(idx, _)| elf.section_headers[*idx].sh_info as usize == prog_idx)
        .expect("relocations for classifier");
    let rel_sh = elf
        .section_headers
        .iter()
        .find(|sh| sh.sh_info as usize == prog_idx && sh.sh_type == SHT_REL)
        .unwrap();
    assert_eq!(rel_sh.sh_type, SHT_REL);
    let entries: Vec<_> = relocs.iter().collect();
    assert_eq!(entries.len(), 2);
    for (rel, &(_, slot)) in entries.iter().zip(&refs) {
        assert_eq!(rel.r_offset, (slot * 8) as u64);
        assert_eq!(rel.r_type, R_BPF_64_64);
        assert_eq!(rel.r_addend, None, "REL, not RELA");
        let sym = elf.syms.get(rel.r_sym).unwrap();
        assert_eq!(sym.st_type(), STT_SECTION);
        assert_eq!(sym.st_shndx, text_idx);
    }
    // No relocations anywhere else.
    assert_eq!(elf.shdr_relocs.len(), 1);
}

#[test]
fn btf_describes_every_function() {
    let m = elf_support::two_callbacks();
    let bytes = write_object(&m).unwrap();
    let elf = Elf::parse(&bytes).unwrap();
    let btf = Btf::parse(section(&elf, &bytes, ".BTF").1).unwrap();
    let ext = BtfExt::parse(section(&elf, &bytes, ".BTF.ext").1).unwrap();

    let func = |id: u32| match btf.type_by_id(id) {
        Some(BtfType::Func {
            name_off,
            proto,
            linkage,
        }) => (btf.string(*name_off).unwrap().to_owned(), *proto, *linkage),
        other => panic!("type {id} is not a FUNC: {other:?}"),
    };
    let params = |proto: u32| match btf.type_by_id(proto) {
        Some(BtfType::FuncProto { ret, params }) => {
            assert!(matches!(
                btf.type_by_id(*ret),
                Some(BtfType::Int { size: 4, .. })
            ));
            params
                .iter()
                .map(|(n, _)| btf.string(*n).unwrap().to_owned())
                .collect::<Vec<_>>()
        }
        other => panic!("not a FUNC_PROTO: {other:?}"),
    };

    let by_section: Vec<_> = ext
        .sections
        .iter()
        .map(|s| (btf.string(s.sec_name_off).unwrap().to_owned(), s))
        .collect();
    assert_eq!(by_section.len(), 2);
    let (name, prog) = &by_section[0];
    assert_eq!(name, "classifier");
    assert_eq!(prog.funcs.len(), 1);
    assert_eq!(prog.funcs[0].0, 0);
    let (fname, proto, linkage) = func(prog.funcs[0].1);
    assert_eq!(
        (fname.as_str(), linkage),
        ("count_two", FuncLinkage::Global)
    );
    assert_eq!(params(proto), ["ctx"]);
    assert_eq!(prog.lines.len(), 1);
    assert_eq!(prog.lines[0].insn_byte_off, 0);

    let (name, text) = &by_section[1];
    assert_eq!(name, ".text");
    let got: Vec<_> = text
        .funcs
        .iter()
        .map(|&(off, id)| {
            let (n, proto, linkage) = func(id);
            assert_eq!(linkage, FuncLinkage::Static);
            assert_eq!(params(proto), ["idx", "ctx"]);
            (off, n)
        })
        .collect();
    assert_eq!(
        got,
        [(0, "add_one".to_owned()), (40, "add_three".to_owned())]
    );
    let line_offs: Vec<_> = text.lines.iter().map(|l| l.insn_byte_off).collect();
    assert_eq!(line_offs, [0, 40]);
}

#[test]
fn without_callbacks_there_is_no_text_and_no_relocation() {
    let m = elf_support::no_callbacks();
    let bytes = write_object(&m).unwrap();
    let elf = Elf::parse(&bytes).unwrap();
    let names = section_names(&elf);
    assert!(!names.iter().any(|n| n == ".text" || n.starts_with(".rel")));
    assert!(elf.shdr_relocs.is_empty());
    let (_, prog) = section(&elf, &bytes, "classifier");
    assert_eq!(decode(prog), m.entry.insns);
    let ext = BtfExt::parse(section(&elf, &bytes, ".BTF.ext").1).unwrap();
    assert_eq!(ext.sections.len(), 1);
}

#[test]
fn output_is_deterministic() {
    let m = elf_support::two_callbacks();
    assert_eq!(write_object(&m).unwrap(), write_object(&m).unwrap());
}

#[test]
fn disassembly_of_the_object_names_functions_and_callbacks() {
    let bytes = write_object(&elf_support::one_callback()).unwrap();
    let text = disassemble_object(&bytes).unwrap();
    let want = "\
license \"GPL\"

section classifier (104 bytes, relocations: 1)
count_one (global, offset 0, 104 bytes):
   0: *(u64 *)(r10 - 8) = 0
   1: r1 = 1000
   2: r2 = func[0] <add_one>
   4: r3 = r10
   5: r3 += -8
   6: r4 = 0
   7: call bpf_loop#181
   8: r1 = *(u64 *)(r10 - 8)
   9: r0 = 0
  10: if r1 != 1000 goto +1 <12>
  11: r0 = 2
  12: exit

section .text (40 bytes, relocations: 0)
add_one (local, offset 0, 40 bytes):
   0: r1 = *(u64 *)(r2 + 0)
   1: r1 += 1
   2: *(u64 *)(r2 + 0) = r1
   3: r0 = 0
   4: exit
";
    assert_eq!(text, want);
}

fn module(entry: Vec<Insn>, callbacks: Vec<Vec<Insn>>) -> Module {
    Module {
        entry: Function {
            name: "entry".into(),
            insns: entry,
        },
        callbacks: callbacks
            .into_iter()
            .enumerate()
            .map(|(i, insns)| Function {
                name: format!("cb{i}"),
                insns,
            })
            .collect(),
        license: "GPL".into(),
        maps: Vec::new(),
        rodata: Vec::new(),
    }
}

fn ret0() -> Vec<Insn> {
    vec![Insn::mov64_imm(R0, 0), Insn::exit()]
}

fn with_ld_func(index: i32) -> Vec<Insn> {
    let mut v = vec![Insn::ld_func(R2, index)];
    v.extend(ret0());
    v
}

#[test]
fn bad_input_is_a_typed_error() {
    let err = |m: Module| write_object(&m).unwrap_err();
    assert!(matches!(
        err(module(with_ld_func(1), vec![ret0()])),
        ElfError::BadCallbackIndex {
            index: 1,
            count: 1,
            slot: 0,
            ..
        }
    ));
    assert!(matches!(
        err(module(with_ld_func(-1), vec![ret0()])),
        ElfError::BadCallbackIndex { index: -1, .. }
    ));
    assert!(matches!(
        err(module(with_ld_func(0), vec![])),
        ElfError::BadCallbackIndex { count: 0, .. }
    ));
    assert_eq!(
        err(module(ret0(), vec![with_ld_func(0)])),
        ElfError::LdFuncInCallback {
            function: "cb0".into(),
            slot: 0
        }
    );
    assert_eq!(
        err(module(vec![], vec![])),
        ElfError::EmptyFunction("entry".into())
    );
    assert_eq!(
        err(module(ret0(), vec![vec![]])),
        ElfError::EmptyFunction("cb0".into())
    );
    for bad in ["", "1abc", "a-b", "a b", "é", "a.b"] {
        let mut m = module(ret0(), vec![]);
        m.entry.name = bad.into();
        assert_eq!(err(m), ElfError::BadName(bad.into()));
        let mut m = module(ret0(), vec![ret0()]);
        m.callbacks[0].name = bad.into();
        assert_eq!(err(m), ElfError::BadName(bad.into()));
    }
    let mut m = module(ret0(), vec![ret0()]);
    m.callbacks[0].name = "entry".into();
    assert_eq!(err(m), ElfError::DuplicateName("entry".into()));
    let mut m = module(ret0(), vec![]);
    m.entry.name = "_license".into();
    assert_eq!(err(m), ElfError::DuplicateName("_license".into()));
    for license in ["", "G\0PL"] {
        let mut m = module(ret0(), vec![]);
        m.license = license.into();
        assert_eq!(err(m), ElfError::BadLicense);
    }
    // A half ld_imm64 cannot be written: `Insn::LdImm64` is both slots.
    // Slots count from the function's start, an ld_imm64 taking two.
    let mut call = vec![Insn::ld_imm64(R1, 7), Insn::Call(CallTarget::Local(1))];
    call.extend(ret0());
    assert!(matches!(
        err(module(call, vec![])),
        ElfError::PseudoCall { slot: 2, .. }
    ));
}

#[test]
fn plain_ld_imm64_is_left_alone() {
    let mut entry = vec![Insn::ld_imm64(R1, 0xdead_beef_0000_0001)];
    entry.extend(ret0());
    let m = module(entry.clone(), vec![]);
    let bytes = write_object(&m).unwrap();
    let elf = Elf::parse(&bytes).unwrap();
    assert_eq!(decode(section(&elf, &bytes, "classifier").1), entry);
    assert!(elf.shdr_relocs.is_empty());
}

/// Read-only data: a `.rodata` section (ALLOC, not WRITE) with the bytes, one global object
/// symbol over it, a relocation of each `ld_map_value` against that symbol with the offset kept
/// in `imm` and `src = BPF_PSEUDO_MAP_VALUE`, and a `DATASEC .rodata` naming the variable.
#[test]
fn read_only_data_is_a_section_a_symbol_a_relocation_and_a_datasec() {
    let mut m = module(
        vec![
            Insn::ld_map_value(R1, 4),
            Insn::load(Size::W, R0, R1, 0),
            Insn::exit(),
        ],
        vec![],
    );
    m.rodata = (0u8..12).collect();
    let bytes = write_object(&m).unwrap();
    let elf = Elf::parse(&bytes).unwrap();
    let (index, data) = section(&elf, &bytes, ".rodata");
    assert_eq!(data, &m.rodata[..]);
    let flags = elf.section_headers[index].sh_flags;
    assert!(flags & u64::from(SHF_ALLOC) != 0 && flags & u64::from(SHF_WRITE) == 0);
    let sym = symbols(&elf)
        .into_iter()
        .position(|s| s.0 == "lagic_tables")
        .expect("the rodata symbol");
    let s = &symbols(&elf)[sym];
    assert_eq!(
        (s.1, s.2, s.3, s.4, s.5),
        (STB_GLOBAL, STT_OBJECT, index, 0, 12)
    );
    let (prog, code) = section(&elf, &bytes, "classifier");
    let relocs: Vec<_> = elf
        .shdr_relocs
        .iter()
        .filter(|(i, _)| elf.section_headers[*i].sh_info as usize == prog)
        .flat_map(|(_, rs)| {
            rs.iter()
                .map(|r| (r.r_offset, r.r_sym, r.r_type))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(relocs, vec![(0, sym + 1, R_BPF_64_64)]);
    assert_eq!(decode(code)[0], Insn::ld_map_value(R1, 4));
    let (_, btf) = section(&elf, &bytes, ".BTF");
    let btf = Btf::parse(btf).unwrap();
    let datasec = btf
        .types
        .iter()
        .find_map(|t| match t {
            BtfType::Datasec {
                name_off,
                size,
                vars,
            } if btf.string(*name_off).unwrap() == ".rodata" => Some((*size, vars.clone())),
            _ => None,
        })
        .expect("a DATASEC .rodata");
    assert_eq!(datasec.0, 12);
    assert_eq!(datasec.1.len(), 1);
    assert_eq!((datasec.1[0].1, datasec.1[0].2), (0, 12));
    match btf.type_by_id(datasec.1[0].0) {
        Some(BtfType::Var { name_off, .. }) => {
            assert_eq!(btf.string(*name_off).unwrap(), "lagic_tables")
        }
        other => panic!("not a VAR: {other:?}"),
    }
}

#[test]
fn read_only_data_references_outside_the_data_or_in_a_callback_are_refused() {
    let mut m = module(vec![Insn::ld_map_value(R1, 12), Insn::exit()], vec![]);
    m.rodata = vec![0; 12];
    assert!(matches!(
        write_object(&m),
        Err(ElfError::BadRodataRef {
            offset: 12,
            len: 12,
            ..
        })
    ));
    let mut m = module(
        with_ld_func(0),
        vec![vec![
            Insn::ld_map_value(R1, 0),
            Insn::mov64_imm(R0, 0),
            Insn::exit(),
        ]],
    );
    m.rodata = vec![0; 12];
    assert!(matches!(
        write_object(&m),
        Err(ElfError::BadRodataRef { slot: 0, .. })
    ));
}
