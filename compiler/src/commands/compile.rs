//! `lagic compile SPEC -o OUT`: lower, emit, validate (unless
//! `--no-validate`), then write. A validation failure is a failed check
//! (exit 1) and nothing is written.

use super::shared;
use crate::cli::CompileArgs;
use crate::failure::{Failure, Outcome};
use crate::io;

pub fn run(args: CompileArgs) -> Result<Outcome, Failure> {
    let spec = shared::read_spec(&args.spec)?;
    let options = emit_bpf::Options {
        excerpt: args.excerpt,
    };
    let object = if spec.mode == predicate_ir::Mode::Packet {
        let program = shared::lower_spec(&args.spec, &spec)?;
        compile(&args.spec, &program, &options, !args.no_validate)?
    } else {
        let program = shared::lower_stream_spec(&args.spec, &spec)?;
        compile_stream(&args.spec, &program, &options, !args.no_validate)?
    };
    io::write_output(&args.output, &object)?;
    Ok(Outcome::Success)
}

/// The object bytes of `program`, validated when `validate` is set.
pub(crate) fn compile(
    path: &std::path::Path,
    program: &predicate_ir::Program,
    options: &emit_bpf::Options,
    validate: bool,
) -> Result<Vec<u8>, Failure> {
    let shown = io::display(path);
    let cannot =
        |e: &dyn std::fmt::Display| Failure::failed(format!("{shown}: cannot be compiled: {e}"));
    let (module, map) = emit_bpf::compile_mapped_with(program, options).map_err(|e| cannot(&e))?;
    #[allow(unused_mut)]
    let mut object = module.write_elf().map_err(|e| cannot(&e))?;
    #[cfg(debug_assertions)]
    inject_fault(&mut object, &map);
    if validate {
        lagic_validate::validate(program, &object, &map).map_err(|e| {
            Failure::failed(format!(
                "{shown}: translation validation failed, nothing written: {e}"
            ))
            .with_hint(
                "the emitted code does not implement the spec's lowered program: a bug in lagic; \
                 please report it with the spec (--no-validate skips the check, at your own risk)",
            )
        })?;
    }
    Ok(object)
}

/// The object bytes of the stream diode `program`; validation checks its
/// machine steps (docs/validation.md, "Stream diodes").
pub(crate) fn compile_stream(
    path: &std::path::Path,
    program: &predicate_ir::StreamProgram,
    options: &emit_bpf::Options,
    validate: bool,
) -> Result<Vec<u8>, Failure> {
    let shown = io::display(path);
    let cannot =
        |e: &dyn std::fmt::Display| Failure::failed(format!("{shown}: cannot be compiled: {e}"));
    let (module, map) =
        emit_bpf::compile_stream_mapped_with(program, options).map_err(|e| cannot(&e))?;
    let object = module.write_elf().map_err(|e| cannot(&e))?;
    if validate {
        lagic_validate::validate_stream(program, &object, &map).map_err(|e| {
            Failure::failed(format!(
                "{shown}: translation validation failed, nothing written: {e}"
            ))
            .with_hint(
                "the emitted code does not implement the spec's lowered program: a bug in lagic; \
                 please report it with the spec (--no-validate skips the check, at your own risk)",
            )
        })?;
    }
    Ok(object)
}

/// Debug builds only: `LAGIC_DEBUG_BREAK_STEP=1` changes the target of
/// the first state assignment in the first step of the first pass, so the
/// tests can watch a validation failure end the command (exit 1, nothing
/// written). Release builds have no such switch.
#[cfg(debug_assertions)]
fn inject_fault(object: &mut [u8], map: &emit_bpf::codemap::CodeMap) {
    use lagic_validate::patch;
    if std::env::var_os("LAGIC_DEBUG_BREAK_STEP").is_none() {
        return;
    }
    let Some(step) = map.passes.first().and_then(|p| p.steps.first()) else {
        return;
    };
    if let Some(slot) = patch::find(
        object,
        ".text",
        step.start..step.end,
        patch::code::MOV64_IMM,
        None,
    ) {
        let imm = patch::imm(object, ".text", slot).unwrap_or(0);
        let _ = patch::set_imm(object, ".text", slot, imm ^ 1);
    }
}
