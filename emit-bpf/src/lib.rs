//! emit-bpf: the back half of lagic.
pub mod insn;
