//! Writes a relocatable eBPF ELF object for one TC classifier and its
//! `bpf_loop` callbacks, in the layout that Aya, libbpf (bpftool) and
//! iproute2 `tc` all load.
//!
//! Layout of the object ([`write_object`]):
//!
//! | section | contents |
//! |---|---|
//! | `classifier` | the entry function (ALLOC+EXECINSTR, align 8) |
//! | `.text` | the callbacks, back to back (only when there are callbacks) |
//! | `license` | the license string with its NUL, symbol `_license` |
//! | `.maps` | one zeroed 32-byte map definition per map (only with maps) |
//! | `.BTF`, `.BTF.ext` | types and per-section `func_info`/`line_info` |
//! | `.rel.classifier` | one `R_BPF_64_64` per callback or map reference |
//! | `.symtab`, `.strtab`, `.shstrtab` | |
//!
//! Symbols: the entry is `FUNC GLOBAL` (default visibility) in `classifier`;
//! each callback is `FUNC LOCAL` in `.text`; both with their true sizes
//! (libbpf refuses size 0: "corrupted program"). Section symbols exist for
//! `classifier` and `.text`; `_license` is `OBJECT GLOBAL`.
//!
//! Maps: BTF-defined, the way libbpf, Aya and tc find them. Each map is an
//! `OBJECT GLOBAL` symbol in `.maps` whose BTF is a `VAR` (global,
//! allocated) of an anonymous struct with pointer members `type`,
//! `max_entries` (each `int (*)[N]`: the value is the array's length),
//! `key` and `value` (pointers to an unsigned integer of the key's and the
//! value's size; both omitted for a ring buffer), listed in a `DATASEC
//! .maps` with the variables' offsets and sizes. A map reference in code is
//! an `ld_imm64` with `src = BPF_PSEUDO_MAP_FD` (an [`Insn::ld_map`]
//! carrying the map's index in [`Module::maps`]; written with `imm = 0`)
//! and an `R_BPF_64_64` relocation against the map's symbol; loaders
//! create the map and put its fd in `imm`.
//!
//! Callback references: in the entry's code, an `ld_func`
//! ([`Insn::LdImm64`] of kind [`Imm64Kind::Func`], `src == BPF_PSEUDO_FUNC`)
//! carries the *index* of a callback in [`Module::callbacks`]. The writer rewrites `imm` to the callback's byte
//! offset in `.text` and adds a relocation against the `.text` section
//! symbol, as clang does: Aya resolves it as `symbol address + imm`, libbpf
//! as `(symbol value + imm) / 8`, and libbpf requires the relocation.
//! Callbacks live in `.text` as static functions because libbpf refuses
//! static functions elsewhere and the kernel requires callbacks to be static.
//!
//! What the loaders need, found by loading on kernel 6.18 with Aya 0.14,
//! bpftool 7.1 (libbpf 1.1) and iproute2 6.1 `tc` (libbpf 1.1.2):
//! - Aya names each program after its function symbol, not its section:
//!   `Ebpf::program_mut(&entry.name)`; the section name gives the type.
//! - BTF `func_info` for every function (else "missing btf func_info"),
//!   every prototype parameter named, the entry's FUNC global and the
//!   callbacks' static. No DATASEC for `license` is needed.
//! - One `line_info` record per function: without any, libbpf warns
//!   "missing .BTF.ext line info for the main program" (it still loads).
//!   An empty `line_info` subsection (record size, no records) makes libbpf
//!   reject the whole `.BTF.ext`, so it is omitted rather than left empty.
//!   The record names the function, so verifier logs show `; name @ lagic:N`.
//! - The `ld_imm64` keeps `src = BPF_PSEUDO_FUNC` in the file, which both
//!   loaders accept (they set it again while relocating).

use object::write::{
    Object, Relocation, SectionId, Symbol, SymbolId, SymbolSection, SymbolSection::Section,
};
use object::{
    Architecture, BinaryFormat, Endianness, RelocationFlags, SectionKind, SymbolFlags, SymbolKind,
    SymbolScope,
};
use thiserror::Error;

