//! emit-bpf: the back half of lagic.
//!
//! Data flow: a lowered [`predicate_ir::Program`] --[`compile`]-->
//! [`Module`] (an entry function plus `bpf_loop` callbacks, as typed
//! [`insn::Insn`]s) --[`Module::write_elf`]--> ELF bytes that Aya, libbpf
//! and iproute2 load as a TC classifier; [`compile_object`] does both.
//! [`insn`] is the typed instruction set and its encoder, [`decode`] the
//! independent decoder; [`disasm`] prints decoded instructions and whole
//! objects for people and golden tests; [`btf`] encodes the type
//! information the kernel needs for `bpf_loop` and the maps; [`decision`]
//! is the layout of the counters and decision events every diode records.
#![deny(missing_docs)]

pub mod btf;
mod codegen;
pub mod codemap;
pub mod decision;
pub mod decode;
pub mod disasm;
pub mod elf;
pub mod insn;
mod module;

pub use codegen::stream::{
    key as stream_flow_key, value as stream_flow_value, FLOWS_MAP as STREAM_FLOWS_MAP,
    FLOWS_MAX as STREAM_FLOWS_MAX, FLOWS_RANGE as STREAM_FLOWS_RANGE, MIN_TTL as STREAM_MIN_TTL,
};
pub use codegen::CodegenError;
pub use module::{Function, MapDef, Module};

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

/// Choices of code generation that do not change verdicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Bytes of payload a drop event carries around the deciding byte
    /// (0: none); at most [`decision::MAX_EXCERPT`].
    pub excerpt: u32,
    /// Stream diodes: flows (distinct 4-tuples) the flow table holds, in
    /// [`STREAM_FLOWS_RANGE`]; per-packet diodes have no table and ignore it.
    pub flows: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            excerpt: decision::DEFAULT_EXCERPT,
            flows: STREAM_FLOWS_MAX,
        }
    }
}

/// Compiles a lowered program into an entry function and its callbacks,
/// with the default [`Options`].
pub fn compile(program: &Program) -> Result<Module, CodegenError> {
    compile_with(program, &Options::default())
}

/// Compiles a lowered program into an entry function and its callbacks.
pub fn compile_with(program: &Program, options: &Options) -> Result<Module, CodegenError> {
    Ok(compile_mapped_with(program, options)?.0)
}

/// [`compile`], also returning the [`codemap::CodeMap`]: where the code
/// keeps each machine's state and steps, for translation validation.
pub fn compile_mapped(program: &Program) -> Result<(Module, codemap::CodeMap), CodegenError> {
    compile_mapped_with(program, &Options::default())
}

/// [`compile_with`], also returning the [`codemap::CodeMap`].
pub fn compile_mapped_with(
    program: &Program,
    options: &Options,
) -> Result<(Module, codemap::CodeMap), CodegenError> {
    if options.excerpt > decision::MAX_EXCERPT {
        return Err(CodegenError::ExcerptTooLong {
            excerpt: options.excerpt,
            max: decision::MAX_EXCERPT,
        });
    }
    codegen::compile(program, options)
}

/// Compiles a lowered program to the bytes of an eBPF ELF object, with
/// the default [`Options`].
pub fn compile_object(program: &Program) -> Result<Vec<u8>, EmitError> {
    Ok(compile(program)?.write_elf()?)
}

/// Compiles a lowered program to the bytes of an eBPF ELF object.
pub fn compile_object_with(program: &Program, options: &Options) -> Result<Vec<u8>, EmitError> {
    Ok(compile_with(program, options)?.write_elf()?)
}

/// Compiles a lowered stream program ([`predicate_ir::lower_stream`]) into
/// a stream diode: the flow map [`STREAM_FLOWS_MAP`] carries each flow's
/// state between segments (docs/stream.md, "The kernel diode").
pub fn compile_stream_mapped_with(
    program: &predicate_ir::StreamProgram,
    options: &Options,
) -> Result<(Module, codemap::CodeMap), CodegenError> {
    if options.excerpt > decision::MAX_EXCERPT {
        return Err(CodegenError::ExcerptTooLong {
            excerpt: options.excerpt,
            max: decision::MAX_EXCERPT,
        });
    }
    if !STREAM_FLOWS_RANGE.contains(&options.flows) {
        return Err(CodegenError::FlowsOutOfRange {
            flows: options.flows,
            min: *STREAM_FLOWS_RANGE.start(),
            max: *STREAM_FLOWS_RANGE.end(),
        });
    }
    codegen::compile_stream(program, options)
}

/// Compiles a lowered stream program to the bytes of an eBPF ELF object.
pub fn compile_stream_object_with(
    program: &predicate_ir::StreamProgram,
    options: &Options,
) -> Result<Vec<u8>, EmitError> {
    Ok(compile_stream_mapped_with(program, options)?
        .0
        .write_elf()?)
}
