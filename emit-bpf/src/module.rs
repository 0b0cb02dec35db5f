//! The compiled program: an entry function and its `bpf_loop` callbacks,
//! as typed instructions. Code generation produces a [`Module`]; the ELF
//! writer ([`crate::elf`]) lays it out as an object.
//!
//! Invariant of a module the writer accepts: in the entry, an `ld_func`
//! ([`Insn::ld_func`]) carries the index of a callback in
//! [`Module::callbacks`]; callbacks take no function addresses. An
//! `ld_map` ([`Insn::ld_map`]) carries the index of a map in
//! [`Module::maps`], and an `ld_map_value` ([`Insn::ld_map_value`]) a byte
//! offset inside [`Module::rodata`].

use crate::elf::{self, ElfError};
use crate::insn::Insn;

/// One function: a name (a C identifier) and its instructions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// The symbol name.
    pub name: String,
    /// The code, in order.
    pub insns: Vec<Insn>,
}

impl Function {
    /// Instruction slots the function takes (an `ld_imm64` takes two): the
    /// kernel's instruction count.
    pub fn slot_count(&self) -> usize {
        self.insns.iter().map(Insn::slots).sum()
    }

    /// Size of the function's code in bytes.
    pub fn code_len(&self) -> usize {
        self.slot_count() * Insn::SLOT_SIZE
    }
}

/// `BPF_MAP_TYPE_PERCPU_ARRAY`.
pub const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;
/// `BPF_MAP_TYPE_HASH` (preallocated unless created with
/// `BPF_F_NO_PREALLOC`; an update that needs a new entry in a full map
/// fails with `E2BIG`, an update of an existing key replaces it in place).
pub const BPF_MAP_TYPE_HASH: u32 = 1;
/// `BPF_MAP_TYPE_RINGBUF`.
pub const BPF_MAP_TYPE_RINGBUF: u32 = 27;

/// A BTF-defined map the program uses (written to the `.maps` section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapDef {
    /// The map's symbol and name (a C identifier; the kernel keeps 15 bytes).
    pub name: String,
    /// `enum bpf_map_type`.
    pub map_type: u32,
    /// Key size in bytes; 0 for maps without keys (ring buffers).
    pub key_size: u32,
    /// Value size in bytes; 0 for maps without values (ring buffers).
    pub value_size: u32,
    /// `max_entries` (for a ring buffer: its size in bytes, a power-of-two
    /// multiple of the page size).
    pub max_entries: u32,
}

/// A TC program with its `bpf_loop` callbacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// The TC program; a global function in section `classifier`.
    pub entry: Function,
    /// `bpf_loop` callbacks; static functions in section `.text`.
    pub callbacks: Vec<Function>,
    /// License string, e.g. "GPL" (GPL-only helpers need a GPL-compatible one).
    pub license: String,
    /// Maps the entry references by index; none for a program without.
    pub maps: Vec<MapDef>,
    /// Read-only global data (the `.rodata` section: transition tables);
    /// empty for a program without.
    pub rodata: Vec<u8>,
}

impl Module {
    /// Writes the module as an eBPF ELF object ([`elf::write_object`]).
    pub fn write_elf(&self) -> Result<Vec<u8>, ElfError> {
        elf::write_object(self)
    }
}
