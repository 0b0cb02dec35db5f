//! emit-bpf: the back half of lagic.
pub mod insn;
pub mod btf;
pub mod disasm;
pub mod elf;
