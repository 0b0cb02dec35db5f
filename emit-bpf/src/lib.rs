//! emit-bpf: the back half of lagic.
//!
//! Data flow: a lowered [`predicate_ir::Program`] --[`codegen::compile`]-->
//! [`elf::Module`] (an entry function plus `bpf_loop` callbacks, as
//! [`insn::Insn`] slots) --[`elf::write_object`]--> ELF bytes that Aya,
//! libbpf and iproute2 load as a TC classifier. [`disasm`] reads both the
//! instructions and whole objects back for people and golden tests; [`btf`]
//! encodes the type information the kernel needs for `bpf_loop`.

pub mod btf;
pub mod codegen;
pub mod disasm;
pub mod elf;
pub mod insn;

use predicate_ir::Program;

/// Why a program could not be turned into an object.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error(transparent)]
    Codegen(#[from] codegen::CodegenError),
    #[error(transparent)]
    Elf(#[from] elf::ElfError),
}

/// Compiles a lowered program to the bytes of an eBPF ELF object.
pub fn compile_object(program: &Program) -> Result<Vec<u8>, EmitError> {
    let module = codegen::compile(program)?;
    Ok(elf::write_object(&module)?)
}