use crate::btf::{BtfBuilder, BtfExtBuilder, FuncLinkage, LineInfo};
use crate::insn::{encode_all, CallTarget, Imm64Kind, Insn};
use crate::module::{Function, Module};

/// ELF section holding the entry program (Aya and libbpf map it to
/// `BPF_PROG_TYPE_SCHED_CLS`; `tc ... sec classifier` selects it).
pub const PROG_SECTION: &str = "classifier";
/// ELF section holding the callbacks.
pub const TEXT_SECTION: &str = ".text";
/// ELF section holding the license string.
pub const LICENSE_SECTION: &str = "license";
/// ELF section holding the BTF-defined map definitions.
pub const MAPS_SECTION: &str = ".maps";
/// Bytes of one map definition in `.maps`: four pointer members.
pub const MAP_DEF_SIZE: usize = 32;
/// Symbol of the license string.
pub const LICENSE_SYMBOL: &str = "_license";
/// `R_BPF_64_64`: relocation of an `ld_imm64` pair.
pub const R_BPF_64_64: u32 = 1;

/// Why a module cannot be written as an object.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ElfError {
    /// A function without code.
    #[error("function `{0}` has no instructions")]
    EmptyFunction(String),
    /// A function name that is not a C identifier.
    #[error("`{0}` is not a valid function name (want [A-Za-z_][A-Za-z0-9_]*)")]
    BadName(String),
    /// Two functions (or a function and `_license`) share a name.
    #[error("name `{0}` is used twice")]
    DuplicateName(String),
    /// An `ld_func` naming no callback.
    #[error(
        "slot {slot} of `{function}`: callback index {index} out of range ({count} callbacks)"
    )]
    BadCallbackIndex {
        /// The function holding the `ld_func`.
        function: String,
        /// Its slot.
        slot: usize,
        /// The callback index it carries.
        index: i32,
        /// How many callbacks there are.
        count: usize,
    },
    /// A callback that takes a function address.
    #[error("slot {slot} of callback `{function}`: callbacks may not take function addresses")]
    LdFuncInCallback {
        /// The callback.
        function: String,
        /// The slot of the `ld_func`.
        slot: usize,
    },
    /// A BPF-to-BPF call (`BPF_PSEUDO_CALL`), which the layout does not support.
    #[error("slot {slot} of `{function}`: BPF-to-BPF calls are not supported")]
    PseudoCall {
        /// The calling function.
        function: String,
        /// The slot of the call.
        slot: usize,
    },
    /// An `ld_map` naming no map.
    #[error("slot {slot} of `{function}`: map index {index} out of range ({count} maps)")]
    BadMapIndex {
        /// The function holding the `ld_map`.
        function: String,
        /// Its slot.
        slot: usize,
        /// The map index it carries.
        index: i32,
        /// How many maps there are.
        count: usize,
    },
    /// A callback that references a map (only the entry's references are relocated).
    #[error("slot {slot} of callback `{function}`: callbacks may not reference maps")]
    MapInCallback {
        /// The callback.
        function: String,
        /// The slot of the `ld_map`.
        slot: usize,
    },
    /// An empty license or one with a NUL byte.
    #[error("license must be non-empty and contain no NUL byte")]
    BadLicense,
    /// A section too large for 32-bit offsets.
    #[error("program too large: {0} bytes of code")]
    TooLarge(usize),
    /// The object writer failed.
    #[error("object writer: {0}")]
    Write(String),
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A callback reference in a function: where its `ld_func` is.
#[derive(Debug, Clone, Copy)]
struct FuncRef {
    /// Index in the function's instructions.
    index: usize,
    /// Slot of the `ld_func`'s first half.
    slot: usize,
    /// The callback index it carries.
    callback: i32,
}

