//! emit-bpf: the back half of lagic.
//!
//! Data flow: a lowered [`predicate_ir::Program`] --[`compile`]-->
//! [`Module`] (an entry function plus `bpf_loop` callbacks, as typed
//! [`insn::Insn`]s) --[`Module::write_elf`]--> ELF bytes that Aya, libbpf
//! and iproute2 load as a TC classifier; [`compile_object`] does both.
//! [`insn`] is the typed instruction set and its encoder, [`decode`] the
//! independent decoder; [`disasm`] prints decoded instructions and whole
//! objects for people and golden tests; [`btf`] encodes the type
//! information the kernel needs for `bpf_loop`.
#![deny(missing_docs)]

pub mod btf;
mod codegen;
pub mod codemap;
pub mod decode;
pub mod disasm;
pub mod elf;
pub mod insn;
mod module;

pub use codegen::CodegenError;
pub use module::{Function, Module};

use predicate_ir::Program;

/// Why a program could not be turned into an object.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    /// Code generation failed.
    #[error(transparent)]
    Codegen(#[from] CodegenError),
    /// The ELF writer refused the generated module.
    #[error(transparent)]
    Elf(#[from] elf::ElfError),
}

/// Compiles a lowered program into an entry function and its callbacks.
pub fn compile(program: &Program) -> Result<Module, CodegenError> {
    Ok(codegen::compile(program)?.0)
}

/// [`compile`], also returning the [`codemap::CodeMap`]: where the code
/// keeps each machine's state and steps, for translation validation.
pub fn compile_mapped(program: &Program) -> Result<(Module, codemap::CodeMap), CodegenError> {
    codegen::compile(program)
}

/// Compiles a lowered program to the bytes of an eBPF ELF object.
pub fn compile_object(program: &Program) -> Result<Vec<u8>, EmitError> {
    Ok(compile(program)?.write_elf()?)
}