/// Checks the name, emptiness and calls of one function; returns its
/// `ld_func`s (`BPF_PSEUDO_FUNC` loads) and its `ld_map`s (`BPF_PSEUDO_MAP_FD`
/// loads, with the map index in `callback`).
fn scan_function(f: &Function) -> Result<(Vec<FuncRef>, Vec<FuncRef>), ElfError> {
    if !is_identifier(&f.name) {
        return Err(ElfError::BadName(f.name.clone()));
    }
    if f.insns.is_empty() {
        return Err(ElfError::EmptyFunction(f.name.clone()));
    }
    let mut func_refs = Vec::new();
    let mut map_refs = Vec::new();
    let mut slot = 0;
    for (index, insn) in f.insns.iter().enumerate() {
        match insn {
            Insn::LdImm64 {
                kind: Imm64Kind::Func,
                imm,
                ..
            } => func_refs.push(FuncRef {
                index,
                slot,
                callback: *imm,
            }),
            Insn::LdImm64 {
                kind: Imm64Kind::MapFd,
                imm,
                ..
            } => map_refs.push(FuncRef {
                index,
                slot,
                callback: *imm,
            }),
            Insn::Call(CallTarget::Local(_)) => {
                return Err(ElfError::PseudoCall {
                    function: f.name.clone(),
                    slot,
                })
            }
            _ => {}
        }
        slot += insn.slots();
    }
    Ok((func_refs, map_refs))
}

/// Validates `module` and writes it as an ELF64 little-endian `ET_REL`
/// object for `EM_BPF`. Deterministic: the same module gives the same bytes.
pub fn write_object(module: &Module) -> Result<Vec<u8>, ElfError> {
    if module.license.is_empty() || module.license.contains('\0') {
        return Err(ElfError::BadLicense);
    }
    let mut seen = std::collections::HashSet::from([LICENSE_SYMBOL]);
    for f in std::iter::once(&module.entry).chain(&module.callbacks) {
        if !seen.insert(f.name.as_str()) {
            return Err(ElfError::DuplicateName(f.name.clone()));
        }
    }
    for m in &module.maps {
        if !is_identifier(&m.name) {
            return Err(ElfError::BadName(m.name.clone()));
        }
        if !seen.insert(m.name.as_str()) {
            return Err(ElfError::DuplicateName(m.name.clone()));
        }
    }
    let (entry_refs, entry_map_refs) = scan_function(&module.entry)?;
    for cb in &module.callbacks {
        let (funcs, maps) = scan_function(cb)?;
        if let Some(r) = funcs.first() {
            return Err(ElfError::LdFuncInCallback {
                function: cb.name.clone(),
                slot: r.slot,
            });
        }
        if let Some(r) = maps.first() {
            return Err(ElfError::MapInCallback {
                function: cb.name.clone(),
                slot: r.slot,
            });
        }
    }
    for r in &entry_map_refs {
        if usize::try_from(r.callback).map_or(true, |i| i >= module.maps.len()) {
            return Err(ElfError::BadMapIndex {
                function: module.entry.name.clone(),
                slot: r.slot,
                index: r.callback,
                count: module.maps.len(),
            });
        }
    }

    // Lay the callbacks out back to back in .text.
    let mut cb_offsets = Vec::with_capacity(module.callbacks.len());
    let mut text = Vec::new();
    for cb in &module.callbacks {
        cb_offsets.push(text.len());
        text.extend(encode_all(&cb.insns));
    }
    let entry_len = module.entry.code_len();
    for len in [text.len(), entry_len] {
        if len > i32::MAX as usize {
            return Err(ElfError::TooLarge(len));
        }
    }

    // Rewrite callback references in the entry: imm = byte offset in .text.
    let mut entry_insns = module.entry.insns.clone();
    for r in &entry_refs {
        let index = r.callback;
        let offset = usize::try_from(index)
            .ok()
            .and_then(|i| cb_offsets.get(i))
            .ok_or_else(|| ElfError::BadCallbackIndex {
                function: module.entry.name.clone(),
                slot: r.slot,
                index,
                count: module.callbacks.len(),
            })?;
        if let Insn::LdImm64 { imm, .. } = &mut entry_insns[r.index] {
            *imm = *offset as i32;
        }
    }
    for r in &entry_map_refs {
        if let Insn::LdImm64 { imm, .. } = &mut entry_insns[r.index] {
            *imm = 0;
        }
    }

    let mut obj = Object::new(BinaryFormat::Elf, Architecture::Bpf, Endianness::Little);

    let prog = obj.add_section(Vec::new(), PROG_SECTION.into(), SectionKind::Text);
    obj.set_section_data(prog, encode_all(&entry_insns), 8);
    obj.section_symbol(prog);
    add_function_symbol(
        &mut obj,
        prog,
        &module.entry.name,
        0,
        entry_len,
        SymbolScope::Dynamic,
    );

    if !module.callbacks.is_empty() {
        let text_id = obj.add_section(Vec::new(), TEXT_SECTION.into(), SectionKind::Text);
        obj.set_section_data(text_id, text, 8);
        let text_sym = obj.section_symbol(text_id);
        for (cb, &off) in module.callbacks.iter().zip(&cb_offsets) {
            add_function_symbol(
                &mut obj,
                text_id,
                &cb.name,
                off,
                cb.code_len(),
                SymbolScope::Compilation,
            );
        }
        for r in &entry_refs {
            obj.add_relocation(
                prog,
                Relocation {
                    offset: (r.slot * Insn::SLOT_SIZE) as u64,
                    symbol: text_sym,
                    addend: 0,
                    flags: RelocationFlags::Elf {
                        r_type: R_BPF_64_64,
                    },
                },
            )
            .map_err(|e| ElfError::Write(e.to_string()))?;
        }
    }

    let license = obj.add_section(Vec::new(), LICENSE_SECTION.into(), SectionKind::Data);
    let mut license_bytes = module.license.as_bytes().to_vec();
    license_bytes.push(0);
    let license_len = license_bytes.len() as u64;
    obj.set_section_data(license, license_bytes, 1);
    obj.add_symbol(Symbol {
        name: LICENSE_SYMBOL.into(),
        value: 0,
        size: license_len,
        kind: SymbolKind::Data,
        scope: SymbolScope::Dynamic,
        weak: false,
        section: Section(license),
        flags: SymbolFlags::None,
    });

    if !module.maps.is_empty() {
        let maps = obj.add_section(Vec::new(), MAPS_SECTION.into(), SectionKind::Data);
        obj.set_section_data(maps, vec![0; MAP_DEF_SIZE * module.maps.len()], 8);
        let symbols: Vec<SymbolId> = module
            .maps
            .iter()
            .enumerate()
            .map(|(i, m)| {
                obj.add_symbol(Symbol {
                    name: m.name.as_bytes().to_vec(),
                    value: (i * MAP_DEF_SIZE) as u64,
                    size: MAP_DEF_SIZE as u64,
                    kind: SymbolKind::Data,
                    scope: SymbolScope::Dynamic,
                    weak: false,
                    section: Section(maps),
                    flags: SymbolFlags::None,
                })
            })
            .collect();
        for r in &entry_map_refs {
            obj.add_relocation(
                prog,
                Relocation {
                    offset: (r.slot * Insn::SLOT_SIZE) as u64,
                    symbol: symbols[r.callback as usize],
                    addend: 0,
                    flags: RelocationFlags::Elf {
                        r_type: R_BPF_64_64,
                    },
                },
            )
            .map_err(|e| ElfError::Write(e.to_string()))?;
        }
    }

    let (btf, btf_ext) = program_btf(module, &cb_offsets);
    let btf_id = obj.add_section(Vec::new(), b".BTF".to_vec(), SectionKind::Metadata);
    obj.set_section_data(btf_id, btf, 4);
    let ext_id = obj.add_section(Vec::new(), b".BTF.ext".to_vec(), SectionKind::Metadata);
    obj.set_section_data(ext_id, btf_ext, 4);

    obj.write().map_err(|e| ElfError::Write(e.to_string()))
}

fn add_function_symbol(
    obj: &mut Object<'_>,
    section: SectionId,
    name: &str,
    offset: usize,
    size: usize,
    scope: SymbolScope,
) -> SymbolId {
    obj.add_symbol(Symbol {
        name: name.into(),
        value: offset as u64,
        size: size as u64,
        kind: SymbolKind::Text,
        scope,
        weak: false,
        section: SymbolSection::Section(section),
        flags: SymbolFlags::None,
    })
}

/// Name of the pseudo source file in line info records.
pub const LINE_INFO_FILE: &str = "lagic";

/// `.BTF` and `.BTF.ext` for `module`: `int`, `void *`, the entry's
/// `int (void *ctx)` (global) and the callbacks' `int (int idx, void *ctx)`
/// (static), one `func_info` record per function, and one `line_info`
/// record at each function's first instruction (so loaders do not warn
/// about missing line info; the "source line" is the function's name).
fn program_btf(module: &Module, cb_offsets: &[usize]) -> (Vec<u8>, Vec<u8>) {
    let mut btf = BtfBuilder::new();
    let int = btf.add_int("int", 4, true);
    let void_ptr = btf.add_ptr(0);
    let entry_proto = btf.add_func_proto(int, &[("ctx", void_ptr)]);
    let entry_func = btf.add_func(&module.entry.name, entry_proto, FuncLinkage::Global);
    let cb_funcs: Vec<_> = if module.callbacks.is_empty() {
        Vec::new()
    } else {
        let cb_proto = btf.add_func_proto(int, &[("idx", int), ("ctx", void_ptr)]);
        module
            .callbacks
            .iter()
            .map(|cb| btf.add_func(&cb.name, cb_proto, FuncLinkage::Static))
            .collect()
    };

    if !module.maps.is_empty() {
        let uint = btf.add_int("unsigned int", 4, false);
        let mut vars = Vec::new();
        for (i, m) in module.maps.iter().enumerate() {
            let array_ptr = |btf: &mut BtfBuilder, n: u32| {
                let array = btf.add_array(int, uint, n);
                btf.add_ptr(array)
            };
            let mut members = vec![
                ("type", array_ptr(&mut btf, m.map_type), 0),
                ("max_entries", array_ptr(&mut btf, m.max_entries), 8),
            ];
            for (name, size) in [("key", m.key_size), ("value", m.value_size)] {
                if size > 0 {
                    // BTF integers are at most 16 bytes: larger keys and
                    // values (the stream flow map's) are byte arrays.
                    let ty = if matches!(size, 1 | 2 | 4 | 8) {
                        btf.add_int(&format!("__u{}", size * 8), size, false)
                    } else {
                        let byte = btf.add_int("__u8", 1, false);
                        btf.add_array(byte, uint, size)
                    };
                    let ptr = btf.add_ptr(ty);
                    members.push((name, ptr, 8 * members.len() as u32));
                }
            }
            let def = btf.add_struct("", 8 * members.len() as u32, &members);
            let var = btf.add_var(&m.name, def);
            vars.push((var, (i * MAP_DEF_SIZE) as u32, 8 * members.len() as u32));
        }
        btf.add_datasec(
            MAPS_SECTION,
            (MAP_DEF_SIZE * module.maps.len()) as u32,
            &vars,
        );
    }

    let file = btf.strings.add(LINE_INFO_FILE);
    let mut ext = BtfExtBuilder::new();
    let prog_sec = btf.strings.add(PROG_SECTION);
    let entry_line = btf.strings.add(&module.entry.name);
    let s = ext.section(prog_sec);
    s.funcs.push((0, entry_func));
    s.lines.push(LineInfo {
        insn_byte_off: 0,
        file_name_off: file,
        line_off: entry_line,
        line_col: 1 << 10, // line 1, column 0
    });
    if !module.callbacks.is_empty() {
        let text_sec = btf.strings.add(TEXT_SECTION);
        for (i, ((cb, &off), &func)) in module
            .callbacks
            .iter()
            .zip(cb_offsets)
            .zip(&cb_funcs)
            .enumerate()
        {
            let line = btf.strings.add(&cb.name);
            let s = ext.section(text_sec);
            s.funcs.push((off as u32, func));
            s.lines.push(LineInfo {
                insn_byte_off: off as u32,
                file_name_off: file,
                line_off: line,
                line_col: (i as u32 + 2) << 10,
            });
        }
    }
    (btf.to_bytes(), ext.to_bytes())
}
